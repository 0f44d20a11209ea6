"""The dynamic providers survive Pulumi's serialization and work in a fresh interpreter.

The engine pickles the provider with dill into the state and later loads it in a separate process (the
dynamic-provider host) whose working directory is the project root. dill pickles these classes by
reference to their modules, so the fresh process must be able to import ``components`` and
``migrations`` from that directory: these tests prove it does, and that nothing else is needed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.dynamic.drill_user import DrillUserProvider
from components.dynamic.iam_grant import IamGrantProvider
from components.dynamic.migration import SchemaMigrationProvider, migration_inputs
from components.dynamic.peering import ClusterPeeringProvider
from components.dynamic.published_version import PublishedVersionProvider
from migrations.runner import Migration, load_migrations

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"
IDS = ("a" * 26, "b" * 26)
PEERING = {
    "primary_identifier": IDS[0],
    "primary_arn": f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/{IDS[0]}",
    "primary_region": "us-east-1",
    "secondary_identifier": IDS[1],
    "secondary_arn": f"arn:aws:dsql:us-east-2:{ACCOUNT}:cluster/{IDS[1]}",
    "secondary_region": "us-east-2",
    "witness_region": "us-west-2",
}
FILES = migration_inputs(load_migrations())
SCHEMA = {"endpoint": f"{IDS[0]}.dsql.us-east-1.on.aws", "region": "us-east-1", "migrations": FILES}
GRANT = {
    "role_arn": f"arn:aws:iam::{ACCOUNT}:role/users-api-us-east-1-function-role",
    "db_role": "users_api",
    "endpoint": SCHEMA["endpoint"],
    "region": "us-east-1",
}

# Runs in the fresh interpreter: load the provider exactly as the engine does, call check and diff.
LOADER = """
import base64, json, sys
import dill
request = json.load(sys.stdin)
provider = dill.loads(base64.b64decode(request["provider"]))
checked = provider.check({}, request["news"])
result = {
    "class": type(provider).__module__ + "." + type(provider).__name__,
    "failures": [f.reason for f in checked.failures],
    "diffs": [],
}
for olds, news in request["diffs"]:
    try:
        diff = provider.diff("id", olds, news)
        result["diffs"].append({"changes": diff.changes, "replaces": diff.replaces})
    except Exception as exc:
        result["diffs"].append({"error": type(exc).__name__ + ": " + str(exc)})
json.dump(result, sys.stdout)
"""


def run_fresh(provider, news: dict, diffs: list, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    request = {"provider": serialize_provider(provider), "news": news, "diffs": diffs}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AWS_PROFILE")}
    return subprocess.run(
        [sys.executable, "-c", LOADER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def loaded(provider, news: dict, diffs: list) -> dict:
    process = run_fresh(provider, news, diffs)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout)


def test_the_peering_provider_loads_and_runs_check_and_diff_in_a_fresh_process() -> None:
    result = loaded(
        ClusterPeeringProvider(),
        {**PEERING, "witness_region": "us-east-1"},
        [[PEERING, PEERING], [PEERING, {**PEERING, "witness_region": "eu-west-1"}]],
    )

    assert result["class"] == "components.dynamic.peering.ClusterPeeringProvider"
    assert any("is also a cluster region" in reason for reason in result["failures"])
    assert result["diffs"] == [
        {"changes": False, "replaces": []},
        {"changes": True, "replaces": ["witness_region"]},
    ]


def test_the_migration_provider_loads_and_runs_check_and_diff_in_a_fresh_process() -> None:
    added = [*FILES, *migration_inputs([Migration("0099_more.sql", "SELECT 1;\n")])]
    edited = [*migration_inputs([Migration(FILES[0]["name"], FILES[0]["sql"] + "-- edited\n")]), *FILES[1:]]

    result = loaded(
        SchemaMigrationProvider(),
        SCHEMA,
        [
            [SCHEMA, SCHEMA],
            [SCHEMA, {**SCHEMA, "migrations": added}],
            [SCHEMA, {**SCHEMA, "migrations": edited}],
        ],
    )

    assert result["class"] == "components.dynamic.migration.SchemaMigrationProvider"
    assert result["failures"] == []
    assert result["diffs"][0] == {"changes": False, "replaces": []}
    assert result["diffs"][1] == {"changes": True, "replaces": []}
    assert "MigrationError" in result["diffs"][2]["error"]
    assert "was edited after it was applied" in result["diffs"][2]["error"]


def test_the_iam_grant_provider_loads_and_runs_check_and_diff_in_a_fresh_process() -> None:
    other_role = {**GRANT, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/another-role"}
    result = loaded(
        IamGrantProvider(), {**GRANT, "role_arn": "not-an-arn"}, [[GRANT, GRANT], [GRANT, other_role]]
    )

    assert result["class"] == "components.dynamic.iam_grant.IamGrantProvider"
    assert result["failures"]
    assert result["diffs"] == [
        {"changes": False, "replaces": []},
        {"changes": True, "replaces": ["role_arn"]},
    ]


@pytest.mark.parametrize(
    "provider",
    [
        ClusterPeeringProvider(),
        SchemaMigrationProvider(),
        IamGrantProvider(),
        PublishedVersionProvider(),
        DrillUserProvider(),
    ],
)
def test_the_serialized_provider_holds_no_secret_or_client(provider) -> None:
    blob = base64.b64decode(serialize_provider(provider))
    assert len(blob) < 2000  # a reference to the class, not a pickled client, session or connection
    for needle in (b"botocore", b"psycopg.Connection", b"AWS_SECRET", b"password"):
        assert needle not in blob


def test_the_provider_needs_the_project_root_as_working_directory(tmp_path: Path) -> None:
    """Why the engine's cwd matters: pickled by reference, the classes are imported on load."""
    process = run_fresh(ClusterPeeringProvider(), PEERING, [], cwd=tmp_path)
    assert process.returncode != 0
    assert "No module named 'components'" in process.stderr
