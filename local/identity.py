"""Cognito of each local region: the user pool in the first (primary) region and its replica in the
others, as the stack deploys it with ``authReplica`` (docs/identity.md), each of which can be taken down.

What each region's identity serves, on the web client's server (local/web.py), beside the managed-login
domain:

* its **regional endpoint**, ``/cognito-idp/<region>/``, speaking Cognito's JSON protocol as
  ``https://cognito-idp.<region>.amazonaws.com/`` does (``X-Amz-Target:
  AWSCognitoIdentityProviderService.GetTokensFromRefreshToken``, ``application/x-amz-json-1.1``, no
  signature), the one call the web client makes there; errors as Cognito's ``{"__type", "message"}``;
* its **issuer view**, ``/cognito-idp/<region>/<pool id>/.well-known/jwks.json``: with the ``UPDATED``
  issuer every region publishes the same keys, so a token issued in either region passes both regions'
  authorizers. Each region's containers are given their own region's view (``container_env``).

The **managed-login domain** (the OAuth paths, local/oauth.py) fails over as the deployed domain's
``Routing.Failover`` does: it is served by the primary region's identity while the primary region is
healthy (its containers up, as its Route 53 health check sees them) and its identity is up, otherwise
by the replica's. Locally "identity down" also moves the domain; on AWS the domain follows only the
primary region's health check (a Cognito-only outage needs the health check inverted, the drill's
way), which docs/local.md says.

The user pool's data (people, refresh tokens) is shared, as replication shares it; a region whose
identity is down refuses every call (503). Nothing here touches the API's own authorizer: a region's
containers keep the keys they were given, as an authorizer that caches the published keys would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from local.auth import LocalIssuer, container_env
from local.oauth import LocalOAuth, OAuthError

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
# The web client's one call there: its app client rotates refresh tokens, which REFRESH_TOKEN_AUTH cannot.
OPERATION = "GetTokensFromRefreshToken"
JSON_1_1 = "application/x-amz-json-1.1"
ENDPOINT_PREFIX = "/cognito-idp/"
STATES = ("up", "down")


class CognitoError(Exception):
    """An answer of Cognito's JSON protocol other than 200: ``kind`` is its ``__type``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message

    def body(self) -> dict[str, str]:
        return {"__type": self.kind, "message": self.message}


def region_view_env(issuer: LocalIssuer | None) -> dict[str, str]:
    """What one region's containers validate tokens with: the keys, issuer and audience its identity
    publishes. The same in every region (the ``UPDATED`` issuer publishes the same keys everywhere)."""
    return container_env(issuer)


class LocalIdentity:
    """The regions' identity (``regions``: the primary first), their states and the domain's routing.

    ``healthy(region)`` says whether a region's API is up (the launcher's view of its containers), the
    signal the domain's failover follows; ``origin`` is the server the endpoints are on.
    """

    def __init__(
        self,
        oauth: LocalOAuth,
        regions: Sequence[str],
        origin: str,
        healthy: Callable[[str], bool] = lambda _: True,
    ) -> None:
        if not regions:
            raise ValueError("identity needs at least one region")
        self.oauth = oauth
        self.regions = tuple(regions)
        self.origin = origin.rstrip("/")
        self._healthy = healthy
        self._down: set[str] = set()
        self._lock = threading.Lock()

    @property
    def primary(self) -> str:
        return self.regions[0]

    def endpoint(self, region: str) -> str:
        """The regional endpoint's URL (``https://cognito-idp.<region>.amazonaws.com/`` on AWS)."""
        return f"{self.origin}{ENDPOINT_PREFIX}{region}/"

    def endpoints(self) -> dict[str, str]:
        return {region: self.endpoint(region) for region in self.regions}

    def jwks_url(self, region: str) -> str:
        return f"{self.endpoint(region)}{self.oauth.issuer.pool_id}/.well-known/jwks.json"

    # ------------------------------------------------------------ states

    def is_up(self, region: str) -> bool:
        with self._lock:
            return region not in self._down

    def set_state(self, region: str, state: str) -> None:
        """Take one region's identity down or bring it back (``state``: "up" or "down")."""
        if region not in self.regions:
            raise KeyError(region)
        if state not in STATES:
            raise ValueError(f"state must be up or down, not {state!r}")
        with self._lock:
            if state == "down":
                self._down.add(region)
            else:
                self._down.discard(region)

    def domain_region(self) -> str | None:
        """The region whose identity serves the managed-login domain now: the primary's while its region
        is healthy and its identity up, else the first replica whose identity is up (None: none is)."""
        if self.is_up(self.primary) and self._healthy(self.primary):
            return self.primary
        return next((region for region in self.regions[1:] if self.is_up(region)), None)

    def describe(self) -> dict[str, Any]:
        """What the control endpoint's GET /identity answers (the drill reads it)."""
        return {
            "regions": {region: "up" if self.is_up(region) else "down" for region in self.regions},
            "primary": self.primary,
            "domain": {"url": self.origin, "region": self.domain_region()},
            "endpoints": self.endpoints(),
            "clientId": self.oauth.issuer.client_id,
            "redirectUris": sorted(self.oauth.redirect_uris),
        }

    # ------------------------------------------------------------ the regional endpoint

    def check_up(self, region: str) -> None:
        if region not in self.regions:
            raise CognitoError(404, "ResourceNotFoundException", f"no local region {region!r}")
        if not self.is_up(region):
            raise CognitoError(
                503,
                "InternalErrorException",
                f"Cognito in {region} is down (taken down through the control endpoint; "
                f'POST /identity/{region} {{"state": "up"}} brings it back)',
            )

    def call(self, region: str, target: str | None, body: bytes) -> dict[str, Any]:
        """One call to ``region``'s regional endpoint; CognitoError for Cognito's error answers."""
        self.check_up(region)
        if target != TARGET_PREFIX + OPERATION:
            raise CognitoError(
                400,
                "UnknownOperationException",
                f"X-Amz-Target {target!r}: the local regional endpoint answers {TARGET_PREFIX}{OPERATION} only",
            )
        try:
            request = json.loads(body)
        except ValueError:
            raise CognitoError(400, "SerializationException", "the body is not JSON") from None
        if not isinstance(request, dict):
            raise CognitoError(400, "SerializationException", "the body must be a JSON object")
        return self.tokens_from_refresh_token(request)

    def tokens_from_refresh_token(self, request: dict[str, Any]) -> dict[str, Any]:
        """GetTokensFromRefreshToken: new ID and access tokens for a refresh token of the app client (no
        new refresh token: the local issuer does not rotate them, at its token endpoint either)."""
        client_id = request.get("ClientId")
        refresh_token = request.get("RefreshToken")
        if not isinstance(client_id, str) or not isinstance(refresh_token, str) or not refresh_token:
            raise CognitoError(
                400, "InvalidParameterException", "RefreshToken and ClientId are required strings"
            )
        if client_id != self.oauth.issuer.client_id:
            raise CognitoError(
                400, "ResourceNotFoundException", f"User pool client {client_id} does not exist."
            )
        try:
            tokens = self.oauth.refresh(client_id, refresh_token)
        except OAuthError:
            raise CognitoError(400, "NotAuthorizedException", "Invalid Refresh Token") from None
        return {
            "AuthenticationResult": {
                "IdToken": tokens["id_token"],
                "AccessToken": tokens["access_token"],
                "ExpiresIn": tokens["expires_in"],
                "TokenType": tokens["token_type"],
            }
        }
