"""Test-only startup hook for the dynamic-provider server that tests/test_engine_protocol.py starts.

Python imports ``sitecustomize`` at startup from any folder on PYTHONPATH; the engine-protocol tests
put this folder there, and only there. The server itself is started exactly as the engine starts it
(``python -m pulumi.dynamic`` with the project root as working directory) and loads the providers the
engine's way (dill, from ``__provider``). This hook only waits for two of the providers' modules to be
imported and then, inside that server process:

- routes ``components.dynamic.dsql_admin.admin_connection`` to the test PostgreSQL named by
  ``DSQL_TEST_DATABASE_URL``, through the DSQL-dialect stand-in (tests/dsql_on_postgres.py); the real
  function still runs and signs a real IAM token for the real endpoint;
- records every AWS call (``aws_session.base_session``), every IAM token (``admin_token``), every
  admin connection and every SQL statement as JSON lines in ``DSQL_TEST_RECORD_FILE``.

Production code has no switch for any of this; without the environment variables the hook does nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

DATABASE_URL = os.environ.get("DSQL_TEST_DATABASE_URL")
RECORD_FILE = os.environ.get("DSQL_TEST_RECORD_FILE")
_write_lock = threading.Lock()


def _record(event: dict[str, Any]) -> None:
    if RECORD_FILE:
        with _write_lock, open(RECORD_FILE, "a", encoding="utf-8") as file:
            file.write(json.dumps(event) + "\n")


def _patch_aws_session(module: ModuleType) -> None:
    from tests.aws_calls import CallLog, record_sessions

    log = CallLog(on_call=lambda call: _record({"kind": "aws", **call.as_json()}))
    module.base_session = record_sessions(module.base_session, log)  # type: ignore[attr-defined]


def _patch_dsql_admin(module: ModuleType) -> None:
    from tests.aws_calls import CallLog, record_tokens
    from tests.dsql_on_postgres import Recorder, route_admin_connections

    log = CallLog(on_call=lambda call: _record({"kind": "aws", **call.as_json()}))
    module.admin_token = record_tokens(module.admin_token, log)  # type: ignore[attr-defined]
    if DATABASE_URL:
        recorder = Recorder(listener=_record)
        module.admin_connection = route_admin_connections(  # type: ignore[attr-defined]
            module.admin_connection,  # type: ignore[attr-defined]
            DATABASE_URL,
            recorder,
        )


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "components.dynamic.aws_session": _patch_aws_session,
    "components.dynamic.dsql_admin": _patch_dsql_admin,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules above with the normal path finder and patches each right after it runs."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run_module = loader.exec_module

        def exec_then_patch(module: ModuleType) -> None:
            run_module(module)
            patch(module)

        loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


if RECORD_FILE or DATABASE_URL:
    sys.meta_path.insert(0, _PatchAfterImport())
