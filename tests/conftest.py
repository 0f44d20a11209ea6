"""Shared fixtures: a real PostgreSQL server and a fresh database per test.

The server is the one DATABASE_URL names (CI starts one in .ci/run), or else a throwaway server this
session starts from the machine's PostgreSQL binaries. Tests that need it fail, never skip, when
neither is possible: the error says how to install PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from local.postgres import LocalPostgres, scratch_database


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
    with scratch_database(postgres_url, "test") as url:
        yield url


@pytest.fixture
def migrated_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database with the project's migrations applied by the real runner."""
    with scratch_database(postgres_url, "test", migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def module_migrated_database_url(postgres_url: str) -> Iterator[str]:
    """A migrated database shared by one test module (for servers started once per module)."""
    with scratch_database(postgres_url, "test_module", migrated=True) as url:
        yield url
