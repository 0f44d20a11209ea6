"""The local two-region application over HTTP: the same handler behind each region's port.

One database and one application (two regions, several container processes each) serve the whole
module; each test uses its own email addresses so they do not interfere.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from local.__main__ import SAMPLE_USERS, load_sample_users
from local.auth import LocalIssuer
from local.launcher import LocalApp, LocalAppError, start_local_app
from tests.local_process import local_env, python_m_local

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EAST_1, EAST_2 = "us-east-1", "us-east-2"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def request(
    url: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None, headers=None
) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"Content-Type": "application/json"} if payload is not None else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            json.loads(data) if data else None,
        )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def regions(module_migrated_database_url: str) -> Iterator[LocalApp]:
    with start_local_app(
        make_conninfo(module_migrated_database_url, user="users_api"),
        [(EAST_1, 0), (EAST_2, 0)],
        containers=3,
        # These tests are about the local app; authentication has its own (AUTH_MODE=none: no authorizer).
        env={"CORS_ALLOW_ORIGINS": "https://app.example.com", "AUTH_MODE": "none"},
    ) as app:
        yield app


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def all_users(url: str, limit: int = 7) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = f"/users?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        reply = request(url, "GET", path)
        assert reply.status == 200, reply.body
        seen += reply.body["items"]
        cursor = reply.body["next_cursor"]
        if cursor is None:
            return seen


# ---------------------------------------------------------------- every route over HTTP


def test_health_names_each_region(regions: LocalApp) -> None:
    for region, url in regions.urls.items():
        reply = request(url, "GET", "/health")
        assert reply.status == 200
        assert reply.body["region"] == region
        assert reply.body["database"]["ok"] is True
        assert reply.headers["content-type"] == "application/json"


def test_crud_round_trip_over_http(regions: LocalApp) -> None:
    url = regions.urls[EAST_1]
    email = _email("crud")
    created = request(url, "POST", "/users", {"name": " Crud ", "email": email.upper()})
    assert created.status == 201
    assert created.body["email"] == email
    location = created.headers["location"]
    assert location == f"/users/{created.body['id']}"
    assert request(url, "GET", location).body == created.body
    patched = request(url, "PATCH", location, {"name": "Crud 2"})
    assert (patched.status, patched.body["name"]) == (200, "Crud 2")
    deleted = request(url, "DELETE", location)
    assert (deleted.status, deleted.body) == (204, None)
    assert request(url, "GET", location).status == 404


def test_bad_requests_over_http_are_json_4xx(regions: LocalApp) -> None:
    url = regions.urls[EAST_2]
    cases = [
        (request(url, "POST", "/users", raw=b"{oops"), 400),
        (
            request(url, "POST", "/users", raw=b"\xff\xfe\x00", headers={"Content-Type": "application/json"}),
            400,
        ),
        (request(url, "POST", "/users", {"name": "A", "email": _email("x"), "admin": True}), 400),
        (request(url, "POST", "/users", {"name": ["A"], "email": _email("x")}), 400),
        (
            request(
                url,
                "POST",
                "/users",
                raw=b"name=A",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
        ),
        (request(url, "POST", "/users", raw=b'{"name": "' + b"x" * 20_000 + b'"}'), 413),
        (request(url, "GET", "/users/not-a-uuid"), 400),
        (request(url, "GET", f"/users/{uuid.uuid4()}"), 404),
        (request(url, "GET", "/users?cursor=bogus"), 400),
        (request(url, "GET", "/users?limit=999"), 400),
        (request(url, "GET", "/elsewhere"), 404),
        (request(url, "PUT", "/users"), 405),
        (request(url, "TRACE", "/health"), 405),
    ]
    for reply, status in cases:
        assert reply.status == status, (status, reply.body)
        assert reply.headers["content-type"] == "application/json"
        assert reply.body["error"]["code"]


def test_cors_over_http(regions: LocalApp) -> None:
    url = regions.urls[EAST_1]
    allowed = request(url, "GET", "/health", headers={"Origin": "https://app.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    other = request(url, "GET", "/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------- two regions, one database


def test_a_user_created_in_one_region_is_read_at_once_from_the_other(regions: LocalApp) -> None:
    east_1, east_2 = regions.urls[EAST_1], regions.urls[EAST_2]
    for _ in range(10):
        created = request(east_1, "POST", "/users", {"name": "Cross", "email": _email("cross")})
        assert created.status == 201
        assert request(east_2, "GET", created.headers["location"]).body == created.body
        patched = request(east_2, "PATCH", created.headers["location"], {"name": "Changed in east-2"})
        assert request(east_1, "GET", created.headers["location"]).body == patched.body
        assert request(east_1, "DELETE", created.headers["location"]).status == 204
        assert request(east_2, "GET", created.headers["location"]).status == 404


def test_100_concurrent_creates_over_both_regions_all_persist_and_list_once(regions: LocalApp) -> None:
    tag = f"bulk{uuid.uuid4().hex[:6]}"
    urls = [regions.urls[EAST_1], regions.urls[EAST_2]]

    def create(i: int) -> Reply:
        return request(
            urls[i % 2], "POST", "/users", {"name": f"Bulk {i}", "email": f"{tag}-{i}@example.com"}
        )

    with ThreadPoolExecutor(max_workers=24) as pool:
        replies = list(pool.map(create, range(100)))
    assert [r.status for r in replies] == [201] * 100
    created_ids = {r.body["id"] for r in replies}
    assert len(created_ids) == 100
    for url in urls:
        listed = [u["id"] for u in all_users(url) if u["email"].startswith(f"{tag}-")]
        assert len(listed) == len(set(listed)) == 100
        assert set(listed) == created_ids


def test_concurrent_creates_with_one_email_give_one_201_and_the_rest_409(regions: LocalApp) -> None:
    urls = [regions.urls[EAST_1], regions.urls[EAST_2]]
    email = _email("race")

    def create(i: int) -> Reply:
        # Differently spelled, one address once normalised.
        spelled = email.upper() if i % 3 == 0 else f"  {email} "
        return request(urls[i % 2], "POST", "/users", {"name": f"Racer {i}", "email": spelled})

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(create, range(20)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] + [409] * 19
    assert all(r.body["error"]["code"] == "conflict" for r in replies if r.status == 409)
    matching = [u for u in all_users(urls[0], limit=200) if u["email"] == email]
    assert len(matching) == 1


def test_concurrent_patches_leave_one_written_state_never_a_mix(regions: LocalApp) -> None:
    urls = [regions.urls[EAST_1], regions.urls[EAST_2]]
    created = request(urls[0], "POST", "/users", {"name": "Patched", "email": _email("patch")})
    location = created.headers["location"]
    tag = uuid.uuid4().hex[:6]
    written = {(f"Writer {i}", f"writer{i}-{tag}@example.com") for i in range(16)}

    def patch(pair: tuple[str, str]) -> Reply:
        i = int(pair[0].split()[1])
        return request(urls[i % 2], "PATCH", location, {"name": pair[0], "email": pair[1]})

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(patch, sorted(written)))
    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    for reply in replies:
        assert (reply.body["name"], reply.body["email"]) in written
    final = request(urls[1], "GET", location).body
    assert (final["name"], final["email"]) in written
    # Exactly the row one writer got back, updated_at included: whole writes, never a mix. (Not the
    # greatest updated_at: now() is the statement's transaction start, and a writer that waited for the
    # row lock commits last with an earlier now().)
    assert final in [r.body for r in replies]


def test_each_region_runs_separate_container_processes(regions: LocalApp) -> None:
    pids = {proc.pid for _, proc in regions.processes}
    assert len(pids) == 6
    status = regions.status()
    assert {name: (s["state"], len(s["containers"])) for name, s in status.items()} == {
        EAST_1: ("up", 3),
        EAST_2: ("up", 3),
    }


# ---------------------------------------------------------------- the launcher and the main job


def test_launcher_reports_a_database_it_cannot_reach(unused_port: int) -> None:
    with pytest.raises(LocalAppError, match="not healthy"):
        start_local_app(
            f"postgresql://users_api@127.0.0.1:{unused_port}/postgres",
            [("nowhere-1", 0)],
            env={"DB_CONNECT_TIMEOUT_S": "1"},
            wait_timeout=3,
        )


def test_launcher_refuses_a_port_in_use(module_migrated_database_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LocalAppError, match="cannot listen"):
            start_local_app(module_migrated_database_url, [("busy-1", port)])


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sample_users_load_once(migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        assert load_sample_users(conn) == 3
        assert load_sample_users(conn) == 0
        rows = conn.execute("SELECT name, email FROM users ORDER BY email").fetchall()
    assert sorted(rows, key=lambda r: r[1]) == sorted(SAMPLE_USERS, key=lambda u: u[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_local_serves_two_regions_with_sample_data_and_stops_cleanly(tmp_path: Path) -> None:
    """The main job end to end: its own PostgreSQL, migrations, sample users, two regions, SIGTERM."""
    ports = {EAST_1: _free_port(), EAST_2: _free_port()}
    # Authentication is on by default: its issuer goes to a file of this test, not a developer's.
    args = ["--region", f"{EAST_1}={ports[EAST_1]}", "--region", f"{EAST_2}={ports[EAST_2]}"]
    east_1, east_2 = (f"http://127.0.0.1:{ports[r]}" for r in (EAST_1, EAST_2))
    with python_m_local(args, local_env(tmp_path / "issuer.json")) as local:
        local.wait_for(rf"{EAST_2}: {east_2}")
        assert f"{EAST_1}: {east_1}" in local.text, local.text
        local.keep_reading()
        assert request(east_2, "GET", "/users").status == 401
        token = LocalIssuer.load(tmp_path / "issuer.json").token("test-admin", admin=True)
        auth = {"Authorization": f"Bearer {token}"}
        listed = request(east_2, "GET", "/users", headers=auth).body["items"]
        assert sorted(u["email"] for u in listed) == sorted(email for _, email in SAMPLE_USERS)
        created = request(
            east_1, "POST", "/users", {"name": "Local", "email": "local@example.com"}, headers=auth
        )
        assert request(east_2, "GET", created.headers["location"], headers=auth).status == 200
        # The handler runs as the least-privilege role, as on AWS.
        assert request(east_1, "GET", "/health").body["region"] == EAST_1
    text = local.text
    assert local.proc.returncode == 0, text
    assert "PostgreSQL stopped" in text
    assert not (tmp_path / "issuer.json").exists()  # the run's key is gone with the run
    assert re.search(rf"{EAST_1} GET /health 200", text), text  # one log line per request
    # Nothing it started is left: no container still holds a port, no server still runs.
    for port in ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
    leftover = subprocess.run(
        ["pgrep", "-s", str(local.proc.pid)], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", leftover.stdout
