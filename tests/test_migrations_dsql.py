"""The runner's DSQL-only branch: job ids from CREATE INDEX ASYNC and sys.wait_for_job.

No DSQL endpoint can be reached from here, so a scripted connection answers the way DSQL does: the
index statement returns one row holding the job id, sys.wait_for_job returns true or false, and
sys.jobs says why a job failed. Everything else the runner does is proven on a real PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from psycopg import errors

from migrations import occ
from migrations.runner import TRACKING_TABLE, Dialect, Migration, MigrationError, apply_migrations


class ScriptedResult:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows
        self.description = [("column",)] if rows else None

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return self.rows


class ScriptedDsql:
    """Answers the statements the runner sends to DSQL and records them in order."""

    autocommit = True

    def __init__(
        self,
        job_succeeds: bool = True,
        conflicts_before_success: int = 0,
        conflicts: dict[str, int] | None = None,
    ) -> None:
        self.job_succeeds = job_succeeds
        # statement prefix -> how many times it answers 40001 before it succeeds
        self.conflicts = {"CREATE INDEX ASYNC": conflicts_before_success, **(conflicts or {})}
        self.sent: list[tuple[str, tuple | None]] = []
        self._last: ScriptedResult | None = None

    def execute(self, query: str, params: tuple | None = None) -> ScriptedResult:
        self.sent.append((query, params))
        for prefix, left in self.conflicts.items():
            if query.startswith(prefix) and left:
                self.conflicts[prefix] = left - 1
                raise errors.SerializationFailure("change conflicts with another transaction (OC001)")
        if query.startswith(f"SELECT name, checksum FROM {TRACKING_TABLE}"):
            rows: list[tuple] = []
        elif query.startswith("CREATE INDEX ASYNC"):
            rows = [("job-7f3a",)]
        elif query.startswith("SELECT sys.wait_for_job"):
            rows = [(self.job_succeeds,)]
        elif query.startswith("SELECT status, details FROM sys.jobs"):
            rows = [("failed", "duplicate key value violates unique constraint")]
        else:
            rows = []
        self._last = ScriptedResult(rows)
        return self._last

    # the runner uses a cursor for migration statements
    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def description(self):
        return self._last.description if self._last else None

    def fetchone(self):
        return self._last.fetchone() if self._last else None


INDEX_FILE = Migration("0002_index.sql", "CREATE INDEX ASYNC IF NOT EXISTS users_x ON users (x);\n")


def test_dsql_index_job_id_is_captured_and_waited_for() -> None:
    conn = ScriptedDsql()
    applied = apply_migrations(conn, [INDEX_FILE], Dialect.DSQL, log=lambda _: None)  # type: ignore[arg-type]
    assert applied == ["0002_index.sql"]
    sent = [query for query, _ in conn.sent]
    index_at = sent.index("CREATE INDEX ASYNC IF NOT EXISTS users_x ON users (x)")
    assert sent[index_at + 1] == "SELECT sys.wait_for_job(%s)"
    assert conn.sent[index_at + 1][1] == ("job-7f3a",)
    assert re.match(f"INSERT INTO {TRACKING_TABLE}", sent[index_at + 2])  # recorded only after the wait


def test_failed_dsql_index_job_stops_the_run_with_the_reason() -> None:
    conn = ScriptedDsql(job_succeeds=False)
    with pytest.raises(MigrationError) as failure:
        apply_migrations(conn, [INDEX_FILE], Dialect.DSQL, log=lambda _: None)  # type: ignore[arg-type]
    message = str(failure.value)
    assert "0002_index.sql:1" in message and "job-7f3a" in message and "duplicate key" in message
    assert not any(query.startswith("INSERT INTO") for query, _ in conn.sent)


def test_occ_conflict_is_retried() -> None:
    conn = ScriptedDsql(conflicts_before_success=2)
    assert apply_migrations(conn, [INDEX_FILE], Dialect.DSQL, log=lambda _: None) == ["0002_index.sql"]  # type: ignore[arg-type]
    assert sum(query.startswith("CREATE INDEX ASYNC") for query, _ in conn.sent) == 3


def test_iam_grant_is_sent_to_dsql_unchanged() -> None:
    grant = Migration("0009_grant.sql", "AWS IAM GRANT users_api TO 'arn:aws:iam::123456789012:role/app';")
    conn = ScriptedDsql()
    apply_migrations(conn, [grant], Dialect.DSQL, log=lambda _: None)  # type: ignore[arg-type]
    assert ("AWS IAM GRANT users_api TO 'arn:aws:iam::123456789012:role/app'", None) in conn.sent


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(occ.time, "sleep", recorded.append)
    return recorded


@pytest.mark.parametrize(
    "bookkeeping", [f"INSERT INTO {TRACKING_TABLE}", f"SELECT name, checksum FROM {TRACKING_TABLE}"]
)
def test_bookkeeping_after_ddl_is_retried_on_conflicts(bookkeeping: str, waits: list[float]) -> None:
    conn = ScriptedDsql(conflicts={bookkeeping: 2})
    applied = apply_migrations(conn, [INDEX_FILE], Dialect.DSQL, log=lambda _: None)  # type: ignore[arg-type]
    assert applied == ["0002_index.sql"]
    assert sum(query.startswith(bookkeeping) for query, _ in conn.sent) == 3
    assert len(waits) == 2


def test_bookkeeping_that_keeps_conflicting_fails_after_a_bounded_number_of_attempts(waits) -> None:
    conn = ScriptedDsql(conflicts={f"INSERT INTO {TRACKING_TABLE}": 10**6})
    with pytest.raises(errors.SerializationFailure):
        apply_migrations(conn, [INDEX_FILE], Dialect.DSQL, log=lambda _: None)  # type: ignore[arg-type]
    assert sum(query.startswith("INSERT INTO") for query, _ in conn.sent) == occ.ATTEMPTS
    assert len(waits) == occ.ATTEMPTS - 1
