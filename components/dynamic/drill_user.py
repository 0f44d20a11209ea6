"""The failover drill's own user of the pool, as a Pulumi dynamic resource; its password only in a secret.

With ``authReplica`` on, the drill signs in at the secondary region's Cognito endpoint and refreshes the
tokens it got (docs/operations.md, "The drill's identity check"). It signs in as this user: in no group,
through an app client of its own that the API does not accept, with a random password that exists in
Secrets Manager only. Neither the pulumi-aws ``aws.cognito.User`` resource (its password is an input, so
it lands in the state) nor a random-password resource (the same) keeps the password out of the state;
this resource makes it on the AWS side and hands it straight to the secret.

create  ``secretsmanager:GetRandomPassword`` (the pool's password policy: its minimum length, at least
        32, one character of every class it requires), ``cognito-idp:AdminCreateUser`` (``MessageAction``
        SUPPRESS: no invitation; the e-mail address as the username and verified, as the pool requires;
        an existing user of that name is adopted), ``AdminSetUserPassword`` ``Permanent=True`` (so the
        user is CONFIRMED and needs no first-sign-in change), then ``secretsmanager:PutSecretValue`` of
        ``{"username", "password"}`` into the secret (which Secrets Manager replicates to the secondary
        region). A user this call created is deleted again when a later step fails: all or nothing.
read    (``pulumi refresh``) ``AdminGetUser``: gone when the user or the pool no longer exists (``pulumi
        up`` creates it again); otherwise its status and whether it is enabled. A user that is not
        CONFIRMED (an administrator reset its password) or is disabled is a diff.
update  A new password as in create (AdminSetUserPassword and PutSecretValue), after
        ``AdminEnableUser`` when the user was disabled: the drift repair of ``read``.
delete  ``AdminDeleteUser``; a user or pool already gone is fine (safe to run twice). The secret is the
        secret resource's to delete.

The password is in no input, output, log line or error message; the state holds the user's name, the
secret's ARN and the status. Every boto3 client comes from ``aws_session.session`` with the stack's AWS
access setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic

from components.dynamic.aws_session import AwsAccess, AwsAccessProvider, session
from components.dynamic.engine import changed_keys, is_unknown, log_progress

CONFIRMED = "CONFIRMED"
PASSWORD_LENGTH = 32  # at least; Cognito accepts up to 256 characters
MAX_PASSWORD_LENGTH = 256
# Cognito's own bounds for a pool's MinimumLength.
MIN_POLICY_LENGTH, MAX_POLICY_LENGTH = 6, 99
REPLACE_KEYS = ("user_pool_id", "region", "username")
UPDATE_KEYS = ("secret_arn", "password_policy", "user_status", "enabled")
POLICY_FLAGS = ("require_lowercase", "require_uppercase", "require_numbers", "require_symbols")
USER_POOL_ID = re.compile(r"[\w-]+_[0-9a-zA-Z]+")
EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
SECRET_ARN = re.compile(r"arn:aws[\w-]*:secretsmanager:(?P<region>[a-z0-9-]+):\d{12}:secret:.+")
GONE_ERRORS = ("UserNotFoundException", "ResourceNotFoundException")


class DrillUserError(RuntimeError):
    """The drill's user could not be made, read or removed; the message says how to proceed."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _label(props: Mapping[str, Any]) -> str:
    return f"drill user {props['username']} of user pool {props['user_pool_id']} ({props['region']})"


def password_request(policy: Mapping[str, Any]) -> dict[str, Any]:
    """GetRandomPassword's parameters for a pool's password policy.

    Secrets Manager's punctuation is ASCII's 32 characters, each of which Cognito accepts as a symbol;
    no spaces. A class the policy does not require is still allowed (only longer passwords).
    """
    return {
        "PasswordLength": max(PASSWORD_LENGTH, int(policy["minimum_length"])),
        "IncludeSpace": False,
        "RequireEachIncludedType": True,
    }


def _check_policy(policy: Any, failures: list[pulumi.dynamic.CheckFailure]) -> None:
    if is_unknown(policy):
        return
    if not isinstance(policy, Mapping):
        failures.append(
            pulumi.dynamic.CheckFailure(
                "password_policy",
                "password_policy must be the pool's policy: minimum_length and the require_* flags "
                "(components/identity.py PASSWORD_POLICY)",
            )
        )
        return
    length = policy.get("minimum_length")
    if not is_unknown(length) and (
        isinstance(length, bool)
        or not isinstance(length, int | float)
        or int(length) != length
        or not MIN_POLICY_LENGTH <= length <= MAX_POLICY_LENGTH
    ):
        failures.append(
            pulumi.dynamic.CheckFailure(
                "password_policy",
                f"password_policy.minimum_length must be a whole number from {MIN_POLICY_LENGTH} to "
                f"{MAX_POLICY_LENGTH} (Cognito's range), got {length!r}",
            )
        )
    unknown = sorted(set(policy) - {"minimum_length", *POLICY_FLAGS})
    if unknown:
        failures.append(
            pulumi.dynamic.CheckFailure(
                "password_policy",
                f"password_policy has {unknown}, which a random password cannot be checked against; use "
                f"minimum_length and {', '.join(POLICY_FLAGS)}",
            )
        )


def _check_text(
    news: Mapping[str, Any], key: str, pattern: re.Pattern[str], hint: str, failures: list[Any]
) -> None:
    value = news.get(key)
    if is_unknown(value):
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        failures.append(pulumi.dynamic.CheckFailure(key, f"{key} must be {hint}, got {value!r}"))


def _clients(access: AwsAccess, region: str) -> tuple[Any, Any]:
    boto = session(access, region)
    return boto.client("cognito-idp"), boto.client("secretsmanager")


def get_user(cognito: Any, props: Mapping[str, Any]) -> dict[str, Any] | None:
    """AdminGetUser's answer, or None when the user or its pool is gone."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(cognito.admin_get_user(UserPoolId=props["user_pool_id"], Username=props["username"]))
    except ClientError as exc:
        if _code(exc) in GONE_ERRORS:
            return None
        raise DrillUserError(
            f"AdminGetUser ({_label(props)}) failed: {exc}; the deploying identity needs "
            "cognito-idp:AdminGetUser on the pool (bootstrap/policies/deployer-identity-ops.json)"
        ) from None
    except BotoCoreError as exc:
        raise DrillUserError(f"AdminGetUser ({_label(props)}) failed: {exc}") from None


def _new_password(secrets: Any, props: Mapping[str, Any]) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(
            secrets.get_random_password(**password_request(props["password_policy"]))["RandomPassword"]
        )
    except (BotoCoreError, ClientError) as exc:
        raise DrillUserError(
            f"GetRandomPassword ({props['region']}) failed: {exc}; the deploying identity needs "
            "secretsmanager:GetRandomPassword"
        ) from None


def _set_password(access: AwsAccess, props: Mapping[str, Any]) -> None:
    """A new random password, set permanent on the user and put in the secret; never returned or logged."""
    from botocore.exceptions import BotoCoreError, ClientError

    cognito, secrets = _clients(access, props["region"])
    password = _new_password(secrets, props)
    step = "AdminSetUserPassword"
    try:
        cognito.admin_set_user_password(
            UserPoolId=props["user_pool_id"], Username=props["username"], Password=password, Permanent=True
        )
        step = "PutSecretValue"
        secrets.put_secret_value(
            SecretId=props["secret_arn"],
            SecretString=json.dumps({"username": props["username"], "password": password}),
        )
    except (BotoCoreError, ClientError) as exc:
        # botocore's messages name the operation and the error code, never the parameters sent.
        raise DrillUserError(
            f"{step} ({_label(props)}) failed: {_code(exc) or type(exc).__name__}: "
            f"{str(exc).replace(password, '***')}"
        ) from None


def _create_user(cognito: Any, props: Mapping[str, Any]) -> bool:
    """AdminCreateUser without an invitation; False when the user already existed (adopted)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cognito.admin_create_user(
            UserPoolId=props["user_pool_id"],
            Username=props["username"],
            UserAttributes=[
                {"Name": "email", "Value": props["username"]},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
    except ClientError as exc:
        if _code(exc) == "UsernameExistsException":
            log_progress(f"adopting the existing {_label(props)}")
            return False
        raise DrillUserError(
            f"AdminCreateUser ({_label(props)}) failed: {exc}; the deploying identity needs "
            "cognito-idp:AdminCreateUser on the stack's pool"
        ) from None
    except BotoCoreError as exc:
        raise DrillUserError(f"AdminCreateUser ({_label(props)}) failed: {exc}") from None
    return True


def _delete_user(cognito: Any, props: Mapping[str, Any]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        cognito.admin_delete_user(UserPoolId=props["user_pool_id"], Username=props["username"])
    except ClientError as exc:
        if _code(exc) in GONE_ERRORS:
            return
        raise DrillUserError(f"AdminDeleteUser ({_label(props)}) failed: {exc}") from None
    except BotoCoreError as exc:
        raise DrillUserError(f"AdminDeleteUser ({_label(props)}) failed: {exc}") from None


class DrillUserProvider(AwsAccessProvider):
    """Creates, reads, repairs and deletes the drill's user; safe to pickle."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        inputs = {**news, "user_status": CONFIRMED, "enabled": True}
        failures: list[pulumi.dynamic.CheckFailure] = []
        _check_text(inputs, "user_pool_id", USER_POOL_ID, "a user pool ID (<region>_<id>)", failures)
        _check_text(inputs, "region", REGION, "the pool's region, e.g. us-east-1", failures)
        _check_text(
            inputs, "username", EMAIL, "an e-mail address (the pool's users sign in with one)", failures
        )
        _check_text(
            inputs,
            "secret_arn",
            SECRET_ARN,
            "the ARN of the Secrets Manager secret that receives the password",
            failures,
        )
        arn, region = inputs.get("secret_arn"), inputs.get("region")
        match = SECRET_ARN.fullmatch(arn) if isinstance(arn, str) else None
        if match and isinstance(region, str) and REGION.fullmatch(region) and match["region"] != region:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "secret_arn",
                    f"the secret must be the primary one, in the pool's region {region}, not in "
                    f"{match['region']} (a replica is read-only)",
                )
            )
        _check_policy(inputs.get("password_policy"), failures)
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, REPLACE_KEYS)
        updates = changed_keys(olds, news, UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(changes=bool(replaces or updates), replaces=replaces)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        cognito, _ = _clients(self.access, props["region"])
        log_progress(f"creating the {_label(props)}")
        created = _create_user(cognito, props)
        try:
            _set_password(self.access, props)
        except DrillUserError:
            if created:  # all or nothing: no user without its password in the secret
                _delete_user(cognito, props)
            raise
        return pulumi.dynamic.CreateResult(
            f"{props['user_pool_id']}/{props['username']}", self._outputs(props, cognito)
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        from botocore.exceptions import BotoCoreError, ClientError

        cognito, _ = _clients(self.access, news["region"])
        user = get_user(cognito, news)
        if user is None:
            raise DrillUserError(
                f"the {_label(news)} is gone; `pulumi refresh` then `pulumi up` makes it again"
            )
        if not user.get("Enabled", True):
            log_progress(f"enabling the {_label(news)}")
            try:
                cognito.admin_enable_user(UserPoolId=news["user_pool_id"], Username=news["username"])
            except (BotoCoreError, ClientError) as exc:
                raise DrillUserError(f"AdminEnableUser ({_label(news)}) failed: {exc}") from None
        log_progress(f"{_label(news)}: a new password, in the secret")
        _set_password(self.access, news)
        return pulumi.dynamic.UpdateResult(self._outputs(news, cognito))

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        cognito, _ = _clients(self.access, props["region"])
        user = get_user(cognito, props)
        if user is None:
            log_progress(f"the {_label(props)} reads as gone; `pulumi up` creates it again")
            return pulumi.dynamic.ReadResult("", {})
        return pulumi.dynamic.ReadResult(id_, self._state(props, user))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        cognito, _ = _clients(self.access, props["region"])
        _delete_user(cognito, props)

    def _outputs(self, props: dict[str, Any], cognito: Any) -> dict[str, Any]:
        user = get_user(cognito, props)
        if user is None:
            raise DrillUserError(
                f"the {_label(props)} disappeared right after it was made; run `pulumi up` again"
            )
        return self._state(props, user)

    @staticmethod
    def _state(props: dict[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **props,
            "user_status": user.get("UserStatus", ""),
            "enabled": bool(user.get("Enabled", True)),
        }


class DrillUser(pulumi.dynamic.Resource, module="cognito", name="DrillUser"):
    """The failover drill's user (in no group); its password is only in the secret ``secret_arn``."""

    user_status: pulumi.Output[str]
    enabled: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        user_pool_id: pulumi.Input[str],
        region: pulumi.Input[str],
        username: pulumi.Input[str],
        secret_arn: pulumi.Input[str],
        password_policy: Mapping[str, int | bool],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "user_pool_id": user_pool_id,
            "region": region,
            "username": username,
            "secret_arn": secret_arn,
            "password_policy": dict(password_policy),
            "user_status": CONFIRMED,
            "enabled": True,
        }
        super().__init__(DrillUserProvider(), name, props, opts)
