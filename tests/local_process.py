"""``python -m local`` as a user runs it, for tests: started in its own session, its output read line by
line until a pattern shows, stopped with SIGTERM (as a closing terminal would) when the block ends, its
whole output then in ``output``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def local_env(issuer_file: Path) -> dict[str, str]:
    """This environment less a database and ports of the developer's, with free control and web ports
    and the run's issuer written to ``issuer_file``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORTS")}
    env.update(CONTROL_PORT="0", WEB_PORT="0", LOCAL_ISSUER_FILE=str(issuer_file))
    return env


@dataclass
class LocalProcess:
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first line matching ``pattern``; fails with everything printed so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"python -m local never printed {pattern!r}:\n" + "".join(self.output))

    def keep_reading(self) -> None:
        """Go on collecting the output in the background (a full pipe would block the app)."""
        self.reader = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)  # type: ignore[arg-type]
        self.reader.start()

    @property
    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        """SIGTERM (a closing terminal), then wait for the exit and the last of its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        if self.reader is None:
            self.keep_reading()
        assert self.reader is not None
        self.reader.join(10)


@contextmanager
def python_m_local(args: Sequence[str], env: Mapping[str, str]) -> Iterator[LocalProcess]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "local", *args],
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = LocalProcess(proc)
    try:
        yield running
    finally:
        running.stop()
