"""smokeAfterDeploy: `pulumi up` ends with the smoke checks (a pulumi-command Command), as the deploying
identity, and the command it stores is the same on every checkout."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from components.smoke_check import project_python, smoke_command
from tests.iam_policy import POLICY_DIR, allows, deployer_context
from tests.pulumi_harness import ACCOUNT, run_program
from tests.test_smoke_auth import cognito  # noqa: F401 - the moto user pool fixture
from tools import smoke_auth

COMMAND = "command:local:Command"
COMMAND_PROVIDER = "pulumi:providers:command"


def test_off_by_default_in_prod() -> None:
    assert run_program().of_type(COMMAND) == []


def test_the_dev_stack_checks_both_regions_after_every_deployment() -> None:
    run = run_program(stack="dev")
    (check,) = run.of_type(COMMAND)
    words = shlex.split(check.inputs["create"])
    assert words[:3] == [".venv/bin/python", "-m", "tools.smoke"]
    urls = run.outputs["invokeUrls"]
    assert words[3:5] == [urls["us-east-1"], urls["us-east-2"]]
    # A throwaway admin through the stack's smoke client, never the public one.
    assert words[words.index("--user-pool-id") + 1] == run.outputs["userPoolId"]
    assert words[words.index("--client-id") + 1] == run.outputs["userPoolSmokeClientId"]
    assert run.outputs["userPoolSmokeClientId"] != run.outputs["userPoolClientId"]
    # It runs again when the code, the layer or the schema changes, after both regional apps exist.
    code = run.one("aws:lambda/function:Function", "us-east-1").inputs["sourceCodeHash"]
    assert code in check.inputs["triggers"]
    assert run.outputs["schemaVersion"] in check.inputs["triggers"]
    assert sorted(run.depends_on[check.name]) == ["users-api-us-east-1", "users-api-us-east-2"]
    # Through an explicit command provider: the default one is disabled in every stack file.
    assert check.provider and check.provider.split("::")[2].endswith(COMMAND_PROVIDER)


def test_the_checks_run_as_the_deploying_identity() -> None:
    role = "arn:aws:iam::123456789012:role/users-api-deployer"
    run = run_program({"smokeAfterDeploy": "true", "awsProfile": "deploy", "awsAssumeRoleArn": role})
    words = shlex.split(run.one(COMMAND).inputs["create"])
    assert words[words.index("--aws-profile") + 1] == "deploy"
    assert words[words.index("--assume-role-arn") + 1] == role


def test_an_open_api_is_checked_without_a_token() -> None:
    # authReplica (on in prod) needs a pool: off with authMode none.
    run = run_program({"smokeAfterDeploy": "true", "authMode": "none", "authReplica": False})
    assert "--user-pool-id" not in run.one(COMMAND).inputs["create"]


def test_the_stored_command_does_not_depend_on_where_the_checkout_is(tmp_path: Path) -> None:
    assert project_python(str(tmp_path / ".venv/bin/python"), tmp_path) == ".venv/bin/python"
    assert project_python("/usr/bin/python3", tmp_path) == "python3"
    assert smoke_command("python3", ["https://a/v1", "https://b/v1"]) == (
        "python3 -m tools.smoke https://a/v1 https://b/v1"
    )


def test_the_smoke_user_is_made_with_the_named_profile(
    cognito: tuple[Any, smoke_auth.CognitoTarget],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, target = cognito
    config = tmp_path / "config"
    config.write_text(
        "[profile deploy]\naws_access_key_id = deploy-key\naws_secret_access_key = deploy-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    cognito_client = smoke_auth.cognito_client(target, profile="deploy")
    assert cognito_client.meta.region_name == target.region
    with smoke_auth.throwaway_cognito_token(target, "profiled", cognito_client):
        assert len(client.list_users(UserPoolId=target.user_pool_id)["Users"]) == 1
    assert client.list_users(UserPoolId=target.user_pool_id)["Users"] == []
    # The profile really is looked up: a missing one is refused, naming the stack key and the fix.
    with pytest.raises(Exception, match="awsProfile names the AWS profile 'missing'"):
        smoke_auth.cognito_client(target, profile="missing")


def test_the_smoke_policy_allows_exactly_what_the_smoke_user_needs(
    cognito: tuple[Any, smoke_auth.CognitoTarget],  # noqa: F811
) -> None:
    """Every Cognito call of a smoke run, recorded at botocore, is allowed by bootstrap/policies/smoke.json on
    this account's pool, and nothing on another account's."""
    client, target = cognito
    calls: list[str] = []
    client.meta.events.register(
        "before-call.cognito-idp.*", lambda model, **_: calls.append(f"cognito-idp:{model.name}")
    )
    with smoke_auth.throwaway_cognito_token(target, "policy", client):
        pass
    assert calls == [
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminSetUserPassword",
        "cognito-idp:AdminAddUserToGroup",
        "cognito-idp:AdminInitiateAuth",
        "cognito-idp:AdminDeleteUser",
    ]
    policy = json.loads((POLICY_DIR / "smoke.json").read_text())
    pool = f"arn:aws:cognito-idp:{target.region}:{ACCOUNT}:userpool/{target.user_pool_id}"
    context = deployer_context(ACCOUNT)  # the stack's pool carries the project and stack tags
    assert all(allows(policy, call, pool, context) for call in calls)
    assert not any(allows(policy, call, pool.replace(ACCOUNT, "210987654321"), context) for call in calls)
    # Only the stack's own pool: another project's, another stack's or an untagged pool is refused.
    for other in ({"aws:ResourceTag/project": "another-project"}, {"aws:ResourceTag/stack": "dev"}):
        assert not any(allows(policy, call, pool, {**context, **other}) for call in calls)
    assert not any(allows(policy, call, pool, {"aws:PrincipalAccount": ACCOUNT}) for call in calls)
    assert sorted(policy["Statement"][0]["Action"]) == sorted(set(calls))
