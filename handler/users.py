"""Data access for the users table: one autocommit statement per operation, so one round trip each.

Every statement is plain SQL that DSQL accepts (checked with dsql-lint in the tests). Listing is keyset
pagination on (created_at, id), served by the index users_created_at_id_idx scanned backwards; a page
fetches one extra row to know whether another page follows, so it never counts or scans the table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

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


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "email": self.email,
            "created_at": _timestamp(self.created_at),
            "updated_at": _timestamp(self.updated_at),
        }


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _user(row: tuple | None) -> User | None:
    return User(*row) if row else None


def get_user(conn: psycopg.Connection, user_id: uuid.UUID) -> User | None:
    return _user(conn.execute(GET_SQL, (user_id,)).fetchone())


def list_users(
    conn: psycopg.Connection, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> tuple[list[User], bool]:
    """Up to ``limit`` users newest first, strictly after the cursor; and whether more follow."""
    if after is None:
        rows = conn.execute(FIRST_PAGE_SQL, (limit + 1,)).fetchall()
    else:
        rows = conn.execute(NEXT_PAGE_SQL, (after[0], after[1], limit + 1)).fetchall()
    return [User(*row) for row in rows[:limit]], len(rows) > limit


def create_user(conn: psycopg.Connection, name: str, email: str) -> User:
    """Raises psycopg.errors.UniqueViolation when the (normalised) email is taken."""
    row = conn.execute(CREATE_SQL, (name, email)).fetchone()
    assert row is not None
    return User(*row)


def update_user(
    conn: psycopg.Connection, user_id: uuid.UUID, name: str | None, email: str | None
) -> User | None:
    """Set the given fields and bump updated_at; None when there is no such user."""
    return _user(conn.execute(UPDATE_SQL, (name, email, user_id)).fetchone())


def delete_user(conn: psycopg.Connection, user_id: uuid.UUID) -> bool:
    return conn.execute(DELETE_SQL, (user_id,)).fetchone() is not None


def ping(conn: psycopg.Connection) -> None:
    conn.execute(PING_SQL).fetchone()
