"""docs/deploy.md documents every config key exactly as Pulumi.yaml declares it (type and default)."""

from __future__ import annotations

import json
import re

import yaml

from components.config import KEYS
from tests.pulumi_harness import ROOT

DOC = ROOT / "docs" / "deploy.md"
ROW = re.compile(r"^\| `(?P<key>\w+)` \| (?P<type>\w+) \| (?P<default>[^|]+) \| (?P<meaning>[^|]+) \|$")


def declared() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]


def documented() -> dict[str, dict[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line.strip())
        if match and match["key"] in declared():
            rows[match["key"]] = {k: v.strip() for k, v in match.groupdict().items()}
    return rows


def shown(spec: dict) -> str:
    """How the doc writes a key's default."""
    if "default" not in spec:
        return "(required)"
    default = spec["default"]
    return f"`{default}`" if isinstance(default, str) and default else f"`{json.dumps(default)}`"


def test_every_pulumi_yaml_key_is_in_the_configuration_table_with_its_type_and_default() -> None:
    rows = documented()
    for key, spec in declared().items():
        assert key in rows, f"{key} (Pulumi.yaml) is missing from docs/deploy.md's configuration table"
        assert rows[key]["type"] == spec["type"], key
        assert rows[key]["default"] == shown(spec), (
            f"{key}: doc says {rows[key]['default']}, Pulumi.yaml {shown(spec)}"
        )


def test_the_table_lists_no_key_the_program_does_not_read() -> None:
    listed = re.findall(r"^\| `(\w+)` \| (?:string|integer|boolean|array) \|", DOC.read_text(), re.MULTILINE)
    assert listed and set(listed) <= set(KEYS), set(listed) - set(KEYS)
    assert set(declared()) == set(KEYS)  # the doc checks against Pulumi.yaml, the program reads KEYS


def test_teardown_turns_deletion_protection_off_before_destroy_refreshing_each_step() -> None:
    """Each step refreshes first: the cluster update must send the real peer list (docs/dsql-cluster.md)."""
    text = DOC.read_text()
    steps = [text.index("pulumi config set deletionProtection false"), text.index("pulumi up --refresh       #"),
             text.index("pulumi destroy --refresh\n")]  # fmt: skip
    assert steps == sorted(steps)
    assert "PENDING_DELETE" in text
    teardown = text[text.index("## Tear down") : text.index("## Costs to expect")]
    assert "options: refresh: always" in teardown


def test_no_doc_tells_anyone_to_skip_the_refresh() -> None:
    for page in [*DOC.parent.glob("*.md"), DOC.parent.parent / "README.md"]:
        text = page.read_text()
        for skip in ("--refresh=false", "--skip-refresh"):
            for at in [i for i in range(len(text)) if text.startswith(skip, i)]:
                assert "Never" in text[max(0, at - 80) : at], f"{page.name} uses {skip}"
