"""The drill probe's Lambda entry point, ``probe.app.handler``: one observation of where clients land.

Invoked by the failover drill's state machine (Lambda Invoke) with the event that ``probe.event``
describes. Two observations, both for a client in the drilled (``target``) region:

- ``dns``: the region named by the latency-routed TXT record, answered by the zone's authoritative
  name servers for the target's client subnet;
- ``https``: the region named by the ``X-Served-Region`` header of a GET to the domain, at the address
  those servers give for the same subnet.

An observation that fails (timeout, refusal, missing record, TLS error) becomes its ``error`` text and
a ``null`` region; only a malformed event raises. Every step is bounded by ``timeoutSeconds`` and by the
time the invocation has left, so the function always returns its result.

An event with an ``identity`` object asks for the identity check instead (``probe.identity``): sign-in
and token refresh at one region's Cognito endpoint, as the drill's user; its result is ``{"identity":
{"region", "signIn", "refresh"}, "elapsedMs"}``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from probe.authoritative import LookupFailed, address_of, client_subnet, region_of
from probe.event import IdentityEvent, ProbeEvent, is_identity_event, parse_event, parse_identity_event
from probe.served import RequestFailed, served_region

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# Kept back from the invocation's remaining time: the result must be returned before Lambda's timeout.
RESERVE_SECONDS = 0.5
MIN_STEP_SECONDS = 0.05


class _Budget:
    """Per-step timeouts: the event's ``timeoutSeconds``, cut to what the invocation has left."""

    def __init__(self, step_seconds: float, context: Any) -> None:
        self.step_seconds = step_seconds
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self.deadline = (
            time.monotonic() + remaining() / 1000 - RESERVE_SECONDS if callable(remaining) else None
        )

    def __call__(self) -> float:
        if self.deadline is None:
            return self.step_seconds
        left = self.deadline - time.monotonic()
        if left < MIN_STEP_SECONDS:
            raise LookupFailed("the invocation ran out of time (raise the probe function's timeout)")
        return min(self.step_seconds, left)


def observe(probe: ProbeEvent, context: Any = None) -> dict[str, Any]:
    """Both observations for a client in ``probe.target``'s region, as the result's JSON object."""
    started = time.monotonic()
    budget = _Budget(probe.timeout_seconds, context)
    dns_result: dict[str, Any] = {"region": None, "nameServer": None, "error": None}
    https_result: dict[str, Any] = {"region": None, "address": None, "status": None, "error": None}
    subnet_text = None
    try:
        subnet = client_subnet(probe.subnet_hosts[probe.target])
        subnet_text = str(subnet)
    except LookupFailed as error:
        dns_result["error"] = https_result["error"] = f"no client subnet for {probe.target}: {error}"
    else:
        try:
            dns_result["region"], dns_result["nameServer"] = region_of(
                probe.name_servers, probe.region_record, subnet, port=probe.dns_port, timeout=budget
            )
        except LookupFailed as error:
            dns_result["error"] = str(error)
        try:
            address, _ = address_of(
                probe.name_servers, probe.domain, subnet, port=probe.dns_port, timeout=budget
            )
            https_result["address"] = address
            served = served_region(
                address, probe.domain, probe.path, scheme=probe.scheme, port=probe.http_port, timeout=budget()
            )
            https_result["region"], https_result["status"] = served.region, served.status
        except LookupFailed as error:
            https_result["error"] = str(error)
        except RequestFailed as error:
            https_result["error"], https_result["status"] = str(error), error.status
    return {
        "target": probe.target,
        "clientSubnet": subnet_text,
        "dns": dns_result,
        "https": https_result,
        "elapsedMs": round((time.monotonic() - started) * 1000),
    }


def observe_identity(event: IdentityEvent, context: Any = None) -> dict[str, Any]:
    """The identity check's outcome (never a password or a token), as the result's JSON object."""
    from probe.identity import check_identity  # imports boto3: only when an identity check is asked for

    started = time.monotonic()
    identity = check_identity(event.identity, _Budget(event.timeout_seconds, context))
    return {"identity": identity, "elapsedMs": round((time.monotonic() - started) * 1000)}


def handler(event: object, context: Any = None) -> dict[str, Any]:
    """Lambda entry point: the observation as JSON; raises ``ValueError`` only for a malformed event."""
    if is_identity_event(event):
        result = observe_identity(parse_identity_event(event), context)
        logger.info(json.dumps({"message": "probe identity check", **result}))
        return result
    result = observe(parse_event(event), context)
    logger.info(json.dumps({"message": "probe observation", **result}))
    return result
