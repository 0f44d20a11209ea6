"""A throwaway PostgreSQL server on loopback, for the local application and the tests.

It runs Debian's PostgreSQL binaries (``initdb``, ``pg_ctl``) on a fresh data directory in a temporary
folder, with trust authentication on 127.0.0.1 only, and removes everything on stop. ``initdb`` refuses
to run as root, so as root the server runs as the ``postgres`` system user that Debian's package creates.

Durability: a commit is acknowledged only once its WAL has been written (``synchronous_commit=on``), so
a killed server loses no acknowledged commit and its own crash recovery replays the WAL on the next
start (``restart()``). ``fsync`` and ``full_page_writes`` only protect against an operating-system
crash or power loss, after which nothing reuses this data directory anyway (every start makes a new
one); they stay off because they cost start time and commit latency (docs/local.md, measured with
``python -m local.durability_bench``).

    python -m local.postgres            # start, print DATABASE_URL, stop on Ctrl-C, SIGTERM or SIGHUP
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

SUPERUSER = "postgres"
# What python -m local and the tests run with; local.durability_bench measures the alternatives.
DURABLE_SETTINGS: Mapping[str, str] = {
    "synchronous_commit": "on",
    "fsync": "off",
    "full_page_writes": "off",
}


class PostgresError(RuntimeError):
    """The throwaway server could not be set up; the one-line message says what failed and the fix."""


class PostgresNotFound(PostgresError):
    pass


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: PG_BINDIR (which must hold them), else pg_config, then
    Debian's layout."""
    explicit = os.environ.get("PG_BINDIR", "").strip()
    if explicit:
        # Named on purpose: another PostgreSQL found elsewhere would silently run instead.
        missing = [name for name in ("initdb", "pg_ctl") if not (Path(explicit) / name).is_file()]
        if missing:
            raise PostgresNotFound(
                f"PG_BINDIR={explicit} holds no PostgreSQL server binaries ({', '.join(missing)} missing): "
                "set it to the folder of initdb and pg_ctl (pg_config --bindir prints it), or unset it to "
                "let the usual places be searched"
            )
        return Path(explicit)
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them "
        "(Debian/Ubuntu: apt-get install postgresql), set PG_BINDIR to their folder, "
        "or set DATABASE_URL to an existing server."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_line(text: str) -> str:
    return " ".join(text.split())


class LocalPostgres:
    """Start with ``start()`` (or ``with LocalPostgres() as pg:``), connect with ``pg.url``.

    ``settings`` replaces DURABLE_SETTINGS (the benchmark compares them); ``sync_initdb`` lets initdb
    flush its files to disk, which only an operating-system crash during the first seconds needs.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        settings: Mapping[str, str] = DURABLE_SETTINGS,
        sync_initdb: bool = False,
    ) -> None:
        self.port = port or _free_port()
        self.bindir = find_bindir()
        self.settings = dict(settings)
        self.sync_initdb = sync_initdb
        self.workdir: Path | None = None
        self._run_as: str | None = SUPERUSER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        if self.workdir is None:
            raise PostgresError("the server has not been started")
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "server.log"

    def postmaster_pid(self) -> int | None:
        """The running postmaster's process id (first line of postmaster.pid), None when not running."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self._run_as,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if check and result.returncode != 0:
            reason = _first_error(result.stderr + result.stdout) or f"exit status {result.returncode}"
            raise PostgresError(f"{args[0]} failed: {reason}")
        return result

    def start(self) -> LocalPostgres:
        """Make a fresh data directory and start the server; on failure nothing is left behind."""
        self.workdir = Path(tempfile.mkdtemp(prefix="users-api-pg-"))
        try:
            if self._run_as:
                try:
                    account = pwd.getpwnam(self._run_as)
                except KeyError:
                    raise PostgresNotFound(
                        "running as root needs the 'postgres' system user (Debian's postgresql package "
                        "creates it), because initdb refuses to run as root"
                    ) from None
                os.chown(self.workdir, account.pw_uid, account.pw_gid)
            initdb = ["initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
            try:
                self._run(*initdb, *([] if self.sync_initdb else ["--no-sync"]))
            except PostgresError as exc:
                raise PostgresError(
                    f"{exc} (in {self.bindir}; reinstall PostgreSQL's server package, set PG_BINDIR "
                    "to a working installation, or set DATABASE_URL to an existing server)"
                ) from None
            self._start_server(timeout=60)
        except BaseException:
            self._discard()
            raise
        return self

    def _start_server(self, timeout: float) -> None:
        options = " ".join(
            [f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c max_connections=300"]
            + [f"-c {name}={value}" for name, value in self.settings.items()]
        )
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        args = ("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options)
        result = self._run(*args, "-w", "-t", str(int(timeout)), "start", check=False)
        if result.returncode != 0:
            log = _read(self.log_file)[log_offset:]
            reason = _first_error(log) or _first_error(result.stderr + result.stdout)
            hint = "see the reason above"
            if "already in use" in reason:
                hint = f"port {self.port} is taken: stop what uses it or choose another port"
            raise PostgresError(f"PostgreSQL did not start on port {self.port}: {reason} ({hint})")

    def restart(self, timeout: float = 30.0) -> LocalPostgres:
        """Start the server again on the same data directory, e.g. after it was killed: PostgreSQL's crash
        recovery replays the WAL. Retries while the killed server's last processes still hold its
        shared memory (they exit on their own once they notice the postmaster is gone)."""
        if self.postmaster_pid() is not None:
            stopped = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
            if stopped.returncode != 0 and self.postmaster_pid() is not None:
                raise PostgresError(f"cannot restart: the server in {self.data_dir} does not stop")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._start_server(timeout=max(5.0, deadline - time.monotonic()))
                return self
            except PostgresError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (if it still runs) and remove its folder."""
        if self.workdir is None:
            return
        try:
            if self.postmaster_pid() is not None:
                fast = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
                if fast.returncode != 0:
                    self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            self._discard()

    def _discard(self) -> None:
        if self.workdir is not None and self.postmaster_pid() is not None:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    """Whether the process runs; a killed postmaster stays a zombie until init reaps it."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except ProcessLookupError:
        return False
    except OSError:
        return True  # no /proc: kill(0) succeeded
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] ")


def _first_error(output: str) -> str:
    """The line of a tool's output or a server log that names the problem, whitespace collapsed."""
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in output.splitlines() if line.strip()]
    for marker in ("already in use", "FATAL:", "PANIC:", "ERROR:", "error:", "could not", "failed"):
        for line in lines:
            if marker in line:
                return _one_line(line)
    return _one_line(lines[-1]) if lines else ""


@contextmanager
def scratch_database(server_url: str, prefix: str = "scratch", *, migrated: bool = False) -> Iterator[str]:
    """A new database on the server (``migrations/`` applied when ``migrated``), dropped on exit.

    ``server_url``'s user must be allowed to create databases. Used by the tests and the benchmark so
    that each run works on its own data and leaves nothing behind.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(server_url, dbname=name)
        if migrated:
            from migrations.runner import Dialect, apply_migrations, load_migrations

            with psycopg.connect(url, autocommit=True) as conn:
                apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--url-file", help="also write DATABASE_URL to this file once the server is up")
    args = parser.parse_args()
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    # Closing the terminal (SIGHUP) must clean up like Ctrl-C, not leave the server and its folder.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    server: LocalPostgres | None = None
    try:
        server = LocalPostgres(args.port).start()
        print(f"DATABASE_URL={server.url}", flush=True)
        if args.url_file:
            Path(args.url_file).write_text(server.url + "\n")
        while not stop_requested:
            signal.pause()
    except PostgresError as exc:
        print(f"cannot start PostgreSQL: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    print("PostgreSQL stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
