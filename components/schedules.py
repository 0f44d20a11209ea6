"""EventBridge Scheduler expressions, checked before a deployment ever sends one to AWS.

Scheduler accepts ``rate(value unit)``, ``cron(minutes hours day-of-month month day-of-week year)`` and
``at(yyyy-mm-ddThh:mm:ss)``. A failover drill takes a region out of the global record for minutes, so a
drill schedule may fire at most once a day: a rate of at least one day, or a cron expression whose
minutes and hours are single numbers. Anything else is refused here with what is wrong and an example,
rather than by AWS in the middle of ``pulumi up`` (or, worse, accepted and run every minute).
"""

from __future__ import annotations

import re
from datetime import datetime

EXAMPLES = "cron(0 10 ? * TUE *) (Tuesdays 10:00 UTC), rate(7 days) or at(2030-01-15T10:00:00)"

_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_AT = re.compile(r"^at\((?P<when>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#\-LW]+$")
_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 1440}
_DAY_MINUTES = 1440


def check_drill_schedule(expression: str) -> str:
    """The expression, stripped, when it is a valid Scheduler expression that fires at most daily.

    Raises ValueError saying what is wrong; the caller adds the config key and the fix.
    """
    text = expression.strip()
    if rate := _RATE.match(text):
        value, unit = int(rate["value"]), rate["unit"]
        if value < 1:
            raise ValueError(f"{text!r}: the rate must be a positive number")
        if value * _UNIT_MINUTES[unit.rstrip("s")] < _DAY_MINUTES:
            raise ValueError(
                f"{text!r} would take a region out of DNS more than once a day; a drill needs at least "
                "rate(1 day)"
            )
        return text
    if cron := _CRON.match(text):
        _check_cron(text, cron["fields"].split())
        return text
    if at := _AT.match(text):
        try:
            datetime.fromisoformat(at["when"])
        except ValueError:
            raise ValueError(f"{text!r}: {at['when']} is not a date and time") from None
        return text
    raise ValueError(f"{text!r} is not a Scheduler expression (rate(...), cron(...) or at(...))")


def _check_cron(text: str, fields: list[str]) -> None:
    if len(fields) != 6:
        raise ValueError(
            f"{text!r} has {len(fields)} fields; Scheduler's cron has six: minutes hours day-of-month "
            "month day-of-week year"
        )
    minutes, hours, day_of_month, _, day_of_week, _ = fields
    for field in fields:
        if not _CRON_FIELD.match(field):
            raise ValueError(f"{text!r}: the field {field!r} has characters cron does not accept")
    if not (minutes.isdigit() and int(minutes) <= 59 and hours.isdigit() and int(hours) <= 23):
        raise ValueError(
            f"{text!r}: minutes and hours must be single numbers (0-59 and 0-23), so that the drill runs "
            "at most once a day"
        )
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(
            f"{text!r}: exactly one of day-of-month and day-of-week must be '?' (e.g. cron(0 10 ? * TUE *))"
        )
