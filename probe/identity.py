"""The identity check: does sign-in, then token refresh, work at one region's Cognito endpoint?

With ``authReplica`` on, the drill asks this once while the primary region is out (docs/operations.md,
"The drill's identity check"), as the drill's own user through the drill's own app client:

1. ``secretsmanager:GetSecretValue`` of the user's secret in the checked region (its replica: a client
   there must not depend on the primary region for it either);
2. ``InitiateAuth`` ``USER_PASSWORD_AUTH`` at ``cognito-idp.<region>.amazonaws.com`` (an unsigned call:
   it needs no IAM permission);
3. ``InitiateAuth`` ``REFRESH_TOKEN_AUTH`` with the refresh token step 2 gave.

The result is ``{"region", "signIn", "refresh"}``, each ``"ok"`` or the reason it failed; a step that
could not be tried says why. The password and the tokens stay in this function: they are in no result,
no log line and no error text (every text is scrubbed of them).

boto3 comes from the Lambda runtime, which bundles it: the probe's own layer stays dnspython only (its
DNS and HTTPS observations import no AWS SDK), and boto3 is imported only when an identity check is
asked for. GetSecretValue and InitiateAuth are long-stable operations of any boto3 the runtime carries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from probe.event import IdentityCheck

OK = "ok"
Timeout = Callable[[], float]


class IdentityFailed(Exception):
    """One step that did not succeed; the message is the result's text (already scrubbed)."""


class _Scrubber:
    """Removes every secret value seen so far from a text."""

    def __init__(self) -> None:
        self.secrets: list[str] = []

    def keep(self, value: str) -> str:
        if value:
            self.secrets.append(value)
        return value

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _client(service: str, region: str, seconds: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=seconds,
        read_timeout=seconds,
        retries={"total_max_attempts": 1},  # the state machine's own retry and the next drill try again
        user_agent_extra="users-api-drill-probe",
    )
    return boto3.session.Session().client(service, region_name=region, config=config)


def _describe(error: Exception, seconds: float) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Error')}: {details.get('Message', '')}".rstrip(": ")
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return f"no answer from {error.kwargs.get('endpoint_url')} within {seconds:g} s"
    if isinstance(error, EndpointConnectionError):
        return f"cannot connect to {error.kwargs.get('endpoint_url')}"
    return f"{type(error).__name__}: {error}"


def _call(step: str, service: str, region: str, timeout: Timeout, scrub: _Scrubber, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        seconds = timeout()
    except Exception as error:  # the invocation's time is up (probe.app's budget)
        raise IdentityFailed(scrub(str(error))) from None
    client = _client(service, region, seconds)
    operation = getattr(client, step)
    try:
        return operation(**kwargs)
    except (BotoCoreError, ClientError) as error:
        raise IdentityFailed(scrub(_describe(error, seconds))) from None


def _credentials(check: IdentityCheck, timeout: Timeout, scrub: _Scrubber) -> tuple[str, str]:
    answer = _call(
        "get_secret_value", "secretsmanager", check.region, timeout, scrub, SecretId=check.secret_arn
    )
    try:
        value = json.loads(answer["SecretString"])
        username, password = str(value["username"]), scrub.keep(str(value["password"]))
    except (KeyError, TypeError, ValueError):
        raise IdentityFailed(
            'the secret holds no {"username", "password"} (the DrillUser resource writes it: `pulumi up`)'
        ) from None
    return username, password


def _tokens(answer: dict[str, Any], scrub: _Scrubber) -> dict[str, Any]:
    result = answer.get("AuthenticationResult") or {}
    for key in ("IdToken", "AccessToken", "RefreshToken"):
        scrub.keep(str(result.get(key) or ""))
    if not result.get("IdToken"):
        challenge = answer.get("ChallengeName")
        raise IdentityFailed(
            f"Cognito answered with the challenge {challenge} instead of tokens"
            if challenge
            else "Cognito answered without tokens"
        )
    return dict(result)


def check_identity(check: IdentityCheck, timeout: Timeout) -> dict[str, Any]:
    """Sign in and refresh at ``check.region``'s Cognito endpoint; the outcome of each, never a secret."""
    scrub = _Scrubber()
    outcome: dict[str, Any] = {"region": check.region, "signIn": None, "refresh": None}

    def initiate_auth(flow: str, parameters: dict[str, str]) -> dict[str, Any]:
        answer = _call(
            "initiate_auth",
            "cognito-idp",
            check.region,
            timeout,
            scrub,
            ClientId=check.client_id,
            AuthFlow=flow,
            AuthParameters=parameters,
        )
        return _tokens(answer, scrub)

    try:
        username, password = _credentials(check, timeout, scrub)
    except IdentityFailed as error:
        outcome["signIn"] = f"the drill user's secret could not be read in {check.region}: {error}"
        outcome["refresh"] = "not tried (no sign-in)"
        return outcome
    try:
        signed_in = initiate_auth("USER_PASSWORD_AUTH", {"USERNAME": username, "PASSWORD": password})
    except IdentityFailed as error:
        outcome["signIn"] = str(error)
        outcome["refresh"] = "not tried (no sign-in)"
        return outcome
    outcome["signIn"] = OK
    refresh_token = signed_in.get("RefreshToken")
    if not refresh_token:
        outcome["refresh"] = "not tried: the sign-in gave no refresh token"
        return outcome
    try:
        initiate_auth("REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": refresh_token})
    except IdentityFailed as error:
        outcome["refresh"] = str(error)
        return outcome
    outcome["refresh"] = OK
    return outcome
