"""Client-side deadlines against a real, frozen PostgreSQL: every request answers 503 in time.

The server's ``statement_timeout`` cannot fire while the server is stopped, and on loopback the kernel
keeps acknowledging for it, so TCP timeouts never fire either: only the handler's own deadline
(handler/db.py ``Watchdog``, ``connect_timeout``) ends such a request. These tests stop their OWN
throwaway server with SIGSTOP (never the shared one the other tests use) and always SIGCONT it in a
``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from handler import app, db
from local.events import LambdaContext, api_gateway_event
from local.postgres import LocalPostgres, scratch_database

STATEMENT_TIMEOUT_MS = 1000  # the target: a 503 within the statement timeout plus 2 s
BOUND_S = STATEMENT_TIMEOUT_MS / 1000 + 2


@dataclass
class FreezableServer:
    server: LocalPostgres
    app_url: str

    def processes(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, walwriter...)."""
        assert self.server.workdir is not None
        postmaster = int((self.server.workdir / "data" / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue  # exited meanwhile
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
        return [postmaster, *children]

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Every server process stopped (SIGSTOP) inside the block, and resumed whatever happens."""
        stopped: list[int] = []
        try:
            for pid in self.processes():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            yield
        finally:
            for pid in stopped:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def freezable() -> Iterator[FreezableServer]:
    with LocalPostgres() as server, scratch_database(server.url, "deadline", migrated=True) as url:
        yield FreezableServer(server, make_conninfo(url, user="users_api"))


@pytest.fixture
def handler_env(freezable: FreezableServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FreezableServer]:
    monkeypatch.setenv("DATABASE_URL", freezable.app_url)
    monkeypatch.setenv("AUTH_MODE", "none")  # ownership is not under test here
    monkeypatch.setenv("STATEMENT_TIMEOUT_MS", str(STATEMENT_TIMEOUT_MS))
    for name in ("DSQL_ENDPOINT", "REQUEST_TIMEOUT_MS", "DB_CONNECT_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    app.reset()
    yield freezable
    app.reset()


@dataclass
class Timed:
    status: int
    headers: dict[str, str]
    body: Any
    seconds: float


class Context(LambdaContext):
    """Lambda's context with a chosen remaining time."""

    def __init__(self, remaining_ms: int) -> None:
        super().__init__()
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def call(method: str, path: str, body: Any = None, context: LambdaContext | None = None) -> Timed:
    event = api_gateway_event(
        method,
        path,
        headers=[("Content-Type", "application/json")],
        body=None if body is None else json.dumps(body),
    )
    started = time.monotonic()
    raw = app.lambda_handler(event, context or LambdaContext())
    seconds = time.monotonic() - started
    return Timed(raw["statusCode"], raw["headers"], json.loads(raw["body"]) if raw["body"] else None, seconds)


def assert_timely_503(reply: Timed, bound_s: float = BOUND_S, request: str = "") -> None:
    assert reply.status == 503, (request, reply.body)
    assert int(reply.headers["Retry-After"]) >= 1, request
    assert reply.seconds < bound_s, f"{request} answered after {reply.seconds:.2f} s"


def test_every_request_to_a_frozen_server_is_a_timely_503_and_the_next_succeeds_after_sigcont(
    handler_env: FreezableServer,
) -> None:
    user = call("POST", "/users", {"name": "Frozen", "email": "frozen@example.com"}).body
    requests = [
        ("GET", f"/users/{user['id']}", None),  # in flight on the warm connection: the watchdog cuts it
        ("POST", "/users", {"name": "Lost", "email": "lost@example.com"}),  # then connects time out
        ("PATCH", f"/users/{user['id']}", {"name": "Renamed"}),
        ("DELETE", f"/users/{user['id']}", None),
        ("GET", "/users", None),
        ("GET", "/health", None),
    ]
    with handler_env.frozen():
        replies = [call(method, path, body) for method, path, body in requests]
    for (method, path, _), reply in zip(requests, replies, strict=True):
        assert_timely_503(reply, request=f"{method} {path}")
    assert replies[0].seconds >= STATEMENT_TIMEOUT_MS / 1000  # cut at the deadline, not before
    after = call("GET", f"/users/{user['id']}")
    assert after.status == 200, after.body
    assert after.body["name"] == "Frozen"  # nothing frozen out was applied later
    assert app.database()._watchdog.cuts == 1


@pytest.mark.parametrize(
    ("method", "idempotent"), [("POST", False), ("PATCH", True), ("GET", True), ("DELETE", False)]
)
def test_a_statement_in_flight_when_the_server_freezes_is_cut_at_the_deadline_and_not_retried(
    handler_env: FreezableServer, method: str, idempotent: bool
) -> None:
    user = call("POST", "/users", {"name": "Warm", "email": f"warm-{method.lower()}@example.com"}).body
    assert call("GET", f"/users/{user['id']}").status == 200  # a warm connection
    database = app.database()
    path = "/users" if method == "POST" else f"/users/{user['id']}"
    body = {"name": "X", "email": f"x-{method.lower()}@example.com"} if method == "POST" else None
    body = {"name": "Y"} if method == "PATCH" else body
    with handler_env.frozen():
        reply = call(method, path, body)
    assert_timely_503(reply)
    # Past the deadline nothing is retried, idempotent or not: one connection made, one cut.
    assert database.connects == 1
    assert database._watchdog.cuts == 1
    assert call("GET", "/health").status == 200
    assert database.connects == 2


def test_the_deadline_ends_before_lambdas_remaining_time(handler_env: FreezableServer) -> None:
    assert call("GET", "/health").status == 200
    remaining_ms = 1500  # less than REQUEST_TIMEOUT_MS (2000 here)
    with handler_env.frozen():
        reply = call("GET", "/users", context=Context(remaining_ms))
    assert_timely_503(reply, bound_s=(remaining_ms / 1000 - db.INVOCATION_RESERVE_S) + 0.5)
    assert reply.seconds >= remaining_ms / 1000 - db.INVOCATION_RESERVE_S - 0.05


def test_warm_requests_are_never_cut_and_keep_their_connection(handler_env: FreezableServer) -> None:
    user = call("POST", "/users", {"name": "Quick", "email": "quick@example.com"}).body
    for _ in range(200):
        assert call("GET", f"/users/{user['id']}").status == 200
    database = app.database()
    assert (database.connects, database._watchdog.cuts) == (1, 0)


def test_connection_has_tcp_keepalives_and_user_timeout(handler_env: FreezableServer) -> None:
    assert call("GET", "/health").status == 200
    conn = app.database().connection()
    sock = socket.socket(fileno=conn.fileno())
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == db.KEEPALIVES["keepalives_idle"]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == STATEMENT_TIMEOUT_MS + 1000
    finally:
        sock.detach()


def test_dsql_connect_attempts_stop_at_the_deadline_not_per_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Three addresses that accept TCP but never answer: psycopg alone would wait 2 s on each."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)  # never accepts: libpq's hello hangs
    try:
        for name in ("DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "DB_SSLROOTCERT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DSQL_ENDPOINT", "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("PGPORT", str(listener.getsockname()[1]))  # the connector sets no port
        monkeypatch.setenv("STATEMENT_TIMEOUT_MS", "2000")
        monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "2")
        monkeypatch.setattr(db, "_addresses", lambda host: ["127.0.0.1", "127.0.0.1", "127.0.0.1"])
        app.reset()
        reply = call("GET", "/health")
    finally:
        listener.close()
        app.reset()
    assert reply.status == 503
    assert 2 <= reply.seconds < 3.5  # REQUEST_TIMEOUT_MS 3000: one 2 s attempt, no room for a second


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"STATEMENT_TIMEOUT_MS": "5000", "REQUEST_TIMEOUT_MS": "5000"},
            "must exceed STATEMENT_TIMEOUT_MS=5000",
        ),
        ({"REQUEST_TIMEOUT_MS": "30000"}, "API Gateway stops waiting at 29000 ms"),
        ({"STATEMENT_TIMEOUT_MS": "28000"}, "REQUEST_TIMEOUT_MS=29000 is too long"),
    ],
)
def test_request_timeout_configuration_errors_name_the_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from handler.config import ConfigError, load_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    for name in ("STATEMENT_TIMEOUT_MS", "REQUEST_TIMEOUT_MS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_request_timeout_defaults_to_the_statement_timeout_plus_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handler.config import load_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db")
    monkeypatch.delenv("REQUEST_TIMEOUT_MS", raising=False)
    monkeypatch.setenv("STATEMENT_TIMEOUT_MS", "3000")
    assert load_settings().request_timeout_ms == 4000
