"""``Idempotency-Key`` on creates, as the IETF draft "The Idempotency-Key HTTP Header Field" describes it.

A client that did not get the answer to a create (a lost connection, a 503, a region failing over) sends
the same request again with the same key and gets the first answer, in either region: the key and the
answer live in DSQL (table ``idempotency_keys``, migrations/0005), which both regions share.

One key, per caller (``owner_scope``: the token's sub), goes through these states:

1. **claimed**: an autocommit INSERT of the key, the request's fingerprint and a random ``attempt`` id,
   with no answer yet. Only one request can insert it (primary key); any other finds the row.
2. **answered**: one transaction inserts the user and stores the answer (status, body, Location) in the
   key's row, checking ``attempt``, so the answer exists exactly when the user does.
3. **expired**: 24 hours after the claim the key may be used again; the cleanup deletes it.

Another request that finds the row answers: the stored answer when the fingerprint matches (a replay,
marked ``Idempotent-Replayed: true``); 422 when the fingerprint differs (the key was used for another
request); 409 with Retry-After while the first is in flight. A create that fails (the email is taken,
a conflict) releases the key, so the answer to a retry is the one the retry earns. A claim whose request
never finished (the function stopped between the two steps) is taken over once ``IN_FLIGHT_S`` has
passed, longer than any request can run.

The fingerprint is SHA-256 over the route and the validated values (names trimmed, emails canonical),
so two spellings of one request are one request.

Cleanup (``purge_expired``): every keyed create that stored an answer deletes, one time in
``PURGE_EVERY``, one batch of at most ``PURGE_BATCH`` expired keys, oldest first, in its own autocommit
statement after the answer is stored. Expired keys never change an answer (lookups ignore them), so
cleanup only bounds the table; no schedule is needed and a request without a key never pays for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg
from psycopg import errors as pg_errors

from handler import logs
from handler.auth import Caller
from handler.errors import BadRequest, Conflict, IdempotencyKeyReused, RequestInFlight

HEADER = "Idempotency-Key"
KEY_MAX = 255
EXPIRES_S = 24 * 3600
IN_FLIGHT_S = 60  # longer than a request may run (API Gateway stops waiting at 29 s)
PURGE_EVERY = 50
PURGE_BATCH = 1000  # DSQL: at most 3,000 modified rows per transaction
RETRY_AFTER_S = 1

# RFC 8941 sf-string: printable ASCII in double quotes, \" and \\ escaped. A bare key of visible ASCII is
# also accepted (many clients send one unquoted), without quotes or backslashes in it.
_SF_STRING = re.compile(r'^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$')
_BARE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")

CLAIM_SQL = "INSERT INTO idempotency_keys (owner_scope, idempotency_key, fingerprint, attempt) VALUES (%s, %s, %s, %s)"
# The row, whether it is younger than the expiry (live) and than the in-flight limit (recent), and
# whether the user it created still exists.
FIND_SQL = (
    "SELECT fingerprint, attempt, status, response_body, location, "
    "created_at > now() - %s * interval '1 second', created_at > now() - %s * interval '1 second', "
    "EXISTS (SELECT 1 FROM users WHERE users.id = idempotency_keys.user_id) "
    "FROM idempotency_keys WHERE owner_scope = %s AND idempotency_key = %s"
)
TAKE_OVER_SQL = (
    "UPDATE idempotency_keys SET fingerprint = %s, attempt = %s, created_at = now(), status = NULL, "
    "response_body = NULL, location = NULL, user_id = NULL "
    "WHERE owner_scope = %s AND idempotency_key = %s AND attempt = %s RETURNING attempt"
)
ANSWER_SQL = (
    "UPDATE idempotency_keys SET status = %s, response_body = %s, location = %s, user_id = %s "
    "WHERE owner_scope = %s AND idempotency_key = %s AND attempt = %s AND status IS NULL RETURNING attempt"
)
RELEASE_SQL = (
    "DELETE FROM idempotency_keys "
    "WHERE owner_scope = %s AND idempotency_key = %s AND attempt = %s AND status IS NULL"
)
PURGE_SQL = (
    "DELETE FROM idempotency_keys WHERE (owner_scope, idempotency_key) IN ("
    "SELECT owner_scope, idempotency_key FROM idempotency_keys "
    "WHERE created_at < now() - %s * interval '1 second' ORDER BY created_at LIMIT %s)"
)
ALL_SQL = (CLAIM_SQL, FIND_SQL, TAKE_OVER_SQL, ANSWER_SQL, RELEASE_SQL, PURGE_SQL)


class Answer(NamedTuple):
    """An answer stored with its key, or about to be."""

    status: int
    body: dict[str, Any]
    location: str | None


def key_from_headers(headers: dict[str, str] | None) -> str | None:
    """The request's key (None without the header); 400 naming the rule when it is not one."""
    from handler.validation import header

    raw = header(headers, HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    quoted = _SF_STRING.fullmatch(raw)
    key = re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else raw
    if not (quoted or _BARE.fullmatch(raw)) or not key or len(key) > KEY_MAX:
        raise BadRequest(
            f"the {HEADER} header must be a quoted string of 1 to {KEY_MAX} printable ASCII characters, "
            f'such as {HEADER}: "8e03978e-40d5-43e8-bc93-6894a57f9324" (a new UUID for each request)'
        )
    return key


def owner_scope(caller: Caller) -> str:
    """Whose keys these are: keys never meet across callers."""
    return f"sub:{caller.sub}" if caller.sub is not None else "anonymous"


def fingerprint(route: str, values: dict[str, Any]) -> str:
    text = json.dumps([route, values], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Replay(Exception):
    """The key already holds an answer: send it again."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replay")
        self.answer = answer


def claim(conn: psycopg.Connection, scope: str, key: str, print_: str, attempt: str) -> None:
    """Step 1: make the key ours, or raise what the request must answer instead (Replay, 409, 422).

    Safe to run again after a lost connection: a row holding our own attempt id is our claim.
    """
    try:
        conn.execute(CLAIM_SQL, (scope, key, print_, attempt))
        return
    except pg_errors.UniqueViolation:
        pass
    row = conn.execute(FIND_SQL, (EXPIRES_S, IN_FLIGHT_S, scope, key)).fetchone()
    if row is None:
        # Released or purged between the two statements: claim again, once.
        try:
            conn.execute(CLAIM_SQL, (scope, key, print_, attempt))
        except pg_errors.UniqueViolation:
            raise RequestInFlight(
                f"another request with this {HEADER} started just now; retry after it finishes",
                retry_after=RETRY_AFTER_S,
            ) from None
        return
    found_print, found_attempt, status, body, location, live, recent, user_exists = row
    found_attempt = str(found_attempt)
    if found_attempt == attempt:
        return
    if live and found_print.strip() != print_:
        raise IdempotencyKeyReused(
            f"this {HEADER} was already used for a different request in the last 24 hours; "
            "send a new key for a new request"
        )
    if live and status is not None:
        if not user_exists:
            raise Conflict(
                f"the user created with this {HEADER} was deleted since; send a new key to create another"
            )
        raise Replay(Answer(int(status), json.loads(body), location))
    if live and recent:
        raise RequestInFlight(
            f"a request with this {HEADER} is still being processed; retry after it finishes",
            retry_after=RETRY_AFTER_S,
        )
    # Expired, or in flight for longer than any request runs (its function stopped): take it over.
    taken = conn.execute(TAKE_OVER_SQL, (print_, attempt, scope, key, found_attempt)).fetchone()
    if taken is None:
        raise RequestInFlight(
            f"a request with this {HEADER} is still being processed; retry after it finishes",
            retry_after=RETRY_AFTER_S,
        )


def answer_with(
    create: Callable[[psycopg.Connection], Answer], scope: str, key: str, attempt: str
) -> Callable[[psycopg.Connection], Answer]:
    """Step 2 as work for ``Database.run``: in one transaction, the create and its stored answer.

    Four round trips (BEGIN, INSERT, UPDATE, COMMIT), so a keyed create costs five with its claim
    (measured in tests/test_idempotency.py). psycopg's pipeline mode saved none here: each statement's
    result is needed before the next is sent. A writable CTE could make it one statement, but whether
    DSQL accepts data-modifying CTEs is unverified.
    """

    def work(conn: psycopg.Connection) -> Answer:
        with conn.transaction():
            answer = create(conn)
            body = json.dumps(answer.body, ensure_ascii=False, separators=(",", ":"))
            stored = conn.execute(
                ANSWER_SQL, (answer.status, body, answer.location, answer.body["id"], scope, key, attempt)
            ).fetchone()
            if stored is None:
                # Our claim was taken over (we ran past IN_FLIGHT_S): undo the create, answer 409.
                raise RequestInFlight(
                    f"this request took too long and its {HEADER} was taken over; retry it",
                    retry_after=RETRY_AFTER_S,
                )
        return answer

    return work


def release(conn: psycopg.Connection, scope: str, key: str, attempt: str) -> None:
    conn.execute(RELEASE_SQL, (scope, key, attempt))


def purge_expired(conn: psycopg.Connection, batch: int = PURGE_BATCH) -> int:
    """Delete one batch of expired keys, oldest first; the number deleted (less than batch: done)."""
    return conn.execute(PURGE_SQL, (EXPIRES_S, batch)).rowcount


def should_purge() -> bool:
    return random.random() < 1 / PURGE_EVERY


def new_attempt() -> str:
    """A random version-4 UUID in its text form (not the uuid module: its import counts at cold start)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def log_release_failure(exc: BaseException) -> None:
    logs.warning(
        "idempotency key not released; it frees itself after the in-flight limit",
        reason=type(exc).__name__,
        in_flight_s=IN_FLIGHT_S,
    )
