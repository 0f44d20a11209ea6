"""The power curve's model, without running it: the CPU quota each memory size gets, the refusal where no
cgroup CPU controller is usable, the cost per million and the memory-size rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import cpu_share
from benchmarks.power_bench import Price, Size, choose, cost_per_million, parse_sizes

GB_SECOND = Price(0.0000133334, "test", "2026-12-06")
REQUESTS = Price(0.20, "test", "2026-12-06")


def fake_v1(tmp_path: Path) -> cpu_share.Controller:
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    return cpu_share.Controller(1, tmp_path)


@pytest.mark.parametrize(
    ("memory_mb", "period_us", "quota_us"),
    [(1769, 20_000, 20_000), (512, 20_000, 5_789), (3008, 20_000, 34_008), (128, 20_000, 1_447)],
)
def test_the_quota_is_memory_over_1769_of_the_period(
    tmp_path: Path, memory_mb: int, period_us: int, quota_us: int
) -> None:
    controller = fake_v1(tmp_path)
    with cpu_share.cpu_share(cpu_share.cpus_for(memory_mb), controller) as enter:
        (group,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        assert int((group / "cpu.cfs_period_us").read_text()) == period_us
        assert int((group / "cpu.cfs_quota_us").read_text()) == quota_us
        assert callable(enter)
    # (On a cgroup filesystem the group is removed afterwards; a plain directory with files cannot be.)


def test_a_period_too_short_for_the_share_is_lengthened_not_the_share_changed(tmp_path: Path) -> None:
    controller = fake_v1(tmp_path)
    with cpu_share.cpu_share(cpu_share.cpus_for(128), controller, period_us=5_000):
        (group,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        period = int((group / "cpu.cfs_period_us").read_text())
        quota = int((group / "cpu.cfs_quota_us").read_text())
    assert quota >= 1000
    assert quota / period == pytest.approx(128 / 1769, rel=1e-3)


def test_v2_writes_cpu_max(tmp_path: Path) -> None:
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory\n")
    with cpu_share.cpu_share(0.5, cpu_share.Controller(2, tmp_path)):
        (group,) = [p for p in tmp_path.iterdir() if p.is_dir()]
        assert (group / "cpu.max").read_text() == "10000 20000"


def test_no_usable_controller_is_refused_with_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_share, "_mounts", lambda: [("tmpfs", "/sys/fs/cgroup", {"rw"})])
    with pytest.raises(cpu_share.CpuShareUnavailable, match=r"no cgroup filesystem.*as root.*cgroup v2"):
        cpu_share.find_controller()


def size(memory_mb: int, cold_s: float, p99_s: float, mean_s: float) -> Size:
    # 100 samples: 98 at the mean, the slowest two at p99, so the nearest-rank p99 is p99_s.
    samples = [mean_s] * 98 + [p99_s] * 2
    return Size(memory_mb, inits=[cold_s / 2], firsts=[cold_s / 2], warm={"GET /x": samples})


def test_cost_per_million_bills_whole_milliseconds() -> None:
    # 512 MB x 2 ms (1.2 ms rounded up) x 1M = 1,000 GB-s
    assert cost_per_million(size(512, 0.5, 0.002, 0.0012), GB_SECOND, REQUESTS) == pytest.approx(
        1000 * 0.0000133334 + 0.20
    )


def test_the_rule_takes_the_cheapest_size_within_both_budgets_and_says_why_others_miss() -> None:
    sizes = [
        size(256, 1.9, 0.025, 0.002),  # too slow to start
        size(512, 0.8, 0.008, 0.001),
        size(1024, 0.6, 0.008, 0.001),  # fits, costs more
        size(128, 0.9, 0.050, 0.001),  # warm p99 too high
    ]
    best, notes = choose(sizes, GB_SECOND, REQUESTS)
    assert best is not None and best.memory_mb == 512
    assert notes == [
        "256 MB: init + first request 1900 ms > 1000 ms",
        "128 MB: warm p99 50.0 ms > 30 ms",
    ]
    best, notes = choose(sizes[:1], GB_SECOND, REQUESTS)
    assert best is None and len(notes) == 1


@pytest.mark.parametrize("raw", ["", "64", "512,abc", "20000"])
def test_bad_sizes_are_refused_with_the_valid_range(raw: str) -> None:
    with pytest.raises(SystemExit, match=r"128 to 10240|separated by commas"):
        parse_sizes(raw)
