"""Map an IAM role to a database role on one DSQL cluster: ``AWS IAM GRANT <db role> TO '<role ARN>'``.

A DSQL database role other than ``admin`` can only be logged into by IAM identities mapped to it. This
dynamic resource makes that mapping for one region's Lambda role on that region's cluster, connecting
as ``admin`` with an IAM token (``components.dynamic.dsql_admin``). It must run after the migration that
creates the database role (``CREATE ROLE users_api``): give it ``depends_on=[migration]``.

- create: grants unless ``sys.iam_pg_role_mappings`` already holds the pair (so a retried create is a
  no-op, not an error).
- delete: ``AWS IAM REVOKE <db role> FROM '<role ARN>'`` only when the pair is mapped, so running it
  twice is safe.
- diff: any change of the role ARN, database role, endpoint or region replaces the mapping (grant the
  new pair first, then revoke the old one: Pulumi's default create-before-delete order, so the function
  never loses access during a replacement).
- check: the ARN must be an IAM role ARN and the database role a plain lower-case identifier that is not
  ``admin``.

The provider keeps nothing on ``self`` and opens its connection inside each method (it is pickled into
the state and runs in another process). No secret is an input or an output.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider

# arn:<partition>:iam::<account>:role/<optional path/>name (IAM allows [\w+=,.@-] in names and paths).
ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
DB_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DSQL_ENDPOINT = re.compile(r"^[a-z0-9]+\.dsql(-[a-z0-9]+)?\.[a-z0-9-]+\.on\.aws$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
RESERVED_DB_ROLES = frozenset({"admin", "postgres", "public"})
REPLACING_INPUTS = ("role_arn", "db_role", "endpoint", "region")
# What a preview passes for a value not known yet; such values are checked again at `up`.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _connect(endpoint: str, region: str):
    # Imported here: the provider runs in the engine's dynamic-provider process, not at import time.
    from components.dynamic.dsql_admin import admin_connection

    return admin_connection(endpoint, region)


def _is_mapped(conn: Any, db_role: str, role_arn: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s AND arn = %s",
        (db_role, role_arn),
    ).fetchone()
    return row is not None


def _statement(verb: str, db_role: str, role_arn: str) -> str:
    # DDL takes no bind parameters; both values were checked against strict patterns (no quote can
    # appear in either), and the ARN is still written as a quoted literal as DSQL's grammar requires.
    if not DB_ROLE.match(db_role) or not ROLE_ARN.match(role_arn):
        raise ValueError(f"refusing to build AWS IAM {verb} for {db_role!r} / {role_arn!r}")
    preposition = "TO" if verb == "GRANT" else "FROM"
    return f"AWS IAM {verb} {db_role} {preposition} '{role_arn}'"


def check_inputs(news: dict[str, Any]) -> list[CheckFailure]:
    """Every reason the inputs cannot work; empty when they are fine (or not known yet)."""
    failures = []
    rules = {
        "role_arn": (ROLE_ARN, "an IAM role ARN like arn:aws:iam::123456789012:role/name"),
        "db_role": (DB_ROLE, "a lower-case database role name like users_api"),
        "endpoint": (DSQL_ENDPOINT, "a DSQL endpoint like <cluster id>.dsql.us-east-1.on.aws"),
        "region": (REGION, "an AWS region like us-east-1"),
    }
    for key, (pattern, expected) in rules.items():
        value = news.get(key)
        if value == UNKNOWN:
            continue
        if not isinstance(value, str) or not pattern.match(value):
            failures.append(CheckFailure(key, f"{key} is {value!r}; expected {expected}"))
    db_role = news.get("db_role")
    if isinstance(db_role, str) and db_role in RESERVED_DB_ROLES:
        failures.append(
            CheckFailure("db_role", f"db_role {db_role!r} is reserved; map the application's own role")
        )
    endpoint, region = news.get("endpoint"), news.get("region")
    if (
        isinstance(endpoint, str)
        and isinstance(region, str)
        and UNKNOWN not in (endpoint, region)
        and not endpoint.endswith(f".{region}.on.aws")
    ):
        failures.append(CheckFailure("endpoint", f"endpoint {endpoint} is not in region {region}"))
    return failures


class IamGrantProvider(ResourceProvider):
    """CRUD for one IAM-role-to-database-role mapping; see the module docstring."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_inputs(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in REPLACING_INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        role_arn, db_role = props["role_arn"], props["db_role"]
        conn = _connect(props["endpoint"], props["region"])
        try:
            if not _is_mapped(conn, db_role, role_arn):
                conn.execute(_statement("GRANT", db_role, role_arn))
        except Exception as exc:
            raise RuntimeError(
                f"AWS IAM GRANT {db_role} TO '{role_arn}' failed on {props['endpoint']}: {exc}. The "
                f"database role {db_role} must exist first: the mapping depends on the migration "
                "that creates it."
            ) from exc
        finally:
            conn.close()
        outs = {key: props[key] for key in REPLACING_INPUTS}
        return CreateResult(f"{props['region']}/{db_role}/{role_arn}", outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        role_arn, db_role = props["role_arn"], props["db_role"]
        conn = _connect(props["endpoint"], props["region"])
        try:
            if _is_mapped(conn, db_role, role_arn):  # already gone: nothing to do, not an error
                conn.execute(_statement("REVOKE", db_role, role_arn))
        finally:
            conn.close()


class IamRoleGrant(Resource, module="dsql", name="IamRoleGrant"):
    """``AWS IAM GRANT db_role TO role_arn`` on the cluster at ``endpoint``; revoked on delete."""

    role_arn: pulumi.Output[str]
    db_role: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    region: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        role_arn: pulumi.Input[str],
        db_role: pulumi.Input[str],
        endpoint: pulumi.Input[str],
        region: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            IamGrantProvider(),
            name,
            {"role_arn": role_arn, "db_role": db_role, "endpoint": endpoint, "region": region},
            opts,
        )
