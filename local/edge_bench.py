"""What the local edge costs and what slow clients do to it: the figures behind docs/local.md.

    python -m local.edge_bench [--requests 500] [--slow-clients 5]

One region of one container (the worst case) on a throwaway PostgreSQL: the latency of GET /health and
GET /users/{id} over HTTP, sequential, each on a new connection (as the local app closes every one),
then the same health check while ``--slow-clients`` connections are held open (idle ones, a body that
stops half-way, a head that never ends). Bounded in count and time; loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

import psycopg
from psycopg.conninfo import make_conninfo

from local.launcher import start_local_app
from local.postgres import LocalPostgres
from migrations.runner import Dialect, apply_migrations, load_migrations


def get(port: int, path: str) -> tuple[int, float]:
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - began) * 1000
    finally:
        conn.close()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms"


def hold_slow_clients(port: int, count: int) -> list[socket.socket]:
    held = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if n % 3 == 1:
            sock.sendall(
                b"POST /users HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        elif n % 3 == 2:
            sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
        held.append(sock)
    time.sleep(0.3)
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.edge_bench", description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--slow-clients", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, one container")
    with LocalPostgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            apply_migrations(conn, load_migrations(), Dialect.POSTGRES, log=lambda _: None)
            row = conn.execute(
                "INSERT INTO users (name, email) VALUES ('Bench', 'edge-bench@example.com') RETURNING id"
            ).fetchone()
            assert row is not None
        with start_local_app(
            make_conninfo(server.url, user="users_api"),
            [("bench-1", 0)],
            env={"AUTH_MODE": "none"},
            output=subprocess.DEVNULL,
            log=lambda _: None,
        ) as app:
            port = int(app.urls["bench-1"].rpartition(":")[2])
            for label, path in (("GET /health", "/health"), ("GET /users/{id}", f"/users/{row[0]}")):
                get(port, path)  # warm
                samples = []
                for _ in range(args.requests):
                    status, ms = get(port, path)
                    assert status == 200, status
                    samples.append(ms)
                print(f"{label:<16} {args.requests} sequential requests: {summary(samples)}")
            held = hold_slow_clients(port, args.slow_clients)
            try:
                samples = []
                for _ in range(20):
                    status, ms = get(port, "/health")
                    samples.append(ms)
                print(
                    f"GET /health with {args.slow_clients} slow clients held: {summary(samples)} "
                    f"(status {json.dumps(status)})"
                )
            finally:
                for sock in held:
                    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
