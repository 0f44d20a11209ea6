"""SmokeCheck: `pulumi up` runs the acceptance checks against both regions once they are deployed.

One pulumi-command ``local.Command`` runs ``python -m tools.smoke`` on the deploying machine with the
two regional invoke URLs and, with Cognito, the stack's user pool and smoke app client (a throwaway
admin user, deleted again). The checks are those of the smoke command: /health in both regions, a write
in one region read from the other, concurrent writes in both, a duplicate refused, everything cleaned
up. A failed check fails the update, so a broken deployment never looks finished.

It runs again whenever what it checks changes (the function code, the layer, the schema, the URLs) and
never in a preview (a Command runs only on create). The command line holds no secret: the smoke user's
password is made and used inside the smoke process, and its token never reaches the output.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
from pulumi_command import local

from components.config import PROJECT

ROOT = Path(__file__).resolve().parents[1]


def project_python(executable: str = sys.executable, root: Path = ROOT) -> str:
    """The program's interpreter, relative to the project when it lives there (``.venv/bin/python``).

    Relative, so the command (stored in the state) is the same on every checkout and a fresh clone
    previews no change; the Command runs from the project directory, where Pulumi runs the program.
    """
    path = Path(executable)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return "python3"


def smoke_command(
    python: str,
    invoke_urls: Sequence[str],
    user_pool_id: str | None = None,
    smoke_client_id: str | None = None,
    aws_profile: str | None = None,
    assume_role_arn: str | None = None,
) -> str:
    """The shell command that runs the smoke checks against ``invoke_urls``."""
    words = [python, "-m", "tools.smoke", *invoke_urls]
    if user_pool_id and smoke_client_id:
        words += ["--user-pool-id", user_pool_id, "--client-id", smoke_client_id]
    if aws_profile:
        words += ["--aws-profile", aws_profile]
    if assume_role_arn:
        words += ["--assume-role-arn", assume_role_arn]
    return shlex.join(words)


@dataclass(frozen=True)
class SmokeCheckArgs:
    """What to check and as whom."""

    invoke_urls: Sequence[pulumi.Input[str]]
    """The two regional invoke URLs."""
    triggers: Sequence[pulumi.Input[str]]
    """Values whose change means a new deployment to check (code and layer hashes, schema version)."""
    user_pool_id: pulumi.Input[str] | None = None
    """The stack's user pool (authMode cognito); None for an open API."""
    smoke_client_id: pulumi.Input[str] | None = None
    """The pool's smoke app client (ADMIN_USER_PASSWORD_AUTH only)."""
    aws_profile: str | None = None
    """Stack key awsProfile: the Cognito admin calls use the deployment's identity."""
    assume_role_arn: str | None = None
    """Stack key awsAssumeRoleArn."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must exist before the checks run: the regional apps."""


class SmokeCheck(pulumi.ComponentResource):
    """The acceptance checks, run by `pulumi up` after both regions are deployed."""

    stdout: pulumi.Output[str]
    """The smoke command's report (one PASS/FAIL line per check)."""

    def __init__(self, name: str, args: SmokeCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROJECT}:ops:SmokeCheck", name, None, opts)
        python = project_python()
        create = pulumi.Output.all(
            pulumi.Output.all(*args.invoke_urls), args.user_pool_id, args.smoke_client_id
        ).apply(
            lambda values: smoke_command(
                python, values[0], values[1], values[2], args.aws_profile, args.assume_role_arn
            )
        )
        run = local.Command(
            f"{name}-run",
            create=create,
            triggers=list(args.triggers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.stdout = run.stdout
        self.register_outputs({"stdout": self.stdout})
