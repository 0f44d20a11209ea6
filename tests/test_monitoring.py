"""Monitoring under Pulumi mocks: alarms per region into that region's topic (Lambda, API Gateway and
Aurora DSQL), health check alarms in us-east-1 (the only region with Route 53 metrics), e-mail
subscriptions, the two-region dashboard, and the incident runbooks wired to exactly this stack's alarms."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components.config import load_config
from components.monitoring import (
    DSQL_CLUSTER_DIMENSION,
    DSQL_NAMESPACE,
    AlarmThresholds,
    MonitoredRegion,
    Monitoring,
    MonitoringArgs,
)
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ProgramRun, Registered

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
REGIONS = ("us-east-1", "us-east-2", "eu-west-1")


def cluster_id(region: str) -> str:
    return f"cluster{region.replace('-', '')}".ljust(26, "a")


def monitoring_program(
    regions: tuple[str, str] | None = None, with_health_checks: bool = True, with_clusters: bool = True
):
    def program() -> None:
        config = load_config()
        app_regions = regions or config.app_regions
        providers = {region: aws.Provider(f"aws-{region}", region=region) for region in app_regions}
        east = None
        if "us-east-1" not in providers:
            east = aws.Provider("aws-us-east-1", region="us-east-1")
        monitoring = Monitoring(
            "ops",
            MonitoringArgs(
                regions=[
                    MonitoredRegion(
                        region=region,
                        provider=providers[region],
                        function_name=f"fn-{region}",
                        rest_api_name=f"api-{region}",
                        stage_name=config.stage_name,
                        health_check_id=pulumi.Output.from_input(f"hc-{region}")
                        if with_health_checks
                        else None,
                        cluster_identifier=pulumi.Output.from_input(cluster_id(region))
                        if with_clusters
                        else None,
                    )
                    for region in app_regions
                ],
                alarm_email=config.alarm_email,
                health_alarm_provider=east,
                tags=config.tags,
            ),
        )
        pulumi.export("topicArns", monitoring.topic_arns)
        pulumi.export("dashboardName", monitoring.dashboard_name)
        pulumi.export("runbookArns", monitoring.runbook_arns)

    return program


def about(resource_name: str) -> str:
    """The region an alarm (or runbook) is about, named in its resource name."""
    return next(region for region in REGIONS if f"-{region}-" in f"{resource_name}-")


def alarms(run: ProgramRun, metric: str) -> dict[str, Registered]:
    """Alarms on one metric, keyed by the region the alarm is about."""
    return {about(a.name): a for a in run.of_type(ALARM) if a.inputs.get("metricName") == metric}


def topic_arn(run: ProgramRun, region: str) -> str:
    return run.one(TOPIC, region).outputs["arn"]


@pytest.fixture(scope="module")
def default_run() -> ProgramRun:
    return run_ops_program(program=monitoring_program())


@pytest.mark.parametrize(
    ("metric", "namespace", "statistic", "dimensions"),
    [
        ("Errors", "AWS/Lambda", "Sum", lambda r: {"FunctionName": f"fn-{r}"}),
        ("Throttles", "AWS/Lambda", "Sum", lambda r: {"FunctionName": f"fn-{r}"}),
        ("Duration", "AWS/Lambda", "p99", lambda r: {"FunctionName": f"fn-{r}"}),
        ("ConcurrentExecutions", "AWS/Lambda", "Maximum", lambda r: {"FunctionName": f"fn-{r}"}),
        ("5XXError", "AWS/ApiGateway", "Average", lambda r: {"ApiName": f"api-{r}", "Stage": "v1"}),
        ("4XXError", "AWS/ApiGateway", "Average", lambda r: {"ApiName": f"api-{r}", "Stage": "v1"}),
        ("Latency", "AWS/ApiGateway", "p99", lambda r: {"ApiName": f"api-{r}", "Stage": "v1"}),
        ("CommitLatency", "AWS/AuroraDSQL", "Average", lambda r: {"ClusterId": cluster_id(r)}),
    ],
)
def test_each_region_has_its_alarm_in_its_region_publishing_to_its_own_topic(
    default_run: ProgramRun, metric: str, namespace: str, statistic: str, dimensions: Any
) -> None:
    run = default_run
    found = alarms(run, metric)
    assert set(found) == {"us-east-1", "us-east-2"}
    for region, alarm in found.items():
        assert alarm.region == region
        assert alarm.inputs["namespace"] == namespace
        assert alarm.inputs["dimensions"] == dimensions(region)
        if statistic.startswith("p"):
            assert alarm.inputs["extendedStatistic"] == statistic
            assert "statistic" not in alarm.inputs
        else:
            assert alarm.inputs["statistic"] == statistic
        assert alarm.inputs["alarmActions"] == [topic_arn(run, region)]
        assert alarm.inputs["okActions"] == [topic_arn(run, region)]
        assert alarm.inputs["name"] == f"dsql-users-api-prod-{alarm.name}"


def test_api_rates_are_shares_and_latencies_are_milliseconds(default_run: ProgramRun) -> None:
    t = AlarmThresholds()
    assert 0 < alarms(default_run, "5XXError")["us-east-2"].inputs["threshold"] == t.api_5xx_rate < 1
    assert 0 < alarms(default_run, "4XXError")["us-east-2"].inputs["threshold"] == t.api_4xx_rate < 1
    assert alarms(default_run, "Latency")["us-east-2"].inputs["threshold"] == t.api_p99_latency_ms
    assert alarms(default_run, "Duration")["us-east-2"].inputs["threshold"] == t.lambda_p99_duration_ms


def test_the_occ_conflict_rate_is_metric_math_over_the_clusters_own_counts(default_run: ProgramRun) -> None:
    rates = {about(a.name): a for a in default_run.of_type(ALARM) if a.inputs.get("metricQueries")}
    assert set(rates) == {"us-east-1", "us-east-2"}
    for region, alarm in rates.items():
        assert alarm.region == region
        queries = {q["id"]: q for q in alarm.inputs["metricQueries"]}
        assert set(queries) == {"conflicts", "transactions", "rate"}
        for query_id, metric_name in (("conflicts", "OccConflicts"), ("transactions", "TotalTransactions")):
            metric = queries[query_id]["metric"]
            assert metric["namespace"] == DSQL_NAMESPACE == "AWS/AuroraDSQL"
            assert metric["metricName"] == metric_name
            assert metric["dimensions"] == {DSQL_CLUSTER_DIMENSION: cluster_id(region)}
            assert metric["stat"] == "Sum"
            assert metric["period"] == 60
            assert queries[query_id]["returnData"] is False
        rate = queries["rate"]
        assert rate["returnData"] is True
        assert rate["expression"] == "IF(transactions >= 20, conflicts / transactions, 0)"
        # A metric-math alarm names no metric of its own.
        assert "metricName" not in alarm.inputs and "namespace" not in alarm.inputs
        assert alarm.inputs["threshold"] == AlarmThresholds().dsql_occ_conflict_rate
        assert alarm.inputs["alarmActions"] == [topic_arn(default_run, region)]


def test_health_check_alarms_live_in_us_east_1_and_publish_to_its_topic(default_run: ProgramRun) -> None:
    run = default_run
    found = alarms(run, "HealthCheckStatus")
    assert set(found) == {"us-east-1", "us-east-2"}
    for region, alarm in found.items():
        assert alarm.region == "us-east-1"  # Route 53 metrics exist only there
        assert alarm.inputs["namespace"] == "AWS/Route53"
        assert alarm.inputs["dimensions"] == {"HealthCheckId": f"hc-{region}"}
        assert alarm.inputs["comparisonOperator"] == "LessThanThreshold"
        assert alarm.inputs["alarmActions"] == [topic_arn(run, "us-east-1")]
    assert len(run.of_type(TOPIC)) == 2  # us-east-1 is an app region: its topic is reused


def test_without_us_east_1_among_the_app_regions_health_alarms_get_a_us_east_1_topic() -> None:
    run = run_ops_program(program=monitoring_program(regions=("us-east-2", "eu-west-1")))
    assert {t.region for t in run.of_type(TOPIC)} == {"us-east-1", "us-east-2", "eu-west-1"}
    for alarm in alarms(run, "HealthCheckStatus").values():
        assert alarm.region == "us-east-1"
        assert alarm.inputs["alarmActions"] == [topic_arn(run, "us-east-1")]
    assert alarms(run, "Errors")["eu-west-1"].region == "eu-west-1"
    # us-east-1 holds only the health alarms, and gets a runbook for them.
    assert {m.region for m in run.of_type(STATE_MACHINE)} == {"us-east-1", "us-east-2", "eu-west-1"}


def test_without_health_checks_or_clusters_there_is_no_health_or_database_alarm() -> None:
    run = run_ops_program(program=monitoring_program(with_health_checks=False, with_clusters=False))
    assert alarms(run, "HealthCheckStatus") == {}
    assert alarms(run, "CommitLatency") == {}
    assert len(run.of_type(ALARM)) == 2 * 7


def test_alarm_email_subscribes_to_every_topic_and_no_email_subscribes_nobody(
    default_run: ProgramRun,
) -> None:
    assert default_run.of_type(SUBSCRIPTION) == []
    run = run_ops_program({"alarmEmail": "oncall@example.com"}, program=monitoring_program())
    subscriptions = run.of_type(SUBSCRIPTION)
    assert {s.region for s in subscriptions} == {"us-east-1", "us-east-2"}
    for subscription in subscriptions:
        assert subscription.inputs["protocol"] == "email"
        assert subscription.inputs["endpoint"] == "oncall@example.com"
        assert subscription.inputs["topic"] == topic_arn(run, str(subscription.region))


def widgets_by_region(run: ProgramRun) -> dict[str, list[dict]]:
    widgets = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])["widgets"]
    by_region: dict[str, list[dict]] = {}
    for widget in widgets:
        by_region.setdefault(widget["properties"]["title"].split(":")[0], []).append(widget)
    return by_region


def test_one_dashboard_shows_both_regions_side_by_side(default_run: ProgramRun) -> None:
    run = default_run
    dashboard = run.one(DASHBOARD)
    assert dashboard.region == "us-east-1"
    by_region = widgets_by_region(run)
    assert set(by_region) == {"us-east-1", "us-east-2"}
    assert {w["x"] for w in by_region["us-east-1"]} == {0}
    assert {w["x"] for w in by_region["us-east-2"]} == {12}
    # Same rows in both columns, so each signal is compared side by side.
    assert sorted(w["y"] for w in by_region["us-east-1"]) == sorted(w["y"] for w in by_region["us-east-2"])
    east_2_metrics = [w["properties"] for w in by_region["us-east-2"]]
    assert any(p["region"] == "us-east-2" and p["metrics"][0][3] == "fn-us-east-2" for p in east_2_metrics)
    health = [p for p in east_2_metrics if p["metrics"][0][:2] == ["AWS/Route53", "HealthCheckStatus"]]
    assert health and health[0]["region"] == "us-east-1"
    assert run.outputs["dashboardName"] == dashboard.inputs["dashboardName"]


def test_the_dashboard_shows_every_alarmed_signal_and_the_database(default_run: ProgramRun) -> None:
    for region, widgets in widgets_by_region(default_run).items():
        plotted = {
            (line[0], line[1])
            for w in widgets
            for line in w["properties"]["metrics"]
            if isinstance(line[0], str)
        }
        for metric in (("AWS/Lambda", "Duration"), ("AWS/Lambda", "ConcurrentExecutions"),
                       ("AWS/ApiGateway", "4XXError"), ("AWS/ApiGateway", "5XXError"),
                       ("AWS/AuroraDSQL", "TotalTransactions"), ("AWS/AuroraDSQL", "OccConflicts"),
                       ("AWS/AuroraDSQL", "CommitLatency")):  # fmt: skip
            assert metric in plotted, (region, metric)
        [rate] = [w["properties"] for w in widgets if "OCC conflict rate" in w["properties"]["title"]]
        expression, conflicts, transactions = rate["metrics"]
        assert expression[0]["expression"] == "IF(transactions >= 20, conflicts / transactions, 0)"
        assert conflicts == ["AWS/AuroraDSQL", "OccConflicts", "ClusterId", cluster_id(region),
                             {"id": "conflicts", "visible": False}]  # fmt: skip
        assert transactions[:4] == ["AWS/AuroraDSQL", "TotalTransactions", "ClusterId", cluster_id(region)]
        assert rate["region"] == region


# ---------------------------------------------------------------- incident response wiring


def test_each_alarm_region_has_a_rule_on_exactly_its_own_alarms(default_run: ProgramRun) -> None:
    run = default_run
    rules = {r.region: r for r in run.of_type(RULE)}
    assert set(rules) == {"us-east-1", "us-east-2"}
    for region, rule in rules.items():
        pattern = json.loads(rule.inputs["eventPattern"])
        assert pattern["source"] == ["aws.cloudwatch"]
        assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
        living_here = sorted(a.inputs["name"] for a in run.of_type(ALARM) if a.region == region)
        assert pattern["detail"]["alarmName"] == living_here
        assert pattern["detail"]["$or"] == [
            {"state": {"value": ["ALARM"]}},
            {"previousState": {"value": ["ALARM"]}},
        ]
    # us-east-1 holds its own alarms and both regions' health check alarms.
    assert len(json.loads(rules["us-east-1"].inputs["eventPattern"])["detail"]["alarmName"]) == 9 + 2
    assert len(json.loads(rules["us-east-2"].inputs["eventPattern"])["detail"]["alarmName"]) == 9


def test_rule_targets_start_the_runbook_through_a_role_that_may_do_nothing_else(
    default_run: ProgramRun,
) -> None:
    run = default_run
    machines = {m.region: m for m in run.of_type(STATE_MACHINE)}
    roles = {r.name: r for r in run.of_type(ROLE)}
    policies = {p.name: p for p in run.of_type(ROLE_POLICY)}
    rules = {r.region: r for r in run.of_type(RULE)}
    assert run.outputs["runbookArns"] == {region: m.outputs["arn"] for region, m in machines.items()}
    for target in run.of_type(TARGET):
        region = str(target.region)
        machine = machines[region]
        assert machine.inputs["type"] == "STANDARD"
        assert target.inputs["arn"] == machine.outputs["arn"]
        assert target.inputs["rule"] == rules[region].outputs["name"]
        [role] = [r for r in roles.values() if r.outputs["arn"] == target.inputs["roleArn"]]
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
        assert trust[0]["Condition"]["ArnEquals"]["aws:SourceArn"] == rules[region].outputs["arn"]
        assert trust[0]["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
        [policy] = [
            p for p in policies.values() if p.inputs["role"] == role.outputs.get("id", f"{role.name}-id")
        ]
        assert json.loads(policy.inputs["policy"])["Statement"] == [
            {"Effect": "Allow", "Action": "states:StartExecution", "Resource": machine.outputs["arn"]}
        ]
        assert run.depends_on[target.name] == [policy.name]


def test_runbooks_are_optional() -> None:
    def program() -> None:
        provider = aws.Provider("aws-us-east-2", region="us-east-2")
        Monitoring(
            "ops",
            MonitoringArgs(
                regions=[MonitoredRegion("us-east-2", provider, "fn", "api", "v1")], incident_response=False
            ),
        )

    run = run_ops_program(program=program)
    assert run.of_type(STATE_MACHINE) == [] and run.of_type(RULE) == []


def test_health_checks_outside_us_east_1_need_a_us_east_1_provider() -> None:
    provider = object.__new__(aws.Provider)  # never registered: the args refuse before any resource
    region = MonitoredRegion("eu-west-1", provider, "fn", "api", "v1", health_check_id="hc")
    with pytest.raises(ValueError, match="only in us-east-1"):
        MonitoringArgs(regions=[region])
