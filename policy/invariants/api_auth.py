"""Every method of every REST API requires a Cognito user pool token, except ``GET /health`` and CORS
preflights (``OPTIONS``).

Read from the API's OpenAPI body, the contract API Gateway imports: an operation's ``security`` (or the
document's, when the operation has none) must list only requirements that name a security scheme with
``x-amazon-apigateway-authtype: cognito_user_pools`` and an ``x-amazon-apigateway-authorizer`` of type
``cognito_user_pools`` naming a user pool in ``providerARNs``. An empty requirement (``{}``) or an empty
list lets anonymous callers in and so fails too.

A stack deployed with ``authMode: none`` on purpose runs the pack with the policy config
``allowUnauthenticated: true`` (``policy/config/no-auth.json``): operations may then have no security
requirement, but any requirement they do declare must still be a valid Cognito one. The stack's own
config cannot switch this policy off: a guard the reviewed change controls guards nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from .props import DocumentError, items, json_or_yaml_document, mapping

REST_API = "aws:apigateway/restApi:RestApi"
COGNITO = "cognito_user_pools"
OPEN_OPERATIONS = {("GET", "/health")}  # health checks (Route 53) carry no token
OPERATION_KEYS = ("get", "put", "post", "delete", "options", "head", "patch", "trace",
                  "x-amazon-apigateway-any-method")  # fmt: skip
ALLOW_UNAUTHENTICATED = "allowUnauthenticated"


def operations(document: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(METHOD, path, operation) of every operation; ``ANY`` for API Gateway's any-method."""
    found = []
    for path, path_item in mapping(document.get("paths")).items():
        for key, operation in mapping(path_item).items():
            if key.lower() in OPERATION_KEYS:
                method = "ANY" if key.lower() == OPERATION_KEYS[-1] else key.upper()
                found.append((method, str(path), mapping(operation)))
    return found


def security_schemes(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """OpenAPI 3 ``components.securitySchemes`` and Swagger 2 ``securityDefinitions``."""
    return {
        **{str(k): mapping(v) for k, v in mapping(document.get("securityDefinitions")).items()},
        **{
            str(k): mapping(v)
            for k, v in mapping(mapping(document.get("components")).get("securitySchemes")).items()
        },
    }


def scheme_problem(scheme: Mapping[str, Any]) -> str | None:
    """Why a security scheme is not a Cognito user pool authorizer, or None when it is one."""
    authtype = scheme.get("x-amazon-apigateway-authtype")
    if str(authtype).lower() != COGNITO:
        return f"its x-amazon-apigateway-authtype is {authtype!r}, not {COGNITO!r}"
    authorizer = mapping(scheme.get("x-amazon-apigateway-authorizer"))
    if str(authorizer.get("type")).lower() != COGNITO:
        return f"it has no x-amazon-apigateway-authorizer of type {COGNITO!r}"
    pools = items(authorizer.get("providerARNs"))
    if not pools or not all(isinstance(arn, str) and arn for arn in pools):
        return "its authorizer names no user pool ARN in providerARNs"
    return None


def operation_problem(
    operation: Mapping[str, Any],
    document: Mapping[str, Any],
    schemes: dict[str, Mapping[str, Any]],
    allow_unauthenticated: bool,
) -> str | None:
    """Why an operation does not require a Cognito token, or None when it does (or may go without)."""
    security = operation["security"] if "security" in operation else document.get("security")
    requirements = items(security)
    if not requirements:
        if allow_unauthenticated:
            return None
        return "security: [] declares it open" if security is not None else "no security requirement"
    for requirement in requirements:
        requirement = mapping(requirement)
        if not requirement:
            return "an empty security requirement ({}), which lets anonymous callers in"
        problems = []
        for name in requirement:
            if name not in schemes:
                problems.append(f"it names {name!r}, which securitySchemes does not define")
            elif problem := scheme_problem(schemes[name]):
                problems.append(f"scheme {name!r}: {problem}")
        if len(problems) == len(requirement):  # no Cognito authorizer in this alternative
            return "; ".join(problems)
    return None


def check_api_authorizer(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REST_API:
        return
    body = args.props.get("body")
    if body is None:
        return  # methods declared as separate aws.apigateway.Method resources: see docs/policy.md
    subject = f"RestApi '{args.name}'"
    try:
        document = json_or_yaml_document(body, "its body")
    except DocumentError as error:
        report_violation(f"{subject}: {error}, so its methods' authorizers cannot be checked", None)
        return
    allow_unauthenticated = args.get_config().get(ALLOW_UNAUTHENTICATED) is True
    schemes = security_schemes(document)
    open_methods = []
    for method, path, operation in operations(document):
        if method == "OPTIONS" or (method, path) in OPEN_OPERATIONS:
            continue
        problem = operation_problem(operation, document, schemes, allow_unauthenticated)
        if problem:
            open_methods.append(f"{method} {path} ({problem})")
    if open_methods:
        report_violation(
            f"{subject}: {len(open_methods)} method(s) do not require a Cognito user pool token: "
            f"{'; '.join(open_methods)}. Give each operation `security: [{{<scheme>: []}}]` naming a "
            f"components.securitySchemes entry with x-amazon-apigateway-authtype: {COGNITO} and an "
            f"x-amazon-apigateway-authorizer of type {COGNITO} whose providerARNs holds the user pool's "
            f"ARN (only GET /health and OPTIONS stay open); a stack deployed with authMode none on purpose "
            f"sets this policy's {ALLOW_UNAUTHENTICATED} config (policy/config/no-auth.json)",
            None,
        )


API_AUTHORIZER = ResourceValidationPolicy(
    name="api-methods-require-cognito-authorizer",
    description=(
        "Every REST API method but GET /health and OPTIONS requires a token from a Cognito user pool "
        "authorizer (security requirement in the OpenAPI body)."
    ),
    validate=check_api_authorizer,
    config_schema=PolicyConfigSchema(
        properties={
            ALLOW_UNAUTHENTICATED: {
                "type": "boolean",
                "default": False,
                "description": (
                    "Accept operations without a security requirement: only for a stack deployed with "
                    "authMode none on purpose."
                ),
            }
        }
    ),
    remediation_steps=(
        "Declare the Cognito authorizer in components.securitySchemes and a security requirement on every "
        "operation but GET /health and OPTIONS."
    ),
)
