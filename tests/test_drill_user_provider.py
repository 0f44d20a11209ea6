"""The failover drill's user (components/dynamic/drill_user.py) through Pulumi's own provider server,
against moto (its Cognito and Secrets Manager) as a separate ``moto_server`` process.

Proven: create makes a CONFIRMED user whose random password meets the pool's policy, signs in (moto's
InitiateAuth USER_PASSWORD_AUTH) and is only in the secret; refresh reads status and enabled; a user
disabled or reset behind the stack's back is a diff that the update repairs with a new password; a
deleted user reads as gone; delete is safe twice; a create whose secret cannot be written leaves no user
behind; bad inputs fail Check naming the key; the password is in no response and no log line. The
calls of a whole life, recorded in-process, are exactly what the deployer's policy allows, and only
in this stack's pool.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pulumi.runtime.proto import provider_pb2

from components.dynamic import aws_session
from components.dynamic.drill_user import DrillUserProvider, password_request
from components.identity import PASSWORD_POLICY
from tests.aws_calls import CallLog, record_sessions
from tests.iam_policy import POLICY_DIR, allows, deployer_context, deployer_policy, load_policy
from tests.provider_server import MotoServer, ProviderServer, plain, server_environment, with_provider

DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME
REGION, SECONDARY = "us-east-1", "us-east-2"
ACCOUNT = "123456789012"
TOKEN = "dynamic/cognito:DrillUser"
NAME = "users-api-drill-user"
USERNAME = "dsql-users-api-test-failover-drill@example.com"
SYMBOLS = r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""


def _pool_and_secret(client_kwargs: dict[str, Any]) -> dict[str, str]:
    """A pool shaped like components/identity.py's (e-mail usernames, its password policy), an app
    client with the drill's flows, and the secret."""
    cognito = boto3.client("cognito-idp", region_name=REGION, **client_kwargs)
    pool = cognito.create_user_pool(
        PoolName="dsql-users-api-test-users",
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        Policies={
            "PasswordPolicy": {
                "MinimumLength": int(PASSWORD_POLICY["minimum_length"]),
                "RequireLowercase": True,
                "RequireUppercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
    )["UserPool"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName="users-api-drill",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    secret = boto3.client("secretsmanager", region_name=REGION, **client_kwargs).create_secret(
        Name=f"dsql-users-api-test-failover-drill-{uuid.uuid4().hex[:8]}"  # one moto server, many tests
    )
    return {"pool_id": pool["Id"], "client_id": client["ClientId"], "secret_arn": secret["ARN"]}


def _props(made: dict[str, str], **changes: Any) -> dict[str, Any]:
    return {
        "user_pool_id": made["pool_id"],
        "region": REGION,
        "username": USERNAME,
        "secret_arn": made["secret_arn"],
        "password_policy": dict(PASSWORD_POLICY),
        **changes,
    }


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> dict[str, Any]:
    """Clients of the moto server, and a fresh pool, client and secret in it."""
    kwargs = {
        "endpoint_url": moto_server.url,
        "aws_access_key_id": "AKIAENGINETESTS00001",
        "aws_secret_access_key": "engine-test-secret",
    }
    return {
        **_pool_and_secret(kwargs),
        "cognito": boto3.client("cognito-idp", region_name=REGION, **kwargs),
        "secrets": boto3.client("secretsmanager", region_name=REGION, **kwargs),
    }


@pytest.fixture
def server(moto_server: MotoServer, tmp_path: Path) -> Iterator[tuple[ProviderServer, Path]]:
    log = tmp_path / "server.log"
    provider_server = ProviderServer(server_environment(moto_server.url), log)
    try:
        provider_server.configure({"dsql-users-api:primaryRegion": REGION})
        yield provider_server, log
    finally:
        provider_server.stop()


def _secret(aws: dict[str, Any]) -> dict[str, str]:
    value: dict[str, str] = json.loads(
        aws["secrets"].get_secret_value(SecretId=aws["secret_arn"])["SecretString"]
    )
    return value


def _signs_in(aws: dict[str, Any], password: str) -> bool:
    answer = aws["cognito"].initiate_auth(
        ClientId=aws["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": USERNAME, "PASSWORD": password},
    )
    return "IdToken" in answer.get("AuthenticationResult", {})


def _meets_the_policy(password: str) -> bool:
    return (
        len(password) >= max(32, int(PASSWORD_POLICY["minimum_length"]))
        and re.search(r"[a-z]", password) is not None
        and re.search(r"[A-Z]", password) is not None
        and re.search(r"[0-9]", password) is not None
        and any(ch in SYMBOLS for ch in password)
        and " " not in password
    )


def _create(server: ProviderServer, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    checked = server.check(TOKEN, NAME, {}, with_provider(DrillUserProvider(), props))
    assert list(checked.failures) == []
    made = server.create(TOKEN, NAME, checked.inputs)
    return made.id, plain(made.properties)


def test_create_makes_a_confirmed_user_whose_password_is_only_in_the_secret(
    aws: dict[str, Any], server: tuple[ProviderServer, Path]
) -> None:
    provider_server, log = server
    made_id, outputs = _create(provider_server, _props(aws))
    assert made_id == f"{aws['pool_id']}/{USERNAME}"
    assert (outputs["user_status"], outputs["enabled"]) == ("CONFIRMED", True)
    user = aws["cognito"].admin_get_user(UserPoolId=aws["pool_id"], Username=USERNAME)
    assert user["UserStatus"] == "CONFIRMED"
    attributes = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert attributes["email"] == USERNAME and attributes["email_verified"] == "true"
    groups = aws["cognito"].admin_list_groups_for_user(UserPoolId=aws["pool_id"], Username=USERNAME)
    assert groups["Groups"] == []
    secret = _secret(aws)
    assert secret["username"] == USERNAME and _meets_the_policy(secret["password"])
    assert _signs_in(aws, secret["password"])
    # Never in what the engine keeps or shows.
    assert secret["password"] not in json.dumps(outputs)
    assert "password" not in outputs and set(outputs) >= {"user_status", "enabled", "secret_arn"}
    assert secret["password"] not in log.read_text()


def test_refresh_reads_status_repairs_drift_and_sees_a_deleted_user_as_gone(
    aws: dict[str, Any], server: tuple[ProviderServer, Path]
) -> None:
    provider_server, log = server
    props = _props(aws)
    made_id, outputs = _create(provider_server, props)
    read = provider_server.read(TOKEN, NAME, made_id, outputs, props)
    assert read.id == made_id and plain(read.properties)["user_status"] == "CONFIRMED"

    # Disabled behind the stack's back: a diff, and the update enables it with a new password.
    first = _secret(aws)["password"]
    aws["cognito"].admin_disable_user(UserPoolId=aws["pool_id"], Username=USERNAME)
    drifted = plain(provider_server.read(TOKEN, NAME, made_id, outputs, props).properties)
    assert drifted["enabled"] is False
    news = provider_server.check(TOKEN, NAME, drifted, with_provider(DrillUserProvider(), props)).inputs
    diff = provider_server.diff(TOKEN, NAME, made_id, drifted, news, drifted)
    assert (diff.changes, list(diff.replaces)) == (DIFF_SOME, [])
    updated = plain(provider_server.update(TOKEN, NAME, made_id, drifted, news, drifted).properties)
    assert updated["enabled"] is True
    second = _secret(aws)["password"]
    assert second != first and _signs_in(aws, second)
    assert second not in log.read_text() and second not in json.dumps(updated)

    # A new username is a new user (replace); the same inputs plan nothing.
    same = provider_server.diff(TOKEN, NAME, made_id, updated, news, updated)
    assert same.changes != DIFF_SOME
    renamed = provider_server.check(
        TOKEN, NAME, updated, with_provider(DrillUserProvider(), _props(aws, username="other@example.com"))
    ).inputs
    assert list(provider_server.diff(TOKEN, NAME, made_id, updated, renamed, updated).replaces) == [
        "username"
    ]

    # Deleted behind the stack's back: gone, and the next create makes it again.
    aws["cognito"].admin_delete_user(UserPoolId=aws["pool_id"], Username=USERNAME)
    assert provider_server.read(TOKEN, NAME, made_id, outputs, props).id == ""
    again, _ = _create(provider_server, props)
    assert again == made_id and _signs_in(aws, _secret(aws)["password"])


def test_delete_removes_the_user_and_is_safe_twice(
    aws: dict[str, Any], server: tuple[ProviderServer, Path]
) -> None:
    provider_server, _ = server
    made_id, outputs = _create(provider_server, _props(aws))
    provider_server.delete(TOKEN, NAME, made_id, outputs)
    with pytest.raises(aws["cognito"].exceptions.UserNotFoundException):
        aws["cognito"].admin_get_user(UserPoolId=aws["pool_id"], Username=USERNAME)
    provider_server.delete(TOKEN, NAME, made_id, outputs)  # nothing left: fine


def test_a_create_whose_secret_cannot_be_written_leaves_no_user_and_no_password_in_the_error(
    aws: dict[str, Any], server: tuple[ProviderServer, Path]
) -> None:
    provider_server, _ = server
    missing = aws["secret_arn"].rsplit(":", 1)[0] + ":not-a-secret-AbCdEf"
    inputs = with_provider(DrillUserProvider(), _props(aws, secret_arn=missing))
    checked = provider_server.check(TOKEN, NAME, {}, inputs)
    with pytest.raises(Exception, match="PutSecretValue") as caught:
        provider_server.create(TOKEN, NAME, checked.inputs)
    assert "ResourceNotFoundException" in str(caught.value)
    with pytest.raises(aws["cognito"].exceptions.UserNotFoundException):
        aws["cognito"].admin_get_user(UserPoolId=aws["pool_id"], Username=USERNAME)


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"user_pool_id": "not a pool"}, "user_pool_id", "user pool ID"),
        ({"region": "Virginia"}, "region", "pool's region"),
        ({"username": "failover-drill"}, "username", "e-mail address"),
        ({"secret_arn": "arn:aws:s3:::bucket"}, "secret_arn", "Secrets Manager secret"),
        (
            {"secret_arn": f"arn:aws:secretsmanager:{SECONDARY}:{ACCOUNT}:secret:x-AbCdEf"},
            "secret_arn",
            "a replica is read-only",
        ),
        ({"password_policy": {**PASSWORD_POLICY, "minimum_length": 200}}, "password_policy", "6 to 99"),
        ({"password_policy": {**PASSWORD_POLICY, "max_length": 20}}, "password_policy", "cannot be checked"),
        ({"password_policy": "strong"}, "password_policy", "PASSWORD_POLICY"),
    ],
)
def test_bad_inputs_fail_check_naming_the_key(change: dict[str, Any], key: str, reason: str) -> None:
    good = {
        "user_pool_id": f"{REGION}_AbCdEf123",
        "region": REGION,
        "username": USERNAME,
        "secret_arn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x-AbCdEf",
        "password_policy": dict(PASSWORD_POLICY),
    }
    assert DrillUserProvider().check({}, good).failures == []
    failures = DrillUserProvider().check({}, {**good, **change}).failures
    assert [f.property for f in failures] == [key]
    assert reason in failures[0].reason


def test_unknown_inputs_pass_check_in_a_preview(
    aws: dict[str, Any], server: tuple[ProviderServer, Path]
) -> None:
    provider_server, _ = server
    from tests.provider_server import UNKNOWN

    inputs = with_provider(DrillUserProvider(), _props(aws, user_pool_id=UNKNOWN, secret_arn=UNKNOWN))
    assert list(provider_server.check(TOKEN, NAME, {}, inputs).failures) == []


def test_the_random_password_request_follows_the_pools_policy() -> None:
    assert password_request(PASSWORD_POLICY) == {
        "PasswordLength": 32,
        "IncludeSpace": False,
        "RequireEachIncludedType": True,
    }
    assert password_request({**PASSWORD_POLICY, "minimum_length": 64})["PasswordLength"] == 64


# ---------------------------------------------------------------- the deployer's policy


def test_the_deployer_may_make_exactly_the_calls_of_a_whole_life_and_only_in_the_stacks_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = CallLog()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPOLICYTEST000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "policy-test")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(config={"core": {"mock_credentials": False}}):
        made = _pool_and_secret({})
        monkeypatch.setattr(aws_session, "base_session", record_sessions(aws_session.base_session, log))
        provider = DrillUserProvider()
        props = provider.check({}, _props(made)).inputs
        created = provider.create(props)
        boto3.client("cognito-idp", region_name=REGION).admin_disable_user(
            UserPoolId=made["pool_id"], Username=USERNAME
        )
        drifted = provider.read(created.id, created.outs or {}).outs or {}
        provider.update(created.id, drifted, props)
        provider.delete(created.id, created.outs or {})
    names = {call.name for call in log.calls}
    assert names == {
        "secretsmanager:GetRandomPassword",
        "secretsmanager:PutSecretValue",
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminSetUserPassword",
        "cognito-idp:AdminGetUser",
        "cognito-idp:AdminEnableUser",
        "cognito-idp:AdminDeleteUser",
    }
    policy, context = deployer_policy(), deployer_context(ACCOUNT)
    pool = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{made['pool_id']}"
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dsql-users-api-prod-failover-drill-AbCdEf"

    def resource(name: str) -> str:
        if name == "secretsmanager:GetRandomPassword":
            return "*"  # no resource type (Service Authorization Reference)
        return secret if name.startswith("secretsmanager:") else pool

    assert [n for n in sorted(names) if not allows(policy, n, resource(n), context)] == []
    # Exactly: the deployer's policies name no other user operation in the pool.
    user_actions = {
        action
        for statement in policy["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action.startswith("cognito-idp:Admin")
    }
    assert user_actions == {n for n in names if n.startswith("cognito-idp:")}
    # Never in another stack's or another project's pool, nor another project's secret.
    for other in (
        {**context, "aws:ResourceTag/stack": "dev"},
        {**context, "aws:ResourceTag/project": "another-project"},
    ):
        assert not [n for n in names if n.startswith("cognito-idp:") and allows(policy, n, pool, other)]
    foreign_secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:someone-else-AbCdEf"
    assert not allows(policy, "secretsmanager:PutSecretValue", foreign_secret, context)
    assert not allows(policy, "cognito-idp:AdminAddUserToGroup", pool, context)
    # A refresh under the previewer role reads the user too.
    previewer = load_policy(POLICY_DIR / "previewer.json")
    assert allows(previewer, "cognito-idp:AdminGetUser", pool, {"aws:PrincipalAccount": ACCOUNT})
