"""The runbook and the drill RUN: each definition executed by tests/asl/simulate.js (the JSONata library
Step Functions' query language is) against scripted Route 53 and SNS answers. What is proven: which AWS
calls happen in which order, that every failure after the inversion restores the health check, and what
the on-call reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.failover_drill import (
    TEST_DNS_ANSWER,
    UPDATE_HEALTH_CHECK,
    DrillTiming,
    IdentityTarget,
    ProbeTarget,
    drill_definition,
)
from components.incident_response import GET_HEALTH_CHECK_STATUS, runbook_definition
from components.step_functions import LAMBDA_INVOKE, SNS_PUBLISH
from tests.pulumi_harness import ROOT

SIMULATOR = ROOT / "tests" / "asl" / "simulate.js"
NODE_MODULES = ROOT / "tests" / "asl" / "node_modules"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms"
CHECKS = {"us-east-1": "hc-east-1", "us-east-2": "hc-east-2"}
DASHBOARD = (
    "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/ops"
)
HEALTH_ALARM = "dsql-users-api-prod-ops-us-east-2-health-check"


def run(definition: dict[str, Any], scenario: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    assert (NODE_MODULES / "jsonata").exists(), (
        "install tests/asl with `npm ci --prefix tests/asl` (.ci/run does)"
    )
    definition_path, scenario_path = tmp_path / "definition.json", tmp_path / "scenario.json"
    definition_path.write_text(json.dumps(definition))
    scenario_path.write_text(json.dumps(scenario))
    result = subprocess.run(
        ["node", str(SIMULATOR), str(definition_path), str(scenario_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def answered(*regions: str) -> dict[str, Any]:
    """A TestDNSAnswer response for the regions TXT record (values come back quoted)."""
    return {"RecordData": [f'"{region}"' for region in regions], "ResponseCode": "NOERROR"}


def seen(target: str, dns: str | None, https: str | None) -> dict[str, Any]:
    """The probe's answer through Lambda's Invoke: what a client in ``target`` was sent to and served by."""
    return {
        "Payload": {
            "target": target,
            "clientSubnet": "192.0.2.0/24",
            "dns": {"region": dns, "nameServer": "ns-1.awsdns-01.org", "error": None},
            "https": {"region": https, "address": "198.51.100.7", "status": 200, "error": None},
        },
        "StatusCode": 200,
    }


BASELINE = [seen("us-east-1", "us-east-1", "us-east-1"), seen("us-east-2", "us-east-2", "us-east-2")]
PROBE = ProbeTarget(
    function_arn="arn:aws:lambda:us-east-1:123456789012:function:dsql-users-api-prod-users-api-drill-probe",
    name_servers=["ns-1.awsdns-01.org", "ns-2.awsdns-02.net"],
    region_record_name="_region.api.example.com",
    domain="api.example.com",
    path="/health",
    subnet_hosts={
        "us-east-1": "a1.execute-api.us-east-1.amazonaws.com",
        "us-east-2": "b2.execute-api.us-east-2.amazonaws.com",
    },
)


def drill() -> dict[str, Any]:
    return drill_definition(
        health_check_ids=CHECKS,
        hosted_zone_id="Z0123456789ABCDEFGHIJ",
        regions_record_name="_regions.api.example.com",
        topic_arn=TOPIC,
        probe=PROBE,
        timing=DrillTiming(poll_seconds=30, max_polls=4),
    )


def updates(outcome: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        (c["args"]["HealthCheckId"], c["args"]["Inverted"])
        for c in outcome["calls"]
        if c["resource"] == UPDATE_HEALTH_CHECK
    ]


def published(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["args"] for c in outcome["calls"] if c["resource"] == SNS_PUBLISH]


def probed(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["args"] for c in outcome["calls"] if c["resource"] == LAMBDA_INVOKE]


def test_a_passing_drill_sees_each_observation_fail_over_and_come_back(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [
                    *BASELINE,
                    seen("us-east-2", "us-east-2", "us-east-2"),  # not yet failed over
                    seen("us-east-2", "us-east-1", "us-east-2"),  # DNS moved, HTTPS not yet (a cached answer)
                    seen("us-east-2", "us-east-1", "us-east-1"),  # both moved
                    seen("us-east-2", "us-east-1", "us-east-1"),  # not yet back
                    seen("us-east-2", "us-east-2", "us-east-2"),  # back
                ],
                TEST_DNS_ANSWER: [
                    answered("us-east-1", "us-east-2")
                ],  # the extra: it may not apply health checks
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{"MessageId": "1"}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    assert updates(outcome) == [("hc-east-2", True), ("hc-east-2", False)]
    asked = probed(outcome)
    assert [a["Payload"]["target"] for a in asked] == ["us-east-1", "us-east-2", *["us-east-2"] * 5]
    assert asked[0]["FunctionName"] == PROBE.function_arn
    assert asked[2]["Payload"] == {
        "target": "us-east-2",
        "nameServers": ["ns-1.awsdns-01.org", "ns-2.awsdns-02.net"],
        "regionRecord": "_region.api.example.com",
        "domain": "api.example.com",
        "path": "/health",
        "subnetHosts": PROBE.subnet_hosts,
        "timeoutSeconds": 5,
    }
    [report] = published(outcome)
    assert report["TopicArn"] == TOPIC
    assert report["Subject"] == "Failover drill passed for us-east-2"
    text = report["Message"]
    assert "a client in us-east-2 was sent to us-east-1 by the zone name servers after 0 s (DNS" in text
    assert "served by us-east-1 after 0 s (HTTPS, X-Served-Region)" in text
    assert "sent back after 0 s (DNS) and served by us-east-2 again after 0 s (HTTPS)" in text
    assert (
        "Extra, not evidence: Route 53 TestDNSAnswer (not documented to apply health checks) answered" in text
    )
    assert "us-east-1,us-east-2 during the outage" in text
    assert "execution:simulated:1" in text


def test_dns_alone_is_not_a_failover_the_https_answer_must_move_too(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-2", "us-east-1", "us-east-2")],  # HTTPS never moves
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed"
    assert outcome["visited"].count("ProbeFailover") == 4  # max_polls
    assert updates(outcome) == [("hc-east-2", True), ("hc-east-2", False)]
    [report] = published(outcome)
    assert report["Subject"] == "Failover drill FAILED for us-east-2"
    assert "NotFailedOver" in report["Message"] and "was restored" in report["Message"]


def test_a_drill_whose_failover_is_never_seen_restores_and_fails(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-1"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-1", "us-east-1", "us-east-1")],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{"MessageId": "1"}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed"
    assert updates(outcome) == [("hc-east-1", True), ("hc-east-1", False)]
    assert TEST_DNS_ANSWER not in [c["resource"] for c in outcome["calls"]]  # the extra is asked only after


@pytest.mark.parametrize(
    "failing",
    [
        {UPDATE_HEALTH_CHECK: [{"error": "Route53.PriorRequestNotCompleteException", "cause": "busy"}, {}]},
        {LAMBDA_INVOKE: [*BASELINE, {"error": "Lambda.ServiceException", "cause": "bad"}, BASELINE[1]]},
    ],
    ids=["inversion fails", "probing fails"],
)
def test_any_failure_after_the_inversion_restores_the_health_check(failing: dict, tmp_path: Path) -> None:
    answers = {LAMBDA_INVOKE: [*BASELINE], UPDATE_HEALTH_CHECK: [{}], SNS_PUBLISH: [{}]}
    answers.update(failing)
    # An error that survives the retries: every answer but the last fails, and retries take 4 of them.
    for resource, script in failing.items():
        answers[resource] = [*script[:-1], *[script[-2]] * 4, script[-1]]
    outcome = run(drill(), {"input": {"region": "us-east-2"}, "answers": answers}, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed", outcome
    assert updates(outcome)[-1] == ("hc-east-2", False)
    assert "RestoreAfterFailure" in outcome["visited"]


def test_a_failing_test_dns_answer_is_only_reported_never_fatal(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-2", "us-east-1", "us-east-1"), BASELINE[1]],
                TEST_DNS_ANSWER: [{"error": "Route53.AccessDenied", "cause": "no"}],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    assert "answered no answer (Route53.AccessDenied) during the outage" in published(outcome)[0]["Message"]


def test_a_restore_that_keeps_failing_is_reported_with_the_command_that_finishes_it(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-2", "us-east-1", "us-east-1")],
                TEST_DNS_ANSWER: [answered("us-east-1")],
                UPDATE_HEALTH_CHECK: [{}, {"error": "Route53.ThrottlingException", "cause": "Rate exceeded"}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "RestoreFailed"
    assert updates(outcome)[0] == ("hc-east-2", True)
    assert updates(outcome)[1:] == [("hc-east-2", False)] * 7  # the first try and six retries
    [report] = published(outcome)
    assert report["Subject"].startswith("RESTORE FAILED")
    assert "aws route53 update-health-check --health-check-id hc-east-2 --no-inverted" in report["Message"]


def test_a_restore_not_seen_names_what_the_probe_still_sees(tmp_path: Path) -> None:
    moved = seen("us-east-2", "us-east-1", "us-east-1")
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, moved],  # never back
                TEST_DNS_ANSWER: [answered("us-east-1")],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "RestoreNotSeen"
    assert (
        "still not sent to and served by it: DNS us-east-1, HTTPS us-east-1"
        in published(outcome)[0]["Message"]
    )


@pytest.mark.parametrize(
    "baseline",
    [
        [seen("us-east-1", "us-east-2", "us-east-2"), BASELINE[1]],  # us-east-1 is already out
        [BASELINE[0], seen("us-east-2", "us-east-2", None)],  # us-east-2 answers no HTTPS
    ],
    ids=["a region is out", "no https answer"],
)
def test_the_drill_refuses_unless_every_region_serves_itself_and_changes_nothing(
    baseline: list[dict[str, Any]], tmp_path: Path
) -> None:
    outcome = run(
        drill(),
        {"input": {"region": "us-east-2"}, "answers": {LAMBDA_INVOKE: baseline, SNS_PUBLISH: [{}]}},
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "BaselineNotHealthy"
    assert updates(outcome) == []
    [report] = published(outcome)
    assert "did not start" in report["Message"] and "Nothing was changed" in report["Message"]
    assert "us-east-1: DNS" in report["Message"] and "us-east-2: DNS" in report["Message"]


def test_the_drill_refuses_an_unknown_region_before_any_call(tmp_path: Path) -> None:
    outcome = run(drill(), {"input": {"region": "eu-west-1"}, "answers": {}}, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "UnknownRegion"
    assert outcome["calls"] == []


# ---------------------------------------------------------------- the drill's identity check (authReplica)

IDENTITY = IdentityTarget(
    function_arn=PROBE.function_arn,
    primary_region="us-east-1",
    region="us-east-2",
    client_id="drillclient0123456789abcdef",
    secret_arn="arn:aws:secretsmanager:us-east-2:123456789012:secret:dsql-users-api-prod-failover-drill-AbCdEf",
)


def drill_with_identity() -> dict[str, Any]:
    return drill_definition(
        health_check_ids=CHECKS,
        hosted_zone_id="Z0123456789ABCDEFGHIJ",
        regions_record_name="_regions.api.example.com",
        topic_arn=TOPIC,
        probe=PROBE,
        timing=DrillTiming(poll_seconds=30, max_polls=4),
        identity=IDENTITY,
    )


def identity_seen(sign_in: str, refresh: str) -> dict[str, Any]:
    """The probe's answer to an identity event through Lambda's Invoke."""
    return {
        "Payload": {
            "identity": {"region": "us-east-2", "signIn": sign_in, "refresh": refresh},
            "elapsedMs": 900,
        },
        "StatusCode": 200,
    }


def primary_drill(identity_answer: dict[str, Any]) -> dict[str, Any]:
    """A drill of us-east-1 (the pool's region) that fails over and comes back, with ``identity_answer``."""
    return {
        "input": {"region": "us-east-1"},
        "answers": {
            LAMBDA_INVOKE: [
                *BASELINE,
                seen("us-east-1", "us-east-2", "us-east-2"),  # failed over
                identity_answer,
                seen("us-east-1", "us-east-1", "us-east-1"),  # back
            ],
            TEST_DNS_ANSWER: [answered("us-east-2")],
            UPDATE_HEALTH_CHECK: [{}],
            SNS_PUBLISH: [{}],
        },
    }


def test_a_drill_of_the_primary_signs_in_and_refreshes_at_the_replica_once_failover_is_seen(
    tmp_path: Path,
) -> None:
    outcome = run(drill_with_identity(), primary_drill(identity_seen("ok", "ok")), tmp_path)
    assert outcome["status"] == "SUCCEEDED", outcome
    asked = probed(outcome)
    assert [a["Payload"].get("target") for a in asked] == [
        "us-east-1",
        "us-east-2",
        "us-east-1",
        None,
        "us-east-1",
    ]
    assert asked[3] == {"FunctionName": PROBE.function_arn, "Payload": IDENTITY.payload()}
    assert asked[3]["Payload"] == {
        "identity": {"region": "us-east-2", "clientId": IDENTITY.client_id, "secretArn": IDENTITY.secret_arn},
        "timeoutSeconds": 5,
    }
    # Once, after failover was seen and before the restore.
    order = [c["resource"] for c in outcome["calls"]]
    identity_call = [i for i, c in enumerate(outcome["calls"]) if "identity" in c["args"].get("Payload", {})]
    assert identity_call == [order.index(TEST_DNS_ANSWER) + 1]
    assert updates(outcome) == [("hc-east-1", True), ("hc-east-1", False)]
    [report] = published(outcome)
    assert report["Subject"] == "Failover drill passed for us-east-1"
    assert (
        "Identity (the drill user at Cognito in us-east-2): sign-in in us-east-2: ok; token refresh in "
        "us-east-2: ok." in report["Message"]
    )


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (
            identity_seen(
                "NotAuthorizedException: Incorrect username or password.", "not tried (no sign-in)"
            ),
            "sign-in in us-east-2: failed (NotAuthorizedException: Incorrect username or password.); "
            "token refresh in us-east-2: failed (not tried (no sign-in)).",
        ),
        (
            identity_seen("ok", "NotAuthorizedException: Invalid Refresh Token"),
            "sign-in in us-east-2: ok; token refresh in us-east-2: failed (NotAuthorizedException: Invalid "
            "Refresh Token).",
        ),
        (
            {"error": "Lambda.ServiceException", "cause": "the probe could not run"},
            "sign-in in us-east-2: failed (the probe failed: Lambda.ServiceException); token refresh in "
            "us-east-2: failed (not tried).",
        ),
    ],
    ids=["sign-in fails", "refresh fails", "the probe fails"],
)
def test_an_identity_failure_still_restores_then_fails_the_drill_and_says_why(
    answer: dict[str, Any], says: str, tmp_path: Path
) -> None:
    scenario = primary_drill(answer)
    if "error" in answer:  # a failure that outlives the invocation's retries
        script = scenario["answers"][LAMBDA_INVOKE]
        scenario["answers"][LAMBDA_INVOKE] = [*script[:3], *[answer] * 4, script[4]]
    outcome = run(drill_with_identity(), scenario, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "IdentityFailed", outcome
    # The restore ran, and was seen, before the verdict.
    assert updates(outcome) == [("hc-east-1", True), ("hc-east-1", False)]
    assert outcome["visited"].index("ProbeRestore") < outcome["visited"].index("ReportIdentityFailed")
    [report] = published(outcome)
    assert report["Subject"] == "Failover drill FAILED (sign-in) for us-east-1"
    text = report["Message"]
    assert says in text
    assert "users could not sign in or keep their session in us-east-2 with us-east-1 out" in text
    assert "served by us-east-2 after 0 s (HTTPS, X-Served-Region)" in text  # the failover itself passed
    assert "list-user-pool-replicas --region us-east-1" in text


def test_a_drill_of_the_secondary_does_not_check_identity_and_says_so(tmp_path: Path) -> None:
    outcome = run(
        drill_with_identity(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-2", "us-east-1", "us-east-1"), BASELINE[1]],
                TEST_DNS_ANSWER: [answered("us-east-1")],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    assert not [a for a in probed(outcome) if "identity" in a["Payload"]]
    assert (
        "Sign-in and token refresh in us-east-2: not checked (only a drill of us-east-1, where the user pool lives,"
        in published(outcome)[0]["Message"]
    )


def test_an_identity_failure_is_named_even_when_the_restore_is_not_seen(tmp_path: Path) -> None:
    scenario = primary_drill(identity_seen("ok", "NotAuthorizedException: Invalid Refresh Token"))
    scenario["answers"][LAMBDA_INVOKE][-1] = seen("us-east-1", "us-east-2", "us-east-2")  # never back
    outcome = run(drill_with_identity(), scenario, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "RestoreNotSeen"
    assert "token refresh in us-east-2: failed (NotAuthorizedException" in published(outcome)[0]["Message"]


def test_a_drill_that_never_fails_over_never_checks_identity(tmp_path: Path) -> None:
    outcome = run(
        drill_with_identity(),
        {
            "input": {"region": "us-east-1"},
            "answers": {
                LAMBDA_INVOKE: [*BASELINE, seen("us-east-1", "us-east-1", "us-east-1")],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed"
    assert not [a for a in probed(outcome) if "identity" in a["Payload"]]
    assert updates(outcome)[-1] == ("hc-east-1", False)


# ---------------------------------------------------------------- the incident runbook


def alarm_event(name: str, state: str = "ALARM", previous: str = "OK") -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "region": "us-east-1",
        "time": "2026-11-28T10:00:00Z",
        "detail": {
            "alarmName": name,
            "state": {"value": state, "reason": "Threshold Crossed: 3 datapoints were less than 1.0"},
            "previousState": {"value": previous},
        },
    }


def observations(healthy: int, total: int = 16) -> dict[str, Any]:
    report = [
        {"Region": "us-east-1", "StatusReport": {"Status": "Success: HTTP Status Code 200, OK"}}
    ] * healthy
    report += [{"Region": "eu-west-1", "StatusReport": {"Status": "Failure: Connection timed out"}}] * (
        total - healthy
    )
    return {"HealthCheckObservations": report}


def runbook(with_health: bool = True, sign_in: bool = False) -> dict[str, Any]:
    return runbook_definition(
        topic_arn=TOPIC,
        dashboard_url=DASHBOARD,
        health_alarms={HEALTH_ALARM: "us-east-2"} if with_health else {},
        health_check_ids=CHECKS if with_health else {},
        sign_in_failover=("us-east-1", "us-east-2") if sign_in else None,
    )


@pytest.mark.parametrize(
    ("east_healthy", "expected"),
    [
        (16, "Sign-in: the managed-login domain is served by us-east-1 (the user pool). A Cognito outage"),
        (
            1,
            "Sign-in: the managed-login domain has failed over to the replica in us-east-2. Sign-in and token",
        ),
    ],
)
def test_with_a_replicated_pool_the_runbook_says_where_sign_in_is_served(
    east_healthy: int, expected: str, tmp_path: Path
) -> None:
    outcome = run(
        runbook(sign_in=True),
        {
            "input": alarm_event(HEALTH_ALARM),
            "answers": {
                GET_HEALTH_CHECK_STATUS: [observations(east_healthy), observations(16)],
                SNS_PUBLISH: [{}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    text = published(outcome)[0]["Message"]
    assert expected in text
    assert text.count("Sign-in:") == 1


def test_without_a_replica_or_for_another_alarm_nothing_is_said_about_sign_in(tmp_path: Path) -> None:
    answers = {GET_HEALTH_CHECK_STATUS: [observations(16)], SNS_PUBLISH: [{}]}
    plain = run(runbook(), {"input": alarm_event(HEALTH_ALARM), "answers": answers}, tmp_path)
    assert "Sign-in" not in published(plain)[0]["Message"]
    other = run(
        runbook(with_health=False, sign_in=True),
        {"input": alarm_event("users-api-errors"), "answers": {SNS_PUBLISH: [{}]}},
        tmp_path,
    )
    assert "Sign-in" not in published(other)[0]["Message"]


def test_a_health_check_alarm_reads_both_health_checks_and_names_the_region_that_serves(
    tmp_path: Path,
) -> None:
    outcome = run(
        runbook(),
        {
            "input": alarm_event(HEALTH_ALARM),
            "answers": {GET_HEALTH_CHECK_STATUS: [observations(16), observations(1)], SNS_PUBLISH: [{}]},
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    asked = [c["args"]["HealthCheckId"] for c in outcome["calls"] if c["resource"] == GET_HEALTH_CHECK_STATUS]
    assert asked == ["hc-east-1", "hc-east-2"]
    [message] = published(outcome)
    assert message["Subject"] == f"[ALARM] {HEALTH_ALARM}"
    text = message["Message"]
    assert f"CloudWatch alarm {HEALTH_ALARM} went from OK to ALARM in us-east-1" in text
    assert "us-east-1: 16 of 16 checkers see it healthy; us-east-2: 1 of 16" in text
    assert "Route 53 answers with: us-east-1." in text  # 1 of 16 is under Route 53's 18 %
    assert f"Dashboard: {DASHBOARD}" in text
    assert f"#alarmsV2:alarm/{HEALTH_ALARM}" in text


def test_when_no_region_is_healthy_the_runbook_says_route53_fails_open(tmp_path: Path) -> None:
    outcome = run(
        runbook(),
        {
            "input": alarm_event(HEALTH_ALARM),
            "answers": {GET_HEALTH_CHECK_STATUS: [observations(0)], SNS_PUBLISH: [{}]},
        },
        tmp_path,
    )
    assert "fails open and answers with every region" in published(outcome)[0]["Message"]


def test_an_unreadable_health_check_is_reported_not_fatal(tmp_path: Path) -> None:
    failing = {"error": "Route53.NoSuchHealthCheckException", "cause": "gone"}
    outcome = run(
        runbook(),
        {
            "input": alarm_event(HEALTH_ALARM),
            "answers": {GET_HEALTH_CHECK_STATUS: [failing], SNS_PUBLISH: [{}]},
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED"
    text = published(outcome)[0]["Message"]
    assert "Could not read the Route 53 health checks: Route53.NoSuchHealthCheckException" in text
    assert "Route 53 answers with" not in text


def test_any_other_alarm_is_published_without_reading_route53(tmp_path: Path) -> None:
    name = "dsql-users-api-prod-ops-us-east-1-api-5xx-rate"
    for definition in (runbook(), runbook(with_health=False)):
        outcome = run(
            definition, {"input": alarm_event(name, "OK", "ALARM"), "answers": {SNS_PUBLISH: [{}]}}, tmp_path
        )
        assert outcome["status"] == "SUCCEEDED"
        assert [c["resource"] for c in outcome["calls"]] == [SNS_PUBLISH]
        [message] = published(outcome)
        assert message["Subject"] == f"[OK] {name}"
        assert "went from ALARM to OK" in message["Message"] and "health checks" not in message["Message"]


def test_subjects_stay_under_sns_limit_for_the_longest_alarm_name(tmp_path: Path) -> None:
    """SNS refuses a Subject of 100 characters or more; CloudWatch alarm names may have 255."""
    name = "a" * 255
    outcome = run(
        runbook(with_health=False), {"input": alarm_event(name), "answers": {SNS_PUBLISH: [{}]}}, tmp_path
    )
    [message] = published(outcome)
    assert message["Subject"] == f"[ALARM] {name}"[:99]
    assert len(message["Subject"]) < 100
