"""The deployer's policies (bootstrap/policies/deployer-*.json) cover what the edge and operations parts declare: for each CloudFront
distribution, WAF web ACL, state machine, EventBridge rule and target, Scheduler schedule and the drill
identity's Secrets Manager secret of the program with every option on, the API actions the AWS provider calls on it (from the Service
Authorization Reference's action lists for those services), and passing each role only to the service
that assumes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.iam_policy import POLICY_DIR, allows, deployer_context, deployer_policy, load_policy
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ACCOUNT, ProgramRun, Registered

POLICY = deployer_policy()
CONTEXT = deployer_context(ACCOUNT)
EVERYTHING = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "cdn": True, "waf": True,
              "drillSchedule": "rate(7 days)", "alarmEmail": "ops@example.com", "authReplica": True}  # fmt: skip

Need = list[tuple[str, str, dict[str, Any]]]


def _each(actions: str, resource: str) -> Need:
    return [(action, resource, {}) for action in actions.split()]


def _passed(role_arn: str, service: str) -> Need:
    return [("iam:PassRole", role_arn, {"iam:PassedToService": service})]


def _distribution(r: Registered) -> Need:
    return [
        ("cloudfront:CreateDistribution", "*", {}),
        *_each(
            "cloudfront:GetDistribution cloudfront:GetDistributionConfig cloudfront:UpdateDistribution "
            "cloudfront:DeleteDistribution cloudfront:TagResource cloudfront:UntagResource "
            "cloudfront:ListTagsForResource",
            r.outputs["arn"],
        ),
    ]


def _web_acl(r: Registered) -> Need:
    return _each(
        "wafv2:CreateWebACL wafv2:GetWebACL wafv2:UpdateWebACL wafv2:DeleteWebACL wafv2:TagResource "
        "wafv2:UntagResource wafv2:ListTagsForResource",
        r.outputs["arn"],
    )


def _state_machine(r: Registered) -> Need:
    return [
        *_each(
            "states:CreateStateMachine states:DescribeStateMachine states:UpdateStateMachine "
            "states:DeleteStateMachine states:TagResource states:UntagResource states:ListTagsForResource "
            "states:ListStateMachineVersions",
            r.outputs["arn"],
        ),
        ("states:ValidateStateMachineDefinition", "*", {}),
        *_passed(r.inputs["roleArn"], "states.amazonaws.com"),
    ]


def _rule(r: Registered) -> Need:
    return _each(
        "events:PutRule events:DescribeRule events:DeleteRule events:TagResource events:UntagResource "
        "events:ListTagsForResource",
        r.outputs["arn"],
    )


def _target(r: Registered) -> Need:
    rule = f"arn:aws:events:{r.region}:{ACCOUNT}:rule/{r.inputs['rule']}"
    return [
        *_each("events:PutTargets events:ListTargetsByRule events:RemoveTargets", rule),
        *_passed(r.inputs["roleArn"], "events.amazonaws.com"),
    ]


def _schedule(r: Registered) -> Need:
    return [
        *_each(
            "scheduler:CreateSchedule scheduler:GetSchedule scheduler:UpdateSchedule scheduler:DeleteSchedule",
            r.outputs["arn"],
        ),
        *_passed(r.inputs["target"]["roleArn"], "scheduler.amazonaws.com"),
    ]


def _secret(r: Registered) -> Need:
    """terraform-provider-aws internal/service/secretsmanager/secret.go: CreateSecret (with
    AddReplicaRegions and the tags), DescribeSecret and GetResourcePolicy to read, UpdateSecret,
    ReplicateSecretToRegions / RemoveRegionsFromReplication when the replicas change, Tag/UntagResource,
    and on delete RemoveRegionsFromReplication then DeleteSecret. The replica is made by Secrets Manager
    in its region; CreateSecret there is allowed too, should AWS authorize the replica as the caller's."""
    arn = r.outputs["arn"]
    replicas = [arn.replace(f":{r.region}:", f":{replica['region']}:") for replica in r.inputs["replicas"]]
    return [
        *_each("secretsmanager:CreateSecret secretsmanager:TagResource", arn),
        *_each(
            "secretsmanager:DescribeSecret secretsmanager:GetResourcePolicy secretsmanager:UpdateSecret "
            "secretsmanager:ReplicateSecretToRegions secretsmanager:RemoveRegionsFromReplication "
            "secretsmanager:UntagResource secretsmanager:DeleteSecret",
            arn,
        ),
        *[need for replica in replicas for need in _each("secretsmanager:CreateSecret", replica)],
    ]


NEEDS: dict[str, Callable[[Registered], Need]] = {
    "aws:cloudfront/distribution:Distribution": _distribution,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:sfn/stateMachine:StateMachine": _state_machine,
    "aws:cloudwatch/eventRule:EventRule": _rule,
    "aws:cloudwatch/eventTarget:EventTarget": _target,
    "aws:scheduler/schedule:Schedule": _schedule,
    "aws:secretsmanager/secret:Secret": _secret,
}


@pytest.fixture(scope="module")
def program() -> ProgramRun:
    return run_ops_program(EVERYTHING)


def test_every_edge_and_operations_resource_type_is_present(program: ProgramRun) -> None:
    assert set(NEEDS) <= {r.typ for r in program.resources}


def test_the_aws_provider_may_do_what_it_does_for_them(program: ProgramRun) -> None:
    denied = [
        (r.typ, r.name, action, resource)
        for r in program.resources
        if r.typ in NEEDS
        for action, resource, extra in NEEDS[r.typ](r)
        if not allows(POLICY, action, resource, {**CONTEXT, **extra})
    ]
    assert denied == []


def test_roles_go_only_to_the_service_that_assumes_them(program: ProgramRun) -> None:
    machine = program.of_type("aws:sfn/stateMachine:StateMachine")[0]
    for service in ("states.amazonaws.com", "ec2.amazonaws.com"):
        allowed = allows(
            POLICY, "iam:PassRole", machine.inputs["roleArn"], {**CONTEXT, "iam:PassedToService": service}
        )
        assert allowed is (service == "states.amazonaws.com")
    foreign = "arn:aws:states:us-east-1:999999999999:stateMachine:dsql-users-api-prod-x"
    assert not allows(POLICY, "states:UpdateStateMachine", foreign, CONTEXT)
    other_acl = f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/someone-else/abc"
    assert not allows(POLICY, "wafv2:UpdateWebACL", other_acl, CONTEXT)


def test_the_deployer_manages_only_this_projects_secrets_and_reads_none(program: ProgramRun) -> None:
    secret = program.one("aws:secretsmanager/secret:Secret").outputs["arn"]
    # It writes the drill user's password (PutSecretValue, the DrillUser) but may never read it back.
    assert allows(POLICY, "secretsmanager:PutSecretValue", secret, CONTEXT)
    assert not allows(POLICY, "secretsmanager:GetSecretValue", secret, CONTEXT)
    others = {**CONTEXT, "aws:ResourceTag/project": "another-project"}
    for action in ("DeleteSecret", "PutSecretValue", "UpdateSecret", "ReplicateSecretToRegions"):
        assert not allows(POLICY, f"secretsmanager:{action}", secret, others), action
    foreign = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/database-AbCdEf"
    assert not allows(POLICY, "secretsmanager:DeleteSecret", foreign, CONTEXT)
    untagged = {k: v for k, v in CONTEXT.items() if k != "aws:RequestTag/project"}
    assert not allows(POLICY, "secretsmanager:CreateSecret", secret, untagged)


def test_the_previewer_reads_what_the_provider_reads_of_these_parts(program: ProgramRun) -> None:
    previewer = load_policy(POLICY_DIR / "previewer.json")
    reads = [
        (action, resource)
        for r in program.resources
        if r.typ in NEEDS
        for action, resource, _ in NEEDS[r.typ](r)
        if action.split(":")[1].startswith(("Get", "Describe", "List"))
    ]
    assert len(reads) > 10
    assert [read for read in reads if not allows(previewer, *read, {"aws:PrincipalAccount": ACCOUNT})] == []
