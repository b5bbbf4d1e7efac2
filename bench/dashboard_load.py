"""The dashboard at 100k trials (issue 16): how long a job page takes to render its table and
every chart in headless Chromium, over 5 loads (median).

    .venv/bin/python bench/dashboard_load.py                 # 100k trials, 5 loads

The peer, in the same run: optuna-dashboard (the dev extra's ``optuna-dashboard``, its
default server: ``wsgiref`` unless gunicorn is installed) on an Optuna RDB study in another
scratch PostgreSQL database holding the same trials (``ingest_optuna``: a bulk insert into
Optuna's own tables, counts checked with ``optuna.load_study``), measured the same way: a
fresh browser context per load, from ``goto`` of its study page until that page's charts
have drawn and its trial list (one click away) shows every trial (``peer_ready`` says what
is waited for). Both medians and their ratio are printed; ``--no-peer`` skips it. A load
that has not rendered within ``--timeout`` (900 s) ends its series, and the figure printed
is then a lower bound (at 100k trials the peer's first load does not render within it).

    .venv/bin/python bench/dashboard_load.py --trials 3000 --curves 300 --loads 2   # a try

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
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import description, non_negative_int, positive_float, positive_int
from _service import (
    DEFAULT_PG,
    REPO,
    ServerProcess,
    create_database,
    drop_database,
    free_port,
    process_tree,
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


def ingest_optuna(url: str, trials: list[dict[str, Any]], with_curves: int) -> tuple[int, float]:
    """The same trials as an Optuna study, for optuna-dashboard: the study is created with
    Optuna (its schema and version rows), the trials are bulk-inserted into Optuna's own RDB
    tables (``study.add_trials`` takes about 0.2 s a trial here: hours for 100k), then read
    back with ``optuna.load_study`` to check the counts. Parameters: the six NB201 edges
    (categorical over the ops, as this product's ``space.decisions()`` names them), ``mixup``
    and ``aug``; value: ``val_accuracy`` (maximize); intermediate values: the same 10 steps of
    the same trials. The other metrics are left out (no user attributes): less for the peer
    to load, not more."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        distribution_to_json,
    )
    from optuna.storages._rdb import models as om
    from sqlalchemy import create_engine, select
    from sqlalchemy import func as sqlfunc

    from nas.spaces import NB201_OPS, Nb201Space

    t = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name="bench-dashboard", storage=storage,
                                direction="maximize")  # fmt: skip
    study_id = study._study_id
    edges = [d.name for d in Nb201Space().decisions()]
    edge_json = distribution_to_json(CategoricalDistribution(list(NB201_OPS)))
    mixup_json = distribution_to_json(FloatDistribution(0.0, 0.5))
    aug_json = distribution_to_json(CategoricalDistribution(AUGS))
    t0 = datetime(2026, 12, 4, 10, 0, 0)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            last = select(sqlfunc.coalesce(sqlfunc.max(om.TrialModel.trial_id), 0))
            first_id = int(conn.execute(last).scalar_one()) + 1
            trial_rows, params, values, inter = [], [], [], []
            for tr in trials:
                tid = first_id + tr["number"]
                start = t0 + timedelta(seconds=0.002 * tr["number"])
                trial_rows.append({
                    "trial_id": tid, "number": tr["number"], "study_id": study_id,
                    "state": optuna.trial.TrialState.FAIL if tr["failed"]
                    else optuna.trial.TrialState.COMPLETE,
                    "datetime_start": start,
                    "datetime_complete": start + timedelta(seconds=0.0015),
                })  # fmt: skip
                for name, choice in zip(edges, tr["choices"], strict=True):
                    params.append({"trial_id": tid, "param_name": name,
                                   "param_value": float(choice), "distribution_json": edge_json})  # fmt: skip
                params.append({"trial_id": tid, "param_name": "mixup",
                               "param_value": tr["hparams"]["mixup"], "distribution_json": mixup_json})  # fmt: skip
                params.append({"trial_id": tid, "param_name": "aug",
                               "param_value": float(AUGS.index(tr["hparams"]["aug"])),
                               "distribution_json": aug_json})  # fmt: skip
                if tr["failed"]:
                    continue
                values.append({"trial_id": tid, "objective": 0,
                               "value": tr["metrics"]["val_accuracy"],
                               "value_type": om.TrialValueModel.TrialValueType.FINITE})  # fmt: skip
                if tr["number"] < with_curves:
                    inter.extend(
                        {"trial_id": tid, "step": e, "intermediate_value": v,
                         "intermediate_value_type":
                             om.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE}
                        for e, v in enumerate(tr["curve"])
                    )  # fmt: skip
            for table, rows in (
                (om.TrialModel.__table__, trial_rows),
                (om.TrialParamModel.__table__, params),
                (om.TrialValueModel.__table__, values),
                (om.TrialIntermediateValueModel.__table__, inter),
            ):
                for i in range(0, len(rows), 20000):
                    conn.execute(table.insert(), rows[i : i + 20000])
            # trial ids were given explicitly: move the sequence past them
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                "(SELECT max(trial_id) FROM trials))"
            )
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    loaded = optuna.load_study(study_name="bench-dashboard", storage=url).get_trials(deepcopy=False)
    n_failed = sum(tr["failed"] for tr in trials)
    n_inter = sum(len(t.intermediate_values) for t in loaded)
    want_inter = sum(10 for tr in trials[:with_curves] if not tr["failed"])
    if (
        len(loaded) != len(trials)
        or sum(t.state == optuna.trial.TrialState.FAIL for t in loaded) != n_failed
        or n_inter != want_inter
        or loaded[5].params["aug"] != trials[5]["hparams"]["aug"]
        or (not trials[5]["failed"] and loaded[5].value != trials[5]["metrics"]["val_accuracy"])
    ):
        raise RuntimeError(
            f"the Optuna study holds {len(loaded)} trials, {n_inter} intermediate values; "
            f"wanted {len(trials)} ({n_failed} failed), {want_inter}"
        )
    return study_id, time.perf_counter() - t


def optuna_dashboard_version() -> str:
    from importlib.metadata import version

    return version("optuna-dashboard")


def _plot_drawn(element_id: str) -> str:
    """A Plotly chart is drawn: its div holds data with points and an SVG trace."""
    return (
        f"(() => {{ const g = document.getElementById({element_id!r}); "
        "return !!g && Array.isArray(g.data) && "
        "g.data.some(d => (d.x && d.x.length > 0) || (d.y && d.y.length > 0)) && "
        "!!g.querySelector('g.trace'); })()"
    )


def peer_ready(n_trials: int) -> list[str]:
    """When optuna-dashboard's study page has rendered its table and every chart.

    Its study page (``/dashboard/studies/<id>``) draws the history, hyperparameter importance
    (PED-ANOVA, as ours), timeline and intermediate values with Plotly, from one
    ``/api/studies/<id>`` answer holding every trial; it has no trial table (0.21's
    ``trialTable`` route renders nothing), so its table is the trial list one click away
    (``/trials``): after the charts, the load clicks it (a client-side route over the trials
    already fetched) and waits for the list's header to count every trial and its first row.
    Its parallel coordinates sit on another page (Analytics) and are not waited for: the
    peer is measured on fewer charts than ours draws.
    """
    charts = ["plot-history", "graph-hyperparameter-importances", "graph-timeline",
              "graph-intermediate-values"]  # fmt: skip
    trial_list = (
        "(() => { const a = document.querySelector(\"a[href$='/trials']\"); "
        "if (a && !window.__benchClicked) { window.__benchClicked = true; a.click(); } "
        "const h = document.querySelector('li.MuiListSubheader-root p'); "
        f"return !!h && h.textContent === '{n_trials} Trials' && "
        "document.querySelectorAll('li.MuiListItem-root').length > 0; })()"
    )
    return [*(_plot_drawn(c) for c in charts), trial_list]


def _kill_renderers() -> None:
    for pid in process_tree(os.getpid()):
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def timed_loads(
    browser: Any,
    url: str,
    setup: Any,
    ready: list[str],
    loads: int,
    label: str,
    timeout_s: float,
) -> tuple[list[float], bool]:
    """Seconds from ``goto`` until every ``ready`` condition holds (in turn), per load; each
    load's split (when each condition first held) is printed. A load that has not rendered
    within ``timeout_s`` ends the series: its time is ``timeout_s`` and the second value is
    False (a lower bound, not a measure)."""
    from playwright.sync_api import Error as PlaywrightError

    times = []
    for i in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        setup(context)
        page = context.new_page()
        t = time.perf_counter()
        splits: list[float] = []
        # Playwright's own timeout cannot fire while the page's main thread is busy (the
        # peer's page at 100k trials stayed busy for minutes past it): past the limit, the
        # renderers under this process are killed, which fails the wait.
        watchdog = threading.Timer(timeout_s + 30, _kill_renderers)
        watchdog.start()
        try:
            page.goto(url, timeout=timeout_s * 1000)
            for condition in ready:
                left = timeout_s - (time.perf_counter() - t)
                page.wait_for_function(condition, polling=20, timeout=max(1.0, left) * 1000)
                splits.append(time.perf_counter() - t)
        except PlaywrightError:  # a timeout, or the page killed by the watchdog
            watchdog.cancel()
            done = len(splits)
            print(f"  {label} load {i + 1}: not rendered within {timeout_s:g} s "
                  f"({done} of {len(ready)} conditions held)", flush=True)  # fmt: skip
            context.close()
            return [*times, timeout_s], False
        watchdog.cancel()
        times.append(splits[-1])
        print(f"  {label} load {i + 1}: " + " ".join(f"{x:.2f}" for x in splits), flush=True)
        context.close()
    return times, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--trials", type=positive_int, default=100_000, help="trials of the job (default 100000)"
    )
    parser.add_argument(
        "--curves",
        type=non_negative_int,
        default=10_000,
        help="trials with intermediates (default 10000)",
    )
    parser.add_argument(
        "--loads", type=positive_int, default=5, help="page loads of each dashboard (default 5)"
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("NAS_TEST_PG", DEFAULT_PG),
        help=f"admin connection to PostgreSQL (default: $NAS_TEST_PG, else {DEFAULT_PG})",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip optuna-dashboard")
    parser.add_argument(
        "--timeout", type=positive_float, default=900.0, help="seconds a load may take before "
        "the series stops (its figure is then a lower bound; default 900)"
    )  # fmt: skip
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    trials = make_trials(args.trials, seed=0)
    ours_db = create_database(args.pg, "bench_dash")
    peer_db = None if args.no_peer else create_database(args.pg, "bench_dash_optuna")
    servers: list[ServerProcess] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    finished = False
    try:
        url = sqlalchemy_url(args.pg, ours_db)
        job_id, key, ingest_s = ingest(url, trials, args.curves)
        print(f"ingested {args.trials} trials (+ {args.curves} with 10 intermediate values) "
              f"into PostgreSQL in {ingest_s:.1f} s", flush=True)  # fmt: skip
        servers.append(
            ours := ServerProcess(
                [str(REPO / ".venv/bin/nas"), "serve", "--port", str(port := free_port())],
                {"NAS_DATABASE_URL": url, "NAS_RUN_JOBS": "false", "NAS_DATA_DIR": str(tmp)},
                tmp / "serve.log",
                port=port,
                label="nas serve",
            )
        )
        if peer_db is not None:
            peer_url = sqlalchemy_url(args.pg, peer_db)
            study_id, peer_s = ingest_optuna(peer_url, trials, args.curves)
            print(f"bulk-loaded the same trials into an Optuna RDB study in {peer_s:.1f} s "
                  f"(optuna.load_study: counts checked)", flush=True)  # fmt: skip
            servers.append(
                peer := ServerProcess(
                    [str(REPO / ".venv/bin/optuna-dashboard"), peer_url, "--host", "127.0.0.1",
                     "--port", str(peer_port := free_port()), "--quiet"],
                    {},
                    tmp / "optuna-dashboard.log",
                    port=peer_port,
                    label="optuna-dashboard",
                )
            )  # fmt: skip
            peer.wait_healthy(path="/api/meta")
        ours.wait_healthy()
        results: dict[str, tuple[list[float], bool]] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)

            def sign_in(context: Any) -> None:
                context.add_init_script(f"sessionStorage.setItem('nas_api_key', {key!r})")

            results["ours (nas serve)"] = timed_loads(
                browser,
                f"{ours.base}/#/jobs/{job_id}",
                sign_in,
                [
                    "document.querySelectorAll('#trials tbody tr[data-trial]').length > 0",
                    "!!document.querySelector('#charts[data-loaded]')",
                ],
                args.loads,
                "ours",
                args.timeout,
            )
            if peer_db is not None:
                results[f"optuna-dashboard {optuna_dashboard_version()}"] = timed_loads(
                    browser,
                    f"{peer.base}/dashboard/studies/{study_id}",
                    lambda context: None,
                    peer_ready(args.trials),
                    args.loads,
                    "optuna-dashboard",
                    args.timeout,
                )
            browser.close()
        print(f"\n{args.loads} loads each, headless Chromium ({CHROMIUM}), {os.cpu_count()} CPUs")
        medians = {}
        for name, (values, complete) in results.items():
            medians[name] = statistics.median(values) if complete else values[-1]
            shown = f"{medians[name]:7.2f} s" if complete else f"> {values[-1]:g} s (a load "
            shown += "" if complete else f"did not render within {values[-1]:g} s)"
            print(f"  {name:28s} median {shown}   " + " ".join(f"{v:.2f}" for v in values))
        if len(results) == 2:
            (ours_m, peer_m), peer_complete = medians.values(), list(results.values())[1][1]
            bound = "" if peer_complete else "more than "
            print(f"  ratio (optuna-dashboard / ours): {bound}{peer_m / ours_m:.1f}x "
                  "(target >= 10x)")  # fmt: skip
        finished = True
    finally:
        for server in servers:
            server.stop()
        if finished:  # (the servers' logs: kept only to read what went wrong)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"the servers' logs are in {tmp}", file=sys.stderr)
        drop_database(args.pg, ours_db)
        if peer_db is not None:
            drop_database(args.pg, peer_db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
