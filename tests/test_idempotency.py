"""Idempotency-Key on creates (handler/idempotency.py), in-process against a real PostgreSQL.

The HTTP tests against the local two-region app (retries in both regions, eight concurrent retries)
are in tests/test_idempotency_http.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from handler import app, idempotency
from tests import test_handler
from tests.test_handler import Call, RoundTrips, assert_error, owner_claims

# The handler fixtures of tests/test_handler.py: the handler as the local app configures it.
api = test_handler.api
admin_url = test_handler.admin_url


def key_header(key: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{key}"'}


def count(url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]  # type: ignore[index]


def test_a_retry_with_its_key_gets_the_first_answer_and_makes_no_second_user(
    api: Call, admin_url: str
) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Ann", "email": "ann@example.com"}
    first = api("POST", "/users", body, headers=key_header(key))
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    again = api("POST", "/users", {"name": " Ann ", "email": "ANN@example.com"}, headers=key_header(key))
    assert again.status == 201
    assert again.body == first.body
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(admin_url, "SELECT count(*) FROM users") == 1
    # The answer is the first one even after the user changed.
    api("PATCH", f"/users/{first.body['id']}", {"name": "Changed"})
    assert api("POST", "/users", body, headers=key_header(key)).body["name"] == "Ann"


def test_the_same_key_with_another_body_is_422(api: Call) -> None:
    key = str(uuid.uuid4())
    assert (
        api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key)).status
        == 201
    )
    reply = api("POST", "/users", {"name": "Bob", "email": "bob@example.com"}, headers=key_header(key))
    assert_error(reply, 422, "idempotency_key_reused")
    assert "new key" in reply.body["error"]["message"]
    # ...and on the other create route, which is another request too.
    me = api("POST", "/users/me", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key))
    assert_error(me, 422, "idempotency_key_reused")


def test_keys_are_scoped_to_the_caller(api: Call, admin_url: str) -> None:
    key = "shared-key"
    ann = owner_claims("sub-ann", "ann@example.com")
    bob = owner_claims("sub-bob", "bob@example.com")
    a = api(
        "POST", "/users/me", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key), claims=ann
    )
    b = api(
        "POST", "/users/me", {"name": "Bob", "email": "bob@example.com"}, headers=key_header(key), claims=bob
    )
    assert (a.status, b.status) == (201, 201) and a.body["id"] != b.body["id"]
    # Ann's retry of her own profile is her first answer, not "you already have a profile".
    retry = api(
        "POST", "/users/me", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key), claims=ann
    )
    assert (retry.status, retry.body) == (201, a.body)
    assert count(admin_url, "SELECT count(*) FROM idempotency_keys") == 2


def test_a_request_in_flight_is_409_with_retry_after_and_an_abandoned_one_is_taken_over(
    api: Call, admin_url: str
) -> None:
    key = "in-flight"
    body = {"name": "Ann", "email": "ann@example.com"}
    print_ = idempotency.fingerprint("POST /users", body)
    scope = idempotency.owner_scope(
        app.Caller(sub="0b5e2f4c-admin-4e7a-9c1d-000000000001", email=None, is_admin=True)
    )
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(idempotency.CLAIM_SQL, (scope, key, print_, idempotency.new_attempt()))
    reply = api("POST", "/users", body, headers=key_header(key))
    assert_error(reply, 409, "request_in_flight")
    assert reply.headers["Retry-After"] == "1"
    assert count(admin_url, "SELECT count(*) FROM users") == 0
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '61 seconds'")
    taken = api("POST", "/users", body, headers=key_header(key))
    assert taken.status == 201, taken.body
    assert api("POST", "/users", body, headers=key_header(key)).body == taken.body


def test_a_retry_after_the_user_was_deleted_is_409_not_a_201_for_a_missing_user(api: Call) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Ann", "email": "ann@example.com"}
    first = api("POST", "/users", body, headers=key_header(key))
    assert api("DELETE", f"/users/{first.body['id']}").status == 204
    reply = api("POST", "/users", body, headers=key_header(key))
    assert_error(reply, 409, "conflict")
    assert "was deleted since" in reply.body["error"]["message"]


def test_a_key_expires_after_24_hours(api: Call, admin_url: str) -> None:
    key = str(uuid.uuid4())
    first = api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'")
    other = api("POST", "/users", {"name": "Bob", "email": "bob@example.com"}, headers=key_header(key))
    assert other.status == 201 and other.body["id"] != first.body["id"]
    assert "Idempotent-Replayed" not in other.headers


def test_a_failed_create_releases_its_key(api: Call, admin_url: str) -> None:
    api("POST", "/users", {"name": "Taken", "email": "taken@example.com"})
    key = str(uuid.uuid4())
    refused = api("POST", "/users", {"name": "Ann", "email": "taken@example.com"}, headers=key_header(key))
    assert_error(refused, 409, "conflict", "email")
    assert count(admin_url, "SELECT count(*) FROM idempotency_keys") == 0
    fixed = api("POST", "/users", {"name": "Ann", "email": "ann@example.com"}, headers=key_header(key))
    assert fixed.status == 201


@pytest.mark.parametrize(
    "value",
    ['""', '"' + "k" * 256 + '"', '"has\ttab"', "two words", '"unterminated', '"caf\u00e9"'],
)
def test_a_malformed_key_is_400_naming_the_rule(api: Call, value: str) -> None:
    reply = api(
        "POST", "/users", {"name": "Ann", "email": "ann@example.com"}, headers={"Idempotency-Key": value}
    )
    assert_error(reply, 400, "bad_request")
    assert "Idempotency-Key header must be a quoted string" in reply.body["error"]["message"]


def test_quoted_and_bare_keys_are_one_key_and_escapes_are_unescaped(api: Call, admin_url: str) -> None:
    body = {"name": "Ann", "email": "ann@example.com"}
    first = api("POST", "/users", body, headers={"Idempotency-Key": '"key-1"'})
    assert api("POST", "/users", body, headers={"Idempotency-Key": "key-1"}).body == first.body
    escaped = api(
        "POST", "/users", {"name": "Bo", "email": "bo@example.com"}, headers={"Idempotency-Key": '"a\\"b"'}
    )
    assert escaped.status == 201
    with psycopg.connect(admin_url) as conn:
        keys = {row[0] for row in conn.execute("SELECT idempotency_key FROM idempotency_keys")}
    assert keys == {"key-1", 'a"b'}


def test_expired_keys_are_purged_oldest_first_in_batches(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (owner_scope, idempotency_key, fingerprint, attempt, created_at) "
            "SELECT 'anonymous', 'k' || n, repeat('0', 64), gen_random_uuid(), "
            "now() - interval '25 hours' - n * interval '1 second' FROM generate_series(1, 2500) AS n"
        )
        conn.execute(
            "INSERT INTO idempotency_keys (owner_scope, idempotency_key, fingerprint, attempt) "
            "VALUES ('anonymous', 'live', repeat('0', 64), gen_random_uuid())"
        )
        deleted = [idempotency.purge_expired(conn) for _ in range(4)]
        assert deleted == [1000, 1000, 500, 0]
        assert [row[0] for row in conn.execute("SELECT idempotency_key FROM idempotency_keys")] == ["live"]
    assert idempotency.PURGE_BATCH <= 3000  # DSQL's limit of modified rows per transaction


def test_a_create_without_a_key_is_still_one_round_trip_and_a_keyed_one_costs_five(
    api: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cleanup's one statement, which one keyed create in PURGE_EVERY adds, is measured apart below.
    monkeypatch.setattr(idempotency, "should_purge", lambda: False)
    conn = app.database().connection()
    costs: dict[str, tuple[int, int]] = {}
    for n in range(7):  # the seventh is warm (psycopg prepares on the sixth execution)
        with RoundTrips(conn) as plain:
            assert api("POST", "/users", {"name": "P", "email": f"plain{n}@example.com"}).status == 201
        with RoundTrips(conn) as keyed:
            reply = api(
                "POST", "/users", {"name": "K", "email": f"keyed{n}@example.com"}, headers=key_header(f"k{n}")
            )
            assert reply.status == 201
        with RoundTrips(conn) as replay:
            api(
                "POST", "/users", {"name": "K", "email": f"keyed{n}@example.com"}, headers=key_header(f"k{n}")
            )
        costs = {
            "plain": (plain.count, plain.statements),
            "keyed": (keyed.count, keyed.statements),
            "replay": (replay.count, replay.statements),
        }
    print(costs)
    assert costs["plain"] == (1, 1)
    # claim, BEGIN, INSERT, UPDATE, COMMIT; a replay: the claim refused, then the read of the answer
    assert costs["keyed"] == (5, 5)
    assert costs["replay"] == (2, 2)


def test_the_cleanup_rides_on_a_keyed_create_as_one_more_statement(
    api: Call, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (owner_scope, idempotency_key, fingerprint, attempt, created_at) "
            "SELECT 'anonymous', 'old' || n, repeat('0', 64), gen_random_uuid(), now() - interval '2 days' "
            "FROM generate_series(1, 5) AS n"
        )
    monkeypatch.setattr(idempotency, "should_purge", lambda: True)
    conn = app.database().connection()
    with RoundTrips(conn) as keyed:
        reply = api("POST", "/users", {"name": "K", "email": "k@example.com"}, headers=key_header("fresh"))
    assert reply.status == 201
    assert (keyed.count, keyed.statements) == (6, 6)
    assert count(admin_url, "SELECT count(*) FROM idempotency_keys") == 1  # only the fresh key is left
