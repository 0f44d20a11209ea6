"""The three dynamic providers driven the engine's way: Pulumi's own provider server, over gRPC.

One ``python -m pulumi.dynamic`` process for the module, started from the project root as the engine
starts it, loads the providers from ``__provider`` (serialized exactly as the program serializes them)
and is spoken to with the SDK's gRPC stubs and engine-shaped ``Struct`` properties. AWS is a separate
``moto_server`` process (``AWS_ENDPOINT_URL``, fake credentials that still sign real tokens); the
admin connections reach a fresh PostgreSQL database that answers DSQL's dialect, through a test-only
startup hook (tests/engine_hooks/sitecustomize.py) that also records every call.

The tests follow one stack's life in order: configure, a first preview (unknown inputs), `up`
(check, create), a second run (no diff), previews with unknowns and a peering update, updates,
refresh (read), then delete and refresh of what is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
import psycopg
import pytest
from pulumi.runtime.proto import provider_pb2

from components.dynamic.iam_grant import IamGrantProvider
from components.dynamic.migration import SchemaMigrationProvider, migration_inputs
from components.dynamic.peering import ClusterPeeringProvider
from local.postgres import scratch_database
from migrations.runner import Migration, load_migrations
from tests.aws_calls import AwsCall
from tests.iam_policy import allows, deployer_context, deployer_policy, required_permissions
from tests.provider_server import (
    HOOKS,
    UNKNOWN,
    MotoServer,
    ProviderServer,
    plain,
    server_environment,
    with_provider,
)

PEERING, MIGRATION, GRANT = (
    "dynamic/dsql:ClusterPeering",
    "dynamic/dsql:SchemaMigration",
    "dynamic/dsql:IamRoleGrant",
)
PRIMARY, SECONDARY, WITNESS = "us-east-1", "us-east-2", "us-west-2"
ROLE_ARN = "arn:aws:iam::123456789012:role/users-api-us-east-1-function-role-abc1234"
FILES = migration_inputs(load_migrations())
# What the engine sends in Configure: the whole stack config, namespaced (here without the access keys).
STACK_CONFIG = {"dsql-users-api:primaryRegion": PRIMARY, "dsql-users-api:secondaryRegion": SECONDARY}
DIFF_NONE, DIFF_SOME = provider_pb2.DiffResponse.DIFF_NONE, provider_pb2.DiffResponse.DIFF_SOME


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """An empty database: the migration resource creates the schema."""
    with scratch_database(postgres_url, "engine") as url:
        yield url


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine") / "record.jsonl"


@pytest.fixture(scope="module")
def server(
    moto: MotoServer, database: str, record_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProviderServer]:
    env = server_environment(
        moto.url,
        PYTHONPATH=str(HOOKS),
        DSQL_TEST_DATABASE_URL=database,
        DSQL_TEST_RECORD_FILE=str(record_file),
    )
    provider_server = ProviderServer(env, tmp_path_factory.mktemp("server") / "server.log")
    yield provider_server
    provider_server.stop()


@pytest.fixture(scope="module")
def dsql(moto: MotoServer) -> Any:
    """The test's own view of moto's DSQL (what a console would show)."""

    def client(region: str) -> Any:
        return boto3.client(
            "dsql",
            region_name=region,
            endpoint_url=moto.url,
            aws_access_key_id="AKIATESTSETUP0000001",
            aws_secret_access_key="setup",
        )

    return client


@pytest.fixture(scope="module")
def clusters(dsql: Any) -> dict[str, dict[str, str]]:
    """Two multi-region clusters as the native aws.dsql.Cluster resources leave them."""
    made = {}
    for side, region in (("primary", PRIMARY), ("secondary", SECONDARY)):
        cluster = dsql(region).create_cluster(
            deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": WITNESS}
        )
        made[side] = {"identifier": cluster["identifier"], "arn": cluster["arn"], "region": region}
    return made


def peering_inputs(clusters: dict[str, dict[str, str]], **changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"witness_region": WITNESS, "timeout_seconds": 60, "poll_interval_seconds": 0.05}
    for side, cluster in clusters.items():
        props.update({f"{side}_{part}": value for part, value in cluster.items()})
    return with_provider(ClusterPeeringProvider(), {**props, **changes})


def endpoint_of(cluster: dict[str, str]) -> str:
    return f"{cluster['identifier']}.dsql.{cluster['region']}.on.aws"


def migration_inputs_for(clusters: dict[str, dict[str, str]], **changes: Any) -> dict[str, Any]:
    props = {"endpoint": endpoint_of(clusters["primary"]), "region": PRIMARY, "migrations": FILES}
    return with_provider(SchemaMigrationProvider(), {**props, **changes})


def grant_inputs(clusters: dict[str, dict[str, str]], **changes: Any) -> dict[str, Any]:
    props = {
        "role_arn": ROLE_ARN,
        "db_role": "users_api",
        "endpoint": endpoint_of(clusters["primary"]),
        "region": PRIMARY,
    }
    return with_provider(IamGrantProvider(), {**props, **changes})


def failures(response: Any) -> list[tuple[str, str]]:
    return [(failure.property, failure.reason) for failure in response.failures]


def records(record_file: Path, kind: str) -> list[dict[str, Any]]:
    lines = record_file.read_text().splitlines() if record_file.exists() else []
    return [event for event in map(json.loads, lines) if event["kind"] == kind]


class Deployed(dict):
    """type token -> {"name", "inputs" (checked), "id", "outputs"} of the resources `up` created."""


@pytest.fixture(scope="module")
def deployed(server: ProviderServer, clusters: dict[str, dict[str, str]]) -> Deployed:
    """`pulumi up` of a new stack: Configure, then Check and Create in dependency order."""
    server.configure(STACK_CONFIG)
    stack = Deployed()
    for type_token, name, inputs in (
        (PEERING, "users-db-peering", peering_inputs(clusters)),
        (MIGRATION, "users-schema", migration_inputs_for(clusters)),
        (GRANT, "users-api-us-east-1-db-role-grant", grant_inputs(clusters)),
    ):
        checked = server.check(type_token, name, {}, inputs)
        assert failures(checked) == []
        created = server.create(type_token, name, checked.inputs)
        stack[type_token] = {
            "name": name,
            "inputs": plain(checked.inputs),
            "id": created.id,
            "outputs": plain(created.properties),
        }
    return stack


# --- configure and a first preview ------------------------------------------------------------------


def test_configure_is_answered_as_the_engine_expects(server: ProviderServer) -> None:
    response = server.configure(STACK_CONFIG)
    assert response.acceptSecrets is False  # so the engine strips the secret wrapper of __provider


def test_a_first_preview_checks_unknown_inputs_without_failing(
    server: ProviderServer, clusters: dict[str, dict[str, str]]
) -> None:
    """A new stack: no cluster exists, so every identifier, ARN and endpoint is unknown in Check."""
    server.configure(STACK_CONFIG)
    previews = {
        PEERING: peering_inputs(
            clusters,
            primary_identifier=UNKNOWN,
            primary_arn=UNKNOWN,
            secondary_identifier=UNKNOWN,
            secondary_arn=UNKNOWN,
        ),
        MIGRATION: migration_inputs_for(clusters, endpoint=UNKNOWN),
        GRANT: grant_inputs(clusters, role_arn=UNKNOWN, endpoint=UNKNOWN),
    }
    for type_token, news in previews.items():
        response = server.check(type_token, "preview", {}, news)
        assert failures(response) == [], type_token
        returned = plain(response.inputs)
        for key, value in news.items():
            if value == UNKNOWN:
                assert returned[key] == UNKNOWN, (type_token, key)  # still unknown for the engine


def test_check_failures_reach_the_engine_with_property_and_reason(
    server: ProviderServer, clusters: dict[str, dict[str, str]]
) -> None:
    response = server.check(PEERING, "bad", {}, peering_inputs(clusters, witness_region=PRIMARY))
    assert (
        "witness_region",
        f"witness_region {PRIMARY} is also a cluster region; the witness must be a third region",
    ) in failures(response)
    response = server.check(GRANT, "bad", {}, grant_inputs(clusters, db_role="admin"))
    assert any(prop == "db_role" and "reserved" in reason for prop, reason in failures(response))


# --- pulumi up: create --------------------------------------------------------------------------------


def test_up_peers_the_pair_applies_the_schema_and_maps_the_role(
    deployed: Deployed, clusters: dict[str, dict[str, str]], dsql: Any, database: str, record_file: Path
) -> None:
    peering = deployed[PEERING]
    assert peering["id"] == f"{clusters['primary']['identifier']}+{clusters['secondary']['identifier']}"
    assert peering["outputs"]["primary_status"] == peering["outputs"]["secondary_status"] == "ACTIVE"
    for side, peer in (("primary", "secondary"), ("secondary", "primary")):
        cluster = dsql(clusters[side]["region"]).get_cluster(identifier=clusters[side]["identifier"])
        assert cluster["multiRegionProperties"] == {
            "witnessRegion": WITNESS,
            "clusters": [clusters[peer]["arn"]],
        }

    schema = deployed[MIGRATION]
    assert schema["outputs"]["applied_now"] == [item["name"] for item in FILES]
    assert schema["outputs"]["schema_version"] == FILES[-1]["name"]
    grant = deployed[GRANT]
    assert grant["id"] == f"{PRIMARY}/users_api/{ROLE_ARN}"
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(FILES),)
        mapped = conn.execute("SELECT pg_role_name, arn FROM sys.iam_pg_role_mappings").fetchall()
        assert mapped == [("users_api", ROLE_ARN)]

    # Through the engine's server the provider still speaks DSQL's dialect to the real endpoint.
    statements = [event["statement"] for event in records(record_file, "sql")]
    assert any(s.startswith("CREATE INDEX ASYNC") for s in statements)
    assert f"AWS IAM GRANT users_api TO '{ROLE_ARN}'" in statements
    endpoints = {(event["endpoint"], event["region"]) for event in records(record_file, "connect")}
    assert endpoints == {(endpoint_of(clusters["primary"]), PRIMARY)}
    tokens = [event for event in records(record_file, "aws") if event["operation"] == "DbConnectAdmin"]
    assert tokens and all(t["params"]["Hostname"] == endpoint_of(clusters["primary"]) for t in tokens)


def test_outputs_hold_no_token_or_credential(deployed: Deployed) -> None:
    text = json.dumps([resource["outputs"] for resource in deployed.values()])
    for secret in ("X-Amz-Signature", "AKIAENGINETESTS", "engine-test-secret", "password"):
        assert secret not in text


# --- a second run and previews ------------------------------------------------------------------------


def test_a_second_run_with_the_same_inputs_diffs_to_no_change_for_every_resource(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]]
) -> None:
    again = {
        PEERING: peering_inputs(clusters),
        MIGRATION: migration_inputs_for(clusters),
        GRANT: grant_inputs(clusters),
    }
    for type_token, news in again.items():
        state = deployed[type_token]
        checked = server.check(type_token, state["name"], state["inputs"], news)
        assert failures(checked) == []
        diff = server.diff(
            type_token, state["name"], state["id"], state["outputs"], checked.inputs, state["inputs"]
        )
        assert (diff.changes, list(diff.replaces)) == (DIFF_NONE, []), type_token


def test_a_preview_plans_a_replacement_only_for_inputs_that_are_unknown(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]]
) -> None:
    """A cluster being replaced makes its ARN and identifier unknown: those keys, and only those."""
    state = deployed[PEERING]
    news = peering_inputs(clusters, secondary_arn=UNKNOWN, secondary_identifier=UNKNOWN)
    diff = server.diff(PEERING, state["name"], state["id"], state["outputs"], news, state["inputs"])
    assert diff.changes == DIFF_SOME
    assert sorted(diff.replaces) == ["secondary_arn", "secondary_identifier"]
    assert diff.deleteBeforeReplace is True

    state = deployed[GRANT]
    news = grant_inputs(clusters, role_arn=UNKNOWN)
    diff = server.diff(GRANT, state["name"], state["id"], state["outputs"], news, state["inputs"])
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, ["role_arn"])


def test_a_peering_update_preview_replaces_nothing_downstream(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]]
) -> None:
    """A new peeringTimeoutSeconds is an in-place update of the peering. In that preview the peering's
    outputs are unknown, but the endpoints come from the cluster identifiers alone, so the migration
    and the grants see the same known inputs and plan nothing."""
    state = deployed[PEERING]
    news = peering_inputs(clusters, timeout_seconds=120)
    checked = server.check(PEERING, state["name"], state["inputs"], news)
    diff = server.diff(PEERING, state["name"], state["id"], state["outputs"], checked.inputs, state["inputs"])
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])
    for type_token, news in ((MIGRATION, migration_inputs_for(clusters)), (GRANT, grant_inputs(clusters))):
        downstream = deployed[type_token]
        diff = server.diff(
            type_token,
            downstream["name"],
            downstream["id"],
            downstream["outputs"],
            news,
            downstream["inputs"],
        )
        assert (diff.changes, list(diff.replaces)) == (DIFF_NONE, []), type_token

    updated = server.update(
        PEERING, state["name"], state["id"], state["outputs"], checked.inputs, state["inputs"]
    )
    outputs = plain(updated.properties)
    assert outputs["timeout_seconds"] == 120
    assert outputs["primary_status"] == "ACTIVE"


def test_an_edited_applied_file_fails_the_preview_with_the_files_name(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]]
) -> None:
    first = FILES[0]
    edited = [migration_inputs([Migration(first["name"], first["sql"] + "-- edited\n")])[0], *FILES[1:]]
    state = deployed[MIGRATION]
    with pytest.raises(grpc.RpcError) as raised:
        server.diff(
            MIGRATION,
            state["name"],
            state["id"],
            state["outputs"],
            migration_inputs_for(clusters, migrations=edited),
            state["inputs"],
        )
    assert f"{first['name']} was edited after it was applied" in raised.value.details()


# --- updates ------------------------------------------------------------------------------------------


def test_an_added_migration_file_is_an_update_that_applies_only_it(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]], database: str
) -> None:
    extra = migration_inputs(
        [Migration("0099_create_audit.sql", "CREATE TABLE IF NOT EXISTS audit (id UUID PRIMARY KEY);\n")]
    )
    news = migration_inputs_for(clusters, migrations=[*FILES, *extra])
    state = deployed[MIGRATION]
    checked = server.check(MIGRATION, state["name"], state["inputs"], news)
    assert failures(checked) == []
    diff = server.diff(
        MIGRATION, state["name"], state["id"], state["outputs"], checked.inputs, state["inputs"]
    )
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])

    updated = plain(
        server.update(
            MIGRATION, state["name"], state["id"], state["outputs"], checked.inputs, state["inputs"]
        ).properties
    )

    assert updated["applied_now"] == ["0099_create_audit.sql"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('audit') IS NOT NULL").fetchone() == (True,)
    state.update(inputs=plain(checked.inputs), outputs=updated)


def test_the_grant_update_keeps_the_mapping(
    server: ProviderServer, deployed: Deployed, database: str
) -> None:
    """Every grant input forces a replacement, so the engine never plans an update; if it ever calls
    one, the mapping is made sure of, not lost."""
    state = deployed[GRANT]
    updated = server.update(
        GRANT, state["name"], state["id"], state["outputs"], state["inputs"], state["inputs"]
    )
    assert {k: v for k, v in plain(updated.properties).items() if k != "__provider"} == {
        k: v for k, v in state["outputs"].items() if k != "__provider"
    }
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM sys.iam_pg_role_mappings").fetchone() == (1,)


# --- pulumi refresh of live resources -----------------------------------------------------------------


def test_refresh_reads_every_live_resource_back(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]]
) -> None:
    for type_token, state in deployed.items():
        read = server.read(type_token, state["name"], state["id"], state["outputs"], state["inputs"])
        assert read.id == state["id"], type_token
        outputs = plain(read.properties)
        assert outputs["__provider"] == state["outputs"]["__provider"]
    schema = plain(
        server.read(
            MIGRATION, "users-schema", deployed[MIGRATION]["id"], deployed[MIGRATION]["outputs"], {}
        ).properties
    )
    assert [item["name"] for item in schema["migrations"]] == [
        *(f["name"] for f in FILES),
        "0099_create_audit.sql",
    ]


def test_a_pair_unpeered_out_of_band_reads_as_drift_and_the_next_up_peers_it_again(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]], dsql: Any
) -> None:
    """Someone removes the peer on one side (console, CLI, a stale UpdateCluster): the refresh that every
    preview and up runs first (Pulumi.yaml `options: refresh: always`) reads the peering as gone, and
    the `up` that follows creates it again, which peers the pair again."""
    state = deployed[PEERING]
    primary, secondary = clusters["primary"], clusters["secondary"]
    dsql(PRIMARY).update_cluster(
        identifier=primary["identifier"], multiRegionProperties={"witnessRegion": WITNESS, "clusters": []}
    )
    peers = dsql(PRIMARY).get_cluster(identifier=primary["identifier"])["multiRegionProperties"]
    assert secondary["arn"] not in (peers.get("clusters") or []), (
        "moto kept the peer: the test proves nothing"
    )

    refreshed = server.read(PEERING, state["name"], state["id"], state["outputs"], state["inputs"])
    assert refreshed.id == ""  # drift: the engine drops it from the state and plans a create

    checked = server.check(PEERING, state["name"], {}, peering_inputs(clusters))
    assert failures(checked) == []
    created = server.create(PEERING, state["name"], checked.inputs)
    assert created.id == state["id"]
    for cluster, peer in ((primary, secondary), (secondary, primary)):
        properties = dsql(cluster["region"]).get_cluster(identifier=cluster["identifier"])[
            "multiRegionProperties"
        ]
        assert properties["clusters"] == [peer["arn"]] or peer["arn"] in properties["clusters"]
    again = server.read(PEERING, state["name"], created.id, plain(created.properties), state["inputs"])
    assert again.id == state["id"]


# --- delete, and refresh of what is gone --------------------------------------------------------------


def test_delete_revokes_the_grant_and_a_refresh_then_reads_it_as_gone(
    server: ProviderServer, deployed: Deployed, database: str
) -> None:
    state = deployed[GRANT]
    server.delete(GRANT, state["name"], state["id"], state["outputs"])
    server.delete(GRANT, state["name"], state["id"], state["outputs"])  # safe twice
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM sys.iam_pg_role_mappings").fetchone() == (0,)
    read = server.read(GRANT, state["name"], state["id"], state["outputs"], state["inputs"])
    assert read.id == ""


def test_delete_of_the_migration_drops_nothing_and_a_lost_schema_reads_as_gone(
    server: ProviderServer, deployed: Deployed, database: str
) -> None:
    state = deployed[MIGRATION]
    server.delete(MIGRATION, state["name"], state["id"], state["outputs"])
    with psycopg.connect(database, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(FILES) + 1,)
        conn.execute("DROP TABLE schema_migrations")
    assert server.read(MIGRATION, state["name"], state["id"], state["outputs"], state["inputs"]).id == ""


def test_delete_of_the_peering_touches_no_cluster_and_deleted_clusters_read_as_gone(
    server: ProviderServer, deployed: Deployed, clusters: dict[str, dict[str, str]], dsql: Any
) -> None:
    state = deployed[PEERING]
    server.delete(PEERING, state["name"], state["id"], state["outputs"])
    for cluster in clusters.values():
        assert dsql(cluster["region"]).get_cluster(identifier=cluster["identifier"])["status"] == "ACTIVE"
        dsql(cluster["region"]).delete_cluster(identifier=cluster["identifier"])
    assert server.read(PEERING, state["name"], state["id"], state["outputs"], state["inputs"]).id == ""
    schema = deployed[MIGRATION]  # its cluster is gone too: gone without a connection attempt
    assert server.read(MIGRATION, schema["name"], schema["id"], schema["outputs"], schema["inputs"]).id == ""


def test_every_aws_call_used_the_ambient_identity_of_the_process(record_file: Path) -> None:
    """No access setting was configured: every call and token is signed by the environment's key."""
    calls = records(record_file, "aws")
    assert {call["operation"] for call in calls} >= {"GetCluster", "UpdateCluster", "DbConnectAdmin"}
    assert {call["access_key_id"] for call in calls} == {"AKIAENGINETESTS00001"}


def test_every_call_through_the_engine_is_allowed_by_the_deployer_policy(record_file: Path) -> None:
    policy = deployer_policy()
    calls = [AwsCall.from_json(event) for event in records(record_file, "aws")]
    denied = [
        (call.name, action, resource)
        for call in calls
        for action, resource in required_permissions(call, "123456789012")
        if not allows(policy, action, resource, deployer_context("123456789012"))
    ]
    assert calls and denied == []
