"""Local regions are independent, as the platform's are: a container that dies is replaced, a whole region
killed or taken down comes back, and meanwhile the other region never fails a request. And the failover
drill (``python -m tools.drill``) passes against the real ``python -m local``, or names the step that
failed."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from psycopg.conninfo import make_conninfo

from local.auth import LocalIssuer
from local.control import ControlServer, open_control
from local.launcher import LocalApp, start_local_app
from tests.local_process import local_env, python_m_local

PROJECT_ROOT = Path(__file__).resolve().parent.parent
A, B = "ind-a", "ind-b"


def call(
    url: str,
    method: str,
    path: str,
    body: object = None,
    timeout: float = 10,
    headers: dict[str, str] | None = None,
) -> tuple[int, object]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(
            method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)
    finally:
        conn.close()


@dataclass
class Traffic:
    """Health checks and creates against one region from a thread, every failure recorded."""

    url: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        tag = uuid.uuid4().hex[:8]
        while not self.stop_event.wait(0.05):
            self.sent += 1
            try:
                if self.sent % 2:
                    status, _ = call(self.url, "GET", "/health")
                    expected = 200
                else:
                    email = f"traffic-{tag}-{self.sent}@example.com"
                    status, _ = call(self.url, "POST", "/users", {"name": "Traffic", "email": email})
                    expected = 201
                if status != expected:
                    self.failures.append(f"request {self.sent}: {status}")
            except OSError as exc:
                self.failures.append(f"request {self.sent}: {exc!r}")

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()


@pytest.fixture
def app(migrated_database_url: str) -> Iterator[tuple[LocalApp, list[str]]]:
    """Two regions of two containers; the launcher's own lines collected."""
    lines: list[str] = []
    with start_local_app(
        make_conninfo(migrated_database_url, user="users_api"),
        [(A, 0), (B, 0)],
        containers=2,
        env={"AUTH_MODE": "none"},
        log=lines.append,
    ) as started:
        yield started, lines


def wait_until(condition: object, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


def healthy(url: str) -> bool:
    try:
        return call(url, "GET", "/health", timeout=2)[0] == 200
    except OSError:
        return False


def test_a_killed_container_is_replaced_and_the_other_region_never_fails(
    app: tuple[LocalApp, list[str]],
) -> None:
    local, lines = app
    traffic = Traffic(local.urls[B])
    try:
        time.sleep(0.5)
        victim = local.status()[A]["containers"][0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: local.status()[A]["replaced"] == 1, what="the dead container replaced")
        new = local.status()[A]["containers"]
        assert victim not in new and len(new) == 2
        wait_until(lambda: healthy(local.urls[A]), what=f"{A} healthy")
        time.sleep(0.5)
    finally:
        traffic.stop()
    assert traffic.sent > 10 and traffic.failures == []
    assert any(
        re.fullmatch(
            rf"{A}: container pid {victim} was killed by SIGKILL after [\d.]+ s; replaced by pid \d+", line
        )
        for line in lines
    ), lines
    assert local.status()[B]["replaced"] == 0


def test_a_whole_region_killed_comes_back_and_the_other_region_never_fails(
    app: tuple[LocalApp, list[str]],
) -> None:
    local, lines = app
    traffic = Traffic(local.urls[B])
    try:
        time.sleep(0.5)
        victims = local.status()[A]["containers"]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: local.status()[A]["replaced"] == 2, what="both containers replaced")
        wait_until(lambda: healthy(local.urls[A]), what=f"{A} healthy again")
        status, created = call(
            local.urls[A],
            "POST",
            "/users",
            {"name": "Back", "email": f"back-{uuid.uuid4().hex[:8]}@example.com"},
        )
        assert status == 201
        assert call(local.urls[B], "GET", f"/users/{created['id']}")[0] == 200  # type: ignore[index]
    finally:
        traffic.stop()
    assert traffic.sent > 10 and traffic.failures == []
    assert len([line for line in lines if "replaced by pid" in line]) == 2


def test_the_control_endpoint_takes_a_region_down_and_brings_it_back(app: tuple[LocalApp, list[str]]) -> None:
    local, lines = app
    control: ControlServer = open_control(0)
    control.serve(local)
    try:
        status, body = call(control.url, "GET", "/regions")
        assert status == 200 and set(body["regions"]) == {A, B}  # type: ignore[index]
        traffic = Traffic(local.urls[B])
        try:
            status, body = call(control.url, "POST", f"/regions/{A}", {"state": "down"})
            assert (status, body[A]["state"], body[A]["containers"]) == (200, "down", [])  # type: ignore[index]
            with pytest.raises(ConnectionRefusedError):
                call(local.urls[A], "GET", "/health")
            time.sleep(0.5)  # the supervisor leaves a region that is down alone
            assert local.status()[A]["containers"] == []
            status, body = call(control.url, "POST", f"/regions/{A}", {"state": "up"})
            assert (status, body[A]["state"], len(body[A]["containers"])) == (200, "up", 2)  # type: ignore[index]
            assert healthy(local.urls[A])
        finally:
            traffic.stop()
        assert traffic.sent > 5 and traffic.failures == []
        assert (
            f"{A}: taken down (2 container(s) killed, port {local.urls[A].rpartition(':')[2]} closed)"
            in lines
        )
        # Refusals: a web page cannot post JSON cross-origin without a preflight, so JSON is required.
        conn = http.client.HTTPConnection("127.0.0.1", int(control.url.rpartition(":")[2]), timeout=10)
        conn.request("POST", f"/regions/{A}", body="state=down", headers={"Content-Type": "text/plain"})
        assert conn.getresponse().status == 415
        conn.close()
        assert call(control.url, "POST", f"/regions/{A}", {"state": "sideways"})[0] == 400
        assert call(control.url, "POST", "/regions/nowhere", {"state": "down"})[0] == 404
        # DNS rebinding: a page at an attacker's name resolving to 127.0.0.1 sends that name as Host.
        port = int(control.url.rpartition(":")[2])
        for host in (f"rebind.example:{port}", "127.0.0.1", f"localhost:{port}", f"127.0.0.1:{port + 1}", ""):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.putrequest("POST", f"/regions/{A}", skip_host=True)
            if host:
                conn.putheader("Host", host)
            payload = json.dumps({"state": "down"}).encode()
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(payload)))
            conn.endheaders(payload)
            refused = conn.getresponse()
            assert refused.status == 421, host
            assert refused.getheader("Content-Type") == "application/json"
            assert f"http://127.0.0.1:{port}" in json.loads(refused.read())["message"]
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/regions", headers={"Host": host or "rebind.example"})
            assert conn.getresponse().status == 421
            conn.close()
        assert local.status()[A]["state"] == "up"
        assert healthy(local.urls[A])
    finally:
        control.close()


# ---------------------------------------------------------------- the drill against python -m local


@pytest.fixture
def running_local(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``python -m local`` with its own PostgreSQL and authentication on; its control URL and the
    environment that finds its issuer."""
    env = local_env(tmp_path / "issuer.json")
    with python_m_local(["--ports", "drill-a=0 drill-b=0", "--no-sample-data"], env) as local:
        control = local.wait_for(r"control: (http://\S+)/regions").group(1)
        local.keep_reading()
        yield control, env
    assert local.proc.returncode == 0, "".join(local.output)


def drill(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.drill", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_drill_passes_against_the_running_local_app(running_local: tuple[str, dict[str, str]]) -> None:
    control, env = running_local
    result = drill(env, "--control", control, "--down", "drill-b", "--outage", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = re.findall(r"^\+\s*([\d.]+) s  (PASS|FAIL)  (\S+)", result.stdout, re.MULTILINE)
    assert [(status, name) for _, status, name in steps] == [
        ("PASS", name)
        for name in (
            "discover",
            "take-down",
            "outage-confirmed",
            "survivor-writes",
            "bring-up",
            "outage-visible",
            "survivor-probes",
            "identity-down",
            "sign-in-replica",
            "refresh-replica",
            "identity-up",
            "cleanup",
        )
    ]
    at = [float(offset) for offset, _, _ in steps]
    assert at == sorted(at) and at[-1] >= 1  # a timeline, with the outage held for --outage
    assert "drill-b goes down, drill-a keeps serving" in result.stdout
    assert "drill: passed all 12 steps" in result.stdout
    # The identity steps: sign-in and refresh served by the replica's region, tokens taken by both APIs.
    assert (
        "signed in through the domain in drill-b; the ID token is accepted in drill-b, drill-a"
        in result.stdout
    )
    assert "drill-a's Cognito answered 503, drill-b's renewed the ID token" in result.stdout
    identity = call(control, "GET", "/identity")[1]
    assert identity["regions"] == {"drill-a": "up", "drill-b": "up"}  # type: ignore[index]
    assert identity["domain"]["region"] == "drill-a"  # type: ignore[index]
    # Both regions are up again, and the drill left no user behind (the app started without samples).
    body = call(control, "GET", "/regions")[1]
    assert {r["state"] for r in body["regions"].values()} == {"up"}  # type: ignore[index]
    token = LocalIssuer.load(Path(env["LOCAL_ISSUER_FILE"])).token("test-admin", admin=True)
    url = body["regions"]["drill-a"]["url"]  # type: ignore[index]
    assert call(url, "GET", "/users", headers={"Authorization": f"Bearer {token}"}) == (
        200,
        {"items": [], "next_cursor": None},
    )


def test_the_drill_names_the_step_that_failed(running_local: tuple[str, dict[str, str]]) -> None:
    control, env = running_local
    assert call(control, "POST", "/regions/drill-a", {"state": "down"})[0] == 200
    result = drill(env, "--control", control, "--down", "drill-b")
    assert result.returncode == 1
    assert "FAIL  discover" in result.stdout and "drill-a not up before the drill" in result.stdout
    assert result.stdout.rstrip().endswith("drill: FAILED at discover")
    assert call(control, "GET", "/regions")[1]["regions"]["drill-b"]["state"] == "up"  # type: ignore[index]
    assert call(control, "POST", "/regions/drill-a", {"state": "up"})[0] == 200
    # The primary's identity down before the drill: refused the same way, nothing taken down.
    assert call(control, "POST", "/identity/drill-a", {"state": "down"})[0] == 200
    result = drill(env, "--control", control, "--down", "drill-b")
    assert result.returncode == 1 and "the identity of drill-a is down before the drill" in result.stdout
    assert call(control, "GET", "/regions")[1]["regions"]["drill-b"]["state"] == "up"  # type: ignore[index]
    unreachable = drill(env, "--control", "http://127.0.0.1:9")
    assert unreachable.returncode == 1 and "no control endpoint at http://127.0.0.1:9" in unreachable.stdout


def test_a_container_that_keeps_dying_is_replaced_with_a_pause(app: tuple[LocalApp, list[str]]) -> None:
    """A crash loop must not become a fork loop: quick deaths in a row delay the next start."""
    local, lines = app
    seen = set(local.status()[A]["containers"])

    def kill_newest() -> None:
        containers = local.status()[A]["containers"]
        newest = [pid for pid in containers if pid not in seen] or containers
        seen.update(containers)
        os.kill(newest[0], signal.SIGKILL)

    for kills in range(1, 4):  # the newest container dies young each time
        kill_newest()
        wait_until(lambda: local.status()[A]["replaced"] == kills, what=f"replacement {kills}")  # noqa: B023
        if "keeps dying" in lines[-1]:
            break
    assert re.search(r"it keeps dying, next replacement after \d+ s$", lines[-1]), lines
    replaced = local.status()[A]["replaced"]
    kill_newest()
    time.sleep(1)
    assert local.status()[A]["replaced"] == replaced  # still pausing
    wait_until(lambda: local.status()[A]["replaced"] == replaced + 1, what="the replacement after the pause")
    wait_until(lambda: healthy(local.urls[A]), what=f"{A} healthy again")


def test_every_answer_names_the_region_that_served_it(app: tuple[LocalApp, list[str]]) -> None:
    """The function's answers, the edge's own (an unknown route, a bad request line) and the preflight
    all carry X-Served-Region, as the deployed API's answers and gateway responses do."""
    local, _ = app
    for region in (A, B):
        port = int(local.urls[region].rpartition(":")[2])
        for method, path in (
            ("GET", "/health"),
            ("GET", "/users"),
            ("GET", "/nowhere"),
            ("OPTIONS", "/users"),
        ):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(method, path)
                response = conn.getresponse()
                response.read()
                assert response.getheader("X-Served-Region") == region, (
                    region,
                    method,
                    path,
                    response.status,
                )
            finally:
                conn.close()


def test_the_drill_fails_an_answer_that_names_another_region_or_none() -> None:
    from tools.drill import Drill, DrillFailure
    from tools.smoke import Region, Reply

    region = Region("us-east-2", "http://127.0.0.1:8002")
    Drill.served_by(region, Reply(200, {}, "us-east-2"))
    for named in ("us-east-1", None):
        with pytest.raises(DrillFailure, match="in X-Served-Region, not us-east-2"):
            Drill.served_by(region, Reply(200, {}, named))
