"""The IAM role mapping provider, called directly (its methods never run under Pulumi's mocks).

DSQL cannot run here and PostgreSQL has no ``AWS IAM GRANT``, so the connection is a small stand-in
that behaves like DSQL does for these statements: it keeps ``sys.iam_pg_role_mappings``, refuses a
grant to a database role that does not exist and a revoke of a pair that is not mapped, and can answer
a statement with an optimistic-concurrency conflict (SQLSTATE 40001) a given number of times.
Everything else (what the provider sends, in which order, whether it closes the connection) is the
real code. The same provider runs against a real PostgreSQL through the engine's own server in
tests/test_engine_protocol.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from psycopg import errors
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.dynamic import dsql_admin, iam_grant
from components.dynamic.aws_session import AMBIENT, AwsAccess
from components.dynamic.iam_grant import IamGrantProvider, check_inputs
from migrations import occ

ROOT = Path(__file__).resolve().parents[1]
ROLE_ARN = "arn:aws:iam::123456789012:role/app-us-east-1-function-role-1a2b3c4"
INPUTS = {
    "role_arn": ROLE_ARN,
    "db_role": "users_api",
    "endpoint": "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws",
    "region": "us-east-1",
}
_GRANT = re.compile(r"^AWS IAM (GRANT|REVOKE) (\w+) (TO|FROM) '([^']+)'$")


class FakeDsql:
    """What the provider sees of a DSQL cluster: role mappings, database roles, statements, closes."""

    def __init__(self, roles: set[str] | None = None, conflicts: int = 0) -> None:
        self.roles = {"users_api"} if roles is None else roles
        self.mappings: set[tuple[str, str]] = set()
        self.statements: list[str] = []
        self.connections: list[tuple[str, str]] = []
        self.accesses: list[AwsAccess] = []
        self.conflicts_left = conflicts  # AWS IAM statements answered with 40001 before one succeeds
        self.open = 0

    def connect(
        self, endpoint: str, region: str, access: AwsAccess = AMBIENT, **overrides: Any
    ) -> FakeDsql.Connection:
        assert not overrides, "production code passes no test overrides"
        self.connections.append((endpoint, region))
        self.accesses.append(access)
        self.open += 1
        return FakeDsql.Connection(self)

    class Connection:
        def __init__(self, cluster: FakeDsql) -> None:
            self.cluster = cluster
            self.rows: list[tuple] = []

        def execute(self, statement: str, params: tuple = ()) -> FakeDsql.Connection:
            cluster = self.cluster
            cluster.statements.append(statement)
            if "sys.iam_pg_role_mappings" in statement:
                db_role, arn = params
                self.rows = [(1,)] if (db_role, arn) in cluster.mappings else []
                return self
            match = _GRANT.match(statement)
            assert match, f"unexpected statement {statement!r}"
            if cluster.conflicts_left:
                cluster.conflicts_left -= 1
                raise errors.SerializationFailure("change conflicts with another transaction (OC001)")
            verb, db_role, _, arn = match.groups()
            if db_role not in cluster.roles:
                raise RuntimeError(f'role "{db_role}" does not exist')
            if verb == "GRANT":
                cluster.mappings.add((db_role, arn))
            else:
                if (db_role, arn) not in cluster.mappings:
                    raise RuntimeError("no such IAM role mapping")
                cluster.mappings.remove((db_role, arn))
            return self

        def fetchone(self) -> tuple | None:
            return self.rows[0] if self.rows else None

        def close(self) -> None:
            self.cluster.open -= 1


@pytest.fixture
def dsql(monkeypatch: pytest.MonkeyPatch) -> FakeDsql:
    cluster = FakeDsql()
    monkeypatch.setattr(dsql_admin, "admin_connection", cluster.connect)
    return cluster


def _writes(cluster: FakeDsql) -> list[str]:
    return [s for s in cluster.statements if s.startswith("AWS IAM")]


def test_create_grants_the_database_role_to_the_function_role(dsql: FakeDsql) -> None:
    result = IamGrantProvider().create(dict(INPUTS))
    assert _writes(dsql) == [f"AWS IAM GRANT users_api TO '{ROLE_ARN}'"]
    assert dsql.mappings == {("users_api", ROLE_ARN)}
    assert dsql.connections == [(INPUTS["endpoint"], "us-east-1")]
    assert dsql.open == 0
    assert result.outs == INPUTS  # nothing secret, nothing more
    assert result.id == f"us-east-1/users_api/{ROLE_ARN}"


def test_create_again_finds_the_mapping_and_changes_nothing(dsql: FakeDsql) -> None:
    IamGrantProvider().create(dict(INPUTS))
    IamGrantProvider().create(dict(INPUTS))
    assert len(_writes(dsql)) == 1
    assert dsql.open == 0


def test_create_before_the_migration_fails_clearly_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = FakeDsql(roles=set())
    monkeypatch.setattr(dsql_admin, "admin_connection", cluster.connect)
    with pytest.raises(RuntimeError, match="must exist first: the mapping depends on the migration"):
        IamGrantProvider().create(dict(INPUTS))
    assert cluster.mappings == set()
    assert cluster.open == 0


def test_delete_revokes_and_is_safe_to_run_twice(dsql: FakeDsql) -> None:
    provider = IamGrantProvider()
    created = provider.create(dict(INPUTS))
    provider.delete(created.id, dict(INPUTS))
    provider.delete(created.id, dict(INPUTS))  # the fake raises on a second REVOKE: it is not sent
    assert _writes(dsql) == [
        f"AWS IAM GRANT users_api TO '{ROLE_ARN}'",
        f"AWS IAM REVOKE users_api FROM '{ROLE_ARN}'",
    ]
    assert dsql.mappings == set()
    assert dsql.open == 0


def test_delete_leaves_other_mappings_alone(dsql: FakeDsql) -> None:
    other = "arn:aws:iam::123456789012:role/someone-else"
    dsql.mappings.add(("users_api", other))
    provider = IamGrantProvider()
    provider.delete(provider.create(dict(INPUTS)).id, dict(INPUTS))
    assert dsql.mappings == {("users_api", other)}


@pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN], ids=["Unknown", "sentinel"])
def test_check_accepts_good_inputs_and_unknowns(unknown: Any) -> None:
    assert check_inputs(dict(INPUTS)) == []
    assert check_inputs({**INPUTS, "role_arn": unknown, "endpoint": unknown}) == []
    assert check_inputs({key: unknown for key in INPUTS}) == []
    with_path = "arn:aws:iam::123456789012:role/service-role/app"
    assert check_inputs({**INPUTS, "role_arn": with_path}) == []
    assert IamGrantProvider().check({}, dict(INPUTS)).failures == []


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"role_arn": "arn:aws:iam::123456789012:user/alice"}, "role_arn", "expected an IAM role ARN"),
        ({"role_arn": "arn:aws:iam::123456789012:role/x' OR '1"}, "role_arn", "expected an IAM role ARN"),
        ({"role_arn": "arn:aws:sts::123456789012:assumed-role/app/s"}, "role_arn", "expected an IAM role"),
        ({"db_role": "admin"}, "db_role", "reserved"),
        ({"db_role": "Users_API"}, "db_role", "lower-case database role"),
        ({"db_role": "users_api; DROP"}, "db_role", "lower-case database role"),
        ({"endpoint": "abc.dsql.us-east-2.on.aws"}, "endpoint", "is not in region us-east-1"),
        ({"endpoint": "db.example.com"}, "endpoint", "expected a DSQL endpoint"),
        ({"region": "mars-1"}, "region", "expected an AWS region"),
        ({"role_arn": None}, "role_arn", "expected an IAM role ARN"),
    ],
)
def test_check_rejects_bad_inputs(change: dict, field: str, reason: str) -> None:
    failures = IamGrantProvider().check({}, {**INPUTS, **change}).failures
    assert any(f.property == field and reason in f.reason for f in failures), failures


def test_diff_is_empty_for_the_same_inputs() -> None:
    diff = IamGrantProvider().diff("id", dict(INPUTS), dict(INPUTS))
    assert diff.changes is False and not diff.replaces


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("role_arn", "arn:aws:iam::123456789012:role/new"),
        ("endpoint", "zyxwvutsrqponmlkjihgfedcba.dsql.us-east-1.on.aws"),
        ("db_role", "users_api_v2"),
        ("region", "us-east-2"),
        ("role_arn", Unknown()),
        ("endpoint", rpc.UNKNOWN),
    ],
)
def test_diff_replaces_when_the_pair_or_the_cluster_changes(key: str, value: Any) -> None:
    diff = IamGrantProvider().diff("id", dict(INPUTS), {**INPUTS, key: value})
    assert diff.changes is True
    assert diff.replaces == [key]
    assert diff.delete_before_replace is False  # grant the new pair before revoking the old one


def test_provider_keeps_nothing_on_self() -> None:
    assert vars(IamGrantProvider()) == {}


def test_diff_plans_nothing_for_known_equal_values_beside_an_unknown_output() -> None:
    """The engine's olds carry outputs too; only the inputs decide, and equal known inputs never replace."""
    diff = IamGrantProvider().diff("id", {**INPUTS, "__provider": "p"}, {**INPUTS, "__provider": Unknown()})
    assert diff.changes is False and diff.replaces == []


# --- optimistic-concurrency conflicts: the two regions' grants run at the same time ---------------


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(occ.time, "sleep", waits.append)
    return waits


def test_a_grant_that_conflicts_is_retried_after_a_fresh_lookup(monkeypatch, no_sleep) -> None:
    cluster = FakeDsql(conflicts=2)
    monkeypatch.setattr(dsql_admin, "admin_connection", cluster.connect)

    IamGrantProvider().create(dict(INPUTS))

    assert cluster.mappings == {("users_api", ROLE_ARN)}
    assert len(_writes(cluster)) == 3  # two conflicts, then the grant that committed
    lookups = [s for s in cluster.statements if "sys.iam_pg_role_mappings" in s]
    assert len(lookups) == 3  # each retry looks again: a concurrent run may have granted meanwhile
    assert len(no_sleep) == 2 and all(0 <= wait <= occ.MAX_DELAY_SECONDS for wait in no_sleep)
    assert cluster.open == 0


def test_a_revoke_that_conflicts_is_retried(monkeypatch, no_sleep) -> None:
    cluster = FakeDsql()
    cluster.mappings.add(("users_api", ROLE_ARN))
    cluster.conflicts_left = 1
    monkeypatch.setattr(dsql_admin, "admin_connection", cluster.connect)

    IamGrantProvider().delete("id", dict(INPUTS))

    assert cluster.mappings == set()
    assert len(no_sleep) == 1


def test_conflicts_that_never_end_fail_after_a_bounded_number_of_attempts(monkeypatch, no_sleep) -> None:
    cluster = FakeDsql(conflicts=10**6)
    monkeypatch.setattr(dsql_admin, "admin_connection", cluster.connect)

    with pytest.raises(RuntimeError, match=r"AWS IAM GRANT users_api TO .* failed") as raised:
        IamGrantProvider().create(dict(INPUTS))

    assert isinstance(raised.value.__cause__, errors.SerializationFailure)
    assert len(_writes(cluster)) == occ.ATTEMPTS
    assert len(no_sleep) == occ.ATTEMPTS - 1
    assert cluster.mappings == set()
    assert cluster.open == 0


# --- read (pulumi refresh): the cluster from the control plane (moto), the mapping from the fake ---


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def live_inputs() -> dict:
    client = boto3.client("dsql", region_name="us-east-1")
    identifier = client.create_cluster(deletionProtectionEnabled=False)["identifier"]
    return {**INPUTS, "endpoint": f"{identifier}.dsql.us-east-1.on.aws"}


def test_read_finds_the_mapping_and_returns_the_state(aws, dsql: FakeDsql) -> None:
    inputs = live_inputs()
    created = IamGrantProvider().create(dict(inputs))

    read = IamGrantProvider().read(created.id, {**(created.outs or {}), "__provider": "p"})

    assert read.id == created.id
    assert read.outs == inputs
    assert dsql.open == 0


def test_read_of_a_revoked_mapping_reads_as_gone(aws, dsql: FakeDsql, monkeypatch) -> None:
    inputs = live_inputs()
    created = IamGrantProvider().create(dict(inputs))
    dsql.mappings.clear()  # someone ran AWS IAM REVOKE by hand
    logged: list[str] = []
    monkeypatch.setattr(iam_grant, "log_progress", logged.append)

    read = IamGrantProvider().read(created.id, created.outs)

    assert (read.id, read.outs) == ("", {})
    assert "reads as gone" in logged[0]


def test_read_of_a_deleted_cluster_reads_as_gone_without_connecting(aws, dsql: FakeDsql) -> None:
    inputs = live_inputs()
    created = IamGrantProvider().create(dict(inputs))
    identifier = inputs["endpoint"].split(".")[0]
    boto3.client("dsql", region_name="us-east-1").delete_cluster(identifier=identifier)
    connections = len(dsql.connections)

    read = IamGrantProvider().read(created.id, created.outs)

    assert read.id == ""
    assert len(dsql.connections) == connections


def test_read_by_an_identity_without_admin_access_keeps_the_state(aws, dsql: FakeDsql, monkeypatch) -> None:
    """The read-only previewer may not dsql:DbConnectAdmin, and every preview refreshes first."""
    created = IamGrantProvider().create(dict(live_inputs()))
    logged: list[str] = []
    monkeypatch.setattr(iam_grant, "log_progress", logged.append)

    def refused(*_: object) -> None:
        raise ConnectionError("cannot connect to DSQL cluster as admin: access denied")

    monkeypatch.setattr(iam_grant, "_connect", refused)
    read = IamGrantProvider().read(created.id, created.outs)

    assert (read.id, read.outs) == (created.id, created.outs)
    assert "the last known state is kept" in logged[0] and "previewer" in logged[0]


def test_read_without_the_programs_properties_says_why() -> None:
    with pytest.raises(ValueError, match="lack role_arn, db_role, endpoint, region"):
        IamGrantProvider().read("us-east-1/users_api/arn", {})


def test_the_configured_access_signs_every_connection(dsql: FakeDsql) -> None:
    provider = IamGrantProvider()
    provider.aws_access = AwsAccess("deploy", "arn:aws:iam::123456789012:role/deployer")
    provider.create(dict(INPUTS))
    provider.delete("id", dict(INPUTS))
    assert dsql.accesses == [provider.aws_access] * 2
