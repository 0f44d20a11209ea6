"""The peering provider's methods called directly against moto's in-process DSQL (and a Stubber where
moto cannot show a state: it never reports PENDING_SETUP)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.dsql.models import dsql_backends
from moto.moto_api import state_manager
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.dynamic import peering
from components.dynamic.peering import ClusterPeeringProvider, PeeringError

PRIMARY, SECONDARY, WITNESS = "us-east-1", "us-east-2", "us-west-2"
ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": PRIMARY,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    messages: list[str] = []
    monkeypatch.setattr(peering, "log_progress", messages.append)
    return messages


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield
    state_manager.unset_transition("dsql::cluster")


def make_pair(deletion_protection: bool = True) -> dict:
    """Two multi-region clusters with the witness, as the native aws.dsql.Cluster resources leave them."""
    props: dict = {"witness_region": WITNESS, "timeout_seconds": 5, "poll_interval_seconds": 0.01}
    for side, region in (("primary", PRIMARY), ("secondary", SECONDARY)):
        cluster = boto3.client("dsql", region_name=region).create_cluster(
            deletionProtectionEnabled=deletion_protection,
            multiRegionProperties={"witnessRegion": WITNESS},
        )
        props.update(
            {
                f"{side}_identifier": cluster["identifier"],
                f"{side}_arn": cluster["arn"],
                f"{side}_region": region,
            }
        )
    return props


def cluster(props: dict, side: str) -> dict:
    region = props[f"{side}_region"]
    return boto3.client("dsql", region_name=region).get_cluster(identifier=props[f"{side}_identifier"])


def checked(props: dict) -> dict:
    result = ClusterPeeringProvider().check({}, props)
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def test_create_peers_both_ways_and_waits_for_active(aws, logs) -> None:
    props = checked(make_pair())

    result = ClusterPeeringProvider().create(props)

    primary, secondary = cluster(props, "primary"), cluster(props, "secondary")
    assert primary["status"] == secondary["status"] == "ACTIVE"
    assert primary["multiRegionProperties"] == {
        "witnessRegion": WITNESS,
        "clusters": [props["secondary_arn"]],
    }
    assert secondary["multiRegionProperties"] == {
        "witnessRegion": WITNESS,
        "clusters": [props["primary_arn"]],
    }
    assert result.id == f"{props['primary_identifier']}+{props['secondary_identifier']}"
    assert result.outs["primary_status"] == result.outs["secondary_status"] == "ACTIVE"
    assert result.outs["primary_arn"] == props["primary_arn"]  # outputs keep the inputs for diff
    assert any("peering DSQL cluster" in m for m in logs)


def test_second_create_on_a_peered_pair_changes_nothing(aws, logs, monkeypatch) -> None:
    props = checked(make_pair())
    ClusterPeeringProvider().create(props)
    logs.clear()
    calls: list[str] = []
    real_client = peering._client

    def counting_client(access, region: str):
        client = real_client(access, region)
        client.meta.events.register("before-call.dsql.UpdateCluster", lambda **_: calls.append(region))
        return client

    monkeypatch.setattr(peering, "_client", counting_client)

    result = ClusterPeeringProvider().create(props)

    assert calls == []
    assert result.outs["primary_status"] == "ACTIVE"
    assert sum("already names" in m for m in logs) == 2
    assert cluster(props, "primary")["multiRegionProperties"]["clusters"] == [props["secondary_arn"]]


def test_create_resumes_when_one_side_was_already_peered(aws, logs) -> None:
    props = checked(make_pair())
    boto3.client("dsql", region_name=PRIMARY).update_cluster(
        identifier=props["primary_identifier"],
        multiRegionProperties={"witnessRegion": WITNESS, "clusters": [props["secondary_arn"]]},
    )

    ClusterPeeringProvider().create(props)

    assert cluster(props, "secondary")["multiRegionProperties"]["clusters"] == [props["primary_arn"]]
    assert sum("already names" in m for m in logs) == 1


def test_a_cluster_stuck_creating_hits_the_timeout_with_a_clear_error(aws, logs) -> None:
    state_manager.set_transition("dsql::cluster", {"progression": "manual", "times": 10**6})
    props = checked({**make_pair(), "timeout_seconds": 0.2})

    with pytest.raises(PeeringError) as raised:
        ClusterPeeringProvider().create(props)

    message = str(raised.value)
    assert "timed out after 0.2 s" in message
    assert f"{props['primary_identifier']} ({PRIMARY}): CREATING" in message
    assert f"{props['secondary_identifier']} ({SECONDARY}): CREATING" in message
    assert "peeringTimeoutSeconds" in message
    assert any(m.startswith("waiting for the DSQL cluster pair") for m in logs)


def test_a_failed_cluster_stops_the_wait_at_once(aws, logs) -> None:
    props = checked(make_pair())
    ClusterPeeringProvider().create(props)
    dsql_backends[ACCOUNT][SECONDARY].clusters[props["secondary_identifier"]].status = "FAILED"

    with pytest.raises(PeeringError, match=rf"{props['secondary_identifier']} \({SECONDARY}\): FAILED"):
        ClusterPeeringProvider().create(props)


def test_a_cluster_with_another_witness_is_refused(aws, logs) -> None:
    props = checked({**make_pair(), "witness_region": "eu-west-1"})

    with pytest.raises(PeeringError, match="has witness region 'us-west-2', not 'eu-west-1'"):
        ClusterPeeringProvider().create(props)
    assert cluster(props, "primary")["multiRegionProperties"] == {"witnessRegion": WITNESS}


def test_delete_with_deletion_protection_refuses_and_touches_nothing(aws, logs) -> None:
    props = checked(make_pair(deletion_protection=True))
    outs = ClusterPeeringProvider().create(props).outs

    with pytest.raises(PeeringError) as raised:
        ClusterPeeringProvider().delete("id", outs)

    message = str(raised.value)
    assert props["primary_identifier"] in message and props["secondary_identifier"] in message
    assert "pulumi config set deletionProtection false" in message
    for side in ("primary", "secondary"):
        assert cluster(props, side)["status"] == "ACTIVE"
        assert cluster(props, side)["deletionProtectionEnabled"] is True


def test_delete_without_deletion_protection_leaves_deletion_to_the_clusters(aws, logs) -> None:
    props = checked(make_pair(deletion_protection=False))
    outs = ClusterPeeringProvider().create(props).outs

    ClusterPeeringProvider().delete("id", outs)
    ClusterPeeringProvider().delete("id", outs)  # safe twice

    for side in ("primary", "secondary"):  # nothing deleted or unpeered by the peering resource
        assert cluster(props, side)["status"] == "ACTIVE"
        assert len(cluster(props, side)["multiRegionProperties"]["clusters"]) == 1
    # the native clusters then delete the pair; the peering's delete still works afterwards
    for side in ("primary", "secondary"):
        client = boto3.client("dsql", region_name=props[f"{side}_region"])
        client.delete_cluster(identifier=props[f"{side}_identifier"])
        client.get_waiter("cluster_not_exists").wait(
            identifier=props[f"{side}_identifier"], WaiterConfig={"Delay": 0.01, "MaxAttempts": 5}
        )
    ClusterPeeringProvider().delete("id", outs)


def test_delete_after_one_cluster_is_gone_checks_the_other(aws, logs) -> None:
    props = checked(make_pair(deletion_protection=False))
    outs = ClusterPeeringProvider().create(props).outs
    boto3.client("dsql", region_name=PRIMARY).delete_cluster(identifier=props["primary_identifier"])
    boto3.client("dsql", region_name=SECONDARY).update_cluster(
        identifier=props["secondary_identifier"], deletionProtectionEnabled=True
    )

    with pytest.raises(PeeringError, match=props["secondary_identifier"]):
        ClusterPeeringProvider().delete("id", outs)


# --- check and diff (no AWS call) -----------------------------------------------------------------

IDS = ("a" * 26, "b" * 26)
GOOD = {
    "primary_identifier": IDS[0],
    "primary_arn": f"arn:aws:dsql:{PRIMARY}:{ACCOUNT}:cluster/{IDS[0]}",
    "primary_region": PRIMARY,
    "secondary_identifier": IDS[1],
    "secondary_arn": f"arn:aws:dsql:{SECONDARY}:{ACCOUNT}:cluster/{IDS[1]}",
    "secondary_region": SECONDARY,
    "witness_region": WITNESS,
}


def reasons(props: dict) -> list[str]:
    return [f"{f.property}: {f.reason}" for f in ClusterPeeringProvider().check({}, props).failures]


def test_check_accepts_a_good_pair_and_fills_defaults() -> None:
    result = ClusterPeeringProvider().check({}, dict(GOOD))
    assert result.failures == []
    assert result.inputs["timeout_seconds"] == 1800
    assert result.inputs["poll_interval_seconds"] == 10


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"primary_arn": "arn:aws:rds:us-east-1:123456789012:cluster:db"},
            "is not an Aurora DSQL cluster ARN",
        ),
        ({"secondary_arn": f"arn:aws:dsql:{SECONDARY}:{ACCOUNT}:cluster/short"}, "is not an Aurora DSQL"),
        ({"primary_region": "us-west-1"}, "primary_region is 'us-west-1' but primary_arn is in us-east-1"),
        ({"secondary_identifier": "c" * 26}, "secondary_identifier is 'cccccccccccccccccccccccccc' but"),
        ({"witness_region": PRIMARY}, "witness_region us-east-1 is also a cluster region"),
        ({"witness_region": ""}, "witness_region is required"),
        (
            {
                "secondary_region": PRIMARY,
                "secondary_arn": f"arn:aws:dsql:{PRIMARY}:{ACCOUNT}:cluster/{IDS[1]}",
            },
            "both clusters are in us-east-1",
        ),
        (
            {"secondary_arn": f"arn:aws:dsql:{SECONDARY}:210987654321:cluster/{IDS[1]}"},
            "same AWS account",
        ),
        ({"timeout_seconds": 0}, "timeout_seconds must be a number of seconds above 0"),
        ({"poll_interval_seconds": "ten"}, "poll_interval_seconds must be a number"),
    ],
)
def test_check_rejects_bad_inputs_with_a_clear_message(change: dict, expected: str) -> None:
    found = reasons({**GOOD, **change})
    assert any(expected in reason for reason in found), found


@pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN], ids=["Unknown", "sentinel"])
def test_check_lets_unknown_values_through_during_preview(unknown) -> None:
    """The engine's server hands Check ``Unknown`` instances; direct callers may pass the sentinel."""
    assert reasons({**GOOD, "primary_arn": unknown, "primary_identifier": unknown}) == []
    assert reasons({key: unknown for key in GOOD}) == []  # a first preview: no cluster exists yet
    assert reasons({**GOOD, "timeout_seconds": unknown, "witness_region": unknown}) == []


def test_check_rejects_a_missing_arn_rather_than_taking_it_for_unknown() -> None:
    found = reasons({k: v for k, v in GOOD.items() if k != "primary_arn"})
    assert any("primary_arn: None is not an Aurora DSQL cluster ARN" in r for r in found), found


def test_diff_is_empty_for_the_same_inputs() -> None:
    olds = {**GOOD, "timeout_seconds": 1800, "poll_interval_seconds": 10, "primary_status": "ACTIVE"}
    diff = ClusterPeeringProvider().diff(
        "id", olds, {**GOOD, "timeout_seconds": 1800, "poll_interval_seconds": 10}
    )
    assert diff.changes is False
    assert diff.replaces == []


@pytest.mark.parametrize("key", ["primary_arn", "secondary_arn", "witness_region", "secondary_identifier"])
def test_diff_replaces_when_a_cluster_or_the_witness_changes(key: str) -> None:
    diff = ClusterPeeringProvider().diff("id", dict(GOOD), {**GOOD, key: "changed"})
    assert diff.changes is True
    assert diff.replaces == [key]
    assert diff.delete_before_replace is True


@pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN], ids=["Unknown", "sentinel"])
def test_diff_replaces_only_for_the_keys_not_known_yet(unknown) -> None:
    news = {**GOOD, "secondary_arn": unknown, "secondary_identifier": unknown}
    diff = ClusterPeeringProvider().diff("id", dict(GOOD), news)
    assert diff.changes is True
    assert diff.replaces == ["secondary_arn", "secondary_identifier"]  # known equal keys plan nothing


def test_diff_with_an_unknown_wait_setting_is_an_update_not_a_replacement() -> None:
    diff = ClusterPeeringProvider().diff(
        "id", {**GOOD, "timeout_seconds": 1800}, {**GOOD, "timeout_seconds": Unknown()}
    )
    assert (diff.changes, diff.replaces) == (True, [])


def test_diff_updates_in_place_when_only_the_timeout_changes() -> None:
    diff = ClusterPeeringProvider().diff(
        "id", {**GOOD, "timeout_seconds": 1800}, {**GOOD, "timeout_seconds": 3600}
    )
    assert diff.changes is True
    assert diff.replaces == []
    assert diff.delete_before_replace is None
    outs = ClusterPeeringProvider().update("id", {**GOOD, "primary_status": "ACTIVE"}, {**GOOD}).outs
    assert outs["primary_status"] == "ACTIVE"


# --- the PENDING_SETUP -> CREATING -> ACTIVE transition, which moto never shows -------------------


def get_cluster_response(identifier: str, region: str, status: str, peer_arn: str | None) -> dict:
    properties: dict = {"witnessRegion": WITNESS}
    if peer_arn:
        properties["clusters"] = [peer_arn]
    return {
        "identifier": identifier,
        "arn": f"arn:aws:dsql:{region}:{ACCOUNT}:cluster/{identifier}",
        "status": status,
        "creationTime": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "deletionProtectionEnabled": True,
        "multiRegionProperties": properties,
    }


def test_pending_setup_clusters_are_peered_then_wait_through_creating(monkeypatch, logs) -> None:
    clients = {region: boto3.client("dsql", region_name=region) for region in (PRIMARY, SECONDARY)}
    stubs = {region: Stubber(client) for region, client in clients.items()}
    sides = [
        (PRIMARY, GOOD["primary_identifier"], GOOD["secondary_arn"]),
        (SECONDARY, GOOD["secondary_identifier"], GOOD["primary_arn"]),
    ]
    # 1. each side in PENDING_SETUP, not yet naming its peer, gets UpdateCluster with the peer's ARN
    for region, identifier, peer_arn in sides:
        stubs[region].add_response(
            "get_cluster",
            get_cluster_response(identifier, region, "PENDING_SETUP", None),
            {"identifier": identifier},
        )
        stubs[region].add_response(
            "update_cluster",
            {
                "identifier": identifier,
                "arn": f"arn:aws:dsql:{region}:{ACCOUNT}:cluster/{identifier}",
                "status": "UPDATING",
                "creationTime": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            },
            {
                "identifier": identifier,
                "multiRegionProperties": {"witnessRegion": WITNESS, "clusters": [peer_arn]},
            },
        )
    # 2. then both report PENDING_SETUP, CREATING, and finally ACTIVE
    for status in ("PENDING_SETUP", "CREATING", "ACTIVE"):
        for region, identifier, peer_arn in sides:
            stubs[region].add_response(
                "get_cluster",
                get_cluster_response(identifier, region, status, peer_arn),
                {"identifier": identifier},
            )
    monkeypatch.setattr(peering, "_client", lambda access, region: clients[region])

    with stubs[PRIMARY], stubs[SECONDARY]:
        result = ClusterPeeringProvider().create(checked({**GOOD, "poll_interval_seconds": 0.001}))
        stubs[PRIMARY].assert_no_pending_responses()
        stubs[SECONDARY].assert_no_pending_responses()

    assert result.outs["primary_status"] == result.outs["secondary_status"] == "ACTIVE"
    waiting = [m for m in logs if m.startswith("waiting for the DSQL cluster pair")]
    assert any("PENDING_SETUP" in m for m in waiting) and any("CREATING" in m for m in waiting)


# --- read (pulumi refresh) ---------------------------------------------------------------------------


def test_read_of_a_peered_pair_returns_the_state_with_current_statuses(aws, logs) -> None:
    outs = ClusterPeeringProvider().create(checked(make_pair())).outs
    dsql_backends[ACCOUNT][SECONDARY].clusters[outs["secondary_identifier"]].status = "IDLE"

    read = ClusterPeeringProvider().read("pair-id", {**(outs or {}), "__provider": "serialized"})

    assert read.id == "pair-id"
    assert read.outs["primary_status"] == "ACTIVE"
    assert read.outs["secondary_status"] == "IDLE"
    assert read.outs["primary_arn"] == outs["primary_arn"]


def test_read_of_a_pair_still_updating_keeps_it(aws, logs) -> None:
    outs = ClusterPeeringProvider().create(checked(make_pair())).outs
    dsql_backends[ACCOUNT][PRIMARY].clusters[outs["primary_identifier"]].status = "UPDATING"

    read = ClusterPeeringProvider().read("pair-id", outs)

    assert (read.id, read.outs["primary_status"]) == ("pair-id", "UPDATING")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("delete_primary", "not found"),
        ("pending_delete", "PENDING_DELETE"),
        ("unpeer_secondary", "does not name"),
    ],
)
def test_read_of_a_pair_that_is_gone_or_unpeered_reads_as_gone(aws, logs, change, reason) -> None:
    outs = ClusterPeeringProvider().create(checked(make_pair(deletion_protection=False))).outs
    primary = dsql_backends[ACCOUNT][PRIMARY].clusters[outs["primary_identifier"]]
    secondary = dsql_backends[ACCOUNT][SECONDARY].clusters[outs["secondary_identifier"]]
    if change == "delete_primary":
        del dsql_backends[ACCOUNT][PRIMARY].clusters[outs["primary_identifier"]]
    elif change == "pending_delete":
        primary.status = "PENDING_DELETE"
    else:
        secondary.multi_region_properties = {"witnessRegion": WITNESS}

    read = ClusterPeeringProvider().read("pair-id", outs)

    assert (read.id, read.outs) == ("", {})
    assert any("reads as gone" in m and reason in m for m in logs), logs


def test_read_of_a_pair_with_another_witness_reads_as_gone(aws, logs) -> None:
    outs = ClusterPeeringProvider().create(checked(make_pair())).outs
    assert ClusterPeeringProvider().read("pair-id", {**(outs or {}), "witness_region": "eu-west-1"}).id == ""


def test_read_without_the_programs_properties_says_why() -> None:
    with pytest.raises(PeeringError, match="lack primary_identifier"):
        ClusterPeeringProvider().read("pair-id", {"witness_region": WITNESS})


def test_read_with_credentials_aws_refuses_fails_with_a_clear_message(monkeypatch, logs) -> None:
    client = boto3.client("dsql", region_name=PRIMARY)
    stub = Stubber(client)
    stub.add_client_error("get_cluster", "AccessDeniedException", "not authorized to dsql:GetCluster")
    monkeypatch.setattr(peering, "_client", lambda access, region: client)

    with stub, pytest.raises(PeeringError) as raised:
        ClusterPeeringProvider().read("pair-id", dict(GOOD))

    assert f"GetCluster {IDS[0]} ({PRIMARY}) failed" in str(raised.value)
    assert "AccessDeniedException" in str(raised.value)
    assert "awsProfile / awsAssumeRoleArn" in str(raised.value)
