"""Monitoring under Pulumi mocks: alarms per region into that region's topic, health check alarms in
us-east-1 (the only region with Route 53 metrics), e-mail subscriptions and the two-region dashboard."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

from components.config import load_config
from components.monitoring import MonitoredRegion, Monitoring, MonitoringArgs
from tests.pulumi_harness import ProgramRun, Registered, run_program

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


def monitoring_program(regions: tuple[str, str] | None = None, with_health_checks: bool = True):
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

    return program


def alarms(run: ProgramRun, metric: str) -> dict[str, Registered]:
    """Alarms on one metric, keyed by the region the alarm is about (named in its resource name)."""
    found: dict[str, Registered] = {}
    for alarm in run.of_type(ALARM):
        if alarm.inputs["metricName"] == metric:
            about = next(r for r in ("us-east-1", "us-east-2", "eu-west-1") if f"-{r}-" in alarm.name)
            found[about] = alarm
    return found


def topic_arn(run: ProgramRun, region: str) -> str:
    return run.one(TOPIC, region).outputs["arn"]


@pytest.mark.parametrize(
    ("metric", "namespace", "dimensions"),
    [
        ("Errors", "AWS/Lambda", lambda r: {"FunctionName": f"fn-{r}"}),
        ("Throttles", "AWS/Lambda", lambda r: {"FunctionName": f"fn-{r}"}),
        ("5XXError", "AWS/ApiGateway", lambda r: {"ApiName": f"api-{r}", "Stage": "v1"}),
        ("Latency", "AWS/ApiGateway", lambda r: {"ApiName": f"api-{r}", "Stage": "v1"}),
    ],
)
def test_each_region_has_its_alarm_in_its_region_publishing_to_its_own_topic(
    metric, namespace, dimensions
) -> None:
    run = run_program(program=monitoring_program())
    found = alarms(run, metric)
    assert set(found) == {"us-east-1", "us-east-2"}
    for region, alarm in found.items():
        assert alarm.region == region
        assert alarm.inputs["namespace"] == namespace
        assert alarm.inputs["dimensions"] == dimensions(region)
        assert alarm.inputs["alarmActions"] == [topic_arn(run, region)]
        assert alarm.inputs["okActions"] == [topic_arn(run, region)]


def test_api_alarms_watch_the_5xx_rate_and_the_p99_latency() -> None:
    run = run_program(program=monitoring_program())
    rate = alarms(run, "5XXError")["us-east-2"].inputs
    assert rate["statistic"] == "Average"  # Average of 5XXError is the share of failed requests
    assert 0 < rate["threshold"] < 1
    latency = alarms(run, "Latency")["us-east-2"].inputs
    assert latency["extendedStatistic"] == "p99"
    assert "statistic" not in latency


def test_health_check_alarms_live_in_us_east_1_and_publish_to_its_topic() -> None:
    run = run_program(program=monitoring_program())
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
    run = run_program(program=monitoring_program(regions=("us-east-2", "eu-west-1")))
    assert {t.region for t in run.of_type(TOPIC)} == {"us-east-1", "us-east-2", "eu-west-1"}
    for alarm in alarms(run, "HealthCheckStatus").values():
        assert alarm.region == "us-east-1"
        assert alarm.inputs["alarmActions"] == [topic_arn(run, "us-east-1")]
    assert alarms(run, "Errors")["eu-west-1"].region == "eu-west-1"


def test_without_health_checks_there_is_no_health_alarm() -> None:
    run = run_program(program=monitoring_program(with_health_checks=False))
    assert alarms(run, "HealthCheckStatus") == {}
    assert len(run.of_type(ALARM)) == 8


def test_alarm_email_subscribes_to_every_topic_and_no_email_subscribes_nobody() -> None:
    without = run_program(program=monitoring_program())
    assert without.of_type(SUBSCRIPTION) == []
    run = run_program({"alarmEmail": "oncall@example.com"}, program=monitoring_program())
    subscriptions = run.of_type(SUBSCRIPTION)
    assert {s.region for s in subscriptions} == {"us-east-1", "us-east-2"}
    for subscription in subscriptions:
        assert subscription.inputs["protocol"] == "email"
        assert subscription.inputs["endpoint"] == "oncall@example.com"
        assert subscription.inputs["topic"] == topic_arn(run, str(subscription.region))


def test_one_dashboard_shows_both_regions_side_by_side() -> None:
    run = run_program(program=monitoring_program())
    dashboard = run.one(DASHBOARD)
    assert dashboard.region == "us-east-1"
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    by_region: dict[str, list[dict]] = {}
    for widget in widgets:
        by_region.setdefault(widget["properties"]["title"].split(":")[0], []).append(widget)
    assert set(by_region) == {"us-east-1", "us-east-2"}
    assert {w["x"] for w in by_region["us-east-1"]} == {0}
    assert {w["x"] for w in by_region["us-east-2"]} == {12}
    # Same rows in both columns, so each signal is compared side by side.
    assert sorted(w["y"] for w in by_region["us-east-1"]) == sorted(w["y"] for w in by_region["us-east-2"])
    east_2_metrics = [w["properties"] for w in by_region["us-east-2"]]
    assert any(p["region"] == "us-east-2" and p["metrics"][0][3] == "fn-us-east-2" for p in east_2_metrics)
    health = [p for p in east_2_metrics if p["metrics"][0][1] == "HealthCheckStatus"]
    assert health and health[0]["region"] == "us-east-1"
    assert run.outputs["dashboardName"] == dashboard.inputs["dashboardName"]


def test_health_checks_outside_us_east_1_need_a_us_east_1_provider() -> None:
    provider = object.__new__(aws.Provider)  # never registered: the args refuse before any resource
    region = MonitoredRegion("eu-west-1", provider, "fn", "api", "v1", health_check_id="hc")
    with pytest.raises(ValueError, match="only in us-east-1"):
        MonitoringArgs(regions=[region])
