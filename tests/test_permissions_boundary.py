"""permissionsBoundaryArn: every IAM role of the whole program, with every optional part on, carries the
boundary; without the key no role carries one; a role naming another boundary is refused."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from components.boundary import ROLE_TYPE, BoundaryConflict, register_boundary
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import run_program
from tests.test_deployer_policy_ops import EVERYTHING

BOUNDARY = "arn:aws:iam::123456789012:policy/dsql-users-api/dsql-users-api-boundary"
EVERY_OPTION = {
    **EVERYTHING,
    "smokeAfterDeploy": True,
    "lambdaSnapStart": True,
    "xrayTracing": True,
    "permissionsBoundaryArn": BOUNDARY,
}


def test_every_role_of_the_whole_program_carries_the_boundary() -> None:
    run = run_ops_program(EVERY_OPTION)
    roles = run.of_type(ROLE_TYPE)
    # The function roles of both regions, the API Gateway logging roles, the drill's state machine,
    # rule and schedule roles: a role added anywhere later is covered by the same transformation.
    assert len(roles) >= 5, [role.name for role in roles]
    assert {role.name: role.inputs.get("permissionsBoundary") for role in roles} == {
        role.name: BOUNDARY for role in roles
    }


def test_without_the_key_no_role_carries_a_boundary() -> None:
    roles = run_program().of_type(ROLE_TYPE)
    assert roles and all("permissionsBoundary" not in role.inputs for role in roles)


def test_a_role_naming_another_boundary_is_refused() -> None:
    def program() -> None:
        register_boundary(BOUNDARY)
        aws.iam.Role(
            "stray",
            assume_role_policy="{}",
            permissions_boundary="arn:aws:iam::123456789012:policy/other",
            opts=pulumi.ResourceOptions(),
        )

    with pytest.raises(Exception, match="sets its own permissions boundary"):
        run_program(program=program)
    assert issubclass(BoundaryConflict, ValueError)
