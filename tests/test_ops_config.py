"""The edge and drill config keys: defaults, parsing, and every misconfiguration refused by key name."""

from __future__ import annotations

import pytest

from components.config import PROJECT, ConfigError, parse_config
from components.schedules import check_drill_schedule

BASE = {"primaryRegion": "us-east-1", "secondaryRegion": "us-east-2", "witnessRegion": "us-west-2"}
DOMAIN = {"domainName": "api.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}


def test_edge_and_drill_are_off_by_default() -> None:
    config = parse_config(BASE)
    assert (config.cdn, config.waf, config.drill_schedule) == (False, False, None)
    assert config.waf_rate_limit == 2000


def test_edge_and_drill_keys_parse() -> None:
    config = parse_config(
        {
            **BASE,
            **DOMAIN,
            "cdn": "true",
            "waf": "true",
            "wafRateLimit": "300",
            "drillSchedule": " rate(7 days) ",
        }
    )
    assert (config.cdn, config.waf, config.waf_rate_limit) == (True, True, 300)
    assert config.drill_schedule == "rate(7 days)"
    assert parse_config({**BASE, "drillSchedule": ""}).drill_schedule is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"cdn": "true"}, ["cdn", "domainName", "hostedZoneId"]),
        ({"drillSchedule": "rate(1 day)"}, ["drillSchedule", "domainName", "hostedZoneId"]),
        ({**DOMAIN, "waf": "true"}, ["waf", "cdn"]),
        ({"cdn": "yes"}, ["cdn"]),
        ({**DOMAIN, "cdn": "true", "waf": "true", "wafRateLimit": "9"}, ["wafRateLimit"]),
        ({**DOMAIN, "drillSchedule": "every tuesday"}, ["drillSchedule"]),
    ],
)
def test_misconfigurations_name_every_key_involved(raw: dict[str, str], named: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({**BASE, **raw})
    message = str(refused.value)
    assert message.startswith(f"{PROJECT}:{named[0]} ")
    for key in named[1:]:
        assert key in message


@pytest.mark.parametrize(
    "expression",
    ["rate(1 day)", "rate(7 days)", "rate(24 hours)", "rate(1440 minutes)", "cron(0 10 ? * TUE *)",
     "cron(30 3 1 * ? *)", "cron(0 9 ? * MON-FRI *)", "at(2030-01-15T10:00:00)"],
)  # fmt: skip
def test_valid_drill_schedules_at_most_daily_are_accepted(expression: str) -> None:
    assert check_drill_schedule(f"  {expression} ") == expression


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("rate(5 minutes)", "more than once a day"),
        ("rate(23 hours)", "more than once a day"),
        ("rate(0 days)", "positive"),
        ("rate(1 week)", "not a Scheduler expression"),
        ("cron(0 10 * * ?)", "six"),
        ("cron(*/5 10 ? * TUE *)", "single numbers"),
        ("cron(0 * ? * TUE *)", "single numbers"),
        ("cron(0 24 ? * TUE *)", "single numbers"),
        ("cron(0 10 * * TUE *)", "exactly one"),
        ("cron(0 10 ? * TUE; *)", "characters"),
        ("at(2030-02-30T10:00:00)", "not a date"),
        ("at(2030-01-15 10:00)", "not a Scheduler expression"),
        ("0 10 * * 2", "not a Scheduler expression"),
    ],
)
def test_invalid_drill_schedules_say_what_is_wrong(expression: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_drill_schedule(expression)
