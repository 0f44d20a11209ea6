"""The user pool replica and the pool's key/issuer settings through Pulumi's own provider server.

moto implements none of the replica operations, so the provider server talks (``AWS_ENDPOINT_URL``) to
a small stand-in of Cognito's JSON API below, which keeps the states Cognito documents: a new replica is
CREATING, then INACTIVE; UpdateUserPoolReplica sets ACTIVE or INACTIVE; DeleteUserPoolReplica accepts an
INACTIVE replica only (else InvalidParameterException), which is DELETING, then gone. Every request is
recorded, so the tests also prove which calls the provider makes and that the deployer may make them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.proto import provider_pb2

from components.dynamic.user_pool_replica import (
    DomainFailoverProvider,
    PoolReplicationSettingsProvider,
    UserPoolReplicaProvider,
)
from tests.iam_policy import POLICY_DIR, allows, deployer_context, deployer_policy, load_policy
from tests.json_api_server import json_api_server
from tests.provider_server import ProviderServer, plain, server_environment, with_provider

DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME

PRIMARY, SECONDARY = "us-east-1", "us-east-2"
ACCOUNT = "123456789012"
POOL_ID = f"{PRIMARY}_AbCdEf123"
KEY_ARN = f"arn:aws:kms:{PRIMARY}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
REPLICA_TOKEN = "dynamic/cognito:UserPoolReplica"
SETTINGS_TOKEN = "dynamic/cognito:PoolReplicationSettings"
DOMAIN = "dsql-users-api-prod-2a33349e"
TARGET_PREFIX = "AWSCognitoIdentityProviderService."


class FakeCognito:
    """The state behind the stand-in: one pool, its replicas, and the calls made."""

    def __init__(self, tier: str = "ESSENTIALS", eligible: bool = True) -> None:
        self.pool: dict[str, Any] | None = {
            "Id": POOL_ID,
            "Name": "dsql-users-api-prod",
            "Arn": f"arn:aws:cognito-idp:{PRIMARY}:{ACCOUNT}:userpool/{POOL_ID}",
            "UserPoolTier": tier,
            "DeletionProtection": "ACTIVE",
            "AutoVerifiedAttributes": ["email"],
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "PasswordHistorySize": 5,
                    "TemporaryPasswordValidityDays": 7,
                }
            },
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True, "UnusedAccountValidityDays": 7},
            "EstimatedNumberOfUsers": 3,
            "KeyConfiguration": {"KeyType": "AWS_OWNED_KEY"},
            "IssuerConfiguration": {"Type": "ORIGINAL"},
        }
        self.eligible = eligible
        self.replicas: dict[str, str] = {}
        self.domain: dict[str, Any] | None = {
            "Domain": DOMAIN,
            "UserPoolId": POOL_ID,
            "ManagedLoginVersion": 2,
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.calls.append((operation, body))
        if operation == "DescribeUserPoolDomain":  # by domain name; an unknown domain is an empty answer
            found = self.domain if self.domain and body["Domain"] == self.domain["Domain"] else {}
            return 200, {"DomainDescription": found}
        if self.pool is None or body.get("UserPoolId") != POOL_ID:
            return 400, {"__type": "ResourceNotFoundException", "message": "User pool does not exist."}
        if operation == "UpdateUserPoolDomain":
            if self.domain is None or body["Domain"] != self.domain["Domain"]:
                return 400, {"__type": "ResourceNotFoundException", "message": "Domain does not exist."}
            self.domain = {**self.domain, **{k: v for k, v in body.items() if k != "Domain"}}
            return 200, {"ManagedLoginVersion": body.get("ManagedLoginVersion")}
        if operation == "DescribeUserPool":
            return 200, {"UserPool": self.pool}
        if operation == "UpdateUserPool":
            self.pool = {
                **self.pool,
                **{k: v for k, v in body.items() if k not in ("UserPoolId", "PoolName")},
            }
            return 200, {}
        if operation == "ListUserPoolReplicas":
            for region, status in list(self.replicas.items()):  # time passes between two polls
                if status == "CREATING":
                    self.replicas[region] = "INACTIVE"
                elif status == "DELETING":
                    del self.replicas[region]
            replicas = [
                {
                    "RegionName": PRIMARY,
                    "Status": "ACTIVE",
                    "Role": "PRIMARY",
                    "UserPoolArn": self.pool["Arn"],
                }
            ]
            replicas += [self._replica(region, status) for region, status in self.replicas.items()]
            return 200, {"UserPoolReplicas": replicas}
        region = body["RegionName"]
        if operation == "CreateUserPoolReplica":
            if not self.eligible:
                return 400, {
                    "__type": "OperationNotEnabledException",
                    "message": "Multi-Region replication is not available for this user pool.",
                }
            self.replicas[region] = "CREATING"
            return 200, {"UserPoolReplica": self._replica(region, "CREATING")}
        if region not in self.replicas:
            return 400, {"__type": "ResourceNotFoundException", "message": "Replica does not exist."}
        if operation == "UpdateUserPoolReplica":
            self.replicas[region] = body["Status"]
        elif operation == "DeleteUserPoolReplica":
            if self.replicas[region] != "INACTIVE":
                return 400, {"__type": "InvalidParameterException", "message": "Replica must be INACTIVE."}
            self.replicas[region] = "DELETING"
        return 200, {"UserPoolReplica": self._replica(region, self.replicas[region])}

    def _replica(self, region: str, status: str) -> dict[str, Any]:
        arn = f"arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{POOL_ID}"
        return {"RegionName": region, "Status": status, "Role": "SECONDARY", "UserPoolArn": arn}

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


@pytest.fixture
def cognito() -> Iterator[tuple[FakeCognito, str]]:
    fake = FakeCognito()

    with json_api_server(
        lambda target, body, _: fake.handle(target.removeprefix(TARGET_PREFIX), body)
    ) as url:
        yield fake, url


@pytest.fixture
def provider_server(cognito: tuple[FakeCognito, str], tmp_path: Path) -> Iterator[ProviderServer]:
    server = ProviderServer(server_environment(cognito[1]), tmp_path / "server.log")
    try:
        server.configure({"dsql-users-api:primaryRegion": PRIMARY})
        yield server
    finally:
        server.stop()


REPLICA_PROPS = {
    "user_pool_id": POOL_ID,
    "primary_region": PRIMARY,
    "replica_region": SECONDARY,
    "deletion_protection": True,
    "tags": {"project": "dsql-users-api", "stack": "prod"},
    "timeout_seconds": 30,
    "poll_interval_seconds": 0.01,
}
SETTINGS_PROPS = {"user_pool_id": POOL_ID, "region": PRIMARY, "kms_key_arn": KEY_ARN}


def _create(server: ProviderServer, token: str, provider: Any, props: dict[str, Any]) -> tuple[str, dict]:
    inputs = with_provider(provider, props)
    checked = server.check(token, "users-identity-replication", {}, inputs)
    assert list(checked.failures) == []
    made = server.create(token, "users-identity-replication", checked.inputs)
    return made.id, plain(made.properties)


def test_the_pool_takes_the_key_and_issuer_without_losing_its_configuration(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    fake = cognito[0]
    made_id, outputs = _create(
        provider_server, SETTINGS_TOKEN, PoolReplicationSettingsProvider(), SETTINGS_PROPS
    )
    assert made_id == POOL_ID
    assert outputs["issuer_url"] == f"https://issuer-cognito-idp.{PRIMARY}.amazonaws.com/{POOL_ID}"
    [(_, update)] = [call for call in fake.calls if call[0] == "UpdateUserPool"]
    assert update["KeyConfiguration"] == {"KeyType": "CUSTOMER_MANAGED_KEY", "KmsKeyArn": KEY_ARN}
    assert update["IssuerConfiguration"] == {"Type": "UPDATED"}
    # UpdateUserPool resets what it is not given: the pool's own settings go with it, read-only ones do not.
    assert update["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert update["DeletionProtection"] == "ACTIVE" and update["UserPoolTier"] == "ESSENTIALS"
    assert "EstimatedNumberOfUsers" not in update and "Arn" not in update
    assert update["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}  # not with its replacement

    # Drift: the pool back on an AWS owned key reads as a diff, and the update sets the key again.
    assert fake.pool is not None
    fake.pool["KeyConfiguration"] = {"KeyType": "AWS_OWNED_KEY"}
    read = provider_server.read(
        SETTINGS_TOKEN, "users-identity-replication", made_id, outputs, SETTINGS_PROPS
    )
    drifted = plain(read.properties)
    assert read.id == made_id and drifted["kms_key_arn"] == ""
    news = with_provider(PoolReplicationSettingsProvider(), SETTINGS_PROPS)
    checked = provider_server.check(SETTINGS_TOKEN, "users-identity-replication", drifted, news)
    diff = provider_server.diff(
        SETTINGS_TOKEN, "users-identity-replication", made_id, drifted, checked.inputs, drifted
    )
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])
    provider_server.update(
        SETTINGS_TOKEN, "users-identity-replication", made_id, drifted, checked.inputs, drifted
    )
    assert fake.pool["KeyConfiguration"]["KmsKeyArn"] == KEY_ARN

    # Delete puts the pool back on an AWS owned key, so the KMS key can be scheduled for deletion.
    provider_server.delete(SETTINGS_TOKEN, "users-identity-replication", made_id, outputs)
    assert fake.pool["KeyConfiguration"] == {"KeyType": "AWS_OWNED_KEY"}
    assert fake.pool["IssuerConfiguration"] == {"Type": "UPDATED"}


def test_a_lite_pool_is_refused_with_how_to_proceed(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    assert cognito[0].pool is not None
    cognito[0].pool["UserPoolTier"] = "LITE"
    inputs = with_provider(PoolReplicationSettingsProvider(), SETTINGS_PROPS)
    checked = provider_server.check(SETTINGS_TOKEN, "users-identity-replication", {}, inputs)
    with pytest.raises(Exception, match="Lite plan") as caught:
        provider_server.create(SETTINGS_TOKEN, "users-identity-replication", checked.inputs)
    assert "pulumi config set authReplica false" in str(caught.value)
    assert "UpdateUserPool" not in cognito[0].operations()


def test_the_replica_is_created_made_active_read_repaired_and_deleted_only_unprotected(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    fake = cognito[0]
    made_id, outputs = _create(provider_server, REPLICA_TOKEN, UserPoolReplicaProvider(), REPLICA_PROPS)
    assert made_id == f"{POOL_ID}@{SECONDARY}"
    assert outputs["status"] == "ACTIVE"
    assert outputs["user_pool_arn"] == f"arn:aws:cognito-idp:{SECONDARY}:{ACCOUNT}:userpool/{POOL_ID}"
    [(_, created)] = [call for call in fake.calls if call[0] == "CreateUserPoolReplica"]
    assert created == {"UserPoolId": POOL_ID, "RegionName": SECONDARY, "UserPoolTags": REPLICA_PROPS["tags"]}
    assert (
        "UpdateUserPoolReplica",
        {"UserPoolId": POOL_ID, "RegionName": SECONDARY, "Status": "ACTIVE"},
    ) in fake.calls

    # Refresh: an ACTIVE replica reads as it is.
    read = provider_server.read(REPLICA_TOKEN, "users-identity-replication", made_id, outputs, REPLICA_PROPS)
    assert read.id == made_id and plain(read.properties)["status"] == "ACTIVE"

    # Drift: deactivated behind the stack's back, it is a diff, and the update activates it again.
    fake.replicas[SECONDARY] = "INACTIVE"
    read = provider_server.read(REPLICA_TOKEN, "users-identity-replication", made_id, outputs, REPLICA_PROPS)
    drifted = plain(read.properties)
    assert drifted["status"] == "INACTIVE"
    news = provider_server.check(
        REPLICA_TOKEN,
        "users-identity-replication",
        drifted,
        with_provider(UserPoolReplicaProvider(), REPLICA_PROPS),
    ).inputs
    diff = provider_server.diff(REPLICA_TOKEN, "users-identity-replication", made_id, drifted, news, drifted)
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])
    updated = provider_server.update(
        REPLICA_TOKEN, "users-identity-replication", made_id, drifted, news, drifted
    )
    assert plain(updated.properties)["status"] == "ACTIVE" and fake.replicas[SECONDARY] == "ACTIVE"

    # Deleted behind the stack's back: it reads as gone, and the next create makes it again.
    del fake.replicas[SECONDARY]
    gone = provider_server.read(REPLICA_TOKEN, "users-identity-replication", made_id, outputs, REPLICA_PROPS)
    assert gone.id == ""
    made_again, _ = _create(provider_server, REPLICA_TOKEN, UserPoolReplicaProvider(), REPLICA_PROPS)
    assert made_again == made_id and fake.replicas[SECONDARY] == "ACTIVE"

    # Deletion protection: refused before any call.
    before = len(fake.calls)
    with pytest.raises(Exception, match="deletion protection is on") as caught:
        provider_server.delete(REPLICA_TOKEN, "users-identity-replication", made_id, outputs)
    assert "pulumi config set deletionProtection false" in str(caught.value)
    assert len(fake.calls) == before

    # Unprotected: deactivated, deleted (Cognito deletes INACTIVE replicas only) and waited for.
    provider_server.delete(
        REPLICA_TOKEN, "users-identity-replication", made_id, {**outputs, "deletion_protection": False}
    )
    assert SECONDARY not in fake.replicas
    tail = [op for op in fake.operations()[before:] if op != "ListUserPoolReplicas"]
    assert tail == ["UpdateUserPoolReplica", "DeleteUserPoolReplica"]
    # Safe to run twice: nothing left to delete.
    provider_server.delete(
        REPLICA_TOKEN, "users-identity-replication", made_id, {**outputs, "deletion_protection": False}
    )


def test_a_pool_that_is_not_eligible_fails_with_how_to_proceed(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    cognito[0].eligible = False
    inputs = with_provider(UserPoolReplicaProvider(), REPLICA_PROPS)
    checked = provider_server.check(REPLICA_TOKEN, "users-identity-replication", {}, inputs)
    with pytest.raises(Exception, match="not available for every user pool") as caught:
        provider_server.create(REPLICA_TOKEN, "users-identity-replication", checked.inputs)
    assert "pulumi config set authReplica false" in str(caught.value)
    assert cognito[0].replicas == {}


def test_check_refuses_a_key_that_is_not_multi_region_and_one_region_for_both() -> None:
    settings = PoolReplicationSettingsProvider().check(
        {}, {**SETTINGS_PROPS, "kms_key_arn": "arn:aws:kms:x:1:key/abc"}
    )
    assert [f.property for f in settings.failures] == ["kms_key_arn"]
    replica = UserPoolReplicaProvider().check(
        {}, {**REPLICA_PROPS, "replica_region": PRIMARY, "timeout_seconds": 0}
    )
    assert [f.property for f in replica.failures] == ["replica_region", "timeout_seconds"]


FAILOVER_TOKEN = "dynamic/cognito:DomainFailover"
FAILOVER_PROPS = {
    "domain": DOMAIN,
    "user_pool_id": POOL_ID,
    "region": PRIMARY,
    "managed_login_version": 2,
    "health_check_id": "abcdef01-2345-6789-abcd-ef0123456789",
    "secondary_region": SECONDARY,
    "certificate_arn": "",
}


def test_the_domain_fails_over_is_read_repaired_and_stops_failing_over_on_delete(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    fake = cognito[0]
    made_id, outputs = _create(provider_server, FAILOVER_TOKEN, DomainFailoverProvider(), FAILOVER_PROPS)
    wanted = {
        "Failover": {
            "PrimaryRoute53HealthCheckId": FAILOVER_PROPS["health_check_id"],
            "SecondaryRegion": SECONDARY,
        }
    }
    [(_, update)] = [call for call in fake.calls if call[0] == "UpdateUserPoolDomain"]
    # The domain's own settings go with it (UpdateUserPoolDomain sets what it is given).
    assert update == {"Domain": DOMAIN, "UserPoolId": POOL_ID, "ManagedLoginVersion": 2, "Routing": wanted}
    read = provider_server.read(
        FAILOVER_TOKEN, "users-login-domain-failover", made_id, outputs, FAILOVER_PROPS
    )
    assert read.id == made_id and plain(read.properties)["secondary_region"] == SECONDARY

    # Drift: routing removed behind the stack's back reads as a diff; the update restores it.
    assert fake.domain is not None
    fake.domain["Routing"] = {}
    read = provider_server.read(
        FAILOVER_TOKEN, "users-login-domain-failover", made_id, outputs, FAILOVER_PROPS
    )
    drifted = plain(read.properties)
    news = provider_server.check(
        FAILOVER_TOKEN,
        "users-login-domain-failover",
        drifted,
        with_provider(DomainFailoverProvider(), FAILOVER_PROPS),
    ).inputs
    diff = provider_server.diff(
        FAILOVER_TOKEN, "users-login-domain-failover", made_id, drifted, news, drifted
    )
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])
    provider_server.update(FAILOVER_TOKEN, "users-login-domain-failover", made_id, drifted, news, drifted)
    assert fake.domain["Routing"] == wanted

    # Delete turns the failover off; a deleted domain reads as gone and deletes as nothing.
    provider_server.delete(FAILOVER_TOKEN, "users-login-domain-failover", made_id, outputs)
    assert fake.domain["Routing"] == {}
    fake.domain = None
    gone = provider_server.read(
        FAILOVER_TOKEN, "users-login-domain-failover", made_id, outputs, FAILOVER_PROPS
    )
    assert gone.id == ""
    provider_server.delete(FAILOVER_TOKEN, "users-login-domain-failover", made_id, outputs)
    assert all(_deployer_may(["UpdateUserPoolDomain", "DescribeUserPoolDomain"]).values())


# ---------------------------------------------------------------- the deployer's policy


def _deployer_may(operations: list[str], context: dict[str, Any] | None = None) -> dict[str, bool]:
    policy = deployer_policy()
    context = context if context is not None else deployer_context(ACCOUNT)
    pool_arn = f"arn:aws:cognito-idp:{PRIMARY}:{ACCOUNT}:userpool/{POOL_ID}"
    return {op: allows(policy, f"cognito-idp:{op}", pool_arn, context) for op in sorted(set(operations))}


def test_the_deployer_may_make_exactly_the_providers_calls_and_only_on_this_projects_pools(
    cognito: tuple[FakeCognito, str], provider_server: ProviderServer
) -> None:
    fake = cognito[0]
    made_id, outputs = _create(
        provider_server, SETTINGS_TOKEN, PoolReplicationSettingsProvider(), SETTINGS_PROPS
    )
    provider_server.delete(SETTINGS_TOKEN, "users-identity-replication", made_id, outputs)
    props = {**REPLICA_PROPS, "deletion_protection": False}
    made_id, outputs = _create(provider_server, REPLICA_TOKEN, UserPoolReplicaProvider(), props)
    provider_server.read(REPLICA_TOKEN, "users-identity-replication", made_id, outputs, props)
    provider_server.delete(REPLICA_TOKEN, "users-identity-replication", made_id, outputs)
    calls = fake.operations()
    assert set(calls) == {
        "DescribeUserPool",
        "UpdateUserPool",
        "ListUserPoolReplicas",
        "CreateUserPoolReplica",
        "UpdateUserPoolReplica",
        "DeleteUserPoolReplica",
    }
    assert all(_deployer_may(calls).values()), _deployer_may(calls)
    # Exactly: the policy names no replica operation the provider does not call.
    replica_actions = {
        action.split(":", 1)[1]
        for statement in deployer_policy()["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action.startswith("cognito-idp:") and "Replica" in action
    }
    assert replica_actions == {op for op in calls if "Replica" in op}
    # Another project's pool: nothing that changes it.
    other = {**deployer_context(ACCOUNT), "aws:ResourceTag/project": "another-project"}
    changes = [op for op in calls if not op.startswith(("Describe", "List"))]
    assert not any(_deployer_may(changes, other).values()), _deployer_may(changes, other)


KEY_ACTIONS = [
    "kms:DescribeKey",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReplicateKey",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
]


def test_the_deployer_may_manage_the_multi_region_key_and_its_replica_of_this_project_only() -> None:
    policy = deployer_policy()
    context = {**deployer_context(ACCOUNT), "kms:MultiRegion": "true"}
    assert allows(policy, "kms:CreateKey", "*", context)  # in both regions: ReplicateKey creates a key too
    assert not allows(policy, "kms:CreateKey", "*", {**context, "aws:RequestTag/project": "another-project"})
    # Only multi-Region keys: the program makes no other kind.
    assert not allows(policy, "kms:CreateKey", "*", {**context, "kms:MultiRegion": "false"})
    for region in (PRIMARY, SECONDARY):
        key = f"arn:aws:kms:{region}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        for action in KEY_ACTIONS:
            assert allows(policy, action, key, context), (action, region)
            other = {k: v for k, v in context.items() if k != "aws:RequestTag/project"}
            other["aws:ResourceTag/project"] = "another-project"
            assert not allows(policy, action, key, other), (action, region)
        # Not even the tag that would bring another project's key into reach.
        retag = {**context, "aws:ResourceTag/project": "another-project"}
        assert not allows(policy, "kms:TagResource", key, retag), region
        # Nor a single-Region key, even one tagged for this project (a request without tags).
        single_region = key.replace("mrk-", "")
        untagged_request = {k: v for k, v in context.items() if k != "aws:RequestTag/project"}
        for action in KEY_ACTIONS:
            single = {**untagged_request, "kms:MultiRegion": "false"}
            assert not allows(policy, action, single_region, single), (action, region)


def test_the_previewer_may_make_the_reads_of_a_refresh() -> None:
    """`refresh: always` runs every read above under the previewer role too."""
    previewer = load_policy(POLICY_DIR / "previewer.json")
    context = deployer_context(ACCOUNT)
    pool_arn = f"arn:aws:cognito-idp:{PRIMARY}:{ACCOUNT}:userpool/{POOL_ID}"
    for action in ("DescribeUserPool", "ListUserPoolReplicas"):
        assert allows(previewer, f"cognito-idp:{action}", pool_arn, context), action
    assert allows(previewer, "cognito-idp:DescribeUserPoolDomain", "*", context)
    for region in (PRIMARY, SECONDARY):
        key = f"arn:aws:kms:{region}:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        for action in (
            "kms:DescribeKey",
            "kms:GetKeyPolicy",
            "kms:GetKeyRotationStatus",
            "kms:ListResourceTags",
        ):
            assert allows(previewer, action, key, context), action
    for action in ("cognito-idp:UpdateUserPoolReplica", "cognito-idp:UpdateUserPool"):
        assert not allows(previewer, action, pool_arn, context), action
