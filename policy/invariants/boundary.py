"""Every IAM role of the stack carries the permissions boundary, and the same one.

The bootstrap project (bootstrap/) creates the boundary and a deployer role that may create roles only
with it; the app stack puts it on every role when ``permissionsBoundaryArn`` is set. This policy holds
the invariant from the other side: a stack where some roles carry a boundary and one does not (a role
that escaped), or where two boundaries differ, is refused. With this policy's ``permissionsBoundaryArn``
config set (the same value as the stack's), every role must carry exactly that ARN; without it, a stack
whose roles carry no boundary at all passes (a stack not deployed through the bootstrap's deployer).
"""

from __future__ import annotations

from collections import Counter

from pulumi_policy import PolicyConfigSchema, ReportViolation, StackValidationArgs, StackValidationPolicy

ROLE = "aws:iam/role:Role"
BOUNDARY_CONFIG = "permissionsBoundaryArn"
FIX = "set `pulumi config set permissionsBoundaryArn <bootstrap output permissionsBoundaryArn>`, which puts it on every role"


def check_roles_carry_boundary(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    roles = [resource for resource in args.resources if resource.resource_type == ROLE]
    required = args.get_config().get(BOUNDARY_CONFIG) or None
    carried = {role.name: role.props.get("permissionsBoundary") or None for role in roles}
    # Without the config, the boundary most roles carry is the stack's; the odd ones out are reported.
    common = Counter(arn for arn in carried.values() if arn).most_common(1)
    expected = required or (common[0][0] if common else None)
    if expected is None:
        return  # no boundary anywhere, and none required
    for role in roles:
        boundary = carried[role.name]
        if boundary != expected:
            what = "no permissions boundary" if boundary is None else f"the permissions boundary {boundary}"
            report_violation(
                f"IAM role '{role.name}' has {what}, but the stack's roles must carry {expected}: {FIX}",
                role.urn,
            )


ROLES_CARRY_BOUNDARY = StackValidationPolicy(
    name="iam-roles-carry-permissions-boundary",
    description=(
        "Every IAM role carries the same permissions boundary (the configured one when set): no role of "
        "the stack escapes the bootstrap's boundary."
    ),
    validate=check_roles_carry_boundary,
    config_schema=PolicyConfigSchema(
        properties={
            BOUNDARY_CONFIG: {
                "type": "string",
                "default": "",
                "description": "The boundary every role must carry (the stack's permissionsBoundaryArn).",
            }
        }
    ),
    remediation_steps=(
        "Set the stack's permissionsBoundaryArn to the bootstrap's output; never set permissions_boundary on "
        "a role by hand."
    ),
)
