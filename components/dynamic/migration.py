"""Apply ``migrations/`` to the peered DSQL pair at deploy time, as a Pulumi dynamic resource.

Inputs are the endpoint and region of ONE cluster of the pair (DSQL replicates the schema to the peer)
and the migration files as plain values ``[{"name", "checksum", "sql"}]``, read by the program with
``migrations.runner.load_migrations()``. The resource depends on the peering, so it runs only on an
ACTIVE pair.

create/update  connect as ``admin`` (IAM admin token, TLS verify-full: ``dsql_admin``) and apply the
               pending files with the shared runner in DSQL's dialect (one statement per transaction,
               CREATE INDEX ASYNC waited for, each file recorded with its checksum in
               ``schema_migrations``). Files already recorded are skipped, so a second create or an
               update with no new file changes nothing. A file that fails stops the run with the
               runner's message; the files applied before it stay recorded and the next ``pulumi up``
               continues from the failed one.
read           (``pulumi refresh``) the outputs become what the database records: ``migrations`` lists
               the recorded files (a file recorded with another checksum than the state's, or one the
               state does not know, keeps its recorded checksum, so the next preview names it), and
               ``schema_version`` the last recorded file. A cluster that no longer exists (or is being
               deleted), or a database with no ``schema_migrations`` rows, reads as gone (empty id):
               the next ``pulumi up`` applies the schema again. A cluster that exists but is CREATING
               or UPDATING keeps the last known state (logged); other failures are clear errors.
diff           an update when files are added; an ERROR when a file already applied was edited or
               removed, or a new file sorts before an applied one; a replacement when the endpoint or
               region changes or is not known yet (a new cluster needs the whole schema).
delete         never drops anything: the schema and the data live as long as the clusters do, and
               are deleted only with them. It says so in the log.

``pulumi import`` cannot adopt this resource (the import request carries no serialized provider);
``pulumi up`` adopts an existing schema instead, since recorded files are skipped.

The dialect is always ``Dialect.DSQL`` here: the PostgreSQL adapter exists for the local app and
must never reach a deployment (ASYNC dropped, ``AWS IAM GRANT`` skipped). Tests prove what reaches
DSQL by recording the statements sent through this provider. Connections and AWS clients use the
stack's AWS access setting, received in ``configure``.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic
from psycopg import errors

from components.dynamic import dsql_admin
from components.dynamic.aws_session import AwsAccess, AwsAccessProvider
from components.dynamic.engine import changed_keys, contains_unknown, is_unknown, log_progress
from migrations.runner import Dialect, Migration, MigrationError, applied_checksums, apply_migrations

REPLACE_KEYS = ("endpoint", "region")


def _connect(endpoint: str, region: str, access: AwsAccess) -> Any:
    # Looked up on the module at each call, so a test-only startup hook can route it to PostgreSQL.
    return dsql_admin.admin_connection(endpoint, region, access)


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


def recorded_outputs(props: dict[str, Any], recorded: dict[str, str]) -> dict[str, Any]:
    """The outputs as the database records them: ``migrations`` and ``schema_version``.

    A recorded file the state has with the same checksum keeps its state entry; any other recorded
    file gets its recorded checksum and no SQL, so the next diff reports it (edited or unknown file).
    """
    known = {item["name"]: item for item in props.get("migrations") or [] if isinstance(item, dict)}
    files = [
        known[name]
        if name in known and known[name].get("checksum") == checksum
        else {"name": name, "checksum": checksum, "sql": ""}
        for name, checksum in sorted(recorded.items())
    ]
    return {"migrations": files, "schema_version": files[-1]["name"]}


class SchemaMigrationProvider(AwsAccessProvider):
    """Applies pending migration files; safe to pickle (nothing is kept on ``self`` before ``configure``)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
        failures: list[pulumi.dynamic.CheckFailure] = []
        for key in REPLACE_KEYS:
            value = news.get(key)
            if is_unknown(value):
                continue
            if not isinstance(value, str) or not value.strip():
                failures.append(pulumi.dynamic.CheckFailure(key, f"{key} is required, not {value!r}"))
        files = news.get("migrations")
        if contains_unknown(files):  # checked again at `up`, when every value is known
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
        if not failures and olds.get("migrations") and not contains_unknown(olds.get("migrations")):
            failures += [
                pulumi.dynamic.CheckFailure("migrations", problem)
                for problem in history_problems(olds["migrations"], files)
            ]
        return pulumi.dynamic.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        replaces = changed_keys(olds, news, REPLACE_KEYS)
        if replaces:
            return pulumi.dynamic.DiffResult(changes=True, replaces=replaces)
        old_files, new_files = olds.get("migrations") or [], news.get("migrations")
        if contains_unknown(new_files) or not isinstance(new_files, list):
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

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        endpoint, region = props.get("endpoint"), props.get("region")
        if not endpoint or not region:
            raise MigrationError(
                "the schema migration's properties lack endpoint or region; they come from the "
                "program's inputs (a resource created by `pulumi import` cannot be refreshed)"
            )
        status = dsql_admin.cluster_status(endpoint, region, self.access)
        if status is None or status in dsql_admin.GONE:
            log_progress(f"schema on {endpoint} reads as gone: the cluster is {status or 'not found'}")
            return pulumi.dynamic.ReadResult("", {})
        if status not in dsql_admin.CONNECTABLE:
            log_progress(
                f"cluster behind {endpoint} is {status}: schema_migrations cannot be read now, the last "
                "known state is kept; run `pulumi refresh` again once the cluster is ACTIVE"
            )
            return pulumi.dynamic.ReadResult(id_, props)
        try:
            conn = _connect(endpoint, region, self.access)
        except ConnectionError as exc:
            log_progress(f"schema on {endpoint}: " + dsql_admin.KEPT_WITHOUT_ADMIN.format(reason=exc))
            return pulumi.dynamic.ReadResult(id_, props)
        with conn:
            try:
                recorded = applied_checksums(conn)
            except errors.UndefinedTable:
                recorded = {}
        if not recorded:
            log_progress(f"schema on {endpoint} reads as gone: schema_migrations records no file")
            return pulumi.dynamic.ReadResult("", {})
        return pulumi.dynamic.ReadResult(id_, {**props, **recorded_outputs(props, recorded)})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        log_progress(
            f"schema migrations resource for {props.get('endpoint')} removed from the stack; nothing "
            "was dropped: the tables and data stay until the clusters themselves are deleted"
        )

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        migrations = _migrations(props)
        endpoint, region = props["endpoint"], props["region"]
        log_progress(
            f"connecting to {endpoint} ({region}) as admin to apply {len(migrations)} migration file(s)"
        )
        with _connect(endpoint, region, self.access) as conn:
            applied_now = apply_migrations(conn, migrations, Dialect.DSQL, log=log_progress)
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
