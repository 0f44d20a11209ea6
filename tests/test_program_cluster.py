"""The program's database part under Pulumi mocks (set before the program runs, by run_program)."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

from components.config import ConfigError
from components.dsql_cluster import DsqlMultiRegionCluster, DsqlMultiRegionClusterArgs
from migrations.runner import load_migrations
from tests import pulumi_harness
from tests.pulumi_harness import AWS_PROVIDER, run_program

CLUSTER = "aws:dsql/cluster:Cluster"
PEERING = "pulumi-python:dynamic/dsql:ClusterPeering"
MIGRATION = "pulumi-python:dynamic/dsql:SchemaMigration"


@pytest.fixture(scope="module")
def prod():
    return run_program()


def test_one_explicit_provider_per_application_region(prod) -> None:
    providers = prod.of_type(AWS_PROVIDER)
    assert sorted(p.inputs["region"] for p in providers) == ["us-east-1", "us-east-2"]


def test_each_cluster_is_bound_to_its_own_regions_provider(prod) -> None:
    primary = prod.named("users-db-primary")
    secondary = prod.named("users-db-secondary")
    assert (primary.typ, primary.region) == (CLUSTER, "us-east-1")
    assert (secondary.typ, secondary.region) == (CLUSTER, "us-east-2")
    assert primary.provider != secondary.provider
    assert all(r.provider for r in prod.resources if r.typ.startswith("aws:"))  # never the default


def test_clusters_have_the_witness_deletion_protection_and_the_stack_tags(prod) -> None:
    providers = {p.name: p for p in prod.of_type(AWS_PROVIDER)}
    for cluster in prod.of_type(CLUSTER):
        assert cluster.inputs["multiRegionProperties"] == {"witnessRegion": "us-west-2"}
        assert cluster.inputs["deletionProtectionEnabled"] is True
        assert cluster.inputs["forceDestroy"] is False
        assert "kmsEncryptionKey" not in cluster.inputs
        # Tags come from the cluster's provider (default_tags), as for every taggable resource.
        provider = providers[f"aws-{cluster.region}"]
        # Provider inputs reach the provider as JSON text, as the engine passes provider config.
        assert json.loads(provider.inputs["defaultTags"])["tags"] == {
            "project": "dsql-users-api",
            "stack": "prod",
            "app": "users-api",
            "environment": "prod",
        }


def test_deletion_protection_and_each_regions_kms_key_follow_the_config() -> None:
    keys = {
        "us-east-1": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "us-east-2": "arn:aws:kms:us-east-2:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab",
    }
    run = run_program({"deletionProtection": "false", "kmsKeyArns": list(keys.values())})
    for cluster in run.of_type(CLUSTER):
        assert cluster.inputs["deletionProtectionEnabled"] is False
        assert cluster.inputs["kmsEncryptionKey"] == keys[cluster.region]


def test_regions_come_from_the_config_only() -> None:
    run = run_program(
        {"primaryRegion": "us-east-2", "secondaryRegion": "us-east-1", "witnessRegion": "us-west-2"}
    )
    assert run.named("users-db-primary").region == "us-east-2"
    assert run.named("users-db-secondary").region == "us-east-1"
    assert run.one(MIGRATION).inputs["region"] == "us-east-2"


def test_the_peering_depends_on_both_clusters_and_takes_their_outputs(prod) -> None:
    peering = prod.one(PEERING)
    assert sorted(prod.depends_on[peering.name]) == ["users-db-primary", "users-db-secondary"]
    for side, cluster_name, region in (
        ("primary", "users-db-primary", "us-east-1"),
        ("secondary", "users-db-secondary", "us-east-2"),
    ):
        cluster = prod.named(cluster_name)
        assert peering.inputs[f"{side}_arn"] == cluster.outputs["arn"]
        assert peering.inputs[f"{side}_identifier"] == cluster.outputs["identifier"]
        assert peering.inputs[f"{side}_region"] == region
    assert peering.inputs["witness_region"] == "us-west-2"
    assert peering.inputs["timeout_seconds"] == 1800


def test_the_peering_timeout_follows_the_config() -> None:
    assert run_program({"peeringTimeoutSeconds": "600"}).one(PEERING).inputs["timeout_seconds"] == 600


def test_the_migration_runs_once_on_the_primary_after_the_peering(prod) -> None:
    migration = prod.one(MIGRATION)
    assert prod.depends_on[migration.name] == ["users-db-peering"]
    primary = prod.named("users-db-primary")
    assert migration.inputs["endpoint"] == f"{primary.outputs['identifier']}.dsql.us-east-1.on.aws"
    assert migration.inputs["region"] == "us-east-1"
    files = load_migrations()
    assert migration.inputs["migrations"] == [
        {"name": m.name, "checksum": m.checksum, "sql": m.sql} for m in files
    ]


def test_the_exports_name_each_regions_cluster(prod) -> None:
    clusters = prod.outputs["dsqlClusters"]
    assert sorted(clusters) == ["us-east-1", "us-east-2"]
    for region, name in (("us-east-1", "users-db-primary"), ("us-east-2", "users-db-secondary")):
        cluster = prod.named(name)
        assert clusters[region] == {
            "id": cluster.outputs["identifier"],
            "arn": cluster.outputs["arn"],
            "endpoint": f"{cluster.outputs['identifier']}.dsql.{region}.on.aws",
        }
    assert prod.outputs["witnessRegion"] == "us-west-2"
    assert "schemaVersion" in prod.outputs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"secondaryRegion": "us-east-1"}, "secondaryRegion equals primaryRegion"),
        ({"witnessRegion": "us-east-2"}, "witnessRegion (us-east-2) is also an application region"),
        ({"witnessRegion": "us-middle-9"}, "witnessRegion is 'us-middle-9', which is not an AWS region"),
        ({"primaryRegion": None}, "primaryRegion is required"),
        ({"deletionProtection": "maybe"}, "deletionProtection must be true or false"),
        ({"peeringTimeoutSeconds": "5"}, "peeringTimeoutSeconds must be between 60 and 7200"),
    ],
)
def test_bad_config_fails_with_its_message_before_any_resource(overrides, message, monkeypatch) -> None:
    registered: list[str] = []
    original = pulumi_harness.RecordingMocks.new_resource

    def recording(self, args):
        registered.append(args.name)
        return original(self, args)

    monkeypatch.setattr(pulumi_harness.RecordingMocks, "new_resource", recording)

    with pytest.raises(ConfigError) as raised:
        run_program(overrides)

    assert message in str(raised.value)
    assert registered == []


def test_two_components_never_collide_and_keep_their_regions() -> None:
    def program() -> None:
        east1 = aws.Provider("east1", region="us-east-1")
        east2 = aws.Provider("east2", region="us-east-2")
        for name in ("blue", "green"):
            DsqlMultiRegionCluster(
                name,
                DsqlMultiRegionClusterArgs(
                    primary_region="us-east-1",
                    primary_provider=east1,
                    secondary_region="us-east-2",
                    secondary_provider=east2,
                    witness_region="us-west-2",
                ),
                opts=pulumi.ResourceOptions(),
            )

    run = run_program(program=program)
    names = [r.name for r in run.resources]
    assert len(names) == len(set(names))
    assert len(run.of_type(CLUSTER)) == 4
    assert len(run.of_type(PEERING)) == 2


def test_the_component_refuses_a_witness_in_an_application_region() -> None:
    def program() -> None:
        east1 = aws.Provider("east1", region="us-east-1")
        east2 = aws.Provider("east2", region="us-east-2")
        DsqlMultiRegionCluster(
            "db",
            DsqlMultiRegionClusterArgs(
                primary_region="us-east-1",
                primary_provider=east1,
                secondary_region="us-east-2",
                secondary_provider=east2,
                witness_region="us-east-1",
            ),
        )

    with pytest.raises(ValueError, match="witness region must differ"):
        run_program(program=program)


def test_every_component_type_token_uses_the_project_package() -> None:
    """STYLE: one package name for the whole project, so URNs read as one product."""
    run = run_program()
    components = [
        r for r in run.resources if not r.typ.startswith(("aws:", "pulumi:", "command:", "pulumi-python:"))
    ]
    assert {r.typ.split(":")[0] for r in components} == {"dsql-users-api"}
    assert {r.typ.split(":")[2] for r in components} >= {
        "DsqlMultiRegionCluster",
        "RegionalApp",
        "LambdaArtifacts",
        "GlobalRouting",
        "Monitoring",
    }
