"""The failover drill under Pulumi mocks: the state machine wired to the stack's own health checks, record
and topic, and the schedule only when drillSchedule is set, starting the drill through a role that may
do nothing else."""

from __future__ import annotations

import json

import pulumi_aws as aws
import pytest

from components.drill_identity import DrillIdentityArgs, replica_arn
from components.failover_drill import DrillTiming, FailoverDrillArgs
from components.identity import PASSWORD_POLICY
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ProgramRun, Registered

DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
SCHEDULED = {**DOMAIN, "drillSchedule": "rate(7 days)", "authReplica": False}  # the identity check: below
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
SCHEDULE = "aws:scheduler/schedule:Schedule"


def drill(run: ProgramRun) -> Registered:
    return run.named("users-api-drill-machine")


@pytest.fixture(scope="module")
def scheduled_run() -> ProgramRun:
    return run_ops_program(SCHEDULED)


def test_the_drill_targets_the_stacks_own_health_checks_records_probe_and_topic(
    scheduled_run: ProgramRun,
) -> None:
    run = scheduled_run
    machine = drill(run)
    assert machine.region == "us-east-1"  # the primary
    assert machine.inputs["type"] == "STANDARD"
    states = json.loads(machine.inputs["definition"])["States"]
    checks = {
        h.inputs["tags"]["region"]: f"{h.name}-id" for h in run.of_type("aws:route53/healthCheck:HealthCheck")
    }
    for region, health_check_id in checks.items():
        assigned = states[f"Target {region}"]["Assign"]
        assert assigned["healthCheckId"] == health_check_id
        assert assigned["others"] == sorted(set(checks) - {region})
    txt = {r.inputs["name"]: r for r in run.of_type("aws:route53/record:Record") if r.inputs["type"] == "TXT"}
    # The probe: the zone's own name servers, the latency TXT record, the domain, a host in each region.
    probe = run.named("users-api-drill-probe")
    asked = states["CheckBaseline"]["ItemProcessor"]["States"]["ProbeRegion"]["Arguments"]
    assert asked["FunctionName"] == probe.outputs["arn"]
    payload = asked["Payload"]
    assert payload["nameServers"] == [
        "ns-2048.awsdns-64.com",
        "ns-2049.awsdns-65.net",
        "ns-2050.awsdns-66.org",
    ]
    region_record = txt[payload["regionRecord"]]
    assert region_record.inputs["latencyRoutingPolicies"] and region_record.inputs["healthCheckId"]
    assert payload["domain"] == "api.example.com" and payload["path"] == "/health"
    apis = {a.region: a.outputs["id"] for a in run.of_type("aws:apigateway/restApi:RestApi")}
    assert payload["subnetHosts"] == {r: f"{api}.execute-api.{r}.amazonaws.com" for r, api in apis.items()}
    extra = states["Drill"]["Branches"][0]["States"]["AskTestDnsAnswer"]["Arguments"]
    assert extra["RecordName"] in txt
    primary_topic = run.outputs["alarmTopicArns"]["us-east-1"]
    reports = [s for s in states.values() if s.get("Resource") == "arn:aws:states:::sns:publish"]
    assert len(reports) == 5 and {s["Arguments"]["TopicArn"] for s in reports} == {primary_topic}
    assert run.outputs["failoverDrillArn"] == machine.outputs["arn"]


def test_the_probe_function_may_only_write_its_logs_and_only_the_drill_may_invoke_it(
    scheduled_run: ProgramRun,
) -> None:
    run = scheduled_run
    probe = run.named("users-api-drill-probe")
    assert probe.region == "us-east-1"
    assert probe.inputs["handler"] == "probe.app.handler"
    assert probe.inputs["runtime"] == "python3.13" and probe.inputs["architectures"] == ["arm64"]
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.outputs["arn"] == probe.inputs["role"]]
    [policy] = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == f"{role.name}-id"
    ]
    [statement] = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"].startswith("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/")
    [machine_role] = [
        r for r in run.of_type("aws:iam/role:Role") if r.outputs["arn"] == drill(run).inputs["roleArn"]
    ]
    [machine_policy] = [
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == f"{machine_role.name}-id"
    ]
    invoke = [
        s
        for s in json.loads(machine_policy.inputs["policy"])["Statement"]
        if s["Action"] == "lambda:InvokeFunction"
    ]
    assert invoke == [
        {
            "Sid": "InvokeOwnProbe",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [probe.outputs["arn"], f"{probe.outputs['arn']}:*"],
        }
    ]


def test_the_schedule_drills_the_secondary_through_a_role_that_may_only_start_the_drill(
    scheduled_run: ProgramRun,
) -> None:
    run = scheduled_run
    schedule = run.one(SCHEDULE)
    assert schedule.region == "us-east-1"
    assert schedule.inputs["scheduleExpression"] == "rate(7 days)"
    assert schedule.inputs["scheduleExpressionTimezone"] == "UTC"
    assert schedule.inputs["flexibleTimeWindow"] == {"mode": "OFF"}
    target = schedule.inputs["target"]
    assert target["arn"] == drill(run).outputs["arn"]
    assert json.loads(target["input"]) == {"region": "us-east-2"}
    assert target["retryPolicy"] == {"maximumRetryAttempts": 0}
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.outputs["arn"] == target["roleArn"]]
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    [policy] = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == f"{role.name}-id"
    ]
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {"Effect": "Allow", "Action": "states:StartExecution", "Resource": drill(run).outputs["arn"]}
    ]
    assert run.depends_on[schedule.name] == [policy.name]


def test_the_drills_own_role_is_assumed_by_step_functions_of_this_account_only(
    scheduled_run: ProgramRun,
) -> None:
    run = scheduled_run
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.outputs["arn"] == drill(run).inputs["roleArn"]]
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert run.depends_on["users-api-drill-machine"] == ["users-api-drill-machine-policy"]


def test_without_a_schedule_the_drill_exists_but_nothing_runs_it() -> None:
    run = run_ops_program(DOMAIN)
    assert drill(run).inputs["type"] == "STANDARD"
    assert run.of_type(SCHEDULE) == []
    assert not [r for r in run.of_type("aws:iam/role:Role") if "scheduler" in r.inputs["assumeRolePolicy"]]


def test_without_a_domain_there_is_no_drill() -> None:
    run = run_ops_program()
    assert [m.name for m in run.of_type(STATE_MACHINE) if "drill" in m.name] == []
    assert "failoverDrillArn" not in run.outputs


def test_the_drill_polls_for_three_times_what_route53_needs_plus_two_minutes() -> None:
    assert DrillTiming.for_health_checks(30, 3) == DrillTiming(poll_seconds=30, max_polls=13)
    assert DrillTiming.for_health_checks(10, 1) == DrillTiming(poll_seconds=10, max_polls=15)
    run = run_ops_program({**DOMAIN, "healthCheckIntervalSeconds": 10, "healthCheckFailureThreshold": 2})
    states = json.loads(drill(run).inputs["definition"])["States"]
    branch = states["Drill"]["Branches"][0]["States"]
    assert branch["WaitForFailover"]["Seconds"] == 10 == states["WaitForRestore"]["Seconds"]
    assert branch["IsFailedOver"]["Choices"][1]["Condition"] == "{% $failoverPolls < 18 %}"


def test_drill_args_refuse_a_single_region_or_an_unknown_scheduled_region() -> None:
    provider = object.__new__(aws.Provider)  # never registered: the args refuse before any resource
    common = {"provider": provider, "hosted_zone_id": "Z1", "regions_record_name": "_regions.api.example.com",
              "region_record_name": "_region.api.example.com", "domain": "api.example.com",
              "probe_artifacts": object(), "topic_arn": "arn:aws:sns:us-east-1:123456789012:t",
              "timing": DrillTiming(30, 13)}  # fmt: skip
    urls = {"us-east-1": "https://a.execute-api.us-east-1.amazonaws.com/v1"}
    with pytest.raises(ValueError, match="two regions"):
        FailoverDrillArgs(
            **common, health_check_ids={"us-east-1": "a"}, invoke_urls=urls, scheduled_region="us-east-1"
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no health check"):
        FailoverDrillArgs(
            **common,
            health_check_ids={"us-east-1": "a", "us-east-2": "b"},
            invoke_urls={**urls, "us-east-2": "https://b.execute-api.us-east-2.amazonaws.com/v1"},
            scheduled_region="eu-west-1",
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs its invoke URL"):
        FailoverDrillArgs(
            **common,
            health_check_ids={"us-east-1": "a", "us-east-2": "b"},
            invoke_urls=urls,
            scheduled_region="us-east-2",
        )  # type: ignore[arg-type]


def test_a_preview_of_a_new_stack_plans_every_edge_and_operations_resource() -> None:
    everything = {**SCHEDULED, "cdn": True, "waf": True}
    run = run_ops_program(everything, preview=True)  # every computed output unknown, as for a new stack
    planned = [r.typ for r in run.resources]
    for typ, count in (
        (STATE_MACHINE, 3),
        (SCHEDULE, 1),
        ("aws:cloudwatch/eventRule:EventRule", 2),
        ("aws:cloudwatch/eventTarget:EventTarget", 2),
        ("aws:cloudfront/distribution:Distribution", 1),
        ("aws:wafv2/webAcl:WebAcl", 1),
    ):
        assert planned.count(typ) == count, typ


# ---------------------------------------------------------------- the identity check (authReplica)

REPLICATED = {**DOMAIN, "authReplica": True}
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
SECRET = "aws:secretsmanager/secret:Secret"
DRILL_USER = "pulumi-python:dynamic/cognito:DrillUser"
IDENTITY_STATES = (
    "IsIdentityChecked",
    "ProbeIdentity",
    "IsIdentityOk",
    "ReportIdentityFailed",
    "IdentityFailed",
)


@pytest.fixture(scope="module")
def replicated_run() -> ProgramRun:
    return run_ops_program(REPLICATED)


def test_the_drill_client_only_signs_in_and_refreshes_and_the_api_refuses_it(
    replicated_run: ProgramRun,
) -> None:
    run = replicated_run
    client = run.named("users-api-drill-identity-client")
    assert client.region == "us-east-1"
    assert client.inputs["userPoolId"] == run.one("aws:cognito/userPool:UserPool").outputs["id"]
    assert client.inputs["explicitAuthFlows"] == ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert client.inputs["generateSecret"] is False
    assert client.inputs["allowedOauthFlowsUserPoolClient"] is False
    assert "allowedOauthFlows" not in client.inputs and "callbackUrls" not in client.inputs
    assert "refreshTokenRotation" not in client.inputs  # REFRESH_TOKEN_AUTH cannot rotate
    assert (client.inputs["idTokenValidity"], client.inputs["accessTokenValidity"]) == (5, 5)
    assert client.inputs["refreshTokenValidity"] == 60
    assert client.inputs["tokenValidityUnits"] == {
        "idToken": "minutes",
        "accessToken": "minutes",
        "refreshToken": "minutes",
    }
    drill_client_id = f"{client.name}-id"  # the mocks give a resource the id <name>-id
    for function in run.of_type("aws:lambda/function:Function"):
        variables = function.inputs.get("environment", {}).get("variables", {})
        if "AUTH_CLIENT_IDS" in variables:
            accepted = variables["AUTH_CLIENT_IDS"].split(",")
            assert accepted and drill_client_id not in accepted, function.name
    assert (
        len([f for f in run.of_type("aws:lambda/function:Function") if "AUTH_CLIENT_IDS" in str(f.inputs)])
        == 2
    )


def test_the_drill_user_has_its_password_only_in_a_secret_replicated_to_the_secondary(
    replicated_run: ProgramRun,
) -> None:
    run = replicated_run
    secret = run.one(SECRET)
    assert secret.region == "us-east-1"
    assert secret.inputs["name"] == "dsql-users-api-prod-failover-drill-identity"
    assert secret.inputs["replicas"] == [{"region": "us-east-2"}]
    assert "kmsKeyId" not in secret.inputs  # aws/secretsmanager in each region
    assert secret.inputs["recoveryWindowInDays"] == 0
    user = run.one(DRILL_USER)
    assert user.inputs["user_pool_id"] == run.one("aws:cognito/userPool:UserPool").outputs["id"]
    assert user.inputs["region"] == "us-east-1"
    assert user.inputs["username"] == "dsql-users-api-prod-failover-drill@example.com"
    assert user.inputs["secret_arn"] == secret.outputs["arn"]
    assert user.inputs["password_policy"] == dict(PASSWORD_POLICY)
    assert run.of_type("aws:cognito/userInGroup:UserInGroup") == []
    assert not any(t.startswith("aws:secretsmanager/secretVersion") for t in (r.typ for r in run.resources))
    # The probe may read exactly that secret's replica, and write its logs.
    replica = secret.outputs["arn"].replace(":us-east-1:", ":us-east-2:")
    [policy] = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "users-api-drill-probe-policy"
    ]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert [s["Action"] for s in statements] == [
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        "secretsmanager:GetSecretValue",
    ]
    assert statements[1]["Resource"] == replica
    # The drill asks the probe for the identity check in the secondary, as its own client and user.
    states = json.loads(drill(run).inputs["definition"])["States"]
    asked = states["Drill"]["Branches"][0]["States"]["ProbeIdentity"]["Arguments"]
    assert asked == {
        "FunctionName": run.named("users-api-drill-probe").outputs["arn"],
        "Payload": {
            "identity": {
                "region": "us-east-2",
                "clientId": "users-api-drill-identity-client-id",
                "secretArn": replica,
            },
            "timeoutSeconds": 5,
        },
    }
    condition = states["Drill"]["Branches"][0]["States"]["IsIdentityChecked"]["Choices"][0]["Condition"]
    assert condition == "{% $target = 'us-east-1' %}"  # only a drill of the pool's region


def _without_identity(definition: dict) -> dict:
    """A drill definition with the identity check's states and fields taken out again."""
    stripped = json.loads(json.dumps(definition).replace(" & ' ' & $failover.identityReport", ""))
    states, branch = stripped["States"], stripped["States"]["Drill"]["Branches"][0]["States"]
    for name in IDENTITY_STATES:
        states.pop(name, None)
        branch.pop(name, None)
    for key in ("identityOk", "identityReport"):
        branch["Invert"]["Assign"].pop(key)
        branch["FailedOver"]["Output"].pop(key)
    branch["AskTestDnsAnswer"]["Next"] = branch["AskTestDnsAnswer"]["Catch"][0]["Next"] = "FailedOver"
    states["IsRestored"]["Choices"][0]["Next"] = "ReportSuccess"
    return stripped


def test_without_auth_replica_no_drill_identity_and_the_same_drill_but_for_the_check(
    replicated_run: ProgramRun,
) -> None:
    single = run_ops_program({**DOMAIN, "authReplica": False})
    assert not [c for c in single.of_type(CLIENT) if "drill" in c.name]
    assert single.of_type(SECRET) == [] and single.of_type(DRILL_USER) == []
    definition = json.loads(drill(single).inputs["definition"])
    assert not set(IDENTITY_STATES) & set(definition["States"]) and "identity" not in json.dumps(definition)
    [policy] = [
        p for p in single.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "users-api-drill-probe-policy"
    ]
    assert "secretsmanager" not in policy.inputs["policy"]
    # With it, the definition differs by the identity check only.
    assert _without_identity(json.loads(drill(replicated_run).inputs["definition"])) == definition


def test_drill_args_refuse_an_identity_check_outside_the_drilled_regions() -> None:
    provider = object.__new__(aws.Provider)
    with pytest.raises(ValueError, match="another region"):
        DrillIdentityArgs(
            user_pool_id="p", primary_region="us-east-1", secondary_region="us-east-1", password_policy={}
        )
    with pytest.raises(ValueError, match="identity check's regions"):
        FailoverDrillArgs(
            provider=provider,
            health_check_ids={"us-east-1": "a", "us-east-2": "b"},
            hosted_zone_id="Z1",
            regions_record_name="_regions.api.example.com",
            region_record_name="_region.api.example.com",
            domain="api.example.com",
            invoke_urls={"us-east-1": "https://a/v1", "us-east-2": "https://b/v1"},
            probe_artifacts=object(),  # type: ignore[arg-type]
            topic_arn="arn:aws:sns:us-east-1:123456789012:t",
            timing=DrillTiming(30, 13),
            scheduled_region="us-east-2",
            identity=DrillIdentityArgs(
                user_pool_id="p", primary_region="eu-west-1", secondary_region="us-east-2", password_policy={}
            ),
        )


def test_a_replica_secret_arn_keeps_the_name_and_suffix_in_its_own_region() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dsql-users-api-prod-failover-drill-identity-AbCdEf"
    assert replica_arn(arn, "us-east-2") == arn.replace(":us-east-1:", ":us-east-2:")
    with pytest.raises(ValueError, match="not a Secrets Manager secret ARN"):
        replica_arn("arn:aws:s3:::bucket", "us-east-2")
