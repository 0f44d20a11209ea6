"""The runbook and drill state machines as the program registers them: valid Amazon States Language
(checked offline by the npm package asl-validator, installed by `npm ci --prefix tests/asl`), every
task's AWS action allowed by the role attached to its state machine on the resources the task uses,
nothing more allowed than the tasks call, and a drill that restores the health check on every path."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.failover_drill import TEST_DNS_ANSWER, UPDATE_HEALTH_CHECK
from components.step_functions import iam_action, sdk_task
from tests.ops_mocks import run_ops_program
from tests.pulumi_harness import ROOT, ProgramRun

VALIDATOR = ROOT / "tests" / "asl" / "node_modules" / ".bin" / "asl-validator"
FULL = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "cdn": True, "waf": True,
        "drillSchedule": "cron(0 10 ? * TUE *)"}  # fmt: skip
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"

# The ARN format of the resource type IAM defines for each action the tasks call (Service
# Authorization Reference: Amazon Route 53 "healthcheck", Amazon SNS "topic"). None: the action
# supports no resource-level permission, only "*".
HEALTH_CHECK_ARN = r"arn:aws:route53:::healthcheck/[^/]+"
RESOURCE_ARN = {
    "route53:GetHealthCheckStatus": HEALTH_CHECK_ARN,
    "route53:UpdateHealthCheck": HEALTH_CHECK_ARN,
    "route53:TestDNSAnswer": None,
    "sns:Publish": r"arn:aws:sns:[a-z0-9-]+:\d{12}:[\w-]+",
    # The drill's own probe, unqualified or with a version or alias (Lambda checks the qualified ARN).
    "lambda:InvokeFunction": r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+(:\*)?",
}


@pytest.fixture(scope="module", params=[False, True], ids=["", "authReplica"])
def full_run(request: pytest.FixtureRequest) -> ProgramRun:
    """Every option on; and again with authReplica, whose drill also checks sign-in at the replica."""
    return run_ops_program({**FULL, "authReplica": True} if request.param else FULL)


@pytest.fixture(scope="module")
def plain_run() -> ProgramRun:
    return run_ops_program()


def machines(run: ProgramRun) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """State machine resource name -> (its definition, the policy of the role it runs as)."""
    roles = {r.outputs["arn"]: r for r in run.of_type("aws:iam/role:Role")}
    policies = {
        p.inputs["role"]: json.loads(p.inputs["policy"]) for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    found = {}
    for machine in run.of_type(STATE_MACHINE):
        role = roles[machine.inputs["roleArn"]]
        found[machine.name] = (json.loads(machine.inputs["definition"]), policies[f"{role.name}-id"])
    return found


def all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those inside Parallel branches and Map item processors."""
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)
        if "ItemProcessor" in state:
            yield from all_states(state["ItemProcessor"])


def health_check_arns(run: ProgramRun) -> list[str]:
    return sorted(h.outputs["arn"] for h in run.of_type("aws:route53/healthCheck:HealthCheck"))


def used_resources(state: dict[str, Any], run: ProgramRun) -> list[str]:
    """The ARNs a task acts on. A health check id chosen at run time (a variable) may be any of the
    stack's health checks, so each of them must be allowed."""
    action = iam_action(state["Resource"])
    if RESOURCE_ARN[action] is None:
        return ["*"]
    if action == "sns:Publish":
        return [state["Arguments"]["TopicArn"]]
    if action == "lambda:InvokeFunction":
        return [state["Arguments"]["FunctionName"]]
    return health_check_arns(run)


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """IAM's evaluation for the policies here: Allow statements only (asserted), wildcards in actions
    (case-insensitive) and resources, no conditions."""
    for statement in policy["Statement"]:
        assert (
            statement["Effect"] == "Allow" and "Condition" not in statement and "NotAction" not in statement
        )
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            return True
    return False


def test_the_program_registers_the_runbooks_and_the_drill(
    full_run: ProgramRun, plain_run: ProgramRun
) -> None:
    assert sorted(machines(full_run)) == [
        "users-api-drill-machine",
        "users-api-ops-incidents-us-east-1-runbook",
        "users-api-ops-incidents-us-east-2-runbook",
    ]
    # Without a domain there is no hosted zone to test answers in: runbooks only.
    assert sorted(machines(plain_run)) == [
        "users-api-ops-incidents-us-east-1-runbook",
        "users-api-ops-incidents-us-east-2-runbook",
    ]


def test_every_definition_is_valid_amazon_states_language(
    full_run: ProgramRun, plain_run: ProgramRun, tmp_path: Path
) -> None:
    assert VALIDATOR.exists(), (
        f"{VALIDATOR.relative_to(ROOT)} is missing: install the validator with `npm ci --prefix tests/asl` "
        "(.ci/run does)"
    )
    paths = []
    for label, run in (("full", full_run), ("plain", plain_run)):
        for name, (definition, _) in machines(run).items():
            path = tmp_path / f"{label}-{name}.json"
            path.write_text(json.dumps(definition))
            paths.append(path)
    # A definition with a dangling transition proves the validator really checks.
    broken = json.loads(paths[0].read_text())
    broken["States"][broken["StartAt"]]["Next"] = "NoSuchState"
    broken_path = tmp_path / "broken.json"
    broken_path.write_text(json.dumps(broken))

    result = subprocess.run(
        [str(VALIDATOR), *[arg for path in paths for arg in ("--json-path", str(path))]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("is valid") == len(paths) == 5, result.stdout
    refused = subprocess.run(
        [str(VALIDATOR), "--json-path", str(broken_path)], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "NoSuchState" in refused.stdout + refused.stderr


def test_task_resources_name_actions_iam_knows(full_run: ProgramRun) -> None:
    for name, (definition, _) in machines(full_run).items():
        for state_name, state in all_states(definition):
            if state["Type"] == "Task":
                assert iam_action(state["Resource"]) in RESOURCE_ARN, (name, state_name)
    assert iam_action(sdk_task("route53", "TestDNSAnswer")) == "route53:TestDNSAnswer"
    assert TEST_DNS_ANSWER == "arn:aws:states:::aws-sdk:route53:testDNSAnswer"
    assert UPDATE_HEALTH_CHECK == "arn:aws:states:::aws-sdk:route53:updateHealthCheck"
    assert iam_action("arn:aws:states:::sns:publish") == "sns:Publish"
    assert iam_action("arn:aws:states:::lambda:invoke") == "lambda:InvokeFunction"


@pytest.mark.parametrize("plain", [False, True], ids=["full", "plain"])
def test_every_task_is_allowed_by_its_own_role_and_nothing_else_is(
    plain: bool, full_run: ProgramRun, plain_run: ProgramRun
) -> None:
    run = plain_run if plain else full_run
    topics = {t.outputs["arn"] for t in run.of_type("aws:sns/topic:Topic")}
    for name, (definition, policy) in machines(run).items():
        called: set[str] = set()
        for state_name, state in all_states(definition):
            if state["Type"] != "Task":
                continue
            action = iam_action(state["Resource"])
            called.add(action)
            for resource in used_resources(state, run):
                assert allows(policy, action, resource), (name, state_name, action, resource)
            if action == "sns:Publish":
                assert state["Arguments"]["TopicArn"] in topics  # the stack's own topic
        # Exactly the called actions, none broader: no wildcard actions, "*" only where IAM has no type.
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for action in actions:
                assert "*" not in action and action in called, (name, action)
                if "*" in resources:
                    assert RESOURCE_ARN[action] is None, (name, action)
                else:
                    pattern = RESOURCE_ARN[action]
                    assert pattern and all(re.fullmatch(pattern, r) for r in resources), (
                        name,
                        action,
                        resources,
                    )


def test_health_check_arns_are_global_route53_arns(full_run: ProgramRun) -> None:
    _, policy = machines(full_run)["users-api-drill-machine"]
    [update] = [s for s in policy["Statement"] if s["Action"] == "route53:UpdateHealthCheck"]
    assert update["Resource"] == health_check_arns(full_run)
    assert all(re.fullmatch(r"arn:aws:route53:::healthcheck/[\w-]+", arn) for arn in update["Resource"])


def test_runbooks_read_health_only_where_health_alarms_live(full_run: ProgramRun) -> None:
    found = machines(full_run)
    east_1, east_1_policy = found["users-api-ops-incidents-us-east-1-runbook"]
    east_2, east_2_policy = found["users-api-ops-incidents-us-east-2-runbook"]
    assert "ReadHealthChecks" in east_1["States"] and "ReadHealthChecks" not in east_2["States"]
    assert [s["Action"] for s in east_2_policy["Statement"]] == ["sns:Publish"]
    assert {s["Action"] for s in east_1_policy["Statement"]} == {
        "sns:Publish",
        "route53:GetHealthCheckStatus",
    }
    items = east_1["States"]["ReadHealthChecks"]["Items"]
    checks = {
        h.inputs["tags"]["region"]: h.name + "-id"
        for h in full_run.of_type("aws:route53/healthCheck:HealthCheck")
    }
    assert items == [{"region": region, "healthCheckId": checks[region]} for region in sorted(checks)]
    health_alarms = sorted(a.inputs["name"] for a in full_run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                           if a.inputs.get("metricName") == "HealthCheckStatus")  # fmt: skip
    condition = east_1["States"]["IsHealthCheckAlarm"]["Choices"][0]["Condition"]
    assert condition == f"{{% $alarm in {json.dumps(health_alarms)} %}}"
    message = east_1["States"]["Notify"]["Arguments"]["Message"]
    assert "#dashboards/dashboard/dsql-users-api-prod-users-api-ops" in message


# ---------------------------------------------------------------- the drill restores on every path


def edges(state: dict[str, Any]) -> list[str]:
    targets = [state.get("Next"), state.get("Default")]
    targets += [choice["Next"] for choice in state.get("Choices", [])]
    targets += [catch["Next"] for catch in state.get("Catch", [])]
    return [t for t in targets if t]


def restores(state: dict[str, Any]) -> bool:
    return (
        state.get("Type") == "Task"
        and state.get("Resource") == UPDATE_HEALTH_CHECK
        and state["Arguments"].get("Inverted") is False
    )


def test_the_drill_inverts_only_inside_a_parallel_state_that_catches_everything(full_run: ProgramRun) -> None:
    definition, _ = machines(full_run)["users-api-drill-machine"]
    top = definition["States"]
    inverting = [n for n, s in all_states(definition) if s.get("Resource") == UPDATE_HEALTH_CHECK
                 and s["Arguments"].get("Inverted") is True]  # fmt: skip
    assert inverting == ["Invert"]
    [holder] = [n for n, s in top.items() if any("Invert" in b["States"] for b in s.get("Branches", []))]
    catches = top[holder]["Catch"]
    assert [c["ErrorEquals"] for c in catches] == [["States.ALL"]]
    assert restores(top[catches[0]["Next"]])
    assert restores(top[top[holder]["Next"]])


def test_no_path_from_the_inversion_ends_without_a_restore(full_run: ProgramRun) -> None:
    definition, _ = machines(full_run)["users-api-drill-machine"]
    top = definition["States"]
    [holder] = [n for n, s in top.items() if s["Type"] == "Parallel"]
    seen, pending = set(), [holder]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        state = top[name]
        assert state["Type"] not in ("Succeed", "Fail") and not state.get("End"), f"{name} ends unrestored"
        pending += [n for n in edges(state) if not restores(top[n])]


def test_every_task_after_the_inversion_has_a_catch_all(full_run: ProgramRun) -> None:
    definition, _ = machines(full_run)["users-api-drill-machine"]
    top = definition["States"]
    [holder] = [n for n, s in top.items() if s["Type"] == "Parallel"]
    seen, pending = set(), [holder]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        state = top[name]
        if state["Type"] in ("Task", "Parallel", "Map"):
            assert any(c["ErrorEquals"] == ["States.ALL"] for c in state.get("Catch", [])), name
        pending += edges(state)
    assert {"Restore", "ProbeRestore", "ReportSuccess", "RestoreAfterFailure", "ReportRestoreFailed"} <= seen


def test_the_drill_refuses_unless_every_region_serves_itself_first(full_run: ProgramRun) -> None:
    definition, _ = machines(full_run)["users-api-drill-machine"]
    top = definition["States"]
    assert top["PickRegion"]["Default"] == "UnknownRegion" and top["UnknownRegion"]["Type"] == "Fail"
    for region in ("us-east-1", "us-east-2"):
        assert top["PickRegion"]["Choices"] and top[f"Target {region}"]["Next"] == "CheckBaseline"
    baseline = top["CheckBaseline"]
    assert baseline["Type"] == "Map" and baseline["Items"] == '{% ["us-east-1", "us-east-2"] %}'
    probe = baseline["ItemProcessor"]["States"]["ProbeRegion"]
    assert probe["Resource"] == "arn:aws:states:::lambda:invoke"
    assert probe["Arguments"]["Payload"]["target"] == "{% $states.input %}"
    # With cdn on, the probe's DNS asks the origin's latency record; its HTTPS goes through the domain.
    assert probe["Arguments"]["Payload"]["regionRecord"] == "_region.origin.api.example.com"
    assert probe["Arguments"]["Payload"]["domain"] == "api.example.com"
    assert top["IsBaselineHealthy"]["Choices"] == [
        {
            "Condition": "{% $count($baseline[dns.region != target or https.region != target]) = 0 %}",
            "Next": "Drill",
        }
    ]
    assert top["IsBaselineHealthy"]["Default"] == "ReportRefused"
