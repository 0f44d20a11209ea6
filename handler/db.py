"""One database connection per container: made on first use, reused, recycled, re-made when broken.

Every request runs autocommit single statements, so a simple request costs one round trip: no
BEGIN/COMMIT, no per-request SET. On AWS the connection goes to DSQL with a fresh IAM token for the
application role at each connect. Where Lambda hands the function its credentials in the environment
(on-demand and provisioned concurrency), the token is signed by AWS's common runtime (``awscrt``, C)
from those variables, read again at each connect: under the CPU share of a small memory size, importing
boto3 and building a session and a client to sign one token cost more than a second at 512 MB
(docs/capacity.md). Anywhere else (SnapStart, whose restored environments get container credentials;
profiles; instance roles) AWS's connector (``aurora_dsql_psycopg``) signs with botocore's credential
chain. Both are imported only at the first connect, so a local run never pays for them. Locally
``DATABASE_URL`` selects a plain psycopg connection; the rest is the same code.

When is a retry safe?
* OCC conflict (SQLSTATE 40001, DSQL OC000/OC001): the statement's transaction did not commit, so
  running the same single statement again cannot apply it twice. That holds for every statement here,
  INSERT included: a retried INSERT either commits once or meets the committed winner's row and fails
  with unique_violation (409). Retried up to OCC_RETRIES times with exponential backoff and jitter.
* Broken connection during a statement: whether it committed is unknown. Only ``idempotent`` work
  (reads, and PATCH, which writes absolute values) is retried once on a fresh connection; a create or a
  delete answers 503 and the client decides.

Deadlines: the server's ``statement_timeout`` cannot fire when the server is frozen or the network is
gone, so every request also has a deadline of its own on this side: ``REQUEST_TIMEOUT_MS`` (default:
the statement timeout plus one second, so the server's cancel, whose outcome is known, comes first),
never later than Lambda's remaining time minus INVOCATION_RESERVE_S. A connect waits at most what is
left of it; a statement still running at the deadline has its socket shut down by the ``Watchdog``,
which wakes the blocked psycopg call at once with a broken connection. The request then answers 503 with
Retry-After: nothing is retried after the deadline, and a write cut in flight has an unknown outcome, as
after any broken link. libpq's TCP keepalives and ``tcp_user_timeout`` let the kernel notice a dead
peer too, but they cannot notice a frozen server whose kernel still acknowledges every packet.

SnapStart: a restored snapshot may run in many environments at once and long after it was taken, so
``after_restore`` (registered with the runtime's ``snapshot_restore_py`` when it exists) drops any
connection made before the snapshot and reseeds ``random`` (the OCC jitter); ``prime`` imports in init
what the first DSQL connect would otherwise import on the first request.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import os
import random
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

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
INVOCATION_RESERVE_S = 0.5
"""Kept from Lambda's remaining time to send the 503 (and log it) after a deadline."""
MIN_CONNECT_WAIT_S = 2
"""psycopg (like libpq) waits at least this long for a connection, whatever connect_timeout says."""
TOKEN_LIFETIME_S = 60
"""An IAM token is only checked when a connection opens: a short life, as the AWS connector gives it."""
APPLICATION_NAME = "users-api"
"""The session's application_name on DSQL (the connector would set its own)."""
# TCP keepalive on the connection: an idle connection to a vanished peer is found dead (and replaced
# before use) after about 30 + 3 x 5 s of silence instead of failing the next request.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

# When Lambda stops the current invocation (monotonic clock), from its context; None outside Lambda.
_invocation_ends: float | None = None
# Every Database of this process, so that a SnapStart restore can drop their connections.
_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def start_invocation(context: Any) -> None:
    """Note when Lambda will stop this invocation: no request deadline of it may end later.

    Called by the entry point with Lambda's context (``get_remaining_time_in_millis``); a context
    without it (or none) leaves only ``REQUEST_TIMEOUT_MS``. Never raises.
    """
    global _invocation_ends
    try:
        remaining_ms = context.get_remaining_time_in_millis()
        _invocation_ends = time.monotonic() + remaining_ms / 1000
    except Exception:
        _invocation_ends = None


class Database:
    """The container's connection and the retry rules around every use of it."""

    def __init__(
        self, settings: Settings, connect: Callable[[float], psycopg.Connection] | None = None
    ) -> None:
        self.settings = settings
        self._connect = connect or self._default_connect
        self._conn: psycopg.Connection | None = None
        self._born = 0.0
        self._watchdog = Watchdog()
        self.connects = 0
        _databases.add(self)

    # ------------------------------------------------------------ connection lifecycle

    def deadline(self) -> float:
        """When a request starting now must have its answer (monotonic clock)."""
        now = time.monotonic()
        deadline = now + self.settings.request_timeout_ms / 1000
        # An end already past belongs to an earlier invocation (Lambda would have stopped this one).
        if _invocation_ends is not None and _invocation_ends > now:
            deadline = min(deadline, _invocation_ends - INVOCATION_RESERVE_S)
        return deadline

    def _default_connect(self, deadline: float) -> psycopg.Connection:
        s = self.settings
        if s.database_url:
            return psycopg.connect(
                s.database_url,
                autocommit=True,
                connect_timeout=connect_timeout(s, deadline),
                tcp_user_timeout=s.request_timeout_ms,
                **KEEPALIVES,
            )
        return _connect_dsql(s, deadline)

    def connection(self, deadline: float | None = None) -> psycopg.Connection:
        """The live connection, made now if there is none or the old one is too old or dead."""
        conn = self._conn
        if conn is not None and (
            time.monotonic() - self._born > self.settings.connection_max_age_s or _is_dead(conn)
        ):
            self.discard()
            conn = None
        if conn is None:
            deadline = self.deadline() if deadline is None else deadline
            try:
                conn = self._connect(deadline)
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(f"cannot connect: {_reason(exc)}") from exc
            self._watchdog.arm(conn, deadline)
            try:
                self._prepare(conn)
            except psycopg.OperationalError as exc:
                conn.close()
                raise DatabaseUnavailable(f"cannot prepare the connection: {_reason(exc)}") from exc
            finally:
                self._watchdog.disarm()
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
        """``work(conn)`` with OCC retries; ``idempotent`` work is also retried once after a broken link.

        All of it within one deadline (``deadline()``): no retry starts after it, and a statement still
        running at it is cut (DatabaseUnavailable, a 503).
        """
        started = time.monotonic()
        deadline = self.deadline()
        occ_attempt = 0
        reconnected = False
        while True:
            conn = self.connection(deadline)
            self._watchdog.arm(conn, deadline)
            try:
                return work(conn)
            except psycopg.Error as exc:
                if self._watchdog.disarm():
                    self.discard()
                    budget_ms = round((deadline - started) * 1000)
                    raise DatabaseUnavailable(f"no answer within the request's {budget_ms} ms") from exc
                if is_occ_conflict(exc) and occ_attempt < OCC_RETRIES:
                    occ_attempt += 1
                    delay = min(OCC_BASE_DELAY_S * 2 ** (occ_attempt - 1), OCC_MAX_DELAY_S)
                    delay *= random.uniform(0.5, 1.5)
                    if time.monotonic() + delay < deadline:
                        time.sleep(delay)
                        continue
                if isinstance(exc, pg_errors.QueryCanceled) or not (conn.broken or conn.closed):
                    raise
                self.discard()
                if idempotent and not reconnected and time.monotonic() < deadline:
                    logs.warning("connection broken; retrying once on a new connection", reason=_reason(exc))
                    reconnected = True
                    continue
                raise DatabaseUnavailable(f"connection lost: {_reason(exc)}") from exc
            finally:
                self._watchdog.disarm()


class Watchdog:
    """Cuts the connection of a request that outlives its deadline.

    A psycopg call waiting for the server blocks in poll() on the connection's socket, with the GIL
    released. Shutting that socket down from another thread ends the wait at once: libpq reads
    end-of-file, psycopg raises OperationalError and marks the connection broken, whatever the server
    is doing. The alternatives do not work here: libpq's cancel request needs the server to answer
    (a frozen one never does), a SIGALRM handler can only run in the main thread and would raise
    anywhere, and TCP timeouts never fire while the peer's kernel acknowledges (a frozen server on a
    live host). Measured on loopback with the server stopped by SIGSTOP: the blocked call returns
    within a millisecond of the shutdown (docs/handler.md).

    One thread per container, started at the first request; it sleeps until the armed deadline. Arming
    a later deadline than the one it sleeps towards wakes nothing, so a warm request pays two
    uncontended lock operations and no thread switch.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._fd = -1  # the armed connection's socket; -1 when disarmed
        self._deadline = 0.0
        self._wakes_at: float | None = None  # when the thread will look again; None: when armed
        self._cut = False
        self._thread: threading.Thread | None = None
        self.cuts = 0

    def arm(self, conn: psycopg.Connection, deadline: float) -> None:
        fd = conn.fileno()
        with self._lock:
            self._fd, self._deadline, self._cut = fd, deadline, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="db-deadline", daemon=True)
                self._thread.start()
            elif self._wakes_at is None or deadline < self._wakes_at:
                self._lock.notify()

    def disarm(self) -> bool:
        """Stop watching; True when the deadline passed and the connection was cut."""
        with self._lock:
            self._fd = -1
            return self._cut

    def _watch(self) -> None:
        with self._lock:
            while True:
                if self._fd < 0:
                    self._wakes_at = None
                    self._lock.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._wakes_at = self._deadline
                    self._lock.wait(left)
                    continue
                # Still armed, so the request thread has not closed the connection: the fd is its own.
                shut_down(self._fd)
                self._fd, self._cut = -1, True
                self.cuts += 1


def shut_down(fd: int) -> None:
    """Shut a connection's socket down without closing the descriptor (libpq still owns it)."""
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
    finally:
        sock.detach()


def connect_timeout(s: Settings, deadline: float) -> int:
    """libpq's connect_timeout for an attempt starting now: what is left of the deadline, at most the
    configured one (psycopg waits at least MIN_CONNECT_WAIT_S whatever this says)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DatabaseUnavailable("no time left before the request's deadline to connect")
    return max(1, min(s.connect_timeout_s, int(left)))


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


def _connect_dsql(s: Settings, deadline: float | None = None) -> psycopg.Connection:
    """Connect to DSQL as the application role with a fresh IAM token over TLS verify-full.

    One attempt per address of the endpoint, each waiting at most what is left before ``deadline``
    (psycopg would give every address the whole connect timeout: three black-holed addresses would
    hold the request three times as long). ``host`` stays the endpoint's name: TLS verifies it and the
    token is signed for it; ``hostaddr`` only says where to connect.
    """
    assert s.dsql_endpoint is not None
    if deadline is None:
        deadline = time.monotonic() + s.request_timeout_ms / 1000
    region = _endpoint_region(s.dsql_endpoint) or s.region
    params: dict[str, Any] = {
        "host": s.dsql_endpoint,
        "user": s.db_user,
        "dbname": "postgres",
        "autocommit": True,
        "sslmode": "verify-full",
        "sslrootcert": s.ssl_root_cert or _botocore_ca_bundle(),
        "tcp_user_timeout": s.request_timeout_ms,
        **KEEPALIVES,
    }
    credentials = environment_credentials()
    failure: psycopg.OperationalError | None = None
    for address in _addresses(s.dsql_endpoint):
        if failure is not None and deadline - time.monotonic() < MIN_CONNECT_WAIT_S:
            raise failure  # another attempt would outlast the deadline
        timeout = connect_timeout(s, deadline)
        attempt = {**params, "connect_timeout": timeout, **({"hostaddr": address} if address else {})}
        try:
            if credentials is None:
                import aurora_dsql_psycopg  # deferred: it imports boto3, which only this path needs

                return aurora_dsql_psycopg.connect(**attempt, region=region)
            token = db_auth_token(s.dsql_endpoint, region, s.db_user, credentials)
            # Connection.connect, as psycopg.connect is: the class method is what tests and benchmarks
            # redirect to a local server.
            return psycopg.Connection.connect(**attempt, password=token, application_name=APPLICATION_NAME)
        except psycopg.OperationalError as exc:
            failure = exc
        except psycopg.Error:
            raise
        except Exception as exc:
            # Token generation failed (no credentials, STS unreachable): as unavailable as a refused
            # socket.
            raise DatabaseUnavailable(f"cannot sign an IAM token: {type(exc).__name__}") from exc
    assert failure is not None
    raise failure


class Credentials(NamedTuple):
    access_key_id: str
    secret_access_key: str
    session_token: str | None


def environment_credentials() -> Credentials | None:
    """The credentials Lambda puts in the environment (read at each connect), or None where there are
    none (SnapStart gives container credentials instead; botocore's chain then finds them)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


def db_auth_token(
    host: str,
    region: str,
    user: str,
    credentials: Credentials,
    *,
    now: datetime.datetime | None = None,
    expires_in_s: int = TOKEN_LIFETIME_S,
) -> str:
    """DSQL's IAM token: ``<host>/?Action=DbConnect&X-Amz-...``, a SigV4 presigned GET for service
    ``dsql``, as botocore's ``generate_db_connect_auth_token`` makes it (``DbConnectAdmin`` for the
    ``admin`` role); the same inputs give the same query and signature (tests/test_db_token.py)."""
    from awscrt import auth, http  # deferred: only the DSQL path signs

    action = "DbConnectAdmin" if user == "admin" else "DbConnect"
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(
            credentials.access_key_id, credentials.secret_access_key, credentials.session_token
        ),
        region=region,
        service="dsql",
        date=now or datetime.datetime.now(datetime.UTC),
        expiration_in_seconds=expires_in_s,
    )
    request = http.HttpRequest("GET", f"/?Action={action}", http.HttpHeaders([("host", host)]))
    signed = auth.aws_sign_request(request, config).result()
    return f"{host}{signed.path}"


def _addresses(host: str) -> list[str | None]:
    """The host's addresses to try in order; [None] (libpq resolves, and reports) when DNS fails."""
    try:
        found = socket.getaddrinfo(host, 5432, proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM)
    except OSError:
        return [None]
    addresses: list[str | None] = list(dict.fromkeys(str(item[4][0]) for item in found))
    return addresses or [None]


def _botocore_ca_bundle() -> str:
    """botocore's CA bundle: always in the layer (the connector needs botocore), and it holds the Amazon
    Root CAs. Found without importing botocore, which the environment-credentials path never does.

    libpq's ``sslrootcert=system`` would depend on where the wheel's bundled OpenSSL looks for a trust
    store, which differs between Lambda's image and other machines.
    """
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseUnavailable("botocore's CA bundle is missing: set DB_SSLROOTCERT to a CA file")
    return str(Path(next(iter(spec.submodule_search_locations))).resolve() / "cacert.pem")


def _endpoint_region(endpoint: str) -> str | None:
    parts = endpoint.split(".")
    return parts[2] if len(parts) > 3 and parts[1].startswith("dsql") else None


def _reason(exc: BaseException) -> str:
    # The first line only: libpq messages can be long and never need to reach a client.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# ---------------------------------------------------------------- SnapStart


def after_restore() -> None:
    """Run once in each environment restored from a SnapStart snapshot, before its first request.

    A connection made before the snapshot would be shared by every restored copy (and its server
    long gone), so each is dropped: its socket shut down first, so that nothing waits for a peer, and
    the next request connects afresh with a new token. ``random`` is reseeded from the operating
    system, or every copy would draw the same OCC jitter and retry in lockstep.
    """
    for database in list(_databases):
        conn = database._conn
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                shut_down(conn.fileno())
        database.discard()
    random.seed()


def prime() -> None:
    """Import in init what the first request would import: the token signer (awscrt) and, where the
    credentials will not be in the environment (a SnapStart snapshot: restored copies get container
    credentials), the AWS connector with boto3. Only the DSQL path uses them; locally nothing is primed."""
    import awscrt.auth
    import awscrt.http  # noqa: F401

    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start" or environment_credentials() is None:
        import aurora_dsql_psycopg  # noqa: F401


def register_snapstart_hooks() -> bool:
    """In a SnapStart init, register ``after_restore`` with the runtime and prime; else do nothing.

    Lambda names the kind of init in AWS_LAMBDA_INITIALIZATION_TYPE. Under SnapStart (and provisioned
    concurrency) init runs ahead of any request, so the modules the first request needs are imported
    there. ``snapshot_restore_py`` exists only inside Lambda's Python runtimes (3.12 and later); it is
    looked for only in a SnapStart init, so nothing else pays for a failed import.
    """
    init_type = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
    if init_type in ("snap-start", "provisioned-concurrency") and os.environ.get("DSQL_ENDPOINT"):
        prime()
    if init_type != "snap-start":
        return False
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(after_restore)
    return True


register_snapstart_hooks()
