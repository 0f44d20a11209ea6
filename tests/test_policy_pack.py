"""The policy pack (policy/): every invariant catches a violating resource with a message that names it
and the fix, passes a compliant one, and the current program is compliant.

Three levels, each with the SDK's own types and no engine:
- each policy's ``validate`` called with ``ResourceValidationArgs``/``StackValidationArgs`` and
  ``PolicyResource`` built with the SDK's public constructors, props keyed as the engine keys them
  (camelCase wire names);
- the pack served the way the policy host serves it (``python -m pulumi.policy`` in policy/) and driven
  over gRPC with the SDK's own protocol messages, so the SDK's deserialisation, read-only proxies,
  preview-time unknowns, policy config and enforcement levels are all real;
- the real program under the project's mocks, every policy over every registered resource.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

import grpc
import jsonschema
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.openapi import OPENAPI_DOCUMENT, load_document, render
from components.regional_app import LAMBDA_TRUST_POLICY, runtime_policy
from policy.invariants import PACK_NAME, POLICIES
from policy.invariants.api_auth import API_AUTHORIZER
from policy.invariants.iam import NO_ADMIN_CONNECT_FOR_FUNCTIONS, NO_DSQL_ON_EVERY_RESOURCE, function_roles
from policy.invariants.logs import LOG_RETENTION
from policy.invariants.protection import DELETION_PROTECTION
from policy.invariants.tls import REST_API_DEFAULT_ENDPOINT_TLS, TLS_ONLY
from tests.pulumi_harness import ACCOUNT, ROOT, ProgramRun, run_program

POLICY_DIR = ROOT / "policy"
CLUSTER_ARN = f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/abcdefghijklmnopqrstuvwxyz"
LOG_GROUP_ARN = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/users"
POOL_ARN = f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/us-east-1_AbCdEfGhI"
INVOKE_ARN = (
    f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:users/invocations"
)
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
REST_API = "aws:apigateway/restApi:RestApi"


# --- building the SDK's arguments


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def urn(typ: str, name: str) -> str:
    return f"urn:pulumi:prod::dsql-users-api::{typ}::{name}"


def resource_args(
    typ: str, props: Mapping[str, Any], name: str = "subject", config: Mapping[str, Any] | None = None
) -> ResourceValidationArgs:
    return ResourceValidationArgs(typ, props, urn(typ, name), name, options(), None, config)


def violations(policy: Policy, args: ResourceValidationArgs | StackValidationArgs) -> list[str]:
    """The messages ``policy`` reports for ``args`` (stack policies: ``message @ urn``)."""
    reported: list[str] = []

    def report_violation(message: str, urn: str | None = None) -> None:
        reported.append(f"{message} @ {urn}" if urn else message)

    assert isinstance(policy, ResourceValidationPolicy | StackValidationPolicy)
    assert policy.validate(args, report_violation) is None  # every policy of the pack is synchronous
    return reported


def check(policy: Policy, typ: str, props: Mapping[str, Any], **kwargs: Any) -> list[str]:
    return violations(policy, resource_args(typ, props, **kwargs))


def document(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


# --- no dsql action on every resource


def test_the_function_role_policy_the_program_writes_passes() -> None:
    for tracing in (False, True):  # with tracing, X-Ray actions are on "*": not dsql, so fine
        policy = json.dumps(runtime_policy(LOG_GROUP_ARN, CLUSTER_ARN, tracing))
        assert check(NO_DSQL_ON_EVERY_RESOURCE, ROLE_POLICY, {"policy": policy, "role": "r"}) == []


@pytest.mark.parametrize(
    ("action", "shown"),
    [
        ("dsql:*", "dsql:*"),
        ("*", "*"),
        (["s3:GetObject", "dsql:DbConnect"], "dsql:DbConnect"),
        ("DSQL:dbconnectadmin", "DSQL:dbconnectadmin"),  # IAM action names ignore case
        ("dsql:Db*", "dsql:Db*"),
        ("*:*", "*:*"),
    ],
)
def test_a_dsql_action_on_every_resource_is_refused(action: Any, shown: str) -> None:
    found = check(
        NO_DSQL_ON_EVERY_RESOURCE, ROLE_POLICY, {"policy": document(allow(action))}, name="fn-policy"
    )
    assert len(found) == 1
    assert f"RolePolicy 'fn-policy': policy statement 1 allows {shown} on every resource" in found[0]
    assert "arn:<partition>:dsql:<region>:<account>:cluster/<cluster id>" in found[0]  # the fix


def test_not_action_and_not_resource_count_as_broad() -> None:
    not_action = {"Effect": "Allow", "NotAction": ["iam:*", "s3:*"], "Resource": "*", "Sid": "Broad"}
    [found] = check(NO_DSQL_ON_EVERY_RESOURCE, "aws:iam/policy:Policy", {"policy": document(not_action)})
    assert "statement 'Broad' allows every action but iam:*, s3:* (NotAction) on every resource" in found
    excluded = {"Effect": "Allow", "NotAction": "dsql:*", "Resource": "*"}
    assert check(NO_DSQL_ON_EVERY_RESOURCE, "aws:iam/policy:Policy", {"policy": document(excluded)}) == []
    not_resource = {"Effect": "Allow", "Action": "dsql:DbConnect", "NotResource": CLUSTER_ARN}
    assert check(NO_DSQL_ON_EVERY_RESOURCE, ROLE_POLICY, {"policy": document(not_resource)}) != []


def test_scoped_denied_and_other_service_statements_pass() -> None:
    statements = [
        allow("dsql:DbConnect", CLUSTER_ARN),
        allow(["xray:PutTraceSegments", "logs:*"]),
        {"Effect": "Deny", "Action": "dsql:*", "Resource": "*"},
    ]
    assert check(NO_DSQL_ON_EVERY_RESOURCE, ROLE_POLICY, {"policy": document(*statements)}) == []


def test_inline_policies_object_documents_and_managed_policies_are_checked() -> None:
    inline = {
        "assumeRolePolicy": LAMBDA_TRUST_POLICY,
        "inlinePolicies": [
            {"name": "ok", "policy": document(allow("dsql:DbConnect", CLUSTER_ARN))},
            {"name": "db", "policy": document(allow("dsql:*"))},
            {},
        ],
    }
    [found] = check(NO_DSQL_ON_EVERY_RESOURCE, ROLE, inline, name="fn-role")
    assert found.startswith("Role 'fn-role': inline policy 'db' statement 1 allows dsql:*")
    # pulumi-aws also takes a PolicyDocument object; the engine passes it with the same keys.
    as_object = {"policy": {"Version": "2012-10-17", "Statement": [allow(["dsql:GetCluster"])]}}
    assert check(NO_DSQL_ON_EVERY_RESOURCE, "aws:iam/userPolicy:UserPolicy", as_object) != []
    attachment = {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AmazonAuroraDSQLFullAccess"}
    [found] = check(
        NO_DSQL_ON_EVERY_RESOURCE, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", attachment
    )
    assert "attaches the AWS managed policy AmazonAuroraDSQLFullAccess" in found
    logs_role = {
        "role": "r",
        "policyArn": "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
    }
    assert (
        check(NO_DSQL_ON_EVERY_RESOURCE, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", logs_role) == []
    )
    managed = {
        "assumeRolePolicy": LAMBDA_TRUST_POLICY,
        "managedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
    }
    assert "AdministratorAccess" in check(NO_DSQL_ON_EVERY_RESOURCE, ROLE, managed)[0]


def test_an_unreadable_document_is_reported_not_skipped() -> None:
    [found] = check(NO_DSQL_ON_EVERY_RESOURCE, ROLE_POLICY, {"policy": '{"Statement": ['}, name="broken")
    assert found.startswith("RolePolicy 'broken': its policy is not valid JSON")
    assert "cannot be checked; pass the document as JSON text" in found


# --- no DbConnectAdmin for a function's role


def stack_resource(
    typ: str, name: str, props: Mapping[str, Any], **dependencies: PolicyResource
) -> PolicyResource:
    """A resource as AnalyzeStack hands it over: outputs, and which resource each property came from."""
    property_dependencies = {key: [dependency] for key, dependency in dependencies.items()}
    return PolicyResource(
        typ,
        props,
        urn(typ, name),
        name,
        options(),
        None,
        None,
        list(dependencies.values()),
        property_dependencies,
    )


def function_stack(
    *role_statements: Mapping[str, Any], trust: str = LAMBDA_TRUST_POLICY
) -> list[PolicyResource]:
    role = stack_resource(
        ROLE,
        "fn-role",
        {"assumeRolePolicy": trust, "name": "fn-role-7f3a", "arn": "arn:aws:iam::1:role/fn-role-7f3a"},
    )
    policy = stack_resource(
        ROLE_POLICY, "fn-policy", {"role": "fn-role-7f3a", "policy": document(*role_statements)}, role=role
    )
    function = stack_resource(FUNCTION, "fn", {"role": role.props["arn"]}, role=role)
    return [role, policy, function]


def test_the_function_role_the_program_writes_passes() -> None:
    resources = function_stack(*runtime_policy(LOG_GROUP_ARN, CLUSTER_ARN, True)["Statement"])
    assert [role.name for role in function_roles(resources)] == ["fn-role"]
    assert violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs(resources)) == []


@pytest.mark.parametrize(
    "statement",
    [
        allow("dsql:DbConnectAdmin", CLUSTER_ARN),
        allow(["dsql:DbConnect", "dsql:DbConnectAdmin"], CLUSTER_ARN),
        allow("dsql:DbConnect*", CLUSTER_ARN),
        {"Effect": "Allow", "NotAction": "s3:*", "Resource": CLUSTER_ARN},
    ],
)
def test_admin_connect_granted_to_a_function_role_is_refused(statement: Mapping[str, Any]) -> None:
    resources = function_stack(statement)
    [found] = violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs(resources))
    assert found.startswith(
        "Lambda function role 'fn-role' is granted dsql:DbConnectAdmin by policy statement 1 through "
        "RolePolicy 'fn-policy'"
    )
    assert "remove dsql:DbConnectAdmin (only the deploying identity connects as admin)" in found
    assert found.endswith(f"@ {resources[1].urn}")  # reported against the resource to change


def test_a_function_role_is_found_by_trust_or_by_the_function_alone() -> None:
    untrusted = document(
        {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )
    named_by_function = function_stack(allow("dsql:DbConnectAdmin", CLUSTER_ARN), trust=untrusted)
    assert len(violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs(named_by_function))) == 1
    trusted_only = function_stack(allow("dsql:DbConnectAdmin", CLUSTER_ARN))[:2]  # no function yet
    assert len(violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs(trusted_only))) == 1
    other_role = function_stack(allow("dsql:DbConnectAdmin", CLUSTER_ARN), trust=untrusted)[:2]
    assert violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs(other_role)) == []


def test_a_policy_naming_the_role_as_text_is_linked_by_value() -> None:
    role, policy, function = function_stack(allow("dsql:DbConnectAdmin", CLUSTER_ARN))
    literal = stack_resource(ROLE_POLICY, "fn-policy", dict(policy.props))  # no property dependency
    assert (
        len(violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs([role, literal, function]))) == 1
    )
    elsewhere = stack_resource(ROLE_POLICY, "other", {**policy.props, "role": "another-role"})
    assert violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs([role, elsewhere, function])) == []


def test_admin_through_managed_policies_and_attachments_is_refused() -> None:
    role, _, function = function_stack(allow("dsql:DbConnect", CLUSTER_ARN))
    attachment_type = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    aws_managed = stack_resource(
        attachment_type,
        "full",
        {"role": "fn-role-7f3a", "policyArn": "arn:aws:iam::aws:policy/AmazonAuroraDSQLFullAccess"},
        role=role,
    )
    [found] = violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs([role, aws_managed, function]))
    assert "by the AWS managed policy AmazonAuroraDSQLFullAccess through RolePolicyAttachment 'full'" in found
    own = stack_resource(
        "aws:iam/policy:Policy",
        "admin",
        {"arn": "arn:aws:iam::1:policy/admin", "policy": document(allow("dsql:DbConnectAdmin", CLUSTER_ARN))},
    )
    attached = stack_resource(
        attachment_type,
        "attach",
        {"role": "fn-role-7f3a", "policyArn": own.props["arn"]},
        role=role,
        policyArn=own,
    )
    [found] = violations(NO_ADMIN_CONNECT_FOR_FUNCTIONS, StackValidationArgs([role, own, attached, function]))
    assert "by managed policy 'admin' statement 1 through RolePolicyAttachment 'attach'" in found


# --- deletion protection


def test_deletion_protection_on_clusters() -> None:
    cluster = "aws:dsql/cluster:Cluster"
    assert (
        check(DELETION_PROTECTION, cluster, {"deletionProtectionEnabled": True, "forceDestroy": False}) == []
    )
    for props in ({"deletionProtectionEnabled": False}, {}):
        [found] = check(DELETION_PROTECTION, cluster, props, name="users-db-primary")
        assert found.startswith("DSQL cluster 'users-db-primary' has deletion protection off")
        assert "set deletion_protection_enabled=True" in found and "policy/config/dev.json" in found
    [found] = check(DELETION_PROTECTION, cluster, {"deletionProtectionEnabled": True, "forceDestroy": True})
    assert "sets forceDestroy" in found and "remove force_destroy" in found


def test_deletion_protection_on_the_user_pool() -> None:
    pool = "aws:cognito/userPool:UserPool"
    assert check(DELETION_PROTECTION, pool, {"deletionProtection": "ACTIVE"}) == []
    [found] = check(DELETION_PROTECTION, pool, {"deletionProtection": "INACTIVE"}, name="users")
    assert found.startswith("Cognito user pool 'users' has deletion protection INACTIVE")
    assert 'set deletion_protection="ACTIVE"' in found
    assert "deletion protection unset" in check(DELETION_PROTECTION, pool, {})[0]


# --- authorizers


METHODS = ("get", "put", "post", "delete", "patch", "options")


def open_body() -> dict[str, Any]:
    """The handler's routes as an API Gateway body with no security anywhere (what an authMode none
    stack serves): every operation proxied to the function, an OPTIONS preflight on every path. Built
    here from handler/openapi.yaml so these tests follow the routes, not components/openapi.py's API."""
    body = copy.deepcopy(load_document(OPENAPI_DOCUMENT))
    body.pop("security", None)
    body.get("components", {}).pop("securitySchemes", None)
    for item in body["paths"].values():
        item.setdefault("options", {"responses": {"204": {"description": "CORS preflight"}}})
        for method, operation in item.items():
            if method in METHODS:
                operation.pop("security", None)
                operation["x-amazon-apigateway-integration"] = {
                    "type": "aws_proxy",
                    "httpMethod": "POST",
                    "uri": INVOKE_ARN,
                }
    return body


def secured_body() -> dict[str, Any]:
    """``open_body()`` with the Cognito contract on every operation but GET /health and OPTIONS."""
    body = open_body()
    body.setdefault("components", {})["securitySchemes"] = {
        "cognito": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "cognito_user_pools",
            "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [POOL_ARN]},
        }
    }
    for path, item in body["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                open_route = method == "options" or (method, path) == ("get", "/health")
                operation["security"] = [] if open_route else [{"cognito": []}]
    return body


def check_api(body: Any, config: Mapping[str, Any] | None = None) -> list[str]:
    text = body if isinstance(body, str) else render(body)
    return check(API_AUTHORIZER, REST_API, {"body": text}, name="users-api", config=config)


def test_a_body_with_the_cognito_contract_passes() -> None:
    assert check_api(secured_body()) == []
    # The contract may also be declared once, for the whole document.
    body = secured_body()
    for item in body["paths"].values():
        for method, operation in item.items():
            if method in METHODS and operation["security"]:
                del operation["security"]
    body["security"] = [{"cognito": []}]
    assert check_api(body) == []


def test_methods_without_a_cognito_requirement_are_named() -> None:
    body = secured_body()
    del body["paths"]["/users"]["get"]["security"]
    body["paths"]["/users"]["post"]["security"] = []
    body["paths"]["/users/{id}"]["delete"]["security"] = [{}]
    [found] = check_api(body)
    assert found.startswith("RestApi 'users-api': 3 method(s) do not require a Cognito user pool token: ")
    assert "GET /users (no security requirement)" in found
    assert "POST /users (security: [] declares it open)" in found
    assert "DELETE /users/{id} (an empty security requirement ({}), which lets anonymous callers in)" in found
    assert "GET /health (" not in found and "OPTIONS /" not in found
    assert "x-amazon-apigateway-authtype: cognito_user_pools" in found and "allowUnauthenticated" in found


@pytest.mark.parametrize(
    ("scheme", "reason"),
    [
        ({"x-amazon-apigateway-authtype": "custom"}, "its x-amazon-apigateway-authtype is 'custom'"),
        (
            {"x-amazon-apigateway-authtype": "cognito_user_pools"},
            "it has no x-amazon-apigateway-authorizer of type",
        ),
        (
            {
                "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": []},
            },
            "its authorizer names no user pool ARN in providerARNs",
        ),
    ],
)
def test_a_requirement_must_name_a_working_cognito_authorizer(scheme: dict[str, Any], reason: str) -> None:
    body = secured_body()
    body["components"]["securitySchemes"]["cognito"] = scheme
    protected = [
        (method, path)
        for path, item in body["paths"].items()
        for method, operation in item.items()
        if method in METHODS and operation["security"]
    ]
    [found] = check_api(body)
    assert f"{len(protected)} method(s)" in found and f"scheme 'cognito': {reason}" in found
    body = secured_body()
    body["paths"]["/users"]["get"]["security"] = [{"apiKey": []}]
    assert "GET /users (it names 'apiKey', which securitySchemes does not define)" in check_api(body)[0]


def test_any_method_yaml_bodies_and_unreadable_bodies() -> None:
    body = secured_body()
    body["paths"]["/health"]["x-amazon-apigateway-any-method"] = {"responses": {}}
    assert "ANY /health (no security requirement)" in check_api(body)[0]
    assert check_api(yaml.safe_dump(secured_body())) == []  # API Gateway imports YAML bodies too
    [found] = check_api("{not json")
    assert found.startswith("RestApi 'users-api': its body is not valid JSON")
    assert check(API_AUTHORIZER, REST_API, {"name": "no-body"}) == []  # methods as separate resources


def test_allow_unauthenticated_accepts_open_methods_but_not_broken_requirements() -> None:
    body = open_body()
    config = {"allowUnauthenticated": True}
    assert check_api(body, config) == []
    assert check_api(body, {"allowUnauthenticated": False}) != []
    body["paths"]["/users"]["get"]["security"] = [{"missing": []}]
    assert "GET /users (it names 'missing'" in check_api(body, config)[0]


# --- log retention


@pytest.mark.parametrize("days", [30, 30.0, 3653])
def test_log_groups_with_retention_pass(days: float) -> None:
    assert check(LOG_RETENTION, "aws:cloudwatch/logGroup:LogGroup", {"retentionInDays": days}) == []


@pytest.mark.parametrize(
    "props", [{}, {"retentionInDays": 0}, {"retentionInDays": True}, {"retentionInDays": "30"}]
)
def test_log_groups_without_retention_are_refused(props: dict[str, Any]) -> None:
    [found] = check(LOG_RETENTION, "aws:cloudwatch/logGroup:LogGroup", props, name="fn-logs")
    assert found.startswith("Log group 'fn-logs' keeps its events forever")
    assert "set retention_in_days" in found


# --- TLS


@pytest.mark.parametrize(
    ("policy", "ok"),
    [
        ("TLS_1_2", True),
        ("SecurityPolicy_TLS13_1_3_2025_09", True),
        ("SecurityPolicy_TLS12_PFS_2025_EDGE", True),
        ("TLS_1_0", False),
        (None, False),
    ],
)
def test_api_gateway_domains_need_tls_1_2(policy: str | None, ok: bool) -> None:
    props = {"domainName": "api.example.com"} | ({"securityPolicy": policy} if policy else {})
    found = check(TLS_ONLY, "aws:apigateway/domainName:DomainName", props, name="api-domain")
    assert (found == []) == ok
    if not ok:
        assert found[0].startswith(f"API Gateway domain name 'api-domain' has securityPolicy {policy!r}")
        assert 'set security_policy="TLS_1_2"' in found[0]
    v2 = {"domainNameConfiguration": {"securityPolicy": policy}}
    assert (check(TLS_ONLY, "aws:apigatewayv2/domainName:DomainName", v2) == []) == (policy == "TLS_1_2")


def test_rest_api_endpoint_tls() -> None:
    [found] = check(TLS_ONLY, REST_API, {"securityPolicy": "TLS_1_0"}, name="users-api")
    assert found.startswith("RestApi 'users-api' sets securityPolicy 'TLS_1_0'")
    assert check(TLS_ONLY, REST_API, {}) == []  # unset is the advisory policy's report
    [found] = check(
        REST_API_DEFAULT_ENDPOINT_TLS,
        REST_API,
        {"endpointConfiguration": {"types": "REGIONAL"}},
        name="users-api",
    )
    assert "leaves securityPolicy unset" in found and 'set security_policy="TLS_1_2" on the RestApi' in found
    for props in (
        {"securityPolicy": "TLS_1_2"},
        {"disableExecuteApiEndpoint": True},
        {"endpointConfiguration": {"types": "PRIVATE"}},
    ):
        assert check(REST_API_DEFAULT_ENDPOINT_TLS, REST_API, props) == []
    assert REST_API_DEFAULT_ENDPOINT_TLS.enforcement_level == EnforcementLevel.ADVISORY


def distribution(**changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "defaultCacheBehavior": {"viewerProtocolPolicy": "redirect-to-https", "targetOriginId": "api"},
        "orderedCacheBehaviors": [{"pathPattern": "/users*", "viewerProtocolPolicy": "https-only"}],
        "viewerCertificate": {
            "acmCertificateArn": "arn:aws:acm:us-east-1:1:certificate/x",
            "minimumProtocolVersion": "TLSv1.2_2021",
            "sslSupportMethod": "sni-only",
        },
        "origins": [
            {
                "originId": "api",
                "domainName": "origin.example.com",
                "customOriginConfig": {
                    "originProtocolPolicy": "https-only",
                    "originSslProtocols": ["TLSv1.2"],
                    "httpPort": 80,
                    "httpsPort": 443,
                },
            }
        ],
    }
    for key, value in changes.items():
        props[key] = value
    return props


def test_cloudfront_https_only_passes() -> None:
    assert check(TLS_ONLY, "aws:cloudfront/distribution:Distribution", distribution()) == []
    newer = distribution(
        viewerCertificate={"acmCertificateArn": "a", "minimumProtocolVersion": "TLSv1.3_2025"}
    )
    assert check(TLS_ONLY, "aws:cloudfront/distribution:Distribution", newer) == []


def test_cloudfront_plain_http_and_old_tls_are_named() -> None:
    props = distribution(
        defaultCacheBehavior={"viewerProtocolPolicy": "allow-all"},
        viewerCertificate={"acmCertificateArn": "a", "minimumProtocolVersion": "TLSv1.2_2019"},
        origins=[
            {
                "originId": "api",
                "customOriginConfig": {
                    "originProtocolPolicy": "http-only",
                    "originSslProtocols": ["TLSv1", "TLSv1.2"],
                },
            }
        ],
    )
    props["orderedCacheBehaviors"][0]["viewerProtocolPolicy"] = "allow-all"
    [found] = check(TLS_ONLY, "aws:cloudfront/distribution:Distribution", props, name="edge")
    assert found.startswith(
        "CloudFront distribution 'edge': the default cache behavior has viewerProtocolPolicy 'allow-all'"
    )
    assert "cache behavior '/users*' has viewerProtocolPolicy 'allow-all'" in found
    assert "minimumProtocolVersion is 'TLSv1.2_2019': use TLSv1.2_2021 or newer" in found
    assert "origin 'api' has originProtocolPolicy 'http-only': use https-only" in found
    assert "origin 'api' allows TLSv1 to the origin" in found
    default_certificate = distribution(viewerCertificate={"cloudfrontDefaultCertificate": True})
    [found] = check(TLS_ONLY, "aws:cloudfront/distribution:Distribution", default_certificate)
    assert "default *.cloudfront.net certificate, which accepts TLSv1" in found


# --- the pack as a whole


def test_policy_names_are_unique_and_levels_as_documented() -> None:
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names)) == 8
    levels = {policy.name: policy.enforcement_level for policy in POLICIES}
    # None inherits the pack's level, which __main__.py sets to mandatory.
    assert levels == {name: None for name in names} | {
        "rest-api-default-endpoint-tls-1-2": EnforcementLevel.ADVISORY
    }
    assert "enforcement_level=EnforcementLevel.MANDATORY" in (POLICY_DIR / "__main__.py").read_text()


@pytest.mark.parametrize(
    "config_file", sorted((ROOT / "policy" / "config").glob("*.json")), ids=lambda p: p.name
)
def test_config_files_name_real_policies_and_valid_values(config_file: Any) -> None:
    """What `pulumi policy validate-config` would check: each key a policy, each value its schema."""
    policies = {policy.name: policy for policy in POLICIES}
    for name, value in json.loads(config_file.read_text()).items():
        assert name in policies, f"{config_file.name}: {name} is not a policy of the pack"
        schema = policies[name].config_schema
        properties = dict(schema.properties) if schema else {}
        properties["enforcementLevel"] = {
            "type": "string",
            "enum": ["advisory", "mandatory", "remediate", "disabled"],
        }
        jsonschema.validate(
            value, {"type": "object", "properties": properties, "additionalProperties": False}
        )


# --- the pack served as the policy host serves it


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """policy/__main__.py under `python -m pulumi.policy <engine> .` in policy/, as the host script runs
    it; it prints its port and serves the Analyzer gRPC service until stopped."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=POLICY_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = (process.stdout.readline() if process.stdout else "").strip()
        assert port.isdigit(), (
            f"the pack did not start: {port!r} {process.stderr.read() if process.stderr else ''}"
        )
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, typ: str, name: str, props: Mapping[str, Any]) -> list[Any]:
    request = analyzer_pb2.AnalyzeRequest(type=typ, urn=urn(typ, name), name=name, properties=struct(props))
    return list(stub.Analyze(request, timeout=30).diagnostics)


def configure(stub: analyzer_pb2_grpc.AnalyzerStub, config: Mapping[str, Any]) -> None:
    """What the engine sends for a --policy-pack-config file (levels default to the policy's own)."""
    levels = {
        policy.name: (policy.enforcement_level or EnforcementLevel.MANDATORY).value.upper()
        for policy in POLICIES
    }
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, level in levels.items():
        value = dict(config.get(name, {}))
        level = str(value.pop("enforcementLevel", level)).upper()
        request.policyConfig[name].CopyFrom(
            analyzer_pb2.PolicyConfig(
                enforcementLevel=analyzer_pb2.EnforcementLevel.Value(level), properties=struct(value)
            )
        )
    stub.Configure(request, timeout=30)


def test_the_served_pack_describes_its_policies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME and info.supportsConfig
    levels = {
        policy.name: analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel) for policy in info.policies
    }
    assert levels == {policy.name: "MANDATORY" for policy in POLICIES} | {
        "rest-api-default-endpoint-tls-1-2": "ADVISORY"
    }
    schema = {policy.name: policy.configSchema for policy in info.policies}[
        "api-methods-require-cognito-authorizer"
    ]
    assert schema.properties["allowUnauthenticated"]["type"] == "boolean"


def test_the_served_pack_reads_engine_properties(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    configure(analyzer, {})
    [diagnostic] = analyze(
        analyzer, "aws:cloudwatch/logGroup:LogGroup", "fn-logs", {"name": "/aws/lambda/fn"}
    )
    assert diagnostic.policyName == "log-groups-expire" and diagnostic.policyPackName == PACK_NAME
    assert analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "MANDATORY"
    assert "Log group 'fn-logs' keeps its events forever" in diagnostic.message
    assert analyze(analyzer, "aws:cloudwatch/logGroup:LogGroup", "ok", {"retentionInDays": 30}) == []
    # Objects and lists arrive as the SDK's read-only proxies: nested documents are still read.
    role = {
        "assumeRolePolicy": LAMBDA_TRUST_POLICY,
        "inlinePolicies": [{"name": "db", "policy": document(allow("dsql:*"))}],
    }
    [diagnostic] = analyze(analyzer, ROLE, "fn-role", role)
    assert "Role 'fn-role': inline policy 'db' statement 1 allows dsql:*" in diagnostic.message
    assert (
        analyze(analyzer, REST_API, "api", {"body": render(secured_body()), "securityPolicy": "TLS_1_2"})
        == []
    )


def test_a_preview_time_unknown_is_an_advisory_note_not_a_pass_or_a_crash(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    configure(analyzer, {})
    [note] = analyze(analyzer, REST_API, "api", {"body": UNKNOWN, "securityPolicy": "TLS_1_2"})
    assert note.policyName == "api-methods-require-cognito-authorizer"
    assert analyzer_pb2.EnforcementLevel.Name(note.enforcementLevel) == "ADVISORY"
    assert (
        "can't run policy 'api-methods-require-cognito-authorizer'" in note.message
        and "during preview" in note.message
    )


def test_dev_config_makes_deletion_protection_advisory_only(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unprotected = {"deletionProtectionEnabled": False}
    configure(analyzer, {})
    [diagnostic] = analyze(analyzer, "aws:dsql/cluster:Cluster", "users-db-primary", unprotected)
    assert analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "MANDATORY"
    configure(analyzer, json.loads((POLICY_DIR / "config" / "dev.json").read_text()))
    [diagnostic] = analyze(analyzer, "aws:dsql/cluster:Cluster", "users-db-primary", unprotected)
    assert analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "ADVISORY"
    [diagnostic] = analyze(analyzer, "aws:cloudwatch/logGroup:LogGroup", "fn-logs", {})
    assert (
        analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "MANDATORY"
    )  # nothing else lowered
    configure(analyzer, {})


def test_no_auth_config_lets_an_open_api_through(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    open_api = {"body": render(open_body()), "securityPolicy": "TLS_1_2"}
    configure(analyzer, {})
    [diagnostic] = analyze(analyzer, REST_API, "api", open_api)
    assert diagnostic.policyName == "api-methods-require-cognito-authorizer"
    configure(analyzer, json.loads((POLICY_DIR / "config" / "no-auth.json").read_text()))
    assert analyze(analyzer, REST_API, "api", open_api) == []
    configure(analyzer, {})


def test_the_served_pack_checks_the_stack_with_property_dependencies(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    configure(analyzer, {})
    role_urn, policy_urn = urn(ROLE, "fn-role"), urn(ROLE_POLICY, "fn-policy")

    def resource(typ: str, resource_urn: str, name: str, props: Mapping[str, Any], role: bool = False) -> Any:
        dependencies = {"role": analyzer_pb2.AnalyzerPropertyDependencies(urns=[role_urn])} if role else {}
        return analyzer_pb2.AnalyzerResource(
            type=typ, urn=resource_urn, name=name, properties=struct(props), propertyDependencies=dependencies
        )

    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            resource(ROLE, role_urn, "fn-role", {"assumeRolePolicy": LAMBDA_TRUST_POLICY, "name": UNKNOWN}),
            resource(
                ROLE_POLICY,
                policy_urn,
                "fn-policy",
                {"role": UNKNOWN, "policy": document(allow("dsql:DbConnectAdmin", CLUSTER_ARN))},
                role=True,
            ),
        ]
    )
    [diagnostic] = analyzer.AnalyzeStack(request, timeout=30).diagnostics
    assert diagnostic.policyName == "no-dsql-admin-connect-for-functions" and diagnostic.urn == policy_urn
    assert analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "MANDATORY"
    assert "Lambda function role 'fn-role' is granted dsql:DbConnectAdmin" in diagnostic.message


# --- the real program


def program_stack(run: ProgramRun) -> list[PolicyResource]:
    """The registered resources as AnalyzeStack would see them: outputs, and property dependencies.

    Mocks do not report property dependencies; the engine records one wherever an input came from another
    resource's output. They are rebuilt the way the values flowed here: an input equal to another
    resource's id (the mocks' ``<name>-id`` unless the outputs set one) or ARN.
    """
    sources: dict[str, PolicyResource] = {}
    resources = []
    for registered in run.resources:
        resource = PolicyResource(
            registered.typ,
            registered.outputs,
            urn(registered.typ, registered.name),
            registered.name,
            options(),
            None,
            None,
            [],
            {},
        )
        resources.append(resource)
        for value in (registered.outputs.get("id", f"{registered.name}-id"), registered.outputs.get("arn")):
            if isinstance(value, str):
                sources[value] = resource
    for registered, resource in zip(run.resources, resources, strict=True):
        for key, value in registered.inputs.items():
            if isinstance(value, str) and value in sources and sources[value] is not resource:
                resource.property_dependencies[key] = [sources[value]]
                resource.dependencies.append(sources[value])
    return resources


@pytest.fixture(scope="module")
def program_run() -> ProgramRun:
    return run_program()


def program_violations(run: ProgramRun) -> dict[str, list[str]]:
    """Every resource policy over every registered resource (inputs as registered), and the stack policy."""
    found: dict[str, list[str]] = {}
    for policy in POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            for registered in run.resources:
                args = resource_args(registered.typ, registered.inputs, name=registered.name)
                found.setdefault(policy.name, []).extend(violations(policy, args))
        else:
            found[policy.name] = violations(policy, StackValidationArgs(program_stack(run)))
    return found


def test_the_program_satisfies_every_mandatory_invariant(program_run: ProgramRun) -> None:
    found = program_violations(program_run)
    # The advisory report has its own test below; so has the authorizer policy (it follows the identity
    # work on handler/openapi.yaml and components/openapi.py).
    separate = ("rest-api-default-endpoint-tls-1-2", "api-methods-require-cognito-authorizer")
    mandatory = {name: messages for name, messages in found.items() if name not in separate}
    assert mandatory == {name: [] for name in mandatory}
    # Not vacuous: the policies saw what they guard.
    kinds = {registered.typ for registered in program_run.resources}
    assert {
        ROLE,
        ROLE_POLICY,
        FUNCTION,
        REST_API,
        "aws:dsql/cluster:Cluster",
        "aws:cloudwatch/logGroup:LogGroup",
    } <= kinds
    assert sorted(role.name for role in function_roles(program_stack(program_run))) == [
        "users-api-us-east-1-function-role",
        "users-api-us-east-2-function-role",
    ]


def test_the_program_gets_the_advisory_endpoint_report(program_run: ProgramRun) -> None:
    """A RestApi that leaves securityPolicy unset (RegionalApp today) is reported, not blocked."""
    reported = program_violations(program_run)["rest-api-default-endpoint-tls-1-2"]
    unset = [api.name for api in program_run.of_type(REST_API) if api.inputs.get("securityPolicy") is None]
    assert sorted(re.match(r"RestApi '([^']+)'", message)[1] for message in reported) == sorted(unset)


def test_the_program_authorizes_every_method_but_health_and_preflights(program_run: ProgramRun) -> None:
    apis = program_run.of_type(REST_API)
    assert len(apis) == 2
    for api in apis:
        assert violations(API_AUTHORIZER, resource_args(REST_API, api.inputs, name=api.name)) == []
        body = json.loads(api.inputs["body"])
        protected = [
            op
            for item in body["paths"].values()
            for op in item.values()
            if isinstance(op, dict) and op.get("security")
        ]
        assert len(protected) >= 5  # not vacuous: the users routes carry the requirement


def test_an_auth_mode_none_stack_passes_only_with_the_no_auth_config() -> None:
    """The explicit opt-out stays satisfiable: refused as written, accepted with allowUnauthenticated."""
    # authReplica (on in prod) replicates a pool, so an open stack has it off.
    apis = run_program({"authMode": "none", "authReplica": False}).of_type(REST_API)
    assert len(apis) == 2
    no_auth = json.loads((POLICY_DIR / "config" / "no-auth.json").read_text())
    for api in apis:
        [refused] = violations(API_AUTHORIZER, resource_args(REST_API, api.inputs, name=api.name))
        assert "GET /users (no security requirement)" in refused
        config = no_auth["api-methods-require-cognito-authorizer"]
        assert (
            violations(API_AUTHORIZER, resource_args(REST_API, api.inputs, name=api.name, config=config))
            == []
        )


def test_the_program_s_violations_would_be_caught(program_run: ProgramRun) -> None:
    """The same run with one function policy widened and one log group unbounded: both reported."""
    run = copy.deepcopy(program_run)
    function_policy = next(
        r for r in run.resources if r.typ == ROLE_POLICY and r.name.endswith("-function-policy")
    )
    statements = json.loads(function_policy.inputs["policy"])
    statements["Statement"].append(allow("dsql:DbConnectAdmin"))
    function_policy.inputs["policy"] = function_policy.outputs["policy"] = json.dumps(statements)
    del next(r for r in run.resources if r.typ == "aws:cloudwatch/logGroup:LogGroup").inputs[
        "retentionInDays"
    ]
    found = program_violations(run)
    assert len(found["no-dsql-action-on-every-resource"]) == 1
    [admin] = found["no-dsql-admin-connect-for-functions"]
    assert admin.startswith(f"Lambda function role '{function_policy.name.replace('policy', 'role')}'")
    assert len(found["log-groups-expire"]) == 1


# --- how the pack is run


def test_the_preview_workflow_runs_the_pack_from_its_own_virtualenv() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    steps = workflow["jobs"]["preview"]["steps"]
    preview = next(step for step in steps if str(step.get("uses", "")).startswith("pulumi/actions@"))
    assert preview["with"]["policyPacks"] == "policy"  # pulumi/actions v7's input for --policy-pack
    assert "policyPackConfigs" not in preview["with"]  # prod: every invariant as written
    install = next(step for step in steps if "policy/requirements.txt" in step.get("run", ""))
    assert "python -m venv policy/.venv" in install["run"]
    assert steps.index(install) < steps.index(preview)
    pack = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"] == {"name": "python", "options": {"virtualenv": ".venv"}}  # policy/.venv


def test_the_pack_s_pins_are_what_these_tests_ran_against() -> None:
    """The pack's own environment must be the one verified here: the SDK it is served by and parses with."""
    pins = dict(
        line.split("==", 1)
        for line in (POLICY_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert all(re.fullmatch(r"[\w.]+", version) for version in pins.values()), "pin exact versions only"
    for package in ("pulumi-policy", "pulumi", "protobuf", "grpcio", "pyyaml"):
        assert pins[package] == metadata.version(package), (
            f"policy/requirements.txt pins {package} {pins[package]}"
        )
