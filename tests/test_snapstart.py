"""SnapStart: the config key, the wiring in both regions under Pulumi mocks, and the handler's hooks.

With ``lambdaSnapStart`` on, each function publishes versions with SnapStart, an alias ``live`` points
at the published version, and API Gateway reaches the function only through that alias (the OpenAPI
body's integration URI and the invoke permission's qualifier); off, today's unqualified wiring. The
handler's after-restore hook drops connections made before the snapshot and reseeds ``random``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import make_conninfo

from components.config import ConfigError, StackConfig, _check_snap_start, parse_config
from components.regional_app import LIVE_ALIAS
from handler import db, users
from handler.config import load_settings
from tests.pulumi_harness import ProgramRun, Registered, run_program

REGIONS = ("us-east-1", "us-east-2")  # Pulumi.prod.yaml's application regions
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {"primaryRegion": "us-east-1", "secondaryRegion": "us-east-2", "witnessRegion": "us-west-2"}


# ---------------------------------------------------------------- config


def test_snap_start_is_off_by_default_and_parsed_as_a_boolean() -> None:
    assert parse_config(REQUIRED).lambda_snap_start is False
    assert parse_config({**REQUIRED, "lambdaSnapStart": "true"}).lambda_snap_start is True
    with pytest.raises(ConfigError, match="dsql-users-api:lambdaSnapStart must be true or false"):
        parse_config({**REQUIRED, "lambdaSnapStart": "yes"})


def test_snap_start_is_refused_before_python_3_12() -> None:
    config = StackConfig(**_fields(REQUIRED), lambda_runtime="python3.11", lambda_snap_start=True)
    with pytest.raises(ConfigError, match=r"dsql-users-api:lambdaSnapStart needs a python3\.12") as caught:
        _check_snap_start(config, "dsql-users-api")
    assert "pulumi config set lambdaRuntime python3.13" in str(caught.value)
    _check_snap_start(StackConfig(**_fields(REQUIRED), lambda_runtime="python3.11"), "dsql-users-api")


@pytest.mark.parametrize(
    ("key", "region"), [("primaryRegion", "ap-east-2"), ("secondaryRegion", "ap-southeast-6")]
)
def test_snap_start_is_refused_in_regions_without_it(key: str, region: str) -> None:
    raw = {**REQUIRED, key: region, "lambdaSnapStart": "true"}
    with pytest.raises(ConfigError, match=rf"not offered in {region} \(dsql-users-api:{key}\)") as caught:
        parse_config(raw)
    assert "pulumi config set lambdaSnapStart false" in str(caught.value)
    assert parse_config({**raw, "lambdaSnapStart": "false"}).lambda_snap_start is False


def _fields(raw: dict[str, str]) -> dict[str, Any]:
    return {"primary_region": raw["primaryRegion"], "secondary_region": raw["secondaryRegion"],
            "witness_region": raw["witnessRegion"]}  # fmt: skip


# ---------------------------------------------------------------- wiring under mocks


def _in(run: ProgramRun, typ: str, region: str, suffix: str = "") -> list[Registered]:
    return [r for r in run.of_type(typ) if r.region == region and r.name.endswith(suffix)]


def _integration_uris(body: str) -> set[str]:
    document = yaml.safe_load(body)
    return {
        operation["x-amazon-apigateway-integration"]["uri"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation
        and operation["x-amazon-apigateway-integration"].get("type") == "aws_proxy"
    }  # fmt: skip


@pytest.fixture(scope="module")
def snap_start_on() -> ProgramRun:
    return run_program({"lambdaSnapStart": True})


@pytest.fixture(scope="module")
def snap_start_off() -> ProgramRun:
    return run_program({"lambdaSnapStart": False})


@pytest.mark.parametrize("region", REGIONS)
def test_with_snap_start_the_api_invokes_the_live_alias_of_a_published_version(
    snap_start_on: ProgramRun, region: str
) -> None:
    function = snap_start_on.one("aws:lambda/function:Function", region)
    assert function.inputs["publish"] is True
    assert function.inputs["snapStart"] == {"applyOn": "PublishedVersions"}
    assert "ephemeralStorage" not in function.inputs  # SnapStart allows at most the default 512 MB
    assert "fileSystemConfig" not in function.inputs  # nor EFS

    (alias,) = _in(snap_start_on, "aws:lambda/alias:Alias", region)
    assert alias.inputs["name"] == LIVE_ALIAS
    assert alias.inputs["functionName"] == function.outputs["name"]
    assert alias.inputs["functionVersion"] == function.outputs["version"] == "1"  # published, not $LATEST

    (permission,) = _in(snap_start_on, "aws:lambda/permission:Permission", region, "-invoke-permission")
    assert permission.inputs["function"] == function.outputs["name"]
    assert permission.inputs["qualifier"] == LIVE_ALIAS

    api = snap_start_on.one("aws:apigateway/restApi:RestApi", region)
    assert _integration_uris(api.inputs["body"]) == {alias.outputs["invokeArn"]}
    assert alias.outputs["invokeArn"].endswith(
        f":function:{function.outputs['name']}:{LIVE_ALIAS}/invocations"
    )


@pytest.mark.parametrize("region", REGIONS)
def test_without_snap_start_the_api_invokes_the_unqualified_function(
    snap_start_off: ProgramRun, region: str
) -> None:
    function = snap_start_off.one("aws:lambda/function:Function", region)
    assert not function.inputs.get("publish")
    assert "snapStart" not in function.inputs
    assert _in(snap_start_off, "aws:lambda/alias:Alias", region) == []
    (permission,) = _in(snap_start_off, "aws:lambda/permission:Permission", region, "-invoke-permission")
    assert "qualifier" not in permission.inputs
    api = snap_start_off.one("aws:apigateway/restApi:RestApi", region)
    assert _integration_uris(api.inputs["body"]) == {function.outputs["invokeArn"]}


def test_a_preview_of_a_new_stack_plans_the_alias_and_qualified_permission_in_both_regions() -> None:
    run = run_program({"lambdaSnapStart": True}, preview=True)
    for region in REGIONS:
        (alias,) = _in(run, "aws:lambda/alias:Alias", region)
        assert alias.inputs["name"] == LIVE_ALIAS
        (permission,) = _in(run, "aws:lambda/permission:Permission", region, "-invoke-permission")
        assert permission.inputs["qualifier"] == LIVE_ALIAS


# ---------------------------------------------------------------- the handler's hooks


@pytest.fixture
def database(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> db.Database:
    monkeypatch.setenv("DATABASE_URL", make_conninfo(migrated_database_url, user="users_api"))
    monkeypatch.delenv("DSQL_ENDPOINT", raising=False)
    return db.Database(load_settings())


def test_after_restore_drops_the_connection_made_before_the_snapshot(database: db.Database) -> None:
    database.run(users.ping, idempotent=True)
    before = database.connection()
    pid_before = before.info.backend_pid
    db.after_restore()
    assert before.closed
    database.run(users.ping, idempotent=True)  # the first request after a restore connects afresh
    assert database.connects == 2
    assert database.connection().info.backend_pid != pid_before


def test_after_restore_reseeds_random_so_restored_copies_draw_different_jitter() -> None:
    def first_draw_of_a_restored_copy() -> float:
        random.seed(1234)  # the state every copy of one snapshot starts from
        db.after_restore()
        return random.random()

    random.seed(1234)
    without_hook = random.random()
    random.seed(1234)
    assert random.random() == without_hook  # same snapshot state, same draws...
    draws = {first_draw_of_a_restored_copy() for _ in range(3)}
    assert len(draws) == 3 and without_hook not in draws  # ...unless the hook reseeds


def _import_handler(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """Import handler.app in a fresh interpreter with a stand-in for the runtime's snapshot_restore_py."""
    (tmp_path / "snapshot_restore_py.py").write_text(
        "after_restore = []\n"
        "def register_after_restore(func, *args, **kwargs):\n"
        "    after_restore.append((func, args, kwargs))\n"
    )
    code = (
        "import json, sys, handler.app, snapshot_restore_py as hooks\n"
        "print(json.dumps({'hooks': [f'{f.__module__}.{f.__name__}' for f, _, _ in hooks.after_restore],\n"
        "                  'primed': 'aurora_dsql_psycopg' in sys.modules}))\n"
    )
    child_env = {
        k: v for k, v in os.environ.items() if k not in ("AWS_LAMBDA_INITIALIZATION_TYPE", "DSQL_ENDPOINT")
    }
    child_env.update(env, PYTHONPATH=f"{tmp_path}{os.pathsep}{PROJECT_ROOT}")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_a_snap_start_init_registers_the_hook_and_primes_the_dsql_connector(tmp_path: Path) -> None:
    seen = _import_handler(
        {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "DSQL_ENDPOINT": "abc.dsql.us-east-1.on.aws"},
        tmp_path,
    )
    assert seen == {"hooks": ["handler.db.after_restore"], "primed": True}


def test_an_on_demand_init_registers_nothing_and_defers_the_connector(tmp_path: Path) -> None:
    seen = _import_handler(
        {"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "DSQL_ENDPOINT": "abc.dsql.us-east-1.on.aws"},
        tmp_path,
    )
    assert seen == {"hooks": [], "primed": False}
