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
"""

from __future__ import annotations

import copy
import hashlib
import json
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
# ({"error": {"code", "message"}}) instead of API Gateway's {"message": ...}.
_GATEWAY_ERRORS = {
    "BAD_REQUEST_BODY": (400, "validation_failed", "$context.error.validationErrorString"),
    "BAD_REQUEST_PARAMETERS": (400, "validation_failed", "$context.error.validationErrorString"),
    # A path or method the document does not define reaches API Gateway as a missing-token error.
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "no such route"),
    "THROTTLED": (429, "throttled", "too many requests; retry with backoff"),
    "DEFAULT_4XX": (None, "bad_request", "$context.error.message"),
    "DEFAULT_5XX": (None, "internal_error", "$context.error.message"),
}


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


def _gateway_responses() -> dict[str, Any]:
    responses = {}
    for kind, (status, code, message) in _GATEWAY_ERRORS.items():
        body = json.dumps({"error": {"code": code, "message": "MESSAGE"}}).replace(
            '"MESSAGE"', f'"{message}"' if message.startswith("$") else json.dumps(message)
        )
        response: dict[str, Any] = {"responseTemplates": {"application/json": body}}
        if status is not None:
            response["statusCode"] = str(status)
        responses[kind] = response
    return responses


PREFLIGHT = {
    "summary": "CORS preflight, answered by the function with the configured origins",
    "responses": {"204": {"description": "The methods and headers the path allows"}},
}


def api_gateway_body(document: dict[str, Any], invoke_arn: str) -> dict[str, Any]:
    """A copy of ``document`` with the API Gateway extensions that proxy it to ``invoke_arn``."""
    if not invoke_arn.startswith("arn:") or "/functions/" not in invoke_arn:
        raise OpenApiError(
            f"{invoke_arn!r} is not a Lambda invoke ARN (arn:...:lambda:path/.../functions/...)"
        )
    body = copy.deepcopy(document)
    if not operations(body):
        raise OpenApiError("the document has no operations; the API would have no routes")
    for item in body["paths"].values():
        item.setdefault("options", copy.deepcopy(PREFLIGHT))
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
    body["x-amazon-apigateway-gateway-responses"] = _gateway_responses()
    return body


def render(body: dict[str, Any]) -> str:
    """Canonical JSON of a body: the same document always gives the same text (and deployment hash)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def body_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
