"""The GitHub Actions workflows: valid for actionlint, actions pinned to commit SHAs, least privilege, and
each job provides what the commands it runs need from the machine (.ci/system-requirements)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from components.config import LAMBDA_RUNTIMES
from scripts.build_artifacts import PYTHON_VERSIONS
from tests.pulumi_harness import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def actionlint() -> str:
    """The actionlint binary installed by requirements-dev.txt (in this interpreter's bin folder)."""
    beside_python = Path(sys.executable).parent / "actionlint"
    found = str(beside_python) if beside_python.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: run `make test` (it installs requirements-dev.txt)")
    return found


def load(name: str) -> dict:
    return parse((ROOT / ".github" / "workflows" / name).read_text())


def parse(text: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); keep it as "on".
    document = yaml.safe_load(text)
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_both_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "preview.yml"}


def test_actionlint_accepts_every_workflow() -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_really_checking(tmp_path: Path) -> None:
    """A broken workflow must fail, or the test above would pass vacuously."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ nope.value }}\n"
    )
    result = subprocess.run(
        [actionlint(), "-no-color", str(broken)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml"])
def test_every_action_is_pinned_to_a_commit_sha(name: str) -> None:
    uses = [step["uses"] for step in steps(load(name)) if "uses" in step]
    assert uses
    for action in uses:
        assert PINNED.match(action), f"{name}: {action} is not pinned to a 40-character commit SHA"


def test_ci_runs_the_tests_on_every_push_with_read_only_permissions() -> None:
    ci = load("ci.yml")
    assert "push" in ci["on"] and ci["on"]["push"] is None  # every branch
    assert ci["permissions"] == {"contents": "read"}
    assert any(step.get("run") == "bash .ci/run" for step in steps(ci))


def test_preview_runs_pulumi_preview_on_pull_requests_with_oidc_and_least_privilege() -> None:
    preview = load("preview.yml")
    assert "pull_request" in preview["on"]
    assert preview["permissions"] == {}
    [job] = preview["jobs"].values()
    assert job["permissions"] == {"id-token": "write", "contents": "read", "pull-requests": "write"}
    by_action = {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}
    credentials = by_action["aws-actions/configure-aws-credentials"]["with"]
    assert "role-to-assume" in credentials
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(credentials)  # no stored keys
    pulumi = by_action["pulumi/actions"]["with"]
    assert pulumi["command"] == "preview"
    assert pulumi["comment-on-pr"] is True
    assert "prod" in pulumi["stack-name"]
    # The credentials step must come before the preview that uses them.
    order = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    assert order.index("aws-actions/configure-aws-credentials") < order.index("pulumi/actions")


def test_preview_installs_the_lock_and_builds_no_artifact_by_hand() -> None:
    """A fresh checkout previews with the install alone: the program builds the Lambda artifacts itself,
    with the runtime's Python, which the job sets up beside the program's."""
    [job] = load("preview.yml")["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    # The web client's site is completed as `make web` does (it is uploaded as it is); nothing else.
    [web] = [run for run in runs if "scripts.build_web" in run]
    assert "npm ci --prefix web-vendor --ignore-scripts" in web
    assert any("actions/setup-node@" in step.get("uses", "") for step in job["steps"])
    assert not [run for run in runs if run != web and ("build" in run or "make layer" in run)]
    [install] = [run for run in runs if " -r requirements.txt" in run]
    assert "--require-hashes" in install and "python -m venv .venv" in install
    assert not missing_from(job)  # every Python the build needs, the tools' one as the default


# --- what the jobs provide against what their commands need -------------------------------------------

SYSTEM_SCRIPT = ROOT / ".ci" / "system.sh"
SYSTEM_LIST = ROOT / ".ci" / "system-requirements"
OUTPUT_REFERENCE = re.compile(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}")


@dataclass(frozen=True)
class MachineNeeds:
    """.ci/system-requirements, as the workflows and .ci/run read it."""

    pythons: tuple[str, ...]
    """Every Python, in the list's order: the last is the default ``python``."""
    lambda_pythons: tuple[str, ...]
    tools_python: str
    node: str
    debs: tuple[str, ...]


def system(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SYSTEM_SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def github_outputs(text: str) -> dict[str, str]:
    """What a step's ``>> "$GITHUB_OUTPUT"`` sets: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for value_line in lines:
                if value_line == delimiter:
                    break
                block.append(value_line)
            else:
                raise AssertionError(f"output {name}: no closing {delimiter}")
            outputs[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@cache
def system_outputs() -> dict[str, str]:
    result = system("github-outputs")
    assert result.returncode == 0, result.stderr
    return github_outputs(result.stdout)


@cache
def machine_needs() -> MachineNeeds:
    def lines(*args: str) -> tuple[str, ...]:
        result = system(*args)
        assert result.returncode == 0, result.stderr
        return tuple(result.stdout.split())

    [tools_python] = lines("pythons", "tools")
    debs = tuple(
        line.split()[1]
        for line in (raw.split("#", 1)[0] for raw in SYSTEM_LIST.read_text().splitlines())
        if line.split()[:1] == ["deb"]
    )
    return MachineNeeds(
        pythons=lines("pythons"),
        lambda_pythons=lines("pythons", "lambda"),
        tools_python=tools_python,
        node=system_outputs()["node-version"],
        debs=debs,
    )


def runs_make_test(step: dict) -> bool:
    return bool(re.search(r"(^|\s)(bash \.ci/run|\.ci/run|make test)\b", step.get("run", "")))


def runs_program(step: dict) -> bool:
    """pulumi preview/up builds the Lambda artifacts (the program calls the builder)."""
    if step.get("uses", "").startswith("pulumi/actions@"):
        return step.get("with", {}).get("command") in ("preview", "up", "update")
    return bool(re.search(r"\bpulumi (preview|up)\b", step.get("run", "")))


def resolve(value: object, earlier_steps: list[dict]) -> str:
    """A step input with ``${{ steps.ID.outputs.NAME }}`` replaced by what that earlier step sets:
    only a step that appends ``.ci/system.sh github-outputs`` to $GITHUB_OUTPUT is understood."""
    text = str(value)

    def replace(match: re.Match[str]) -> str:
        step_id, name = match.groups()
        [step] = [step for step in earlier_steps if step.get("id") == step_id] or [{}]
        if ".ci/system.sh github-outputs" not in step.get("run", ""):
            raise AssertionError(f"steps.{step_id}.outputs.{name}: no earlier step {step_id} sets it")
        return system_outputs()[name]

    return OUTPUT_REFERENCE.sub(replace, text)


def missing_from(job: dict, needs: MachineNeeds | None = None) -> list[str]:
    """What the job's commands need from the machine and its steps do not provide before them."""
    needs = needs or machine_needs()
    problems: list[str] = []
    pythons: list[str] = []
    node: str | None = None
    debs: set[str] = set()
    for index, step in enumerate(job["steps"]):
        uses, run = step.get("uses", ""), step.get("run", "")
        wanted: list[tuple[str, bool]] = []  # (what, provided)
        if runs_make_test(step) or runs_program(step):
            purpose = "make test" if runs_make_test(step) else "the program's build (Lambda artifacts)"
            for version in needs.pythons:
                role = "Lambda bytecode" if version in needs.lambda_pythons else "tools"
                wanted.append(
                    (f"Python {version} ({role}) set up by actions/setup-python", version in pythons)
                )
            wanted.append(
                (
                    f"Python {needs.tools_python} as the default python (listed last)",
                    pythons[-1:] == [needs.tools_python],
                )
            )
            if runs_make_test(step):
                major = int(node.split(".")[0].removeprefix("v")) if node and node[0].isdigit() else 0
                wanted.append(
                    (f"Node.js {needs.node} or later set up by actions/setup-node", major >= int(needs.node))
                )
                if ".ci/run" not in run:  # .ci/run installs the Debian packages itself
                    wanted += [(f"Debian package {deb}", deb in debs) for deb in needs.debs]
            problems += [f"step {index + 1} needs {what} for {purpose}" for what, ok in wanted if not ok]
        if uses.startswith("actions/setup-python@"):
            pythons = resolve(step.get("with", {}).get("python-version", ""), job["steps"][:index]).split()
        if uses.startswith("actions/setup-node@"):
            node = resolve(step.get("with", {}).get("node-version", ""), job["steps"][:index]).strip()
        if re.search(r"(^|\s)(bash )?\.ci/system\.sh install\b", run):
            debs |= set(needs.debs)
        for line in run.splitlines():
            if re.search(r"\bapt-get\b", line) and not re.search(r"\bsudo\b", line):
                problems.append(
                    f"step {index + 1}: apt-get without sudo fails as a hosted runner's user: {line.strip()}"
                )
            install = re.search(r"\bapt-get install\b(.*)", line)
            if install:
                debs |= {word for word in install.group(1).split() if not word.startswith("-")}
    return problems


def test_the_list_names_what_the_code_needs() -> None:
    """The one list agrees with the code: the builder's runtimes, the tools' Python, the npm locks' Node.js,
    and the Debian packages the Makefile and the PostgreSQL tests use."""
    needs = machine_needs()
    assert needs.lambda_pythons == PYTHON_VERSIONS
    assert {f"python{version}" for version in needs.lambda_pythons} == set(LAMBDA_RUNTIMES)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert needs.tools_python == pyproject["tool"]["mypy"]["python_version"]
    assert needs.pythons[-1] == needs.tools_python  # the default python runs the program and the tools
    assert set(needs.pythons) == {*needs.lambda_pythons, needs.tools_python}
    locks = [path for path in ROOT.rglob("package-lock.json") if "node_modules" not in path.parts]
    assert locks
    for lock in locks:
        for name, package in json.loads(lock.read_text())["packages"].items():
            for minimum in re.findall(r">=\s*v?(\d+)", package.get("engines", {}).get("node", "")):
                assert int(needs.node) >= int(minimum), f"{lock}: {name} needs Node.js {minimum}"
    assert {"make", "postgresql", "nodejs", "npm"} <= set(needs.debs)


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml"])
def test_each_job_provides_what_its_commands_need(name: str) -> None:
    for job in load(name)["jobs"].values():
        assert not missing_from(job), f"{name}: " + "; ".join(missing_from(job))


def test_ci_installs_system_packages_through_sudo_before_the_tests() -> None:
    [job] = load("ci.yml")["jobs"].values()
    runs = [step.get("run", "") for step in job["steps"]]
    assert runs.index("bash .ci/system.sh install") < runs.index("bash .ci/run")
    assert job["runs-on"].startswith("ubuntu-")  # a hosted runner: an unprivileged user with sudo
    assert 10 <= job["timeout-minutes"] <= 30


def test_ci_caches_uv_and_npm_keyed_on_the_locks() -> None:
    [job] = load("ci.yml")["jobs"].values()
    by_action = {step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step}
    node = by_action["actions/setup-node"]
    assert node["cache"] == "npm" and "package-lock.json" in node["cache-dependency-path"]
    uv = by_action["actions/cache"]
    assert uv["path"] == "~/.cache/uv"
    assert "hashFiles('**/requirements*.txt')" in uv["key"]  # every lock: the program's, Lambda's, tools'


# What ci.yml was before it read .ci/system-requirements: the check must catch it.
CI_WITH_ONE_PYTHON = """
on: push
jobs:
  test:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065
        with:
          python-version: "3.11"
      - run: |
          if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
            sudo apt-get update -qq
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
          fi
      - run: bash .ci/run
"""


def test_the_check_catches_a_job_that_sets_up_only_the_tools_python() -> None:
    [job] = parse(CI_WITH_ONE_PYTHON)["jobs"].values()
    problems = "\n".join(missing_from(job))
    needs = machine_needs()
    for version in needs.lambda_pythons:
        assert f"Python {version} (Lambda bytecode)" in problems
    assert f"Node.js {needs.node}" in problems
    assert f"Python {needs.tools_python} (tools)" not in problems


def test_the_check_catches_apt_without_sudo_and_packages_a_direct_make_test_lacks() -> None:
    job = parse(CI_WITH_ONE_PYTHON.replace("sudo apt-get", "apt-get").replace("bash .ci/run", "make test"))
    problems = "\n".join(missing_from(job["jobs"]["test"]))
    assert "apt-get without sudo" in problems
    assert "Debian package make" in problems and "Debian package postgresql" not in problems


def test_the_check_catches_a_preview_without_the_runtimes_pythons() -> None:
    preview = load("preview.yml")
    [job] = preview["jobs"].values()
    for step in job["steps"]:
        if step.get("uses", "").startswith("actions/setup-python@"):
            step["with"]["python-version"] = "3.11"
    problems = "\n".join(missing_from(job))
    assert "Python 3.13 (Lambda bytecode)" in problems and "the program's build" in problems


def test_an_output_reference_needs_the_step_that_sets_it() -> None:
    with pytest.raises(AssertionError, match=r"steps\.nope\.outputs\.python-versions"):
        resolve("${{ steps.nope.outputs.python-versions }}", [])


# --- .ci/system.sh installs what is missing: as root, through sudo, or says why it cannot ----------------


@pytest.fixture
def fake_machine(tmp_path: Path) -> dict[str, Path]:
    """A list with one missing package, and id/sudo/apt-get stand-ins that record their calls; apt-get
    "installs" by creating the package's marker."""
    marker = tmp_path / "installed" / "marker"
    (tmp_path / "list").write_text(
        f"python 3.13 lambda\nnode 20\ndeb make make\ndeb fake-pkg {marker}  # x\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    scripts = {
        "id": 'echo "$FAKE_UID"',
        "sudo": f'echo "sudo $*" >> {calls}; [ "$FAKE_SUDO" = yes ] || exit 1; [ "$1" = -n ] && shift; "$@"',
        "apt-get": f'echo "apt-get $*" >> {calls}; case "$*" in install*) mkdir -p {marker.parent}; touch {marker};; esac',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"list": tmp_path / "list", "bin": bin_dir, "calls": calls, "marker": marker}


def run_install(fake: dict[str, Path], uid: int, sudo: bool) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{fake['bin']}:{os.environ['PATH']}",
        "SYSTEM_REQUIREMENTS": str(fake["list"]),
        "FAKE_UID": str(uid),
        "FAKE_SUDO": "yes" if sudo else "no",
    }
    return system("install", env=env)


def test_missing_lists_only_packages_none_of_whose_markers_exists(fake_machine: dict[str, Path]) -> None:
    result = system("missing", env={**os.environ, "SYSTEM_REQUIREMENTS": str(fake_machine["list"])})
    assert result.returncode == 0 and result.stdout.split() == ["fake-pkg"]


def test_install_as_root_runs_apt_get_directly(fake_machine: dict[str, Path]) -> None:
    result = run_install(fake_machine, uid=0, sudo=False)
    assert result.returncode == 0, result.stderr
    assert fake_machine["calls"].read_text().splitlines() == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends fake-pkg",
    ]


def test_install_as_a_user_goes_through_passwordless_sudo(fake_machine: dict[str, Path]) -> None:
    result = run_install(fake_machine, uid=1001, sudo=True)
    assert result.returncode == 0, result.stderr
    assert "through sudo" in result.stdout
    calls = fake_machine["calls"].read_text().splitlines()
    assert (
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fake-pkg"
        in calls
    )
    assert fake_machine["marker"].exists()


def test_install_without_root_or_sudo_says_how_to_fix_it(fake_machine: dict[str, Path]) -> None:
    result = run_install(fake_machine, uid=1001, sudo=False)
    assert result.returncode == 1
    assert "fake-pkg" in result.stderr and "passwordless sudo" in result.stderr
    assert "sudo apt-get install fake-pkg" in result.stderr
    assert "apt-get" not in fake_machine["calls"].read_text().replace("sudo -n true", "")


def test_nothing_missing_installs_nothing(fake_machine: dict[str, Path]) -> None:
    fake_machine["marker"].parent.mkdir()
    fake_machine["marker"].touch()
    result = run_install(fake_machine, uid=1001, sudo=False)
    assert result.returncode == 0 and not fake_machine["calls"].exists()


# --- the interpreters actions/setup-python provides -------------------------------------------------------


def test_the_builder_compiles_with_the_loader_path_setup_python_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setup-python's Pythons are built with --enable-shared and found through the LD_LIBRARY_PATH it
    exports: the bytecode compiler must get it (found when .ci/run ran as a runner-like user), and
    nothing else of the caller's environment."""
    from scripts.build_artifacts import RuntimePython, _compile

    seen = tmp_path / "environment"
    python = tmp_path / "python3.13"
    python.write_text(f"#!/bin/sh\nenv > {seen}\n")
    python.chmod(0o755)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/hostedtoolcache/Python/3.13.0/x64/lib")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    _compile(RuntimePython(python, "3.13.0", "cpython-313"), tmp_path, "/opt/python")
    environment = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert environment["LD_LIBRARY_PATH"] == "/opt/hostedtoolcache/Python/3.13.0/x64/lib"
    assert environment["PYTHONHASHSEED"] == "0"
    assert "PYTHONPATH" not in environment
