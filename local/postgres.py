"""A throwaway PostgreSQL server on loopback, for the local application and the tests.

It runs Debian's PostgreSQL binaries (``initdb``, ``pg_ctl``) on a fresh data directory in a temporary
folder, with trust authentication on 127.0.0.1 only, and removes everything on stop. ``initdb`` refuses
to run as root, so as root the server runs as the ``postgres`` system user that Debian's package creates.

    python -m local.postgres            # start, print DATABASE_URL, stop on Ctrl-C or SIGTERM
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUPERUSER = "postgres"


class PostgresNotFound(RuntimeError):
    pass


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: PG_BINDIR, then pg_config, then Debian's layout."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
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


class LocalPostgres:
    """Start with ``start()`` (or ``with LocalPostgres() as pg:``), connect with ``pg.url``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.bindir = find_bindir()
        self.workdir: Path | None = None
        self._run_as: str | None = SUPERUSER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self._run_as,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def start(self) -> LocalPostgres:
        self.workdir = Path(tempfile.mkdtemp(prefix="users-api-pg-"))
        if self._run_as:
            try:
                account = pwd.getpwnam(self._run_as)
            except KeyError:
                raise PostgresNotFound(
                    "running as root needs the 'postgres' system user (Debian's postgresql package "
                    "creates it), because initdb refuses to run as root"
                ) from None
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        data = self.workdir / "data"
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = self.workdir / "server.log"
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self.workdir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.workdir / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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

    with LocalPostgres(args.port) as server:
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        print(f"DATABASE_URL={server.url}", flush=True)
        if args.url_file:
            Path(args.url_file).write_text(server.url + "\n")
        while not stop_requested:
            signal.pause()
    print("PostgreSQL stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
