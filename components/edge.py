"""The edge: one CloudFront distribution serving the public domain in front of both regions.

CloudFront connects to one origin, ``origin.<domain>``, and Route 53 answers that name with latency
records behind each region's health check (components/global_routing.py). So CloudFront's connection
to the origin lands on the nearest healthy region, for every method: a POST fails over like a GET. The
alternatives, and why this one, are in docs/operations.md.

- Viewer side: the public domain as the only alias, an ACM certificate for it in us-east-1 (CloudFront
  takes viewer certificates from there only), HTTPS only (``https-only``: an HTTP request is refused,
  not redirected, because a redirected POST arrives as a GET in many clients and its body was already
  sent in the clear), TLSv1.2_2021 at least, HTTP/2 and HTTP/3, IPv4 and IPv6, every method.
- Cache: AWS's managed CachingDisabled policy: the API's answers are per user and change with every
  write, and DSQL is strongly consistent across regions; an edge cache would serve stale reads.
- Origin request: AWS's managed AllViewerExceptHostHeader policy: every header, cookie and query
  string goes to the origin (Authorization included) except Host, which CloudFront sets to the origin
  name, the name the regional API Gateway custom domains answer for.
- Origin: HTTPS only, TLSv1.2, to the regional custom domains' certificates for ``origin.<domain>``.
- Optional AWS WAF web ACL (scope CLOUDFRONT, so in us-east-1): a per-IP rate limit, then AWS's
  managed Common and Known-bad-inputs rule groups.
- With the web client (``web``): the default behaviour serves its private bucket (components/web_client.py)
  and the API's paths (each first path segment of the OpenAPI document, e.g. ``/users`` and
  ``/users/*``) go to the regional APIs as above, so the client and the API share one origin.
- The public domain: alias A and AAAA records to the distribution (Route 53 does not evaluate the
  health of a CloudFront alias target; failover happens behind CloudFront, on the origin name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.global_routing import validation_record_for
from components.naming import WEB_ACL_NAME_MAX, stack_name
from components.openapi import OPENAPI_DOCUMENT, load_document
from components.web_client import INDEX, WebHosting

# AWS managed policies have fixed ids (CloudFront Developer Guide: "Use managed cache policies" and
# "Use managed origin request policies").
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
VIEWER_CERTIFICATE_REGION = "us-east-1"
ORIGIN_ID = "regional-apis"
WAF_MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")
WAF_RATE_WINDOW_SECONDS = 300


def api_path_patterns() -> list[str]:
    """CloudFront path patterns covering every path of the API: ``/<segment>`` and ``/<segment>/*``
    for each first segment of the OpenAPI document's paths."""
    segments = sorted({path.strip("/").split("/")[0] for path in load_document(OPENAPI_DOCUMENT)["paths"]})
    return [pattern for segment in segments for pattern in (f"/{segment}", f"/{segment}/*")]


def origin_name(domain_name: str) -> str:
    """The name CloudFront connects to, latency-routed to the regions: ``origin.<domain>``."""
    return f"origin.{domain_name}"


@dataclass(frozen=True)
class EdgeArgs:
    """Inputs of Edge; plain values, no pulumi.Config."""

    domain_name: str
    """The public name the distribution serves, e.g. api.example.com."""
    hosted_zone_id: str
    """Route 53 hosted zone holding domain_name."""
    origin_domain_name: str
    """The latency-routed name of the regional APIs (origin_name(domain_name))."""
    us_east_1_provider: aws.Provider
    """A provider in us-east-1: the viewer certificate, the web ACL and the distribution use it."""
    dns_provider: aws.Provider
    """Provider for the Route 53 records (global; the same one as global routing's)."""
    waf: bool = False
    """Attach a WAF web ACL."""
    waf_rate_limit: int = 2000
    """Requests one client IP may send in any 5 minutes before the web ACL blocks it."""
    web: WebHosting | None = None
    """The web client's hosting: served as the default behaviour, the API on its own paths."""
    origin_resources: Sequence[pulumi.Resource] = ()
    """What serves origin_domain_name (the global routing component): the distribution and the public
    records wait for it, so the public name never points at an origin that does not answer yet, and the
    latency records that held the public name before are gone first."""

    def __post_init__(self) -> None:
        if not self.origin_domain_name.endswith(f".{self.domain_name}"):
            raise ValueError(
                f"Edge origin {self.origin_domain_name!r} must be a name below {self.domain_name!r}: the "
                "regional certificates are validated in the same hosted zone"
            )
        if not 10 <= self.waf_rate_limit <= 2_000_000_000:
            raise ValueError(f"Edge waf_rate_limit must be 10-2000000000, not {self.waf_rate_limit}")


class Edge(pulumi.ComponentResource):
    """Viewer certificate, optional web ACL, distribution and the public alias records."""

    distribution_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]
    distribution_domain_name: pulumi.Output[str]
    """The distribution's own name (dxxxx.cloudfront.net), which the public records alias."""
    web_acl_arn: pulumi.Output[str] | None
    """The web ACL's ARN when waf is on, else None."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:edge:Edge", name, None, opts)
        east = pulumi.ResourceOptions(parent=self, provider=args.us_east_1_provider)
        after_origin = pulumi.ResourceOptions(depends_on=list(args.origin_resources))

        certificate_arn = self._viewer_certificate(name, args, east)
        web_acl = self._web_acl(name, args, east) if args.waf else None
        distribution = self._distribution(
            name, args, certificate_arn, web_acl, pulumi.ResourceOptions.merge(east, after_origin)
        )
        self._alias_records(name, args, distribution, after_origin)

        self.distribution_id = distribution.id
        self.distribution_arn = distribution.arn
        self.distribution_domain_name = distribution.domain_name
        self.web_acl_arn = web_acl.arn if web_acl else None
        self.register_outputs(
            {
                "distribution_id": self.distribution_id,
                "distribution_domain_name": self.distribution_domain_name,
                "web_acl_arn": self.web_acl_arn,
            }
        )

    def _distribution(
        self,
        name: str,
        args: EdgeArgs,
        certificate_arn: pulumi.Output[str],
        web_acl: aws.wafv2.WebAcl | None,
        opts: pulumi.ResourceOptions,
    ) -> aws.cloudfront.Distribution:
        """The distribution: the regions' origin name for the API paths (no caching, every method),
        and with the web client its bucket for everything else."""
        api_behavior: dict[str, Any] = {
            "target_origin_id": ORIGIN_ID,
            "viewer_protocol_policy": "https-only",
            "allowed_methods": ALL_METHODS,
            "cached_methods": ["GET", "HEAD"],  # required; CachingDisabled caches nothing
            "cache_policy_id": CACHING_DISABLED_POLICY_ID,
            "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
        }
        web = args.web
        return aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            comment=f"{pulumi.get_project()}-{pulumi.get_stack()}: {args.domain_name}",
            aliases=[args.domain_name],
            default_root_object=INDEX if web else None,
            origins=[
                *([web.s3_origin()] if web else []),
                {
                    "domain_name": args.origin_domain_name,
                    "origin_id": ORIGIN_ID,
                    "custom_origin_config": {
                        "http_port": 80,  # required by the API, never used: https-only below
                        "https_port": 443,
                        "origin_protocol_policy": "https-only",
                        "origin_ssl_protocols": ["TLSv1.2"],
                        # API Gateway answers within 29 s; CloudFront's default wait is 30 s.
                        "origin_read_timeout": 30,
                    },
                },
            ],
            default_cache_behavior=(
                web.default_behavior()
                if web
                else cast(aws.cloudfront.DistributionDefaultCacheBehaviorArgsDict, api_behavior)
            ),
            ordered_cache_behaviors=(
                [
                    cast(
                        aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict,
                        {**api_behavior, "path_pattern": p},
                    )
                    for p in api_path_patterns()
                ]
                if web
                else None
            ),
            viewer_certificate={
                "acm_certificate_arn": certificate_arn,
                "ssl_support_method": "sni-only",
                "minimum_protocol_version": "TLSv1.2_2021",
            },
            http_version="http2and3",
            is_ipv6_enabled=True,
            price_class="PriceClass_All",  # clients anywhere: every edge location
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            web_acl_id=web_acl.arn if web_acl else None,
            opts=opts,
        )

    def _alias_records(
        self,
        name: str,
        args: EdgeArgs,
        distribution: aws.cloudfront.Distribution,
        after_origin: pulumi.ResourceOptions,
    ) -> None:
        """The public name's A and AAAA aliases to the distribution."""
        dns = pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(parent=self, provider=args.dns_provider), after_origin
        )
        for record_type in ("A", "AAAA"):
            aws.route53.Record(
                f"{name}-{record_type.lower()}",
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type=record_type,
                aliases=[
                    {
                        "name": distribution.domain_name,
                        "zone_id": distribution.hosted_zone_id,
                        # Route 53 refuses true for a CloudFront target; failover happens behind it.
                        "evaluate_target_health": False,
                    }
                ],
                opts=dns,
            )

    def _viewer_certificate(
        self, name: str, args: EdgeArgs, east: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        """An ACM certificate for the public name in us-east-1, validated in the hosted zone; returns
        its ARN once issued."""
        certificate = aws.acm.Certificate(
            f"{name}-viewer-cert", domain_name=args.domain_name, validation_method="DNS", opts=east
        )
        record = validation_record_for(
            f"{name}-viewer-cert-validation",
            certificate,
            args.hosted_zone_id,
            pulumi.ResourceOptions(parent=self, provider=args.dns_provider),
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-viewer-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=east,
        )
        return validation.certificate_arn

    def _web_acl(self, name: str, args: EdgeArgs, east: pulumi.ResourceOptions) -> aws.wafv2.WebAcl:
        """A CloudFront-scope web ACL: a per-IP rate limit first (the cheapest test), then AWS managed
        rule groups with their own actions (override none)."""
        waf = aws.wafv2
        acl_name = stack_name(name, WEB_ACL_NAME_MAX)

        def visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgs:
            return waf.WebAclRuleVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        rules = [
            waf.WebAclRuleArgs(
                name="rate-limit-per-ip",
                priority=0,
                action=waf.WebAclRuleActionArgs(block=waf.WebAclRuleActionBlockArgs()),
                statement=waf.WebAclRuleStatementArgs(
                    rate_based_statement=waf.WebAclRuleStatementRateBasedStatementArgs(
                        limit=args.waf_rate_limit,
                        aggregate_key_type="IP",
                        evaluation_window_sec=WAF_RATE_WINDOW_SECONDS,
                    )
                ),
                visibility_config=visibility(f"{acl_name}-rate-limit"),
            )
        ]
        for priority, group in enumerate(WAF_MANAGED_RULE_GROUPS, start=1):
            rules.append(
                waf.WebAclRuleArgs(
                    name=group,
                    priority=priority,
                    override_action=waf.WebAclRuleOverrideActionArgs(
                        none=waf.WebAclRuleOverrideActionNoneArgs()
                    ),
                    statement=waf.WebAclRuleStatementArgs(
                        managed_rule_group_statement=waf.WebAclRuleStatementManagedRuleGroupStatementArgs(
                            name=group, vendor_name="AWS"
                        )
                    ),
                    visibility_config=visibility(f"{acl_name}-{group}"),
                )
            )
        return waf.WebAcl(
            f"{name}-web-acl",
            name=acl_name,
            description=f"{args.domain_name}: per-IP rate limit and AWS managed rule groups",
            scope="CLOUDFRONT",
            default_action=waf.WebAclDefaultActionArgs(allow=waf.WebAclDefaultActionAllowArgs()),
            rules=rules,
            visibility_config=waf.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=acl_name, sampled_requests_enabled=True
            ),
            opts=east,
        )
