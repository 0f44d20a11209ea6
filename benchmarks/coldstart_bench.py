"""Cold start as Lambda runs it: the shipped artifacts, laid out read-only, in fresh interpreters.

    make bench-coldstart                                   # installs the dev set, then runs this
    .venv/bin/python benchmarks/coldstart_bench.py [--runtime python3.13] [--runs 11]

Not a test: it prints figures (docs/handler.md records them with the machine they came from).

What it does:

1. Builds the two artifacts with the project's own builder (``scripts/build_artifacts.py``, the same
   call the Pulumi program makes) for THIS machine's architecture and the stack's runtime
   (``lambdaRuntime`` of ``--stack``, default prod; ``--runtime`` overrides), with the interpreter of that
   Python version the builder finds (python3.X on PATH, uv's, pyenv's). None found: it stops and says
   how to get one.
2. Lays them out as Lambda mounts them, ``<tmp>/opt/python`` and ``<tmp>/var/task``, three times:
   ``shipped`` (the zips as built), ``precompiled`` (the floor: the same sources, every module compiled
   in place by the same interpreter with the default timestamp check) and ``source only`` (no bytecode:
   what every cold start paid before the builder shipped it; for reference). All read-only.
3. Runs fresh interpreters of that version with ``-I -B`` (no bytecode can be written, no user site,
   no PYTHON* variables) and the layout first on ``sys.path``, variants interleaved (in a rotating
   order) so that the load of a shared machine falls on all alike, and measures:
   (a) init: ``import handler.app`` (what Lambda imports before the first request), then the imports
       the first DSQL connect adds (``awscrt``, the token signer, with Lambda's environment credentials);
   (b) the first request in a fresh process, ``GET /users?limit=50`` as an administrator, on the DSQL
       path: the handler signs a real ``DbConnect`` token with fake credentials and connects to a
       local PostgreSQL. Only TLS is off and the address is loopback (sslmode, host address, port and
       database are rewritten at libpq's door), as in tests/test_handler_dsql.py.
   Floors: ``precompiled`` for both, and ``python -c pass`` for the interpreter alone.
Targets: shipped init <= 1.15x precompiled; shipped first request <= 1.3x precompiled.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.lambda_layout import (  # noqa: E402
    FAKE_ENDPOINT,
    LOCAL_DSQL,
    RuntimePython,
    admin_event,
    base_env,
    build,
    bytecode_files,
    configured_runtime,
    dsql_env,
    lambda_architecture,
    layouts,
    load_average,
    ms,
    run_child,
    seed,
    summary,
)
from benchmarks.machine import cpu_model  # noqa: E402
from local.postgres import LocalPostgres, scratch_database  # noqa: E402
from scripts.build_artifacts import BuildError  # noqa: E402

VARIANTS = ("source only", "shipped", "precompiled")
INIT_TARGET = 1.15
FIRST_REQUEST_TARGET = 1.3

# Runs in the runtime's interpreter. The layout goes first on sys.path, as Lambda puts /var/task and
# /opt/python before its own paths; nothing is imported before the clock starts but sys and time.
_INIT = """
import sys, time
sys.path[:0] = sys.argv[1:3]
started = time.perf_counter()
import handler.app
initialized = time.perf_counter()
import awscrt.auth, awscrt.http
deferred = time.perf_counter()
import json
print(json.dumps({"init": initialized - started, "deferred": deferred - initialized}))
"""

_FIRST_REQUEST = (
    """
import sys, time
sys.path[:0] = sys.argv[1:3]
import handler.app
import json
"""
    + LOCAL_DSQL
    + """
event = json.loads(os.environ["BENCH_EVENT"])
figures = {}
if os.environ.get("BENCH_PARTS"):  # what the first request spends: the token signer's imports first
    started = time.perf_counter()
    import awscrt.auth, awscrt.http
    figures["imports"] = time.perf_counter() - started
timings = []
for _ in range(2):  # the first request, then the same one warm
    started = time.perf_counter()
    response = handler.app.lambda_handler(event, Context())
    timings.append(time.perf_counter() - started)
    assert response["statusCode"] == 200, response
assert len(json.loads(response["body"])["items"]) == 50
if os.environ.get("BENCH_PARTS"):  # one more IAM token as each connect signs it (awscrt, env credentials)
    started = time.perf_counter()
    db.db_auth_token(os.environ["DSQL_ENDPOINT"], "us-east-1", "users_api", db.environment_credentials())
    figures["token"] = time.perf_counter() - started
print(json.dumps({"first": timings[0], "warm": timings[1], **figures}))
"""
)


# ---------------------------------------------------------------- measuring


def rotated(variants: tuple[str, ...], run: int) -> tuple[str, ...]:
    """A different variant first in each run, so that no variant always follows the same one."""
    shift = run % len(variants)
    return variants[shift:] + variants[:shift]


def measure_init(python: RuntimePython, found: dict[str, tuple[Path, Path]], runs: int) -> dict:
    env = {**base_env(), "DSQL_ENDPOINT": FAKE_ENDPOINT}
    samples: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    bare: list[float] = []
    for run in range(runs):
        for variant in rotated(VARIANTS, run):
            samples[variant].append(run_child(python, _INIT, found[variant], env))
        started = time.perf_counter()
        subprocess.run([str(python.path), "-I", "-B", "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - started)
    figures = {variant: summary(samples[variant], ("init", "deferred", "wall")) for variant in VARIANTS}
    figures["python -c pass"] = summary([{"wall": wall} for wall in bare], ("wall",))
    return figures


def measure_first_request(
    python: RuntimePython, found: dict[str, tuple[Path, Path]], runs: int, port: int, dbname: str, tmp: Path
) -> dict:
    event = admin_event("GET", "/users", query_string="limit=50")
    env = {**dsql_env(tmp, port, dbname), "BENCH_EVENT": json.dumps(event)}
    samples: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    parts: list[dict] = []
    for run in range(runs):
        for variant in rotated(VARIANTS, run):
            samples[variant].append(run_child(python, _FIRST_REQUEST, found[variant], env))
        parts.append(run_child(python, _FIRST_REQUEST, found["shipped"], {**env, "BENCH_PARTS": "1"}))
    figures = {variant: summary(samples[variant], ("first", "warm", "wall")) for variant in VARIANTS}
    figures["parts"] = summary(parts, ("imports", "first", "token"))
    return figures


def measure(python: RuntimePython, layer: Path, code: Path, runs: int) -> tuple[dict, dict, dict, int]:
    """Both figures on read-only layouts of the artifacts: init per variant, then the first request
    against a seeded, migrated database (DATABASE_URL's server, else a throwaway PostgreSQL). Also the
    bytecode files each layout holds, and how many the runs wrote (none may be)."""
    with layouts(layer, code, python, VARIANTS) as found, tempfile.TemporaryDirectory() as scratch:
        roots = {variant: found[variant][0].parent.parent for variant in VARIANTS}
        written_before = {variant: bytecode_files(roots[variant]) for variant in VARIANTS}
        init = measure_init(python, found, runs)
        server_url = os.environ.get("DATABASE_URL")
        server = None if server_url else LocalPostgres().start()
        try:
            admin_url = server_url or server.url  # type: ignore[union-attr]
            with scratch_database(admin_url, "coldstart", migrated=True) as db_url:
                seed(db_url)
                from psycopg.conninfo import conninfo_to_dict

                params = conninfo_to_dict(db_url)
                port, dbname = int(params.get("port") or 5432), str(params["dbname"])
                first = measure_first_request(python, found, runs, port, dbname, Path(scratch))
        finally:
            if server is not None:
                server.stop()
        written = sum(bytecode_files(roots[v]) - written_before[v] for v in VARIANTS)
    return init, first, written_before, written


def report_init(init: dict, runs: int) -> float:
    """Table (a); returns shipped / precompiled init."""
    print(f"\n(a) init, median of {runs} fresh interpreters per variant (-I -B, read-only layout)")
    print(f"   {'ms':36s} {'source only':>12s} {'shipped':>12s} {'precompiled':>12s}")
    rows = (
        ("import handler.app (Lambda's init)", "init"),
        ("+ first DSQL connect's imports (awscrt)", "deferred"),
        ("process wall time (start + init)", "wall"),
    )
    for label, key in rows:
        print(f"   {label:36s}" + "".join(f"{ms(init[v][key]):>13s}" for v in VARIANTS))
    print(f"   {'python -c pass (process wall time)':36s}{ms(init['python -c pass']['wall']):>13s}")
    init_ratio = init["shipped"]["init"] / init["precompiled"]["init"]
    both = {v: init[v]["init"] + init[v]["deferred"] for v in VARIANTS}
    print(
        f"   shipped / precompiled: init {init_ratio:.2f} (target <= {INIT_TARGET}), init + deferred "
        f"{both['shipped'] / both['precompiled']:.2f}; source only / precompiled: init "
        f"{init['source only']['init'] / init['precompiled']['init']:.2f}"
    )
    return float(init_ratio)


def report_first_request(first: dict, runs: int) -> float:
    """Table (b); returns shipped / precompiled first request."""
    print(f"\n(b) first request in a fresh process, median of {runs} (GET /users?limit=50, DSQL path)")
    print(f"   {'ms':36s} {'source only':>12s} {'shipped':>12s} {'precompiled':>12s}")
    for label, key in (
        ("first request (sign, connect, query)", "first"),
        ("the same request again, warm", "warm"),
    ):
        print(f"   {label:36s}" + "".join(f"{ms(first[v][key]):>13s}" for v in VARIANTS))
    parts = first["parts"]
    print(
        f"   shipped, in parts: the signer's imports (awscrt) {ms(parts['imports']).strip()}, then the request "
        f"{ms(parts['first']).strip()}; one more IAM token takes about {ms(parts['token']).strip()}"
    )
    first_ratio = first["shipped"]["first"] / first["precompiled"]["first"]
    print(
        f"   shipped / precompiled: first request {first_ratio:.2f} (target <= {FIRST_REQUEST_TARGET}); "
        f"source only / precompiled: {first['source only']['first'] / first['precompiled']['first']:.2f}"
    )
    return float(first_ratio)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stack", default="prod", help="whose lambdaRuntime to build for (default: prod)")
    parser.add_argument("--runtime", help="Lambda runtime, e.g. python3.12 (default: the stack's)")
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per variant and figure")
    args = parser.parse_args()

    runtime = args.runtime or configured_runtime(args.stack)
    try:
        python, layer, code = build(runtime)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} CPU(s), {cpu_model()}, {platform.system()} {platform.machine()}")
    print(f"load average at start: {load_average()} (the machine may be shared)")
    print(f"interpreter: CPython {python.version} ({python.cache_tag}), found by the builder for {runtime}")
    print(f"artifacts: {lambda_architecture()} layer {layer.path.name}, function code {code.path.name}")
    print(f"reproduce: .venv/bin/python benchmarks/coldstart_bench.py --runtime {runtime} --runs {args.runs}")

    init, first, written_before, written = measure(python, layer.path, code.path, args.runs)
    print(f"\nbytecode files per layout: {written_before} (written during the runs: {written})")
    init_ratio = report_init(init, args.runs)
    first_ratio = report_first_request(first, args.runs)
    best_init = init["shipped"]["init_best"] / init["precompiled"]["init_best"]
    best_first = first["shipped"]["first_best"] / first["precompiled"]["first_best"]
    print(
        f"\nbest of {args.runs} (noise only adds time): shipped / precompiled init {best_init:.2f}, "
        f"first request {best_first:.2f}; shipped init {ms(init['shipped']['init_best']).strip()} ms, "
        f"first request {ms(first['shipped']['first_best']).strip()} ms"
    )
    met = init_ratio <= INIT_TARGET and first_ratio <= FIRST_REQUEST_TARGET
    print(f"targets (medians) {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
