"""What a stack costs, before it is deployed: priced from the program's own resource graph.

    python -m tools.cost [--stack prod] [--requests-per-month N] [--json]

The Pulumi program runs under the mocks harness (tests/pulumi_harness.py) with the stack's config
(Pulumi.<stack>.yaml), exactly as the unit tests run it, so every resource it would create is here and
no second list of resources is kept. Each registered type is priced by one rule below, or declared free;
a type with neither stops the tool (a new kind of resource must be priced before it ships).

Prices and assumptions come from tools/prices.yaml (each with its source and the date read). Two
figures come out:

* the idle monthly cost: what the stack costs with no client at all (health checks and the requests
  they send through API Gateway and Lambda to the database, alarms by metric, dashboards beyond the free
  ones, KMS keys, web ACLs, DSQL storage);
* the cost per million client requests: API Gateway, Lambda (the function's memory, architecture and the
  assumed duration), DSQL DPUs estimated from the statement each route runs, log ingestion, and
  CloudFront and WAF when the stack has them.

``--json`` prints ``idle_monthly_usd``, ``per_million_requests_usd`` and ``items`` (one per priced line:
what, region, quantity, unit, unit price, monthly or per-million USD, source).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT / "tools" / "prices.yaml"
SECONDS_PER_MONTH = 30 * 24 * 3600

# Types that cost nothing by themselves (their usage is priced where it happens: a stage's requests under
# its REST API, a log group's bytes per request), with the reason.
FREE = {
    "pulumi:providers:aws": "a provider is not an AWS resource",
    "pulumi:providers:command": "a provider is not an AWS resource",
    "command:local:Command": "runs on the deploying machine (the smoke checks): a few requests per deploy",
    "pulumi-python:dynamic/dsql:ClusterPeering": "runs DSQL API calls at deploy time; no charge of its own",
    "pulumi-python:dynamic/dsql:IamRoleGrant": "a database statement at deploy time",
    "pulumi-python:dynamic/dsql:SchemaMigration": "database statements at deploy time",
    "aws:cognito/managedLoginBranding:ManagedLoginBranding": "a style of the sign-in pages; Cognito bills per active user",
    "aws:s3/bucketObjectv2:BucketObjectv2": "the web client's files: well under 10 MB stored, a fraction of a cent",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "a bucket setting",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "SSE-S3 costs nothing",
    "aws:s3/bucketVersioning:BucketVersioning": "a bucket setting (old versions of a few small files)",
    "pulumi-python:dynamic/cognito:PoolReplicationSettings": "pool settings (key, issuer) changed at deploy time",
    "pulumi-python:dynamic/cognito:UserPoolReplica": "Cognito bills the replica per monthly active user, not idle (docs/identity.md)",
    "pulumi-python:dynamic/cognito:DomainFailover": "a setting of the managed-login domain",
    "pulumi-python:dynamic/cognito:DrillUser": "one user, active only in a month the drill runs (per MAU)",
    "pulumi-python:dynamic/lambda:PublishedVersion": "waits for a published version at deploy time (GetFunctionConfiguration)",
    "aws:apigateway/account:Account": "account setting",
    "aws:apigateway/deployment:Deployment": "no charge; requests are priced per REST API",
    "aws:apigateway/methodSettings:MethodSettings": "no charge (no cache cluster)",
    "aws:apigateway/stage:Stage": "no charge without a cache cluster",
    "aws:apigateway/gatewayResponse:GatewayResponse": "no charge",
    "aws:cloudwatch/eventRule:EventRule": "AWS service events to EventBridge are free",
    "aws:cloudwatch/eventTarget:EventTarget": "no charge",
    "aws:cloudwatch/logGroup:LogGroup": "ingestion priced per request; storage of short-retention logs is cents",
    "aws:cognito/userGroup:UserGroup": "no charge",
    "aws:cognito/userPoolClient:UserPoolClient": "no charge",
    "aws:cognito/userPoolDomain:UserPoolDomain": "no charge",
    "aws:iam/role:Role": "IAM is free",
    "aws:iam/rolePolicy:RolePolicy": "IAM is free",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "IAM is free",
    "aws:iam/policy:Policy": "IAM is free",
    "aws:lambda/alias:Alias": "no charge",
    "aws:lambda/layerVersion:LayerVersion": "code storage within the free 75 GB",
    "aws:lambda/permission:Permission": "no charge",
    "aws:sfn/stateMachine:StateMachine": "billed per state transition, only when the drill or runbook runs",
    "aws:sns/topic:Topic": "billed per notification, only when an alarm fires",
    "aws:sns/topicSubscription:TopicSubscription": "billed per notification",
    "aws:sns/topicPolicy:TopicPolicy": "no charge",
    "aws:cloudwatch/eventBus:EventBus": "no charge",
    "aws:scheduler/schedule:Schedule": "14 million invocations a month are free",
    "aws:kms/alias:Alias": "no charge",
    "aws:s3/bucketV2:BucketV2": "a web client's few files: cents",
    "aws:s3/bucket:Bucket": "a web client's few files: cents",
    "aws:s3/bucketPolicy:BucketPolicy": "no charge",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "no charge",
    "aws:cloudfront/originAccessControl:OriginAccessControl": "no charge",
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": "no charge",
    "aws:route53/record:Record": "DNS queries are cached by resolvers; a few cents per million lookups",
    "aws:acm/certificate:Certificate": "public certificates are free",
    "aws:apigateway/domainName:DomainName": "a regional custom domain has no charge of its own",
    "aws:apigateway/basePathMapping:BasePathMapping": "no charge",
    "aws:acm/certificateValidation:CertificateValidation": "no charge",
}


class CostError(RuntimeError):
    """A price, an assumption or an input is missing or wrong; the message says which and the fix."""


@dataclass
class Item:
    what: str
    resource: str
    region: str | None
    quantity: float
    unit: str
    unit_price_usd: float
    source: str
    monthly_usd: float = 0.0
    """Idle monthly cost of this line."""
    per_million_usd: float = 0.0
    """Cost of this line per million client requests."""


class PriceTable:
    def __init__(self, path: Path = PRICES) -> None:
        self.table: dict[str, Any] = yaml.safe_load(path.read_text())
        for key, entry in self.table.items():
            if key == "assumptions":
                continue
            missing = [field for field in ("default", "source", "read", "unit") if field not in entry]
            if missing:
                raise CostError(
                    f"{path.name}: price {key!r} lacks {', '.join(missing)}; every price needs them"
                )

    def price(self, key: str, region: str | None) -> tuple[float, str]:
        try:
            entry = self.table[key]
        except KeyError:
            raise CostError(f"{PRICES.name} has no price {key!r}; add it with its source and date") from None
        value = (entry.get("regions") or {}).get(region, entry["default"])
        where = region if region in (entry.get("regions") or {}) else "US East (N. Virginia) figure"
        return float(value), f"{entry['source']} ({where}; read {entry['read']})"

    def assumption(self, key: str) -> tuple[float, str]:
        try:
            entry = self.table["assumptions"][key]
        except KeyError:
            raise CostError(f"{PRICES.name} has no assumption {key!r}; add it under assumptions") from None
        return float(entry["value"]), f"assumption: {entry['source']}"


# ---------------------------------------------------------------- the graph


def registered_resources(stack: str) -> list[Any]:
    """Everything the program registers for ``stack`` (its Pulumi.<stack>.yaml), under the mocks."""
    if not (ROOT / f"Pulumi.{stack}.yaml").is_file():
        raise CostError(f"no Pulumi.{stack}.yaml: name a stack that has a stack file (e.g. --stack prod)")
    sys.path.insert(0, str(ROOT))
    from tests.pulumi_harness import run_program

    with contextlib.redirect_stdout(io.StringIO()):  # the program's own messages are not the report
        return run_program(stack=stack).resources


# ---------------------------------------------------------------- pricing


@dataclass
class Costing:
    prices: PriceTable
    items: list[Item]

    def idle(self, what: str, resource: Any, key: str, quantity: float) -> None:
        self._add(what, resource, key, quantity, idle=True)

    def per_request(
        self, what: str, resource: Any, key: str, per_million_units: float, weight: float
    ) -> None:
        """``per_million_units`` of the price's unit per million requests, for ``weight`` of the requests."""
        self._add(what, resource, key, per_million_units * weight, idle=False)

    def _add(self, what: str, resource: Any, key: str, quantity: float, *, idle: bool) -> None:
        """One line: ``quantity`` of price ``key`` in the resource's region, a monthly idle cost or a cost
        per million requests."""
        price, source = self.prices.price(key, resource.region)
        unit = self.prices.table[key]["unit"]
        cost = {"monthly_usd" if idle else "per_million_usd": quantity * price}
        self.items.append(Item(what, resource.name, resource.region, quantity, unit, price, source, **cost))


def _alarm(cost: Costing, alarm: Any, _: dict[str, list[Any]]) -> None:
    queries = alarm.inputs.get("metricQueries") or []
    metrics = [query["metric"] for query in queries if query.get("metric")] if queries else [alarm.inputs]
    high = [m for m in metrics if float(m.get("period") or 60) < 60]
    if len(metrics) > len(high):
        cost.idle("CloudWatch alarm metrics", alarm, "cloudwatch_alarm_metric", len(metrics) - len(high))
    if high:
        cost.idle(
            "CloudWatch alarm metrics (high resolution)",
            alarm,
            "cloudwatch_alarm_metric_high_resolution",
            len(high),
        )


def _dashboards(cost: Costing, resources: list[Any]) -> None:
    free = int(cost.prices.table["cloudwatch_dashboard"].get("free_per_account", 0))
    for index, dashboard in enumerate(resources):
        cost.idle(
            "CloudWatch dashboard" + (" (within the free ones)" if index < free else ""),
            dashboard,
            "cloudwatch_dashboard",
            0 if index < free else 1,
        )


def _health_check(cost: Costing, check: Any, by_type: dict[str, list[Any]]) -> None:
    cost.idle("Route 53 health check", check, "route53_health_check", 1)
    options = sum(
        [
            str(check.inputs.get("type", "")).upper().startswith("HTTPS"),
            bool(check.inputs.get("searchString")),
            float(check.inputs.get("requestInterval") or 30) < 30,
            bool(check.inputs.get("measureLatency")),
        ]
    )
    if options:
        cost.idle(
            "Route 53 health check options (HTTPS, string match, fast interval, latency)",
            check,
            "route53_health_check_option",
            options,
        )


def health_check_requests(by_type: dict[str, list[Any]], prices: PriceTable) -> float:
    """Requests a month the health checks send to the API (a lower bound; see the assumption)."""
    checkers, _ = prices.assumption("health_checkers")
    total = 0.0
    for check in by_type.get("aws:route53/healthCheck:HealthCheck", []):
        if str(check.inputs.get("type", "")).upper() not in (
            "HTTP",
            "HTTPS",
            "HTTP_STR_MATCH",
            "HTTPS_STR_MATCH",
        ):
            continue
        regions = check.inputs.get("regions") or []
        interval = float(check.inputs.get("requestInterval") or 30)
        total += (len(regions) or checkers) * SECONDS_PER_MONTH / interval
    return total


def _per_million(cost: Costing, by_type: dict[str, list[Any]]) -> None:
    """Per million client requests, shared equally by the regions that serve them."""
    prices = cost.prices
    functions = by_type.get("aws:lambda/function:Function", [])
    apis = by_type.get("aws:apigateway/restApi:RestApi", [])
    if not functions or not apis:
        raise CostError("the program registered no Lambda function or REST API: nothing serves requests")
    for api in apis:
        cost.per_request("API Gateway REST requests", api, "api_gateway_rest_requests", 1, 1 / len(apis))
    duration_ms, duration_source = prices.assumption("lambda_duration_ms")
    for function in functions:
        weight = 1 / len(functions)
        architecture = (function.inputs.get("architectures") or ["x86_64"])[0]
        memory_gb = float(function.inputs.get("memorySize") or 128) / 1024
        gb_seconds = 1_000_000 * memory_gb * math.ceil(duration_ms) / 1000
        cost.per_request("Lambda requests", function, "lambda_requests", 1, weight)
        key = "lambda_arm64_gb_second" if architecture == "arm64" else "lambda_x86_64_gb_second"
        cost.per_request(
            f"Lambda duration ({memory_gb * 1024:.0f} MB x {duration_ms:g} ms, {architecture})",
            function,
            key,
            gb_seconds,
            weight,
        )
        cost.items[-1].source += f"; duration {duration_source}"
    clusters = by_type.get("aws:dsql/cluster:Cluster", [])
    if clusters:
        read, read_source = prices.assumption("dsql_dpu_per_read")
        write, write_source = prices.assumption("dsql_dpu_per_write")
        write_share, share_source = prices.assumption("write_share")
        peered = len(clusters) > 1 or bool(by_type.get("pulumi-python:dynamic/dsql:ClusterPeering"))
        replicas = len(clusters) if peered else 1
        for cluster in clusters:
            weight = 1 / len(clusters)
            # Reads run in the serving region only; every write is also replicated to each peer.
            dpus = (1 - write_share) * read * weight + write_share * write * replicas * weight
            cost.per_request(
                "DSQL DPUs (estimated from each route's one statement)", cluster, "dsql_dpu", dpus, 1
            )
            cost.items[-1].source += f"; {read_source}; {write_source}; {share_source}"
    for function in functions:
        if (function.inputs.get("tracingConfig") or {}).get("mode") == "Active":
            cost.per_request("X-Ray traces", function, "xray_traces_recorded", 1, 1 / len(functions))
    log_bytes, log_source = prices.assumption("log_bytes_per_request")
    for function in functions:
        gb = 1_000_000 * log_bytes / 1e9
        cost.per_request(
            "CloudWatch Logs ingestion", function, "cloudwatch_logs_ingestion", gb, 1 / len(functions)
        )
        cost.items[-1].source += f"; {log_source}"
    for acl in by_type.get("aws:wafv2/webAcl:WebAcl", []):
        cost.per_request("WAF requests", acl, "waf_requests", 1, 1)
    for distribution in by_type.get("aws:cloudfront/distribution:Distribution", []):
        cost.per_request("CloudFront HTTPS requests", distribution, "cloudfront_https_requests", 1, 1)


EDGE_LINES = frozenset({"WAF requests", "CloudFront HTTPS requests"})

IdleRule = Callable[[Costing, Any, dict[str, list[Any]]], None]


def _kms(cost: Costing, key: Any, _: dict[str, list[Any]]) -> None:
    cost.idle("KMS customer managed key", key, "kms_key", 1)


def _secret(cost: Costing, secret: Any, _: dict[str, list[Any]]) -> None:
    replicas = len(secret.inputs.get("replicas") or [])
    cost.idle(
        "Secrets Manager secret (each replica billed as a secret)",
        secret,
        "secretsmanager_secret",
        1 + replicas,
    )


def _web_acl(cost: Costing, acl: Any, _: dict[str, list[Any]]) -> None:
    cost.idle("WAF web ACL", acl, "waf_web_acl", 1)
    rules = acl.inputs.get("rules") or []
    if rules:
        cost.idle("WAF rules", acl, "waf_rule", len(rules))


def _cluster(cost: Costing, cluster: Any, _: dict[str, list[Any]], storage_gb: float = 1.0) -> None:
    cost.idle(
        f"DSQL storage ({storage_gb:g} GB assumed; idle DPUs: none, DSQL scales to zero)",
        cluster,
        "dsql_storage",
        storage_gb,
    )


def _user_pool(cost: Costing, pool: Any, _: dict[str, list[Any]]) -> None:
    cost.idle("Cognito user pool (users billed per monthly active user)", pool, "cognito_user_pool", 1)


def _function(cost: Costing, function: Any, _: dict[str, list[Any]]) -> None:
    """SnapStart keeps a cached snapshot of every active version: billed per GB-second all month."""
    if (function.inputs.get("snapStart") or {}).get("applyOn") == "PublishedVersions":
        memory_gb = float(function.inputs.get("memorySize") or 128) / 1024
        cost.idle(
            f"Lambda SnapStart cache ({memory_gb * 1024:.0f} MB, one active version)",
            function,
            "lambda_snapstart_cache",
            memory_gb * SECONDS_PER_MONTH,
        )


def _no_idle_cost(cost: Costing, resource: Any, _: dict[str, list[Any]]) -> None:
    """Priced per request only (in ``_per_million``)."""


IDLE_RULES: dict[str, IdleRule] = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:route53/healthCheck:HealthCheck": _health_check,
    "aws:kms/key:Key": _kms,
    "aws:kms/replicaKey:ReplicaKey": _kms,  # a multi-Region replica key is billed as a key of its own
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:dsql/cluster:Cluster": _cluster,
    "aws:cognito/userPool:UserPool": _user_pool,
    "aws:lambda/function:Function": _function,
    "aws:apigateway/restApi:RestApi": _no_idle_cost,
    "aws:cloudfront/distribution:Distribution": _no_idle_cost,
}


def unpriced_types(resources: list[Any]) -> set[str]:
    """Registered types with no rule and not declared free (components are never priced themselves)."""
    return {
        r.typ
        for r in resources
        if r.typ not in IDLE_RULES
        and r.typ not in FREE
        and r.typ != "aws:cloudwatch/dashboard:Dashboard"
        and not _is_component(r.typ)
    }


def _is_component(typ: str) -> bool:
    return not typ.startswith(("aws:", "pulumi:", "pulumi-python:"))


@dataclass
class Estimate:
    stack: str
    idle_monthly_usd: float
    per_million_requests_usd: float
    health_check_requests_per_month: float
    items: list[Item]

    def monthly(self, requests_per_month: float) -> float:
        return self.idle_monthly_usd + requests_per_month / 1_000_000 * self.per_million_requests_usd


def estimate(resources: list[Any], stack: str, prices: PriceTable | None = None) -> Estimate:
    prices = prices or PriceTable()
    unpriced = unpriced_types(resources)
    if unpriced:
        raise CostError(
            f"no price rule for {', '.join(sorted(unpriced))}: add one to tools/cost.py (IDLE_RULES, or FREE "
            "with the reason it costs nothing) and its price to tools/prices.yaml"
        )
    by_type: dict[str, list[Any]] = {}
    # By name: the mocks register concurrently, and the same stack must print the same lines in order.
    for resource in sorted(resources, key=lambda r: r.name):
        by_type.setdefault(resource.typ, []).append(resource)
    cost = Costing(prices, [])
    for typ, rule in IDLE_RULES.items():
        for resource in by_type.get(typ, []):
            rule(cost, resource, by_type)
    _dashboards(cost, by_type.get("aws:cloudwatch/dashboard:Dashboard", []))
    _per_million(cost, by_type)
    per_million = sum(item.per_million_usd for item in cost.items)
    # Health checks call each region's API directly: no CloudFront, no WAF on their path.
    origin_per_million = sum(item.per_million_usd for item in cost.items if item.what not in EDGE_LINES)
    probes = health_check_requests(by_type, prices)
    if probes:
        _, checkers_source = prices.assumption("health_checkers")
        cost.items.append(
            Item(
                "health-check requests through the API (at the per-request cost above, without the edge)",
                "route53 health checks",
                None,
                probes,
                "requests-month",
                origin_per_million / 1_000_000,
                checkers_source,
                monthly_usd=probes / 1_000_000 * origin_per_million,
            )
        )
    idle = sum(item.monthly_usd for item in cost.items)
    return Estimate(stack, round(idle, 4), round(per_million, 4), probes, cost.items)


# ---------------------------------------------------------------- report


def render(result: Estimate, requests_per_month: float | None) -> str:
    lines = [
        f"stack {result.stack}: what it costs (USD; sources in tools/prices.yaml, --json for each line)",
        "",
    ]
    idle_items = [item for item in result.items if item.monthly_usd]
    lines.append(f"idle, per month: {result.idle_monthly_usd:.2f}")
    grouped: dict[str, float] = {}
    for item in idle_items:
        grouped[item.what] = grouped.get(item.what, 0.0) + item.monthly_usd
    lines.extend(f"  {what:88s} {usd:8.2f}" for what, usd in sorted(grouped.items(), key=lambda kv: -kv[1]))
    lines.append(
        f"  (health checks send about {result.health_check_requests_per_month:,.0f} requests a month)"
    )
    lines.append("")
    lines.append(f"per million client requests: {result.per_million_requests_usd:.2f}")
    per: dict[str, float] = {}
    for item in result.items:
        if item.per_million_usd:
            key = item.what.split(" (")[0]
            per[key] = per.get(key, 0.0) + item.per_million_usd
    lines.extend(f"  {what:88s} {usd:8.3f}" for what, usd in sorted(per.items(), key=lambda kv: -kv[1]))
    if requests_per_month is not None:
        lines.append("")
        lines.append(
            f"at {requests_per_month:,.0f} requests a month: {result.monthly(requests_per_month):.2f} per month"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--stack", default="prod", help="the stack whose Pulumi.<stack>.yaml to price (default: prod)"
    )
    parser.add_argument(
        "--requests-per-month", type=float, help="also print the monthly total at this many requests"
    )
    parser.add_argument(
        "--json", action="store_true", help="print idle_monthly_usd, per_million_requests_usd, items"
    )
    args = parser.parse_args(argv)
    if args.requests_per_month is not None and (
        args.requests_per_month < 0 or not math.isfinite(args.requests_per_month)
    ):
        parser.error(
            f"--requests-per-month {args.requests_per_month:g}: give a number of requests, 0 or more"
        )
    try:
        result = estimate(registered_resources(args.stack), args.stack)
    except CostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        document: dict[str, Any] = {
            "stack": result.stack,
            "idle_monthly_usd": result.idle_monthly_usd,
            "per_million_requests_usd": result.per_million_requests_usd,
            "health_check_requests_per_month": round(result.health_check_requests_per_month),
            "items": [asdict(item) for item in result.items],
        }
        if args.requests_per_month is not None:
            document["requests_per_month"] = args.requests_per_month
            document["monthly_usd"] = round(result.monthly(args.requests_per_month), 4)
        print(json.dumps(document, indent=2))
    else:
        print(render(result, args.requests_per_month))
    return 0


if __name__ == "__main__":
    sys.exit(main())
