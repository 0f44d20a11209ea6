"""The local application: start PostgreSQL (or use DATABASE_URL) and apply migrations/."""

from __future__ import annotations

import os
import sys

import psycopg

from local.postgres import LocalPostgres
from migrations.runner import Dialect, MigrationError, apply_migrations, load_migrations


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    server = None if url else LocalPostgres().start()
    try:
        url = url or server.url
        with psycopg.connect(url, autocommit=True) as conn:
            applied = apply_migrations(conn, load_migrations(), Dialect.POSTGRES)
        print(f"database ready at {url} ({len(applied)} migration(s) applied)")
    except MigrationError as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if server:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
