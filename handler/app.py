"""The users API Lambda: API Gateway REST proxy events (payload v1) in, proxy responses out.

Routes are thin: they validate with ``handler.validation``, call ``handler.users`` through the
container's ``Database``, and return JSON. Errors of any kind are turned into responses in one place,
``_error_response`` (via ``handler.errors.to_api_error``).

Routing is a small table here rather than Powertools' event handler: importing
``aws_lambda_powertools.event_handler`` alone adds about a quarter to the cold import of psycopg
(measured in docs/handler.md), more than the whole target allows. Powertools' Logger writes the
structured JSON logs (``handler.logs``), loaded when a first line is logged.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

from handler import logs, users, validation
from handler.auth import Caller, caller_from_event
from handler.config import ConfigError, settings
from handler.db import Database, start_invocation
from handler.errors import MethodNotAllowed, NotFound, ServiceUnavailable, to_api_error

_database: Database | None = None


def database() -> Database:
    """The container's database, made on first use; the connection inside is made on first query."""
    global _database
    if _database is None:
        _database = Database(settings())
    return _database


def reset() -> None:
    """Forget the connection and re-read the environment (tests, and the local server's workers)."""
    global _database
    if _database is not None:
        _database.discard()
    _database = None
    settings.cache_clear()


# ---------------------------------------------------------------- requests and responses


class Request:
    """One API Gateway event, with the parts routing found (a plain class: cheaper to define than a
    dataclass, which counts at cold start)."""

    __slots__ = ("event", "method", "path", "path_params")

    def __init__(self, event: dict[str, Any], method: str, path: str, path_params: dict[str, str]) -> None:
        self.event = event
        self.method = method
        self.path = path
        self.path_params = path_params

    def query(self, name: str) -> list[str] | None:
        multi = self.event.get("multiValueQueryStringParameters") or {}
        if name in multi:
            return multi[name]
        single = self.event.get("queryStringParameters") or {}
        return [single[name]] if name in single else None

    def json(self) -> dict[str, Any]:
        return validation.json_object(self.event, settings().max_body_bytes)

    def caller(self) -> Caller:
        """Who sent it (handler/auth.py); raises Unauthorized, so it comes before reading the body."""
        return caller_from_event(self.event, settings())

    @property
    def base_path(self) -> str:
        """The path as the client sent it, stage included, so Location resolves against the client's URL."""
        context = self.event.get("requestContext") or {}
        return context.get("path") or self.path


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers


Route = Callable[[Request], Response]


# ---------------------------------------------------------------- routes


def health(_: Request) -> Response:
    region = settings().region
    started = time.perf_counter()
    try:
        database().run(users.ping, idempotent=True)
    except Exception as exc:
        error = to_api_error(exc)
        logs.warning("health check: database unavailable", reason=error.message)
        retry_after = error.headers.get("Retry-After", "5")
        body = {"status": "unavailable", "region": region, "database": {"ok": False, "latency_ms": None}}
        return Response(503, body, {"Retry-After": retry_after})
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return Response(
        200, {"status": "ok", "region": region, "database": {"ok": True, "latency_ms": latency_ms}}
    )


def list_users(request: Request) -> Response:
    caller = request.caller()
    limit = validation.page_limit(request.query("limit"))
    after = validation.decode_cursor(request.query("cursor"))
    page, more = database().run(lambda conn: users.list_users(conn, caller, limit, after), idempotent=True)
    last = page[-1] if more and page else None
    next_cursor = validation.encode_cursor(last["created_at"], last["id"]) if last else None
    return Response(200, {"items": page, "next_cursor": next_cursor})


def get_user(request: Request) -> Response:
    caller = request.caller()
    user_id = validation.user_id(request.path_params.get("id"))
    user = database().run(lambda conn: users.get_user(conn, caller, user_id), idempotent=True)
    if user is None:
        raise NotFound(NO_SUCH_USER)
    return Response(200, user)


def create_user(request: Request) -> Response:
    caller = request.caller()
    new = validation.new_user(request.json())
    user = database().run(lambda conn: users.create_user(conn, caller, new.name, new.email), idempotent=False)
    return _created(request, user)


def update_user(request: Request) -> Response:
    caller = request.caller()
    user_id = validation.user_id(request.path_params.get("id"))
    patch = validation.user_patch(request.json())
    user = database().run(
        lambda conn: users.update_user(conn, caller, user_id, patch.name, patch.email), idempotent=True
    )
    if user is None:
        raise NotFound(NO_SUCH_USER)
    return Response(200, user)


def delete_user(request: Request) -> Response:
    caller = request.caller()
    user_id = validation.user_id(request.path_params.get("id"))
    if not database().run(lambda conn: users.delete_user(conn, caller, user_id), idempotent=False):
        raise NotFound(NO_SUCH_USER)
    return Response(204)


def get_me(request: Request) -> Response:
    caller = request.caller()
    user = database().run(lambda conn: users.get_my_user(conn, caller), idempotent=True)
    if user is None:
        raise NotFound(NO_PROFILE)
    return Response(200, user)


def create_me(request: Request) -> Response:
    caller = request.caller()
    new = validation.new_user(request.json())
    user = database().run(
        lambda conn: users.create_my_user(conn, caller, new.name, new.email), idempotent=False
    )
    return _created(request, user)


def update_me(request: Request) -> Response:
    caller = request.caller()
    patch = validation.user_patch(request.json())
    user = database().run(
        lambda conn: users.update_my_user(conn, caller, patch.name, patch.email), idempotent=True
    )
    if user is None:
        raise NotFound(NO_PROFILE)
    return Response(200, user)


def delete_me(request: Request) -> Response:
    caller = request.caller()
    if not database().run(lambda conn: users.delete_my_user(conn, caller), idempotent=False):
        raise NotFound(NO_PROFILE)
    return Response(204)


def _created(request: Request, user: dict[str, Any]) -> Response:
    """201 with the new user's URL, resolved against the client's own (stage included, /me dropped)."""
    base = request.base_path.rstrip("/")
    if base.endswith("/me"):
        base = base[: -len("/me")]
    return Response(201, user, {"Location": f"{base}/{user['id']}"})


# One message whether the row is absent or another owner's: the answer never reveals that it exists.
NO_SUCH_USER = "no user with this id"
NO_PROFILE = "you have no profile yet: create it with POST /users/me"

ROUTES: dict[str, dict[str, Route]] = {
    "/health": {"GET": health},
    "/users": {"GET": list_users, "POST": create_user},
    "/users/me": {"GET": get_me, "POST": create_me, "PATCH": update_me, "DELETE": delete_me},
    "/users/{id}": {"GET": get_user, "PATCH": update_user, "DELETE": delete_user},
}
_USER_PATH = re.compile(r"^/users/([^/]+)$")
CORS_ALLOW_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"


def _resolve(path: str) -> tuple[str, dict[str, str]]:
    """The route template and its path parameters; matched on the path so a {proxy+} resource works too.

    ``/users/me`` is a route of its own (exact paths first), as API Gateway prefers a static resource
    to ``/users/{id}``."""
    if path in ROUTES:
        return path, {}
    match = _USER_PATH.match(path)
    if match:
        return "/users/{id}", {"id": match.group(1)}
    raise NotFound(f"no route for {path}")


def _dispatch(request: Request) -> Response:
    template, request.path_params = _resolve(request.path)
    methods = ROUTES[template]
    if request.method == "OPTIONS":
        return Response(204, headers={"Allow": ", ".join([*methods, "OPTIONS"])})
    route = methods.get(request.method)
    if route is None:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {template}",
            headers={"Allow": ", ".join([*methods, "OPTIONS"])},
        )
    return route(request)


# ---------------------------------------------------------------- the entry point


def _error_response(exc: BaseException) -> Response:
    """The one place an exception becomes an HTTP status and a JSON error body."""
    error = to_api_error(exc)
    if error.status >= 500 and not isinstance(error, ServiceUnavailable):
        logs.exception("unhandled error", error_type=type(exc).__name__)
    elif isinstance(error, ServiceUnavailable):
        logs.warning("database unavailable", reason=str(exc.__cause__ or exc)[:200])
    return Response(error.status, error.body(), dict(error.headers))


# Every answer names the region that served it: clients and operators see where they landed, and the
# failover drill's probe tells a failover from the answer itself (docs/operations.md). API Gateway's
# own answers carry it too (components/openapi.py), and so do the local edge's (local/server.py).
SERVED_REGION_HEADER = "X-Served-Region"
CORS_EXPOSE_HEADERS = f"Location, Retry-After, {SERVED_REGION_HEADER}"


def _served_region() -> str:
    try:
        return settings().region
    except ConfigError:  # the answer is a 500 already; the region is still Lambda's
        return os.environ.get("AWS_REGION", "").strip() or "local"


def _cors_headers(event: dict[str, Any], method: str, allow: str | None) -> dict[str, str]:
    try:
        allowed = settings().cors_allow_origins
    except ConfigError:
        return {}  # already answered with a 500 and logged by the route that met it
    if not allowed:
        return {}
    headers = {"Vary": "Origin"}
    origin = (validation.header(event.get("headers"), "origin") or "").rstrip("/")
    if origin and origin in allowed:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        if method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = allow or "GET, POST, PATCH, DELETE, OPTIONS"
            headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = CORS_MAX_AGE
    return headers


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway REST proxy event in, a proxy response out; never raises."""
    started = time.perf_counter()
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("path") or "/")
    try:
        response = _dispatch(Request(event, method, path, {}))
    except Exception as exc:
        response = _error_response(exc)
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    headers.update(response.headers or {})
    headers[SERVED_REGION_HEADER] = _served_region()
    headers.update(_cors_headers(event, method, headers.get("Allow")))
    body = (
        "" if response.body is None else json.dumps(response.body, ensure_ascii=False, separators=(",", ":"))
    )
    if response.body is None:
        del headers["Content-Type"]
    # Per-request line at DEBUG only: formatting it costs about as much as the rest of the handler
    # (docs/handler.md), and API Gateway's access log already records every request.
    if logs.debug_enabled:
        logs.debug(
            "request",
            method=method,
            path=path,
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return {"statusCode": response.status, "headers": headers, "body": body, "isBase64Encoded": False}


_cold_start = True


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: bind the invocation's ids for any line it logs, then handle the event."""
    global _cold_start
    request_context = event.get("requestContext") or {}
    logs.bind(
        function_request_id=getattr(context, "aws_request_id", None),
        correlation_id=request_context.get("requestId"),
        cold_start=_cold_start,
    )
    _cold_start = False
    start_invocation(context)  # the database deadline ends before Lambda's (handler/db.py)
    return handle(event)
