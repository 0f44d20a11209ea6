"""DrillIdentity: who the failover drill signs in as, with ``authReplica`` on (docs/operations.md, "The
drill's identity check").

Children, all made with the primary region's provider (the pool's region):

- an app client of the pool for the drill alone: no secret, explicit auth flows exactly
  ``ALLOW_USER_PASSWORD_AUTH`` and ``ALLOW_REFRESH_TOKEN_AUTH`` (the probe has no SRP library; the
  password only ever travels over TLS to Cognito), no OAuth, the shortest token lifetimes Cognito allows
  (5 minutes; refresh 60 minutes) and no refresh token rotation (which ``REFRESH_TOKEN_AUTH`` cannot
  use). It is not one of ``Identity.client_ids``, so the API's handler (``AUTH_CLIENT_IDS``) refuses its
  tokens: the drill's user can sign in and nothing more;
- a Secrets Manager secret in the primary region with a replica in the secondary (the probe reads the
  replica, so a client there does not need the primary region), encrypted with each region's AWS
  managed key ``aws/secretsmanager``, deleted without a recovery window (it holds only a throwaway
  password, and a secret waiting for deletion would block the name of a stack made again);
- ``DrillUser`` (components/dynamic/drill_user.py): the user, in no group, whose random password goes
  from Secrets Manager to Cognito and to the secret, never through Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.dynamic.drill_user import DrillUser
from components.identity import SHORTEST_TOKEN_VALIDITY
from components.naming import stack_name

# Only what the probe does (probe/identity.py): sign in with a password, then refresh.
DRILL_CLIENT_FLOWS = ("ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
EMAIL_DOMAIN = "example.com"  # reserved for documentation: never a real mailbox (as tools/smoke.py)
EMAIL_LOCAL_PART_MAX = 64
SECRET_NAME_MAX = 512


def replica_arn(arn: str, region: str) -> str:
    """A secret's ARN in ``region``: a replica keeps the primary's name and suffix, in its own region."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise ValueError(f"{arn!r} is not a Secrets Manager secret ARN")
    return ":".join([*parts[:3], region, *parts[4:]])


@dataclass(frozen=True)
class DrillIdentityArgs:
    """Inputs of DrillIdentity; plain values, no pulumi.Config."""

    user_pool_id: pulumi.Input[str]
    """The stack's pool (components/identity.py), replicated to ``secondary_region``."""
    primary_region: str
    """The pool's region: the client, the secret and the user are made there."""
    secondary_region: str
    """The replica's region: where the drill signs in, and the secret's replica."""
    password_policy: Mapping[str, Any]
    """The pool's password policy (components/identity.py PASSWORD_POLICY)."""

    def __post_init__(self) -> None:
        if self.primary_region == self.secondary_region:
            raise ValueError(
                "DrillIdentity: the drill signs in at the replica, in another region than the pool"
            )


class DrillIdentity(pulumi.ComponentResource):
    """The drill's app client, its user and the secret that holds the user's password."""

    client_id: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    """The secret in the primary region (where the password is written)."""
    replica_secret_arn: pulumi.Output[str]
    """Its replica in the secondary region (what the probe reads, and all its role may read)."""
    region: str
    """Where the drill signs in (the secondary region)."""
    primary_region: str

    def __init__(
        self, name: str, args: DrillIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{PROJECT}:ops:DrillIdentity", name, None, opts)
        here = pulumi.ResourceOptions(parent=self)
        client = aws.cognito.UserPoolClient(
            f"{name}-client",
            name=name,
            user_pool_id=args.user_pool_id,
            generate_secret=False,
            explicit_auth_flows=list(DRILL_CLIENT_FLOWS),
            allowed_oauth_flows_user_pool_client=False,
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            **SHORTEST_TOKEN_VALIDITY,
            read_attributes=["email"],
            opts=here,
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            name=stack_name("failover-drill-identity", SECRET_NAME_MAX),
            description="The failover drill's Cognito user: its username and password (written by DrillUser)",
            replicas=[{"region": args.secondary_region}],
            recovery_window_in_days=0,
            opts=here,
        )
        user = DrillUser(
            f"{name}-user",
            user_pool_id=args.user_pool_id,
            region=args.primary_region,
            username=f"{stack_name('failover-drill', EMAIL_LOCAL_PART_MAX)}@{EMAIL_DOMAIN}",
            secret_arn=secret.arn,
            password_policy=args.password_policy,
            opts=here,
        )
        self.client_id = client.id
        self.secret_arn = secret.arn
        # After the user: the probe is never given a secret without a password in it.
        self.replica_secret_arn = pulumi.Output.all(secret.arn, user.id).apply(
            lambda values: replica_arn(values[0], args.secondary_region)
        )
        self.region = args.secondary_region
        self.primary_region = args.primary_region
        self.register_outputs(
            {
                "client_id": self.client_id,
                "secret_arn": self.secret_arn,
                "replica_secret_arn": self.replica_secret_arn,
            }
        )
