"""The local stand-in for Cognito and API Gateway's Cognito authorizer.

``LocalIssuer`` is a user pool made for one local run: an RSA key pair generated at start (never a key
in the repository), a random pool id and app client id. It signs ID tokens with the claims Cognito puts
in them (``sub``, ``email``, ``email_verified``, ``cognito:groups``, ``cognito:username``,
``token_use``, ``iss``, ``aud``, ``auth_time``, ``iat``, ``exp``, ``jti``), RS256 with a ``kid``.

``TokenVerifier`` does what the REST API's ``COGNITO_USER_POOLS`` authorizer does before the function
runs: read the ``Authorization`` header (the bare token or ``Bearer <token>``), check the RS256
signature against the pool's key, the expiry, the issuer, the audience (the app client) and that it is
an ID token (a method with no OAuth scopes takes ID tokens only), and answer anything else with a 401
shaped as the deployed API's ``UNAUTHORIZED`` gateway response (components/openapi.py):
``{"error": {"code": "unauthorized", "message": "Unauthorized"}}``, ``WWW-Authenticate: Bearer`` and the
same CORS headers. A token that passes has its claims put where API Gateway
puts them, ``requestContext.authorizer.claims``, the way it writes them: every value a string, lists
comma-separated (``"admins,editors"``), booleans ``"true"``/``"false"``, ``exp``/``iat`` as Java's
date text (``"Tue Apr 04 18:39:39 UTC 2023"``). The handler cannot tell it from AWS.
``/health`` and CORS preflights (``OPTIONS``) stay open, as they are on the deployed API.

Where the key lives during a run: ``python -m local`` writes the issuer (private key included) to
``issuer_file()``, a file only the current user can read, and deletes it on exit; ``python -m
local.token`` and ``python -m tools.smoke`` read it from there. The containers get only the public
half, through their environment (``child_env``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ADMINS_GROUP = "admins"
DEFAULT_TOKEN_LIFETIME_S = 900  # the stack's default ID token lifetime (tokenValidityMinutes)
ISSUER_FILE_ENV = "LOCAL_ISSUER_FILE"
# What the local containers read (local/server.py): the public half only.
PUBLIC_KEY_ENV = "LOCAL_AUTH_PUBLIC_KEY"
ISSUER_ENV = "LOCAL_AUTH_ISSUER"
AUDIENCE_ENV = "LOCAL_AUTH_AUDIENCE"
KEY_ID_ENV = "LOCAL_AUTH_KEY_ID"
# API Gateway's answer to a missing or bad token, before the function runs, as the deployed API's
# UNAUTHORIZED gateway response shapes it (components/openapi.py); $context.error.message is "Unauthorized".
UNAUTHORIZED_BODY = b'{"error":{"code":"unauthorized","message":"Unauthorized"}}'
UNAUTHORIZED_HEADERS = {
    "Content-Type": "application/json",
    "WWW-Authenticate": "Bearer",
    "x-amzn-ErrorType": "UnauthorizedException",
}
SERVED_REGION_HEADER = "X-Served-Region"  # as handler/app.py (not imported: the handler loads later)
CORS_EXPOSE_HEADERS = f"Location, Retry-After, {SERVED_REGION_HEADER}"
OPEN_PATHS = frozenset({"/health"})


class IssuerFileError(RuntimeError):
    """No usable issuer file: the message says where it looked and what to do."""


class InvalidToken(Exception):
    """The token would not pass the authorizer; the reason is for tests and logs, never the client."""


def issuer_file() -> Path:
    """Where ``python -m local`` keeps the run's issuer: ``$LOCAL_ISSUER_FILE``, else a per-user file in
    the runtime directory (``$XDG_RUNTIME_DIR``) or the system's temporary directory."""
    explicit = os.environ.get(ISSUER_FILE_ENV, "").strip()
    if explicit:
        return Path(explicit)
    folder = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(folder) / f"dsql-users-api-local-issuer-{os.getuid()}.json"


@dataclass(frozen=True)
class LocalIssuer:
    """One local run's user pool: its signing key and the ids its tokens name."""

    private_key: rsa.RSAPrivateKey
    pool_id: str
    client_id: str
    key_id: str

    @classmethod
    def create(cls) -> LocalIssuer:
        """A fresh key pair and fresh ids: tokens of another run (or another pool) never validate."""
        return cls(
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            pool_id=f"local_{secrets.token_hex(5)}",
            client_id=secrets.token_hex(13),  # 26 characters, like a Cognito app client id
            key_id=secrets.token_urlsafe(16),
        )

    @property
    def issuer(self) -> str:
        """Shaped like Cognito's ``https://cognito-idp.<region>.amazonaws.com/<pool id>``, on a name that
        can never resolve (``.invalid`` is reserved)."""
        return f"https://cognito-idp.local.invalid/{self.pool_id}"

    def token(
        self,
        sub: str,
        *,
        email: str | None = None,
        admin: bool = False,
        groups: tuple[str, ...] = (),
        lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S,
        now: float | None = None,
        **overrides: Any,
    ) -> str:
        """An ID token for ``sub``, as Cognito would issue it; ``overrides`` replace claims (tests)."""
        issued = int(time.time() if now is None else now)
        all_groups = ([ADMINS_GROUP] if admin and ADMINS_GROUP not in groups else []) + list(groups)
        claims: dict[str, Any] = {
            "sub": sub,
            "cognito:username": sub,
            "iss": self.issuer,
            "aud": self.client_id,
            "token_use": "id",
            "auth_time": issued,
            "iat": issued,
            "exp": issued + lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = True
        if all_groups:
            claims["cognito:groups"] = all_groups
        claims.update(overrides)
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.key_id})

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(
            public_key=self.private_key.public_key(),
            issuer=self.issuer,
            audience=self.client_id,
            key_id=self.key_id,
        )

    def child_env(self) -> dict[str, str]:
        """What a local container needs to verify tokens: the public key and the expected ids."""
        public_pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            PUBLIC_KEY_ENV: public_pem.decode("ascii"),
            ISSUER_ENV: self.issuer,
            AUDIENCE_ENV: self.client_id,
            KEY_ID_ENV: self.key_id,
        }

    # ------------------------------------------------------------ the run's issuer file

    def save(self, path: Path) -> None:
        """Write the issuer, private key included, readable by the current user only (0600).

        Written to a new file beside ``path`` and renamed over it: never a half-written file, and an
        existing file or link at ``path`` is replaced, never written through.
        """
        private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        document = {
            "pool_id": self.pool_id,
            "client_id": self.client_id,
            "key_id": self.key_id,
            "private_key_pem": private_pem.decode("ascii"),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".issuer-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as out:  # mkstemp creates it 0600
                json.dump(document, out)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: Path) -> LocalIssuer:
        """The issuer a running ``python -m local`` saved; IssuerFileError when there is none."""
        try:
            info = path.stat()
            text = path.read_text()
        except FileNotFoundError:
            raise IssuerFileError(
                f"no local issuer at {path}: start the local app first (make dev, i.e. python -m local, "
                f"without --no-auth), or point {ISSUER_FILE_ENV} at the file it wrote"
            ) from None
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise IssuerFileError(
                f"{path} is not a private file of this user (owner uid {info.st_uid}, mode "
                f"{stat.S_IMODE(info.st_mode):o}); delete it and restart the local app"
            )
        try:
            document = json.loads(text)
            key = serialization.load_pem_private_key(document["private_key_pem"].encode(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError("not an RSA key")
            return cls(key, document["pool_id"], document["client_id"], document["key_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IssuerFileError(
                f"{path} is not a local issuer file ({exc}); restart the local app"
            ) from None

    def remove_file(self, path: Path) -> None:
        """Delete ``path`` if it still holds this issuer (a later run may have replaced it)."""
        with contextlib.suppress(IssuerFileError, OSError):
            if LocalIssuer.load(path).key_id == self.key_id:
                path.unlink()


@dataclass(frozen=True)
class TokenVerifier:
    """API Gateway's Cognito authorizer for one pool and app client."""

    public_key: Any
    issuer: str
    audience: str
    key_id: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TokenVerifier | None:
        """The verifier a container was started with, or None when auth is off (``--no-auth``)."""
        pem = env.get(PUBLIC_KEY_ENV)
        if not pem:
            return None
        return cls(
            public_key=serialization.load_pem_public_key(pem.encode("ascii")),
            issuer=env[ISSUER_ENV],
            audience=env[AUDIENCE_ENV],
            key_id=env[KEY_ID_ENV],
        )

    def claims(self, authorization: str | None) -> dict[str, str]:
        """The token's claims as API Gateway passes them; raises InvalidToken for anything it refuses."""
        if not authorization or not authorization.strip():
            raise InvalidToken("no Authorization header")
        scheme, _, rest = authorization.strip().partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" and rest.strip() else authorization.strip()
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.key_id:
                raise InvalidToken("the token was signed by a key this pool does not have")
            payload = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["sub", "iss", "aud", "exp", "iat", "token_use"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        if payload.get("token_use") != "id":
            raise InvalidToken("not an ID token (a method without OAuth scopes takes ID tokens only)")
        return {name: _as_gateway_string(name, value) for name, value in payload.items()}


def _as_gateway_string(name: str, value: Any) -> str:
    """A claim as API Gateway's REST authorizer writes it into ``claims`` (always a string)."""
    if name in ("exp", "iat") and isinstance(value, int):
        return datetime.fromtimestamp(value, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def authorize(event: dict[str, Any], verifier: TokenVerifier | None) -> bool:
    """The authorizer step of the local server: False means answer 401 and never call the function.

    With a verifier, every request but ``/health`` and ``OPTIONS`` needs a valid ID token, whose claims
    then go into ``event["requestContext"]["authorizer"]["claims"]``. Without one (``--no-auth``) the
    event passes unchanged, as on a stack deployed with ``authMode: none``.
    """
    if verifier is None or event.get("httpMethod") == "OPTIONS" or event.get("path") in OPEN_PATHS:
        return True
    headers = event.get("headers") or {}
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    try:
        claims = verifier.claims(authorization)
    except InvalidToken:
        return False
    event.setdefault("requestContext", {})["authorizer"] = {"claims": claims}
    return True


def container_env(issuer: LocalIssuer | None) -> dict[str, str]:
    """What the local containers need: the authorizer's public key with ``AUTH_MODE=cognito``, or,
    with no issuer (``--no-auth``), ``AUTH_MODE=none``, as a stack deployed with ``authMode: none``."""
    if issuer is None:
        return {"AUTH_MODE": "none"}
    return {**issuer.child_env(), "AUTH_MODE": "cognito"}


def unauthorized_response(event: dict[str, Any], env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The 401 as a proxy result, with the CORS headers the deployed gateway response carries: with one
    allowed origin that origin, with several the request's Origin, with none no CORS header at all."""
    origins = [o.strip().rstrip("/") for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()]
    headers = dict(UNAUTHORIZED_HEADERS)
    if origins:
        request_origin = next(
            (v for k, v in (event.get("headers") or {}).items() if k.lower() == "origin"), ""
        )
        allow_origin = origins[0] if len(origins) == 1 else request_origin
        if allow_origin:
            headers["Access-Control-Allow-Origin"] = allow_origin
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        headers["Vary"] = "Origin"
    return {"statusCode": 401, "headers": headers, "body": UNAUTHORIZED_BODY.decode()}
