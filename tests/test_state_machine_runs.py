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

from components.failover_drill import TEST_DNS_ANSWER, UPDATE_HEALTH_CHECK, DrillTiming, drill_definition
from components.incident_response import GET_HEALTH_CHECK_STATUS, runbook_definition
from components.step_functions import SNS_PUBLISH
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


def drill() -> dict[str, Any]:
    return drill_definition(
        health_check_ids=CHECKS,
        hosted_zone_id="Z0123456789ABCDEFGHIJ",
        regions_record_name="_regions.api.example.com",
        topic_arn=TOPIC,
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


def test_a_passing_drill_inverts_sees_the_failover_restores_sees_both_and_reports(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                TEST_DNS_ANSWER: [
                    answered("us-east-1", "us-east-2"),  # baseline
                    answered("us-east-2", "us-east-1"),  # not yet failed over
                    answered("us-east-1"),  # failed over
                    answered("us-east-1"),  # not yet back
                    answered("us-east-1", "us-east-2"),  # back
                ],
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{"MessageId": "1"}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "SUCCEEDED", outcome
    assert updates(outcome) == [("hc-east-2", True), ("hc-east-2", False)]
    [report] = published(outcome)
    assert report["TopicArn"] == TOPIC
    assert report["Subject"] == "Failover drill passed for us-east-2"
    assert "answered with us-east-1 only" in report["Message"]
    assert "execution:simulated:1" in report["Message"]
    dns_asks = [c["args"] for c in outcome["calls"] if c["resource"] == TEST_DNS_ANSWER]
    assert dns_asks[0] == {"HostedZoneId": "Z0123456789ABCDEFGHIJ", "RecordName": "_regions.api.example.com",
                           "RecordType": "TXT"}  # fmt: skip
    assert len(dns_asks) == 5


def test_a_drill_whose_failover_is_never_seen_restores_and_fails(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-1"},
            "answers": {
                TEST_DNS_ANSWER: [answered("us-east-1", "us-east-2")],  # Route 53 never drops us-east-1
                UPDATE_HEALTH_CHECK: [{}],
                SNS_PUBLISH: [{"MessageId": "1"}],
            },
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed"
    assert updates(outcome) == [("hc-east-1", True), ("hc-east-1", False)]
    assert outcome["visited"].count("CheckFailover") == 4  # max_polls
    [report] = published(outcome)
    assert report["Subject"] == "Failover drill FAILED for us-east-1"
    assert "NotFailedOver" in report["Message"] and "was restored" in report["Message"]


@pytest.mark.parametrize(
    "failing",
    [
        {UPDATE_HEALTH_CHECK: [{"error": "Route53.PriorRequestNotCompleteException", "cause": "busy"}, {}]},
        {
            TEST_DNS_ANSWER: [
                answered("us-east-1", "us-east-2"),
                {"error": "Route53.InvalidInputException", "cause": "bad"},
                answered("us-east-1", "us-east-2"),
            ]
        },
    ],
    ids=["inversion fails", "checking fails"],
)
def test_any_failure_after_the_inversion_restores_the_health_check(failing: dict, tmp_path: Path) -> None:
    answers = {
        TEST_DNS_ANSWER: [answered("us-east-1", "us-east-2")],
        UPDATE_HEALTH_CHECK: [{}],
        SNS_PUBLISH: [{}],
    }
    answers.update(failing)
    # An error that survives the retries: every answer but the last fails, and retries take 4 of them.
    for resource, script in failing.items():
        answers[resource] = [*script[:-1], *[script[-2]] * 4, script[-1]]
    outcome = run(drill(), {"input": {"region": "us-east-2"}, "answers": answers}, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "DrillFailed", outcome
    assert updates(outcome)[-1] == ("hc-east-2", False)
    assert "RestoreAfterFailure" in outcome["visited"]


def test_a_restore_that_keeps_failing_is_reported_with_the_command_that_finishes_it(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {
                TEST_DNS_ANSWER: [answered("us-east-1", "us-east-2"), answered("us-east-1")],
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


def test_the_drill_refuses_when_a_region_is_already_out_and_changes_nothing(tmp_path: Path) -> None:
    outcome = run(
        drill(),
        {
            "input": {"region": "us-east-2"},
            "answers": {TEST_DNS_ANSWER: [answered("us-east-2")], SNS_PUBLISH: [{}]},
        },
        tmp_path,
    )
    assert outcome["status"] == "FAILED" and outcome["error"] == "BaselineNotHealthy"
    assert updates(outcome) == []
    [report] = published(outcome)
    assert "did not start" in report["Message"] and "Nothing was changed" in report["Message"]


def test_the_drill_refuses_an_unknown_region_before_any_call(tmp_path: Path) -> None:
    outcome = run(drill(), {"input": {"region": "eu-west-1"}, "answers": {}}, tmp_path)
    assert outcome["status"] == "FAILED" and outcome["error"] == "UnknownRegion"
    assert outcome["calls"] == []


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


def runbook(with_health: bool = True) -> dict[str, Any]:
    return runbook_definition(
        topic_arn=TOPIC,
        dashboard_url=DASHBOARD,
        health_alarms={HEALTH_ALARM: "us-east-2"} if with_health else {},
        health_check_ids=CHECKS if with_health else {},
    )


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
