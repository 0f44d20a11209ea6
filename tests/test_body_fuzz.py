"""Property-based fuzzing (Hypothesis) of the request body parser and the user validation.

The property: whatever the body, its encoding and its Content-Type, ``validation.json_object`` followed
by ``new_user``/``user_patch`` either returns typed values or raises an ``ApiError`` with a 4xx status
and a message; nothing else escapes. The handler-level test sends the same bodies through
``app.handle`` and asserts that no answer is a 500.

Hypothesis shrinks any failure to a minimal body and stores it in .hypothesis/ so the next run tries it
first. The number of examples is fixed (no deadline): the test proves a property, it does not time it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler import app, validation
from handler.errors import ApiError
from local.events import api_gateway_event

MAX_BYTES = 16_384
# The one function-scoped fixture only sets the environment, the same for every example.
EXAMPLES = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Any JSON value, with numbers at the edges: integers past Python's 4,300-digit conversion limit are
# produced as text below (Hypothesis integers stay small), floats include the huge and the tiny.
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies shaped like a user, the place where field values are checked.
field_values = json_values | st.text(max_size=300) | st.emails()
user_like = st.dictionaries(
    st.sampled_from(["name", "email", "extra", "Name", ""]), field_values, max_size=3
).map(json.dumps)
# Numbers as JSON text that json.loads cannot simply convert: long integers, huge exponents.
long_numbers = st.builds(
    lambda sign, digits, rest, exponent: sign + digits + rest + exponent,
    st.sampled_from(["", "-"]),
    st.sampled_from(["1", "9"]),
    st.integers(min_value=0, max_value=6000).map(lambda n: "0" * n),
    st.sampled_from(["", ".5", "e999999", "E-999999", "e+5"]),
)
number_bodies = st.builds(
    lambda field, number: f'{{"{field}": {number}, "email": "a@example.com"}}',
    st.sampled_from(["name", "email", "x"]),
    long_numbers,
)
text_bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    user_like,
    number_bodies,
    st.text(max_size=200),  # mostly not JSON at all
    st.builds(lambda n: "[" * n + "]" * n, st.integers(min_value=0, max_value=9000)),
)
raw_bodies = st.one_of(
    text_bodies.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;charset=UTF8",
        "application/json; charset=latin-1",
        "text/plain",
        "",
        'application/json; charset="',
    ]
)


def event_for(raw: bytes, content_type: str, as_base64: bool, method: str, path: str) -> dict[str, Any]:
    headers = [("Content-Type", content_type)] if content_type else []
    event = api_gateway_event(method, path, headers=headers)
    if as_base64:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        try:
            event["body"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return event


def assert_client_error(exc: ApiError) -> None:
    assert 400 <= exc.status < 500, (exc.status, exc.message)
    assert exc.message


@EXAMPLES
@given(raw=raw_bodies, content_type=content_types, as_base64=st.booleans())
def test_body_parser_and_validation_never_raise_anything_but_a_4xx(
    raw: bytes, content_type: str, as_base64: bool
) -> None:
    event = event_for(raw, content_type, as_base64, "POST", "/users")
    try:
        payload = validation.json_object(event, MAX_BYTES)
    except ApiError as exc:
        assert_client_error(exc)
        return
    assert isinstance(payload, dict)
    for check in (validation.new_user, validation.user_patch):
        try:
            values = check(payload)
        except ApiError as exc:
            assert_client_error(exc)
            assert exc.fields, exc.message  # a refused user always names its fields
        else:
            assert all(value is None or isinstance(value, str) for value in values)


@EXAMPLES
@given(raw=st.one_of(raw_bodies, number_bodies.map(str.encode)))
def test_huge_numbers_anywhere_are_400_naming_the_rule(raw: bytes) -> None:
    event = event_for(raw, "application/json", False, "POST", "/users")
    try:
        validation.new_user(validation.json_object(event, 10**9))
    except ApiError as exc:
        assert_client_error(exc)


class _NoDatabase:
    """Stands in for the database in the handler-level fuzz: only bodies that passed validation reach
    it, and what it answers is not the property under test (tests/test_handler.py covers that)."""

    def run(self, work: Any, *, idempotent: bool) -> Any:
        return {"id": "00000000-0000-4000-8000-000000000000", "name": "n", "email": "e@example.com"}


@pytest.fixture
def handler_without_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused")
    monkeypatch.setenv("AWS_REGION", "us-test-1")
    monkeypatch.setenv("AUTH_MODE", "cognito")
    monkeypatch.delenv("DSQL_ENDPOINT", raising=False)
    app.reset()
    monkeypatch.setattr(app, "database", _NoDatabase)
    yield
    app.reset()


@EXAMPLES
@given(
    raw=raw_bodies,
    content_type=content_types,
    as_base64=st.booleans(),
    route=st.sampled_from(
        [
            ("POST", "/users"),
            ("POST", "/users/me"),
            ("PATCH", "/users/me"),
            ("PATCH", "/users/00000000-0000-4000-8000-000000000000"),
        ]
    ),
)
def test_no_body_makes_the_handler_answer_500(
    handler_without_database: None, raw: bytes, content_type: str, as_base64: bool, route: tuple[str, str]
) -> None:
    event = event_for(raw, content_type, as_base64, *route)
    event["requestContext"]["authorizer"] = {
        "claims": {
            "sub": "fuzz",
            "cognito:groups": "admins",
            "token_use": "id",
            "email": "f@example.com",
            "email_verified": "true",
        }
    }
    response = app.handle(event)
    assert response["statusCode"] < 500, response["body"]
    if response["statusCode"] >= 400:
        assert json.loads(response["body"])["error"]["message"]
