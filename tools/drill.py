"""Failover drill against the running local app (``make dev``): one region down on purpose, the other
keeps serving, the region comes back, and what was written meanwhile is visible in both.

    python -m tools.drill                                   # control endpoint: CONTROL_PORT, else 8000
    python -m tools.drill --control-port 9000 --down us-east-2

The drill takes regions down only of the run it can identify: the run file that ``python -m local``
wrote for the control port (local/auth.py) names a run id, and the control endpoint must answer with
the same id (and, when PORTS is set, serve those ports); otherwise discover fails and nothing is taken
down.

Steps, each timed on a timeline and reported PASS or FAIL with its name:
  discover          the control endpoint lists at least two regions, all up, each answering /health 200
                    and naming itself in X-Served-Region
  take-down         the control endpoint takes the region down
  outage-confirmed  the region no longer answers (its port refuses connections)
  survivor-writes   during the outage (held --outage seconds) the other region creates users and reads
                    each back, every answer naming it in X-Served-Region
  bring-up          the control endpoint brings the region back; it answers /health 200 again
  outage-visible    every user written during the outage is read from both regions
  survivor-probes   a prober hitting the other region's /health all along saw no failure
  identity-down, sign-in-replica, refresh-replica, identity-up
                    with authentication on: the primary region's Cognito down, sign-in and token
                    refresh through the replica's region, every API accepting the tokens, the primary's
                    identity back (tools/identity_drill.py)
  cleanup           the drill's users are deleted
Whatever fails after take-down (or identity-down), the region (or identity) is brought back before the
drill ends. Exit status 0 when
every step passed, 1 naming the failed step, 2 on bad usage. Requests go through tools.smoke's one HTTP
function; with the local app's authentication on, an admin token from its local issuer (or --token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.ports import control_port_setting, parse_ports
from tools.identity_drill import IdentityDrill, IdentityFailure
from tools.smoke import EMAIL_DOMAIN, Region, Reply, Smoke, SmokeFailure
from tools.smoke_auth import describe_run, local_run, local_token, run_file


class DrillFailure(Exception):
    """A step's expectation did not hold; the message says what was seen."""


@dataclass
class Step:
    name: str
    status: str  # PASS or FAIL
    at: float  # seconds since the drill started
    seconds: float
    detail: str


@dataclass
class Prober:
    """Hits one region's /health every ``interval`` seconds from a thread, counting what failed."""

    smoke: Smoke
    region: Region
    interval: float = 0.1
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sent += 1
            try:
                reply = self.smoke.request(self.region, "GET", "/health")
                if reply.status != 200:
                    self.failures.append(f"{reply.status}")
            except SmokeFailure as exc:
                self.failures.append(str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class Drill:
    def __init__(
        self,
        control_url: str,
        down: str | None,
        writes: int,
        smoke: Smoke,
        outage_s: float = 2.0,
        run: dict[str, Any] | None = None,
        ports: str | None = None,
    ) -> None:
        self.control_url = control_url.rstrip("/")
        self.local_run = run  # the run file's description of the app meant (None: no run recorded)
        self.ports = ports  # the PORTS setting, when given: the app meant serves these
        self.outage_s = outage_s
        self.down_since = 0.0
        self.wanted_down = down
        self.writes = writes
        self.smoke = smoke
        self.started = time.monotonic()
        self.steps: list[Step] = []
        self.target: Region | None = None
        self.survivor: Region | None = None
        self.written: list[dict[str, Any]] = []  # users created by the drill
        self.identity: IdentityDrill | None = None  # the identity steps, when the run has authentication
        self.run_id = uuid.uuid4().hex[:10]

    # ------------------------------------------------------------ the control endpoint

    def control(
        self, method: str, path: str, payload: Any = None, *, missing_ok: bool = False
    ) -> dict[str, Any]:
        """The control endpoint's answer; with ``missing_ok``, {} for a 404 (GET /identity of a run
        started with --no-auth)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's local control URL
            self.control_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return {}
            raise DrillFailure(
                f"{method} {self.control_url}{path} answered {exc.code}: {exc.read()[:300]!r}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DrillFailure(
                f"no control endpoint at {self.control_url} ({getattr(exc, 'reason', exc)}): is the local app "
                "running (make dev)? Give its control URL with --control or CONTROL_PORT"
            ) from None

    # ------------------------------------------------------------ steps

    def step(self, name: str, body: Callable[[], str]) -> bool:
        began = time.monotonic()
        try:
            detail, status = body(), "PASS"
        except (DrillFailure, SmokeFailure, IdentityFailure) as exc:
            detail, status = str(exc), "FAIL"
        self.steps.append(Step(name, status, began - self.started, time.monotonic() - began, detail))
        return status == "PASS"

    def identify(self, answer: dict[str, Any]) -> None:
        """Refuse to go on unless the control endpoint is the run meant (before anything is taken down)."""
        if self.local_run is None:
            raise DrillFailure(
                f"no run recorded for the control endpoint {self.control_url}: cannot tell which app answers "
                "there, so nothing is taken down; start the app with python -m local (make dev) and give "
                "its CONTROL_PORT (or --control-port)"
            )
        if answer.get("run") != self.local_run.get("id"):
            raise DrillFailure(
                f"the control endpoint {self.control_url} is not {describe_run(self.local_run)} (another run "
                "answers there); nothing is taken down"
            )
        if self.ports:
            wanted = {f"http://127.0.0.1:{port}" for _, port in parse_ports(self.ports, allow_zero=False)}
            served = {region["url"] for region in answer["regions"].values()}
            if wanted != served:
                raise DrillFailure(
                    f"PORTS names {', '.join(sorted(wanted))} but the run at {self.control_url} serves "
                    f"{', '.join(sorted(served))}; nothing is taken down"
                )

    def discover(self) -> str:
        answer = self.control("GET", "/regions")
        self.identify(answer)
        regions = answer["regions"]
        if len(regions) < 2:
            raise DrillFailure(f"the local app runs {len(regions)} region(s); a drill needs two")
        down = [name for name, region in regions.items() if region["state"] != "up"]
        if down:
            raise DrillFailure(f"region(s) {', '.join(down)} not up before the drill; bring them up first")
        names = list(regions)
        target = self.wanted_down or names[0]
        if target not in regions:
            raise DrillFailure(f"no region {target!r}; the regions are {', '.join(names)}")
        survivor = next(name for name in names if name != target)
        self.target = Region(target, regions[target]["url"])
        self.survivor = Region(survivor, regions[survivor]["url"])
        for region in (self.target, self.survivor):
            reply = self.smoke.request(region, "GET", "/health")
            if reply.status != 200:
                raise DrillFailure(f"GET /health in {region.label} answered {reply.status} before the drill")
            self.served_by(region, reply)
        identity = self.control("GET", "/identity", missing_ok=True)
        if identity:
            down = [name for name, state in identity["regions"].items() if state != "up"]
            if down:
                raise DrillFailure(
                    f"the identity of {', '.join(down)} is down before the drill; bring it up first"
                )
            self.identity = IdentityDrill(
                self.control, identity, [self.target, self.survivor], self.smoke.timeout
            )
        return (
            f"{len(regions)} regions up; {target} goes down, {survivor} keeps serving "
            f"(run {self.local_run['id'] if self.local_run else '?'})"
        )

    @staticmethod
    def served_by(region: Region, reply: Reply) -> None:
        """The answer names the region that served it, as the deployed drill's probe reads it."""
        if reply.served_region != region.label:
            raise DrillFailure(
                f"an answer from {region.label} named {reply.served_region!r} in X-Served-Region, not {region.label}"
            )

    def take_down(self) -> str:
        assert self.target is not None
        state = self.control("POST", f"/regions/{self.target.label}", {"state": "down"})[self.target.label]
        if state["state"] != "down":
            raise DrillFailure(f"the control endpoint left {self.target.label} {state['state']}")
        self.down_since = time.monotonic()
        return f"{self.target.label} down"

    def outage_confirmed(self) -> str:
        assert self.target is not None
        try:
            reply = self.smoke.request(self.target, "GET", "/health")
        except SmokeFailure as exc:
            return f"{self.target.label} does not answer ({exc})"
        raise DrillFailure(f"{self.target.label} still answers /health with {reply.status} while down")

    def survivor_writes(self) -> str:
        assert self.survivor is not None
        for n in range(self.writes):
            email = f"drill-{self.run_id}-{n}@{EMAIL_DOMAIN}"
            reply = self.smoke.request(self.survivor, "POST", "/users", {"name": "Drill", "email": email})
            if reply.status != 201 or not isinstance(reply.body, dict) or "id" not in reply.body:
                hint = " (authentication: pass --token)" if reply.status == 401 else ""
                raise DrillFailure(f"POST /users in {self.survivor.label} answered {reply.status}{hint}")
            self.written.append(reply.body)
            read = self.smoke.request(self.survivor, "GET", f"/users/{reply.body['id']}")
            if read.status != 200:
                raise DrillFailure(
                    f"user {reply.body['id']} written in {self.survivor.label}: read {read.status}"
                )
            for answer in (reply, read):
                self.served_by(self.survivor, answer)
        time.sleep(max(0.0, self.down_since + self.outage_s - time.monotonic()))  # let the prober see more
        return f"{self.writes} users created and read back in {self.survivor.label} (X-Served-Region {self.survivor.label})"

    def bring_up(self) -> str:
        assert self.target is not None
        began = time.monotonic()
        state = self.control("POST", f"/regions/{self.target.label}", {"state": "up"})[self.target.label]
        if state["state"] != "up":
            raise DrillFailure(f"the control endpoint left {self.target.label} {state['state']}")
        reply = self.smoke.request(self.target, "GET", "/health")
        if reply.status != 200:
            raise DrillFailure(f"{self.target.label} came back but /health answered {reply.status}")
        return f"{self.target.label} serving again after {time.monotonic() - began:.1f} s"

    def outage_visible(self) -> str:
        assert self.target is not None and self.survivor is not None
        if not self.written:
            raise DrillFailure("nothing was written during the outage")
        missing = []
        for user in self.written:
            for region in (self.target, self.survivor):
                reply = self.smoke.request(region, "GET", f"/users/{user['id']}")
                if (
                    reply.status != 200
                    or not isinstance(reply.body, dict)
                    or reply.body.get("email") != user["email"]
                ):
                    missing.append(f"{user['id']} in {region.label} ({reply.status})")
        if missing:
            raise DrillFailure(f"{len(missing)} reads of outage writes failed: {', '.join(missing[:3])}")
        return f"{len(self.written)} outage writes read from {self.target.label} and {self.survivor.label}"

    def cleanup(self) -> str:
        assert self.survivor is not None
        left = []
        for user in self.written:
            reply = self.smoke.request(self.survivor, "DELETE", f"/users/{user['id']}")
            if reply.status not in (204, 404):
                left.append(user["id"])
        if left:
            raise DrillFailure(f"could not delete {len(left)} drill user(s): {', '.join(left[:5])}")
        return f"{len(self.written)} drill users deleted"

    def run(self) -> bool:
        self.started = time.monotonic()
        if not self.step("discover", self.discover):
            return False
        assert self.survivor is not None
        prober = Prober(self.smoke, self.survivor)
        prober.start()
        taken_down = False
        try:
            taken_down = self.step("take-down", self.take_down)
            if taken_down and self.step("outage-confirmed", self.outage_confirmed):
                self.step("survivor-writes", self.survivor_writes)
        finally:
            # Restore on every path, as the AWS drill restores its health check.
            brought_up = self.step("bring-up", self.bring_up) if taken_down or self._target_down() else True
            prober.stop()
        if brought_up and self.written:
            self.step("outage-visible", self.outage_visible)
        self.step("survivor-probes", lambda: _probes(prober))
        if self.identity is not None:
            self.identity_steps(self.identity)
        if self.written:
            self.step("cleanup", self.cleanup)
        return not any(step.status == "FAIL" for step in self.steps)

    def identity_steps(self, identity: IdentityDrill) -> None:
        """The primary's identity down, sign-in and refresh through the replica, and back on every path."""
        taken_down = False
        try:
            taken_down = self.step("identity-down", identity.take_down)
            if taken_down and self.step("sign-in-replica", identity.sign_in):
                self.step("refresh-replica", identity.refresh)
        finally:
            try:
                state = self.control("GET", "/identity", missing_ok=True)
            except DrillFailure:
                state = {}
            if taken_down or any(value != "up" for value in state.get("regions", {}).values()):
                self.step("identity-up", identity.bring_up)

    def _target_down(self) -> bool:
        assert self.target is not None
        try:
            return self.control("GET", "/regions")["regions"][self.target.label]["state"] != "up"
        except DrillFailure:
            return False

    def report(self) -> str:
        lines = [
            f"+{s.at:8.3f} s  {s.status}  {s.name:<17} {s.seconds * 1000:7.0f} ms  {s.detail}"
            for s in self.steps
        ]
        failed = [s.name for s in self.steps if s.status == "FAIL"]
        lines.append(
            f"drill: FAILED at {', '.join(failed)}"
            if failed
            else f"drill: passed all {len(self.steps)} steps"
        )
        return "\n".join(lines)


def _probes(prober: Prober) -> str:
    if prober.sent == 0:
        raise DrillFailure("the prober sent no request")
    if prober.failures:
        raise DrillFailure(
            f"{len(prober.failures)} of {prober.sent} probes of {prober.region.label} failed: {prober.failures[0]}"
        )
    return f"{prober.region.label} answered {prober.sent} of {prober.sent} /health probes with 200"


def auth_headers(token: str | None, run_id: str, control_port: int | None = None) -> dict[str, str]:
    """Authorization for the local app: ``token``, else an admin token of the local issuer of the run on
    ``control_port`` (the smoke test's way, tools/smoke_auth.py), else none (started with --no-auth)."""
    token = token or local_token(f"drill-{run_id}", control_port=control_port)
    return {"Authorization": f"Bearer {token}"} if token else {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.drill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--control", help="the control endpoint (default: http://127.0.0.1:<control port>)")
    parser.add_argument(
        "--control-port",
        type=int,
        help="the local app's control port, which names its run (default: $CONTROL_PORT, else 8000; "
        "with --control, that URL's port)",
    )
    parser.add_argument("--down", metavar="REGION", help="the region to take down (default: the first one)")
    parser.add_argument("--writes", type=int, default=5, help="users written during the outage (default: 5)")
    parser.add_argument(
        "--outage", type=float, default=2.0, help="seconds the region stays down (default: 2)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per API request (default: 10)")
    parser.add_argument("--token", help="an ID token for the API (default: one from the local app's issuer)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.control:
            explicit = urllib.parse.urlsplit(args.control).port
            port = control_port_setting(args.control_port if args.control_port is not None else explicit)
        else:
            port = control_port_setting(args.control_port)
        control = args.control or f"http://127.0.0.1:{port}"
        ports = os.environ.get("PORTS") or None
        if ports:
            parse_ports(ports, allow_zero=False)
    except ValueError as exc:
        print(f"drill: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.writes <= 50 or not 0 < args.timeout <= 120 or not 0 <= args.outage <= 300:
        print(
            "drill: --writes must be 1..50, --timeout in (0, 120] and --outage in 0..300 s", file=sys.stderr
        )
        return 2
    smoke = Smoke([], timeout=args.timeout)
    run = local_run(run_file(port))
    drill = Drill(control, args.down, args.writes, smoke, args.outage, run=run, ports=ports)
    smoke.headers.update(auth_headers(args.token, drill.run_id, port))
    print(f"drill: control {drill.control_url}", flush=True)
    if run is not None:
        print(f"drill: {describe_run(run)} (CONTROL_PORT={port})", flush=True)
    ok = drill.run()
    print(drill.report())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
