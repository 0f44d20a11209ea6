"""The probe's identity check (probe/identity.py) against a stand-in of Cognito and Secrets Manager on
127.0.0.1 speaking their real JSON protocol (``application/x-amz-json-1.1``, the operation in
``X-Amz-Target``: ``AWSCognitoIdentityProviderService.InitiateAuth``, ``secretsmanager.GetSecretValue``),
reached by boto3 through the service endpoint variables (``AWS_ENDPOINT_URL_<SERVICE>``).

Proven: sign-in then refresh with the refresh token the sign-in gave; the secret read signed for the
checked region, InitiateAuth unsigned (no IAM); a wrong password, a refused refresh, a challenge, an
unreadable secret, a Cognito endpoint that is down and one that never answers each become the result's
text; the password and the tokens are in no result and no log line; malformed identity events raise.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from probe.app import handler
from probe.event import parse_identity_event
from scripts.build_artifacts import find_runtime_python, lay_out
from tests.json_api_server import json_api_server
from tests.pulumi_harness import ROOT, run_program
from tests.test_probe import RUNTIME, _probe_program

REGION = "us-east-2"
CLIENT_ID = "drillclient0123456789abcdef"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:dsql-users-api-prod-failover-drill-AbCdEf"
USERNAME = "dsql-users-api-prod-failover-drill@example.com"
PASSWORD = "Pa55-word_with:symbols!andLength32"
ID_TOKEN, ACCESS_TOKEN, REFRESH_TOKEN = "eyJ.id-token.sig", "eyJ.access-token.sig", "refresh-token-opaque"
NEW_ID_TOKEN = "eyJ.refreshed-id-token.sig"
COGNITO, SECRETS = "AWSCognitoIdentityProviderService.", "secretsmanager."


@dataclass
class FakeAws:
    """What the stand-in answers, and what it was asked."""

    password: str = PASSWORD
    secret: dict[str, Any] | None = field(
        default_factory=lambda: {"username": USERNAME, "password": PASSWORD}
    )
    refresh_works: bool = True
    challenge: str | None = None
    silent: bool = False  # accept Cognito's requests and never answer
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if target == f"{SECRETS}GetSecretValue":
            if self.secret is None or body.get("SecretId") != SECRET_ARN:
                return 400, {
                    "__type": "ResourceNotFoundException",
                    "message": "Secrets Manager can't find the specified secret.",
                }
            return 200, {"ARN": SECRET_ARN, "SecretString": json.dumps(self.secret)}
        if target != f"{COGNITO}InitiateAuth":
            return 400, {"__type": "UnknownOperationException", "message": target}
        if body.get("ClientId") != CLIENT_ID:
            return 400, {"__type": "ResourceNotFoundException", "message": "User pool client does not exist."}
        flow, parameters = body.get("AuthFlow"), body.get("AuthParameters", {})
        if flow == "USER_PASSWORD_AUTH":
            if parameters != {"USERNAME": USERNAME, "PASSWORD": self.password}:
                return 400, {"__type": "NotAuthorizedException", "message": "Incorrect username or password."}
            if self.challenge:
                return 200, {"ChallengeName": self.challenge, "Session": "session", "ChallengeParameters": {}}
            return 200, {
                "AuthenticationResult": {
                    "IdToken": ID_TOKEN,
                    "AccessToken": ACCESS_TOKEN,
                    "RefreshToken": REFRESH_TOKEN,
                    "ExpiresIn": 300,
                    "TokenType": "Bearer",
                },
                "ChallengeParameters": {},
            }
        if flow == "REFRESH_TOKEN_AUTH":
            if not self.refresh_works or parameters != {"REFRESH_TOKEN": REFRESH_TOKEN}:
                return 400, {"__type": "NotAuthorizedException", "message": "Invalid Refresh Token"}
            return 200, {
                "AuthenticationResult": {
                    "IdToken": NEW_ID_TOKEN,
                    "AccessToken": "eyJ.a2.sig",
                    "ExpiresIn": 300,
                },
                "ChallengeParameters": {},
            }
        return 400, {"__type": "InvalidParameterException", "message": f"flow {flow} is not enabled"}


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAws, str]]:
    fake = FakeAws()
    release = threading.Event()

    def answer(
        target: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]] | None:
        request = {"target": target, "contentType": headers.get("Content-Type"), "body": body}
        fake.requests.append({**request, "authorization": headers.get("Authorization")})
        if fake.silent and target.startswith(COGNITO):
            release.wait(10)
            return None
        return fake.answer(target, body)

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPROBETEST0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "probe-test")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "probe-session")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with json_api_server(answer) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", url)
        try:
            yield fake, url
        finally:
            release.set()  # a silent answer stops waiting, so the server can close


def event(timeout: float = 2.0) -> dict[str, Any]:
    return {
        "identity": {"region": REGION, "clientId": CLIENT_ID, "secretArn": SECRET_ARN},
        "timeoutSeconds": timeout,
    }


SECRETS_IN_PLAY = (PASSWORD, ID_TOKEN, ACCESS_TOKEN, REFRESH_TOKEN, NEW_ID_TOKEN)


def run(caplog: pytest.LogCaptureFixture, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    with caplog.at_level(logging.INFO, logger="probe.app"):
        result = handler(payload or event())
    shown = json.dumps(result) + caplog.text
    assert not [secret for secret in SECRETS_IN_PLAY if secret in shown]
    return result


def test_sign_in_then_refresh_in_the_region_reads_ok_and_shows_no_secret(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = fake_aws
    result = run(caplog)
    assert result["identity"] == {"region": REGION, "signIn": "ok", "refresh": "ok"}
    assert isinstance(result["elapsedMs"], int)
    assert [r["target"] for r in fake.requests] == [
        "secretsmanager.GetSecretValue",
        "AWSCognitoIdentityProviderService.InitiateAuth",
        "AWSCognitoIdentityProviderService.InitiateAuth",
    ]
    assert {r["contentType"] for r in fake.requests} == {"application/x-amz-json-1.1"}
    secret_read, sign_in, refresh = fake.requests
    # The secret is read with the function's credentials, signed for the checked region.
    assert f"/{REGION}/secretsmanager/aws4_request" in secret_read["authorization"]
    # InitiateAuth needs no IAM: boto3 sends it unsigned.
    assert sign_in["authorization"] is None and refresh["authorization"] is None
    assert sign_in["body"] == {
        "ClientId": CLIENT_ID,
        "AuthFlow": "USER_PASSWORD_AUTH",
        "AuthParameters": {"USERNAME": USERNAME, "PASSWORD": PASSWORD},
    }
    assert refresh["body"] == {
        "ClientId": CLIENT_ID,
        "AuthFlow": "REFRESH_TOKEN_AUTH",
        "AuthParameters": {"REFRESH_TOKEN": REFRESH_TOKEN},
    }
    assert "probe identity check" in caplog.text


def test_a_wrong_password_fails_sign_in_and_refresh_is_not_tried(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = fake_aws
    fake.password = "Another-Password-0123456789-abcdef"
    result = run(caplog)
    assert result["identity"] == {
        "region": REGION,
        "signIn": "NotAuthorizedException: Incorrect username or password.",
        "refresh": "not tried (no sign-in)",
    }
    assert len(fake.requests) == 2


def test_a_refused_refresh_is_reported_after_a_good_sign_in(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake_aws[0].refresh_works = False
    assert run(caplog)["identity"] == {
        "region": REGION,
        "signIn": "ok",
        "refresh": "NotAuthorizedException: Invalid Refresh Token",
    }


def test_a_challenge_instead_of_tokens_is_a_failed_sign_in(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake_aws[0].challenge = "NEW_PASSWORD_REQUIRED"
    identity = run(caplog)["identity"]
    assert identity["signIn"] == "Cognito answered with the challenge NEW_PASSWORD_REQUIRED instead of tokens"
    assert identity["refresh"] == "not tried (no sign-in)"


def test_an_unreadable_secret_is_the_reason_sign_in_was_not_possible(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = fake_aws
    fake.secret = None
    identity = run(caplog)["identity"]
    assert identity["signIn"] == (
        f"the drill user's secret could not be read in {REGION}: ResourceNotFoundException: Secrets Manager "
        "can't find the specified secret."
    )
    assert identity["refresh"] == "not tried (no sign-in)"
    assert [r["target"] for r in fake.requests] == ["secretsmanager.GetSecretValue"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_cognito_endpoint_that_is_down_fails_sign_in_with_its_address(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", down)
    identity = run(caplog)["identity"]
    assert identity["signIn"] == f"cannot connect to {down}/"
    assert identity["refresh"] == "not tried (no sign-in)"


def test_a_silent_cognito_endpoint_times_out_within_the_events_timeout(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_aws
    fake.silent = True
    started = time.monotonic()
    identity = run(caplog, event(timeout=0.5))["identity"]
    assert time.monotonic() - started < 5
    assert identity["signIn"] == f"no answer from {url}/ within 0.5 s"
    assert identity["refresh"] == "not tried (no sign-in)"


def test_the_invocations_remaining_time_bounds_the_check(
    fake_aws: tuple[FakeAws, str], caplog: pytest.LogCaptureFixture
) -> None:
    class AlmostOut:
        def get_remaining_time_in_millis(self) -> int:
            return 100  # less than the probe keeps back to return its result

    with caplog.at_level(logging.INFO, logger="probe.app"):
        identity = handler(event(), AlmostOut())["identity"]
    assert "ran out of time" in identity["signIn"] and fake_aws[0].requests == []


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({**event(), "target": "us-east-2"}, "'target'"),
        ({"identity": "us-east-2"}, "'identity'"),
        ({"identity": {"region": REGION, "clientId": CLIENT_ID}}, "'identity.secretArn'"),
        ({"identity": {**event()["identity"], "password": "x"}}, "'identity.password'"),
        ({"identity": {**event()["identity"], "region": "Ohio"}}, "'identity.region'"),
        ({"identity": {**event()["identity"], "clientId": "a b"}}, "'identity.clientId'"),
        ({"identity": {**event()["identity"], "secretArn": "arn:aws:s3:::x"}}, "'identity.secretArn'"),
        (
            {"identity": {**event()["identity"], "secretArn": SECRET_ARN.replace(REGION, "us-east-1")}},
            "replica in us-east-2",
        ),
        ({**event(), "timeoutSeconds": 0}, "'timeoutSeconds'"),
    ],
)
def test_a_malformed_identity_event_raises_naming_the_key(payload: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(key)):
        parse_identity_event(payload)


@pytest.fixture(scope="module")
def probe_build() -> dict[str, Any]:
    """The probe's zips for this machine, under mocks (reused from build/lambda/probe/ when built)."""
    return run_program(program=_probe_program).outputs


def test_the_built_probe_checks_identity_on_python313_with_the_runtimes_boto3(
    probe_build: dict[str, Any], fake_aws: tuple[FakeAws, str], tmp_path: Path
) -> None:
    """Laid out as Lambda mounts it, sources replaced by lines that raise (bytecode only), with boto3
    on the path as the Lambda runtime provides it (this machine's boto3 stands for /var/runtime's): the
    identity check imports boto3 only then, and works."""
    opt_python, task = lay_out(ROOT / probe_build["layer"], ROOT / probe_build["code"], tmp_path)
    for source in [*opt_python.rglob("*.py"), *task.rglob("*.py")]:
        source.write_text("raise ImportError('the source ran: the shipped bytecode was not used')\n")
    runtime_sdk = Path(boto3.__file__).resolve().parents[1]
    python = find_runtime_python(RUNTIME.removeprefix("python"))
    script = textwrap.dedent(
        """
        import json, sys
        task, layer, runtime, event = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        sys.path[:0] = [task, layer, runtime]
        import probe.app
        print(json.dumps(probe.app.handler(event)))
        """
    )
    environment = {key: value for key, value in os.environ.items() if key.startswith("AWS_")}
    result = subprocess.run(
        [str(python.path), "-I", "-S", "-B", "-c", script, str(task), str(opt_python), str(runtime_sdk),
         json.dumps(event())],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **environment},
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["identity"] == {"region": REGION, "signIn": "ok", "refresh": "ok"}
    assert not [secret for secret in SECRETS_IN_PLAY if secret in result.stdout + result.stderr]
