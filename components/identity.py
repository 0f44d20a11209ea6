"""Identity: the stack's one Cognito user pool, its app clients and the ``admins`` group.

Created once, in the primary region, with that region's provider (``ResourceOptions(provider=...)``);
both regional REST APIs authorize with a ``COGNITO_USER_POOLS`` authorizer on this pool (API Gateway
accepts a pool of another region). Children:

- the user pool: users sign in with their email address (the username, case-insensitive), which
  Cognito verifies by itself; a 12-character, four-class password policy with history; recovery by
  verified email only; deletion protection when the stack asks for it (prod); self sign-up off
  (``self_sign_up``): users are invited by an administrator (``AdminCreateUser``), because a public
  sign-up endpoint lets anyone create accounts (and send Cognito e-mails) at the account's expense;
- the public app client used by browsers and apps: no secret (a secret cannot be kept in a browser),
  SRP sign-in only, token revocation, ID/access tokens of 15 minutes by default (``tokenValidityMinutes``:
  how long a removed admin or a disabled user keeps a token), and refresh token rotation: every refresh
  (``GetTokensFromRefreshToken``) returns a new refresh token and invalidates the one it used, so a
  stolen refresh token stops working at the owner's next refresh. Rotation is incompatible with the
  ``REFRESH_TOKEN_AUTH`` flow (Cognito developer guide, "Refresh tokens"), so that flow is off;
- the smoke client (``smoke_client``): ``ADMIN_USER_PASSWORD_AUTH`` only, so it is usable solely by a
  caller with IAM credentials allowed ``cognito-idp:AdminInitiateAuth`` on this pool. ``python -m
  tools.smoke`` signs a throwaway user in through it (created, used and deleted by the tool). Made by
  the stack rather than by the tool at run time so that the operator needs no permission to create
  or delete app clients and no client is left behind when a smoke run is interrupted;
- the managed-login client (``managed_login_client``): authorization code with PKCE only (no implicit
  flow, no secret), callback and sign-out URLs on the web client's origin (``web_origin``) plus
  loopback redirects ``http://localhost:<port>/callback`` for ``python -m tools.token`` (RFC 8252; Cognito
  accepts plain HTTP for ``localhost`` only, and matches ports exactly, hence a short fixed list), and
  refresh token rotation (a refresh returns a new refresh token; the old one stops working);
- the ``admins`` group, whose members may list and manage every user (the handler reads it from
  the ``cognito:groups`` claim).

Feature plan ESSENTIALS (AWS's default for new pools): it has password history and the multi-region
replication path; threat protection ("advanced security") needs the PLUS plan, which is billed per
active user on top, so it stays off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import ResourceOptions

from components.config import PROJECT
from components.naming import USER_POOL_NAME_MAX, stack_name

ADMINS_GROUP = "admins"
# The only flow a browser or mobile app needs: SRP never sends the password. Tokens are renewed with
# GetTokensFromRefreshToken (rotation), which no ALLOW_* flow governs; REFRESH_TOKEN_AUTH cannot rotate.
PUBLIC_CLIENT_FLOWS = ("ALLOW_USER_SRP_AUTH",)
# How long a rotated-out refresh token still works, for a client retrying a refresh lost on the network.
REFRESH_RETRY_GRACE_SECONDS = 10
# Admin password auth is an IAM-signed call (AdminInitiateAuth); Cognito wants refresh on every client.
SMOKE_CLIENT_FLOWS = ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
USER_POOL_TIER = "ESSENTIALS"
# The web client signs in through managed login; its API flows are SRP only (REFRESH_TOKEN_AUTH cannot
# be combined with refresh token rotation: refresh goes through the token endpoint instead).
WEB_CLIENT_FLOWS = ("ALLOW_USER_SRP_AUTH",)
OAUTH_SCOPES = ("openid", "email", "profile")
# The shortest token lifetimes Cognito allows (5 minutes; refresh 60), for clients whose sessions last
# seconds: the smoke check's and the failover drill's.
SHORTEST_TOKEN_VALIDITY: dict[str, Any] = {
    "id_token_validity": 5,
    "access_token_validity": 5,
    "refresh_token_validity": 60,
    "token_validity_units": {"id_token": "minutes", "access_token": "minutes", "refresh_token": "minutes"},
}
# Loopback ports python -m tools.token listens on, in order (Cognito wants each callback URL listed).
CLI_CALLBACK_PORTS = (53682, 53683, 53684)
CALLBACK_PATH = "/callback"
REFRESH_ROTATION_GRACE_SECONDS = 10  # a retried refresh (lost response) still works for this long
# What every password of the pool must hold; the failover drill's user (components/dynamic/drill_user.py)
# gets a random password made to it.
PASSWORD_POLICY: Mapping[str, Any] = {
    "minimum_length": 12,
    "require_lowercase": True,
    "require_uppercase": True,
    "require_numbers": True,
    "require_symbols": True,
}


def web_callback_urls(web_origin: str | None, cli_ports: tuple[int, ...] = CLI_CALLBACK_PORTS) -> list[str]:
    """The redirect URIs of the managed-login client: the site's callback page (when the web client is
    served), then the CLI's loopback ones.

    Raises ValueError for a web origin that is not HTTPS (only loopback redirects may be plain HTTP).
    """
    if web_origin is not None and not re.fullmatch(r"https://[a-z0-9.-]+(:\d{1,5})?", web_origin):
        raise ValueError(
            f"web client origin {web_origin!r} must be an https:// origin (scheme and host, no path): "
            "managed login redirects over HTTPS only, except to the command line's loopback address"
        )
    return [
        *([f"{web_origin}{CALLBACK_PATH}"] if web_origin else []),
        *(f"http://localhost:{port}{CALLBACK_PATH}" for port in cli_ports),
    ]


@dataclass(frozen=True)
class IdentityArgs:
    """Inputs of Identity; plain typed values (no pulumi.Config)."""

    region: str
    """Region of the pool (the stack's primary region); must be the region of the provider in opts."""
    deletion_protection: bool
    """Refuse to delete the pool while true (the stack's ``deletionProtection``, true in prod)."""
    pool_name: str | None = None
    """User pool name; default ``<project>-<stack>-users``."""
    self_sign_up: bool = False
    """Let anyone sign up through the public client; off: administrators invite users."""
    smoke_client: bool = True
    """Create the admin-auth-only app client that ``tools.smoke`` signs its throwaway user in with."""
    token_validity_minutes: int = 15
    """Lifetime of ID and access tokens (5-1440): how long a revoked or removed user keeps access."""
    refresh_token_validity_days: int = 30
    """Lifetime of refresh tokens, i.e. how long a user stays signed in without entering a password."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the user pool (app clients and groups take none)."""
    managed_login_client: bool = False
    """Add the managed-login app client (code + PKCE) of the web client and ``python -m tools.token``."""
    web_origin: str | None = None
    """``https://`` origin of the web client, when it is served: its callback and sign-out URLs."""


class Identity(pulumi.ComponentResource):
    """One Cognito user pool with a public app client, a smoke client and an ``admins`` group."""

    user_pool_id: pulumi.Output[str]
    user_pool_arn: pulumi.Output[str]
    """The ARN both REST APIs' authorizers name in ``providerARNs``."""
    user_pool_client_id: pulumi.Output[str]
    """The public client's id: what apps sign in with (the ``aud`` claim of their ID tokens)."""
    smoke_client_id: pulumi.Output[str] | None
    web_client_id: pulumi.Output[str] | None
    """The managed-login (code + PKCE) client's id, or None without ``managed_login_client``."""
    """The smoke client's id, or None without ``smoke_client``."""
    client_ids: list[pulumi.Output[str]]
    """Every app client whose ID tokens the API accepts: the public client and the smoke client."""
    issuer_url: pulumi.Output[str]
    """``https://cognito-idp.<region>.amazonaws.com/<pool id>``: the ``iss`` claim of every token."""
    admins_group_name: pulumi.Output[str]
    region: str

    def __init__(self, name: str, args: IdentityArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:identity:Identity", name, None, opts)
        if not 5 <= args.token_validity_minutes <= 1440:
            raise ValueError(
                f"token_validity_minutes is {args.token_validity_minutes}; Cognito accepts 5 to 1440"
            )
        if not 1 <= args.refresh_token_validity_days <= 3650:
            raise ValueError(
                f"refresh_token_validity_days is {args.refresh_token_validity_days}; Cognito accepts 1 "
                "to 3650"
            )
        self.region = args.region
        pool = self._user_pool(name, args)
        public_client = self._public_client(name, args, pool)
        smoke_client = self._smoke_client(name, pool) if args.smoke_client else None
        web_client = self._web_client(name, args, pool) if args.managed_login_client else None
        admins = aws.cognito.UserGroup(
            f"{name}-admins",
            user_pool_id=pool.id,
            name=ADMINS_GROUP,
            description="May list, read, change and delete every user's profile",
            opts=ResourceOptions(parent=self),
        )

        self.user_pool_id = pool.id
        self.user_pool_arn = pool.arn
        self.user_pool_client_id = public_client.id
        self.smoke_client_id = smoke_client.id if smoke_client else None
        self.web_client_id = web_client.id if web_client else None
        self.client_ids = [
            public_client.id,
            *([smoke_client.id] if smoke_client else []),
            *([web_client.id] if web_client else []),
        ]
        # The pool's endpoint is "cognito-idp.<region>.amazonaws.com/<pool id>", as AWS reports it.
        self.issuer_url = pool.endpoint.apply(lambda endpoint: f"https://{endpoint}")
        self.admins_group_name = admins.name
        self.register_outputs(
            {
                "user_pool_id": self.user_pool_id,
                "user_pool_arn": self.user_pool_arn,
                "user_pool_client_id": self.user_pool_client_id,
                "smoke_client_id": self.smoke_client_id,
                "web_client_id": self.web_client_id,
                "client_ids": self.client_ids,
                "issuer_url": self.issuer_url,
                "admins_group_name": self.admins_group_name,
                "region": self.region,
            }
        )

    def _user_pool(self, name: str, args: IdentityArgs) -> aws.cognito.UserPool:
        return aws.cognito.UserPool(
            f"{name}-pool",
            name=args.pool_name or stack_name("users", USER_POOL_NAME_MAX),
            user_pool_tier=USER_POOL_TIER,
            username_attributes=["email"],
            # "Ann@Example.com" and "ann@example.com" are one user (fixed at creation).
            username_configuration={"case_sensitive": False},
            auto_verified_attributes=["email"],
            # A changed email stays unused until the user confirms the new one, so the ID token's
            # email claim is always one the user proved they own.
            user_attribute_update_settings={"attributes_require_verification_before_updates": ["email"]},
            password_policy={
                "minimum_length": PASSWORD_POLICY["minimum_length"],
                "require_lowercase": PASSWORD_POLICY["require_lowercase"],
                "require_uppercase": PASSWORD_POLICY["require_uppercase"],
                "require_numbers": PASSWORD_POLICY["require_numbers"],
                "require_symbols": PASSWORD_POLICY["require_symbols"],
                "temporary_password_validity_days": 3,
                "password_history_size": 5,
            },
            # Time-based one-time passwords are free and optional per user; SMS would cost money.
            mfa_configuration="OPTIONAL",
            software_token_mfa_configuration={"enabled": True},
            account_recovery_setting={"recovery_mechanisms": [{"name": "verified_email", "priority": 1}]},
            admin_create_user_config={"allow_admin_create_user_only": not args.self_sign_up},
            # Cognito's own sender: 50 e-mails a day per account. Move to SES (DEVELOPER) before a
            # real launch; see docs/identity.md.
            email_configuration={"email_sending_account": "COGNITO_DEFAULT"},
            user_pool_add_ons={"advanced_security_mode": "OFF"},  # threat protection needs PLUS
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            tags=dict(args.tags),
            opts=ResourceOptions(parent=self),
        )

    def _public_client(
        self, name: str, args: IdentityArgs, pool: aws.cognito.UserPool
    ) -> aws.cognito.UserPoolClient:
        return aws.cognito.UserPoolClient(
            f"{name}-client",
            name=f"{name}-public",
            user_pool_id=pool.id,
            generate_secret=False,  # a public client: a browser cannot keep a secret
            explicit_auth_flows=list(PUBLIC_CLIENT_FLOWS),
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=args.token_validity_minutes,
            access_token_validity=args.token_validity_minutes,
            refresh_token_validity=args.refresh_token_validity_days,
            token_validity_units={"id_token": "minutes", "access_token": "minutes", "refresh_token": "days"},
            refresh_token_rotation={
                "feature": "ENABLED",
                "retry_grace_period_seconds": REFRESH_RETRY_GRACE_SECONDS,
            },
            # What the ID token carries besides sub and cognito:groups, and what a user may change.
            read_attributes=["email", "email_verified", "name"],
            write_attributes=["email", "name"],
            opts=ResourceOptions(parent=self),
        )

    def _smoke_client(self, name: str, pool: aws.cognito.UserPool) -> aws.cognito.UserPoolClient:
        return aws.cognito.UserPoolClient(
            f"{name}-smoke-client",
            name=f"{name}-smoke",
            user_pool_id=pool.id,
            generate_secret=False,
            explicit_auth_flows=list(SMOKE_CLIENT_FLOWS),
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            # A smoke run lasts seconds: the shortest lifetimes Cognito allows.
            **SHORTEST_TOKEN_VALIDITY,
            read_attributes=["email", "email_verified", "name"],
            write_attributes=["email", "name"],
            opts=ResourceOptions(parent=self),
        )

    def _web_client(
        self, name: str, args: IdentityArgs, pool: aws.cognito.UserPool
    ) -> aws.cognito.UserPoolClient:
        callbacks = web_callback_urls(args.web_origin)
        return aws.cognito.UserPoolClient(
            f"{name}-web-client",
            name=f"{name}-web",
            user_pool_id=pool.id,
            generate_secret=False,  # a browser and a CLI are public clients: PKCE instead of a secret
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_flows=["code"],  # never "implicit": tokens in a URL fragment leak
            allowed_oauth_scopes=list(OAUTH_SCOPES),
            supported_identity_providers=["COGNITO"],
            callback_urls=callbacks,
            default_redirect_uri=callbacks[0] if args.web_origin else None,
            logout_urls=[f"{args.web_origin}/"] if args.web_origin else None,
            explicit_auth_flows=list(WEB_CLIENT_FLOWS),
            refresh_token_rotation={
                "feature": "ENABLED",
                "retry_grace_period_seconds": REFRESH_ROTATION_GRACE_SECONDS,
            },
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            id_token_validity=args.token_validity_minutes,
            access_token_validity=args.token_validity_minutes,
            refresh_token_validity=args.refresh_token_validity_days,
            token_validity_units={"id_token": "minutes", "access_token": "minutes", "refresh_token": "days"},
            read_attributes=["email", "email_verified", "name"],
            write_attributes=["email", "name"],
            opts=ResourceOptions(parent=self),
        )
