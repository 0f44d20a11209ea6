"""What the dynamic providers need from the Pulumi engine, shared so each says it once."""

from __future__ import annotations

import contextlib
from typing import Any

import pulumi


def log_progress(message: str) -> None:
    """Progress for the Pulumi CLI; under a direct call (tests) there may be no engine to talk to."""
    with contextlib.suppress(Exception):  # logging must never fail a deployment
        pulumi.log.info(message)


def is_unknown(value: Any) -> bool:
    """True for a value Pulumi does not know yet (a preview before the resource it comes from exists)."""
    from pulumi.runtime import rpc

    return value is None or value == rpc.UNKNOWN
