"""handler/openapi.yaml describes the handler: same routes, same rules, and a fuzzer finds no gap.

The fuzzing test runs schemathesis (every check it has) over HTTP against the local two-region
application: no 5xx, every status/header/body as documented, schema-violating input refused and
schema-valid input accepted. It is bounded (a few hundred generated requests, well under a minute).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import make_conninfo

from components.openapi import OpenApiError, api_gateway_body, cognito_schemes, operations
from handler import app, validation
from handler import config as handler_config
from handler.errors import ApiError
from local.auth import LocalIssuer, container_env
from local.launcher import LocalApp, start_local_app

SPEC_PATH = Path(app.__file__).resolve().parent / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def test_is_an_openapi_3_0_document_api_gateway_can_import(spec: dict[str, Any]) -> None:
    assert re.fullmatch(r"3\.0\.\d+", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    operation_ids = [
        op["operationId"] for item in spec["paths"].values() for m, op in item.items() if m in HTTP_METHODS
    ]
    assert len(operation_ids) == len(set(operation_ids))
    operations = [op for item in spec["paths"].values() for m, op in item.items() if m in HTTP_METHODS]
    assert not any("x-amazon-apigateway-integration" in op for op in operations)


def test_documents_exactly_the_handlers_routes(spec: dict[str, Any]) -> None:
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    served = {(path, method) for path, methods in app.ROUTES.items() for method in methods}
    assert documented == served


def test_every_error_code_is_documented(spec: dict[str, Any]) -> None:
    def subclasses(cls: type[ApiError]) -> set[type[ApiError]]:
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    codes = {cls.code for cls in subclasses(ApiError)}
    documented = set(
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    )
    assert codes == documented


def test_documented_limits_are_the_handlers(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["Name"]["maxLength"] == validation.NAME_MAX
    assert schemas["Email"]["maxLength"] == validation.EMAIL_MAX
    limit = next(p for p in spec["paths"]["/users"]["get"]["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (
        1,
        validation.LIMIT_MAX,
        validation.LIMIT_DEFAULT,
    )


NAMES = [
    "Ann\u200b",
    "A\u00adnn",
    "\u202eAnn",
    "Ann\u2066",
    "Ann\U000e0041",
    "\u3164",
    "Ann\u2028Lee",
    "ma\u0308x",
    "Ann",
    " Ann ",
    "é" * 100,
    "a\tb",
    "",
    "   ",
    "x\x00",
    "\x85name",
    "x" * 101,
    "😀",
    "A\u00a0B",
]
EMAILS = [
    "a@b.co",
    " A.B+c@Example.COM ",
    "a@b",
    "a b@c.io",
    "@c.io",
    "a@-c.io",
    "a@c-.io",
    "x" * 65 + "@c.io",
    "a@" + "d" * 64 + ".io",
    "ü@xn--bcher-kva.example",
    "a@b.c\n",
    "a\x01@b.io",
    "a@@b.io",
    "ann\u200b@example.com",
    "an\u00adn@example.com",
    "\u202eann@example.com",
    "ann\U000e0041@example.com",
    "ma\u0308x@example.com",
    "M\u00c4X@Example.com",
    "\uff41\uff4e\uff4e@example.com",
    "a\u00a8b@example.com",
    "a\uff20b@example.com",
    "\u3000a@b.io\u00a0",
    "\ta@b.io",
    "x" * 64 + "@" + "d" * 61 + "." + "e" * 61 + "." + "f" * 61 + ".com",
    "x" * 64 + "@" + "d" * 61 + "." + "e" * 61 + "." + "f" * 62 + ".com",
]


@pytest.mark.parametrize("value", NAMES)
def test_name_pattern_agrees_with_the_handler(spec: dict[str, Any], value: str) -> None:
    schema = spec["components"]["schemas"]["Name"]
    by_doc = schema["minLength"] <= len(value) <= schema["maxLength"] and re.search(schema["pattern"], value)
    _, problem = validation.normalise_name(value)
    assert bool(by_doc) == (problem is None), (value, problem)


@pytest.mark.parametrize("value", EMAILS)
def test_email_pattern_agrees_with_the_handler(spec: dict[str, Any], value: str) -> None:
    schema = spec["components"]["schemas"]["Email"]
    by_doc = schema["minLength"] <= len(value) <= schema["maxLength"] and re.search(schema["pattern"], value)
    _, problem = validation.normalise_email(value)
    assert bool(by_doc) == (problem is None), (value, problem)


def test_patterns_agree_with_the_handler_for_every_character(spec: dict[str, Any]) -> None:
    """Characters inside a name, and inside an email's local part, are accepted or refused alike by the
    document's pattern and the handler. Emails are checked for every character whose canonical (NFKC)
    form differs, every listed range's edges and every whitespace character: elsewhere the canonical
    form is the character itself, and the name sweep covers the shared ranges."""
    schemas = spec["components"]["schemas"]
    name_pattern = re.compile(schemas["Name"]["pattern"])
    email_pattern = re.compile(schemas["Email"]["pattern"])
    edges = {
        edge + delta
        for low, high in validation.INVISIBLE_RANGES + validation.EMAIL_LOCAL_EXCLUDED_RANGES
        for edge in (low, high)
        for delta in (-1, 0, 1)
    }
    # Names: every BMP character; beyond it the listed ranges' edges and a sample (the rest is
    # unassigned or ordinary letters and symbols, one behaviour for both).
    names = {*range(0x10000), *edges, *range(0x10000, sys.maxunicode + 1, 97)}
    emails = {
        code
        for code in range(sys.maxunicode + 1)
        if code in edges or chr(code).isspace() or not unicodedata.is_normalized("NFKC", chr(code).lower())
    }
    disagree = []
    for code in sorted(names | emails):
        if 0xD800 <= code <= 0xDFFF or not 0 <= code <= sys.maxunicode:
            continue  # lone surrogates: JSON text cannot carry them unescaped
        char = chr(code)
        name = f"A{char}b"
        if code in names and bool(name_pattern.search(name)) != (validation.normalise_name(name)[1] is None):
            disagree.append(f"name U+{code:04X}")
        email = f"a{char}b@example.com"
        if code in emails and bool(email_pattern.search(email)) != (
            validation.normalise_email(email)[1] is None
        ):
            disagree.append(f"email U+{code:04X}")
    assert disagree == []


@pytest.fixture(scope="module")
def fuzz_issuer() -> LocalIssuer:
    return LocalIssuer.create()


@pytest.fixture(scope="module")
def fuzz_target(module_migrated_database_url: str, fuzz_issuer: LocalIssuer) -> Iterator[LocalApp]:
    """Both regions behind the local Cognito authorizer, as deployed."""
    with start_local_app(
        make_conninfo(module_migrated_database_url, user="users_api"),
        [("us-east-1", 0), ("us-east-2", 0)],
        env=container_env(fuzz_issuer),
    ) as local:
        yield local


# A cursor is opaque: any string the pattern allows is schema-valid, yet only the server's own
# next_cursor values are accepted. That one operation may answer schema-valid input with 400.
# /users/me is the one profile of the token's owner, and the fuzzer's own DELETE removes it: its GET,
# PATCH and DELETE can meet the documented 404 for a whole phase, which schemathesis would report as
# "missing test data" depending on the order it happened to choose (seen: 1 run in 8). Every other
# warning stays on for them (a 401 everywhere would still be reported as missing auth).
SCHEMATHESIS_CONFIG = """
[[operations]]
include-operation-id = "listUsers"
checks.positive_data_acceptance.expected-statuses = [200, 400]

# The fuzzer picks Idempotency-Key values from a small space and sends one again with another body: that
# is the documented 422 (idempotency_key_reused), an answer to valid input like a taken email's 409.
# On POST /users/me, where the one profile exists after the first success (409) and the email must be
# the token's (403), those 422s make most answers refusals, which schemathesis would report as a
# validation mismatch. missing_test_data goes too: schemathesis records a validation mismatch whenever
# either is displayed for the operation (and a create never answers 404, which is all it looks for);
# every other warning stays on.
[[operations]]
include-operation-id = ["createUser", "createMyUser"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
warnings.display = ["missing_auth", "low_valid_rate", "base_url_mismatch",
                    "unsupported_regex", "rate_limited", "unused_openapi_auth", "method_not_allowed"]

[[operations]]
include-operation-id = ["getMyUser", "updateMyUser", "deleteMyUser"]
warnings.display = ["missing_auth", "validation_mismatch", "low_valid_rate", "base_url_mismatch",
                    "unsupported_regex", "rate_limited", "unused_openapi_auth", "method_not_allowed"]
"""


@pytest.mark.parametrize("region", ["us-east-1", "us-east-2"])
def test_fuzzer_finds_no_5xx_and_no_response_outside_the_document(
    fuzz_target: LocalApp, fuzz_issuer: LocalIssuer, region: str, tmp_path: Path
) -> None:
    st = shutil.which("st") or str(Path(sys.executable).parent / "st")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        st,
        "--config-file",
        str(config),
        "run",
        str(SPEC_PATH),
        "--url",
        fuzz_target.urls[region],
        "--checks",
        "all",
        "--max-examples",
        "40",
        # A fixed seed: the same inputs every run. Which /users/me answers 404 depends on the order the
        # generator chose (the fuzzer deletes its own profile), and a random order made schemathesis'
        # "missing test data" warning appear in some runs only: a test that failed by chance.
        "--seed",
        "20261206",
        # One worker: schemathesis' generator is not thread-safe on this Python (seen: SystemError in
        # its AST handling with -w 2).
        "--workers",
        "1",
        "--request-timeout",
        "10",
        # An administrator's ID token, so every operation can succeed; schemathesis also sends requests
        # without it (its ignored_auth check), which must be refused with 401.
        "--header",
        f"Authorization: Bearer {fuzz_issuer.token('fuzzer', email='fuzzer@example.com', admin=True)}",
    ]
    # Run in tmp_path: schemathesis keeps a .schemathesis/ folder of state in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout, result.stdout[-6000:]


# ----------------------------------------------------------------- authorization in the contract

INVOKE_ARN = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:f/invocations"
)
POOL_ARN = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"


def test_declares_one_cognito_authorizer_filled_at_deploy_time(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert cognito_schemes(spec) == ["cognito"]
    scheme = schemes["cognito"]
    assert (scheme["type"], scheme["name"], scheme["in"]) == ("apiKey", "Authorization", "header")
    assert scheme["x-amazon-apigateway-authtype"] == "cognito_user_pools"
    # The pool's ARN is the stack's, not the document's: components/openapi.py fills it.
    assert scheme["x-amazon-apigateway-authorizer"] == {"type": "cognito_user_pools", "providerARNs": []}


def test_every_operation_but_health_requires_an_id_token(spec: dict[str, Any]) -> None:
    default = spec.get("security")
    for method, path, operation in operations(spec):
        required = operation.get("security", default)
        if (method, path) == ("GET", "/health"):
            assert required == [], "health checks carry no token"
        else:
            # No scopes: API Gateway's Cognito authorizer then takes ID tokens (with scopes, access tokens).
            assert required == [{"cognito": []}], f"{method} {path}"


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("arn:aws:cognito-idp:us-east-1:123456789012:userpool", "not a Cognito user pool ARN"),
        ("arn:aws:iam::123456789012:role/x", "not a Cognito user pool ARN"),
        ("", "not a Cognito user pool ARN"),
    ],
)
def test_transform_refuses_what_is_not_a_user_pool_arn(spec: dict[str, Any], arn: str, message: str) -> None:
    with pytest.raises(OpenApiError, match=message):
        api_gateway_body(spec, INVOKE_ARN, user_pool_arn=arn)


def test_transform_refuses_a_document_without_exactly_one_cognito_scheme(spec: dict[str, Any]) -> None:
    without = copy.deepcopy(spec)
    del without["components"]["securitySchemes"]
    with pytest.raises(OpenApiError, match="declares 0 security schemes"):
        api_gateway_body(without, INVOKE_ARN, user_pool_arn=POOL_ARN)
    twice = copy.deepcopy(spec)
    twice["components"]["securitySchemes"]["other"] = copy.deepcopy(
        spec["components"]["securitySchemes"]["cognito"]
    )
    with pytest.raises(OpenApiError, match="declares 2 security schemes"):
        api_gateway_body(twice, INVOKE_ARN, user_pool_arn=POOL_ARN)


def test_transform_refuses_a_requirement_on_an_undeclared_scheme(spec: dict[str, Any]) -> None:
    document = copy.deepcopy(spec)
    document["paths"]["/users"]["get"]["security"] = [{"cognit0": []}]
    with pytest.raises(OpenApiError, match="GET /users requires security scheme 'cognit0'"):
        api_gateway_body(document, INVOKE_ARN, user_pool_arn=POOL_ARN)


def test_a_new_operation_is_protected_by_default(spec: dict[str, Any]) -> None:
    document = copy.deepcopy(spec)
    document["paths"]["/reports"] = {
        "get": {"operationId": "reports", "responses": {"200": {"description": "ok"}}}
    }
    body = api_gateway_body(document, INVOKE_ARN, user_pool_arn=POOL_ARN)
    assert body["paths"]["/reports"]["get"]["security"] == [{"cognito": []}]
    assert body["paths"]["/reports"]["options"]["security"] == []


def _cors_headers_from_gateway(parameters: dict[str, str], origin: str) -> dict[str, str]:
    """The headers API Gateway would send: literals unquoted, request mappings resolved."""
    headers = {}
    for key, value in parameters.items():
        name = key.removeprefix("gatewayresponse.header.")
        if name.startswith("Access-Control-") or name == "Vary":
            headers[name] = (
                value.strip("'") if value.startswith("'") else {"method.request.header.Origin": origin}[value]
            )
    return headers


def _cors_headers_from_function(
    monkeypatch: pytest.MonkeyPatch, origins: list[str], origin: str
) -> dict[str, str]:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", ",".join(origins))
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused.invalid/none")  # an unknown route never connects
    monkeypatch.setenv("AUTH_MODE", "none")
    handler_config.settings.cache_clear()
    try:
        response = app.handle(
            {
                "httpMethod": "GET",
                "path": "/no-such-route",
                "headers": {"Origin": origin},
                "requestContext": {},
            }
        )
    finally:
        handler_config.settings.cache_clear()
    assert response["statusCode"] == 404
    return {k: v for k, v in response["headers"].items() if k.startswith("Access-Control-") or k == "Vary"}


@pytest.mark.parametrize(
    "origins", [["https://app.example.com"], ["https://app.example.com", "https://admin.example.com:8443"]]
)
def test_gateway_errors_carry_the_functions_cors_headers(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, origins: list[str]
) -> None:
    body = api_gateway_body(spec, INVOKE_ARN, user_pool_arn=POOL_ARN, cors_allow_origins=origins)
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    for origin in origins:
        expected = _cors_headers_from_function(monkeypatch, origins, origin)
        assert expected["Access-Control-Allow-Origin"] == origin
        for kind, response in responses.items():
            assert _cors_headers_from_gateway(response["responseParameters"], origin) == expected, kind


def test_gateway_errors_name_a_single_origin_literally(spec: dict[str, Any]) -> None:
    body = api_gateway_body(
        spec, INVOKE_ARN, user_pool_arn=POOL_ARN, cors_allow_origins=["https://app.example.com"]
    )
    for response in body["x-amazon-apigateway-gateway-responses"].values():
        headers = _cors_headers_from_gateway(response["responseParameters"], "https://evil.example")
        assert (
            headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        )  # a browser on evil. is refused


def test_gateway_errors_carry_no_cors_headers_without_origins(spec: dict[str, Any]) -> None:
    body = api_gateway_body(spec, INVOKE_ARN, user_pool_arn=POOL_ARN)
    for kind, response in body["x-amazon-apigateway-gateway-responses"].items():
        parameters = response.get("responseParameters", {})
        assert not _cors_headers_from_gateway(parameters, "https://app.example.com"), kind


# What API Gateway may put in a message: quotes, backslashes, control characters, brackets, non-ASCII.
HOSTILE_MESSAGES = [
    'Invalid key=value pair (missing equal-sign) in Authorization header: "Bearer x"',
    '[object has missing required properties (["email","name"])]',
    "back\\slash and a\ttab and a\nnewline",
    "Unauthorized",
    "¿qué? 認証",
]


@pytest.mark.parametrize("message", HOSTILE_MESSAGES)
def test_gateway_error_bodies_stay_valid_json_whatever_the_message(
    spec: dict[str, Any], message: str
) -> None:
    """A gateway-response template is simple substitution (not VTL, nothing escapes): only the quoted
    variable ``$context.error.messageString`` keeps the body JSON for every message API Gateway has."""
    body = api_gateway_body(spec, INVOKE_ARN, user_pool_arn=POOL_ARN)
    for kind, response in body["x-amazon-apigateway-gateway-responses"].items():
        template = response["responseTemplates"]["application/json"]
        # API Gateway's substitution: messageString is the JSON string of the message; the raw
        # variables (message, validationErrorString) are the message itself.
        rendered = (
            template.replace("$context.error.messageString", json.dumps(message))
            .replace("$context.error.validationErrorString", message)
            .replace("$context.error.message", message)
        )
        decoded = json.loads(rendered)
        assert set(decoded["error"]) == {"code", "message"}, kind
        if "$context.error" in template:
            assert decoded["error"]["message"] == message, kind


def test_gateway_responses_name_the_region_of_the_api(spec: dict[str, Any]) -> None:
    """API Gateway's own answers (401, 403, 404, 429, 5xx) name the serving region like the function's."""
    east_2 = INVOKE_ARN.replace("us-east-1", "us-east-2")
    for arn, region in ((INVOKE_ARN, "us-east-1"), (east_2, "us-east-2")):
        body = api_gateway_body(spec, arn, user_pool_arn=POOL_ARN)
        for kind, response in body["x-amazon-apigateway-gateway-responses"].items():
            assert (
                response["responseParameters"]["gatewayresponse.header.X-Served-Region"] == f"'{region}'"
            ), kind
