"""SnapStart's first version: nothing points at a published version before Lambda can invoke it.

Three proofs: under mocks, the alias (and so the API body, deployment, stage and permission after it)
takes its version from the wait resource, never straight from the function; the wait itself against
botocore's Stubber with the answers Lambda gives (Pending, then Active; Failed with its reason; a
version that stays Pending past the bound); and the provider through Pulumi's own provider server
against moto_server (check, create, read, read of a deleted function).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber
from pulumi.output import Unknown

from components.dynamic import published_version
from components.dynamic.aws_session import AMBIENT
from components.dynamic.published_version import (
    PublishedVersionError,
    PublishedVersionProvider,
    wait_until_active,
)
from components.regional_app import LIVE_ALIAS
from tests.provider_server import MotoServer, ProviderServer, plain, server_environment, with_provider
from tests.pulumi_harness import run_program

WAIT = "pulumi-python:dynamic/lambda:PublishedVersion"
TYPE_TOKEN = "dynamic/lambda:PublishedVersion"
REGIONS = ("us-east-1", "us-east-2")
PROPS = {"function_name": "users-api-prod-us-east-1", "version": "1", "region": "us-east-1"}


# ---------------------------------------------------------------- ordering under mocks


@pytest.mark.parametrize("region", REGIONS)
def test_the_live_alias_takes_its_version_from_the_wait_not_from_the_function(region: str) -> None:
    """In a preview where only the wait's outputs are unknown (it has not run), the alias's version is
    unknown too: the alias, and everything that invokes through it, waits for the version to be Active."""
    run = run_program({"lambdaSnapStart": True}, preview=True, unknown_outputs_of={WAIT})
    [wait] = [r for r in run.of_type(WAIT) if r.inputs["region"] == region]
    function = run.one("aws:lambda/function:Function", region)
    assert wait.inputs["function_name"] == function.outputs["name"]
    assert wait.inputs["version"] == function.outputs["version"] == "1"
    [alias] = [r for r in run.of_type("aws:lambda/alias:Alias") if r.region == region]
    assert alias.inputs["name"] == LIVE_ALIAS
    assert isinstance(alias.inputs["functionVersion"], Unknown)  # it comes from the wait, not the function
    # Everything that invokes does so through the alias (tests/test_snapstart.py: the API body's
    # integration URI and the permission's qualifier), so nothing is live before the wait.


def test_without_snap_start_there_is_nothing_to_wait_for() -> None:
    run = run_program({"lambdaSnapStart": False})
    assert run.of_type(WAIT) == []


# ---------------------------------------------------------------- the wait, against the Stubber


def _configuration(state: str, **extra: Any) -> dict[str, Any]:
    return {"FunctionName": PROPS["function_name"], "Version": "1", "State": state, **extra}


@pytest.fixture
def stubbed() -> Iterator[Stubber]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber, mock.patch.object(published_version, "_lambda", return_value=client):
        with mock.patch("time.sleep"):  # the waiter's 5 s delay
            yield stubber
        stubber.assert_no_pending_responses()


EXPECTED = {"FunctionName": PROPS["function_name"], "Qualifier": "1"}


def test_a_pending_version_is_waited_for_until_active(stubbed: Stubber) -> None:
    for _ in range(3):
        stubbed.add_response("get_function_configuration", _configuration("Pending"), EXPECTED)
    stubbed.add_response("get_function_configuration", _configuration("Active"), EXPECTED)
    assert wait_until_active(AMBIENT, PROPS) == "Active"


def test_a_failed_version_fails_the_update_with_lambdas_reason(stubbed: Stubber) -> None:
    stubbed.add_response("get_function_configuration", _configuration("Pending"), EXPECTED)
    stubbed.add_response(
        "get_function_configuration",
        _configuration("Failed", StateReasonCode="InvalidRuntime", StateReason="init raised ImportError"),
        EXPECTED,
    )
    with pytest.raises(PublishedVersionError, match="failed to initialize") as caught:
        wait_until_active(AMBIENT, PROPS)
    assert "InvalidRuntime: init raised ImportError" in str(caught.value)
    assert "users-api-prod-us-east-1:1 (us-east-1)" in str(caught.value)


def test_a_version_pending_past_the_bound_fails_with_how_to_keep_waiting(stubbed: Stubber) -> None:
    clock = iter(range(0, 10_000, 7))
    with mock.patch.object(published_version.time, "monotonic", side_effect=lambda: float(next(clock))):
        stubbed.add_response("get_function_configuration", _configuration("Pending"), EXPECTED)
        with pytest.raises(PublishedVersionError, match=r"still Pending after 10 s") as caught:
            wait_until_active(AMBIENT, {**PROPS, "timeout_seconds": 10})
    assert "Run `pulumi up` again to keep waiting" in str(caught.value)


def test_a_call_lambda_refuses_is_an_error_naming_the_permission(stubbed: Stubber) -> None:
    stubbed.add_client_error("get_function_configuration", "AccessDeniedException", "not authorized", 403)
    with pytest.raises(PublishedVersionError, match="lambda:GetFunctionConfiguration"):
        wait_until_active(AMBIENT, PROPS)


def test_check_refuses_latest_and_a_bad_timeout() -> None:
    provider = PublishedVersionProvider()
    result = provider.check({}, {**PROPS, "version": "$LATEST", "timeout_seconds": 5})
    assert [f.property for f in result.failures] == ["version", "timeout_seconds"]
    assert "$LATEST is never published" in result.failures[0].reason


def test_a_new_version_is_a_new_wait_and_a_new_timeout_only_an_update() -> None:
    provider = PublishedVersionProvider()
    olds = {**PROPS, "timeout_seconds": 1800, "state": "Active"}
    assert provider.diff("x", olds, {**PROPS, "version": "2", "timeout_seconds": 1800}).replaces == [
        "version"
    ]
    changed = provider.diff("x", olds, {**PROPS, "timeout_seconds": 600})
    assert changed.changes and not changed.replaces
    assert not provider.diff("x", olds, {**PROPS, "timeout_seconds": 1800}).changes


# ---------------------------------------------------------------- through the provider server


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def test_the_provider_server_waits_reads_and_sees_a_deleted_function_as_gone(
    moto: MotoServer, tmp_path: Path
) -> None:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=moto.url,
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )

    role = client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    created = client("lambda").create_function(
        FunctionName=PROPS["function_name"],
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": _zip()},
        Publish=True,
    )
    props = {**PROPS, "version": created["Version"], "timeout_seconds": 60}
    server = ProviderServer(server_environment(moto.url), tmp_path / "server.log")
    try:
        server.configure({"dsql-users-api:primaryRegion": "us-east-1"})
        inputs = with_provider(PublishedVersionProvider(), props)
        checked = server.check(TYPE_TOKEN, "users-api-us-east-1-published-version", {}, inputs)
        assert list(checked.failures) == []
        made = server.create(TYPE_TOKEN, "users-api-us-east-1-published-version", checked.inputs)
        assert made.id == f"{PROPS['function_name']}:{props['version']} (us-east-1)"
        assert plain(made.properties)["state"] == "Active"
        outputs = plain(made.properties)
        read = server.read(TYPE_TOKEN, "users-api-us-east-1-published-version", made.id, outputs, props)
        assert read.id == made.id
        client("lambda").delete_function(FunctionName=PROPS["function_name"])
        gone = server.read(TYPE_TOKEN, "users-api-us-east-1-published-version", made.id, outputs, props)
        assert gone.id == ""
    finally:
        server.stop()
