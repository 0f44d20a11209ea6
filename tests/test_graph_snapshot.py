"""The registered resource graph, kept as a snapshot: a refactoring of a component must not change it.

The program runs under mocks with every option on (both stacks' defaults plus the custom domain, CDN,
WAF, SnapStart, tracing, the drill schedule and an alarm e-mail) except authReplica, which prod's stack
file turns on and this graph keeps off; each resource is recorded with its type,
name, parent-free region, explicit dependencies and inputs. Values that change with every edit of the
handler or its lock (the artifacts' hashes and archives) are masked: they are proven by
tests/test_lambda_artifact.py. A deliberate change of the graph regenerates the snapshot:
``UPDATE_GRAPH_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_graph_snapshot.py``, and the diff of
``tests/snapshots/graph-prod-everything.json`` is then part of the review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.ops_mocks import run_ops_program

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "graph-prod-everything.json"
EVERYTHING = {
    "domainName": "api.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "cdn": True,
    "waf": True,
    "drillSchedule": "rate(7 days)",
    "alarmEmail": "ops@example.com",
    "lambdaSnapStart": True,
    "xrayTracing": True,
    "smokeAfterDeploy": True,
    # Off: the snapshot stays the graph without the Cognito replica (issue 21 turned it on in
    # Pulumi.prod.yaml); the replica's resources are asserted by tests/test_auth_replica.py.
    "authReplica": False,
}
# The web client's files follow web/ (and whether `make web` added the API reference to it); their
# objects are proven by tests/test_web_client.py.
SITE_FILE = "aws:s3/bucketObjectv2:BucketObjectv2"
# Inputs that follow the handler's code or lock, not the graph's shape.
VOLATILE = {"sourceCodeHash", "code", "triggers", "archive", "environment"}


def _masked(value: Any, key: str = "") -> Any:
    if key in VOLATILE:
        return "<masked>"
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str) and "sha256:" in value:
        return "<names a lock's digest>"  # a layer's description follows its lock
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} characters>"  # policies and bodies are asserted by their own tests
    return value


def graph() -> list[dict[str, Any]]:
    run = run_ops_program(EVERYTHING)
    return sorted(
        (
            {
                "type": r.typ,
                "name": r.name,
                "region": r.region,
                "depends_on": sorted(run.depends_on.get(r.name, [])),
                "retained": r.name in run.retained,
                "inputs": _masked(r.inputs),
            }
            for r in run.resources
            if r.typ != SITE_FILE
        ),
        key=lambda item: (item["type"], item["name"]),
    )


def test_the_registered_graph_is_the_snapshot() -> None:
    now = graph()
    if os.environ.get("UPDATE_GRAPH_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    assert [(r["type"], r["name"]) for r in now] == [(r["type"], r["name"]) for r in recorded]
    for current, kept in zip(now, recorded, strict=True):
        assert current == kept, current["name"]
