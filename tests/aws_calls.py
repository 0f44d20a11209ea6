"""Record every AWS call the dynamic providers make, with the identity that signed it (tests only).

``record_sessions(base_session, calls)`` wraps ``aws_session.base_session``, the one place every
botocore session of the providers comes from (clients, token signers and the assume-role source), and
registers a ``before-parameter-build`` handler on each (botocore emits it once per API request, with the
operation's own parameters): the service's signing name (the IAM prefix), the operation, the region,
the parameters and the access key id that signs the call. ``record_tokens`` does the same
for IAM auth tokens, which are signed locally (no API call) but authorize ``dsql:DbConnectAdmin``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class AwsCall:
    """One AWS request: ``dsql:GetCluster`` in ``us-east-1`` with its parameters."""

    service: str
    operation: str
    region: str
    params: dict[str, Any]
    access_key_id: str

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "params": self.params,
            "access_key_id": self.access_key_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AwsCall:
        return cls(data["service"], data["operation"], data["region"], data["params"], data["access_key_id"])


@dataclass
class CallLog:
    """Calls in the order they were made; ``on_call`` lets a server process append them to a file."""

    calls: list[AwsCall] = field(default_factory=list)
    on_call: Callable[[AwsCall], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: AwsCall) -> None:
        with self.lock:
            self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def record_sessions(base_session: Callable[..., Any], log: CallLog) -> Callable[..., Any]:
    """A stand-in for ``aws_session.base_session`` whose sessions report each call to ``log``."""

    def recording_base_session(profile: str | None) -> Any:
        botocore_session = base_session(profile)

        def before_parameter_build(
            model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
        ) -> None:
            credentials = botocore_session.get_credentials()
            client_region = context.get("client_region") or botocore_session.get_config_variable("region")
            log.add(
                AwsCall(
                    service=model.service_model.signing_name,
                    operation=model.name,
                    region=str(client_region),
                    params=_json_safe(params),
                    access_key_id=credentials.get_frozen_credentials().access_key if credentials else "",
                )
            )

        botocore_session.register("before-parameter-build", before_parameter_build)
        return botocore_session

    return recording_base_session


def record_tokens(admin_token: Callable[..., str], log: CallLog) -> Callable[..., str]:
    """A stand-in for ``dsql_admin.admin_token`` that reports each token as a ``DbConnectAdmin`` call."""

    def recording_admin_token(endpoint: str, region: str, *args: Any) -> str:
        token = admin_token(endpoint, region, *args)
        query = parse_qs(urlsplit(f"https://{token}").query)
        credential = query.get("X-Amz-Credential", [""])[0]
        log.add(
            AwsCall(
                service="dsql",
                operation="DbConnectAdmin",
                region=region,
                params={"Hostname": endpoint, "Action": query.get("Action", [""])[0]},
                access_key_id=credential.split("/")[0],
            )
        )
        return token

    return recording_admin_token
