"""What each durability setting of the throwaway PostgreSQL costs, and whether a killed server loses
acknowledged creates: the figures behind local.postgres.DURABLE_SETTINGS (docs/local.md).

    python -m local.durability_bench [--starts 3] [--commits 500] [--posts 300] [--crash-seconds 2]

For each configuration: start time (initdb + pg_ctl start, median), the latency of one autocommit
INSERT on a warm connection, the latency of POST /users through one local region over HTTP, and a
crash run: creates over HTTP from 4 clients, SIGKILL of the postmaster, restart on the same data
directory, then every e-mail that was answered 201 looked up. Bounded in count and time; loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from local.launcher import start_local_app
from local.postgres import DURABLE_SETTINGS, LocalPostgres
from migrations.runner import Dialect, apply_migrations, load_migrations


@dataclass(frozen=True)
class Config:
    label: str
    settings: Mapping[str, str]
    sync_initdb: bool = False


CONFIGS = (
    Config("before issue 11: synchronous_commit=off", {**DURABLE_SETTINGS, "synchronous_commit": "off"}),
    Config("chosen: synchronous_commit=on, fsync=off, full_page_writes=off", DURABLE_SETTINGS),
    Config("fsync=on", {**DURABLE_SETTINGS, "fsync": "on"}),
    Config(
        "PostgreSQL defaults: fsync=on, full_page_writes=on, initdb syncs",
        {**DURABLE_SETTINGS, "fsync": "on", "full_page_writes": "on"},
        sync_initdb=True,
    ),
)


@dataclass(frozen=True)
class Result:
    start_s: float
    commit_ms: tuple[float, float]  # p50, p99
    post_ms: tuple[float, float]
    acknowledged: int
    lost: int


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def post_user(port: int, email: str, timeout: float = 10) -> int:
    """POST /users; the status, or 0 when no answer came (then the create is not acknowledged)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"name": "Durability", "email": email})
        conn.request("POST", "/users", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0  # no answer: not acknowledged
    finally:
        conn.close()


def measure(config: Config, args: argparse.Namespace) -> Result:
    starts = []
    for _ in range(args.starts):
        began = time.perf_counter()
        server = LocalPostgres(settings=config.settings, sync_initdb=config.sync_initdb).start()
        starts.append(time.perf_counter() - began)
        server.stop()
    server = LocalPostgres(settings=config.settings, sync_initdb=config.sync_initdb).start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
            commits = []
            for n in range(args.commits):
                began = time.perf_counter()
                conn.execute(
                    "INSERT INTO users (name, email) VALUES (%s, %s)", ("Bench", f"commit-{n}@example.com")
                )
                commits.append((time.perf_counter() - began) * 1000)
        app_url = make_conninfo(server.url, user="users_api")
        with start_local_app(
            app_url,
            [("bench-1", 0)],
            env={"DB_CONNECT_TIMEOUT_S": "2", "AUTH_MODE": "none"},
            output=subprocess.DEVNULL,  # thousands of request lines, 503s after the kill
            log=lambda _: None,
        ) as app:
            port = int(app.urls["bench-1"].rpartition(":")[2])
            posts = []
            for n in range(args.posts):
                began = time.perf_counter()
                status = post_user(port, f"post-{n}@example.com")
                posts.append((time.perf_counter() - began) * 1000)
                assert status == 201, status
            acknowledged, lost = crash_run(server, port, args.crash_seconds)
    finally:
        server.stop()
    return Result(statistics.median(starts), percentiles(commits), percentiles(posts), acknowledged, lost)


def crash_run(server: LocalPostgres, port: int, seconds: float) -> tuple[int, int]:
    """Creates from 4 clients; SIGKILL the postmaster after ``seconds``; restart; count missing 201s."""
    tag = uuid.uuid4().hex[:8]
    acknowledged: list[str] = []
    stop = threading.Event()

    def client(index: int) -> None:
        n = 0
        while not stop.is_set():
            email = f"crash-{tag}-{index}-{n}@example.com"
            if post_user(port, email) == 201:
                acknowledged.append(email)
            n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    pid = server.postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # requests in flight meet the dead server
    stop.set()
    for thread in threads:
        thread.join()
    server.restart()
    with psycopg.connect(server.url, autocommit=True) as conn:
        found = {
            row[0] for row in conn.execute("SELECT email FROM users WHERE email LIKE %s", (f"crash-{tag}-%",))
        }
    return len(acknowledged), len(set(acknowledged) - found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.durability_bench", description=__doc__)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--crash-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        "| configuration | start s | INSERT p50 / p99 ms | POST p50 / p99 ms | lost of 201s after kill -9 |"
    )
    print("|---|---|---|---|---|")
    for config in CONFIGS:
        r = measure(config, args)
        print(
            f"| {config.label} | {r.start_s:.2f} | {r.commit_ms[0]:.2f} / {r.commit_ms[1]:.2f} | "
            f"{r.post_ms[0]:.2f} / {r.post_ms[1]:.2f} | {r.lost} of {r.acknowledged} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
