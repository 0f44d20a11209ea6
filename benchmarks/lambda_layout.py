"""The shipped Lambda artifacts laid out as Lambda mounts them, and fresh interpreters to run them in.

Shared by the cold-start benchmark (``coldstart_bench.py``) and the power curve (``power_bench.py``):
the same build (the project's own builder, for this machine's architecture and the stack's runtime),
the same read-only layout, the same environment and the same redirection of the DSQL connection to a
local PostgreSQL.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from scripts.build_artifacts import (  # noqa: E402
    HANDLER_DIR,
    LAMBDA_LOCK,
    Artifact,
    RuntimePython,
    build_function_code,
    build_layer,
    find_runtime_python,
    lay_out,
    loader_environment,
    python_version_of,
)

FAKE_ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
ADMIN_CLAIMS = {"sub": "bench-admin", "token_use": "id", "cognito:groups": "admins"}
SEEDED_USERS = 60

# Pasted into a measured interpreter's script after `import handler.app`: routes the DSQL connection to
# the local server (loopback address, its port and database, no TLS). Everything else (the token, the
# parameters, the connect) runs as on Lambda.
LOCAL_DSQL = """
import os, psycopg
from handler import db
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
"""


# ---------------------------------------------------------------- the machine and the configuration


def lambda_architecture() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise SystemExit(f"this machine ({machine}) is neither of Lambda's architectures (x86_64, arm64)")


def configured(stack: str, key: str) -> str:
    """``key`` of the stack's config: its stack file, else Pulumi.yaml's default."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    value = str(project["config"][key]["default"])
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.is_file():
        config = yaml.safe_load(stack_file.read_text()).get("config") or {}
        value = str(config.get(f"{project['name']}:{key}", value))
    return value


def configured_runtime(stack: str) -> str:
    """``lambdaRuntime`` of the stack."""
    return configured(stack, "lambdaRuntime")


def load_average() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def build(runtime: str) -> tuple[RuntimePython, Artifact, Artifact]:
    """The runtime's interpreter and both artifacts for this machine (BuildError says what is missing)."""
    version = python_version_of(runtime)
    python = find_runtime_python(version)
    layer = build_layer(LAMBDA_LOCK, lambda_architecture(), version, python=python)
    code = build_function_code(HANDLER_DIR, version, python=python)
    return python, layer, code


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
def layouts(
    layer: Path, code: Path, python: RuntimePython, variants: tuple[str, ...] = ("shipped",)
) -> Iterator[dict[str, tuple[Path, Path]]]:
    """Each variant's (/var/task, /opt/python) under a temporary root, read-only; removed on exit.

    ``shipped``: the zips as built; ``precompiled``: the same sources compiled in place by the same
    interpreter; ``source only``: no bytecode at all.
    """
    with tempfile.TemporaryDirectory(prefix="lambda-layout-") as scratch:
        root = Path(scratch)
        found: dict[str, tuple[Path, Path]] = {}
        for variant in variants:
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
            for variant in variants:
                _read_only(found[variant][0].parent.parent)
            yield found
        finally:
            _writable(root)


# ---------------------------------------------------------------- running and measuring


def summary(samples: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """Median of each key, and its minimum as ``<key>_best`` (on a shared machine noise only adds)."""
    figures = {key: statistics.median(sample[key] for sample in samples) for key in keys}
    figures.update({f"{key}_best": min(sample[key] for sample in samples) for key in keys})
    return figures


def run_child(
    python: RuntimePython,
    code: str,
    paths: tuple[Path, Path],
    env: dict[str, str],
    preexec: Callable[[], None] | None = None,
) -> dict:
    """Runs ``code`` in a fresh interpreter (``-I -B``) with the layout first on sys.path; its last
    stdout line is JSON. ``preexec`` runs in the child before the interpreter starts (a cgroup move)."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(python.path), "-I", "-B", "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths[0],
        check=False,
        preexec_fn=preexec,
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


def dsql_env(tmp: Path, port: int, dbname: str) -> dict[str, str]:
    """``base_env`` plus the DSQL path's settings, fake credentials and the local server's coordinates."""
    return {
        **base_env(),
        "DSQL_ENDPOINT": FAKE_ENDPOINT,
        "DB_USER": "users_api",
        # Fake credentials, as Lambda provides them (environment, with a session token): signing is
        # local, nothing is sent to AWS; no profile or metadata lookups.
        "AWS_ACCESS_KEY_ID": "ASIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken",
        "AWS_CONFIG_FILE": str(tmp / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "BENCH_PG_PORT": str(port),
        "BENCH_PG_DB": dbname,
    }


def admin_event(method: str, path: str, *, query_string: str = "", body: object = None) -> dict:
    from local.events import api_gateway_event

    event = api_gateway_event(
        method,
        path,
        query_string=query_string,
        headers=() if body is None else [("Content-Type", "application/json")],
        body=None if body is None else json.dumps(body),
    )
    event["requestContext"]["authorizer"] = {"claims": ADMIN_CLAIMS}
    return event


def seed(db_url: str) -> None:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (name, email) SELECT 'Seed ' || i, 'seed' || i || '@example.com' "
            "FROM generate_series(1, %s) AS i",
            (SEEDED_USERS,),
        )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"
