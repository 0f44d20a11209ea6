"""IAM policy documents as data: their statements, and which actions and resources a statement allows.

Pure functions, no SDK. Action names match case-insensitively with IAM's wildcards (``*`` any run of
characters, ``?`` one character); ``NotAction``/``NotResource`` allow everything they do not list, so
they count as broad.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from .props import items, json_document, mapping

ADMIN_CONNECT = "dsql:DbConnectAdmin"
# The actions AWS's own DSQL policies list (AmazonAuroraDSQLFullAccess). A pattern with a service part
# is judged by that part alone, so an action added later is still caught; this list only decides
# service-less patterns such as "*" or "d*", and whether a NotAction excludes every dsql action.
DSQL_ACTIONS = (
    "dsql:CreateCluster", "dsql:GetCluster", "dsql:UpdateCluster", "dsql:DeleteCluster",
    "dsql:ListClusters", "dsql:TagResource", "dsql:UntagResource", "dsql:ListTagsForResource",
    ADMIN_CONNECT, "dsql:DbConnect", "dsql:PutMultiRegionProperties", "dsql:PutWitnessRegion",
    "dsql:AddPeerCluster", "dsql:RemovePeerCluster", "dsql:GetVpcEndpointServiceName",
    "dsql:StartBackupJob", "dsql:StartRestoreJob",
    "dsql:AnActionAddedLater",  # a NotAction must exclude the whole service, not today's list
)  # fmt: skip
LAMBDA_SERVICES = ("lambda.amazonaws.com", "edgelambda.amazonaws.com")
# AWS managed policies known to allow dsql actions, DbConnectAdmin included, on every resource.
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "AmazonAuroraDSQLFullAccess",
                          "AmazonAuroraDSQLConsoleFullAccess")  # fmt: skip
_MANAGED_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(?:.+/)?(?P<name>[^/]+)$")


@dataclass(frozen=True)
class Statement:
    """One statement, normalised: every field a tuple, ``None`` where the key is absent."""

    label: str
    """How a message names it: ``statement 'Sid'`` or ``statement 2``."""
    allows: bool
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...]
    not_resources: tuple[str, ...] | None
    principal_services: tuple[str, ...]


def statements(document: Any, what: str) -> list[Statement]:
    """The statements of a JSON text or object document; raises DocumentError naming ``what``."""
    parsed = json_document(document, what)
    found = []
    for index, raw in enumerate(items(parsed.get("Statement")), start=1):
        statement = mapping(raw)
        sid = statement.get("Sid")
        found.append(
            Statement(
                label=f"statement {sid!r}" if sid else f"statement {index}",
                allows=str(statement.get("Effect", "")).lower() == "allow",
                actions=_strings(statement.get("Action")),
                not_actions=_strings(statement["NotAction"]) if "NotAction" in statement else None,
                resources=_strings(statement.get("Resource")),
                not_resources=_strings(statement["NotResource"]) if "NotResource" in statement else None,
                principal_services=_strings(mapping(statement.get("Principal")).get("Service")),
            )
        )
    return found


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in items(value))


@cache
def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern such as ``dsql:Db*`` names ``action``."""
    return _wildcard(pattern).fullmatch(action) is not None


def reaches_dsql(pattern: str) -> bool:
    """Whether an action pattern names at least one dsql action."""
    service, colon, _ = pattern.partition(":")
    if colon:
        return matches(service, "dsql")
    return any(matches(pattern, action) for action in DSQL_ACTIONS)


def dsql_grants(statement: Statement) -> tuple[str, ...]:
    """The dsql action patterns an Allow statement grants (``NotAction`` described as such)."""
    if not statement.allows:
        return ()
    if statement.not_actions is not None:
        excludes_dsql = any(
            all(matches(pattern, action) for action in DSQL_ACTIONS) for pattern in statement.not_actions
        )
        return () if excludes_dsql else (f"every action but {', '.join(statement.not_actions)} (NotAction)",)
    return tuple(pattern for pattern in statement.actions if reaches_dsql(pattern))


def grants(statement: Statement, action: str) -> bool:
    """Whether an Allow statement grants ``action`` on some resource."""
    if not statement.allows:
        return False
    if statement.not_actions is not None:
        return not any(matches(pattern, action) for pattern in statement.not_actions)
    return any(matches(pattern, action) for pattern in statement.actions)


def on_every_resource(statement: Statement) -> bool:
    """``Resource: "*"``, or a ``NotResource`` (everything but what it lists)."""
    return statement.not_resources is not None or "*" in statement.resources


def trusts_lambda(assume_role_policy: Any) -> bool:
    """Whether a role's trust policy lets the Lambda service assume it (an unreadable one does not)."""
    try:
        found = statements(assume_role_policy, "the trust policy")
    except ValueError:
        return False
    return any(
        statement.allows
        and any(service in LAMBDA_SERVICES for service in statement.principal_services)
        and any(matches(pattern, "sts:AssumeRole") for pattern in statement.actions)
        for statement in found
    )


def broad_managed_policy(arn: Any) -> str | None:
    """The name of an AWS managed policy that allows dsql on every resource, if ``arn`` is one."""
    found = _MANAGED_POLICY_ARN.match(arn) if isinstance(arn, str) else None
    if found and found["name"] in BROAD_MANAGED_POLICIES:
        return found["name"]
    return None
