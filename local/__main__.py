"""The whole application on one machine, no cloud: ``make dev`` (``python -m local``).

Starts a throwaway PostgreSQL (or uses DATABASE_URL), applies migrations/ with the shared runner, loads
three sample users (local mode only, idempotently), and serves the same Lambda handler as two regions:
us-east-1 on http://127.0.0.1:8001 and us-east-2 on http://127.0.0.1:8002. Ctrl-C or SIGTERM stops the
containers and the PostgreSQL it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import psycopg
from psycopg.conninfo import make_conninfo

from local.launcher import DEFAULT_REGIONS, LocalAppError, start_local_app
from local.postgres import LocalPostgres, PostgresNotFound
from migrations.runner import Dialect, MigrationError, apply_migrations, load_migrations

APP_ROLE = "users_api"
SAMPLE_USERS = (
    ("John Doe", "john@example.com"),
    ("Jane Smith", "jane@example.com"),
    ("Bob Johnson", "bob@example.com"),
)


def load_sample_users(conn: psycopg.Connection) -> int:
    """Insert the sample users unless their emails exist already; returns how many were inserted."""
    values = ", ".join(["(%s, %s)"] * len(SAMPLE_USERS))
    params = [item for user in SAMPLE_USERS for item in user]
    cur = conn.execute(
        f"INSERT INTO users (name, email) VALUES {values} ON CONFLICT (email) DO NOTHING", params
    )
    return cur.rowcount


def _region(value: str) -> tuple[str, int]:
    name, sep, port = value.partition("=")
    if not sep or not name or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT (like us-east-1=8001), got {value!r}")
    return name, int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        type=_region,
        metavar="NAME=PORT",
        help="a region to serve (repeat; default: us-east-1=8001 and us-east-2=8002)",
    )
    parser.add_argument(
        "--containers", type=int, default=1, help="container processes per region (default: 1)"
    )
    parser.add_argument("--no-sample-data", action="store_true", help="do not load the three sample users")
    parser.add_argument(
        "--cors-allow-origins",
        default=os.environ.get("CORS_ALLOW_ORIGINS", ""),
        help="comma-separated origins allowed to call the API from a browser (default: none)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    regions = args.regions or list(DEFAULT_REGIONS)

    def request_stop(*_: object) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    external_url = os.environ.get("DATABASE_URL")
    server: LocalPostgres | None = None
    app = None
    try:
        if external_url:
            admin_url = app_url = external_url
        else:
            server = LocalPostgres().start()
            admin_url = server.url
            # Same privileges as on AWS: the handler logs in as the least-privilege role, not a superuser.
            app_url = make_conninfo(server.url, user=APP_ROLE)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            apply_migrations(conn, load_migrations(), Dialect.POSTGRES)
            if not args.no_sample_data:
                print(f"sample users loaded: {load_sample_users(conn)} new")
        app = start_local_app(
            app_url, regions, containers=args.containers, env={"CORS_ALLOW_ORIGINS": args.cors_allow_origins}
        )
        print("users API running (Ctrl-C to stop):")
        for region, url in app.urls.items():
            print(f"  {region}: {url}   try: curl {url}/users")
        sys.stdout.flush()
        while not app.dead_containers():
            time.sleep(0.5)
        print(f"stopping: container(s) exited: {', '.join(app.dead_containers())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
        return 0
    except (MigrationError, LocalAppError, PostgresNotFound, psycopg.OperationalError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if app is not None:
            app.stop()
        if server is not None:
            server.stop()
            print("PostgreSQL stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
