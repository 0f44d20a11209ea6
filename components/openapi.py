"""Turn the handler's OpenAPI document into the body of an API Gateway REST API.

Pure functions, no Pulumi: ``api_gateway_body(document, invoke_arn)`` returns a new document in which
every operation is a Lambda proxy integration (``aws_proxy``, always invoked with POST) to the function,
requests are validated by API Gateway before they reach the function (parameters always, the body
where the operation declares one), and API Gateway's own error responses (validation failures, unknown
routes, throttling) are JSON shaped like the handler's errors. The document stays the single source of
truth for the routes: adding an operation to ``handler/openapi.yaml`` adds it to the API.

Every path also gets an OPTIONS operation proxied to the function, which answers CORS preflights with
the configured origins: a REST API answers OPTIONS only where an integration exists, and the document
leaves the implicit method out.

Authorization: the document declares a ``cognito_user_pools`` security scheme and which operations need
it (``security``: every operation but ``GET /health``). With a user pool ARN, the scheme's
``providerARNs`` is filled with it and every operation gets its effective requirement written on itself
(API Gateway then attaches the authorizer method by method; preflights are always open, because browsers
send them without credentials). With ``user_pool_arn=None`` (the stack's ``authMode: none``) the
scheme and every requirement are removed: the API is open. The requirement names no OAuth scope, so
API Gateway accepts ID tokens (docs/identity.md).

Gateway responses (API Gateway's own answers: validation, unknown route, 401/403 from the authorizer,
throttling, 4XX/5XX defaults) carry the same CORS headers as the function's answers, so a browser app can
read why its request was refused.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_DOCUMENT = ROOT / "handler" / "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

VALIDATORS = {
    "body-and-params": {"validateRequestBody": True, "validateRequestParameters": True},
    "params-only": {"validateRequestBody": False, "validateRequestParameters": True},
}

# API Gateway answers these itself, before the function runs: give them the handler's error shape
# ({"error": {"code", "message"}}) instead of API Gateway's {"message": ...}. A gateway-response template
# is plain substitution, not VTL: nothing escapes a value, so a message variable goes in only in its
# quoted form, ``$context.error.messageString`` (the JSON string of ``$context.error.message``). The
# validation detail (``validationErrorString``) has no quoted form and holds double quotes, so it stays
# out of the body; its message says which part (body or parameters) was refused.
MESSAGE = "$context.error.messageString"
_GATEWAY_ERRORS = {
    "BAD_REQUEST_BODY": (400, "validation_failed", MESSAGE),
    "BAD_REQUEST_PARAMETERS": (400, "validation_failed", MESSAGE),
    # A path or method the document does not define reaches API Gateway as a missing-token error.
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "no such route"),
    # The Cognito authorizer: no token, a malformed, expired or foreign one (the message says which).
    "UNAUTHORIZED": (401, "unauthorized", MESSAGE),
    "ACCESS_DENIED": (403, "forbidden", MESSAGE),
    "THROTTLED": (429, "throttled", "too many requests; retry with backoff"),
    "DEFAULT_4XX": (None, "bad_request", MESSAGE),
    "DEFAULT_5XX": (None, "internal_error", MESSAGE),
}


# The authorizer's kind in the document's securitySchemes (API Gateway's x-amazon-apigateway-authtype).
COGNITO_AUTHTYPE = "cognito_user_pools"
_USER_POOL_ARN = re.compile(
    r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[a-z0-9-]+_[0-9A-Za-z]+$"
)
# What the function exposes to a browser (handler/app.py); gateway responses expose the same.
SERVED_REGION_HEADER = "X-Served-Region"  # as handler/app.py
CORS_EXPOSE_HEADERS = f"Location, Retry-After, {SERVED_REGION_HEADER}"


class OpenApiError(ValueError):
    """The document cannot become an API Gateway API; the message names the path and the fix."""


def load_document(path: Path = OPENAPI_DOCUMENT) -> dict[str, Any]:
    """The OpenAPI document as a dict; raises OpenApiError when it is not an OpenAPI 3 document."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise OpenApiError(f"{path.name} is not an OpenAPI 3 document (no 'openapi: 3.x' key)")
    if not document.get("paths"):
        raise OpenApiError(f"{path.name} defines no paths; the API would have no routes")
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation of the document, in document order."""
    found = []
    for path, item in (document.get("paths") or {}).items():
        for method, operation in (item or {}).items():
            if method.lower() in HTTP_METHODS:
                found.append((method.upper(), path, operation))
    return found


def routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The (METHOD, path) pairs of the document: what the API answers."""
    return {(method, path) for method, path, _ in operations(document)}


def _has_body(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation


def cors_response_parameters(cors_allow_origins: Sequence[str]) -> dict[str, str]:
    """Gateway response headers that match the function's CORS headers for an allowed origin.

    A gateway response cannot choose a header value by condition. With one allowed origin it is named
    literally (a browser on another origin sees a mismatch, as with the function). With several, the
    request's Origin is echoed: these bodies are API Gateway's generic errors, never data, and no
    credentials are allowed (no Access-Control-Allow-Credentials), so a foreign origin learns nothing
    it could not learn with curl, while every allowed origin can read why it was refused.
    """
    if not cors_allow_origins:
        return {}  # like the function: no CORS headers at all
    allow_origin = (
        f"'{cors_allow_origins[0]}'" if len(cors_allow_origins) == 1 else "method.request.header.Origin"
    )
    return {
        "gatewayresponse.header.Access-Control-Allow-Origin": allow_origin,
        "gatewayresponse.header.Access-Control-Expose-Headers": f"'{CORS_EXPOSE_HEADERS}'",
        "gatewayresponse.header.Vary": "'Origin'",
    }


def _gateway_responses(cors_allow_origins: Sequence[str], region: str) -> dict[str, Any]:
    responses = {}
    # API Gateway's own answers name the serving region too, as the function's do (handler/app.py).
    cors = {
        **cors_response_parameters(cors_allow_origins),
        f"gatewayresponse.header.{SERVED_REGION_HEADER}": f"'{region}'",
    }
    for kind, (status, code, message) in _GATEWAY_ERRORS.items():
        # The quoted variable stands where a JSON string would: the body is valid JSON whatever it says.
        body = json.dumps({"error": {"code": code, "message": "MESSAGE"}}).replace(
            '"MESSAGE"', message if message == MESSAGE else json.dumps(message)
        )
        response: dict[str, Any] = {"responseTemplates": {"application/json": body}}
        if status is not None:
            response["statusCode"] = str(status)
        parameters = dict(cors)
        if kind == "UNAUTHORIZED":
            parameters["gatewayresponse.header.WWW-Authenticate"] = "'Bearer'"  # RFC 6750
        if parameters:
            response["responseParameters"] = parameters
        responses[kind] = response
    return responses


PREFLIGHT = {
    "summary": "CORS preflight, answered by the function with the configured origins",
    # Browsers send preflights without credentials: an authorizer here would break CORS.
    "security": [],
    "responses": {"204": {"description": "The methods and headers the path allows"}},
}


def cognito_schemes(document: dict[str, Any]) -> list[str]:
    """Names of the document's security schemes that are Cognito user pool authorizers."""
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    return [
        name
        for name, scheme in schemes.items()
        if (scheme or {}).get("x-amazon-apigateway-authtype") == COGNITO_AUTHTYPE
    ]


def _authorize(body: dict[str, Any], user_pool_arn: str) -> None:
    """Fill the Cognito scheme with the pool and write each operation's requirement on itself."""
    if not _USER_POOL_ARN.match(user_pool_arn):
        raise OpenApiError(
            f"{user_pool_arn!r} is not a Cognito user pool ARN "
            "(arn:aws:cognito-idp:<region>:<account>:userpool/<region>_<id>)"
        )
    names = cognito_schemes(body)
    if len(names) != 1:
        raise OpenApiError(
            f"the document declares {len(names)} security schemes with x-amazon-apigateway-authtype "
            f"{COGNITO_AUTHTYPE} ({', '.join(names) or 'none'}); declare exactly one under "
            "components.securitySchemes"
        )
    scheme = body["components"]["securitySchemes"][names[0]]
    scheme.setdefault("x-amazon-apigateway-authorizer", {})
    scheme["x-amazon-apigateway-authorizer"].update(type=COGNITO_AUTHTYPE, providerARNs=[user_pool_arn])
    known = set(body["components"].get("securitySchemes") or {})
    default = body.pop("security", [])
    for method, path, operation in operations(body):
        requirement = operation.get("security", default)
        unknown = sorted({name for alternative in requirement for name in alternative} - known)
        if unknown:
            raise OpenApiError(
                f"{method} {path} requires security scheme {unknown[0]!r}, which components."
                "securitySchemes does not declare"
            )
        operation["security"] = copy.deepcopy(requirement)


def _open(body: dict[str, Any]) -> None:
    """Remove every security requirement and the Cognito scheme: authMode none."""
    body.pop("security", None)
    for _method, _path, operation in operations(body):
        operation.pop("security", None)
    schemes = (body.get("components") or {}).get("securitySchemes")
    if schemes is not None:
        for name in cognito_schemes(body):
            del schemes[name]
        if not schemes:
            del body["components"]["securitySchemes"]


def api_gateway_body(
    document: dict[str, Any],
    invoke_arn: str,
    *,
    user_pool_arn: str | None,
    cors_allow_origins: Sequence[str] = (),
) -> dict[str, Any]:
    """A copy of ``document`` with the API Gateway extensions that proxy it to ``invoke_arn``.

    ``user_pool_arn`` names the pool whose tokens every protected operation requires; None (asked for
    explicitly: the stack's ``authMode: none``) opens the whole API. ``cors_allow_origins`` are the
    origins the function answers with CORS headers; gateway responses carry the same headers.
    """
    if not invoke_arn.startswith("arn:") or "/functions/" not in invoke_arn:
        raise OpenApiError(
            f"{invoke_arn!r} is not a Lambda invoke ARN (arn:...:lambda:path/.../functions/...)"
        )
    body = copy.deepcopy(document)
    if not operations(body):
        raise OpenApiError("the document has no operations; the API would have no routes")
    for item in body["paths"].values():
        item.setdefault("options", copy.deepcopy(PREFLIGHT))
    if user_pool_arn is None:
        _open(body)
    else:
        _authorize(body, user_pool_arn)
    for _method, _path, operation in operations(body):
        operation["x-amazon-apigateway-integration"] = {
            "type": "aws_proxy",
            "httpMethod": "POST",  # Lambda is always invoked with POST, whatever the client used
            "uri": invoke_arn,
            "passthroughBehavior": "when_no_match",
        }
        operation["x-amazon-apigateway-request-validator"] = (
            "body-and-params" if _has_body(operation) else "params-only"
        )
    body["x-amazon-apigateway-request-validators"] = copy.deepcopy(VALIDATORS)
    # arn:<partition>:apigateway:<region>:lambda:path/...: the region this API serves from.
    region = invoke_arn.split(":")[3]
    body["x-amazon-apigateway-gateway-responses"] = _gateway_responses(cors_allow_origins, region)
    return body


def render(body: dict[str, Any]) -> str:
    """Canonical JSON of a body: the same document always gives the same text (and deployment hash)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def body_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
