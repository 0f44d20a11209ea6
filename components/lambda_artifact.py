"""The Lambda function's two artifacts: the handler code and the dependency layer.

Code: the files of ``handler/`` (no tests, caches or build inputs), laid out as ``handler/...`` so that
``handler.app.lambda_handler`` imports from ``/var/task``. It is handed to Lambda as an
``AssetArchive`` of the files themselves, so reading it has no side effect at preview.

Layer: built by ``scripts/build_layer.py`` under a pulumi-command ``local.Command`` whose triggers are
the sha256 of ``handler/requirements.txt`` and of the build script, the architecture and the Python
version: the build runs on the first ``pulumi up`` and again only when one of those changes. The zip is
written to ``build/layers/<architecture>-py<version>-<fingerprint>.zip`` (relative to the project
directory, where the Pulumi CLI runs the program and its providers), named by what it was built from.
One ``LambdaArtifacts`` serves every region: the build runs once, each region uploads its own
``LayerVersion``.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi import ResourceOptions
from pulumi_command import local

from components.config import LAMBDA_ARCHITECTURES, LAMBDA_RUNTIMES, PROJECT
from scripts.build_layer import write_deterministic_zip

ROOT = Path(__file__).resolve().parents[1]
HANDLER_DIR = ROOT / "handler"
REQUIREMENTS = HANDLER_DIR / "requirements.txt"
BUILD_SCRIPT = ROOT / "scripts" / "build_layer.py"
LAYER_DIR = "build/layers"  # relative to the project directory
HANDLER_ENTRY_POINT = "handler.app.lambda_handler"

# What never belongs in the function's code: byte-code, test suites, tool caches, build inputs.
_EXCLUDED_DIRS = frozenset({"__pycache__", "tests", "test", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EXCLUDED_NAMES = frozenset({"requirements.txt", "conftest.py", ".DS_Store"})


def python_version(runtime: str) -> str:
    """``python3.13`` -> ``3.13``: the CPython version the layer's wheels are built for."""
    if runtime not in LAMBDA_RUNTIMES:
        raise ValueError(f"unsupported Lambda runtime {runtime!r}; use one of {', '.join(LAMBDA_RUNTIMES)}")
    return runtime.removeprefix("python")


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
    """(archive name, file) of the function's code, sorted; archive names start with ``handler/``."""
    files = [
        (f"{handler_dir.name}/{path.relative_to(handler_dir).as_posix()}", path)
        for path in handler_dir.rglob("*")
        if path.is_file() and not _excluded(path.relative_to(handler_dir))
    ]
    if not any(name == f"{handler_dir.name}/app.py" for name, _ in files):
        raise FileNotFoundError(f"{handler_dir}/app.py is missing: it holds the Lambda entry point")
    return sorted(files)


def handler_archive(handler_dir: Path = HANDLER_DIR) -> pulumi.AssetArchive:
    """The function's code as Pulumi uploads it (the engine zips it; no file is written here)."""
    return pulumi.AssetArchive(
        {name: pulumi.FileAsset(str(path)) for name, path in handler_files(handler_dir)}
    )


def write_handler_zip(output: Path, handler_dir: Path = HANDLER_DIR) -> str:
    """The same code as a deterministic zip (for measuring and inspecting); returns its base64 sha256."""
    return write_deterministic_zip(handler_files(handler_dir), output)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def layer_triggers(
    architecture: str, runtime: str, requirements: Path = REQUIREMENTS, build_script: Path = BUILD_SCRIPT
) -> list[str]:
    """What the layer is built from; the build command runs again only when one of these changes.

    The build script's own hash is included because a change in how the layer is stripped or zipped
    changes the artifact as surely as a new requirement does.
    """
    if architecture not in LAMBDA_ARCHITECTURES:
        raise ValueError(
            f"unsupported Lambda architecture {architecture!r}; use one of {', '.join(LAMBDA_ARCHITECTURES)}"
        )
    return [
        f"requirements-sha256={_sha256(requirements)}",
        f"build-script-sha256={_sha256(build_script)}",
        f"architecture={architecture}",
        f"python={python_version(runtime)}",
    ]


def layer_zip_path(architecture: str, runtime: str, requirements: Path = REQUIREMENTS) -> str:
    """Where the build writes the layer zip, relative to the project directory."""
    fingerprint = hashlib.sha256("\n".join(layer_triggers(architecture, runtime, requirements)).encode())
    return f"{LAYER_DIR}/{architecture}-py{python_version(runtime)}-{fingerprint.hexdigest()[:16]}.zip"


def layer_build_command(architecture: str, runtime: str, output: str, python: str = "python3") -> str:
    """The shell command the ``local.Command`` runs (from the project directory)."""
    return shlex.join(
        [
            python,
            "scripts/build_layer.py",
            "--architecture",
            architecture,
            "--python-version",
            python_version(runtime),
            "--requirements",
            REQUIREMENTS.relative_to(ROOT).as_posix(),
            "--output",
            output,
        ]
    )


def last_line(text: str | None) -> str:
    """The build's last stdout line: the layer zip's base64 sha256."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass(frozen=True)
class LambdaArtifactsArgs:
    """What to build the function's code and dependency layer for."""

    architecture: str
    """Lambda instruction set (``arm64`` or ``x86_64``): pip fetches wheels for it."""
    runtime: str
    """Lambda runtime (``python3.13``): pip fetches wheels for its CPython version."""
    python: str = "python3"
    """Interpreter (with pip) that runs the build on the deploying machine; any 3.11+ will do."""


class LambdaArtifacts(pulumi.ComponentResource):
    """Builds the dependency layer zip once per stack and holds the handler code archive."""

    layer_archive: pulumi.Output[pulumi.Archive]
    """The layer zip, available once the build command has run."""
    layer_hash: pulumi.Output[str]
    """base64 sha256 of the layer zip (Lambda's ``source_code_hash``)."""
    layer_zip_path: str
    """Where the layer zip is written, relative to the project directory."""
    code: pulumi.AssetArchive
    """The handler code (``handler/...``)."""
    architecture: str
    runtime: str

    def __init__(self, name: str, args: LambdaArtifactsArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:lambda:LambdaArtifacts", name, None, opts)
        self.architecture = args.architecture
        self.runtime = args.runtime
        self.layer_zip_path = layer_zip_path(args.architecture, args.runtime)
        self.code = handler_archive()

        build = local.Command(
            f"{name}-layer-build",
            create=layer_build_command(args.architecture, args.runtime, self.layer_zip_path, args.python),
            triggers=layer_triggers(args.architecture, args.runtime),
            opts=ResourceOptions(parent=self),
        )
        zip_path = self.layer_zip_path
        # The archive is read only after the build has written it: deriving it from the command's
        # stdout carries the dependency on the build (an Output of a value, not a resource).
        self.layer_archive = build.stdout.apply(lambda _: pulumi.FileArchive(zip_path))
        self.layer_hash = build.stdout.apply(last_line)
        self.register_outputs(
            {
                "layer_hash": self.layer_hash,
                "layer_zip_path": self.layer_zip_path,
                "architecture": self.architecture,
                "runtime": self.runtime,
            }
        )
