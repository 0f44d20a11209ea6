"""Map an IAM role to a database role on one DSQL cluster: ``AWS IAM GRANT <db role> TO '<role ARN>'``.

A DSQL database role other than ``admin`` can only be logged into by IAM identities mapped to it. This
dynamic resource makes that mapping for one region's Lambda role on that region's cluster, connecting
as ``admin`` with an IAM token (``components.dynamic.dsql_admin``). It must run after the migration that
creates the database role (``CREATE ROLE users_api``): give it ``depends_on=[migration]``.

- create: grants unless ``sys.iam_pg_role_mappings`` already holds the pair (so a retried create is a
  no-op, not an error).
- read (``pulumi refresh``): the mapping exists when ``sys.iam_pg_role_mappings`` holds the pair; a
  revoked mapping, or a cluster that no longer exists (or is being deleted), reads as gone (empty id),
  so the refresh shows the drift and the next ``pulumi up`` grants again. A cluster that exists but is
  CREATING or UPDATING keeps the last known state (logged).
- delete: ``AWS IAM REVOKE <db role> FROM '<role ARN>'`` only when the pair is mapped, so running it
  twice is safe.
- diff: any change of the role ARN, database role, endpoint or region replaces the mapping, and so does
  one of them not known yet in a preview (it may change); known equal values change nothing. The new
  pair is granted first, then the old one revoked (Pulumi's default create-before-delete order, so the
  function never loses access during a replacement).
- check: the ARN must be an IAM role ARN and the database role a plain lower-case identifier that is not
  ``admin``; values not known yet (preview) pass.

The two regions' grants run at the same time on one logical database, so ``AWS IAM GRANT``/``REVOKE``
and the mapping lookup are retried on optimistic-concurrency conflicts (SQLSTATE 40001, DSQL's OC000 /
OC001) with bounded backoff and jitter (``migrations.occ``); the lookup runs again before each retry.

``pulumi import`` cannot adopt this resource (the import request carries no serialized provider);
``pulumi up`` adopts an existing mapping instead, since create finds it and grants nothing.

The provider keeps nothing on ``self`` but the AWS access setting its ``configure`` receives, and opens
its connection inside each method (it is pickled into the state and runs in another process). No secret
is an input or an output.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from components.dynamic import dsql_admin
from components.dynamic.aws_session import IAM_ROLE_ARN as ROLE_ARN
from components.dynamic.aws_session import AwsAccess, AwsAccessProvider
from components.dynamic.engine import changed_keys, is_unknown, log_progress
from migrations.occ import retry_occ_conflicts

DB_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DSQL_ENDPOINT = dsql_admin.DSQL_ENDPOINT
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
RESERVED_DB_ROLES = frozenset({"admin", "postgres", "public"})
REPLACING_INPUTS = ("role_arn", "db_role", "endpoint", "region")


def _connect(endpoint: str, region: str, access: AwsAccess) -> Any:
    # Looked up on the module at each call, so a test-only startup hook can route it to PostgreSQL.
    return dsql_admin.admin_connection(endpoint, region, access)


def _is_mapped(conn: Any, db_role: str, role_arn: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s AND arn = %s",
        (db_role, role_arn),
    ).fetchone()
    return row is not None


def _map(conn: Any, verb: str, db_role: str, role_arn: str) -> bool:
    """GRANT or REVOKE unless the mapping is already as wanted; True when a statement was sent.

    Lookup and statement are retried together on conflicts: a conflict means nothing committed, and
    the lookup tells whether a concurrent run already did the work.
    """
    wanted = verb == "GRANT"

    def attempt() -> bool:
        if _is_mapped(conn, db_role, role_arn) == wanted:
            return False
        conn.execute(_statement(verb, db_role, role_arn))
        return True

    return retry_occ_conflicts(attempt, f"AWS IAM {verb} {db_role}", log=log_progress)


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
        if is_unknown(value):
            continue
        if not isinstance(value, str) or not pattern.match(value):
            failures.append(CheckFailure(key, f"{key} is {value!r}; expected {expected}"))
    db_role = news.get("db_role")
    if isinstance(db_role, str) and db_role in RESERVED_DB_ROLES:
        failures.append(
            CheckFailure("db_role", f"db_role {db_role!r} is reserved; map the application's own role")
        )
    endpoint, region = news.get("endpoint"), news.get("region")
    known = not is_unknown(endpoint) and not is_unknown(region)
    if (
        known
        and isinstance(endpoint, str)
        and isinstance(region, str)
        and not endpoint.endswith(f".{region}.on.aws")
    ):
        failures.append(CheckFailure("endpoint", f"endpoint {endpoint} is not in region {region}"))
    return failures


class IamGrantProvider(AwsAccessProvider):
    """CRUD for one IAM-role-to-database-role mapping; see the module docstring."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_inputs(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_keys(olds, news, REPLACING_INPUTS)
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['region']}/{props['db_role']}/{props['role_arn']}", self._grant(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Every input forces a replacement, so the engine never plans an update; should it call one,
        # making sure of the mapping is the only correct answer.
        return UpdateResult(self._grant(news))

    def _grant(self, props: dict[str, Any]) -> dict[str, Any]:
        role_arn, db_role = props["role_arn"], props["db_role"]
        conn = _connect(props["endpoint"], props["region"], self.access)
        try:
            _map(conn, "GRANT", db_role, role_arn)
        except Exception as exc:
            raise RuntimeError(
                f"AWS IAM GRANT {db_role} TO '{role_arn}' failed on {props['endpoint']}: {exc}. The "
                f"database role {db_role} must exist first: the mapping depends on the migration "
                "that creates it."
            ) from exc
        finally:
            conn.close()
        return {key: props[key] for key in REPLACING_INPUTS}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        missing = [key for key in REPLACING_INPUTS if not props.get(key)]
        if missing:
            raise ValueError(
                f"the IAM role grant's properties lack {', '.join(missing)}; they come from the "
                "program's inputs (a resource created by `pulumi import` cannot be refreshed)"
            )
        endpoint, region = props["endpoint"], props["region"]
        status = dsql_admin.cluster_status(endpoint, region, self.access)
        if status is None or status in dsql_admin.GONE:
            log_progress(f"IAM mapping on {endpoint} reads as gone: the cluster is {status or 'not found'}")
            return ReadResult("", {})
        if status not in dsql_admin.CONNECTABLE:
            log_progress(
                f"cluster behind {endpoint} is {status}: its IAM mappings cannot be read now, the last "
                "known state is kept; run `pulumi refresh` again once the cluster is ACTIVE"
            )
            return ReadResult(id_, props)
        try:
            conn = _connect(endpoint, region, self.access)
        except ConnectionError as exc:
            log_progress(f"IAM mapping on {endpoint}: " + dsql_admin.KEPT_WITHOUT_ADMIN.format(reason=exc))
            return ReadResult(id_, props)
        try:
            mapped = retry_occ_conflicts(
                lambda: _is_mapped(conn, props["db_role"], props["role_arn"]), "reading IAM mappings"
            )
        finally:
            conn.close()
        if not mapped:
            log_progress(
                f"IAM mapping {props['db_role']} -> {props['role_arn']} is not in sys.iam_pg_role_mappings "
                f"on {endpoint}: it reads as gone, and `pulumi up` grants it again"
            )
            return ReadResult("", {})
        return ReadResult(id_, {key: props[key] for key in REPLACING_INPUTS})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        role_arn, db_role = props["role_arn"], props["db_role"]
        conn = _connect(props["endpoint"], props["region"], self.access)
        try:
            _map(conn, "REVOKE", db_role, role_arn)  # already gone: nothing to do, not an error
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
