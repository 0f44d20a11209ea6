"""Plausible computed outputs for the edge and operations resource types, on top of the shared harness.

tests/pulumi_harness.py answers for the types the rest of the program uses; the ops tests also need the
ARNs and names AWS computes for distributions, web ACLs, state machines, rules, schedules, alarms and
health checks (an ARN of the right shape is what the IAM policies and event patterns are checked
against). ``run_ops_program`` runs the harness with those answers added, changing nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from tests import pulumi_harness
from tests.pulumi_harness import ACCOUNT, ProgramRun, run_program

CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"  # the hosted zone of every CloudFront distribution


def _ops_outputs(typ: str, name: str, region: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    given = inputs.get("name") or name
    if typ == "aws:cloudfront/distribution:Distribution":
        return {
            "id": "E2EXAMPLE0DIST",
            "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/E2EXAMPLE0DIST",
            "domainName": "d111111abcdef8.cloudfront.net",
            "hostedZoneId": CLOUDFRONT_ZONE_ID,
        }
    if typ == "aws:wafv2/webAcl:WebAcl":
        return {"arn": f"arn:aws:wafv2:{region}:{ACCOUNT}:global/webacl/{given}/a1b2c3"}
    if typ == "aws:sfn/stateMachine:StateMachine":
        return {"arn": f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{given}", "name": given}
    if typ == "aws:cloudwatch/eventRule:EventRule":
        return {"arn": f"arn:aws:events:{region}:{ACCOUNT}:rule/{given}", "name": given}
    if typ == "aws:scheduler/schedule:Schedule":
        group = inputs.get("groupName") or "default"
        return {"arn": f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule/{group}/{given}", "name": given}
    if typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
        return {"arn": f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{given}"}
    if typ == "aws:route53/healthCheck:HealthCheck":
        return {"arn": f"arn:aws:route53:::healthcheck/{name}-id"}
    if typ == "aws:route53/record:Record":
        return {"fqdn": inputs.get("name")}
    return None


@contextmanager
def ops_outputs() -> Iterator[None]:
    shared = pulumi_harness._fake_outputs

    def outputs(typ: str, name: str, resource_id: str, region: str | None, inputs: dict) -> dict:
        extra = _ops_outputs(typ, name, region or "us-east-1", inputs)
        return extra if extra is not None else shared(typ, name, resource_id, region, inputs)

    with mock.patch.object(pulumi_harness, "_fake_outputs", outputs):
        yield


def run_ops_program(
    overrides: dict[str, Any] | None = None, *, program: Callable[[], object] | None = None, **options: Any
) -> ProgramRun:
    """``run_program`` with the ops resource types answered like AWS would."""
    with ops_outputs():
        return run_program(overrides, program=program, **options)
