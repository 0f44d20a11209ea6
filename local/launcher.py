"""Start the same handler as several local regions, each a set of container processes on its own port.

    app = start_local_app(database_url, [("us-east-1", 0), ("us-east-2", 0)], containers=2)
    app.urls["us-east-1"]   # http://127.0.0.1:<free port>
    app.stop()

``python -m local`` uses this with PostgreSQL, migrations and sample data; tests use it against their
own database. Every region shares the one database, as both DSQL endpoints share one logical database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGIONS: tuple[tuple[str, int], ...] = (("us-east-1", 8001), ("us-east-2", 8002))


class LocalAppError(RuntimeError):
    """The local application could not start; the message says which part and why."""


@dataclass
class LocalApp:
    """The running regions: ``urls`` by region name; ``stop()`` (or ``with``) ends every process."""

    urls: dict[str, str]
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)

    def dead_containers(self) -> list[str]:
        return [
            f"{region} (exit {proc.returncode})" for region, proc in self.processes if proc.poll() is not None
        ]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every container, wait for them (SIGKILL after ``timeout``), close the sockets."""
        for _, proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, proc in self.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    def __enter__(self) -> LocalApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_app(
    database_url: str,
    regions: Sequence[tuple[str, int]] = DEFAULT_REGIONS,
    *,
    containers: int = 1,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    wait_timeout: float = 30.0,
) -> LocalApp:
    """Serve the handler as each ``(region name, port)`` (port 0 picks a free one) against ``database_url``.

    Each region gets ``containers`` processes sharing its listening socket. ``env`` adds variables for
    the handler (e.g. CORS_ALLOW_ORIGINS). Returns once every region answered GET /health with 200;
    raises LocalAppError (after stopping what it started) when one does not within ``wait_timeout``.
    """
    if containers < 1:
        raise ValueError("containers must be at least 1")
    names = [name for name, _ in regions]
    if len(set(names)) != len(names):
        raise ValueError(f"region names must be unique: {names}")
    child_env = {**os.environ, **(env or {}), "DATABASE_URL": database_url}
    child_env.pop("DSQL_ENDPOINT", None)
    child_env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), child_env.get("PYTHONPATH")]))
    app = LocalApp(urls={})
    try:
        for region, port in regions:
            try:
                sock = socket.create_server((host, port), backlog=256)
            except OSError as exc:
                raise LocalAppError(
                    f"{region}: cannot listen on {host}:{port} ({exc.strerror}); choose another port"
                ) from exc
            app.sockets.append(sock)
            app.urls[region] = f"http://{host}:{sock.getsockname()[1]}"
            for _ in range(containers):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "local.server", "--fd", str(sock.fileno()), "--region", region],
                    pass_fds=(sock.fileno(),),
                    env=child_env,
                    cwd=PROJECT_ROOT,
                )
                app.processes.append((region, proc))
        _wait_healthy(app, wait_timeout)
    except BaseException:
        app.stop()
        raise
    return app


def _wait_healthy(app: LocalApp, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(app.urls)
    last_problem = ""
    while pending:
        dead = app.dead_containers()
        if dead:
            raise LocalAppError(
                f"container(s) exited during start: {', '.join(dead)}; see their output above"
            )
        for region, url in list(pending.items()):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:  # noqa: S310 - our URL
                    if response.status == 200:
                        del pending[region]
            except urllib.error.HTTPError as exc:
                last_problem = f"{region}: /health answered {exc.code} {exc.read()[:200]!r}"
            except (urllib.error.URLError, OSError) as exc:
                last_problem = f"{region}: {exc}"
        if pending and time.monotonic() > deadline:
            raise LocalAppError(f"not healthy after {timeout:.0f}s: {last_problem}")
        if pending:
            time.sleep(0.1)
