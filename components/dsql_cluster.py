"""DsqlMultiRegionCluster: one Aurora DSQL multi-region cluster pair, peered and ready for SQL.

Children: a native ``aws.dsql.Cluster`` per application region (each bound to that region's provider,
with the witness region, deletion protection, optional KMS key and tags), then one ``ClusterPeering``
dynamic resource that peers them and waits until both are ACTIVE. The endpoints are derived from the
cluster identifiers alone (a preview of a peering update must not make them unknown), so whatever
connects to an endpoint depends on ``peering`` explicitly: the migration does, and the grants and the
functions wait for the migration. See docs/dsql-cluster.md for deletion and teardown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.config import PROJECT
from components.dynamic.peering import ClusterPeering


@dataclass(frozen=True)
class DsqlMultiRegionClusterArgs:
    """What the pair needs; plain typed values from StackConfig plus the two regional providers."""

    primary_region: str
    """First application region (its cluster is ``primary``)."""
    primary_provider: aws.Provider
    """The explicit AWS provider of ``primary_region``."""
    secondary_region: str
    """Second application region."""
    secondary_provider: aws.Provider
    """The explicit AWS provider of ``secondary_region``."""
    witness_region: str
    """The witness region: no cluster of ours, no provider needed (DSQL manages the witness)."""
    deletion_protection: bool = True
    """Deletion protection on both clusters (turn off and `pulumi up` before `pulumi destroy`)."""
    kms_key_arns: Mapping[str, str] = field(default_factory=dict)
    """Customer managed KMS key ARN by region (a key serves only its own region); absent: AWS owned."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for both clusters."""
    peering_timeout_seconds: float = 1800
    """How long the peering waits for both clusters to be ACTIVE."""


@dataclass(frozen=True)
class RegionalCluster:
    """One cluster of the pair, as the rest of the program uses it."""

    region: str
    identifier: pulumi.Output[str]
    arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    """``<identifier>.dsql.<region>.on.aws``; connect only after ``peering`` (the pair is ACTIVE then)."""


def endpoint_hostname(identifier: str, region: str) -> str:
    """The cluster's PostgreSQL endpoint (the AWS provider has no endpoint output)."""
    return f"{identifier}.dsql.{region}.on.aws"


class DsqlMultiRegionCluster(pulumi.ComponentResource):
    """Two peered Aurora DSQL clusters sharing one witness region: one logical database."""

    primary: RegionalCluster
    secondary: RegionalCluster
    primary_cluster: aws.dsql.Cluster
    secondary_cluster: aws.dsql.Cluster
    peering: ClusterPeering

    def __init__(
        self, name: str, args: DsqlMultiRegionClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{PROJECT}:database:DsqlMultiRegionCluster", name, None, opts)
        if args.primary_region == args.secondary_region:
            raise ValueError(f"{name}: the two clusters must be in different regions")
        if args.witness_region in (args.primary_region, args.secondary_region):
            raise ValueError(f"{name}: the witness region must differ from both cluster regions")

        self.primary_cluster = self._cluster(
            f"{name}-primary", args, args.primary_region, args.primary_provider
        )
        self.secondary_cluster = self._cluster(
            f"{name}-secondary", args, args.secondary_region, args.secondary_provider
        )
        self.peering = ClusterPeering(
            f"{name}-peering",
            primary_identifier=self.primary_cluster.identifier,
            primary_arn=self.primary_cluster.arn,
            primary_region=args.primary_region,
            secondary_identifier=self.secondary_cluster.identifier,
            secondary_arn=self.secondary_cluster.arn,
            secondary_region=args.secondary_region,
            witness_region=args.witness_region,
            timeout_seconds=args.peering_timeout_seconds,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.primary_cluster, self.secondary_cluster]
            ),
        )
        self.primary = self._regional(self.primary_cluster, args.primary_region)
        self.secondary = self._regional(self.secondary_cluster, args.secondary_region)
        self.register_outputs(
            {
                "primary_identifier": self.primary.identifier,
                "primary_arn": self.primary.arn,
                "primary_endpoint": self.primary.endpoint,
                "secondary_identifier": self.secondary.identifier,
                "secondary_arn": self.secondary.arn,
                "secondary_endpoint": self.secondary.endpoint,
            }
        )

    @property
    def clusters(self) -> tuple[RegionalCluster, RegionalCluster]:
        return (self.primary, self.secondary)

    def in_region(self, region: str) -> RegionalCluster:
        """The cluster of ``region``; for a regional component such as RegionalApp."""
        for cluster in self.clusters:
            if cluster.region == region:
                return cluster
        raise KeyError(
            f"no DSQL cluster in {region}; the pair is in {self.primary.region} and {self.secondary.region}"
        )

    def _cluster(
        self, name: str, args: DsqlMultiRegionClusterArgs, region: str, provider: aws.Provider
    ) -> aws.dsql.Cluster:
        return aws.dsql.Cluster(
            name,
            deletion_protection_enabled=args.deletion_protection,
            # Never let a destroy bypass deletion protection: turning it off is a reviewed config change.
            force_destroy=False,
            kms_encryption_key=args.kms_key_arns.get(region),
            multi_region_properties=aws.dsql.ClusterMultiRegionPropertiesArgs(
                witness_region=args.witness_region
            ),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )

    @staticmethod
    def _regional(cluster: aws.dsql.Cluster, region: str) -> RegionalCluster:
        # From the identifier alone: a peering update (whose outputs a preview cannot know) must not
        # make the endpoint unknown, or every grant and function downstream would plan a replacement.
        # Whatever connects to it depends on ``peering`` instead (the migration; the grants after it).
        endpoint = cluster.identifier.apply(lambda identifier: endpoint_hostname(identifier, region))
        return RegionalCluster(region, cluster.identifier, cluster.arn, endpoint)
