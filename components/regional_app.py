"""RegionalApp: one region's users API, a least-privilege Lambda behind a regional REST API.

Created once per application region with that region's provider (``ResourceOptions(provider=...)``);
every child is created with ``parent=self`` and so inherits it. Per region:

- the function's IAM role, whose only permissions are writing to its own log group and
  ``dsql:DbConnect`` on its own region's cluster (never ``DbConnectAdmin``, never ``*`` for dsql); with
  tracing on, the two X-Ray write actions, which IAM only grants on ``*`` (X-Ray has no resource ARNs);
- the mapping of that role to the database role ``users_api`` (``AWS IAM GRANT``), made after the
  migration that creates the role (``depends_on=[schema]``);
- the Lambda function (code from ``handler/``, dependencies in a layer built for its architecture and
  Python version), which depends on the mapping, so it cannot go live before the schema and its
  database login exist; explicit log group with retention;
- the REST API (REGIONAL endpoint) whose body is ``handler/openapi.yaml`` with Lambda proxy
  integrations and request validation, a deployment redone whenever that body changes, a stage with
  throttling, JSON access logs and optional X-Ray, and an invoke permission scoped to this API.

The ordering needs no cycle: the role comes first, the grant needs only the role's ARN, the function
needs the role and waits for the grant, the API body needs the function's invoke ARN. Nothing is
created inside ``.apply()``.

API Gateway writes access logs through an account-level, per-region setting (the CloudWatch role of
``aws.apigateway.Account``); without it a stage with access logs fails to create. The component manages
it by default (stack config ``manageApiGatewayAccount``) so a fresh account needs no manual step. There
is one such setting per account and region, shared by every API there, so the setting, its role and the
role's policy attachment are ``retain_on_delete``: the AWS provider resets the setting when the
resource is deleted, and a destroy of this stack must never break the logging of other APIs. Turn it
off in every stack but one per account when the setting is managed elsewhere (the last writer wins).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import Output, ResourceOptions

from components.config import PROJECT, StackConfig
from components.dynamic.iam_grant import IamRoleGrant
from components.dynamic.published_version import PublishedVersion
from components.lambda_artifact import HANDLER_ENTRY_POINT, LambdaArtifacts
from components.naming import LAMBDA_FUNCTION_NAME_MAX, stack_name
from components.openapi import OPENAPI_DOCUMENT, api_gateway_body, load_document, render

DB_ROLE = "users_api"  # created by migrations/0003_create_app_role.sql
SERVICE_NAME = "users-api"
LIVE_ALIAS = "live"  # with SnapStart: the alias API Gateway invokes
# The AWS managed policy API Gateway's account-level logging role needs. Its actions are on "*" by
# design: the setting serves every API of the account in the region, not just this one.
APIGATEWAY_LOGS_POLICY = "policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
# One JSON object per request; every value is a string so that an empty one stays valid JSON.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "requestTime": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "path": "$context.path",
        "protocol": "$context.protocol",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationStatus": "$context.integration.status",
        "integrationLatency": "$context.integration.latency",
        "integrationRequestId": "$context.integration.requestId",
        "errorMessage": "$context.error.message",
        "errorType": "$context.error.responseType",
        "xrayTraceId": "$context.xrayTraceId",
    },
    separators=(",", ":"),
)
LAMBDA_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
APIGATEWAY_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def runtime_policy(log_group_arn: str, cluster_arn: str, xray_tracing: bool) -> dict[str, Any]:
    """The function role's only permissions, as a policy document."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            # The log group exists before the function (no logs:CreateLogGroup); streams live below it.
            "Resource": f"{log_group_arn.removesuffix(':*')}:*",
        },
        {
            "Sid": "ConnectAsApplicationRole",
            "Effect": "Allow",
            "Action": "dsql:DbConnect",
            "Resource": cluster_arn,
        },
    ]
    if xray_tracing:
        statements.append(
            {
                "Sid": "WriteTraces",
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*",  # X-Ray has no resource-level permissions for these actions
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def function_environment(
    dsql_endpoint: str,
    cors_allow_origins: Sequence[str],
    log_level: str = "INFO",
    auth_mode: str = "cognito",
    auth_client_ids: Sequence[str] = (),
) -> dict[str, str]:
    """The function's environment (Lambda itself sets AWS_REGION, a reserved name).

    AUTH_MODE tells the handler whether API Gateway's authorizer put token claims in every request
    (cognito) or the API is open (none). AUTH_CLIENT_IDS are the app clients whose ID tokens it accepts
    (the ``aud`` claim): the authorizer itself accepts a token of any client of the pool.
    """
    environment = {
        "DSQL_ENDPOINT": dsql_endpoint,
        "DB_USER": DB_ROLE,
        "CORS_ALLOW_ORIGINS": ",".join(cors_allow_origins),
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "LOG_LEVEL": log_level,
        "AUTH_MODE": auth_mode,
    }
    if auth_client_ids:
        environment["AUTH_CLIENT_IDS"] = ",".join(auth_client_ids)
    return environment


@dataclass(frozen=True)
class RegionalAppArgs:
    """Inputs of RegionalApp; plain typed values (no pulumi.Config)."""

    region: str
    """AWS region of this instance; must be the region of the provider passed in opts."""
    settings: StackConfig
    """The validated stack config: runtime, architecture, memory, timeout, logs, stage, throttling,
    CORS, tracing."""
    cluster_arn: pulumi.Input[str]
    """ARN of this region's DSQL cluster: the only resource of dsql:DbConnect."""
    cluster_endpoint: pulumi.Input[str]
    """This region's cluster endpoint, ``<id>.dsql.<region>.on.aws``."""
    schema: pulumi.Resource
    """The migration resource: the database role exists once it is done."""
    artifacts: LambdaArtifacts
    """The handler code and the dependency layer zip (one build shared by every region)."""
    user_pool_arn: pulumi.Input[str] | None = None
    """ARN of the stack's one Cognito user pool (any region): every API method but /health and the
    preflights requires its tokens. Required when ``settings.auth_mode`` is cognito; None only with
    ``none``."""
    user_pool_client_ids: Sequence[pulumi.Input[str]] = ()
    """The pool's app clients whose ID tokens the function accepts (checked against ``aud``)."""
    function_name: str | None = None
    """Lambda function name; default ``<project>-<stack>-<region>`` (also names its log group)."""
    manage_api_gateway_account: bool = True
    """Set this region's account-level API Gateway CloudWatch role (needed for access logs)."""
    log_level: str = "INFO"
    """LOG_LEVEL of the function's structured logger."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for every taggable child."""


@dataclass(frozen=True)
class _Identity:
    """What the function runs as: its log group, role, the role's policy and its database login."""

    logs: aws.cloudwatch.LogGroup
    role: aws.iam.Role
    policy: aws.iam.RolePolicy
    grant: IamRoleGrant


@dataclass(frozen=True)
class _Target:
    """What API Gateway invokes: the function, or with SnapStart its alias ``live``."""

    function: aws.lambda_.Function
    live: aws.lambda_.Alias | None

    @property
    def invoke_arn(self) -> pulumi.Output[str]:
        return self.live.invoke_arn if self.live else self.function.invoke_arn


def check_args(args: RegionalAppArgs) -> None:
    """Refuse arguments that cannot make a working region, naming the fix."""
    settings = args.settings
    if settings.lambda_architecture != args.artifacts.architecture:
        raise ValueError(
            f"the layer was built for {args.artifacts.architecture} but the function runs on "
            f"{settings.lambda_architecture}; build the artifacts from the same settings"
        )
    if settings.lambda_runtime != args.artifacts.runtime:
        raise ValueError(
            f"the layer was built for {args.artifacts.runtime} but the function runs "
            f"{settings.lambda_runtime}; build the artifacts from the same settings"
        )
    if settings.auth_mode == "cognito" and args.user_pool_arn is None:
        raise ValueError(
            "authMode is cognito but RegionalApp got no user_pool_arn; pass the Identity component's "
            "user_pool_arn (or set authMode to none to open the API)"
        )
    if settings.auth_mode == "none" and args.user_pool_arn is not None:
        raise ValueError(
            "authMode is none but RegionalApp got a user_pool_arn; the API would be open while a pool "
            "exists for it: pass user_pool_arn=None or set authMode to cognito"
        )


class RegionalApp(pulumi.ComponentResource):
    """One region's users API: IAM role + DB role mapping, Lambda, REST API, stage."""

    invoke_url: pulumi.Output[str]
    """``https://<api id>.execute-api.<region>.amazonaws.com/<stage>``."""
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    api_id: pulumi.Output[str]
    api_execution_arn: pulumi.Output[str]
    stage_name: pulumi.Output[str]
    function_log_group_name: pulumi.Output[str]
    access_log_group_name: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    region: str

    def __init__(self, name: str, args: RegionalAppArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:app:RegionalApp", name, None, opts)
        check_args(args)
        self.region = args.region
        tags = {**args.tags, "region": args.region}
        function_name = args.function_name or stack_name(args.region, LAMBDA_FUNCTION_NAME_MAX)

        identity = self._identity(name, args, function_name, tags)
        target = self._function(name, args, function_name, identity, tags)
        api, body = self._api(name, args, function_name, target, tags)
        stage, access_logs = self._stage(name, args, function_name, api, body, tags)
        self._invoke_permission(name, target, api)

        self.invoke_url = stage.invoke_url
        self.function_name = target.function.name
        self.function_arn = target.function.arn
        self.api_id = api.id
        self.api_execution_arn = api.execution_arn
        self.stage_name = stage.stage_name
        self.function_log_group_name = identity.logs.name
        self.access_log_group_name = access_logs.name
        self.role_arn = identity.role.arn
        self.register_outputs(
            {
                "invoke_url": self.invoke_url,
                "function_name": self.function_name,
                "function_arn": self.function_arn,
                "api_id": self.api_id,
                "api_execution_arn": self.api_execution_arn,
                "stage_name": self.stage_name,
                "function_log_group_name": self.function_log_group_name,
                "access_log_group_name": self.access_log_group_name,
                "role_arn": self.role_arn,
                "region": self.region,
            }
        )

    def _identity(
        self, name: str, args: RegionalAppArgs, function_name: str, tags: Mapping[str, str]
    ) -> _Identity:
        """The log group, the role (own logs, dsql:DbConnect on its cluster) and its database login."""
        child = ResourceOptions(parent=self)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-function-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-function-role",
            assume_role_policy=LAMBDA_TRUST_POLICY,
            description=f"{function_name}: own logs and dsql:DbConnect on its region's cluster only",
            tags=tags,
            opts=child,
        )
        xray = args.settings.xray_tracing
        policy = aws.iam.RolePolicy(
            f"{name}-function-policy",
            role=role.id,
            policy=Output.all(logs.arn, args.cluster_arn).apply(
                lambda arns: json.dumps(runtime_policy(arns[0], arns[1], xray))
            ),
            opts=child,
        )
        grant = IamRoleGrant(
            f"{name}-db-role-grant",
            role_arn=role.arn,
            db_role=DB_ROLE,
            endpoint=args.cluster_endpoint,
            region=args.region,
            opts=ResourceOptions(parent=self, depends_on=[args.schema]),
        )
        return _Identity(logs, role, policy, grant)

    def _function(
        self,
        name: str,
        args: RegionalAppArgs,
        function_name: str,
        identity: _Identity,
        tags: Mapping[str, str],
    ) -> _Target:
        """The dependency layer, the function and, with SnapStart, the alias API Gateway invokes."""
        settings = args.settings
        layer = aws.lambda_.LayerVersion(
            f"{name}-dependencies",
            layer_name=f"{function_name}-dependencies",
            code=args.artifacts.layer_archive,
            source_code_hash=args.artifacts.layer_hash,
            compatible_runtimes=[settings.lambda_runtime],
            compatible_architectures=[settings.lambda_architecture],
            description=args.artifacts.layer_description,
            opts=ResourceOptions(parent=self),
        )
        function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            role=identity.role.arn,
            runtime=settings.lambda_runtime,
            architectures=[settings.lambda_architecture],
            handler=HANDLER_ENTRY_POINT,
            code=args.artifacts.code,
            source_code_hash=args.artifacts.code_hash,
            layers=[layer.arn],
            memory_size=settings.lambda_memory_mb,
            timeout=settings.lambda_timeout_seconds,
            environment={
                "variables": Output.all(args.cluster_endpoint, *args.user_pool_client_ids).apply(
                    lambda values: function_environment(
                        values[0], settings.cors_allow_origins, args.log_level, settings.auth_mode, values[1:]
                    )
                )
            },
            tracing_config={"mode": "Active" if settings.xray_tracing else "PassThrough"},
            # SnapStart snapshots published versions only: each change publishes one.
            publish=settings.lambda_snap_start,
            snap_start={"apply_on": "PublishedVersions"} if settings.lambda_snap_start else None,
            tags=tags,
            # Not invocable before the schema, the database role and its IAM mapping exist, nor before
            # it may write its logs and connect.
            opts=ResourceOptions(parent=self, depends_on=[identity.grant, identity.policy, identity.logs]),
        )
        if not settings.lambda_snap_start:
            return _Target(function, None)
        # The AWS provider's create returns before the version it published is Active (SnapStart is
        # still taking the snapshot); the alias waits for it, and everything that invokes the function
        # (the API body, its deployment and stage, the permission, the smoke checks) follows the alias.
        ready = PublishedVersion(
            f"{name}-published-version",
            function_name=function.name,
            version=function.version,
            region=args.region,
            opts=ResourceOptions(parent=self),
        )
        # With SnapStart, API Gateway invokes the alias of the latest published version ($LATEST would
        # never use the snapshot); its integration URI and the invoke permission both name the alias.
        live = aws.lambda_.Alias(
            f"{name}-live",
            name=LIVE_ALIAS,
            description="The published version API Gateway invokes (SnapStart serves versions only)",
            function_name=function.name,
            function_version=ready.active_version,
            opts=ResourceOptions(parent=self),
        )
        return _Target(function, live)

    def _api(
        self, name: str, args: RegionalAppArgs, function_name: str, target: _Target, tags: Mapping[str, str]
    ) -> tuple[aws.apigateway.RestApi, pulumi.Output[str]]:
        """The REST API whose body is the OpenAPI document with its integrations and authorizer."""
        document = load_document(OPENAPI_DOCUMENT)
        origins = args.settings.cors_allow_origins
        # The authorizer (the user pool's ARN) and the CORS headers of API Gateway's own answers are
        # part of the body, so changing either redeploys the API.
        body = Output.all(target.invoke_arn, args.user_pool_arn).apply(
            lambda values: render(
                api_gateway_body(document, values[0], user_pool_arn=values[1], cors_allow_origins=origins)
            )
        )
        api = aws.apigateway.RestApi(
            f"{name}-api",
            name=function_name,
            description=f"Users API ({args.region})",
            body=body,
            endpoint_configuration={"types": "REGIONAL"},
            # The default execute-api endpoint otherwise still accepts TLS 1.0 clients.
            security_policy="TLS_1_2",
            tags=tags,
            opts=ResourceOptions(parent=self),
        )
        return api, body

    def _stage(
        self,
        name: str,
        args: RegionalAppArgs,
        function_name: str,
        api: aws.apigateway.RestApi,
        body: pulumi.Output[str],
        tags: Mapping[str, str],
    ) -> tuple[aws.apigateway.Stage, aws.cloudwatch.LogGroup]:
        """A deployment per body, the stage with access logs and tracing, and its throttling."""
        settings = args.settings
        child = ResourceOptions(parent=self)
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=api.id,
            description="Deployment of the OpenAPI body whose sha256 is in triggers",
            # A new deployment whenever the body (routes, validation, integration target) changes.
            triggers={"body_sha256": body.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())},
            opts=child,
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/aws/apigateway/{function_name}/access",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        stage_depends: list[pulumi.Resource] = []
        if args.manage_api_gateway_account:
            stage_depends.append(self._api_gateway_account(name, args.cluster_arn, tags))
        stage = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=api.id,
            deployment=deployment.id,
            stage_name=settings.stage_name,
            access_log_settings={"destination_arn": access_logs.arn, "format": ACCESS_LOG_FORMAT},
            xray_tracing_enabled=settings.xray_tracing,
            tags=tags,
            opts=ResourceOptions(parent=self, depends_on=stage_depends),
        )
        aws.apigateway.MethodSettings(
            f"{name}-throttling",
            rest_api=api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings={
                "throttling_rate_limit": settings.throttle_rate_limit,
                "throttling_burst_limit": settings.throttle_burst_limit,
                "metrics_enabled": True,
                # Execution logs would go to a log group API Gateway creates without retention; the
                # access log above records every request already.
                "logging_level": "OFF",
            },
            opts=child,
        )
        return stage, access_logs

    def _invoke_permission(self, name: str, target: _Target, api: aws.apigateway.RestApi) -> None:
        """Lets this API, and only it, invoke the function (or its alias)."""
        aws.lambda_.Permission(
            f"{name}-invoke-permission",
            action="lambda:InvokeFunction",
            function=target.function.name,
            qualifier=target.live.name if target.live else None,
            principal="apigateway.amazonaws.com",
            source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=ResourceOptions(parent=self),
        )

    def _api_gateway_account(
        self, name: str, cluster_arn: pulumi.Input[str], tags: Mapping[str, str]
    ) -> aws.apigateway.Account:
        """This region's account-level API Gateway logging role (see the module docstring)."""
        # Shared by every API of the account in this region: never deleted or reset by a destroy.
        child = ResourceOptions(parent=self, retain_on_delete=True)
        role = aws.iam.Role(
            f"{name}-apigateway-logs-role",
            assume_role_policy=APIGATEWAY_TRUST_POLICY,
            description="API Gateway account setting: lets API Gateway write access logs to CloudWatch",
            tags=dict(tags),
            opts=child,
        )
        partition = Output.from_input(cluster_arn).apply(lambda arn: arn.split(":")[1])
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-apigateway-logs-policy",
            role=role.name,
            policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:{APIGATEWAY_LOGS_POLICY}"),
            opts=child,
        )
        return aws.apigateway.Account(
            f"{name}-apigateway-account",
            cloudwatch_role_arn=role.arn,
            opts=ResourceOptions(parent=self, depends_on=[attachment], retain_on_delete=True),
        )
