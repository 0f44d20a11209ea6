"""Build the Lambda dependency layer: binary wheels for Lambda's platform, zipped deterministically.

    python3 scripts/build_layer.py --architecture arm64 --python-version 3.13 \
        --requirements handler/requirements.txt --output build/layers/deps.zip

This is what the pulumi-command ``local.Command`` of ``components.lambda_artifact`` runs; it needs only
the standard library and pip, so any Python 3.11+ with pip can build a layer for any Lambda Python
version and architecture: pip is asked for wheels of the target platform (``--platform``,
``--python-version``, ``--implementation cp``, ``--only-binary=:all:``), never for this machine's.

The layer is laid out as Lambda expects (``python/`` at the root, mounted as ``/opt/python``), stripped
of byte-code caches, test suites and console scripts, and of the botocore service models the function
never loads (it only signs DSQL auth tokens). botocore is kept rather than left to the runtime's copy
because the DSQL token signer needs a recent botocore and the runtime's bundled SDK lags behind; the
layer's copy shadows it (``/opt/python`` precedes the runtime's own path). The zip is deterministic
(sorted entries, fixed timestamps and permissions), so the same resolved wheels give the same bytes and
the same hash. The last line printed is the zip's base64 sha256, the form Lambda's
``source_code_hash`` uses.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

PIP_PLATFORMS = {
    # Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux2014 (glibc 2.17)
    # and manylinux_2_28 wheels both load there.
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
}
# botocore service models the function needs: dsql (auth token signer) and sts (credential refresh).
BOTOCORE_SERVICES = ("dsql", "sts")
STRIP_DIRS = frozenset({"__pycache__", "tests", "test"})
STRIP_SUFFIXES = (".pyc", ".pyo")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def pip_install_command(
    requirements: Path, target: Path, architecture: str, python_version: str, python: str = sys.executable
) -> list[str]:
    """The pip command that fetches wheels for Lambda's platform into ``target``."""
    if architecture not in PIP_PLATFORMS:
        raise SystemExit(
            f"unknown architecture {architecture!r}; use one of {', '.join(sorted(PIP_PLATFORMS))}"
        )
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-compile"]
    for platform in PIP_PLATFORMS[architecture]:
        command += ["--platform", platform]
    command += [
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    return command


def strip_tree(root: Path, botocore_services: Iterable[str] = BOTOCORE_SERVICES) -> None:
    """Remove what never runs on Lambda: caches, test suites, scripts, unused botocore models."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and (path.name in STRIP_DIRS or path == root / "bin"):
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in STRIP_SUFFIXES:
            path.unlink()
    keep = set(botocore_services)
    data = root / "botocore" / "data"
    if data.is_dir():
        for entry in data.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry)


def zip_entries(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(archive name, file) for every file under ``root``, sorted, with ``prefix`` prepended."""
    return sorted(
        (prefix + path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file()
    )


def write_deterministic_zip(entries: Iterable[tuple[str, Path]], output: Path) -> str:
    """Zip ``entries`` with fixed timestamps and modes; return the zip's base64 sha256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            executable = os.access(path, os.X_OK) and path.suffix != ".py"
            info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    os.replace(partial, output)  # never leave a half-written zip where the layer expects one
    return base64.b64encode(hashlib.sha256(output.read_bytes()).digest()).decode()


def build_layer(
    requirements: Path,
    output: Path,
    architecture: str,
    python_version: str,
    workdir: Path | None = None,
) -> str:
    """Install, strip and zip the layer; return the zip's base64 sha256."""
    with tempfile.TemporaryDirectory(prefix="layer-", dir=workdir) as scratch:
        site = Path(scratch) / "python"
        command = pip_install_command(requirements, site, architecture, python_version)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(
                f"pip could not fetch wheels for {architecture} / CPython {python_version}:\n"
                f"{result.stderr.strip()}\nEvery requirement needs a binary wheel for that platform "
                "(psycopg[binary], not psycopg[c])."
            )
        strip_tree(site)
        return write_deterministic_zip(zip_entries(site, prefix="python/"), output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", required=True, choices=sorted(PIP_PLATFORMS))
    parser.add_argument("--python-version", required=True, help="target CPython, e.g. 3.13")
    parser.add_argument("--requirements", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    digest = build_layer(args.requirements, args.output, args.architecture, args.python_version)
    size = args.output.stat().st_size
    print(f"built {args.output} ({size} bytes) for {args.architecture} CPython {args.python_version}")
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
