"""The whole application on one machine, no cloud: ``make dev`` (``python -m local``).

Starts a throwaway PostgreSQL (or uses DATABASE_URL), applies migrations/ with the shared runner, loads
three sample users (local mode only, idempotently), and serves the same Lambda handler as two regions:
us-east-1 on http://127.0.0.1:8001 and us-east-2 on http://127.0.0.1:8002 (PORTS or --ports change
that). A container that dies is replaced; a region can be taken down and brought back through the
control endpoint (http://127.0.0.1:8000/regions, CONTROL_PORT); neither ever stops the other region or
the database. The web client (web/) is served at http://127.0.0.1:8080/ (WEB_PORT or --web-port), with
the local issuer's sign-in page, and both regions allow its origin (CORS). Each region has its own
Cognito (the pool in the first, its replica in the others, local/identity.py): the control endpoint can
take one down (POST /identity/<region>) and sign-in fails over to the other. Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stop the containers and the PostgreSQL it
started, and remove that server's folder. A start that fails says why in one line and leaves nothing.

Authentication is on, as on AWS: a local issuer (local/auth.py) made for this run signs ID tokens
(``python -m local.token --sub alice --email alice@example.com [--admin]``) and each region checks them
as API Gateway's Cognito authorizer would. ``--no-auth`` is the opt-out (every caller an anonymous
administrator, as a stack deployed with ``authMode: none``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys

import psycopg

from local.auth import LocalIssuer, issuer_file, remove_run_file, write_run_file
from local.control import ControlServer, open_control
from local.database import (
    StartError,
    app_role_url,
    check_database_url,
    connect,
    migrate,
    one_line,
    where,
)
from local.identity import LocalIdentity, region_view_env
from local.launcher import LocalApp, LocalAppError, start_local_app
from local.oauth import LocalOAuth
from local.ports import control_port_setting, parse_ports, ports_setting
from local.postgres import LocalPostgres, PostgresError
from local.web import WebServer, open_web, web_port_setting
from scripts.build_web import WEB_DIR, build_web

SAMPLE_USERS = (
    ("John Doe", "john@example.com"),
    ("Jane Smith", "jane@example.com"),
    ("Bob Johnson", "bob@example.com"),
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def load_sample_users(conn: psycopg.Connection) -> int:
    """Insert the sample users unless their emails exist already; returns how many were inserted."""
    values = ", ".join(["(%s, %s)"] * len(SAMPLE_USERS))
    params = [item for user in SAMPLE_USERS for item in user]
    cur = conn.execute(
        f"INSERT INTO users (name, email) VALUES {values} ON CONFLICT (email) DO NOTHING", params
    )
    return cur.rowcount


def web_identity(web: WebServer, issuer: LocalIssuer | None, app: LocalApp) -> LocalIdentity | None:
    """Each region's Cognito for the web client's origin, the first region's the primary (none with
    --no-auth); the managed-login domain follows the primary region's health as the launcher sees it."""
    if issuer is None:
        return None
    oauth = LocalOAuth(issuer, frozenset({web.redirect_uri}), frozenset({web.sign_out_uri}))
    return LocalIdentity(oauth, list(app.regions), web.origin, healthy=app.is_up)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ports",
        metavar="SPEC",
        help='regions and ports, like "us-east-1=9001 us-east-2=9002" (default: $PORTS, else '
        '"us-east-1=8001 us-east-2=8002"; port 0 = a free one)',
    )
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        metavar="NAME=PORT",
        help="one region to serve (repeat); an alternative to --ports",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        help="port of the control endpoint on 127.0.0.1 (default: $CONTROL_PORT, else 8000; 0 = a free one)",
    )
    parser.add_argument(
        "--web-port",
        type=int,
        help="port of the web client on 127.0.0.1 (default: $WEB_PORT, else 8080; 0 = a free one)",
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
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without authentication: every caller is an anonymous administrator (demos only)",
    )
    args = parser.parse_args(argv)
    if args.ports and args.regions:
        parser.error("give either --ports or --region, not both")
    try:
        args.regions = parse_ports(" ".join(args.regions) if args.regions else ports_setting(args.ports))
        args.control_port = control_port_setting(args.control_port)
        args.web_port = web_port_setting(args.web_port)
    except ValueError as exc:
        parser.error(str(exc))
    if args.control_port and args.control_port in (port for _, port in args.regions):
        parser.error(f"the control port {args.control_port} is also a region's port (PORTS): choose another")
    if args.containers < 1:
        parser.error("--containers must be at least 1")
    return args


def print_running(
    described: str,
    role_note: str,
    app: LocalApp,
    control: ControlServer,
    web: WebServer,
    control_port: int,
    issuer: LocalIssuer | None,
    missing_reference: list[str],
) -> None:
    """What runs where, and the first commands to try."""
    print(f"database: {described}, {role_note}")
    print("users API running (Ctrl-C to stop):")
    for region, url in app.urls.items():
        print(f"  {region}: {url}   try: curl {url}/health")
    print(f"  control: {control.url}/regions   (take a region down or up: docs/local.md)")
    if issuer is not None:
        names = list(app.urls)
        print(
            f"  identity: the user pool in {names[0]}, its replica in {', '.join(names[1:]) or 'none'}; "
            f"{control.url}/identity   (take one down: docs/local.md)"
        )
    print(f"web client: {web.origin}/   (docs/web-client.md)")
    if missing_reference:
        print("  its API reference page needs Swagger UI: install npm, then run make web")
    print(f"  tools (local.token, tools.smoke, tools.drill) find this run by CONTROL_PORT={control_port}")
    if issuer is None:
        print("authentication: OFF (--no-auth): every caller is an anonymous administrator")
    else:
        print(
            "authentication: on (docs/handler.md). An ID token from this run's issuer:\n"
            f"  TOKEN=$(CONTROL_PORT={control_port} .venv/bin/python -m local.token --sub alice "
            "--email alice@example.com)\n"
            f'  curl -H "Authorization: Bearer $TOKEN" {next(iter(app.urls.values()))}/users/me'
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def request_stop(*_: object) -> None:
        raise KeyboardInterrupt

    # Set explicitly: a shell that starts us in the background leaves SIGINT ignored, and closing the
    # terminal (SIGHUP) must clean up like Ctrl-C rather than leave PostgreSQL and its folder behind.
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    external_url = os.environ.get("DATABASE_URL")
    server: LocalPostgres | None = None
    app: LocalApp | None = None
    control: ControlServer | None = None
    web: WebServer | None = None
    issuer = None if args.no_auth else LocalIssuer.create()
    run_id = secrets.token_urlsafe(12)  # names this run to the tools (local/auth.py write_run_file)
    run_file = None
    try:
        control = open_control(args.control_port)  # a port in use fails before anything is started
        web = open_web(args.web_port)
        if external_url:
            check_database_url(external_url)
            admin_url, source = external_url, "DATABASE_URL"
            described = f"{where(external_url)} from DATABASE_URL"
        else:
            server = LocalPostgres().start()
            admin_url, source = server.url, "the throwaway PostgreSQL"
            described = f"a throwaway PostgreSQL in {server.workdir}"
        with connect(admin_url, source) as conn:
            migrate(conn)
            if not args.no_sample_data:
                print(f"sample users loaded: {load_sample_users(conn)} new")
            app_url, role_note = app_role_url(admin_url, conn, source)
        app = start_local_app(
            app_url,
            args.regions,
            containers=args.containers,
            env={
                "CORS_ALLOW_ORIGINS": ",".join(filter(None, [web.origin, args.cors_allow_origins])),
            },
            # Each region validates tokens with its own identity's published keys (the same everywhere).
            region_env={name: region_view_env(issuer) for name, _ in args.regions},
        )
        # One file per run, found by the run's control port: python -m local.token, tools.smoke and
        # tools.drill read it (the issuer's key too, unless --no-auth).
        control_port = int(control.url.rpartition(":")[2])
        run = {"id": run_id, "control_url": control.url, "regions": dict(app.urls), "pid": os.getpid()}
        run_file = issuer_file(control_port)
        write_run_file(run_file, run, issuer)
        identity = web_identity(web, issuer, app)
        control.serve(app, run_id=run_id, identity=identity)
        missing_reference = build_web(require_reference=False)  # web/ completed: the API document
        web.serve(WEB_DIR, app.urls, identity)
        print_running(described, role_note, app, control, web, control_port, issuer, missing_reference)
        sys.stdout.flush()
        while True:
            signal.pause()  # the supervisor thread replaces containers; a stop signal ends this
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    except (StartError, PostgresError, LocalAppError) as exc:
        print(f"cannot start: {one_line(exc)}", file=sys.stderr, flush=True)
        return 1
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        if control is not None:
            control.close()
        if web is not None:
            web.close()
        if app is not None:
            app.stop()
        if run_file is not None:
            remove_run_file(run_file, run_id)
        if server is not None:
            server.stop()  # only now, with no region left running, is the data removed
            print("PostgreSQL stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
