"""AWS's dsql-lint accepts every migration, and the runner's own DDL, as Aurora DSQL SQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from migrations.runner import MIGRATIONS_DIR, TRACKING_TABLE_DDL

DSQL_LINT = shutil.which("dsql-lint") or str(Path(sys.executable).parent / "dsql-lint")


def lint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DSQL_LINT, *map(str, files)], capture_output=True, text=True, check=False)


def test_migrations_pass_dsql_lint() -> None:
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert files, "no migration files found"
    result = lint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tracking_table_ddl_passes_dsql_lint(tmp_path: Path) -> None:
    ddl = tmp_path / "tracking.sql"
    ddl.write_text(TRACKING_TABLE_DDL + ";\n")
    result = lint(ddl)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dsql_lint_does_reject_what_dsql_rejects(tmp_path: Path) -> None:
    """Guards against a linter that passes everything: the recipe's own mistakes must fail."""
    recipe = tmp_path / "recipe.sql"
    recipe.write_text(
        "BEGIN;\nCREATE TABLE users (id SERIAL PRIMARY KEY, email text);\n"
        "INSERT INTO users (email) VALUES ('a@example.com');\nCOMMIT;\n"
    )
    result = lint(recipe)
    assert result.returncode == 1, result.stdout
    assert "SERIAL" in result.stdout + result.stderr
