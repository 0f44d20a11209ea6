"""RegionalApp under Pulumi mocks: per region, providers, least privilege, function settings, API routes,
the invoke permission and the deploy-time ordering (function -> role mapping -> migration)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pytest
from pulumi import ResourceOptions
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from components.config import load_config
from components.identity import Identity, IdentityArgs
from components.lambda_artifact import LambdaArtifacts, LambdaArtifactsArgs
from components.openapi import OpenApiError, api_gateway_body, load_document, render, routes
from components.regional_app import DB_ROLE, RegionalApp, RegionalAppArgs
from scripts.build_artifacts import lock_digest
from tests.pulumi_harness import ACCOUNT, ROOT, ProgramRun, Registered, run_program

REGIONS = ("us-east-1", "us-east-2")  # Pulumi.prod.yaml's application regions
DYNAMIC_GRANT = "pulumi-python:dynamic/dsql:IamRoleGrant"


class _NoSchemaProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:  # never runs under mocks
        return CreateResult("schema", {})


class StandInMigration(Resource, module="dsql", name="StandInMigration"):
    """Stands for engineer B's migration resource: only its identity matters to the ordering."""

    def __init__(self, name: str) -> None:
        super().__init__(_NoSchemaProvider(), name, {})


def program() -> None:
    config = load_config()
    providers = {region: aws.Provider(f"aws-{region}", region=region) for region in config.app_regions}
    artifacts = LambdaArtifacts(
        "lambda",
        LambdaArtifactsArgs(config.lambda_architecture, config.lambda_runtime),
        opts=ResourceOptions(providers=[command.Provider("command")]),
    )
    migration = StandInMigration("schema-migration")
    # One pool, in the primary region, for both regions' authorizers (as __main__.py does).
    identity = (
        Identity(
            "identity",
            IdentityArgs(region=config.primary_region, deletion_protection=config.deletion_protection),
            opts=ResourceOptions(provider=providers[config.primary_region]),
        )
        if config.auth_mode == "cognito"
        else None
    )
    for region in config.app_regions:
        cluster = aws.dsql.Cluster(f"cluster-{region}", opts=ResourceOptions(provider=providers[region]))
        app = RegionalApp(
            f"app-{region}",
            RegionalAppArgs(
                region=region,
                settings=config,
                cluster_arn=cluster.arn,
                cluster_endpoint=cluster.identifier.apply(lambda i, r=region: f"{i}.dsql.{r}.on.aws"),
                schema=migration,
                artifacts=artifacts,
                user_pool_arn=identity.user_pool_arn if identity else None,
                user_pool_client_ids=identity.client_ids if identity else (),
                tags=config.tags,
            ),
            opts=ResourceOptions(provider=providers[region]),
        )
        pulumi.export(f"invoke_url_{region}", app.invoke_url)
        pulumi.export(f"function_name_{region}", app.function_name)
        pulumi.export(f"api_id_{region}", app.api_id)
        pulumi.export(f"stage_name_{region}", app.stage_name)
        pulumi.export(f"role_arn_{region}", app.role_arn)


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_program(program=program)


def _child(run: ProgramRun, region: str, suffix: str) -> Registered:
    return run.named(f"app-{region}-{suffix}")


def _cluster(run: ProgramRun, region: str) -> Registered:
    return run.named(f"cluster-{region}")


def _statements(policy: str) -> list[dict[str, Any]]:
    statements = json.loads(policy)["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("region", REGIONS)
def test_every_regional_resource_uses_its_regions_provider(run: ProgramRun, region: str) -> None:
    children = [r for r in run.resources if r.name.startswith(f"app-{region}-")]
    aws_children = [r for r in children if r.typ.startswith("aws:")]
    assert len(aws_children) >= 14, [r.name for r in aws_children]
    for resource in aws_children:
        assert resource.region == region, f"{resource.name} is bound to {resource.region}, not {region}"
        assert resource.provider and f"aws-{region}" in resource.provider, resource.provider
    # The role mapping is a dynamic resource: its region is an input, checked the same way.
    grant = _child(run, region, "db-role-grant")
    assert grant.typ == DYNAMIC_GRANT
    assert grant.inputs["region"] == region
    assert grant.inputs["endpoint"].endswith(f".dsql.{region}.on.aws")
    assert grant.inputs["endpoint"].startswith(_cluster(run, region).outputs["identifier"])


@pytest.mark.parametrize("region", REGIONS)
def test_function_role_is_least_privilege(run: ProgramRun, region: str) -> None:
    role = _child(run, region, "function-role")
    trust = _statements(role.inputs["assumeRolePolicy"])
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    policy = _child(run, region, "function-policy")
    assert policy.inputs["role"] == role.outputs.get("id", f"{role.name}-id")
    statements = _statements(policy.inputs["policy"])
    assert all(s["Effect"] == "Allow" for s in statements)

    cluster_arn = _cluster(run, region).outputs["arn"]
    dsql = [s for s in statements if any(a.startswith("dsql:") for a in _as_list(s["Action"]))]
    assert len(dsql) == 1
    assert _as_list(dsql[0]["Action"]) == ["dsql:DbConnect"]
    assert _as_list(dsql[0]["Resource"]) == [cluster_arn]
    assert f":dsql:{region}:" in cluster_arn

    every_action = [a for s in statements for a in _as_list(s["Action"])]
    assert "dsql:DbConnectAdmin" not in every_action
    assert not any(a in ("*", "dsql:*", "logs:*") for a in every_action)
    assert "logs:CreateLogGroup" not in every_action  # the log group is created by the stack

    log_group = _child(run, region, "function-logs")
    logs = [s for s in statements if any(a.startswith("logs:") for a in _as_list(s["Action"]))]
    assert sorted(a for s in logs for a in _as_list(s["Action"])) == [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    assert [r for s in logs for r in _as_list(s["Resource"])] == [f"{log_group.outputs['arn']}:*"]
    # Tracing is off in prod's config: no statement on "*" at all.
    assert not [s for s in statements if "*" in _as_list(s["Resource"])]


def test_tracing_adds_only_the_xray_write_actions_on_star() -> None:
    traced = run_program({"xrayTracing": True}, program=program)
    for region in REGIONS:
        statements = _statements(_child(traced, region, "function-policy").inputs["policy"])
        on_star = [s for s in statements if "*" in _as_list(s["Resource"])]
        assert len(on_star) == 1
        assert sorted(_as_list(on_star[0]["Action"])) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
        function = _child(traced, region, "function")
        assert function.inputs["tracingConfig"] == {"mode": "Active"}
        assert _child(traced, region, "stage").inputs["xrayTracingEnabled"] is True


@pytest.mark.parametrize("region", REGIONS)
def test_function_settings_and_environment(run: ProgramRun, region: str) -> None:
    config = load_config_for_test()
    function = _child(run, region, "function")
    assert function.inputs["runtime"] == config["runtime"]
    assert function.inputs["architectures"] == [config["architecture"]]
    assert function.inputs["memorySize"] == config["memory"]
    assert function.inputs["timeout"] == config["timeout"]
    assert function.inputs["handler"] == "handler.app.lambda_handler"
    assert function.inputs["role"] == _child(run, region, "function-role").outputs["arn"]
    assert function.inputs["tracingConfig"] == {"mode": "PassThrough"}
    assert function.inputs["layers"] == [_child(run, region, "dependencies").outputs["arn"]]
    environment = function.inputs["environment"]["variables"]
    assert environment == {
        "DSQL_ENDPOINT": f"{_cluster(run, region).outputs['identifier']}.dsql.{region}.on.aws",
        "DB_USER": DB_ROLE,
        "CORS_ALLOW_ORIGINS": "",
        "POWERTOOLS_SERVICE_NAME": "users-api",
        "LOG_LEVEL": "INFO",
        "AUTH_MODE": "cognito",
        "AUTH_CLIENT_IDS": "identity-client-id,identity-smoke-client-id",
    }
    assert "AWS_REGION" not in environment  # reserved: Lambda sets it

    log_group = _child(run, region, "function-logs")
    assert log_group.inputs["name"] == f"/aws/lambda/{function.inputs['name']}"
    assert log_group.inputs["retentionInDays"] == 30

    layer = _child(run, region, "dependencies")
    assert layer.inputs["compatibleArchitectures"] == [config["architecture"]]
    assert layer.inputs["compatibleRuntimes"] == [config["runtime"]]


def load_config_for_test() -> dict[str, Any]:
    return {"runtime": "python3.13", "architecture": "arm64", "memory": 512, "timeout": 10}


def test_configured_runtime_architecture_and_cors_reach_the_function() -> None:
    changed = run_program(
        {
            "lambdaRuntime": "python3.12",
            "lambdaArchitecture": "x86_64",
            "lambdaMemoryMb": 1024,
            "lambdaTimeoutSeconds": 20,
            "corsAllowOrigins": ["https://app.example.com", "https://admin.example.com"],
        },
        program=program,
    )
    for region in REGIONS:
        function = _child(changed, region, "function")
        assert function.inputs["runtime"] == "python3.12"
        assert function.inputs["architectures"] == ["x86_64"]
        assert function.inputs["memorySize"] == 1024
        assert function.inputs["timeout"] == 20
        assert (
            function.inputs["environment"]["variables"]["CORS_ALLOW_ORIGINS"]
            == "https://app.example.com,https://admin.example.com"
        )
    for layer in changed.of_type("aws:lambda/layerVersion:LayerVersion"):
        assert layer.inputs["code"].path.startswith("build/lambda/layer-x86_64-py3.12-")
        assert layer.inputs["description"].endswith("for x86_64 python3.12")
    for function in changed.of_type("aws:lambda/function:Function"):
        assert function.inputs["code"].path.startswith("build/lambda/function-py3.12-")


def test_artifacts_are_built_once_for_both_regions_and_named_by_their_hashes(run: ProgramRun) -> None:
    layers = run.of_type("aws:lambda/layerVersion:LayerVersion")
    assert sorted(layer.region for layer in layers) == sorted(REGIONS)
    functions = run.of_type("aws:lambda/function:Function")
    for resources, prefix in (
        (layers, "build/lambda/layer-arm64-py3.13-"),
        (functions, "build/lambda/function-py3.13-"),
    ):
        [path] = {r.inputs["code"].path for r in resources}  # one zip, uploaded in each region
        assert path.startswith(prefix)  # relative to the project: the same input from any checkout
        zipped = (ROOT / path).read_bytes()
        expected = base64.b64encode(hashlib.sha256(zipped).digest()).decode()
        assert {r.inputs["sourceCodeHash"] for r in resources} == {expected}
    assert {layer.inputs["description"] for layer in layers} == {
        f"handler/requirements.txt sha256:{lock_digest()[:16]} for arm64 python3.13"
    }


@pytest.mark.parametrize("region", REGIONS)
def test_api_routes_match_the_openapi_document(run: ProgramRun, region: str) -> None:
    api = _child(run, region, "api")
    assert api.inputs["endpointConfiguration"]["types"] == "REGIONAL"
    body = json.loads(api.inputs["body"])
    preflights = {("OPTIONS", path) for path in load_document()["paths"]}
    assert routes(body) == routes(load_document()) | preflights
    invoke_arn = _child(run, region, "function").outputs["invokeArn"]
    assert f":{region}:" in invoke_arn
    for item in body["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            integration = operation["x-amazon-apigateway-integration"]
            assert integration == {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": invoke_arn,
                "passthroughBehavior": "when_no_match",
            }
            assert (
                operation["x-amazon-apigateway-request-validator"]
                in body["x-amazon-apigateway-request-validators"]
            )
    deployment = _child(run, region, "deployment")
    assert deployment.inputs["triggers"] == {
        "body_sha256": hashlib.sha256(api.inputs["body"].encode()).hexdigest()
    }
    assert deployment.inputs["restApi"] == api.outputs["id"]


@pytest.mark.parametrize("region", REGIONS)
def test_stage_throttling_and_access_logs(run: ProgramRun, region: str) -> None:
    api = _child(run, region, "api")
    stage = _child(run, region, "stage")
    assert stage.inputs["stageName"] == "v1"
    assert stage.inputs["restApi"] == api.outputs["id"]
    assert stage.inputs["deployment"] == f"app-{region}-deployment-id"
    access_logs = _child(run, region, "access-logs")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access_logs.outputs["arn"]
    log_format = json.loads(stage.inputs["accessLogSettings"]["format"])
    assert log_format["requestId"] == "$context.requestId"
    assert stage.inputs["xrayTracingEnabled"] is False
    throttling = _child(run, region, "throttling")
    assert throttling.inputs["methodPath"] == "*/*"
    assert throttling.inputs["settings"]["throttlingRateLimit"] == 100
    assert throttling.inputs["settings"]["throttlingBurstLimit"] == 200
    account = _child(run, region, "apigateway-account")
    assert account.inputs["cloudwatchRoleArn"] == _child(run, region, "apigateway-logs-role").outputs["arn"]
    assert f"app-{region}-apigateway-account" in run.depends_on[f"app-{region}-stage"]
    assert run.outputs[f"invoke_url_{region}"] == (
        f"https://{api.outputs['id']}.execute-api.{region}.amazonaws.com/v1"
    )


@pytest.mark.parametrize("region", REGIONS)
def test_invoke_permission_is_scoped_to_this_api(run: ProgramRun, region: str) -> None:
    permission = _child(run, region, "invoke-permission")
    api = _child(run, region, "api")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == _child(run, region, "function").outputs["name"]
    assert permission.inputs["sourceArn"] == f"{api.outputs['executionArn']}/*/*"
    assert permission.inputs["sourceArn"].startswith(f"arn:aws:execute-api:{region}:{ACCOUNT}:")


@pytest.mark.parametrize("region", REGIONS)
def test_function_waits_for_role_mapping_which_waits_for_migration(run: ProgramRun, region: str) -> None:
    grant = f"app-{region}-db-role-grant"
    assert "schema-migration" in run.depends_on[grant]
    assert grant in run.depends_on[f"app-{region}-function"]
    assert f"app-{region}-function-policy" in run.depends_on[f"app-{region}-function"]
    # The mapping is for this region's function role, on this region's cluster.
    mapping = run.named(grant)
    assert mapping.inputs["role_arn"] == _child(run, region, "function-role").outputs["arn"]
    assert mapping.inputs["db_role"] == DB_ROLE


def test_outputs_expose_what_routing_and_monitoring_need(run: ProgramRun) -> None:
    for region in REGIONS:
        assert run.outputs[f"function_name_{region}"] == f"dsql-users-api-prod-{region}"
        assert run.outputs[f"api_id_{region}"] == _child(run, region, "api").outputs["id"]
        assert run.outputs[f"stage_name_{region}"] == "v1"
        assert run.outputs[f"role_arn_{region}"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")


def test_two_instances_never_collide(run: ProgramRun) -> None:
    names = [(r.typ, r.name) for r in run.resources]
    assert len(names) == len(set(names))
    function_names = [r.inputs["name"] for r in run.of_type("aws:lambda/function:Function")]
    assert len(set(function_names)) == len(REGIONS)


def test_mismatched_artifacts_are_refused() -> None:
    def mismatched() -> None:
        config = load_config()
        provider = aws.Provider("aws-one", region=config.primary_region)
        artifacts = LambdaArtifacts(
            "lambda",
            LambdaArtifactsArgs("x86_64", config.lambda_runtime),
            opts=ResourceOptions(providers=[command.Provider("command")]),
        )
        RegionalApp(
            "app",
            RegionalAppArgs(
                region=config.primary_region,
                settings=config,
                cluster_arn="arn:aws:dsql:us-east-1:123456789012:cluster/abc",
                cluster_endpoint="abc.dsql.us-east-1.on.aws",
                schema=StandInMigration("schema"),
                artifacts=artifacts,
            ),
            opts=ResourceOptions(provider=provider),
        )

    with pytest.raises(Exception, match="built for x86_64"):
        run_program(program=mismatched)


def test_the_program_wires_one_app_per_region_after_the_real_migration() -> None:
    program_run = run_program()  # __main__.py itself
    migration = program_run.one("pulumi-python:dynamic/dsql:SchemaMigration")
    for region in REGIONS:
        grant = f"users-api-{region}-db-role-grant"
        assert program_run.depends_on[grant] == [migration.name]
        assert grant in program_run.depends_on[f"users-api-{region}-function"]
        assert program_run.named(grant).inputs["endpoint"].endswith(f".dsql.{region}.on.aws")
        function = program_run.named(f"users-api-{region}-function")
        assert function.region == region
        api_id = program_run.named(f"users-api-{region}-api").outputs["id"]
        assert program_run.outputs["invokeUrls"][region] == (
            f"https://{api_id}.execute-api.{region}.amazonaws.com/v1"
        )
    # The program builds its artifacts itself, on every run: no build command in the state to go stale.
    assert not program_run.of_type("command:local:Command")
    layers = program_run.of_type("aws:lambda/layerVersion:LayerVersion")
    assert len({layer.inputs["sourceCodeHash"] for layer in layers}) == 1


INVOKE_ARN = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:f/invocations"
)
POOL_ARN = "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf123"


def test_openapi_body_is_pure_and_deterministic() -> None:
    document = load_document()
    before = json.dumps(document, sort_keys=True)
    body = api_gateway_body(document, INVOKE_ARN, user_pool_arn=POOL_ARN)
    assert json.dumps(document, sort_keys=True) == before  # the input document is not changed
    assert render(body) == render(api_gateway_body(load_document(), INVOKE_ARN, user_pool_arn=POOL_ARN))
    assert body["paths"]["/users/{id}"]["parameters"] == document["paths"]["/users/{id}"]["parameters"]
    operations = {
        (m.upper(), p): op for p, item in body["paths"].items() for m, op in item.items() if m != "parameters"
    }
    assert operations[("POST", "/users")]["x-amazon-apigateway-request-validator"] == "body-and-params"
    assert operations[("GET", "/users")]["x-amazon-apigateway-request-validator"] == "params-only"
    # CORS preflights reach the function, which knows the allowed origins
    assert operations[("OPTIONS", "/users/{id}")]["x-amazon-apigateway-integration"]["uri"] == INVOKE_ARN
    validators = body["x-amazon-apigateway-request-validators"]
    assert validators["body-and-params"] == {"validateRequestBody": True, "validateRequestParameters": True}


def test_gateway_errors_have_the_handlers_error_shape() -> None:
    responses = api_gateway_body(load_document(), INVOKE_ARN, user_pool_arn=POOL_ARN)[
        "x-amazon-apigateway-gateway-responses"
    ]
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    for response in responses.values():
        template = response["responseTemplates"]["application/json"]
        # What API Gateway substitutes: messageString is already a JSON string.
        rendered = json.loads(template.replace("$context.error.messageString", '"Unauthorized"'))
        assert set(rendered["error"]) == {"code", "message"}


def test_openapi_body_refuses_what_is_not_a_lambda_invoke_arn() -> None:
    with pytest.raises(OpenApiError, match="not a Lambda invoke ARN"):
        api_gateway_body(
            load_document(), "arn:aws:lambda:us-east-1:123456789012:function:f", user_pool_arn=POOL_ARN
        )


def _app_with_auth(pool_arn: str | None) -> None:
    config = load_config()
    provider = aws.Provider("aws-one", region=config.primary_region)
    artifacts = LambdaArtifacts(
        "lambda",
        LambdaArtifactsArgs(config.lambda_architecture, config.lambda_runtime),
        opts=ResourceOptions(providers=[command.Provider("command")]),
    )
    RegionalApp(
        "app",
        RegionalAppArgs(
            region=config.primary_region,
            settings=config,
            cluster_arn="arn:aws:dsql:us-east-1:123456789012:cluster/abc",
            cluster_endpoint="abc.dsql.us-east-1.on.aws",
            schema=StandInMigration("schema"),
            artifacts=artifacts,
            user_pool_arn=pool_arn,
        ),
        opts=ResourceOptions(provider=provider),
    )


@pytest.mark.parametrize(
    ("auth_mode", "pool_arn", "message"),
    [
        ("cognito", None, "authMode is cognito but RegionalApp got no user_pool_arn"),
        ("none", POOL_ARN, "authMode is none but RegionalApp got a user_pool_arn"),
    ],
)
def test_an_authorizer_that_disagrees_with_auth_mode_is_refused(
    auth_mode: str, pool_arn: str | None, message: str
) -> None:
    # authReplica (on in prod) needs a pool: an open stack has it off.
    overrides = {"authMode": auth_mode, "authReplica": auth_mode == "cognito"}
    with pytest.raises(Exception, match=message):
        run_program(overrides, program=lambda: _app_with_auth(pool_arn))


def test_auth_mode_none_builds_an_open_api_without_a_pool() -> None:
    open_run = run_program({"authMode": "none", "authReplica": False}, program=program)
    assert not open_run.of_type("aws:cognito/userPool:UserPool")
    for region in REGIONS:
        body = json.loads(_child(open_run, region, "api").inputs["body"])
        assert not [op for item in body["paths"].values() for op in item.values() if "security" in op]
        assert _child(open_run, region, "function").inputs["environment"]["variables"]["AUTH_MODE"] == "none"
