"""Lambda's CPU share for one process tree, with the Linux cgroup CPU controller.

Lambda gives a function CPU in proportion to its memory: 1,769 MB is the equivalent of one vCPU (AWS
Lambda Developer Guide, "Configuring Lambda function memory"). A cgroup whose CPU quota is
``memory / 1769`` of each period caps whatever runs in it to that share of one CPU (more than one CPU
above 1,769 MB). cgroup v1 (``cpu`` controller: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) and v2
(``cpu.max``) are both handled; creating a cgroup needs root (or a delegated subtree).
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ONE_VCPU_MB = 1769
# The kernel's default CFS period is 100 ms: a process may run at full speed for its whole quota, then
# waits for the rest of the period. Lambda does not document its period. A ~1 ms request sees a 100 ms
# period as all or nothing (full speed, or a stall of up to (1 - share) x 100 ms); 20 ms makes the share
# a rate at the scale of a request (and keeps 128 MB's quota above the kernel's 1 ms minimum). Callers may
# pass another period to measure the difference; a period too short for the share is lengthened.
PERIOD_US = 20_000
MIN_QUOTA_US = 1000  # the kernel refuses shorter quotas

HOW_TO_FIX = (
    "run it as root on Linux with the cgroup CPU controller available: cgroup v1 with the `cpu` controller "
    "mounted (e.g. /sys/fs/cgroup/cpu), or cgroup v2 with `cpu` listed in cgroup.controllers of a hierarchy "
    "you may write to (as a user: `systemd-run --user --scope -p Delegate=yes make bench-power`); in a "
    "container, start it with the host's cgroup namespace writable (docker run --privileged)"
)


class CpuShareUnavailable(RuntimeError):
    """No cgroup CPU controller this process can use; the message says why and how to fix it."""


def cpus_for(memory_mb: int) -> float:
    """The CPUs Lambda gives ``memory_mb``: memory / 1769."""
    return memory_mb / ONE_VCPU_MB


@dataclass(frozen=True)
class Controller:
    version: int
    """1 or 2."""
    root: Path
    """The directory new cgroups are made in."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append((fields[2], fields[1], set(fields[3].split(","))))
    return found


def find_controller() -> Controller:
    """The cgroup CPU controller this process can create cgroups under, or CpuShareUnavailable."""
    if not Path("/proc/mounts").is_file():
        raise CpuShareUnavailable(f"no /proc/mounts: this is not Linux; {HOW_TO_FIX}")
    reasons = []
    for fstype, mountpoint, options in _mounts():
        root = Path(mountpoint)
        if fstype == "cgroup" and "cpu" in options:
            if (root / "cpu.cfs_quota_us").is_file() and os.access(root, os.W_OK):
                return Controller(1, root)
            reasons.append(f"cgroup v1 cpu controller at {root} is not writable")
        elif fstype == "cgroup2":
            own = _own_v2_group(root)
            controllers = (own / "cgroup.controllers").read_text().split() if own.is_dir() else []
            if "cpu" not in controllers:
                reasons.append(f"cgroup v2 at {root} does not offer the cpu controller")
            elif not os.access(own, os.W_OK):
                reasons.append(f"cgroup v2 group {own} is not writable")
            else:
                return Controller(2, own)
    found = "; ".join(reasons) or "no cgroup filesystem is mounted"
    raise CpuShareUnavailable(f"cannot cap the CPU share ({found}): {HOW_TO_FIX}")


def _own_v2_group(mountpoint: Path) -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mountpoint / line[3:].lstrip("/")
    return mountpoint


@contextmanager
def cpu_share(
    cpus: float, controller: Controller | None = None, period_us: int = PERIOD_US
) -> Iterator[Callable[[], None]]:
    """A new cgroup capped to ``cpus`` CPUs; yields a ``preexec_fn`` that moves a child process into it.

    The cgroup is removed on exit (its processes must have ended by then).
    """
    controller = controller or find_controller()
    group = controller.root / f"power-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    period_us = max(period_us, math.ceil(MIN_QUOTA_US / cpus))
    quota = round(period_us * cpus)
    try:
        group.mkdir()
    except OSError as exc:
        raise CpuShareUnavailable(f"cannot create the cgroup {group} ({exc.strerror}): {HOW_TO_FIX}") from exc
    try:
        if controller.version == 1:
            (group / "cpu.cfs_period_us").write_text(str(period_us))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            if "cpu" not in (controller.root / "cgroup.subtree_control").read_text().split():
                (controller.root / "cgroup.subtree_control").write_text("+cpu")
            (group / "cpu.max").write_text(f"{quota} {period_us}")
    except OSError as exc:
        group.rmdir()
        raise CpuShareUnavailable(
            f"cannot set the CPU quota of {group} ({exc.strerror}): {HOW_TO_FIX}"
        ) from exc
    try:
        procs = str(group / "cgroup.procs")

        def enter() -> None:
            # Runs in the forked child before exec: only a write, no Python-level locks.
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))

        yield enter
    finally:
        # Fails only while a process is still inside; nothing else to do then.
        with contextlib.suppress(OSError):
            group.rmdir()
