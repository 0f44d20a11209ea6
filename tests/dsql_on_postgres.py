"""DSQL's dialect answered by a real PostgreSQL, and every statement recorded as it was sent (tests only).

No DSQL endpoint can be reached from here. The deploy-time providers always speak DSQL's dialect: they
send ``CREATE INDEX ASYNC`` (and read its job id), ``SELECT sys.wait_for_job(...)``, ``AWS IAM GRANT`` /
``REVOKE`` and look mappings up in ``sys.iam_pg_role_mappings``. ``DsqlOnPostgres`` wraps a psycopg
connection to a test database and:

- records each statement exactly as the provider sent it (``Recorder.statements``), so a test asserts
  what DSQL itself would have received;
- runs everything else unchanged on PostgreSQL;
- answers the DSQL-only forms the way DSQL does: the index is built (plain ``CREATE INDEX``) and a job
  id row is returned; ``sys.wait_for_job`` and ``sys.jobs`` exist; ``AWS IAM GRANT`` fails for a role
  that does not exist and otherwise adds a row to ``sys.iam_pg_role_mappings`` (DSQL's columns);
  ``AWS IAM REVOKE`` of a pair that is not mapped fails, so a provider that revokes blindly is caught.

``route_admin_connections(real, url, recorder)`` returns a stand-in for
``dsql_admin.admin_connection`` that still runs the real function with the real endpoint (the IAM
token is signed for it with the given access, libpq parameters are built by it) and only points
libpq at the test database's address (``hostaddr``), then wraps the connection.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors

from components.dynamic.aws_session import AMBIENT, AwsAccess
from components.dynamic.dsql_admin import connection_overrides_from_url

_CREATE_INDEX_ASYNC = re.compile(r"^\s*(CREATE\s+(?:UNIQUE\s+)?INDEX)\s+ASYNC\b", re.IGNORECASE)
_AWS_IAM = re.compile(r"^\s*AWS\s+IAM\s+(GRANT|REVOKE)\s+(\w+)\s+(?:TO|FROM)\s+'([^']+)'\s*;?\s*$", re.I)

# DSQL's system objects as far as the providers use them (columns as sys.iam_pg_role_mappings shows).
SYS_OBJECTS = (
    "CREATE SCHEMA IF NOT EXISTS sys",
    "CREATE TABLE IF NOT EXISTS sys.iam_pg_role_mappings ("
    " iam_oid bigserial, arn text NOT NULL, pg_role_oid oid NOT NULL, pg_role_name name NOT NULL,"
    " grantor_pg_role_oid oid, grantor_pg_role_name name, UNIQUE (arn, pg_role_name))",
    "CREATE TABLE IF NOT EXISTS sys.jobs (job_id text PRIMARY KEY, status text NOT NULL, details text)",
    "CREATE OR REPLACE FUNCTION sys.wait_for_job(job text) RETURNS boolean LANGUAGE sql"
    " AS $$ SELECT status = 'completed' FROM sys.jobs WHERE job_id = job $$",
)
_job_ids = itertools.count(1)


@dataclass
class Recorder:
    """What the providers did to the "cluster": connections made and statements sent, in order."""

    connections: list[tuple[str, str]] = field(default_factory=list)
    statements: list[tuple[str, Any]] = field(default_factory=list)
    listener: Callable[[dict[str, Any]], None] | None = None
    """Told of each event too (a provider server process writes them to a file for the test)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def connected(self, endpoint: str, region: str) -> None:
        with self.lock:
            self.connections.append((endpoint, region))
        if self.listener is not None:
            self.listener({"kind": "connect", "endpoint": endpoint, "region": region})

    def sent(self, statement: str, params: Any) -> None:
        with self.lock:
            self.statements.append((statement, params))
        if self.listener is not None:
            safe = [str(p) for p in params] if isinstance(params, list | tuple) else params
            self.listener({"kind": "sql", "statement": statement, "params": safe})

    def sql(self) -> list[str]:
        return [statement for statement, _ in self.statements]


def install_sys_objects(url: str) -> None:
    """Create DSQL's ``sys`` objects in the test database (idempotent)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SYS_OBJECTS:
            conn.execute(statement)


class _Cursor:
    def __init__(self, conn: DsqlOnPostgres) -> None:
        self._conn = conn
        self._cursor = conn.raw.cursor()

    def execute(self, query: str, params: Any = None) -> _Cursor:
        self._conn.recorder.sent(query, params)
        index = _CREATE_INDEX_ASYNC.match(query)
        iam = _AWS_IAM.match(query)
        if index:
            self._cursor.execute(_CREATE_INDEX_ASYNC.sub(r"\1", query, count=1))
            job_id = f"job-{next(_job_ids)}"
            self._cursor.execute(
                "INSERT INTO sys.jobs (job_id, status) VALUES (%s, 'completed') RETURNING job_id", (job_id,)
            )
        elif iam:
            self._iam(*iam.groups())
        else:
            self._cursor.execute(query, params)
        return self

    def _iam(self, verb: str, db_role: str, arn: str) -> None:
        if verb.upper() == "GRANT":
            # ::regrole raises PostgreSQL's own 'role "x" does not exist', as DSQL refuses the grant.
            self._cursor.execute(
                "INSERT INTO sys.iam_pg_role_mappings (arn, pg_role_oid, pg_role_name)"
                " SELECT %s, oid, rolname FROM pg_roles WHERE oid = %s::regrole"
                " ON CONFLICT (arn, pg_role_name) DO NOTHING",
                (arn, db_role),
            )
            return
        self._cursor.execute(
            "DELETE FROM sys.iam_pg_role_mappings WHERE arn = %s AND pg_role_name = %s", (arn, db_role)
        )
        if self._cursor.rowcount == 0:
            raise errors.UndefinedObject(f"no IAM mapping of {db_role} to {arn}")

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def close(self) -> None:
        self._cursor.close()

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DsqlOnPostgres:
    """A psycopg connection that speaks DSQL's dialect; see the module docstring."""

    def __init__(self, raw: psycopg.Connection, recorder: Recorder) -> None:
        self.raw = raw
        self.recorder = recorder

    @property
    def autocommit(self) -> bool:
        return self.raw.autocommit

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def execute(self, query: str, params: Any = None) -> _Cursor:
        return _Cursor(self).execute(query, params)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> DsqlOnPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def route_admin_connections(
    real_admin_connection: Callable[..., psycopg.Connection], url: str, recorder: Recorder
) -> Callable[..., DsqlOnPostgres]:
    """A stand-in for ``dsql_admin.admin_connection`` that reaches the test database at ``url``."""
    host, overrides = connection_overrides_from_url(url)
    hostaddr = socket.gethostbyname(host)
    install_sys_objects(url)

    def admin_connection(
        endpoint: str, region: str, access: AwsAccess = AMBIENT, **test_overrides: Any
    ) -> DsqlOnPostgres:
        assert not test_overrides, "production code passes no test overrides"
        recorder.connected(endpoint, region)
        raw = real_admin_connection(endpoint, region, access, hostaddr=hostaddr, **overrides)
        return DsqlOnPostgres(raw, recorder)

    return admin_connection
