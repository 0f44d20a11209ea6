"""The probe's events: checked and typed before anything goes on the network.

Two kinds: where a client of the drilled region lands (``parse_event``: DNS and HTTPS), and, with an
``identity`` object and nothing else but ``timeoutSeconds``, the identity check (``parse_identity_event``:
sign-in and token refresh at one region's Cognito endpoint). A malformed event is a bug in the state
machine's definition, not an observation: it raises ``ValueError`` naming the key and what it must hold,
and the invocation fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMES = ("https", "http")
DEFAULT_PATH = "/health"
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 60.0
REQUIRED = ("target", "nameServers", "regionRecord", "domain", "subnetHosts")
OPTIONAL = ("path", "timeoutSeconds", "scheme", "port", "dnsPort")
IDENTITY_KEYS = ("region", "clientId", "secretArn")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
CLIENT_ID = re.compile(r"[\w+]{1,128}")
SECRET_ARN = re.compile(r"arn:aws[\w-]*:secretsmanager:(?P<region>[a-z0-9-]+):\d{12}:secret:[\w/+=.@-]+")


@dataclass(frozen=True)
class ProbeEvent:
    """What one probe run asks, as the state machine sends it."""

    target: str
    """The region the drill takes out; the client subnet is taken from its ``subnetHosts`` entry."""
    name_servers: tuple[str, ...]
    """The hosted zone's delegation set (host names or addresses), asked in this order."""
    region_record: str
    """The latency-routed TXT record whose value is the name of the region it routes to."""
    domain: str
    """The name clients use; resolved at the name servers and sent as TLS SNI and Host."""
    subnet_hosts: Mapping[str, str]
    """A host name in each region: its address's /24 stands for a client in that region."""
    path: str = DEFAULT_PATH
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    """Each network step (one DNS query, one connection and answer) waits at most this long."""
    scheme: str = "https"
    port: int | None = None
    """The HTTP(S) port; None means the scheme's (443 or 80)."""
    dns_port: int = 53

    @property
    def http_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme == "https" else 80


def _text(event: Mapping[str, Any], key: str, hint: str) -> str:
    value = event[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"event key {key!r} must be a non-empty string ({hint}), got {value!r}")
    return value.strip()


def _port(event: Mapping[str, Any], key: str) -> int:
    value = event[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"event key {key!r} must be a port number from 1 to 65535, got {value!r}")
    return value


def parse_event(event: object) -> ProbeEvent:
    """The event checked; ``ValueError`` names the first key that is missing, unknown or malformed."""
    if not isinstance(event, Mapping):
        raise ValueError(
            f"the probe's event must be a JSON object with keys {REQUIRED}, got {type(event).__name__}"
        )
    missing = [key for key in REQUIRED if key not in event]
    if missing:
        raise ValueError(f"event key {missing[0]!r} is missing; the probe needs {', '.join(REQUIRED)}")
    unknown = sorted(str(key) for key in event if key not in REQUIRED + OPTIONAL)
    if unknown:
        raise ValueError(
            f"event key {unknown[0]!r} is not one the probe knows; use {', '.join(REQUIRED + OPTIONAL)}"
        )
    target = _text(event, "target", "the region the drill takes out, e.g. us-east-2")
    name_servers = event["nameServers"]
    if (
        not isinstance(name_servers, list)
        or not name_servers
        or not all(isinstance(server, str) and server.strip() for server in name_servers)
    ):
        raise ValueError(
            "event key 'nameServers' must be a non-empty list of name server host names (the hosted "
            f"zone's delegation set from GetHostedZone), got {name_servers!r}"
        )
    subnet_hosts = event["subnetHosts"]
    if (
        not isinstance(subnet_hosts, Mapping)
        or not subnet_hosts
        or not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in subnet_hosts.items())
    ):
        raise ValueError(
            "event key 'subnetHosts' must map each region to a host name in it (e.g. the regional API's "
            f"execute-api host), got {subnet_hosts!r}"
        )
    if target not in subnet_hosts:
        raise ValueError(
            f"event key 'subnetHosts' has no host for the target region {target!r}; it has "
            f"{sorted(subnet_hosts)}: add the target's regional API host"
        )
    path = _text(event, "path", "the path to GET, e.g. /health") if "path" in event else DEFAULT_PATH
    if not path.startswith("/"):
        raise ValueError(f"event key 'path' must start with '/', got {path!r}")
    scheme = event.get("scheme", "https")
    if scheme not in SCHEMES:
        raise ValueError(f"event key 'scheme' must be one of {SCHEMES} (http only for tests), got {scheme!r}")
    return ProbeEvent(
        target=target,
        name_servers=tuple(server.strip() for server in name_servers),
        region_record=_text(
            event, "regionRecord", "the latency-routed TXT record, e.g. _region.api.example.com"
        ),
        domain=_text(event, "domain", "the name clients use, e.g. api.example.com"),
        subnet_hosts={region: host.strip() for region, host in subnet_hosts.items()},
        path=path,
        timeout_seconds=_timeout(event),
        scheme=scheme,
        port=_port(event, "port") if "port" in event else None,
        dns_port=_port(event, "dnsPort") if "dnsPort" in event else 53,
    )


@dataclass(frozen=True)
class IdentityCheck:
    """Where and as whom the identity check signs in."""

    region: str
    """The region whose Cognito endpoint is asked (the pool's replica: the secondary)."""
    client_id: str
    """The drill's app client (USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH only; the API refuses its tokens)."""
    secret_arn: str
    """The drill user's secret in that region (the replica of the secret): ``{"username", "password"}``."""


@dataclass(frozen=True)
class IdentityEvent:
    identity: IdentityCheck
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    """Each network step (reading the secret, each InitiateAuth) waits at most this long."""


def is_identity_event(event: object) -> bool:
    return isinstance(event, Mapping) and "identity" in event


def _timeout(event: Mapping[str, Any]) -> float:
    timeout: object = event.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise ValueError(
            f"event key 'timeoutSeconds' must be a number of seconds above 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:.0f}, got {timeout!r}"
        )
    return float(timeout)


def parse_identity_event(event: object) -> IdentityEvent:
    """``{"identity": {"region", "clientId", "secretArn"}, "timeoutSeconds"?}`` checked; ``ValueError``
    names the first key that is missing, unknown or malformed."""
    if not isinstance(event, Mapping):
        raise ValueError(f"the probe's event must be a JSON object, got {type(event).__name__}")
    unknown = sorted(str(key) for key in event if key not in ("identity", "timeoutSeconds"))
    if unknown:
        raise ValueError(
            f"event key {unknown[0]!r} does not go with 'identity': an identity check takes 'identity' and "
            "'timeoutSeconds' only"
        )
    identity = event["identity"]
    if not isinstance(identity, Mapping):
        raise ValueError(
            f"event key 'identity' must be an object with {', '.join(IDENTITY_KEYS)}, got {identity!r}"
        )
    missing = [key for key in IDENTITY_KEYS if key not in identity]
    if missing:
        raise ValueError(f"event key 'identity.{missing[0]}' is missing; it needs {', '.join(IDENTITY_KEYS)}")
    extra = sorted(str(key) for key in identity if key not in IDENTITY_KEYS)
    if extra:
        raise ValueError(
            f"event key 'identity.{extra[0]}' is not one the probe knows; use {', '.join(IDENTITY_KEYS)}"
        )
    region, client_id, secret_arn = (identity[key] for key in IDENTITY_KEYS)
    if not isinstance(region, str) or not REGION.fullmatch(region):
        raise ValueError(f"event key 'identity.region' must be a region name, e.g. us-east-2, got {region!r}")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise ValueError(f"event key 'identity.clientId' must be an app client id, got {client_id!r}")
    match = SECRET_ARN.fullmatch(secret_arn) if isinstance(secret_arn, str) else None
    if match is None:
        raise ValueError(
            f"event key 'identity.secretArn' must be a Secrets Manager secret ARN, got {secret_arn!r}"
        )
    if match["region"] != region:
        raise ValueError(
            f"event key 'identity.secretArn' must be the secret's replica in {region} (where the check signs "
            f"in), not the one in {match['region']}"
        )
    return IdentityEvent(IdentityCheck(region, client_id, secret_arn), _timeout(event))
