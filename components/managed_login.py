"""Cognito managed login: the sign-in pages of the stack's user pool, on a domain.

- Without a custom domain: a Cognito prefix domain, ``https://<prefix>.auth.<region>.amazoncognito.com``.
  The prefix is unique per region across all AWS accounts, so the default is the project and stack
  plus a short hash of the account id (``default_domain_prefix``); ``authDomainPrefix`` overrides it.
- With the stack's ``domainName``: ``auth.<domainName>``, with an ACM certificate in us-east-1 (Cognito
  serves custom domains through CloudFront, which takes certificates from there only), validated in the
  hosted zone, and an alias A record to the CloudFront distribution Cognito reports. Cognito refuses a
  custom domain whose parent has no A record, so the component waits for the resources that serve the
  domain name (global routing or the edge) through ``after``.
- ``managed_login_version`` 2 (the current managed login with the branding designer), and a
  ``ManagedLoginBranding`` style for the web client's app client with Cognito's own defaults, which an
  operator can restyle in the console without a false diff here (``use_cognito_provided_values``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.dynamic.user_pool_replica import DomainFailover
from components.global_routing import validation_record_for

MANAGED_LOGIN_VERSION = 2  # 1 is the classic hosted UI
AUTH_SUBDOMAIN = "auth"
# Cognito's rules for prefix domains: lowercase letters, digits and hyphens, at most 63 characters,
# no leading or trailing hyphen, and none of these reserved words.
_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_PREFIX_WORDS = ("aws", "amazon", "cognito")


def check_domain_prefix(prefix: str) -> str:
    """``prefix`` if Cognito accepts it as a prefix domain, else ValueError saying what is wrong."""
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"Cognito domain prefix {prefix!r} must be 1-63 lowercase letters, digits or hyphens, not "
            "starting or ending with a hyphen"
        )
    reserved = [word for word in RESERVED_PREFIX_WORDS if word in prefix]
    if reserved:
        raise ValueError(
            f"Cognito domain prefix {prefix!r} may not contain the reserved word {reserved[0]!r}"
        )
    return prefix


def default_domain_prefix(project: str, stack: str, account_id: str) -> str:
    """``<project>-<stack>-<8 hex of the account>``, made acceptable: unique per account without putting
    the account id in a public URL."""
    digest = hashlib.sha256(account_id.encode()).hexdigest()[:8]
    base = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{stack}".lower())
    for word in RESERVED_PREFIX_WORDS:
        base = base.replace(word, "x" * len(word))
    base = re.sub(r"-+", "-", base).strip("-")[: 63 - 9]
    return check_domain_prefix(f"{base}-{digest}".strip("-"))


def prefix_domain_host(prefix: str, region: str) -> str:
    """The host name of a Cognito prefix domain."""
    return f"{prefix}.auth.{region}.amazoncognito.com"


def custom_domain_host(domain_name: str) -> str:
    return f"{AUTH_SUBDOMAIN}.{domain_name}"


@dataclass(frozen=True)
class ManagedLoginArgs:
    """Inputs of ManagedLogin; plain values, no pulumi.Config."""

    region: str
    """The user pool's region (a prefix domain's host name carries it)."""
    user_pool_id: pulumi.Input[str]
    client_id: pulumi.Input[str]
    """The web client's app client, whose managed login style is created."""
    domain_prefix: pulumi.Input[str] | None = None
    """The prefix domain's prefix; used when custom_domain is None."""
    custom_domain: str | None = None
    """``auth.<domainName>`` when the stack has a domain."""
    hosted_zone_id: str | None = None
    us_east_1_provider: aws.Provider | None = None
    """For the custom domain's certificate (us-east-1 only)."""
    dns_provider: aws.Provider | None = None
    after: Sequence[pulumi.Resource] = ()
    """What creates the parent domain's A record (Cognito checks it when the domain is created)."""
    failover_region: str | None = None
    """With authReplica: the replica's region, where the domain fails over (None: no failover)."""
    failover_health_check_id: pulumi.Input[str] | None = None
    """The primary region's Route 53 health check that moves the domain to ``failover_region``."""
    failover_after: Sequence[pulumi.Resource] = ()
    """The ACTIVE replica, which must exist before the domain can fail over to it."""

    def __post_init__(self) -> None:
        if self.custom_domain is None and self.domain_prefix is None:
            raise ValueError("ManagedLogin needs domain_prefix or custom_domain")
        if self.custom_domain is not None and not (
            self.hosted_zone_id and self.us_east_1_provider and self.dns_provider
        ):
            raise ValueError(
                "ManagedLogin custom_domain needs hosted_zone_id, us_east_1_provider and dns_provider"
            )


class ManagedLogin(pulumi.ComponentResource):
    """The user pool domain, its certificate and record (custom domains), and the managed login style."""

    domain: pulumi.Output[str]
    """Host name of the sign-in pages: ``<prefix>.auth.<region>.amazoncognito.com`` or ``auth.<domain>``."""

    def __init__(self, name: str, args: ManagedLoginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:identity:ManagedLogin", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        certificate_arn = self._certificate(name, args) if args.custom_domain else None
        domain = aws.cognito.UserPoolDomain(
            f"{name}-domain",
            domain=args.custom_domain or args.domain_prefix,  # type: ignore[arg-type]
            user_pool_id=args.user_pool_id,
            certificate_arn=certificate_arn,
            managed_login_version=MANAGED_LOGIN_VERSION,
            opts=child,
        )
        if args.custom_domain:
            aws.route53.Record(
                f"{name}-domain-alias",
                zone_id=args.hosted_zone_id,  # type: ignore[arg-type]
                name=args.custom_domain,
                type="A",
                aliases=[
                    {
                        "name": domain.cloudfront_distribution,
                        "zone_id": domain.cloudfront_distribution_zone_id,
                        "evaluate_target_health": False,
                    }
                ],
                opts=pulumi.ResourceOptions(parent=self, provider=args.dns_provider),
            )
            self.domain = pulumi.Output.from_input(args.custom_domain)
        else:
            self.domain = domain.domain.apply(lambda prefix: prefix_domain_host(prefix, args.region))
        if args.failover_region and args.failover_health_check_id is not None:
            DomainFailover(
                f"{name}-domain-failover",
                domain=domain.domain,
                user_pool_id=args.user_pool_id,
                region=args.region,
                managed_login_version=MANAGED_LOGIN_VERSION,
                health_check_id=args.failover_health_check_id,
                secondary_region=args.failover_region,
                certificate_arn=certificate_arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[domain, *args.failover_after]),
            )
        aws.cognito.ManagedLoginBranding(
            f"{name}-branding",
            user_pool_id=args.user_pool_id,
            client_id=args.client_id,
            use_cognito_provided_values=True,
            # Branding needs the version-2 domain to be of use.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[domain]),
        )
        self.register_outputs({"domain": self.domain})

    def _certificate(self, name: str, args: ManagedLoginArgs) -> pulumi.Output[str]:
        east = pulumi.ResourceOptions(parent=self, provider=args.us_east_1_provider)
        certificate = aws.acm.Certificate(
            f"{name}-cert", domain_name=args.custom_domain, validation_method="DNS", opts=east
        )
        record = validation_record_for(
            f"{name}-cert-validation",
            certificate,
            args.hosted_zone_id,  # type: ignore[arg-type]
            pulumi.ResourceOptions(parent=self, provider=args.dns_provider),
        )
        return aws.acm.CertificateValidation(
            f"{name}-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=east,
        ).certificate_arn
