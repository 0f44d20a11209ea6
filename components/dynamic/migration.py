"""Apply ``migrations/`` to the peered DSQL pair at deploy time, as a Pulumi dynamic resource.

Inputs are the endpoint and region of ONE cluster of the pair (DSQL replicates the schema to the peer)
and the migration files as plain values ``[{"name", "checksum", "sql"}]``, read by the program with
``migrations.runner.load_migrations()``. The resource depends on the peering, so it runs only on an
ACTIVE pair.

create/update  connect as ``admin`` (IAM admin token, TLS verify-full: ``dsql_admin``) and apply the
               pending files with the shared runner (one statement per transaction, CREATE INDEX ASYNC
               waited for, each file recorded with its checksum in ``schema_migrations``). Files
               already recorded are skipped, so a second create or an update with no new file
               changes nothing. A file that fails stops the run with the runner's message; the files
               applied before it stay recorded and the next ``pulumi up`` continues from the failed one.
diff           an update when files are added; an ERROR when a file already applied was edited or
               removed, or a new file sorts before an applied one; a replacement when the endpoint or
               region changes (a new cluster needs the whole schema).
delete         never drops anything: the schema and the data live as long as the clusters do, and
               are deleted only with them. It says so in the log.

The connection and the dialect are module-level (``_connect``, ``DIALECT``) so a test can point the
provider at a local PostgreSQL (``Dialect.POSTGRES``); the provider is pickled by reference to this
module, so nothing a test changes here reaches the deployed state.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic

from components.dynamic.dsql_admin import admin_connection
from components.dynamic.engine import is_unknown, log_progress
from migrations.runner import Dialect, Migration, MigrationError, apply_migrations

DIALECT = Dialect.DSQL


def _connect(endpoint: str, region: str):
    return admin_connection(endpoint, region)


def migration_inputs(migrations: list[Migration]) -> list[dict[str, str]]:
    """The files as the resource's plain inputs."""
    return [{"name": m.name, "checksum": m.checksum, "sql": m.sql} for m in migrations]


def _migrations(props: dict[str, Any]) -> list[Migration]:
    return [Migration(item["name"], item["sql"]) for item in props.get("migrations") or []]


def history_problems(old_files: list[dict[str, Any]], new_files: list[dict[str, Any]]) -> list[str]:
    """Why the new list of files cannot follow the applied one (empty when it can)."""
    problems: list[str] = []
    new_by_name = {item["name"]: item for item in new_files}
    for item in old_files:
        new = new_by_name.get(item["name"])
        if new is None:
            problems.append(
                f"{item['name']} was applied but is missing from migrations/; restore the file "
                "(applied migrations are never deleted)"
            )
        elif new["checksum"] != item["checksum"]:
            problems.append(
                f"{item['name']} was edited after it was applied (checksum {item['checksum'][:12]}, now "
                f"{new['checksum'][:12]}); applied migrations are immutable: revert the edit and put the "
                "change in a new numbered file"
            )
    applied = {item["name"] for item in old_files}
    last_applied = max(applied, default="")
    for item in new_files:
        if item["name"] not in applied and item["name"] < last_applied:
            problems.append(
                f"{item['name']} is new but sorts before {last_applied}, which is already applied; "
                "give it the next free number"
            )
    return problems


class SchemaMigrationProvider(pulumi.dynamic.ResourceProvider):
    """Applies pending migration files; stateless, safe to pickle (nothing is kept on ``self``)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures: list[pulumi.dynamic.CheckFailure] = []
        for key in ("endpoint", "region"):
            value = news.get(key)
            if value is None or (not is_unknown(value) and not str(value).strip()):
                failures.append(pulumi.dynamic.CheckFailure(key, f"{key} is required"))
        files = news.get("migrations")
        if is_unknown(files):
            return pulumi.dynamic.CheckResult(news, failures)
        if not isinstance(files, list) or not files:
            failures.append(
                pulumi.dynamic.CheckFailure("migrations", "migrations must be a non-empty list of files")
            )
            return pulumi.dynamic.CheckResult(news, failures)
        names: list[str] = []
        for index, item in enumerate(files):
            if not isinstance(item, dict) or not {"name", "checksum", "sql"} <= set(item):
                failures.append(
                    pulumi.dynamic.CheckFailure(
                        "migrations", f"migrations[{index}] must have name, checksum and sql"
                    )
                )
                continue
            names.append(item["name"])
            if Migration(item["name"], item["sql"]).checksum != item["checksum"]:
                failures.append(
                    pulumi.dynamic.CheckFailure(
                        "migrations", f"{item['name']}: checksum does not match its SQL text"
                    )
                )
        if names != sorted(names) or len(set(names)) != len(names):
            failures.append(
                pulumi.dynamic.CheckFailure("migrations", "migrations must be unique and in name order")
            )
        if not failures and olds.get("migrations") and not is_unknown(olds.get("migrations")):
            failures += [
                pulumi.dynamic.CheckFailure("migrations", problem)
                for problem in history_problems(olds["migrations"], files)
            ]
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = [key for key in ("endpoint", "region") if olds.get(key) != news.get(key)]
        if replaces:
            return pulumi.dynamic.DiffResult(changes=True, replaces=replaces)
        old_files, new_files = olds.get("migrations") or [], news.get("migrations")
        if is_unknown(new_files) or not isinstance(new_files, list):
            return pulumi.dynamic.DiffResult(changes=True, replaces=[])
        problems = history_problems(old_files, new_files)
        if problems:
            raise MigrationError("; ".join(problems))
        added = [item["name"] for item in new_files if item["name"] not in {o["name"] for o in old_files}]
        return pulumi.dynamic.DiffResult(changes=bool(added), replaces=[])

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._apply(props)
        return pulumi.dynamic.CreateResult(f"schema@{props['endpoint']}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._apply(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        log_progress(
            f"schema migrations resource for {props.get('endpoint')} removed from the stack; nothing "
            "was dropped: the tables and data stay until the clusters themselves are deleted"
        )

    @staticmethod
    def _apply(props: dict[str, Any]) -> dict[str, Any]:
        migrations = _migrations(props)
        endpoint, region = props["endpoint"], props["region"]
        log_progress(
            f"connecting to {endpoint} ({region}) as admin to apply {len(migrations)} migration file(s)"
        )
        with _connect(endpoint, region) as conn:
            applied_now = apply_migrations(conn, migrations, DIALECT, log=log_progress)
        return {
            **props,
            "applied_now": applied_now,
            "schema_version": migrations[-1].name if migrations else "",
        }


class SchemaMigration(pulumi.dynamic.Resource, module="dsql", name="SchemaMigration"):
    """The schema of the DSQL pair, brought up to date with ``migrations/``.

    Depend on it (``depends_on=[migration]``) for anything that needs the tables or the app role.
    """

    schema_version: pulumi.Output[str]
    """Name of the last migration file applied, e.g. ``0003_create_app_role.sql``."""
    applied_now: pulumi.Output[list[str]]
    """Files applied by the last create or update (empty when the schema was already up to date)."""

    def __init__(
        self,
        name: str,
        *,
        endpoint: pulumi.Input[str],
        region: pulumi.Input[str],
        migrations: list[Migration],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "endpoint": endpoint,
            "region": region,
            "migrations": migration_inputs(migrations),
            "schema_version": None,
            "applied_now": None,
        }
        super().__init__(SchemaMigrationProvider(), name, props, opts)
