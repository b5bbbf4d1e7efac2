"""The documented multi-machine setup, on one machine: ``ray start --head`` in a subprocess
and ``nas serve --ray-address`` joining it; trials run on that cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.auth import create_key
from api.client import NasClient, tls_context
from api.db import make_engine, make_session_factory, session_scope, upgrade
from tests.api.conftest import free_port, nb201_spec, wait_for
from tests.conftest import REPO


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@dataclass
class Head:
    """A head started by ``ray start --head`` (one CPU), and the environment that has its
    token (``RAY_AUTH_MODE=token``: Ray then finds the token the head wrote,
    ~/.ray/auth_token, as on a real second machine)."""

    port: int
    env: dict[str, str]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    ray_port = free_port()
    ray_bin = Path(sys.executable).parent / "ray"
    env = {**os.environ, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "token"}
    # On SIGTERM the head first drains its node for 30 s (for Ray Serve): the test's stop,
    # which signals the whole process group, GCS included, waited it out every run.
    head_env = {**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    # A fresh machine has no token yet: make one, as the README's setup does.
    subprocess.run(
        [str(ray_bin), "get-auth-token", "--generate"], capture_output=True, check=True, env=env
    )
    log = tmp_path_factory.mktemp("head") / "ray.log"
    process = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            f"--port={ray_port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--block",
            "--disable-usage-stats",
        ],
        cwd=REPO,
        env=head_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text(), timeout=120, interval=0.5)
        yield Head(ray_port, env)
    finally:
        _stop(process)


@pytest.mark.slow
@pytest.mark.timeout(450)  # a loaded machine; each wait is sized by time_left
def test_nas_serve_joins_a_cluster_started_with_ray_start(
    head: Head, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    ray_port, env, api_port = head.port, head.env, free_port()
    database = f"sqlite:///{tmp_path / 'nas.db'}"
    engine = make_engine(database)
    upgrade(engine)
    with session_scope(make_session_factory(engine, write=True)) as session:
        key = create_key(session, name="a")[1]
    engine.dispose()
    server = None
    try:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(api_port),
                "--ray-address",
                f"127.0.0.1:{ray_port}",
            ],
            cwd=REPO,
            env={**env, "NAS_DATABASE_URL": database, "NAS_DATA_DIR": str(tmp_path / "data")},
            stdout=(tmp_path / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def healthy() -> bool:
            assert server is not None and server.poll() is None, (
                tmp_path / "serve.log"
            ).read_text()
            try:
                return (
                    httpx.get(
                        f"http://127.0.0.1:{api_port}/healthz", verify=tls_context()
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=time_left(120), interval=0.5)
        with NasClient(f"http://127.0.0.1:{api_port}", api_key=key) as client:
            job_id = client.submit(nb201_spec(budget={"trials": 600}))["id"]
            job = client.wait(job_id, timeout=time_left())
            assert job["state"] == "SUCCEEDED", job["reason"]
            trials = list(client.all_trials(job_id))
        assert [t["number"] for t in trials] == list(range(600))
        workers = {t["worker"] for t in trials}
        assert all(w.startswith("ray:") for w in workers), workers
        assert "backend: ray" in (tmp_path / "serve.log").read_text()
    finally:
        if server is not None:
            _stop(server)


@pytest.mark.timeout(120)
def test_nas_serve_with_another_token_than_the_heads_says_so_at_once(
    head: Head, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """Ray's own connect warned once a second for 20 s, then ended in a traceback."""
    env = {
        **head.env,
        "RAY_AUTH_TOKEN": "0" * 32,
        "NAS_DATABASE_URL": f"sqlite:///{tmp_path / 'nas.db'}",
        "NAS_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(free_port())]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--ray-address", f"127.0.0.1:{head.port}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=time_left(100),
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 15  # 20 s of Ray's retries before
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the Ray cluster at 127.0.0.1:{head.port} refused")
    assert "InvalidAuthToken" in last and "RAY_AUTH_TOKEN" in last
    assert "Traceback" not in done.stderr


def test_nas_serve_without_a_token_in_token_mode_says_so_in_one_line(
    head: Head, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RAY_AUTH_MODE=token with RAY_AUTH_TOKEN empty (the README's own export line, the
    token left out) and no token file: Ray's loader failed a C++ check, 34 lines of native
    stack calling it "a bug in Ray". (In this process: the check comes before Ray's.)"""
    from api.cli import main

    home = tmp_path / "home"  # (no ~/.ray/auth_token there)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("NAS_DATABASE_URL", f"sqlite:///{tmp_path / 'nas.db'}")
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "data"))
    args = ["serve", "--port", str(free_port()), "--ray-address", f"127.0.0.1:{head.port}"]
    assert main(args) == 1
    err = capsys.readouterr().err
    expected = (
        f"error: cannot join the Ray cluster at 127.0.0.1:{head.port}: RAY_AUTH_MODE is "
        f"token, but this process has none: RAY_AUTH_TOKEN is empty and "
        f"'{home / '.ray' / 'auth_token'}' cannot be read (No such file or directory); give "
        "this server the head's token (`ray get-auth-token` on the head prints it)"
    )
    assert err.strip().splitlines() == [expected], err
