"""The failover drill's identity steps (``python -m tools.drill`` against a local app with authentication):
what a user of the web client goes through when the primary region's Cognito is down.

  identity-down      the control endpoint takes the primary region's identity down; the managed-login
                     domain is now served by the replica's region
  sign-in-replica    a sign-in through the domain (authorization code with PKCE, as the web client does)
                     is answered by the replica's region, and its ID token is accepted by every region's API
  refresh-replica    GetTokensFromRefreshToken at the primary's regional endpoint fails, at the replica's
                     it renews the ID token, which every region's API accepts
  identity-up        the primary's identity comes back and serves the domain again

The domain and the regional endpoints are described by the control endpoint (GET /identity,
local/identity.py); every answer names the region that gave it (X-Served-Region).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from tools.smoke import EMAIL_DOMAIN, Region, Smoke, SmokeFailure

SERVED_REGION = "X-Served-Region"
TARGET = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken"

Control = Callable[..., dict[str, Any]]


class IdentityFailure(Exception):
    """An identity step's expectation did not hold; the message says what was seen."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the sign-in's redirect carries the code: read it, do not follow it


_OPENER = urllib.request.build_opener(_NoRedirect)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class IdentityDrill:
    """The identity steps of one drill run; ``describe`` is the control endpoint's GET /identity."""

    def __init__(
        self, control: Control, describe: dict[str, Any], regions: list[Region], timeout: float
    ) -> None:
        self.control = control
        self.describe = describe
        self.regions = regions
        self.timeout = timeout
        self.primary = describe["primary"]
        self.replica = next((name for name in describe["regions"] if name != self.primary), None)
        self.refresh_token: str | None = None
        self.user = f"drill-{secrets.token_hex(4)}"

    # ------------------------------------------------------------ HTTP

    def _call(self, url: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)  # noqa: S310 - the run's own URLs
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise IdentityFailure(f"POST {url} failed: {getattr(exc, 'reason', exc)}") from None

    def _form(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        url = self.describe["domain"]["url"] + path
        body = urllib.parse.urlencode(fields).encode()
        return self._call(url, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def _accepted_everywhere(self, id_token: str) -> str:
        """The token is accepted by every region's API (GET /users?limit=1 answers 200 there)."""
        smoke = Smoke([], timeout=self.timeout, headers={"Authorization": f"Bearer {id_token}"})
        for region in self.regions:
            try:
                reply = smoke.request(region, "GET", "/users?limit=1")
            except SmokeFailure as exc:
                raise IdentityFailure(str(exc)) from None
            if reply.status != 200:
                raise IdentityFailure(f"{region.label}'s API answered {reply.status} to the token")
        return ", ".join(region.label for region in self.regions)

    # ------------------------------------------------------------ steps

    def take_down(self) -> str:
        if self.replica is None:
            raise IdentityFailure("the run has one identity region: nothing to fail over to")
        state = self.control("POST", f"/identity/{self.primary}", {"state": "down"})
        if state["regions"][self.primary] != "down":
            raise IdentityFailure(f"the control endpoint left {self.primary}'s identity {state['regions']}")
        if state["domain"]["region"] != self.replica:
            raise IdentityFailure(f"the domain is served by {state['domain']['region']}, not {self.replica}")
        return f"{self.primary}'s identity down; the domain is served by {self.replica}"

    def sign_in(self) -> str:
        verifier = secrets.token_urlsafe(48)
        redirect_uri = self.describe["redirectUris"][0]
        request = {
            "response_type": "code",
            "client_id": self.describe["clientId"],
            "redirect_uri": redirect_uri,
            "state": secrets.token_urlsafe(12),
            "code_challenge": _s256(verifier),
            "code_challenge_method": "S256",
            "scope": "openid email profile",
        }
        form = {**request, "username": self.user, "email": f"{self.user}@{EMAIL_DOMAIN}", "admin": "on"}
        status, headers, body = self._form("/oauth2/authorize", form)
        location = urllib.parse.urlsplit(headers.get("Location", ""))
        code = dict(urllib.parse.parse_qsl(location.query)).get("code")
        if status != 302 or not code:
            raise IdentityFailure(f"sign-in answered {status}: {body[:200]!r}")
        exchange = {
            "grant_type": "authorization_code",
            "client_id": self.describe["clientId"],
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        status, headers, body = self._form("/oauth2/token", exchange)
        if status != 200:
            raise IdentityFailure(f"the token endpoint answered {status}: {body[:200]!r}")
        served = headers.get(SERVED_REGION)
        if served != self.replica:
            raise IdentityFailure(f"the domain's token endpoint was served by {served!r}, not {self.replica}")
        tokens = json.loads(body)
        self.refresh_token = tokens["refresh_token"]
        where = self._accepted_everywhere(tokens["id_token"])
        return f"signed in through the domain in {served}; the ID token is accepted in {where}"

    def refresh(self) -> str:
        if self.refresh_token is None:
            raise IdentityFailure("no refresh token: the sign-in failed")
        payload = json.dumps({"ClientId": self.describe["clientId"], "RefreshToken": self.refresh_token})
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET}
        endpoints = self.describe["endpoints"]
        refused, _, _ = self._call(endpoints[self.primary], payload.encode(), headers)
        if refused < 500:
            raise IdentityFailure(f"{self.primary}'s Cognito answered {refused} while down")
        assert self.replica is not None
        status, _, body = self._call(endpoints[self.replica], payload.encode(), headers)
        if status != 200:
            raise IdentityFailure(
                f"{self.replica}'s Cognito answered {status} to the refresh: {body[:200]!r}"
            )
        where = self._accepted_everywhere(json.loads(body)["AuthenticationResult"]["IdToken"])
        return (
            f"{self.primary}'s Cognito answered {refused}, {self.replica}'s renewed the ID token; "
            f"accepted in {where}"
        )

    def bring_up(self) -> str:
        state = self.control("POST", f"/identity/{self.primary}", {"state": "up"})
        if state["regions"][self.primary] != "up" or state["domain"]["region"] != self.primary:
            raise IdentityFailure(
                f"after bringing it back: {state['regions']}, domain in {state['domain']['region']}"
            )
        return f"{self.primary}'s identity up; the domain is served by {self.primary} again"
