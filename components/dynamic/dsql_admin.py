"""Open a connection to an Aurora DSQL cluster as ``admin``, for the deploy-time dynamic providers.

    conn = admin_connection("abc123.dsql.us-east-1.on.aws", "us-east-1")

The connection is autocommit (the migration runner and ``AWS IAM GRANT`` need one statement per
transaction), user ``admin``, database ``postgres``, port 5432, TLS ``verify-full`` against certifi's
Mozilla bundle (it holds the Amazon Root CAs the DSQL endpoints chain to; libpq's ``sslrootcert=system``
would depend on where the psycopg binary wheel's OpenSSL looks for a system store, which differs between
machines). The password is an IAM admin auth token made by boto3's ``dsql`` client with the stack's AWS
access setting (``aws_session``; the ambient credential chain when none is set): it is signed locally,
lives 15 minutes, is checked only at connect time and is never logged or returned.

``cluster_status`` asks the control plane whether the cluster behind an endpoint still exists, so a
``read`` (refresh) can tell a deleted cluster (the resource is gone) from one it cannot reach now.

Why not the official ``aurora_dsql_psycopg`` connector: it treats any host without ``.dsql`` as a
cluster id and rewrites it into a cluster hostname, and always replaces the password with a fresh
token, so tests could not point it at a local PostgreSQL. This module is small enough to own.

Test seam: keyword overrides of the libpq connection parameters, so a test connects the real code
path (token generation included; fake AWS credentials are enough, signing needs no network) to a
local PostgreSQL server::

    admin_connection("127.0.0.1", "us-east-1", port=5433, sslmode="disable",
                     user="postgres", dbname="test_db")

With ``hostaddr`` the host name stays the endpoint (the token is signed for it, as in production) and
libpq connects to that address instead, without a DNS lookup::

    admin_connection("abc.dsql.us-east-1.on.aws", "us-east-1", hostaddr="127.0.0.1", port=5433, ...)

Allowed overrides: ``hostaddr``, ``port``, ``dbname``, ``user``, ``sslmode``, ``sslrootcert``,
``connect_timeout``.
Anything else (notably ``password``) is a TypeError: the token is always generated, so the seam cannot
hide a broken signer. Production callers pass no overrides. ``connection_overrides_from_url`` turns a
test database URL into ``(host, overrides)`` for this function.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from components.dynamic.aws_session import AMBIENT, AwsAccess, session

ADMIN_USER = "admin"
DATABASE = "postgres"
PORT = 5432
CONNECT_TIMEOUT_SECONDS = 10
TOKEN_LIFETIME_SECONDS = 900  # checked only when connecting; the connection outlives it (max 60 min)
ALLOWED_OVERRIDES = frozenset(
    {"hostaddr", "port", "dbname", "user", "sslmode", "sslrootcert", "connect_timeout"}
)
# <cluster identifier>.dsql.<region>.on.aws (the AWS provider has no endpoint output; we build it so).
DSQL_ENDPOINT = re.compile(r"^(?P<identifier>[a-z0-9]+)\.dsql(-[a-z0-9]+)?\.(?P<region>[a-z0-9-]+)\.on\.aws$")
# The states in which a cluster accepts connections (IDLE and INACTIVE wake on the first one).
CONNECTABLE = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
# The states of a cluster that is being deleted or is lost: whatever lived in it is gone.
GONE = frozenset({"DELETING", "DELETED", "PENDING_DELETE", "FAILED"})


def admin_token(endpoint: str, region: str, access: AwsAccess = AMBIENT) -> str:
    """An IAM auth token for ``admin`` on ``endpoint``; a secret: never log or return it."""
    client = session(access, region).client("dsql")
    return client.generate_db_connect_admin_auth_token(
        Hostname=endpoint, Region=region, ExpiresIn=TOKEN_LIFETIME_SECONDS
    )


def cluster_status(endpoint: str, region: str, access: AwsAccess = AMBIENT) -> str | None:
    """The status of the cluster behind ``endpoint`` (``GetCluster``), or None when it does not exist."""
    match = DSQL_ENDPOINT.match(endpoint)
    if match is None:
        raise ValueError(f"{endpoint!r} is not a DSQL endpoint (<cluster id>.dsql.<region>.on.aws)")
    from botocore.exceptions import BotoCoreError, ClientError

    client = session(access, region).client("dsql")
    try:
        return str(client.get_cluster(identifier=match["identifier"])["status"])
    except client.exceptions.ResourceNotFoundException:
        return None
    except (BotoCoreError, ClientError) as exc:
        raise ConnectionError(
            f"GetCluster {match['identifier']} ({region}) failed: {exc}. Check the AWS credentials "
            "(awsProfile / awsAssumeRoleArn) and that they allow dsql:GetCluster, then retry."
        ) from None


def ca_bundle() -> str:
    """Path of a CA bundle holding Amazon's roots (certifi's copy of Mozilla's store)."""
    import certifi

    return certifi.where()


def admin_connection(
    endpoint: str, region: str, access: AwsAccess = AMBIENT, **test_overrides: Any
) -> psycopg.Connection:
    """An autocommit connection to the cluster at ``endpoint`` in ``region`` as ``admin``.

    ``access`` is the identity that signs the token; ``test_overrides`` replace libpq parameters for
    tests only (see the module docstring).
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
    params["password"] = admin_token(endpoint, region, access)
    try:
        return psycopg.connect(autocommit=True, **params)
    except psycopg.OperationalError as exc:
        # libpq's message can quote the conninfo; rebuild it without anything secret.
        raise ConnectionError(
            f"cannot connect to DSQL cluster {endpoint} ({region}) as {params['user']}: "
            f"{_redact(str(exc), params['password'])}. Check that the cluster is ACTIVE, that the "
            "deploying identity may dsql:DbConnectAdmin on it, and that port 5432 is reachable."
        ) from None


# What a refresh says when it cannot connect as admin: the last known state is kept, as for a cluster
# that is not ACTIVE. The read-only previewer role (bootstrap/) has no dsql:DbConnectAdmin on purpose (a
# pull request must never get admin SQL), and every preview refreshes first (Pulumi.yaml).
KEPT_WITHOUT_ADMIN = (
    "cannot connect as admin to read it ({reason}); the last known state is kept. A preview by the "
    "read-only previewer role ends here by design; a deploying identity needs dsql:DbConnectAdmin"
)


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
