"""Build the Lambda function's two artifacts from the repository, reproducibly, with bytecode.

The dependency layer is built from the Lambda lock (``handler/requirements.txt``: exact versions and
hashes) and the function code from ``handler/``. Each zip is named after a digest of everything it is
built from, written under ``build/lambda/`` and reused while that digest holds, so the Pulumi program
can call these functions on every run (preview and up) and pay for a build only when an input changed.

    python -m scripts.build_artifacts --architecture arm64 --runtime python3.13
    python -m scripts.build_artifacts --architecture x86_64 --runtime python3.13 --layout /some/dir

``--layout DIR`` also extracts both zips as Lambda mounts them: ``DIR/opt/python`` and ``DIR/var/task``.

Python API (what the program and the benchmarks use):

- ``find_runtime_python(version)``: the interpreter of the runtime's minor version (``3.13``), found on
  PATH as ``python3.13``, under pyenv's root, or by ``uv python find``; ``BuildError`` when none;
- ``build_layer(lock, architecture, python_version, out_dir) -> Artifact``;
- ``build_function_code(handler_dir, python_version, out_dir) -> Artifact``;
- ``lay_out(layer, code, root)``: the ``/opt/python`` and ``/var/task`` equivalents under ``root``.

How the layer is made:

1. ``uv pip install --target`` of the lock with ``--require-hashes --only-binary :all:`` for Lambda's
   platform (``--python-platform <arch>-manylinux_2_34``: Lambda's Python 3.12 and 3.13 run on
   Amazon Linux 2023, glibc 2.34) and the runtime's Python version, so uv evaluates the lock's markers
   for Lambda, not for this machine. Only the lock's pins, each checked against its hash.
2. Strip what never runs: console scripts, test suites, and every botocore service model but ``dsql``
   (the token signer) and ``sts`` (credential refresh). botocore stays in the layer because the
   signer needs a newer botocore than the runtime bundles; ``/opt/python`` precedes the runtime's copy.
3. Compile every module with the runtime's own interpreter (Lambda mounts ``/opt`` and ``/var/task``
   read-only, so source-only modules are compiled again at every cold start): ``__pycache__/*.pyc``
   with ``UNCHECKED_HASH`` invalidation (no source timestamp in the file), ``ddir`` set to the Lambda
   path (no build path in code objects) and a fixed hash seed (set constants marshal in one order).
   Sources stay beside the bytecode for tracebacks.
4. Zip with sorted entries, a fixed timestamp and normalized modes: the same inputs give the same bytes
   on any machine and at any checkout path.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_LOCK = ROOT / "handler" / "requirements.txt"
HANDLER_DIR = ROOT / "handler"
BUILD_DIR = ROOT / "build" / "lambda"
BUILDER = Path(__file__).resolve()

ARCHITECTURES = ("arm64", "x86_64")
PYTHON_VERSIONS = ("3.12", "3.13")
# Lambda's Python 3.12 and 3.13 runtimes run on Amazon Linux 2023 (glibc 2.34): any manylinux wheel up
# to glibc 2.34 loads there, and uv picks the most specific one the lock has a hash for.
PYTHON_PLATFORMS = {"arm64": "aarch64-manylinux_2_34", "x86_64": "x86_64-manylinux_2_34"}
LAYER_MOUNT = "/opt/python"  # where Lambda puts the layer's python/ folder
TASK_ROOT = "/var/task"  # where Lambda puts the function code
# botocore service models the function needs: dsql (auth token signer) and sts (credential refresh).
BOTOCORE_SERVICES = frozenset({"dsql", "sts"})
STRIP_DIRS = frozenset({"__pycache__", "tests", "test"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# What never belongs in the function's code: bytecode of this machine, test suites, tool caches, the
# dependency lock and its input (the layer carries the dependencies).
_EXCLUDED_DIRS = frozenset({"__pycache__", "tests", "test", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EXCLUDED_NAMES = frozenset({"requirements.txt", "requirements.in", "conftest.py", ".DS_Store"})

# Runs in the runtime's interpreter: compile every module under argv[1] as if it lived under argv[2].
_COMPILE = """
import compileall, py_compile, sys
ok = compileall.compile_dir(
    sys.argv[1], ddir=sys.argv[2], quiet=1, workers=1,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
sys.exit(0 if ok else 1)
"""
_IDENTIFY = "import sys; print(sys.implementation.name, sys.version.split()[0], sys.implementation.cache_tag)"


class BuildError(RuntimeError):
    """An artifact cannot be built; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class RuntimePython:
    """A CPython interpreter of one Lambda runtime's minor version."""

    path: Path
    version: str
    """Full version, e.g. ``3.13.0``."""
    cache_tag: str
    """``cpython-313``: the tag in the bytecode file names it writes."""

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class Artifact:
    """A built zip and what identifies it."""

    path: Path
    sha256_b64: str
    """base64 sha256 of the zip: the form of Lambda's ``source_code_hash`` and ``CodeSha256``."""
    key: str
    """sha256 hex of what the zip is built from; the cache key in its file name."""
    built: bool
    """False when the zip was already there and reused."""

    @property
    def sha256_hex(self) -> str:
        return base64.b64decode(self.sha256_b64).hex()

    @property
    def zipped_bytes(self) -> int:
        return self.path.stat().st_size

    def stats(self) -> dict[str, int]:
        """Zipped and unzipped size in bytes and the number of files."""
        with zipfile.ZipFile(self.path) as archive:
            infos = archive.infolist()
        return {
            "zipped_bytes": self.zipped_bytes,
            "unzipped_bytes": sum(info.file_size for info in infos),
            "files": len(infos),
            "pyc_files": sum(1 for info in infos if info.filename.endswith(".pyc")),
        }


# --- interpreters and tools ---------------------------------------------------------------------------


def python_version_of(runtime: str) -> str:
    """``python3.13`` -> ``3.13``."""
    version = runtime.removeprefix("python")
    if version not in PYTHON_VERSIONS:
        supported = ", ".join(f"python{v}" for v in PYTHON_VERSIONS)
        raise BuildError(f"unsupported Lambda runtime {runtime!r}; use one of {supported}")
    return version


def _identify(python: str | Path, env: Mapping[str, str]) -> RuntimePython | None:
    """The interpreter's version, or None when it does not run (e.g. a pyenv shim of another version)."""
    try:
        result = subprocess.run(
            [str(python), "-I", "-c", _IDENTIFY],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(env),
            check=False,
        )
    except OSError:
        return None
    parts = result.stdout.split()
    if result.returncode != 0 or len(parts) != 3 or parts[0] != "cpython":
        return None
    return RuntimePython(Path(python), parts[1], parts[2])


def _pyenv_pythons(version: str, env: Mapping[str, str]) -> Iterable[Path]:
    root = env.get("PYENV_ROOT")
    if not root and shutil.which("pyenv", path=env.get("PATH", "")):
        answer = subprocess.run(["pyenv", "root"], capture_output=True, text=True, env=dict(env), check=False)
        root = answer.stdout.strip() if answer.returncode == 0 else None
    if not root:
        return
    # Final releases only (3.13.0, 3.13.5; not 3.13.0t or 3.13-dev), newest patch first.
    releases = [
        path
        for path in Path(root, "versions").glob(f"{version}.*")
        if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)
    ]
    for path in sorted(releases, key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True):
        yield path / "bin" / f"python{version}"


def _uv_python(version: str, env: Mapping[str, str]) -> Iterable[str]:
    uv = find_uv(env)
    if not uv:
        return
    found = subprocess.run(
        [uv, "python", "find", "--no-project", "--system", version],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(env),
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        yield found.stdout.strip().splitlines()[-1]


def _candidates(version: str, env: Mapping[str, str]) -> Iterable[str | Path]:
    """Where a ``python3.X`` may be, in order: PATH, pyenv's installed versions, uv's discovery.

    pyenv before uv: where pyenv's shims are on PATH, uv inspects every shim and takes a second.
    """
    on_path = shutil.which(f"python{version}", path=env.get("PATH", ""))
    if on_path:
        yield on_path
    yield from _pyenv_pythons(version, env)
    yield from _uv_python(version, env)


def find_runtime_python(version: str, env: Mapping[str, str] | None = None) -> RuntimePython:
    """The CPython ``version`` (``3.13``) interpreter that compiles the runtime's bytecode.

    Lambda only uses bytecode written by its own minor version (the cache tag is in the file name and
    the magic number in the header), so no other interpreter can stand in for it.
    """
    if version not in PYTHON_VERSIONS:
        raise BuildError(f"unsupported Python version {version!r}; Lambda runtimes here: {PYTHON_VERSIONS}")
    env = os.environ if env is None else env
    for candidate in _candidates(version, env):
        found = _identify(candidate, env)
        if found and found.minor == version:
            return found
    raise BuildError(
        f"Python {version} was not found: it compiles the bytecode shipped to Lambda's python{version} "
        f"runtime, and the artifacts are never shipped as source only. Looked for python{version} on "
        f"PATH, under pyenv's versions and with `uv python find {version}`. Install it, e.g. "
        f"`uv python install {version}`, `pyenv install {version}` or your system's python{version} "
        f"package, or set dsql-users-api:lambdaRuntime to a Python version you have."
    )


def find_uv(env: Mapping[str, str] | None = None) -> str | None:
    """The uv binary: the one installed with the program's lock (the ``uv`` package), else PATH's."""
    try:
        from uv import find_uv_bin  # the PyPI package's public helper

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv", path=(os.environ if env is None else env).get("PATH", ""))


def _require_uv() -> str:
    uv = find_uv()
    if not uv:
        raise BuildError(
            "uv is needed to install the Lambda layer's wheels and was not found; install the program's "
            "requirements (`make test`, or `pulumi install`), or `python3 -m pip install uv`"
        )
    return uv


def _uv_version(uv: str) -> str:
    return subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.strip()


# --- digests and zips ---------------------------------------------------------------------------------


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(material: Mapping[str, object]) -> str:
    return _sha256_hex(json.dumps(material, sort_keys=True).encode())


def lock_digest(lock: Path = LAMBDA_LOCK) -> str:
    """sha256 hex of a lock file: what identifies the set of pinned dependencies."""
    return _sha256_hex(lock.read_bytes())


def builder_version() -> str:
    """sha256 of this module: a change in how artifacts are built changes every artifact's key."""
    return _sha256_hex(BUILDER.read_bytes())


def zip_entries(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(archive name, file) for every file under ``root``, sorted, with ``prefix`` prepended."""
    return sorted(
        (prefix + path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file()
    )


def write_deterministic_zip(entries: Iterable[tuple[str, Path]], output: Path) -> str:
    """Zip ``entries`` with fixed timestamps and modes; return the zip's base64 sha256.

    Written to a unique temporary name and renamed: a concurrent build of the same key, or one that is
    interrupted, never leaves a partial zip under the final name.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(prefix=output.name + ".", suffix=".partial", dir=output.parent)
    os.close(handle)
    partial = Path(partial_name)
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, path in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                executable = os.access(path, os.X_OK) and path.suffix not in (".py", ".pyc")
                info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=9)
        os.chmod(partial, 0o644)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return sha256_b64(output)


def sha256_b64(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def loader_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The dynamic loader's search path of ``env`` (Linux and macOS names), where set."""
    return {name: env[name] for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH") if env.get(name)}


def _compile(python: RuntimePython, tree: Path, lambda_path: str) -> None:
    """Write ``__pycache__/*.pyc`` for every module under ``tree``, as if it lived at ``lambda_path``."""
    result = subprocess.run(
        [str(python.path), "-S", "-B", "-c", _COMPILE, str(tree), lambda_path],
        capture_output=True,
        text=True,
        timeout=600,
        # The hash seed, and no PYTHONPATH or other setting of the caller's reaches the compiler. Only
        # the loader's library path passes: interpreters built with --enable-shared (actions/setup-python's,
        # which exports LD_LIBRARY_PATH) do not start without it; it does not change the bytecode.
        env={"PYTHONHASHSEED": "0", **loader_environment(os.environ)},
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise BuildError(f"Python {python.version} ({python.path}) could not compile {tree}:\n{output}")


# --- the layer ----------------------------------------------------------------------------------------


def strip_tree(root: Path, botocore_services: Iterable[str] = BOTOCORE_SERVICES) -> None:
    """Remove what never runs on Lambda: caches, test suites, console scripts, unused botocore models."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and (path.name in STRIP_DIRS or path == root / "bin"):
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            path.unlink()
    keep = set(botocore_services)
    data = root / "botocore" / "data"
    if data.is_dir():
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry)


def layer_key(lock: Path, architecture: str, python: RuntimePython, uv_version: str) -> str:
    """What the layer is built from: the lock's bytes, the builder, uv, the platform and interpreter."""
    return _key(
        {
            "kind": "layer",
            "lock_sha256": lock_digest(lock),
            "builder_sha256": builder_version(),
            "uv": uv_version,
            "architecture": architecture,
            "platform": PYTHON_PLATFORMS[architecture],
            "python": python.version,
            "cache_tag": python.cache_tag,
        }
    )


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise BuildError(f"unsupported Lambda architecture {architecture!r}; use one of {ARCHITECTURES}")


def install_command(uv: str, lock: Path, target: Path, architecture: str, python: RuntimePython) -> list[str]:
    """The uv command that installs the lock's wheels for Lambda's platform into ``target``."""
    return [
        uv,
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python.path),
        "--target",
        str(target),
        "--python-platform",
        PYTHON_PLATFORMS[architecture],
        "--python-version",
        python.minor,
        "--only-binary",
        ":all:",
        "--require-hashes",
        # Files are linked from uv's cache where the file system allows: the build only removes files
        # and adds bytecode beside them, never edits an installed file in place.
        "--link-mode",
        "hardlink",
        "-r",
        str(lock),
    ]


def build_layer(
    lock: Path = LAMBDA_LOCK,
    architecture: str = "arm64",
    python_version: str = "3.13",
    out_dir: Path = BUILD_DIR,
    *,
    python: RuntimePython | None = None,
) -> Artifact:
    """The dependency layer zip (``python/...``) for one architecture and runtime; reused when built."""
    _check_architecture(architecture)
    python = python or find_runtime_python(python_version)
    if python.minor != python_version:
        raise BuildError(f"{python.path} is Python {python.version}, not {python_version}")
    uv = _require_uv()
    key = layer_key(lock, architecture, python, _uv_version(uv))
    output = out_dir / f"layer-{architecture}-py{python_version}-{key[:20]}.zip"
    if output.is_file():
        return Artifact(output, sha256_b64(output), key, built=False)
    with tempfile.TemporaryDirectory(prefix="lambda-layer-") as scratch:
        site = Path(scratch) / "python"
        result = subprocess.run(
            install_command(uv, lock, site, architecture, python), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BuildError(
                f"uv could not install {lock.name} for {architecture} / CPython {python_version}:\n"
                f"{result.stderr.strip()[-3000:]}\nEvery pin needs a hash in the lock and a binary wheel "
                "for Lambda's platform; regenerate the locks with `make lock`."
            )
        strip_tree(site)
        _compile(python, site, LAYER_MOUNT)
        return Artifact(output, write_deterministic_zip(zip_entries(site, "python/"), output), key, True)


# --- the function code --------------------------------------------------------------------------------


def _excluded(relative: Path) -> bool:
    name = relative.name
    return (
        any(part in _EXCLUDED_DIRS for part in relative.parts[:-1])
        or name.endswith(_EXCLUDED_SUFFIXES)
        or name in _EXCLUDED_NAMES
        or name.startswith("test_")
        or name.endswith("_test.py")
    )


def handler_files(handler_dir: Path = HANDLER_DIR) -> list[tuple[str, Path]]:
    """(archive name, file) of the function's sources, sorted; archive names start with ``handler/``."""
    files = [
        (f"{handler_dir.name}/{path.relative_to(handler_dir).as_posix()}", path)
        for path in handler_dir.rglob("*")
        if path.is_file() and not _excluded(path.relative_to(handler_dir))
    ]
    if not any(name == f"{handler_dir.name}/app.py" for name, _ in files):
        raise BuildError(f"{handler_dir}/app.py is missing: it holds the Lambda entry point")
    return sorted(files)


def code_key(files: list[tuple[str, Path]], python: RuntimePython) -> str:
    return _key(
        {
            "kind": "function",
            "files": [[name, _sha256_hex(path.read_bytes())] for name, path in files],
            "builder_sha256": builder_version(),
            "python": python.version,
            "cache_tag": python.cache_tag,
        }
    )


def build_function_code(
    handler_dir: Path = HANDLER_DIR,
    python_version: str = "3.13",
    out_dir: Path = BUILD_DIR,
    *,
    python: RuntimePython | None = None,
) -> Artifact:
    """The function code zip (``handler/...`` with its bytecode); reused when already built."""
    python = python or find_runtime_python(python_version)
    if python.minor != python_version:
        raise BuildError(f"{python.path} is Python {python.version}, not {python_version}")
    files = handler_files(handler_dir)
    key = code_key(files, python)
    output = out_dir / f"function-py{python_version}-{key[:20]}.zip"
    if output.is_file():
        return Artifact(output, sha256_b64(output), key, built=False)
    with tempfile.TemporaryDirectory(prefix="lambda-code-") as scratch:
        stage = Path(scratch)
        for name, path in files:
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, stage / name)
        _compile(python, stage, TASK_ROOT)
        return Artifact(output, write_deterministic_zip(zip_entries(stage), output), key, True)


# --- laying the artifacts out as Lambda does ----------------------------------------------------------


def lay_out(layer: Path, code: Path, root: Path) -> tuple[Path, Path]:
    """Extract both zips as Lambda mounts them: ``root/opt/python`` and ``root/var/task``."""
    opt, task = root / "opt", root / "var" / "task"
    for zip_path, target in ((layer, opt), (code, task)):
        if target.exists():
            shutil.rmtree(target)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(target)
    return opt / "python", task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", required=True, choices=ARCHITECTURES)
    parser.add_argument("--runtime", required=True, choices=[f"python{v}" for v in PYTHON_VERSIONS])
    parser.add_argument("--lock", type=Path, default=LAMBDA_LOCK, help="Lambda lock (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=BUILD_DIR, help="zips go here (default: %(default)s)")
    parser.add_argument("--python", type=Path, help="the runtime's interpreter (default: found at run time)")
    parser.add_argument("--layout", type=Path, help="also extract to DIR/opt/python and DIR/var/task")
    args = parser.parse_args(argv)
    version = python_version_of(args.runtime)
    try:
        python = _identify(args.python, os.environ) if args.python else find_runtime_python(version)
        if python is None or python.minor != version:
            raise BuildError(f"{args.python} is not a CPython {version} interpreter")
        layer = build_layer(args.lock, args.architecture, version, args.out_dir, python=python)
        code = build_function_code(HANDLER_DIR, version, args.out_dir, python=python)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    report: dict[str, object] = {"python": str(python.path), "python_version": python.version}
    for name, artifact in (("layer", layer), ("function", code)):
        report[name] = {
            "path": str(artifact.path),
            "sha256": artifact.sha256_hex,
            "source_code_hash": artifact.sha256_b64,
            "reused": not artifact.built,
            **artifact.stats(),
        }
    if args.layout:
        opt_python, task = lay_out(layer.path, code.path, args.layout)
        report["layout"] = {"opt_python": str(opt_python), "var_task": str(task)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
