"""The OAuth endpoints of Cognito managed login, played by the local issuer (local/auth.py).

The web client (web/) signs in the same way locally and deployed: the authorization-code flow with
PKCE (RFC 7636, ``S256`` only) against a base URL, its ``authDomain``, that answers Cognito's paths:

* ``GET /oauth2/authorize`` with ``response_type=code``, ``client_id``, ``redirect_uri``, ``state``,
  ``code_challenge`` and ``code_challenge_method=S256``: locally a page where you type a user name and
  an e-mail and tick "administrator" (there is no password: the local issuer trusts whoever sits at
  the machine, as ``python -m local.token`` does); its form posts back to the same path, which
  redirects to ``redirect_uri?code=...&state=...``;
* ``POST /oauth2/token`` (form-encoded): ``grant_type=authorization_code`` with ``code``,
  ``redirect_uri``, ``client_id`` and ``code_verifier``, or ``grant_type=refresh_token`` with
  ``refresh_token`` and ``client_id``; answers ``id_token``, ``access_token``, ``expires_in``,
  ``token_type`` (and ``refresh_token`` for a code), or Cognito's ``{"error": ...}`` with 400;
* ``GET /logout`` with ``client_id`` and ``logout_uri`` (a registered sign-out URL): redirects there
  (the local issuer keeps no session cookie, so the next sign-in shows the page again);
* ``GET /.well-known/jwks.json``: the pool's public key, as Cognito publishes it.

A code is single-use, bound to its client, redirect URI and challenge, and valid for five minutes
(Cognito's). Redirect and sign-out URIs must be registered, as an app client's callback URLs are.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from jwt.algorithms import RSAAlgorithm

from local.auth import DEFAULT_TOKEN_LIFETIME_S, LocalIssuer

CODE_LIFETIME_S = 300  # Cognito's authorization codes are valid for five minutes
REFRESH_LIFETIME_S = 30 * 86400  # Cognito's default refresh token validity
# RFC 7636 section 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256 digest, no padding
_USER_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


class OAuthError(Exception):
    """A request the endpoints refuse: ``error`` is the RFC 6749 code, ``description`` says what to fix."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked ``/oauth2/authorize`` request."""

    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    scope: str


@dataclass(frozen=True)
class _Person:
    username: str
    email: str
    admin: bool


@dataclass
class _Grant:
    person: _Person
    client_id: str
    expires_at: float
    redirect_uri: str = ""
    code_challenge: str = ""


def s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class LocalOAuth:
    """Cognito's OAuth endpoints for one local issuer and its one app client."""

    issuer: LocalIssuer
    redirect_uris: frozenset[str]
    logout_uris: frozenset[str]
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh_tokens: dict[str, _Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ /oauth2/authorize

    def check_authorize(self, params: dict[str, str]) -> AuthorizationRequest:
        """The authorize request's parameters, checked; OAuthError says which one is wrong."""
        client_id = params.get("client_id", "")
        if client_id != self.issuer.client_id:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}: use this run's config.json")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            raise OAuthError(
                "invalid_request",
                f"redirect_uri {redirect_uri!r} is not a callback URL of this client "
                f"(registered: {', '.join(sorted(self.redirect_uris))})",
            )
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only response_type=code (no implicit flow)")
        if params.get("code_challenge_method") != "S256":
            raise OAuthError("invalid_request", "PKCE is required: code_challenge_method=S256")
        challenge = params.get("code_challenge", "")
        if not _CHALLENGE.match(challenge):
            raise OAuthError("invalid_request", "code_challenge must be the base64url SHA-256 of a verifier")
        return AuthorizationRequest(
            client_id, redirect_uri, params.get("state", ""), challenge, params.get("scope", "openid")
        )

    def authorize(self, params: dict[str, str], *, now: float | None = None) -> str:
        """The sign-in form posted: the URL to redirect the browser to, with a fresh code and the state."""
        request = self.check_authorize(params)
        username = params.get("username", "").strip()
        email = params.get("email", "").strip()
        if not _USER_NAME.match(username):
            raise OAuthError(
                "invalid_request", "user name: 1 to 128 letters, digits or . _ @ + - (no spaces)"
            )
        if email.count("@") != 1 or len(email) > 254 or " " in email:
            raise OAuthError("invalid_request", "e-mail: one address like alice@example.com")
        person = _Person(username, email, params.get("admin") in ("on", "true", "1"))
        code = secrets.token_urlsafe(32)
        issued = time.time() if now is None else now
        with self._lock:
            self._codes[code] = _Grant(
                person,
                request.client_id,
                issued + CODE_LIFETIME_S,
                request.redirect_uri,
                request.code_challenge,
            )
        query = {"code": code, **({"state": request.state} if request.state else {})}
        return f"{request.redirect_uri}?{urlencode(query)}"

    # ------------------------------------------------------------ /oauth2/token

    def token(self, form: dict[str, str], *, now: float | None = None) -> dict[str, Any]:
        """The token endpoint: Cognito's answer to a code (with its verifier) or a refresh token."""
        issued = time.time() if now is None else now
        if form.get("client_id") != self.issuer.client_id:
            raise OAuthError("invalid_client", "unknown or missing client_id")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            with self._lock:
                grant = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
            if grant is None or grant.expires_at < issued:
                raise OAuthError("invalid_grant", "the code is unknown, used or expired: sign in again")
            if grant.client_id != form["client_id"] or grant.redirect_uri != form.get("redirect_uri"):
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorize request's")
            verifier = form.get("code_verifier", "")
            if not _VERIFIER.match(verifier) or s256(verifier) != grant.code_challenge:
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE)")
            refresh_token = secrets.token_urlsafe(48)
            with self._lock:
                self._refresh_tokens[refresh_token] = _Grant(
                    grant.person, grant.client_id, issued + REFRESH_LIFETIME_S
                )
            return {**self._tokens(grant.person, issued), "refresh_token": refresh_token}
        if grant_type == "refresh_token":
            return self.refresh(form["client_id"], form.get("refresh_token", ""), now=issued)
        raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")

    def refresh(self, client_id: str, refresh_token: str, *, now: float | None = None) -> dict[str, Any]:
        """New ID and access tokens for a refresh token of ``client_id`` (the token endpoint's
        ``refresh_token`` grant, and ``GetTokensFromRefreshToken`` at a regional endpoint)."""
        issued = time.time() if now is None else now
        with self._lock:
            grant = self._refresh_tokens.get(refresh_token)
        if grant is None or grant.expires_at < issued or grant.client_id != client_id:
            raise OAuthError("invalid_grant", "the refresh token is unknown, revoked or expired")
        return self._tokens(grant.person, issued)

    def _tokens(self, person: _Person, issued: float) -> dict[str, Any]:
        lifetime = self.token_lifetime_s
        id_token = self.issuer.token(
            person.username, email=person.email, admin=person.admin, lifetime_s=lifetime, now=issued
        )
        access_token = self.issuer.token(
            person.username,
            admin=person.admin,
            lifetime_s=lifetime,
            now=issued,
            token_use="access",  # noqa: S106 - a claim, not a password
            client_id=self.issuer.client_id,
            scope="openid email profile",
        )
        return {
            "id_token": id_token,
            "access_token": access_token,
            "expires_in": lifetime,
            "token_type": "Bearer",
        }

    # ------------------------------------------------------------ /logout and JWKS

    def logout(self, params: dict[str, str]) -> str:
        """Where ``/logout`` sends the browser: the registered ``logout_uri``."""
        if params.get("client_id") != self.issuer.client_id:
            raise OAuthError("invalid_client", "unknown or missing client_id")
        logout_uri = params.get("logout_uri", "")
        if logout_uri not in self.logout_uris:
            raise OAuthError(
                "invalid_request",
                f"logout_uri {logout_uri!r} is not a sign-out URL of this client "
                f"(registered: {', '.join(sorted(self.logout_uris))})",
            )
        return logout_uri

    def revoke(self, refresh_token: str) -> None:
        """Forget one refresh token (what Cognito's /oauth2/revoke does)."""
        with self._lock:
            self._refresh_tokens.pop(refresh_token, None)

    def jwks(self) -> dict[str, Any]:
        """The pool's public key as a JSON Web Key Set, as Cognito publishes it."""
        jwk = RSAAlgorithm.to_jwk(self.issuer.private_key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.issuer.key_id, "alg": "RS256", "use": "sig"}]}


def sign_in_page(request: AuthorizationRequest, action: str, problem: str = "") -> str:
    """The local sign-in page: no script, one stylesheet of the client, a form posted to ``action``."""
    hidden = {
        "response_type": "code",
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "state": request.state,
        "code_challenge": request.code_challenge,
        "code_challenge_method": "S256",
        "scope": request.scope,
    }
    fields = "\n".join(
        f'      <input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in hidden.items()
    )
    alert = f'    <p class="notice error" role="alert">{html.escape(problem)}</p>\n' if problem else ""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Sign in (local issuer)</title>
  <link rel="stylesheet" href="/app.css">
</head>
<body>
  <main class="narrow">
    <h1>Sign in</h1>
    <p>This is the local stand-in for Cognito's managed login: no password, any name you type.</p>
{alert}    <form method="post" action="{html.escape(action)}" class="stack">
{fields}
      <label for="username">User name</label>
      <input id="username" name="username" required autocomplete="username" pattern="[A-Za-z0-9._@+\\-]{{1,128}}"
             aria-describedby="username-help">
      <p id="username-help" class="help">Letters, digits and . _ @ + - only; it becomes the token's subject.</p>
      <label for="email">E-mail</label>
      <input id="email" name="email" type="email" required autocomplete="email">
      <div class="check">
        <input id="admin" name="admin" type="checkbox">
        <label for="admin">Administrator (member of the admins group)</label>
      </div>
      <button type="submit">Sign in</button>
    </form>
  </main>
</body>
</html>
"""
