"""Peer two Aurora DSQL clusters into one multi-region cluster, as a Pulumi dynamic resource.

The native ``aws.dsql.Cluster`` resources create each cluster with the witness region; a multi-region
cluster then waits in PENDING_SETUP (the AWS provider's create waiter accepts ACTIVE or PENDING_SETUP,
so it returns). This resource does what the AWS console does next: UpdateCluster on each side with
``multiRegionProperties={"witnessRegion": W, "clusters": [<peer ARN>]}``, then waits until both clusters
are ready and name each other. ``aws.dsql.ClusterPeering`` is not used: it accepts only a cluster in
PENDING_SETUP, has no update and does nothing on delete.

create  Idempotent and resumable: a side that already names its peer is not updated again, so a run
        that failed half-way (DSQL has no operation to undo a peering) is finished by the next
        ``pulumi up``; a failed create leaves no resource in the state. Waits at most
        ``timeout_seconds`` for both clusters to be ACTIVE (IDLE and INACTIVE count: they are a
        healthy pair scaled down, back to ACTIVE on the first connection); FAILED, DELETING, DELETED
        or PENDING_DELETE, or the timeout, fail with the clusters' identifiers and states.
read    (``pulumi refresh``) GetCluster on both: the pair exists when both clusters exist, are not
        being deleted or FAILED, and each names the other with the same witness; then the outputs
        carry their current states (a pair still CREATING or UPDATING reads as it is). Otherwise the
        resource reads as gone (empty id), and the next ``pulumi up`` peers the pair again.
delete  Never deletes or unpeers anything: the native clusters own deletion, and DSQL deletes a peered
        pair only as a pair (the first cluster deleted waits in PENDING_DELETE until its peer is
        deleted). Pulumi deletes this resource before the clusters, so delete is the last moment to
        stop a destroy that cannot finish: while deletion protection is on for a cluster that still
        exists, it raises and names the fix, before either cluster is touched (otherwise one cluster
        could be left in PENDING_DELETE). Missing clusters are fine: safe to run twice.
diff    Replaces when an ARN, identifier, region or the witness changes or is not known yet (in a
        preview, a cluster being replaced); an update (no AWS call) when only the wait settings change;
        nothing when every value is known and equal.
check   Rejects what cannot be a pair (see ``check``); values not known yet (preview) pass.

``pulumi import`` cannot adopt this resource: the engine's import request carries no serialized
provider, and the dynamic-provider server needs one to know which provider to run. Nothing is lost:
``pulumi up`` adopts an existing pair, because create skips a side that already names its peer.

Inputs are plain values. Every boto3 client comes from ``aws_session.session`` with the stack's AWS
access setting (``awsProfile`` / ``awsAssumeRoleArn``), received in ``configure``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pulumi
import pulumi.dynamic

from components.dynamic.aws_session import AwsAccess, AwsAccessProvider, session
from components.dynamic.engine import changed_keys, is_unknown, log_progress

DEFAULT_TIMEOUT_SECONDS = 1800
DEFAULT_POLL_SECONDS = 10.0  # the AWS samples poll multi-region clusters every 10 s
MAX_TIMEOUT_SECONDS = 7200

READY = frozenset({"ACTIVE", "IDLE", "INACTIVE"})
WAITING = frozenset({"CREATING", "UPDATING", "PENDING_SETUP"})
DOOMED = frozenset({"FAILED", "DELETING", "DELETED", "PENDING_DELETE"})

# The ClusterArn pattern of botocore's dsql service model, anchored, with its parts captured.
CLUSTER_ARN = re.compile(
    r"^arn:(?P<partition>aws(-[^:]+)?):dsql:(?P<region>[a-z0-9-]{1,20}):(?P<account>[0-9]{12}):"
    r"cluster/(?P<identifier>[a-z0-9]{26})$"
)
SIDES = ("primary", "secondary")
PARTS = ("identifier", "arn", "region")
REPLACE_KEYS = (
    "primary_arn",
    "primary_identifier",
    "primary_region",
    "secondary_arn",
    "secondary_identifier",
    "secondary_region",
    "witness_region",
)
UPDATE_KEYS = ("timeout_seconds", "poll_interval_seconds")


class PeeringError(RuntimeError):
    """The pair could not be peered, or cannot be deleted yet; the message names clusters and states."""


def _client(access: AwsAccess, region: str) -> Any:
    return session(access, region).client("dsql")


def _describe(side: dict[str, Any], cluster: dict[str, Any] | None) -> str:
    state = cluster["status"] if cluster else "not found"
    return f"{side['identifier']} ({side['region']}): {state}"


class ClusterPeeringProvider(AwsAccessProvider):
    """Peers two DSQL clusters; safe to pickle (nothing is kept on ``self`` before ``configure``)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures: list[pulumi.dynamic.CheckFailure] = []

        def fail(prop: str, reason: str) -> None:
            failures.append(pulumi.dynamic.CheckFailure(prop, reason))

        inputs = dict(news)
        inputs.setdefault("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        inputs.setdefault("poll_interval_seconds", DEFAULT_POLL_SECONDS)
        arns: dict[str, re.Match[str]] = {}
        for side in SIDES:
            arn, region, identifier = (inputs.get(f"{side}_{p}") for p in ("arn", "region", "identifier"))
            if is_unknown(arn):
                continue
            match = CLUSTER_ARN.match(str(arn))
            if not match:
                fail(
                    f"{side}_arn",
                    f"{arn!r} is not an Aurora DSQL cluster ARN "
                    "(arn:aws:dsql:<region>:<12-digit account>:cluster/<26-character id>)",
                )
                continue
            arns[side] = match
            if not is_unknown(region) and match["region"] != region:
                fail(f"{side}_region", f"{side}_region is {region!r} but {side}_arn is in {match['region']}")
            if not is_unknown(identifier) and match["identifier"] != identifier:
                fail(
                    f"{side}_identifier",
                    f"{side}_identifier is {identifier!r} but {side}_arn names {match['identifier']}",
                )
        regions = [inputs.get(f"{side}_region") for side in SIDES]
        if not any(is_unknown(r) for r in regions) and regions[0] == regions[1]:
            fail("secondary_region", f"both clusters are in {regions[0]}; a pair needs two regions")
        witness = inputs.get("witness_region")
        if witness is None or (not is_unknown(witness) and not str(witness).strip()):
            fail("witness_region", "witness_region is required (a third region, e.g. us-west-2)")
        elif not is_unknown(witness) and witness in regions:
            fail(
                "witness_region",
                f"witness_region {witness} is also a cluster region; the witness must be a third region",
            )
        if len(arns) == 2 and (
            arns["primary"]["account"] != arns["secondary"]["account"]
            or arns["primary"]["partition"] != arns["secondary"]["partition"]
        ):
            fail("secondary_arn", "both clusters must be in the same AWS account and partition")
        for key, low, high in (
            ("timeout_seconds", 0, MAX_TIMEOUT_SECONDS),
            ("poll_interval_seconds", 0, 600),
        ):
            value = inputs.get(key)
            if is_unknown(value):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                fail(key, f"{key} must be a number of seconds above {low} and at most {high}, not {value!r}")
        return pulumi.dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, REPLACE_KEYS)
        updates = changed_keys(olds, news, UPDATE_KEYS)
        return pulumi.dynamic.DiffResult(
            changes=bool(replaces or updates),
            replaces=replaces,
            # The old peering's delete is the guard against a destroy that cannot finish: run it first.
            delete_before_replace=True if replaces else None,
        )

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        sides = _sides(props)
        witness = props["witness_region"]
        for side, peer in ((sides[0], sides[1]), (sides[1], sides[0])):
            _peer_one_side(self.access, side, peer, witness)
        states = _wait_until_ready(
            self.access,
            sides,
            witness,
            float(props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
            float(props.get("poll_interval_seconds") or DEFAULT_POLL_SECONDS),
        )
        log_progress(f"DSQL clusters {sides[0]['identifier']} and {sides[1]['identifier']} are peered")
        peering_id = f"{sides[0]['identifier']}+{sides[1]['identifier']}"
        return pulumi.dynamic.CreateResult(peering_id, {**props, **_outputs(states)})

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        sides = _sides(props)
        clusters = [_get_cluster(self.access, side) for side in sides]
        problem = _pair_problem(sides, clusters, props.get("witness_region"))
        if problem is not None:
            log_progress(f"DSQL cluster pair {id_} reads as gone: {problem}; `pulumi up` peers it again")
            return pulumi.dynamic.ReadResult("", {})
        states = [cluster["status"] for cluster in clusters if cluster is not None]
        return pulumi.dynamic.ReadResult(id_, {**props, **_outputs(states)})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        # Only the wait settings can change without a replacement; nothing to do in AWS.
        return pulumi.dynamic.UpdateResult({**news, **_outputs(_statuses(olds))})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        protected: list[str] = []
        for side in _sides(props):
            cluster = _get_cluster(self.access, side)
            if cluster is None:
                continue
            if cluster.get("deletionProtectionEnabled"):
                protected.append(_describe(side, cluster))
        if protected:
            raise PeeringError(
                "deletion protection is on for DSQL cluster(s) "
                + "; ".join(protected)
                + ". A peered pair is deleted as a pair, so nothing was changed. To tear down: "
                "`pulumi config set deletionProtection false`, `pulumi up` (turns it off on both "
                "clusters), then `pulumi destroy`."
            )
        log_progress(
            "peering resource removed; the clusters are not unpeered here: deleting the native "
            "clusters deletes the pair (the first waits in PENDING_DELETE until its peer is deleted)"
        )


def _sides(props: dict[str, Any]) -> list[dict[str, str]]:
    missing = [f"{side}_{part}" for side in SIDES for part in PARTS if not props.get(f"{side}_{part}")]
    if missing:
        raise PeeringError(
            f"the peering's properties lack {', '.join(missing)}; they come from the program's inputs "
            "(a refresh of a resource created by `pulumi import` cannot work: see the module docstring)"
        )
    return [{part: str(props[f"{side}_{part}"]) for part in PARTS} for side in SIDES]


def _get_cluster(access: AwsAccess, side: dict[str, str]) -> dict[str, Any] | None:
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(access, side["region"])
    try:
        return client.get_cluster(identifier=side["identifier"])
    except client.exceptions.ResourceNotFoundException:
        return None
    except (BotoCoreError, ClientError) as exc:
        # Credentials, permissions, throttling past botocore's retries, no network: say which call.
        raise PeeringError(
            f"GetCluster {side['identifier']} ({side['region']}) failed: {exc}. Check the AWS "
            "credentials (awsProfile / awsAssumeRoleArn) and that they allow dsql:GetCluster, then retry."
        ) from None


def _pair_problem(
    sides: list[dict[str, str]], clusters: list[dict[str, Any] | None], witness: Any
) -> str | None:
    """Why the two clusters are not (or no longer) a peered pair with ``witness``; None when they are."""
    for side, peer, cluster in zip(sides, reversed(sides), clusters, strict=True):
        if cluster is None or cluster["status"] in DOOMED:
            return _describe(side, cluster)
        properties = cluster.get("multiRegionProperties") or {}
        if properties.get("witnessRegion") != witness:
            return f"{side['identifier']} has witness region {properties.get('witnessRegion')!r}, not {witness!r}"
        if peer["arn"] not in (properties.get("clusters") or []):
            return f"{side['identifier']} ({side['region']}) does not name {peer['identifier']} as its peer"
    return None


def _peer_one_side(access: AwsAccess, side: dict[str, str], peer: dict[str, str], witness: str) -> None:
    cluster = _get_cluster(access, side)
    if cluster is None:
        raise PeeringError(f"cannot peer DSQL cluster {side['identifier']} ({side['region']}): not found")
    if cluster["status"] in DOOMED:
        raise PeeringError(f"cannot peer DSQL cluster {_describe(side, cluster)}")
    properties = cluster.get("multiRegionProperties") or {}
    if properties.get("witnessRegion") != witness:
        raise PeeringError(
            f"DSQL cluster {side['identifier']} ({side['region']}) has witness region "
            f"{properties.get('witnessRegion')!r}, not {witness!r}; a cluster's witness is set when it "
            "is created, so the cluster must be created again with the witness region"
        )
    if peer["arn"] in (properties.get("clusters") or []):
        log_progress(f"DSQL cluster {side['identifier']} already names {peer['identifier']} as its peer")
        return
    log_progress(f"peering DSQL cluster {side['identifier']} ({side['region']}) with {peer['identifier']}")
    _client(access, side["region"]).update_cluster(
        identifier=side["identifier"],
        multiRegionProperties={"witnessRegion": witness, "clusters": [peer["arn"]]},
    )


def _statuses(props: dict[str, Any]) -> list[str]:
    return [props.get(f"{side}_status") or "ACTIVE" for side in SIDES]


def _outputs(states: list[str]) -> dict[str, str]:
    return {f"{side}_status": state for side, state in zip(SIDES, states, strict=True)}


def _wait_until_ready(
    access: AwsAccess, sides: list[dict[str, str]], witness: str, timeout: float, poll: float
) -> list[str]:
    """Poll both clusters until each is ready and names the other; return their final states."""
    deadline = time.monotonic() + timeout
    last_report = ""
    while True:
        clusters = [_get_cluster(access, side) for side in sides]
        described = "; ".join(_describe(side, c) for side, c in zip(sides, clusters, strict=True))
        alive = [c for c in clusters if c is not None and c["status"] not in DOOMED]
        if len(alive) != len(sides):
            raise PeeringError(f"DSQL cluster pair cannot become ACTIVE: {described}")
        peered = all(
            peer["arn"] in ((c.get("multiRegionProperties") or {}).get("clusters") or [])
            for c, peer in zip(alive, reversed(sides), strict=True)
        )
        if peered and all(c["status"] in READY for c in alive):
            return [c["status"] for c in alive]
        if described != last_report:
            log_progress(f"waiting for the DSQL cluster pair: {described}")
            last_report = described
        if time.monotonic() >= deadline:
            raise PeeringError(
                f"timed out after {timeout:g} s waiting for the DSQL cluster pair (witness {witness}) to "
                f"become ACTIVE and peered both ways: {described}; "
                f"{'both name each other' if peered else 'not yet peered both ways'}. Run `pulumi up` again to keep "
                "waiting (peering resumes where it stopped), or raise peeringTimeoutSeconds."
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


class ClusterPeering(pulumi.dynamic.Resource, module="dsql", name="ClusterPeering"):
    """The peering of two DSQL clusters; its outputs are the clusters' states after peering."""

    primary_status: pulumi.Output[str]
    secondary_status: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        primary_identifier: pulumi.Input[str],
        primary_arn: pulumi.Input[str],
        primary_region: pulumi.Input[str],
        secondary_identifier: pulumi.Input[str],
        secondary_arn: pulumi.Input[str],
        secondary_region: pulumi.Input[str],
        witness_region: pulumi.Input[str],
        timeout_seconds: pulumi.Input[float] = DEFAULT_TIMEOUT_SECONDS,
        poll_interval_seconds: pulumi.Input[float] = DEFAULT_POLL_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "primary_identifier": primary_identifier,
            "primary_arn": primary_arn,
            "primary_region": primary_region,
            "secondary_identifier": secondary_identifier,
            "secondary_arn": secondary_arn,
            "secondary_region": secondary_region,
            "witness_region": witness_region,
            "timeout_seconds": timeout_seconds,
            "poll_interval_seconds": poll_interval_seconds,
            "primary_status": None,
            "secondary_status": None,
        }
        super().__init__(ClusterPeeringProvider(), name, props, opts)
