"""Every physical name the program gives AWS fits that service's limit, for any stack and regions.

A name too long for its service fails `pulumi up` half way (EventBridge refuses a rule name over 64
characters after the alarms exist). The program runs under mocks with every option on, the longest
stack name Pulumi accepts (100 characters) and the longest region names botocore knows; each resource's
name (the one given, or for autonamed resources Pulumi's logical name plus its 8-character random
suffix) is checked against the ``max`` of that name's shape in botocore's service model.
"""

from __future__ import annotations

from functools import cache

import botocore.session
import pytest

from components.config import ConfigError, check_stack_name, known_regions
from components.naming import fitted
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import Registered
from tests.test_graph_snapshot import EVERYTHING

LONGEST_STACK = "s" * 100  # Pulumi's stack-name limit
AUTONAME_SUFFIX = 8  # "-" and 7 hex characters

# Resource type -> (input holding the name, or None when Pulumi autonames it), botocore service,
# operation and member whose shape's ``max`` is the limit.
NAMES: dict[str, tuple[str | None, str, str, str]] = {
    "aws:iam/role:Role": ("name", "iam", "CreateRole", "RoleName"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "iam", "PutRolePolicy", "PolicyName"),
    "aws:lambda/function:Function": ("name", "lambda", "CreateFunction", "FunctionName"),
    "aws:lambda/alias:Alias": ("name", "lambda", "CreateAlias", "Name"),
    "aws:lambda/layerVersion:LayerVersion": ("layerName", "lambda", "PublishLayerVersion", "LayerName"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "logs", "CreateLogGroup", "logGroupName"),
    "aws:cloudwatch/eventRule:EventRule": ("name", "events", "PutRule", "Name"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", "cloudwatch", "PutMetricAlarm", "AlarmName"),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", "cloudwatch", "PutDashboard", "DashboardName"),
    "aws:sfn/stateMachine:StateMachine": ("name", "stepfunctions", "CreateStateMachine", "name"),
    "aws:scheduler/schedule:Schedule": ("name", "scheduler", "CreateSchedule", "Name"),
    "aws:sns/topic:Topic": ("name", "sns", "CreateTopic", "Name"),
    "aws:cognito/userPool:UserPool": ("name", "cognito-idp", "CreateUserPool", "PoolName"),
    "aws:cognito/userPoolClient:UserPoolClient": (
        "name",
        "cognito-idp",
        "CreateUserPoolClient",
        "ClientName",
    ),
    "aws:cognito/userGroup:UserGroup": ("name", "cognito-idp", "CreateGroup", "GroupName"),
    "aws:wafv2/webAcl:WebAcl": ("name", "wafv2", "CreateWebACL", "Name"),
    "aws:cloudfront/originAccessControl:OriginAccessControl": (
        "name",
        "cloudfront",
        "CreateOriginAccessControl",
        "OriginAccessControlConfig.Name",
    ),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": (
        "name",
        "cloudfront",
        "CreateResponseHeadersPolicy",
        "ResponseHeadersPolicyConfig.Name",
    ),
    "aws:secretsmanager/secret:Secret": ("name", "secretsmanager", "CreateSecret", "Name"),
    # S3 adds 26 characters to a bucket prefix; Terraform's bucket_prefix allows 37 before them.
    "aws:s3/bucket:Bucket": ("bucketPrefix", "s3", "CreateBucket", "Bucket"),
}
# Where the model's max is not the name's own limit, the API reference's is used:
DOCUMENTED = {
    ("sns", "CreateTopic", "Name"): 256,  # "up to 256 characters"; the model gives no max
    ("cloudwatch", "PutDashboard", "DashboardName"): 255,  # "up to 255 characters"; no max in the model
    # The model's 140 counts the full ARN: "If you specify only the function name, it is limited to
    # 64 characters in length" (CreateFunction, FunctionName).
    ("lambda", "CreateFunction", "FunctionName"): 64,
    # The model's 2048 is an ARN; its name part is {1,140}.
    ("lambda", "PublishLayerVersion", "LayerName"): 140,
    # CloudFront's API reference; the model gives no max.
    ("cloudfront", "CreateOriginAccessControl", "OriginAccessControlConfig.Name"): 64,
    ("cloudfront", "CreateResponseHeadersPolicy", "ResponseHeadersPolicyConfig.Name"): 128,
    # A bucket prefix: S3's 63 characters less the 26 random ones Terraform adds (bucket_prefix).
    ("s3", "CreateBucket", "Bucket"): 37,
}


@cache
def limit(service: str, operation: str, member: str) -> int:
    if (service, operation, member) in DOCUMENTED:
        return DOCUMENTED[(service, operation, member)]
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape.members[member]
    maximum = shape.metadata.get("max")
    assert maximum, f"{service} {operation}.{member} has no max in botocore's model"
    return int(maximum)


def physical_name(resource: Registered) -> tuple[str, bool]:
    key = NAMES[resource.typ][0]
    given = resource.inputs.get(key) if key else None
    if isinstance(given, str) and given:
        return given, False
    return resource.name, True  # Pulumi autonames it: logical name plus a random suffix


def longest_regions() -> list[str]:
    return sorted(known_regions(), key=lambda region: (-len(region), region))[:3]


@pytest.fixture(scope="module")
def longest_names_run() -> list[Registered]:
    primary, secondary, witness = longest_regions()
    regions = {"primaryRegion": primary, "secondaryRegion": secondary, "witnessRegion": witness}
    # SnapStart is not offered everywhere; the longest names do not depend on it.
    run = run_ops_program(
        {**EVERYTHING, **regions, "lambdaSnapStart": False, "authReplica": True}, stack_name=LONGEST_STACK
    )
    return run.resources


def test_every_named_resource_fits_its_services_limit(longest_names_run: list[Registered]) -> None:
    checked = 0
    too_long = []
    for resource in longest_names_run:
        if resource.typ not in NAMES:
            continue
        name, autonamed = physical_name(resource)
        length = len(name) + (AUTONAME_SUFFIX if autonamed else 0)
        _, service, operation, member = NAMES[resource.typ]
        maximum = limit(service, operation, member)
        checked += 1
        if length > maximum:
            too_long.append(f"{resource.typ} {name!r}: {length} > {maximum} ({service} {operation}.{member})")
    assert not too_long, "\n".join(too_long)
    assert checked > 40


def test_every_resource_type_the_program_names_is_checked(longest_names_run: list[Registered]) -> None:
    """A new resource type with a name must join NAMES, so its limit is checked too."""
    named = {
        r.typ for r in longest_names_run if r.typ.startswith("aws:") and isinstance(r.inputs.get("name"), str)
    }
    assert named - set(NAMES) <= {
        "aws:apigateway/restApi:RestApi",  # API Gateway sets no length limit on an API's name
        "aws:route53/record:Record",  # a DNS name, from the configured domain (checked in config)
    }, named - set(NAMES)


def test_the_longest_names_are_fitted_with_a_stable_hash_and_short_names_stay_as_they_are() -> None:
    assert fitted("dsql-users-api-prod-incidents-us-east-1", 64) == "dsql-users-api-prod-incidents-us-east-1"
    long = "dsql-users-api-" + "s" * 100 + "-users-api-ops-incidents-us-isof-south-1"
    once = fitted(long, 64)
    assert len(once) == 64 and once == fitted(long, 64)
    assert once.startswith("dsql-users-api-sss")
    assert fitted(long.replace("south", "north"), 64) != once  # names that differ stay different


def test_a_stack_name_that_cannot_name_a_lambda_function_is_refused_up_front() -> None:
    check_stack_name("prod-eu_2")
    with pytest.raises(ConfigError, match=r"stack name 'prod\.eu' cannot name .* `pulumi stack rename"):
        check_stack_name("prod.eu")
