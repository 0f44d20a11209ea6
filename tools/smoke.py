"""Smoke test of the two-region users API: the acceptance checks, against any two regional base URLs.

    python -m tools.smoke                                   # the local app (make dev): PORTS, else :8001 :8002
    python -m tools.smoke --ports "us-east-1=9001 us-east-2=9002"   # the same setting as make dev PORTS=...
    python -m tools.smoke https://a.example/v1 https://b.example/v1
    python -m tools.smoke --from-stack [--stack prod]       # the URLs `pulumi stack output` reports

Authentication (tools/smoke_auth.py): an administrator's ID token from --token; with --from-stack (or
--user-pool-id and --client-id) a throwaway Cognito user made through the stack's smoke app client and
deleted again; locally, the running app's issuer (none when it runs with --no-auth).

Checks, each reported PASS or FAIL with its name:
  health[<region>]        GET /health answers 200 in both regions
  read-other-region       a user written in one region is read from the other at once
  concurrent-writes       writes sent to both regions at the same time are all present, read crosswise
  duplicate-rejected      the same e-mail written again in the other region is refused with 409
  cleanup                 every user the smoke test created is deleted again
Exit status: 0 when every check passed, 1 when one failed (the failing checks are named), 2 on bad usage.
Standard library only (local/ports.py, which reads the PORTS setting, is too); every request has a
timeout and goes through ``Smoke.request``, the one place that adds headers.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.ports import parse_ports, ports_setting
from tools import smoke_auth

EMAIL_DOMAIN = "example.com"  # reserved for documentation: never a real mailbox


class SmokeFailure(Exception):
    """A check's expectation did not hold; the message says what was seen."""


class UsageError(Exception):
    """The command line or the stack outputs do not name two regional URLs."""


@dataclass(frozen=True)
class Region:
    label: str
    base_url: str


SERVED_REGION = "X-Served-Region"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    served_region: str | None = None
    """The answer's X-Served-Region: the region that served it (every API answer names it)."""


@dataclass
class CheckResult:
    name: str
    status: str  # PASS, FAIL or SKIP
    detail: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


@dataclass
class Smoke:
    """One run: two regions, the users it created (deleted again by ``cleanup``), the results."""

    regions: Sequence[Region]
    timeout: float = 10.0
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (e.g. Authorization)
    writes_per_region: int = 5
    created: dict[str, Region] = field(default_factory=dict)  # user id -> region that wrote it
    results: list[CheckResult] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    # ------------------------------------------------------------ HTTP

    def request(self, region: Region, method: str, path: str, payload: Any = None) -> Reply:
        """The one place the smoke test (and tools.drill) talks HTTP: every call goes through here."""
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(region.base_url + path, data=data, method=method, headers=headers)  # noqa: S310 - the URL is the operator's
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, _decode(response.read()), response.headers.get(SERVED_REGION))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, _decode(exc.read()), exc.headers.get(SERVED_REGION))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SmokeFailure(f"{method} {region.base_url}{path} failed: {reason}") from None

    def create_user(self, region: Region, email: str) -> dict[str, Any]:
        reply = self.request(region, "POST", "/users", {"name": "Smoke Test", "email": email})
        if reply.status != 201 or not isinstance(reply.body, dict) or "id" not in reply.body:
            raise SmokeFailure(f"POST /users in {region.label} answered {reply.status} {_short(reply.body)}")
        self.created[reply.body["id"]] = region
        return reply.body

    def email(self, suffix: str) -> str:
        return f"smoke-{self.run_id}-{suffix}@{EMAIL_DOMAIN}"

    # ------------------------------------------------------------ checks

    def check(self, name: str, body: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, status = body(), "PASS"
        except SmokeFailure as exc:
            detail, status = str(exc), "FAIL"
        self.results.append(CheckResult(name, status, detail, time.monotonic() - started))
        return status == "PASS"

    def health(self, region: Region) -> str:
        reply = self.request(region, "GET", "/health")
        if reply.status != 200:
            raise SmokeFailure(f"GET /health in {region.label} answered {reply.status} {_short(reply.body)}")
        return f"{region.base_url} is healthy"

    def read_other_region(self) -> str:
        writer, reader = self.regions[0], self.regions[1]
        user = self.create_user(writer, self.email("first"))
        reply = self.request(reader, "GET", f"/users/{user['id']}")
        if (
            reply.status != 200
            or not isinstance(reply.body, dict)
            or reply.body.get("email") != user["email"]
        ):
            raise SmokeFailure(
                f"user {user['id']} written in {writer.label} read from {reader.label}: "
                f"{reply.status} {_short(reply.body)}"
            )
        return f"written in {writer.label}, read from {reader.label} at once"

    def concurrent_writes(self) -> str:
        jobs = [(region, self.email(f"{index}-{n}")) for index, region in enumerate(self.regions)
                for n in range(self.writes_per_region)]  # fmt: skip
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            outcomes = list(pool.map(lambda job: _attempt(self.create_user, *job), jobs))
        failures = [str(outcome) for outcome in outcomes if isinstance(outcome, SmokeFailure)]
        if failures:
            raise SmokeFailure(f"{len(failures)} of {len(jobs)} concurrent writes failed: {failures[0]}")
        missing = []
        for user in outcomes:
            writer = self.created[user["id"]]
            reader = next((region for region in self.regions if region != writer), writer)
            reply = self.request(reader, "GET", f"/users/{user['id']}")
            if reply.status != 200:
                missing.append(f"{user['id']} (written in {writer.label}, {reply.status} in {reader.label})")
        if missing:
            raise SmokeFailure(f"{len(missing)} of {len(jobs)} writes missing: {', '.join(missing[:3])}")
        return f"{len(jobs)} writes sent to both regions at once, all read back from the other region"

    def duplicate_rejected(self) -> str:
        writer, other = self.regions[0], self.regions[1]
        email = self.email("duplicate")
        self.create_user(writer, email)
        reply = self.request(other, "POST", "/users", {"name": "Smoke Duplicate", "email": email})
        if reply.status == 201 and isinstance(reply.body, dict) and "id" in reply.body:
            self.created[reply.body["id"]] = other
        if reply.status != 409:
            raise SmokeFailure(
                f"the same e-mail written again in {other.label} answered {reply.status} {_short(reply.body)}, "
                "expected 409"
            )
        return f"duplicate e-mail refused with 409 in {other.label}"

    def cleanup(self) -> str:
        left = []
        for user_id, writer in list(self.created.items()):
            # Delete through the region that wrote it, or the other one if that region is down.
            for region in sorted(self.regions, key=lambda r: r != writer):
                try:
                    reply = self.request(region, "DELETE", f"/users/{user_id}")
                except SmokeFailure:
                    continue
                if reply.status in (204, 404):
                    del self.created[user_id]
                    break
            else:
                left.append(user_id)
        if left:
            raise SmokeFailure(f"could not delete {len(left)} smoke user(s): {', '.join(left[:5])}")
        return "every smoke user deleted"

    def run(self) -> bool:
        healthy = [
            self.check(f"health[{region.label}]", functools.partial(self.health, region))
            for region in self.regions
        ]
        if all(healthy):
            self.check("read-other-region", self.read_other_region)
            self.check("concurrent-writes", self.concurrent_writes)
            self.check("duplicate-rejected", self.duplicate_rejected)
        else:
            # The data checks need both regions; running them against a dead one only repeats the cause.
            for name in ("read-other-region", "concurrent-writes", "duplicate-rejected"):
                self.results.append(CheckResult(name, "SKIP", "needs both regions healthy", 0.0))
        if self.created:
            self.check("cleanup", self.cleanup)
        return not any(result.failed for result in self.results)

    def report(self) -> str:
        lines = [f"{r.status}  {r.name:<22} {r.seconds * 1000:7.0f} ms  {r.detail}" for r in self.results]
        failed = [r.name for r in self.results if r.failed]
        if failed:
            lines.append(f"smoke: FAILED {len(failed)} of {len(self.results)} checks: {', '.join(failed)}")
        else:
            passed = sum(r.status == "PASS" for r in self.results)
            lines.append(f"smoke: passed all {passed} checks")
        return "\n".join(lines)


def _attempt(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except SmokeFailure as exc:
        return exc


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200].decode("utf-8", "replace")


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return text if len(text) <= 200 else text[:200] + "..."


# ---------------------------------------------------------------- where the URLs come from

_INVOKE_URL_KEY = re.compile(r"invoke_?url", re.IGNORECASE)


def regions_from_outputs(outputs: Mapping[str, Any]) -> list[Region]:
    """The regional invoke URLs in ``pulumi stack output --json``.

    Accepts a mapping output of region -> URL (a key like ``invokeUrls``) or one output per region
    whose key contains ``invokeUrl``/``invoke_url`` (the primary's first when its key says so).
    """
    for key, value in outputs.items():
        if _INVOKE_URL_KEY.search(key) and isinstance(value, Mapping):
            return [Region(str(region), str(url).rstrip("/")) for region, url in value.items()]
    found = [
        (key, value)
        for key, value in outputs.items()
        if _INVOKE_URL_KEY.search(key) and isinstance(value, str)
    ]
    found.sort(key=lambda item: (0 if "primary" in item[0].lower() else 1, item[0]))
    regions = [Region(_label(key, url), url.rstrip("/")) for key, url in found]
    if len(regions) != 2:
        raise UsageError(
            f"expected the stack outputs to name two regional invoke URLs, found {len(regions)} "
            f"(outputs: {', '.join(sorted(outputs)) or 'none'})"
        )
    return regions


def _label(key: str, url: str) -> str:
    region = re.search(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", url)
    return region.group(1) if region else key


def local_regions(ports: str) -> list[Region]:
    """The local app's regions from the PORTS setting (``"us-east-1=8001 us-east-2=8002"``)."""
    try:
        named = parse_ports(ports, allow_zero=False)
    except ValueError as exc:
        raise UsageError(f"PORTS/--ports: {exc}") from None
    if len(named) != 2:
        raise UsageError(f"PORTS/--ports names {len(named)} region(s); the smoke test needs two")
    return [Region(name, f"http://127.0.0.1:{port}") for name, port in named]


def stack_outputs(stack: str | None) -> dict[str, Any]:
    command = ["pulumi", "stack", "output", "--json"] + (["--stack", stack] if stack else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise UsageError(
            "--from-stack needs the Pulumi CLI on PATH (run it where you ran `pulumi up`)"
        ) from None
    except subprocess.TimeoutExpired:
        raise UsageError("`pulumi stack output --json` did not answer within 120 s") from None
    if done.returncode != 0:
        raise UsageError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.smoke",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "urls", nargs="*", metavar="BASE_URL", help="two regional base URLs (default: the local app)"
    )
    parser.add_argument(
        "--from-stack", action="store_true", help="read the invoke URLs from `pulumi stack output`"
    )
    parser.add_argument(
        "--ports",
        metavar="SPEC",
        help='the local app\'s regions, like "us-east-1=9001 us-east-2=9002" (default: $PORTS, else '
        '"us-east-1=8001 us-east-2=8002"; the setting of make dev PORTS=...)',
    )
    parser.add_argument("--stack", help="stack for --from-stack (default: the selected stack)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default: 10)")
    parser.add_argument("--writes", type=int, default=5, help="concurrent writes per region (default: 5)")
    auth = parser.add_argument_group("authentication (an administrator's ID token; see tools/smoke_auth.py)")
    auth.add_argument("--token", help="an ID token of a member of the admins group")
    auth.add_argument("--user-pool-id", help="make a throwaway user in this pool (with --client-id)")
    auth.add_argument("--client-id", help="an app client of that pool allowing ADMIN_USER_PASSWORD_AUTH")
    auth.add_argument(
        "--issuer-file", type=Path, help="the local app's issuer file (default: its usual place)"
    )
    auth.add_argument("--aws-profile", help="AWS profile for the Cognito admin calls (stack key awsProfile)")
    auth.add_argument(
        "--assume-role-arn", help="IAM role assumed for the Cognito admin calls (stack key awsAssumeRoleArn)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if sum(map(bool, (args.urls, args.from_stack, args.ports))) > 1:
            raise UsageError("give one of BASE_URLs, --from-stack or --ports")
        outputs: dict[str, Any] = {}
        if args.from_stack:
            outputs = stack_outputs(args.stack)
            regions = regions_from_outputs(outputs)
        elif args.urls:
            if len(args.urls) != 2:
                raise UsageError(f"give two base URLs (one per region), not {len(args.urls)}")
            regions = [Region(f"region-{i}", url.rstrip("/")) for i, url in enumerate(args.urls, start=1)]
        else:
            regions = local_regions(ports_setting(args.ports))
        if not 0 < args.timeout <= 120 or not 1 <= args.writes <= 50:
            raise UsageError("--timeout must be in (0, 120] seconds and --writes in 1..50")
    except UsageError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 2

    smoke = Smoke(regions, timeout=args.timeout, writes_per_region=args.writes)
    print(f"smoke: {' and '.join(f'{r.label} {r.base_url}' for r in regions)}")
    try:
        with _bearer_token(args, outputs, smoke.run_id) as (token, source):
            if token:
                smoke.headers["Authorization"] = f"Bearer {token}"
            print(f"smoke: authentication: {source}")
            ok = smoke.run()
    except (smoke_auth.SmokeAuthError, UsageError) as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 2
    print(smoke.report())
    return 0 if ok else 1


@contextlib.contextmanager
def _bearer_token(
    args: argparse.Namespace, outputs: Mapping[str, Any], run_id: str
) -> Iterator[tuple[str | None, str]]:
    """The run's ID token and where it came from (tools/smoke_auth.py)."""
    if args.token:
        yield args.token, "the --token given"
        return
    if bool(args.user_pool_id) != bool(args.client_id):
        raise UsageError("give --user-pool-id and --client-id together")
    target = (
        smoke_auth.CognitoTarget(args.user_pool_id, args.client_id)
        if args.user_pool_id
        else smoke_auth.cognito_from_outputs(outputs)
    )
    if target is not None:
        cognito = smoke_auth.cognito_client(target, args.aws_profile, args.assume_role_arn)
        with smoke_auth.throwaway_cognito_token(target, run_id, cognito) as cognito_token:
            yield cognito_token, f"a throwaway admin user of {target.user_pool_id} (deleted at the end)"
        return
    if args.from_stack or (args.urls and args.issuer_file is None):
        yield None, "none (the stack has no user pool: authMode none)" if args.from_stack else "none"
        return
    token = smoke_auth.local_token(run_id, args.issuer_file)
    yield token, "an admin token of the local app's issuer" if token else "none (local app without auth)"


if __name__ == "__main__":
    sys.exit(main())
