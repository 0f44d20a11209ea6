"""The schema migration provider called directly, against a real PostgreSQL that answers DSQL's dialect
(tests/dsql_on_postgres.py), and the admin connection helper it shares with the IAM grants.

Nothing here switches the provider to the PostgreSQL dialect: the statements recorded on the way to
the database are exactly what the deployed provider sends to DSQL (``CREATE INDEX ASYNC``,
``sys.wait_for_job``, ``AWS IAM GRANT``), which is what ``test_what_reaches_dsql_is_dsqls_dialect``
pins down. The cluster itself (for ``read``) is moto's in-process DSQL control plane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from moto.dsql.models import dsql_backends
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.dynamic import dsql_admin, migration
from components.dynamic.aws_session import AMBIENT, AwsAccess
from components.dynamic.dsql_admin import admin_connection, connection_overrides_from_url
from components.dynamic.migration import SchemaMigrationProvider, migration_inputs
from migrations.runner import Migration, MigrationError, load_migrations
from tests.dsql_on_postgres import Recorder, route_admin_connections

REGION = "us-east-1"
ACCOUNT = "123456789012"
FILES = migration_inputs(load_migrations())
NAMES = [item["name"] for item in FILES]
EXTRA = Migration("0099_create_audit.sql", "CREATE TABLE IF NOT EXISTS audit (id UUID PRIMARY KEY);\n")


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token signing is local: fake credentials are enough and nothing reaches AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every admin token generated, with its endpoint and region (the real signer runs)."""
    made: list[tuple[str, str, str]] = []
    real = dsql_admin.admin_token

    def recording(endpoint: str, region: str, access: AwsAccess = AMBIENT) -> str:
        token = real(endpoint, region, access)
        made.append((endpoint, region, token))
        return token

    monkeypatch.setattr(dsql_admin, "admin_token", recording)
    return made


@pytest.fixture
def sent(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every admin connection reaches the fresh test database; every statement is recorded as sent."""
    recorder = Recorder()
    routed = route_admin_connections(dsql_admin.admin_connection, database_url, recorder)
    monkeypatch.setattr(dsql_admin, "admin_connection", routed)
    return recorder


@pytest.fixture
def local_cluster(database_url: str, sent: Recorder, tokens) -> Iterator[dict]:
    """A cluster in moto's DSQL whose endpoint's connections land on the fresh local database."""
    with mock_aws():
        cluster = boto3.client("dsql", region_name=REGION).create_cluster(deletionProtectionEnabled=False)
        endpoint = f"{cluster['identifier']}.dsql.{REGION}.on.aws"
        yield {
            "endpoint": endpoint,
            "identifier": cluster["identifier"],
            "region": REGION,
            "migrations": FILES,
            "url": database_url,
        }


def props_of(cluster: dict, files: list[dict] | None = None) -> dict:
    props = {"endpoint": cluster["endpoint"], "region": cluster["region"], "migrations": files or FILES}
    result = SchemaMigrationProvider().check({}, props)
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def recorded(url: str) -> list[tuple[str, object]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name").fetchall()


def test_create_applies_the_real_migrations(local_cluster, tokens) -> None:
    result = SchemaMigrationProvider().create(props_of(local_cluster))

    assert result.outs["applied_now"] == NAMES
    assert result.outs["schema_version"] == NAMES[-1]
    assert result.id == f"schema@{local_cluster['endpoint']}"
    assert [name for name, _ in recorded(local_cluster["url"])] == NAMES
    with psycopg.connect(local_cluster["url"]) as conn:
        assert conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'users_api'").fetchone() == (1,)
    (endpoint, region, token) = tokens[0]
    assert (endpoint, region) == (local_cluster["endpoint"], REGION)
    assert token.startswith(f"{local_cluster['endpoint']}/?Action=DbConnectAdmin")
    assert token not in repr(result.outs)  # the secret never reaches the state


def test_what_reaches_dsql_is_dsqls_dialect(local_cluster, sent: Recorder) -> None:
    """The deployed provider must never send the PostgreSQL stand-in: ASYNC kept, AWS IAM GRANT sent."""
    grant = Migration(
        "0099_map_auditor.sql",
        "CREATE ROLE auditor WITH LOGIN;\nAWS IAM GRANT auditor TO 'arn:aws:iam::123456789012:role/auditor';\n",
    )
    SchemaMigrationProvider().create(props_of(local_cluster, [*FILES, *migration_inputs([grant])]))

    statements = sent.sql()
    index = "CREATE INDEX ASYNC IF NOT EXISTS users_created_at_id_idx ON users (created_at, id)"
    assert index in statements
    assert statements[statements.index(index) + 1] == "SELECT sys.wait_for_job(%s)"
    assert "AWS IAM GRANT auditor TO 'arn:aws:iam::123456789012:role/auditor'" in statements
    assert not any(s.startswith("CREATE INDEX users") or s.startswith("CREATE INDEX IF") for s in statements)
    assert sent.connections == [(local_cluster["endpoint"], REGION)]


def test_second_create_and_update_without_new_files_do_nothing(local_cluster) -> None:
    props = props_of(local_cluster)
    first = SchemaMigrationProvider().create(props)
    before = recorded(local_cluster["url"])

    again = SchemaMigrationProvider().create(props)
    updated = SchemaMigrationProvider().update("id", first.outs, props)

    assert again.outs["applied_now"] == updated.outs["applied_now"] == []
    assert recorded(local_cluster["url"]) == before  # same rows, same applied_at


def test_update_applies_only_an_added_file(local_cluster) -> None:
    first = SchemaMigrationProvider().create(props_of(local_cluster))
    news = props_of(local_cluster, [*FILES, *migration_inputs([EXTRA])])

    assert SchemaMigrationProvider().diff("id", first.outs, news).changes is True
    updated = SchemaMigrationProvider().update("id", first.outs, news)

    assert updated.outs["applied_now"] == [EXTRA.name]
    assert updated.outs["schema_version"] == EXTRA.name
    assert [name for name, _ in recorded(local_cluster["url"])] == [*NAMES, EXTRA.name]


def test_delete_never_drops_anything_and_is_safe_twice(local_cluster, monkeypatch) -> None:
    outs = SchemaMigrationProvider().create(props_of(local_cluster)).outs
    logged: list[str] = []
    monkeypatch.setattr(migration, "log_progress", logged.append)

    SchemaMigrationProvider().delete("id", outs)
    SchemaMigrationProvider().delete("id", outs)

    assert "nothing was dropped" in logged[0]
    assert [name for name, _ in recorded(local_cluster["url"])] == NAMES
    with psycopg.connect(local_cluster["url"]) as conn:
        assert conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone() == (True,)


def test_a_failing_file_fails_create_with_the_runners_message(local_cluster) -> None:
    broken = Migration("0099_broken.sql", "CREATE TABLE users_copy (LIKE no_such_table);\n")
    with pytest.raises(MigrationError, match=r"0099_broken.sql:1: statement failed"):
        SchemaMigrationProvider().create(props_of(local_cluster, [*FILES, *migration_inputs([broken])]))
    assert [name for name, _ in recorded(local_cluster["url"])] == NAMES  # earlier files kept


# --- diff and check (no database) -----------------------------------------------------------------

OLD = {"endpoint": "a.dsql.us-east-1.on.aws", "region": REGION, "migrations": FILES, "applied_now": []}


def edited(name: str, sql: str) -> list[dict]:
    return [migration_inputs([Migration(name, sql)])[0] if item["name"] == name else item for item in FILES]


def test_diff_is_empty_when_no_file_changed() -> None:
    diff = SchemaMigrationProvider().diff("id", OLD, {k: v for k, v in OLD.items() if k != "applied_now"})
    assert diff.changes is False
    assert diff.replaces == []


def test_diff_is_an_update_when_a_file_is_added() -> None:
    news = {**OLD, "migrations": [*FILES, *migration_inputs([EXTRA])]}
    diff = SchemaMigrationProvider().diff("id", OLD, news)
    assert (diff.changes, diff.replaces) == (True, [])


def test_diff_refuses_an_edited_applied_file() -> None:
    news = {**OLD, "migrations": edited(NAMES[0], FILES[0]["sql"] + "\n-- edited\n")}
    with pytest.raises(MigrationError, match=rf"{NAMES[0]} was edited after it was applied"):
        SchemaMigrationProvider().diff("id", OLD, news)


def test_diff_refuses_a_removed_applied_file() -> None:
    with pytest.raises(MigrationError, match=rf"{NAMES[-1]} was applied but is missing"):
        SchemaMigrationProvider().diff("id", OLD, {**OLD, "migrations": FILES[:-1]})


@pytest.mark.parametrize("value", ["other", Unknown(), rpc.UNKNOWN])
@pytest.mark.parametrize("key", ["endpoint", "region"])
def test_diff_replaces_when_the_cluster_changes_or_is_not_known_yet(key: str, value) -> None:
    diff = SchemaMigrationProvider().diff("id", OLD, {**OLD, key: value})
    assert diff.replaces == [key]


@pytest.mark.parametrize(
    "files", [rpc.UNKNOWN, Unknown(), [*FILES[:-1], Unknown()], [{**FILES[0], "sql": Unknown()}]]
)
def test_diff_with_unknown_files_during_preview_is_an_update(files) -> None:
    diff = SchemaMigrationProvider().diff("id", OLD, {**OLD, "migrations": files})
    assert (diff.changes, diff.replaces) == (True, [])


def check_reasons(news: dict, olds: dict | None = None) -> list[str]:
    return [f.reason for f in SchemaMigrationProvider().check(olds or {}, news).failures]


@pytest.mark.parametrize(
    ("news", "expected"),
    [
        ({**OLD, "endpoint": ""}, "endpoint is required"),
        ({**OLD, "migrations": []}, "non-empty list"),
        ({**OLD, "migrations": [{"name": "0001_x.sql"}]}, "must have name, checksum and sql"),
        (
            {**OLD, "migrations": [{**FILES[0], "checksum": "0" * 64}, *FILES[1:]]},
            "checksum does not match its SQL text",
        ),
        ({**OLD, "migrations": list(reversed(FILES))}, "unique and in name order"),
    ],
)
def test_check_rejects_malformed_inputs(news: dict, expected: str) -> None:
    assert any(expected in reason for reason in check_reasons(news)), check_reasons(news)


def test_check_rejects_an_edited_or_out_of_order_file_against_the_applied_ones() -> None:
    edited_files = edited(NAMES[1], FILES[1]["sql"] + "\n-- edited\n")
    assert any(
        "was edited after it was applied" in r
        for r in check_reasons({**OLD, "migrations": edited_files}, OLD)
    )
    late = migration_inputs([Migration("0002_a_late_file.sql", "SELECT 1;\n")])[0]
    out_of_order = sorted([*FILES, late], key=lambda item: item["name"])
    assert any("sorts before" in r for r in check_reasons({**OLD, "migrations": out_of_order}, OLD))


@pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN], ids=["Unknown", "sentinel"])
def test_check_accepts_unknown_values_during_preview(unknown) -> None:
    assert check_reasons({"endpoint": unknown, "region": REGION, "migrations": FILES}) == []
    assert check_reasons({"endpoint": unknown, "region": unknown, "migrations": unknown}) == []
    assert check_reasons({**OLD, "migrations": [*FILES[:-1], unknown]}, OLD) == []


def test_check_rejects_a_missing_endpoint_rather_than_taking_it_for_unknown() -> None:
    assert any("endpoint is required" in r for r in check_reasons({"region": REGION, "migrations": FILES}))


# --- read (pulumi refresh) ---------------------------------------------------------------------------


def test_read_reflects_what_schema_migrations_records(local_cluster) -> None:
    created = SchemaMigrationProvider().create(props_of(local_cluster))

    read = SchemaMigrationProvider().read(created.id, {**(created.outs or {}), "__provider": "p"})

    assert read.id == created.id
    assert read.outs["migrations"] == FILES
    assert read.outs["schema_version"] == NAMES[-1]
    assert SchemaMigrationProvider().diff(read.id, read.outs, props_of(local_cluster)).changes is False


def test_read_shows_a_file_recorded_with_another_checksum_and_a_missing_one(local_cluster) -> None:
    created = SchemaMigrationProvider().create(props_of(local_cluster))
    with psycopg.connect(local_cluster["url"], autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE name = %s", ("f" * 64, NAMES[0]))
        conn.execute("DELETE FROM schema_migrations WHERE name = %s", (NAMES[-1],))

    read = SchemaMigrationProvider().read(created.id, created.outs)

    assert [item["name"] for item in read.outs["migrations"]] == NAMES[:-1]
    assert read.outs["migrations"][0] == {"name": NAMES[0], "checksum": "f" * 64, "sql": ""}
    assert read.outs["schema_version"] == NAMES[-2]
    with pytest.raises(MigrationError, match=rf"{NAMES[0]} was edited after it was applied"):
        SchemaMigrationProvider().diff(read.id, read.outs, props_of(local_cluster))


def test_read_of_a_database_without_the_tracking_table_reads_as_gone(local_cluster) -> None:
    created = SchemaMigrationProvider().create(props_of(local_cluster))
    with psycopg.connect(local_cluster["url"], autocommit=True) as conn:
        conn.execute("DROP TABLE schema_migrations")
    assert SchemaMigrationProvider().read(created.id, created.outs).id == ""


def test_read_of_a_deleted_cluster_reads_as_gone_without_connecting(local_cluster, sent) -> None:
    created = SchemaMigrationProvider().create(props_of(local_cluster))
    boto3.client("dsql", region_name=REGION).delete_cluster(identifier=local_cluster["identifier"])
    before = len(sent.connections)

    read = SchemaMigrationProvider().read(created.id, created.outs)

    assert (read.id, read.outs) == ("", {})
    assert len(sent.connections) == before


def test_read_of_a_cluster_that_is_updating_keeps_the_state(local_cluster, sent, monkeypatch) -> None:
    created = SchemaMigrationProvider().create(props_of(local_cluster))
    dsql_backends[ACCOUNT][REGION].clusters[local_cluster["identifier"]].status = "UPDATING"
    logged: list[str] = []
    monkeypatch.setattr(migration, "log_progress", logged.append)

    read = SchemaMigrationProvider().read(created.id, created.outs)

    assert (read.id, read.outs) == (created.id, created.outs)
    assert "is UPDATING" in logged[0] and "`pulumi refresh` again" in logged[0]


def test_read_by_an_identity_without_admin_access_keeps_the_state(local_cluster, monkeypatch) -> None:
    """The read-only previewer may not dsql:DbConnectAdmin, and every preview refreshes first."""
    created = SchemaMigrationProvider().create(props_of(local_cluster))
    logged: list[str] = []
    monkeypatch.setattr(migration, "log_progress", logged.append)

    def refused(*_: object) -> None:
        raise ConnectionError("cannot connect to DSQL cluster as admin: access denied")

    monkeypatch.setattr(migration, "_connect", refused)
    read = SchemaMigrationProvider().read(created.id, created.outs)

    assert (read.id, read.outs) == (created.id, created.outs)
    assert "the last known state is kept" in logged[0] and "dsql:DbConnectAdmin" in logged[0]


def test_read_without_the_programs_properties_says_why() -> None:
    with pytest.raises(MigrationError, match="lack endpoint or region"):
        SchemaMigrationProvider().read("schema@x", {})


# --- the admin connection helper --------------------------------------------------------------------


def test_admin_connection_defaults_are_dsql_admin_over_verified_tls(monkeypatch, tokens) -> None:
    seen: dict = {}

    def fake_connect(**kwargs):
        seen.update(kwargs)
        return "connection"

    monkeypatch.setattr(psycopg, "connect", fake_connect)

    assert admin_connection("abc.dsql.us-east-1.on.aws", REGION) == "connection"

    assert seen["host"] == "abc.dsql.us-east-1.on.aws"
    assert (seen["port"], seen["dbname"], seen["user"]) == (5432, "postgres", "admin")
    assert seen["sslmode"] == "verify-full"
    assert Path(seen["sslrootcert"]).is_file()
    assert seen["autocommit"] is True
    assert seen["connect_timeout"] > 0
    assert seen["password"] == tokens[0][2]


def test_admin_connection_signs_for_the_endpoint_and_may_connect_to_another_address(
    monkeypatch, tokens
) -> None:
    seen: dict = {}
    monkeypatch.setattr(psycopg, "connect", lambda **kwargs: seen.update(kwargs))

    admin_connection("abc.dsql.us-east-1.on.aws", REGION, hostaddr="127.0.0.1", sslmode="disable")

    assert (seen["host"], seen["hostaddr"]) == ("abc.dsql.us-east-1.on.aws", "127.0.0.1")
    assert tokens[0][0] == "abc.dsql.us-east-1.on.aws"


def test_admin_connection_accepts_only_its_test_overrides() -> None:
    with pytest.raises(TypeError, match=r"unsupported override.*password"):
        admin_connection("abc.dsql.us-east-1.on.aws", REGION, password="not a token")


def test_admin_connection_errors_never_show_the_token(tokens) -> None:
    with pytest.raises(ConnectionError) as raised:
        admin_connection("127.0.0.1", REGION, port=1, sslmode="disable", connect_timeout=2)
    assert "cannot connect to DSQL cluster 127.0.0.1 (us-east-1) as admin" in str(raised.value)
    assert tokens[0][2] not in str(raised.value)


def test_connection_overrides_from_a_database_url() -> None:
    host, overrides = connection_overrides_from_url("postgresql://postgres@127.0.0.1:5433/test_db")
    assert host == "127.0.0.1"
    assert overrides == {"sslmode": "disable", "port": 5433, "dbname": "test_db", "user": "postgres"}
