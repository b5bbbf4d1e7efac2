"""Torch's CPU thread count follows the cores actually free (issue 17 item 5d)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch

from nas import training
from nas.training import configure_cpu_threads, cpu_threads_free, free_cores


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    before = torch.get_num_threads()
    monkeypatch.delenv("NAS_TORCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(training, "_measured", None)
    yield
    torch.set_num_threads(before)


def test_free_cores_counts_idle_cores_and_our_own_use() -> None:
    # Two cores over 0.1 s (10 jiffies each): core 0 idle 9 of 10, core 1 idle 1 of 10.
    before = {0: (100, 1000), 1: (50, 1000)}
    after = {0: (109, 1010), 1: (51, 1010)}
    assert free_cores(before, after, 0.0, 0.1) == pytest.approx(1.0)
    # Half of core 1's busy time was this process's own: it is ours to use.
    assert free_cores(before, after, 0.05, 0.1) == pytest.approx(1.5)


def test_an_explicit_count_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_TORCH_THREADS", "1")
    assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    assert configure_cpu_threads(2) == 2


def test_ray_s_omp_num_threads_caps_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in a task given one CPU
    assert cpu_threads_free() == 1


def test_cores_kept_busy_by_other_processes_are_not_used() -> None:
    cores = len(os.sched_getaffinity(0))
    spin = "import time\nend = time.time() + 3\nwhile time.time() < end: pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        time.sleep(0.3)  # they are running
        assert cpu_threads_free() == 1
        assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    finally:
        for p in spinners:
            p.kill()
            p.wait()
