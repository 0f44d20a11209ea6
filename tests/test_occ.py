"""The one retry helper for DSQL's optimistic-concurrency conflicts (runner and IAM grants share it)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from migrations import occ
from migrations.occ import is_occ_conflict, retry_occ_conflicts


class Scripted:
    """An action that raises the given errors in turn, then returns ``"done"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def conflict() -> errors.SerializationFailure:
    return errors.SerializationFailure("change conflicts with another transaction, please retry: (OC000)")


def test_conflicts_are_retried_until_the_action_succeeds() -> None:
    waits: list[float] = []
    logged: list[str] = []
    action = Scripted(conflict(), conflict())

    assert retry_occ_conflicts(action, "granting", log=logged.append, sleep=waits.append) == "done"

    assert action.calls == 3
    assert len(waits) == 2
    assert logged[0].startswith("granting: optimistic-concurrency conflict (40001), retry 1")


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    waits: list[float] = []
    action = Scripted(*[conflict() for _ in range(occ.ATTEMPTS - 1)])
    retry_occ_conflicts(action, "x", sleep=waits.append)
    for attempt, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(occ.MAX_DELAY_SECONDS, occ.BASE_DELAY_SECONDS * 2**attempt)


def test_attempts_are_bounded_and_the_last_conflict_is_raised() -> None:
    waits: list[float] = []
    action = Scripted(*[conflict() for _ in range(100)])
    with pytest.raises(errors.SerializationFailure):
        retry_occ_conflicts(action, "x", attempts=4, sleep=waits.append)
    assert action.calls == 4
    assert len(waits) == 3


@pytest.mark.parametrize(
    "error", [errors.UndefinedTable("no table"), errors.InsufficientPrivilege("denied"), ValueError("bug")]
)
def test_anything_but_a_conflict_is_raised_at_once(error: BaseException) -> None:
    action = Scripted(error)
    with pytest.raises(type(error)):
        retry_occ_conflicts(action, "x", sleep=lambda _: pytest.fail("must not wait"))
    assert action.calls == 1


def test_dsql_codes_count_as_conflicts() -> None:
    assert is_occ_conflict(conflict())
    assert not is_occ_conflict(psycopg.OperationalError("connection lost"))
    assert not is_occ_conflict(RuntimeError("40001"))


def test_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retry_occ_conflicts(lambda: None, "x", attempts=0)
