"""The GitHub Actions workflows: valid for actionlint, actions pinned to commit SHAs, least privilege."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pulumi_harness import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def actionlint() -> str:
    """The actionlint binary installed by requirements-dev.txt (in this interpreter's bin folder)."""
    beside_python = Path(sys.executable).parent / "actionlint"
    found = str(beside_python) if beside_python.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: run `make test` (it installs requirements-dev.txt)")
    return found


def load(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); keep it as "on".
    text = (ROOT / ".github" / "workflows" / name).read_text()
    document = yaml.safe_load(text)
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_both_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "preview.yml"}


def test_actionlint_accepts_every_workflow() -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_really_checking(tmp_path: Path) -> None:
    """A broken workflow must fail, or the test above would pass vacuously."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ nope.value }}\n"
    )
    result = subprocess.run(
        [actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml"])
def test_every_action_is_pinned_to_a_commit_sha(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    assert uses
    for action in uses:
        assert PINNED.match(action), f"{name}: {action} is not pinned to a 40-character commit SHA"


def test_ci_runs_the_tests_on_every_push_with_read_only_permissions() -> None:
    ci = load("ci.yml")
    assert "push" in ci["on"] and ci["on"]["push"] is None  # every branch
    assert ci["permissions"] == {"contents": "read"}
    assert any(step.get("run") == "bash .ci/run" for step in steps(ci))


def test_preview_runs_pulumi_preview_on_pull_requests_with_oidc_and_least_privilege() -> None:
    preview = load("preview.yml")
    assert "pull_request" in preview["on"]
    assert preview["permissions"] == {}
    [job] = preview["jobs"].values()
    assert job["permissions"] == {"id-token": "write", "contents": "read", "pull-requests": "write"}
    by_action = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    credentials = by_action["aws-actions/configure-aws-credentials"]["with"]
    assert "role-to-assume" in credentials
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials)  # no stored keys
    pulumi = by_action["pulumi/actions"]["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["comment-on-pr"] is True
    assert "prod" in pulumi["stack-name"]
    # The credentials step must come before the preview that uses them.
    order = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    assert order.index("aws-actions/configure-aws-credentials") < order.index("pulumi/actions")


def test_preview_installs_the_lock_and_builds_no_artifact_by_hand() -> None:
    """A fresh checkout previews with the install alone: the program builds the Lambda artifacts itself,
    with the runtime's Python, which the job sets up beside the program's."""
    [job] = load("preview.yml")["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert not [run for run in runs if "build" in run or "make layer" in run]
    [install] = [run for run in runs if " -r requirements.txt" in run]
    assert "--require-hashes" in install and "python -m venv .venv" in install
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    versions = setup["with"]["python-version"].split()
    assert {"3.12", "3.13"} <= set(versions)  # every lambdaRuntime's interpreter, for the bytecode
    assert versions[-1] == "3.11"  # the default `python`: the program's interpreter
