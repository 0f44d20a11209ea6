"""The Lambda artifacts built for real: from the lock, for Lambda's platform, with the runtime's bytecode.

Proven here: the wheels match the configured architecture and Python; the layer holds exactly the
lock's pins; every module ships bytecode written by the runtime's interpreter with unchecked-hash
invalidation and Lambda paths in its code objects; two checkouts at different paths build the same bytes
and the program registers the same inputs from both; modules import from the built layout with no
writable cache and use the shipped bytecode; the build refuses to run without the runtime's
interpreter; and a request is served from the built layout.

The package index must be reachable the first time (uv fetches the wheels, then serves them from its
cache); the zips are cached in build/lambda/ by the digest of their inputs, shared with the program's
own runs under mocks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from components.config import StackConfig, parse_config
from scripts.build_artifacts import (
    BUILD_DIR,
    HANDLER_DIR,
    LAMBDA_LOCK,
    PYTHON_PLATFORMS,
    Artifact,
    BuildError,
    RuntimePython,
    build_function_code,
    build_layer,
    find_runtime_python,
    find_uv,
    handler_files,
    lay_out,
    layer_key,
    loader_environment,
    main,
    python_version_of,
)
from tests.pulumi_harness import ROOT, ProgramRun, run_program, stack_config
from tests.test_locks import applies, read_lock

MAX_LAYER_ZIP_BYTES = 15 * 1024 * 1024
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}  # e_machine: EM_X86_64, EM_AARCH64
SO_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}
THIS_MACHINE = {"x86_64": "x86_64", "AMD64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[
    platform.machine()
]


def _prod_config() -> StackConfig:
    return parse_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_config().items()})


@pytest.fixture(scope="session")
def prod() -> StackConfig:
    return _prod_config()


@pytest.fixture(scope="session")
def runtime_python(prod: StackConfig) -> RuntimePython:
    return find_runtime_python(python_version_of(prod.lambda_runtime))


@pytest.fixture(scope="session")
def prod_layer(prod: StackConfig, runtime_python: RuntimePython) -> Artifact:
    """The prod stack's layer, from the same cache the program's runs use."""
    return build_layer(LAMBDA_LOCK, prod.lambda_architecture, runtime_python.minor, python=runtime_python)


@pytest.fixture(scope="session")
def local_layer(runtime_python: RuntimePython) -> Artifact:
    """A layer for THIS machine's architecture and the runtime's Python, to run code from it here."""
    return build_layer(LAMBDA_LOCK, THIS_MACHINE, runtime_python.minor, python=runtime_python)


@pytest.fixture(scope="session")
def code_zip(runtime_python: RuntimePython) -> Artifact:
    return build_function_code(HANDLER_DIR, runtime_python.minor, python=runtime_python)


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF shared object"
    return int.from_bytes(data[18:20], "little")


def _names(artifact: Artifact) -> list[str]:
    with zipfile.ZipFile(artifact.path) as archive:
        return archive.namelist()


def _lambda_environment(architecture: str, version: str) -> dict[str, str]:
    """PEP 508 marker values of Lambda's runtime (Amazon Linux 2023, CPython)."""
    return {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": version,
        "python_full_version": f"{version}.0",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_system": "Linux",
        "platform_machine": SO_ARCH[architecture],
        "implementation_version": f"{version}.0",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


# --- what the layer holds -----------------------------------------------------------------------------


def test_prod_layer_binary_matches_configured_architecture_and_python(
    prod: StackConfig, prod_layer: Artifact
) -> None:
    architecture = prod.lambda_architecture
    tag = "cp" + python_version_of(prod.lambda_runtime).replace(".", "")
    with zipfile.ZipFile(prod_layer.path) as archive:
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


def test_the_layer_holds_exactly_the_locks_pins(prod: StackConfig, prod_layer: Artifact) -> None:
    """What the layer is built from is the lock: every pin that applies on Lambda, at its version."""
    environment = _lambda_environment(prod.lambda_architecture, python_version_of(prod.lambda_runtime))
    expected = {
        name: pin.version
        for name, pins in read_lock(LAMBDA_LOCK).items()
        for pin in pins
        if applies(pin, environment)
    }
    installed = {}
    for name in _names(prod_layer):
        parts = name.split("/")
        if len(parts) == 3 and parts[1].endswith(".dist-info") and parts[2] == "METADATA":
            distribution, version = parts[1].removesuffix(".dist-info").rsplit("-", 1)
            installed[canonicalize_name(distribution)] = version
    assert installed == expected
    assert "tzdata" not in installed  # its marker is Windows-only: markers were evaluated for Lambda


def test_layer_is_small_stripped_and_laid_out_for_lambda(prod_layer: Artifact) -> None:
    assert prod_layer.zipped_bytes < MAX_LAYER_ZIP_BYTES, f"{prod_layer.zipped_bytes} bytes"
    names = _names(prod_layer)
    assert all(n.startswith("python/") for n in names)
    assert not [n for n in names if "/tests/" in n or "/test/" in n]
    assert not [n for n in names if n.startswith("python/bin/")]
    for package in ("psycopg", "psycopg_binary", "aurora_dsql_psycopg", "aws_lambda_powertools", "botocore"):
        assert any(n.startswith(f"python/{package}/") for n in names), package
    models = {n.split("/")[3] for n in names if n.startswith("python/botocore/data/") and n.count("/") > 3}
    assert models == {"dsql", "sts"}
    assert "python/botocore/cacert.pem" in names  # the handler's CA bundle for TLS to DSQL


@pytest.mark.parametrize("artifact_name", ["prod_layer", "code_zip"])
def test_every_module_ships_bytecode_of_the_runtimes_python_with_lambda_paths(
    artifact_name: str, runtime_python: RuntimePython, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Checked by the runtime's interpreter itself: magic number, unchecked-hash flags, source hash,
    and the path compiled into each code object (Lambda's, never this machine's)."""
    artifact: Artifact = request.getfixturevalue(artifact_name)
    names = _names(artifact)
    sources = [n for n in names if n.endswith(".py")]
    tag = runtime_python.cache_tag
    for source in sources:
        folder, _, file = source.rpartition("/")
        assert f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc" in names, f"no bytecode for {source}"
    assert not [n for n in names if n.endswith(".pyc") and f".{tag}." not in n]
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(tmp_path)
    lambda_root = "/opt" if artifact_name == "prod_layer" else "/var/task"
    check = textwrap.dedent(
        """
        import importlib.util, marshal, pathlib, sys
        root, lambda_root = pathlib.Path(sys.argv[1]), sys.argv[2]
        bad = []
        for pyc in root.rglob("*.pyc"):
            data = pyc.read_bytes()
            source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
            expected = lambda_root + "/" + source.relative_to(root).as_posix()
            flags = int.from_bytes(data[4:8], "little")
            code = marshal.loads(data[16:])
            if data[:4] != importlib.util.MAGIC_NUMBER or flags != 0b01:
                bad.append(f"{pyc}: header {data[:8].hex()}")
            elif data[8:16] != importlib.util.source_hash(source.read_bytes()):
                bad.append(f"{pyc}: source hash differs")
            elif code.co_filename != expected:
                bad.append(f"{pyc}: co_filename {code.co_filename}")
        print(len(list(root.rglob("*.pyc"))), bad[:5])
        """
    )
    result = subprocess.run(
        [str(runtime_python.path), "-I", "-c", check, str(tmp_path), lambda_root],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    count, bad = result.stdout.split(" ", 1)
    assert int(count) == len(sources) and bad.strip() == "[]", result.stdout


def test_handler_zip_has_code_and_bytecode_only(code_zip: Artifact) -> None:
    names = _names(code_zip)
    with zipfile.ZipFile(code_zip.path) as archive:
        infos = archive.infolist()
    assert "handler/app.py" in names
    assert all(n.startswith("handler/") for n in names)
    assert not [n for n in names if "/tests/" in n or Path(n).name.startswith("test_")]
    assert not {"handler/requirements.txt", "handler/requirements.in"} & set(names)  # the layer's job
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {n for n in names if not n.endswith(".pyc")} == {name for name, _ in handler_files()}


def test_handler_files_skip_tests_and_caches(tmp_path: Path) -> None:
    handler = tmp_path / "handler"
    shutil.copytree(HANDLER_DIR, handler)
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


# --- identity and cache -------------------------------------------------------------------------------


def test_the_layers_name_follows_the_lock_and_the_cache_is_reused(
    prod: StackConfig, prod_layer: Artifact, runtime_python: RuntimePython, tmp_path: Path
) -> None:
    uv = find_uv()
    assert uv
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    arch = prod.lambda_architecture
    key = layer_key(LAMBDA_LOCK, arch, runtime_python, version)
    assert prod_layer.key == key and key[:20] in prod_layer.path.name
    edited = tmp_path / "requirements.txt"
    edited.write_text(LAMBDA_LOCK.read_text() + "\n")
    assert layer_key(edited, arch, runtime_python, version) != key  # any byte of the lock counts
    other_arch = "x86_64" if arch == "arm64" else "arm64"
    assert layer_key(LAMBDA_LOCK, other_arch, runtime_python, version) != key
    again = build_layer(LAMBDA_LOCK, arch, runtime_python.minor, python=runtime_python)
    assert (again.path, again.sha256_b64, again.built) == (prod_layer.path, prod_layer.sha256_b64, False)


@pytest.mark.parametrize("architecture", sorted(PYTHON_PLATFORMS))
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_lambda_lock_installs_for_every_supported_target(
    architecture: str, version: str, tmp_path: Path
) -> None:
    """One universal lock for four targets: uv finds a hashed binary wheel of every pin for each."""
    uv = find_uv()
    assert uv
    result = subprocess.run(
        [
            uv, "pip", "install", "--dry-run", "--target", str(tmp_path / "python"),
            "--python", str(find_runtime_python(version).path),
            "--python-platform", PYTHON_PLATFORMS[architecture], "--python-version", version,
            "--only-binary", ":all:", "--require-hashes", "-r", str(LAMBDA_LOCK),
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def _copy_checkout(destination: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) as they are now, at another path."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


REGISTERED_ARTIFACTS = textwrap.dedent(
    """
    import json
    from tests.pulumi_harness import run_program
    from tests.test_lambda_artifact import registered_artifacts
    print(json.dumps(registered_artifacts(run_program())))
    """
)


def registered_artifacts(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """What the program registered for each layer and function: the zip, its hash, the description."""
    return {
        r.name: {
            "code": r.inputs["code"].path,
            "hash": r.inputs["sourceCodeHash"],
            "description": r.inputs.get("description"),
        }
        for r in run.resources
        if r.typ in ("aws:lambda/layerVersion:LayerVersion", "aws:lambda/function:Function")
    }


def test_two_checkouts_at_different_paths_build_the_same_bytes_and_register_the_same_inputs(
    prod_layer: Artifact, code_zip: Artifact, tmp_path: Path
) -> None:
    """A copy of this checkout at another path runs the program under mocks, which builds both zips
    from scratch in the copy's own build/ folder. Its zips, their hashes and the inputs it registers
    must equal this checkout's (built from the same inputs, so under the same names)."""
    copy = _copy_checkout(tmp_path / "a" / "much" / "deeper" / "checkout")
    assert not (copy / "build").exists()
    result = subprocess.run(
        [sys.executable, "-c", REGISTERED_ARTIFACTS],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from_copy = json.loads(result.stdout.strip().splitlines()[-1])
    here = registered_artifacts(run_program())
    assert from_copy == here
    assert len(here) == 4  # a layer and a function in each of two regions
    for name, resource in here.items():
        built_there, built_here = (
            (copy / resource["code"]).read_bytes(),
            (ROOT / resource["code"]).read_bytes(),
        )
        assert built_there == built_here, name
        assert base64.b64encode(hashlib.sha256(built_there).digest()).decode() == resource["hash"]
    assert {r["hash"] for r in here.values()} == {prod_layer.sha256_b64, code_zip.sha256_b64}


# --- the built layout at run time ---------------------------------------------------------------------


IMPORT_FROM_BYTECODE = textwrap.dedent(
    """
    import json, sys
    task, layer = sys.argv[1], sys.argv[2]
    sys.path[:0] = [task, layer]  # Lambda's order: /var/task, then /opt/python
    import handler.app, psycopg, aurora_dsql_psycopg, boto3, botocore.session, aws_lambda_powertools
    modules = {name: m for name, m in sys.modules.items() if getattr(m, "__file__", None)}
    print(json.dumps({
        "dont_write_bytecode": sys.flags.dont_write_bytecode,
        "handler_code_file": handler.app.lambda_handler.__code__.co_filename,
        "from_layout": sorted(n for n, m in modules.items() if m.__file__.startswith((task, layer))),
        "cached": {n: m.__cached__ for n, m in modules.items()
                   if m.__file__.startswith((task, layer)) and m.__file__.endswith(".py")},
    }))
    """
)


def test_modules_import_from_the_layout_with_no_writable_cache_and_use_the_shipped_bytecode(
    local_layer: Artifact, code_zip: Artifact, runtime_python: RuntimePython, tmp_path: Path
) -> None:
    """Every source in the layout is replaced by a line that raises: an import can only succeed
    through the shipped bytecode, which unchecked-hash invalidation uses without reading the source."""
    opt_python, task = lay_out(local_layer.path, code_zip.path, tmp_path)
    for source in [*opt_python.rglob("*.py"), *task.rglob("*.py")]:
        source.write_text("raise ImportError('the source ran: the shipped bytecode was not used')\n")
    for folder in (tmp_path / "opt", tmp_path / "var"):
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)  # read-only, as Lambda mounts them
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = subprocess.run(
        [str(runtime_python.path), "-I", "-S", "-B", "-c", IMPORT_FROM_BYTECODE, str(task), str(opt_python)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_REGION": "us-east-1",
            **loader_environment(os.environ),  # a --enable-shared interpreter's libpython
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["dont_write_bytecode"] == 1
    # The import system points co_filename at where the source is now (on Lambda: the ddir path
    # the bytecode was compiled with, checked in the bytecode test above).
    assert outcome["handler_code_file"] == str(task / "handler" / "app.py")
    assert {"handler.app", "psycopg", "aurora_dsql_psycopg", "boto3", "botocore.session"} <= set(
        outcome["from_layout"]
    )
    for name, cached in outcome["cached"].items():
        assert f".{runtime_python.cache_tag}.pyc" in cached and Path(cached).is_file(), name
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written


def test_the_build_fails_clearly_without_the_runtimes_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    env = {"PATH": str(empty), "PYENV_ROOT": str(empty), "UV_PYTHON_INSTALL_DIR": str(empty)}
    with pytest.raises(BuildError) as error:
        find_runtime_python("3.13", env=env)
    message = str(error.value)
    assert "Python 3.13 was not found" in message and "never shipped as source only" in message
    assert "uv python install 3.13" in message and "pyenv install 3.13" in message
    assert "dsql-users-api:lambdaRuntime" in message

    # The same from the builder, before anything is fetched or written.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BuildError, match=r"Python 3\.12 was not found"):
        build_layer(LAMBDA_LOCK, "arm64", "3.12", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert (
        main(["--architecture", "arm64", "--runtime", "python3.12", "--out-dir", str(tmp_path / "out")]) == 1
    )


def test_the_cli_lays_out_opt_python_and_var_task(
    prod: StackConfig, prod_layer: Artifact, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    arguments = ["--architecture", prod.lambda_architecture, "--runtime", prod.lambda_runtime]
    assert main([*arguments, "--layout", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layer"]["sha256"] == prod_layer.sha256_hex and report["layer"]["reused"] is True
    function_zip = Path(report["function"]["path"])
    assert (
        base64.b64encode(hashlib.sha256(function_zip.read_bytes()).digest()).decode()
        == (report["function"]["source_code_hash"])
    )
    assert report["layer"]["zipped_bytes"] < MAX_LAYER_ZIP_BYTES
    assert (tmp_path / "opt" / "python" / "psycopg" / "__init__.py").is_file()
    assert (tmp_path / "var" / "task" / "handler" / "app.py").is_file()
    assert report["layout"] == {
        "opt_python": str(tmp_path / "opt" / "python"),
        "var_task": str(tmp_path / "var" / "task"),
    }
    assert Path(report["layer"]["path"]).parent == BUILD_DIR


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
    local_layer: Artifact,
    code_zip: Artifact,
    runtime_python: RuntimePython,
    migrated_database_url: str,
    tmp_path: Path,
) -> None:
    opt_python, task = lay_out(local_layer.path, code_zip.path, tmp_path)
    script = tmp_path / "serve.py"
    script.write_text(SERVE_FROM_ARTIFACTS)
    # The runtime's own interpreter, -I -S: no site-packages, no PYTHONPATH, no current directory: only
    # the artifacts and the standard library, as on Lambda.
    result = subprocess.run(
        [str(runtime_python.path), "-I", "-S", str(script), str(task), str(opt_python)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={
            "DATABASE_URL": migrated_database_url,
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "users-api",
            "LOG_LEVEL": "WARNING",
            "AUTH_MODE": "none",
            "PATH": "/usr/bin:/bin",
            **loader_environment(os.environ),
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["created"] == 201 and outcome["fetched"] == 200, outcome
    assert outcome["email"] == "ada@example.com"
    assert outcome["handler_from"].startswith(str(task))
    for module in ("psycopg_from", "connector_from", "botocore_from"):
        assert outcome[module].startswith(str(opt_python)), outcome[module]
    assert outcome["impl"] == "binary"  # the wheel's compiled libpq binding, not pure Python
    assert outcome["token_signed"]
