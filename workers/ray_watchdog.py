"""Ends the processes of a local Ray instance when the process that started it ends, even by
``kill -9``.

``ray.init`` starts a local instance's GCS server and raylet (and its monitors) as children of
the calling process, and Ray has the kernel kill those when their parent dies
(``PR_SET_PDEATHSIG``). What the raylet started is not covered: its workers (one may be in the
middle of training), the dashboard agent and the runtime-env agent outlive a killed server by
40 s to minutes. This watchdog covers them. ``start(owner_pid, token)`` runs it as a small
process beside the owner (``python -I`` on this file, standard library only, its own session,
so a terminal's Ctrl-C reaches only the server, which then shuts Ray down itself). Twice a
second it notes the owner's Ray processes: those whose environment carries ``token`` (the
owner sets ``NAS_RAY_OWNER`` while Ray starts, so every process Ray starts inherits it) and
every descendant of those. When the owner is gone it kills them all, and whatever else still
carries the token, then exits; when they are all gone while the owner lives (``ray.shutdown``),
it exits too. Linux only (``/proc``); elsewhere ``start`` does nothing.

Run as ``python -I ray_watchdog.py OWNER_PID TOKEN``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

#: The environment variable that marks a process as started by the owner's Ray.
OWNER_ENV = "NAS_RAY_OWNER"
#: How often the watchdog looks (seconds).
POLL_S = 0.5
#: How long the final sweep keeps looking for stragglers (seconds).
SWEEP_S = 3.0

#: ``pid -> (parent pid, start time, state)`` of every process.
ProcTable = dict[int, tuple[int, int, str]]


def supported() -> bool:
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")


def start(owner_pid: int, token: str) -> subprocess.Popen[bytes] | None:
    """Start the watchdog of ``owner_pid``'s Ray processes (those marked with ``token``)."""
    if not supported():
        return None
    return subprocess.Popen(
        [sys.executable, "-I", os.path.abspath(__file__), str(owner_pid), token],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def proc_table() -> ProcTable:
    table: ProcTable = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ... starttime(22nd field)"; comm may hold spaces and ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        try:
            table[int(name)] = (int(fields[1]), int(fields[19]), fields[0])
        except (IndexError, ValueError):
            continue
    return table


def _marked(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def _alive(table: ProcTable, pid: int, started: int) -> bool:
    entry = table.get(pid)
    return entry is not None and entry[1] == started and entry[2] not in ("Z", "X")


def _grow(table: ProcTable, known: dict[int, int]) -> dict[int, int]:
    """``known`` (``pid -> start time``) without the dead, with every live descendant."""
    alive = {pid: started for pid, started in known.items() if _alive(table, pid, started)}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(alive)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in alive and _alive(table, child, table[child][1]):
                alive[child] = table[child][1]
                todo.append(child)
    return alive


def _with_marked(table: ProcTable, known: dict[int, int], marker: bytes) -> dict[int, int]:
    me = os.getpid()
    found = dict(known)
    for pid, (_, started, state) in table.items():
        if pid != me and pid not in found and state not in ("Z", "X") and _marked(pid, marker):
            found[pid] = started
    return found


def watch(owner_pid: int, token: str) -> None:
    marker = f"{OWNER_ENV}={token}".encode()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    table = proc_table()
    known = _grow(table, _with_marked(table, {}, marker))
    while os.getppid() == owner_pid:
        time.sleep(POLL_S)
        table = proc_table()
        known = _grow(table, known)
        if not known:
            return  # Ray was shut down; the owner lives on
    # The owner is gone: Ray's own processes with it, and this sweep ends the rest.
    deadline = time.monotonic() + SWEEP_S
    while True:
        table = proc_table()
        known = _grow(table, _with_marked(table, known, marker))
        for pid, started in known.items():
            if _alive(table, pid, started):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
