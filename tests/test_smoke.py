"""The smoke command against the real local two-region application (real PostgreSQL, real handler over
HTTP): it passes when both regions serve, and fails naming the check when one region is stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from local.launcher import LocalApp, start_local_app
from tests.pulumi_harness import ROOT
from tools import smoke


@pytest.fixture
def two_regions(migrated_database_url: str) -> Iterator[tuple[LocalApp, LocalApp]]:
    """Each region started on its own, so that one can be stopped while the other keeps serving."""
    east_1 = start_local_app(migrated_database_url, [("us-east-1", 0)])
    try:
        east_2 = start_local_app(migrated_database_url, [("us-east-2", 0)])
    except BaseException:
        east_1.stop()
        raise
    yield east_1, east_2
    east_2.stop()
    east_1.stop()


def smoke_users(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM users WHERE email LIKE 'smoke-%%'").fetchone()
        assert row is not None
        return row[0]


def test_smoke_passes_against_both_local_regions_and_cleans_up(
    two_regions: tuple[LocalApp, LocalApp], migrated_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [two_regions[0].urls["us-east-1"], two_regions[1].urls["us-east-2"]]
    assert smoke.main(urls) == 0
    report = capsys.readouterr().out
    for check in ("health[region-1]", "health[region-2]", "read-other-region", "concurrent-writes",
                  "duplicate-rejected", "retry-replayed", "cleanup"):  # fmt: skip
        assert f"PASS  {check}" in report, report
    assert "FAIL" not in report
    assert smoke_users(migrated_database_url) == 0


def test_smoke_fails_naming_the_health_check_when_one_region_is_stopped(
    two_regions: tuple[LocalApp, LocalApp], capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [two_regions[0].urls["us-east-1"], two_regions[1].urls["us-east-2"]]
    two_regions[1].stop()
    assert smoke.main([*urls, "--timeout", "3"]) == 1
    report = capsys.readouterr().out
    assert "PASS  health[region-1]" in report
    assert "FAIL  health[region-2]" in report
    assert "smoke: FAILED 1 of" in report and report.rstrip().endswith("health[region-2]")


def test_smoke_command_exits_non_zero_and_names_the_check(two_regions: tuple[LocalApp, LocalApp]) -> None:
    """The real command line, as an operator runs it."""
    urls = [two_regions[0].urls["us-east-1"], two_regions[1].urls["us-east-2"]]
    passed = subprocess.run(
        [sys.executable, "-m", "tools.smoke", *urls], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    two_regions[0].stop()
    failed = subprocess.run(
        [sys.executable, "-m", "tools.smoke", *urls, "--timeout", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert "FAIL  health[region-1]" in failed.stdout


def test_a_region_that_accepts_duplicates_fails_the_duplicate_check() -> None:
    users: dict[str, dict] = {}

    class AcceptsEverything(smoke.Smoke):
        """Answers like the API would, except that it stores a duplicate e-mail instead of refusing it."""

        def request(
            self, region: smoke.Region, method: str, path: str, payload: object = None, **_: object
        ) -> smoke.Reply:
            user_id = path.rpartition("/")[2]
            if path == "/health":
                return smoke.Reply(200, {"status": "ok"})
            if method == "POST":
                user = {"id": uuid.uuid4().hex, **payload}  # type: ignore[dict-item]
                users[user["id"]] = user
                return smoke.Reply(201, user)
            if method == "DELETE":
                return smoke.Reply(204 if users.pop(user_id, None) else 404, None)
            return smoke.Reply(200, users[user_id]) if user_id in users else smoke.Reply(404, {})

    run = AcceptsEverything(
        [smoke.Region("a", "http://a"), smoke.Region("b", "http://b")], writes_per_region=1
    )
    assert run.run() is False
    failed = [r.name for r in run.results if r.failed]
    # It knows no Idempotency-Key either: the retry makes a second user.
    assert failed == ["duplicate-rejected", "retry-replayed"]
    assert not run.created and not users  # the duplicates it wrongly created are cleaned up too


def test_stack_outputs_give_the_two_regional_urls_primary_first() -> None:
    outputs = {
        "secondaryInvokeUrl": "https://b1.execute-api.us-east-2.amazonaws.com/v1/",
        "primaryInvokeUrl": "https://a1.execute-api.us-east-1.amazonaws.com/v1",
        "clusterIds": {"us-east-1": "x"},
    }
    regions = smoke.regions_from_outputs(outputs)
    assert [(r.label, r.base_url) for r in regions] == [
        ("us-east-1", "https://a1.execute-api.us-east-1.amazonaws.com/v1"),
        ("us-east-2", "https://b1.execute-api.us-east-2.amazonaws.com/v1"),
    ]
    mapping = {"invokeUrls": {"us-east-1": "https://a/v1", "us-east-2": "https://b/v1"}}
    assert [r.label for r in smoke.regions_from_outputs(mapping)] == ["us-east-1", "us-east-2"]


def test_stack_outputs_without_two_urls_are_a_usage_error() -> None:
    with pytest.raises(smoke.UsageError, match="found 0"):
        smoke.regions_from_outputs({"clusterIds": {}})


def test_one_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["http://127.0.0.1:1"]) == 2
    assert "give two base URLs" in capsys.readouterr().err


# ---------------------------------------------------------------- checks that must catch a broken API


class FakeRegions(smoke.Smoke):
    """Answers like the API from memory. ``shared``: both regions see one store (a replicated database);
    ``lose_create``: the n-th create (1-based) is answered 201 and then lost; ``health_status`` for /health."""

    def __init__(
        self, *, shared: bool = True, lose_create: int = 0, health_status: int = 200, **kwargs: Any
    ) -> None:
        super().__init__([smoke.Region("a", "http://a"), smoke.Region("b", "http://b")], **kwargs)
        self.stores: dict[str, dict[str, dict[str, Any]]] = {"a": {}, "b": {}}
        self.answers: dict[str, dict[str, dict[str, Any]]] = {"a": {}, "b": {}}  # Idempotency-Key -> answer
        if shared:
            self.stores["b"] = self.stores["a"]
            self.answers["b"] = self.answers["a"]
        self.lose_create = lose_create
        self.health_status = health_status
        self.creates = 0
        self.lock = threading.Lock()

    def request(
        self,
        region: smoke.Region,
        method: str,
        path: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> smoke.Reply:
        store = self.stores[region.label]
        answers = self.answers[region.label]
        user_id = path.rpartition("/")[2]
        with self.lock:
            if path == "/health":
                return smoke.Reply(self.health_status, {"status": "ok"})
            if method == "POST":
                if idempotency_key in answers:
                    return smoke.Reply(201, answers[idempotency_key])
                if any(u["email"] == payload["email"] for u in store.values()):
                    return smoke.Reply(409, {"error": {"code": "conflict"}})
                self.creates += 1
                user = {"id": uuid.uuid4().hex, **payload}
                if self.creates != self.lose_create:
                    store[user["id"]] = user
                if idempotency_key is not None:
                    answers[idempotency_key] = user
                return smoke.Reply(201, user)
            if method == "DELETE":
                return smoke.Reply(204 if store.pop(user_id, None) else 404, None)
            return smoke.Reply(200, store[user_id]) if user_id in store else smoke.Reply(404, {})


def failed_checks(run: smoke.Smoke) -> list[str]:
    return [r.name for r in run.results if r.failed]


def test_the_fake_api_passes_when_it_behaves() -> None:
    run = FakeRegions()
    assert run.run() is True, run.report()
    assert not run.stores["a"]  # cleaned up


def test_regions_that_do_not_share_their_data_fail_every_cross_region_check() -> None:
    """Reading back from the region that wrote (instead of the other one) would pass here."""
    run = FakeRegions(shared=False)
    assert run.run() is False
    assert failed_checks(run) == [
        "read-other-region",
        "concurrent-writes",
        "duplicate-rejected",
        "retry-replayed",
    ]
    concurrent = next(r for r in run.results if r.name == "concurrent-writes")
    assert concurrent.detail.startswith("10 of 10 writes missing")


def test_a_create_answered_201_and_then_lost_fails_the_concurrent_check() -> None:
    run = FakeRegions(lose_create=3)  # the first create is read-other-region's; 2..11 are concurrent
    assert run.run() is False
    assert failed_checks(run) == ["concurrent-writes"]
    concurrent = next(r for r in run.results if r.name == "concurrent-writes")
    assert concurrent.detail.startswith("1 of 10 writes missing"), concurrent.detail


@pytest.mark.parametrize("status", [204, 301, 404, 429])
def test_health_must_answer_200_not_just_anything_below_500(status: int) -> None:
    run = FakeRegions(health_status=status)
    assert run.run() is False
    assert failed_checks(run) == ["health[a]", "health[b]"]
    assert all(r.status == "SKIP" for r in run.results if not r.name.startswith("health"))


# ---------------------------------------------------------------- the PORTS setting of make dev


def test_smoke_reads_the_local_regions_from_ports(
    two_regions: tuple[LocalApp, LocalApp],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ports = " ".join(
        f"{name}={url.rpartition(':')[2]}" for app in two_regions for name, url in app.urls.items()
    )
    monkeypatch.setenv("PORTS", ports)
    assert smoke.main([]) == 0
    report = capsys.readouterr().out
    assert "PASS  health[us-east-1]" in report and "PASS  health[us-east-2]" in report
    monkeypatch.setenv("PORTS", "us-east-1=1 us-east-2=2")  # --ports wins over the environment
    assert smoke.main(["--ports", ports, "--writes", "1"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ports", "us-east-1"], "is not REGION=PORT"),
        (["--ports", "us-east-1=8001"], "names 1 region(s)"),
        (["--ports", "a=0 b=1"], "port 0"),
        (["--ports", "a=1 b=2", "http://x", "http://y"], "give one of"),
    ],
)
def test_bad_ports_are_a_usage_error(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke.main(args) == 2
    assert message in capsys.readouterr().err


def test_when_nothing_listens_the_smoke_command_says_to_start_the_local_app(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCAL_ISSUER_FILE", str(tmp_path / "no-run.json"))  # no run recorded
    ports = []
    for _ in range(2):
        with socket.socket() as sock:  # bound and closed again: nothing listens there
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    assert smoke.main(["--ports", f"a={ports[0]} b={ports[1]}", "--timeout", "3"]) == 2
    captured = capsys.readouterr()
    assert "no local app recorded for CONTROL_PORT" in captured.out
    assert "nothing listens at" in captured.err and "start the local app first (make dev)" in captured.err
