"""Operations: CloudWatch alarms per region into that region's SNS topic, and one dashboard that shows
both regions side by side.

Per region: Lambda Errors and Throttles, API Gateway 5XXError rate (the Average of 5XXError is the
share of requests that failed) and p99 Latency, each alarming into an SNS topic in the SAME region
(CloudWatch alarm actions must name a topic in the alarm's own region).

Route 53 publishes health check metrics (AWS/Route53 HealthCheckStatus) to CloudWatch in us-east-1
only, whatever the regions of the application. So every region's health check alarm is created in
us-east-1 and publishes to a topic there: the us-east-1 application region's topic when us-east-1 is
one of the application regions, otherwise a topic of its own made with ``health_alarm_provider``.

The dashboard lives in the first region; each widget names the region of its metrics, so one dashboard
shows both regions (and the us-east-1 health check metrics) without copying anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT

ROUTE53_METRICS_REGION = "us-east-1"


@dataclass(frozen=True)
class MonitoredRegion:
    """What monitoring needs to know about one region's application: names, not internals."""

    region: str
    """AWS region name, e.g. us-east-2."""
    provider: aws.Provider
    """This region's explicit provider: its alarms and its topic are created with it."""
    function_name: pulumi.Input[str]
    """The Lambda function's name (AWS/Lambda dimension FunctionName)."""
    rest_api_name: pulumi.Input[str]
    """The REST API's name (AWS/ApiGateway dimension ApiName; REST APIs publish no ApiId dimension)."""
    stage_name: pulumi.Input[str]
    """The stage's name (AWS/ApiGateway dimension Stage)."""
    health_check_id: pulumi.Input[str] | None = None
    """The Route 53 health check on this region's /health; None for no health check alarm."""


@dataclass(frozen=True)
class AlarmThresholds:
    """When an alarm fires: every alarm looks at 1-minute periods and needs 3 bad ones out of 5."""

    lambda_errors: int = 1
    """Function errors per minute."""
    lambda_throttles: int = 1
    """Throttled invocations per minute."""
    api_5xx_rate: float = 0.05
    """Share of requests answered 5xx (0.05 = 5 %)."""
    api_p99_latency_ms: int = 3000
    """99th percentile of API Gateway Latency in milliseconds."""
    period_seconds: int = 60
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of Monitoring; plain values, no pulumi.Config."""

    regions: Sequence[MonitoredRegion]
    """The application regions, primary first (the dashboard is created in the first)."""
    alarm_email: str | None = None
    """E-mail subscribed to every alarm topic (each topic sends its own confirmation); None for none."""
    health_alarm_provider: aws.Provider | None = None
    """A us-east-1 provider, needed only when health checks are given and no application region is
    us-east-1 (Route 53 health check metrics exist only there)."""
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)
    """Alarm thresholds."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every taggable child."""

    def __post_init__(self) -> None:
        if not self.regions:
            raise ValueError("Monitoring needs at least one region")
        names = [r.region for r in self.regions]
        if len(set(names)) != len(names):
            raise ValueError(f"Monitoring got a region twice: {names}")
        needs_east = any(r.health_check_id is not None for r in self.regions)
        if needs_east and ROUTE53_METRICS_REGION not in names and self.health_alarm_provider is None:
            raise ValueError(
                "Route 53 health check metrics exist only in us-east-1 and no application region is "
                "us-east-1: pass a us-east-1 provider as health_alarm_provider"
            )


class Monitoring(pulumi.ComponentResource):
    """Alarms per region into a topic per region, and one two-region dashboard."""

    topic_arns: dict[str, pulumi.Output[str]]
    """Alarm topic ARN per region (plus us-east-1's when it holds only health check alarms)."""
    alarm_names: dict[str, list[pulumi.Output[str]]]
    """Alarm names per region the alarm is ABOUT (health check alarms included, wherever they live)."""
    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard (in the first region)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:ops:Monitoring", name, None, opts)
        tags = dict(args.tags)
        self.topic_arns = {}
        self.alarm_names = {}
        topics: dict[str, aws.sns.Topic] = {}

        for monitored in args.regions:
            topics[monitored.region] = self._topic(name, monitored.region, monitored.provider, args, tags)
        if any(r.health_check_id is not None for r in args.regions) and ROUTE53_METRICS_REGION not in topics:
            assert args.health_alarm_provider is not None  # checked by MonitoringArgs
            topics[ROUTE53_METRICS_REGION] = self._topic(
                name, ROUTE53_METRICS_REGION, args.health_alarm_provider, args, tags
            )
        east_provider = next(
            (r.provider for r in args.regions if r.region == ROUTE53_METRICS_REGION),
            args.health_alarm_provider,
        )

        t = args.thresholds
        for monitored in args.regions:
            region = monitored.region
            here = pulumi.ResourceOptions(parent=self, provider=monitored.provider)
            topic_arn = topics[region].arn
            function = {"FunctionName": monitored.function_name}
            api = {"ApiName": monitored.rest_api_name, "Stage": monitored.stage_name}
            alarms = [
                self._alarm(f"{name}-{region}-lambda-errors", here, topic_arn, tags,
                            description=f"Lambda function errors in {region}",
                            namespace="AWS/Lambda", metric_name="Errors", dimensions=function,
                            statistic="Sum", threshold=t.lambda_errors, thresholds=t),
                self._alarm(f"{name}-{region}-lambda-throttles", here, topic_arn, tags,
                            description=f"Lambda invocations throttled in {region}",
                            namespace="AWS/Lambda", metric_name="Throttles", dimensions=function,
                            statistic="Sum", threshold=t.lambda_throttles, thresholds=t),
                self._alarm(f"{name}-{region}-api-5xx-rate", here, topic_arn, tags,
                            description=f"Share of API requests answered 5xx in {region}",
                            namespace="AWS/ApiGateway", metric_name="5XXError", dimensions=api,
                            statistic="Average", threshold=t.api_5xx_rate, thresholds=t),
                self._alarm(f"{name}-{region}-api-p99-latency", here, topic_arn, tags,
                            description=f"p99 API latency (ms) in {region}",
                            namespace="AWS/ApiGateway", metric_name="Latency", dimensions=api,
                            extended_statistic="p99", threshold=t.api_p99_latency_ms, thresholds=t),
            ]  # fmt: skip
            if monitored.health_check_id is not None:
                east = pulumi.ResourceOptions(parent=self, provider=east_provider)
                alarms.append(
                    self._alarm(
                        f"{name}-{region}-health-check",
                        east,
                        topics[ROUTE53_METRICS_REGION].arn,
                        tags,
                        description=f"Route 53 health check of {region}/health reports unhealthy",
                        namespace="AWS/Route53",
                        metric_name="HealthCheckStatus",
                        dimensions={"HealthCheckId": monitored.health_check_id},
                        statistic="Minimum",
                        comparison="LessThanThreshold",
                        threshold=1,
                        thresholds=t,
                        # No data means the checker is not reporting: that is not healthy either.
                        treat_missing_data="breaching",
                    )
                )
            self.alarm_names[region] = [alarm.name for alarm in alarms]

        self.topic_arns = {region: topic.arn for region, topic in topics.items()}
        first = args.regions[0]
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{pulumi.get_project()}-{pulumi.get_stack()}-{name}",
            dashboard_body=dashboard_body(args.regions, t),
            opts=pulumi.ResourceOptions(parent=self, provider=first.provider),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs(
            {
                "topic_arns": self.topic_arns,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard_name,
            }
        )

    def _topic(
        self, name: str, region: str, provider: aws.Provider, args: MonitoringArgs, tags: dict[str, str]
    ) -> aws.sns.Topic:
        opts = pulumi.ResourceOptions(parent=self, provider=provider)
        topic = aws.sns.Topic(f"{name}-{region}-alarms", tags={**tags, "region": region}, opts=opts)
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-{region}-alarms-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.alarm_email,
                opts=opts,
            )
        return topic

    def _alarm(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions,
        topic_arn: pulumi.Input[str],
        tags: dict[str, str],
        *,
        description: str,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        threshold: float,
        thresholds: AlarmThresholds,
        statistic: str | None = None,
        extended_statistic: str | None = None,
        comparison: str = "GreaterThanOrEqualToThreshold",
        treat_missing_data: str = "notBreaching",
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            resource_name,
            # A readable, stack-unique name: it is what the alarm e-mail and the console show.
            name=f"{pulumi.get_project()}-{pulumi.get_stack()}-{resource_name}",
            alarm_description=description,
            namespace=namespace,
            metric_name=metric_name,
            dimensions=dict(dimensions),
            statistic=statistic,
            extended_statistic=extended_statistic,
            comparison_operator=comparison,
            threshold=threshold,
            period=thresholds.period_seconds,
            evaluation_periods=thresholds.evaluation_periods,
            datapoints_to_alarm=thresholds.datapoints_to_alarm,
            treat_missing_data=treat_missing_data,
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=tags,
            opts=opts,
        )


def dashboard_body(regions: Sequence[MonitoredRegion], thresholds: AlarmThresholds) -> pulumi.Output[str]:
    """The dashboard JSON: one row per signal, one column per region, each widget in its region."""
    names = pulumi.Output.all(
        *[
            pulumi.Output.all(r.function_name, r.rest_api_name, r.stage_name, r.health_check_id)
            for r in regions
        ]
    )

    def render(resolved: list[list[Any]]) -> str:
        width = 24 // len(regions)
        widgets: list[dict[str, Any]] = []
        for column, (monitored, (function, api, stage, health_check)) in enumerate(
            zip(regions, resolved, strict=True)
        ):
            region = monitored.region
            rows: list[tuple[str, str, list[list[Any]], str, float | None]] = [
                ("Lambda errors and throttles", region,
                 [["AWS/Lambda", "Errors", "FunctionName", function],
                  ["AWS/Lambda", "Throttles", "FunctionName", function]], "Sum", None),
                ("API 5XX rate", region,
                 [["AWS/ApiGateway", "5XXError", "ApiName", api, "Stage", stage]], "Average",
                 thresholds.api_5xx_rate),
                ("API latency p99 (ms)", region,
                 [["AWS/ApiGateway", "Latency", "ApiName", api, "Stage", stage]], "p99",
                 thresholds.api_p99_latency_ms),
                ("Requests", region,
                 [["AWS/ApiGateway", "Count", "ApiName", api, "Stage", stage]], "Sum", None),
            ]  # fmt: skip
            if health_check is not None:
                rows.append(
                    (
                        "Route 53 health check (1 = healthy)",
                        ROUTE53_METRICS_REGION,
                        [["AWS/Route53", "HealthCheckStatus", "HealthCheckId", health_check]],
                        "Minimum",
                        None,
                    )
                )
            for row, (title, metric_region, metrics, stat, line) in enumerate(rows):
                properties: dict[str, Any] = {
                    "title": f"{region}: {title}",
                    "region": metric_region,
                    "metrics": metrics,
                    "stat": stat,
                    "period": thresholds.period_seconds,
                    "view": "timeSeries",
                }
                if line is not None:
                    properties["annotations"] = {"horizontal": [{"label": "alarm", "value": line}]}
                widgets.append(
                    {
                        "type": "metric",
                        "x": column * width,
                        "y": row * 6,
                        "width": width,
                        "height": 6,
                        "properties": properties,
                    }
                )
        return json.dumps({"widgets": widgets}, sort_keys=True)

    return names.apply(render)
