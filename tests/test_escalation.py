"""The attacker's questions, asked of the policy files with the IAM evaluator (tests/iam_policy.py).

Whoever holds the deployer role (bootstrap/policies/deployer-*.json, all attached together) tries to turn
it into more power, or to reach beyond this project; every answer must be "denied". The roles the
program creates carry the permissions boundary (bootstrap/policies/boundary.json), so what a role the
deployer creates can do is at most the boundary: that is checked too, as is the smoke policy and the
previewer's. That the same files still allow every call the providers make is in
tests/test_deployer_policy.py and tests/test_deployer_policy_ops.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.auth_replica import COGNITO_KEY_ACTIONS, COGNITO_PRINCIPAL, key_policy
from tests.iam_policy import POLICY_DIR, allows, boundary_arn, deployer_context, deployer_policy, load_policy
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ACCOUNT
from tests.test_permissions_boundary import EVERY_OPTION

DEPLOYER = deployer_policy()
BOUNDARY_POLICY = load_policy(POLICY_DIR / "boundary.json")
SMOKE = load_policy(POLICY_DIR / "smoke.json")
PREVIEWER = load_policy(POLICY_DIR / "previewer.json")
OURS = deployer_context(ACCOUNT)
BOUNDARY = boundary_arn(ACCOUNT)
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
NEW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/users-api-x"
DEPLOYER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/dsql-users-api-deployer"
BOUNDARY_ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def without(context: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in context.items() if key not in keys}


def another_project(context: dict[str, Any] = OURS) -> dict[str, Any]:
    """The same request on a resource tagged for another project."""
    return {**context, "aws:ResourceTag/project": "another-project"}


# ---------------------------------------------------------------- IAM: no way to an unbounded role


def test_a_role_is_created_only_under_the_boundary() -> None:
    assert allows(DEPLOYER, "iam:CreateRole", NEW_ROLE, OURS)  # the program's own way
    assert not allows(DEPLOYER, "iam:CreateRole", NEW_ROLE, without(OURS, "iam:PermissionsBoundary"))
    for other in (ADMIN, f"arn:aws:iam::{ACCOUNT}:policy/anything-else"):
        assert not allows(DEPLOYER, "iam:CreateRole", NEW_ROLE, {**OURS, "iam:PermissionsBoundary": other})
    # Nor outside the project's name prefix or without its tag.
    assert not allows(DEPLOYER, "iam:CreateRole", f"arn:aws:iam::{ACCOUNT}:role/admin", OURS)
    assert not allows(DEPLOYER, "iam:CreateRole", NEW_ROLE, without(OURS, "aws:RequestTag/project"))


@pytest.mark.parametrize("action", ["iam:AttachRolePolicy", "iam:PutRolePolicy"])
def test_no_policy_reaches_a_role_without_the_boundary(action: str) -> None:
    unbounded = without(OURS, "iam:PermissionsBoundary")
    for context in (unbounded, {**unbounded, "iam:PolicyARN": ADMIN}, {**OURS, "iam:PolicyARN": ADMIN}):
        if action == "iam:PutRolePolicy" and context.get("iam:PermissionsBoundary"):
            continue  # an inline policy on a bounded role is what the program does; the boundary caps it
        assert not allows(DEPLOYER, action, NEW_ROLE, context), context
    # AdministratorAccess is refused even on a bounded role: only the API Gateway logging policy attaches.
    assert not allows(DEPLOYER, "iam:AttachRolePolicy", NEW_ROLE, {**OURS, "iam:PolicyARN": ADMIN})


def test_a_boundary_is_never_removed_or_replaced() -> None:
    for role in (NEW_ROLE, DEPLOYER_ROLE, "*"):
        assert not allows(DEPLOYER, "iam:DeleteRolePermissionsBoundary", role, OURS)
        assert not allows(DEPLOYER, "iam:DeleteUserPermissionsBoundary", role, OURS)
        for other in (ADMIN, f"arn:aws:iam::{ACCOUNT}:policy/wider"):
            replaced = {**OURS, "iam:PermissionsBoundary": other}
            assert not allows(DEPLOYER, "iam:PutRolePermissionsBoundary", role, replaced)


@pytest.mark.parametrize(
    "action",
    [
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:DeletePolicyVersion",
        "iam:DeletePolicy",
        "iam:CreatePolicy",
        "iam:TagPolicy",
    ],
)
def test_the_boundary_and_the_deployers_own_policies_cannot_be_edited(action: str) -> None:
    for policy in (BOUNDARY, f"arn:aws:iam::{ACCOUNT}:policy/dsql-users-api-deployer-iam", "*"):
        assert not allows(DEPLOYER, action, policy, OURS)


@pytest.mark.parametrize(
    "action",
    [
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DeleteRole",
        "iam:TagRole",
        "iam:UntagRole",
    ],
)
def test_the_bootstrap_roles_and_other_projects_roles_are_out_of_reach(action: str) -> None:
    """Trusting oneself from the deployer or previewer role, or from a role of another project that
    happens to start with users-api-, would be a way around the boundary."""
    context = {
        **OURS,
        "iam:PolicyARN": "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
    }
    assert not allows(DEPLOYER, action, DEPLOYER_ROLE, context)
    assert not allows(DEPLOYER, action, f"arn:aws:iam::{ACCOUNT}:role/dsql-users-api-previewer", context)
    foreign = without(another_project(context), "iam:PermissionsBoundary")
    assert not allows(DEPLOYER, action, f"arn:aws:iam::{ACCOUNT}:role/users-api-of-someone-else", foreign)


def test_a_role_the_deployer_creates_can_do_no_more_than_the_boundary() -> None:
    """Even with an inline `*:*` (which the deployer may put on a bounded role), the role's effective
    permissions are the intersection with the boundary: no IAM, no STS, no admin SQL, no Cognito admin."""
    for action, resource in [
        ("iam:CreateRole", NEW_ROLE),
        ("iam:PutRolePolicy", NEW_ROLE),
        ("iam:AttachRolePolicy", NEW_ROLE),
        ("iam:CreatePolicyVersion", BOUNDARY),
        ("sts:AssumeRole", DEPLOYER_ROLE),
        ("dsql:DbConnectAdmin", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/abc"),
        ("dsql:DeleteCluster", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/abc"),
        ("cognito-idp:AdminAddUserToGroup", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/p"),
        ("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Z1"),
        ("s3:GetObject", "arn:aws:s3:::any-bucket/key"),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:dsql-users-api-x"),
    ]:
        assert allows(BOUNDARY_ADMIN, action, resource, OURS)
        assert not allows(BOUNDARY_POLICY, action, resource, OURS), action


def test_the_boundary_holds_every_permission_the_programs_roles_are_given() -> None:
    """A boundary narrower than the roles' policies would break the deployment: every statement of every
    role policy of the whole program (every option on) falls inside it."""
    run = run_ops_program(EVERY_OPTION)
    granted = []
    for resource in run.resources:
        if resource.typ == "aws:iam/rolePolicy:RolePolicy":
            for statement in json.loads(resource.inputs["policy"])["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                targets = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                granted += [(action, target) for action in actions for target in targets]
    assert len(granted) > 10
    assert [(a, r) for a, r in granted if not allows(BOUNDARY_POLICY, a, r, OURS)] == []
    # AmazonAPIGatewayPushToCloudWatchLogs, attached to the logging roles: what it grants, on log groups.
    group = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:API-Gateway-Execution-Logs_abc/v1"
    for action in (
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogGroups",
    ):
        assert allows(BOUNDARY_POLICY, action, group, OURS)


# ---------------------------------------------------------------- other projects' resources


def test_another_projects_dns_records_and_zones_cannot_be_changed() -> None:
    zone = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
    names = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    for ours in (["api.example.com"], ["_3f1a.api.example.com", "us-east-1.api.example.com"]):
        assert allows(DEPLOYER, "route53:ChangeResourceRecordSets", zone, {**OURS, names: ours})
    for theirs in (
        ["www.example.com"],
        ["api.example.com", "mail.example.com"],
        ["example.com"],
        ["xapi.example.com"],
    ):
        assert not allows(DEPLOYER, "route53:ChangeResourceRecordSets", zone, {**OURS, names: theirs}), theirs
    other_zone = "arn:aws:route53:::hostedzone/ZOTHERZONE0000000000"
    assert not allows(
        DEPLOYER, "route53:ChangeResourceRecordSets", other_zone, {**OURS, names: ["api.example.com"]}
    )
    # A deployer role the bootstrap did not tag with a domain and zone changes no record at all.
    untagged = without(OURS, "aws:PrincipalTag/dsql-users-api-domain", "aws:PrincipalTag/dsql-users-api-zone")
    assert not allows(
        DEPLOYER, "route53:ChangeResourceRecordSets", zone, {**untagged, names: ["api.example.com"]}
    )


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("dsql:UpdateCluster", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/theirs"),
        ("dsql:DeleteCluster", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/theirs"),
        ("dsql:DbConnectAdmin", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/theirs"),
        ("dsql:AddPeerCluster", f"arn:aws:dsql:us-east-2:{ACCOUNT}:cluster/theirs"),
        ("dsql:TagResource", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/theirs"),
        ("dsql:UntagResource", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/theirs"),
        ("cognito-idp:UpdateUserPool", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("cognito-idp:DeleteUserPool", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("cognito-idp:CreateGroup", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("cognito-idp:UpdateGroup", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("cognito-idp:CreateUserPoolClient", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("cognito-idp:TagResource", f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/theirs"),
        ("apigateway:PATCH", "arn:aws:apigateway:us-east-1::/restapis/theirs"),
        ("apigateway:DELETE", "arn:aws:apigateway:us-east-1::/restapis/theirs"),
        ("apigateway:POST", "arn:aws:apigateway:us-east-1::/restapis/theirs/deployments"),
        ("apigateway:PUT", "arn:aws:apigateway:us-east-1::/restapis/theirs"),
        ("apigateway:DELETE", "arn:aws:apigateway:us-east-1::/domainnames/theirs.example.com"),
        ("acm:DeleteCertificate", f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/theirs"),
        ("acm:AddTagsToCertificate", f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/theirs"),
        ("cloudfront:DeleteDistribution", f"arn:aws:cloudfront::{ACCOUNT}:distribution/THEIRS"),
        ("cloudfront:UpdateDistribution", f"arn:aws:cloudfront::{ACCOUNT}:distribution/THEIRS"),
        ("cloudfront:TagResource", f"arn:aws:cloudfront::{ACCOUNT}:distribution/THEIRS"),
    ],
)
def test_another_projects_cluster_pool_api_certificate_or_distribution_is_out_of_reach(
    action: str, resource: str
) -> None:
    assert allows(DEPLOYER, action, resource, OURS), "the same action on this project's resource is allowed"
    assert not allows(DEPLOYER, action, resource, another_project())
    # Another project's resource does not receive this project's tag in a request either.
    assert not allows(DEPLOYER, action, resource, another_project({**OURS, "aws:RequestTag/project": "x"}))


def test_the_stacks_groups_only_in_the_stacks_own_pool() -> None:
    pool = f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/ours"
    assert allows(DEPLOYER, "cognito-idp:CreateGroup", pool, OURS)
    assert not allows(DEPLOYER, "cognito-idp:CreateGroup", pool, {**OURS, "aws:ResourceTag/stack": "dev"})


def test_the_smoke_identity_reaches_only_the_stacks_pool() -> None:
    pool = f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/ours"
    for action in ("cognito-idp:AdminSetUserPassword", "cognito-idp:AdminAddUserToGroup"):
        assert allows(SMOKE, action, pool, OURS)
        assert not allows(SMOKE, action, pool, another_project())
        assert not allows(SMOKE, action, pool, {**OURS, "aws:ResourceTag/stack": "dev"})
        assert not allows(
            SMOKE, action, pool, without(OURS, "aws:ResourceTag/project", "aws:ResourceTag/stack")
        )


def test_the_previewer_only_reads() -> None:
    verbs = {action.split(":")[1] for statement in PREVIEWER["Statement"] for action in statement["Action"]}
    # AdminGetUser reads one user (the drill's, on refresh); Cognito names its reads of users "Admin...".
    reads = ("Get", "Describe", "List", "AdminGet")
    assert all(verb.startswith(reads) or verb == "GET" for verb in verbs), verbs
    assert all(
        statement["Effect"] == "Allow" and "Condition" not in statement
        for statement in PREVIEWER["Statement"]
    )
    for action, resource in [
        ("dsql:DbConnectAdmin", "*"),
        ("dsql:DbConnect", "*"),
        ("iam:PassRole", NEW_ROLE),
        ("apigateway:PATCH", "arn:aws:apigateway:us-east-1::/restapis/x"),
        ("cognito-idp:AdminInitiateAuth", "*"),
        ("lambda:InvokeFunction", "*"),
    ]:
        assert not allows(PREVIEWER, action, resource, OURS), action


# ---------------------------------------------------------------- KMS: the multi-Region key (authReplica)

KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
MULTI_REGION = {**OURS, "kms:MultiRegion": "true"}


@pytest.mark.parametrize(
    "action",
    [
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptFrom",
        "kms:CreateGrant",
        "kms:DisableKey",
        "kms:DisableKeyRotation",
        "kms:CancelKeyDeletion",
        "kms:UpdatePrimaryRegion",
        "kms:ImportKeyMaterial",
        "kms:CreateAlias",
    ],
)
def test_the_deployer_cannot_use_or_lend_a_key_not_even_this_projects(action: str) -> None:
    """The deployer manages the key's lifecycle; reading the pool's data through it (or granting that to
    someone) is not part of it, on any key."""
    for key in (KEY, f"arn:aws:kms:us-east-2:{ACCOUNT}:key/*", "*"):
        assert not allows(DEPLOYER, action, key, MULTI_REGION), key


def test_keys_are_created_only_multi_region_and_with_the_projects_tag() -> None:
    assert allows(DEPLOYER, "kms:CreateKey", "*", MULTI_REGION)
    assert not allows(DEPLOYER, "kms:CreateKey", "*", {**MULTI_REGION, "kms:MultiRegion": "false"})
    assert not allows(DEPLOYER, "kms:CreateKey", "*", without(MULTI_REGION, "kms:MultiRegion"))
    assert not allows(DEPLOYER, "kms:CreateKey", "*", without(MULTI_REGION, "aws:RequestTag/project"))


@pytest.mark.parametrize(
    "action", ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:ReplicateKey", "kms:TagResource"]
)
def test_another_projects_key_policy_and_life_are_out_of_reach(action: str) -> None:
    assert allows(DEPLOYER, action, KEY, MULTI_REGION)
    assert not allows(DEPLOYER, action, KEY, another_project(MULTI_REGION))
    # A request carrying this project's tag does not reach another project's key either.
    assert not allows(DEPLOYER, action, KEY, another_project({**MULTI_REGION, "aws:RequestTag/project": "x"}))


def test_the_only_service_linked_role_the_deployer_may_create_is_kmss_for_multi_region_keys() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{{}}/{{}}"
    kms = role.format("mrk.kms.amazonaws.com", "AWSServiceRoleForKeyManagementServiceMultiRegionKeys")
    assert allows(
        DEPLOYER, "iam:CreateServiceLinkedRole", kms, {**OURS, "iam:AWSServiceName": "mrk.kms.amazonaws.com"}
    )
    for service, name in [
        ("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing"),
        ("organizations.amazonaws.com", "AWSServiceRoleForOrganizations"),
    ]:
        assert not allows(
            DEPLOYER,
            "iam:CreateServiceLinkedRole",
            role.format(service, name),
            {**OURS, "iam:AWSServiceName": service},
        )
    assert not allows(
        DEPLOYER, "iam:CreateServiceLinkedRole", kms, {**OURS, "iam:AWSServiceName": "x.amazonaws.com"}
    )


def test_the_key_policy_the_deployer_writes_gives_no_one_more_than_iam_does() -> None:
    """IAM cannot limit what a key policy says, so the program's own is held here: the account root (which
    hands the key to IAM policies, so the deployer keeps exactly the statements above) and Cognito for this
    account's pools, with cryptographic actions only. No role, no other account, no grants."""
    policy = json.loads(key_policy(ACCOUNT))
    principals = [statement["Principal"] for statement in policy["Statement"]]
    assert principals == [{"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, {"Service": COGNITO_PRINCIPAL}]
    [cognito] = [s for s in policy["Statement"] if s["Principal"] == {"Service": COGNITO_PRINCIPAL}]
    assert cognito["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert set(cognito["Action"]) == set(COGNITO_KEY_ACTIONS)
    assert not any(
        action.startswith(("kms:Create", "kms:Put", "kms:Schedule", "kms:Retire"))
        for action in cognito["Action"]
    )
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])


def test_a_bounded_role_reads_only_this_projects_secrets_and_decrypts_only_through_secrets_manager() -> None:
    """The drill's probe reads the drill user's secret (aws/secretsmanager key): the boundary lets a role
    read this project's secrets only, and use a KMS key only when Secrets Manager asks on its behalf."""
    ours = f"arn:aws:secretsmanager:us-east-2:{ACCOUNT}:secret:dsql-users-api-prod-failover-drill-identity-AbCdEf"
    theirs = f"arn:aws:secretsmanager:us-east-2:{ACCOUNT}:secret:prod/database-AbCdEf"
    assert allows(BOUNDARY_POLICY, "secretsmanager:GetSecretValue", ours, OURS)
    assert not allows(BOUNDARY_POLICY, "secretsmanager:GetSecretValue", theirs, OURS)
    assert not allows(BOUNDARY_POLICY, "secretsmanager:PutSecretValue", ours, OURS)
    key = f"arn:aws:kms:us-east-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    via = {**OURS, "kms:ViaService": "secretsmanager.us-east-2.amazonaws.com"}
    assert allows(BOUNDARY_POLICY, "kms:Decrypt", key, via)
    for context in (OURS, {**OURS, "kms:ViaService": "s3.us-east-2.amazonaws.com"}):
        assert not allows(BOUNDARY_POLICY, "kms:Decrypt", key, context)
