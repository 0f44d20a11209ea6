"""The IAM role mapping provider, called directly (its methods never run under Pulumi's mocks).

DSQL cannot run here and PostgreSQL has no ``AWS IAM GRANT``, so the connection is a small stand-in
that behaves like DSQL does for these statements: it keeps ``sys.iam_pg_role_mappings``, refuses a
grant to a database role that does not exist and a revoke of a pair that is not mapped. Everything
else (what the provider sends, in which order, whether it closes the connection) is the real code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from components.dynamic import dsql_admin
from components.dynamic.iam_grant import UNKNOWN, IamGrantProvider, check_inputs

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

    def __init__(self, roles: set[str] | None = None) -> None:
        self.roles = {"users_api"} if roles is None else roles
        self.mappings: set[tuple[str, str]] = set()
        self.statements: list[str] = []
        self.connections: list[tuple[str, str]] = []
        self.open = 0

    def connect(self, endpoint: str, region: str, **overrides: Any) -> FakeDsql.Connection:
        assert not overrides, "production code passes no test overrides"
        self.connections.append((endpoint, region))
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


def test_check_accepts_good_inputs_and_unknowns() -> None:
    assert check_inputs(dict(INPUTS)) == []
    assert check_inputs({**INPUTS, "role_arn": UNKNOWN, "endpoint": UNKNOWN}) == []
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
        ("role_arn", UNKNOWN),
    ],
)
def test_diff_replaces_when_the_pair_or_the_cluster_changes(key: str, value: str) -> None:
    diff = IamGrantProvider().diff("id", dict(INPUTS), {**INPUTS, key: value})
    assert diff.changes is True
    assert diff.replaces == [key]
    assert diff.delete_before_replace is False  # grant the new pair before revoking the old one


def test_provider_keeps_nothing_on_self() -> None:
    assert vars(IamGrantProvider()) == {}
