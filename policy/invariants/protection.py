"""Deletion protection on the stateful resources: the DSQL clusters (every user row) and the user pool
(every identity; deleting it orphans every row's owner).

Deleting either is irreversible, so turning protection off must be a reviewed change. A dev stack that
turns it off on purpose (``deletionProtection: false``) runs the pack with ``policy/config/dev.json``,
which sets this policy to advisory there: the warning still shows, the preview is not blocked.
"""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

DSQL_CLUSTER = "aws:dsql/cluster:Cluster"
USER_POOL = "aws:cognito/userPool:UserPool"
DEV_STACKS = "a dev stack that turns it off on purpose runs the pack with policy/config/dev.json (advisory)"


def check_deletion_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == DSQL_CLUSTER:
        enabled = args.props.get("deletionProtectionEnabled")
        if enabled is not True:
            report_violation(
                f"DSQL cluster '{args.name}' has deletion protection off (deletionProtectionEnabled="
                f"{enabled!r}); set deletion_protection_enabled=True (this project: `pulumi config set "
                f"deletionProtection true`); {DEV_STACKS}",
                None,
            )
        if args.props.get("forceDestroy") is True:
            report_violation(
                f"DSQL cluster '{args.name}' sets forceDestroy, which lets `pulumi destroy` delete it "
                "despite deletion protection; remove force_destroy (turn protection off in a reviewed "
                "change before a destroy instead)",
                None,
            )
    elif args.resource_type == USER_POOL:
        protection = args.props.get("deletionProtection")
        if protection != "ACTIVE":
            report_violation(
                f"Cognito user pool '{args.name}' has deletion protection {protection or 'unset'} "
                '(Cognito\'s default is INACTIVE); set deletion_protection="ACTIVE" (this project: '
                f"`pulumi config set deletionProtection true`); {DEV_STACKS}",
                None,
            )


DELETION_PROTECTION = ResourceValidationPolicy(
    name="deletion-protection-on",
    description=(
        "DSQL clusters have deletion protection enabled (and no forceDestroy); the Cognito user pool has "
        "deletion protection ACTIVE."
    ),
    validate=check_deletion_protection,
    remediation_steps=(
        "Set deletionProtection true in the stack config. Dev stacks that disable it on purpose use "
        "--policy-pack-config policy/config/dev.json, which makes this policy advisory."
    ),
)
