"""The handler's settings, read from the environment once per container.

Lambda sets ``AWS_REGION``; the deployment sets ``DSQL_ENDPOINT`` and ``DB_USER``. The local application
sets ``DATABASE_URL`` instead of ``DSQL_ENDPOINT``: that one switch selects a plain PostgreSQL connection,
everything else runs the same code.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import NamedTuple

DEFAULT_MAX_BODY_BYTES = 16 * 1024
API_GATEWAY_TIMEOUT_MS = 29_000  # REST API integration timeout: a later answer never reaches the client
AUTH_MODES = ("cognito", "none")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and the fix."""


class Settings(NamedTuple):
    region: str
    """The region this function serves, reported by /health (Lambda's ``AWS_REGION``)."""
    dsql_endpoint: str | None
    """``<cluster id>.dsql.<region>.on.aws``; used when ``database_url`` is unset."""
    db_user: str
    """The database role the function connects as: the least-privilege ``users_api``, never admin."""
    database_url: str | None
    """A PostgreSQL URL or conninfo string: the local application and the tests."""
    cors_allow_origins: tuple[str, ...]
    """Origins that may call the API from a browser; empty means no CORS headers at all."""
    statement_timeout_ms: int
    """Set once per connection; a statement running longer is cancelled and answered with 503."""
    connect_timeout_s: int
    """How long to wait for the database before answering 503."""
    request_timeout_ms: int
    """Client-side deadline of a request's database work (connects, statements, retries): then 503.
    Above the statement timeout, so the server's own cancel (a known outcome) comes first; below API
    Gateway's 29 s. Lambda's remaining time shortens it further (handler/db.py)."""
    connection_max_age_s: int
    """Recycle the connection after this long: DSQL closes connections at 60 minutes."""
    max_body_bytes: int
    """Larger request bodies are refused with 413 before they are parsed."""
    ssl_root_cert: str
    """CA file for TLS verify-full to DSQL; empty means botocore's bundle (it holds the Amazon roots)."""
    auth_mode: str
    """``cognito`` (the default): every /users request must carry the authorizer's claims, else 401.
    ``none``: the demo opt-out, every caller is an anonymous administrator (handler/auth.py)."""
    auth_client_ids: tuple[str, ...]
    """App client ids whose ID tokens are accepted (the ``aud`` claim); empty accepts any client of the
    pool, which is all API Gateway's Cognito authorizer itself checks."""


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer; set it to a whole number or unset it") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _request_timeout_ms(statement_timeout_ms: int) -> int:
    timeout = _int("REQUEST_TIMEOUT_MS", statement_timeout_ms + 1000)
    if timeout <= statement_timeout_ms:
        raise ConfigError(
            f"REQUEST_TIMEOUT_MS={timeout} must exceed STATEMENT_TIMEOUT_MS={statement_timeout_ms}, so that "
            "the server cancels a slow statement (a known outcome) before the client gives up on it; "
            "raise it or unset it (default: the statement timeout plus 1000)"
        )
    if timeout > API_GATEWAY_TIMEOUT_MS - 1000:
        raise ConfigError(
            f"REQUEST_TIMEOUT_MS={timeout} is too long: API Gateway stops waiting at "
            f"{API_GATEWAY_TIMEOUT_MS} ms, so the 503 would never reach the client; use at most "
            f"{API_GATEWAY_TIMEOUT_MS - 1000} (and a STATEMENT_TIMEOUT_MS below it)"
        )
    return timeout


def load_settings() -> Settings:
    """Read and check every variable; raises ConfigError naming the variable at fault."""
    database_url = os.environ.get("DATABASE_URL", "").strip() or None
    dsql_endpoint = os.environ.get("DSQL_ENDPOINT", "").strip() or None
    if database_url is None and dsql_endpoint is None:
        raise ConfigError(
            "set DSQL_ENDPOINT (<cluster id>.dsql.<region>.on.aws) on AWS, or DATABASE_URL for a local "
            "PostgreSQL"
        )
    if dsql_endpoint is not None and database_url is None and ".dsql." not in dsql_endpoint:
        raise ConfigError(
            f"DSQL_ENDPOINT={dsql_endpoint!r} is not a DSQL hostname; expected <cluster id>.dsql.<region>.on.aws"
        )
    origins = tuple(
        origin.strip().rstrip("/")
        for origin in os.environ.get("CORS_ALLOW_ORIGINS", "").split(",")
        if origin.strip()
    )
    if "*" in origins:
        raise ConfigError("CORS_ALLOW_ORIGINS may not contain '*': list the allowed origins")
    auth_mode = os.environ.get("AUTH_MODE", "").strip().lower() or "cognito"
    if auth_mode not in AUTH_MODES:
        raise ConfigError(
            f"AUTH_MODE={auth_mode!r} is not known; set it to cognito (API Gateway's Cognito authorizer) "
            "or none (no authentication: demos only)"
        )
    client_ids = tuple(
        client.strip() for client in os.environ.get("AUTH_CLIENT_IDS", "").split(",") if client.strip()
    )
    statement_timeout_ms = _int("STATEMENT_TIMEOUT_MS", 5000)
    return Settings(
        region=os.environ.get("AWS_REGION", "").strip() or "local",
        dsql_endpoint=dsql_endpoint,
        db_user=os.environ.get("DB_USER", "").strip() or "users_api",
        database_url=database_url,
        cors_allow_origins=origins,
        statement_timeout_ms=statement_timeout_ms,
        connect_timeout_s=_int("DB_CONNECT_TIMEOUT_S", 5),
        request_timeout_ms=_request_timeout_ms(statement_timeout_ms),
        connection_max_age_s=_int("DB_CONNECTION_MAX_AGE_S", 3300),
        max_body_bytes=_int("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        ssl_root_cert=os.environ.get("DB_SSLROOTCERT", "").strip(),
        auth_mode=auth_mode,
        auth_client_ids=client_ids,
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings of this container, read on first use (``settings.cache_clear()`` re-reads them)."""
    return load_settings()
