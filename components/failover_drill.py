"""The failover drill: take one region out of Route 53 on purpose, prove the other region alone is
answered, put it back, prove both are answered again, and report to SNS.

A Standard state machine (components/step_functions.py says why) in the primary region, started by hand
(``aws stepfunctions start-execution --input '{"region": "us-east-2"}'``) or by an EventBridge Scheduler
schedule (config ``drillSchedule``, off by default) that drills the secondary region:

1. PickRegion: the input's region selects that region's health check; an unknown region fails before
   anything changes.
2. CheckBaseline: Route 53 TestDNSAnswer on the "regions" record (a multivalue TXT record per region
   behind the same health checks as the latency records; components/global_routing.py) must answer
   with every region. Otherwise the drill refuses: never take a region down while another is down, nor
   while another drill runs.
3. Drill, one Parallel branch whose Catch covers every state in it: UpdateHealthCheck Inverted=true (the
   region's healthy endpoint now counts as failed: a simulated outage that touches no application
   resource), then poll TestDNSAnswer until Route 53 answers with the other regions only, or give up.
4. Restore: UpdateHealthCheck Inverted=false, on success AND on every failure of step 3, with retries;
   then poll until every region is answered again.
5. Report: sns:Publish to the primary region's alarm topic, with the time to fail over and to come back.
   A restore that fails after its retries is reported as such, with the command that finishes it.

Every Task after the inversion has a Catch (the tests walk the graph to prove no path from the
inversion reaches an end without a restore). The role allows exactly route53:UpdateHealthCheck on the
stack's own health checks, route53:TestDNSAnswer (IAM has no resource type for it, so "*"), and
sns:Publish on the topic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.naming import SCHEDULE_NAME_MAX, stack_name
from components.step_functions import (
    RETRY_TRANSIENT,
    SNS_PUBLISH,
    StateMachineWithRole,
    arn_part,
    health_check_arn,
    invoker_role,
    policy_document,
    sdk_task,
    sns_subject,
)

UPDATE_HEALTH_CHECK = sdk_task("route53", "UpdateHealthCheck")
TEST_DNS_ANSWER = sdk_task("route53", "TestDNSAnswer")
# A restore must not give up quickly: a region left out of DNS is an outage of the drill's making.
RETRY_RESTORE: list[dict[str, Any]] = [
    {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 6, "BackoffRate": 2.0}
]
CATCH_ALL = ["States.ALL"]


@dataclass(frozen=True)
class DrillTiming:
    """How the drill waits for Route 53: poll every health check interval, for at most three times the
    time Route 53 needs to count a region as failed (interval x threshold), plus two minutes."""

    poll_seconds: int
    max_polls: int

    @classmethod
    def for_health_checks(cls, interval_seconds: int, failure_threshold: int) -> DrillTiming:
        budget = 3 * interval_seconds * failure_threshold + 120
        return cls(poll_seconds=interval_seconds, max_polls=math.ceil(budget / interval_seconds))


def _answer(expression: str) -> str:
    """JSONata: a TestDNSAnswer result as the sorted, comma-joined region names it answered with (TXT
    values may come back quoted)."""
    return (
        "{% $join($sort($map("
        + expression
        + ".RecordData, function($v) { $replace($v, '\"', '') })), ',') %}"
    )


def drill_definition(
    *,
    health_check_ids: Mapping[str, str],
    hosted_zone_id: str,
    regions_record_name: str,
    topic_arn: str,
    timing: DrillTiming,
) -> dict[str, Any]:
    """The drill's Amazon States Language definition (JSONata): pick, baseline, drill, restore, report."""
    regions = sorted(health_check_ids)
    ask = {"HostedZoneId": hosted_zone_id, "RecordName": regions_record_name, "RecordType": "TXT"}
    reports = _Reports(topic_arn)
    return {
        "Comment": "Failover drill: invert one region's health check, see Route 53 answer without it, restore",
        "QueryLanguage": "JSONata",
        "StartAt": "PickRegion",
        "States": {
            **_pick_region(health_check_ids),
            **_baseline(ask, regions, reports),
            **_drill(ask, timing),
            **_restore(ask, regions, timing, reports),
            **_outcomes(regions, reports),
        },
    }


class _Reports:
    """The drill's SNS reports (to the stack's alarm topic) and the restore task, shared by its steps."""

    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def report(self, subject: str, message: str, then: str) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Arguments": {
                "TopicArn": self.topic_arn,
                "Subject": sns_subject(f"'{subject} ' & $target"),
                "Message": "{% " + message + " & '\\nExecution: ' & $states.context.Execution.Id %}",
            },
            "Retry": RETRY_TRANSIENT,
            "Catch": [{"ErrorEquals": CATCH_ALL, "Next": "ReportNotSent"}],
            "Next": then,
        }

    @staticmethod
    def restore(then: str) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": UPDATE_HEALTH_CHECK,
            "Arguments": {"HealthCheckId": "{% $healthCheckId %}", "Inverted": False},
            "Retry": RETRY_RESTORE,
            "Assign": {"restoredAt": "{% $millis() %}", "restorePolls": 0},
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"restoreError": "{% $string($states.errorOutput) %}"},
                    "Next": "ReportRestoreFailed",
                }
            ],
            "Next": then,
        }


def _pick_region(health_check_ids: Mapping[str, str]) -> dict[str, Any]:
    """The input's region selects its health check; an unknown region fails before anything changes."""
    regions = sorted(health_check_ids)
    return {
        "PickRegion": {
            "Type": "Choice",
            "Choices": [
                {"Condition": f"{{% $states.input.region = '{region}' %}}", "Next": f"Target {region}"}
                for region in regions
            ],
            "Default": "UnknownRegion",
        },
        "UnknownRegion": {
            "Type": "Fail",
            "Error": "UnknownRegion",
            "Cause": f'The input\'s region must be one of {",".join(regions)}, e.g. {{"region": "{regions[-1]}"}}',
        },
        **{
            f"Target {region}": {
                "Type": "Pass",
                "Assign": {
                    "target": region,
                    "healthCheckId": health_check_id,
                    "others": ",".join(r for r in regions if r != region),
                    "drillError": "{% '' %}",  # a plain "" is ambiguous in the ASL schema
                    "restoreError": "{% '' %}",
                },
                "Next": "CheckBaseline",
            }
            for region, health_check_id in sorted(health_check_ids.items())
        },
    }


def _baseline(ask: Mapping[str, str], regions: list[str], reports: _Reports) -> dict[str, Any]:
    """Refuse unless every region is answered: never take a region down while another is down."""
    everyone = ",".join(regions)
    return {
        "CheckBaseline": {
            "Type": "Task",
            "Resource": TEST_DNS_ANSWER,
            "Arguments": dict(ask),
            "Retry": RETRY_TRANSIENT,
            "Assign": {"answered": _answer("$states.result")},
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"answered": "{% $string($states.errorOutput) %}"},
                    "Next": "ReportRefused",
                }
            ],
            "Next": "IsBaselineHealthy",
        },
        "IsBaselineHealthy": {
            "Type": "Choice",
            "Choices": [{"Condition": f"{{% $answered = '{everyone}' %}}", "Next": "Drill"}],
            "Default": "ReportRefused",
        },
        "ReportRefused": reports.report(
            "Failover drill refused for",
            f"'The failover drill of ' & $target & ' did not start: Route 53 answers ' & $answered & ' instead "
            f"of {everyone} (a region is already out, or another drill runs). Nothing was changed.'",
            "Refused",
        ),
        "Refused": {"Type": "Fail", "Error": "BaselineNotHealthy", "Cause": "Not every region was answered"},
    }


def _drill(ask: Mapping[str, str], timing: DrillTiming) -> dict[str, Any]:
    """Invert and watch, inside one Parallel state whose Catch restores on any failure."""
    return {
        "Drill": {
            "Type": "Parallel",
            "Branches": [_outage_branch(ask, timing)],
            "Output": "{% $states.result[0] %}",
            "Assign": {"failoverSeconds": "{% $states.result[0].failoverSeconds %}"},
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"drillError": "{% $string($states.errorOutput) %}"},
                    "Next": "RestoreAfterFailure",
                }
            ],
            "Next": "Restore",
        },
    }


def _restore(
    ask: Mapping[str, str], regions: list[str], timing: DrillTiming, reports: _Reports
) -> dict[str, Any]:
    """Restore the health check (also after a failed drill), then watch every region come back."""
    everyone = ",".join(regions)
    return {
        "Restore": reports.restore("WaitForRestore"),
        "WaitForRestore": {"Type": "Wait", "Seconds": timing.poll_seconds, "Next": "CheckRestore"},
        "CheckRestore": {
            "Type": "Task",
            "Resource": TEST_DNS_ANSWER,
            "Arguments": dict(ask),
            "Retry": RETRY_TRANSIENT,
            "Assign": {"answered": _answer("$states.result"), "restorePolls": "{% $restorePolls + 1 %}"},
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"answered": "{% $string($states.errorOutput) %}"},
                    "Next": "ReportRestoreNotSeen",
                }
            ],
            "Next": "IsRestored",
        },
        "IsRestored": {
            "Type": "Choice",
            "Choices": [
                {"Condition": f"{{% $answered = '{everyone}' %}}", "Next": "ReportSuccess"},
                {"Condition": f"{{% $restorePolls < {timing.max_polls} %}}", "Next": "WaitForRestore"},
            ],
            "Default": "ReportRestoreNotSeen",
        },
        "RestoreAfterFailure": reports.restore("ReportDrillFailed"),
    }


def _outcomes(regions: list[str], reports: _Reports) -> dict[str, Any]:
    """What the on-call reads, and the end state of each outcome."""
    return {
        "ReportSuccess": reports.report(
            "Failover drill passed for",
            "'Failover drill of ' & $target & ': Route 53 answered with ' & $others & ' only, '"
            " & $string($failoverSeconds) & ' s after the health check was inverted; every region was answered"
            " again ' & $string($round(($millis() - $restoredAt) / 1000)) & ' s after it was restored.'",
            "Passed",
        ),
        "Passed": {"Type": "Succeed"},
        "ReportRestoreNotSeen": reports.report(
            "Failover drill: restore not seen for",
            "'Failover drill of ' & $target & ': the health check was restored (Inverted=false), but Route 53"
            " still answers ' & $answered & '. Check the health check ' & $healthCheckId & ' in the console.'",
            "RestoreNotSeen",
        ),
        "RestoreNotSeen": {"Type": "Fail", "Error": "RestoreNotSeen", "Cause": "Not every region answered"},
        "ReportDrillFailed": reports.report(
            "Failover drill FAILED for",
            "'Failover drill of ' & $target & ' failed: ' & $drillError & '. The health check was restored"
            " (Inverted=false).'",
            "DrillFailed",
        ),
        "DrillFailed": {
            "Type": "Fail",
            "Error": "DrillFailed",
            "Cause": "Route 53 did not fail over in time",
        },
        "ReportRestoreFailed": reports.report(
            "RESTORE FAILED: failover drill of",
            "'RESTORE FAILED: the health check ' & $healthCheckId & ' of ' & $target & ' is still inverted, so"
            " Route 53 keeps the region out: ' & $restoreError & '. Restore it now: aws route53"
            " update-health-check --health-check-id ' & $healthCheckId & ' --no-inverted'",
            "RestoreFailed",
        ),
        "RestoreFailed": {
            "Type": "Fail",
            "Error": "RestoreFailed",
            "Cause": "The health check is still inverted",
        },
        "ReportNotSent": {"Type": "Fail", "Error": "ReportNotSent", "Cause": "Publishing the report failed"},
    }


def _outage_branch(ask: Mapping[str, str], timing: DrillTiming) -> dict[str, Any]:
    """Invert, then poll until Route 53 answers with the other regions only. Any failure in here is
    caught by the Parallel state around it, which restores."""
    return {
        "StartAt": "Invert",
        "States": {
            "Invert": {
                "Type": "Task",
                "Resource": UPDATE_HEALTH_CHECK,
                "Arguments": {"HealthCheckId": "{% $healthCheckId %}", "Inverted": True},
                "Retry": RETRY_TRANSIENT,
                "Assign": {"invertedAt": "{% $millis() %}", "failoverPolls": 0},
                "Next": "WaitForFailover",
            },
            "WaitForFailover": {"Type": "Wait", "Seconds": timing.poll_seconds, "Next": "CheckFailover"},
            "CheckFailover": {
                "Type": "Task",
                "Resource": TEST_DNS_ANSWER,
                "Arguments": dict(ask),
                "Retry": RETRY_TRANSIENT,
                "Assign": {
                    "failoverAnswer": _answer("$states.result"),
                    "failoverPolls": "{% $failoverPolls + 1 %}",
                },
                "Next": "IsFailedOver",
            },
            "IsFailedOver": {
                "Type": "Choice",
                "Choices": [
                    {"Condition": "{% $failoverAnswer = $others %}", "Next": "FailedOver"},
                    {"Condition": f"{{% $failoverPolls < {timing.max_polls} %}}", "Next": "WaitForFailover"},
                ],
                "Default": "NotFailedOver",
            },
            "FailedOver": {
                "Type": "Pass",
                "Output": {"failoverSeconds": "{% $round(($millis() - $invertedAt) / 1000) %}"},
                "End": True,
            },
            "NotFailedOver": {
                "Type": "Fail",
                "Error": "NotFailedOver",
                "Cause": f"Route 53 still answered with the drilled region after {timing.max_polls} checks",
            },
        },
    }


def drill_policy(*, health_check_arns: list[str], topic_arn: str) -> dict[str, Any]:
    """Exactly what the drill's tasks call, on this stack's own health checks and topic."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvertAndRestoreOwnHealthChecks",
                "Effect": "Allow",
                "Action": "route53:UpdateHealthCheck",
                "Resource": sorted(health_check_arns),
            },
            {
                # IAM defines no resource type for TestDNSAnswer (Service Authorization Reference, Route 53):
                # it can only be granted on "*". It reads what Route 53 would answer; it changes nothing.
                "Sid": "AskRoute53WhatItAnswers",
                "Effect": "Allow",
                "Action": "route53:TestDNSAnswer",
                "Resource": "*",
            },
            {
                "Sid": "ReportToOwnAlarmTopic",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": topic_arn,
            },
        ],
    }


@dataclass(frozen=True)
class FailoverDrillArgs:
    """Inputs of FailoverDrill; plain values, no pulumi.Config."""

    provider: aws.Provider
    """The primary region's provider: the state machine, its roles and the schedule live there."""
    health_check_ids: Mapping[str, pulumi.Input[str]]
    """Route 53 health check id per application region."""
    hosted_zone_id: str
    regions_record_name: str
    """The multivalue TXT record listing the healthy regions (GlobalRouting.regions_record_name)."""
    topic_arn: pulumi.Input[str]
    """Where the drill reports (the primary region's alarm topic)."""
    timing: DrillTiming
    scheduled_region: str
    """The region the scheduled drill takes down (the secondary)."""
    schedule: str | None = None
    """EventBridge Scheduler expression (components/schedules.py checked it); None: no schedule."""

    def __post_init__(self) -> None:
        if len(self.health_check_ids) < 2:
            raise ValueError("FailoverDrill needs at least two regions: one goes out, the others must answer")
        if self.scheduled_region not in self.health_check_ids:
            raise ValueError(f"FailoverDrill: {self.scheduled_region} has no health check to invert")


class FailoverDrill(pulumi.ComponentResource):
    """The drill state machine, its role, and the optional schedule with its own role."""

    state_machine_arn: pulumi.Output[str]
    schedule_name: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: FailoverDrillArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{PROJECT}:ops:FailoverDrill", name, None, opts)
        here = pulumi.ResourceOptions(parent=self, provider=args.provider)
        aws_name = stack_name(name, SCHEDULE_NAME_MAX)  # fits the state machine's 80 too
        resolved = pulumi.Output.all(args.topic_arn, pulumi.Output.all(**dict(args.health_check_ids)))

        def definition(values: list[Any]) -> str:
            topic_arn, ids = values
            return json.dumps(
                drill_definition(
                    health_check_ids=ids,
                    hosted_zone_id=args.hosted_zone_id,
                    regions_record_name=args.regions_record_name,
                    topic_arn=topic_arn,
                    timing=args.timing,
                )
            )

        def policy(values: list[Any]) -> str:
            topic_arn, ids = values
            arns = [
                health_check_arn(arn_part(topic_arn, 1), health_check_id) for health_check_id in ids.values()
            ]
            return policy_document(drill_policy(health_check_arns=arns, topic_arn=topic_arn)["Statement"])

        drill = StateMachineWithRole(
            f"{name}-machine",
            machine_name=aws_name,
            description=f"Failover drill of {aws_name}: invert/restore its health checks, TestDNSAnswer, report",
            definition=resolved.apply(definition),
            policy=resolved.apply(policy),
            opts=here,
        )
        self.state_machine_arn = drill.state_machine.arn
        self.schedule_name = None
        if args.schedule:
            role, role_policy = invoker_role(
                f"{name}-scheduler",
                service="scheduler.amazonaws.com",
                description=f"{aws_name}: lets the drill schedule start the drill, nothing else",
                state_machine_arn=drill.state_machine.arn,
                source_arn=None,  # Scheduler's SourceArn is the schedule group's; the account suffices
                opts=here,
            )
            schedule = aws.scheduler.Schedule(
                f"{name}-schedule",
                name=aws_name,
                description=f"Failover drill of {args.scheduled_region}",
                schedule_expression=args.schedule,
                schedule_expression_timezone="UTC",
                flexible_time_window={"mode": "OFF"},
                target={
                    "arn": drill.state_machine.arn,
                    "role_arn": role.arn,
                    "input": json.dumps({"region": args.scheduled_region}),
                    # A drill that did not start is not started again later: the next one will run.
                    "retry_policy": {"maximum_retry_attempts": 0},
                },
                opts=pulumi.ResourceOptions.merge(here, pulumi.ResourceOptions(depends_on=[role_policy])),
            )
            self.schedule_name = schedule.name
        self.register_outputs(
            {"state_machine_arn": self.state_machine_arn, "schedule_name": self.schedule_name}
        )
