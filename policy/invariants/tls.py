"""TLS 1.2 or newer on every endpoint the stack declares.

- API Gateway custom domains: ``securityPolicy`` ``TLS_1_2`` or an enhanced ``SecurityPolicy_TLS12*`` /
  ``SecurityPolicy_TLS13*`` policy (all of which refuse TLS 1.0/1.1); never ``TLS_1_0`` or unset.
- REST APIs that set ``securityPolicy`` for their default execute-api endpoint: the same values.
- CloudFront distributions: every cache behavior ``redirect-to-https`` or ``https-only``; a custom
  certificate with ``minimumProtocolVersion`` ``TLSv1.2_2021`` or newer (the default certificate is
  pinned to TLSv1); no ``http-only`` custom origin and no origin protocol older than TLSv1.2.

A REST API that leaves ``securityPolicy`` unset keeps API Gateway's default for the execute-api
endpoint (TLS_1_0 for REGIONAL and EDGE APIs): the separate, advisory policy reports that.
DSQL connections need no check: DSQL accepts TLS connections only.
"""

from __future__ import annotations

import re
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import items, mapping

API_DOMAIN = "aws:apigateway/domainName:DomainName"
API_V2_DOMAIN = "aws:apigatewayv2/domainName:DomainName"
REST_API = "aws:apigateway/restApi:RestApi"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
HTTPS_VIEWER_POLICIES = ("redirect-to-https", "https-only")
OLD_ORIGIN_PROTOCOLS = ("SSLv3", "TLSv1", "TLSv1.1")
_CLOUDFRONT_MINIMUM = re.compile(r"^TLSv1\.(?P<minor>\d)_(?P<year>\d{4})$")


def apigateway_policy_ok(policy: Any) -> bool:
    """TLS_1_2, or an enhanced policy (every SecurityPolicy_TLS12*/TLS13* refuses TLS 1.0 and 1.1)."""
    return policy == "TLS_1_2" or (isinstance(policy, str) and policy.startswith("SecurityPolicy_TLS1"))


def cloudfront_minimum_ok(version: Any) -> bool:
    """TLSv1.2_2021 or newer (TLSv1.2_2025, TLSv1.3_2025, ...)."""
    found = _CLOUDFRONT_MINIMUM.match(version) if isinstance(version, str) else None
    if not found:
        return False
    minor, year = int(found["minor"]), int(found["year"])
    return minor >= 3 or (minor == 2 and year >= 2021)


def _distribution_problems(props: Any) -> list[str]:
    problems = []
    behaviors = [("the default cache behavior", mapping(props.get("defaultCacheBehavior")))]
    for index, behavior in enumerate(items(props.get("orderedCacheBehaviors"))):
        behavior = mapping(behavior)
        behaviors.append((f"cache behavior {behavior.get('pathPattern') or index!r}", behavior))
    for label, behavior in behaviors:
        viewer = behavior.get("viewerProtocolPolicy")
        if viewer not in HTTPS_VIEWER_POLICIES:
            problems.append(
                f"{label} has viewerProtocolPolicy {viewer!r}: use redirect-to-https or https-only"
            )
    certificate = mapping(props.get("viewerCertificate"))
    if certificate.get("cloudfrontDefaultCertificate") is True:
        problems.append(
            "it uses the default *.cloudfront.net certificate, which accepts TLSv1: use an ACM certificate "
            "(acmCertificateArn, sslSupportMethod sni-only) with minimumProtocolVersion TLSv1.2_2021 or newer"
        )
    elif not cloudfront_minimum_ok(certificate.get("minimumProtocolVersion")):
        problems.append(
            f"viewerCertificate.minimumProtocolVersion is {certificate.get('minimumProtocolVersion')!r}: use "
            "TLSv1.2_2021 or newer"
        )
    for index, origin in enumerate(items(props.get("origins"))):
        origin = mapping(origin)
        custom = mapping(origin.get("customOriginConfig"))
        if not custom:
            continue  # S3 origins are reached over HTTPS by CloudFront itself
        label = f"origin {origin.get('originId') or index!r}"
        if custom.get("originProtocolPolicy") == "http-only":
            problems.append(f"{label} has originProtocolPolicy 'http-only': use https-only")
        old = [
            protocol
            for protocol in items(custom.get("originSslProtocols"))
            if protocol in OLD_ORIGIN_PROTOCOLS
        ]
        if old:
            problems.append(f"{label} allows {', '.join(map(str, old))} to the origin: list only TLSv1.2")
    return problems


def check_tls(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    if args.resource_type == API_DOMAIN:
        policy = props.get("securityPolicy")
        if not apigateway_policy_ok(policy):
            report_violation(
                f"API Gateway domain name '{args.name}' has securityPolicy {policy!r}, which accepts TLS "
                '1.0 (unset keeps the default); set security_policy="TLS_1_2" (or a SecurityPolicy_TLS13_* '
                "policy with endpoint_access_mode)",
                None,
            )
    elif args.resource_type == API_V2_DOMAIN:
        policy = mapping(props.get("domainNameConfiguration")).get("securityPolicy")
        if policy != "TLS_1_2":
            report_violation(
                f"API Gateway v2 domain name '{args.name}' has domainNameConfiguration.securityPolicy "
                f'{policy!r}; set security_policy="TLS_1_2"',
                None,
            )
    elif args.resource_type == REST_API:
        policy = props.get("securityPolicy")
        if policy is not None and not apigateway_policy_ok(policy):
            report_violation(
                f"RestApi '{args.name}' sets securityPolicy {policy!r} on its execute-api endpoint, which "
                'accepts TLS 1.0; set security_policy="TLS_1_2" or a SecurityPolicy_TLS13_* policy',
                None,
            )
    elif args.resource_type == DISTRIBUTION:
        problems = _distribution_problems(props)
        if problems:
            report_violation(f"CloudFront distribution '{args.name}': {'; '.join(problems)}", None)


TLS_ONLY = ResourceValidationPolicy(
    name="tls-1-2-endpoints",
    description=(
        "Endpoints refuse plain HTTP and TLS older than 1.2: API Gateway domains TLS_1_2 or stronger, "
        "CloudFront HTTPS-only viewers with TLSv1.2_2021 or newer and no plain-HTTP origins."
    ),
    validate=check_tls,
    remediation_steps="Set the security policy / viewer and origin protocol policies named in the message.",
)


def check_rest_api_default_endpoint(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REST_API or args.props.get("disableExecuteApiEndpoint") is True:
        return
    if "PRIVATE" in items(mapping(args.props.get("endpointConfiguration")).get("types")):
        return  # private APIs default to TLS_1_2
    if args.props.get("securityPolicy") is None:
        report_violation(
            f"RestApi '{args.name}' leaves securityPolicy unset, so its execute-api endpoint keeps API "
            'Gateway\'s default, which accepts TLS 1.0; set security_policy="TLS_1_2" on the RestApi (or '
            "disable_execute_api_endpoint=True once clients use a TLS_1_2 custom domain)",
            None,
        )


REST_API_DEFAULT_ENDPOINT_TLS = ResourceValidationPolicy(
    name="rest-api-default-endpoint-tls-1-2",
    description="A REST API's default execute-api endpoint names a TLS 1.2+ security policy or is disabled.",
    validate=check_rest_api_default_endpoint,
    # Advisory: a report, not a gate, until the program sets the RestApi's securityPolicy.
    enforcement_level=EnforcementLevel.ADVISORY,
    remediation_steps='Set security_policy="TLS_1_2" on aws.apigateway.RestApi.',
)
