"""The migration runner against a real PostgreSQL, and its DSQL branch against a scripted connection."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from migrations.runner import (
    MIGRATIONS_DIR,
    TRACKING_TABLE,
    Dialect,
    Migration,
    MigrationError,
    apply_migrations,
    load_migrations,
    pending_migrations,
)

APP_ROLE = "users_api"


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return apply_migrations(conn, load_migrations(directory), Dialect.POSTGRES, log=lambda _: None)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A writable copy of migrations/ to edit in a test."""
    for source in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(source, tmp_path / source.name)
    return tmp_path


def test_clean_database_migrates_and_records_every_file(database_url: str) -> None:
    names = [m.name for m in load_migrations()]
    assert migrate(database_url) == names
    with psycopg.connect(database_url) as conn:
        recorded = conn.execute(f"SELECT name, checksum FROM {TRACKING_TABLE} ORDER BY name").fetchall()
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'users' ORDER BY ordinal_position"
        ).fetchall()
        indexes = {
            row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'users'")
        }
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (APP_ROLE,)
        ).fetchone()
    assert recorded == [(m.name, m.checksum) for m in load_migrations()]
    assert columns == [
        ("id", "uuid"),
        ("name", "character varying"),
        ("email", "character varying"),
        ("created_at", "timestamp with time zone"),
        ("updated_at", "timestamp with time zone"),
        ("owner_sub", "text"),
    ]
    assert "users_created_at_id_idx" in indexes
    assert "users_owner_sub_idx" in indexes
    assert any("email" in name for name in indexes)
    assert role == (True, False)


def test_second_run_applies_nothing(migrated_database_url: str) -> None:
    assert migrate(migrated_database_url) == []
    with psycopg.connect(migrated_database_url) as conn:
        assert pending_migrations(conn, load_migrations()) == []


def test_interrupted_run_resumes_once_the_file_is_fixed(database_url: str, migrations_copy: Path) -> None:
    broken = migrations_copy / "0099_add_audit.sql"
    broken.write_text(
        "CREATE TABLE IF NOT EXISTS audit (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), note text);\n"
        "CREATE INDEX ASYNC IF NOT EXISTS audit_note_idx ON audit (nosuchcolumn);\n"
    )
    with pytest.raises(MigrationError) as failure:
        migrate(database_url, migrations_copy)
    message = str(failure.value)
    assert "0099_add_audit.sql:2" in message
    assert "nosuchcolumn" in message
    with psycopg.connect(database_url) as conn:
        recorded = [row[0] for row in conn.execute(f"SELECT name FROM {TRACKING_TABLE} ORDER BY name")]
        assert recorded == [
            "0001_create_users.sql",
            "0002_index_users_by_creation.sql",
            "0003_create_app_role.sql",
            "0004_users_owner.sql",
            "0005_idempotency_keys.sql",
        ]
        # the first statement of the failed file was applied and stays: the re-run must cope with it
        assert conn.execute("SELECT to_regclass('audit')").fetchone()[0] == "audit"

    broken.write_text(broken.read_text().replace("nosuchcolumn", "note"))
    assert migrate(database_url, migrations_copy) == ["0099_add_audit.sql"]
    assert migrate(database_url, migrations_copy) == []


def test_role_file_can_be_rerun_after_the_role_was_created(database_url: str, migrations_copy: Path) -> None:
    """CREATE ROLE has no IF NOT EXISTS; a re-run of its file must not fail on the existing role."""
    role_file = migrations_copy / "0003_create_app_role.sql"
    role_file.write_text(role_file.read_text() + "\nGRANT SELECT ON nosuchtable TO users_api;\n")
    with pytest.raises(MigrationError, match=r"0003_create_app_role\.sql"):
        migrate(database_url, migrations_copy)
    role_file.write_text(role_file.read_text().replace("GRANT SELECT ON nosuchtable TO users_api;\n", ""))
    assert migrate(database_url, migrations_copy) == [
        "0003_create_app_role.sql",
        "0004_users_owner.sql",
        "0005_idempotency_keys.sql",
    ]


def test_edited_applied_file_is_refused_by_name(migrated_database_url: str, migrations_copy: Path) -> None:
    edited = migrations_copy / "0001_create_users.sql"
    edited.write_text(edited.read_text().replace("varchar(100)", "varchar(200)"))
    with pytest.raises(MigrationError, match=r"0001_create_users\.sql was edited after it was applied"):
        migrate(migrated_database_url, migrations_copy)


def test_applied_file_missing_from_disk_is_refused(migrated_database_url: str, migrations_copy: Path) -> None:
    (migrations_copy / "0002_index_users_by_creation.sql").unlink()
    with pytest.raises(MigrationError, match=r"0002_index_users_by_creation\.sql .* missing"):
        migrate(migrated_database_url, migrations_copy)


def test_statement_error_names_file_line_and_statement(database_url: str, migrations_copy: Path) -> None:
    (migrations_copy / "0099_typo.sql").write_text("-- a typo on line 3\n\nCREAT TABLE oops (id uuid);\n")
    with pytest.raises(MigrationError) as failure:
        migrate(database_url, migrations_copy)
    assert "0099_typo.sql:3" in str(failure.value)
    assert "CREAT TABLE oops" in str(failure.value)
    assert "SQLSTATE 42601" in str(failure.value)


def test_unterminated_string_is_reported_before_anything_runs(
    database_url: str, migrations_copy: Path
) -> None:
    (migrations_copy / "0099_quote.sql").write_text(
        "CREATE TABLE a (x text);\nCOMMENT ON TABLE a IS 'oops;\n"
    )
    with pytest.raises(MigrationError, match=r"0099_quote.sql:2: .*unterminated string"):
        migrate(database_url, migrations_copy)
    with psycopg.connect(database_url) as conn:  # not even the valid earlier files were applied
        assert conn.execute("SELECT to_regclass('users')").fetchone() == (None,)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("0099_empty.sql", "-- nothing here\n", "has no SQL statement"),
        ("0099_txn.sql", "BEGIN;\nCREATE TABLE a (x text);\nCOMMIT;\n", "is not allowed"),
        ("4_badname.sql", "SELECT 1;", "are named NNNN_lowercase_words.sql"),
        ("0001_duplicate_number.sql", "SELECT 1;", "number 0001 is already used"),
    ],
)
def test_malformed_migration_files_are_refused(
    database_url: str, migrations_copy: Path, name: str, text: str, expected: str
) -> None:
    (migrations_copy / name).write_text(text)
    with pytest.raises(MigrationError, match=expected) as failure:
        migrate(database_url, migrations_copy)
    assert name in str(failure.value)


def test_runner_requires_autocommit(database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(MigrationError, match="autocommit"):
        apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)


def test_app_role_can_do_what_the_api_needs_and_nothing_more(migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        conn.execute(f"SET ROLE {APP_ROLE}")
        user_id = conn.execute(
            "INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com') RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE users SET name = 'Ada L', updated_at = now() WHERE id = %s", (user_id,))
        assert conn.execute("SELECT name FROM users WHERE id = %s", (user_id,)).fetchone() == ("Ada L",)
        conn.execute("DELETE FROM users WHERE id = %s", (user_id,))

        forbidden = [
            "DROP TABLE users",
            "TRUNCATE users",
            "ALTER TABLE users ADD COLUMN extra text",
            f"SELECT * FROM {TRACKING_TABLE}",
            f"DELETE FROM {TRACKING_TABLE}",
            "CREATE TABLE intruder (id int)",
            "CREATE ROLE another",
        ]
        for statement in forbidden:
            # Exactly "permission denied" (42501): a syntax error or a missing table must not pass.
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


def test_constraints_hold_in_the_schema(migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (name, email) VALUES ('A', 'a@example.com')")
        with pytest.raises(errors.UniqueViolation):
            conn.execute("INSERT INTO users (name, email) VALUES ('B', 'a@example.com')")
        with pytest.raises(errors.CheckViolation):
            conn.execute("INSERT INTO users (name, email) VALUES ('', 'b@example.com')")


def test_postgres_dialect_adapts_only_what_postgres_lacks() -> None:
    adapt = Dialect.POSTGRES.adapt
    assert adapt("CREATE INDEX ASYNC IF NOT EXISTS i ON t (a)") == "CREATE INDEX IF NOT EXISTS i ON t (a)"
    assert adapt("create unique index async i on t (a)") == "create unique index i on t (a)"
    assert adapt("AWS IAM GRANT users_api TO 'arn:aws:iam::123456789012:role/r'") is None
    assert adapt("aws iam revoke users_api FROM 'arn:aws:iam::123456789012:role/r'") is None
    assert adapt("SELECT 'CREATE INDEX ASYNC'") == "SELECT 'CREATE INDEX ASYNC'"
    for statement in ("CREATE INDEX ASYNC i ON t (a)", "AWS IAM GRANT r TO 'arn'"):
        assert Dialect.DSQL.adapt(statement) == statement


def test_checksum_ignores_line_ending_style() -> None:
    assert (
        Migration("0001_a.sql", "SELECT 1;\r\n").checksum == Migration("0001_a.sql", "SELECT 1;\n").checksum
    )
    assert Migration("0001_a.sql", "SELECT 1;").checksum != Migration("0001_a.sql", "SELECT 2;").checksum
