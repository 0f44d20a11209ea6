"""Data access for the users table, with the ownership rules inside every statement.

One autocommit statement per operation, so one round trip each. Who may touch a row is decided by the
statement itself, never by a check before it: an administrator's statements address any row by id; everyone
else's carry ``owner_sub = <the token's sub>`` in their WHERE clause (or write it in their INSERT), so a
row of another owner is simply not found (404, existence not revealed), and a route that forgot to check
a role still cannot reach another owner's row. There is no statement a non-admin can reach that reads or
changes a row without that predicate. Separate admin and owner statements (not ``owner_sub = %s OR %s``)
keep each plan simple: an owner's statements are lookups on the unique owner index or the primary key,
never a scan filtered row by row.

Rows written before migration 0004 (and by administrators through POST /users) have no owner: only
administrators see them.

Every statement is plain SQL that DSQL accepts (checked with dsql-lint in the tests). Listing is keyset
pagination on (created_at, id), served by the index users_created_at_id_idx scanned backwards; a page
fetches one extra row to know whether another page follows, so it never counts or scans the table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from handler.auth import Caller, owner_sub, writable_email

COLUMNS = "id, name, email, created_at, updated_at"
_ORDER = "ORDER BY created_at DESC, id DESC LIMIT %s"
_SET = "SET name = COALESCE(%s, name), email = COALESCE(%s, email), updated_at = now()"

# Administrators: any row.
GET_ANY_SQL = f"SELECT {COLUMNS} FROM users WHERE id = %s"
FIRST_PAGE_ANY_SQL = f"SELECT {COLUMNS} FROM users {_ORDER}"
NEXT_PAGE_ANY_SQL = f"SELECT {COLUMNS} FROM users WHERE (created_at, id) < (%s, %s) {_ORDER}"
CREATE_UNOWNED_SQL = f"INSERT INTO users (name, email) VALUES (%s, %s) RETURNING {COLUMNS}"
UPDATE_ANY_SQL = f"UPDATE users {_SET} WHERE id = %s RETURNING {COLUMNS}"
DELETE_ANY_SQL = "DELETE FROM users WHERE id = %s RETURNING id"

# Everyone else: only rows whose owner_sub is the caller's sub.
GET_OWNED_SQL = f"SELECT {COLUMNS} FROM users WHERE id = %s AND owner_sub = %s"
FIRST_PAGE_OWNED_SQL = f"SELECT {COLUMNS} FROM users WHERE owner_sub = %s {_ORDER}"
NEXT_PAGE_OWNED_SQL = (
    f"SELECT {COLUMNS} FROM users WHERE owner_sub = %s AND (created_at, id) < (%s, %s) {_ORDER}"
)
CREATE_OWNED_SQL = f"INSERT INTO users (name, email, owner_sub) VALUES (%s, %s, %s) RETURNING {COLUMNS}"
UPDATE_OWNED_SQL = f"UPDATE users {_SET} WHERE id = %s AND owner_sub = %s RETURNING {COLUMNS}"
DELETE_OWNED_SQL = "DELETE FROM users WHERE id = %s AND owner_sub = %s RETURNING id"

# /users/me, for anyone signed in: the one row owned by the caller's sub.
GET_MINE_SQL = f"SELECT {COLUMNS} FROM users WHERE owner_sub = %s"
UPDATE_MINE_SQL = f"UPDATE users {_SET} WHERE owner_sub = %s RETURNING {COLUMNS}"
DELETE_MINE_SQL = "DELETE FROM users WHERE owner_sub = %s RETURNING id"

PING_SQL = "SELECT 1"

ALL_SQL = (
    GET_ANY_SQL,
    FIRST_PAGE_ANY_SQL,
    NEXT_PAGE_ANY_SQL,
    CREATE_UNOWNED_SQL,
    UPDATE_ANY_SQL,
    DELETE_ANY_SQL,
    GET_OWNED_SQL,
    FIRST_PAGE_OWNED_SQL,
    NEXT_PAGE_OWNED_SQL,
    CREATE_OWNED_SQL,
    UPDATE_OWNED_SQL,
    DELETE_OWNED_SQL,
    GET_MINE_SQL,
    UPDATE_MINE_SQL,
    DELETE_MINE_SQL,
    PING_SQL,
)


def use_api_representation(conn: psycopg.Connection) -> None:
    """Load uuid and timestamptz columns as the text PostgreSQL sends, not as Python objects.

    The API only ever prints them, so parsing into UUID/datetime and formatting back would be wasted
    work on every row (it was a third of a 50-row list request). Called once per connection.
    """
    conn.adapters.register_loader("uuid", TextLoader)
    conn.adapters.register_loader("timestamptz", TextLoader)


def _timestamp(text: str) -> str:
    """PostgreSQL's ISO output (``2026-11-27 09:05:15.70497+00``) as RFC 3339 (``...T09:05:15.70497Z``)."""
    if text.endswith("+00"):
        return text[:10] + "T" + text[11:-3] + "Z"
    # A session not in UTC (the connection sets UTC; this is the fallback): normalise through datetime.
    return datetime.fromisoformat(text).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _user(row: tuple | None) -> dict[str, Any] | None:
    # Every column arrives as str (use_api_representation): no per-row conversion but the timestamps'.
    if row is None:
        return None
    return {
        "id": row[0],
        "name": row[1],
        "email": row[2],
        "created_at": _timestamp(row[3]),
        "updated_at": _timestamp(row[4]),
    }


def get_user(conn: psycopg.Connection, caller: Caller, user_id: str) -> dict[str, Any] | None:
    """The user with this id, if the caller may see it; None otherwise (absent or another owner's)."""
    if caller.is_admin:
        return _user(conn.execute(GET_ANY_SQL, (user_id,)).fetchone())
    return _user(conn.execute(GET_OWNED_SQL, (user_id, owner_sub(caller))).fetchone())


def list_users(
    conn: psycopg.Connection, caller: Caller, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` users the caller may see, newest first, strictly after the cursor; and whether
    more follow. An administrator sees everyone; anyone else their own profile, if any."""
    if caller.is_admin:
        if after is None:
            rows = conn.execute(FIRST_PAGE_ANY_SQL, (limit + 1,)).fetchall()
        else:
            rows = conn.execute(NEXT_PAGE_ANY_SQL, (after[0], after[1], limit + 1)).fetchall()
    else:
        sub = owner_sub(caller)
        if after is None:
            rows = conn.execute(FIRST_PAGE_OWNED_SQL, (sub, limit + 1)).fetchall()
        else:
            rows = conn.execute(NEXT_PAGE_OWNED_SQL, (sub, after[0], after[1], limit + 1)).fetchall()
    return [_user(row) for row in rows[:limit]], len(rows) > limit  # type: ignore[misc]


def create_user(conn: psycopg.Connection, caller: Caller, name: str, email: str) -> dict[str, Any]:
    """POST /users. An administrator creates a profile that belongs to no one (administrators manage
    it); anyone else creates their own profile, exactly as POST /users/me.

    Raises psycopg.errors.UniqueViolation when the (canonical) email is taken or the caller already has
    a profile.
    """
    if caller.is_admin:
        return _created(conn.execute(CREATE_UNOWNED_SQL, (name, email)).fetchone())
    return create_my_user(conn, caller, name, email)


def create_my_user(conn: psycopg.Connection, caller: Caller, name: str, email: str) -> dict[str, Any]:
    """POST /users/me: the caller's own profile (one per sub: a unique index)."""
    sub = owner_sub(caller)
    own_email = writable_email(caller, email)
    return _created(conn.execute(CREATE_OWNED_SQL, (name, own_email, sub)).fetchone())


def update_user(
    conn: psycopg.Connection, caller: Caller, user_id: str, name: str | None, email: str | None
) -> dict[str, Any] | None:
    """Set the given fields and bump updated_at; None when the caller may not see such a user."""
    if caller.is_admin:
        return _user(conn.execute(UPDATE_ANY_SQL, (name, email, user_id)).fetchone())
    sub = owner_sub(caller)
    own_email = writable_email(caller, email)
    return _user(conn.execute(UPDATE_OWNED_SQL, (name, own_email, user_id, sub)).fetchone())


def delete_user(conn: psycopg.Connection, caller: Caller, user_id: str) -> bool:
    if caller.is_admin:
        return conn.execute(DELETE_ANY_SQL, (user_id,)).fetchone() is not None
    return conn.execute(DELETE_OWNED_SQL, (user_id, owner_sub(caller))).fetchone() is not None


def get_my_user(conn: psycopg.Connection, caller: Caller) -> dict[str, Any] | None:
    return _user(conn.execute(GET_MINE_SQL, (owner_sub(caller),)).fetchone())


def update_my_user(
    conn: psycopg.Connection, caller: Caller, name: str | None, email: str | None
) -> dict[str, Any] | None:
    sub = owner_sub(caller)
    own_email = writable_email(caller, email)
    return _user(conn.execute(UPDATE_MINE_SQL, (name, own_email, sub)).fetchone())


def delete_my_user(conn: psycopg.Connection, caller: Caller) -> bool:
    return conn.execute(DELETE_MINE_SQL, (owner_sub(caller),)).fetchone() is not None


def _created(row: tuple | None) -> dict[str, Any]:
    user = _user(row)
    assert user is not None  # INSERT ... RETURNING returns the row or raises
    return user


def ping(conn: psycopg.Connection) -> None:
    conn.execute(PING_SQL).fetchone()
