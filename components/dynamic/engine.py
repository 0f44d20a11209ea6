"""What the dynamic providers need from the Pulumi engine, shared so each says it once.

Unknowns: in a preview the engine sends a value it does not know yet as a sentinel string, and the
SDK's dynamic-provider server (``python -m pulumi.dynamic``) deserializes Check and Diff requests with
unknowns kept, so a provider receives ``pulumi.output.Unknown`` instances, at the top level or nested
in lists and dicts. Create, Update, Read and Delete never see one. Direct calls (unit tests, the
program's own code) may pass the sentinel string itself; both count as unknown here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc


def log_progress(message: str) -> None:
    """Progress for the Pulumi CLI; under a direct call (tests) there may be no engine to talk to."""
    with contextlib.suppress(Exception):  # logging must never fail a deployment
        pulumi.log.info(message)


def is_unknown(value: Any) -> bool:
    """True for a value the engine does not know yet (preview): an ``Unknown`` or the sentinel string.

    ``None`` is not unknown: it is a missing value, which Check must reject where a value is required.
    """
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def contains_unknown(value: Any) -> bool:
    """True when ``value`` is unknown or holds an unknown anywhere inside its lists and dicts."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(item) for item in value)
    return False


def changed_keys(olds: Mapping[str, Any], news: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """The ``keys`` whose new value may differ from the old one.

    A new value that is (or holds) an unknown may turn out different, so it counts as changed; a known
    value counts only when it really differs. Known equal values never plan an update or a replacement.
    """
    return [key for key in keys if contains_unknown(news.get(key)) or olds.get(key) != news.get(key)]
