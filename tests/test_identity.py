"""Identity under Pulumi mocks, through __main__.py: one Cognito user pool in the primary region, its
clients and group, and the authorizer on both regions' REST APIs; authMode none opens the API. ``prod`` is
the prod stack as written (authReplica on: the secondary authorizes on the replica, same pool ID);
``single_region`` the same with authReplica off (tests/test_auth_replica.py has the replica's parts)."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pulumi
import pulumi_aws as aws
import pytest
from pulumi import ResourceOptions

from components.config import ConfigError, parse_config
from components.identity import ADMINS_GROUP, Identity, IdentityArgs
from components.openapi import COGNITO_AUTHTYPE, operations
from tests.iam_policy import allows, deployer_context, deployer_policy
from tests.pulumi_harness import ACCOUNT, ProgramRun, Registered, run_program

PRIMARY, SECONDARY = "us-east-1", "us-east-2"  # Pulumi.prod.yaml's application regions
POOL = "aws:cognito/userPool:UserPool"
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
GROUP = "aws:cognito/userGroup:UserGroup"
FUNCTION = "aws:lambda/function:Function"
REST_API = "aws:apigateway/restApi:RestApi"


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return run_program()


@pytest.fixture(scope="module")
def single_region() -> ProgramRun:
    return run_program({"authReplica": False})


@pytest.fixture(scope="module")
def open_api_and_warnings() -> tuple[ProgramRun, list[str]]:
    with mock.patch("pulumi.log.warn") as warn:
        # authReplica replicates a pool: refused without one, so off with authMode none.
        run = run_program({"authMode": "none", "authReplica": False})
    return run, [str(call.args[0]) for call in warn.call_args_list]


@pytest.fixture(scope="module")
def open_api(open_api_and_warnings: tuple[ProgramRun, list[str]]) -> ProgramRun:
    return open_api_and_warnings[0]


def _pool(run: ProgramRun) -> Registered:
    return run.one(POOL)


def _client(run: ProgramRun, suffix: str) -> Registered:
    return run.named(f"users-identity-{suffix}")


def _body(run: ProgramRun, region: str) -> dict[str, Any]:
    return json.loads(run.named(f"users-api-{region}-api").inputs["body"])


# ----------------------------------------------------------------- the pool, its clients and group


def test_one_pool_in_the_primary_region_with_its_provider(prod: ProgramRun) -> None:
    pool = _pool(prod)
    assert pool.region == PRIMARY
    assert pool.provider and f"aws-{PRIMARY}" in pool.provider
    cognito = [r for r in prod.resources if r.typ.startswith("aws:cognito/")]
    # The web client (webClient, on by default) adds its code + PKCE client, a domain and a style.
    assert sorted(r.typ for r in cognito) == sorted(
        [POOL, CLIENT, CLIENT, CLIENT, GROUP, "aws:cognito/userPoolDomain:UserPoolDomain",
         "aws:cognito/managedLoginBranding:ManagedLoginBranding"]
    )  # fmt: skip
    for resource in cognito:
        assert resource.region == PRIMARY, f"{resource.name} is in {resource.region}"


def test_pool_signs_in_by_verified_email_with_a_sound_password_policy(prod: ProgramRun) -> None:
    pool = _pool(prod).inputs
    assert pool["name"] == "dsql-users-api-prod-users"
    assert pool["usernameAttributes"] == ["email"]
    assert pool["usernameConfiguration"] == {"caseSensitive": False}
    assert pool["autoVerifiedAttributes"] == ["email"]
    assert pool["userAttributeUpdateSettings"] == {"attributesRequireVerificationBeforeUpdates": ["email"]}
    policy = pool["passwordPolicy"]
    assert policy["minimumLength"] >= 12
    assert all(policy[k] is True for k in ("requireLowercase", "requireUppercase", "requireNumbers"))
    assert policy["requireSymbols"] is True
    assert 1 <= policy["temporaryPasswordValidityDays"] <= 7
    assert policy["passwordHistorySize"] >= 1
    assert pool["accountRecoverySetting"] == {
        "recoveryMechanisms": [{"name": "verified_email", "priority": 1}]
    }
    # Self sign-up is off: administrators invite users.
    assert pool["adminCreateUserConfig"] == {"allowAdminCreateUserOnly": True}
    # Threat protection needs the PLUS plan (billed on top): off, on the default ESSENTIALS plan.
    assert pool["userPoolAddOns"] == {"advancedSecurityMode": "OFF"}
    assert pool["userPoolTier"] == "ESSENTIALS"
    assert pool["mfaConfiguration"] == "OPTIONAL"
    assert pool["softwareTokenMfaConfiguration"] == {"enabled": True}
    assert "smsConfiguration" not in pool  # SMS would cost money per message


@pytest.mark.parametrize(
    ("overrides", "stack", "expected"),
    [
        ({}, "prod", "ACTIVE"),
        ({}, "dev", "INACTIVE"),
        ({"deletionProtection": False}, "prod", "INACTIVE"),
        ({"deletionProtection": True}, "dev", "ACTIVE"),
    ],
)
def test_pool_deletion_protection_follows_the_stack(overrides: dict, stack: str, expected: str) -> None:
    run = run_program(overrides, stack=stack)
    assert _pool(run).inputs["deletionProtection"] == expected


def test_public_client_has_no_secret_srp_only_and_rotating_refresh_tokens(prod: ProgramRun) -> None:
    pool = _pool(prod)
    client = _client(prod, "client").inputs
    assert client["userPoolId"] == pool.outputs["id"]
    assert client["generateSecret"] is False
    # Rotation refuses REFRESH_TOKEN_AUTH: refreshes go through GetTokensFromRefreshToken.
    assert client["explicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH"]
    assert client["refreshTokenRotation"] == {"feature": "ENABLED", "retryGracePeriodSeconds": 10}
    assert client["preventUserExistenceErrors"] == "ENABLED"
    assert client["enableTokenRevocation"] is True
    # 15 minutes by default: how long a removed admin or a disabled user keeps a token at most.
    assert (client["idTokenValidity"], client["accessTokenValidity"], client["refreshTokenValidity"]) == (
        15,
        15,
        30,
    )
    assert client["tokenValidityUnits"] == {
        "idToken": "minutes",
        "accessToken": "minutes",
        "refreshToken": "days",
    }
    assert not any(key.startswith("allowedOauth") for key in client)  # no OAuth flows, no hosted UI
    assert "email_verified" not in client["writeAttributes"]


def test_smoke_client_allows_only_admin_password_auth(prod: ProgramRun) -> None:
    smoke = _client(prod, "smoke-client").inputs
    assert smoke["userPoolId"] == _pool(prod).outputs["id"]
    assert smoke["generateSecret"] is False
    # ADMIN_USER_PASSWORD_AUTH is an IAM-signed call (AdminInitiateAuth): no public SRP or password flow.
    assert smoke["explicitAuthFlows"] == ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert smoke["preventUserExistenceErrors"] == "ENABLED"
    assert smoke["idTokenValidity"] <= 60 and smoke["tokenValidityUnits"]["idToken"] == "minutes"


def test_admins_group(prod: ProgramRun) -> None:
    group = prod.one(GROUP).inputs
    assert group["name"] == ADMINS_GROUP == "admins"
    assert group["userPoolId"] == _pool(prod).outputs["id"]


@pytest.mark.parametrize(
    ("run_name", "issuer_host"),
    [("prod", "issuer-cognito-idp"), ("single_region", "cognito-idp")],  # prod: authReplica's UPDATED issuer
)
def test_exports_what_clients_and_the_smoke_tool_need(
    run_name: str, issuer_host: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    pool = _pool(run).outputs
    assert run.outputs["userPoolId"] == pool["id"]
    assert run.outputs["userPoolArn"] == pool["arn"]
    assert run.outputs["userPoolArn"].startswith(f"arn:aws:cognito-idp:{PRIMARY}:{ACCOUNT}:userpool/")
    # The mocks give a resource without a computed id the id "<name>-id".
    assert run.outputs["userPoolClientId"] == "users-identity-client-id"
    assert run.outputs["userPoolSmokeClientId"] == "users-identity-smoke-client-id"
    assert run.outputs["userPoolIssuer"] == f"https://{issuer_host}.{PRIMARY}.amazonaws.com/{pool['id']}"


# ----------------------------------------------------------------- the authorizer in both regions


@pytest.mark.parametrize("region", [PRIMARY, SECONDARY])
@pytest.mark.parametrize("run_name", ["prod", "single_region"])
def test_every_method_but_health_and_preflights_requires_the_pool(
    run_name: str, region: str, request: pytest.FixtureRequest
) -> None:
    """Without the replica both regions name the one pool; with it (prod), each region names the pool in
    its own region: the same pool ID, the replica's ARN in the secondary."""
    prod: ProgramRun = request.getfixturevalue(run_name)
    body = _body(prod, region)
    pool_arn = _pool(prod).outputs["arn"]
    if run_name == "prod":
        pool_arn = pool_arn.replace(f":{PRIMARY}:", f":{region}:")
    schemes = body["components"]["securitySchemes"]
    cognito = [
        name for name, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == COGNITO_AUTHTYPE
    ]
    assert len(cognito) == 1
    scheme = schemes[cognito[0]]
    assert (scheme["type"], scheme["name"], scheme["in"]) == ("apiKey", "Authorization", "header")
    assert scheme["x-amazon-apigateway-authorizer"] == {"type": COGNITO_AUTHTYPE, "providerARNs": [pool_arn]}
    protected, open_ = set(), set()
    for method, path, operation in operations(body):
        # Written on every operation, so API Gateway never depends on a document-level default.
        assert "security" in operation, f"{method} {path}"
        if operation["security"] == []:
            open_.add((method, path))
        else:
            assert operation["security"] == [{cognito[0]: []}], f"{method} {path}"  # no scopes: ID tokens
            protected.add((method, path))
    assert open_ == {("GET", "/health")} | {("OPTIONS", path) for path in body["paths"]}
    assert protected >= {
        ("GET", "/users"),
        ("POST", "/users"),
        ("GET", "/users/{id}"),
        ("PATCH", "/users/{id}"),
        ("DELETE", "/users/{id}"),
    }
    assert "security" not in body  # no document-level default left for API Gateway to interpret
    variables = prod.named(f"users-api-{region}-function").inputs["environment"]["variables"]
    assert variables["AUTH_MODE"] == "cognito"
    # The function accepts ID tokens of the stack's clients only (the authorizer takes any client).
    assert variables["AUTH_CLIENT_IDS"] == (
        "users-identity-client-id,users-identity-smoke-client-id,users-identity-web-client-id"
    )


def test_both_regions_name_the_same_pool(prod: ProgramRun, single_region: ProgramRun) -> None:
    def authorizers(run: ProgramRun) -> set[str]:
        return {
            json.dumps(
                _body(run, region)["components"]["securitySchemes"]["cognito"][
                    "x-amazon-apigateway-authorizer"
                ]
            )
            for region in (PRIMARY, SECONDARY)
        }

    assert len(authorizers(single_region)) == 1
    # With the replica (prod): one pool ID, named in each region by that region's ARN.
    pool_id = _pool(prod).outputs["id"]
    arns = [json.loads(a)["providerARNs"] for a in authorizers(prod)]
    assert sorted(arns) == [
        [f"arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{pool_id}"] for region in (PRIMARY, SECONDARY)
    ]


@pytest.mark.parametrize("region", [PRIMARY, SECONDARY])
def test_gateway_401_and_403_are_json_errors(prod: ProgramRun, region: str) -> None:
    responses = _body(prod, region)["x-amazon-apigateway-gateway-responses"]
    for kind, status, code in (
        ("UNAUTHORIZED", "401", "unauthorized"),
        ("ACCESS_DENIED", "403", "forbidden"),
    ):
        response = responses[kind]
        assert response["statusCode"] == status
        template = response["responseTemplates"]["application/json"]
        assert json.loads(template.replace("$context.error.messageString", '"Unauthorized"')) == {
            "error": {"code": code, "message": "Unauthorized"}
        }
    assert (
        responses["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"]
        == "'Bearer'"
    )


# ----------------------------------------------------------------- authMode none


def test_auth_mode_none_creates_no_pool_and_opens_both_apis(open_api: ProgramRun) -> None:
    assert not [r for r in open_api.resources if r.typ.startswith("aws:cognito/")]
    assert not any(key.startswith("userPool") for key in open_api.outputs)
    for region in (PRIMARY, SECONDARY):
        body = _body(open_api, region)
        assert "security" not in body
        assert not any("security" in operation for _, _, operation in operations(body))
        assert "securitySchemes" not in body.get("components", {})
        variables = open_api.named(f"users-api-{region}-function").inputs["environment"]["variables"]
        assert variables["AUTH_MODE"] == "none"
        assert "AUTH_CLIENT_IDS" not in variables


def test_auth_mode_none_is_warned_about(open_api_and_warnings: tuple[ProgramRun, list[str]]) -> None:
    _, warnings = open_api_and_warnings
    assert any("authMode is none" in w and "pulumi config set authMode cognito" in w for w in warnings)


def test_auth_mode_cognito_logs_no_auth_warning() -> None:
    with mock.patch("pulumi.log.warn") as warn:
        run_program()
    assert not [c for c in warn.call_args_list if "authMode" in str(c.args[0])]


@pytest.mark.parametrize("value", ["Cognito", "iam", "off", ""])
def test_a_bad_auth_mode_names_the_key_and_the_fix(value: str) -> None:
    regions = {"primaryRegion": "us-east-1", "secondaryRegion": "us-east-2", "witnessRegion": "us-west-2"}
    if value == "Cognito":  # case does not matter
        assert parse_config({**regions, "authMode": value}).auth_mode == "cognito"
        return
    with pytest.raises(ConfigError) as error:
        parse_config({**regions, "authMode": value})
    assert "dsql-users-api:authMode" in str(error.value)
    assert "pulumi config set authMode cognito" in str(error.value)
    assert "none" in str(error.value)


def test_a_bad_auth_mode_stops_the_program_before_any_resource() -> None:
    with pytest.raises(Exception, match="dsql-users-api:authMode"):
        run_program({"authMode": "anonymous"})


# ----------------------------------------------------------------- the component on its own


def _component(args: IdentityArgs) -> None:
    provider = aws.Provider("aws-eu", region="eu-west-1")
    identity = Identity("id", args, opts=ResourceOptions(provider=provider))
    pulumi.export("issuer", identity.issuer_url)
    pulumi.export("smoke", identity.smoke_client_id)


def test_component_options_self_sign_up_and_no_smoke_client() -> None:
    run = run_program(
        program=lambda: _component(
            IdentityArgs(region="eu-west-1", deletion_protection=False, self_sign_up=True, smoke_client=False)
        )
    )
    pool = run.one(POOL)
    assert pool.region == "eu-west-1"
    assert pool.inputs["adminCreateUserConfig"] == {"allowAdminCreateUserOnly": False}
    assert pool.inputs["deletionProtection"] == "INACTIVE"
    assert len(run.of_type(CLIENT)) == 1
    assert run.outputs["smoke"] is None
    assert run.outputs["issuer"] == f"https://cognito-idp.eu-west-1.amazonaws.com/{pool.outputs['id']}"


def test_token_lifetime_comes_from_the_stack_config() -> None:
    client = _client(run_program({"tokenValidityMinutes": "5"}), "client").inputs
    assert (client["idTokenValidity"], client["accessTokenValidity"]) == (5, 5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("token_validity_minutes", 4, "5 to 1440"), ("refresh_token_validity_days", 0, "1 to 3650")],
)
def test_component_refuses_token_lifetimes_cognito_refuses(field: str, value: int, message: str) -> None:
    args = IdentityArgs(region="eu-west-1", deletion_protection=True, **{field: value})
    with pytest.raises(Exception, match=message):
        run_program(program=lambda: _component(args))


# ----------------------------------------------------------------- the deployer's permissions

# What terraform-provider-aws calls for each Cognito resource type (internal/service/cognitoidp):
# create, read (MFA settings and tags too), update, tag and delete. IAM authorizes client and group
# actions on the pool's ARN; CreateUserPool has no resource type, so it can only be granted on "*".
PROVIDER_CALLS = {
    POOL: "CreateUserPool DescribeUserPool GetUserPoolMfaConfig SetUserPoolMfaConfig UpdateUserPool "
    "DeleteUserPool ListTagsForResource TagResource UntagResource",
    CLIENT: "CreateUserPoolClient DescribeUserPoolClient UpdateUserPoolClient DeleteUserPoolClient",
    GROUP: "CreateGroup GetGroup UpdateGroup DeleteGroup",
}


def test_the_deployer_policy_allows_what_the_provider_does_for_the_pool(prod: ProgramRun) -> None:
    policy = deployer_policy()
    context = deployer_context(ACCOUNT)
    pool_arn = _pool(prod).outputs["arn"]
    denied = [
        (resource.typ, action)
        for resource in prod.resources
        if resource.typ in PROVIDER_CALLS
        for action in PROVIDER_CALLS[resource.typ].split()
        if not allows(
            policy, f"cognito-idp:{action}", "*" if action == "CreateUserPool" else pool_arn, context
        )
    ]
    assert denied == []
    # Scoped to this account's user pools: another account's pool, or a user's actions, are refused.
    other = pool_arn.replace(ACCOUNT, "210987654321")
    assert not allows(policy, "cognito-idp:DeleteUserPool", other, context)
    # ...and to this project's pools: one tagged for another project (or untagged) is refused, and groups
    # only in the stack's own pool.
    foreign = {**context, "aws:ResourceTag/project": "another-project"}
    for action in ("DeleteUserPool", "UpdateUserPool", "CreateGroup", "UpdateGroup", "UpdateUserPoolClient"):
        assert not allows(policy, f"cognito-idp:{action}", pool_arn, foreign)
        assert not allows(policy, f"cognito-idp:{action}", pool_arn, {"aws:PrincipalAccount": ACCOUNT})
    other_stack = {**context, "aws:ResourceTag/stack": "dev"}
    assert not allows(policy, "cognito-idp:CreateGroup", pool_arn, other_stack)
    # Users: only the failover drill's own user (components/dynamic/drill_user.py), in the stack's own
    # pool, and never into a group (no administrator can be made).
    assert allows(policy, "cognito-idp:AdminDeleteUser", pool_arn, context)
    assert not allows(policy, "cognito-idp:AdminDeleteUser", pool_arn, other_stack)
    assert not allows(policy, "cognito-idp:AdminAddUserToGroup", pool_arn, context)
