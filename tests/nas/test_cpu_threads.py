"""Torch's CPU thread count (issue 17 item 5d): fixed by default (one, or what Ray's
OMP_NUM_THREADS gives a task), so a seeded search repeats; ``NAS_TORCH_THREADS=auto`` follows
the cores actually free."""

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


def test_the_default_is_one_thread_or_what_ray_gives_a_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.set_num_threads(2)
    assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what Ray sets in a task given two CPUs
    assert configure_cpu_threads() == 2 and torch.get_num_threads() == 2


def test_the_thread_count_changes_gradients_which_is_why_it_is_fixed() -> None:
    """The reason for the fixed default: the same seeded network and batch give different
    gradients on one and on two threads (so a load-dependent count would not repeat)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(1, 32, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.Conv1d(32, 64, 5, padding=2),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * 40, 10),
    )
    x = torch.randn(128, 1, 40)
    grads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        loss = net(x).square().mean()
        grads.append(torch.autograd.grad(loss, list(net.parameters())))
    assert not all(torch.equal(a, b) for a, b in zip(*grads))


def test_an_explicit_count_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("NAS_TORCH_THREADS", "1")
    assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    assert configure_cpu_threads(2) == 2


def test_a_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_TORCH_THREADS", "many")
    with pytest.raises(ValueError, match="NAS_TORCH_THREADS must be a positive whole number"):
        configure_cpu_threads()


def test_ray_s_omp_num_threads_caps_the_free_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in a task given one CPU
    assert cpu_threads_free() == 1


def test_auto_leaves_out_cores_kept_busy_by_other_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NAS_TORCH_THREADS", "auto")
    cores = len(os.sched_getaffinity(0))
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        time.sleep(0.3)  # they are running
        assert cpu_threads_free() == 1
        assert configure_cpu_threads() == 1 and torch.get_num_threads() == 1
    finally:
        for p in spinners:
            p.kill()
            p.wait()
