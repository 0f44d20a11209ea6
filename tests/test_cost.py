"""tools.cost prices what the program registers (under the mocks), with a source for every price."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
import yaml

from tests.pulumi_harness import run_program
from tools import cost

EVERY_OPTION = {
    "domainName": "api.example.com",
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "cdn": True,
    "waf": True,
    "alarmEmail": "ops@example.com",
    "drillSchedule": "rate(7 days)",
    "xrayTracing": True,
    "lambdaSnapStart": True,
    "authReplica": True,
}


def resources(overrides: dict[str, Any] | None = None, stack: str = "prod") -> list[Any]:
    with contextlib.redirect_stdout(io.StringIO()):
        return run_program(overrides, stack=stack).resources


@pytest.fixture(scope="module")
def prod() -> list[Any]:
    return resources()


def test_every_type_any_configuration_registers_has_a_price_rule_or_a_reason_it_is_free() -> None:
    for stack, overrides in (("prod", None), ("dev", None), ("prod", EVERY_OPTION)):
        assert cost.unpriced_types(resources(overrides, stack)) == set(), (stack, overrides)


def test_a_type_without_a_rule_stops_the_tool_with_what_to_add(prod: list[Any]) -> None:
    stranger = type(prod[0])("aws:ec2/instance:Instance", "box", {}, {}, None, "us-east-1")
    with pytest.raises(cost.CostError, match=r"aws:ec2/instance:Instance.*IDLE_RULES.*prices.yaml"):
        cost.estimate([*prod, stranger], "prod")


def test_every_price_names_its_source_and_the_date_read() -> None:
    table = yaml.safe_load(cost.PRICES.read_text())
    for key, entry in table.items():
        if key == "assumptions":
            assert all(a.get("source") and "value" in a for a in entry.values())
            continue
        assert entry["source"] and entry["unit"] and str(entry["read"]).startswith("20"), key
        assert float(entry["default"]) >= 0


def test_alarms_are_priced_per_metric_metric_math_included(prod: list[Any]) -> None:
    alarms = [r for r in prod if r.typ == "aws:cloudwatch/metricAlarm:MetricAlarm"]
    expected = sum(
        len([q for q in a.inputs.get("metricQueries") or [] if q.get("metric")]) or 1
        for alarm in alarms
        for a in [alarm]
    )
    assert any(a.inputs.get("metricQueries") for a in alarms), "the program has metric-math alarms"
    result = cost.estimate(prod, "prod")
    metrics = sum(item.quantity for item in result.items if item.what == "CloudWatch alarm metrics")
    assert metrics == expected > len(alarms)


def test_idle_cost_includes_the_requests_the_health_checks_send(prod: list[Any]) -> None:
    result = cost.estimate(prod, "prod")
    checks = [r for r in prod if r.typ == "aws:route53/healthCheck:HealthCheck"]
    probes = [item for item in result.items if item.what.startswith("health-check requests")]
    assert len(probes) == 1
    interval = float(checks[0].inputs["requestInterval"])
    assert probes[0].quantity == len(checks) * 8 * cost.SECONDS_PER_MONTH / interval
    assert probes[0].monthly_usd == pytest.approx(
        probes[0].quantity / 1e6 * result.per_million_requests_usd, rel=1e-4
    )
    assert result.idle_monthly_usd == pytest.approx(sum(item.monthly_usd for item in result.items), abs=1e-3)


def test_lambda_duration_follows_the_configured_memory_and_architecture() -> None:
    def duration(overrides: dict[str, Any]) -> float:
        result = cost.estimate(resources(overrides), "prod")
        return sum(i.per_million_usd for i in result.items if i.what.startswith("Lambda duration"))

    base = duration({"lambdaMemoryMb": 512})
    assert duration({"lambdaMemoryMb": 1024}) == pytest.approx(2 * base)
    x86 = duration({"lambdaMemoryMb": 512, "lambdaArchitecture": "x86_64"})
    assert x86 == pytest.approx(base * 0.0000166667 / 0.0000133334)


def test_edge_options_add_their_lines_and_keep_them_off_the_health_check_path() -> None:
    result = cost.estimate(resources(EVERY_OPTION), "prod")
    whats = {item.what for item in result.items}
    assert {"WAF web ACL", "WAF requests", "CloudFront HTTPS requests", "X-Ray traces"} <= whats
    assert any(w.startswith("Lambda SnapStart cache") for w in whats)
    probes = next(i for i in result.items if i.what.startswith("health-check requests"))
    edge = sum(i.per_million_usd for i in result.items if i.what in cost.EDGE_LINES)
    assert probes.unit_price_usd * 1e6 == pytest.approx(result.per_million_requests_usd - edge, rel=1e-4)


def test_json_output_has_the_totals_and_one_entry_per_priced_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--stack", "dev", "--json", "--requests-per-month", "2000000"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["idle_monthly_usd"] > 0 and document["per_million_requests_usd"] > 0
    assert document["monthly_usd"] == pytest.approx(
        document["idle_monthly_usd"] + 2 * document["per_million_requests_usd"], abs=1e-3
    )
    for item in document["items"]:
        assert {"what", "quantity", "unit", "unit_price_usd", "source"} <= item.keys()
        assert item["source"]


def test_bad_inputs_get_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cost.main(["--requests-per-month", "-5"])
    assert "0 or more" in capsys.readouterr().err
    assert cost.main(["--stack", "nosuchstack"]) == 2
    assert "Pulumi.nosuchstack.yaml" in capsys.readouterr().err
