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

With ``authReplica`` (``FailoverDrillArgs.identity``), a drill of the user pool's region also asks the
probe, once failover is seen, to sign in and refresh at the replica's region as the drill's own user
(components/drill_identity.py): the report says "sign-in in <secondary>: ok|failed (why)" and "token
refresh in <secondary>: ok|failed (why)", and a failure fails the drill's verdict, taken after the
restore (never instead of it). The probe's role may then also read that user's secret, in that region.

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
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.drill_identity import DrillIdentity, DrillIdentityArgs
from components.global_routing import invoke_host
from components.naming import LAMBDA_FUNCTION_NAME_MAX, SCHEDULE_NAME_MAX, stack_name
from components.step_functions import (
    LAMBDA_INVOKE,
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


@dataclass(frozen=True)
class ProbeTarget:
    """What the drill's probe function is asked (probe/app.py; the ``target`` is added per call)."""

    function_arn: str
    name_servers: list[str]
    """The hosted zone's own name servers (its delegation set): they apply health checks."""
    region_record_name: str
    """The latency TXT records naming each region (GlobalRouting.region_record_name)."""
    domain: str
    """The name clients use: the custom domain (the CloudFront alias when ``cdn`` is on)."""
    path: str
    """Requested over HTTPS; /health needs no token."""
    subnet_hosts: Mapping[str, str]
    """A host in each region (its API's execute-api host) whose address gives the region's client subnet."""
    timeout_seconds: int = 5

    def payload(self, target: str) -> dict[str, Any]:
        return {
            "target": target,
            "nameServers": list(self.name_servers),
            "regionRecord": self.region_record_name,
            "domain": self.domain,
            "path": self.path,
            "subnetHosts": dict(sorted(self.subnet_hosts.items())),
            "timeoutSeconds": self.timeout_seconds,
        }


@dataclass(frozen=True)
class IdentityTarget:
    """The identity check (probe/identity.py), with ``authReplica`` only: once the drilled primary's
    clients are served elsewhere, the drill's user signs in and refreshes at the replica's region."""

    function_arn: str
    """The probe function (the same one that observes DNS and HTTPS)."""
    primary_region: str
    """The user pool's region: only a drill of this region is an outage the replica must cover."""
    region: str
    """The replica's region, whose Cognito endpoint is asked."""
    client_id: str
    """The drill's app client (not one the API accepts)."""
    secret_arn: str
    """The drill user's secret, its replica in ``region``."""
    timeout_seconds: int = 5

    def payload(self) -> dict[str, Any]:
        return {
            "identity": {"region": self.region, "clientId": self.client_id, "secretArn": self.secret_arn},
            "timeoutSeconds": self.timeout_seconds,
        }


def drill_definition(
    *,
    health_check_ids: Mapping[str, str],
    hosted_zone_id: str,
    regions_record_name: str,
    topic_arn: str,
    probe: ProbeTarget,
    timing: DrillTiming,
    identity: IdentityTarget | None = None,
) -> dict[str, Any]:
    """The drill's Amazon States Language definition (JSONata): pick, baseline, drill, restore, report.

    Failover is observed by the probe function, as a client in the drilled region would see it: the
    zone's own name servers asked with that region's client subnet (DNS), and an HTTPS request to the
    address they give (the X-Served-Region of the answer). TestDNSAnswer, which AWS does not document
    as applying health checks, is asked once during the outage and reported as a labelled extra.

    With ``identity``, a drill of the pool's primary region also checks sign-in and token refresh at the
    replica's region once failover is seen; a failure there fails the drill's verdict, after the restore.
    """
    regions = sorted(health_check_ids)
    ask = {"HostedZoneId": hosted_zone_id, "RecordName": regions_record_name, "RecordType": "TXT"}
    reports = _Reports(topic_arn)
    return {
        "Comment": "Failover drill: invert one region's health check, see its clients served elsewhere, restore",
        "QueryLanguage": "JSONata",
        "StartAt": "PickRegion",
        "States": {
            **_pick_region(health_check_ids),
            **_baseline(regions, probe, reports),
            **_drill(ask, probe, timing, identity),
            **_restore(probe, timing, reports, identity),
            **_outcomes(reports, identity),
        },
    }


def _probe_task(probe: ProbeTarget, target: str, **fields: Any) -> dict[str, Any]:
    """Invoke the probe for ``target`` (a JSONata expression); its answer is ``$states.result.Payload``."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Arguments": {
            "FunctionName": probe.function_arn,
            "Payload": {**probe.payload("X"), "target": target},
        },
        "Retry": RETRY_TRANSIENT,
        **fields,
    }


# JSONata over one probe answer ($p): what a client in the target region saw.
_SEEN = "'DNS ' & $string($p.dns.region) & ', HTTPS ' & $string($p.https.region)"


def _since(variable: str, moment: str, condition: str) -> str:
    """Seconds from ``moment`` to the first probe answer meeting ``condition``; -1 until then."""
    return (
        f"{{% ($p := $states.result.Payload; {variable} >= 0 ? {variable} : "
        f"(({condition}) ? $round(($millis() - {moment}) / 1000) : -1)) %}}"
    )


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
            "Assign": {"restoredAt": "{% $millis() %}", "restorePolls": 0, "dnsBack": -1, "httpsBack": -1},
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
                    "others": [r for r in regions if r != region],
                    "drillError": "{% '' %}",  # a plain "" is ambiguous in the ASL schema
                    "restoreError": "{% '' %}",
                    "seen": "{% '' %}",
                },
                "Next": "CheckBaseline",
            }
            for region, health_check_id in sorted(health_check_ids.items())
        },
    }


def _baseline(regions: list[str], probe: ProbeTarget, reports: _Reports) -> dict[str, Any]:
    """Refuse unless a client in every region is served by its own region: never take a region down
    while another is down, nor while another drill runs."""
    healthy = "$count($baseline[dns.region != target or https.region != target]) = 0"
    return {
        "CheckBaseline": {
            "Type": "Map",
            "Items": "{% " + json.dumps(regions) + " %}",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "ProbeRegion",
                "States": {
                    "ProbeRegion": _probe_task(
                        probe, "{% $states.input %}", Output="{% $states.result.Payload %}", End=True
                    )
                },
            },
            "Assign": {
                "baseline": "{% $states.result %}",
                "seen": "{% $join($states.result.(target & ': ' & ($p := $; " + _SEEN + ")), '; ') %}",
            },
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"seen": "{% 'the probe failed: ' & $string($states.errorOutput) %}"},
                    "Next": "ReportRefused",
                }
            ],
            "Next": "IsBaselineHealthy",
        },
        "IsBaselineHealthy": {
            "Type": "Choice",
            "Choices": [{"Condition": "{% " + healthy + " %}", "Next": "Drill"}],
            "Default": "ReportRefused",
        },
        "ReportRefused": reports.report(
            "Failover drill refused for",
            "'The failover drill of ' & $target & ' did not start: a client in each region must be served by"
            " its own region first, but the probe saw ' & $seen & ' (a region is already out, or another"
            " drill runs). Nothing was changed.'",
            "Refused",
        ),
        "Refused": {"Type": "Fail", "Error": "BaselineNotHealthy", "Cause": "Not every region served itself"},
    }


def _drill(
    ask: Mapping[str, str], probe: ProbeTarget, timing: DrillTiming, identity: IdentityTarget | None
) -> dict[str, Any]:
    """Invert and watch, inside one Parallel state whose Catch restores on any failure."""
    return {
        "Drill": {
            "Type": "Parallel",
            "Branches": [_outage_branch(ask, probe, timing, identity)],
            "Output": "{% $states.result[0] %}",
            "Assign": {"failover": "{% $states.result[0] %}"},
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


def _outage_branch(
    ask: Mapping[str, str], probe: ProbeTarget, timing: DrillTiming, identity: IdentityTarget | None
) -> dict[str, Any]:
    """Invert, then probe until a client in the drilled region is sent elsewhere (DNS) and served
    elsewhere (HTTPS), each timed on its own. Any failure in here is caught by the Parallel state
    around it, which restores."""
    states = {
        **_probe_until_failed_over(probe, timing, identity),
        **_failed_over(ask, identity),
        "NotFailedOver": {
            "Type": "Fail",
            "Error": "NotFailedOver",
            "Cause": f"After {timing.max_polls} probes a client in the drilled region was still sent there "
            "(DNS at the zone's name servers) or served there (HTTPS, X-Served-Region)",
        },
        **(_identity_check(identity) if identity else {}),
    }
    return {"StartAt": "Invert", "States": states}


def _probe_until_failed_over(
    probe: ProbeTarget, timing: DrillTiming, identity: IdentityTarget | None
) -> dict[str, Any]:
    """Invert the health check, then probe every poll interval until DNS and HTTPS have both moved
    (each timed from the inversion), or give up after ``timing.max_polls``."""
    moved = "$p.{kind}.region in $others"
    return {
        "Invert": {
            "Type": "Task",
            "Resource": UPDATE_HEALTH_CHECK,
            "Arguments": {"HealthCheckId": "{% $healthCheckId %}", "Inverted": True},
            "Retry": RETRY_TRANSIENT,
            "Assign": {
                "invertedAt": "{% $millis() %}",
                "failoverPolls": 0,
                "dnsMoved": -1,
                "httpsMoved": -1,
                **(_identity_not_checked(identity) if identity else {}),
            },
            "Next": "WaitForFailover",
        },
        "WaitForFailover": {"Type": "Wait", "Seconds": timing.poll_seconds, "Next": "ProbeFailover"},
        "ProbeFailover": _probe_task(
            probe,
            "{% $target %}",
            Assign={
                "failoverPolls": "{% $failoverPolls + 1 %}",
                "dnsMoved": _since("$dnsMoved", "$invertedAt", moved.format(kind="dns")),
                "httpsMoved": _since("$httpsMoved", "$invertedAt", moved.format(kind="https")),
                "servedBy": "{% $string($states.result.Payload.https.region) %}",
                "seen": "{% ($p := $states.result.Payload; " + _SEEN + ") %}",
            },
            Next="IsFailedOver",
        ),
        "IsFailedOver": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "{% $dnsMoved >= 0 and $httpsMoved >= 0 %}", "Next": "AskTestDnsAnswer"},
                {"Condition": f"{{% $failoverPolls < {timing.max_polls} %}}", "Next": "WaitForFailover"},
            ],
            "Default": "NotFailedOver",
        },
    }


def _failed_over(ask: Mapping[str, str], identity: IdentityTarget | None) -> dict[str, Any]:
    """Once failed over: TestDNSAnswer as a labelled extra, the identity check when there is one, and
    the branch's result (the times, the serving region, what was seen)."""
    after_extra = "IsIdentityChecked" if identity else "FailedOver"
    return {
        # A labelled extra, never evidence: AWS does not document that TestDNSAnswer applies health
        # checks. Whatever it answers (or fails with), the drill goes on.
        "AskTestDnsAnswer": {
            "Type": "Task",
            "Resource": TEST_DNS_ANSWER,
            "Arguments": dict(ask),
            "Assign": {"testDnsAnswer": _answer("$states.result")},
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"testDnsAnswer": "{% 'no answer (' & $states.errorOutput.Error & ')' %}"},
                    "Next": after_extra,
                }
            ],
            "Next": after_extra,
        },
        "FailedOver": {
            "Type": "Pass",
            "Output": {
                "dnsSeconds": "{% $dnsMoved %}",
                "httpsSeconds": "{% $httpsMoved %}",
                "servedBy": "{% $servedBy %}",
                "testDnsAnswer": "{% $testDnsAnswer %}",
                **(
                    {"identityOk": "{% $identityOk %}", "identityReport": "{% $identityReport %}"}
                    if identity
                    else {}
                ),
            },
            "End": True,
        },
    }


def _identity_not_checked(identity: IdentityTarget) -> dict[str, Any]:
    """What the report says when the drilled region is not the pool's primary (sign-in did not move)."""
    return {
        "identityOk": True,
        "identityReport": "{% 'Sign-in and token refresh in "
        + identity.region
        + ": not checked (only a drill of "
        + identity.primary_region
        + ", where the user pool lives, takes sign-in to the replica).' %}",
    }


def _identity_text(step: str) -> str:
    """JSONata: one step of the identity check ($i.signIn, $i.refresh) as ``ok`` or ``failed (why)``."""
    return f"($i.{step} = 'ok' ? 'ok' : 'failed (' & $string($i.{step}) & ')')"


def _identity_check(identity: IdentityTarget) -> dict[str, Any]:
    """Once failover is seen in a drill of the pool's primary: the probe signs in and refreshes at the
    replica's region. Whatever happens (an invocation that fails too), the branch goes on to
    ``FailedOver``: the verdict is taken after the restore."""
    where = identity.region
    report = (
        "{% ($i := $states.result.Payload.identity; 'Identity (the drill user at Cognito in ' & $i.region"
        " & '): sign-in in ' & $i.region & ': ' & "
        + _identity_text("signIn")
        + " & '; token refresh in ' & $i.region & ': ' & "
        + _identity_text("refresh")
        + " & '.') %}"
    )
    return {
        "IsIdentityChecked": {
            "Type": "Choice",
            "Choices": [
                {"Condition": f"{{% $target = '{identity.primary_region}' %}}", "Next": "ProbeIdentity"}
            ],
            "Default": "FailedOver",
        },
        "ProbeIdentity": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Arguments": {"FunctionName": identity.function_arn, "Payload": identity.payload()},
            "Retry": RETRY_TRANSIENT,
            "Assign": {
                "identityOk": "{% $states.result.Payload.identity.signIn = 'ok' and "
                "$states.result.Payload.identity.refresh = 'ok' %}",
                "identityReport": report,
            },
            "Catch": [
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {
                        "identityOk": False,
                        "identityReport": f"{{% 'Identity: sign-in in {where}: failed (the probe failed: ' & "
                        f"$states.errorOutput.Error & '); token refresh in {where}: failed (not tried).' %}}",
                    },
                    "Next": "FailedOver",
                }
            ],
            "Next": "FailedOver",
        },
    }


def _restore(
    probe: ProbeTarget, timing: DrillTiming, reports: _Reports, identity: IdentityTarget | None
) -> dict[str, Any]:
    """Restore the health check (also after a failed drill), then probe until the drilled region's
    clients are sent to and served by it again."""
    back = "$p.{kind}.region = $target"
    return {
        "Restore": reports.restore("WaitForRestore"),
        "WaitForRestore": {"Type": "Wait", "Seconds": timing.poll_seconds, "Next": "ProbeRestore"},
        "ProbeRestore": _probe_task(
            probe,
            "{% $target %}",
            Assign={
                "restorePolls": "{% $restorePolls + 1 %}",
                "dnsBack": _since("$dnsBack", "$restoredAt", back.format(kind="dns")),
                "httpsBack": _since("$httpsBack", "$restoredAt", back.format(kind="https")),
                "seen": "{% ($p := $states.result.Payload; " + _SEEN + ") %}",
            },
            Catch=[
                {
                    "ErrorEquals": CATCH_ALL,
                    "Assign": {"seen": "{% 'the probe failed: ' & $string($states.errorOutput) %}"},
                    "Next": "ReportRestoreNotSeen",
                }
            ],
            Next="IsRestored",
        ),
        "IsRestored": {
            "Type": "Choice",
            "Choices": [
                {
                    "Condition": "{% $dnsBack >= 0 and $httpsBack >= 0 %}",
                    "Next": "IsIdentityOk" if identity else "ReportSuccess",
                },
                {"Condition": f"{{% $restorePolls < {timing.max_polls} %}}", "Next": "WaitForRestore"},
            ],
            "Default": "ReportRestoreNotSeen",
        },
        "RestoreAfterFailure": reports.restore("ReportDrillFailed"),
        **(
            {
                # Judged after the restore: an identity failure never keeps a region out of DNS.
                "IsIdentityOk": {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $failover.identityOk %}", "Next": "ReportSuccess"}],
                    "Default": "ReportIdentityFailed",
                }
            }
            if identity
            else {}
        ),
    }


# JSONata, the end of a quoted string that the caller opens: what the drill saw fail over and come back
# (the passing report, and the identity failure's).
_FAILED_OVER = (
    "With its health check inverted, a client in ' & $target"
    " & ' was sent to ' & $join($others, ',') & ' by the zone name servers after '"
    " & $string($failover.dnsSeconds) & ' s (DNS, EDNS client subnet of ' & $target & ') and served by '"
    " & $failover.servedBy & ' after ' & $string($failover.httpsSeconds) & ' s (HTTPS, X-Served-Region)."
    " After the restore it was sent back after ' & $string($dnsBack) & ' s (DNS) and served by '"
    " & $target & ' again after ' & $string($httpsBack) & ' s (HTTPS). Extra, not evidence: Route 53"
    " TestDNSAnswer (not documented to apply health checks) answered ' & $failover.testDnsAnswer"
    " & ' during the outage.'"
)


def _outcomes(reports: _Reports, identity: IdentityTarget | None) -> dict[str, Any]:
    """What the on-call reads, and the end state of each outcome."""
    identity_line = " & ' ' & $failover.identityReport" if identity else ""
    return {
        "ReportSuccess": reports.report(
            "Failover drill passed for",
            "'Failover drill of ' & $target & ' passed. " + _FAILED_OVER + identity_line,
            "Passed",
        ),
        "Passed": {"Type": "Succeed"},
        "ReportRestoreNotSeen": reports.report(
            "Failover drill: restore not seen for",
            "'Failover drill of ' & $target & ': the health check was restored (Inverted=false), but a client in '"
            " & $target & ' is still not sent to and served by it: ' & $seen & '. Check the health check '"
            " & $healthCheckId & ' in the console.'" + identity_line,
            "RestoreNotSeen",
        ),
        "RestoreNotSeen": {
            "Type": "Fail",
            "Error": "RestoreNotSeen",
            "Cause": "The region is not served again",
        },
        "ReportDrillFailed": reports.report(
            "Failover drill FAILED for",
            "'Failover drill of ' & $target & ' failed: ' & $drillError & '. The health check was restored"
            " (Inverted=false).'",
            "DrillFailed",
        ),
        "DrillFailed": {
            "Type": "Fail",
            "Error": "DrillFailed",
            "Cause": "The drilled region's clients were not served elsewhere in time",
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
        **(_identity_outcome(reports, identity) if identity else {}),
    }


def _identity_outcome(reports: _Reports, identity: IdentityTarget) -> dict[str, Any]:
    """Failover and restore worked, sign-in or refresh at the replica did not: the drill fails."""
    return {
        "ReportIdentityFailed": reports.report(
            "Failover drill FAILED (sign-in) for",
            "'Failover drill of ' & $target & ' FAILED: clients were served elsewhere and the region is back,"
            " but users could not sign in or keep their session in "
            + identity.region
            + " with "
            + identity.primary_region
            + " out. ' & $failover.identityReport & ' "
            + _FAILED_OVER
            + " & ' Check the user pool replica: aws cognito-idp list-user-pool-replicas --region "
            + identity.primary_region
            + " --user-pool-id <pool id> (docs/operations.md: the identity check of the drill).'",
            "IdentityFailed",
        ),
        "IdentityFailed": {
            "Type": "Fail",
            "Error": "IdentityFailed",
            "Cause": f"Sign-in or token refresh failed in {identity.region} (the health check was restored)",
        },
    }


def drill_policy(*, health_check_arns: list[str], topic_arn: str, probe_function_arn: str) -> dict[str, Any]:
    """Exactly what the drill's tasks call, on this stack's own health checks, probe and topic."""
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
                "Sid": "InvokeOwnProbe",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                # Lambda checks the qualified ARN too when a version or alias is named: allow both forms.
                "Resource": [probe_function_arn, f"{probe_function_arn}:*"],
            },
            {
                "Sid": "ReportToOwnAlarmTopic",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": topic_arn,
            },
        ],
    }


class FunctionArtifacts(Protocol):
    """A function's built code and dependency layer (components/lambda_artifact.py)."""

    code: pulumi.FileArchive
    code_hash: str
    layer_archive: pulumi.FileArchive
    layer_hash: str
    layer_description: str
    architecture: str
    runtime: str
    entry_point: str
    """The function's ``handler`` setting (``probe.app.handler``)."""


def probe_statements(log_group_arn: str, secret_arn: str | None) -> list[dict[str, Any]]:
    """The probe role's policy: its own log streams and, with the identity check, that one secret.

    The secret is encrypted with the region's AWS managed key (aws/secretsmanager), whose key policy lets
    the account's principals use it through Secrets Manager: no kms statement is needed here."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn.removesuffix(':*')}:*",
        }
    ]
    if secret_arn:
        statements.append(
            {
                "Sid": "ReadTheDrillUsersSecretInTheReplicaRegion",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arn,
            }
        )
    return statements


# Two DNS questions and one HTTPS request, or the identity check's secret read and two InitiateAuth calls
# (and boto3's import), each bounded by the event's 5 s timeout.
PROBE_TIMEOUT_SECONDS = 30
LAMBDA_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@dataclass(frozen=True)
class FailoverDrillArgs:
    """Inputs of FailoverDrill; plain values, no pulumi.Config."""

    provider: aws.Provider
    """The primary region's provider: the state machine, its roles, the probe and the schedule live there."""
    health_check_ids: Mapping[str, pulumi.Input[str]]
    """Route 53 health check id per application region."""
    hosted_zone_id: str
    regions_record_name: str
    """The multivalue TXT record listing the healthy regions (GlobalRouting.regions_record_name): only
    for TestDNSAnswer's labelled extra."""
    region_record_name: str
    """The latency TXT records naming each region (GlobalRouting.region_record_name): the probe's DNS."""
    domain: str
    """What clients use (the custom domain, a CloudFront alias when ``cdn`` is on): the probe's HTTPS."""
    invoke_urls: Mapping[str, pulumi.Input[str]]
    """Each region's stage invoke URL: its execute-api host lies in the region (the client subnet)."""
    probe_artifacts: FunctionArtifacts
    """The probe function's code and layer."""
    topic_arn: pulumi.Input[str]
    """Where the drill reports (the primary region's alarm topic)."""
    timing: DrillTiming
    scheduled_region: str
    """The region the scheduled drill takes down (the secondary)."""
    schedule: str | None = None
    """EventBridge Scheduler expression (components/schedules.py checked it); None: no schedule."""
    log_retention_days: int = 30
    health_path: str = "/health"
    """Requested through the domain (its base path mapping serves the stage at the root)."""
    identity: DrillIdentityArgs | None = None
    """With ``authReplica``: the drill's own client and user, for the identity check; None: no check."""

    def __post_init__(self) -> None:
        if len(self.health_check_ids) < 2:
            raise ValueError("FailoverDrill needs at least two regions: one goes out, the others must answer")
        if self.scheduled_region not in self.health_check_ids:
            raise ValueError(f"FailoverDrill: {self.scheduled_region} has no health check to invert")
        if set(self.invoke_urls) != set(self.health_check_ids):
            raise ValueError(
                "FailoverDrill: every drilled region needs its invoke URL (the probe's client subnet)"
            )
        if self.identity and {self.identity.primary_region, self.identity.secondary_region} - set(
            self.health_check_ids
        ):
            raise ValueError("FailoverDrill: the identity check's regions must be drilled regions")


class FailoverDrill(pulumi.ComponentResource):
    """The probe function, the drill state machine and its role, and the optional schedule."""

    state_machine_arn: pulumi.Output[str]
    probe_function_name: pulumi.Output[str]
    schedule_name: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: FailoverDrillArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{PROJECT}:ops:FailoverDrill", name, None, opts)
        here = pulumi.ResourceOptions(parent=self, provider=args.provider)
        aws_name = stack_name(name, SCHEDULE_NAME_MAX)  # fits the state machine's 80 too
        identity = DrillIdentity(f"{name}-identity", args.identity, here) if args.identity else None
        probe = self._probe(name, args, identity, here)
        machine = self._state_machine(name, aws_name, args, probe, identity, here)
        self.state_machine_arn = machine.state_machine.arn
        self.probe_function_name = probe.name
        self.schedule_name = self._schedule(name, aws_name, args, machine, here) if args.schedule else None
        self.register_outputs(
            {
                "state_machine_arn": self.state_machine_arn,
                "probe_function_name": self.probe_function_name,
                "schedule_name": self.schedule_name,
            }
        )

    def _probe(
        self,
        name: str,
        args: FailoverDrillArgs,
        identity: DrillIdentity | None,
        here: pulumi.ResourceOptions,
    ) -> aws.lambda_.Function:
        """The probe function: writes its own logs and, with the identity check, reads the drill user's
        secret in the replica's region (GetSecretValue on that one ARN; InitiateAuth needs no IAM)."""
        function_name = stack_name(f"{name}-probe", LAMBDA_FUNCTION_NAME_MAX)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-probe-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            opts=here,
        )
        role = aws.iam.Role(
            f"{name}-probe-role",
            assume_role_policy=LAMBDA_TRUST_POLICY,
            description=f"{function_name}: writes its own logs"
            + (", reads the drill user's secret" if identity else ", nothing else"),
            opts=here,
        )
        secret_arn = identity.replica_secret_arn if identity else None
        policy = aws.iam.RolePolicy(
            f"{name}-probe-policy",
            role=role.id,
            policy=pulumi.Output.all(logs.arn, secret_arn).apply(
                lambda values: policy_document(probe_statements(values[0], values[1]))
            ),
            opts=here,
        )
        artifacts = args.probe_artifacts
        layer = aws.lambda_.LayerVersion(
            f"{name}-probe-dependencies",
            layer_name=f"{function_name}-dependencies",
            code=artifacts.layer_archive,
            source_code_hash=artifacts.layer_hash,
            compatible_runtimes=[artifacts.runtime],
            compatible_architectures=[artifacts.architecture],
            description=artifacts.layer_description,
            opts=here,
        )
        return aws.lambda_.Function(
            f"{name}-probe",
            name=function_name,
            description="Failover drill probe: DNS at the zone's name servers with a client subnet, then HTTPS",
            role=role.arn,
            runtime=artifacts.runtime,
            architectures=[artifacts.architecture],
            handler=artifacts.entry_point,
            code=artifacts.code,
            source_code_hash=artifacts.code_hash,
            layers=[layer.arn],
            memory_size=256,
            timeout=PROBE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions.merge(here, pulumi.ResourceOptions(depends_on=[policy, logs])),
        )

    def _state_machine(
        self,
        name: str,
        aws_name: str,
        args: FailoverDrillArgs,
        probe: aws.lambda_.Function,
        identity: DrillIdentity | None,
        here: pulumi.ResourceOptions,
    ) -> StateMachineWithRole:
        """The drill's definition and its role, from the resolved ARNs, ids, name servers and hosts."""
        zone = aws.route53.get_zone_output(
            zone_id=args.hosted_zone_id, opts=pulumi.InvokeOptions(parent=self, provider=args.provider)
        )
        hosts = {
            region: pulumi.Output.from_input(url).apply(invoke_host)
            for region, url in args.invoke_urls.items()
        }
        resolved = pulumi.Output.all(
            args.topic_arn,
            pulumi.Output.all(**dict(args.health_check_ids)),
            probe.arn,
            zone.name_servers,
            pulumi.Output.all(**hosts),
            identity.client_id if identity else None,
            identity.replica_secret_arn if identity else None,
        )

        def definition(values: list[Any]) -> str:
            topic_arn, ids, probe_arn, name_servers, subnet_hosts, client_id, secret_arn = values
            target = ProbeTarget(
                function_arn=probe_arn,
                name_servers=sorted(name_servers),
                region_record_name=args.region_record_name,
                domain=args.domain,
                path=args.health_path,
                subnet_hosts=subnet_hosts,
            )
            return json.dumps(
                drill_definition(
                    health_check_ids=ids,
                    hosted_zone_id=args.hosted_zone_id,
                    regions_record_name=args.regions_record_name,
                    topic_arn=topic_arn,
                    probe=target,
                    timing=args.timing,
                    identity=IdentityTarget(
                        function_arn=probe_arn,
                        primary_region=identity.primary_region,
                        region=identity.region,
                        client_id=client_id,
                        secret_arn=secret_arn,
                    )
                    if identity
                    else None,
                )
            )

        def policy(values: list[Any]) -> str:
            topic_arn, ids, probe_arn, *_ = values
            arns = [
                health_check_arn(arn_part(topic_arn, 1), health_check_id) for health_check_id in ids.values()
            ]
            return policy_document(
                drill_policy(health_check_arns=arns, topic_arn=topic_arn, probe_function_arn=probe_arn)[
                    "Statement"
                ]
            )

        return StateMachineWithRole(
            f"{name}-machine",
            machine_name=aws_name,
            description=f"Failover drill of {aws_name}: invert/restore its health checks, probe, report",
            definition=resolved.apply(definition),
            policy=resolved.apply(policy),
            opts=here,
        )

    def _schedule(
        self,
        name: str,
        aws_name: str,
        args: FailoverDrillArgs,
        machine: StateMachineWithRole,
        here: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """The EventBridge Scheduler schedule that drills the secondary region, with its own role."""
        role, role_policy = invoker_role(
            f"{name}-scheduler",
            service="scheduler.amazonaws.com",
            description=f"{aws_name}: lets the drill schedule start the drill, nothing else",
            state_machine_arn=machine.state_machine.arn,
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
                "arn": machine.state_machine.arn,
                "role_arn": role.arn,
                "input": json.dumps({"region": args.scheduled_region}),
                # A drill that did not start is not started again later: the next one will run.
                "retry_policy": {"maximum_retry_attempts": 0},
            },
            opts=pulumi.ResourceOptions.merge(here, pulumi.ResourceOptions(depends_on=[role_policy])),
        )
        return schedule.name
