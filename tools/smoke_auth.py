"""Where the smoke test's ID token comes from. The smoke test creates, reads and deletes users of other
owners and lists everyone, so its token must be an administrator's (a member of ``admins``).

* ``--token``: an ID token the operator already has (an administrator's).
* A deployment (``--from-stack``, or ``--user-pool-id`` with ``--client-id``): a throwaway Cognito user,
  made for this run through Cognito's admin APIs and deleted again whatever happens: AdminCreateUser
  (invitation suppressed, email verified), AdminSetUserPassword (a random password, permanent),
  AdminAddUserToGroup (``admins``), AdminInitiateAuth with ``ADMIN_USER_PASSWORD_AUTH`` on the stack's
  smoke app client, AdminDeleteUser in a ``finally``. The caller's AWS credentials need those five
  ``cognito-idp:`` actions on the pool's ARN, nothing else; the password never leaves this process.
* The local app (``make dev``): an administrator's token signed by the local issuer of the run found
  by its control port (CONTROL_PORT or --control-port, local/auth.py); none when that run was started
  with ``--no-auth``.
"""

from __future__ import annotations

import contextlib
import secrets
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMINS_GROUP = "admins"
EMAIL_DOMAIN = "example.com"  # reserved for documentation: never a real mailbox
# The stack outputs components/identity.py exports (see __main__.py).
USER_POOL_ID_OUTPUT = "userPoolId"
SMOKE_CLIENT_ID_OUTPUT = "userPoolSmokeClientId"
LOCAL_TOKEN_LIFETIME_S = 900


class SmokeAuthError(Exception):
    """No token could be had; the message says which step failed and how to fix it."""


@dataclass(frozen=True)
class CognitoTarget:
    """The user pool and the app client (allowing ADMIN_USER_PASSWORD_AUTH) to sign a smoke user in."""

    user_pool_id: str
    client_id: str

    @property
    def region(self) -> str:
        """A pool id is ``<region>_<id>``."""
        return self.user_pool_id.partition("_")[0]


def cognito_from_outputs(outputs: Mapping[str, Any]) -> CognitoTarget | None:
    """The stack's pool and smoke client, or None for a stack deployed with ``authMode: none``."""
    pool, client = outputs.get(USER_POOL_ID_OUTPUT), outputs.get(SMOKE_CLIENT_ID_OUTPUT)
    if not pool:
        return None
    if not client:
        raise SmokeAuthError(
            f"the stack has a user pool ({pool}) but no {SMOKE_CLIENT_ID_OUTPUT} output: deploy it with "
            "the smoke client, or pass --token with an administrator's ID token"
        )
    return CognitoTarget(str(pool), str(client))


def random_password(length: int = 32) -> str:
    """Meets any Cognito password policy: every character class, well past the minimum length."""
    symbols = "-_!#%"
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, symbols)
    chars = [secrets.choice(cls) for cls in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def cognito_client(
    target: CognitoTarget, profile: str | None = None, assume_role_arn: str | None = None
) -> Any:
    """A cognito-idp client of the pool's region, as the identity the deployment uses.

    With neither setting, boto3's ambient credentials; otherwise the session the dynamic providers use
    for the same stack keys (``awsProfile``, ``awsAssumeRoleArn``), so a smoke run after ``pulumi up``
    acts as the identity that deployed.
    """
    if profile is None and assume_role_arn is None:
        import boto3

        return boto3.client("cognito-idp", region_name=target.region)
    from components.dynamic.aws_session import AwsAccess, session

    return session(AwsAccess(profile, assume_role_arn), target.region).client("cognito-idp")


@contextlib.contextmanager
def throwaway_cognito_token(target: CognitoTarget, run_id: str, cognito: Any = None) -> Iterator[str]:
    """An administrator's ID token for a user that exists only while the ``with`` block runs."""
    from botocore.exceptions import BotoCoreError, ClientError

    if cognito is None:
        cognito = cognito_client(target)
    username = f"smoke-{run_id}@{EMAIL_DOMAIN}"
    pool = target.user_pool_id
    step = "AdminCreateUser"
    try:
        cognito.admin_create_user(
            UserPoolId=pool,
            Username=username,
            UserAttributes=[
                {"Name": "email", "Value": username},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",  # no invitation e-mail for a user that lives a minute
        )
    except (BotoCoreError, ClientError) as exc:
        raise SmokeAuthError(_explain(step, pool, exc)) from None
    try:
        password = random_password()
        step = "AdminSetUserPassword"
        cognito.admin_set_user_password(UserPoolId=pool, Username=username, Password=password, Permanent=True)
        step = "AdminAddUserToGroup"
        cognito.admin_add_user_to_group(UserPoolId=pool, Username=username, GroupName=ADMINS_GROUP)
        step = "AdminInitiateAuth"
        answer = cognito.admin_initiate_auth(
            UserPoolId=pool,
            ClientId=target.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        tokens = answer.get("AuthenticationResult") or {}
        if "IdToken" not in tokens:
            raise SmokeAuthError(
                f"AdminInitiateAuth answered the challenge {answer.get('ChallengeName')!r} instead of tokens; "
                "the smoke client's pool must not require MFA or a new password for admin-created users"
            )
        yield tokens["IdToken"]
    except (BotoCoreError, ClientError) as exc:
        raise SmokeAuthError(_explain(step, pool, exc)) from None
    finally:
        try:
            cognito.admin_delete_user(UserPoolId=pool, Username=username)
        except (BotoCoreError, ClientError) as exc:
            raise SmokeAuthError(
                f"could not delete the smoke user {username}: {_explain('AdminDeleteUser', pool, exc)}; "
                "delete it by hand (aws cognito-idp admin-delete-user)"
            ) from None


def _explain(step: str, pool: str, exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    hint = (
        f"; the credentials need cognito-idp:{step} on the pool {pool}"
        if code in ("AccessDeniedException", "NotAuthorizedException")
        else ""
    )
    return f"Cognito {step} failed: {code}: {exc}{hint}"


def run_file(control_port: int | None = None) -> Path:
    """The run file of the local app whose control endpoint is on ``control_port`` (local/auth.py)."""
    from local.auth import issuer_file

    return issuer_file(control_port)


def local_run(path: Path) -> dict[str, Any] | None:
    """The description of the local run that wrote ``path``, or None when there is no such file."""
    from local.auth import IssuerFileError, read_run

    try:
        return read_run(path)
    except IssuerFileError:
        return None


def describe_run(run: Mapping[str, Any]) -> str:
    from local.auth import describe_run as describe

    return describe(run)


def local_token(run_id: str, issuer_path: Path | None = None, control_port: int | None = None) -> str | None:
    """An administrator's token from the issuer of the local run on ``control_port`` (default: the
    CONTROL_PORT setting), or of ``issuer_path``; None when that run has none (started with --no-auth)
    or, without ``issuer_path``, when no run is recorded there, so the requests go without one."""
    from local.auth import IssuerFileError, LocalIssuer, NoAuthRun, issuer_file

    path = issuer_path or issuer_file(control_port)
    try:
        issuer = LocalIssuer.load(path)
    except NoAuthRun:
        return None
    except IssuerFileError:
        if issuer_path is not None:
            raise SmokeAuthError(
                f"--issuer-file {path}: no local issuer there; is the local app running?"
            ) from None
        return None
    sub = f"smoke-{run_id}"
    return issuer.token(sub, email=f"{sub}@{EMAIL_DOMAIN}", admin=True, lifetime_s=LOCAL_TOKEN_LIFETIME_S)
