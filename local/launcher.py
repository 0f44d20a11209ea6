"""Start the same handler as several local regions, each a set of container processes on its own port,
and keep them running like the platform does: a container that dies is replaced (as Lambda replaces an
execution environment), and one region can be taken down and brought back while the others serve.

    app = start_local_app(database_url, [("us-east-1", 0), ("us-east-2", 0)], containers=2)
    app.urls["us-east-1"]          # http://127.0.0.1:<free port>
    app.take_down("us-east-1")     # its containers killed, its port closed: connections are refused
    app.bring_up("us-east-1")      # same port again, returns once it answers GET /health with 200
    app.stop()

``python -m local`` uses this with PostgreSQL, migrations, sample data and the control endpoint
(local/control.py); tests use it against their own database. Every region shares the one database, as
both DSQL endpoints share one logical database. Nothing here ever touches the database's data.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.ports import DEFAULT_PORTS, parse_ports

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGIONS: tuple[tuple[str, int], ...] = tuple(parse_ports(DEFAULT_PORTS))
# A container that dies this soon after it started is crash-looping: wait before the next one.
CRASH_WINDOW_S = 10.0
MAX_BACKOFF_S = 30.0

Log = Callable[[str], None]


class LocalAppError(RuntimeError):
    """The local application (or one region of it) could not start; the message says which part and why."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Region:
    """One local region: a listening socket and the container processes that share it."""

    name: str
    host: str
    port: int
    containers: int
    state: str = "down"  # down, starting, up
    socket: socket.socket | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started_at: dict[int, float] = field(default_factory=dict)  # pid -> time.monotonic() at start
    replaced: int = 0
    crash_streak: int = 0
    retry_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class LocalApp:
    """The running regions. ``urls`` by region name; ``take_down``/``bring_up`` one region; ``stop()`` (or
    ``with``) ends every container. A supervisor thread replaces containers that die in a region that is up.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        output: int | IO[Any] | None = None,
        log: Log = _stderr,
        region_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.regions: dict[str, Region] = {}
        self._env = dict(env)
        self._region_env = {name: dict(values) for name, values in (region_env or {}).items()}
        self._output = output
        self._log = log
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {name: region.url for name, region in self.regions.items()}

    @property
    def processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        """Every container process now running, with its region."""
        with self._lock:
            return [(r.name, p) for r in self.regions.values() for p in r.processes if p.poll() is None]

    def is_up(self, name: str) -> bool:
        """Whether region ``name`` serves (as its health check would see it)."""
        with self._lock:
            region = self.regions.get(name)
            return region is not None and region.state == "up"

    def status(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                name: {
                    "url": region.url,
                    "state": region.state,
                    "containers": [p.pid for p in region.processes if p.poll() is None],
                    "replaced": region.replaced,
                }
                for name, region in self.regions.items()
            }

    # ------------------------------------------------------------ regions

    def _open(self, region: Region) -> None:
        """Listen on the region's port and start its containers (caller holds the lock)."""
        try:
            sock = socket.create_server((self.host, region.port), backlog=256)
        except OSError as exc:
            raise LocalAppError(
                f"{region.name}: cannot listen on {self.host}:{region.port} ({exc.strerror}); "
                "stop what uses that port or choose another one (PORTS or --ports)"
            ) from exc
        region.socket = sock
        region.port = sock.getsockname()[1]  # port 0 becomes a fixed one: bring_up reuses it
        region.state = "starting"
        region.crash_streak = 0
        for _ in range(region.containers):
            self._spawn(region)

    def _spawn(self, region: Region) -> subprocess.Popen[bytes]:
        assert region.socket is not None
        fd = region.socket.fileno()
        proc = subprocess.Popen(
            [sys.executable, "-m", "local.server", "--fd", str(fd), "--region", region.name],
            pass_fds=(fd,),
            env={**self._env, **self._region_env.get(region.name, {})},
            cwd=PROJECT_ROOT,
            stdout=self._output,
            stderr=self._output,
            # Terminal signals (Ctrl-C, a closed terminal) reach the launcher alone, which then stops the
            # containers in order; a container also ends itself when the launcher is gone.
            start_new_session=True,
        )
        region.processes.append(proc)
        region.started_at[proc.pid] = time.monotonic()
        return proc

    def _close(self, region: Region, *, kill: bool, timeout: float = 10.0) -> None:
        """Stop the region's containers (SIGKILL, as an outage; else SIGTERM first) and close its port."""
        for proc in region.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in region.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        region.processes.clear()
        region.started_at.clear()
        if region.socket is not None:
            region.socket.close()
            region.socket = None
        region.state = "down"

    def take_down(self, name: str) -> None:
        """Take one region down abruptly: its containers are killed and its port closed."""
        with self._lock:
            region = self._region(name)
            if region.state == "down":
                return
            count = sum(p.poll() is None for p in region.processes)
            self._close(region, kill=True)
        self._log(f"{name}: taken down ({count} container(s) killed, port {region.port} closed)")

    def bring_up(self, name: str, wait_timeout: float = 30.0) -> float:
        """Start a region that is down on its port again; returns the seconds it took to answer
        GET /health with 200. Raises LocalAppError (leaving it down) when it does not."""
        started = time.monotonic()
        with self._lock:
            region = self._region(name)
            if region.state != "down":
                return 0.0
            self._open(region)
        try:
            self._wait_healthy([region], wait_timeout)
        except BaseException:
            with self._lock:
                self._close(region, kill=True)
            raise
        with self._lock:
            region.state = "up"
        elapsed = time.monotonic() - started
        self._log(f"{name}: back up on {region.url} in {elapsed:.1f} s")
        return elapsed

    def _region(self, name: str) -> Region:
        try:
            return self.regions[name]
        except KeyError:
            raise KeyError(f"no region {name!r}; the regions are {', '.join(self.regions)}") from None

    # ------------------------------------------------------------ supervision

    def replace_dead_containers(self) -> None:
        """Replace every container that exited in a region that is up (one log line each)."""
        with self._lock:
            for region in self.regions.values():
                if region.state != "up":
                    continue
                now = time.monotonic()
                for proc in [p for p in region.processes if p.poll() is not None]:
                    if now < region.retry_at:
                        break
                    region.processes.remove(proc)
                    lived = now - region.started_at.pop(proc.pid, now)
                    region.crash_streak = region.crash_streak + 1 if lived < CRASH_WINDOW_S else 0
                    replacement = self._spawn(region)
                    region.replaced += 1
                    note = ""
                    if region.crash_streak > 1:
                        backoff = min(MAX_BACKOFF_S, 0.5 * 2**region.crash_streak)
                        region.retry_at = now + backoff
                        note = f"; it keeps dying, next replacement after {backoff:.0f} s"
                    self._log(
                        f"{region.name}: container pid {proc.pid} {_exit_reason(proc.returncode)} after "
                        f"{lived:.1f} s; replaced by pid {replacement.pid}{note}"
                    )

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            self.replace_dead_containers()

    def start_supervisor(self) -> None:
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    # ------------------------------------------------------------ start and stop

    def _wait_healthy(self, regions: Sequence[Region], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {region.name: region for region in regions}
        last_problem = ""
        while pending:
            for name, region in list(pending.items()):
                dead = [p for p in region.processes if p.poll() is not None]
                if dead:
                    reasons = ", ".join(f"pid {p.pid} {_exit_reason(p.returncode)}" for p in dead)
                    raise LocalAppError(
                        f"{name}: container(s) exited during start ({reasons}); see their output above"
                    )
                try:
                    with urllib.request.urlopen(f"{region.url}/health", timeout=5) as response:  # noqa: S310 - ours
                        if response.status == 200:
                            del pending[name]
                except urllib.error.HTTPError as exc:
                    last_problem = f"{name}: /health answered {exc.code} {exc.read()[:200]!r}"
                except (urllib.error.URLError, OSError) as exc:
                    last_problem = f"{name}: {exc}"
            if pending and time.monotonic() > deadline:
                raise LocalAppError(f"not healthy after {timeout:.0f} s: {last_problem}")
            if pending:
                time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """End the supervisor, then SIGTERM every container (SIGKILL after ``timeout``) and close the ports."""
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        with self._lock:
            for region in self.regions.values():
                self._close(region, kill=False, timeout=timeout)

    def __enter__(self) -> LocalApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "is running"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def start_local_app(
    database_url: str,
    regions: Sequence[tuple[str, int]] = DEFAULT_REGIONS,
    *,
    containers: int = 1,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    region_env: Mapping[str, Mapping[str, str]] | None = None,
    wait_timeout: float = 30.0,
    output: int | IO[Any] | None = None,
    log: Log = _stderr,
) -> LocalApp:
    """Serve the handler as each ``(region name, port)`` (port 0 picks a free one) against ``database_url``.

    Each region gets ``containers`` processes sharing its listening socket. ``env`` adds variables for
    the handler (e.g. CORS_ALLOW_ORIGINS), ``region_env`` more for one region's containers only (their
    region's view of the issuer, local/identity.py); ``output`` is where the containers' output goes (default:
    this process's); ``log`` receives the launcher's own lines (replacements, regions down and up).
    Returns once every region answered GET /health with 200, with a supervisor replacing containers
    that die; raises LocalAppError (after stopping what it started) when one does not within
    ``wait_timeout``.
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
    app = LocalApp(child_env, host=host, output=output, log=log, region_env=region_env)
    try:
        with app._lock:
            for name, port in regions:
                app.regions[name] = Region(name, host, port, containers)
                app._open(app.regions[name])
        app._wait_healthy(list(app.regions.values()), wait_timeout)
        with app._lock:
            for region in app.regions.values():
                region.state = "up"
        app.start_supervisor()
    except BaseException:
        app.stop()
        raise
    return app
