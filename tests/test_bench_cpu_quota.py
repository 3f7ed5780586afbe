"""bench/cpu_quota.py on this machine's real cgroups: a confined process runs in a group of its own with the quota,
and every group is gone afterwards, whether the benchmark ended, was interrupted (Ctrl-C, SIGTERM) or was killed
outright. Skipped where no cgroup cpu controller is writable (the benchmarks then run without quotas)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.cpu_quota import PERIOD_US, PREFIX, CpuQuotas

ROOT = Path(__file__).resolve().parent.parent
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture(autouse=True)
def writable_cgroups():
    quotas = CpuQuotas(0.4)
    if not quotas.available:
        pytest.skip(quotas.reason)


def group_of(pid: int, timeout: float = 10.0) -> str:
    """The name of the benchmark's group `pid` runs in, once its shell has put it there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            path = line.split(":", 2)[2]
            if PREFIX in path:
                return path.rsplit("/", 1)[1]
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never joined a benchmark group")


def quota_of(group: Path) -> tuple[int, int]:
    """(quota, period) in microseconds, whichever the hierarchy."""
    if (group / "cpu.max").exists():
        quota, period = (group / "cpu.max").read_text().split()
        return int(quota), int(period)
    return int((group / "cpu.cfs_quota_us").read_text()), int((group / "cpu.cfs_period_us").read_text())


def test_a_confined_process_runs_in_a_group_of_its_own_with_the_quota_and_the_group_goes_after():
    with CpuQuotas(0.4) as quotas:
        child = subprocess.Popen(quotas.confined(SLEEPER, "probe"))
        try:
            (group,) = quotas.groups
            assert group_of(child.pid) == group.name
            assert quota_of(group) == (round(0.4 * PERIOD_US), PERIOD_US)
        finally:
            child.kill()
            child.wait()
    assert not group.exists()


def test_a_process_still_running_at_the_end_is_moved_out_and_the_group_removed():
    with CpuQuotas(0.4) as quotas:
        child = subprocess.Popen(quotas.confined(SLEEPER, "left"))
        (group,) = quotas.groups
        group_of(child.pid)
    try:
        assert not group.exists()
        assert child.poll() is None, "the process itself is left alone"
        assert PREFIX not in Path(f"/proc/{child.pid}/cgroup").read_text()
    finally:
        child.kill()
        child.wait()


# A benchmark in miniature: quotas, then a confined server process, then a wait for the signal.
BENCHMARK = textwrap.dedent(
    f"""
    import sys, time
    from bench.common import process
    from bench.cpu_quota import CpuQuotas

    with CpuQuotas(0.4) as quotas, process(quotas.confined({SLEEPER!r}, "replica")) as child:
        print(quotas.groups[0], child.pid, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_benchmark_leaves_no_group(number):
    benchmark = subprocess.Popen(
        [sys.executable, "-c", BENCHMARK], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        group, pid = benchmark.stdout.readline().split()
        assert group_of(int(pid)) == Path(group).name
        benchmark.send_signal(number)
        benchmark.wait(30)
        assert not Path(group).exists(), benchmark.stderr.read()
    finally:
        benchmark.kill()
        benchmark.wait()


def test_groups_of_a_run_killed_outright_are_removed_by_the_next():
    benchmark = subprocess.Popen([sys.executable, "-c", BENCHMARK], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    group, pid = benchmark.stdout.readline().split()
    benchmark.kill()  # no clean-up: its group stays, with its replica in it
    benchmark.wait()
    try:
        assert Path(group).exists()
        with CpuQuotas(0.4):
            assert not Path(group).exists()
    finally:
        os.kill(int(pid), signal.SIGKILL)
