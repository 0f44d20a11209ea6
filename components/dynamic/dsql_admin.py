"""Open a connection to an Aurora DSQL cluster as ``admin``, for the deploy-time dynamic providers.

    conn = admin_connection("abc123.dsql.us-east-1.on.aws", "us-east-1")

The connection is autocommit (the migration runner and ``AWS IAM GRANT`` need one statement per
transaction), user ``admin``, database ``postgres``, port 5432, TLS ``verify-full`` against certifi's
Mozilla bundle (it holds the Amazon Root CAs the DSQL endpoints chain to; libpq's ``sslrootcert=system``
would depend on where the psycopg binary wheel's OpenSSL looks for a system store, which differs between
machines). The password is an IAM admin auth token made by boto3's ``dsql`` client from the ambient
AWS credential chain (environment, profile, role): it is signed locally, lives 15 minutes, is checked
only at connect time and is never logged or returned.

Why not the official ``aurora_dsql_psycopg`` connector: it treats any host without ``.dsql`` as a
cluster id and rewrites it into a cluster hostname, and always replaces the password with a fresh
token, so tests could not point it at a local PostgreSQL. This module is small enough to own.

Test seam: keyword overrides of the libpq connection parameters, so a test connects the real code
path (token generation included; fake AWS credentials are enough, signing needs no network) to a
local PostgreSQL server::

    admin_connection("127.0.0.1", "us-east-1", port=5433, sslmode="disable",
                     user="postgres", dbname="test_db")

Allowed overrides: ``port``, ``dbname``, ``user``, ``sslmode``, ``sslrootcert``, ``connect_timeout``.
Anything else (notably ``password``) is a TypeError: the token is always generated, so the seam cannot
hide a broken signer. Production callers pass no overrides. ``connection_overrides_from_url`` turns a
test database URL into ``(host, overrides)`` for this function.
"""

from __future__ import annotations

from typing import Any

import psycopg

ADMIN_USER = "admin"
DATABASE = "postgres"
PORT = 5432
CONNECT_TIMEOUT_SECONDS = 10
TOKEN_LIFETIME_SECONDS = 900  # checked only when connecting; the connection outlives it (max 60 min)
ALLOWED_OVERRIDES = frozenset({"port", "dbname", "user", "sslmode", "sslrootcert", "connect_timeout"})


def admin_token(endpoint: str, region: str) -> str:
    """An IAM auth token for ``admin`` on ``endpoint``; a secret: never log or return it."""
    import boto3

    client = boto3.session.Session().client("dsql", region_name=region)
    return client.generate_db_connect_admin_auth_token(
        Hostname=endpoint, Region=region, ExpiresIn=TOKEN_LIFETIME_SECONDS
    )


def ca_bundle() -> str:
    """Path of a CA bundle holding Amazon's roots (certifi's copy of Mozilla's store)."""
    import certifi

    return certifi.where()


def admin_connection(endpoint: str, region: str, **test_overrides: Any) -> psycopg.Connection:
    """An autocommit connection to the cluster at ``endpoint`` in ``region`` as ``admin``.

    ``test_overrides`` replace libpq parameters for tests only (see the module docstring).
    """
    unknown = sorted(set(test_overrides) - ALLOWED_OVERRIDES)
    if unknown:
        raise TypeError(
            f"admin_connection() got unsupported override(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(ALLOWED_OVERRIDES))}"
        )
    params: dict[str, Any] = {
        "host": endpoint,
        "port": PORT,
        "dbname": DATABASE,
        "user": ADMIN_USER,
        "sslmode": "verify-full",
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "dsql-users-api-deploy",
    }
    params.update(test_overrides)
    if params["sslmode"] == "verify-full" and "sslrootcert" not in params:
        params["sslrootcert"] = ca_bundle()
    params["password"] = admin_token(endpoint, region)
    try:
        return psycopg.connect(autocommit=True, **params)
    except psycopg.OperationalError as exc:
        # libpq's message can quote the conninfo; rebuild it without anything secret.
        raise ConnectionError(
            f"cannot connect to DSQL cluster {endpoint} ({region}) as {params['user']}: "
            f"{_redact(str(exc), params['password'])}. Check that the cluster is ACTIVE, that the "
            "deploying identity may dsql:DbConnectAdmin on it, and that port 5432 is reachable."
        ) from None


def connection_overrides_from_url(url: str) -> tuple[str, dict[str, Any]]:
    """``(host, overrides)`` for ``admin_connection`` from a local test database URL (TLS off)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    overrides: dict[str, Any] = {"sslmode": info.get("sslmode") or "disable"}
    for key in ("port", "dbname", "user"):
        if info.get(key):
            overrides[key] = int(str(info[key])) if key == "port" else info[key]
    return str(info.get("host") or "127.0.0.1"), overrides


def _redact(message: str, secret: str) -> str:
    return message.replace(secret, "<token>") if secret else message
