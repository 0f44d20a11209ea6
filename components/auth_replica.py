"""AuthReplica: the user pool replicated to the secondary region (config ``authReplica``, docs/identity.md).

Children, in the order AWS needs them:

- a multi-Region customer managed KMS key in the primary region (``aws.kms.Key(multi_region=True)``,
  rotation on) and its replica in the secondary region (``aws.kms.ReplicaKey``), each with a key policy
  that keeps the account's administrators in control and lets Cognito (``cognito-idp.amazonaws.com``)
  use the key for this account's pools only (``aws:SourceAccount``);
- ``PoolReplicationSettings``: the pool encrypted with that key and on the ``UPDATED`` issuer, which
  publishes the same keys in every region (components/dynamic/user_pool_replica.py);
- ``UserPoolReplica``: the replica in the secondary region, ACTIVE once Cognito has created it. Its
  ``user_pool_arn`` is the secondary region's pool ARN (same pool ID), which that region's authorizer
  names, so validating a token never crosses regions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.dynamic.user_pool_replica import PoolReplicationSettings, UserPoolReplica

COGNITO_PRINCIPAL = "cognito-idp.amazonaws.com"
# What Cognito does with a user pool's customer managed key: encrypt and decrypt the pool's data.
COGNITO_KEY_ACTIONS = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
KEY_DELETION_WINDOW_DAYS = 30  # the longest: time to notice a pool still needs the key


def key_policy(account_id: str, partition: str = "aws") -> str:
    """The key policy of both the primary key and its replica."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CognitoUsesTheKeyForThisAccountsPools",
                    "Effect": "Allow",
                    "Principal": {"Service": COGNITO_PRINCIPAL},
                    "Action": list(COGNITO_KEY_ACTIONS),
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class AuthReplicaArgs:
    user_pool_id: pulumi.Input[str]
    primary_region: str
    secondary_region: str
    primary_provider: aws.Provider
    secondary_provider: aws.Provider
    deletion_protection: bool
    tags: Mapping[str, str] = field(default_factory=dict)


class AuthReplica(pulumi.ComponentResource):
    """The multi-Region key, the pool's key and issuer settings, and the ACTIVE replica."""

    user_pool_arns: dict[str, pulumi.Output[str]]
    issuer_url: pulumi.Output[str]

    def __init__(self, name: str, args: AuthReplicaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dsql-users-api:identity:AuthReplica", name, None, opts)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(provider=args.primary_provider))
        policy = account.account_id.apply(key_policy)
        self.key = aws.kms.Key(
            f"{name}-key",
            description="Cognito user pool (multi-Region replication)",
            multi_region=True,
            enable_key_rotation=True,
            deletion_window_in_days=KEY_DELETION_WINDOW_DAYS,
            policy=policy,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, provider=args.primary_provider),
        )
        self.replica_key = aws.kms.ReplicaKey(
            f"{name}-key-replica",
            primary_key_arn=self.key.arn,
            description="Cognito user pool replica (multi-Region replication)",
            deletion_window_in_days=KEY_DELETION_WINDOW_DAYS,
            policy=policy,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, provider=args.secondary_provider),
        )
        # The key must exist in the replica's region before the pool uses it.
        self.settings = PoolReplicationSettings(
            f"{name}-settings",
            user_pool_id=args.user_pool_id,
            region=args.primary_region,
            kms_key_arn=self.key.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.replica_key]),
        )
        self.replica = UserPoolReplica(
            f"{name}-replica",
            user_pool_id=args.user_pool_id,
            primary_region=args.primary_region,
            replica_region=args.secondary_region,
            deletion_protection=args.deletion_protection,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.settings]),
        )
        self.issuer_url = self.settings.issuer_url
        self.user_pool_arns = {args.secondary_region: self.replica.user_pool_arn}
        self.register_outputs(
            {"issuerUrl": self.issuer_url, "replicaUserPoolArn": self.replica.user_pool_arn}
        )
