"""``kill -9`` of a Ray-backed ``nas serve`` while a trial trains: within 10 s no process it
started (GCS, raylet, agents, workers) is alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from api.auth import create_key
from api.client import NasClient, tls_context
from api.db import make_engine, make_session_factory, session_scope, upgrade
from tests.api.conftest import free_port, standalone_spec, wait_for
from tests.conftest import REPO
from workers.ray_watchdog import proc_table


def _descendants(root: int) -> dict[int, int]:
    """``pid -> start time`` of every live descendant of ``root``."""
    table = proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if table[child][2] != "Z":
                found[child] = table[child][1]
                todo.append(child)
    return found


def _alive(processes: dict[int, int]) -> dict[int, int]:
    table = proc_table()
    return {
        pid: started
        for pid, started in processes.items()
        if pid in table and table[pid][1] == started and table[pid][2] not in ("Z", "X")
    }


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
    except OSError:
        return "?"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_ray_backed_server_leaves_no_process_it_started(
    tmp_path: Path, time_left: Callable[..., float]
) -> None:
    database = f"sqlite:///{tmp_path / 'nas.db'}"
    engine = make_engine(database)
    upgrade(engine)
    with session_scope(make_session_factory(engine, write=True)) as session:
        key = create_key(session, name="a")[1]
    engine.dispose()
    port, log = free_port(), tmp_path / "server.log"
    env = {
        **os.environ,
        "NAS_DATABASE_URL": database,
        "NAS_DATA_DIR": str(tmp_path / "data"),
        "NAS_BACKEND": "ray",
        "NAS_RAY_NUM_CPUS": "2",
        "NAS_POLL_INTERVAL_S": "0.1",
        "NAS_TORCH_THREADS": "1",
        "RAY_ADDRESS": "",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started: dict[int, int] = {}
    try:

        def healthy() -> bool:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                return (
                    httpx.get(
                        f"http://127.0.0.1:{port}/healthz", timeout=1, verify=tls_context()
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=time_left(120), interval=0.2)
        with NasClient(f"http://127.0.0.1:{port}", api_key=key) as client:
            spec = standalone_spec(trials=4, epochs=500, resources={"workers": 2})
            job_id = client.submit(spec)["id"]

            def training() -> bool:
                started.update(_descendants(server.pid))
                titles = [_cmdline(pid) for pid in started]
                return client.job(job_id)["trial_states"].get("RUNNING", 0) >= 1 and any(
                    t.startswith("ray::_run_trials") for t in titles
                )

            wait_for(training, timeout=time_left(120), interval=0.2)
            time.sleep(1.0)  # the agents and workers settle
            started.update(_descendants(server.pid))
        titles = {pid: _cmdline(pid) for pid in _alive(started)}
        assert any("raylet" in t for t in titles.values()), titles
        assert any("gcs_server" in t for t in titles.values()), titles
        assert any(t.startswith("ray::_run_trials") for t in titles.values()), titles

        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        killed_at = time.monotonic()
        while _alive(started) and time.monotonic() - killed_at < 10:
            time.sleep(0.2)
        left = {pid: titles.get(pid) or _cmdline(pid) for pid in _alive(started)}
        assert not left, f"alive 10 s after kill -9: {left}"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        for pid in _alive(started):  # whatever the watchdog missed: not left to others
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
