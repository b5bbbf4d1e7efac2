"""Helpers shared by the service benchmarks (``api_load.py``, ``overhead.py``): scratch
PostgreSQL databases, a server subprocess, and CPU accounting from Linux ``/proc``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CLK = os.sysconf("SC_CLK_TCK")


# --- scratch databases -------------------------------------------------------------------------
def sqlalchemy_url(admin_url: str, database: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    for prefix in ("postgresql://", "postgres://"):
        if base.startswith(prefix):
            base = base.replace(prefix, "postgresql+psycopg://", 1)
    return f"{base}/{database}"


def psycopg_url(admin_url: str, database: str) -> str:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://", 1)
    return f"{base}/{database}"


def create_database(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- CPU accounting ----------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_s(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process."""
    out = {}
    for pid in pids:
        if (fields := _stat(pid)) is not None:
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK
    return out


def machine_busy_s() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK  # all but idle and iowait


# --- the server --------------------------------------------------------------------------------
class ServerProcess:
    """A server command in its own session (so that its children, uvicorn workers or Ray's
    processes, stop with it), logging to ``log_path``."""

    def __init__(
        self, command: list[str], env: dict[str, str], log_path: Path, *, port: int, label: str
    ) -> None:
        self.port, self.label, self.log_path = port, label, log_path
        self.base = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(
        self, timeout: float = 180.0, settle_s: float = 0.0, path: str = "/healthz"
    ) -> float:
        """Seconds until ``path`` answers 200 (then waits ``settle_s`` more)."""
        t = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.base}{path}", timeout=2.0).status_code == 200:
                    elapsed = time.perf_counter() - t
                    time.sleep(settle_s)
                    return elapsed
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no {path} answer in {timeout:g} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def stop(self) -> str:
        how = "already exited"
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(45)
                how = "SIGTERM"
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                how = "SIGKILL after SIGTERM timed out"
        try:  # anything of the server's session still alive
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        return how
