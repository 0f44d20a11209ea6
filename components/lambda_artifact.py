"""The Lambda function's two artifacts: the dependency layer and the function code, built by the program.

Both zips are built in-process while the program runs (preview and up alike) by
``scripts/build_artifacts.py``: the layer from the Lambda lock (``handler/requirements.txt``, exact
versions with hashes) and the code from ``handler/``, each with bytecode compiled by the runtime's own
Python. A zip is named after a digest of what it is built from and reused while that digest holds, so a
run with nothing changed costs a sha256 of two files, and a fresh checkout of a deployed stack rebuilds
the same bytes with no manual step: the same ``source_code_hash``, no diff on layers or functions.

The archives name their zips by paths relative to the project directory (where the Pulumi CLI runs the
program), so the registered inputs are the same from any checkout path. One ``LambdaArtifacts`` serves
every region: one build, each region uploads its own ``LayerVersion`` and function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pulumi
from pulumi import ResourceOptions

from components.config import PROJECT
from scripts.build_artifacts import (
    BUILD_DIR,
    HANDLER_DIR,
    LAMBDA_LOCK,
    ROOT,
    Artifact,
    build_function_code,
    build_layer,
    find_runtime_python,
    lock_digest,
    python_version_of,
)

HANDLER_ENTRY_POINT = "handler.app.lambda_handler"


def _project_relative(artifact: Artifact) -> str:
    return os.path.relpath(artifact.path, ROOT)


@dataclass(frozen=True)
class LambdaArtifactsArgs:
    """What to build the function's code and dependency layer for."""

    architecture: str
    """Lambda instruction set (``arm64`` or ``x86_64``): the layer's wheels are installed for it."""
    runtime: str
    """Lambda runtime (``python3.13``): wheels and bytecode are made for its Python version."""


class LambdaArtifacts(pulumi.ComponentResource):
    """The layer zip and the code zip, built (or reused) for one architecture and runtime.

    What is built comes from the class attributes below: a function with its own sources and lock (the
    drill's probe, ``components/probe_artifact.py``) is a subclass that names them.
    """

    TYPE: ClassVar[str] = f"{PROJECT}:lambda:LambdaArtifacts"
    SOURCE_DIR: ClassVar[Path] = HANDLER_DIR
    """The function's package: zipped as ``<dir name>/...`` under ``/var/task``."""
    LOCK: ClassVar[Path] = LAMBDA_LOCK
    """The layer's lock (exact versions with hashes)."""
    ENTRY_POINT: ClassVar[str] = HANDLER_ENTRY_POINT
    OUT_DIR: ClassVar[Path] = BUILD_DIR
    """Where the zips are cached."""

    layer_archive: pulumi.FileArchive
    """The layer zip (``python/...``, mounted as ``/opt/python``)."""
    layer_hash: str
    """base64 sha256 of the layer zip (Lambda's ``source_code_hash``)."""
    layer_description: str
    """Names the lock and its digest: what the layer holds, readable in the Lambda console."""
    code: pulumi.FileArchive
    """The function code zip (``handler/...``, under ``/var/task``)."""
    code_hash: str
    """base64 sha256 of the code zip (the function's ``source_code_hash``)."""
    architecture: str
    runtime: str
    entry_point: str
    """The function's ``handler`` setting (``module.function``)."""

    def __init__(self, name: str, args: LambdaArtifactsArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self.architecture = args.architecture
        self.runtime = args.runtime
        self.entry_point = self.ENTRY_POINT
        version = python_version_of(args.runtime)
        python = find_runtime_python(version)
        layer = build_layer(self.LOCK, args.architecture, version, self.OUT_DIR, python=python)
        code = build_function_code(self.SOURCE_DIR, version, self.OUT_DIR, python=python)
        for kind, artifact in (("layer", layer), ("function code", code)):
            if artifact.built:
                pulumi.log.info(f"built the {kind} {_project_relative(artifact)}", resource=self)

        self.layer_archive = pulumi.FileArchive(_project_relative(layer))
        self.layer_hash = layer.sha256_b64
        # From the lock alone (not the build's full key): the same text on every deploying machine.
        lock = os.path.relpath(self.LOCK, ROOT)
        self.layer_description = (
            f"{lock} sha256:{lock_digest(self.LOCK)[:16]} for {args.architecture} {args.runtime}"
        )
        self.code = pulumi.FileArchive(_project_relative(code))
        self.code_hash = code.sha256_b64
        self.register_outputs(
            {
                "layer_hash": self.layer_hash,
                "layer_zip": _project_relative(layer),
                "code_hash": self.code_hash,
                "code_zip": _project_relative(code),
                "architecture": self.architecture,
                "runtime": self.runtime,
            }
        )
