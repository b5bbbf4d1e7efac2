"""Fixtures for the service: a fresh database per test on SQLite and on PostgreSQL, and a
real HTTP server (uvicorn in a thread) with the job runner inside.

PostgreSQL is the one at ``NAS_TEST_PG`` (default 127.0.0.1:5432, user postgres); each test
gets its own database, dropped afterwards. It never skips: CI starts the server first.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from api.app import create_app
from api.client import NasClient, tls_context
from api.http_protocol import BoundedHeadProtocol
from api.settings import Settings
from tests.conftest import NB201_TABLE

PG_ADMIN = os.environ.get("NAS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; its SQLAlchemy URL."""
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(autouse=True)
def _nb201_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_NB201_TABLE", str(NB201_TABLE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "poll_interval_s": 0.1,
        "flush_interval_s": 0.1,
        "job_lease_s": 2.0,
        "auth": "keys",
        "backend": "inline",
    }
    values.update(overrides)
    return Settings(**values)


class PollingClient(NasClient):
    """The service's client, but ``wait`` and ``wait_trial`` poll every 0.05 s instead of
    0.5 s: a test goes on as soon as its job has finished, not at the next half second
    (about 0.25 s saved per wait; more than 100 waits in the suite)."""

    def wait(self, job_id: int, *, timeout: float | None = None, poll: float = 0.05) -> dict:
        return super().wait(job_id, timeout=timeout, poll=poll)

    def wait_trial(
        self, trial_id: int, *, timeout: float | None = None, poll: float = 0.05
    ) -> dict[str, Any]:
        return super().wait_trial(trial_id, timeout=timeout, poll=poll)


class _PromptServer(uvicorn.Server):
    """uvicorn's server, quicker to stop: uvicorn looks at ``should_exit`` every 0.1 s and
    then sleeps 0.1 s more before it waits for open connections, 0.2 s per stop that the
    suite's ~700 servers spent idle. This one looks every 10 ms and waits only for what is
    still open (at most ``STOP_S``, then cancels it), then runs the app's shutdown as
    uvicorn does."""

    STOP_S = 30.0

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.STOP_S
        while self.server_state.connections or self.server_state.tasks:
            if time.monotonic() > deadline:
                for task in self.server_state.tasks:
                    task.cancel()
                break
            await asyncio.sleep(0.01)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


class LiveServer:
    """uvicorn serving ``create_app(settings)`` on a free port (or ``port``: a server started
    again where one stopped), in a thread. Its socket is bound here and handed to uvicorn: a
    port chosen free and bound later was taken in between by another process of the suite
    once ("address already in use", a CI run red)."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port or 0))
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=BoundedHeadProtocol,  # (as nas serve's)
        )
        self.server = _PromptServer(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.socket.close()  # (closed with its server once it started; a never-started one's)

    def client(self, api_key: str | None = None) -> NasClient:
        return PollingClient(self.url, api_key=api_key or "")

    def create_key(self, name: str, *, admin: bool = False) -> str:
        from api.auth import create_key
        from api.db import session_scope

        with session_scope(self.app.state.nas.write) as session:
            return create_key(session, name=name, admin=admin)[1]


@pytest.fixture
def server_factory(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """``server_factory(**settings)`` starts a live server on this test's database."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        server = LiveServer(make_settings(database_url, tmp_path / "data", **overrides))
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: Any) -> LiveServer:
    return server_factory()


@pytest.fixture
def user_key(server: LiveServer) -> str:
    return server.create_key("user-a")


@pytest.fixture
def client(server: LiveServer, user_key: str) -> Iterator[NasClient]:
    with server.client(user_key) as c:
        yield c


@pytest.fixture
def http(server: LiveServer, user_key: str) -> Iterator[httpx.Client]:
    """Plain HTTP as the user, for what the client would not send (bad bodies, headers)."""
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {user_key}"},
        timeout=60,
        verify=tls_context(),
    ) as c:
        yield c


def nb201_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "nb201-random",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular"},
        "budget": {"trials": 300},
        "seed": 0,
    }
    spec.update(overrides)
    return spec


@contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``nas serve --port 0 ARGS`` in a process of its own, once it has printed its URL:
    the process (its output merged into ``stdout``) and the URL; killed on the way out if it
    still runs."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "nas"), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()
            assert line, "nas serve ended before printing its URL"
            if "listening on http://" in line:
                url = line.split("listening on ")[1].split()[0]
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def standalone_spec(trials: int = 12, epochs: int = 3, **overrides: Any) -> dict[str, Any]:
    """Small standalone training trials on scikit-learn's digits (~0.3-1 s each)."""
    spec: dict[str, Any] = {
        "name": "digits-standalone",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 8, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": epochs, "batch_size": 64},
        "budget": {"trials": trials},
        "seed": 1,
    }
    spec.update(overrides)
    return spec


def wait_for(predicate: Any, timeout: float = 60.0, interval: float | None = None) -> Any:
    """``predicate()``'s first true value, asked every ``interval`` seconds; by default
    from 0.05 s, half as long again each time, up to 0.25 s: a predicate is mostly an HTTP
    request (about 5 ms of CPU, client and server), and at a fixed 0.05 s the suite's
    waits kept a core a tenth busy."""
    deadline = time.monotonic() + timeout
    pause = 0.05 if interval is None else interval
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, 0.25)
    raise AssertionError(f"condition not met within {timeout} s")


def cluster_processes(cluster: Any, *titles: bytes) -> list[int]:
    """PIDs of ``cluster``'s Ray worker processes whose title starts with one of ``titles``
    (Ray titles a process ``ray::<actor class>`` or ``ray::<task>``): children of its nodes'
    raylets only, so that two test files running side by side (pytest-xdist), each with its
    own ``ray.cluster_utils.Cluster``, never count or kill each other's processes."""
    raylets = {
        str(node.all_processes["raylet"][0].process.pid) for node in cluster.list_all_nodes()
    }
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if not (proc / "cmdline").read_bytes().startswith(titles):
                continue
            parent = next(
                line.split()[1]
                for line in (proc / "status").read_text().splitlines()
                if line.startswith("PPid:")
            )
        except (OSError, StopIteration, IndexError):
            continue  # gone meanwhile
        if parent in raylets:
            found.append(int(proc.name))
    return found


def kill_cluster_processes(cluster: Any, title: bytes) -> int:
    """SIGKILL ``cluster``'s processes titled ``title`` (``cluster_processes``), found first
    and killed after, so that a process Ray restarts meanwhile is not killed too."""
    import signal

    killed = 0
    for pid in cluster_processes(cluster, title):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    return killed
