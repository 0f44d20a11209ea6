"""The deployed web client and managed login under Pulumi mocks, through __main__.py: a private bucket
read only by its distribution through origin access control, a strict CSP, the files with the right
types and caching, config.json, the managed-login domain and a code + PKCE client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from components import web_client
from components.config import ConfigError, parse_config
from components.identity import CLI_CALLBACK_PORTS, web_callback_urls
from components.managed_login import check_domain_prefix, default_domain_prefix
from components.web_client import (
    LONG_CACHE,
    SHORT_CACHE,
    content_security_policy,
    site_files,
)
from tests.iam_policy import allows
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ACCOUNT, ProgramRun, Registered, run_program

BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
HEADERS = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
DOMAIN = "aws:cognito/userPoolDomain:UserPoolDomain"
BRANDING = "aws:cognito/managedLoginBranding:ManagedLoginBranding"
CERTIFICATE = "aws:acm/certificate:Certificate"
RECORD = "aws:route53/record:Record"
WITH_DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
WITH_CDN = {**WITH_DOMAIN, "cdn": True}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small client: a page, two modules (one imports the other), a stylesheet and a nested file."""
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text(
        '<!doctype html><html><head><link rel="stylesheet" href="style.css">'
        '<script type="module" src="./js/app.js"></script></head>'
        '<body><a href="https://example.com/x">out</a><a href="#main">skip</a></body></html>\n'
    )
    (root / "js").mkdir()
    (root / "js" / "app.js").write_text('import { api } from "./api.js";\napi();\n')
    (root / "js" / "api.js").write_text("export function api() {}\n")
    (root / "style.css").write_text("body { margin: 0 }\n")
    with mock.patch.object(web_client, "WEB_DIR", root):
        yield root


@pytest.fixture(scope="module")
def prod(site: Path) -> ProgramRun:
    """A stack with a custom domain and no cdn: the client on app.<domain>, its own distribution."""
    return run_ops_program(WITH_DOMAIN)


@pytest.fixture(scope="module")
def no_domain(site: Path) -> ProgramRun:
    return run_program()


@pytest.fixture(scope="module")
def cdn(site: Path) -> ProgramRun:
    return run_ops_program(WITH_CDN)


def _objects(run: ProgramRun) -> dict[str, Registered]:
    return {r.inputs["key"]: r for r in run.of_type(OBJECT)}


# ----------------------------------------------------------------- the bucket: private, read by one distribution


def test_the_bucket_is_private_owner_enforced_encrypted_and_versioned(prod: ProgramRun) -> None:
    bucket = prod.one(BUCKET)
    assert bucket.region == "us-east-1"
    block = prod.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[key] is True
        for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    ownership = prod.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}  # ACLs off
    sse = prod.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    versioning = prod.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    for part in ("bucketPublicAccessBlock", "bucketOwnershipControls", "bucketVersioning"):
        resource = next(r for r in prod.resources if part in r.typ)
        assert resource.inputs["bucket"] == bucket.outputs["id"]


def test_origin_access_control_signs_every_request_with_sigv4(prod: ProgramRun) -> None:
    oac = prod.one(OAC).inputs
    assert oac["originAccessControlOriginType"] == "s3"
    assert oac["signingBehavior"] == "always"
    assert oac["signingProtocol"] == "sigv4"


def _policy(run: ProgramRun) -> dict[str, Any]:
    return json.loads(run.one(POLICY).inputs["policy"])


@pytest.mark.parametrize("fixture", ["prod", "cdn"])
def test_only_the_stacks_distribution_may_read_the_bucket(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(fixture)
    distributions = run.of_type(DISTRIBUTION)
    assert len(distributions) == 1, "the web client has one distribution: its own, or the cdn one"
    distribution_arn = distributions[0].outputs["arn"]
    bucket = run.one(BUCKET).outputs
    policy = _policy(run)
    objects = f"{bucket['arn']}/index.html"
    context = {"aws:PrincipalAccount": ACCOUNT}
    # The evaluator checks actions, resources and conditions (principals are the statement's own).
    reader = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in reader] == [{"Service": "cloudfront.amazonaws.com"}]
    allow_only = {
        "Version": "2012-10-17",
        "Statement": [{k: v for k, v in s.items() if k != "Principal"} for s in reader],
    }
    assert allows(allow_only, "s3:GetObject", objects, {**context, "AWS:SourceArn": distribution_arn})
    other = f"arn:aws:cloudfront::{ACCOUNT}:distribution/EOTHERDIST0000"
    assert not allows(allow_only, "s3:GetObject", objects, {**context, "AWS:SourceArn": other})
    for action in ("s3:ListBucket", "s3:PutObject", "s3:DeleteObject"):
        assert not allows(allow_only, action, objects, {**context, "AWS:SourceArn": distribution_arn})
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ----------------------------------------------------------------- headers: CSP, HSTS and the rest


def _identity_endpoints(run: ProgramRun) -> dict[str, str]:
    """Cognito's regional endpoints the client may renew tokens at: the pool's region, and the
    replica's with authReplica (the stack exports ``userPoolArns`` then)."""
    regions = ["us-east-1", "us-east-2"] if "userPoolArns" in run.outputs else ["us-east-1"]
    return {region: f"https://cognito-idp.{region}.amazonaws.com/" for region in regions}


def _csp(run: ProgramRun) -> str:
    config = run.one(HEADERS).inputs["securityHeadersConfig"]
    return config["contentSecurityPolicy"]["contentSecurityPolicy"]


def test_the_csp_allows_no_inline_script_and_only_the_apis_and_the_sign_in_domain(prod: ProgramRun) -> None:
    directives = {part.split()[0]: part.split()[1:] for part in _csp(prod).split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    auth = "https://auth.api.example.com"
    assert prod.one(DOMAIN).inputs["domain"] == "auth.api.example.com"
    assert directives["connect-src"] == [
        "'self'",
        "https://*.execute-api.us-east-1.amazonaws.com",
        "https://*.execute-api.us-east-2.amazonaws.com",
        *[url.rstrip("/") for url in _identity_endpoints(prod).values()],
        auth,
    ]
    assert directives["form-action"] == ["'self'", auth]
    assert not any("unsafe" in value for values in directives.values() for value in values)


def test_hsts_nosniff_no_framing_and_a_referrer_policy(prod: ProgramRun) -> None:
    config = prod.one(HEADERS).inputs["securityHeadersConfig"]
    hsts = config["strictTransportSecurity"]
    assert hsts["accessControlMaxAgeSec"] >= 31_536_000 and hsts["includeSubdomains"] is True
    assert config["contentTypeOptions"] == {"override": True}
    assert config["frameOptions"]["frameOption"] == "DENY"
    assert config["referrerPolicy"]["referrerPolicy"] == "strict-origin-when-cross-origin"
    assert all(header["override"] is True for header in config.values())


def test_the_csp_helper_refuses_nothing_but_names_every_origin() -> None:
    csp = content_security_policy(["https://api.example.com"], "https://auth.example.com")
    assert "connect-src 'self' https://api.example.com https://auth.example.com" in csp
    assert len(csp) <= 1783  # CloudFront's limit for the Content-Security-Policy value


# ----------------------------------------------------------------- its own distribution (cdn off)


def test_without_cdn_the_client_has_its_own_distribution_on_app_domain_and_the_apis_allow_it(
    prod: ProgramRun,
) -> None:
    distribution = prod.one(DISTRIBUTION).inputs
    assert distribution["defaultRootObject"] == "index.html"
    assert distribution["aliases"] == ["app.api.example.com"]
    # TLS 1.2 at least: an ACM certificate in us-east-1 (the default *.cloudfront.net one accepts TLS 1.0).
    viewer = distribution["viewerCertificate"]
    assert viewer["minimumProtocolVersion"] == "TLSv1.2_2021" and viewer["sslSupportMethod"] == "sni-only"
    certificate = next(
        c for c in prod.of_type(CERTIFICATE) if c.inputs["domainName"] == "app.api.example.com"
    )
    assert certificate.region == "us-east-1"
    records = [r for r in prod.of_type(RECORD) if r.inputs["name"] == "app.api.example.com"]
    assert sorted(r.inputs["type"] for r in records) == ["A", "AAAA"]
    [origin] = distribution["origins"]
    assert origin["originAccessControlId"] == prod.one(OAC).outputs["id"]
    assert origin["domainName"] == prod.one(BUCKET).outputs["bucketRegionalDomainName"]
    behavior = distribution["defaultCacheBehavior"]
    assert behavior["viewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["allowedMethods"] == ["GET", "HEAD"]
    assert behavior["responseHeadersPolicyId"] == prod.one(HEADERS).outputs["id"]
    web_origin = "https://app.api.example.com"
    assert prod.outputs["webUrl"] == web_origin
    for region in ("us-east-1", "us-east-2"):
        variables = prod.named(f"users-api-{region}-function").inputs["environment"]["variables"]
        assert web_origin in variables["CORS_ALLOW_ORIGINS"].split(",")
        body = json.loads(prod.named(f"users-api-{region}-api").inputs["body"])
        responses = body["x-amazon-apigateway-gateway-responses"]
        origin_header = "gatewayresponse.header.Access-Control-Allow-Origin"
        assert responses["DEFAULT_4XX"]["responseParameters"][origin_header] == f"'{web_origin}'"


# ----------------------------------------------------------------- the cdn distribution serves both


def test_with_cdn_one_distribution_serves_the_client_by_default_and_the_api_on_its_paths(
    cdn: ProgramRun,
) -> None:
    distribution = cdn.one(DISTRIBUTION).inputs
    origins = {o["originId"]: o for o in distribution["origins"]}
    assert set(origins) == {"web-client", "regional-apis"}
    assert origins["web-client"]["originAccessControlId"] == cdn.one(OAC).outputs["id"]
    assert origins["regional-apis"]["domainName"] == "origin.api.example.com"
    assert distribution["defaultCacheBehavior"]["targetOriginId"] == "web-client"
    assert distribution["defaultCacheBehavior"]["responseHeadersPolicyId"] == cdn.one(HEADERS).outputs["id"]
    api = {b["pathPattern"]: b for b in distribution["orderedCacheBehaviors"]}
    assert set(api) == {"/health", "/health/*", "/users", "/users/*"}
    for behavior in api.values():
        assert behavior["targetOriginId"] == "regional-apis"
        assert "POST" in behavior["allowedMethods"] and "DELETE" in behavior["allowedMethods"]
        assert behavior["viewerProtocolPolicy"] == "https-only"
    assert cdn.outputs["webUrl"] == "https://api.example.com"
    variables = cdn.named("users-api-us-east-1-function").inputs["environment"]["variables"]
    assert "https://api.example.com" in variables["CORS_ALLOW_ORIGINS"].split(",")


def test_with_a_domain_managed_login_is_auth_domain_with_a_us_east_1_certificate(cdn: ProgramRun) -> None:
    domain = cdn.one(DOMAIN)
    assert domain.inputs["domain"] == "auth.api.example.com"
    assert domain.inputs["managedLoginVersion"] == 2
    certificate = next(
        c for c in cdn.of_type(CERTIFICATE) if c.inputs["domainName"] == "auth.api.example.com"
    )
    assert certificate.region == "us-east-1"
    assert domain.inputs["certificateArn"] == certificate.outputs["arn"]
    alias = next(r for r in cdn.of_type(RECORD) if r.inputs["name"] == "auth.api.example.com")
    assert alias.inputs["type"] == "A"
    assert alias.inputs["aliases"][0]["name"] == domain.outputs["cloudfrontDistribution"]
    # Cognito wants the parent's A record first: the domain waits for the routing and the edge.
    assert set(cdn.depends_on["users-login-domain"]) == {"users-api-routing", "users-api-edge"}
    assert cdn.outputs["authDomain"] == "auth.api.example.com"
    assert "https://auth.api.example.com" in _csp(cdn)


# ----------------------------------------------------------------- managed login and the code + PKCE client


def test_without_a_domain_managed_login_is_a_cognito_prefix_for_the_cli_and_no_site(
    no_domain: ProgramRun,
) -> None:
    domain = no_domain.one(DOMAIN)
    assert domain.region == "us-east-1" and domain.inputs.get("certificateArn") is None
    assert domain.inputs["domain"] == default_domain_prefix("dsql-users-api", "prod", ACCOUNT)
    assert domain.inputs["managedLoginVersion"] == 2
    branding = no_domain.one(BRANDING).inputs
    assert branding["clientId"] == "users-identity-web-client-id"
    assert branding["useCognitoProvidedValues"] is True
    assert no_domain.outputs["authDomain"] == f"{domain.inputs['domain']}.auth.us-east-1.amazoncognito.com"
    # No custom domain, no site: CloudFront's own certificate would accept TLS 1.0.
    assert no_domain.of_type(BUCKET) == [] and no_domain.of_type(DISTRIBUTION) == []
    assert "webUrl" not in no_domain.outputs
    client = no_domain.named("users-identity-web-client").inputs
    assert client["callbackUrls"] == [f"http://localhost:{port}/callback" for port in CLI_CALLBACK_PORTS]
    assert client.get("logoutUrls") is None and client.get("defaultRedirectUri") is None


def test_an_own_prefix_is_used_as_given(site: Path) -> None:
    run = run_program({"authDomainPrefix": "users-login-test"})
    assert run.one(DOMAIN).inputs["domain"] == "users-login-test"
    assert run.outputs["authDomain"] == "users-login-test.auth.us-east-1.amazoncognito.com"


def test_the_web_client_is_code_with_pkce_only_with_https_or_loopback_callbacks(prod: ProgramRun) -> None:
    client = prod.named("users-identity-web-client").inputs
    assert client["generateSecret"] is False
    assert client["allowedOauthFlowsUserPoolClient"] is True
    assert client["allowedOauthFlows"] == ["code"]
    assert set(client["allowedOauthScopes"]) == {"openid", "email", "profile"}
    assert client["supportedIdentityProviders"] == ["COGNITO"]
    web = prod.outputs["webUrl"]
    assert client["callbackUrls"] == [f"{web}/callback"] + [
        f"http://localhost:{port}/callback" for port in CLI_CALLBACK_PORTS
    ]
    for url in client["callbackUrls"]:
        assert url.startswith("https://") or url.startswith("http://localhost:")
    assert client["defaultRedirectUri"] == f"{web}/callback"
    assert client["logoutUrls"] == [f"{web}/"]
    assert client["refreshTokenRotation"] == {"feature": "ENABLED", "retryGracePeriodSeconds": 10}
    # Rotation and REFRESH_TOKEN_AUTH exclude each other; refresh goes through the token endpoint.
    assert "ALLOW_REFRESH_TOKEN_AUTH" not in client["explicitAuthFlows"]
    assert prod.outputs["webClientId"] == "users-identity-web-client-id"


def test_callback_urls_refuse_a_plain_http_or_pathful_origin() -> None:
    for origin in ("http://app.example.com", "https://app.example.com/app", "app.example.com"):
        with pytest.raises(ValueError, match="https:// origin"):
            web_callback_urls(origin)


def test_domain_prefixes_follow_cognitos_rules() -> None:
    assert check_domain_prefix("users-api-prod") == "users-api-prod"
    for bad, why in (
        ("Users", "lowercase"),
        ("-x", "hyphen"),
        ("my-cognito", "reserved"),
        ("a" * 64, "1-63"),
    ):
        with pytest.raises(ValueError, match=why):
            check_domain_prefix(bad)
    derived = default_domain_prefix("aws-demo", "Prod_1", "123456789012")
    assert check_domain_prefix(derived) == derived and ACCOUNT not in derived
    assert default_domain_prefix("p", "s", "111111111111") != default_domain_prefix("p", "s", "222222222222")


def test_config_validates_web_client_and_auth_domain_prefix() -> None:
    regions = {"primaryRegion": "us-east-1", "secondaryRegion": "us-east-2", "witnessRegion": "us-west-2"}
    assert parse_config(regions).web_client is True
    assert parse_config({**regions, "webClient": "false"}).web_client is False
    assert parse_config({**regions, "authDomainPrefix": "users-login"}).auth_domain_prefix == "users-login"
    with pytest.raises(
        ConfigError, match=r"dsql-users-api:authDomainPrefix .*reserved word 'amazon'.*pulumi config"
    ):
        parse_config({**regions, "authDomainPrefix": "amazon-login"})
    with pytest.raises(ConfigError, match="dsql-users-api:webClient must be true or false"):
        parse_config({**regions, "webClient": "yes"})


def test_an_open_api_gets_no_web_client_and_a_warning(site: Path) -> None:
    with mock.patch("pulumi.log.warn") as warn:
        # authReplica (on in prod) needs a pool: off with authMode none.
        run = run_program({"authMode": "none", "authReplica": False})
    assert run.of_type(BUCKET) == [] and run.of_type(DOMAIN) == [] and run.of_type(DISTRIBUTION) == []
    assert any("webClient" in str(call.args[0]) for call in warn.call_args_list)
    quiet = run_program({"authMode": "none", "authReplica": False, "webClient": False}, program=None)
    assert quiet.of_type(BUCKET) == []


# ----------------------------------------------------------------- the files and config.json


def test_pages_are_short_cached_assets_hashed_and_long_cached_with_their_types(prod: ProgramRun) -> None:
    objects = _objects(prod)
    assert objects["index.html"].inputs["cacheControl"] == SHORT_CACHE
    assert objects["index.html"].inputs["contentType"] == "text/html; charset=utf-8"
    # The OAuth redirect path is the same page.
    assert objects["callback"].inputs["content"] == objects["index.html"].inputs["content"]
    assets = {key: r for key, r in objects.items() if key.startswith("assets/")}
    prefix = next(iter(assets)).split("/")[1]
    assert len(prefix) == 12
    assert set(assets) == {f"assets/{prefix}/{name}" for name in ("js/app.js", "js/api.js", "style.css")}
    assert assets[f"assets/{prefix}/js/app.js"].inputs["contentType"] == "text/javascript; charset=utf-8"
    assert assets[f"assets/{prefix}/style.css"].inputs["contentType"] == "text/css; charset=utf-8"
    assert all(r.inputs["cacheControl"] == LONG_CACHE for r in assets.values())
    page = objects["index.html"].inputs["content"]
    assert f'href="/assets/{prefix}/style.css"' in page and f'src="/assets/{prefix}/js/app.js"' in page
    assert 'href="https://example.com/x"' in page and 'href="#main"' in page  # left alone


def test_config_json_names_the_apis_the_domain_and_the_client(prod: ProgramRun) -> None:
    config = _objects(prod)["config.json"].inputs
    assert config["contentType"] == "application/json" and config["cacheControl"] == SHORT_CACHE
    settings = json.loads(config["content"])
    assert settings == {
        "apiUrls": prod.outputs["invokeUrls"],
        "authDomain": prod.outputs["authDomain"],
        "clientId": prod.outputs["webClientId"],
        "identityEndpoints": _identity_endpoints(prod),
        "userPoolId": prod.outputs["userPoolId"],
        "regions": ["us-east-1", "us-east-2"],
        "redirectPath": "/callback",
    }
    # Every object waits for the bucket policy, so the first request never meets a 403 from S3.
    assert all(prod.depends_on[r.name] == ["users-web-content-policy"] for r in prod.of_type(OBJECT))


def test_a_change_to_any_file_moves_every_asset_and_a_same_tree_keeps_the_names(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="app.js"></script>')
    (tmp_path / "app.js").write_text("1;\n")
    (tmp_path / ".app.js.swp").write_text("x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.bin").write_bytes(b"\0")
    first = {f.key for f in site_files(tmp_path)}
    assert not any("swp" in key or ".cache" in key for key in first)  # hidden files never ship
    assert {f.key for f in site_files(tmp_path)} == first
    (tmp_path / "app.js").write_text("2;\n")
    second = {f.key for f in site_files(tmp_path)}
    assert first & second == {"index.html", "callback"}


def test_unknown_file_types_and_a_committed_config_json_are_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>x</p>")
    (tmp_path / "data.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"data\.bin has no known content type.*CONTENT_TYPES"):
        site_files(tmp_path)
    (tmp_path / "data.bin").unlink()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"generates config\.json"):
        site_files(tmp_path)


def test_an_empty_web_directory_uploads_config_json_only_and_says_so(tmp_path: Path) -> None:
    with mock.patch.object(web_client, "WEB_DIR", tmp_path), mock.patch("pulumi.log.warn") as warn:
        run = run_ops_program(WITH_DOMAIN)
    assert set(_objects(run)) == {"config.json"}
    assert any("has no web/index.html" in str(call.args[0]) or "index.html" in str(call.args[0])
               for call in warn.call_args_list)  # fmt: skip


@pytest.mark.parametrize("fixture", ["prod", "cdn"])
def test_the_policy_packs_invariants_hold_with_the_web_client(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """TLS 1.2+ on every distribution, and the other mandatory invariants, with the client deployed."""
    from tests.test_policy_pack import program_violations

    run: ProgramRun = request.getfixturevalue(fixture)
    found = program_violations(run)
    separate = ("rest-api-default-endpoint-tls-1-2", "api-methods-require-cognito-authorizer")
    assert {name: messages for name, messages in found.items() if name not in separate and messages} == {}
    assert run.of_type(DISTRIBUTION) and run.of_type(BUCKET)  # not vacuous


@pytest.mark.parametrize("overrides", [{}, WITH_DOMAIN, WITH_CDN], ids=["no-domain", "app-domain", "cdn"])
def test_a_first_preview_plans_every_part_without_known_outputs(overrides: dict, site: Path) -> None:
    run = run_ops_program(overrides, preview=True)
    assert len(run.of_type(DOMAIN)) == 1 and len(run.of_type(BRANDING)) == 1
    if overrides:
        keys = {r.inputs["key"] for r in run.of_type(OBJECT)}
        assert {"index.html", "callback", "config.json"} <= keys
        assert len(run.of_type(DISTRIBUTION)) == 1 and len(run.of_type(POLICY)) == 1
