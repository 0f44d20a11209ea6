"""Measure the users API handler: database round trips, cold import time, in-process latency.

    .venv/bin/python benchmarks/handler_bench.py            # starts a throwaway PostgreSQL
    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/handler_bench.py

Not a test: it prints figures (docs/handler.md records them with the machine they came from).

1. Round trips per request on a warm connection, for each route: libpq's protocol trace is switched on
   for exactly one request and every ReadyForQuery message counted (one per Sync or simple query, i.e.
   one per wait for the server). Target: 1 for get, list page and create.
2. Cold import of ``handler.app`` in fresh interpreters, against ``import psycopg, botocore`` alone
   (median of N processes each). Target ratio: at most 1.2.
3. In-process latency: ``lambda_handler`` with API Gateway v1 events against the same SQL run directly
   with psycopg on its own warm connection, p50 and p99. Target ratio: at most 1.5. Default log level:
   a successful request logs nothing (the per-request line is DEBUG).
4. What an Idempotency-Key costs: round trips and p50/p99 of a create without a key, with a new key,
   and of a replay (the same key again), strictly alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from benchmarks.machine import machine, percentile  # noqa: E402
from local.events import LambdaContext, api_gateway_event  # noqa: E402
from local.postgres import LocalPostgres, scratch_database  # noqa: E402

# ---------------------------------------------------------------- 2. cold import


def import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout)


def cold_import(runs: int) -> dict[str, float]:
    baseline, handler = [], []
    for _ in range(runs):  # interleaved, so drift on the machine hits both alike
        baseline.append(import_seconds("import psycopg, botocore"))
        handler.append(import_seconds("import handler.app"))
    b, h = statistics.median(baseline), statistics.median(handler)
    # Deferred, paid later by some containers only: the AWS connector and boto3 at the first DSQL
    # connection, Powertools at the first line logged.
    connector = statistics.median(
        import_seconds("import handler.app; t = time.perf_counter(); import aurora_dsql_psycopg")
        for _ in range(max(3, runs // 3))
    )
    powertools = statistics.median(
        import_seconds("import handler.app; t = time.perf_counter(); from handler import logs; logs.logger()")
        for _ in range(max(3, runs // 3))
    )
    return {
        "baseline_ms": b * 1000,
        "handler_ms": h * 1000,
        "ratio": h / b,
        "connector_ms": connector * 1000,
        "powertools_ms": powertools * 1000,
    }


# ---------------------------------------------------------------- 1 and 3: in-process


BENCH_CLAIMS = {"sub": "bench-admin", "token_use": "id", "cognito:groups": "admins"}


class Invoker:
    """Calls ``lambda_handler`` the way Lambda does: with an event that already exists."""

    def __init__(self) -> None:
        from handler import app

        self.app = app
        self.context = LambdaContext()

    @staticmethod
    def event(method: str, path: str, body: object = None, query: str = "", key: str | None = None) -> dict:
        headers = [("Content-Type", "application/json")]
        if key is not None:
            headers.append(("Idempotency-Key", f'"{key}"'))
        event = api_gateway_event(
            method,
            path,
            query_string=query,
            headers=headers,
            body=None if body is None else json.dumps(body),
        )
        # As API Gateway's Cognito authorizer passes them: an administrator, who may reach every row.
        event["requestContext"]["authorizer"] = {"claims": BENCH_CLAIMS}
        return event

    def send(self, event: dict) -> dict:
        response = self.app.lambda_handler(event, self.context)
        assert response["statusCode"] < 300, response
        return response

    def __call__(self, method: str, path: str, body: object = None, query: str = "") -> dict:
        return self.send(self.event(method, path, body, query))


def round_trips(conn: psycopg.Connection, request: Callable[[], object]) -> int:
    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            request()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return sum(1 for line in trace.read().decode().splitlines() if "\tReadyForQuery" in line)


def idempotency_cost(invoke: Invoker, iterations: int) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Round trips and latency of a create without a key, with a new key, and of a replay."""
    body = {"name": "Keyed", "email": "keyed-0@example.com"}
    plain = iter(
        [
            invoke.event("POST", "/users", {**body, "email": f"plain-{i}@example.com"})
            for i in range(iterations + 20)
        ]
    )
    keyed = iter(
        [
            invoke.event("POST", "/users", {**body, "email": f"keyed-{i}@example.com"}, key=f"bench-{i}")
            for i in range(1, iterations + 20)
        ]
    )
    replay_event = invoke.event("POST", "/users", body, key="bench-0")
    invoke.send(replay_event)  # the first answer, replayed from here on
    kinds: dict[str, Callable[[], object]] = {
        "POST /users, no key": lambda: invoke.send(next(plain)),
        "POST /users, new key": lambda: invoke.send(next(keyed)),
        "POST /users, replay": lambda: invoke.send(replay_event),
    }
    for request in kinds.values():
        for _ in range(8):
            request()
    from handler import idempotency

    conn = invoke.app.database().connection()
    # Round trips without the cleanup that one keyed create in PURGE_EVERY adds (one statement more);
    # the latency figures below include it, as production would.
    should_purge, idempotency.should_purge = idempotency.should_purge, lambda: False
    trips = {name: round_trips(conn, request) for name, request in kinds.items()}
    idempotency.should_purge = should_purge
    samples: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(iterations):
        for name, request in kinds.items():
            started = time.perf_counter()
            request()
            samples[name].append(time.perf_counter() - started)
    latency = {
        name: {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000}
        for name, values in samples.items()
    }
    return trips, latency


def handler_routes(
    invoke: Invoker, iterations: int
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Callable[[], object]]]:
    """300 seeded users, the first page of them, and one request per measured route through the handler."""
    seed = [
        json.loads(invoke("POST", "/users", {"name": f"Seed {i}", "email": f"seed{i}@example.com"})["body"])
        for i in range(300)
    ]
    user_id = seed[0]["id"]
    first_page = json.loads(invoke("GET", "/users", query="limit=50")["body"])
    cursor = first_page["next_cursor"]

    # Events are built before timing: on Lambda they arrive ready-made. Writes need fresh values.
    get_event = invoke.event("GET", f"/users/{user_id}")
    first_event = invoke.event("GET", "/users", query="limit=50")
    next_event = invoke.event("GET", "/users", query=f"limit=50&cursor={cursor}")
    creates = iter(
        [
            invoke.event("POST", "/users", {"name": "New", "email": f"new{i}@example.com"})
            for i in range(iterations + 100)
        ]
    )
    patches = iter([invoke.event("PATCH", f"/users/{user_id}", {"name": f"Renamed {i}"}) for i in range(100)])
    routes: dict[str, Callable[[], object]] = {
        "GET /health": lambda: invoke("GET", "/health"),
        "GET /users/{id}": lambda: invoke.send(get_event),
        "GET /users (first page)": lambda: invoke.send(first_event),
        "GET /users (next page)": lambda: invoke.send(next_event),
        "POST /users": lambda: invoke.send(next(creates)),
        "PATCH /users/{id}": lambda: invoke.send(next(patches)),
    }
    return seed, first_page, routes


def alternating_latency(
    handler_request: Callable[[], object], direct_request: Callable[[], object], iterations: int
) -> dict[str, float]:
    """p50/p99 of the handler's request and of the same SQL sent directly, strictly alternating, so both
    see the same machine at each instant; and their ratios."""
    handler_samples: list[float] = []
    direct_samples: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        handler_request()
        handler_samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        direct_request()
        direct_samples.append(time.perf_counter() - started)
    figures = {
        "handler_p50_ms": percentile(handler_samples, 50) * 1000,
        "handler_p99_ms": percentile(handler_samples, 99) * 1000,
        "direct_p50_ms": percentile(direct_samples, 50) * 1000,
        "direct_p99_ms": percentile(direct_samples, 99) * 1000,
    }
    figures["p50_ratio"] = figures["handler_p50_ms"] / figures["direct_p50_ms"]
    figures["p99_ratio"] = figures["handler_p99_ms"] / figures["direct_p99_ms"]
    return figures


def run_in_process(
    app_url: str, iterations: int
) -> tuple[dict[str, int], dict[str, dict[str, float]], tuple[dict[str, int], dict[str, dict[str, float]]]]:
    os.environ["DATABASE_URL"] = app_url
    os.environ["AWS_REGION"] = "bench-1"
    invoke = Invoker()
    from handler import logs

    # Nothing is logged at the default level on these paths; should a warning appear, keep it off the table.
    logs.logger().registered_handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - process lifetime

    from handler import users

    seed, first_page, routes = handler_routes(invoke, iterations)
    user_id = seed[0]["id"]
    counter = iter(range(10**9))
    for request in routes.values():  # warm: past psycopg's prepare threshold (5 executions)
        for _ in range(8):
            request()
    conn = invoke.app.database().connection()
    trips = {name: round_trips(conn, request) for name, request in routes.items()}
    victim = seed[-1]["id"]
    trips["DELETE /users/{id}"] = round_trips(conn, lambda: invoke("DELETE", f"/users/{victim}"))

    # The same SQL, directly with psycopg, on its own warm connection as the same role.
    direct_conn = psycopg.connect(app_url, autocommit=True)
    after = (datetime.fromisoformat(first_page["items"][-1]["created_at"]), first_page["items"][-1]["id"])
    direct: dict[str, Callable[[], object]] = {
        "GET /users/{id}": lambda: direct_conn.execute(users.GET_ANY_SQL, (user_id,)).fetchone(),
        "GET /users (first page)": lambda: direct_conn.execute(users.FIRST_PAGE_ANY_SQL, (51,)).fetchall(),
        "GET /users (next page)": lambda: direct_conn.execute(
            users.NEXT_PAGE_ANY_SQL, (*after, 51)
        ).fetchall(),
        "POST /users": lambda: direct_conn.execute(
            users.CREATE_UNOWNED_SQL, ("New", f"direct{next(counter)}@example.com")
        ).fetchone(),
    }
    for request in direct.values():
        for _ in range(8):
            request()
    # Cheap libpq round trips make this a measure of Python overhead; both sides run in this process.
    latency = {
        name: alternating_latency(routes[name], direct_request, iterations)
        for name, direct_request in direct.items()
    }
    direct_conn.close()
    keys = idempotency_cost(invoke, iterations)
    invoke.app.reset()
    return trips, latency, keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="requests per latency figure")
    parser.add_argument("--import-runs", type=int, default=21, help="fresh processes per import figure")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(
        f"reproduce: .venv/bin/python benchmarks/handler_bench.py --iterations {args.iterations} --import-runs {args.import_runs}"
    )
    server_url = os.environ.get("DATABASE_URL")
    server = None if server_url else LocalPostgres().start()
    try:
        admin_url = server_url or server.url  # type: ignore[union-attr]
        with scratch_database(admin_url, "bench", migrated=True) as db_url:
            trips, latency, keys = run_in_process(make_conninfo(db_url, user="users_api"), args.iterations)
    finally:
        if server is not None:
            server.stop()

    print("\n1. database round trips per request (warm connection)")
    for route, count in trips.items():
        print(f"   {route:28s} {count}")
    print(f"\n2. cold import, median of {args.import_runs} fresh processes")
    imports = cold_import(args.import_runs)
    print(f"   import psycopg, botocore     {imports['baseline_ms']:.1f} ms")
    print(f"   import handler.app           {imports['handler_ms']:.1f} ms")
    print(f"   ratio                        {imports['ratio']:.2f}  (target <= 1.2)")
    print(
        f"   deferred: aurora_dsql_psycopg + boto3 at the first DSQL connect  {imports['connector_ms']:.1f} ms"
    )
    print(
        f"   deferred: Powertools Logger at the first line logged            {imports['powertools_ms']:.1f} ms"
    )
    print(f"\n3. in-process latency, {args.iterations} requests each (handler vs the same SQL with psycopg)")
    print(
        f"   {'route':26s} {'handler p50/p99 ms':>20s} {'direct p50/p99 ms':>19s} {'p50 ratio':>10s} {'p99 ratio':>10s}"
    )
    for route, figures in latency.items():
        print(
            f"   {route:26s} {figures['handler_p50_ms']:>9.3f} /{figures['handler_p99_ms']:>7.3f}"
            f" {figures['direct_p50_ms']:>9.3f} /{figures['direct_p99_ms']:>7.3f}"
            f" {figures['p50_ratio']:>10.2f} {figures['p99_ratio']:>10.2f}"
        )
    print("   (target: ratios <= 1.5)")
    key_trips, key_latency = keys
    print(f"\n4. Idempotency-Key, {args.iterations} requests each (alternating)")
    print(f"   {'request':26s} {'round trips':>11s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, figures in key_latency.items():
        print(f"   {name:26s} {key_trips[name]:>11d} {figures['p50_ms']:>8.3f} {figures['p99_ms']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
