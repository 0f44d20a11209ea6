"""The deployer's policies (bootstrap/policies/deployer-*.json, one managed policy each, attached together
by the bootstrap): least privilege for `pulumi preview/up/refresh/destroy` of this stack.

Two sources of truth are checked against the files with a small IAM evaluator (tests/iam_policy.py):

- the dynamic providers: every AWS call they make during a whole life (create, read, update, delete
  of the peering, the migration and the grants) is recorded from botocore against moto (and every IAM
  auth token they sign, which authorizes ``dsql:DbConnectAdmin``), and each must be allowed;
- the AWS provider: for every resource the program declares (run under Pulumi's mocks with a custom
  domain, so every optional part exists), the API actions terraform-provider-aws calls to create,
  read, update, tag and delete that resource type, on the ARN the resource gets, must be allowed.
  The lists come from the provider's source (internal/service/<service>/<resource>.go); API Gateway's
  management API is authorized per HTTP verb on resource paths.

Resource types whose statements other parts of the project add (identity, edge, operations) are
listed in ``OWNED_ELSEWHERE``; a type in neither list fails the test, so a new resource gets a
statement before it ships.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.dynamic import aws_session, dsql_admin
from components.dynamic.iam_grant import IamGrantProvider
from components.dynamic.migration import SchemaMigrationProvider, migration_inputs
from components.dynamic.peering import ClusterPeeringProvider
from migrations.runner import Migration, load_migrations
from tests.aws_calls import AwsCall, CallLog, record_sessions, record_tokens
from tests.dsql_on_postgres import Recorder, route_admin_connections
from tests.iam_policy import (
    DEPLOYER_FILES,
    POLICY_DIR,
    UnsupportedPolicy,
    allows,
    deployer_context,
    deployer_policy,
    load_policy,
    required_permissions,
    wildcard,
)
from tests.pulumi_harness import ACCOUNT, Registered, run_program

POLICY = deployer_policy()
CONTEXT = deployer_context(ACCOUNT)
# IAM's limit: a managed policy holds 6,144 characters without whitespace.
MANAGED_POLICY_LIMIT = 6_144
POLICY_FILES = sorted(POLICY_DIR.glob("*.json"))
# IAM defines some actions with no resource type (route53:CreateHealthCheck, acm:RequestCertificate):
# they can only be granted on "*", each in a statement whose Sid ends with this, saying why.
NO_RESOURCE_TYPE_SUFFIX = "HasNoResourceType"


# --- the file itself ------------------------------------------------------------------------------------


def test_the_policy_is_valid_iam_json_with_one_named_statement_per_purpose() -> None:
    sids = [statement["Sid"] for statement in POLICY["Statement"]]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for statement in POLICY["Statement"]:
        # A Deny says so in its name: it is a guard that holds whatever else is attached.
        assert statement["Effect"] == ("Deny" if statement["Sid"].startswith("Deny") else "Allow")
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement["Sid"]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z*]+", action) for action in actions), statement["Sid"]
        assert len(actions) == len(set(actions)), statement["Sid"]


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda path: path.name)
def test_every_policy_file_fits_in_one_managed_policy(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"  # policy variables need this version
    size = len(json.dumps(document, separators=(",", ":")))
    print(f"{path.name}: {size} characters without whitespace (managed policy limit {MANAGED_POLICY_LIMIT})")
    assert size <= MANAGED_POLICY_LIMIT
    assert set(DEPLOYER_FILES) <= {p.name for p in POLICY_FILES}


def test_no_resource_is_a_bare_wildcard_where_iam_knows_an_arn() -> None:
    for statement in POLICY["Statement"]:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "*" in resources and statement["Effect"] == "Allow":
            assert resources == ["*"] and statement["Sid"].endswith(NO_RESOURCE_TYPE_SUFFIX), statement["Sid"]
        assert not any(a.endswith(":*") for a in actions), f"{statement['Sid']}: a whole service"


# --- the evaluator (so its answers can be trusted) -------------------------------------------------------


def test_the_evaluator_matches_wildcards_variables_and_conditions_as_iam_does() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "dsql:Get*",
                "Resource": "arn:aws:dsql:*:${aws:PrincipalAccount}:cluster/*",
            },
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": "arn:aws:iam::111122223333:role/app-?",
                "Condition": {"StringEquals": {"iam:PassedToService": ["lambda.amazonaws.com"]}},
            },
            {"Effect": "Deny", "Action": "dsql:GetCluster", "Resource": "arn:aws:dsql:*:*:cluster/secret"},
            {
                "Effect": "Allow",
                "Action": "kms:CreateKey",
                "Resource": "*",
                "Condition": {"Bool": {"kms:MultiRegion": "true"}},
            },
        ]
    }
    ctx = {"aws:PrincipalAccount": "111122223333"}
    assert allows(policy, "DSQL:getcluster", "arn:aws:dsql:us-east-1:111122223333:cluster/abc", ctx)
    assert not allows(policy, "dsql:GetCluster", "arn:aws:dsql:us-east-1:999999999999:cluster/abc", ctx)
    assert not allows(policy, "dsql:GetCluster", "arn:aws:dsql:us-east-1:111122223333:cluster/abc", {})
    assert not allows(policy, "dsql:GetCluster", "arn:aws:dsql:us-east-1:111122223333:cluster/secret", ctx)
    assert not allows(policy, "dsql:UpdateCluster", "arn:aws:dsql:us-east-1:111122223333:cluster/abc", ctx)
    passed = {**ctx, "iam:PassedToService": "lambda.amazonaws.com"}
    assert allows(policy, "iam:PassRole", "arn:aws:iam::111122223333:role/app-1", passed)
    assert not allows(policy, "iam:PassRole", "arn:aws:iam::111122223333:role/app-12", passed)
    assert not allows(policy, "iam:PassRole", "arn:aws:iam::111122223333:role/APP-1", passed)  # case
    assert not allows(policy, "iam:PassRole", "arn:aws:iam::111122223333:role/app-1", ctx)  # no key
    assert allows(policy, "kms:CreateKey", "*", {"kms:MultiRegion": "true"})
    assert allows(policy, "kms:CreateKey", "*", {"kms:MultiRegion": True})  # Bool compares without case
    assert not allows(policy, "kms:CreateKey", "*", {"kms:MultiRegion": "false"})
    assert not allows(policy, "kms:CreateKey", "*", {})  # an absent key is not true
    assert wildcard("a*b").match("a:x/y:b") and not wildcard("a?b").match("ab")


def test_the_evaluator_refuses_what_it_does_not_implement() -> None:
    with pytest.raises(UnsupportedPolicy):
        allows({"Statement": [{"Effect": "Allow", "NotAction": "x:Y", "Resource": "*"}]}, "x:Z", "r")
    with pytest.raises(UnsupportedPolicy):
        allows(
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "x:*", "Resource": "*", "Condition": {"IpAddress": {}}}
                ]
            },
            "x:Z",
            "r",
        )


# --- the dynamic providers, recorded ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamic_provider_calls(postgres_url: str) -> Iterator[list[AwsCall]]:
    """Every AWS call of a whole life of the three providers, against moto and a PostgreSQL."""
    from local.postgres import scratch_database

    patch = pytest.MonkeyPatch()
    log = CallLog()
    patch.setenv("AWS_ACCESS_KEY_ID", "AKIAPOLICYTEST000001")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "policy-test")
    patch.delenv("AWS_PROFILE", raising=False)
    patch.setattr(aws_session, "base_session", record_sessions(aws_session.base_session, log))
    patch.setattr(dsql_admin, "admin_token", record_tokens(dsql_admin.admin_token, log))
    with (
        scratch_database(postgres_url, "policy") as url,
        mock_aws(config={"core": {"mock_credentials": False}}),
    ):
        patch.setattr(
            dsql_admin,
            "admin_connection",
            route_admin_connections(dsql_admin.admin_connection, url, Recorder()),
        )
        _live_a_whole_life()
        yield log.calls
    patch.undo()


def _live_a_whole_life() -> None:
    pair: dict[str, Any] = {
        "witness_region": "us-west-2",
        "timeout_seconds": 30,
        "poll_interval_seconds": 0.01,
    }
    for side, region in (("primary", "us-east-1"), ("secondary", "us-east-2")):
        cluster = boto3.client("dsql", region_name=region).create_cluster(
            deletionProtectionEnabled=False, multiRegionProperties={"witnessRegion": "us-west-2"}
        )
        pair.update(
            {
                f"{side}_identifier": cluster["identifier"],
                f"{side}_arn": cluster["arn"],
                f"{side}_region": region,
            }
        )
    endpoint = f"{pair['primary_identifier']}.dsql.us-east-1.on.aws"

    peering = ClusterPeeringProvider()
    peered = peering.create(peering.check({}, pair).inputs)
    peering.read(peered.id, peered.outs or {})
    peering.update(peered.id, peered.outs or {}, {**pair, "timeout_seconds": 60})

    schema = SchemaMigrationProvider()
    files = migration_inputs(load_migrations())
    applied = schema.create({"endpoint": endpoint, "region": "us-east-1", "migrations": files})
    schema.read(applied.id, applied.outs or {})
    extra = migration_inputs(
        [Migration("0099_policy.sql", "CREATE TABLE IF NOT EXISTS policy_probe (id UUID PRIMARY KEY);\n")]
    )
    schema.update(
        applied.id,
        applied.outs or {},
        {"endpoint": endpoint, "region": "us-east-1", "migrations": [*files, *extra]},
    )

    grant = IamGrantProvider()
    props = {
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/users-api-us-east-1-function-role-abc1234",
        "db_role": "users_api",
        "endpoint": endpoint,
        "region": "us-east-1",
    }
    granted = grant.create(props)
    grant.read(granted.id, granted.outs or {})
    grant.delete(granted.id, granted.outs or {})

    schema.delete(applied.id, applied.outs or {})
    peering.delete(peered.id, peered.outs or {})


def test_the_recording_saw_every_kind_of_call_the_providers_make(
    dynamic_provider_calls: list[AwsCall],
) -> None:
    assert {call.name for call in dynamic_provider_calls} == {
        "dsql:GetCluster",
        "dsql:UpdateCluster",
        "dsql:DbConnectAdmin",
    }


def test_every_call_of_the_dynamic_providers_is_allowed(dynamic_provider_calls: list[AwsCall]) -> None:
    denied = [
        (call.name, action, resource)
        for call in dynamic_provider_calls
        for action, resource in required_permissions(call, ACCOUNT)
        if not allows(POLICY, action, resource, CONTEXT)
    ]
    assert denied == []


def test_the_dynamic_providers_cannot_touch_another_accounts_cluster() -> None:
    foreign = "arn:aws:dsql:us-east-1:999999999999:cluster/abcdefghijklmnopqrstuvwxyz"
    for action in ("dsql:UpdateCluster", "dsql:DbConnectAdmin", "dsql:AddPeerCluster"):
        assert not allows(POLICY, action, foreign, CONTEXT)
    assert not allows(POLICY, "dsql:DbConnect", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/x", CONTEXT)


# --- the AWS provider, for what the program declares ---------------------------------------------------

Need = list[tuple[str, str, dict[str, Any]]]  # (action, resource ARN, extra request context)


def _arn(service: str, region: str, rest: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


def _api(region: str, path: str) -> str:
    return f"arn:aws:apigateway:{region}::{path}"


def _verbs(region: str, collection: str, item: str) -> Need:
    """API Gateway: POST to create in the collection; GET, PATCH, PUT and DELETE on the item."""
    none: dict[str, str] = {}
    return [("apigateway:POST", _api(region, collection), none)] + [
        (f"apigateway:{verb}", _api(region, item), none) for verb in ("GET", "PATCH", "PUT", "DELETE")
    ]


def _each(actions: str, resource: str) -> Need:
    return [(action, resource, {}) for action in actions.split()]


def _cluster(r: Registered) -> Need:
    return [
        ("dsql:CreateCluster", _arn("dsql", r.region, "cluster/*"), {}),
        *_each(
            "dsql:GetCluster dsql:UpdateCluster dsql:DeleteCluster dsql:GetVpcEndpointServiceName "
            "dsql:ListTagsForResource dsql:TagResource dsql:UntagResource dsql:PutMultiRegionProperties "
            "dsql:PutWitnessRegion",
            r.outputs["arn"],
        ),
    ]


def _role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


TRUSTED_HERE = {"lambda.amazonaws.com", "apigateway.amazonaws.com"}


def _trusted_service(r: Registered) -> str | None:
    document = json.loads(r.inputs["assumeRolePolicy"])
    services = {s["Principal"]["Service"] for s in document["Statement"]}
    return next(iter(services & TRUSTED_HERE), None)


def _role(r: Registered) -> Need:
    arn = r.outputs["arn"]
    need = _each(
        "iam:CreateRole iam:GetRole iam:UpdateRole iam:UpdateRoleDescription iam:UpdateAssumeRolePolicy "
        "iam:DeleteRole iam:TagRole iam:UntagRole iam:ListRoleTags iam:ListRolePolicies iam:GetRolePolicy "
        "iam:ListAttachedRolePolicies iam:ListInstanceProfilesForRole",
        arn,
    )
    service = _trusted_service(r)
    if service is not None:  # roles trusted by other services are passed by the parts that own them
        need.append(("iam:PassRole", arn, {"iam:PassedToService": service}))
    return need


def _role_policy(r: Registered) -> Need:
    return _each("iam:PutRolePolicy iam:GetRolePolicy iam:DeleteRolePolicy", _role_arn(r.inputs["role"]))


def _role_policy_attachment(r: Registered) -> Need:
    arn = _role_arn(r.inputs["role"])
    return [
        ("iam:AttachRolePolicy", arn, {"iam:PolicyARN": r.inputs["policyArn"]}),
        *_each("iam:ListAttachedRolePolicies iam:DetachRolePolicy", arn),
    ]


def _function(r: Registered) -> Need:
    return _each(
        "lambda:CreateFunction lambda:GetFunction lambda:GetFunctionConfiguration "
        "lambda:GetFunctionCodeSigningConfig lambda:ListVersionsByFunction lambda:UpdateFunctionCode "
        "lambda:UpdateFunctionConfiguration lambda:PublishVersion lambda:DeleteFunction lambda:ListTags "
        "lambda:TagResource lambda:UntagResource lambda:PutFunctionConcurrency "
        "lambda:DeleteFunctionConcurrency lambda:GetFunctionConcurrency",
        _arn("lambda", r.region, f"function:{r.inputs['name']}"),
    )


def _layer(r: Registered) -> Need:
    layer = _arn("lambda", r.region, f"layer:{r.inputs['layerName']}")
    # CreateFunction with Layers also needs GetLayerVersion on each layer version it names.
    return [
        ("lambda:PublishLayerVersion", layer, {}),
        *_each("lambda:GetLayerVersion lambda:DeleteLayerVersion", f"{layer}:1"),
    ]


def _function_arn(r: Registered, key: str) -> str:
    name = r.inputs[key]
    return name if name.startswith("arn:") else _arn("lambda", r.region, f"function:{name}")


def _permission(r: Registered) -> Need:
    return _each(
        "lambda:AddPermission lambda:GetPolicy lambda:RemovePermission", _function_arn(r, "function")
    )


def _alias(r: Registered) -> Need:
    function = _function_arn(r, "functionName")
    return _each(
        "lambda:CreateAlias lambda:GetAlias lambda:UpdateAlias lambda:DeleteAlias", function
    ) + _each("lambda:GetAlias", f"{function}:{r.inputs['name']}")


def _rest_api(r: Registered) -> Need:
    return [
        *_verbs(r.region, "/restapis", f"/restapis/{r.outputs['id']}"),
        ("apigateway:GET", _api(r.region, f"/restapis/{r.outputs['id']}/resources"), {}),
        ("apigateway:PUT", _api(r.region, "/tags/arn%3Aaws%3Aapigateway"), {}),
    ]


def _deployment(r: Registered) -> Need:
    api = r.inputs["restApi"]
    return _verbs(r.region, f"/restapis/{api}/deployments", f"/restapis/{api}/deployments/{r.name}-id")


def _stage(r: Registered) -> Need:
    api = r.inputs["restApi"]
    return _verbs(r.region, f"/restapis/{api}/stages", f"/restapis/{api}/stages/{r.inputs['stageName']}")


def _method_settings(r: Registered) -> Need:
    stage = f"/restapis/{r.inputs['restApi']}/stages/{r.inputs['stageName']}"
    return [(f"apigateway:{verb}", _api(r.region, stage), {}) for verb in ("GET", "PATCH")]


def _account(r: Registered) -> Need:
    role = r.inputs.get("cloudwatchRoleArn")
    need: Need = [(f"apigateway:{verb}", _api(r.region, "/account"), {}) for verb in ("GET", "PATCH")]
    if role:
        need.append(("iam:PassRole", role, {"iam:PassedToService": "apigateway.amazonaws.com"}))
    return need


def _domain_name(r: Registered) -> Need:
    return _verbs(r.region, "/domainnames", f"/domainnames/{r.inputs['domainName']}")


def _base_path_mapping(r: Registered) -> Need:
    mappings = f"/domainnames/{r.inputs['domainName']}/basepathmappings"
    return _verbs(r.region, mappings, f"{mappings}/(none)")


def _log_group(r: Registered) -> Need:
    group = _arn("logs", r.region, f"log-group:{r.inputs['name']}")
    return [
        ("logs:DescribeLogGroups", _arn("logs", r.region, "log-group:*"), {}),
        *_each(
            "logs:CreateLogGroup logs:DeleteLogGroup logs:PutRetentionPolicy logs:DeleteRetentionPolicy "
            "logs:ListTagsForResource logs:TagResource logs:UntagResource",
            group,
        ),
        *_each("logs:ListTagsLogGroup logs:TagLogGroup logs:UntagLogGroup", f"{group}:*"),
    ]


def _alarm(r: Registered) -> Need:
    return _each(
        "cloudwatch:PutMetricAlarm cloudwatch:DescribeAlarms cloudwatch:DeleteAlarms "
        "cloudwatch:ListTagsForResource cloudwatch:TagResource cloudwatch:UntagResource",
        _arn("cloudwatch", r.region, f"alarm:{r.inputs['name']}"),
    )


def _dashboard(r: Registered) -> Need:
    arn = f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{r.inputs['dashboardName']}"
    return _each("cloudwatch:PutDashboard cloudwatch:GetDashboard cloudwatch:DeleteDashboards", arn)


def _topic(r: Registered) -> Need:
    return _each(
        "sns:CreateTopic sns:GetTopicAttributes sns:SetTopicAttributes sns:DeleteTopic "
        "sns:ListTagsForResource sns:TagResource sns:UntagResource sns:ListSubscriptionsByTopic",
        r.outputs["arn"],
    )


def _subscription(r: Registered) -> Need:
    topic = r.inputs["topic"]
    return _each("sns:Subscribe sns:GetSubscriptionAttributes sns:SetSubscriptionAttributes", topic) + _each(
        "sns:Unsubscribe sns:GetSubscriptionAttributes", f"{topic}:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    )


def _health_check(r: Registered) -> Need:
    arn = f"arn:aws:route53:::healthcheck/{r.name}-id"
    return [
        ("route53:CreateHealthCheck", "*", {}),
        *_each(
            "route53:GetHealthCheck route53:UpdateHealthCheck route53:DeleteHealthCheck "
            "route53:ChangeTagsForResource route53:ListTagsForResource",
            arn,
        ),
    ]


def _record(r: Registered) -> Need:
    zone = f"arn:aws:route53:::hostedzone/{r.inputs['zoneId']}"
    # Route 53 puts the changed names, lower case and without the final dot, in this condition key.
    names = {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [r.inputs["name"].lower().rstrip(".")]}
    return [
        *_each("route53:GetHostedZone route53:ListResourceRecordSets", zone),
        ("route53:ChangeResourceRecordSets", zone, names),
        ("route53:GetChange", "arn:aws:route53:::change/C2682N5HXP0BZ4", {}),
    ]


def _certificate(r: Registered) -> Need:
    return [
        ("acm:RequestCertificate", "*", {}),
        *_each(
            "acm:DescribeCertificate acm:DeleteCertificate acm:ListTagsForCertificate acm:AddTagsToCertificate "
            "acm:RemoveTagsFromCertificate",
            r.outputs["arn"],
        ),
    ]


def _certificate_validation(r: Registered) -> Need:
    return [("acm:DescribeCertificate", r.inputs["certificateArn"], {})]


# KMS: internal/service/kms/key.go and replica_key.go (with their waiters and the tags they list and set).
# Every KMS key operation carries kms:MultiRegion, and this program's keys are all multi-Region.
MULTI_REGION = {"kms:MultiRegion": "true"}
# Tags and a key policy sent with CreateKey or ReplicateKey are authorized on the key being made: it
# carries no tag yet, only the request does.
BEING_MADE = {**MULTI_REGION, "aws:ResourceTag/project": None}
KEY_READS = "kms:DescribeKey kms:GetKeyPolicy kms:GetKeyRotationStatus kms:ListResourceTags"
# Update: the description, the policy, enabling a key found disabled (is_enabled/enabled default to
# true) and the tags. DisableKey and DisableKeyRotation are never called: the program sets neither.
KEY_UPDATES = "kms:UpdateKeyDescription kms:PutKeyPolicy kms:EnableKey kms:TagResource kms:UntagResource"
# Creating the account's first multi-Region key makes KMS create its service-linked role.
MULTI_REGION_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/mrk.kms.amazonaws.com/"
    "AWSServiceRoleForKeyManagementServiceMultiRegionKeys"
)


def _kms_calls(actions: str, resource: str) -> Need:
    return [(action, resource, MULTI_REGION) for action in actions.split()]


def _kms_key(r: Registered) -> Need:
    """aws_kms_key with multi_region, a policy, rotation on and tags: CreateKey (policy and tags in the
    request), EnableKeyRotation, the waiters' reads; ScheduleKeyDeletion and DescribeKey on delete."""
    arn = r.outputs["arn"]
    return [
        ("kms:CreateKey", "*", MULTI_REGION),
        ("kms:PutKeyPolicy", arn, BEING_MADE),
        ("kms:TagResource", arn, BEING_MADE),
        ("iam:CreateServiceLinkedRole", MULTI_REGION_ROLE, {"iam:AWSServiceName": "mrk.kms.amazonaws.com"}),
        *_kms_calls(f"kms:EnableKeyRotation {KEY_READS} {KEY_UPDATES} kms:ScheduleKeyDeletion", arn),
    ]


def _kms_replica_key(r: Registered) -> Need:
    """aws_kms_replica_key: ReplicateKey is called in the primary key's region on the primary key; the
    replica is a new key in its own region (CreateKey, with its tags); then the waiters' reads, the same
    updates as a key, and ScheduleKeyDeletion on delete."""
    arn = r.outputs["arn"]
    return [
        ("kms:ReplicateKey", r.inputs["primaryKeyArn"], {**MULTI_REGION, "kms:ReplicaRegion": r.region}),
        ("kms:CreateKey", "*", MULTI_REGION),
        ("kms:TagResource", arn, BEING_MADE),
        *_kms_calls(f"{KEY_READS} {KEY_UPDATES} kms:ScheduleKeyDeletion", arn),
    ]


NEEDS: dict[str, Callable[[Registered], Need]] = {
    "aws:dsql/cluster:Cluster": _cluster,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:lambda/function:Function": _function,
    "aws:lambda/layerVersion:LayerVersion": _layer,
    "aws:lambda/permission:Permission": _permission,
    "aws:lambda/alias:Alias": _alias,
    "aws:apigateway/restApi:RestApi": _rest_api,
    "aws:apigateway/deployment:Deployment": _deployment,
    "aws:apigateway/stage:Stage": _stage,
    "aws:apigateway/methodSettings:MethodSettings": _method_settings,
    "aws:apigateway/account:Account": _account,
    "aws:apigateway/domainName:DomainName": _domain_name,
    "aws:apigateway/basePathMapping:BasePathMapping": _base_path_mapping,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:sns/topic:Topic": _topic,
    "aws:sns/topicSubscription:TopicSubscription": _subscription,
    "aws:route53/healthCheck:HealthCheck": _health_check,
    "aws:route53/record:Record": _record,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:acm/certificateValidation:CertificateValidation": _certificate_validation,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/replicaKey:ReplicaKey": _kms_replica_key,
}
# Added by the parts that own these resources, each as its own statement (bootstrap/policies/deployer-*.json).
OWNED_ELSEWHERE = {
    "aws:cognito/userPool:UserPool",
    "aws:cognito/userPoolClient:UserPoolClient",
    "aws:cognito/userGroup:UserGroup",
    "aws:cloudfront/distribution:Distribution",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:scheduler/schedule:Schedule",
    "aws:sfn/stateMachine:StateMachine",
    "aws:wafv2/webAcl:WebAcl",
    "aws:secretsmanager/secret:Secret",  # the drill user's password (authReplica): tests/test_deployer_policy_ops.py
    # the web client and managed login: tests/test_deployer_policy_web.py
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketObjectv2:BucketObjectv2",
    "aws:cloudfront/originAccessControl:OriginAccessControl",
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy",
    "aws:cognito/userPoolDomain:UserPoolDomain",
    "aws:cognito/managedLoginBranding:ManagedLoginBranding",
}
NOT_AWS_RESOURCES = ("pulumi:providers:", "pulumi-python:dynamic/", "command:", "dsql-users-api:")


@pytest.fixture(scope="module")
def program() -> list[Registered]:
    """Every resource of the program with every optional part on (custom domain, alarm e-mail, the
    Cognito replica and its KMS keys)."""
    run = run_program(
        {
            "domainName": "api.example.com",
            "hostedZoneId": "Z0123456789ABCDEFGHIJ",
            "alarmEmail": "ops@example.com",
            "authReplica": True,
        }
    )
    return run.resources


def test_every_aws_resource_type_of_the_program_is_covered_here_or_by_its_owner(program) -> None:
    types = {r.typ for r in program if not r.typ.startswith(NOT_AWS_RESOURCES)}
    assert types - set(NEEDS) - OWNED_ELSEWHERE == set()
    assert {"aws:dsql/cluster:Cluster", "aws:lambda/function:Function"} <= types  # the run is real


def test_the_aws_provider_may_do_everything_it_does_for_the_programs_resources(program) -> None:
    denied = [
        (r.typ, r.name, action, resource)
        for r in program
        if r.typ in NEEDS
        for action, resource, extra in NEEDS[r.typ](r)
        if not allows(POLICY, action, resource, {**CONTEXT, **extra})
    ]
    assert denied == []


def test_the_kms_actions_granted_are_exactly_those_the_provider_calls(program) -> None:
    """No KMS action beyond the keys' lifecycle: no grants, no use of a key, no disabling."""
    called = {
        action
        for r in program
        if r.typ.startswith("aws:kms/")
        for action, _, _ in NEEDS[r.typ](r)
        if action.startswith("kms:")
    }
    granted = {
        action
        for statement in POLICY["Statement"]
        if statement["Effect"] == "Allow"
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action.startswith("kms:")
    }
    assert {"kms:CreateKey", "kms:ReplicateKey"} <= called  # the program has the key and its replica
    assert granted == called


def test_roles_can_be_passed_only_to_the_services_that_use_them(program) -> None:
    role = next(r for r in program if r.typ == "aws:iam/role:Role" and _trusted_service(r))
    for service in ("ec2.amazonaws.com", "lambda.amazonaws.com"):
        allowed = allows(
            POLICY, "iam:PassRole", role.outputs["arn"], {**CONTEXT, "iam:PassedToService": service}
        )
        assert allowed is (service == "lambda.amazonaws.com")
    admin = f"arn:aws:iam::{ACCOUNT}:policy/AdministratorAccess"
    attach = {**CONTEXT, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
    assert not allows(POLICY, "iam:AttachRolePolicy", role.outputs["arn"], attach), admin


def test_the_previewer_reads_everything_the_provider_reads_and_nothing_else(program) -> None:
    """bootstrap/policies/previewer.json: every read (Get/Describe/List, API Gateway GET) the AWS provider
    makes for the program's resources, so `pulumi preview --refresh` works with the previewer role."""
    previewer = load_policy(POLICY_DIR / "previewer.json")
    reads = [
        (r.typ, action, resource)
        for r in program
        if r.typ in NEEDS
        for action, resource, extra in NEEDS[r.typ](r)
        if action.split(":")[1].startswith(("Get", "Describe", "List")) or action == "apigateway:GET"
    ]
    assert len(reads) > 50
    assert [
        read for read in reads if not allows(previewer, read[1], read[2], {"aws:PrincipalAccount": ACCOUNT})
    ] == []
    assert not allows(
        previewer, "dsql:DbConnectAdmin", f"arn:aws:dsql:us-east-1:{ACCOUNT}:cluster/x", CONTEXT
    )
