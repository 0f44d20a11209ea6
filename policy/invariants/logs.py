"""Every CloudWatch log group the stack declares expires its events.

Without ``retentionInDays`` CloudWatch keeps events forever: storage grows without bound and request
logs (IP addresses, user agents) outlive any reason to keep them.
"""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def check_log_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOG_GROUP:
        return
    days = args.props.get("retentionInDays")
    # The engine hands numbers over as floats (30.0); a bool is not a number of days.
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        report_violation(
            f"Log group '{args.name}' keeps its events forever (retentionInDays={days!r}); set "
            "retention_in_days to a CloudWatch Logs retention period such as 30 (this project: "
            "`pulumi config set logRetentionDays 30`)",
            None,
        )


LOG_RETENTION = ResourceValidationPolicy(
    name="log-groups-expire",
    description="Every CloudWatch log group sets retentionInDays (a positive number of days).",
    validate=check_log_retention,
    remediation_steps="Set retention_in_days on the aws.cloudwatch.LogGroup.",
)
