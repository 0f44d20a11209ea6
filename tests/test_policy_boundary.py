"""The policy pack's permissions-boundary invariant: over the whole program with every option on (the
boundary set: passes), with one role stripped of it or given another (refused), and with the pack's
``permissionsBoundaryArn`` config requiring an ARN the stack does not carry (refused)."""

from __future__ import annotations

import copy

import pytest
from pulumi_policy import StackValidationArgs

from policy.invariants import POLICIES
from policy.invariants.boundary import ROLE, ROLES_CARRY_BOUNDARY
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ProgramRun, run_program
from tests.test_permissions_boundary import BOUNDARY, EVERY_OPTION
from tests.test_policy_pack import program_stack, violations


@pytest.fixture(scope="module")
def bounded() -> ProgramRun:
    return run_ops_program(EVERY_OPTION)


def check(run: ProgramRun, config: dict[str, str] | None = None) -> list[str]:
    return violations(ROLES_CARRY_BOUNDARY, StackValidationArgs(program_stack(run), config))


def test_the_policy_is_in_the_pack() -> None:
    assert ROLES_CARRY_BOUNDARY in POLICIES


def test_the_program_with_the_boundary_passes_with_and_without_the_config(bounded: ProgramRun) -> None:
    assert len(bounded.of_type(ROLE)) >= 5
    assert check(bounded) == []
    assert check(bounded, {"permissionsBoundaryArn": BOUNDARY}) == []


def test_the_program_without_a_boundary_passes_unless_one_is_required() -> None:
    plain = run_program()
    assert check(plain) == []
    refused = check(plain, {"permissionsBoundaryArn": BOUNDARY})
    assert len(refused) == len(plain.of_type(ROLE)) and all(
        "has no permissions boundary" in m for m in refused
    )


def test_a_role_that_escaped_or_names_another_boundary_is_refused(bounded: ProgramRun) -> None:
    run = copy.deepcopy(bounded)
    escaped, other = run.of_type(ROLE)[:2]
    del escaped.outputs["permissionsBoundary"]
    other.outputs["permissionsBoundary"] = "arn:aws:iam::123456789012:policy/wide-open"
    found = check(run)
    assert len(found) == 2
    assert f"IAM role '{escaped.name}' has no permissions boundary" in found[0]
    assert "the permissions boundary arn:aws:iam::123456789012:policy/wide-open" in found[1]
    assert all(BOUNDARY in message and "permissionsBoundaryArn" in message for message in found)
