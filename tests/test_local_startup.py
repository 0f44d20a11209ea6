"""Starting and stopping ``python -m local`` (the main job) for real: SIGHUP stops everything like Ctrl-C,
every start-up failure is one line that says what failed and how to fix it and leaves nothing behind,
and with DATABASE_URL the handler logs in as users_api when that role exists."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from local.__main__ import parse_args
from local.ports import parse_ports
from local.postgres import LocalPostgres, PostgresError
from migrations.runner import Dialect, apply_migrations, load_migrations

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scratch_tmp() -> Iterator[Path]:
    """The TMPDIR of one run, where its throwaway PostgreSQL makes its folder. Not pytest's tmp_path:
    PostgreSQL runs as the 'postgres' user under root, and must be able to enter it."""
    path = Path(tempfile.mkdtemp(prefix="local-start-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def local_env(tmpdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORTS", "CONTROL_PORT", "PG_BINDIR")
    }
    env.update(TMPDIR=str(tmpdir), CONTROL_PORT="0", WEB_PORT="0", **extra)
    return env


def run_local(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local", "--no-auth", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cannot start: ")
    return lines[0]


def assert_nothing_left(tmpdir: Path) -> None:
    assert list(tmpdir.iterdir()) == []  # no PostgreSQL folder
    # No server still running on a data directory in it (the postmaster's command line names it).
    leftover = subprocess.run(["pgrep", "-f", str(tmpdir)], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state not in ("Z", "X")


class Running:
    """``python -m local`` in the background, its output collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local", "--no-auth", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.output)}")

    def stop(self, signum: int, timeout: float = 60) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def test_sighup_stops_containers_and_postgres_and_removes_the_folder(scratch_tmp: Path) -> None:
    """Closing the terminal used to kill the launcher and leave PostgreSQL running with its folder."""
    run = Running(local_env(scratch_tmp), "--ports", "hup-1=0 hup-2=0", "--containers", "2")
    started: list[int] = []
    try:
        workdir = Path(run.wait_for(r"a throwaway PostgreSQL in (\S+),").group(1))
        control = run.wait_for(r"control: (http://\S+)/regions").group(1)
        postmaster = int((workdir / "data" / "postmaster.pid").read_text().split()[0])
        started.append(postmaster)
        with urllib.request.urlopen(f"{control}/regions", timeout=10) as response:  # noqa: S310 - loopback
            regions = json.load(response)["regions"]
        containers = [pid for region in regions.values() for pid in region["containers"]]
        started += containers
        urls = [region["url"] for region in regions.values()]
        assert len(containers) == 4 and alive(postmaster)
        assert run.stop(signal.SIGHUP) == 0
        deadline = time.monotonic() + 10  # the launcher waited for them; allow for the reaping
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(postmaster)
        assert not any(alive(pid) for pid in containers)
        assert_nothing_left(scratch_tmp)
        for url in urls:
            host, port = url.removeprefix("http://").split(":")
            with socket.socket() as sock:
                assert sock.connect_ex((host, int(port))) != 0
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
        for pid in started:  # when the test fails, what it started must not outlive it
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_initdb_failure_is_one_line_and_leaves_no_folder(scratch_tmp: Path) -> None:
    bindir = scratch_tmp / "broken-bin"
    bindir.mkdir()
    for tool in ("initdb", "pg_ctl"):
        script = bindir / tool
        script.write_text(
            '#!/bin/sh\necho "$0: error: could not create directory: No space left on device" >&2\nexit 1\n'
        )
        script.chmod(0o755)
    runs = scratch_tmp / "runs"
    runs.mkdir(mode=0o755)
    runs.chmod(0o755)
    line = one_error_line(run_local(local_env(runs, PG_BINDIR=str(bindir))))
    assert "initdb failed" in line and "No space left on device" in line
    assert "PG_BINDIR" in line and "DATABASE_URL" in line  # the ways out
    assert_nothing_left(runs)


def test_pg_ctl_failure_is_one_line_and_leaves_no_folder(
    scratch_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PostgresError) as failure:
            LocalPostgres(port).start()
    message = str(failure.value)
    assert "\n" not in message
    assert f"port {port} is taken" in message and "Address already in use" in message
    assert_nothing_left(scratch_tmp)


@pytest.mark.parametrize("which", ["region", "control", "web"])
def test_a_port_in_use_is_one_line_and_stops_what_was_started(scratch_tmp: Path, which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = {
            "region": ["--ports", f"busy-1={port}"],
            "control": ["--control-port", str(port), "--ports", "busy-1=0"],
            "web": ["--web-port", str(port), "--ports", "busy-1=0"],
        }[which]
        line = one_error_line(run_local(local_env(scratch_tmp), *args))
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert {"region": "PORTS or --ports", "control": "CONTROL_PORT", "web": "WEB_PORT"}[which] in line
    assert_nothing_left(scratch_tmp)  # the PostgreSQL it had started is stopped and removed


def test_a_malformed_database_url_is_one_line_naming_it_without_the_password(scratch_tmp: Path) -> None:
    env = local_env(scratch_tmp, DATABASE_URL="postgresql://app:s3cr%zzet@db.example:5432/users")
    line = one_error_line(run_local(env))
    assert "DATABASE_URL is not a PostgreSQL URL" in line and "unset DATABASE_URL" in line
    assert "s3cr" not in line
    assert_nothing_left(scratch_tmp)


def test_an_unreachable_database_is_one_line_naming_the_server(scratch_tmp: Path) -> None:
    port = free_port()
    env = local_env(scratch_tmp, DATABASE_URL=f"postgresql://someone:hunter2@127.0.0.1:{port}/postgres")
    line = one_error_line(run_local(env))
    assert f"cannot connect to DATABASE_URL (127.0.0.1:{port}/postgres)" in line
    assert "Connection refused" in line and "hunter2" not in line


def test_a_migration_failure_is_one_line(scratch_tmp: Path, migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = '0001_create_users.sql'")
    line = one_error_line(run_local(local_env(scratch_tmp, DATABASE_URL=migrated_database_url)))
    assert (
        line.startswith("cannot start: migrations/ could not be applied: ")
        and "0001_create_users.sql" in line
    )


def test_with_database_url_the_handler_logs_in_as_users_api(
    scratch_tmp: Path, migrated_database_url: str
) -> None:
    run = Running(local_env(scratch_tmp, DATABASE_URL=migrated_database_url), "--ports", "role-1=0")
    try:
        said = run.wait_for(r"^database: .*")
        url = run.wait_for(r"role-1: (http://\S+)").group(1)
        assert "serving as users_api" in said.group(0)
        with urllib.request.urlopen(f"{url}/users?limit=1", timeout=10) as response:  # noqa: S310 - loopback
            assert response.status == 200
        with psycopg.connect(migrated_database_url) as conn:
            users = {
                row[0]
                for row in conn.execute(
                    "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            }
        assert users == {"users_api"}
        assert run.stop(signal.SIGTERM) == 0
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    with psycopg.connect(migrated_database_url) as conn:  # DATABASE_URL's data is never removed
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)


def test_a_users_api_role_that_cannot_log_in_is_one_line_with_the_fix(scratch_tmp: Path) -> None:
    with LocalPostgres() as server:  # its own server: the role is server-wide, other tests use theirs
        with psycopg.connect(server.url, autocommit=True) as conn:
            apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
            conn.execute("ALTER ROLE users_api NOLOGIN")
        line = one_error_line(run_local(local_env(scratch_tmp, DATABASE_URL=server.url)))
    assert "role users_api cannot log in to DATABASE_URL" in line
    assert "ALTER ROLE users_api LOGIN" in line


# ---------------------------------------------------------------- the PORTS setting


def test_ports_are_read_from_the_option_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PORTS", raising=False)
    monkeypatch.delenv("CONTROL_PORT", raising=False)
    assert parse_args([]).regions == [("us-east-1", 8001), ("us-east-2", 8002)]
    assert parse_args([]).control_port == 8000
    monkeypatch.setenv("PORTS", "us-east-1=9001, us-east-2=9002")
    monkeypatch.setenv("CONTROL_PORT", "9000")
    args = parse_args([])
    assert (args.regions, args.control_port) == ([("us-east-1", 9001), ("us-east-2", 9002)], 9000)
    assert parse_args(["--ports", "eu-west-1=7001"]).regions == [("eu-west-1", 7001)]
    assert parse_args(["--region", "a=1", "--region", "b=2"]).regions == [("a", 1), ("b", 2)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("us-east-1", "is not REGION=PORT"),
        ("us-east-1=99999", "is not REGION=PORT"),
        ("US_EAST=1", "is not REGION=PORT"),
        ("a=1 a=2", "named twice"),
        ("", "no regions given"),
    ],
)
def test_bad_ports_say_what_is_wrong_and_the_syntax(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ports(spec)


def test_make_dev_hands_ports_to_the_app() -> None:
    make = shutil.which("make")
    assert make, "make is needed (Debian: apt-get install make)"
    # Not a sub-make of `make test`: no inherited flags, no "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PORTS")}
    dry_run = subprocess.run(
        [make, "--no-print-directory", "-n", "dev", "PORTS=us-east-1=9001 us-east-2=9002"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    [command] = [line for line in dry_run.stdout.splitlines() if " -m local" in line]
    assert command.endswith("-m local --ports 'us-east-1=9001 us-east-2=9002'")
