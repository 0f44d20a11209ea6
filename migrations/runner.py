"""Apply the numbered SQL files of ``migrations/`` to Aurora DSQL, or to PostgreSQL through an adapter.

One runner serves the Pulumi migration resource (DSQL, as ``admin``), the local application and the
tests (PostgreSQL). DSQL allows one DDL statement per transaction and never DDL mixed with DML, so every
statement runs in its own autocommit transaction and the file is recorded in the tracking table only
after all its statements succeeded. Statements are written to be safe to run again (``IF NOT EXISTS``),
so a run that failed half-way resumes from the top of the failed file once it is fixed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

import psycopg
from psycopg import errors

from migrations.occ import retry_occ_conflicts
from migrations.sqlsplit import SqlSyntaxError, Statement, split_statements

MIGRATIONS_DIR = Path(__file__).resolve().parent
TRACKING_TABLE = "schema_migrations"
TRACKING_TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
    " name varchar(255) PRIMARY KEY,"
    " checksum char(64) NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)
FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_INDEX_ASYNC = re.compile(r"^\s*(CREATE\s+(?:UNIQUE\s+)?INDEX)\s+ASYNC\b", re.IGNORECASE)
_AWS_IAM = re.compile(r"^\s*AWS\s+IAM\s+(GRANT|REVOKE)\b", re.IGNORECASE)
_CREATE_ROLE = re.compile(r"^\s*CREATE\s+ROLE\b", re.IGNORECASE)
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b", re.IGNORECASE
)

Log = Callable[[str], None]


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message names the file, the line and the fix."""


class Dialect(Enum):
    """Where the SQL runs. The files are written for DSQL; POSTGRES is the local stand-in."""

    DSQL = "dsql"
    POSTGRES = "postgres"

    def adapt(self, statement: str) -> str | None:
        """The statement as this dialect accepts it, or None when it has no meaning here.

        This is the only place that knows PostgreSQL differs from DSQL: PostgreSQL has no asynchronous
        index builds (a plain CREATE INDEX is the equivalent on a local database) and no IAM role
        mapping (locally the application connects as its role directly).
        """
        if self is Dialect.DSQL:
            return statement
        if _AWS_IAM.match(statement):
            return None
        return _CREATE_INDEX_ASYNC.sub(r"\1", statement, count=1)


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file: its name (``0001_create_users.sql``) and its text."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the text with line endings normalised, so a checkout on Windows matches."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()

    def statements(self) -> list[Statement]:
        """The file's statements; raises MigrationError naming the file for anything malformed."""
        try:
            statements = split_statements(self.sql)
        except SqlSyntaxError as exc:
            raise MigrationError(
                f"{self.name}:{exc.line}: {exc.reason}; close it or fix the quoting"
            ) from exc
        if not statements:
            raise MigrationError(f"{self.name}: has no SQL statement; delete it or add one")
        for statement in statements:
            if _TRANSACTION_CONTROL.match(statement.sql):
                raise MigrationError(
                    f"{self.name}:{statement.line}: '{_first_line(statement.sql)}' is not allowed: "
                    "the runner gives every statement its own transaction (DSQL allows one DDL "
                    "statement per transaction); remove the transaction control"
                )
        return statements


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``directory`` in order; any other ``.sql`` file is an error."""
    migrations: list[Migration] = []
    numbers: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_lowercase_words.sql "
                "(for example 0004_add_orders.sql); rename it"
            )
        if match.group(1) in numbers:
            raise MigrationError(
                f"{path.name}: number {match.group(1)} is already used by {numbers[match.group(1)]}; "
                "give it the next free number"
            )
        numbers[match.group(1)] = path.name
        migrations.append(Migration(path.name, path.read_text(encoding="utf-8")))
    return migrations


def apply_migrations(
    conn: psycopg.Connection,
    migrations: Sequence[Migration],
    dialect: Dialect,
    log: Log = print,
) -> list[str]:
    """Apply the pending migrations in order and return the names applied (empty when up to date).

    ``conn`` must be in autocommit mode: each statement is its own transaction.
    """
    if not conn.autocommit:
        raise MigrationError("the connection must be in autocommit mode (psycopg autocommit=True)")
    ensure_tracking_table(conn)
    applied = applied_checksums(conn)  # retried on conflicts: it runs right after DDL
    pending = check_history(migrations, applied)
    # Split every pending file first: a malformed file is reported before anything is applied.
    plan = [(migration, migration.statements()) for migration in pending]
    for migration, statements in plan:
        log(f"applying {migration.name}")
        for statement in statements:
            run_statement(conn, migration.name, statement, dialect, log)
        record = partial(
            conn.execute,
            f"INSERT INTO {TRACKING_TABLE} (name, checksum) VALUES (%s, %s)",
            (migration.name, migration.checksum),
        )
        retry_occ_conflicts(record, f"recording {migration.name}", log=log)
        log(f"applied {migration.name}")
    if not pending:
        log("schema is up to date")
    return [m.name for m in pending]


def pending_migrations(conn: psycopg.Connection, migrations: Sequence[Migration]) -> list[Migration]:
    """What ``apply_migrations`` would apply; raises MigrationError when an applied file was edited."""
    try:
        applied = applied_checksums(conn)
    except errors.UndefinedTable:
        return list(migrations)
    return check_history(migrations, applied)


def check_history(migrations: Sequence[Migration], applied: dict[str, str]) -> list[Migration]:
    """The migrations not yet applied, after checking that every applied one is unchanged on disk."""
    by_name = {m.name: m for m in migrations}
    for name, checksum in sorted(applied.items()):
        migration = by_name.get(name)
        if migration is None:
            raise MigrationError(
                f"{name} was applied to this database but is missing from migrations/; "
                "restore the file (applied migrations are never deleted)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{name} was edited after it was applied (applied checksum {checksum[:12]}, file "
                f"now {migration.checksum[:12]}); applied migrations are immutable: revert the edit "
                "and put the change in a new numbered file"
            )
    return [m for m in migrations if m.name not in applied]


def ensure_tracking_table(conn: psycopg.Connection) -> None:
    """Create the table that records applied files; only the migrating user can read it."""
    retry_occ_conflicts(lambda: conn.execute(TRACKING_TABLE_DDL), "creating the tracking table")


def applied_checksums(conn: psycopg.Connection) -> dict[str, str]:
    """``{file name: checksum}`` of the recorded files; a read that a concurrent DDL can conflict with."""

    def read() -> dict[str, str]:
        rows = conn.execute(f"SELECT name, checksum FROM {TRACKING_TABLE}").fetchall()
        return {name: checksum.strip() for name, checksum in rows}

    return retry_occ_conflicts(read, f"reading {TRACKING_TABLE}")


def run_statement(
    conn: psycopg.Connection, file_name: str, statement: Statement, dialect: Dialect, log: Log
) -> None:
    """Run one statement in its own transaction; on DSQL wait for the index job it starts."""
    text = dialect.adapt(statement.sql)
    where = f"{file_name}:{statement.line}"
    if text is None:
        log(f"  {where}: skipped on {dialect.value}: {_first_line(statement.sql)}")
        return

    def attempt() -> str | None:
        with conn.cursor() as cur:
            try:
                cur.execute(text)
            except errors.DuplicateObject:
                # PostgreSQL has no CREATE ROLE IF NOT EXISTS: an existing role means an earlier,
                # interrupted run of this file already created it.
                if _CREATE_ROLE.match(text):
                    return None
                raise
            if cur.description is not None and _CREATE_INDEX_ASYNC.match(text):
                row = cur.fetchone()
                return str(row[0]) if row else None  # no job when IF NOT EXISTS found the index
            return None

    try:
        job_id = retry_occ_conflicts(attempt, where, log=log)
        if job_id is not None:
            log(f"  {where}: index build job {job_id} started, waiting")
            wait_for_job(conn, job_id, where)
    except psycopg.Error as exc:
        raise MigrationError(
            f"{where}: statement failed: {_pg_message(exc)}\n    {_first_line(statement.sql)}\n"
            "Fix the statement and run again: applied statements are kept, the file is re-run "
            "from its start, so each statement must be safe to repeat (IF NOT EXISTS)."
        ) from exc
    log(f"  {where}: {_first_line(statement.sql)}")


def wait_for_job(conn: psycopg.Connection, job_id: str, where: str) -> None:
    """Block until a DSQL asynchronous job ends; raise when it did not succeed."""
    row = conn.execute("SELECT sys.wait_for_job(%s)", (job_id,)).fetchone()
    if not row or row[0] is not True:
        detail = conn.execute("SELECT status, details FROM sys.jobs WHERE job_id = %s", (job_id,)).fetchone()
        status = f"{detail[0]}: {detail[1]}" if detail else "no row in sys.jobs"
        raise MigrationError(
            f"{where}: index build job {job_id} did not succeed ({status}); fix the cause "
            "(for a unique index: duplicate rows), drop the invalid index and run again"
        )


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 120 else line[:117] + "..."


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return f"{diag.message_primary or exc}{code}"
