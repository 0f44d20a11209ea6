"""Would a regional cache in front of DSQL pay? Measure what a cache hit would save, and show what it costs.

    .venv/bin/python benchmarks/cache_bench.py                       # starts a throwaway PostgreSQL
    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/cache_bench.py --iterations 5000

Not a test: it prints figures (docs/operations.md records them with the machine they came from).

1. Latency, interleaved request by request so both sides see the same machine at each instant:
   - the handler's real read path on a warm connection: ``Database.run`` + ``users.get_user`` (a
     primary-key SELECT, one round trip) against the local PostgreSQL on loopback;
   - a hit in a regional in-memory cache: a TTL dictionary in the container, the cheapest cache there is
     (an out-of-process cache such as ElastiCache costs a network round trip per hit, like the database);
   - the whole in-process request, ``lambda_handler`` with a GET /users/{id} event, for scale.
2. Consistency: two "regions" on one database, as the two DSQL endpoints of the pair are one database,
   each with its own cache. Region A reads a user (and caches it), region B renames the user, region A
   reads again: from its cache, and from the database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg.conninfo import make_conninfo  # noqa: E402

from benchmarks.machine import machine, percentile  # noqa: E402
from local.events import LambdaContext, api_gateway_event  # noqa: E402
from local.postgres import LocalPostgres, scratch_database  # noqa: E402


class RegionalCache:
    """What a per-region in-memory cache hit costs: a dictionary lookup and an expiry check."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self.entries: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, key: str, load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        entry = self.entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        self.entries[key] = (now + self.ttl, value)
        return value


def measure(app_url: str, iterations: int, ttl: float) -> dict[str, Any]:
    os.environ["DATABASE_URL"] = app_url
    os.environ["AWS_REGION"] = "bench-1"
    os.environ["AUTH_MODE"] = "none"  # the read path without a token: an administrator's GET
    from handler import app, logs, users
    from handler.auth import ANONYMOUS_ADMIN
    from handler.config import settings
    from handler.db import Database

    logs.logger().registered_handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - process lifetime
    database = app.database()
    seed = database.run(
        lambda conn: users.create_user(conn, ANONYMOUS_ADMIN, "Cache Bench", "cache.bench@example.com"),
        idempotent=False,
    )
    user_id = seed["id"]
    event = api_gateway_event("GET", f"/users/{user_id}")
    context = LambdaContext()

    def read() -> dict[str, Any]:
        user = database.run(lambda conn: users.get_user(conn, ANONYMOUS_ADMIN, user_id), idempotent=True)
        assert user is not None
        return user

    def handle() -> object:
        response = app.lambda_handler(event, context)
        assert response["statusCode"] == 200, response
        return response

    cache = RegionalCache(ttl)
    cache.get(user_id, read)
    for _ in range(50):  # warm: past psycopg's prepare threshold, imports done, caches filled
        read(), handle(), cache.get(user_id, read)

    samples: dict[str, list[float]] = {"database read": [], "cache hit": [], "whole request": []}
    for _ in range(iterations):
        for label, work in (
            ("database read", read),
            ("cache hit", lambda: cache.get(user_id, read)),
            ("whole request", handle),
        ):
            started = time.perf_counter()
            work()
            samples[label].append(time.perf_counter() - started)

    # 2. Two regions, one database, a cache each.
    region_b = Database(settings())
    cache_a = RegionalCache(ttl)
    before = cache_a.get(user_id, read)["name"]
    region_b.run(
        lambda conn: users.update_user(conn, ANONYMOUS_ADMIN, user_id, "Renamed In B", None), idempotent=True
    )
    from_cache = cache_a.get(user_id, read)["name"]
    from_database = read()["name"]
    region_b.discard()
    app.reset()
    return {
        "latency_us": {
            label: {"p50": percentile(values, 50) * 1e6, "p99": percentile(values, 99) * 1e6}
            for label, values in samples.items()
        },
        "consistency": {
            "before": before,
            "cache_a_after_b_wrote": from_cache,
            "database_after_b_wrote": from_database,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000, help="requests per figure (interleaved)")
    parser.add_argument("--ttl", type=float, default=30.0, help="the cache's time to live in seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL")
    server = None if server_url else LocalPostgres().start()
    try:
        admin_url = server_url or server.url  # type: ignore[union-attr]
        with scratch_database(admin_url, "cachebench", migrated=True) as db_url:
            figures = measure(make_conninfo(db_url, user="users_api"), args.iterations, args.ttl)
    finally:
        if server is not None:
            server.stop()

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"machine: {machine()}")
    print(
        f"reproduce: .venv/bin/python benchmarks/cache_bench.py --iterations {args.iterations} --ttl {args.ttl:g}"
    )
    print(f"\n1. latency, {args.iterations} interleaved requests each, in microseconds")
    print(f"   {'path':36s} {'p50':>9s} {'p99':>9s}")
    latency = figures["latency_us"]
    rows = (
        ("database read", "handler read, warm connection (PK)"),
        ("cache hit", "regional in-memory cache hit"),
        ("whole request", "lambda_handler GET /users/{id}"),
    )
    for label, title in rows:
        print(f"   {title:36s} {latency[label]['p50']:>9.1f} {latency[label]['p99']:>9.1f}")
    saved = latency["database read"]["p50"] - latency["cache hit"]["p50"]
    share = saved / latency["whole request"]["p50"]
    print(f"   a hit saves {saved:.1f} us at p50 here: {share:.0%} of the in-process request")
    consistency = figures["consistency"]
    print(f"\n2. consistency, two regions on one database, a {args.ttl:g} s cache each")
    print(f"   region A, before B's write:                {consistency['before']!r}")
    print(f"   region A from its cache, after B's write:  {consistency['cache_a_after_b_wrote']!r}")
    print(f"   region A from the database, same instant:  {consistency['database_after_b_wrote']!r}")
    stale = consistency["cache_a_after_b_wrote"] != consistency["database_after_b_wrote"]
    print(f"   stale read from the cache: {'yes' if stale else 'no'} (for up to the TTL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
