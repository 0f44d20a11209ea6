"""What every benchmark prints with its figures: the machine they were taken on, and percentiles."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPU(s), {cpu_model()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )


def percentile(samples: list[float], p: float) -> float:
    """The nearest-rank ``p``th percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
