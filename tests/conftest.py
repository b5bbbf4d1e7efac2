"""Shared fixtures: the NAS-Bench-201 table from ../shared (never copied into the repo);
``time_left``, which sizes a test's waits to fit its timeout."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NB201_TABLE = Path(
    os.environ.get("NAS_NB201_TABLE", REPO.parent / "shared/data/nb201/nb201_tabular.csv.gz")
)


@pytest.fixture(scope="session")
def nb201_table() -> Path:
    if not NB201_TABLE.is_file():
        pytest.fail(f"NAS-Bench-201 table not found at {NB201_TABLE}; set NAS_NB201_TABLE")
    return NB201_TABLE


@pytest.fixture(autouse=True)
def _isolated_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Generated datasets go to one cache per test session, not the user's cache dir."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nas-cache"))


def local_ray(tmp_path_factory: pytest.TempPathFactory, num_cpus: int) -> Iterator[None]:
    """The body of a module's ``ray_instance`` fixture (``yield from``): a local Ray instance
    of ``num_cpus`` CPUs whose workers use the session's dataset cache (they inherit the
    environment at its start), shut down after the module unless one was running already."""
    import ray

    from workers.ray_backend import ensure_ray

    with pytest.MonkeyPatch.context() as env:
        env.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nas-cache"))
        started = ensure_ray(num_cpus=num_cpus)
    yield
    if started:
        ray.shutdown()


#: Ray system config for the tests' clusters: a killed node is found dead in about 1.5 s, not
#: Ray's default 15-20 s (5 missed health checks, 3 s apart, after a 5 s grace). A slow answer
#: is not a miss (each check still waits up to Ray's 10 s), so a loaded machine loses no node.
FAST_NODE_DEATH = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
}


def sigint_as_from_a_terminal(argv: list[str]) -> list[str]:
    """``argv`` run with SIGINT's default action, as a terminal's Ctrl-C finds a command: a
    pytest-xdist worker ignores SIGINT, and a child inherits that, so it would never hear
    the test's interrupt. (Set in the child itself, then exec'd: Popen's ``preexec_fn`` is
    unsafe in a process with threads, as a test's live server has.)"""
    reset = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", reset, *argv]


#: The longest files (measured with ``make test``'s ``--durations``), collected first:
#: pytest-xdist hands whole files to its workers in collection order, so a long file handed
#: out last kept one worker busy alone at the end. Within a file the order stays.
LONGEST_FILES = (
    "tests/api/dashboard/test_browser.py",
    "tests/api/test_ray.py",
    "tests/api/test_crash.py",
    "tests/api/test_cli_errors.py",
    "tests/api/test_cli_usability.py",
    "tests/api/test_fuzz_postgresql.py",
    "tests/api/test_ray_supernet.py",
    "tests/api/test_fuzz.py",
    "tests/api/test_runner.py",
    "tests/workers/test_backend_contract.py",
    "tests/api/test_rl2_meta_jobs.py",
    "tests/controllers/test_optuna.py",
    "tests/api/test_errors.py",
    "tests/api/test_export_api.py",
    "tests/api/test_hardening.py",
    "tests/api/test_warmstart.py",
    "tests/api/test_meta_crash.py",
    "tests/workers/test_supernet_group.py",
    "tests/api/test_ray_start.py",
    "tests/api/test_trial_failures.py",
    "tests/api/test_crash_warmstart.py",
    "tests/nas/test_export.py",
    "tests/api/test_ray_orphans.py",
    "tests/controllers/test_metaqnn.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


#: Time a test keeps for its teardown (stopping servers, a Ray cluster) after its last wait.
TEARDOWN_S = 60.0

_STARTED = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # pytest-timeout's clock covers setup, call and teardown: it starts here.
    item.stash[_STARTED] = time.monotonic()


def _timeout_s(item: pytest.Item) -> float | None:
    """The test's pytest-timeout: its ``timeout`` marker, else ``--timeout``, else the ini's."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    else:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    return float(value) if value else None


@pytest.fixture
def time_left(request: pytest.FixtureRequest) -> Callable[..., float]:
    """``time_left(at_most)``: how long a wait may take, at most ``at_most`` seconds, so that
    the test still ends (``TEARDOWN_S`` for its teardown) before its pytest-timeout. Size
    every long wait with it: a test's waits then never add up to more than its timeout,
    however slow a loaded machine makes them, and a wait that runs out fails with its own
    message instead of the timeout's thread dump."""
    timeout = _timeout_s(request.node)
    started = request.node.stash.get(_STARTED, time.monotonic())

    def left(at_most: float = math.inf) -> float:
        if timeout is None:
            return at_most
        return max(1.0, min(at_most, started + timeout - TEARDOWN_S - time.monotonic()))

    return left
