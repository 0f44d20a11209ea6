"""Edge (CloudFront, optional WAF) under Pulumi mocks: the component on its own, and in the program with
cdn on and off, waf on and off."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from components.edge import (
    ALL_METHODS,
    ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
    CACHING_DISABLED_POLICY_ID,
    Edge,
    EdgeArgs,
    origin_name,
)
from tests.ops_mocks import CLOUDFRONT_ZONE_ID, run_ops_program
from tests.pulumi_harness import ProgramRun, Registered

# The API's edge alone; the web client on the same distribution is tested in tests/test_web_client.py.
DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "webClient": False}
CDN = {**DOMAIN, "cdn": True}
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
CERTIFICATE = "aws:acm/certificate:Certificate"
RECORD = "aws:route53/record:Record"


def edge_program(waf: bool = False, app_regions: tuple[str, str] = ("us-east-1", "us-east-2")):
    def program() -> None:
        providers = {region: aws.Provider(f"aws-{region}", region=region) for region in app_regions}
        east = providers.get("us-east-1") or aws.Provider("aws-us-east-1", region="us-east-1")
        edge = Edge(
            "edge",
            EdgeArgs(
                domain_name="api.example.com",
                hosted_zone_id="Z0123456789ABCDEFGHIJ",
                origin_domain_name=origin_name("api.example.com"),
                us_east_1_provider=east,
                dns_provider=providers[app_regions[0]],
                waf=waf,
                waf_rate_limit=500,
            ),
        )
        pulumi.export("distributionId", edge.distribution_id)
        pulumi.export("webAclArn", edge.web_acl_arn)

    return program


def public_records(run: ProgramRun) -> dict[str, Registered]:
    return {
        r.inputs["type"]: r
        for r in run.of_type(RECORD)
        if r.inputs["name"] == "api.example.com" and r.inputs.get("aliases")
    }


def test_distribution_serves_the_domain_over_https_only_with_http3_from_the_latency_routed_origin() -> None:
    run = run_ops_program(program=edge_program())
    distribution = run.one(DISTRIBUTION).inputs
    assert distribution["aliases"] == ["api.example.com"]
    assert distribution["enabled"] is True
    assert distribution["httpVersion"] == "http2and3"
    assert distribution["isIpv6Enabled"] is True
    [origin] = distribution["origins"]
    assert origin["domainName"] == "origin.api.example.com"
    custom = origin["customOriginConfig"]
    assert custom["originProtocolPolicy"] == "https-only"
    assert custom["originSslProtocols"] == ["TLSv1.2"]
    assert custom["httpsPort"] == 443
    behavior = distribution["defaultCacheBehavior"]
    assert behavior["targetOriginId"] == origin["originId"]
    assert behavior["viewerProtocolPolicy"] in ("https-only", "redirect-to-https")
    assert sorted(behavior["allowedMethods"]) == sorted(ALL_METHODS)
    assert set(ALL_METHODS) == {"GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"}
    assert behavior["cachePolicyId"] == CACHING_DISABLED_POLICY_ID == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert (
        behavior["originRequestPolicyId"]
        == ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID
        == "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    )
    assert "forwardedValues" not in behavior  # legacy settings would conflict with the policies
    assert distribution["restrictions"]["geoRestriction"]["restrictionType"] == "none"


def test_viewer_certificate_is_issued_in_us_east_1_and_validated_in_the_zone() -> None:
    run = run_ops_program(program=edge_program())
    certificate = run.one(CERTIFICATE)
    assert certificate.region == "us-east-1"
    assert certificate.inputs["domainName"] == "api.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    validation = run.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation.region == "us-east-1"
    assert validation.inputs["certificateArn"] == certificate.outputs["arn"]
    [cname] = [r for r in run.of_type(RECORD) if r.inputs["type"] == "CNAME"]
    assert cname.inputs["zoneId"] == "Z0123456789ABCDEFGHIJ"
    assert validation.inputs["validationRecordFqdns"] == [cname.outputs["fqdn"]]
    assert cname.name in run.retained
    viewer = run.one(DISTRIBUTION).inputs["viewerCertificate"]
    assert viewer["acmCertificateArn"] == certificate.outputs["arn"]
    assert viewer["sslSupportMethod"] == "sni-only"
    assert viewer["minimumProtocolVersion"] == "TLSv1.2_2021"
    assert run.one(DISTRIBUTION).region == "us-east-1"


def test_without_us_east_1_among_the_app_regions_the_viewer_certificate_still_goes_there() -> None:
    run = run_ops_program(program=edge_program(waf=True, app_regions=("us-west-2", "eu-west-1")))
    assert run.one(CERTIFICATE).region == "us-east-1"
    assert run.one(WEB_ACL).region == "us-east-1"
    assert {r.region for r in public_records(run).values()} == {"us-west-2"}  # the DNS provider


def test_the_public_name_is_an_a_and_aaaa_alias_to_the_distribution() -> None:
    run = run_ops_program(program=edge_program())
    distribution = run.one(DISTRIBUTION)
    records = public_records(run)
    assert set(records) == {"A", "AAAA"}
    for record in records.values():
        assert record.inputs["zoneId"] == "Z0123456789ABCDEFGHIJ"
        [alias] = record.inputs["aliases"]
        assert alias["name"] == distribution.outputs["domainName"]
        assert alias["zoneId"] == CLOUDFRONT_ZONE_ID
        assert alias["evaluateTargetHealth"] is False
        assert "setIdentifier" not in record.inputs


def test_without_waf_there_is_no_web_acl() -> None:
    run = run_ops_program(program=edge_program(waf=False))
    assert run.of_type(WEB_ACL) == []
    assert not run.one(DISTRIBUTION).inputs.get("webAclId")
    assert run.outputs["webAclArn"] is None


def test_waf_is_a_cloudfront_scope_acl_with_managed_groups_and_a_rate_limit() -> None:
    run = run_ops_program(program=edge_program(waf=True))
    acl = run.one(WEB_ACL)
    assert acl.region == "us-east-1"
    assert acl.inputs["scope"] == "CLOUDFRONT"
    assert acl.inputs["defaultAction"] == {"allow": {}}
    rules = {rule["name"]: rule for rule in acl.inputs["rules"]}
    rate = rules["rate-limit-per-ip"]
    assert rate["action"] == {"block": {}}
    assert rate["statement"]["rateBasedStatement"] == {
        "limit": 500,
        "aggregateKeyType": "IP",
        "evaluationWindowSec": 300,
    }
    for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
        assert rules[group]["statement"]["managedRuleGroupStatement"] == {"name": group, "vendorName": "AWS"}
        assert rules[group]["overrideAction"] == {"none": {}}
    assert sorted(rule["priority"] for rule in rules.values()) == [0, 1, 2]
    assert all(rule["visibilityConfig"]["cloudwatchMetricsEnabled"] for rule in rules.values())
    assert run.one(DISTRIBUTION).inputs["webAclId"] == acl.outputs["arn"]
    assert run.outputs["webAclArn"] == acl.outputs["arn"]


def test_edge_args_refuse_an_origin_outside_the_domain_and_a_rate_limit_waf_refuses() -> None:
    provider = object.__new__(aws.Provider)  # never registered: the args refuse before any resource
    common = {"domain_name": "api.example.com", "hosted_zone_id": "Z1", "us_east_1_provider": provider}
    with pytest.raises(ValueError, match="below"):
        EdgeArgs(**common, origin_domain_name="origin.other.com", dns_provider=provider)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="waf_rate_limit"):
        EdgeArgs(
            **common, origin_domain_name="origin.api.example.com", dns_provider=provider, waf_rate_limit=5
        )  # type: ignore[arg-type]


# ---------------------------------------------------------------- the real program (__main__.py)


@pytest.fixture(scope="module")
def cdn_run() -> ProgramRun:
    return run_ops_program(CDN)


def test_program_with_cdn_moves_the_regions_to_the_origin_name_and_aliases_the_domain(
    cdn_run: ProgramRun,
) -> None:
    run = cdn_run
    latency = [
        r for r in run.of_type(RECORD) if r.inputs.get("latencyRoutingPolicies") and r.inputs["type"] == "A"
    ]
    assert {r.inputs["setIdentifier"] for r in latency} == {"us-east-1", "us-east-2"}
    assert {r.inputs["name"] for r in latency} == {"origin.api.example.com"}
    # The drill probe's latency TXT records follow the origin name too.
    named = [
        r for r in run.of_type(RECORD) if r.inputs.get("latencyRoutingPolicies") and r.inputs["type"] == "TXT"
    ]
    assert {r.inputs["name"] for r in named} == {"_region.origin.api.example.com"}
    for region in ("us-east-1", "us-east-2"):
        assert (
            run.one("aws:apigateway/domainName:DomainName", region).inputs["domainName"]
            == "origin.api.example.com"
        )
    distribution = run.one(DISTRIBUTION)
    assert distribution.inputs["origins"][0]["domainName"] == "origin.api.example.com"
    assert set(public_records(run)) == {"A", "AAAA"}
    # Certificates: one per region for the origin name, one in us-east-1 for the public name.
    names = sorted((c.region, c.inputs["domainName"]) for c in run.of_type(CERTIFICATE))
    assert names == [("us-east-1", "api.example.com"), ("us-east-1", "origin.api.example.com"),
                     ("us-east-2", "origin.api.example.com")]  # fmt: skip
    assert run.outputs["globalUrl"] == "https://api.example.com"
    assert run.outputs["cdnDomainName"] == distribution.outputs["domainName"]
    assert "webAclArn" not in run.outputs and run.of_type(WEB_ACL) == []


def test_program_creates_the_distribution_and_public_records_after_the_origin_routing(
    cdn_run: ProgramRun,
) -> None:
    run = cdn_run
    for resource in [run.one(DISTRIBUTION), *public_records(run).values()]:
        assert run.depends_on[resource.name] == ["users-api-routing"]


def test_program_with_waf_attaches_the_web_acl() -> None:
    run = run_ops_program({**CDN, "waf": True, "wafRateLimit": 100})
    acl = run.one(WEB_ACL)
    assert run.one(DISTRIBUTION).inputs["webAclId"] == acl.outputs["arn"] == run.outputs["webAclArn"]
    [rate] = [rule for rule in acl.inputs["rules"] if "rateBasedStatement" in rule["statement"]]
    assert rate["statement"]["rateBasedStatement"]["limit"] == 100


@pytest.mark.parametrize("overrides", [{}, DOMAIN])
def test_program_without_cdn_has_no_distribution_and_latency_routes_the_domain(overrides: dict) -> None:
    run = run_ops_program(overrides)
    assert run.of_type(DISTRIBUTION) == [] and run.of_type(WEB_ACL) == []
    assert "cdnDomainName" not in run.outputs
    latency = {r.inputs["name"] for r in run.of_type(RECORD) if r.inputs.get("latencyRoutingPolicies")}
    assert latency == ({"api.example.com", "_region.api.example.com"} if overrides else set())
