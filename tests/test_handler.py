"""The handler in-process: API Gateway v1 events in, proxy responses out, against a real PostgreSQL.

The handler connects as the least-privilege role ``users_api`` (as on AWS), to a freshly migrated
database per test. Requests carry the claims API Gateway's Cognito authorizer passes (strings, groups
comma-separated); unless a test says otherwise, an administrator's, so every row is reachable.
The ownership rules themselves are tested in tests/test_handler_auth.py.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from handler import app, db, logs, users, validation
from local.events import LambdaContext, api_gateway_event

ORIGIN = "https://app.example.com"
ADMIN_CLAIMS = {
    "sub": "0b5e2f4c-admin-4e7a-9c1d-000000000001",
    "email": "root@example.com",
    "email_verified": "true",
    "cognito:groups": "admins",
    "token_use": "id",
}


def with_claims(event: dict[str, Any], claims: dict[str, str] | None) -> dict[str, Any]:
    """The event as API Gateway passes it after its Cognito authorizer accepted a token."""
    if claims is not None:
        event["requestContext"]["authorizer"] = {"claims": dict(claims)}
    return event


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: dict[str, Any]


Call = Callable[..., Reply]


def invoke(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    raw_body: bytes | str | None = None,
    claims: dict[str, str] | None = ADMIN_CLAIMS,
) -> Reply:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    payload = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    event = api_gateway_event(
        method,
        path,
        query_string=query,
        headers=[(k, v) for k, v in all_headers.items() if v is not None],
        body=payload,
    )
    raw = app.lambda_handler(with_claims(event, claims), LambdaContext())
    assert set(raw) == {"statusCode", "headers", "body", "isBase64Encoded"}
    text = raw["body"]
    return Reply(raw["statusCode"], raw["headers"], json.loads(text) if text else None, raw)


@pytest.fixture
def admin_url(migrated_database_url: str) -> str:
    return migrated_database_url


@pytest.fixture
def api(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    """The handler configured like the local app: role users_api, CORS for one origin."""
    monkeypatch.setenv("DATABASE_URL", make_conninfo(migrated_database_url, user="users_api"))
    monkeypatch.setenv("AWS_REGION", "us-test-1")
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", f"{ORIGIN}, https://other.example.com")
    monkeypatch.delenv("DSQL_ENDPOINT", raising=False)
    app.reset()
    yield invoke
    app.reset()


def create(call: Call, name: str = "Ann", email: str = "ann@example.com") -> dict[str, Any]:
    reply = call("POST", "/users", {"name": name, "email": email})
    assert reply.status == 201, reply.body
    return reply.body


def assert_error(reply: Reply, status: int, code: str, field: str | None = None) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["message"]
    if field:
        assert field in reply.body["error"]["fields"], reply.body


# ---------------------------------------------------------------- routes


def test_health_reports_region_and_database_latency(api: Call) -> None:
    reply = api("GET", "/health")
    assert reply.status == 200
    assert reply.body["status"] == "ok"
    assert reply.body["region"] == "us-test-1"
    assert reply.body["database"]["ok"] is True
    assert 0 <= reply.body["database"]["latency_ms"] < 5000


def test_create_returns_201_location_and_stores_normalised_values(api: Call, admin_url: str) -> None:
    reply = api("POST", "/users", {"name": "  Ann Lee  ", "email": "  Ann.Lee@Example.COM "})
    assert reply.status == 201
    user = reply.body
    assert user["name"] == "Ann Lee"
    assert user["email"] == "ann.lee@example.com"
    assert reply.headers["Location"] == f"/users/{user['id']}"
    assert user["created_at"] == user["updated_at"]
    assert user["created_at"].endswith("Z")
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT name, email FROM users WHERE id = %s", (user["id"],)).fetchone()
    assert row == ("Ann Lee", "ann.lee@example.com")


def test_location_keeps_the_stage_prefix_the_client_used(api: Call) -> None:
    event = api_gateway_event(
        "POST", "/users", headers=[("content-type", "application/json")], body='{"name":"A","email":"a@b.io"}'
    )
    event["requestContext"]["path"] = "/prod/users"
    raw = app.lambda_handler(with_claims(event, ADMIN_CLAIMS), LambdaContext())
    assert raw["statusCode"] == 201
    assert raw["headers"]["Location"] == f"/prod/users/{json.loads(raw['body'])['id']}"


def test_get_returns_the_user_and_404_for_an_unknown_id(api: Call) -> None:
    user = create(api)
    reply = api("GET", f"/users/{user['id']}")
    assert reply.status == 200
    assert reply.body == user
    assert_error(api("GET", f"/users/{uuid.uuid4()}"), 404, "not_found")


def test_duplicate_email_is_409_whatever_its_case_and_spacing(api: Call) -> None:
    create(api, email="dup@example.com")
    reply = api("POST", "/users", {"name": "Other", "email": " DUP@example.com"})
    assert_error(reply, 409, "conflict", "email")


def test_patch_changes_given_fields_and_bumps_updated_at(api: Call) -> None:
    user = create(api)
    time.sleep(0.01)
    reply = api("PATCH", f"/users/{user['id']}", {"name": " Annie "})
    assert reply.status == 200
    assert reply.body["name"] == "Annie"
    assert reply.body["email"] == user["email"]
    assert reply.body["created_at"] == user["created_at"]
    assert reply.body["updated_at"] > user["updated_at"]
    reply = api("PATCH", f"/users/{user['id']}", {"email": "NEW@example.com"})
    assert (reply.body["name"], reply.body["email"]) == ("Annie", "new@example.com")
    reply = api("PATCH", f"/users/{user['id']}", {"name": "Both", "email": "both@example.com"})
    assert (reply.body["name"], reply.body["email"]) == ("Both", "both@example.com")
    assert api("GET", f"/users/{user['id']}").body == reply.body


def test_patch_errors(api: Call) -> None:
    user = create(api)
    create(api, name="Bob", email="bob@example.com")
    assert_error(api("PATCH", f"/users/{uuid.uuid4()}", {"name": "X"}), 404, "not_found")
    assert_error(api("PATCH", f"/users/{user['id']}", {}), 400, "validation_failed")
    assert_error(api("PATCH", f"/users/{user['id']}", {"email": "bob@example.com"}), 409, "conflict", "email")
    assert_error(
        api("PATCH", f"/users/{user['id']}", {"id": str(uuid.uuid4())}), 400, "validation_failed", "id"
    )
    assert api("GET", f"/users/{user['id']}").body == user


def test_delete_returns_204_then_404(api: Call) -> None:
    user = create(api)
    reply = api("DELETE", f"/users/{user['id']}")
    assert reply.status == 204
    assert reply.raw["body"] == ""
    assert "Content-Type" not in reply.headers
    assert_error(api("DELETE", f"/users/{user['id']}"), 404, "not_found")
    assert_error(api("GET", f"/users/{user['id']}"), 404, "not_found")


def test_list_is_newest_first_and_pages_cover_every_user_once(api: Call) -> None:
    created = [create(api, name=f"User {i}", email=f"user{i}@example.com")["id"] for i in range(23)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=5" + (f"&cursor={cursor}" if cursor else "")
        reply = api("GET", "/users", query=query)
        assert reply.status == 200
        assert len(reply.body["items"]) <= 5
        seen += [item["id"] for item in reply.body["items"]]
        pages += 1
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == list(reversed(created))


def test_list_with_equal_created_at_breaks_ties_by_id(api: Call, admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (name, email, created_at) SELECT 'Same', 'same' || g || '@example.com', "
            "'2026-01-01T00:00:00Z' FROM generate_series(1, 9) g"
        )
        expected = [str(r[0]) for r in conn.execute("SELECT id FROM users ORDER BY id DESC").fetchall()]
    seen: list[str] = []
    cursor = None
    while True:
        reply = api("GET", "/users", query="limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [item["id"] for item in reply.body["items"]]
        cursor = reply.body["next_cursor"]
        if not cursor:
            break
    assert seen == expected


def test_list_limit_default_and_bounds(api: Call, admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (name, email) SELECT 'U', 'u' || g || '@example.com' FROM generate_series(1, 205) g"
        )
    default = api("GET", "/users")
    assert len(default.body["items"]) == 50
    assert default.body["next_cursor"]
    assert len(api("GET", "/users", query="limit=200").body["items"]) == 200
    last = api("GET", "/users", query="limit=200")
    rest = api("GET", "/users", query=f"limit=200&cursor={last.body['next_cursor']}")
    assert len(rest.body["items"]) == 5
    assert rest.body["next_cursor"] is None
    for bad in ("0", "201", "-1", "abc", "1.5", "", "1e2"):
        assert_error(api("GET", "/users", query=f"limit={bad}"), 400, "validation_failed", "limit")
    assert_error(api("GET", "/users", query="limit=1&limit=2"), 400, "validation_failed", "limit")


def test_empty_list(api: Call) -> None:
    reply = api("GET", "/users")
    assert reply.status == 200
    assert reply.body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "!!!!",
        base64.urlsafe_b64encode(b"not-a-date|not-a-uuid").decode(),
        base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{uuid.uuid4()}".encode()).decode(),  # no time zone
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * 300,
    ],
)
def test_bad_cursor_is_400(api: Call, cursor: str) -> None:
    assert_error(api("GET", "/users", query=f"cursor={cursor}"), 400, "validation_failed", "cursor")


# ---------------------------------------------------------------- bad input: never a 500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A"}, "email"),
        ({"email": "a@example.com"}, "name"),
        ({"name": "A", "email": "a@example.com", "role": "admin"}, "role"),
        ({"name": 5, "email": "a@example.com"}, "name"),
        ({"name": None, "email": "a@example.com"}, "name"),
        ({"name": "A", "email": ["a@example.com"]}, "email"),
        ({"name": "", "email": "a@example.com"}, "name"),
        ({"name": "   ", "email": "a@example.com"}, "name"),
        ({"name": "x" * 101, "email": "a@example.com"}, "name"),
        ({"name": "nul\u0000byte", "email": "a@example.com"}, "name"),
        ({"name": "bell\u0007", "email": "a@example.com"}, "name"),
        ({"name": "A", "email": "not-an-email"}, "email"),
        ({"name": "A", "email": "a@b"}, "email"),
        ({"name": "A", "email": "a b@example.com"}, "email"),
        ({"name": "A", "email": "a@@example.com"}, "email"),
        ({"name": "A", "email": "a@-example.com"}, "email"),
        ({"name": "A", "email": ("x" * 64) + "@" + ("d" * 60 + ".") * 4 + "com"}, "email"),
        ({"name": "A", "email": "x" * 65 + "@example.com"}, "email"),
        ({"name": "A", "email": ""}, "email"),
    ],
)
def test_invalid_user_is_400_with_a_field_message(api: Call, body: dict[str, Any], field: str) -> None:
    assert_error(api("POST", "/users", body), 400, "validation_failed", field)


def test_name_of_exactly_100_characters_and_email_of_254_are_accepted_255_refused(api: Call) -> None:
    email = "x" * 64 + "@" + "d" * 61 + "." + "e" * 61 + "." + "f" * 61 + ".com"
    assert len(email) == 254
    reply = api("POST", "/users", {"name": "é" * 100, "email": email})
    assert reply.status == 201, reply.body
    assert reply.body["name"] == "é" * 100
    too_long = "x" + email
    reply = api("POST", "/users", {"name": "A", "email": too_long})
    assert_error(reply, 400, "validation_failed", "email")
    assert reply.body["error"]["fields"]["email"] == "must be at most 254 characters"


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("{not json", "bad_request", "Expecting property name enclosed in double quotes (line 1, column 2)"),
        ('{"name": "A", "email": "a@example.com"', "bad_request", "Expecting ',' delimiter"),
        ("[1, 2]", "bad_request", "must be an object"),
        ('"a string"', "bad_request", "must be an object"),
        ("null", "bad_request", "must be an object"),
        (
            '{"name": "A", "name": "B", "email": "a@example.com"}',
            "bad_request",
            "'name' appears more than once",
        ),
        ('{"name": NaN, "email": "a@example.com"}', "bad_request", "NaN is not a JSON value"),
        ('{"name": Infinity, "email": "a@example.com"}', "bad_request", "Infinity is not a JSON value"),
        ('{"name": "\\ud800", "email": "a@example.com"}', "validation_failed", "the user is not valid"),
        ("[" * 100_00 + "]" * 100_00, "payload_too_large", "larger than 16384 bytes"),
        ("[" * 5000 + "]" * 5000, "bad_request", "nested too deeply"),
        (b'{"name": "\xff"}', "bad_request", "not valid UTF-8 (byte 10)"),
    ],
)
def test_malformed_bodies_are_4xx_naming_the_rule(
    api: Call, raw: str | bytes, code: str, message: str
) -> None:
    reply = api("POST", "/users", raw_body=raw)
    assert 400 <= reply.status < 500
    assert reply.body["error"]["code"] == code
    assert message in reply.body["error"]["message"], reply.body


def test_empty_body_is_400(api: Call) -> None:
    assert_error(api("POST", "/users", raw_body=""), 400, "bad_request")
    assert_error(api("PATCH", f"/users/{uuid.uuid4()}", raw_body=""), 400, "bad_request")


def test_oversized_body_is_413(api: Call) -> None:
    body = {"name": "A", "email": "a@example.com", "pad": "x" * 17_000}
    assert_error(api("POST", "/users", body), 413, "payload_too_large")
    user = create(api)
    assert_error(api("PATCH", f"/users/{user['id']}", body), 413, "payload_too_large")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_non_json_content_type_is_415(api: Call, content_type: str | None) -> None:
    reply = api(
        "POST", "/users", {"name": "A", "email": "a@example.com"}, headers={"Content-Type": content_type}
    )
    assert_error(reply, 415, "unsupported_media_type")


def test_json_content_type_with_utf8_charset_and_any_case_is_accepted(api: Call) -> None:
    reply = api(
        "POST",
        "/users",
        {"name": "A", "email": "a@example.com"},
        headers={"Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert reply.status == 201


def test_base64_encoded_body_is_decoded(api: Call) -> None:
    event = with_claims(
        api_gateway_event("POST", "/users", headers=[("Content-Type", "application/json")]), ADMIN_CLAIMS
    )
    event["body"] = base64.b64encode(b'{"name": "B64", "email": "b64@example.com"}').decode()
    event["isBase64Encoded"] = True
    raw = app.lambda_handler(event, LambdaContext())
    assert raw["statusCode"] == 201
    event["body"] = "!!not base64!!"
    assert app.lambda_handler(event, LambdaContext())["statusCode"] == 400
    event["body"] = base64.b64encode(b"\xff\xfe{}").decode()
    assert app.lambda_handler(event, LambdaContext())["statusCode"] == 400


@pytest.mark.parametrize(
    "bad_id",
    [
        "abc",
        "123",
        "null",
        f"{{{uuid.uuid4()}}}",
        uuid.uuid4().hex,
        f"urn:uuid:{uuid.uuid4()}",
        f"{uuid.uuid4()}\n",
    ],
)
def test_bad_id_is_400_on_every_method(api: Call, bad_id: str) -> None:
    from urllib.parse import quote

    path = f"/users/{quote(bad_id, safe='')}"
    assert_error(api("GET", path), 400, "validation_failed", "id")
    assert_error(api("DELETE", path), 400, "validation_failed", "id")
    assert_error(api("PATCH", path, {"name": "X"}), 400, "validation_failed", "id")


def test_unknown_route_is_404_and_unknown_method_405_with_allow(api: Call) -> None:
    assert_error(api("GET", "/nope"), 404, "not_found")
    assert_error(api("GET", "/users/"), 404, "not_found")
    assert_error(api("GET", f"/users/{uuid.uuid4()}/x"), 404, "not_found")
    reply = api("PUT", "/users")
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["Allow"] == "GET, POST, OPTIONS"
    reply = api("POST", f"/users/{uuid.uuid4()}", {"name": "A"})
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["Allow"] == "GET, PATCH, DELETE, OPTIONS"
    assert_error(api("DELETE", "/health"), 405, "method_not_allowed")


def test_event_without_method_or_path_is_a_json_4xx(api: Call) -> None:
    raw = app.lambda_handler({}, LambdaContext())
    assert raw["statusCode"] == 404
    assert json.loads(raw["body"])["error"]["code"] == "not_found"


# ---------------------------------------------------------------- CORS


def test_cors_echoes_only_allowed_origins(api: Call) -> None:
    allowed = api("GET", "/users", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers["Vary"] == "Origin"
    error = api("GET", "/users/nope", headers={"Origin": ORIGIN})
    assert error.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = api("GET", "/users", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in api("GET", "/users").headers


def test_cors_preflight(api: Call) -> None:
    reply = api("OPTIONS", "/users", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert reply.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"


def test_no_cors_headers_without_configuration(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ALLOW_ORIGINS")
    app.reset()
    reply = api("GET", "/users", headers={"Origin": ORIGIN})
    assert not any(name.startswith("Access-Control") for name in reply.headers)


def test_wildcard_cors_configuration_is_refused(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "*")
    app.reset()
    reply = api("GET", "/users", headers={"Origin": ORIGIN})
    assert reply.status == 500
    assert reply.body == {"error": {"code": "internal_error", "message": "internal error"}}


# ---------------------------------------------------------------- database behaviour


def test_handler_connects_as_the_least_privilege_role(api: Call) -> None:
    api("GET", "/health")
    conn = app.database().connection()
    assert conn.execute("SELECT current_user").fetchone() == ("users_api",)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM schema_migrations")


def test_one_connection_is_reused_and_statement_timeout_set_once(api: Call) -> None:
    for _ in range(5):
        api("GET", "/users")
    database = app.database()
    assert database.connects == 1
    assert database.connection().execute("SHOW statement_timeout").fetchone() == ("5s",)


class RoundTrips:
    """Counts what one request costs the database, from libpq's protocol trace: round trips (one
    ReadyForQuery per Sync or simple query) and statements (one Execute or simple Query each), so that
    an extra statement fails the count even when it is pipelined into the same round trip."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> RoundTrips:
        self.conn.pgconn.trace(self.file.fileno())
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.pgconn.untrace()
        self.file.seek(0)
        messages = [line.split("\t") for line in self.file.read().decode().splitlines()]
        self.file.close()
        self.count = sum(1 for m in messages if len(m) > 3 and m[1] == "B" and m[3] == "ReadyForQuery")
        self.statements = sum(
            1 for m in messages if len(m) > 3 and m[1] == "F" and m[3] in ("Execute", "Query")
        )


def owner_claims(sub: str, email: str | None = None) -> dict[str, str]:
    claims = {"sub": sub, "token_use": "id"}
    if email:
        claims.update(email=email, email_verified="true")
    return claims


def test_every_query_costs_one_round_trip_and_one_statement_on_a_warm_connection(api: Call) -> None:
    """Every statement of handler/users.py, through the route that runs it, found or not, conflicting or
    not, for an administrator and for an owner: one statement, one round trip."""
    admin_user = create(api, email="target@example.com")
    create(api, name="Taken", email="taken@example.com")
    for i in range(4):
        create(api, name=f"Filler {i}", email=f"filler{i}@example.com")
    cursor = api("GET", "/users", query="limit=2").body["next_cursor"]
    assert cursor
    ann = owner_claims("sub-ann", "ann@example.com")
    ann_user = api("POST", "/users/me", {"name": "Ann", "email": "ann@example.com"}, claims=ann).body
    for i in range(3):
        api(
            "POST",
            "/users/me",
            {"name": "Own", "email": f"own{i}@example.com"},
            claims=owner_claims(f"o{i}", f"own{i}@example.com"),
        )
    own_cursor = validation.encode_cursor("2999-01-01T00:00:00Z", ann_user["id"])
    missing = str(uuid.uuid4())
    counter = iter(range(10_000))

    def fresh_owner() -> tuple[dict[str, str], str]:
        n = next(counter)
        claims = owner_claims(f"fresh-{n}", f"fresh{n}@example.com")
        reply = api("POST", "/users/me", {"name": "F", "email": f"fresh{n}@example.com"}, claims=claims)
        return claims, reply.body["id"]

    def fresh_user() -> str:
        n = next(counter)
        return create(api, name="D", email=f"doomed{n}@example.com")["id"]

    # name -> (setup run before each measured request, the request, the status it must answer)
    scenarios: dict[str, tuple[Callable[[], Any], Callable[[Any], Reply], int]] = {
        "health": (lambda: None, lambda _: api("GET", "/health"), 200),
        "admin get": (lambda: None, lambda _: api("GET", f"/users/{admin_user['id']}"), 200),
        "admin get 404": (lambda: None, lambda _: api("GET", f"/users/{missing}"), 404),
        "admin list first page": (lambda: None, lambda _: api("GET", "/users", query="limit=2"), 200),
        "admin list next page": (
            lambda: None,
            lambda _: api("GET", "/users", query=f"limit=2&cursor={cursor}"),
            200,
        ),
        "admin create": (
            lambda: next(counter),
            lambda n: api("POST", "/users", {"name": "C", "email": f"counted{n}@example.com"}),
            201,
        ),
        "admin create 409": (
            lambda: None,
            lambda _: api("POST", "/users", {"name": "C", "email": "taken@example.com"}),
            409,
        ),
        "admin patch": (
            lambda: None,
            lambda _: api("PATCH", f"/users/{admin_user['id']}", {"name": "P"}),
            200,
        ),
        "admin patch 404": (lambda: None, lambda _: api("PATCH", f"/users/{missing}", {"name": "P"}), 404),
        "admin patch 409": (
            lambda: None,
            lambda _: api("PATCH", f"/users/{admin_user['id']}", {"email": "taken@example.com"}),
            409,
        ),
        "admin delete": (fresh_user, lambda user_id: api("DELETE", f"/users/{user_id}"), 204),
        "admin delete 404": (lambda: None, lambda _: api("DELETE", f"/users/{missing}"), 404),
        "owner get": (lambda: None, lambda _: api("GET", f"/users/{ann_user['id']}", claims=ann), 200),
        "owner get of another's 404": (
            lambda: None,
            lambda _: api("GET", f"/users/{admin_user['id']}", claims=ann),
            404,
        ),
        "owner list first page": (
            lambda: None,
            lambda _: api("GET", "/users", query="limit=2", claims=ann),
            200,
        ),
        "owner list next page": (
            lambda: None,
            lambda _: api("GET", "/users", query=f"limit=2&cursor={own_cursor}", claims=ann),
            200,
        ),
        "owner create": (
            lambda: next(counter),
            lambda n: api(
                "POST",
                "/users",
                {"name": "O", "email": f"new{n}@example.com"},
                claims=owner_claims(f"new-{n}", f"new{n}@example.com"),
            ),
            201,
        ),
        "owner create 409 (has one)": (
            lambda: None,
            lambda _: api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}, claims=ann),
            409,
        ),
        "owner patch": (
            lambda: None,
            lambda _: api("PATCH", f"/users/{ann_user['id']}", {"name": "Ann P"}, claims=ann),
            200,
        ),
        "owner patch of another's 404": (
            lambda: None,
            lambda _: api("PATCH", f"/users/{admin_user['id']}", {"name": "X"}, claims=ann),
            404,
        ),
        "owner delete": (
            fresh_owner,
            lambda owner: api("DELETE", f"/users/{owner[1]}", claims=owner[0]),
            204,
        ),
        "owner delete of another's 404": (
            lambda: None,
            lambda _: api("DELETE", f"/users/{admin_user['id']}", claims=ann),
            404,
        ),
        "me get": (lambda: None, lambda _: api("GET", "/users/me", claims=ann), 200),
        "me get 404": (lambda: None, lambda _: api("GET", "/users/me", claims=owner_claims("nobody")), 404),
        "me create": (
            lambda: next(counter),
            lambda n: api(
                "POST",
                "/users/me",
                {"name": "M", "email": f"me{n}@example.com"},
                claims=owner_claims(f"me-{n}", f"me{n}@example.com"),
            ),
            201,
        ),
        "me create 409 (email taken)": (
            lambda: None,
            lambda _: api(
                "POST",
                "/users/me",
                {"name": "M", "email": "taken@example.com"},
                claims=owner_claims("late", "taken@example.com"),
            ),
            409,
        ),
        "me patch": (lambda: None, lambda _: api("PATCH", "/users/me", {"name": "Ann M"}, claims=ann), 200),
        "me patch 404": (
            lambda: None,
            lambda _: api("PATCH", "/users/me", {"name": "X"}, claims=owner_claims("nobody")),
            404,
        ),
        "me delete": (fresh_owner, lambda owner: api("DELETE", "/users/me", claims=owner[0]), 204),
        "me delete 404": (
            lambda: None,
            lambda _: api("DELETE", "/users/me", claims=owner_claims("nobody")),
            404,
        ),
    }
    conn = app.database().connection()
    for name, (setup, request, status) in scenarios.items():
        # The seventh run is warm: psycopg prepares a statement on its sixth execution (one extra round
        # trip, once per statement per connection).
        for _ in range(7):
            argument = setup()
            with RoundTrips(conn) as trips:
                reply = request(argument)
            assert reply.status == status, (name, reply.body)
        assert (trips.count, trips.statements) == (1, 1), name
    assert app.database().connects == 1


def test_unreachable_database_is_503_with_retry_after(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://users_api@127.0.0.1:{port}/postgres")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "2")
    app.reset()
    health = api("GET", "/health")
    assert health.status == 503
    assert health.body == {
        "status": "unavailable",
        "region": "us-test-1",
        "database": {"ok": False, "latency_ms": None},
    }
    assert int(health.headers["Retry-After"]) >= 1
    for reply in (
        api("GET", "/users"),
        api("GET", f"/users/{uuid.uuid4()}"),
        api("POST", "/users", {"name": "A", "email": "a@example.com"}),
        api("DELETE", f"/users/{uuid.uuid4()}"),
    ):
        assert_error(reply, 503, "service_unavailable")
        assert int(reply.headers["Retry-After"]) >= 1
    # Validation still answers without a database.
    assert_error(api("POST", "/users", {"name": ""}), 400, "validation_failed")


def _terminate_app_backends(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'users_api' "
            "AND datname = current_database()"
        ).fetchall()
    time.sleep(0.1)
    return len(rows)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_connection_closed_by_the_server_is_replaced_before_the_next_request(
    api: Call, admin_url: str, method: str
) -> None:
    user = create(api)
    assert _terminate_app_backends(admin_url) == 1
    if method == "GET":
        reply = api("GET", f"/users/{user['id']}")
    elif method == "POST":
        reply = api("POST", "/users", {"name": "After", "email": "after@example.com"})
    else:
        reply = api("DELETE", f"/users/{user['id']}")
    assert reply.status in (200, 201, 204), reply.body
    assert app.database().connects == 2


def test_broken_connection_mid_request_retries_reads_once_but_not_writes(api: Call, admin_url: str) -> None:
    """Kill the backend while a statement runs: a read is retried on a new connection, a create is not."""
    api("GET", "/health")
    database = app.database()

    def killed_then(sql: str) -> Callable[[psycopg.Connection], object]:
        calls = {"n": 0}

        def work(conn: psycopg.Connection) -> object:
            calls["n"] += 1
            if calls["n"] == 1:
                pid = conn.info.backend_pid
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                time.sleep(0.05)
                # The server is gone but the client has not noticed yet: this statement fails in flight.
                return conn.execute("SELECT pg_sleep(0)").fetchone()
            return conn.execute(sql).fetchone()

        work.calls = calls  # type: ignore[attr-defined]
        return work

    read = killed_then("SELECT 1")
    assert database.run(read, idempotent=True) == (1,)
    assert read.calls["n"] == 2  # type: ignore[attr-defined]
    write = killed_then("SELECT 2")
    with pytest.raises(db.DatabaseUnavailable):
        database.run(write, idempotent=False)
    assert write.calls["n"] == 1  # type: ignore[attr-defined]
    assert database.connection().execute("SELECT 3").fetchone() == (3,)


def test_connection_is_recycled_after_its_maximum_age(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_CONNECTION_MAX_AGE_S", "1")
    app.reset()
    api("GET", "/users")
    first_pid = app.database().connection().info.backend_pid
    api("GET", "/users")
    assert app.database().connects == 1
    time.sleep(1.1)
    api("GET", "/users")
    assert app.database().connects == 2
    assert app.database().connection().info.backend_pid != first_pid


def test_occ_conflicts_are_retried_with_backoff_then_reported_as_503(api: Call) -> None:
    api("GET", "/health")
    database = app.database()
    attempts = {"n": 0}

    def conflicting_twice(conn: psycopg.Connection) -> object:
        attempts["n"] += 1
        if attempts["n"] <= 2:
            # A real 40001 from the server, as DSQL reports an OCC conflict.
            conn.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
        return conn.execute("SELECT 'done'").fetchone()

    assert database.run(conflicting_twice, idempotent=False) == ("done",)
    assert attempts["n"] == 3

    def always_conflicting(conn: psycopg.Connection) -> object:
        attempts["n"] += 1
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'OC000'; END $$")
        return None

    attempts["n"] = 0
    with pytest.raises(psycopg.Error) as caught:
        database.run(always_conflicting, idempotent=True)
    assert attempts["n"] == db.OCC_RETRIES + 1
    from handler.errors import to_api_error

    error = to_api_error(caught.value)
    assert (error.status, error.headers["Retry-After"]) == (503, "1")


def test_statement_timeout_is_503_not_a_hang(
    api: Call, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEMENT_TIMEOUT_MS", "200")
    app.reset()
    user = create(api)
    with psycopg.connect(admin_url) as locker:
        locker.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        started = time.monotonic()
        reply = api("PATCH", f"/users/{user['id']}", {"name": "Blocked"})
        elapsed = time.monotonic() - started
        locker.rollback()
    assert_error(reply, 503, "service_unavailable")
    assert reply.headers["Retry-After"]
    assert elapsed < 3
    assert api("PATCH", f"/users/{user['id']}", {"name": "Free"}).status == 200


def _logged(event: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    handler = logs.logger().registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        app.lambda_handler(event, LambdaContext(aws_request_id=request_id))
    finally:
        handler.setStream(previous)
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_request_log_at_debug_is_json_with_both_request_ids_and_no_secrets(api: Call) -> None:
    event = api_gateway_event(
        "POST",
        "/users",
        headers=[("Content-Type", "application/json"), ("Authorization", "Bearer secret-token-123")],
        body='{"name": "Logged", "email": "logged@example.com"}',
        request_id="req-abc-123",
    )
    with_claims(event, ADMIN_CLAIMS)
    level = logs.logger().log_level
    logs.logger().setLevel("DEBUG")
    logs.debug_enabled = True
    try:
        lines = _logged(event, "lambda-req-9")
    finally:
        logs.logger().setLevel(level)
        logs.debug_enabled = False
    request_log = next(line for line in lines if line["message"] == "request")
    assert request_log["correlation_id"] == "req-abc-123"
    assert request_log["function_request_id"] == "lambda-req-9"
    assert (request_log["method"], request_log["path"], request_log["status"]) == ("POST", "/users", 201)
    text = json.dumps(lines)
    assert "secret-token-123" not in text
    assert "logged@example.com" not in text


def test_warnings_carry_the_request_ids_at_the_default_level(
    api: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://users_api:hunter2@127.0.0.1:1/postgres")
    app.reset()
    lines = _logged(
        with_claims(api_gateway_event("GET", "/users", request_id="req-down-1"), ADMIN_CLAIMS),
        "lambda-req-down",
    )
    assert lines, "a 503 must be logged"
    assert all(line["level"] == "WARNING" for line in lines)
    assert {line["correlation_id"] for line in lines} == {"req-down-1"}
    assert {line["function_request_id"] for line in lines} == {"lambda-req-down"}
    assert "hunter2" not in json.dumps(lines)
    # The next invocation does not inherit the previous one's ids.
    lines = _logged(
        with_claims(api_gateway_event("GET", "/users", request_id="req-down-2"), ADMIN_CLAIMS), "lambda-req-2"
    )
    assert {line["correlation_id"] for line in lines} == {"req-down-2"}


def test_every_statement_passes_dsql_lint(tmp_path: Any) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    sql = tmp_path / "handler.sql"
    sql.write_text(";\n".join(s.replace("%s", "$1") for s in users.ALL_SQL) + ";\n")
    lint = shutil.which("dsql-lint") or str(Path(sys.executable).parent / "dsql-lint")
    result = subprocess.run([lint, str(sql)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_answer_names_the_serving_region_and_browsers_may_read_it(api: Call) -> None:
    region = "us-test-1"  # the fixture's AWS_REGION, as Lambda sets it
    for method, path in (
        ("GET", "/health"),
        ("GET", "/users"),
        ("GET", "/users/nope"),
        ("DELETE", "/health"),
    ):
        assert api(method, path).headers["X-Served-Region"] == region, (method, path)
    exposed = api("GET", "/users", headers={"Origin": ORIGIN}).headers["Access-Control-Expose-Headers"]
    assert "X-Served-Region" in [name.strip() for name in exposed.split(",")]
