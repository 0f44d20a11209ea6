"""One database connection per container: made on first use, reused, recycled, re-made when broken.

Every request runs autocommit single statements, so a simple request costs one round trip: no
BEGIN/COMMIT, no per-request SET. On AWS the connection goes to DSQL through AWS's connector
(``aurora_dsql_psycopg``), which signs a fresh IAM token for the application role at each connect; it is
imported only there, so a local run or a warm request never pays for boto3. Locally ``DATABASE_URL``
selects a plain psycopg connection; the rest is the same code.

When is a retry safe?
* OCC conflict (SQLSTATE 40001, DSQL OC000/OC001): the statement's transaction did not commit, so
  running the same single statement again cannot apply it twice. That holds for every statement here,
  INSERT included: a retried INSERT either commits once or meets the committed winner's row and fails
  with unique_violation (409). Retried up to OCC_RETRIES times with exponential backoff and jitter.
* Broken connection during a statement: whether it committed is unknown. Only ``idempotent`` work
  (reads, and PATCH, which writes absolute values) is retried once on a fresh connection; a create or a
  delete answers 503 and the client decides.
"""

from __future__ import annotations

import contextlib
import random
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import ConnStatus

from handler import logs
from handler.config import Settings
from handler.errors import DatabaseUnavailable, is_occ_conflict
from handler.users import use_api_representation

T = TypeVar("T")
OCC_RETRIES = 4
OCC_BASE_DELAY_S = 0.005
OCC_MAX_DELAY_S = 0.2


class Database:
    """The container's connection and the retry rules around every use of it."""

    def __init__(self, settings: Settings, connect: Callable[[], psycopg.Connection] | None = None) -> None:
        self.settings = settings
        self._connect = connect or self._default_connect
        self._conn: psycopg.Connection | None = None
        self._born = 0.0
        self.connects = 0

    # ------------------------------------------------------------ connection lifecycle

    def _default_connect(self) -> psycopg.Connection:
        s = self.settings
        if s.database_url:
            conn = psycopg.connect(s.database_url, autocommit=True, connect_timeout=s.connect_timeout_s)
        else:
            conn = _connect_dsql(s)
        return conn

    def connection(self) -> psycopg.Connection:
        """The live connection, made now if there is none or the old one is too old or dead."""
        conn = self._conn
        if conn is not None and (
            time.monotonic() - self._born > self.settings.connection_max_age_s or _is_dead(conn)
        ):
            self.discard()
            conn = None
        if conn is None:
            try:
                conn = self._connect()
                self._prepare(conn)
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(f"cannot connect: {_reason(exc)}") from exc
            self._conn = conn
            self._born = time.monotonic()
            self.connects += 1
        return conn

    def _prepare(self, conn: psycopg.Connection) -> None:
        """Session settings, once per connection and never per request.

        Whether DSQL accepts each SET is unverified: a refusal is logged and the connection kept (DSQL
        ends any transaction after 5 minutes anyway, and users.py converts timestamps to UTC itself
        when the session is not in UTC).
        """
        for setting in (f"statement_timeout = {int(self.settings.statement_timeout_ms)}", "TimeZone = 'UTC'"):
            try:
                conn.execute(f"SET {setting}")
            except psycopg.OperationalError:
                conn.close()
                raise
            except psycopg.Error as exc:
                logs.warning("session setting refused", setting=setting.split()[0], sqlstate=exc.sqlstate)
        use_api_representation(conn)

    def discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a dead connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()

    # ------------------------------------------------------------ running work

    def run(self, work: Callable[[psycopg.Connection], T], *, idempotent: bool) -> T:
        """``work(conn)`` with OCC retries; ``idempotent`` work is also retried once after a broken link."""
        occ_attempt = 0
        reconnected = False
        while True:
            conn = self.connection()
            try:
                return work(conn)
            except psycopg.Error as exc:
                if is_occ_conflict(exc) and occ_attempt < OCC_RETRIES:
                    occ_attempt += 1
                    delay = min(OCC_BASE_DELAY_S * 2 ** (occ_attempt - 1), OCC_MAX_DELAY_S)
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    continue
                if isinstance(exc, pg_errors.QueryCanceled) or not (conn.broken or conn.closed):
                    raise
                self.discard()
                if idempotent and not reconnected:
                    logs.warning("connection broken; retrying once on a new connection", reason=_reason(exc))
                    reconnected = True
                    continue
                raise DatabaseUnavailable(f"connection lost: {_reason(exc)}") from exc


def _is_dead(conn: psycopg.Connection) -> bool:
    """True when the server already closed the idle connection; costs one poll, no round trip.

    An idle connection has nothing to read unless the server said goodbye (terminated backend,
    DSQL's 60-minute limit, a restarted server). Catching that here lets even a non-idempotent write
    go to a fresh connection instead of failing with an unknown outcome.
    """
    if conn.closed or conn.broken:
        return True
    try:
        # A goodbye is an error message followed by end-of-file: read until nothing is pending, so
        # libpq sees the EOF too. Anything else pending (a parameter notice) leaves the status OK.
        for _ in range(4):
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
            if not readable:
                return False
            conn.pgconn.consume_input()
            if conn.pgconn.status == ConnStatus.BAD:
                return True
        return False
    except (OSError, ValueError, psycopg.Error):
        return True


def _connect_dsql(s: Settings) -> psycopg.Connection:
    """Connect to DSQL as the application role with a fresh IAM token over TLS verify-full."""
    import aurora_dsql_psycopg  # deferred: it imports boto3, which only the AWS path needs

    assert s.dsql_endpoint is not None
    try:
        return aurora_dsql_psycopg.connect(
            host=s.dsql_endpoint,
            region=_endpoint_region(s.dsql_endpoint) or s.region,
            user=s.db_user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=s.connect_timeout_s,
            sslmode="verify-full",
            sslrootcert=s.ssl_root_cert or _botocore_ca_bundle(),
        )
    except psycopg.Error:
        raise
    except Exception as exc:
        # Token generation failed (no credentials, STS unreachable): as unavailable as a refused socket.
        raise DatabaseUnavailable(f"cannot sign an IAM token: {type(exc).__name__}") from exc


def _botocore_ca_bundle() -> str:
    """botocore's CA bundle: always present where the connector runs, and it holds the Amazon Root CAs.

    libpq's ``sslrootcert=system`` would depend on where the wheel's bundled OpenSSL looks for a trust
    store, which differs between Lambda's image and other machines.
    """
    import botocore

    return str(Path(botocore.__file__).resolve().parent / "cacert.pem")


def _endpoint_region(endpoint: str) -> str | None:
    parts = endpoint.split(".")
    return parts[2] if len(parts) > 3 and parts[1].startswith("dsql") else None


def _reason(exc: BaseException) -> str:
    # The first line only: libpq messages can be long and never need to reach a client.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
