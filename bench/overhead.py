"""Per-trial overhead: 2,000 NAS-Bench-201 tabular evaluations done four ways, in one run.

Every way evaluates ``--trials`` random NAS-Bench-201 architectures (CIFAR-10 table,
``nb201-cifar10``; the same ``TabularEvaluator`` lookup, 12-epoch validation accuracy):

1. service: the full path. ``nas serve`` in a subprocess with ``NAS_BACKEND=ray`` (it starts a
   local Ray instance), a fresh PostgreSQL database ``nas_overhead_<hex>``, authentication on
   (an API key made with ``api.auth.create_key``). A job (random controller, tabular
   evaluator, ``budget: {trials: N}``) is submitted over HTTP and ``GET /api/v1/jobs/{id}`` is
   polled every ``--client-poll-ms`` until SUCCEEDED; trials/s = N / (submit -> SUCCEEDED
   seen). Ray's start is before ``/healthz`` answers, so outside every figure. The first job
   is cold (Ray starts its worker processes lazily; the table loads in the server and in the
   worker); ``--warm-runs`` more jobs follow on the same server. Also printed: the server's
   own view (``started_at -> finished_at`` of the job), and a breakdown from the database's
   timestamps (queue wait, job setup, Ray batches, gaps between batches, final write). The
   database must hold N trials numbered 0..N-1, all COMPLETE, for every job.
2. optuna: ``optuna.create_study(storage=postgresql+psycopg://...)`` on another fresh
   database, ``RandomSampler``, one ``suggest_categorical`` per NAS-Bench-201 edge (6 x 5
   ops), objective = the same table lookup for one architecture; ``study.optimize(n_trials=N)``.
3. tune: ``ray.tune.Tuner`` on a local Ray instance started by this script, a function
   trainable doing the same lookup and ``tune.report``, ``tune.choice`` per edge,
   ``num_samples=--tune-trials``, ``reuse_actors=True``, ``max_concurrent_trials=2``.
   With ``--tune-trials`` below N the rate is measured on fewer trials and N is extrapolated
   (said so in the output).
4. loop: the ``TabularEvaluator`` in this process, ``evaluate`` on batches of 256 (the
   evaluator's batch size): the cost of the lookups themselves. Also printed as reference:
   ``workers.search.SearchLoop`` in this process (random controller, inline backend, no
   database), i.e. everything the service does per trial except Ray and storage.

Databases are dropped, the server stopped (SIGTERM, then SIGKILL) and Ray shut down at the end.

    .venv/bin/python bench/overhead.py
    .venv/bin/python bench/overhead.py --skip-tune --warm-runs 5 --flush-interval 0.25
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import description, positive_float, positive_int
from _service import (
    DEFAULT_PG,
    REPO,
    ServerProcess,
    cpu_s,
    create_database,
    drop_database,
    free_port,
    machine_busy_s,
    process_tree,
    psycopg_url,
    sqlalchemy_url,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
import psycopg

from api.auth import create_key
from api.client import FINISHED, ApiError, NasClient
from api.db import make_engine, make_session_factory, session_scope, upgrade
from nas.architecture import Architecture
from nas.evaluators import EVALUATORS
from nas.evaluators.tabular import TABLE_ENV
from nas.spaces.nb201 import NB201_OPS, Nb201Space
from workers.search import parse_spec

DEFAULT_TABLE = REPO.parent / "shared" / "data" / "nb201" / "nb201_tabular.csv.gz"
SERVICE_TARGET = 1_000.0  # trials/s through the full path
BATCH = 256  # TabularEvaluator.batch_size


# --- helpers -----------------------------------------------------------------------------------
def table_path() -> str:
    path = os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE)
    if not Path(path).is_file():
        raise SystemExit(f"error: no NAS-Bench-201 table at {path} (set ${TABLE_ENV})")
    return str(Path(path).resolve())


def job_spec(trials: int, table: str, seed: int, name: str = "bench-overhead") -> dict[str, Any]:
    return {
        "name": name,
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular", "table": table},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"trials": trials},
        "seed": seed,
    }


def make_evaluator(table: str) -> Any:
    """The tabular evaluator exactly as the service builds it (``EVALUATORS`` + spec)."""
    resolved = parse_spec(job_spec(1, table, 0))
    spec = resolved.spec
    return EVALUATORS.get("tabular").from_spec(
        dataset=spec.dataset.name,
        dataset_params=resolved.dataset_params,
        space=Nb201Space(),
        params=resolved.evaluator_params,
        seed=spec.seed,
    )


def background_cores(seconds: float = 1.0) -> float:
    """Cores the rest of the machine keeps busy while this benchmark sleeps."""
    b0, t = machine_busy_s(), time.perf_counter()
    time.sleep(seconds)
    return (machine_busy_s() - b0) / (time.perf_counter() - t)


def ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


# --- 1. the service ----------------------------------------------------------------------------
def start_server(url: str, env_extra: dict[str, str], data_dir: Path, log: Path) -> ServerProcess:
    """``nas serve`` in its own session (so that its Ray processes stop with it)."""
    port = free_port()
    env = {"NAS_DATABASE_URL": url, "NAS_DATA_DIR": str(data_dir), **env_extra}
    command = [str(REPO / ".venv" / "bin" / "nas"), "serve", "--port", str(port)]
    return ServerProcess(command, env, log, port=port, label="nas serve")


def check_trials(pg_url: str, job_id: int) -> dict[str, Any]:
    """What the database holds for the job, and the batch timeline from trial timestamps."""
    with psycopg.connect(pg_url) as conn:
        n, lo, hi, distinct = conn.execute(
            "SELECT count(*), min(number), max(number), count(DISTINCT number) "
            "FROM nas_trials WHERE job_id = %s",
            (job_id,),
        ).fetchone()
        states = dict(
            conn.execute(
                "SELECT state, count(*) FROM nas_trials WHERE job_id = %s GROUP BY state",
                (job_id,),
            ).fetchall()
        )
        batches = conn.execute(
            "SELECT started_at, finished_at, count(*) FROM nas_trials WHERE job_id = %s "
            "GROUP BY started_at, finished_at ORDER BY started_at",
            (job_id,),
        ).fetchall()
        workers = [
            w
            for (w,) in conn.execute(
                "SELECT DISTINCT worker FROM nas_trials WHERE job_id = %s", (job_id,)
            ).fetchall()
        ]
        created, started, finished = conn.execute(
            "SELECT created_at, started_at, finished_at FROM nas_jobs WHERE id = %s", (job_id,)
        ).fetchone()
        ckpt = conn.execute(
            "SELECT trial_count FROM nas_checkpoints WHERE job_id = %s", (job_id,)
        ).fetchone()
    return {
        "n": n,
        "min": lo,
        "max": hi,
        "distinct": distinct,
        "states": states,
        "workers": workers,
        "batches": [(a.timestamp(), b.timestamp(), c) for a, b, c in batches],
        "created": created.timestamp(),
        "started": started.timestamp() if started else None,
        "finished": finished.timestamp() if finished else None,
        "checkpoint_trials": ckpt[0] if ckpt else None,
    }


def run_service_job(
    client: NasClient,
    spec: dict[str, Any],
    poll_s: float,
    server: ServerProcess,
    pg_url: str,
    n: int,
) -> dict[str, Any]:
    pids = process_tree(server.proc.pid)
    cpu0, busy0 = cpu_s(pids), machine_busy_s()
    wall0 = time.time()
    t0 = time.perf_counter()
    job = client.submit(spec)
    t_submitted = time.perf_counter()
    polls = not_found = 0
    while True:
        try:
            current = client.job(job["id"])
        except ApiError as exc:
            # The submit's transaction commits after its 201 is sent (FastAPI runs the exit of
            # a yield dependency after the response): a GET right after it may answer 404.
            if exc.status_code != 404 or time.perf_counter() - t_submitted > 10.0:
                raise
            not_found += 1
            time.sleep(poll_s)
            continue
        polls += 1
        if current["state"] in FINISHED:
            break
        time.sleep(poll_s)
    t1 = time.perf_counter()
    wall1 = time.time()
    pids_after = process_tree(server.proc.pid)
    cpu1, busy1 = cpu_s(pids_after), machine_busy_s()
    if current["state"] != "SUCCEEDED":
        raise RuntimeError(f"job {job['id']} {current['state']}: {current.get('reason')}")
    seconds = t1 - t0
    server_s = ts(current["finished_at"]) - ts(current["started_at"])
    db = check_trials(pg_url, job["id"])
    ok = (
        db["n"] == n
        and db["distinct"] == n
        and db["min"] == 0
        and db["max"] == n - 1
        and db["states"] == {"COMPLETE": n}
    )
    # Timeline (server wall clock; the same machine, so comparable with time.time() here).
    batches = db["batches"]
    eval_s = [b - a for a, b, _ in batches]
    gaps = [batches[i + 1][0] - batches[i][1] for i in range(len(batches) - 1)]
    server_cpu = sum(v - cpu0.get(pid, 0.0) for pid, v in cpu1.items())
    return {
        "job_id": job["id"],
        "seconds": seconds,
        "rate": n / seconds,
        "server_s": server_s,
        "server_rate": n / server_s if server_s > 0 else float("inf"),
        "submit_ms": 1000 * (t_submitted - t0),
        "polls": polls,
        "not_found": not_found,
        "db_ok": ok,
        "db": {k: db[k] for k in ("n", "min", "max", "distinct", "states", "checkpoint_trials")},
        "workers": db["workers"],
        "timeline_ms": {
            "POST -> created_at": 1000 * (db["created"] - wall0),
            "queued (-> runner claims it)": 1000 * (db["started"] - db["created"]),
            "setup (-> first batch)": 1000 * (batches[0][0] - db["started"]),
            "Ray batches (sum)": 1000 * sum(eval_s),
            "between batches (sum)": 1000 * sum(gaps),
            "end (last batch -> finished_at)": 1000 * (db["finished"] - batches[-1][1]),
            "client sees it": 1000 * (wall1 - db["finished"]),
        },
        "batches": len(batches),
        "batch_ms": [round(1000 * x, 1) for x in eval_s],
        "gap_ms": [round(1000 * x, 1) for x in gaps],
        "cpu": {
            "server_and_ray_s": server_cpu,
            "machine_s": busy1 - busy0,
        },
    }


def service_path(args: argparse.Namespace, table: str, tmp: Path) -> dict[str, Any]:
    name = create_database(args.pg, "nas_overhead")
    url = sqlalchemy_url(args.pg, name)
    pg_url = psycopg_url(args.pg, name)
    server = None
    out: dict[str, Any] = {"database": name}
    try:
        engine = make_engine(url)
        try:
            upgrade(engine)
            with session_scope(make_session_factory(engine, write=True)) as session:
                _, key = create_key(session, name="bench-overhead")
        finally:
            engine.dispose()
        env = {"NAS_BACKEND": "ray", "NAS_AUTH": "keys", TABLE_ENV: table}
        if args.flush_interval is not None:
            env["NAS_FLUSH_INTERVAL_S"] = str(args.flush_interval)
        if args.server_poll is not None:
            env["NAS_POLL_INTERVAL_S"] = str(args.server_poll)
        if args.ray_num_cpus is not None:
            env["NAS_RAY_NUM_CPUS"] = str(args.ray_num_cpus)
        # A local instance of its own: with no address, ray.init() joins the cluster named in
        # /tmp/ray/ray_current_cluster (the last `ray start` on this machine, possibly dead).
        env["RAY_ADDRESS"] = "local"
        os.environ.pop("NAS_RAY_ADDRESS", None)
        out["env"] = {k: v for k, v in env.items() if k != TABLE_ENV}
        server = start_server(url, env, tmp / "data", tmp / "server.log")
        out["log"] = str(tmp / "server.log")
        out["startup_s"] = server.wait_healthy()  # includes ray.init in the lifespan
        runs = []
        with NasClient(server.base, api_key=key, timeout=60.0) as client:
            for i in range(1 + args.warm_runs):
                spec = job_spec(args.trials, table, seed=i, name=f"bench-overhead-{i}")
                bg = background_cores()
                r = run_service_job(
                    client, spec, args.client_poll_ms / 1000, server, pg_url, args.trials
                )
                r["kind"] = "cold" if i == 0 else "warm"
                r["background_cores"] = bg
                runs.append(r)
                if not r["db_ok"]:
                    print(f"  WARNING: job {r['job_id']}: database check failed: {r['db']}")
        out["runs"] = runs
        out["log_tail"] = server.tail(60)
    finally:
        if server is not None:
            out["stopped"] = server.stop()
        drop_database(args.pg, name)
    return out


# --- 2. Optuna ---------------------------------------------------------------------------------
def optuna_path(args: argparse.Namespace, table: str) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    evaluator = make_evaluator(table)
    space = Nb201Space()
    names = [d.name for d in space.decisions()]
    ops = list(range(len(NB201_OPS)))

    def objective(trial: Any) -> float:
        choices = [trial.suggest_categorical(n, ops) for n in names]
        result = evaluator.evaluate([Architecture("nb201", tuple(choices))])[0]
        return float(result.objective)

    name = create_database(args.pg, "nas_overhead")
    url = sqlalchemy_url(args.pg, name)
    try:
        t = time.perf_counter()
        study = optuna.create_study(
            storage=url,
            study_name="bench-overhead",
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        create_s = time.perf_counter() - t
        bg = background_cores()
        busy0 = machine_busy_s()
        cpu0 = time.process_time()
        t = time.perf_counter()
        study.optimize(objective, n_trials=args.trials, gc_after_trial=False)
        seconds = time.perf_counter() - t
        client_cpu = time.process_time() - cpu0
        busy = machine_busy_s() - busy0
        trials = study.get_trials(deepcopy=False)
        numbers = sorted(t.number for t in trials)
        complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        best = study.best_value
        del study
    finally:
        drop_database(args.pg, name)
    return {
        "trials": len(trials),
        "seconds": seconds,
        "rate": args.trials / seconds,
        "create_s": create_s,
        "ok": numbers == list(range(args.trials)) and complete == args.trials,
        "best": best,
        "cpu": {"client_s": client_cpu, "machine_s": busy},
        "background_cores": bg,
        "version": optuna.__version__,
    }


# --- 3. Ray Tune -------------------------------------------------------------------------------
def _tune_trainable(config: dict[str, Any], spec_json: str) -> None:
    from ray import tune

    from nas.architecture import Architecture as Arch
    from nas.spec import ResolvedSpec
    from workers.ray_backend import _evaluator_for  # per worker process: built once, cached

    # (the service's own cache of a worker's evaluators, keyed by the search: one here)
    evaluator = _evaluator_for("bench-overhead", ResolvedSpec.from_stored(json.loads(spec_json)))
    choices = tuple(int(config[f"e{i}"]) for i in range(6))
    result = evaluator.evaluate([Arch("nb201", choices)])[0]
    tune.report({"val_accuracy": float(result.objective)})


def tune_path(args: argparse.Namespace, table: str, tmp: Path) -> dict[str, Any]:
    import ray
    from ray import tune

    from workers.ray_backend import ensure_ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["RAY_ADDRESS"] = "local"  # see service_path
    t = time.perf_counter()
    started = ensure_ray(None, num_cpus=args.ray_num_cpus)
    init_s = time.perf_counter() - t
    spec_json = json.dumps(parse_spec(job_spec(1, table, 0)).to_dict(), sort_keys=True)
    n = args.tune_trials
    try:
        param_space = {f"e{i}": tune.choice(list(range(len(NB201_OPS)))) for i in range(6)}
        tuner = tune.Tuner(
            tune.with_parameters(_tune_trainable, spec_json=spec_json),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric="val_accuracy",
                mode="max",
                num_samples=n,
                max_concurrent_trials=2,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="bench-overhead",
                storage_path=str(tmp / "tune"),
                verbose=0,
            ),
        )
        bg = background_cores()
        busy0 = machine_busy_s()
        t = time.perf_counter()
        results = tuner.fit()
        seconds = time.perf_counter() - t
        busy = machine_busy_s() - busy0
        errors = results.num_errors
        count = len(results)
        best = results.get_best_result().metrics.get("val_accuracy")
    finally:
        if started:
            ray.shutdown()
    return {
        "trials": count,
        "seconds": seconds,
        "rate": count / seconds,
        "init_s": init_s,
        "errors": errors,
        "ok": count == n and errors == 0,
        "best": best,
        "extrapolated": n != args.trials,
        "cpu": {"machine_s": busy},
        "background_cores": bg,
        "version": ray.__version__,
    }


# --- 4. in-process references ------------------------------------------------------------------
def loop_path(args: argparse.Namespace, table: str) -> dict[str, Any]:
    evaluator = make_evaluator(table)
    bg = background_cores()
    space = Nb201Space()
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    archs = [space.sample(rng) for _ in range(args.trials)]
    sample_s = time.perf_counter() - t
    t = time.perf_counter()
    values = []
    for first in range(0, len(archs), BATCH):
        values.extend(r.objective for r in evaluator.evaluate(archs[first : first + BATCH]))
    seconds = time.perf_counter() - t
    return {
        "trials": len(values),
        "seconds": seconds,
        "rate": len(values) / seconds,
        "sample_s": sample_s,
        "best": max(values),
        "background_cores": bg,
    }


def searchloop_path(args: argparse.Namespace, table: str) -> dict[str, Any]:
    from workers.search import SearchLoop, build_components

    resolved = parse_spec(job_spec(args.trials, table, args.seed))
    components = build_components(resolved)
    t = time.perf_counter()
    outcome = SearchLoop(resolved, components=components).run()
    seconds = time.perf_counter() - t
    return {
        "trials": len(outcome.trials),
        "seconds": seconds,
        "rate": len(outcome.trials) / seconds,
    }


# --- report ------------------------------------------------------------------------------------
def print_service(s: dict[str, Any], args: argparse.Namespace) -> None:
    env = s["env"]
    print(
        f"== 1. service: nas serve (NAS_BACKEND=ray, local Ray started by the server, "
        f"PostgreSQL {s['database']}, auth on); NAS_FLUSH_INTERVAL_S="
        f"{env.get('NAS_FLUSH_INTERVAL_S', '1.0 (default)')}, NAS_POLL_INTERVAL_S="
        f"{env.get('NAS_POLL_INTERVAL_S', '0.5 (default)')}, NAS_RAY_NUM_CPUS="
        f"{env.get('NAS_RAY_NUM_CPUS', 'all (default)')}; client polls GET job every "
        f"{args.client_poll_ms:g} ms"
    )
    print(
        f"  server start to /healthz (Ray start included, not timed below): {s['startup_s']:.1f} s"
    )
    for r in s["runs"]:
        tl = r["timeline_ms"]
        print(
            f"  job {r['job_id']} ({r['kind']}): submit -> SUCCEEDED {r['seconds']:.3f} s = "
            f"{r['rate']:,.0f} trials/s; server started_at -> finished_at "
            f"{r['server_s']:.3f} s = {r['server_rate']:,.0f} trials/s; DB check "
            f"{'OK' if r['db_ok'] else 'FAILED'} ({r['db']['n']} trials, numbers "
            f"{r['db']['min']}..{r['db']['max']}, {json.dumps(r['db']['states'])}, "
            f"checkpoint at {r['db']['checkpoint_trials']}); bg cores {r['background_cores']:.2f}"
        )
        parts = "; ".join(f"{k} {v:.0f}" for k, v in tl.items())
        print(f"    timeline ms: {parts}")
        print(
            f"    {r['batches']} Ray batches, ms each: {r['batch_ms']}; gaps ms: {r['gap_ms']}; "
            f"trials ran in {len(r['workers'])} Ray worker process(es); POST "
            f"{r['submit_ms']:.0f} ms, {r['polls']} GETs (+{r['not_found']} answered 404 just "
            f"after the 201); CPU s: server+Ray "
            f"{r['cpu']['server_and_ray_s']:.2f}, machine {r['cpu']['machine_s']:.2f}"
        )


Row = tuple[str, int, float, float, str, "float | None"]


def summary_rows(res: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    """(method, trials, seconds, trials/s, note, background cores) per line of the table."""
    rows: list[Row] = []
    svc = res.get("service")
    if svc:
        cold, warm = svc["runs"][0], svc["runs"][1:]
        rows.append(
            (
                "service, cold (1st job)",
                cold["db"]["n"],
                cold["seconds"],
                cold["rate"],
                "submit -> SUCCEEDED",
                cold["background_cores"],
            )
        )
        if warm:
            bg = statistics.median(r["background_cores"] for r in warm)
            med = statistics.median(r["seconds"] for r in warm)
            rows.append(
                (
                    f"service, warm (median of {len(warm)})",
                    args.trials,
                    med,
                    args.trials / med,
                    "submit -> SUCCEEDED",
                    bg,
                )
            )
            best = min(warm, key=lambda r: r["seconds"])
            rows.append(
                (
                    "service, warm (best)",
                    args.trials,
                    best["seconds"],
                    best["rate"],
                    "submit -> SUCCEEDED",
                    best["background_cores"],
                )
            )
            srv = statistics.median(r["server_s"] for r in warm)
            rows.append(
                (
                    "service, warm, server view (median)",
                    args.trials,
                    srv,
                    args.trials / srv,
                    "job started_at -> finished_at",
                    bg,
                )
            )
        rows.append(
            (
                "service, cold, server view",
                cold["db"]["n"],
                cold["server_s"],
                cold["server_rate"],
                "job started_at -> finished_at",
                cold["background_cores"],
            )
        )
    if "optuna" in res:
        o = res["optuna"]
        rows.append(
            (
                "optuna, RDB storage on PostgreSQL",
                o["trials"],
                o["seconds"],
                o["rate"],
                "study.optimize",
                o["background_cores"],
            )
        )
    if "tune" in res:
        t = res["tune"]
        if t["extrapolated"]:
            rows.append(
                (
                    "ray tune (reuse_actors, 2 at once)",
                    args.trials,
                    args.trials / t["rate"],
                    t["rate"],
                    f"EXTRAPOLATED from {t['trials']} trials in {t['seconds']:.1f} s",
                    t["background_cores"],
                )
            )
        else:
            rows.append(
                (
                    "ray tune (reuse_actors, 2 at once)",
                    t["trials"],
                    t["seconds"],
                    t["rate"],
                    "Tuner.fit",
                    t["background_cores"],
                )
            )
    lp = res["loop"]
    rows.append(
        (
            "plain loop (evaluate, batches of 256)",
            lp["trials"],
            lp["seconds"],
            lp["rate"],
            "in this process",
            lp["background_cores"],
        )
    )
    sl = res["searchloop"]
    rows.append(
        (
            "SearchLoop in this process",
            sl["trials"],
            sl["seconds"],
            sl["rate"],
            "no database, no Ray",
            None,
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--trials", type=int, default=2000, help="evaluations per method (2000)")
    parser.add_argument("--skip-tune", action="store_true", help="leave Ray Tune out")
    parser.add_argument(
        "--tune-trials",
        type=int,
        default=None,
        help="Ray Tune trials (default --trials); fewer: its rate is extrapolated to --trials",
    )
    parser.add_argument("--skip-optuna", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument(
        "--pg",
        default=os.environ.get("NAS_TEST_PG", DEFAULT_PG),
        help=f"admin connection to PostgreSQL (default {DEFAULT_PG})",
    )
    parser.add_argument(
        "--warm-runs", type=int, default=3, help="warm service jobs after the cold one (3)"
    )
    parser.add_argument(
        "--flush-interval",
        type=positive_float,
        default=None,
        help="NAS_FLUSH_INTERVAL_S of the server (default: unset, the service's 1.0)",
    )
    parser.add_argument(
        "--server-poll",
        type=positive_float,
        default=None,
        help="NAS_POLL_INTERVAL_S of the server (default: unset, the service's 0.5)",
    )
    parser.add_argument(
        "--ray-num-cpus",
        type=positive_int,
        default=None,
        help="NAS_RAY_NUM_CPUS of the server and num_cpus of Tune's Ray (default: all)",
    )
    parser.add_argument(
        "--client-poll-ms", type=positive_float, default=20.0, help="GET job period (20)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-log", action="store_true", help="print the server log's tail")
    args = parser.parse_args(argv)
    if args.tune_trials is None:
        args.tune_trials = args.trials
    if args.trials < 1 or args.tune_trials < 1 or args.warm_runs < 0:
        parser.error("--trials and --tune-trials must be >= 1, --warm-runs >= 0")

    table = table_path()
    os.environ[TABLE_ENV] = table
    print(
        f"# bench/overhead.py  python {platform.python_version()}  {os.cpu_count()} CPUs  "
        f"{args.trials} NAS-Bench-201 tabular evaluations (nb201-cifar10) per method  "
        f"PostgreSQL via {args.pg.rsplit('/', 1)[0]}"
    )
    try:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        print(f"error: PostgreSQL is not reachable at {args.pg}: {exc}", file=sys.stderr)
        return 2

    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nas-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        res["loop"] = loop_path(args, table)
        lp = res["loop"]
        print(
            f"== 4. plain loop: TabularEvaluator.evaluate on batches of {BATCH} in this process: "
            f"{lp['seconds'] * 1000:.1f} ms = {lp['rate']:,.0f} trials/s (sampling the "
            f"architectures took {lp['sample_s'] * 1000:.1f} ms more, not counted)"
        )
        res["searchloop"] = searchloop_path(args, table)
        sl = res["searchloop"]
        print(
            f"   reference: SearchLoop in this process (random controller, inline backend, no "
            f"database): {sl['seconds'] * 1000:.1f} ms = {sl['rate']:,.0f} trials/s"
        )
        sys.stdout.flush()
        if not args.skip_service:
            res["service"] = service_path(args, table, tmp)
            print_service(res["service"], args)
            if args.show_log:
                print("  server log tail:")
                for line in res["service"]["log_tail"].splitlines():
                    print(f"    | {line}")
            sys.stdout.flush()
        if not args.skip_optuna:
            res["optuna"] = optuna_path(args, table)
            o = res["optuna"]
            print(
                f"== 2. optuna {o['version']}: create_study(storage=postgresql+psycopg, "
                f"RandomSampler), 6 suggest_categorical x 5 ops, study.optimize(n_trials="
                f"{args.trials}): {o['seconds']:.2f} s = {o['rate']:,.0f} trials/s "
                f"(create_study {o['create_s']:.2f} s, not counted); trials check "
                f"{'OK' if o['ok'] else 'FAILED'}; CPU s: this process {o['cpu']['client_s']:.2f}, "
                f"machine {o['cpu']['machine_s']:.2f}"
            )
            sys.stdout.flush()
        if not args.skip_tune:
            res["tune"] = tune_path(args, table, tmp)
            t = res["tune"]
            extra = (
                f"; EXTRAPOLATED to {args.trials} trials at the measured rate: "
                f"{args.trials / t['rate']:.1f} s"
                if t["extrapolated"]
                else ""
            )
            print(
                f"== 3. ray tune (ray {t['version']}): Tuner(num_samples={args.tune_trials}, "
                f"reuse_actors=True, max_concurrent_trials=2), function trainable, tune.choice "
                f"x 6: fit() {t['seconds']:.2f} s for {t['trials']} trials = {t['rate']:,.1f} "
                f"trials/s (ray.init {t['init_s']:.1f} s, not counted); errors {t['errors']}; "
                f"check {'OK' if t['ok'] else 'FAILED'}{extra}"
            )

    rows = summary_rows(res, args)
    ref_row = next((r for r in rows if r[0].startswith("service, warm (median")), None)
    if ref_row is None:
        ref_row = next((r for r in rows if r[0].startswith("service, cold (1st")), None)
    ref = ref_row[3] if ref_row else None
    ref_label = ref_row[0] if ref_row else None
    print()
    print(
        f"{'method':<38} {'trials':>6} {'seconds':>9} {'trials/s':>11} {'vs service':>10} "
        f"{'bg cores':>8}  note"
    )
    for label, n, secs, rate, note, bg in rows:
        ratio = f"{rate / ref:.3g}x" if ref else "n/a"
        bgs = f"{bg:.2f}" if bg is not None else "-"
        print(f"{label:<38} {n:>6} {secs:>9.3f} {rate:>11,.1f} {ratio:>10} {bgs:>8}  {note}")
    if ref:
        print(
            f"vs service: trials/s over '{ref_label}' (submit -> SUCCEEDED); target "
            f">= {SERVICE_TARGET:,.0f} trials/s: {'PASS' if ref >= SERVICE_TARGET else 'FAIL'}. "
            f"bg cores: other work on this {os.cpu_count()}-core machine in the second before."
        )
    busiest = max((r[5] for r in rows if r[5] is not None), default=0.0)
    if busiest > 0.3:
        print(
            f"WARNING: the machine is shared: up to {busiest:.2f} cores were busy with other "
            f"work just before a measurement; figures are lower than on a quiet machine"
        )

    summary: dict[str, Any] = {"trials": args.trials}
    if "service" in res:
        svc = res["service"]
        warm = svc["runs"][1:]
        summary["service"] = {
            "cold_trials_per_s": round(svc["runs"][0]["rate"], 1),
            "warm_trials_per_s": [round(r["rate"], 1) for r in warm],
            "warm_median_trials_per_s": (
                round(args.trials / statistics.median(r["seconds"] for r in warm), 1)
                if warm
                else None
            ),
            "reference": ref_label,
            "server_view_warm_median_trials_per_s": (
                round(args.trials / statistics.median(r["server_s"] for r in warm), 1)
                if warm
                else None
            ),
            "target_ok": bool(ref and ref >= SERVICE_TARGET),
            "db_ok": all(r["db_ok"] for r in svc["runs"]),
            "get_404_after_201": sum(r["not_found"] for r in svc["runs"]),
            "env": svc["env"],
            "client_poll_ms": args.client_poll_ms,
        }
    if "optuna" in res:
        summary["optuna_trials_per_s"] = round(res["optuna"]["rate"], 1)
    if "tune" in res:
        t = res["tune"]
        summary["tune_trials_per_s"] = round(t["rate"], 2)
        summary["tune_trials_measured"] = t["trials"]
        summary["tune_extrapolated"] = t["extrapolated"]
    summary["loop_trials_per_s"] = round(res["loop"]["rate"], 1)
    summary["searchloop_trials_per_s"] = round(res["searchloop"]["rate"], 1)
    if ref:
        summary["ratios_to_service"] = {
            label: round(rate / ref, 4) for label, _n, _s, rate, _note, _bg in rows
        }
    summary["background_cores_max"] = round(busiest, 2)
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
