"""Retry Aurora DSQL's optimistic-concurrency conflicts: one helper for the runner and the IAM grants.

DSQL checks conflicts at COMMIT and reports them as SQLSTATE 40001 (its codes OC000 for data, OC001
for a schema that changed underneath, e.g. two regions' ``AWS IAM GRANT`` or a migration running
while a grant changes the catalog). The transaction did not commit, so work that is one autocommit
statement, or a read, is safe to run again. Retries are bounded: exponential backoff with full jitter
so two deployments that collided do not collide again in step, capped per wait and in count; the last
conflict is raised as it is when every attempt lost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

OCC_SQLSTATES = frozenset({"40001", "OC000", "OC001"})
ATTEMPTS = 6  # the first try and five retries
BASE_DELAY_SECONDS = 0.05
MAX_DELAY_SECONDS = 2.0

T = TypeVar("T")


def is_occ_conflict(exc: BaseException) -> bool:
    """True for an optimistic-concurrency conflict (the transaction did not commit)."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate in OCC_SQLSTATES


def retry_occ_conflicts(
    action: Callable[[], T],
    what: str,
    *,
    attempts: int = ATTEMPTS,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``action``; on a conflict wait (backoff with jitter) and run it again, at most ``attempts`` times.

    ``action`` must be safe to repeat: one autocommit statement, a read, or a check-then-write whose
    check runs again. Any other error is raised at once.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except psycopg.Error as exc:
            if not is_occ_conflict(exc) or attempt == attempts:
                raise
            delay = random.uniform(0, min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt))
            if log is not None:
                log(
                    f"{what}: optimistic-concurrency conflict ({exc.sqlstate}), retry {attempt} in {delay:.2f} s"
                )
            (sleep or time.sleep)(delay)  # looked up at call time, so tests can stub time.sleep
    raise AssertionError("unreachable: the last attempt returns or raises")
