"""The failover drill's probe function: its dependency layer and code, built as the API function's are.

The same builder as ``components/lambda_artifact.py`` (bytecode by the runtime's own Python,
deterministic zips, reused while their inputs hold), from ``probe/`` and its own lock
(``probe/requirements.txt``: dnspython only), cached apart under ``build/lambda/probe/``. The drill's
state machine invokes the function made from these outputs (``code``, ``code_hash``, ``layer_archive``,
``layer_hash``, ``layer_description``, ``entry_point``), one per region that runs the drill.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from components.config import PROJECT
from components.lambda_artifact import LambdaArtifacts, LambdaArtifactsArgs
from scripts.build_artifacts import BUILD_DIR, ROOT

PROBE_DIR = ROOT / "probe"
PROBE_LOCK = PROBE_DIR / "requirements.txt"
PROBE_ENTRY_POINT = "probe.app.handler"
PROBE_BUILD_DIR = BUILD_DIR / "probe"

ProbeArtifactsArgs = LambdaArtifactsArgs
"""The probe's architecture and runtime (the drill uses the API function's)."""


class ProbeArtifacts(LambdaArtifacts):
    """The probe's layer zip (dnspython) and code zip (``probe/...``) for one architecture and runtime."""

    TYPE: ClassVar[str] = f"{PROJECT}:lambda:ProbeArtifacts"
    SOURCE_DIR: ClassVar[Path] = PROBE_DIR
    LOCK: ClassVar[Path] = PROBE_LOCK
    ENTRY_POINT: ClassVar[str] = PROBE_ENTRY_POINT
    OUT_DIR: ClassVar[Path] = PROBE_BUILD_DIR
