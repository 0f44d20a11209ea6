"""What the runbook and the drill share: a Step Functions state machine with a role of its own, the
roles that may start it, and the naming of the AWS actions its tasks call.

Both state machines are Standard workflows: each execution runs exactly once (a page or a drill is
never duplicated by a retried start), keeps its full history for 90 days (the record of an incident or
a drill, with no logging to set up), and may wait for minutes (the drill watches Route 53 for about
five). Express workflows are cheaper per step, at-least-once when started asynchronously, capped at
five minutes and keep no history without CloudWatch Logs; at a handful of executions a week the price
difference is nil.

Tasks call AWS through SDK service integrations (``arn:aws:states:::aws-sdk:<service>:<apiAction>``)
and the optimized SNS integration (``arn:aws:states:::sns:publish``): no Lambda to build, patch or
monitor. The IAM action a task needs is derived from its Resource: ``aws-sdk:route53:updateHealthCheck``
is ``route53:UpdateHealthCheck``; the tests check every task's action against its role's policy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

SNS_PUBLISH = "arn:aws:states:::sns:publish"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# SNS Publish: a Subject "must be less than 100 characters long" (SNS API reference, Publish).
SNS_SUBJECT_MAX = 99
# Retry a task's throttling and transient service errors, never for long: a runbook that waits minutes
# to page is a runbook that failed.
RETRY_TRANSIENT: list[dict[str, Any]] = [
    {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}
]


def sdk_task(service: str, api_action: str) -> str:
    """The Resource of an AWS SDK integration task, e.g. sdk_task("route53", "TestDNSAnswer")."""
    return f"arn:aws:states:::aws-sdk:{service}:{api_action[0].lower()}{api_action[1:]}"


def sns_subject(expression: str) -> str:
    """JSONata for an SNS Subject from a string expression, cut to what SNS accepts."""
    return f"{{% $substring({expression}, 0, {SNS_SUBJECT_MAX}) %}}"


def iam_action(resource: str) -> str:
    """The IAM action a Task's Resource calls: aws-sdk:route53:testDNSAnswer -> route53:TestDNSAnswer,
    sns:publish -> sns:Publish."""
    if resource == SNS_PUBLISH:
        return "sns:Publish"
    if resource == LAMBDA_INVOKE:
        return "lambda:InvokeFunction"
    prefix = "arn:aws:states:::aws-sdk:"
    if not resource.startswith(prefix):
        raise ValueError(f"{resource!r} is not an AWS SDK integration or sns:publish")
    service, action = resource.removeprefix(prefix).split(".", 1)[0].split(":")
    return f"{service}:{action[0].upper()}{action[1:]}"


def arn_part(arn: str, index: int) -> str:
    """Part ``index`` of an ARN (1 partition, 3 region, 4 account)."""
    return arn.split(":")[index]


def health_check_arn(partition: str, health_check_id: str) -> str:
    """Route 53 health checks are global: no region, no account in their ARN."""
    return f"arn:{partition}:route53:::healthcheck/{health_check_id}"


def console(region: str, fragment: str, service: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{service}/home?region={region}#{fragment}"


def trust_policy(service: str, account_id: str, source_arn: str | None = None) -> str:
    """A role only ``service`` may assume, on behalf of this account (and of source_arn when given), so
    that no other account's rule, schedule or state machine can borrow it (the confused deputy)."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn is not None:
        condition["ArnEquals"] = {"aws:SourceArn": source_arn}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                    "Condition": condition,
                }
            ],
        }
    )


def start_execution_policy(state_machine_arn: str) -> str:
    """The only permission of an EventBridge rule's or a schedule's role: start this one state machine."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "states:StartExecution", "Resource": state_machine_arn}
            ],
        }
    )


def account_id(opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The deploying account's id, asked through the component's provider."""
    return aws.get_caller_identity_output(
        opts=pulumi.InvokeOptions(parent=opts.parent, provider=opts.provider)
    ).account_id


class StateMachineWithRole:
    """A Standard state machine and the role it runs as, whose only policy is ``policy``."""

    def __init__(
        self,
        resource_name: str,
        *,
        machine_name: str,
        description: str,
        definition: pulumi.Output[str],
        policy: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        self.role = aws.iam.Role(
            f"{resource_name}-role",
            description=description,
            assume_role_policy=account_id(opts).apply(
                lambda account: trust_policy("states.amazonaws.com", account)
            ),
            opts=opts,
        )
        self.role_policy = aws.iam.RolePolicy(
            f"{resource_name}-policy", role=self.role.id, policy=policy, opts=opts
        )
        self.state_machine = aws.sfn.StateMachine(
            resource_name,
            name=machine_name,
            type="STANDARD",
            role_arn=self.role.arn,
            definition=definition,
            # Never runnable without the permissions its tasks need.
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.role_policy])),
        )


def invoker_role(
    resource_name: str,
    *,
    service: str,
    description: str,
    state_machine_arn: pulumi.Output[str],
    source_arn: pulumi.Input[str] | None,
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """The role EventBridge or Scheduler assumes to start one state machine, and nothing else; and its
    policy, which whatever uses the role waits for."""
    trust = pulumi.Output.all(account_id(opts), source_arn).apply(
        lambda values: trust_policy(service, values[0], values[1])
    )
    role = aws.iam.Role(resource_name, description=description, assume_role_policy=trust, opts=opts)
    policy = aws.iam.RolePolicy(
        f"{resource_name}-policy",
        role=role.id,
        policy=state_machine_arn.apply(start_execution_policy),
        opts=opts,
    )
    return role, policy


def policy_document(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
