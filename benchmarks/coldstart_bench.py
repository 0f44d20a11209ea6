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
       the first DSQL connect adds (``aurora_dsql_psycopg`` with boto3 and botocore);
   (b) the first request in a fresh process, ``GET /users?limit=50`` as an administrator, on the DSQL
       path: the AWS connector signs a real ``DbConnect`` token with fake credentials and connects to a
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
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from benchmarks.machine import cpu_model  # noqa: E402
from local.postgres import LocalPostgres, scratch_database  # noqa: E402
from scripts.build_artifacts import (  # noqa: E402
    HANDLER_DIR,
    LAMBDA_LOCK,
    BuildError,
    RuntimePython,
    build_function_code,
    build_layer,
    find_runtime_python,
    lay_out,
    loader_environment,
    python_version_of,
)

VARIANTS = ("source only", "shipped", "precompiled")
INIT_TARGET = 1.15
FIRST_REQUEST_TARGET = 1.3
FAKE_ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
ADMIN_CLAIMS = {"sub": "bench-admin", "token_use": "id", "cognito:groups": "admins"}
SEEDED_USERS = 60

# Runs in the runtime's interpreter. The layout goes first on sys.path, as Lambda puts /var/task and
# /opt/python before its own paths; nothing is imported before the clock starts but sys and time.
_INIT = """
import sys, time
sys.path[:0] = sys.argv[1:3]
started = time.perf_counter()
import handler.app
initialized = time.perf_counter()
import aurora_dsql_psycopg
deferred = time.perf_counter()
import json
print(json.dumps({"init": initialized - started, "deferred": deferred - initialized}))
"""

_FIRST_REQUEST = """
import sys, time
sys.path[:0] = sys.argv[1:3]
import handler.app
import json, os, psycopg
from handler import db

# Route the DSQL connection to the local server: loopback address, its port and database, no TLS.
# Everything else (the connector, the token, the parameters) runs as on Lambda.
db._addresses = lambda host: ["127.0.0.1"]
_connect = psycopg.Connection.connect.__func__
def _local(cls, conninfo="", **params):
    params.update(sslmode="disable", port=os.environ["BENCH_PG_PORT"], dbname=os.environ["BENCH_PG_DB"])
    return _connect(cls, conninfo, **params)
psycopg.Connection.connect = classmethod(_local)

class Context:
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 10_000

event = json.loads(os.environ["BENCH_EVENT"])
figures = {}
if os.environ.get("BENCH_PARTS"):  # what the first request spends: the connector's imports first
    started = time.perf_counter()
    import aurora_dsql_psycopg
    figures["imports"] = time.perf_counter() - started
timings = []
for _ in range(2):  # the first request, then the same one warm
    started = time.perf_counter()
    response = handler.app.lambda_handler(event, Context())
    timings.append(time.perf_counter() - started)
    assert response["statusCode"] == 200, response
assert len(json.loads(response["body"])["items"]) == 50
if os.environ.get("BENCH_PARTS"):  # one more IAM token as each connect signs it: new session and client
    import boto3
    started = time.perf_counter()
    client = boto3.Session().client("dsql", region_name="us-east-1")
    client.generate_db_connect_auth_token(os.environ["DSQL_ENDPOINT"], "us-east-1")
    figures["token"] = time.perf_counter() - started
print(json.dumps({"first": timings[0], "warm": timings[1], **figures}))
"""


# ---------------------------------------------------------------- the machine and the configuration


def lambda_architecture() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise SystemExit(f"this machine ({machine}) is neither of Lambda's architectures (x86_64, arm64)")


def configured_runtime(stack: str) -> str:
    """``lambdaRuntime`` of the stack: its stack file, else Pulumi.yaml's default."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    runtime = str(project["config"]["lambdaRuntime"]["default"])
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        config = yaml.safe_load(stack_file.read_text()).get("config") or {}
        runtime = str(config.get(f"{project['name']}:lambdaRuntime", runtime))
    return runtime


def load_average() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


# ---------------------------------------------------------------- layouts


def _read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def bytecode_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.pyc"))


@contextmanager
def layouts(layer: Path, code: Path, python: RuntimePython) -> Iterator[dict[str, tuple[Path, Path]]]:
    """Each variant's (/var/task, /opt/python) under a temporary root, read-only; removed on exit."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        root = Path(scratch)
        found: dict[str, tuple[Path, Path]] = {}
        for variant in VARIANTS:
            opt_python, task = lay_out(layer, code, root / variant.replace(" ", "-"))
            if variant != "shipped":
                for cache in [*opt_python.rglob("__pycache__"), *task.rglob("__pycache__")]:
                    shutil.rmtree(cache)
            if variant == "precompiled":
                for tree in (opt_python, task):
                    subprocess.run(
                        [str(python.path), "-I", "-m", "compileall", "-q", "-j", "1", str(tree)], check=True
                    )
            found[variant] = (task, opt_python)
        try:
            for variant in VARIANTS:
                _read_only(found[variant][0].parent.parent)
            yield found
        finally:
            _writable(root)


# ---------------------------------------------------------------- measuring


def summary(samples: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """Median of each key, and its minimum as ``<key>_best`` (on a shared machine noise only adds)."""
    figures = {key: statistics.median(sample[key] for sample in samples) for key in keys}
    figures.update({f"{key}_best": min(sample[key] for sample in samples) for key in keys})
    return figures


def rotated(variants: tuple[str, ...], run: int) -> tuple[str, ...]:
    """A different variant first in each run, so that no variant always follows the same one."""
    shift = run % len(variants)
    return variants[shift:] + variants[:shift]


def run_child(python: RuntimePython, code: str, paths: tuple[Path, Path], env: dict[str, str]) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [str(python.path), "-I", "-B", "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths[0],
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the measured interpreter failed:\n{result.stderr.strip()[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall": wall}


def base_env() -> dict[str, str]:
    """What a Lambda environment has that the handler reads, and nothing of this machine's."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "users-api",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        **loader_environment(os.environ),  # a --enable-shared interpreter finds its libpython with it
    }


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
    sys.path.insert(0, str(ROOT))
    from local.events import api_gateway_event

    event = api_gateway_event("GET", "/users", query_string="limit=50")
    event["requestContext"]["authorizer"] = {"claims": ADMIN_CLAIMS}
    env = {
        **base_env(),
        "DSQL_ENDPOINT": FAKE_ENDPOINT,
        "DB_USER": "users_api",
        # Fake credentials: signing is local, nothing is sent to AWS; no profile or metadata lookups.
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_CONFIG_FILE": str(tmp / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "BENCH_PG_PORT": str(port),
        "BENCH_PG_DB": dbname,
        "BENCH_EVENT": json.dumps(event),
    }
    samples: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    parts: list[dict] = []
    for run in range(runs):
        for variant in rotated(VARIANTS, run):
            samples[variant].append(run_child(python, _FIRST_REQUEST, found[variant], env))
        parts.append(run_child(python, _FIRST_REQUEST, found["shipped"], {**env, "BENCH_PARTS": "1"}))
    figures = {variant: summary(samples[variant], ("first", "warm", "wall")) for variant in VARIANTS}
    figures["parts"] = summary(parts, ("imports", "first", "token"))
    return figures


def seed(db_url: str) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (name, email) SELECT 'Seed ' || i, 'seed' || i || '@example.com' "
            "FROM generate_series(1, %s) AS i",
            (SEEDED_USERS,),
        )


# ---------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stack", default="prod", help="whose lambdaRuntime to build for (default: prod)")
    parser.add_argument("--runtime", help="Lambda runtime, e.g. python3.12 (default: the stack's)")
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per variant and figure")
    args = parser.parse_args()

    runtime = args.runtime or configured_runtime(args.stack)
    architecture = lambda_architecture()
    try:
        version = python_version_of(runtime)
        python = find_runtime_python(version)
        layer = build_layer(LAMBDA_LOCK, architecture, version, python=python)
        code = build_function_code(HANDLER_DIR, version, python=python)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(f"machine: {os.cpu_count()} CPU(s), {cpu_model()}, {platform.system()} {platform.machine()}")
    print(f"load average at start: {load_average()} (the machine may be shared)")
    print(f"interpreter: CPython {python.version} ({python.cache_tag}), found by the builder for {runtime}")
    print(f"artifacts: {architecture} layer {layer.path.name}, function code {code.path.name}")
    print(f"reproduce: .venv/bin/python benchmarks/coldstart_bench.py --runtime {runtime} --runs {args.runs}")

    with layouts(layer.path, code.path, python) as found, tempfile.TemporaryDirectory() as scratch:
        roots = {variant: found[variant][0].parent.parent for variant in VARIANTS}
        written_before = {variant: bytecode_files(roots[variant]) for variant in VARIANTS}
        init = measure_init(python, found, args.runs)
        server_url = os.environ.get("DATABASE_URL")
        server = None if server_url else LocalPostgres().start()
        try:
            admin_url = server_url or server.url  # type: ignore[union-attr]
            with scratch_database(admin_url, "coldstart", migrated=True) as db_url:
                seed(db_url)
                from psycopg.conninfo import conninfo_to_dict

                params = conninfo_to_dict(db_url)
                first = measure_first_request(
                    python,
                    found,
                    args.runs,
                    int(params.get("port") or 5432),
                    str(params["dbname"]),
                    Path(scratch),
                )
        finally:
            if server is not None:
                server.stop()
        written = {variant: bytecode_files(roots[variant]) - written_before[variant] for variant in VARIANTS}

    print(f"\nbytecode files per layout: {written_before} (written during the runs: {sum(written.values())})")
    print(f"\n(a) init, median of {args.runs} fresh interpreters per variant (-I -B, read-only layout)")
    print(f"   {'ms':36s} {'source only':>12s} {'shipped':>12s} {'precompiled':>12s}")
    rows = (
        ("import handler.app (Lambda's init)", "init"),
        ("+ first DSQL connect's imports", "deferred"),
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

    print(f"\n(b) first request in a fresh process, median of {args.runs} (GET /users?limit=50, DSQL path)")
    print(f"   {'ms':36s} {'source only':>12s} {'shipped':>12s} {'precompiled':>12s}")
    for label, key in (
        ("first request (sign, connect, query)", "first"),
        ("the same request again, warm", "warm"),
    ):
        print(f"   {label:36s}" + "".join(f"{ms(first[v][key]):>13s}" for v in VARIANTS))
    parts = first["parts"]
    print(
        f"   shipped, in parts: the connector's imports {ms(parts['imports']).strip()}, then the request "
        f"{ms(parts['first']).strip()}, of which one IAM token (new boto3 session and client, signature) "
        f"takes about {ms(parts['token']).strip()}"
    )
    first_ratio = first["shipped"]["first"] / first["precompiled"]["first"]
    print(
        f"   shipped / precompiled: first request {first_ratio:.2f} (target <= {FIRST_REQUEST_TARGET}); "
        f"source only / precompiled: {first['source only']['first'] / first['precompiled']['first']:.2f}"
    )
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
