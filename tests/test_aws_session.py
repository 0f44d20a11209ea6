"""The stack's AWS access setting and the one session factory of the dynamic providers (in-process moto).

The same factory is driven through the engine's provider server, configured over gRPC, in
tests/test_engine_aws_access.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws
from moto.sts.models import STSBackend
from pulumi.dynamic import Config, ConfigureRequest

from components.dynamic import aws_session
from components.dynamic.aws_session import (
    AMBIENT,
    ASSUME_ROLE_KEY,
    PROFILE_KEY,
    ROLE_SESSION_NAME,
    AwsAccess,
    AwsAccessError,
    access_from_config,
    session,
)
from components.dynamic.iam_grant import IamGrantProvider
from components.dynamic.migration import SchemaMigrationProvider
from components.dynamic.peering import ClusterPeeringProvider
from tests.aws_calls import CallLog, record_sessions

ROLE = "arn:aws:iam::123456789012:role/users-api-deployer"
ENV_KEY, PROFILE_KEY_ID = "AKIAENVIRONMENT00001", "AKIAPROFILE000000001"


@pytest.fixture(autouse=True)
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Ambient credentials in the environment, and a profile ``deploy`` in a temporary config file."""
    config = tmp_path / "config"
    config.write_text(
        f"[profile deploy]\naws_access_key_id = {PROFILE_KEY_ID}\naws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    aws_session._assumed.clear()  # one credential object per process: start each test afresh
    return config


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallLog]:
    log = CallLog()
    monkeypatch.setattr(aws_session, "base_session", record_sessions(aws_session.base_session, log))
    with mock_aws(config={"core": {"mock_credentials": False}}):  # keep the test's own credentials
        yield log


STACK_CONFIG = {"dsql-users-api:primaryRegion": "us-east-1", "aws:region": "us-east-1"}


def configured(values: dict[str, str]) -> AwsAccess:
    """The setting as configure() reads it from a stack config the engine sent."""
    return access_from_config(Config({**STACK_CONFIG, **values}, "dsql-users-api"))


# --- the setting ---------------------------------------------------------------------------------------


def test_the_keys_arrive_namespaced_and_blank_means_unset() -> None:
    assert configured({}) == AMBIENT
    assert configured({PROFILE_KEY: "deploy", ASSUME_ROLE_KEY: ROLE}) == AwsAccess("deploy", ROLE)
    assert configured({PROFILE_KEY: "  ", ASSUME_ROLE_KEY: ""}) == AMBIENT
    assert configured({"other-project:awsProfile": "deploy"}) == AMBIENT  # another project's key


def test_a_configure_without_the_stack_config_is_refused_rather_than_guessed() -> None:
    """An engine that passes no stack config would silently give the ambient identity."""
    with pytest.raises(
        AwsAccessError, match=r"dsql-users-api:primaryRegion is missing from Configure"
    ) as raised:
        access_from_config(Config({}, "dsql-users-api"))
    assert "Pulumi CLI 3.139 or later" in str(raised.value)


@pytest.mark.parametrize(
    "bad",
    [
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:sts::123456789012:assumed-role/deployer/me",
        "arn:aws:iam::1234:role/deployer",
        "users-api-deployer",
    ],
)
def test_a_role_arn_that_is_not_one_is_refused_naming_the_key_and_the_fix(bad: str) -> None:
    with pytest.raises(AwsAccessError) as raised:
        configured({ASSUME_ROLE_KEY: bad})
    assert str(raised.value).startswith(f"{ASSUME_ROLE_KEY} is {bad!r}, which is not an IAM role ARN")
    assert "pulumi config set awsAssumeRoleArn" in str(raised.value)


def test_a_profile_name_the_config_file_cannot_hold_is_refused() -> None:
    with pytest.raises(AwsAccessError, match=rf"{PROFILE_KEY} is '\[deploy\]'"):
        configured({PROFILE_KEY: "[deploy]"})


@pytest.mark.parametrize("provider", [ClusterPeeringProvider, SchemaMigrationProvider, IamGrantProvider])
def test_every_provider_takes_the_setting_in_configure(provider) -> None:
    instance = provider()
    assert instance.access == AMBIENT and vars(instance) == {}  # nothing on self until configured
    instance.configure(ConfigureRequest(Config({**STACK_CONFIG, PROFILE_KEY: "deploy"}, "dsql-users-api")))
    assert instance.access == AwsAccess("deploy", None)


# --- the identity each setting gives --------------------------------------------------------------------


def test_no_setting_is_the_ambient_chain(calls: CallLog) -> None:
    session(AMBIENT, "us-east-2").client("dsql").list_clusters()
    assert [(c.name, c.region, c.access_key_id) for c in calls.calls] == [
        ("dsql:ListClusters", "us-east-2", ENV_KEY)
    ]


def test_a_profile_comes_from_the_aws_config_file_before_the_environment(calls: CallLog) -> None:
    session(AwsAccess("deploy"), "us-east-1").client("dsql").list_clusters()
    assert calls.calls[-1].access_key_id == PROFILE_KEY_ID


def test_a_missing_profile_is_an_error_naming_the_key(calls: CallLog) -> None:
    with pytest.raises(AwsAccessError, match=rf"{PROFILE_KEY} names the AWS profile 'nope'"):
        session(AwsAccess("nope"), "us-east-1")


def test_the_role_is_assumed_from_the_profile_with_the_projects_session_name(calls: CallLog) -> None:
    access = AwsAccess("deploy", ROLE)
    client = session(access, "us-east-1").client("dsql")
    client.list_clusters()
    identity = session(access, "us-east-1").client("sts").get_caller_identity()

    assume = [c for c in calls.calls if c.name == "sts:AssumeRole"]
    assert len(assume) == 1  # one credential object per process and region, reused by every session
    assert assume[0].access_key_id == PROFILE_KEY_ID
    assert assume[0].params["RoleArn"] == ROLE
    assert assume[0].params["RoleSessionName"] == ROLE_SESSION_NAME == "dsql-users-api-dynamic-providers"
    dsql_call = next(c for c in calls.calls if c.name == "dsql:ListClusters")
    assert dsql_call.access_key_id.startswith("ASIA")  # the role's temporary key, not the profile's
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/users-api-deployer/{ROLE_SESSION_NAME}"


def test_assumed_credentials_are_renewed_before_they_expire(calls: CallLog, monkeypatch) -> None:
    """A peering wait outlives a role session: credentials close to expiry are renewed on use."""
    assume_role = STSBackend.assume_role

    def short_lived(self, region_name, role_session_name, role_arn, policy, duration, external_id):
        # 5 minutes: inside botocore's refresh window, so every use asks STS for fresh credentials.
        return assume_role(self, region_name, role_session_name, role_arn, policy, 300, external_id)

    monkeypatch.setattr(STSBackend, "assume_role", short_lived)
    client = session(AwsAccess(None, ROLE), "us-east-1").client("dsql")

    client.list_clusters()
    client.list_clusters()

    assumed = [c for c in calls.calls if c.name == "sts:AssumeRole"]
    signing_keys = [c.access_key_id for c in calls.calls if c.name == "dsql:ListClusters"]
    assert len(assumed) >= 2
    assert len(set(signing_keys)) == 2 and all(k.startswith("ASIA") for k in signing_keys)


def test_assume_role_without_any_credentials_says_what_to_do(calls: CallLog, monkeypatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsAccessError, match=rf"no AWS credentials to assume {ROLE} \({ASSUME_ROLE_KEY}\)"):
        session(AwsAccess(None, ROLE), "us-east-1")
