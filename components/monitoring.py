"""Operations: CloudWatch alarms per region into that region's SNS topic, one dashboard that shows both
regions side by side, and the automated incident response on those alarms.

Per region, each alarm in the region of its metrics, into an SNS topic in the SAME region (CloudWatch
alarm actions must name a topic in the alarm's own region):

- Lambda: Errors, Throttles, p99 Duration, maximum ConcurrentExecutions;
- API Gateway: the 5XXError and 4XXError rates (the Average of 5XXError is the share of requests that
  failed) and p99 Latency;
- Aurora DSQL, per cluster (namespace ``AWS/AuroraDSQL``, dimension ``ClusterId``): the OCC conflict
  rate, a metric-math alarm on OccConflicts / TotalTransactions that stays quiet below a minimum of
  transactions (two conflicts out of three transactions is not an incident), and CommitLatency.

Route 53 publishes health check metrics (AWS/Route53 HealthCheckStatus) to CloudWatch in us-east-1
only, whatever the regions of the application. So every region's health check alarm is created in
us-east-1 and publishes to a topic there: the us-east-1 application region's topic when us-east-1 is
one of the application regions, otherwise a topic of its own made with ``health_alarm_provider``.

The dashboard lives in the first region; each widget names the region of its metrics, so one dashboard
shows both regions (and the us-east-1 health check metrics) without copying anything.

Every region that holds alarms also gets a runbook (components/incident_response.py): an EventBridge
rule on this stack's alarms starts a Step Functions state machine that publishes the alarm, its region
and a link to the dashboard, and for a health check alarm which regions Route 53 serves now. The alarms
keep their own SNS actions as well, so a broken runbook can never silence an alarm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.incident_response import IncidentResponse, IncidentResponseArgs, RunbookLocation
from components.naming import ALARM_NAME_MAX, DASHBOARD_NAME_MAX, stack_name

ROUTE53_METRICS_REGION = "us-east-1"
DSQL_NAMESPACE = "AWS/AuroraDSQL"
DSQL_CLUSTER_DIMENSION = "ClusterId"


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
    cluster_identifier: pulumi.Input[str] | None = None
    """This region's Aurora DSQL cluster identifier (dimension ClusterId); None for no database alarms."""


@dataclass(frozen=True)
class AlarmThresholds:
    """When an alarm fires: every alarm looks at 1-minute periods and needs 3 bad ones out of 5."""

    lambda_errors: int = 1
    """Function errors per minute."""
    lambda_throttles: int = 1
    """Throttled invocations per minute."""
    lambda_p99_duration_ms: int = 3000
    """99th percentile of the function's Duration in milliseconds."""
    lambda_concurrency: int = 100
    """Concurrent executions of the function (the stage allows 100 requests/s by default: at ~100 ms a
    request, more than 100 at once means requests got slow, or something else calls the function)."""
    api_5xx_rate: float = 0.05
    """Share of requests answered 5xx (0.05 = 5 %)."""
    api_4xx_rate: float = 0.25
    """Share of requests answered 4xx: a broken client or token issuer, or someone probing the API."""
    api_p99_latency_ms: int = 3000
    """99th percentile of API Gateway Latency in milliseconds."""
    dsql_occ_conflict_rate: float = 0.05
    """Share of transactions aborted by optimistic concurrency conflicts."""
    dsql_occ_min_transactions: int = 20
    """Transactions per minute below which the conflict rate is not judged."""
    dsql_commit_latency_ms: int = 500
    """Average of DSQL's CommitLatency (itself the P50 of the commit phase), in milliseconds."""
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
    incident_response: bool = True
    sign_in_failover: tuple[str, str] | None = None
    """(primary, replica): sign-in fails over from the one to the other on the primary's health check;
    the runbook's health check messages then say where sign-in is served."""
    """A runbook per region on this stack's alarms (EventBridge rule -> Step Functions -> SNS)."""
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


@dataclass(frozen=True)
class _Metric:
    """One CloudWatch metric: an alarm or a dashboard line."""

    namespace: str
    name: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    """Sum, Average, Maximum, Minimum, or a percentile such as p99."""


def stack_resource_name(resource_name: str) -> str:
    """A readable, stack-unique AWS name: what the alarm e-mail, the console and the runbook show."""
    return stack_name(resource_name, min(ALARM_NAME_MAX, DASHBOARD_NAME_MAX))


def dashboard_url(region: str, dashboard_name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{dashboard_name}"


class Monitoring(pulumi.ComponentResource):
    """Alarms per region into a topic per region, one two-region dashboard, and the runbooks."""

    topic_arns: dict[str, pulumi.Output[str]]
    """Alarm topic ARN per region (plus us-east-1's when it holds only health check alarms)."""
    alarm_names: dict[str, list[pulumi.Output[str]]]
    """Alarm names per region the alarm is ABOUT (health check alarms included, wherever they live)."""
    dashboard_name: pulumi.Output[str]
    """Name of the CloudWatch dashboard (in the first region)."""
    runbook_arns: dict[str, pulumi.Output[str]]
    """The incident runbook state machine ARN per region holding alarms (empty when turned off)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:ops:Monitoring", name, None, opts)
        tags = dict(args.tags)
        providers = {r.region: r.provider for r in args.regions}
        if (
            any(r.health_check_id is not None for r in args.regions)
            and ROUTE53_METRICS_REGION not in providers
        ):
            assert args.health_alarm_provider is not None  # checked by MonitoringArgs
            providers[ROUTE53_METRICS_REGION] = args.health_alarm_provider
        topics = {
            region: self._topic(name, region, provider, args, tags) for region, provider in providers.items()
        }

        # Where each alarm lives (its metrics' region) -> the AWS names of the alarms living there.
        located: dict[str, list[str]] = {region: [] for region in topics}
        health_alarms: dict[str, str] = {}  # health check alarm name -> the region it is about
        self.alarm_names = {}
        for monitored in args.regions:
            alarms = self._alarms(name, monitored, topics, providers, tags, args.thresholds)
            for location, aws_name, _, on_health_check in alarms:
                located[location].append(aws_name)
                if on_health_check:
                    health_alarms[aws_name] = monitored.region
            self.alarm_names[monitored.region] = [alarm.name for _, _, alarm, _ in alarms]

        self.topic_arns = {region: topic.arn for region, topic in topics.items()}
        first = args.regions[0]
        dashboard_name = stack_resource_name(name)
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=dashboard_name,
            dashboard_body=dashboard_body(args.regions, args.thresholds),
            opts=pulumi.ResourceOptions(parent=self, provider=first.provider),
        )
        self.dashboard_name = dashboard.dashboard_name

        self.runbook_arns = {}
        if args.incident_response:
            self.runbook_arns = self._incident_response(
                name,
                args,
                providers,
                topics,
                located,
                health_alarms,
                dashboard_url(first.region, dashboard_name),
            )
        self.register_outputs(
            {
                "topic_arns": self.topic_arns,
                "alarm_names": self.alarm_names,
                "dashboard_name": self.dashboard_name,
                "runbook_arns": self.runbook_arns,
            }
        )

    def _alarms(
        self,
        name: str,
        monitored: MonitoredRegion,
        topics: Mapping[str, aws.sns.Topic],
        providers: Mapping[str, aws.Provider],
        tags: dict[str, str],
        t: AlarmThresholds,
    ) -> list[tuple[str, str, aws.cloudwatch.MetricAlarm, bool]]:
        """Every alarm about one region, as (the region it lives in, its AWS name, the alarm, whether it
        watches the region's Route 53 health check)."""
        region = monitored.region
        here = pulumi.ResourceOptions(parent=self, provider=monitored.provider)
        alarms: list[tuple[str, str, aws.cloudwatch.MetricAlarm, bool]] = []
        for suffix, description, metric, threshold in _regional_alarms(monitored, t):
            resource_name = f"{name}-{region}-{suffix}"
            alarm = self._alarm(
                resource_name, here, topics[region].arn, tags, description, metric, threshold, t
            )
            alarms.append((region, stack_resource_name(resource_name), alarm, False))
        if monitored.cluster_identifier is not None:
            resource_name = f"{name}-{region}-dsql-occ-conflict-rate"
            alarm = self._occ_rate_alarm(resource_name, here, topics[region].arn, tags, monitored, t)
            alarms.append((region, stack_resource_name(resource_name), alarm, False))
        if monitored.health_check_id is not None:
            resource_name = f"{name}-{region}-health-check"
            alarm = self._alarm(
                resource_name,
                pulumi.ResourceOptions(parent=self, provider=providers[ROUTE53_METRICS_REGION]),
                topics[ROUTE53_METRICS_REGION].arn,
                tags,
                f"Route 53 health check of {region}/health reports unhealthy",
                _Metric(
                    "AWS/Route53",
                    "HealthCheckStatus",
                    {"HealthCheckId": monitored.health_check_id},
                    "Minimum",
                ),
                1,
                t,
                comparison="LessThanThreshold",
                # No data means the checker is not reporting: that is not healthy either.
                treat_missing_data="breaching",
            )
            alarms.append((ROUTE53_METRICS_REGION, stack_resource_name(resource_name), alarm, True))
        return alarms

    def _incident_response(
        self,
        name: str,
        args: MonitoringArgs,
        providers: Mapping[str, aws.Provider],
        topics: Mapping[str, aws.sns.Topic],
        located: Mapping[str, list[str]],
        health_alarms: Mapping[str, str],
        dashboard: str,
    ) -> dict[str, pulumi.Output[str]]:
        """A runbook in each region that holds alarms; returns their ARNs by region."""
        incidents = IncidentResponse(
            f"{name}-incidents",
            IncidentResponseArgs(
                locations=[
                    RunbookLocation(
                        region=region,
                        provider=providers[region],
                        topic_arn=topics[region].arn,
                        alarm_names=tuple(located[region]),
                        health_alarms={
                            a: about for a, about in health_alarms.items() if a in located[region]
                        },
                    )
                    for region in topics
                    if located[region]
                ],
                health_check_ids={
                    r.region: r.health_check_id for r in args.regions if r.health_check_id is not None
                },
                dashboard_url=dashboard,
                sign_in_failover=args.sign_in_failover,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return incidents.state_machine_arns

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
        description: str,
        metric: _Metric,
        threshold: float,
        thresholds: AlarmThresholds,
        *,
        comparison: str = "GreaterThanOrEqualToThreshold",
        treat_missing_data: str = "notBreaching",
    ) -> aws.cloudwatch.MetricAlarm:
        percentile = metric.statistic.startswith("p")
        return aws.cloudwatch.MetricAlarm(
            resource_name,
            name=stack_resource_name(resource_name),
            alarm_description=description,
            namespace=metric.namespace,
            metric_name=metric.name,
            dimensions=dict(metric.dimensions),
            statistic=None if percentile else metric.statistic,
            extended_statistic=metric.statistic if percentile else None,
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

    def _occ_rate_alarm(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions,
        topic_arn: pulumi.Input[str],
        tags: dict[str, str],
        monitored: MonitoredRegion,
        t: AlarmThresholds,
    ) -> aws.cloudwatch.MetricAlarm:
        """OccConflicts / TotalTransactions per minute, judged only above a minimum of transactions."""
        assert monitored.cluster_identifier is not None
        cluster = {DSQL_CLUSTER_DIMENSION: monitored.cluster_identifier}

        def counted(query_id: str, metric_name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=query_id,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=DSQL_NAMESPACE,
                    metric_name=metric_name,
                    dimensions=cluster,
                    period=t.period_seconds,
                    stat="Sum",
                ),
                return_data=False,
            )

        return aws.cloudwatch.MetricAlarm(
            resource_name,
            name=stack_resource_name(resource_name),
            alarm_description=f"Share of DSQL transactions aborted by OCC conflicts in {monitored.region}",
            metric_queries=[
                counted("conflicts", "OccConflicts"),
                counted("transactions", "TotalTransactions"),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate",
                    expression=occ_rate_expression(t.dsql_occ_min_transactions),
                    label="OCC conflict rate",
                    return_data=True,
                ),
            ],
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=t.dsql_occ_conflict_rate,
            evaluation_periods=t.evaluation_periods,
            datapoints_to_alarm=t.datapoints_to_alarm,
            treat_missing_data="notBreaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=tags,
            opts=opts,
        )


def occ_rate_expression(min_transactions: int) -> str:
    """Metric math over the ids ``conflicts`` and ``transactions``: 0 below the minimum volume."""
    return f"IF(transactions >= {min_transactions}, conflicts / transactions, 0)"


def _regional_alarms(m: MonitoredRegion, t: AlarmThresholds) -> list[tuple[str, str, _Metric, float]]:
    """(name suffix, description, metric, threshold) of every single-metric alarm of one region."""
    function = {"FunctionName": m.function_name}
    api = {"ApiName": m.rest_api_name, "Stage": m.stage_name}
    region = m.region
    alarms: list[tuple[str, str, _Metric, float]] = [
        ("lambda-errors", f"Lambda function errors in {region}",
         _Metric("AWS/Lambda", "Errors", function, "Sum"), t.lambda_errors),
        ("lambda-throttles", f"Lambda invocations throttled in {region}",
         _Metric("AWS/Lambda", "Throttles", function, "Sum"), t.lambda_throttles),
        ("lambda-p99-duration", f"p99 Lambda duration (ms) in {region}",
         _Metric("AWS/Lambda", "Duration", function, "p99"), t.lambda_p99_duration_ms),
        ("lambda-concurrency", f"Concurrent Lambda executions in {region}",
         _Metric("AWS/Lambda", "ConcurrentExecutions", function, "Maximum"), t.lambda_concurrency),
        ("api-5xx-rate", f"Share of API requests answered 5xx in {region}",
         _Metric("AWS/ApiGateway", "5XXError", api, "Average"), t.api_5xx_rate),
        ("api-4xx-rate", f"Share of API requests answered 4xx in {region}",
         _Metric("AWS/ApiGateway", "4XXError", api, "Average"), t.api_4xx_rate),
        ("api-p99-latency", f"p99 API latency (ms) in {region}",
         _Metric("AWS/ApiGateway", "Latency", api, "p99"), t.api_p99_latency_ms),
    ]  # fmt: skip
    if m.cluster_identifier is not None:
        cluster = {DSQL_CLUSTER_DIMENSION: m.cluster_identifier}
        commit_latency = _Metric(DSQL_NAMESPACE, "CommitLatency", cluster, "Average")
        description = f"DSQL commit latency (ms, P50 per datapoint) in {region}"
        alarms.append(("dsql-commit-latency", description, commit_latency, t.dsql_commit_latency_ms))
    return alarms


def dashboard_body(regions: Sequence[MonitoredRegion], thresholds: AlarmThresholds) -> pulumi.Output[str]:
    """The dashboard JSON: one row per signal, one column per region, each widget in its region."""
    names = pulumi.Output.all(
        *[
            pulumi.Output.all(
                r.function_name, r.rest_api_name, r.stage_name, r.health_check_id, r.cluster_identifier
            )
            for r in regions
        ]
    )

    def render(resolved: list[list[Any]]) -> str:
        width = 24 // len(regions)
        widgets: list[dict[str, Any]] = []
        for column, (monitored, values) in enumerate(zip(regions, resolved, strict=True)):
            region = monitored.region
            for row, (title, metric_region, metrics, stat, line) in enumerate(
                _dashboard_rows(region, values, thresholds)
            ):
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


def _dashboard_rows(
    region: str, names: Sequence[Any], t: AlarmThresholds
) -> list[tuple[str, str, list[list[Any]], str, float | None]]:
    """(title, metrics region, metrics, statistic, alarm line) for each row of one region's column;
    ``names`` are the region's function, API, stage, health check id and cluster identifier."""
    function, api, stage, health_check, cluster = names
    fn = ["FunctionName", function]
    stage_of_api = ["ApiName", api, "Stage", stage]
    rows: list[tuple[str, str, list[list[Any]], str, float | None]] = [
        ("Lambda errors and throttles", region,
         [["AWS/Lambda", "Errors", *fn], ["AWS/Lambda", "Throttles", *fn]], "Sum", None),
        ("Lambda duration p99 (ms)", region, [["AWS/Lambda", "Duration", *fn]], "p99", t.lambda_p99_duration_ms),
        ("Lambda concurrent executions", region,
         [["AWS/Lambda", "ConcurrentExecutions", *fn]], "Maximum", t.lambda_concurrency),
        ("API 5XX rate", region, [["AWS/ApiGateway", "5XXError", *stage_of_api]], "Average", t.api_5xx_rate),
        ("API 4XX rate", region, [["AWS/ApiGateway", "4XXError", *stage_of_api]], "Average", t.api_4xx_rate),
        ("API latency p99 (ms)", region, [["AWS/ApiGateway", "Latency", *stage_of_api]], "p99", t.api_p99_latency_ms),
        ("Requests", region, [["AWS/ApiGateway", "Count", *stage_of_api]], "Sum", None),
    ]  # fmt: skip
    if cluster is not None:
        dimension = [DSQL_CLUSTER_DIMENSION, cluster]
        rows += [
            ("DSQL transactions and OCC conflicts", region,
             [[DSQL_NAMESPACE, "TotalTransactions", *dimension], [DSQL_NAMESPACE, "OccConflicts", *dimension]],
             "Sum", None),
            ("DSQL OCC conflict rate", region,
             [[{"expression": occ_rate_expression(t.dsql_occ_min_transactions), "label": "OCC conflict rate",
                "id": "rate"}],
              [DSQL_NAMESPACE, "OccConflicts", *dimension, {"id": "conflicts", "visible": False}],
              [DSQL_NAMESPACE, "TotalTransactions", *dimension, {"id": "transactions", "visible": False}]],
             "Sum", t.dsql_occ_conflict_rate),
            ("DSQL commit latency (ms)", region,
             [[DSQL_NAMESPACE, "CommitLatency", *dimension]], "Average", t.dsql_commit_latency_ms),
        ]  # fmt: skip
    if health_check is not None:
        health = [["AWS/Route53", "HealthCheckStatus", "HealthCheckId", health_check]]
        rows.append(("Route 53 health check (1 = healthy)", ROUTE53_METRICS_REGION, health, "Minimum", None))
    return rows
