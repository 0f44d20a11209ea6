"""A small IAM evaluator for identity policies, and what each recorded AWS call needs from one (tests only).

``allows(policy, action, resource, context)`` answers as IAM does for one identity-based policy:
an explicit Deny wins, else any matching Allow allows, else the request is denied. A statement matches
when one of its actions matches (case-insensitive, ``*`` and ``?`` wildcards), one of its resources
matches (case-sensitive, the same wildcards, ``${...}`` policy variables replaced from the request
context) and every condition holds. Supported conditions: StringEquals, StringLike, ArnEquals,
ArnLike, StringNotEquals and Bool (``true``/``false``, compared without case), each with one value or a
list (any may match), the ``IfExists`` suffix, the ``ForAllValues:``/``ForAnyValue:`` prefixes for
multi-valued keys (a context value may be a list), and policy variables in condition values. A negated
operator holds when the key is absent, as in IAM; ``ForAllValues`` holds for an absent key,
``ForAnyValue`` does not. ``NotAction``, ``NotResource`` and other operators are refused, so a policy
never passes through an unsupported path.

``load_policy(*paths)`` reads several policy files into one document: IAM evaluates every identity
policy of a principal together, so the union of their statements answers as they do.

``required_permissions(call, account)`` turns one recorded call of the dynamic providers into the IAM
actions and resource ARNs AWS authorizes it with (Service Authorization Reference; UpdateCluster with
peers needs the multi-region actions too, on the cluster and on each peer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.aws_calls import AwsCall

SUPPORTED_OPERATORS = ("StringEquals", "StringLike", "ArnEquals", "ArnLike", "StringNotEquals", "Bool")
NEGATED_OPERATORS = ("StringNotEquals",)
SET_PREFIXES = ("ForAllValues:", "ForAnyValue:")
ROOT = Path(__file__).resolve().parents[1]
POLICY_DIR = ROOT / "bootstrap" / "policies"
# The deployer's identity policies, one managed policy per file (each within IAM's 6,144 characters).
DEPLOYER_FILES = (
    "deployer-iam.json",
    "deployer-data.json",
    "deployer-edge.json",
    "deployer-identity-ops.json",
    "deployer-web.json",
)
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class UnsupportedPolicy(ValueError):
    """The policy uses an element this evaluator does not implement."""


def wildcard(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (colons included), ``?`` exactly one."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE if ignore_case else 0)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _substitute(pattern: str, context: Mapping[str, Any]) -> str | None:
    """The pattern with its policy variables replaced; None when a variable is not in the context."""
    missing = [name for name in _VARIABLE.findall(pattern) if not isinstance(context.get(name), str)]
    if missing:
        return None
    return _VARIABLE.sub(lambda m: str(context[m.group(1)]), pattern)


def _value_matches(base: str, pattern: str, actual: str, context: Mapping[str, Any]) -> bool:
    resolved = _substitute(pattern, context)
    if resolved is None:
        return False  # an unresolved policy variable matches nothing
    if base == "Bool":
        return resolved.lower() == actual.lower()
    return bool(wildcard(resolved).match(actual)) if base.endswith("Like") else resolved == actual


def _condition_holds(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    for operator, tests in conditions.items():
        prefix = next((p for p in SET_PREFIXES if operator.startswith(p)), "")
        base = operator.removeprefix(prefix).removesuffix("IfExists")
        if base not in SUPPORTED_OPERATORS:
            raise UnsupportedPolicy(f"condition operator {operator} is not supported by this evaluator")
        negated = base in NEGATED_OPERATORS
        positive = base.replace("Not", "")
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                if operator.endswith("IfExists") or negated or prefix == "ForAllValues:":
                    continue
                return False
            values = _as_list(actual)
            matched = [
                any(
                    _value_matches(positive, str(pattern), str(value), context)
                    for pattern in _as_list(expected)
                )
                for value in values
            ]
            holds = all(matched) if prefix == "ForAllValues:" else any(matched)
            if holds is negated:
                return False
    return True


def _matches(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any]) -> bool:
    for element in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
        if element in statement:
            raise UnsupportedPolicy(f"{statement.get('Sid', '?')}: {element} is not supported here")
    if not any(wildcard(a, ignore_case=True).match(action) for a in _as_list(statement["Action"])):
        return False
    patterns = [_substitute(r, context) for r in _as_list(statement["Resource"])]
    if not any(p is not None and wildcard(p).match(resource) for p in patterns):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


PROJECT = "dsql-users-api"


def boundary_arn(account: str) -> str:
    """The permissions boundary the bootstrap creates (bootstrap/policies/boundary.json)."""
    return f"arn:aws:iam::{account}:policy/{PROJECT}-boundary"


def deployer_context(account: str, stack: str = "prod") -> dict[str, Any]:
    """A request of the deployer role on this project's resources: every resource the program creates
    carries the provider's default tags (project, stack); the bootstrap tags the role with the stack,
    domain and zone it deploys; every role the program creates carries the boundary."""
    return {
        "aws:PrincipalAccount": account,
        "aws:ResourceTag/project": PROJECT,
        "aws:RequestTag/project": PROJECT,
        "aws:ResourceTag/stack": stack,
        f"aws:PrincipalTag/{PROJECT}-stack": stack,
        f"aws:PrincipalTag/{PROJECT}-domain": "api.example.com",
        f"aws:PrincipalTag/{PROJECT}-zone": "Z0123456789ABCDEFGHIJ",
        "iam:PermissionsBoundary": boundary_arn(account),
    }


def load_policy(*paths: Path) -> dict[str, Any]:
    """Several policy files as one document (the union of their statements)."""
    statements: list[Any] = []
    for path in paths:
        statements += _as_list(json.loads(path.read_text())["Statement"])
    return {"Version": "2012-10-17", "Statement": statements}


def deployer_policy() -> dict[str, Any]:
    """Every policy the bootstrap attaches to the deployer role, as one document."""
    return load_policy(*(POLICY_DIR / name for name in DEPLOYER_FILES))


def allows(
    policy: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any] | None = None
) -> bool:
    """Whether ``policy`` allows ``action`` on ``resource`` for a request with ``context``."""
    context = dict(context or {})
    allowed = False
    for statement in _as_list(policy["Statement"]):
        if _matches(statement, action, resource, context):
            if statement["Effect"] == "Deny":
                return False
            allowed = allowed or statement["Effect"] == "Allow"
    return allowed


def cluster_arn(region: str, account: str, identifier: str) -> str:
    return f"arn:aws:dsql:{region}:{account}:cluster/{identifier}"


def required_permissions(call: AwsCall, account: str) -> list[tuple[str, str]]:
    """``[(IAM action, resource ARN)]`` that AWS checks for ``call``; KeyError for an unmapped call."""
    params = call.params
    if call.name == "dsql:GetCluster":
        return [("dsql:GetCluster", cluster_arn(call.region, account, params["identifier"]))]
    if call.name == "dsql:UpdateCluster":
        own = cluster_arn(call.region, account, params["identifier"])
        needed = [("dsql:UpdateCluster", own)]
        properties = params.get("multiRegionProperties")
        if properties:
            needed += [("dsql:PutMultiRegionProperties", own), ("dsql:GetCluster", own)]
            if "witnessRegion" in properties:
                needed.append(("dsql:PutWitnessRegion", own))
            peers: Sequence[str] = properties.get("clusters") or []
            if peers:
                needed += [("dsql:AddPeerCluster", own)] + [("dsql:AddPeerCluster", peer) for peer in peers]
                # UpdateCluster documents RemovePeerCluster on this pattern whenever peers are set.
                needed.append(("dsql:RemovePeerCluster", f"arn:aws:dsql:*:{account}:cluster/*"))
        return needed
    if call.name == "dsql:DbConnectAdmin":
        identifier, _, region = str(params["Hostname"]).split(".")[:3]
        return [("dsql:DbConnectAdmin", cluster_arn(region, account, identifier))]
    raise KeyError(f"no IAM mapping for {call.name}; add it to tests/iam_policy.required_permissions")
