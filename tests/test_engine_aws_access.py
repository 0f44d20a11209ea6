"""The stack's AWS access setting reaches the dynamic providers through the engine's Configure call.

The SDK's provider server (``python -m pulumi.dynamic``, from the project root) receives the stack
config in Configure, as the engine sends it (every key, namespaced), and hands it to each provider's
``configure`` when it first loads that provider. A profile from a temporary AWS config file supplies
the source credentials; the role is assumed from them at moto's STS (a ``moto_server`` process). The
test-only startup hook records which key signed every AWS call and every IAM auth token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import pytest

from components.dynamic.aws_session import ASSUME_ROLE_KEY, PROFILE_KEY, ROLE_SESSION_NAME
from components.dynamic.migration import SchemaMigrationProvider, migration_inputs
from components.dynamic.peering import ClusterPeeringProvider
from local.postgres import scratch_database
from migrations.runner import load_migrations
from tests.provider_server import HOOKS, MotoServer, ProviderServer, server_environment, with_provider

ROLE = "arn:aws:iam::123456789012:role/users-api-deployer"
ENV_KEY, PROFILE_KEY_ID = "AKIAENGINEENVIRON001", "AKIAENGINEPROFILE001"
PRIMARY, SECONDARY, WITNESS = "us-east-1", "us-east-2", "us-west-2"
STACK_CONFIG = {"dsql-users-api:primaryRegion": PRIMARY, "dsql-users-api:secondaryRegion": SECONDARY}


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("access") / "record.jsonl"


@pytest.fixture(scope="module")
def server(
    moto: MotoServer, postgres_url: str, record_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProviderServer]:
    folder = tmp_path_factory.mktemp("aws-config")
    (folder / "config").write_text(
        f"[profile deploy]\naws_access_key_id = {PROFILE_KEY_ID}\naws_secret_access_key = profile-secret\n"
    )
    with scratch_database(postgres_url, "access") as database:
        env = server_environment(
            moto.url,
            AWS_ACCESS_KEY_ID=ENV_KEY,  # present, but the configured profile must win
            AWS_CONFIG_FILE=str(folder / "config"),
            PYTHONPATH=str(HOOKS),
            DSQL_TEST_DATABASE_URL=database,
            DSQL_TEST_RECORD_FILE=str(record_file),
        )
        provider_server = ProviderServer(env, folder / "server.log")
        yield provider_server
        provider_server.stop()


@pytest.fixture(scope="module")
def pair(moto: MotoServer) -> dict[str, Any]:
    props: dict[str, Any] = {"witness_region": WITNESS, "timeout_seconds": 60, "poll_interval_seconds": 0.05}
    for side, region in (("primary", PRIMARY), ("secondary", SECONDARY)):
        client = boto3.client(
            "dsql",
            region_name=region,
            endpoint_url=moto.url,
            aws_access_key_id="AKIATESTSETUP0000001",
            aws_secret_access_key="setup",
        )
        cluster = client.create_cluster(
            deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": WITNESS}
        )
        props.update(
            {
                f"{side}_identifier": cluster["identifier"],
                f"{side}_arn": cluster["arn"],
                f"{side}_region": region,
            }
        )
    return props


def aws_calls(record_file: Path) -> list[dict[str, Any]]:
    lines = record_file.read_text().splitlines() if record_file.exists() else []
    return [event for event in map(json.loads, lines) if event["kind"] == "aws"]


def test_an_engine_that_sends_no_stack_config_is_refused(server: ProviderServer, pair: dict) -> None:
    """Guessing the ambient identity could deploy the dynamic resources into another account."""
    server.configure({})
    with pytest.raises(grpc.RpcError) as raised:
        server.check("dynamic/dsql:ClusterPeering", "p", {}, with_provider(ClusterPeeringProvider(), pair))
    assert "passed no stack config to the dynamic providers" in raised.value.details()


def test_a_bad_role_arn_fails_the_first_request_naming_the_key(server: ProviderServer, pair: dict) -> None:
    server.configure({**STACK_CONFIG, ASSUME_ROLE_KEY: "arn:aws:iam::123456789012:user/alice"})
    with pytest.raises(grpc.RpcError) as raised:
        server.check("dynamic/dsql:ClusterPeering", "p", {}, with_provider(ClusterPeeringProvider(), pair))
    assert f"{ASSUME_ROLE_KEY} is 'arn:aws:iam::123456789012:user/alice', which is not an IAM role ARN" in (
        raised.value.details()
    )


def test_the_profile_and_the_role_sign_every_call_and_token(
    server: ProviderServer, pair: dict, record_file: Path
) -> None:
    # A provider that failed to configure is not kept, so the corrected config applies to it.
    server.configure({**STACK_CONFIG, PROFILE_KEY: "deploy", ASSUME_ROLE_KEY: ROLE, "aws:region": PRIMARY})
    peering = with_provider(ClusterPeeringProvider(), pair)
    checked = server.check("dynamic/dsql:ClusterPeering", "p", {}, peering)
    server.create("dynamic/dsql:ClusterPeering", "p", checked.inputs)
    schema = with_provider(
        SchemaMigrationProvider(),
        {
            "endpoint": f"{pair['primary_identifier']}.dsql.{PRIMARY}.on.aws",
            "region": PRIMARY,
            "migrations": migration_inputs(load_migrations()),
        },
    )
    server.create(
        "dynamic/dsql:SchemaMigration",
        "s",
        server.check("dynamic/dsql:SchemaMigration", "s", {}, schema).inputs,
    )

    calls = aws_calls(record_file)
    assumed = [c for c in calls if (c["service"], c["operation"]) == ("sts", "AssumeRole")]
    assert assumed and all(c["access_key_id"] == PROFILE_KEY_ID for c in assumed)  # from the profile
    assert {(c["params"]["RoleArn"], c["params"]["RoleSessionName"]) for c in assumed} == {
        (ROLE, ROLE_SESSION_NAME)
    }
    signed_as_role = [c for c in calls if c["service"] == "dsql"]
    assert {c["operation"] for c in signed_as_role} >= {"GetCluster", "UpdateCluster", "DbConnectAdmin"}
    for call in signed_as_role:  # the role's temporary keys: never the environment's or the profile's
        assert call["access_key_id"].startswith("ASIA"), call
