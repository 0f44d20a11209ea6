"""The Lambda artifacts built for real: wheels for Lambda's platform, size, contents, and a request served
from the artifacts' own layout in a clean interpreter.

PyPI (or the configured package index) must be reachable: pip fetches the wheels. Builds are cached per
test session.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from components.config import StackConfig, parse_config
from components.lambda_artifact import (
    REQUIREMENTS,
    handler_files,
    layer_build_command,
    layer_triggers,
    layer_zip_path,
    python_version,
    write_handler_zip,
)
from scripts.build_layer import build_layer
from tests.pulumi_harness import stack_config

MAX_LAYER_ZIP_BYTES = 10 * 1024 * 1024
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}  # e_machine: EM_X86_64, EM_AARCH64
SO_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


def _prod_config() -> StackConfig:
    return parse_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_config().items()})


@pytest.fixture(scope="session")
def layers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Layer zips by (architecture, python version), built at most once per session."""
    return {}


def _layer(layers: dict, tmp_path_factory: pytest.TempPathFactory, architecture: str, version: str) -> Path:
    key = (architecture, version)
    if key not in layers:
        output = tmp_path_factory.mktemp("layer") / f"{architecture}-py{version}.zip"
        build_layer(REQUIREMENTS, output, architecture, version)
        layers[key] = output
    return layers[key]


@pytest.fixture(scope="session")
def prod_layer(layers: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[StackConfig, Path]:
    """The layer for the prod stack's configured architecture and runtime."""
    config = _prod_config()
    version = python_version(config.lambda_runtime)
    return config, _layer(layers, tmp_path_factory, config.lambda_architecture, version)


@pytest.fixture(scope="session")
def local_layer(layers: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layer for THIS machine's architecture and Python, to run the handler from it here."""
    machine = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[
        platform.machine()
    ]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return _layer(layers, tmp_path_factory, machine, version)


@pytest.fixture(scope="session")
def handler_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("code") / "handler.zip"
    write_handler_zip(output)
    return output


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF shared object"
    return int.from_bytes(data[18:20], "little")


def test_prod_layer_binary_matches_configured_architecture_and_python(prod_layer) -> None:
    config, layer = prod_layer
    architecture = config.lambda_architecture
    version = python_version(config.lambda_runtime)
    tag = "cp" + version.replace(".", "")
    with zipfile.ZipFile(layer) as archive:
        names = archive.namelist()
        extensions = [n for n in names if n.startswith("python/psycopg_binary/") and n.endswith(".so")]
        assert extensions, "psycopg's binary implementation is missing from the layer"
        for name in extensions:
            assert f".cpython-{tag[2:]}-{SO_ARCH[architecture]}-linux-gnu.so" in name, name
            assert _elf_machine(archive.read(name)) == ELF_MACHINE[architecture], name
        libpq = [n for n in names if n.startswith("python/psycopg_binary.libs/libpq")]
        assert libpq and _elf_machine(archive.read(libpq[0])) == ELF_MACHINE[architecture]
        wheel = next(n for n in names if n.startswith("python/psycopg_binary-") and n.endswith("/WHEEL"))
        tags = [
            line.split(": ", 1)[1]
            for line in archive.read(wheel).decode().splitlines()
            if line.startswith("Tag:")
        ]
        assert tags and all(t.startswith(f"{tag}-{tag}-manylinux") for t in tags), tags
        assert all(t.endswith(SO_ARCH[architecture]) for t in tags), tags


def test_layer_is_small_and_laid_out_for_lambda(prod_layer) -> None:
    _, layer = prod_layer
    assert layer.stat().st_size < MAX_LAYER_ZIP_BYTES, f"{layer.stat().st_size} bytes"
    with zipfile.ZipFile(layer) as archive:
        names = archive.namelist()
    assert all(n.startswith("python/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if "/tests/" in n or "/test/" in n]
    assert not [n for n in names if n.startswith("python/bin/")]
    for package in ("psycopg", "psycopg_binary", "aurora_dsql_psycopg", "aws_lambda_powertools", "botocore"):
        assert any(n.startswith(f"python/{package}/") for n in names), package
    models = {n.split("/")[3] for n in names if n.startswith("python/botocore/data/") and n.count("/") > 3}
    assert models == {"dsql", "sts"}
    assert "python/botocore/cacert.pem" in names  # the handler's CA bundle for TLS to DSQL


def test_layer_zip_is_deterministic(prod_layer, tmp_path: Path) -> None:
    config, layer = prod_layer
    again = tmp_path / "again.zip"
    build_layer(REQUIREMENTS, again, config.lambda_architecture, python_version(config.lambda_runtime))
    assert again.read_bytes() == layer.read_bytes()


def test_handler_zip_has_code_only(handler_zip: Path) -> None:
    with zipfile.ZipFile(handler_zip) as archive:
        names = archive.namelist()
        infos = archive.infolist()
    assert "handler/app.py" in names
    assert all(n.startswith("handler/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if "/tests/" in n or Path(n).name.startswith("test_")]
    assert "handler/requirements.txt" not in names  # built into the layer, not read at run time
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_handler_files_skip_tests_and_caches(tmp_path: Path) -> None:
    handler = tmp_path / "handler"
    shutil.copytree(Path(__file__).resolve().parents[1] / "handler", handler)
    (handler / "__pycache__").mkdir(exist_ok=True)
    (handler / "__pycache__" / "app.cpython-313.pyc").write_bytes(b"\0")
    (handler / "tests").mkdir()
    (handler / "tests" / "test_app.py").write_text("")
    (handler / "test_inline.py").write_text("")
    (handler / ".pytest_cache").mkdir()
    (handler / ".pytest_cache" / "README.md").write_text("")
    names = [name for name, _ in handler_files(handler)]
    assert "handler/app.py" in names
    assert not [n for n in names if "cache" in n or "test" in n or n.endswith(".pyc")]


def test_build_command_and_triggers_follow_the_inputs() -> None:
    arm = layer_triggers("arm64", "python3.13")
    assert layer_triggers("arm64", "python3.13") == arm  # stable: no rebuild without a change
    assert layer_triggers("x86_64", "python3.13") != arm
    assert layer_triggers("arm64", "python3.12") != arm
    assert layer_zip_path("arm64", "python3.13") != layer_zip_path("x86_64", "python3.13")
    command = layer_build_command("arm64", "python3.13", "build/layers/x.zip")
    assert command.split() == [
        "python3",
        "scripts/build_layer.py",
        "--architecture",
        "arm64",
        "--python-version",
        "3.13",
        "--requirements",
        "handler/requirements.txt",
        "--output",
        "build/layers/x.zip",
    ]
    with pytest.raises(ValueError, match="unsupported Lambda architecture"):
        layer_triggers("riscv64", "python3.13")


SERVE_FROM_ARTIFACTS = textwrap.dedent(
    """
    import json, sys
    task, layer = sys.argv[1], sys.argv[2]
    sys.path[:0] = [task, layer]  # Lambda's order: /var/task, then /opt/python
    import handler.app as app
    import psycopg, psycopg.pq, aurora_dsql_psycopg, botocore, boto3

    class Context:
        function_name = "users-api-test"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:users-api-test"
        memory_limit_in_mb = 512
        aws_request_id = "req-1"
        log_group_name = "/aws/lambda/users-api-test"
        log_stream_name = "stream"
        def get_remaining_time_in_millis(self):
            return 10000

    def event(method, path, resource, body=None, path_parameters=None):
        return {
            "resource": resource, "path": path, "httpMethod": method,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {"Content-Type": ["application/json"]},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": path_parameters, "stageVariables": None,
            "requestContext": {"requestId": "req-1", "stage": "v1", "path": "/v1" + path,
                               "httpMethod": method, "resourcePath": resource},
            "body": body, "isBase64Encoded": False,
        }

    created = app.lambda_handler(
        event("POST", "/users", "/users", json.dumps({"name": "Ada", "email": "ada@example.com"})), Context()
    )
    user = json.loads(created["body"])
    fetched = app.lambda_handler(
        event("GET", "/users/" + user["id"], "/users/{id}", path_parameters={"id": user["id"]}), Context()
    )
    # The token signer the function uses on AWS works from the layer's trimmed botocore (no network).
    token = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    ).client("dsql").generate_db_connect_auth_token("abc.dsql.us-east-1.on.aws", "us-east-1")
    print(json.dumps({
        "created": created["statusCode"], "fetched": fetched["statusCode"], "email": json.loads(fetched["body"])["email"],
        "handler_from": app.__file__, "psycopg_from": psycopg.__file__, "impl": psycopg.pq.__impl__,
        "connector_from": aurora_dsql_psycopg.__file__, "botocore_from": botocore.__file__,
        "token_signed": "X-Amz-Signature=" in token,
    }))
    """
)


def test_handler_serves_a_request_from_the_artifact_layout(
    local_layer: Path, handler_zip: Path, migrated_database_url: str, tmp_path: Path
) -> None:
    task, opt = tmp_path / "var" / "task", tmp_path / "opt"
    with zipfile.ZipFile(handler_zip) as archive:
        archive.extractall(task)
    with zipfile.ZipFile(local_layer) as archive:
        archive.extractall(opt)  # the zip's python/ becomes opt/python, as Lambda's /opt/python
    script = tmp_path / "serve.py"
    script.write_text(SERVE_FROM_ARTIFACTS)
    # -I -S: no site-packages, no PYTHONPATH, no current directory: only the artifacts and the stdlib.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(task), str(opt / "python")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "DATABASE_URL": migrated_database_url,
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "users-api",
            "LOG_LEVEL": "WARNING",
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["created"] == 201 and outcome["fetched"] == 200
    assert outcome["email"] == "ada@example.com"
    assert outcome["handler_from"].startswith(str(task))
    for module in ("psycopg_from", "connector_from", "botocore_from"):
        assert outcome[module].startswith(str(opt / "python")), outcome[module]
    assert outcome["impl"] == "binary"  # the wheel's compiled libpq binding, not pure Python
    assert outcome["token_signed"]


def test_stack_layer_script_writes_where_the_program_reads() -> None:
    """`make layer` (run before a preview on a fresh checkout) targets the program's own zip path."""
    from components.config import parse_config
    from components.lambda_artifact import layer_zip_path
    from scripts.build_stack_layer import stack_layer_path
    from tests.pulumi_harness import stack_config

    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_config("prod").items()}
    config = parse_config(raw)
    assert stack_layer_path("prod") == (
        config.lambda_architecture,
        config.lambda_runtime,
        layer_zip_path(config.lambda_architecture, config.lambda_runtime),
    )
    assert stack_layer_path("my-org/prod") == stack_layer_path("prod")
