"""The ``nas`` command line: ``nas search`` (one search in this process, through
``workers.local``) plus the service commands, which talk HTTP through
``api.client.NasClient`` (``keys`` and ``db`` work on the database directly: they are how an
operator bootstraps the service).

Subcommands import what they need when they run, so ``nas --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.trial import TrialState


def _cmd_search(args: argparse.Namespace) -> int:
    from nas.spec import load_spec_file
    from nas.warmstart import resolve_runs
    from workers.local import default_run_dir, run_local_search
    from workers.search import parse_spec

    resolved = parse_spec(resolve_runs(load_spec_file(args.spec)))
    out = Path(args.out) if args.out else default_run_dir(resolved)
    summary = run_local_search(resolved, out, progress=not args.quiet)
    best = summary["best"]
    print(f"run directory: {out}")
    print(
        f"trials: {summary['trials']} ({summary['stop_reason']}), wall {summary['wall_time_s']} s"
    )
    if best is None:
        print("no trial completed")
        return 1
    trial = f"trial {best['trial']} " if "trial" in best else ""
    print(f"best: {trial}{json.dumps(best['objective'])}")
    if best["final_metrics"]:
        print(f"final: {json.dumps(best['final_metrics'])}")
    if "final" in best:
        final = best["final"]
        print(
            f"retrained: test_accuracy={final['test_accuracy']:.2f} params={final['params']} "
            f"flops={final['flops']} weights={final.get('weights', '-')}"
        )
    print(f"genotype: {json.dumps(best['genotype'])}")
    return 0


def _client(args: argparse.Namespace) -> Any:
    from api.client import NasClient

    return NasClient(args.server, api_key=args.api_key)


def _settings(args: argparse.Namespace) -> Any:
    from api.settings import Settings

    overrides = {}
    if getattr(args, "db", None):
        overrides["database_url"] = args.db
    return Settings(**overrides)


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from api.app import create_app

    settings = _settings(args)
    if args.no_auth:
        settings = settings.model_copy(update={"auth": "none"})
    if args.ray_address:
        settings = settings.model_copy(update={"ray_address": args.ray_address, "backend": "ray"})
    if args.backend:
        settings = settings.model_copy(update={"backend": args.backend})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if settings.auth == "none":
        logging.getLogger("nas.api").warning(
            "authentication is OFF (NAS_AUTH=none): every caller is admin; trusted machine only"
        )
    print(
        f"database: {settings.resolved_database_url()}; backend: {settings.backend}",
        file=sys.stderr,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown
    )
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.spec)
        print(f"job {job['id']} ({job['name']}) {job['state']}")
        if args.wait:
            return _watch(client, job["id"])
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.jobs(state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(f"{'ID':>5}  {'NAME':<24} {'STATE':<10} {'TRIALS':>7} {'PROGRESS':>8}  BEST")
    for job in page["data"]:
        best = job["best"]["value"] if job["best"] else None
        print(
            f"{job['id']:>5}  {job['name'][:24]:<24} {job['state']:<10} {job['n_trials']:>7} "
            f"{100 * job['progress']:>7.1f}%  {_fmt(best)}"
        )
    print(f"({page['count']} jobs)")
    return 0


def _cmd_trials(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.top:
            rows = client.best(args.job, args.top)
            count = len(rows)
        else:
            page = client.trials(
                args.job,
                state=args.state,
                sort=args.sort,
                order=args.order,
                limit=args.limit,
                offset=args.offset,
            )
            rows, count = page["data"], page["count"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'#':>6}  {'STATE':<9} {'OBJECTIVE':>10}  ARCHITECTURE")
    for t in rows:
        choices = ",".join(str(c) for c in t["architecture"]["choices"])
        print(f"{t['number']:>6}  {t['state']:<9} {_fmt(t['objective']):>10}  {choices[:80]}")
    print(f"({len(rows)} shown of {count})")
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    with _client(args) as client:
        curves = client.curves(args.job)
    if args.json:
        print(json.dumps(curves, indent=2))
        return 0
    for series, points in curves["epochs"].items():
        keys = [k for k in dict.fromkeys(k for p in points for k in p) if k != "epoch"]
        print(f"{series}: {len(points)} epochs")
        print(f"{'EPOCH':>5}  " + " ".join(f"{k[:12]:>12}" for k in keys))
        for p in points:
            print(f"{p['epoch']:>5}  " + " ".join(f"{_cell(p.get(k)):>12}" for k in keys))
    steps = curves["best_so_far"]
    print(f"best so far ({curves['direction']}, {curves['n_trials']} trials):")
    print(f"{'TRIAL':>6}  {'VALUE':>10}")
    for step in steps:
        print(f"{step['trial']:>6}  {_fmt(step['value']):>10}")
    if not steps:
        print("(no completed trial yet)")
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _watch(client, args.job)


def _watch(client: Any, job_id: int) -> int:
    """A live progress bar from the job's event stream; prints the best result at the end."""
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        unit="%",
        desc=f"job {job_id}",
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
    )
    job: dict[str, Any] = {}
    try:
        for event, data in client.events(job_id):
            if event == "job":
                job = data
                best = data["best"]["value"] if data["best"] else None
                bar.set_postfix_str(
                    f"{data['state']} trials={data['n_trials']} best={_fmt(best)}", refresh=False
                )
                bar.update(round(100 * data["progress"], 1) - bar.n)
    finally:
        bar.close()
    job = client.job(job_id)
    print(f"job {job_id} {job['state']}: {job['reason']}")
    print(f"trials: {job['n_trials']} {json.dumps(job['trial_states'])}")
    best = client.best(job_id, 1)
    if best:
        t = best[0]
        print(f"best: trial {t['number']} objective={_fmt(t['objective'])}")
        print(f"architecture: {json.dumps(t['architecture'])}")
    summary = job.get("summary") or {}
    if summary.get("best") and summary["best"].get("final"):
        final = summary["best"]["final"]
        print(f"retrained: test_accuracy={final['test_accuracy']:.2f} params={final['params']}")
    return 0 if job["state"] == "SUCCEEDED" else 1


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job)
    print(f"job {job['id']} {job['state']} (cancel requested)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        path = client.export(
            args.job, args.format, args.rank, args.output, untrained=args.untrained
        )
    print(f"wrote {path} ({path.stat().st_size:,} bytes): job {args.job} rank {args.rank}")
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    with _client(args) as client:
        started = client.retrain(args.job, args.rank)
        print(
            f"job {args.job} rank {args.rank}: retraining as trial {started['trial_number']} "
            f"(id {started['trial_id']})",
            file=sys.stderr,
        )
        if args.no_wait:
            print(json.dumps(started))
            return 0
        trial = client.wait_trial(started["trial_id"])
    if trial["state"] != TrialState.COMPLETE.value:
        print(f"error: retraining {trial['state']}: {trial['error']}", file=sys.stderr)
        return 1
    m = trial["metrics"]
    print(
        f"retrained: test_accuracy={m['test_accuracy']:.4g} params={m['params']} "
        f"flops={m['flops']} in {m['train_seconds']:.1f} s; "
        f"export with: nas export {args.job} --rank {args.rank} --format pytorch"
    )
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.job)
    print(f"job {args.job} deleted, with its trials and files")
    return 0


def _db(args: argparse.Namespace) -> Any:
    from api.db import make_engine, upgrade

    engine = make_engine(_settings(args).resolved_database_url())
    upgrade(engine)
    return engine


def _cmd_keys(args: argparse.Namespace) -> int:
    from api.auth import create_key
    from api.db import make_session_factory, session_scope
    from api.repositories import ApiKeyRepository

    engine = _db(args)
    factory = make_session_factory(engine, write=True)
    with session_scope(factory) as session:
        if args.keys_command == "create":
            row, key = create_key(session, name=args.name, admin=args.admin)
            print(key)
            print(
                f"key {row.id} '{row.name}'{' (admin)' if row.admin else ''} created; it is "
                "shown only now: export NAS_API_KEY=<key>",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            for row in ApiKeyRepository(session).list():
                state = "revoked" if row.revoked_at else "active"
                admin = "admin" if row.admin else "user"
                print(f"{row.id:>4}  {row.prefix}...  {row.name:<20} {admin:<5} {state}")
        else:
            if not ApiKeyRepository(session).revoke(args.id):
                print(f"error: no active key {args.id}", file=sys.stderr)
                return 2
            print(f"key {args.id} revoked")
    engine.dispose()
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from api.db import current_revision

    engine = _db(args)
    print(f"database at revision {current_revision(engine)}")
    engine.dispose()
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cell(value: Any) -> str:
    """A table cell: numbers as ``_fmt`` writes them, anything else as text (cut short)."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return _fmt(value)
    return str(value)[:12]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas", description="Neural architecture search and hyperparameter optimisation."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    search = sub.add_parser("search", help="run one search in this process")
    search.add_argument("spec", help="job spec, YAML or JSON")
    search.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(func=_cmd_search)

    def client_command(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument(
            "--server", help="service URL (default $NAS_SERVER or http://127.0.0.1:8000)"
        )
        cmd.add_argument("--api-key", help="API key (default $NAS_API_KEY)")
        return cmd

    serve = sub.add_parser("serve", help="run the service (HTTP API + job runner)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--db",
        help="database URL (default $NAS_DATABASE_URL or a SQLite file "
        "under $NAS_DATA_DIR, ./.nas)",
    )
    serve.add_argument(
        "--ray-address",
        help="join this Ray cluster (default $NAS_RAY_ADDRESS or $RAY_ADDRESS; else a local "
        "Ray instance is started)",
    )
    serve.add_argument(
        "--backend",
        choices=["ray", "inline"],
        help="where trials run (default $NAS_BACKEND, else ray)",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="no API keys: every caller is admin (single user, trusted machine)",
    )
    serve.set_defaults(func=_cmd_serve)

    submit = client_command("submit", "submit a job spec to the service")
    submit.add_argument("spec")
    submit.add_argument("--wait", action="store_true", help="watch until the job finishes")
    submit.set_defaults(func=_cmd_submit)

    jobs = client_command("jobs", "list jobs")
    jobs.add_argument("--state")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=_cmd_jobs)

    trials = client_command("trials", "list a job's trials")
    trials.add_argument("job", type=int)
    trials.add_argument("--top", type=int, help="the best K trials")
    trials.add_argument("--state")
    trials.add_argument("--sort", default="number")
    trials.add_argument("--order", default="asc", choices=["asc", "desc"])
    trials.add_argument("--limit", type=int, default=50)
    trials.add_argument("--offset", type=int, default=0)
    trials.add_argument("--json", action="store_true")
    trials.set_defaults(func=_cmd_trials)

    curves = client_command("curves", "a job's per-epoch curves and best-so-far history")
    curves.add_argument("job", type=int)
    curves.add_argument("--json", action="store_true")
    curves.set_defaults(func=_cmd_curves)

    watch = client_command("watch", "live progress of a job until it ends")
    watch.add_argument("job", type=int)
    watch.set_defaults(func=_cmd_watch)

    cancel = client_command("cancel", "cancel a job (its trials are kept)")
    cancel.add_argument("job", type=int)
    cancel.set_defaults(func=_cmd_cancel)

    export = client_command("export", "download one of a job's best architectures")
    export.add_argument("job", type=int)
    export.add_argument(
        "--format",
        default="json",
        help="json (default), pytorch (a zip: model.py, weights.pt), torchscript, onnx, "
        "model-card (Markdown)",
    )
    export.add_argument("--rank", type=int, default=1, help="1 = the best (default)")
    export.add_argument(
        "-o", "--output", help="file or folder (default: the server's file name, here)"
    )
    export.add_argument(
        "--untrained",
        action="store_true",
        help="torchscript/onnx even without trained weights (fresh initialisation)",
    )
    export.set_defaults(func=_cmd_export)

    retrain = client_command("retrain", "retrain one of a job's best architectures from scratch")
    retrain.add_argument("job", type=int)
    retrain.add_argument("--rank", type=int, default=1, help="1 = the best (default)")
    retrain.add_argument("--no-wait", action="store_true", help="start it and return")
    retrain.set_defaults(func=_cmd_retrain)

    delete = client_command("delete", "delete a job with its trials and files")
    delete.add_argument("job", type=int)
    delete.set_defaults(func=_cmd_delete)

    keys = sub.add_parser("keys", help="manage API keys (on the database directly)")
    keys.add_argument("--db", help="database URL (default as for serve)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="sees and changes every job")
    keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id", type=int)
    keys.set_defaults(func=_cmd_keys)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.add_argument("--db", help="database URL (default as for serve)")
    db.set_defaults(func=_cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import httpx

    from api.client import ApiError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (NasError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        server = getattr(args, "server", None) or "the server"
        print(f"error: cannot talk to {server}: {exc} (is 'nas serve' running?)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
