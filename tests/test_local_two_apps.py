"""Two local apps of one user side by side (other PORTS, other CONTROL_PORT, as docs/local.md suggests):
each run keeps its own issuer, found by its control port, so ``python -m local.token``, the smoke
command and the drill reach the run meant, and stopping one app leaves the other's tokens working."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.local_process import LocalProcess, python_m_local

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, path: str, token: str | None = None) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class Run:
    """One ``python -m local`` with its own control port, and the environment a developer's shell has."""

    control_port: int
    env: dict[str, str]
    local: LocalProcess
    stack: ExitStack
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def proc(self) -> subprocess.Popen[str]:
        return self.local.proc

    def stop(self) -> None:
        self.stack.close()

    def tool(self, *args: str, control_port: int | None = None) -> subprocess.CompletedProcess[str]:
        """A tool run from this run's shell (CONTROL_PORT set), or with another control port."""
        env = dict(self.env)
        if control_port is not None:
            env["CONTROL_PORT"] = str(control_port)
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def token(self) -> str:
        result = self.tool("local.token", "--sub", "admin-of-run", "--admin")
        assert result.returncode == 0, result.stderr
        assert f"control endpoint http://127.0.0.1:{self.control_port}" in result.stderr, result.stderr
        return result.stdout.strip()


def start_run(runtime_dir: Path, database_url: str, names: tuple[str, str]) -> Run:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PORTS", "LOCAL_ISSUER_FILE")}
    env.update(
        CONTROL_PORT=str(port),
        WEB_PORT="0",  # each run its own web client port (two apps cannot share 8080)
        XDG_RUNTIME_DIR=str(runtime_dir),
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
    )
    args = ["--ports", f"{names[0]}=0 {names[1]}=0", "--no-sample-data"]
    with ExitStack() as starting:  # the run is stopped here only if its start fails
        local = starting.enter_context(python_m_local(args, env))
        local.wait_for("find this run by CONTROL_PORT")
        urls = dict(
            re.findall(r"^\s+([a-z0-9-]+): (http://127\.0\.0\.1:\d+)\s+try:", local.text, re.MULTILINE)
        )
        local.keep_reading()
        return Run(port, env, local, starting.pop_all(), urls)


@pytest.fixture
def two_runs(tmp_path: Path, migrated_database_url: str) -> Iterator[tuple[Run, Run]]:
    first = start_run(tmp_path, migrated_database_url, ("one-a", "one-b"))
    try:
        second = start_run(tmp_path, migrated_database_url, ("two-a", "two-b"))
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_two_apps_keep_their_own_issuers_before_and_after_one_stops(
    two_runs: tuple[Run, Run], tmp_path: Path
) -> None:
    first, second = two_runs
    files = sorted(p.name for p in tmp_path.glob("dsql-users-api-local-issuer-*.json"))
    assert files == sorted(
        f"dsql-users-api-local-issuer-{os.getuid()}-{run.control_port}.json" for run in (first, second)
    )
    first_token, second_token = first.token(), second.token()
    for run, token, other in ((first, first_token, second_token), (second, second_token, first_token)):
        for url in run.urls.values():
            assert get(url, "/users?limit=1", token) == 200
            assert get(url, "/users?limit=1", other) == 401  # the other run's issuer is another pool

    first.stop()
    assert first.proc.returncode == 0, first.local.text
    # The second run's key survived the first run's exit: old and new tokens work.
    for url in second.urls.values():
        assert get(url, "/users?limit=1", second_token) == 200
        assert get(url, "/users?limit=1", second.token()) == 200
    gone = second.tool("local.token", "--sub", "x", control_port=first.control_port)
    assert gone.returncode == 2 and "start the local app first" in gone.stderr


def test_the_smoke_command_and_the_drill_talk_to_the_run_of_their_control_port(
    two_runs: tuple[Run, Run],
) -> None:
    first, second = two_runs
    smoke = second.tool("tools.smoke")  # no PORTS: the regions of CONTROL_PORT's run
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert f"control endpoint http://127.0.0.1:{second.control_port}" in smoke.stdout
    assert "authentication: an admin token of the local app's issuer" in smoke.stdout
    assert all(f"{name} {url}" in smoke.stdout for name, url in second.urls.items())

    # PORTS of one run with the CONTROL_PORT of the other: refused, naming both.
    first_ports = " ".join(f"{name}={url.rpartition(':')[2]}" for name, url in first.urls.items())
    mixed = second.tool("tools.smoke", "--ports", first_ports)
    assert mixed.returncode == 2 and f"CONTROL_PORT={second.control_port}" in mixed.stderr, mixed.stderr

    # The drill against a control endpoint whose run file is another run's: nothing is taken down.
    # (--control's port alone would name the second run's own file, which matches: name the first's.)
    refused = first.tool(
        "tools.drill",
        "--control",
        f"http://127.0.0.1:{second.control_port}",
        "--control-port",
        str(first.control_port),
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "FAIL  discover" in refused.stdout and "another run answers there" in refused.stdout
    for run in (first, second):
        assert all(get(url, "/health") == 200 for url in run.urls.values())
