"""The local application never loses an acknowledged write: PostgreSQL killed with SIGKILL under a load
of creates over HTTP, restarted on the same data directory, still has every user answered with 201."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import psycopg
from psycopg.conninfo import make_conninfo

from local import durability_bench
from local.launcher import start_local_app
from local.postgres import LocalPostgres
from migrations.runner import Dialect, apply_migrations, load_migrations


def post_user(port: int, email: str) -> int:
    # The benchmark's own client, with a longer timeout: a create that waits for recovery still counts.
    return durability_bench.post_user(port, email, timeout=15)


def test_the_throwaway_server_acknowledges_a_commit_only_once_its_wal_is_written() -> None:
    with LocalPostgres() as server, psycopg.connect(server.url) as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    assert row == ("on",)


def test_postgres_killed_under_load_keeps_every_create_answered_201() -> None:
    tag = uuid.uuid4().hex[:8]
    with LocalPostgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
        app_url = make_conninfo(server.url, user="users_api")
        with start_local_app(
            app_url, [("crash-1", 0)], containers=2, env={"DB_CONNECT_TIMEOUT_S": "2", "AUTH_MODE": "none"}
        ) as app:
            port = int(app.urls["crash-1"].rpartition(":")[2])
            acknowledged: list[str] = []
            answered: list[int] = []
            stop = threading.Event()

            def client(index: int) -> None:
                n = 0
                while not stop.is_set() and n < 2000:  # bounded: at most 8000 creates in all
                    email = f"kill-{tag}-{index}-{n}@example.com"
                    status = post_user(port, email)
                    answered.append(status)
                    if status == 201:
                        acknowledged.append(email)
                    n += 1

            clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            for thread in clients:
                thread.start()
            deadline = time.monotonic() + 30
            while len(acknowledged) < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
            postmaster = server.postmaster_pid()
            assert postmaster is not None
            os.kill(postmaster, signal.SIGKILL)
            # Let the load run on against the dead server: requests in flight at the kill, then 503s.
            time.sleep(0.5)
            stop.set()
            for thread in clients:
                thread.join()
            assert len(acknowledged) >= 300
            assert 503 in answered  # the kill really happened while creates were being sent

            server.restart()  # PostgreSQL's crash recovery replays the WAL of the same data directory
            with psycopg.connect(server.url) as conn:
                stored = {
                    email
                    for (email,) in conn.execute(
                        "SELECT email FROM users WHERE email LIKE %s", (f"kill-{tag}-%",)
                    )
                }
            lost = sorted(set(acknowledged) - stored)
            assert lost == [], f"{len(lost)} of {len(acknowledged)} acknowledged creates lost: {lost[:5]}"
            # And the containers reconnect to the restarted server by themselves.
            assert post_user(port, f"after-{tag}@example.com") == 201
