"""Every IAM role the stack creates carries the account's permissions boundary (``permissionsBoundaryArn``).

The boundary is a managed policy made once per account by the bootstrap project (``bootstrap/``): the
most any role of this project may ever do. The deployer role may create and change roles only with that
boundary (``iam:PermissionsBoundary`` condition), so a stack deployed by it must put the boundary on
every role, or AWS refuses the role.

One mechanism that cannot miss a role: a stack transformation (``pulumi.runtime.
register_stack_transformation``, public API), registered by ``__main__.py`` before the first resource.
It sees every resource of the stack, components' children included, and sets ``permissions_boundary`` on
each ``aws.iam.Role``, so a role added to any component later carries it too without an edit there.
"""

from __future__ import annotations

import pulumi

ROLE_TYPE = "aws:iam/role:Role"


class BoundaryConflict(ValueError):
    """A role names a permissions boundary other than the stack's."""


def boundary_transformation(boundary_arn: str) -> pulumi.ResourceTransformation:
    """A stack transformation putting ``boundary_arn`` on every ``aws.iam.Role``."""

    def carry_boundary(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != ROLE_TYPE:
            return None
        current = args.props.get("permissions_boundary")
        if current is not None and current != boundary_arn:
            raise BoundaryConflict(
                f"role {args.name} sets its own permissions boundary, but the stack's is {boundary_arn} "
                "(permissionsBoundaryArn): remove permissions_boundary from the role, the stack sets it"
            )
        return pulumi.ResourceTransformationResult(
            props={**args.props, "permissions_boundary": boundary_arn}, opts=args.opts
        )

    return carry_boundary


def register_boundary(boundary_arn: str | None) -> None:
    """Make every role of the stack carry ``boundary_arn``; nothing when it is None (no boundary)."""
    if boundary_arn:
        pulumi.runtime.register_stack_transformation(boundary_transformation(boundary_arn))
