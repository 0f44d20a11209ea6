"""The power curve before a deploy: the shipped function under each memory size's CPU share.

    make bench-power                                       # installs the dev set, then runs this (as root)
    .venv/bin/python benchmarks/power_bench.py [--sizes 128,512,1769] [--runs 3] [--iterations 100]

Not a test: it prints figures and writes ``<out>/power-curve.md`` (the table) and ``<out>/power-curve.png``
(latency and cost by memory size). What AWS Lambda Power Tuning shows after a deploy, shown before one.

What it does:

1. Builds the artifacts and lays them out read-only exactly as the cold-start benchmark does (shared
   code: ``benchmarks/lambda_layout.py``): the project's builder, this machine's architecture, the stack's
   runtime, bytecode as shipped.
2. For each memory size, a cgroup capped to that size's CPU share (quota = memory / 1769 of the period:
   Lambda gives one vCPU at 1,769 MB; ``benchmarks/cpu_share.py``); each measured interpreter is moved
   into it before it starts. Fresh interpreters (``-I -B``) on the DSQL path against a local PostgreSQL
   (TLS off and loopback address, as in the cold-start benchmark), sizes interleaved in a rotating order:
   (a) init: ``import handler.app``; (b) the first request (``GET /users?limit=50``: the token, the
   connect, the query); (c) warm latency of each route, interleaved, ``--iterations`` each, p50/p99 and
   the mean (what is billed); (d) the process's peak RSS.
3. Cost per million warm requests: the mean warm duration of the routes rounded up to the millisecond (as
   Lambda bills), times the memory, at the arm64 GB-second price, plus the request fee (tools/prices.yaml:
   each price with its source and the date read).
4. The memory size the issue's rule picks: the cheapest per million requests with init plus the first
   request within 1.0 s and every route's warm p99 within 30 ms; or which size falls short, and by what.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks.cpu_share import PERIOD_US, CpuShareUnavailable, cpu_share, cpus_for, find_controller  # noqa: E402
from benchmarks.lambda_layout import (  # noqa: E402
    LOCAL_DSQL,
    RuntimePython,
    admin_event,
    build,
    configured_runtime,
    dsql_env,
    lambda_architecture,
    layouts,
    load_average,
    run_child,
    seed,
)
from benchmarks.machine import cpu_model, percentile  # noqa: E402
from local.postgres import LocalPostgres, scratch_database  # noqa: E402
from scripts.build_artifacts import BuildError  # noqa: E402

SIZES = (128, 256, 512, 1024, 1769, 3008)
FIRST_REQUEST_BUDGET_S = 1.0  # init + first request
WARM_P99_BUDGET_S = 0.030
PRICES = ROOT / "tools" / "prices.yaml"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

_POWER = (
    """
import sys, time
sys.path[:0] = sys.argv[1:3]
started = time.perf_counter()
import handler.app
init = time.perf_counter() - started
import json, resource
"""
    + LOCAL_DSQL
    + """
spec = json.loads(os.environ["BENCH_SPEC"])
started = time.perf_counter()
response = handler.app.lambda_handler(spec["first"], Context())
first = time.perf_counter() - started
assert response["statusCode"] == 200, response
routes = spec["routes"]
events = {name: [] for name in routes}
for i in range(spec["iterations"]):  # each event made before the clock runs; creates need new emails
    for name, event in routes.items():
        event = dict(event)
        if event.get("body"):
            event["body"] = event["body"].replace("{n}", f"{os.getpid()}-{i}")
        events[name].append(event)
warm = {name: [] for name in routes}
expected = {name: (201 if routes[name]["httpMethod"] == "POST" else 200) for name in routes}
for i in range(spec["iterations"]):  # routes interleaved: drift on a shared machine hits all alike
    for name in routes:
        event = events[name][i]
        started = time.perf_counter()
        response = handler.app.lambda_handler(event, Context())
        warm[name].append(time.perf_counter() - started)
        assert response["statusCode"] == expected[name], (name, response)
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"init": init, "first": first, "warm": warm, "rss_kb": rss_kb}))
"""
)


@dataclass
class Size:
    memory_mb: int
    inits: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    warm: dict[str, list[float]] = field(default_factory=dict)
    rss_kb: int = 0

    @property
    def cpus(self) -> float:
        return cpus_for(self.memory_mb)

    @property
    def init(self) -> float:
        return statistics.median(self.inits)

    @property
    def first(self) -> float:
        return statistics.median(self.firsts)

    @property
    def cold(self) -> float:
        """Init plus the first request: what the first caller of a new environment waits (medians)."""
        return self.init + self.first

    def p(self, route: str, q: float) -> float:
        return percentile(self.warm[route], q)

    @property
    def worst_p99(self) -> float:
        return max(self.p(route, 99) for route in self.warm)

    @property
    def mean_warm(self) -> float:
        """The mean warm duration over the routes (an equal mix): what Lambda bills for."""
        return statistics.mean(statistics.mean(samples) for samples in self.warm.values())

    def billed_ms(self) -> int:
        return math.ceil(self.mean_warm * 1000)


@dataclass(frozen=True)
class Price:
    usd: float
    source: str
    read: str


def lambda_prices(path: Path = PRICES) -> tuple[Price, Price]:
    """(arm64 GB-second, requests per million) for US East (N. Virginia), from the repository's table."""
    table = yaml.safe_load(path.read_text())

    def price(key: str) -> Price:
        entry = table[key]
        return Price(float(entry["default"]), str(entry["source"]), str(entry["read"]))

    return price("lambda_arm64_gb_second"), price("lambda_requests")


def cost_per_million(size: Size, gb_second: Price, requests: Price) -> float:
    return 1_000_000 * size.memory_mb / 1024 * size.billed_ms() / 1000 * gb_second.usd + requests.usd


def choose(sizes: list[Size], gb_second: Price, requests: Price) -> tuple[Size | None, list[str]]:
    """The cheapest size meeting both budgets, and why each other size does not."""
    notes = []
    fitting = []
    for size in sizes:
        misses = []
        if size.cold > FIRST_REQUEST_BUDGET_S:
            misses.append(
                f"init + first request {size.cold * 1000:.0f} ms > {FIRST_REQUEST_BUDGET_S * 1000:.0f} ms"
            )
        if size.worst_p99 > WARM_P99_BUDGET_S:
            misses.append(f"warm p99 {size.worst_p99 * 1000:.1f} ms > {WARM_P99_BUDGET_S * 1000:.0f} ms")
        if misses:
            notes.append(f"{size.memory_mb} MB: " + "; ".join(misses))
        else:
            fitting.append(size)
    best = min(fitting, key=lambda s: (cost_per_million(s, gb_second, requests), s.memory_mb), default=None)
    return best, notes


# ---------------------------------------------------------------- measuring


def rotated(sizes: list[int], run: int) -> list[int]:
    shift = run % len(sizes)
    return sizes[shift:] + sizes[:shift]


def route_events(user_id: str) -> dict[str, dict]:
    return {
        "GET /users/{id}": admin_event("GET", f"/users/{user_id}"),
        "GET /users?limit=50": admin_event("GET", "/users", query_string="limit=50"),
        "POST /users": admin_event(
            "POST", "/users", body={"name": "Power", "email": "power-{n}@example.com"}
        ),
        "GET /health": admin_event("GET", "/health"),
    }


def measure(
    python: RuntimePython,
    paths: tuple[Path, Path],
    env: dict[str, str],
    memory_sizes: list[int],
    runs: int,
    period_us: int = PERIOD_US,
) -> list[Size]:
    controller = find_controller()
    found = {mb: Size(mb) for mb in memory_sizes}
    for run in range(runs):
        for mb in rotated(memory_sizes, run):
            with cpu_share(cpus_for(mb), controller, period_us) as enter:
                sample = run_child(python, _POWER, paths, env, preexec=enter)
            size = found[mb]
            size.inits.append(sample["init"])
            size.firsts.append(sample["first"])
            for route, timings in sample["warm"].items():
                size.warm.setdefault(route, []).extend(timings)
            size.rss_kb = max(size.rss_kb, int(sample["rss_kb"]))
            print(
                f"   run {run + 1}/{runs} {mb:5d} MB: init {sample['init'] * 1000:7.1f} ms, first request "
                f"{sample['first'] * 1000:7.1f} ms",
                flush=True,
            )
    return [found[mb] for mb in memory_sizes]


def any_user_id(db_url: str) -> str:
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT id FROM users ORDER BY created_at LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


# ---------------------------------------------------------------- report


def table(sizes: list[Size], gb_second: Price, requests: Price) -> str:
    routes = list(sizes[0].warm)
    header = [
        "memory (MB)",
        "vCPU share",
        "init (ms)",
        "first request (ms)",
        "init + first (ms)",
        *(f"{route} p50 / p99 (ms)" for route in routes),
        "billed warm (ms)",
        "peak RSS (MB)",
        "USD per 1M warm requests",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for size in sizes:
        cells = [
            str(size.memory_mb),
            f"{size.cpus:.3f}",
            f"{size.init * 1000:.0f}",
            f"{size.first * 1000:.0f}",
            f"{size.cold * 1000:.0f}",
            *(f"{size.p(route, 50) * 1000:.1f} / {size.p(route, 99) * 1000:.1f}" for route in routes),
            str(size.billed_ms()),
            f"{size.rss_kb / 1024:.0f}",
            f"{cost_per_million(size, gb_second, requests):.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curve(sizes: list[Size], gb_second: Price, requests: Price) -> dict[str, list[float]]:
    """The plotted series (ms and USD by memory size); also written as power-curve.json."""
    return {
        "memory_mb": [size.memory_mb for size in sizes],
        "init + first request": [size.cold * 1000 for size in sizes],
        "init": [size.init * 1000 for size in sizes],
        "warm p99 (slowest route)": [size.worst_p99 * 1000 for size in sizes],
        "warm p50 (mean of routes)": [
            statistics.mean(size.p(r, 50) for r in size.warm) * 1000 for size in sizes
        ],
        "USD per 1M warm requests": [cost_per_million(size, gb_second, requests) for size in sizes],
    }


def plot(series: dict[str, list[float]], output: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    memory = series["memory_mb"]
    figure, (latency, cost) = plt.subplots(1, 2, figsize=(12, 4.8))
    for label, style in (
        ("init + first request", "o-"),
        ("init", "o--"),
        ("warm p99 (slowest route)", "s-"),
        ("warm p50 (mean of routes)", "s--"),
    ):
        latency.plot(memory, series[label], style, label=label)
    latency.axhline(FIRST_REQUEST_BUDGET_S * 1000, color="grey", linewidth=0.8, linestyle=":")
    latency.axhline(WARM_P99_BUDGET_S * 1000, color="grey", linewidth=0.8, linestyle=":")
    latency.set(
        xscale="log", yscale="log", xlabel="memory (MB)", ylabel="ms", title="latency under the CPU share"
    )
    latency.legend(fontsize="small", loc="center right")
    cost.plot(memory, series["USD per 1M warm requests"], "o-", color="tab:green")
    cost.set(xscale="log", xlabel="memory (MB)", ylabel="USD", title="cost per 1M warm requests (arm64)")
    for axes in (latency, cost):
        axes.minorticks_off()  # a log axis's minor labels would overprint the memory sizes
        axes.set_xticks(memory, [f"{mb:g}" for mb in memory])
    figure.suptitle(title, fontsize="small")
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)


def parse_sizes(raw: str) -> list[int]:
    try:
        sizes = [int(item) for item in raw.split(",") if item.strip()]
    except ValueError:
        raise SystemExit(
            f"--sizes {raw!r}: give memory sizes in MB separated by commas, e.g. 128,512,1769"
        ) from None
    bad = [mb for mb in sizes if not 128 <= mb <= 10240]
    if bad or not sizes:
        raise SystemExit(
            f"--sizes {raw!r}: Lambda memory is 128 to 10240 MB; give at least one size in that range"
        )
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stack", default="prod", help="whose lambdaRuntime to build for (default: prod)")
    parser.add_argument("--runtime", help="Lambda runtime, e.g. python3.12 (default: the stack's)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="memory sizes in MB (comma-separated)"
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per memory size")
    parser.add_argument("--iterations", type=int, default=100, help="warm requests per route and process")
    parser.add_argument(
        "--period-ms",
        type=float,
        default=PERIOD_US / 1000,
        help="the cgroup's CPU period (quota = share x period)",
    )
    parser.add_argument(
        "--signer",
        choices=("awscrt", "connector"),
        default="awscrt",
        help="awscrt: credentials in the environment, as Lambda gives them (handler/db.py signs with awscrt); "
        "connector: credentials from a file, so AWS's connector signs with boto3 as before awscrt "
        "(BOTO_DISABLE_CRT=true keeps botocore from loading awscrt itself)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build" / "power", help="where the table and PNG go"
    )
    return parser.parse_args()


def measure_sizes(
    args: argparse.Namespace,
    python: RuntimePython,
    layer: Path,
    code: Path,
    memory_sizes: list[int],
    period_us: int,
) -> list[Size]:
    """Each memory size's figures, from the laid-out artifacts against a seeded local PostgreSQL."""
    with layouts(layer, code, python) as found, tempfile.TemporaryDirectory() as scratch:
        server_url = os.environ.get("DATABASE_URL")
        server = None if server_url else LocalPostgres().start()
        try:
            admin_url = server_url or server.url  # type: ignore[union-attr]
            with scratch_database(admin_url, "power", migrated=True) as db_url:
                seed(db_url)
                from psycopg.conninfo import conninfo_to_dict

                params = conninfo_to_dict(db_url)
                env = dsql_env(Path(scratch), int(params.get("port") or 5432), str(params["dbname"]))
                if args.signer == "connector":
                    credentials = Path(scratch) / "credentials"
                    credentials.write_text(
                        "[default]\n"
                        + "".join(f"{key.lower()} = {env.pop(key)}\n" for key in CREDENTIAL_VARIABLES)
                    )
                    env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials), BOTO_DISABLE_CRT="true")
                spec = {
                    "first": admin_event("GET", "/users", query_string="limit=50"),
                    "routes": route_events(any_user_id(db_url)),
                    "iterations": args.iterations,
                }
                env["BENCH_SPEC"] = json.dumps(spec)
                sizes = measure(python, found["shipped"], env, memory_sizes, args.runs, period_us)
        finally:
            if server is not None:
                server.stop()

    return sizes


def write_report(
    args: argparse.Namespace,
    sizes: list[Size],
    prices: tuple[Price, Price],
    python: RuntimePython,
    machine: str,
    reproduce: str,
) -> None:
    """The table, the chosen size and its reasons, the JSON series and the PNG, under --out."""
    gb_second, requests = prices
    rendered = table(sizes, gb_second, requests)
    best, notes = choose(sizes, gb_second, requests)
    one_vcpu = next((s for s in sizes if s.memory_mb == 1769), None)
    lines = [
        f"Machine: {machine}; CPython {python.version}; {lambda_architecture()} artifacts; load average at the "
        f"end {load_average()}.",
        f"Reproduce: `{reproduce}` (as root).",
        "",
        rendered,
        "",
        f"Medians of {args.runs} fresh processes; warm percentiles over {args.runs} x {args.iterations} requests "
        "per route. Cost: mean warm duration of the routes rounded up to the millisecond x memory x "
        f"{gb_second.usd} USD per GB-second ({gb_second.source}, read {gb_second.read}) + {requests.usd} USD per "
        f"million requests ({requests.source}, read {requests.read}).",
    ]
    if one_vcpu is not None:
        boosted = ", ".join(f"{s.memory_mb} MB {(one_vcpu.init + s.first) * 1000:.0f} ms" for s in sizes)
        lines.append(
            f"If init ran with a whole vCPU (the init CPU boost, see docs): init {one_vcpu.init * 1000:.0f} ms, "
            f"and init + first request: {boosted}."
        )
    if best is not None:
        lines.append(
            f"Chosen by the rule (cheapest with init + first <= {FIRST_REQUEST_BUDGET_S * 1000:.0f} ms and warm "
            f"p99 <= {WARM_P99_BUDGET_S * 1000:.0f} ms): **{best.memory_mb} MB**, "
            f"{cost_per_million(best, gb_second, requests):.3f} USD per million warm requests."
        )
    else:
        lines.append("No size meets both budgets.")
    lines.extend(f"- {note}" for note in notes)
    report = "\n".join(lines)
    print()
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "power-curve.md").write_text(report + "\n")
    series = curve(sizes, gb_second, requests)
    title = f"{machine}; CPython {python.version}; load average {load_average()}"
    (args.out / "power-curve.json").write_text(json.dumps({"title": title, **series}, indent=1) + "\n")
    plot(series, args.out / "power-curve.png", title)
    print(f"\nwrote power-curve.md, .json and .png under {args.out}")


def main() -> int:
    args = parse_args()
    memory_sizes = parse_sizes(args.sizes)
    if args.runs < 1 or args.iterations < 1:
        raise SystemExit("--runs and --iterations must be at least 1")
    period_us = round(args.period_ms * 1000)
    if not 1000 <= period_us <= 1_000_000:
        raise SystemExit(f"--period-ms {args.period_ms}: the kernel takes a CPU period of 1 to 1000 ms")
    try:
        find_controller()
    except CpuShareUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    runtime = args.runtime or configured_runtime(args.stack)
    try:
        python, layer, code = build(runtime)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prices = lambda_prices()  # read before the long run: a broken price table fails at once
    machine = f"{os.cpu_count()} CPU(s), {cpu_model()}, {platform.system()} {platform.machine()}"
    reproduce = (
        f".venv/bin/python benchmarks/power_bench.py --runtime {runtime} --sizes {','.join(map(str, memory_sizes))} "
        f"--runs {args.runs} --iterations {args.iterations} --period-ms {args.period_ms:g} --signer {args.signer}"
    )
    print(f"machine: {machine}")
    print(f"load average at start: {load_average()} (the machine may be shared: the quota is a ceiling)")
    print(f"interpreter: CPython {python.version} ({python.cache_tag}), found by the builder for {runtime}")
    print(f"artifacts: {lambda_architecture()} layer {layer.path.name}, function code {code.path.name}")
    print(f"reproduce: {reproduce}")

    sizes = measure_sizes(args, python, layer.path, code.path, memory_sizes, period_us)
    write_report(args, sizes, prices, python, machine, reproduce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
