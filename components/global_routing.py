"""Global routing: Route 53 health checks on each region's /health and, with a custom domain, latency
records that send each client to the nearest healthy region.

Without ``domain_name`` the component only creates the health checks (the stack then serves the two
regional invoke URLs). With ``domain_name`` and ``hosted_zone_id`` it adds, per region: an ACM
certificate validated by DNS, an API Gateway regional custom domain with a base path mapping to the
stage, and a latency alias record tied to that region's health check, so Route 53 stops answering with
a region whose /health fails. The records serve ``record_name``: the public domain itself, or, with
CloudFront in front (components/edge.py), the origin name ``origin.<domain>`` that CloudFront connects
to, so that every method fails over, not only the GET/HEAD/OPTIONS that CloudFront origin groups retry.

With a domain it also writes a small "regions" TXT record set (``_regions.<record_name>``): one
multivalue answer per region carrying the region's name, behind the same health check. Route 53 answers
it with every region it counts as healthy, wherever the asker is, which a latency record cannot show
(its answer depends on the resolver's location). The failover drill asks TestDNSAnswer about it, as a
labelled extra.

And a latency TXT record set ``_region.<record_name>``: per region, the region's name, with the same
latency routing and health check as the API's records. The zone's own name servers answer it as they
answer the API's name, so a question carrying an EDNS client subnet in a region (RFC 7871) says which
region a client there is sent to, by name: the failover drill's probe asks it (docs/operations.md).

Providers. Certificates, custom domains and mappings are regional: each is created with its region's
provider. Health checks and records are global Route 53 objects: the region of the provider only
decides where the API call is signed, not where the object lives, so they use ``dns_provider`` (the
entry point passes the primary region's). Using one provider for every global object keeps them in one
place in the state, and they never move when the secondary region is added, replaced or removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from components.config import PROJECT


@dataclass(frozen=True)
class RegionalEndpoint:
    """One region's API as seen from outside: everything global routing needs, nothing more."""

    region: str
    """AWS region name of this API, e.g. us-east-1 (also the latency record's region)."""
    provider: aws.Provider
    """The explicit provider for this region: certificates, custom domains and mappings use it."""
    invoke_url: pulumi.Input[str]
    """The stage's invoke URL, https://<api id>.execute-api.<region>.amazonaws.com/<stage>."""
    rest_api_id: pulumi.Input[str]
    """Id of the region's REST API (for the base path mapping)."""
    stage_name: pulumi.Input[str]
    """Name of the stage that serves the API (health path and base path mapping)."""


@dataclass(frozen=True)
class GlobalRoutingArgs:
    """Inputs of GlobalRouting; plain values, no pulumi.Config."""

    endpoints: Sequence[RegionalEndpoint]
    """The application regions, primary first."""
    dns_provider: aws.Provider
    """Provider for the global Route 53 health checks and records (the primary region's)."""
    health_check_interval_seconds: int = 30
    """Route 53 request interval: 10 or 30 seconds."""
    health_check_failure_threshold: int = 3
    """Consecutive failures before Route 53 counts a region as unhealthy (1-10)."""
    domain_name: str | None = None
    """Custom domain served by latency records, e.g. api.example.com; None for no custom domain."""
    hosted_zone_id: str | None = None
    """Route 53 hosted zone holding domain_name; required with domain_name."""
    record_name: str | None = None
    """The name the latency records, certificates and custom domains serve: domain_name by default;
    origin.<domain_name> when CloudFront serves domain_name. Must be domain_name or a name below it."""
    health_path: str = "health"
    """Path of the health route below the stage."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every taggable child."""

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("GlobalRouting needs at least one regional endpoint")
        regions = [endpoint.region for endpoint in self.endpoints]
        if len(set(regions)) != len(regions):
            raise ValueError(f"GlobalRouting got a region twice: {regions}")
        if (self.domain_name is None) != (self.hosted_zone_id is None):
            raise ValueError("GlobalRouting needs both domain_name and hosted_zone_id, or neither")
        if self.record_name is not None and (
            self.domain_name is None
            or not (self.record_name == self.domain_name or self.record_name.endswith(f".{self.domain_name}"))
        ):
            raise ValueError(
                f"GlobalRouting record_name {self.record_name!r} must be domain_name or a name below it"
            )

    @property
    def served_name(self) -> str | None:
        """The name the latency records answer for (None without a domain)."""
        return self.record_name or self.domain_name


def invoke_host(invoke_url: str) -> str:
    """The host name of an invoke URL (what the health check connects to and sends as SNI)."""
    host = urlsplit(invoke_url).hostname
    if not host:
        raise ValueError(f"invoke URL {invoke_url!r} has no host name")
    return host


class GlobalRouting(pulumi.ComponentResource):
    """Health checks per region; with a custom domain, certificates, custom domains and latency records."""

    health_check_ids: dict[str, pulumi.Output[str]]
    """Route 53 health check id per region."""
    regional_domain_names: dict[str, pulumi.Output[str]]
    """Per region, the API Gateway regional domain the latency record aliases (empty without a domain)."""
    global_url: pulumi.Output[str] | None
    """https://<domain_name> when a custom domain is configured, else None."""
    record_name: str | None
    """The name the latency records serve (domain_name, or the CloudFront origin name); None without."""
    regions_record_name: str | None
    """The multivalue TXT record listing every region Route 53 counts as healthy; None without a domain."""
    region_record_name: str | None
    """The latency TXT record naming the region a client is sent to; None without a domain."""
    latency_records: list[aws.route53.Record]
    """The latency records (for whatever must be created after them, e.g. CloudFront's alias record)."""

    def __init__(self, name: str, args: GlobalRoutingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:routing:GlobalRouting", name, None, opts)
        tags = dict(args.tags)
        dns = pulumi.ResourceOptions(parent=self, provider=args.dns_provider)

        self.health_check_ids = {}
        self.regional_domain_names = {}
        self.global_url = None
        self.record_name = args.served_name if args.hosted_zone_id else None
        self.regions_record_name = f"_regions.{self.record_name}" if self.record_name else None
        self.region_record_name = f"_region.{self.record_name}" if self.record_name else None
        self.latency_records = []

        for endpoint in args.endpoints:
            region = endpoint.region
            health_check = aws.route53.HealthCheck(
                f"{name}-{region}-health",
                type="HTTPS",
                # The invoke host is served by API Gateway for many APIs: SNI picks this one.
                fqdn=pulumi.Output.from_input(endpoint.invoke_url).apply(invoke_host),
                port=443,
                enable_sni=True,
                resource_path=pulumi.Output.from_input(endpoint.stage_name).apply(
                    lambda stage: f"/{stage}/{args.health_path}"
                ),
                request_interval=args.health_check_interval_seconds,
                failure_threshold=args.health_check_failure_threshold,
                tags={**tags, "Name": f"{name}-{region}-health", "region": region},
                opts=dns,
            )
            self.health_check_ids[region] = health_check.id

            if self.record_name and self.regions_record_name and args.hosted_zone_id:
                self.regional_domain_names[region] = self._custom_domain(
                    name, endpoint, self.record_name, args.hosted_zone_id, health_check, dns, tags
                )
                aws.route53.Record(
                    f"{name}-{region}-regions",
                    zone_id=args.hosted_zone_id,
                    name=self.regions_record_name,
                    type="TXT",
                    ttl=60,
                    records=[region],
                    set_identifier=region,
                    multivalue_answer_routing_policy=True,
                    health_check_id=health_check.id,
                    opts=dns,
                )
                aws.route53.Record(
                    f"{name}-{region}-served-region",
                    zone_id=args.hosted_zone_id,
                    name=self.region_record_name,
                    type="TXT",
                    ttl=60,
                    records=[region],
                    set_identifier=region,
                    latency_routing_policies=[{"region": region}],
                    health_check_id=health_check.id,
                    opts=dns,
                )

        if args.domain_name:
            self.global_url = pulumi.Output.from_input(f"https://{args.domain_name}")

        self.register_outputs(
            {
                "health_check_ids": self.health_check_ids,
                "regional_domain_names": self.regional_domain_names,
                "global_url": self.global_url,
                "record_name": self.record_name,
                "regions_record_name": self.regions_record_name,
                "region_record_name": self.region_record_name,
            }
        )

    def _custom_domain(
        self,
        name: str,
        endpoint: RegionalEndpoint,
        record_name: str,
        hosted_zone_id: str,
        health_check: aws.route53.HealthCheck,
        dns: pulumi.ResourceOptions,
        tags: dict[str, str],
    ) -> pulumi.Output[str]:
        """Certificate, custom domain, mapping and latency record for ``record_name`` in one region;
        returns the regional domain name the record aliases."""
        region = endpoint.region
        regional = pulumi.ResourceOptions(parent=self, provider=endpoint.provider)

        # ACM certificates are regional: a regional custom domain needs one in its own region.
        certificate = aws.acm.Certificate(
            f"{name}-{region}-cert",
            domain_name=record_name,
            validation_method="DNS",
            tags=tags,
            opts=regional,
        )
        validation_record = validation_record_for(
            f"{name}-{region}-cert-validation", certificate, hosted_zone_id, dns
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-{region}-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[validation_record.fqdn],
            opts=regional,
        )
        custom_domain = aws.apigateway.DomainName(
            f"{name}-{region}-domain",
            domain_name=record_name,
            # The validated ARN, so the domain waits until the certificate is issued.
            regional_certificate_arn=validation.certificate_arn,
            endpoint_configuration={"types": "REGIONAL"},
            security_policy="TLS_1_2",
            tags=tags,
            opts=regional,
        )
        aws.apigateway.BasePathMapping(
            f"{name}-{region}-mapping",
            domain_name=custom_domain.domain_name,
            rest_api=endpoint.rest_api_id,
            stage_name=endpoint.stage_name,
            opts=regional,
        )
        latency_record = aws.route53.Record(
            f"{name}-{region}-latency",
            zone_id=hosted_zone_id,
            name=record_name,
            type="A",
            set_identifier=region,
            latency_routing_policies=[{"region": region}],
            health_check_id=health_check.id,
            aliases=[
                {
                    "name": custom_domain.regional_domain_name,
                    "zone_id": custom_domain.regional_zone_id,
                    "evaluate_target_health": True,
                }
            ],
            # When the served name changes (CloudFront turned on), the old latency record must be gone
            # before another record type or policy can take its name: delete first, then create.
            opts=pulumi.ResourceOptions.merge(dns, pulumi.ResourceOptions(delete_before_replace=True)),
        )
        self.latency_records.append(latency_record)
        return custom_domain.regional_domain_name


def validation_record_for(
    resource_name: str, certificate: aws.acm.Certificate, hosted_zone_id: str, opts: pulumi.ResourceOptions
) -> aws.route53.Record:
    """The DNS validation record of a one-name certificate, in the hosted zone.

    ACM gives every certificate for the same name in one account the same validation CNAME (in every
    region), so two certificates may name the same record set: allow_overwrite lets the second adopt it
    instead of failing with "already exists", and retain_on_delete keeps it when one of them goes, since
    the other still needs it to renew. A validation CNAME left behind is inert.
    """
    option = certificate.domain_validation_options.apply(lambda options: options[0])
    return aws.route53.Record(
        resource_name,
        zone_id=hosted_zone_id,
        name=option.resource_record_name,
        type=option.resource_record_type,
        records=[option.resource_record_value],
        ttl=300,
        allow_overwrite=True,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )
