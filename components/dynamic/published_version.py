"""Wait until a published Lambda version can be invoked, as a Pulumi dynamic resource.

With SnapStart the AWS provider publishes a version on every change, but on create it waits only for
the function, not for the version it published (CreateFunction with Publish=true; open upstream issue
hashicorp/terraform-provider-aws#42693; updates do wait). A SnapStart version stays ``Pending`` while
Lambda initializes it and takes the snapshot, often for minutes, and "Lambda does not invoke a function
during pending state". Everything that makes the version live (the alias ``live``, so the API's
integration, its deployment, the invoke permission and the smoke checks) depends on this resource, so
nothing points at a version before Lambda can run it.

create  Waits with botocore's ``published_version_active`` waiter (GetFunctionConfiguration with the
        version as Qualifier: success on ``Active``, failure on ``Failed``, retry on ``Pending``), in
        rounds of about a minute so the CLI shows progress, for at most ``timeout_seconds``. A
        ``Failed`` version fails the update with Lambda's reason (``StateReasonCode``/``StateReason``);
        the timeout names the version and says that the next ``pulumi up`` waits again.
read    (``pulumi refresh``) GetFunctionConfiguration of the version: gone when the function or the
        version no longer exists; otherwise its current state.
diff    A new function name, version or region is a new resource (one wait per published version);
        only the timeout changing is an update, with no AWS call.
delete  Nothing: the version belongs to the function (the AWS provider deletes it with the function).

The version comes from the function's ``version`` output, so the engine creates this resource after the
function, and a new version (a new publish) is a new wait. Consumers read ``active_version``, an output
that is not an input: a Python dynamic provider cannot preview, so in the preview of a new wait it is
unknown, and the engine can only create what follows it (the alias) after the wait has run.
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
import pulumi.dynamic

from components.dynamic.aws_session import AwsAccess, AwsAccessProvider, session
from components.dynamic.engine import changed_keys, is_unknown, log_progress

DEFAULT_TIMEOUT_SECONDS = 1800  # SnapStart versions take minutes; PublishedVersionActive's own bound is 26
ROUND_SECONDS = 60  # one progress line a minute
POLL_SECONDS = 5  # the waiter model's own delay
REPLACE_KEYS = ("function_name", "version", "region")
UPDATE_KEYS = ("timeout_seconds",)


class PublishedVersionError(RuntimeError):
    """The version failed, timed out or cannot be read; the message names it and the fix."""


def _lambda(access: AwsAccess, region: str) -> Any:
    return session(access, region).client("lambda")


def _label(props: dict[str, Any]) -> str:
    return f"{props['function_name']}:{props['version']} ({props['region']})"


class PublishedVersionProvider(AwsAccessProvider):
    """Waits for one published version; safe to pickle (nothing is kept on ``self`` before configure)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures = []
        version = news.get("version")
        if not is_unknown(version) and not (isinstance(version, str) and version.isdigit()):
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "version",
                    f"{version!r} is not a published version number; pass the function's `version` output "
                    "of a function created with publish=True ($LATEST is never published)",
                )
            )
        timeout = news.get("timeout_seconds")
        if not is_unknown(timeout) and not (isinstance(timeout, int | float) and 10 <= timeout <= 7200):
            failures.append(pulumi.dynamic.CheckFailure("timeout_seconds", "must be between 10 and 7200"))
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, REPLACE_KEYS)
        updates = changed_keys(olds, news, UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(changes=bool(replaces or updates), replaces=replaces)

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        state = wait_until_active(self.access, props)
        return pulumi.dynamic.CreateResult(
            _label(props), {**props, "state": state, "active_version": props["version"]}
        )

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        client = _lambda(self.access, props["region"])
        try:
            configuration = client.get_function_configuration(
                FunctionName=props["function_name"], Qualifier=props["version"]
            )
        except client.exceptions.ResourceNotFoundException:
            return pulumi.dynamic.ReadResult("", {})
        state = configuration.get("State", "Active")
        return pulumi.dynamic.ReadResult(id_, {**props, "state": state, "active_version": props["version"]})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        # Only the timeout changed (a new version is a replacement): the version is the one waited for.
        return pulumi.dynamic.UpdateResult(
            {**news, "state": olds.get("state"), "active_version": olds.get("active_version")}
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        return None  # the version is the function's: deleted with it


def wait_until_active(access: AwsAccess, props: dict[str, Any]) -> str:
    """Block until the version is Active (returns "Active"), or raise PublishedVersionError."""
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

    waiter = _lambda(access, props["region"]).get_waiter("published_version_active")
    timeout = float(props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
    deadline = time.monotonic() + timeout
    label = _label(props)
    while True:
        rounds = max(1, min(ROUND_SECONDS, int(deadline - time.monotonic())) // POLL_SECONDS)
        try:
            waiter.wait(
                FunctionName=props["function_name"],
                Qualifier=props["version"],
                WaiterConfig={"Delay": POLL_SECONDS, "MaxAttempts": rounds},
            )
            log_progress(f"Lambda version {label} is Active")
            return "Active"
        except WaiterError as exc:
            last = exc.last_response or {}
            state = last.get("State")
            if state == "Failed":
                raise PublishedVersionError(
                    f"Lambda version {label} failed to initialize ({last.get('StateReasonCode')}: "
                    f"{last.get('StateReason')}); with SnapStart the init code runs before the snapshot: "
                    "fix the cause (its logs are in the function's log group), then `pulumi up` publishes "
                    "a new version"
                ) from None
            if "Error" in last:  # the call failed (permissions, not found): not worth waiting for
                raise PublishedVersionError(
                    f"reading Lambda version {label} failed: {last['Error'].get('Message')}; the deploying "
                    "identity needs lambda:GetFunctionConfiguration on the function"
                ) from None
            if time.monotonic() >= deadline:
                raise PublishedVersionError(
                    f"Lambda version {label} is still {state or 'not Active'} after {timeout:g} s; nothing "
                    "points at it yet. Run `pulumi up` again to keep waiting."
                ) from None
            log_progress(f"waiting for Lambda version {label}: {state} (SnapStart takes its snapshot)")
        except (BotoCoreError, ClientError) as exc:
            raise PublishedVersionError(f"reading Lambda version {label} failed: {exc}") from None


class PublishedVersion(pulumi.dynamic.Resource, module="lambda", name="PublishedVersion"):
    """A published version of a function; ``active_version`` is known once Lambda can invoke it."""

    active_version: pulumi.Output[str]
    """The version, set only after the wait: what an alias may point at."""
    state: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        function_name: pulumi.Input[str],
        version: pulumi.Input[str],
        region: pulumi.Input[str],
        timeout_seconds: pulumi.Input[int] = DEFAULT_TIMEOUT_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "function_name": function_name,
            "version": version,
            "region": region,
            "timeout_seconds": timeout_seconds,
            "state": None,
            "active_version": None,
        }
        super().__init__(PublishedVersionProvider(), name, props, opts)
