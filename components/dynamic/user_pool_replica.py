"""Cognito multi-Region replication of the user pool, as two Pulumi dynamic resources.

The locked pulumi-aws has no user pool replica resource and no key or issuer configuration on
``aws.cognito.UserPool``; botocore's cognito-idp model has both (``CreateUserPoolReplica``,
``UpdateUserPoolReplica``, ``ListUserPoolReplicas``, ``DeleteUserPoolReplica``; ``KeyConfiguration`` and
``IssuerConfiguration`` on ``UpdateUserPool``/``DescribeUserPool``). Replication needs the Essentials or
Plus plan, a multi-Region customer managed KMS key available in the replica's region, and the ``UPDATED``
issuer (``https://issuer-cognito-idp.<primary region>.amazonaws.com/<pool id>``, the same in every
region); a new replica starts INACTIVE.

``PoolReplicationSettings`` (the pool's key and issuer)
    create/update  DescribeUserPool; when the key or the issuer differ, UpdateUserPool with the pool's
                   whole current configuration (UpdateUserPool resets every parameter it is not given)
                   plus ``KeyConfiguration`` CUSTOMER_MANAGED_KEY and ``IssuerConfiguration`` UPDATED.
                   A pool on the Lite plan fails with how to proceed.
    read           The pool's current key and issuer: a pool changed behind the stack's back (or by
                   pulumi-aws's own UpdateUserPool, which does not send them) shows as a diff, and the
                   next ``pulumi up`` sets them again. A deleted pool reads as gone.
    delete         Puts the pool back on an AWS owned key, so that the multi-Region key can be scheduled
                   for deletion without locking the pool; the issuer stays UPDATED (tokens already
                   issued carry it).

``UserPoolReplica`` (the replica in the secondary region)
    create  ListUserPoolReplicas in the primary region; adopts a replica already in the region, else
            CreateUserPoolReplica. Waits (progress lines, at most ``timeout_seconds``) while it is
            CREATING, then UpdateUserPoolReplica ``Status=ACTIVE`` and waits until it is ACTIVE. A pool
            that is not eligible fails with Cognito's reason and how to proceed.
    read    (``pulumi refresh``) The replica of the region: gone when the pool or the replica no longer
            exists or is being deleted (``pulumi up`` creates it again); its status otherwise, so an
            INACTIVE replica is a diff that the next ``pulumi up`` activates again.
    delete  Refused while ``deletion_protection`` is on (the stack's ``deletionProtection``), before any
            call. Otherwise deactivates an ACTIVE replica, deletes it (Cognito deletes INACTIVE replicas
            only, from the primary region) and waits until it is gone. A missing pool or replica is fine.

Every boto3 client comes from ``aws_session.session`` with the stack's AWS access setting.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
import pulumi.dynamic

from components.dynamic.aws_session import AwsAccess, AwsAccessProvider, session
from components.dynamic.engine import changed_keys, is_unknown, log_progress

DEFAULT_TIMEOUT_SECONDS = 1800
DEFAULT_POLL_SECONDS = 15.0
MAX_TIMEOUT_SECONDS = 7200
ACTIVE, INACTIVE, CREATING, DELETING = "ACTIVE", "INACTIVE", "CREATING", "DELETING"
UPDATED_ISSUER = "UPDATED"
CUSTOMER_MANAGED_KEY = "CUSTOMER_MANAGED_KEY"
ELIGIBILITY_ERRORS = ("FeatureUnavailableInTierException", "OperationNotEnabledException")
HOW_TO_PROCEED = (
    "Multi-Region replication is not available for every user pool (it depends on the pool's "
    "infrastructure) and needs the Essentials or Plus plan. Nothing was replicated; the stack keeps "
    "working with the pool in the primary region: `pulumi config set authReplica false` and `pulumi up`, "
    "or ask AWS Support whether the pool can be made eligible (a new pool does not keep its users)."
)
REPLICA_REPLACE_KEYS = ("user_pool_id", "primary_region", "replica_region")
REPLICA_UPDATE_KEYS = ("status", "deletion_protection", "timeout_seconds", "poll_interval_seconds")
SETTINGS_REPLACE_KEYS = ("user_pool_id", "region")
SETTINGS_UPDATE_KEYS = ("kms_key_arn", "issuer_type")


class ReplicationError(RuntimeError):
    """The replica or the pool's settings could not be made or removed; the message says how to proceed."""


def _cognito(access: AwsAccess, region: str) -> Any:
    return session(access, region).client("cognito-idp")


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def issuer_url(region: str, user_pool_id: str) -> str:
    """The UPDATED issuer: hosted in the primary region's name, the same JWKS served in every region."""
    return f"https://issuer-cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def _check_seconds(news: dict[str, Any], failures: list[pulumi.dynamic.CheckFailure]) -> None:
    for key, high in (("timeout_seconds", MAX_TIMEOUT_SECONDS), ("poll_interval_seconds", 600)):
        value = news.get(key)
        if value is None or is_unknown(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    key, f"{key} must be a number of seconds above 0 and at most {high}"
                )
            )


# ---------------------------------------------------------------- the pool's key and issuer


def _fit(value: Any, shape: Any) -> Any:
    """``value`` (from DescribeUserPool) reduced to what ``shape`` (an UpdateUserPool input) accepts."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _fit(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list" and isinstance(value, list):
        return [_fit(v, shape.member) for v in value]
    return value


def update_request(pool: dict[str, Any], client: Any, key_arn: str | None) -> dict[str, Any]:
    """UpdateUserPool's parameters: the pool as it is (so nothing is reset), with the key and issuer."""
    shape = client.meta.service_model.operation_model("UpdateUserPool").input_shape
    current = {**pool, "UserPoolId": pool["Id"], "PoolName": pool.get("Name")}
    request = {
        k: _fit(v, shape.members[k]) for k, v in current.items() if k in shape.members and v is not None
    }
    # The deprecated UnusedAccountValidityDays cannot be sent with its replacement
    # (PasswordPolicy.TemporaryPasswordValidityDays), which DescribeUserPool may return together.
    temporary_days = (
        (request.get("Policies") or {}).get("PasswordPolicy", {}).get("TemporaryPasswordValidityDays")
    )
    if temporary_days is not None and "AdminCreateUserConfig" in request:
        request["AdminCreateUserConfig"].pop("UnusedAccountValidityDays", None)
    request["KeyConfiguration"] = (
        {"KeyType": CUSTOMER_MANAGED_KEY, "KmsKeyArn": key_arn} if key_arn else {"KeyType": "AWS_OWNED_KEY"}
    )
    request["IssuerConfiguration"] = {"Type": UPDATED_ISSUER}
    return request


def _describe_pool(client: Any, user_pool_id: str, region: str) -> dict[str, Any] | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.describe_user_pool(UserPoolId=user_pool_id)["UserPool"]
    except client.exceptions.ResourceNotFoundException:
        return None
    except (BotoCoreError, ClientError) as exc:
        raise ReplicationError(
            f"DescribeUserPool {user_pool_id} ({region}) failed: {exc}; the deploying identity needs "
            "cognito-idp:DescribeUserPool on the pool (bootstrap/policies/deployer-identity-ops.json)"
        ) from None


def _settings_of(pool: dict[str, Any]) -> dict[str, Any]:
    key = pool.get("KeyConfiguration") or {}
    return {
        # "" (not None, which the engine drops) for an AWS owned key: a diff against the wanted key
        "kms_key_arn": key.get("KmsKeyArn", "") if key.get("KeyType") == CUSTOMER_MANAGED_KEY else "",
        "issuer_type": (pool.get("IssuerConfiguration") or {}).get("Type", "ORIGINAL"),
        "tier": pool.get("UserPoolTier"),
    }


def apply_settings(access: AwsAccess, props: dict[str, Any], key_arn: str | None) -> dict[str, Any]:
    """Make the pool use ``key_arn`` (None: an AWS owned key) and the UPDATED issuer; return its settings."""
    from botocore.exceptions import BotoCoreError, ClientError

    region, user_pool_id = props["region"], props["user_pool_id"]
    client = _cognito(access, region)
    pool = _describe_pool(client, user_pool_id, region)
    if pool is None:
        raise ReplicationError(f"user pool {user_pool_id} ({region}) does not exist")
    current = _settings_of(pool)
    if key_arn and current["tier"] == "LITE":
        raise ReplicationError(
            f"user pool {user_pool_id} is on the Lite plan; multi-Region replication needs Essentials or "
            "Plus (components/identity.py sets ESSENTIALS: `pulumi up` without authReplica first). "
            + HOW_TO_PROCEED
        )
    if (current["kms_key_arn"] or None) == key_arn and current["issuer_type"] == UPDATED_ISSUER:
        log_progress(f"user pool {user_pool_id} already has its key and the UPDATED issuer")
        return current
    log_progress(f"user pool {user_pool_id}: key {key_arn or 'AWS owned'}, issuer UPDATED")
    try:
        client.update_user_pool(**update_request(pool, client, key_arn))
    except (BotoCoreError, ClientError) as exc:
        hint = (
            HOW_TO_PROCEED
            if _code(exc) in ELIGIBILITY_ERRORS
            else (
                "check that the key is a multi-Region key whose policy lets Cognito use it, and that the "
                "deploying identity may call cognito-idp:UpdateUserPool"
            )
        )
        raise ReplicationError(f"UpdateUserPool {user_pool_id} ({region}) failed: {exc}. {hint}") from None
    return {**current, "kms_key_arn": key_arn, "issuer_type": UPDATED_ISSUER}


class PoolReplicationSettingsProvider(AwsAccessProvider):
    """Sets the pool's multi-Region key and UPDATED issuer; safe to pickle."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures = []
        key = news.get("kms_key_arn")
        if not is_unknown(key) and not (
            isinstance(key, str) and key.startswith("arn:") and ":key/mrk-" in key
        ):
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "kms_key_arn",
                    f"{key!r} is not a multi-Region KMS key ARN (arn:aws:kms:<region>:<account>:key/mrk-...); "
                    "replication needs aws.kms.Key(multi_region=True)",
                )
            )
        return pulumi.dynamic.CheckResult({**news, "issuer_type": UPDATED_ISSUER}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, SETTINGS_REPLACE_KEYS)
        updates = changed_keys(olds, news, SETTINGS_UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(changes=bool(replaces or updates), replaces=replaces)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        settings = apply_settings(self.access, props, props["kms_key_arn"])
        return pulumi.dynamic.CreateResult(props["user_pool_id"], self._outputs(props, settings))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(
            self._outputs(news, apply_settings(self.access, news, news["kms_key_arn"]))
        )

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        pool = _describe_pool(_cognito(self.access, props["region"]), props["user_pool_id"], props["region"])
        if pool is None:
            return pulumi.dynamic.ReadResult("", {})
        return pulumi.dynamic.ReadResult(id_, self._outputs(props, _settings_of(pool)))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = _cognito(self.access, props["region"])
        if _describe_pool(client, props["user_pool_id"], props["region"]) is None:
            return
        apply_settings(self.access, props, None)

    @staticmethod
    def _outputs(props: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        return {
            **props,
            "kms_key_arn": settings["kms_key_arn"],
            "issuer_type": settings["issuer_type"],
            "issuer_url": issuer_url(props["region"], props["user_pool_id"]),
        }


class PoolReplicationSettings(pulumi.dynamic.Resource, module="cognito", name="PoolReplicationSettings"):
    """The user pool's multi-Region key and UPDATED issuer; ``issuer_url`` is the tokens' ``iss``."""

    issuer_url: pulumi.Output[str]
    issuer_type: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        user_pool_id: pulumi.Input[str],
        region: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "user_pool_id": user_pool_id,
            "region": region,
            "kms_key_arn": kms_key_arn,
            "issuer_type": UPDATED_ISSUER,
            "issuer_url": None,
        }
        super().__init__(PoolReplicationSettingsProvider(), name, props, opts)


# ---------------------------------------------------------------- the replica


def find_replica(access: AwsAccess, props: dict[str, Any]) -> dict[str, Any] | None:
    """The replica of ``replica_region`` as ListUserPoolReplicas shows it; None when it (or the pool) is gone."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _cognito(access, props["primary_region"])
    try:
        token: dict[str, str] = {}
        while True:  # botocore has no paginator for it: follow NextToken
            page = client.list_user_pool_replicas(UserPoolId=props["user_pool_id"], **token)
            for replica in page.get("UserPoolReplicas", []):
                if replica.get("RegionName") == props["replica_region"] and replica.get("Role") != "PRIMARY":
                    return dict(replica)
            if not page.get("NextToken"):
                return None
            token = {"NextToken": page["NextToken"]}
    except client.exceptions.ResourceNotFoundException:
        return None
    except (BotoCoreError, ClientError) as exc:
        raise ReplicationError(
            f"ListUserPoolReplicas {props['user_pool_id']} ({props['primary_region']}) failed: {exc}; the "
            "deploying identity needs cognito-idp:ListUserPoolReplicas on the pool"
        ) from None
    return None


def _label(props: dict[str, Any]) -> str:
    return f"replica of user pool {props['user_pool_id']} in {props['replica_region']}"


def wait_for(access: AwsAccess, props: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any] | None:
    """Poll until the replica's status is in ``wanted`` ("GONE" for deleted); bounded, with progress."""
    timeout = float(props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
    poll = float(props.get("poll_interval_seconds") or DEFAULT_POLL_SECONDS)
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        replica = find_replica(access, props)
        status = replica["Status"] if replica else "GONE"
        if status in wanted:
            return replica
        if status == DELETING and "GONE" not in wanted:
            raise ReplicationError(f"{_label(props)} is being deleted; run `pulumi up` again once it is gone")
        if status == "GONE" and "GONE" not in wanted:
            raise ReplicationError(
                f"{_label(props)} disappeared while waiting; run `pulumi up` to create it again"
            )
        if status != last:
            log_progress(f"waiting for the {_label(props)}: {status}")
            last = status
        if time.monotonic() >= deadline:
            raise ReplicationError(
                f"{_label(props)} is still {status} after {timeout:g} s (waiting for {'/'.join(sorted(wanted))}); "
                "run `pulumi up` again to keep waiting (an existing replica is adopted, not created twice)"
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _set_status(access: AwsAccess, props: dict[str, Any], status: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    log_progress(f"{_label(props)}: setting {status}")
    try:
        _cognito(access, props["primary_region"]).update_user_pool_replica(
            UserPoolId=props["user_pool_id"], RegionName=props["replica_region"], Status=status
        )
    except (BotoCoreError, ClientError) as exc:
        raise ReplicationError(
            f"UpdateUserPoolReplica {status} of the {_label(props)} failed: {exc}"
        ) from None


def activate(access: AwsAccess, props: dict[str, Any]) -> dict[str, Any]:
    """Wait out CREATING, make the replica ACTIVE and wait until it is; return it."""
    replica = wait_for(access, props, frozenset({INACTIVE, ACTIVE}))
    assert replica is not None
    if replica["Status"] == INACTIVE:
        _set_status(access, props, ACTIVE)
        replica = wait_for(access, props, frozenset({ACTIVE}))
        assert replica is not None
    log_progress(f"{_label(props)} is ACTIVE")
    return replica


class UserPoolReplicaProvider(AwsAccessProvider):
    """Creates, activates, reads and (unprotected) deletes the replica; safe to pickle."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        inputs = {
            "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
            "poll_interval_seconds": DEFAULT_POLL_SECONDS,
            **news,
        }
        inputs["status"] = ACTIVE
        failures: list[pulumi.dynamic.CheckFailure] = []
        primary, replica = inputs.get("primary_region"), inputs.get("replica_region")
        if not is_unknown(primary) and not is_unknown(replica) and primary == replica:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "replica_region", f"the replica must be in another region than {primary}"
                )
            )
        _check_seconds(inputs, failures)
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, REPLICA_REPLACE_KEYS)
        updates = changed_keys(olds, news, REPLICA_UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            delete_before_replace=True if replaces else None,  # one replica per pool and region
        )

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        from botocore.exceptions import BotoCoreError, ClientError

        existing = find_replica(self.access, props)
        if existing is not None and existing["Status"] != DELETING:
            log_progress(f"adopting the existing {_label(props)} ({existing['Status']})")
        else:
            if existing is not None:
                wait_for(self.access, props, frozenset({"GONE"}))
            log_progress(f"creating the {_label(props)}")
            try:
                _cognito(self.access, props["primary_region"]).create_user_pool_replica(
                    UserPoolId=props["user_pool_id"],
                    RegionName=props["replica_region"],
                    UserPoolTags=dict(props.get("tags") or {}),
                )
            except (BotoCoreError, ClientError) as exc:
                code = _code(exc)
                hint = (
                    HOW_TO_PROCEED
                    if code in ELIGIBILITY_ERRORS or code == "InvalidParameterException"
                    else ("check the deploying identity's cognito-idp:CreateUserPoolReplica permission")
                )
                raise ReplicationError(
                    f"CreateUserPoolReplica ({_label(props)}) failed: {exc}. {hint}"
                ) from None
        replica = activate(self.access, props)
        return pulumi.dynamic.CreateResult(
            f"{props['user_pool_id']}@{props['replica_region']}", self._outputs(props, replica)
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        replica = find_replica(self.access, news)
        if replica is None:
            raise ReplicationError(
                f"the {_label(news)} is gone; `pulumi refresh` then `pulumi up` creates it again"
            )
        if replica["Status"] != ACTIVE:
            replica = activate(self.access, news)
        return pulumi.dynamic.UpdateResult(self._outputs(news, replica))

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        replica = find_replica(self.access, props)
        if replica is None or replica["Status"] == DELETING:
            log_progress(f"the {_label(props)} reads as gone; `pulumi up` creates it again")
            return pulumi.dynamic.ReadResult("", {})
        return pulumi.dynamic.ReadResult(id_, self._outputs(props, replica))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("deletion_protection"):
            raise ReplicationError(
                f"deletion protection is on for the {_label(props)}; nothing was changed. To remove it: "
                "`pulumi config set deletionProtection false` and `pulumi up` (nothing else changes), then "
                "`pulumi config set authReplica false` and `pulumi up` again (or `pulumi destroy`)"
            )
        from botocore.exceptions import BotoCoreError, ClientError

        replica = find_replica(self.access, props)
        if replica is None:
            return
        if replica["Status"] == ACTIVE:
            _set_status(self.access, props, INACTIVE)
            replica = wait_for(self.access, props, frozenset({INACTIVE, "GONE"}))
        if replica is not None and replica["Status"] != DELETING:
            log_progress(f"deleting the {_label(props)}")
            try:
                _cognito(self.access, props["primary_region"]).delete_user_pool_replica(
                    UserPoolId=props["user_pool_id"], RegionName=props["replica_region"]
                )
            except (BotoCoreError, ClientError) as exc:
                raise ReplicationError(f"DeleteUserPoolReplica ({_label(props)}) failed: {exc}") from None
        wait_for(self.access, props, frozenset({"GONE"}))

    @staticmethod
    def _outputs(props: dict[str, Any], replica: dict[str, Any]) -> dict[str, Any]:
        return {**props, "status": replica["Status"], "user_pool_arn": replica.get("UserPoolArn")}


class UserPoolReplica(pulumi.dynamic.Resource, module="cognito", name="UserPoolReplica"):
    """The pool's ACTIVE replica in ``replica_region``; ``user_pool_arn`` is that region's pool ARN."""

    user_pool_arn: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        user_pool_id: pulumi.Input[str],
        primary_region: pulumi.Input[str],
        replica_region: pulumi.Input[str],
        deletion_protection: pulumi.Input[bool],
        tags: pulumi.Input[dict[str, str]] | None = None,
        timeout_seconds: pulumi.Input[float] = DEFAULT_TIMEOUT_SECONDS,
        poll_interval_seconds: pulumi.Input[float] = DEFAULT_POLL_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "user_pool_id": user_pool_id,
            "primary_region": primary_region,
            "replica_region": replica_region,
            "deletion_protection": deletion_protection,
            "tags": tags or {},
            "timeout_seconds": timeout_seconds,
            "poll_interval_seconds": poll_interval_seconds,
            "status": ACTIVE,
            "user_pool_arn": None,
        }
        super().__init__(UserPoolReplicaProvider(), name, props, opts)


# ---------------------------------------------------------------- the managed-login domain's failover

DOMAIN_REPLACE_KEYS = ("domain", "user_pool_id", "region")
DOMAIN_UPDATE_KEYS = ("health_check_id", "secondary_region", "managed_login_version", "certificate_arn")


def _domain_request(props: dict[str, Any], routing: dict[str, Any]) -> dict[str, Any]:
    """UpdateUserPoolDomain's parameters: the domain as pulumi-aws made it, plus ``routing``."""
    request: dict[str, Any] = {
        "Domain": props["domain"],
        "UserPoolId": props["user_pool_id"],
        "ManagedLoginVersion": int(props["managed_login_version"]),
        "Routing": routing,
    }
    if props.get("certificate_arn"):
        request["CustomDomainConfig"] = {"CertificateArn": props["certificate_arn"]}
    return request


def set_domain_routing(access: AwsAccess, props: dict[str, Any], failover: bool) -> None:
    """Fail the domain over to ``secondary_region`` on the health check (or, ``failover`` False, not)."""
    from botocore.exceptions import BotoCoreError, ClientError

    routing = (
        {
            "Failover": {
                "PrimaryRoute53HealthCheckId": props["health_check_id"],
                "SecondaryRegion": props["secondary_region"],
            }
        }
        if failover
        else {}
    )
    log_progress(f"managed-login domain {props['domain']}: failover {'on' if failover else 'off'}")
    try:
        _cognito(access, props["region"]).update_user_pool_domain(**_domain_request(props, routing))
    except (BotoCoreError, ClientError) as exc:
        raise ReplicationError(
            f"UpdateUserPoolDomain {props['domain']} ({props['region']}) failed: {exc}. Failover needs an "
            "ACTIVE replica in the secondary region and a Route 53 health check of the primary region"
        ) from None


class DomainFailoverProvider(AwsAccessProvider):
    """The managed-login domain's failover to the replica region; safe to pickle."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures = []
        for key in ("health_check_id", "secondary_region", "domain"):
            value = news.get(key)
            if not is_unknown(value) and not (isinstance(value, str) and value):
                failures.append(
                    pulumi.dynamic.CheckFailure(key, f"{key} is required for the domain's failover")
                )
        if not is_unknown(news.get("secondary_region")) and news.get("secondary_region") == news.get(
            "region"
        ):
            failures.append(
                pulumi.dynamic.CheckFailure("secondary_region", "the domain fails over to another region")
            )
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, DOMAIN_REPLACE_KEYS)
        updates = changed_keys(olds, news, DOMAIN_UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(changes=bool(replaces or updates), replaces=replaces)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        set_domain_routing(self.access, props, True)
        return pulumi.dynamic.CreateResult(props["domain"], dict(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        set_domain_routing(self.access, news, True)
        return pulumi.dynamic.UpdateResult(dict(news))

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        from botocore.exceptions import BotoCoreError, ClientError

        client = _cognito(self.access, props["region"])
        try:
            description = (
                client.describe_user_pool_domain(Domain=props["domain"]).get("DomainDescription") or {}
            )
        except (BotoCoreError, ClientError) as exc:
            raise ReplicationError(f"DescribeUserPoolDomain {props['domain']} failed: {exc}") from None
        if description.get("UserPoolId") != props["user_pool_id"]:
            return pulumi.dynamic.ReadResult("", {})  # the domain is gone (or another pool's)
        failover = (description.get("Routing") or {}).get("Failover") or {}
        return pulumi.dynamic.ReadResult(
            id_,
            {
                **props,
                # "" (not None, which the engine drops) when not routed: a diff that `pulumi up` repairs
                "health_check_id": failover.get("PrimaryRoute53HealthCheckId", ""),
                "secondary_region": failover.get("SecondaryRegion", ""),
            },
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = _cognito(self.access, props["region"])
        description = client.describe_user_pool_domain(Domain=props["domain"]).get("DomainDescription") or {}
        if description.get("UserPoolId") == props["user_pool_id"]:
            set_domain_routing(self.access, props, False)


class DomainFailover(pulumi.dynamic.Resource, module="cognito", name="DomainFailover"):
    """The managed-login domain follows the primary region's health check to the replica region."""

    def __init__(
        self,
        name: str,
        *,
        domain: pulumi.Input[str],
        user_pool_id: pulumi.Input[str],
        region: pulumi.Input[str],
        managed_login_version: pulumi.Input[int],
        health_check_id: pulumi.Input[str],
        secondary_region: pulumi.Input[str],
        certificate_arn: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "domain": domain,
            "user_pool_id": user_pool_id,
            "region": region,
            "managed_login_version": managed_login_version,
            "health_check_id": health_check_id,
            "secondary_region": secondary_region,
            "certificate_arn": certificate_arn or "",
        }
        super().__init__(DomainFailoverProvider(), name, props, opts)
