"""Data access for the users table: one autocommit statement per operation, so one round trip each.

Every statement is plain SQL that DSQL accepts (checked with dsql-lint in the tests). Listing is keyset
pagination on (created_at, id), served by the index users_created_at_id_idx scanned backwards; a page
fetches one extra row to know whether another page follows, so it never counts or scans the table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

COLUMNS = "id, name, email, created_at, updated_at"

GET_SQL = f"SELECT {COLUMNS} FROM users WHERE id = %s"
FIRST_PAGE_SQL = f"SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT %s"
NEXT_PAGE_SQL = f"SELECT {COLUMNS} FROM users WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT %s"
CREATE_SQL = f"INSERT INTO users (name, email) VALUES (%s, %s) RETURNING {COLUMNS}"
UPDATE_SQL = (
    "UPDATE users SET name = COALESCE(%s, name), email = COALESCE(%s, email), updated_at = now() "
    f"WHERE id = %s RETURNING {COLUMNS}"
)
DELETE_SQL = "DELETE FROM users WHERE id = %s RETURNING id"
PING_SQL = "SELECT 1"

ALL_SQL = (GET_SQL, FIRST_PAGE_SQL, NEXT_PAGE_SQL, CREATE_SQL, UPDATE_SQL, DELETE_SQL, PING_SQL)


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


def get_user(conn: psycopg.Connection, user_id: str) -> dict[str, Any] | None:
    return _user(conn.execute(GET_SQL, (user_id,)).fetchone())


def list_users(
    conn: psycopg.Connection, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` users newest first, strictly after the cursor; and whether more follow."""
    if after is None:
        rows = conn.execute(FIRST_PAGE_SQL, (limit + 1,)).fetchall()
    else:
        rows = conn.execute(NEXT_PAGE_SQL, (after[0], after[1], limit + 1)).fetchall()
    return [_user(row) for row in rows[:limit]], len(rows) > limit  # type: ignore[misc]


def create_user(conn: psycopg.Connection, name: str, email: str) -> dict[str, Any]:
    """Raises psycopg.errors.UniqueViolation when the (normalised) email is taken."""
    user = _user(conn.execute(CREATE_SQL, (name, email)).fetchone())
    assert user is not None
    return user


def update_user(
    conn: psycopg.Connection, user_id: str, name: str | None, email: str | None
) -> dict[str, Any] | None:
    """Set the given fields and bump updated_at; None when there is no such user."""
    return _user(conn.execute(UPDATE_SQL, (name, email, user_id)).fetchone())


def delete_user(conn: psycopg.Connection, user_id: str) -> bool:
    return conn.execute(DELETE_SQL, (user_id,)).fetchone() is not None


def ping(conn: psycopg.Connection) -> None:
    conn.execute(PING_SQL).fetchone()
