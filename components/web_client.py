"""The web client's hosting: a private S3 bucket read by CloudFront alone, and the files of ``web/``.

Two components, because the pieces fall on both sides of the regional APIs in the graph:

- ``WebHosting``: the bucket (public access blocked, bucket-owner-enforced ownership, SSE-S3,
  versioning so a bad upload can be rolled back), CloudFront origin access control (SigV4, every
  request signed), and the response headers policy (a strict Content-Security-Policy, HSTS, nosniff,
  frame-ancestors 'none', a referrer policy). With ``cdn`` the stack's one distribution
  (components/edge.py) serves the bucket as its default behaviour; without it (``own_domain``) the
  client gets a distribution of its own on ``app.<domainName>``, with a us-east-1 certificate and
  TLSv1.2_2021 at least. CloudFront's default ``*.cloudfront.net`` certificate accepts TLS 1.0, which
  the stack's TLS invariant (policy/invariants/tls.py) refuses, so a client needs the custom domain.
- ``WebContent`` (after the APIs and the distribution): the bucket policy allowing ``s3:GetObject``
  to that one distribution only (``aws:SourceArn``), and the files: HTML pages at their own paths with
  a short cache (``no-cache``: revalidated on every load), every other file under
  ``assets/<hash of the whole tree>/`` with a year-long immutable cache, and ``config.json``, which the
  client reads at run time (its keys are agreed in docs/web-client.md). ``index.html`` is also uploaded as
  ``callback``: the OAuth redirect path is a page of the client, and S3 has no rewrite rules.

Nothing is public: S3 answers CloudFront's signed requests only; with no ``s3:ListBucket`` an unknown
path answers 403, not a listing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.global_routing import validation_record_for
from components.naming import ORIGIN_ACCESS_CONTROL_NAME_MAX, RESPONSE_HEADERS_POLICY_NAME_MAX, stack_name
from scripts import web_policy

ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = ROOT / "web"
"""The web client's static files (HTML, CSS, JavaScript modules), uploaded as they are."""
INDEX = "index.html"
CONFIG_OBJECT = "config.json"
REDIRECT_PATH = "/callback"
"""Where managed login sends the browser back with the authorization code: a copy of index.html."""
ASSETS_PREFIX = "assets"
SHORT_CACHE = "no-cache"  # stored, but revalidated on every use: a new deploy is seen at once
LONG_CACHE = "public, max-age=31536000, immutable"  # content-hashed names never change content
# AWS managed cache policy "CachingOptimized" (CloudFront Developer Guide, managed cache policies): it
# honours the objects' Cache-Control and compresses with gzip and Brotli.
CACHING_OPTIMIZED_POLICY_ID = "658327ea-f89d-4fab-a63d-7e88639e58f6"
HSTS_MAX_AGE_SECONDS = 63_072_000  # two years, the preload list's expectation
# Content types by suffix; a file of any other kind is refused rather than served as a guess.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
    ".webmanifest": "application/manifest+json",
}
_LOCAL_REFERENCE = re.compile(r"""(?P<attr>\b(?:src|href)=)(?P<q>["'])(?P<ref>[^"'#?]+)(?P=q)""")


@dataclass(frozen=True)
class WebFile:
    """One object to upload: its key, content type, Cache-Control, and either a file or a text."""

    key: str
    content_type: str
    cache_control: str
    source: Path | None = None
    content: str | None = None


def content_type(path: Path) -> str:
    """The Content-Type for ``path``, or ValueError naming the file and the fix."""
    try:
        return CONTENT_TYPES[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"web client file {path.name} has no known content type ({path.suffix or 'no suffix'}); "
            f"use one of {', '.join(sorted(CONTENT_TYPES))}, or add the suffix to CONTENT_TYPES in "
            "components/web_client.py"
        ) from None


def site_files(site_dir: Path) -> list[WebFile]:
    """The objects for the files of ``site_dir``: pages at their paths (local references rewritten to
    the hashed asset names), everything else under ``assets/<tree hash>/`` (relative imports between
    modules keep working, as the tree moves as one), and index.html again as ``callback``."""
    # Hidden files and folders (an editor's swap file, a copy being renamed into place) never ship.
    files = sorted(
        p
        for p in site_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(site_dir).parts)
    )
    relative = {p.relative_to(site_dir).as_posix(): p for p in files}
    if CONFIG_OBJECT in relative:
        raise ValueError(
            f"{site_dir.name}/{CONFIG_OBJECT} exists, but the program generates {CONFIG_OBJECT} from the "
            "stack's outputs; remove the file (a local server writes its own)"
        )
    types = {name: content_type(path) for name, path in relative.items()}
    tree = hashlib.sha256()
    for name, path in relative.items():
        tree.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    prefix = f"{ASSETS_PREFIX}/{tree.hexdigest()[:12]}"

    def rewrite(match: re.Match[str]) -> str:
        ref = match["ref"]
        name = ref.removeprefix("./").removeprefix("/")
        if "://" in ref or ref.startswith("//") or name not in relative or name.endswith(".html"):
            return match.group(0)
        return f"{match['attr']}{match['q']}/{prefix}/{name}{match['q']}"

    objects: list[WebFile] = []
    for name, path in relative.items():
        if name.endswith(".html"):
            page = _LOCAL_REFERENCE.sub(rewrite, path.read_text(encoding="utf-8"))
            keys = [name, REDIRECT_PATH.lstrip("/")] if name == INDEX else [name]
            objects += [WebFile(key, types[name], SHORT_CACHE, content=page) for key in keys]
        else:
            objects.append(WebFile(f"{prefix}/{name}", types[name], LONG_CACHE, source=path))
    return objects


def bucket_prefix(project: str, stack: str) -> str:
    """``<project>-<stack>-web-`` as S3 accepts it (lowercase, at most 37 characters before S3's random
    suffix), so the deployer policy can name the project's buckets (``arn:aws:s3:::<project>-*``)."""
    stack_part = re.sub(r"[^a-z0-9-]+", "-", stack.lower())
    return f"{project}-{stack_part}"[: 37 - len("-web-")].rstrip("-") + "-web-"


def content_security_policy(api_origins: Sequence[str], auth_origin: str) -> str:
    """A strict CSP (scripts/web_policy.py): API calls to the regional APIs and the sign-in domain."""
    return web_policy.content_security_policy(api_origins, sign_in_origin=auth_origin)


def api_origins_for(regions: Sequence[str]) -> list[str]:
    """The regional execute-api hosts of ``regions``: known before the APIs exist (their ids are not),
    so the policy the APIs' CORS origin depends on needs nothing from them."""
    return [f"https://*.execute-api.{region}.amazonaws.com" for region in regions]


def identity_endpoints(regions: Sequence[str]) -> dict[str, str]:
    """Cognito's regional endpoint in each region that holds the pool (the primary, then the replica):
    the web client renews tokens there when the managed-login domain cannot (web/js/auth.js)."""
    return {region: f"https://cognito-idp.{region}.amazonaws.com/" for region in regions}


WEB_SUBDOMAIN = "app"


def web_host(domain_name: str, cdn: bool) -> str:
    """Where the client is served: the domain itself on the cdn distribution, else ``app.<domain>``."""
    return domain_name if cdn else f"{WEB_SUBDOMAIN}.{domain_name}"


@dataclass(frozen=True)
class WebDomain:
    """The own distribution's public name and what it needs to serve it."""

    name: str
    """``app.<domainName>``."""
    hosted_zone_id: str
    us_east_1_provider: pulumi.ProviderResource
    """For the viewer certificate (CloudFront takes certificates from us-east-1 only)."""
    dns_provider: pulumi.ProviderResource


@dataclass(frozen=True)
class WebHostingArgs:
    """Inputs of WebHosting; plain values, no pulumi.Config."""

    regions: Sequence[str]
    """The application regions, whose API hosts the CSP's connect-src allows."""
    auth_origin: pulumi.Input[str]
    """``https://`` origin of managed login (the Cognito domain), allowed in connect-src/form-action."""
    own_domain: WebDomain | None
    """A distribution of the client's own on this name (the stack's ``cdn`` is off); None: the edge
    distribution serves the bucket."""
    extra_connect_origins: Sequence[str] = ()
    """Other origins the client calls (the global API name with a custom domain)."""
    tags: Mapping[str, str] | None = None


class WebHosting(pulumi.ComponentResource):
    """Private bucket, origin access control, response headers policy, and optionally a distribution."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    bucket_regional_domain_name: pulumi.Output[str]
    origin_access_control_id: pulumi.Output[str]
    response_headers_policy_id: pulumi.Output[str]
    distribution: aws.cloudfront.Distribution | None
    """The client's own distribution (without ``cdn``), else None."""

    def __init__(self, name: str, args: WebHostingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:web:WebHosting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = self._bucket(name, args, child)
        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            name=stack_name(name, ORIGIN_ACCESS_CONTROL_NAME_MAX),
            description="CloudFront reads the web client's bucket with SigV4-signed requests",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        csp = pulumi.Output.from_input(args.auth_origin).apply(
            lambda auth: content_security_policy(
                [*api_origins_for(args.regions), *args.extra_connect_origins], auth
            )
        )
        headers = aws.cloudfront.ResponseHeadersPolicy(
            f"{name}-headers",
            name=stack_name(name, RESPONSE_HEADERS_POLICY_NAME_MAX),
            comment="Web client: strict CSP, HSTS, nosniff, no framing, referrer policy",
            security_headers_config={
                "content_security_policy": {"content_security_policy": csp, "override": True},
                "strict_transport_security": {
                    "access_control_max_age_sec": HSTS_MAX_AGE_SECONDS,
                    "include_subdomains": True,
                    "preload": False,  # a domain owner's decision, hard to undo
                    "override": True,
                },
                "content_type_options": {"override": True},
                "frame_options": {"frame_option": "DENY", "override": True},
                "referrer_policy": {"referrer_policy": "strict-origin-when-cross-origin", "override": True},
            },
            opts=child,
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.bucket_regional_domain_name = bucket.bucket_regional_domain_name
        self.origin_access_control_id = oac.id
        self.response_headers_policy_id = headers.id
        self.distribution = self._distribution(name, args.own_domain) if args.own_domain else None
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "origin_access_control_id": self.origin_access_control_id,
                "response_headers_policy_id": self.response_headers_policy_id,
            }
        )

    def s3_origin(self, origin_id: str = "web-client") -> aws.cloudfront.DistributionOriginArgsDict:
        """The distribution origin that reads this bucket through the origin access control."""
        return {
            "domain_name": self.bucket_regional_domain_name,
            "origin_id": origin_id,
            "origin_access_control_id": self.origin_access_control_id,
            # An S3 origin with OAC still needs the block; an empty identity means "no OAI".
            "s3_origin_config": {"origin_access_identity": ""},
        }

    def default_behavior(
        self, origin_id: str = "web-client"
    ) -> aws.cloudfront.DistributionDefaultCacheBehaviorArgsDict:
        """The cache behaviour serving the client: GET/HEAD only, cached, HTTPS (HTTP redirected: a
        browser's first visit types no scheme), the response headers policy."""
        return {
            "target_origin_id": origin_id,
            "viewer_protocol_policy": "redirect-to-https",
            "allowed_methods": ["GET", "HEAD"],
            "cached_methods": ["GET", "HEAD"],
            "cache_policy_id": CACHING_OPTIMIZED_POLICY_ID,
            "response_headers_policy_id": self.response_headers_policy_id,
            "compress": True,
        }

    def _bucket(self, name: str, args: WebHostingArgs, child: pulumi.ResourceOptions) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=bucket_prefix(pulumi.get_project(), pulumi.get_stack()),
            # Its files are the program's own: destroying the stack removes them with the bucket.
            force_destroy=True,
            tags=dict(args.tags or {}),
            opts=child,
        )
        after = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after,
        )
        # ACLs off: the bucket owner owns every object, and only the bucket policy grants access.
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=after,
        )
        # SSE-S3: CloudFront's OAC reads it with no KMS grant (SSE-KMS would need a key policy for it).
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=after,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=after,
        )
        return bucket

    def _distribution(self, name: str, domain: WebDomain) -> aws.cloudfront.Distribution:
        east = pulumi.ResourceOptions(parent=self, provider=domain.us_east_1_provider)
        dns = pulumi.ResourceOptions(parent=self, provider=domain.dns_provider)
        certificate = aws.acm.Certificate(
            f"{name}-cert", domain_name=domain.name, validation_method="DNS", opts=east
        )
        record = validation_record_for(f"{name}-cert-validation", certificate, domain.hosted_zone_id, dns)
        validated = aws.acm.CertificateValidation(
            f"{name}-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=east,
        )
        distribution = aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            comment=f"{pulumi.get_project()}-{pulumi.get_stack()}: web client {domain.name}",
            aliases=[domain.name],
            default_root_object=INDEX,
            origins=[self.s3_origin()],
            default_cache_behavior=self.default_behavior(),
            viewer_certificate={
                "acm_certificate_arn": validated.certificate_arn,
                "ssl_support_method": "sni-only",
                "minimum_protocol_version": "TLSv1.2_2021",
            },
            http_version="http2and3",
            is_ipv6_enabled=True,
            price_class="PriceClass_100",  # static files: the cheapest edge set is enough
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            opts=east,
        )
        for record_type in ("A", "AAAA"):
            aws.route53.Record(
                f"{name}-{record_type.lower()}",
                zone_id=domain.hosted_zone_id,
                name=domain.name,
                type=record_type,
                aliases=[
                    {
                        "name": distribution.domain_name,
                        "zone_id": distribution.hosted_zone_id,
                        "evaluate_target_health": False,  # Route 53 refuses true for CloudFront
                    }
                ],
                opts=dns,
            )
        return distribution


def bucket_policy_document(bucket_arn: str, distribution_arn: str) -> str:
    """Only CloudFront, and only for this distribution, may read objects (no listing, no writes)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CloudFrontReadsThroughOriginAccessControl",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/*",
                    "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
                },
                {
                    "Sid": "DenyPlainHttp",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )


def client_settings(
    api_urls: Mapping[str, str],
    auth_domain: str,
    client_id: str,
    user_pool_id: str,
    identity_regions: Sequence[str] = (),
) -> dict[str, Any]:
    """The content of ``config.json`` (keys agreed in docs/web-client.md)."""
    return {
        "apiUrls": dict(api_urls),
        "authDomain": auth_domain,
        "clientId": client_id,
        "identityEndpoints": identity_endpoints(identity_regions),
        "userPoolId": user_pool_id,
        "regions": list(api_urls),
        "redirectPath": REDIRECT_PATH,
    }


@dataclass(frozen=True)
class WebContentArgs:
    """Inputs of WebContent."""

    hosting: WebHosting
    distribution_arn: pulumi.Input[str]
    """The one distribution that may read the bucket."""
    settings: pulumi.Input[dict[str, Any]]
    """``config.json``'s content (client_settings)."""
    site_dir: Path | None = None
    """The client's files; default ``web/``."""


class WebContent(pulumi.ComponentResource):
    """The bucket policy for the distribution, the client's files and its config.json."""

    keys: list[str]
    """Every object key uploaded, config.json included."""

    def __init__(self, name: str, args: WebContentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:web:WebContent", name, None, opts)
        hosting = args.hosting
        policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=hosting.bucket_name,
            policy=pulumi.Output.all(hosting.bucket_arn, args.distribution_arn).apply(
                lambda values: bucket_policy_document(values[0], values[1])
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        site_dir = args.site_dir or WEB_DIR
        files = site_files(site_dir) if (site_dir / INDEX).is_file() else []
        if not files:
            pulumi.log.warn(
                f"the web client has no {site_dir.name}/{INDEX}: only {CONFIG_OBJECT} is uploaded, and the "
                "site answers 403 until the client's files are in that directory"
            )
        files.append(
            WebFile(
                CONFIG_OBJECT,
                CONTENT_TYPES[".json"],
                SHORT_CACHE,
                content=None,
            )
        )
        after = pulumi.ResourceOptions(parent=self, depends_on=[policy])
        for index, item in enumerate(files):
            body: dict[str, Any]
            if item.key == CONFIG_OBJECT:
                body = {
                    "content": pulumi.Output.from_input(args.settings).apply(
                        lambda settings: json.dumps(settings, indent=2, sort_keys=True) + "\n"
                    )
                }
            elif item.source is not None:
                # Project-relative, as the Lambda zips: the same inputs from any checkout path.
                body = {"source": pulumi.FileAsset(os.path.relpath(item.source, ROOT))}
            else:
                body = {"content": item.content}
            aws.s3.BucketObjectv2(
                f"{name}-object-{_object_name(item.key, index)}",
                bucket=hosting.bucket_name,
                key=item.key,
                content_type=item.content_type,
                cache_control=item.cache_control,
                opts=after,
                **body,
            )
        self.keys = [item.key for item in files]
        self.register_outputs({"keys": self.keys})


def _object_name(key: str, index: int) -> str:
    """A resource name for an object key: stable across deploys for pages and config.json; assets
    carry the tree hash in their key, so a changed tree replaces them (old versions stay in S3)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", key)[-80:] or str(index)
