"""The deployer policies (bootstrap/policies/deployer-web.json) cover what the web client and managed login declare: for each bucket part,
object, origin access control, response headers policy, user pool domain and managed login style of
the program (with its own distribution, and with a custom domain on the cdn distribution), the API
actions terraform-provider-aws calls on it (internal/service/s3, cloudfront, cognitoidp), on the ARN
the resource gets, and nothing on another project's bucket."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.iam_policy import allows, deployer_context, deployer_policy
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ACCOUNT, ProgramRun, Registered

POLICY = deployer_policy()
CONTEXT = deployer_context(ACCOUNT)
DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}

Need = list[tuple[str, str]]


def _each(actions: str, resource: str) -> Need:
    return [(action, resource) for action in actions.split()]


def _bucket_arn(r: Registered) -> str:
    return f"arn:aws:s3:::{r.inputs['bucket']}"


def _bucket(r: Registered) -> Need:
    arn = r.outputs["arn"]
    return _each(
        # create, read (every sub-configuration the provider reads back), tags, force_destroy, delete
        "s3:CreateBucket s3:ListBucket s3:GetBucketPolicy s3:GetBucketAcl s3:GetBucketCORS "
        "s3:GetBucketWebsite s3:GetBucketVersioning s3:GetAccelerateConfiguration s3:GetBucketRequestPayment "
        "s3:GetBucketLogging s3:GetLifecycleConfiguration s3:GetReplicationConfiguration "
        "s3:GetEncryptionConfiguration s3:GetBucketObjectLockConfiguration s3:GetBucketTagging "
        "s3:PutBucketTagging s3:ListBucketVersions s3:DeleteBucket",
        arn,
    ) + _each("s3:DeleteObject s3:DeleteObjectVersion", f"{arn}/any-key")


NEEDS: dict[str, Callable[[Registered], Need]] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": lambda r: _each(
        "s3:GetBucketPublicAccessBlock s3:PutBucketPublicAccessBlock", _bucket_arn(r)
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": lambda r: _each(
        "s3:GetBucketOwnershipControls s3:PutBucketOwnershipControls", _bucket_arn(r)
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": lambda r: _each(
        "s3:GetEncryptionConfiguration s3:PutEncryptionConfiguration", _bucket_arn(r)
    ),
    "aws:s3/bucketVersioning:BucketVersioning": lambda r: _each(
        "s3:GetBucketVersioning s3:PutBucketVersioning", _bucket_arn(r)
    ),
    "aws:s3/bucketPolicy:BucketPolicy": lambda r: _each(
        "s3:GetBucketPolicy s3:PutBucketPolicy s3:DeleteBucketPolicy", _bucket_arn(r)
    ),
    "aws:s3/bucketObjectv2:BucketObjectv2": lambda r: (
        _each(
            "s3:PutObject s3:GetObject s3:GetObjectTagging s3:PutObjectTagging s3:DeleteObject "
            "s3:DeleteObjectVersion",
            f"{_bucket_arn(r)}/{r.inputs['key']}",
        )
        + _each("s3:ListBucketVersions", _bucket_arn(r))
    ),
    "aws:cloudfront/originAccessControl:OriginAccessControl": lambda r: _each(
        "cloudfront:CreateOriginAccessControl cloudfront:GetOriginAccessControl "
        "cloudfront:UpdateOriginAccessControl cloudfront:DeleteOriginAccessControl",
        f"arn:aws:cloudfront::{ACCOUNT}:origin-access-control/{r.outputs['id']}",
    ),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": lambda r: _each(
        "cloudfront:CreateResponseHeadersPolicy cloudfront:GetResponseHeadersPolicy "
        "cloudfront:UpdateResponseHeadersPolicy cloudfront:DeleteResponseHeadersPolicy",
        f"arn:aws:cloudfront::{ACCOUNT}:response-headers-policy/{r.outputs['id']}",
    ),
    "aws:cognito/userPoolDomain:UserPoolDomain": lambda r: [
        *_each(
            "cognito-idp:CreateUserPoolDomain cognito-idp:UpdateUserPoolDomain cognito-idp:DeleteUserPoolDomain",
            _pool_arn(r),
        ),
        ("cognito-idp:DescribeUserPoolDomain", "*"),  # no resource type: it names the domain only
        # A custom domain: Cognito updates its own CloudFront distribution with the caller's rights.
        *([("cloudfront:UpdateDistribution", "*")] if r.inputs.get("certificateArn") else []),
    ],
    "aws:cognito/managedLoginBranding:ManagedLoginBranding": lambda r: _each(
        "cognito-idp:CreateManagedLoginBranding cognito-idp:DescribeManagedLoginBranding "
        "cognito-idp:DescribeManagedLoginBrandingByClient cognito-idp:UpdateManagedLoginBranding "
        "cognito-idp:DeleteManagedLoginBranding",
        _pool_arn(r),
    ),
}


def _pool_arn(r: Registered) -> str:
    pool_id = r.inputs["userPoolId"]
    return f"arn:aws:cognito-idp:{pool_id.split('_')[0]}:{ACCOUNT}:userpool/{pool_id}"


@pytest.fixture(scope="module", params=[DOMAIN, {**DOMAIN, "cdn": True}], ids=["app-subdomain", "cdn"])
def program(request: pytest.FixtureRequest) -> ProgramRun:
    return run_ops_program(request.param)


def test_every_web_and_managed_login_type_is_present(program: ProgramRun) -> None:
    assert set(NEEDS) <= {r.typ for r in program.resources}


def test_the_aws_provider_may_do_what_it_does_for_them(program: ProgramRun) -> None:
    denied = [
        (r.typ, r.name, action, resource)
        for r in program.resources
        if r.typ in NEEDS
        for action, resource in NEEDS[r.typ](r)
        if not allows(POLICY, action, resource, {**CONTEXT, **VIA.get(action, {})})
    ]
    assert denied == []


# Cognito updates the distribution of a custom login domain on the caller's behalf; only that way.
VIA = {"cloudfront:UpdateDistribution": {"aws:CalledVia": ["cognito-idp.amazonaws.com"]}}


def test_no_distribution_may_be_updated_directly_by_the_web_statements() -> None:
    other = "arn:aws:cloudfront::123456789012:distribution/EOTHERPROJECT"
    assert not allows(POLICY, "cloudfront:UpdateDistribution", other, {"aws:PrincipalAccount": ACCOUNT})


def test_the_deployer_touches_only_this_projects_buckets(program: ProgramRun) -> None:
    bucket = program.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["bucketPrefix"] == "dsql-users-api-prod-web-"
    for action in ("s3:PutBucketPolicy", "s3:DeleteBucket", "s3:PutObject"):
        assert not allows(POLICY, action, "arn:aws:s3:::someone-elses-bucket", CONTEXT)
        assert not allows(POLICY, action, "arn:aws:s3:::someone-elses-bucket/index.html", CONTEXT)
    other_pool = "arn:aws:cognito-idp:us-east-1:999999999999:userpool/us-east-1_OTHER"
    assert not allows(POLICY, "cognito-idp:CreateUserPoolDomain", other_pool, CONTEXT)
