"""Shared fixtures: a real PostgreSQL server and a fresh database per test.

The server is the one DATABASE_URL names (CI starts one in .ci/run), or else a throwaway server this
session starts from the machine's PostgreSQL binaries. Tests that need it fail, never skip, when
neither is possible: the error says how to install PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from local.postgres import LocalPostgres
from migrations.runner import Dialect, apply_migrations, load_migrations


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server's URL whose user may create databases and roles."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with LocalPostgres() as server:
        yield server.url


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(postgres_url, dbname=name)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """A fresh database with the project's migrations applied by the real runner."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
    return database_url
