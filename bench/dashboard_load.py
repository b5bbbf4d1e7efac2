"""The dashboard at 100k trials (issue 16): how long a job page takes to render its table and
every chart in headless Chromium, over 5 loads (median).

    .venv/bin/python bench/dashboard_load.py                 # 100k trials, 5 loads

Not here yet: the issue's peer (optuna-dashboard on an Optuna RDB study with the same
trials). Optuna's own ``study.add_trials`` wrote 300 such trials to PostgreSQL in 61 s on
this loaded 2-core machine (hours for 100k); the peer needs a bulk loader into Optuna's
schema first (BENCHMARKS.md).

The job: NAS-Bench-201 architectures with two joint hyperparameters (a float and a
categorical), 3% failed trials, intermediate values (10 epochs) for the first 10k trials,
written to a scratch PostgreSQL database as the runner writes them. ``nas serve`` runs as a
subprocess (no job runner). A load is a fresh browser context signed in with the key (set in
sessionStorage before the page's scripts run), from ``goto`` until the trials table has its
rows and every chart has drawn (``#charts[data-loaded]``: history, curves, parallel
coordinates, importance, timeline).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import (
    DEFAULT_PG,
    REPO,
    ServerProcess,
    create_database,
    drop_database,
    free_port,
    sqlalchemy_url,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert

from api.auth import create_key
from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import IntermediateValueModel, JobModel, JobState
from api.repositories import JobRepository, TrialRepository
from nas.architecture import Architecture
from nas.trial import TrialRecord, TrialResult, TrialState
from workers.search import parse_spec

CHROMIUM = os.environ.get("NAS_TEST_CHROMIUM", "/usr/bin/chromium")
AUGS = ["none", "flip", "crop"]


def job_spec(trials: int) -> dict[str, Any]:
    return parse_spec(
        {
            "name": "bench-dashboard",
            "dataset": {"name": "nb201-cifar10"},
            "space": {"name": "nb201"},
            "controller": {"name": "random"},
            "evaluator": {"name": "tabular"},
            "budget": {"trials": trials},
            "hparams": {
                "mixup": {"type": "float", "low": 0.0, "high": 0.5},
                "aug": {"type": "categorical", "choices": AUGS},
            },
            "seed": 0,
        }
    ).to_dict()


def make_trials(n: int, seed: int) -> list[dict[str, Any]]:
    """The trials both dashboards show: choices, hyperparameters, state, metrics."""
    rng = random.Random(seed)
    out = []
    for number in range(n):
        choices = [rng.randrange(5) for _ in range(6)]
        hp = {"mixup": rng.uniform(0.0, 0.5), "aug": rng.choice(AUGS)}
        failed = rng.random() < 0.03
        acc = rng.uniform(10.0, 91.7) - 10 * hp["mixup"] + 2 * choices[0]
        out.append(
            {
                "number": number,
                "choices": choices,
                "hparams": hp,
                "failed": failed,
                "metrics": None
                if failed
                else {
                    "val_accuracy": acc,
                    "params_M": rng.uniform(0.07, 1.53),
                    "flops_M": rng.uniform(7.8, 220.1),
                    "latency_s": rng.uniform(0.005, 0.03),
                },
                "curve": [acc * (1 - 0.5**e) for e in range(1, 11)],
            }
        )
    return out


def ingest(url: str, trials: list[dict[str, Any]], with_curves: int) -> tuple[int, str, float]:
    engine = make_engine(url)
    t = time.perf_counter()
    try:
        upgrade(engine)
        write = make_session_factory(engine, write=True)
        with session_scope(write) as session:
            key_row, key = create_key(session, name="bench-dashboard")
            job = JobRepository(session).add(
                JobModel(
                    name="bench-dashboard",
                    owner_id=key_row.id,
                    spec=job_spec(len(trials)),
                    state=JobState.RUNNING.value,
                    state_counts={},
                    started_at=datetime.now(UTC),
                )
            )
            job_id = job.id
        t0 = time.time() - len(trials) * 0.002
        counts: dict[str, int] = {}
        best: tuple[int, float] | None = None
        for first in range(0, len(trials), 5000):
            records = []
            for tr in trials[first : first + 5000]:
                if tr["failed"]:
                    result = TrialResult.failed("RuntimeError: simulated evaluation failure")
                else:
                    acc = tr["metrics"]["val_accuracy"]
                    result = TrialResult(TrialState.COMPLETE, acc, tr["metrics"])
                    if best is None or acc > best[1]:
                        best = (tr["number"], acc)
                counts[result.state.value] = counts.get(result.state.value, 0) + 1
                started = t0 + 0.002 * tr["number"]
                records.append(
                    TrialRecord(
                        number=tr["number"],
                        candidate_id=tr["number"],
                        architecture=Architecture("nb201", tuple(tr["choices"]), 1),
                        hparams=tr["hparams"],
                        result=result,
                        started_at=started,
                        finished_at=started + 0.0015,
                        worker=f"worker-{tr['number'] % 4}",
                    )
                )
            with session_scope(write) as session:
                TrialRepository(session).add_records(job_id, records)
                JobRepository(session).set_fields(
                    job_id,
                    n_trials=first + len(records),
                    state_counts=dict(counts),
                    progress=(first + len(records)) / len(trials),
                    best_trial_number=None if best is None else best[0],
                    best_value=None if best is None else best[1],
                )
        rows = [
            {"job_id": job_id, "trial_number": tr["number"], "step": e,
             "values": {"val_accuracy": v}}
            for tr in trials[:with_curves] if not tr["failed"]
            for e, v in enumerate(tr["curve"])
        ]  # fmt: skip
        with session_scope(write) as session:
            for i in range(0, len(rows), 20000):
                session.execute(insert(IntermediateValueModel), rows[i : i + 20000])
            JobRepository(session).set_fields(
                job_id, state=JobState.SUCCEEDED.value, finished_at=datetime.now(UTC)
            )
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE nas_trials"
            )
    finally:
        engine.dispose()
    return job_id, key, time.perf_counter() - t


def timed_loads(browser: Any, url: str, setup: Any, ready: list[str], loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        setup(context)
        page = context.new_page()
        page.set_default_timeout(300_000)
        t = time.perf_counter()
        page.goto(url)
        for condition in ready:
            page.wait_for_function(condition, polling=20)
        times.append(time.perf_counter() - t)
        context.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--curves", type=int, default=10_000, help="trials with intermediates")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("NAS_TEST_PG", DEFAULT_PG))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    trials = make_trials(args.trials, seed=0)
    ours_db = create_database(args.pg, "bench_dash")
    server = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        url = sqlalchemy_url(args.pg, ours_db)
        job_id, key, ingest_s = ingest(url, trials, args.curves)
        print(f"ingested {args.trials} trials (+ {args.curves} with 10 intermediate values) "
              f"into PostgreSQL in {ingest_s:.1f} s")  # fmt: skip
        server = ServerProcess(
            [str(REPO / ".venv/bin/nas"), "serve", "--port", str(port := free_port())],
            {"NAS_DATABASE_URL": url, "NAS_RUN_JOBS": "false", "NAS_DATA_DIR": str(tmp)},
            tmp / "serve.log",
            port=port,
            label="nas serve",
        )
        server.wait_healthy()
        results: dict[str, list[float]] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)

            def sign_in(context: Any) -> None:
                context.add_init_script(f"sessionStorage.setItem('nas_api_key', {key!r})")

            results["ours"] = timed_loads(
                browser,
                f"{server.base}/#/jobs/{job_id}",
                sign_in,
                [
                    "document.querySelectorAll('#trials tbody tr[data-trial]').length > 0",
                    "!!document.querySelector('#charts[data-loaded]')",
                ],
                args.loads,
            )
            browser.close()
        print(f"\n{args.loads} loads each, headless Chromium ({CHROMIUM}), {os.cpu_count()} CPUs")
        for name, values in results.items():
            print(f"  {name:28s} median {statistics.median(values):7.2f} s   "
                  + " ".join(f"{v:.2f}" for v in values))  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        drop_database(args.pg, ours_db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
