"""Automated incident response: this stack's alarm state changes start a runbook that tells people what
happened, where, and (for a health check) which regions serve now.

Per region holding alarms (each application region, and us-east-1 for the Route 53 health check
alarms): an EventBridge rule on the default bus matching "CloudWatch Alarm State Change" events of
exactly this stack's alarm names (a list, not a prefix, so another stack's alarms never match) that go
to ALARM or come back from it, targeting a Standard state machine (components/step_functions.py says
why Standard) through a role that may only start that state machine.

The runbook (Amazon States Language, JSONata):

1. ReadAlarm: the alarm's name, new and previous state, reason, region and time from the event.
2. For a Route 53 health check alarm only: GetHealthCheckStatus for every region's health check (a Map
   over the stack's health checks) and, from each, how many of Route 53's checkers see the region
   healthy. Route 53 counts an endpoint healthy when more than 18 % of its checkers do, so the regions
   above that share are the ones it answers with now; if none is, Route 53 fails open and answers with
   all of them. Failing to read the status is reported, not fatal.
3. Notify: sns:Publish to the region's alarm topic: the alarm, region, reason, health and serving
   regions, with a replicated pool where sign-in is served (the managed-login domain follows the
   primary's health check), and links to the dashboard, the alarm and this execution.

The state machine's role allows exactly sns:Publish on that topic and, where step 2 exists,
route53:GetHealthCheckStatus on the stack's own health checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.naming import EVENT_RULE_NAME_MAX, stack_name
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

GET_HEALTH_CHECK_STATUS = sdk_task("route53", "GetHealthCheckStatus")
# Route 53 considers an endpoint healthy when more than this share of its checkers report it healthy.
HEALTHY_CHECKER_PERCENT = 18


@dataclass(frozen=True)
class RunbookLocation:
    """One region that holds alarms of this stack."""

    region: str
    provider: aws.Provider
    """This region's provider: the rule, the roles and the state machine are created with it."""
    topic_arn: pulumi.Input[str]
    """The region's alarm topic (the runbook publishes there)."""
    alarm_names: tuple[str, ...]
    """The AWS names of the alarms in this region: the only alarms the rule matches."""
    health_alarms: Mapping[str, str] = field(default_factory=dict)
    """Health check alarm name -> the application region it is about (only in us-east-1)."""


@dataclass(frozen=True)
class IncidentResponseArgs:
    locations: Sequence[RunbookLocation]
    health_check_ids: Mapping[str, pulumi.Input[str]]
    """Route 53 health check id per application region."""
    dashboard_url: str
    """The console link to the two-region dashboard."""
    sign_in_failover: tuple[str, str] | None = None
    """(primary, replica) when the managed-login domain fails over on the primary's health check."""

    def __post_init__(self) -> None:
        for location in self.locations:
            if not location.alarm_names:
                raise ValueError(f"IncidentResponse: {location.region} holds no alarm to respond to")
            strays = set(location.health_alarms) - set(location.alarm_names)
            if strays:
                raise ValueError(
                    f"IncidentResponse: health alarms {sorted(strays)} are not in {location.region}"
                )
            if location.health_alarms and not self.health_check_ids:
                raise ValueError("IncidentResponse: health check alarms need the health check ids")


def alarm_event_pattern(alarm_names: Sequence[str]) -> dict[str, Any]:
    """This stack's alarms going to ALARM, or leaving it (the all-clear); never the first OK after
    creation, which would page once per alarm on every new stack."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {
            "alarmName": sorted(alarm_names),
            "$or": [{"state": {"value": ["ALARM"]}}, {"previousState": {"value": ["ALARM"]}}],
        },
    }


def _sign_in_line(primary: str, replica: str) -> str:
    """JSONata: where sign-in is served, from the regions Route 53 answers with (``$serving``). The
    domain's failover follows the primary's health check, so it moves exactly when Route 53 drops the
    primary; a Cognito-only outage leaves the health check healthy and sign-in where it is."""
    stays = (
        f"Sign-in: the managed-login domain is served by {primary} (the user pool). A Cognito outage in "
        f"{primary} alone does not move it: inverting the {primary} health check sends sign-in to the "
        f"replica in {replica} (docs/operations.md)."
    )
    moved = (
        f"Sign-in: the managed-login domain has failed over to the replica in {replica}. Sign-in and token "
        f"refresh work there; sign-up, password resets, profile changes and TOTP MFA wait for {primary}."
    )
    return f"$count($health) > 0 ? ('{primary}' in $serving ? '{stays}' : '{moved}') : ''"


def _message(dashboard_url: str, sign_in_failover: tuple[str, str] | None = None) -> str:
    """The JSONata expression of the notification's text."""
    lines = [
        "'CloudWatch alarm ' & $alarm & ' went from ' & $previous & ' to ' & $state & ' in ' & $region"
        " & ' at ' & $time & '.'",
        "'Reason: ' & $reason",
        "$count($health) > 0 ? 'Route 53 health checks: ' & $join($health.(region & ': ' & $string(healthyCheckers)"
        " & ' of ' & $string(checkers) & ' checkers see it healthy'), '; ') & '.' : ''",
        "$count($health) > 0 ? ($count($serving) > 0 ? 'Route 53 answers with: ' & $join($serving, ', ') & '.'"
        " : 'No region is healthy: Route 53 fails open and answers with every region.') : ''",
        "$healthError != '' ? 'Could not read the Route 53 health checks: ' & $healthError : ''",
        *([_sign_in_line(*sign_in_failover)] if sign_in_failover else []),
        f"'Dashboard: {dashboard_url}'",
        "'Alarm: https://' & $region & '.console.aws.amazon.com/cloudwatch/home?region=' & $region"
        " & '#alarmsV2:alarm/' & $alarm",
        "'This runbook execution: https://' & $region & '.console.aws.amazon.com/states/home?region=' & $region"
        " & '#/v2/executions/details/' & $states.context.Execution.Id",
    ]
    serving = f"$health[healthyCheckers * 100 > checkers * {HEALTHY_CHECKER_PERCENT}].region"
    return (
        "{% ($serving := "
        + serving
        + "; $lines := ["
        + ", ".join(lines)
        + "]; $join($lines[$ != ''], '\\n')) %}"
    )


def _given(path: str) -> str:
    """A field of the event, or '' when the event lacks it (an undefined value would fail the state)."""
    return f"{{% $exists({path}) ? $string({path}) : '' %}}"


def runbook_definition(
    *,
    topic_arn: str,
    dashboard_url: str,
    health_alarms: Mapping[str, str],
    health_check_ids: Mapping[str, str],
    sign_in_failover: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The runbook's Amazon States Language definition (JSONata); the health branch only where
    health_alarms is not empty (and, with ``sign_in_failover``, where sign-in is served)."""
    states: dict[str, Any] = {
        "ReadAlarm": {
            "Type": "Pass",
            "Assign": {
                "alarm": _given("$states.input.detail.alarmName"),
                "state": _given("$states.input.detail.state.value"),
                "previous": _given("$states.input.detail.previousState.value"),
                "reason": _given("$states.input.detail.state.reason"),
                "region": _given("$states.input.region"),
                "time": _given("$states.input.time"),
                "health": [],
                "healthError": "{% '' %}",  # a plain "" is ambiguous in the ASL schema
            },
            "Next": "IsHealthCheckAlarm" if health_alarms else "Notify",
        },
        "Notify": {
            "Type": "Task",
            "Resource": SNS_PUBLISH,
            "Arguments": {
                "TopicArn": topic_arn,
                "Subject": sns_subject("'[' & $state & '] ' & $alarm"),
                "Message": _message(dashboard_url, sign_in_failover if health_alarms else None),
            },
            "Retry": RETRY_TRANSIENT,
            "End": True,
        },
    }
    if health_alarms:
        states.update(_health_states(health_alarms, health_check_ids))
    return {
        "Comment": "Incident runbook: tell the on-call what alarmed, where, and which regions serve now",
        "QueryLanguage": "JSONata",
        "StartAt": "ReadAlarm",
        "States": states,
    }


def _health_states(health_alarms: Mapping[str, str], health_check_ids: Mapping[str, str]) -> dict[str, Any]:
    """For a health-check alarm: read every region's health check (how many checkers see it healthy),
    so the message can say which regions Route 53 serves now; a failed read is reported, not fatal."""
    return {
        "IsHealthCheckAlarm": {
            "Type": "Choice",
            "Choices": [
                {
                    "Condition": f"{{% $alarm in {json.dumps(sorted(health_alarms))} %}}",
                    "Next": "ReadHealthChecks",
                }
            ],
            "Default": "Notify",
        },
        "ReadHealthChecks": {
            "Type": "Map",
            "Items": [
                {"region": region, "healthCheckId": health_check_id}
                for region, health_check_id in sorted(health_check_ids.items())
            ],
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "GetHealthCheckStatus",
                "States": {
                    "GetHealthCheckStatus": {
                        "Type": "Task",
                        "Resource": GET_HEALTH_CHECK_STATUS,
                        "Arguments": {"HealthCheckId": "{% $states.input.healthCheckId %}"},
                        "Retry": RETRY_TRANSIENT,
                        "Output": {
                            "region": "{% $states.input.region %}",
                            "checkers": "{% $count($states.result.HealthCheckObservations) %}",
                            "healthyCheckers": "{% $count($states.result.HealthCheckObservations"
                            "[$contains(StatusReport.Status, 'Success')]) %}",
                        },
                        "End": True,
                    }
                },
            },
            "Assign": {"health": "{% $states.result %}"},
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "Assign": {
                        "healthError": "{% $states.errorOutput.Error & ': ' & $states.errorOutput.Cause %}"
                    },
                    "Next": "Notify",
                }
            ],
            "Next": "Notify",
        },
    }


def runbook_policy(*, topic_arn: str, health_check_arns: Sequence[str]) -> dict[str, Any]:
    """Exactly what the runbook's tasks call, on this stack's own topic and health checks."""
    statements: list[dict[str, Any]] = [
        {"Sid": "PublishToOwnAlarmTopic", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}
    ]
    if health_check_arns:
        statements.append(
            {
                "Sid": "ReadOwnHealthChecks",
                "Effect": "Allow",
                "Action": "route53:GetHealthCheckStatus",
                "Resource": sorted(health_check_arns),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


class IncidentResponse(pulumi.ComponentResource):
    """A rule and a runbook state machine per region holding alarms."""

    state_machine_arns: dict[str, pulumi.Output[str]]
    """Runbook ARN per region."""

    def __init__(
        self, name: str, args: IncidentResponseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{PROJECT}:ops:IncidentResponse", name, None, opts)
        self.state_machine_arns = {}
        for location in args.locations:
            self.state_machine_arns[location.region] = self._runbook(name, location, args)
        self.register_outputs({"state_machine_arns": self.state_machine_arns})

    def _runbook(
        self, name: str, location: RunbookLocation, args: IncidentResponseArgs
    ) -> pulumi.Output[str]:
        region = location.region
        here = pulumi.ResourceOptions(parent=self, provider=location.provider)
        resource_name = f"{name}-{region}"
        aws_name = stack_name(resource_name, EVENT_RULE_NAME_MAX)  # the rule's name; "-runbook" fits 80
        health_checks = dict(args.health_check_ids) if location.health_alarms else {}
        resolved = pulumi.Output.all(
            location.topic_arn, pulumi.Output.all(**health_checks) if health_checks else {}
        )

        def definition(values: list[Any]) -> str:
            topic_arn, ids = values
            return json.dumps(
                runbook_definition(
                    topic_arn=topic_arn,
                    dashboard_url=args.dashboard_url,
                    health_alarms=location.health_alarms,
                    health_check_ids=ids,
                    sign_in_failover=args.sign_in_failover,
                )
            )

        def policy(values: list[Any]) -> str:
            topic_arn, ids = values
            partition = arn_part(topic_arn, 1)
            arns = [health_check_arn(partition, health_check_id) for health_check_id in ids.values()]
            return policy_document(runbook_policy(topic_arn=topic_arn, health_check_arns=arns)["Statement"])

        runbook = StateMachineWithRole(
            f"{resource_name}-runbook",
            machine_name=f"{aws_name}-runbook",
            description=f"Incident runbook of {aws_name}: publish to its alarm topic, read its health checks",
            definition=resolved.apply(definition),
            policy=resolved.apply(policy),
            opts=here,
        )
        rule = aws.cloudwatch.EventRule(
            f"{resource_name}-alarms",
            name=aws_name,
            description=f"State changes of {pulumi.get_stack()}'s alarms in {region} -> incident runbook",
            event_pattern=json.dumps(alarm_event_pattern(location.alarm_names)),
            opts=here,
        )
        role, role_policy = invoker_role(
            f"{resource_name}-start-runbook",
            service="events.amazonaws.com",
            description=f"{aws_name}: lets the alarm rule start the incident runbook, nothing else",
            state_machine_arn=runbook.state_machine.arn,
            source_arn=rule.arn,
            opts=here,
        )
        aws.cloudwatch.EventTarget(
            f"{resource_name}-alarms-target",
            rule=rule.name,
            arn=runbook.state_machine.arn,
            role_arn=role.arn,
            opts=pulumi.ResourceOptions.merge(here, pulumi.ResourceOptions(depends_on=[role_policy])),
        )
        return runbook.state_machine.arn
