"""authReplica under Pulumi mocks, through __main__.py: the multi-Region key and its replica, the pool's
key and issuer settings, the replica pool in the secondary region, and each region's authorizer on its
own region's pool ARN; with authReplica off (the default, turned on in Pulumi.prod.yaml), none of it and
both regions on the one pool."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.auth_replica import COGNITO_PRINCIPAL
from components.config import ConfigError, parse_config
from tests.pulumi_harness import ACCOUNT, ProgramRun, run_program, stack_config

PRIMARY, SECONDARY = "us-east-1", "us-east-2"  # Pulumi.prod.yaml's application regions


def _raw(**overrides: str) -> dict[str, str]:
    """The prod stack file's config as the strings Pulumi hands the program, with ``overrides``."""
    base = {k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_config().items()}
    return {**base, **overrides}


KEY = "aws:kms/key:Key"
REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
SETTINGS = "pulumi-python:dynamic/cognito:PoolReplicationSettings"
REPLICA = "pulumi-python:dynamic/cognito:UserPoolReplica"
POOL = "aws:cognito/userPool:UserPool"


@pytest.fixture(scope="module")
def replicated() -> ProgramRun:
    return run_program({"authReplica": True})


@pytest.fixture(scope="module")
def single() -> ProgramRun:
    return run_program({"authReplica": False})


def _authorizer_arns(run: ProgramRun, region: str) -> list[str]:
    body: dict[str, Any] = json.loads(run.named(f"users-api-{region}-api").inputs["body"])
    return list(
        body["components"]["securitySchemes"]["cognito"]["x-amazon-apigateway-authorizer"]["providerARNs"]
    )


def test_a_multi_region_key_in_the_primary_and_its_replica_in_the_secondary(replicated: ProgramRun) -> None:
    key = replicated.one(KEY, PRIMARY)
    assert key.inputs["multiRegion"] is True
    assert key.inputs["enableKeyRotation"] is True
    replica_key = replicated.one(REPLICA_KEY, SECONDARY)
    assert replica_key.inputs["primaryKeyArn"] == key.outputs["arn"]
    for resource in (key, replica_key):
        policy = json.loads(resource.inputs["policy"])
        [cognito] = [s for s in policy["Statement"] if s.get("Principal") == {"Service": COGNITO_PRINCIPAL}]
        assert cognito["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        assert "kms:*" not in cognito["Action"] and "kms:GenerateDataKey*" in cognito["Action"]
        assert resource.inputs["tags"]["project"] == "dsql-users-api"


def test_the_pool_takes_the_key_and_the_updated_issuer_after_the_replica_key(replicated: ProgramRun) -> None:
    pool = replicated.one(POOL, PRIMARY)
    settings = replicated.one(SETTINGS)
    assert settings.inputs["user_pool_id"] == pool.outputs["id"]
    assert settings.inputs["region"] == PRIMARY
    assert settings.inputs["kms_key_arn"] == replicated.one(KEY).outputs["arn"]
    assert settings.inputs["issuer_type"] == "UPDATED"
    assert replicated.depends_on[settings.name] == [replicated.one(REPLICA_KEY).name]
    assert replicated.outputs["userPoolIssuer"] == (
        f"https://issuer-cognito-idp.{PRIMARY}.amazonaws.com/{pool.outputs['id']}"
    )


def test_the_replica_pool_is_in_the_secondary_region_protected_like_the_stack(replicated: ProgramRun) -> None:
    replica = replicated.one(REPLICA)
    assert replica.inputs["user_pool_id"] == replicated.one(POOL).outputs["id"]
    assert (replica.inputs["primary_region"], replica.inputs["replica_region"]) == (PRIMARY, SECONDARY)
    assert replica.inputs["deletion_protection"] is True  # Pulumi.prod.yaml's deletionProtection
    assert replica.inputs["status"] == "ACTIVE"
    assert replicated.depends_on[replica.name] == [replicated.one(SETTINGS).name]


def test_each_region_authorizes_on_its_own_regions_pool(replicated: ProgramRun) -> None:
    pool = replicated.one(POOL)
    assert _authorizer_arns(replicated, PRIMARY) == [pool.outputs["arn"]]
    secondary = _authorizer_arns(replicated, SECONDARY)
    assert secondary == [replicated.one(REPLICA).outputs["user_pool_arn"]]
    assert secondary == [f"arn:aws:cognito-idp:{SECONDARY}:{ACCOUNT}:userpool/{pool.outputs['id']}"]
    assert replicated.outputs["userPoolArns"] == {PRIMARY: pool.outputs["arn"], SECONDARY: secondary[0]}


def test_a_token_of_either_region_is_accepted_by_both_apis(replicated: ProgramRun) -> None:
    """Same pool ID behind both authorizers, one UPDATED issuer for both regions' tokens, and the same
    app clients (the ``aud`` each function accepts) in both regions."""
    pool_id = replicated.one(POOL).outputs["id"]
    for region in (PRIMARY, SECONDARY):
        [arn] = _authorizer_arns(replicated, region)
        assert arn.endswith(f":userpool/{pool_id}") and f":{region}:" in arn
    issuer = replicated.outputs["userPoolIssuer"]
    assert issuer == f"https://issuer-cognito-idp.{PRIMARY}.amazonaws.com/{pool_id}"  # not per region
    audiences = {
        replicated.named(f"users-api-{region}-function").inputs["environment"]["variables"]["AUTH_CLIENT_IDS"]
        for region in (PRIMARY, SECONDARY)
    }
    assert len(audiences) == 1


def test_the_prod_stack_as_written_deploys_the_replica() -> None:
    prod = run_program()
    assert prod.one(KEY, PRIMARY).inputs["multiRegion"] is True
    assert prod.one(REPLICA_KEY, SECONDARY).inputs["primaryKeyArn"] == prod.one(KEY).outputs["arn"]
    assert prod.one(REPLICA).inputs["replica_region"] == SECONDARY
    assert _authorizer_arns(prod, SECONDARY) == [prod.one(REPLICA).outputs["user_pool_arn"]]


def test_without_auth_replica_nothing_is_added_and_both_regions_use_the_one_pool(single: ProgramRun) -> None:
    for typ in (KEY, REPLICA_KEY, SETTINGS, REPLICA):
        assert single.of_type(typ) == []
    pool_arn = single.one(POOL).outputs["arn"]
    assert _authorizer_arns(single, PRIMARY) == _authorizer_arns(single, SECONDARY) == [pool_arn]
    assert "userPoolArns" not in single.outputs


def test_auth_replica_needs_cognito() -> None:
    with pytest.raises(ConfigError, match=r"authReplica is true but .*authMode is 'none'") as caught:
        parse_config(_raw(authReplica="true", authMode="none"))
    assert "pulumi config set authReplica false" in str(caught.value)


def test_auth_replica_is_off_by_default_on_in_prod_and_must_be_a_boolean() -> None:
    unset = {key: value for key, value in _raw().items() if key != "authReplica"}
    assert parse_config(unset).auth_replica is False
    assert parse_config(_raw()).auth_replica is True  # Pulumi.prod.yaml (issue 21)
    with pytest.raises(ConfigError, match="authReplica"):
        parse_config(_raw(authReplica="yes please"))


FAILOVER = "pulumi-python:dynamic/cognito:DomainFailover"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
DOMAIN = "aws:cognito/userPoolDomain:UserPoolDomain"


@pytest.mark.parametrize(
    "overrides",
    [{}, {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}],
    ids=["prefix-domain", "custom-domain"],
)
def test_the_managed_login_domain_fails_over_on_the_primarys_health_check(overrides: dict[str, str]) -> None:
    run = run_program({"authReplica": True, **overrides})
    failover = run.one(FAILOVER)
    domain = run.one(DOMAIN)
    primary_check = run.named(f"users-api-routing-{PRIMARY}-health")  # the mocks' id: <name>-id
    assert failover.inputs["health_check_id"] == f"{primary_check.name}-id"
    assert failover.inputs["secondary_region"] == SECONDARY
    assert failover.inputs["region"] == PRIMARY
    assert failover.inputs["domain"] == domain.outputs["domain"]
    assert failover.inputs["managed_login_version"] == domain.inputs["managedLoginVersion"]
    assert (failover.inputs["certificate_arn"] != "") == bool(overrides)
    assert run.one(REPLICA).name in run.depends_on[failover.name]


def test_without_auth_replica_the_domain_does_not_fail_over(single: ProgramRun) -> None:
    assert single.of_type(FAILOVER) == []


def test_the_policy_pack_finds_nothing_with_auth_replica(replicated: ProgramRun) -> None:
    """The pack's invariants (an authorizer on a user pool in every API, tags, ...) hold with the
    secondary's authorizer on the replica."""
    from tests.test_policy_pack import program_violations

    assert {name: found for name, found in program_violations(replicated).items() if found} == {}


STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"


def _runbooks_mentioning_sign_in(run: ProgramRun) -> list[str]:
    return sorted(
        machine.name
        for machine in run.of_type(STATE_MACHINE)
        if "incidents" in machine.name and "Sign-in: " in machine.inputs["definition"]
    )


def test_the_incident_runbook_of_the_health_alarms_says_where_sign_in_is_served(
    replicated: ProgramRun, single: ProgramRun
) -> None:
    """Only the runbook that reads the health checks (us-east-1, where Route 53's alarms live) can say
    where the domain serves sign-in; without a replica there is nothing to say."""
    assert replicated.of_type(DOMAIN), "managed login is on in the prod stack"
    [runbook] = _runbooks_mentioning_sign_in(replicated)
    assert "us-east-1" in runbook
    definition = replicated.named(runbook).inputs["definition"]
    assert f"failed over to the replica in {SECONDARY}" in definition
    assert _runbooks_mentioning_sign_in(single) == []
