"""The local application's database: DATABASE_URL checked, migrations applied, and the role the handler
logs in as chosen, each failure one line that says what failed and how to fix it.

Migrations run as the URL's user (or the throwaway server's superuser). The handler then logs in as
``users_api``, the role the functions use on AWS, whenever that role exists on the server, with the
URL's other parameters (host, port, database, TLS...) and without its password, which belongs to
another user: libpq finds ``users_api``'s own in ~/.pgpass (PGPASSFILE) when the server wants one.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migrations.runner import Dialect, MigrationError, apply_migrations, load_migrations

APP_ROLE = "users_api"
CONNECT_TIMEOUT_S = 10


class StartError(RuntimeError):
    """The local application cannot start; the message is one line: what failed, then the fix."""


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def check_database_url(url: str) -> None:
    """Refuse a DATABASE_URL that libpq cannot parse, naming the variable and never echoing a password."""
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StartError(
            f"DATABASE_URL is not a PostgreSQL URL or connection string ({_redact(str(exc))}): write it like "
            "postgresql://USER@HOST:5432/DBNAME, or unset DATABASE_URL to use a throwaway server"
        ) from None


def _redact(message: str) -> str:
    """libpq's parse error with every quoted fragment of the value hidden unless it is an option name:
    a fragment could be part of a password."""
    keywords = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    return re.sub(r'"([^"]*)"', lambda m: m.group(0) if m.group(1) in keywords else '"..."', message)


def where(url: str) -> str:
    """host:port/dbname of a connection string, for messages (never the user's password)."""
    params = conninfo_to_dict(url)
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{params.get('dbname') or 'postgres'}"


def connect(url: str, source: str) -> psycopg.Connection:
    """An autocommit connection, or StartError naming ``source`` (e.g. DATABASE_URL) and the fix."""
    if "connect_timeout" not in conninfo_to_dict(url):
        url = make_conninfo(url, connect_timeout=CONNECT_TIMEOUT_S)  # never hang on an unreachable host
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StartError(
            f"cannot connect to {source} ({where(url)}): {one_line(exc)}; start that server or fix "
            f"{source}" + (" (unset it to use a throwaway server)" if source == "DATABASE_URL" else "")
        ) from None


def migrate(conn: psycopg.Connection) -> None:
    try:
        apply_migrations(conn, load_migrations(), Dialect.POSTGRES)
    except MigrationError as exc:
        raise StartError(f"migrations/ could not be applied: {one_line(exc)}") from None
    except psycopg.Error as exc:
        raise StartError(
            f"migrations/ could not be applied: {one_line(exc)}; the user in the URL needs to create "
            "tables and roles (a superuser, or the database's owner with CREATEROLE)"
        ) from None


def app_role_url(admin_url: str, conn: psycopg.Connection, source: str) -> tuple[str, str]:
    """The connection string the handler uses, and a line saying which role that is and why."""
    row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
    admin_user = conninfo_to_dict(admin_url).get("user") or "the default user"
    if row is None:
        return admin_url, (
            f"serving as {admin_user}: role {APP_ROLE} does not exist on that server, so the privileges "
            "differ from AWS's (the migrations create it when the URL's user may create roles)"
        )
    params = {k: v for k, v in conninfo_to_dict(admin_url).items() if k != "password"}
    params["user"] = APP_ROLE
    app_url = make_conninfo("", **params)
    try:
        psycopg.connect(app_url, connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg.OperationalError as exc:
        fix = (
            f"run ALTER ROLE {APP_ROLE} LOGIN"
            if not row[0]
            else f"allow {APP_ROLE} in pg_hba.conf (e.g. 'host all {APP_ROLE} 127.0.0.1/32 trust') or give it "
            "a password and put it in ~/.pgpass"
        )
        raise StartError(
            f"role {APP_ROLE} cannot log in to {source} ({where(app_url)}): {one_line(exc)}; {fix}"
        ) from None
    return app_url, f"serving as {APP_ROLE}, the role the function uses on AWS"
