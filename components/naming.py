"""Physical AWS names that always fit their service's limit.

Names read ``<project>-<stack>-<part>``, so the console, the alarm e-mail and the runbook say which stack
a resource belongs to. A long stack name or region can push such a name past a service's limit (an
EventBridge rule name has at most 64 characters, a state machine's 80: botocore's service models), and
the service would refuse it half way through `pulumi up`. ``fitted`` leaves a name that fits unchanged
(so no deployed resource is renamed) and otherwise keeps its beginning and replaces the rest with a
hash of the whole name: stable from run to run, and different names stay different.
"""

from __future__ import annotations

import hashlib

import pulumi

# botocore's ``max`` of each name shape this program gives (tests/test_name_limits.py reads the models).
EVENT_RULE_NAME_MAX = 64
SCHEDULE_NAME_MAX = 64
LAMBDA_FUNCTION_NAME_MAX = 64
STATE_MACHINE_NAME_MAX = 80
WEB_ACL_NAME_MAX = 128
USER_POOL_NAME_MAX = 128
ALARM_NAME_MAX = 255
DASHBOARD_NAME_MAX = 255
# CloudFront's API reference (the models give no max): an origin access control's name 64 characters,
# a response headers policy's 128.
ORIGIN_ACCESS_CONTROL_NAME_MAX = 64
RESPONSE_HEADERS_POLICY_NAME_MAX = 128
HASH_LENGTH = 8


def fitted(name: str, limit: int) -> str:
    """``name`` if it fits ``limit``; otherwise its first characters, ``-`` and 8 hex of its sha256."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:HASH_LENGTH]
    return f"{name[: limit - HASH_LENGTH - 1].rstrip('-')}-{digest}"


def stack_name(part: str, limit: int) -> str:
    """``<project>-<stack>-<part>``, fitted to ``limit``."""
    return fitted(f"{pulumi.get_project()}-{pulumi.get_stack()}-{part}", limit)
