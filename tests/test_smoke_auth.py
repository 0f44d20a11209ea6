"""The smoke command authenticates: a throwaway Cognito user through the admin APIs (moto's cognito-idp),
an operator's --token, or the local app's issuer; and it fails, naming the checks, without a token."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from psycopg.conninfo import make_conninfo

from local.auth import LocalIssuer, container_env
from local.launcher import LocalApp, start_local_app
from tools import smoke, smoke_auth

REGION = "us-east-1"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, smoke_auth.CognitoTarget]]:
    """A pool shaped like components/identity.py's: email username, admins group, an admin-auth client."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("cognito-idp", region_name=REGION)
        pool = client.create_user_pool(PoolName="users", UsernameAttributes=["email"])["UserPool"]["Id"]
        client.create_group(UserPoolId=pool, GroupName="admins")
        app_client = client.create_user_pool_client(
            UserPoolId=pool,
            ClientName="smoke",
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        yield client, smoke_auth.CognitoTarget(pool, app_client)


def test_a_throwaway_admin_user_signs_in_and_is_deleted(
    cognito: tuple[Any, smoke_auth.CognitoTarget],
) -> None:
    client, target = cognito
    assert target.region == REGION
    with smoke_auth.throwaway_cognito_token(target, "run1") as token:
        claims = claims_of(token)
        assert claims["token_use"] == "id"
        assert claims["email"] == "smoke-run1@example.com"
        assert claims["cognito:groups"] == ["admins"]
        assert claims["aud"] == target.client_id
        assert len(client.list_users(UserPoolId=target.user_pool_id)["Users"]) == 1
    assert client.list_users(UserPoolId=target.user_pool_id)["Users"] == []


def test_the_throwaway_user_is_deleted_when_the_run_fails(
    cognito: tuple[Any, smoke_auth.CognitoTarget],
) -> None:
    client, target = cognito
    with (
        pytest.raises(RuntimeError, match="smoke run broke"),
        smoke_auth.throwaway_cognito_token(target, "run2"),
    ):
        raise RuntimeError("smoke run broke")
    assert client.list_users(UserPoolId=target.user_pool_id)["Users"] == []


def test_a_client_without_admin_password_auth_is_a_clear_error_and_leaves_no_user(
    cognito: tuple[Any, smoke_auth.CognitoTarget],
) -> None:
    client, target = cognito
    wrong = smoke_auth.CognitoTarget(target.user_pool_id, "nosuchclient")
    with (
        pytest.raises(smoke_auth.SmokeAuthError, match="Cognito AdminInitiateAuth failed"),
        smoke_auth.throwaway_cognito_token(wrong, "run3"),
    ):
        pytest.fail("no token expected")
    assert client.list_users(UserPoolId=target.user_pool_id)["Users"] == []


def test_the_stacks_outputs_name_the_pool_and_the_smoke_client() -> None:
    target = smoke_auth.cognito_from_outputs({"userPoolId": "eu-west-1_Abc", "userPoolSmokeClientId": "c1"})
    assert target == smoke_auth.CognitoTarget("eu-west-1_Abc", "c1")
    assert target.region == "eu-west-1"
    assert smoke_auth.cognito_from_outputs({"primaryInvokeUrl": "https://x"}) is None  # authMode none
    with pytest.raises(smoke_auth.SmokeAuthError, match="userPoolSmokeClientId"):
        smoke_auth.cognito_from_outputs({"userPoolId": "eu-west-1_Abc"})


def test_random_passwords_have_every_class() -> None:
    for _ in range(50):
        password = smoke_auth.random_password()
        assert len(password) == 32
        assert any(c.isupper() for c in password) and any(c.islower() for c in password)
        assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)


# ---------------------------------------------------------------- against the local app, with auth on


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    return LocalIssuer.create()


@pytest.fixture(scope="module")
def authenticated_regions(module_migrated_database_url: str, issuer: LocalIssuer) -> Iterator[LocalApp]:
    with start_local_app(
        make_conninfo(module_migrated_database_url, user="users_api"),
        [("us-east-1", 0), ("us-east-2", 0)],
        env=container_env(issuer),
    ) as app:
        yield app


def _ports(app: LocalApp) -> str:
    return " ".join(f"{name}={url.rsplit(':', 1)[1]}" for name, url in app.urls.items())


def test_smoke_passes_with_the_local_issuers_admin_token(
    authenticated_regions: LocalApp, issuer: LocalIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer_file = tmp_path / "issuer.json"
    issuer.save(issuer_file)
    assert smoke.main(["--ports", _ports(authenticated_regions), "--issuer-file", str(issuer_file)]) == 0
    out = capsys.readouterr().out
    assert "authentication: an admin token of the local app's issuer" in out
    assert "smoke: passed all" in out


def test_smoke_passes_with_an_operators_token(
    authenticated_regions: LocalApp, issuer: LocalIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issuer.token("operator", email="operator@example.com", admin=True)
    assert smoke.main([*authenticated_regions.urls.values(), "--token", token]) == 0
    assert "smoke: passed all" in capsys.readouterr().out


def test_without_a_token_the_data_checks_fail_by_name(
    authenticated_regions: LocalApp, issuer: LocalIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke.main(list(authenticated_regions.urls.values())) == 1
    out = capsys.readouterr().out
    assert "PASS  health[region-1]" in out  # /health stays open
    assert "FAIL  read-other-region" in out and "401" in out


def test_a_non_admin_token_fails_the_smoke_test(
    authenticated_regions: LocalApp, issuer: LocalIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issuer.token("plain", email="smoke-plain@example.com")
    assert smoke.main([*authenticated_regions.urls.values(), "--token", token]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_a_missing_issuer_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--ports", "a=1 b=2", "--issuer-file", str(tmp_path / "none.json")]) == 2
    assert "no local issuer there" in capsys.readouterr().err


def test_from_stack_signs_a_throwaway_user_in_through_the_stacks_smoke_client(
    authenticated_regions: LocalApp,
    issuer: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The wiring of --from-stack: the stack's pool and smoke client reach the throwaway-user step, and
    its token goes with every request (the Cognito calls themselves are tested against moto above)."""
    east_1, east_2 = authenticated_regions.urls.values()
    outputs = {
        "primaryInvokeUrl": east_1,
        "secondaryInvokeUrl": east_2,
        "userPoolId": "us-east-1_Pool1",
        "userPoolSmokeClientId": "smokeclient",
    }
    used: list[smoke_auth.CognitoTarget] = []
    clients: list[Any] = []

    @contextlib.contextmanager
    def fake_throwaway(target: smoke_auth.CognitoTarget, run_id: str, cognito: Any = None) -> Iterator[str]:
        used.append(target)
        clients.append(cognito)
        yield issuer.token(f"smoke-{run_id}", email=f"smoke-{run_id}@example.com", admin=True)

    monkeypatch.setattr(smoke, "stack_outputs", lambda stack: outputs)
    monkeypatch.setattr(smoke_auth, "throwaway_cognito_token", fake_throwaway)
    assert smoke.main(["--from-stack"]) == 0
    assert used == [smoke_auth.CognitoTarget("us-east-1_Pool1", "smokeclient")]
    # A cognito-idp client of the pool's own region (the ambient identity: no awsProfile given).
    assert [(c.meta.service_model.service_name, c.meta.region_name) for c in clients] == [
        ("cognito-idp", "us-east-1")
    ]
    assert "a throwaway admin user of us-east-1_Pool1" in capsys.readouterr().out
