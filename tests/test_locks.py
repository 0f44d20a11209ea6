"""The dependency locks: each consistent with its `.in` file, fully hashed, portable, and in agreement.

Offline and fast: it reads the files only (and the installed distributions' versions). `make lock`
regenerates them with `uv pip compile --universal --generate-hashes`; see the Makefile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.pulumi_harness import ROOT

# (the human-edited input, the generated lock)
LOCKS = {
    "program": (ROOT / "requirements.in", ROOT / "requirements.txt"),
    "local": (ROOT / "requirements-local.in", ROOT / "requirements-local.txt"),
    "dev": (ROOT / "requirements-dev.in", ROOT / "requirements-dev.txt"),
    "lambda": (ROOT / "handler" / "requirements.in", ROOT / "handler" / "requirements.txt"),
    "probe": (ROOT / "probe" / "requirements.in", ROOT / "probe" / "requirements.txt"),
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]
    line: str


def logical_lines(path: Path) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    joined, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    if current.strip():
        joined.append(current.strip())
    return joined


def read_lock(path: Path) -> dict[str, list[Pin]]:
    """Pins by canonical name (a name may appear twice with exclusive markers, e.g. by Python version)."""
    pins: dict[str, list[Pin]] = {}
    for line in logical_lines(path):
        hashes = tuple(HASH.findall(line))
        requirement = Requirement(HASH.sub("", line).strip())
        [specifier] = list(requirement.specifier)
        assert specifier.operator == "==", f"{path.name}: {line.split()[0]} is not pinned with =="
        name = canonicalize_name(requirement.name)
        pins.setdefault(name, []).append(Pin(name, specifier.version, requirement.marker, hashes, line))
    return pins


def read_input(path: Path) -> list[Requirement]:
    """Top-level requirements of a `.in` file, following its `-r` includes."""
    found: list[Requirement] = []
    for line in logical_lines(path):
        if line.startswith("-r "):
            found += read_input(path.parent / line[3:].strip())
        elif line.startswith("-"):
            pytest.fail(f"{path.name}: unexpected option line {line!r} (constraints belong in `make lock`)")
        else:
            found.append(Requirement(line))
    return found


def applies(pin: Pin, environment: dict[str, str]) -> bool:
    return pin.marker is None or pin.marker.evaluate(environment)


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_top_level_requirement_is_pinned_within_its_range(name: str) -> None:
    source, lock = LOCKS[name]
    pins = read_lock(lock)
    for requirement in read_input(source):
        key = canonicalize_name(requirement.name)
        assert key in pins, f"{lock.name} has no pin for {requirement.name}: run `make lock`"
        for pin in pins[key]:
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock.name} pins {pin.name}=={pin.version}, outside {source.name}'s {requirement}: "
                "run `make lock`"
            )
        if key == "psycopg" and "binary" in requirement.extras:  # the wheel with libpq inside
            assert "psycopg-binary" in pins, f"{lock.name} lacks psycopg-binary"


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_pin_is_hashed_and_the_lock_names_no_url_or_path(name: str) -> None:
    _, lock = LOCKS[name]
    text = lock.read_text()
    assert "://" not in text, f"{lock.name} contains a URL"
    for option in ("--index-url", "--extra-index-url", "--find-links", "-e ", "--editable", "file:"):
        assert option not in text, f"{lock.name} contains {option}"
    absolute = re.findall(r"(?:^|\s)(?:/|~/|[A-Za-z]:\\)\S*", text)
    assert not absolute, f"{lock.name} names a machine path: {absolute[:3]}"
    assert text.splitlines()[1].strip() == "#    make lock", "regenerate with `make lock`"
    for pins in read_lock(lock).values():
        for pin in pins:
            assert pin.hashes, f"{lock.name}: {pin.name}=={pin.version} has no --hash"


def test_a_package_has_one_version_in_every_lock() -> None:
    """The dev lock is resolved first and constrains the others, so the sets never disagree."""
    versions: dict[tuple[str, str], set[str]] = {}
    for _, lock in LOCKS.values():
        for name, pins in read_lock(lock).items():
            for pin in pins:
                versions.setdefault((name, str(pin.marker)), set()).add(pin.version)
    disagreeing = {key: found for key, found in versions.items() if len(found) > 1}
    assert not disagreeing


def test_the_dev_lock_holds_every_other_lock() -> None:
    dev = read_lock(LOCKS["dev"][1])
    for name in ("program", "local", "lambda", "probe"):
        missing = set(read_lock(LOCKS[name][1])) - set(dev)
        assert not missing, f"{name} lock pins {missing}, which the dev lock lacks"


def test_the_local_set_stays_small() -> None:
    """`make dev` installs only this: no Pulumi, AWS SDK or test tool (issue 11: 648 MB with them)."""
    local = set(read_lock(LOCKS["local"][1]))
    assert not local & {"pulumi", "pulumi-aws", "boto3", "botocore", "moto", "mypy", "schemathesis"}
    assert {"psycopg", "psycopg-binary", "aws-lambda-powertools", "pyjwt", "cryptography"} <= local


def test_make_lock_regenerates_every_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlock:\n", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    for source, lock in LOCKS.values():
        relative_in, relative_lock = source.relative_to(ROOT).as_posix(), lock.relative_to(ROOT).as_posix()
        assert f"{relative_in} -o {relative_lock}" in " ".join(recipe.split()), relative_in
    assert "--generate-hashes" in makefile and "--universal" in makefile


def test_the_installed_packages_are_the_dev_locks_pins() -> None:
    """`make test` installs requirements-dev.txt; a version that differs means the venv is stale."""
    environment = dict(default_environment())
    stale = []
    for name, pins in read_lock(LOCKS["dev"][1]).items():
        for pin in pins:
            if not applies(pin, environment):
                continue
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                stale.append(f"{name} missing")
                continue
            if Version(installed) != Version(pin.version):
                stale.append(f"{name} {installed} != {pin.version}")
    assert not stale, f"the virtualenv differs from requirements-dev.txt (run `make install-dev`): {stale}"
