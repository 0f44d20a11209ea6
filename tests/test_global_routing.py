"""GlobalRouting under Pulumi mocks: health checks per region, and the custom-domain resources only
when a domain is configured, each in the right region with the right health check."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from components.config import load_config
from components.global_routing import GlobalRouting, GlobalRoutingArgs, RegionalEndpoint, invoke_host
from tests.pulumi_harness import ProgramRun, Registered, run_program

DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
CUSTOM_DOMAIN_TYPES = (
    "aws:acm/certificate:Certificate",
    "aws:acm/certificateValidation:CertificateValidation",
    "aws:apigateway/domainName:DomainName",
    "aws:apigateway/basePathMapping:BasePathMapping",
    "aws:route53/record:Record",
)


def api_id(region: str) -> str:
    return f"api{region.replace('-', '')}"


def routing_program(record_name: str | None = None, replaced_first: set[str] | None = None):
    """What the entry point does: one provider per region, fake regional APIs, then GlobalRouting.
    ``replaced_first`` collects the names of resources registered with delete_before_replace."""

    def program() -> None:
        if replaced_first is not None:
            pulumi.runtime.register_stack_transformation(
                lambda args: (
                    replaced_first.add(args.name)
                    if args.opts is not None and args.opts.delete_before_replace
                    else None
                )
            )
        _routing(record_name)

    return program


def _routing(record_name: str | None) -> None:
    config = load_config()
    providers = {region: aws.Provider(f"aws-{region}", region=region) for region in config.app_regions}
    routing = GlobalRouting(
        "global",
        GlobalRoutingArgs(
            endpoints=[
                RegionalEndpoint(
                    region=region,
                    provider=providers[region],
                    invoke_url=pulumi.Output.from_input(
                        f"https://{api_id(region)}.execute-api.{region}.amazonaws.com/{config.stage_name}"
                    ),
                    rest_api_id=api_id(region),
                    stage_name=config.stage_name,
                )
                for region in config.app_regions
            ],
            dns_provider=providers[config.primary_region],
            health_check_interval_seconds=config.health_check_interval_seconds,
            health_check_failure_threshold=config.health_check_failure_threshold,
            domain_name=config.domain_name,
            hosted_zone_id=config.hosted_zone_id,
            record_name=record_name,
            tags=config.tags,
        ),
    )
    pulumi.export("healthCheckIds", routing.health_check_ids)
    pulumi.export("regionsRecord", routing.regions_record_name)
    if routing.global_url is not None:
        pulumi.export("globalUrl", routing.global_url)


def health_checks(run: ProgramRun) -> dict[str, Registered]:
    """Health check inputs keyed by the region tag each one carries."""
    return {r.inputs["tags"]["region"]: r for r in run.of_type("aws:route53/healthCheck:HealthCheck")}


def latency_records(run: ProgramRun) -> dict[str, Registered]:
    """The latency records, keyed by their set identifier (the region)."""
    return {
        r.inputs["setIdentifier"]: r
        for r in run.of_type("aws:route53/record:Record")
        if r.inputs.get("latencyRoutingPolicies")
    }


def regions_records(run: ProgramRun) -> dict[str, Registered]:
    """The multivalue TXT records naming each healthy region, keyed by their set identifier."""
    return {
        r.inputs["setIdentifier"]: r
        for r in run.of_type("aws:route53/record:Record")
        if r.inputs.get("multivalueAnswerRoutingPolicy")
    }


def test_each_region_has_an_https_health_check_on_its_own_invoke_host_and_health_path() -> None:
    run = run_program(
        {"healthCheckIntervalSeconds": 10, "healthCheckFailureThreshold": 2}, program=routing_program()
    )
    checks = health_checks(run)
    assert set(checks) == {"us-east-1", "us-east-2"}
    for region, check in checks.items():
        assert check.inputs["type"] == "HTTPS"
        assert check.inputs["fqdn"] == f"{api_id(region)}.execute-api.{region}.amazonaws.com"
        assert check.inputs["resourcePath"] == "/v1/health"
        assert check.inputs["port"] == 443
        assert check.inputs["enableSni"] is True
        assert check.inputs["requestInterval"] == 10
        assert check.inputs["failureThreshold"] == 2
        # Route 53 is global: every health check goes through the primary region's provider.
        assert check.region == "us-east-1"
    assert run.outputs["healthCheckIds"] == {region: f"{check.name}-id" for region, check in checks.items()}


def test_health_path_follows_the_configured_stage() -> None:
    run = run_program({"stageName": "prod2"}, program=routing_program())
    assert {c.inputs["resourcePath"] for c in health_checks(run).values()} == {"/prod2/health"}


def test_without_a_domain_there_is_no_certificate_custom_domain_mapping_or_record() -> None:
    run = run_program(program=routing_program())
    for typ in CUSTOM_DOMAIN_TYPES:
        assert run.of_type(typ) == [], typ
    assert "globalUrl" not in run.outputs
    assert run.outputs["regionsRecord"] is None
    assert len(health_checks(run)) == 2


def test_with_a_domain_each_region_gets_a_validated_certificate_and_regional_custom_domain() -> None:
    run = run_program(DOMAIN, program=routing_program())
    for region in ("us-east-1", "us-east-2"):
        certificate = run.one("aws:acm/certificate:Certificate", region)
        assert certificate.inputs["domainName"] == "api.example.com"
        assert certificate.inputs["validationMethod"] == "DNS"

        validation = run.one("aws:acm/certificateValidation:CertificateValidation", region)
        assert validation.inputs["certificateArn"] == certificate.outputs["arn"]
        assert validation.inputs["validationRecordFqdns"]

        domain = run.one("aws:apigateway/domainName:DomainName", region)
        assert domain.inputs["domainName"] == "api.example.com"
        assert domain.inputs["regionalCertificateArn"] == certificate.outputs["arn"]
        assert domain.inputs["endpointConfiguration"]["types"] == "REGIONAL"
        assert domain.inputs["securityPolicy"] == "TLS_1_2"

        mapping = run.one("aws:apigateway/basePathMapping:BasePathMapping", region)
        assert mapping.inputs["restApi"] == api_id(region)
        assert mapping.inputs["stageName"] == "v1"
        assert mapping.inputs["domainName"] == "api.example.com"
    assert run.outputs["globalUrl"] == "https://api.example.com"


def test_with_a_domain_latency_records_alias_each_regional_domain_behind_its_own_health_check() -> None:
    replaced_first: set[str] = set()
    run = run_program(DOMAIN, program=routing_program(replaced_first=replaced_first))
    checks = health_checks(run)
    records = latency_records(run)
    assert set(records) == {"us-east-1", "us-east-2"}
    for region, record in records.items():
        domain = run.one("aws:apigateway/domainName:DomainName", region)
        assert record.inputs["zoneId"] == DOMAIN["hostedZoneId"]
        assert record.inputs["name"] == "api.example.com"
        assert record.inputs["type"] == "A"
        assert record.inputs["latencyRoutingPolicies"] == [{"region": region}]
        assert record.inputs["healthCheckId"] == f"{checks[region].name}-id"
        [alias] = record.inputs["aliases"]
        assert alias["name"] == domain.outputs["regionalDomainName"]
        assert alias["zoneId"] == domain.outputs["regionalZoneId"]
        assert alias["evaluateTargetHealth"] is True
        assert record.region == "us-east-1"
        # A record of another policy or type may take the name next (CloudFront): delete, then create.
        assert record.name in replaced_first


def test_with_a_domain_a_multivalue_txt_record_names_each_region_behind_its_health_check() -> None:
    run = run_program(DOMAIN, program=routing_program())
    checks = health_checks(run)
    records = regions_records(run)
    assert set(records) == {"us-east-1", "us-east-2"}
    for region, record in records.items():
        assert record.inputs["name"] == "_regions.api.example.com"
        assert record.inputs["type"] == "TXT"
        assert record.inputs["records"] == [region]
        assert record.inputs["healthCheckId"] == f"{checks[region].name}-id"
        assert record.inputs["zoneId"] == DOMAIN["hostedZoneId"]
        assert "latencyRoutingPolicies" not in record.inputs
    assert run.outputs["regionsRecord"] == "_regions.api.example.com"


def test_a_record_name_below_the_domain_moves_certificates_domains_and_records_to_it() -> None:
    run = run_program(DOMAIN, program=routing_program(record_name="origin.api.example.com"))
    for region in ("us-east-1", "us-east-2"):
        assert (
            run.one("aws:acm/certificate:Certificate", region).inputs["domainName"]
            == "origin.api.example.com"
        )
        assert run.one("aws:apigateway/domainName:DomainName", region).inputs["domainName"] == (
            "origin.api.example.com"
        )
    assert {r.inputs["name"] for r in latency_records(run).values()} == {"origin.api.example.com"}
    assert {r.inputs["name"] for r in regions_records(run).values()} == {"_regions.origin.api.example.com"}
    # The public name itself is left to whatever serves it (CloudFront): no record here takes it.
    assert all(r.inputs["name"] != "api.example.com" for r in run.of_type("aws:route53/record:Record"))
    assert run.outputs["globalUrl"] == "https://api.example.com"


def test_certificate_validation_records_are_written_to_the_hosted_zone() -> None:
    run = run_program(DOMAIN, program=routing_program())
    validation_records = [r for r in run.of_type("aws:route53/record:Record") if r.inputs["type"] == "CNAME"]
    assert len(validation_records) == 2
    for record in validation_records:
        assert record.inputs["zoneId"] == DOMAIN["hostedZoneId"]
        assert record.inputs["name"] == "_x.api.example.com."
        assert record.inputs["records"] == ["_y.acm-validations.aws."]
        # Both regions' certificates share one validation CNAME: the second record must adopt it, and
        # neither may delete it while the other certificate still needs it to renew.
        assert record.inputs["allowOverwrite"] is True
        assert record.name in run.retained


def test_invoke_host_takes_the_host_of_an_invoke_url() -> None:
    assert invoke_host("https://abc.execute-api.us-east-2.amazonaws.com/v1") == (
        "abc.execute-api.us-east-2.amazonaws.com"
    )
    with pytest.raises(ValueError, match="no host"):
        invoke_host("not a url")


def test_half_a_domain_configuration_is_refused() -> None:
    provider = object.__new__(aws.Provider)  # never registered: the args refuse before any resource
    endpoint = RegionalEndpoint("us-east-1", provider, "https://a.b/v1", "a", "v1")
    with pytest.raises(ValueError, match="both domain_name and hosted_zone_id"):
        GlobalRoutingArgs(endpoints=[endpoint], dns_provider=provider, domain_name="api.example.com")
    with pytest.raises(ValueError, match="region twice"):
        GlobalRoutingArgs(endpoints=[endpoint, endpoint], dns_provider=provider)
    with pytest.raises(ValueError, match="below it"):
        GlobalRoutingArgs(
            endpoints=[endpoint],
            dns_provider=provider,
            domain_name="api.example.com",
            hosted_zone_id="Z1",
            record_name="origin.other.example.com",
        )


# ---------------------------------------------------------------- the real program (__main__.py)


@pytest.fixture(scope="module")
def program_without_domain() -> ProgramRun:
    return run_program()


@pytest.fixture(scope="module")
def program_with_domain() -> ProgramRun:
    return run_program(DOMAIN)


def test_program_health_checks_target_each_regions_real_invoke_host(
    program_without_domain: ProgramRun,
) -> None:
    run = program_without_domain
    checks = health_checks(run)
    assert set(checks) == {"us-east-1", "us-east-2"}
    for region, check in checks.items():
        assert f"https://{check.inputs['fqdn']}/v1" == run.outputs["invokeUrls"][region]
        assert check.inputs["resourcePath"] == "/v1/health"
    assert run.outputs["healthCheckIds"] == {region: f"{check.name}-id" for region, check in checks.items()}


def test_program_without_a_domain_keeps_both_urls_and_has_no_global_routing(
    program_without_domain: ProgramRun,
) -> None:
    run = program_without_domain
    for typ in CUSTOM_DOMAIN_TYPES:
        assert run.of_type(typ) == [], typ
    assert set(run.outputs["invokeUrls"]) == {"us-east-1", "us-east-2"}
    assert "globalUrl" not in run.outputs


def test_program_with_a_domain_routes_to_each_regions_own_api(program_with_domain: ProgramRun) -> None:
    run = program_with_domain
    assert run.outputs["globalUrl"] == "https://api.example.com"
    assert set(run.outputs["invokeUrls"]) == {"us-east-1", "us-east-2"}
    apis = {r.region: r for r in run.of_type("aws:apigateway/restApi:RestApi")}
    checks = health_checks(run)
    for region in ("us-east-1", "us-east-2"):
        mapping = run.one("aws:apigateway/basePathMapping:BasePathMapping", region)
        assert mapping.inputs["restApi"] == apis[region].outputs["id"]
        record = latency_records(run)[region]
        assert record.inputs["healthCheckId"] == f"{checks[region].name}-id"
        assert record.inputs["name"] == "api.example.com"  # no CloudFront: the public name is latency-routed


def test_program_alarms_publish_to_their_regions_topic(program_without_domain: ProgramRun) -> None:
    run = program_without_domain
    topics = run.outputs["alarmTopicArns"]
    assert set(topics) == {"us-east-1", "us-east-2"}
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) == 2 * 10  # per region: 4 Lambda, 3 API, 2 DSQL, 1 health check
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topics[alarm.region]]
    functions = {r.region: r.outputs["name"] for r in run.of_type("aws:lambda/function:Function")}
    errors = [a for a in alarms if a.inputs.get("metricName") == "Errors"]
    assert {a.region: a.inputs["dimensions"]["FunctionName"] for a in errors} == functions
    api_names = {r.region: r.inputs["name"] for r in run.of_type("aws:apigateway/restApi:RestApi")}
    latency = [a for a in alarms if a.inputs.get("metricName") == "Latency"]
    assert {a.region: a.inputs["dimensions"]["ApiName"] for a in latency} == api_names
    # The database alarms watch each region's own cluster.
    commits = [a for a in alarms if a.inputs.get("metricName") == "CommitLatency"]
    clusters = {region: cluster["id"] for region, cluster in run.outputs["dsqlClusters"].items()}
    assert {a.region: a.inputs["dimensions"]["ClusterId"] for a in commits} == clusters
