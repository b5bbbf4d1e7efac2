"""Load test of the service on PostgreSQL: trial ingestion rate and trial-listing latency.

1. Ingestion: a fresh database ``nas_bench_<random>`` (schema upgraded, one API key, one job
   owned by it), then ``--trials`` trial rows of the shape the job runner writes
   (``api.runner._row``: NAS-Bench-201 architecture JSON, metrics, objective, mostly COMPLETE
   with some FAIL) inserted ``--batch`` rows per transaction through
   ``TrialRepository.add_records`` inside ``session_scope(write factory)``, with the job's
   counters (``n_trials``, ``state_counts``, progress, best) updated by
   ``JobRepository.set_fields`` in the same transaction, as the runner's ``_flush`` does.
   Target: >= 1,000 trials/s.
2. Read latency: the real server in a subprocess (``nas serve``, or uvicorn with
   ``--workers N`` for ``--server-workers N``), ``NAS_RUN_JOBS=false``, authentication on,
   and ``--clients`` concurrent clients (one keep-alive HTTP/1.1 connection each, on a small
   ``asyncio.Protocol`` client over uvloop that costs little CPU; closed loop, no think time unless ``--think-ms``) paging the job's trials
   for ``--seconds``: keyset pages (``after=<random>``), offset pages at random depths, pages
   filtered by ``state=COMPLETE`` and first pages sorted by ``objective`` descending.
   Target: p99 <= 100 ms. The load generator runs on the same machine and shares its cores
   with the server and PostgreSQL; the CPU each used is printed.

The database is dropped at the end unless ``--keep``.

    .venv/bin/python bench/api_load.py
    .venv/bin/python bench/api_load.py --trials 20000 --seconds 10 --server-workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import description, non_negative_float, positive_float
from _service import (
    CLK,
    DEFAULT_PG,
    REPO,
    ServerProcess,
    cpu_s,
    create_database,
    drop_database,
    free_port,
    machine_busy_s,
    sqlalchemy_url,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg

from api.auth import create_key
from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import JobModel, JobState
from api.repositories import JobRepository, TrialRepository
from nas.architecture import Architecture
from nas.trial import TrialRecord, TrialResult, TrialState
from workers.search import parse_spec

INGEST_TARGET = 1_000.0  # trials/s
P99_TARGET_MS = 100.0
PAGE = 50

#: Request kinds of the read mix and their weights.
MIX: dict[str, float] = {
    "keyset": 0.35,  # sort=number, after=<random number>
    "offset": 0.25,  # sort=number, offset=<random depth>
    "complete_keyset": 0.10,  # state=COMPLETE, after=<random number>
    "complete_offset": 0.05,  # state=COMPLETE, offset=<random depth>
    "objective_top": 0.25,  # sort=objective&order=desc, one of the first 5 pages
}


# --- database ----------------------------------------------------------------------------------
def job_spec(trials: int) -> dict[str, Any]:
    spec = {
        "name": "bench-api-load",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular"},
        "budget": {"trials": trials},
        "seed": 0,
    }
    return parse_spec(spec).to_dict()


def trial_record(number: int, rng: random.Random, t0: float, worker: str) -> TrialRecord:
    """One record as the search loop makes it for a tabular NAS-Bench-201 trial."""
    choices = [rng.randrange(5) for _ in range(6)]
    started = t0 + 0.002 * number
    if rng.random() < 0.03:
        result = TrialResult.failed("RuntimeError: simulated evaluation failure")
    else:
        acc = rng.uniform(10.0, 91.7)
        metrics = {
            "val_accuracy": acc,
            "params_M": rng.uniform(0.07, 1.53),
            "flops_M": rng.uniform(7.8, 220.1),
            "latency_s": rng.uniform(0.005, 0.03),
        }
        result = TrialResult(TrialState.COMPLETE, acc, metrics)
    result = dataclasses.replace(result, cost_s=rng.uniform(60.0, 240.0), simulated=True)
    return TrialRecord(
        number=number,
        candidate_id=number,
        architecture=Architecture("nb201", tuple(choices), 1),
        hparams={},
        result=result,
        started_at=started,
        finished_at=started + 0.001,
        worker=worker,
    )


def ingest(url: str, trials: int, batch: int, seed: int) -> dict[str, Any]:
    """Create key and job, insert the trials; returns the figures, the job id and the key."""
    engine = make_engine(url)
    try:
        t = time.perf_counter()
        upgrade(engine)
        upgrade_s = time.perf_counter() - t
        write = make_session_factory(engine, write=True)
        with session_scope(write) as session:
            key_row, key = create_key(session, name="bench-api-load")
            job = JobRepository(session).add(
                JobModel(
                    name="bench-api-load",
                    owner_id=key_row.id,
                    spec=job_spec(trials),
                    state=JobState.RUNNING.value,
                    state_counts={},
                    started_at=datetime.now(UTC),
                    runner=f"bench:{os.getpid()}:load",
                    heartbeat_at=datetime.now(UTC),
                )
            )
            job_id = job.id
        rng = random.Random(seed)
        worker = f"inline@{socket.gethostname()}:{os.getpid()}"
        t0 = time.time()
        counts: dict[str, int] = {}
        best: tuple[int, float] | None = None
        db_s, batch_s = 0.0, []
        started = time.perf_counter()
        for first in range(0, trials, batch):
            records = [
                trial_record(n, rng, t0, worker) for n in range(first, min(first + batch, trials))
            ]
            for r in records:
                counts[r.result.state.value] = counts.get(r.result.state.value, 0) + 1
                value = r.result.objective
                if value is not None and (best is None or value > best[1]):
                    best = (r.number, value)
            t = time.perf_counter()
            with session_scope(write) as session:
                TrialRepository(session).add_records(job_id, records)
                JobRepository(session).set_fields(
                    job_id,
                    n_trials=sum(counts.values()),
                    state_counts={k: v for k, v in counts.items() if v},
                    progress=round((first + len(records)) / trials, 4),
                    best_trial_number=None if best is None else best[0],
                    best_value=None if best is None else best[1],
                    heartbeat_at=datetime.now(UTC),
                )
            dt = time.perf_counter() - t
            db_s += dt
            batch_s.append(dt)
        wall = time.perf_counter() - started
        with session_scope(write) as session:
            JobRepository(session).set_fields(
                job_id,
                state=JobState.SUCCEEDED.value,
                reason="bench: all trials recorded",
                finished_at=datetime.now(UTC),
                runner=None,
                heartbeat_at=None,
                progress=1.0,
            )
        # The API never counts rows: the totals it answers come from the job row.
        with session_scope(write) as session:
            stored = TrialRepository(session).state_counts(job_id)
        t = time.perf_counter()
        # What autovacuum does within a minute of such a load (its insert threshold; it is
        # off on these machines' PostgreSQL): statistics, and the visibility map that lets
        # deep offsets skip rows with index-only scans.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE nas_trials"
            )
        analyze_s = time.perf_counter() - t
    finally:
        engine.dispose()
    batch_s.sort()
    return {
        "job_id": job_id,
        "key": key,
        "trials": trials,
        "batch": batch,
        "batches": len(batch_s),
        "wall_s": wall,
        "db_s": db_s,
        "rate": trials / wall,
        "db_rate": trials / db_s,
        "batch_p50_ms": 1000 * batch_s[len(batch_s) // 2],
        "batch_max_ms": 1000 * batch_s[-1],
        "upgrade_s": upgrade_s,
        "analyze_s": analyze_s,
        "counts": counts,
        "stored_counts": stored,
    }


# --- server ------------------------------------------------------------------------------------
def start_server(url: str, workers: int, data_dir: Path, log_path: Path) -> ServerProcess:
    """``nas serve`` (1 worker) or ``uvicorn --factory api.app:create_app --workers N``."""
    port = free_port()
    env = {
        "NAS_DATABASE_URL": url,
        "NAS_RUN_JOBS": "false",
        "NAS_AUTH": "keys",
        "NAS_DATA_DIR": str(data_dir),
    }
    venv = REPO / ".venv" / "bin"
    if workers == 1:
        command = [str(venv / "nas"), "serve", "--port", str(port)]
        label = "nas serve (uvicorn, 1 process)"
    else:
        command = [
            *(str(venv / "python"), "-m", "uvicorn", "--factory", "api.app:create_app"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            *("--log-level", "warning", "--no-access-log"),
        ]
        label = f"uvicorn --factory api.app:create_app --workers {workers}"
    return ServerProcess(command, env, log_path, port=port, label=label)


# --- CPU accounting (Linux /proc) --------------------------------------------------------------
def proc_cpu_s(pids: list[int]) -> float:
    return sum(cpu_s(pids).values())


def database_backends(database: str) -> list[int]:
    """PostgreSQL backend processes connected to ``database`` (their title names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres:") and f" {database} ".encode() in title:
                pids.append(int(entry))
    return pids


def postgres_cpu_s() -> float:
    """CPU of every PostgreSQL process on this machine, plus what the postmaster reaped
    (backends and parallel workers that exited), all databases together."""
    procs: dict[int, tuple[str, int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            procs[int(entry)] = (comm, int(fields[1]), fields)
    total = 0
    for comm, ppid, fields in procs.values():
        if comm != "postgres":
            continue
        total += int(fields[11]) + int(fields[12])
        if procs.get(ppid, ("",))[0] != "postgres":  # the postmaster: add its reaped children
            total += int(fields[13]) + int(fields[14])
    return total / CLK


def pg_sessions(admin_url: str, database: str) -> int:
    """Connections ever opened to ``database`` (PostgreSQL >= 14), or -1."""
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
            ).fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row and row[0] is not None else -1


# --- read load ---------------------------------------------------------------------------------
def request_params(kind: str, rng: random.Random, n: int, n_complete: int) -> dict[str, Any]:
    if kind == "keyset":
        return {"limit": PAGE, "after": rng.randrange(-1, n)}
    if kind == "offset":
        return {"limit": PAGE, "offset": rng.randrange(0, max(1, n - PAGE))}
    if kind == "complete_keyset":
        return {"limit": PAGE, "state": "COMPLETE", "after": rng.randrange(-1, n)}
    if kind == "complete_offset":
        return {
            "limit": PAGE,
            "state": "COMPLETE",
            "offset": rng.randrange(0, max(1, n_complete - PAGE)),
        }
    if kind == "objective_top":
        return {
            "limit": PAGE,
            "sort": "objective",
            "order": "desc",
            "offset": PAGE * rng.randrange(5),
        }
    raise ValueError(kind)


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: the load generator's client.

    Written on ``asyncio.Protocol`` rather than httpx so that the generator, which shares the
    machine's cores with the server and PostgreSQL, costs about a tenth of the CPU per request
    (httpx: about 1.5 ms; this: about 0.1 ms), as wrk or any other load tool in C would. It
    reads ``Content-Length`` bodies, which is all the server sends for these requests."""

    def __init__(self, host: str, headers: dict[str, str]) -> None:
        self.prefix = b""
        self.suffix = (
            f" HTTP/1.1\r\nHost: {host}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length_at = head.find(b"\r\ncontent-length:")
        if length_at < 0:
            self.waiter.set_exception(ConnectionError("response without Content-Length"))
            return
        line_end = head.find(b"\r\n", length_at + 2)
        length = int(head[length_at + 17 : line_end if line_end > 0 else None])
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(head[9:12]), body))

    async def get(self, target: str) -> tuple[int, bytes]:
        assert self.transport is not None and self.waiter is None
        if self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(b"GET " + target.encode() + self.suffix)
        return await self.waiter


async def run_load(
    base: str,
    key: str,
    job_id: int,
    n: int,
    n_complete: int,
    clients: int,
    seconds: float,
    warmup: float,
    think_ms: float,
    seed: int,
    cpu_snapshot: Any,
) -> dict[str, Any]:
    kinds, weights = list(MIX), list(MIX.values())
    path = f"/api/v1/jobs/{job_id}/trials"
    url = urlsplit(base)
    samples: list[tuple[str, float]] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    lag: list[float] = []

    async def user(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        transport, conn = await loop.create_connection(
            lambda: HttpConnection(url.netloc, headers), url.hostname, url.port
        )
        try:
            while True:
                now = loop.time()
                if now >= stop_at:
                    return
                kind = rng.choices(kinds, weights)[0]
                target = path + "?" + urlencode(request_params(kind, rng, n, n_complete))
                t = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(conn.get(target), 30.0)
                    ok = status == 200 and body.startswith(b"{") and body.endswith(b"}")
                    err = None if ok else f"HTTP {status}"
                except (OSError, TimeoutError) as exc:
                    err = type(exc).__name__
                dt = time.perf_counter() - t
                if loop.time() >= measure_from and now >= measure_from:
                    if err is None:
                        samples.append((kind, dt))
                    else:
                        errors[err] = errors.get(err, 0) + 1
                if err is not None and conn.closed:
                    return
                if think_ms > 0:
                    await asyncio.sleep(rng.expovariate(1000.0 / think_ms))
        finally:
            transport.close()

    async def lag_probe() -> None:
        # How late the client's own event loop wakes up: latency the load generator adds.
        while loop.time() < stop_at:
            t = loop.time()
            await asyncio.sleep(0.05)
            if t >= measure_from:
                lag.append(loop.time() - t - 0.05)

    tasks = [asyncio.create_task(user(i)) for i in range(clients)]
    probe = asyncio.create_task(lag_probe())
    await asyncio.sleep(max(0.0, measure_from - loop.time()))
    cpu0 = cpu_snapshot()
    t0 = time.perf_counter()
    await asyncio.gather(*tasks, probe)
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_snapshot()
    return {
        "samples": samples,
        "errors": errors,
        "elapsed_s": elapsed,
        "cpu_s": {k: _cpu_delta(cpu0[k], cpu1[k]) for k in cpu0},
        "loop_lag_ms_p50": 1000 * statistics.median(lag) if lag else 0.0,
        "loop_lag_ms_max": 1000 * max(lag) if lag else 0.0,
    }


def run_event_loop(main: Any) -> Any:
    """``uvloop.run`` where uvloop is installed (``uvicorn[standard]`` brings it), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _cpu_delta(before: Any, after: Any) -> float:
    if isinstance(before, dict):  # per process: those that exited in between are lost
        return sum(t - before.get(pid, 0.0) for pid, t in after.items())
    return float(after - before)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    # nearest rank
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def stats(latencies: list[float], elapsed: float) -> dict[str, Any]:
    ms = sorted(1000 * x for x in latencies)
    return {
        "count": len(ms),
        "rps": len(ms) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": ms[-1] if ms else float("nan"),
    }


def read_benchmark(
    url: str, database: str, ing: dict[str, Any], workers: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    server = start_server(url, workers, tmp / f"data-{workers}", tmp / f"server-{workers}.log")
    try:
        t = time.perf_counter()
        server.wait_healthy(timeout=90.0, settle_s=2.0 if workers > 1 else 0.0)
        startup_s = time.perf_counter() - t
        n = ing["trials"]
        n_complete = ing["counts"].get("COMPLETE", 0)
        # What the rest of the machine does while this benchmark is idle.
        b0, t = machine_busy_s(), time.perf_counter()
        time.sleep(2.0)
        background = (machine_busy_s() - b0) / (time.perf_counter() - t)
        sessions0 = pg_sessions(args.pg, database)

        def cpu_snapshot() -> dict[str, Any]:
            return {
                "client": time.process_time(),
                "server": {pid: proc_cpu_s([pid]) for pid in server.pids()},
                "postgres": {pid: proc_cpu_s([pid]) for pid in database_backends(database)},
                "postgres_all": postgres_cpu_s(),
                "machine": machine_busy_s(),
            }

        result = run_event_loop(
            run_load(
                server.base,
                ing["key"],
                ing["job_id"],
                n,
                n_complete,
                args.clients,
                args.seconds,
                args.warmup,
                args.think_ms,
                args.seed,
                cpu_snapshot,
            )
        )
        sessions1 = pg_sessions(args.pg, database)
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server died during the load:\n{server.tail()}")
    finally:
        server.stop()
    elapsed = result["elapsed_s"]
    overall = stats([dt for _, dt in result["samples"]], elapsed)
    by_kind = {
        kind: stats([dt for k, dt in result["samples"] if k == kind], elapsed) for kind in MIX
    }
    cpu = result["cpu_s"]
    accounted = cpu["client"] + cpu["server"] + max(cpu["postgres"], cpu["postgres_all"])
    return {
        "server_workers": workers,
        "server": server.label,
        "startup_s": startup_s,
        **overall,
        "p99_ok": overall["p99_ms"] <= P99_TARGET_MS,
        "errors": result["errors"],
        "elapsed_s": elapsed,
        "by_kind": by_kind,
        "cpu_cores": {
            "client": cpu["client"] / elapsed,
            "server": cpu["server"] / elapsed,
            "postgres": cpu["postgres"] / elapsed,
            "postgres_all": cpu["postgres_all"] / elapsed,
            "other": max(0.0, cpu["machine"] - accounted) / elapsed,
            "machine": cpu["machine"] / elapsed,
        },
        "background_cores": background,
        "pg_sessions_opened": sessions1 - sessions0 if min(sessions0, sessions1) >= 0 else None,
        "loop_lag_ms_p50": result["loop_lag_ms_p50"],
        "loop_lag_ms_max": result["loop_lag_ms_max"],
    }


# --- report ------------------------------------------------------------------------------------
def print_ingest(r: dict[str, Any]) -> None:
    ok = r["rate"] >= INGEST_TARGET
    print(
        f"== ingestion: {r['trials']} trials, {r['batch']} per transaction "
        f"({r['batches']} transactions; add_records + job counters in each)"
    )
    print(
        f"  trials/s           : {r['rate']:,.0f} (target >= {INGEST_TARGET:,.0f}: "
        f"{'PASS' if ok else 'FAIL'}); wall {r['wall_s']:.2f} s incl. building the rows"
    )
    print(
        f"  in transactions    : {r['db_s']:.2f} s = {r['db_rate']:,.0f} trials/s; per "
        f"transaction p50 {r['batch_p50_ms']:.1f} ms, max {r['batch_max_ms']:.1f} ms"
    )
    print(
        f"  states             : {json.dumps(r['counts'], sort_keys=True)} (COUNT(*) check: "
        f"{'same' if r['stored_counts'] == r['counts'] else r['stored_counts']})"
    )
    print(
        f"  schema upgrade {r['upgrade_s']:.2f} s; VACUUM ANALYZE nas_trials {r['analyze_s']:.2f} s "
        f"(done explicitly, as autovacuum would shortly after such a load)"
    )


def print_read(r: dict[str, Any], args: argparse.Namespace) -> None:
    think = f"think time exp. mean {args.think_ms:g} ms" if args.think_ms else "no think time"
    print(
        f"== read latency: {r['server']}; {args.clients} clients (asyncio on uvloop, one "
        f"keep-alive HTTP/1.1 connection each, closed loop, {think}), "
        f"{args.seconds:g} s after {args.warmup:g} s warm-up, limit={PAGE}"
    )
    print(
        f"  requests           : {r['count']} in {r['elapsed_s']:.1f} s = {r['rps']:.1f} req/s; "
        f"errors {json.dumps(r['errors']) if r['errors'] else 0}"
    )
    print(
        f"  latency ms         : p50 {r['p50_ms']:.1f}  p90 {r['p90_ms']:.1f}  "
        f"p99 {r['p99_ms']:.1f}  max {r['max_ms']:.1f}   "
        f"p99 <= {P99_TARGET_MS:g} ms: {'PASS' if r['p99_ok'] else 'FAIL'}"
    )
    for kind, s in r["by_kind"].items():
        print(
            f"    {kind:<16} n={s['count']:<6} p50 {s['p50_ms']:7.1f}  p90 {s['p90_ms']:7.1f}  "
            f"p99 {s['p99_ms']:7.1f}  max {s['max_ms']:7.1f}"
        )
    c = r["cpu_cores"]
    per = 1000 / max(r["rps"], 1e-9)
    print(
        f"  CPU, cores of {os.cpu_count()}    : load generator {c['client']:.2f}, server "
        f"{c['server']:.2f}, PostgreSQL {c['postgres_all']:.2f} (all databases, exited "
        f"backends and parallel workers included; long-lived backends of this database "
        f"{c['postgres']:.2f}), anything else {c['other']:.2f}; machine busy {c['machine']:.2f}"
    )
    print(
        f"  CPU per request    : server {per * c['server']:.2f} ms, PostgreSQL "
        f"<= {per * c['postgres_all']:.2f} ms, load generator {per * c['client']:.2f} ms; "
        f"client event-loop lag p50 {r['loop_lag_ms_p50']:.1f} ms, "
        f"max {r['loop_lag_ms_max']:.1f} ms"
    )
    print(
        f"  PostgreSQL         : {r['pg_sessions_opened']} connections opened during the "
        f"load (warm-up included; pool churn when high)"
    )
    if c["other"] > 0.2 or r["background_cores"] > 0.2:
        print(
            f"  WARNING: the machine is shared: other work used {c['other']:.2f} cores during "
            f"the run ({r['background_cores']:.2f} just before it, with this benchmark "
            f"idle); the figures are lower than on a quiet machine"
        )
    if args.think_ms == 0 and r["rps"]:
        print(
            f"  note: closed loop without think time, so mean latency ~ clients / throughput "
            f"= {1000 * args.clients / r['rps']:.0f} ms (Little's law); the load generator "
            f"shares the machine's {os.cpu_count()} cores with the server and PostgreSQL"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--trials", type=int, default=100_000, help="trial rows (default 100000)")
    parser.add_argument(
        "--batch", type=int, default=1_000, help="rows per transaction (default 1000)"
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=20.0,
        help="measured seconds of read load per configuration (default 20)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_float,
        default=2.0,
        help="seconds of load before measuring (default 2)",
    )
    parser.add_argument(
        "--think-ms",
        type=non_negative_float,
        default=0.0,
        help="mean pause of each client between requests (default 0)",
    )
    parser.add_argument(
        "--server-workers",
        default="1,2",
        help="comma-separated server process counts to measure, one run each "
        "(1: nas serve; N>1: uvicorn --workers N; default 1,2)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("NAS_TEST_PG", DEFAULT_PG),
        help=f"admin connection to PostgreSQL (default {DEFAULT_PG})",
    )
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        workers = [int(w) for w in args.server_workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--server-workers takes integers, e.g. 1 or 1,2")
    if args.trials < PAGE or args.batch < 1 or args.clients < 1 or not workers or min(workers) < 1:
        parser.error("need --trials >= 50, --batch >= 1, --clients >= 1, --server-workers >= 1")

    print(
        f"# bench/api_load.py  python {platform.python_version()}  {os.cpu_count()} CPUs  "
        f"PostgreSQL via {args.pg.rsplit('/', 1)[0]}"
    )
    try:
        name = create_database(args.pg, "nas_bench")
    except psycopg.OperationalError as exc:
        print(f"error: PostgreSQL is not reachable at {args.pg}: {exc}", file=sys.stderr)
        return 2
    url = sqlalchemy_url(args.pg, name)
    print(f"database: {name}{' (kept)' if args.keep else ' (dropped at the end)'}")
    summary: dict[str, Any] = {}
    try:
        ing = ingest(url, args.trials, args.batch, args.seed)
        print_ingest(ing)
        reads = []
        with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
            for w in workers:
                r = read_benchmark(url, name, ing, w, args, Path(tmp))
                print_read(r, args)
                reads.append(r)
        best = min(reads, key=lambda r: r["p99_ms"])
        if len(reads) > 1:
            print(
                f"== best configuration by p99: {best['server']} (p99 {best['p99_ms']:.1f} ms, "
                f"{best['rps']:.1f} req/s)"
            )
        summary = {
            "trials": ing["trials"],
            "batch": ing["batch"],
            "ingest_trials_per_s": round(ing["rate"], 1),
            "ingest_ok": ing["rate"] >= INGEST_TARGET,
            "clients": args.clients,
            "seconds": args.seconds,
            "think_ms": args.think_ms,
            "reads": [
                {
                    "server_workers": r["server_workers"],
                    "requests": r["count"],
                    "rps": round(r["rps"], 1),
                    "p50_ms": round(r["p50_ms"], 1),
                    "p90_ms": round(r["p90_ms"], 1),
                    "p99_ms": round(r["p99_ms"], 1),
                    "max_ms": round(r["max_ms"], 1),
                    "p99_ok": r["p99_ok"],
                    "errors": sum(r["errors"].values()),
                    "cpu_cores": {k: round(v, 2) for k, v in r["cpu_cores"].items()},
                    "background_cores": round(r["background_cores"], 2),
                    "pg_sessions_opened": r["pg_sessions_opened"],
                }
                for r in reads
            ],
            "best_server_workers": best["server_workers"],
            "database": name if args.keep else None,
        }
    finally:
        if not args.keep:
            drop_database(args.pg, name)
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
