"""The ``nas`` command line: ``nas search`` (one search in this process, through
``workers.local``) plus the service commands, which talk HTTP through
``api.client.NasClient`` (``keys`` and ``db`` work on the database directly: they are how an
operator bootstraps the service).

Subcommands import what they need when they run, so ``nas --help`` stays fast. Options are
accepted before or after the subcommand (``nas --server URL jobs``, ``nas keys create --name
NAME --db URL``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from nas.errors import NasError
from nas.trial import TrialState

#: The job states (``api.models.JobState``; spelled out here so that ``nas --help`` does not
#: import SQLAlchemy).
JOB_STATES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
TRIAL_STATES = tuple(state.value for state in TrialState)
#: The largest page the API serves (``limit``, ``k``).
MAX_PAGE = 1000
#: ``nas trials`` options that choose a page of trials; ``--top K`` takes none of them.
TRIALS_PAGE_OPTIONS = ("state", "sort", "order", "limit", "offset")
#: The largest row id (``Integer`` columns: 32-bit on PostgreSQL); a larger one is refused
#: as an argument rather than overflowing in the driver.
MAX_ID = 2**31 - 1
#: The longest key name (``api.models.KEY_NAME_LENGTH``, spelled out for ``--help``).
KEY_NAME_LENGTH = 200
#: Exit status after the reader of our output went away (``nas trials 1 | head``), as for a
#: process ended by SIGPIPE.
BROKEN_PIPE = 141


def _cmd_search(args: argparse.Namespace) -> int:
    from nas.spec import load_spec_file, spec_warnings
    from nas.warmstart import resolve_runs
    from workers.local import default_run_dir, out_dir_problem, run_local_search
    from workers.loops import check_startable, with_absolute_files, with_pinned_space
    from workers.search import parse_spec
    from workers.warmstart import resolve_run_controller

    document = resolve_run_controller(resolve_runs(load_spec_file(args.spec)))
    resolved = parse_spec(document, strict=True)  # as the service reads a body
    # (spec.yaml with the files as read here: run again from another folder, or as a warm
    # start's source, a relative path named another file or none)
    resolved = with_absolute_files(resolved)
    check_startable(resolved)  # what the job would find at its start, before any folder
    resolved = with_pinned_space(resolved)  # (spec.yaml: a table's choices as read now)
    out = Path(args.out) if args.out else default_run_dir(resolved)
    if out.exists() and not out.is_dir():
        print(
            f"error: --out {out}: a file is there; name a folder (created if missing)",
            file=sys.stderr,
        )
        return 2
    problem = out_dir_problem(out)
    if problem is not None:
        print(f"error: --out {problem}", file=sys.stderr)
        return 2
    for warning in spec_warnings(resolved.spec):  # now, not after the whole search
        print(f"WARNING: {warning}", file=sys.stderr)
    with _terminate_as_interrupt():
        summary = run_local_search(resolved, out, progress=not args.quiet)
    best = summary["best"]
    print(f"run directory: {out}")
    meta = summary.get("meta_training")
    if meta is not None:  # an rl2-meta job: no trials, a policy
        print(
            f"meta-training: {meta['iterations']} iterations in {meta['seconds']} s "
            f"({summary['stop_reason']}); last mean best (z) {meta['last'].get('mean_best_z')}"
        )
        for file in summary.get("files", []):
            print(f"policy: {out / file['name']}  (controller: {{name: rl2, policy: FILE}})")
        for warning in summary.get("warnings") or []:
            print(f"WARNING: {warning}")
        if summary.get("failure"):  # (budget.on_time_limit: fail)
            print(f"error: meta-training failed: {summary['failure']}", file=sys.stderr)
            return 1
        return 0
    print(
        f"trials: {summary['trials']} ({summary['stop_reason']}), wall {summary['wall_time_s']} s"
    )
    for warning in summary.get("warnings") or []:  # stderr had it as the search ended
        print(f"WARNING: {warning}")
    # (a failure went to stdout alone, where a script's error handling does not look)
    if summary.get("failure"):
        print(f"error: search failed: {summary['failure']}", file=sys.stderr)
        return 1
    if best is None:
        print("error: no trial completed", file=sys.stderr)
        return 1
    trial = f"trial {best['trial']} " if "trial" in best else ""
    print(f"best: {trial}{json.dumps(best['objective'], ensure_ascii=False)}")
    if best["final_metrics"]:
        print(f"final: {json.dumps(best['final_metrics'], ensure_ascii=False)}")
    if "final" in best:
        final = best["final"]
        print(
            f"retrained: test_accuracy={final['test_accuracy']:.2f} params={final['params']} "
            f"flops={final['flops']} weights={final.get('weights', '-')}"
        )
    print(f"genotype: {json.dumps(best['genotype'], ensure_ascii=False)}")
    if best.get("hparams"):  # a joint search: the best trial's hyperparameters too
        print(f"hparams: {json.dumps(best['hparams'], ensure_ascii=False)}")
    if summary.get("pareto"):  # several objectives: the front, not only the best
        front = _count(len(summary["pareto"]), "trial")
        print(f"Pareto front: {front} ({out / 'summary.json'}: pareto)")
    return 0


def _print_warnings(warnings: Sequence[str] | None) -> None:
    """Each warning on a line of its own, on stdout and, when stdout goes elsewhere than a
    terminal that stderr shows, on stderr too: neither a log nor an interactive user misses
    it, and output captured as one stream has it once."""
    for warning in warnings or []:
        print(f"WARNING: {warning}")
        if not sys.stdout.isatty() and sys.stderr.isatty():
            print(f"WARNING: {warning}", file=sys.stderr)


def _in_cli_terms(exc: Any, args: argparse.Namespace) -> str:
    """An API error as the command's user typed it: a query parameter the command has as an
    option is that option (``query.rank`` is ``--rank``), a path's job or trial id the
    argument (``job``)."""
    if not isinstance(exc.detail, list):
        return str(exc)
    names = {("path", "job_id"): "job", ("path", "trial_id"): "trial"}
    problems = []
    for entry in exc.detail:
        loc = tuple(entry.get("loc", ())) if isinstance(entry, Mapping) else ()
        if len(loc) == 2 and loc[0] == "query" and hasattr(args, str(loc[1])):
            field = f"--{str(loc[1]).replace('_', '-')}"
        else:
            field = names.get(loc[:2], ".".join(str(p) for p in loc))
        msg = entry.get("msg") if isinstance(entry, Mapping) else entry
        problems.append(f"{field}: {msg}" if field else str(msg))
    return f"HTTP {exc.status_code}: " + "; ".join(problems)


class CommandError(Exception):
    """A mistake the command reports as ``error: MESSAGE`` and exits with ``code``, without
    a traceback: an option's bad value (2), a database that cannot be reached (1)."""

    def __init__(self, message: str, *, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _client(args: argparse.Namespace) -> Any:
    from api.client import ApiKeyError, NasClient, api_key_header

    server = getattr(args, "server", None)
    key = getattr(args, "api_key", None)
    # (an empty --server, "$UNSET_VAR", fell back to $NAS_SERVER without a word)
    for option, value in (("--server", server), ("--api-key", key)):
        if value is not None and not value.strip():
            raise CommandError(f"{option} is empty: give one, or leave the option out")
    try:
        if key is not None:
            api_key_header(key, "--api-key")  # (its error names the option)
        return NasClient(server, api_key=key)
    except ApiKeyError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # not an http(s) URL
        source = "--server" if server else "$NAS_SERVER"
        raise CommandError(f"{source}: {exc}") from None


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from api.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "db", None):
        overrides["database_url"] = args.db
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    try:
        return Settings(**overrides)
    except ValidationError as exc:  # a bad $NAS_... setting (it was a pydantic traceback)
        options = {"database_url": "--db", "data_dir": "--data-dir"}
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            source = options[field] if field in overrides else f"$NAS_{field.upper()}"
            msg = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{source}: {msg} (got {error.get('input')!r})")
        raise CommandError("; ".join(problems)) from None


def describe_database(url: str) -> str:
    """``url`` as the CLI shows it: any password masked, a SQLite file as an absolute path
    (so that two commands run from different folders can be told apart).

    Example:
        >>> describe_database("postgresql+psycopg://nas:secret@db:5432/nas")
        'postgresql+psycopg://nas:***@db:5432/nas'
    """
    from sqlalchemy.engine import make_url

    from api.settings import sqlite_file

    parsed = make_url(url)
    file = sqlite_file(url)
    if file is not None:
        parsed = parsed.set(database=str(file.resolve()))
    return parsed.render_as_string(hide_password=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    settings = _settings(args)
    _check_host(args.host)
    _check_port(args.host, args.port)
    _check_folders(args, settings)
    # One line, not a failed start's traceback (the app's start checks the schema too).
    _check_connects(args, _database_url(args), schema=not settings.migrate_on_start)
    if args.no_auth:
        settings = settings.model_copy(update={"auth": "none"})
    if args.ray_address:
        settings = settings.model_copy(update={"ray_address": args.ray_address, "backend": "ray"})
    if args.backend:
        settings = settings.model_copy(update={"backend": args.backend})
    if settings.backend == "ray":
        _check_ray_reachable(settings.ray_address or os.environ.get("RAY_ADDRESS") or "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if settings.auth == "none":
        logging.getLogger("nas.api").warning(
            "authentication is OFF (NAS_AUTH=none): every caller is admin; trusted machine only"
        )
    print(
        f"database: {describe_database(settings.resolved_database_url())}; "
        f"backend: {settings.backend}",
        file=sys.stderr,
    )
    # The whole service (torch, ...) only now: a bad setting or an unreachable database is
    # said at once, not after seconds of imports.
    from api.app import create_app

    server = _quiet_server(
        create_app(settings, jobs_at_startup=False),  # jobs once the port is bound
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown
    )
    server.run()
    if not server.started:
        print("error: the service did not start (see above)", file=sys.stderr)
        return 1
    print("nas serve: stopped", file=sys.stderr)
    return 0


def _quiet_server(app: Any, **config: Any) -> Any:
    """A uvicorn server that prints the URL it listens on once it does (and starts the app's
    job runner then: ``create_app(jobs_at_startup=False)``), and ends quietly on
    SIGINT or SIGTERM: the signal stops it gracefully, and the command then exits 0 (plain
    uvicorn raises the signal again after its shutdown, which kills the process with it, and
    Ray's start replaces the handlers with one that exits from wherever the main thread is,
    with a traceback)."""
    import signal
    import threading
    from contextlib import contextmanager

    import uvicorn

    from api.app import request_stop, start_jobs
    from api.http_protocol import BoundedHeadProtocol

    signals = (signal.SIGINT, signal.SIGTERM)

    class QuietServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Open event streams end now: uvicorn waits for connections before the app's
            # shutdown runs, and a stream would otherwise be cancelled with a traceback.
            request_stop(self.config.app)
            super().handle_exit(sig, frame)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit:
                return
            if threading.current_thread() is threading.main_thread():
                for sig in signals:  # the app's start (Ray's) may have replaced them
                    signal.signal(sig, self.handle_exit)
            # Only now that the port is ours: a server that cannot bind it exits without
            # having claimed a job that it would leave RUNNING.
            start_jobs(self.config.app)
            host = self.config.host
            port = self.config.port
            for server in self.servers:
                for sock in server.sockets:
                    port = sock.getsockname()[1]
                    break
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{port}"
            settings = self.config.app.state.nas.settings
            print(
                f"nas serve: listening on {url} (dashboard at {url}/, API docs at {url}/docs); "
                "Ctrl-C or SIGTERM stops it",
                flush=True,
            )
            if not settings.run_jobs:  # (its jobs wait QUEUED for a server that runs them)
                print(
                    "nas serve: runs no jobs (NAS_RUN_JOBS=false): jobs submitted here run on "
                    "a server of the same database that does",
                    flush=True,
                )

    return QuietServer(uvicorn.Config(app, http=BoundedHeadProtocol, **config))


def _cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.spec)
        print(f"job {job['id']} ({job['name']}) {job['state']}")
        _print_warnings(job.get("warnings"))
        if args.wait:
            return _watch(client, job["id"])
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.jobs(state=args.state, name=args.name, limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    # Whose each job is, in a list of every user's jobs (an admin's: it showed no owner, the
    # JSON's field alone did; then only where the page held several users', so an admin's
    # page of one user's jobs read as the admin's own: the operator's probe)
    owners = {job.get("owner") for job in page["data"]}
    shown = page.get("all_users") or len(owners) > 1
    width = max((len(str(o or "-")) for o in owners), default=0) if shown else 0
    owner_title = f"{'OWNER':<{max(width, 5)}}  " if width else ""
    print(f"{'ID':>5}  {owner_title}{'NAME':<24} {'STATE':<10} {'TRIALS':>7} {'PROGRESS':>8}  BEST")
    for job in page["data"]:
        best = job["best"]["value"] if job["best"] else None
        owner = f"{job.get('owner') or '-'!s:<{max(width, 5)}}  " if width else ""
        print(
            f"{job['id']:>5}  {owner}{job['name'][:24]:<24} {job['state']:<10} "
            f"{job['n_trials']:>7} {100 * job['progress']:>7.1f}%  {_fmt(best)}"
        )
    shown, count = len(page["data"]), page["count"]
    print(f"({_count(count, 'job')})" if shown == count else f"({shown} shown of {count})")
    return 0


def _cmd_trials(args: argparse.Namespace) -> int:
    if args.csv:
        paged = ("top", "sort", "order", "limit", "offset")
        given = [f"--{name}" for name in paged if getattr(args, name) is not None]
        if given:  # every trial, in number order
            raise CommandError(f"--csv cannot be combined with {', '.join(given)}")
        with _client(args) as client:
            decisions = table_decisions(client.job(args.job)["spec"])
            trials_csv(client.all_trials(args.job, state=args.state), sys.stdout, decisions)
        return 0
    if args.top:
        given = [f"--{name}" for name in TRIALS_PAGE_OPTIONS if getattr(args, name) is not None]
        if given:  # the best K are the best K of all trials: a page of them means nothing
            raise CommandError(f"--top cannot be combined with {', '.join(given)}")
    with _client(args) as client:
        job = client.job(args.job)
        if args.top:
            rows = client.best(args.job, args.top)
            answer: Any = rows  # (/best answers a list)
            footer = f"(the best {len(rows)} of {_count(job['n_trials'], 'trial')})"
        else:
            page = client.trials(
                args.job,
                state=args.state,
                sort=args.sort or "number",
                order=args.order or "asc",
                limit=args.limit or 50,
                offset=args.offset or 0,
            )
            footer = f"({len(page['data'])} shown of {page['count']})"
            rows, answer = page["data"], page
    if args.json:  # the API's JSON: a page (data, count, next cursor), or /best's list
        print(json.dumps(answer, indent=2))
        return 0
    for line in trials_table(rows, table_decisions(job["spec"])):
        print(line)
    print(footer)
    return 0


def table_decisions(spec: Mapping[str, Any]) -> list[tuple[str, list[str]]] | None:
    """A table job's decisions as its stored spec pins them, ``(column, choices)`` in order:
    its trials' choice indices read as the table's own cells (``optimizer=adam``, not
    ``2``), without reading the table, which may be on the server's machine only. ``None``
    for other spaces (their choice indices are listed as they are)."""
    space = spec.get("space") or {}
    decisions = space.get("decisions")
    if space.get("name") != "table" or not isinstance(decisions, list):
        return None
    if not all(isinstance(d, dict) and isinstance(d.get("choices"), list) for d in decisions):
        return None  # (a spec stored before its choices were pinned)
    return [(str(d["column"]), [str(c) for c in d["choices"]]) for d in decisions]


def _named_choices(
    choices: Sequence[int], decisions: Sequence[tuple[str, Sequence[str]]]
) -> list[tuple[str, str]]:
    """``(column, cell)`` of each choice index of a table job's architecture."""
    return [
        (column, values[c] if 0 <= c < len(values) else str(c))
        for c, (column, values) in zip(choices, decisions, strict=False)
    ]


def trials_csv(
    rows: Iterable[Mapping[str, Any]],
    out: IO[str],
    decisions: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> None:
    """Trials as CSV: number, state, objective, one column per metric, per hyperparameter
    (``hp.NAME``) and per architecture choice (``choice.I``: the decision's choice index; a
    table job's, given its ``decisions``, ``choice.COLUMN``: the cell as the table holds it),
    then cost, errors and times; a cell a trial has no value for is empty."""
    import csv

    rows = list(rows)
    metrics = list(dict.fromkeys(k for t in rows for k in t.get("metrics") or {}))
    hparams = list(dict.fromkeys(k for t in rows for k in t.get("hparams") or {}))
    width = max((len(t["architecture"]["choices"]) for t in rows), default=0)
    if decisions is not None:
        width = len(decisions)
    choice_titles = (
        [f"choice.{column}" for column, _ in decisions]
        if decisions is not None
        else [f"choice.{i}" for i in range(width)]
    )
    tail = ("cost_s", "simulated", "error", "worker", "epoch", "step", "started_at", "finished_at")
    # A metric named as another column (a table's own column "error", "state", "hp.x") is
    # metric.NAME: two columns of one name were one column to a reader (pandas: error.1).
    taken = {"number", "state", "objective", *tail}
    titles = [
        f"metric.{m}" if m in taken or m.startswith(("hp.", "choice.", "metric.")) else m
        for m in metrics
    ]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "number",
            "state",
            "objective",
            *map(_no_formula, titles),
            *(f"hp.{name}" for name in hparams),
            *map(_no_formula, choice_titles),
            *tail,
        ]
    )
    for t in rows:
        choices: list[Any] = list(t["architecture"]["choices"])
        if decisions is not None:
            choices = [cell for _, cell in _named_choices(choices, decisions)]
        metric, hparam = t.get("metrics") or {}, t.get("hparams") or {}
        writer.writerow(
            [
                t["number"],
                t["state"],
                _csv_cell(t["objective"]),
                *(_csv_cell(metric.get(k)) for k in metrics),
                *(_csv_cell(hparam.get(k)) for k in hparams),
                *(_csv_cell(c) for c in choices + [""] * (width - len(choices))),
                *(_csv_cell(t.get(k)) for k in tail),
            ]
        )


def _csv_cell(value: Any) -> Any:
    """None as an empty cell, anything not a number or text as JSON; text that a
    spreadsheet would run as a formula (``=HYPERLINK(...)``, a categorical choice or a
    table's cell) behind a ``'``, as OWASP advises: it was written as it was, a live formula
    in the spreadsheet the CSV is for (the security probe)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _no_formula(value)
    if isinstance(value, bool | int | float):
        return value
    return json.dumps(value)


def _no_formula(text: str) -> str:
    """``text``, with a ``'`` before it when a spreadsheet would read it as a formula (it
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) and it is not a
    number (``-0.5`` stays a number)."""
    if not text.startswith(("=", "+", "-", "@", "\t", "\r")):
        return text
    try:
        float(text)
    except ValueError:
        return "'" + text
    return text


def trials_table(
    rows: Sequence[Mapping[str, Any]],
    decisions: Sequence[tuple[str, Sequence[str]]] | None = None,
) -> list[str]:
    """Trials as text lines: number, state, objective, one column per metric and per
    hyperparameter (``hp.NAME``) any of them has, then the architecture's choices (a table
    job's, given its ``decisions``, as ``column=cell``)."""
    metrics = list(dict.fromkeys(k for t in rows for k in t.get("metrics") or {}))
    hparams = list(dict.fromkeys(k for t in rows for k in t.get("hparams") or {}))
    columns: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
        (name, lambda t, name=name: (t.get("metrics") or {}).get(name)) for name in metrics
    ]
    columns += [
        (f"hp.{name}", lambda t, name=name: (t.get("hparams") or {}).get(name)) for name in hparams
    ]
    # A column is as wide as its whole title and its cells (text cut at 20 characters).
    widths = [max(8, len(title), *(len(_cell(get(t), 20)) for t in rows)) for title, get in columns]
    header = f"{'#':>6}  {'STATE':<9} {'OBJECTIVE':>10}"
    header += "".join(f"  {title:>{w}}" for (title, _), w in zip(columns, widths, strict=True))
    lines = [header + "  ARCHITECTURE"]
    for t in rows:
        line = f"{t['number']:>6}  {t['state']:<9} {_cell(t['objective'], 10):>10}"
        line += "".join(
            f"  {_cell(get(t), w):>{w}}" for (_, get), w in zip(columns, widths, strict=True)
        )
        arch = t["architecture"]["choices"]
        choices = (
            ",".join(str(c) for c in arch)
            if decisions is None
            else " ".join(
                f"{_printable(column)}={_printable(str(cell))}"
                for column, cell in _named_choices(arch, decisions)
            )
        )
        lines.append(f"{line}  {choices if len(choices) <= 80 else choices[:79] + '…'}")
    return lines


def _cmd_curves(args: argparse.Namespace) -> int:
    with _client(args) as client:
        curves = client.curves(args.job)
        # (only where no trial completed: "yet" of a job that had ended)
        state = client.job(args.job)["state"] if not curves["best_so_far"] else None
    if args.json:
        print(json.dumps(curves, indent=2))
        return 0
    for series, points in curves["epochs"].items():
        keys = [k for k in dict.fromkeys(k for p in points for k in p) if k != "epoch"]
        # A meta-training curve has a point per record_every iterations (its "iteration"
        # column), not epochs.
        unit, column = ("points", "POINT") if series == "meta_train" else ("epochs", "EPOCH")
        print(f"{series}: {len(points)} {unit}")
        widths = [max(12, len(k)) for k in keys]  # whole names: train_accuracy, not train_accura
        print(f"{column:>5}  " + " ".join(f"{k:>{w}}" for k, w in zip(keys, widths, strict=True)))
        for p in points:
            cells = (f"{_cell(p.get(k), w):>{w}}" for k, w in zip(keys, widths, strict=True))
            print(f"{p['epoch']:>5}  " + " ".join(cells))
    if "meta_train" in curves["epochs"] and not curves["n_trials"]:
        return 0  # (a meta-training job runs no trials: there is no best so far to show)
    steps = curves["best_so_far"]
    print(f"best so far ({curves['direction']}, {_count(curves['n_trials'], 'trial')}):")
    print(f"{'TRIAL':>6}  {'VALUE':>10}")
    for step in steps:
        print(f"{step['trial']:>6}  {_fmt(step['value']):>10}")
    if not steps:  # ("yet" of a job that had ended: the CLI probe)
        ended = state in ("SUCCEEDED", "FAILED", "CANCELLED")
        print("(no completed trial)" if ended else "(no completed trial yet)")
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _watch(client, args.job)


#: How long ``nas watch`` (and ``submit --wait``) follow a job through a server out of reach
#: before giving up: a restarted server takes its jobs over, as ``NasClient.wait`` rides out.
WATCH_UNREACHABLE_S = 60.0


def _followed_events(
    client: Any, job_id: int, say: Callable[[str], None]
) -> Iterator[tuple[str, Any]]:
    """The job's events (``NasClient.events``), followed again when the stream stops short
    of the job's end (a server restart, a stall), until the server has been out of reach
    for ``WATCH_UNREACHABLE_S`` in a row (``CommandError`` naming the next step). A key the
    server refuses since (revoked, or rotated) is said as such."""
    from api.client import ApiError, ServerUnreachable, format_detail, passing_fault

    out_since: float | None = None
    last_event_id: int | None = None  # (followed again from there: every trial was sent again)
    while True:
        started = time.monotonic()
        try:
            for event, data in client.events(job_id, last_event_id=last_event_id):
                out_since = None  # (it answers again)
                yield event, data
            return  # (its end event)
        except ApiError as exc:
            if isinstance(exc, ServerUnreachable) and exc.last_event_id is not None:
                last_event_id = exc.last_event_id
            if exc.status_code == 401:
                raise CommandError(
                    f"the server refuses this API key since the watch began (revoked, or "
                    f"rotated: a rotated key's new secret follows job {job_id}, a new key "
                    f"does not): {format_detail(exc.detail)}"
                ) from None
            reason = passing_fault(exc)  # (no answer, or a 503: its database out a moment)
            if reason is None:
                raise
            out_since = started if out_since is None else out_since
            if time.monotonic() - out_since >= WATCH_UNREACHABLE_S:
                raise CommandError(
                    f"cannot follow job {job_id}: {reason}; out of reach for "
                    f"{WATCH_UNREACHABLE_S:g} s: the job goes on once the server is back, "
                    f"where 'nas watch {job_id}' follows it again"
                ) from None
            say(
                f"job {job_id}: {reason}; following it again as soon as the server "
                f"answers (for up to {WATCH_UNREACHABLE_S:g} s)"
            )
            time.sleep(1.0)


def _watch(client: Any, job_id: int) -> int:
    """A live progress bar from the job's event stream; prints the best result at the end.
    A job already finished is said at once: its stream replays every trial first (seconds
    for a job of thousands)."""
    from tqdm import tqdm

    from api.client import FINISHED

    first = client.job(job_id)  # a job that is not there (404) is said before any bar is drawn
    # A meta-training job runs no trials: its progress is its curve (series meta_train).
    meta = (first.get("spec", {}).get("evaluator") or {}).get("name") == "rl2-meta"
    job: dict[str, Any] = {}
    bar = None
    try:  # (from the bar on: an interrupt as soon as it shows says the job goes on)
        bar = tqdm(
            total=100,
            unit="%",
            desc=f"job {job_id}",
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
        )
        events = (
            [("job", first)]
            if first["state"] in FINISHED
            else _followed_events(client, job_id, lambda text: bar.write(text, file=sys.stderr))
        )
        for event, data in events:
            if event == "end" and data.get("state") == "DELETED":
                bar.close()
                print(f"job {job_id} DELETED: {data['reason']}")
                return 1
            if event == "job":
                job = data
                best = data["best"]["value"] if data["best"] else None
                status = f"{data['state']} trials={data['n_trials']} best={_fmt(best)}"
                if meta:
                    points = client.curves(job_id)["epochs"].get("meta_train") or [{}]
                    last = points[-1]
                    status = (
                        f"{data['state']} iteration={last.get('iteration', 0)} "
                        f"auc_z={_fmt(last.get('auc_z'))}"
                    )
                bar.set_postfix_str(status, refresh=False)
                bar.update(round(100 * data["progress"], 1) - bar.n)
    except KeyboardInterrupt:
        # Only the watching stops: the job goes on on the server, which the user must know.
        raise KeyboardInterrupt(
            f"job {job_id} goes on running on the server: 'nas watch {job_id}' follows it "
            f"again, 'nas cancel {job_id}' stops it"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    job = client.job(job_id)
    print(f"job {job_id} {job['state']}: {job['reason']}")
    _print_warnings(job.get("warnings"))
    print(f"trials: {job['n_trials']} {json.dumps(job['trial_states'])}")
    best = client.best(job_id, 1) if job["n_trials"] else []
    for line in describe_result(job, best[0] if best else None):  # as 'nas show' says it
        print(line)
    return 0 if job["state"] == "SUCCEEDED" else 1


def _cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.job(args.job)
        best = client.best(args.job, 1) if job["n_trials"] and not args.spec else []
        # Several objectives and no summary's front yet (running, or cancelled): the front
        # of the trials so far, with their ranks
        objective = (job.get("spec") or {}).get("objective") or {}
        several = len(objective.get("metrics") or []) > 1 and job["n_trials"] and not args.spec
        pareto = None
        if several and not (job.get("summary") or {}).get("pareto"):
            pareto = client.pareto(args.job, sample=0)
    if args.spec:
        import yaml

        print(yaml.safe_dump(job["spec"], sort_keys=False, allow_unicode=True), end="")
        return 0
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    for line in describe_job(job, best[0] if best else None, pareto):
        print(line)
    return 0


def describe_job(
    job: Mapping[str, Any],
    best_trial: Mapping[str, Any] | None,
    pareto: Mapping[str, Any] | None = None,
) -> list[str]:
    """``nas show``: the job's state and progress, then its best architecture with genotype,
    hyperparameters, metrics and held-out figures (test accuracy: the evaluator's final
    figures and any retraining), as text lines. A finished job's summary is used when it has
    one; before that, the best trial so far (``best_trial``) and the Pareto front so far
    (``pareto``: ``GET /jobs/{id}/pareto``'s answer)."""
    spec = job.get("spec") or {}
    lines = [f"job {job['id']} {job['name']}: {job['state']}" + _paren(job.get("reason"))]
    lines += [f"WARNING: {warning}" for warning in job.get("warnings") or []]
    times = ", ".join(
        f"{k} {str(job[f'{k}_at'])[:19]}"
        for k in ("created", "started", "finished")
        if job.get(f"{k}_at")
    )
    lines.append(
        f"progress {100 * job['progress']:.1f}%, {_count(job['n_trials'], 'trial')} "
        f"{json.dumps(job.get('trial_states') or {})}, resumes {job.get('resumes', 0)}; {times}"
    )
    objective = spec.get("objective") or {}
    lines.append(
        "search: "
        + ", ".join(
            f"{part} {(spec.get(part) or {}).get('name', '-')}"
            for part in ("space", "controller", "evaluator", "dataset")
        )
        + "; "
        + _objectives(objective)
    )
    sources = ((spec.get("warm_start") or {}).get("sources")) or []
    if sources:  # as the job page lists them
        lines.append(
            "warm start from: "
            + ", ".join(
                f"job {s['job_id']} ({s.get('name')}, {s.get('priors', 0)} priors)"
                if s.get("job_id") is not None
                else f"run {s.get('run')} ({s.get('priors', 0)} priors)"
                for s in sources
                if isinstance(s, Mapping)
            )
        )
    return lines + describe_result(job, best_trial, pareto)


def _objectives(objective: Mapping[str, Any]) -> str:
    """``objective val_accuracy (maximize)``, or each objective of a multi-objective job."""
    metrics, directions = objective.get("metrics") or [], objective.get("directions") or []
    if len(metrics) > 1 and len(metrics) == len(directions):
        pairs = ", ".join(f"{m} ({d})" for m, d in zip(metrics, directions, strict=True))
        return f"objectives {pairs}"
    return f"objective {objective.get('metric', '-')} ({objective.get('direction', '-')})"


def describe_result(
    job: Mapping[str, Any],
    best_trial: Mapping[str, Any] | None,
    pareto: Mapping[str, Any] | None = None,
) -> list[str]:
    """The result part of ``nas show`` (also the end of ``nas watch`` and ``submit --wait``):
    an RL² meta-training job's policy, or the best architecture (the summary's, which for a
    shared-weight search is derived from it, not a trial; before a summary, the best trial
    so far) with its genotype, hyperparameters, metrics, held-out figures and retrainings."""
    spec = job.get("spec") or {}
    summary = job.get("summary") or {}
    lines: list[str] = []
    meta = summary.get("meta_training")
    if meta:  # an rl2-meta job: its policy, not an architecture
        trained = f"meta-training: {meta['iterations']} iterations in {meta['seconds']} s on "
        stored = job.get("state") in ("SUCCEEDED", "CANCELLED") and any(
            f.get("kind") == "rl2_policy" for f in summary.get("files") or []
        )
        lines.append(
            f"{trained}{', '.join(meta['tasks'])}; policy stored: name it with "
            f"controller: {{name: rl2, policy_job: {job['id']}}}, or download it: "
            f"nas policy {job['id']}"
            if stored  # (a FAILED job was said to have one, which no job could name)
            else f"{trained}{', '.join(meta['tasks'])}; no policy stored ({job.get('state')})"
        )
    best = summary.get("best")
    if best:
        trial = f"trial {best['trial']}" if "trial" in best else "derived from the search"
        lines.append(f"best: {trial}, {_pairs(best.get('objective') or {})}")
        arch, genotype = best.get("architecture"), best.get("genotype")
        metrics, hparams = best.get("metrics") or {}, best.get("hparams") or {}
        held_out = best.get("final_metrics") or {}
    elif best_trial is not None:
        lines.append(
            f"best so far: trial {best_trial['number']}, objective {_fmt(best_trial['objective'])}"
        )
        arch = best_trial.get("architecture")
        genotype = _genotype(spec, arch) if arch else None
        metrics, hparams = best_trial.get("metrics") or {}, best_trial.get("hparams") or {}
        held_out = {}
    elif (spec.get("evaluator") or {}).get("name") == "rl2-meta":
        if not meta:  # (a finished one said where its policy is, above)
            lines.append("a meta-training job: it trains an RL² policy, not architectures")
        return lines
    else:
        yet = " yet" if job["state"] in ("QUEUED", "RUNNING") else ""
        lines.append(f"best: - (no completed trial{yet})")
        return lines
    if arch:
        choices = ", ".join(str(c) for c in arch.get("choices", []))
        lines.append(f"  architecture: {arch.get('space')} v{arch.get('version')} [{choices}]")
    if genotype is not None:
        lines.append(f"  genotype: {json.dumps(genotype, ensure_ascii=False)}")
    lines.append(f"  hyperparameters: {_pairs(hparams) if hparams else '-'}")
    lines.append(f"  metrics: {_pairs(metrics) if metrics else '-'}")
    if held_out:
        lines.append(f"  held-out: {_pairs(held_out)}")
    front = summary.get("pareto") or []
    so_far = ""
    if not front and pareto and pareto.get("front"):  # (no summary: running, or cancelled)
        names = [o["metric"] for o in pareto["objectives"]]
        front = [
            {**p, "values": dict(zip(names, p["values"], strict=True))} for p in pareto["front"]
        ]
        so_far = " so far" if job.get("state") in ("QUEUED", "RUNNING") else ""
    if front:  # a multi-objective job: no one best, a front
        lines.append(
            f"Pareto front{so_far}: {_count(len(front), 'trial')} "
            f"(GET /api/v1/jobs/{job['id']}/pareto)"
        )
        for p in front[:10]:  # (rank: what nas export/retrain --rank take; older jobs: none)
            rank = f" (rank {p['rank']})" if p.get("rank") is not None else ""
            lines.append(f"  trial {p['trial']}{rank}: {_pairs(p['values'])}")
        if len(front) > 10:
            lines.append(f"  ... and {len(front) - 10} more")
    finals = summary.get("final") or []
    for i, final in enumerate(finals):
        figures = {
            k: final[k] for k in ("test_accuracy", "train_loss", "params", "flops") if k in final
        }
        weights = final.get("weights", "-")
        # (a rank retrained again: exports take the latest, as the API's ranking does)
        later = any(
            f.get("weights") and f.get("architecture") == final.get("architecture")
            for f in finals[i + 1 :]
        )
        lines.append(
            f"retrained rank {int(final.get('rank', 0)) + 1}: {_pairs(figures)} weights={weights}"
            + (" (retrained again below: exports take the latest)" if later else "")
        )
    job_id = job["id"]
    # the space's own formats (a table space exports its architecture as json only)
    export = (
        f"nas export {job_id} --format pytorch -o model.zip"
        if "pytorch" in job.get("export_formats", ["pytorch"])
        else f"nas export {job_id} --format json -o architecture.json"
    )
    lines.append(f"next: nas trials {job_id} --top 5; {export}")
    return lines


def _genotype(spec: Mapping[str, Any], arch: Mapping[str, Any]) -> Any:
    """The readable genotype of ``arch`` in the job's space (``None`` if it cannot be read)."""
    from nas.architecture import Architecture
    from nas.spec import ResolvedSpec

    try:
        space = ResolvedSpec.from_stored(spec).build_space()
        return space.describe(Architecture.from_dict(dict(arch)))
    except (NasError, ValueError, KeyError, TypeError):
        return None


def _pairs(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_cell(v, 24)}" for k, v in values.items())


def _paren(text: str | None) -> str:
    return f" ({text})" if text else ""


def _count(n: int, noun: str) -> str:
    """``1 trial``, ``2 trials``, ``0 trials``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job)
    if job["state"] == "RUNNING":
        when = "at its next trial or epoch"
        if (job.get("spec", {}).get("evaluator") or {}).get("name") == "rl2-meta":
            # (a meta-training job has neither: it abandons the iteration under way)
            when = "within seconds, keeping its policy as of its last whole iteration"
        print(f"job {job['id']} RUNNING (cancel requested; it stops {when})")
    else:  # a QUEUED job is cancelled at once
        print(f"job {job['id']} {job['state']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from api.client import ApiError, UntrainedExportWarning

    with _client(args) as client, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", UntrainedExportWarning)
        try:
            path = _download(
                args.output,
                lambda target: client.export(
                    args.job, args.format, args.rank, target, untrained=args.untrained
                ),
            )
        except ApiError as exc:
            # The API's advice names its query parameter; here it is an option.
            if isinstance(exc.detail, str) and "untrained=true" in exc.detail:
                detail = exc.detail.replace("untrained=true", "--untrained")
                raise ApiError(exc.status_code, detail) from None
            raise
        # (a bundle without trained weights was written without a word: the probe of a new
        # user's tasks ran the zip's model.py for weights.pt that it never held)
        untrained = any(issubclass(w.category, UntrainedExportWarning) for w in said)
        how = _how_to_train(client, args.job, args.rank) if untrained else ""
    note = " (untrained: random weights)" if untrained else ""
    if path is None:
        print(f"wrote job {args.job} rank {args.rank}{note} to stdout", file=sys.stderr)
    else:
        print(f"wrote {_written(path)}: job {args.job} rank {args.rank}{note}")
    if untrained:
        print(f"note: the network has random weights; {how}", file=sys.stderr)
    return 0


def _how_to_train(client: Any, job_id: int, rank: int) -> str:
    """How the export of ``rank`` gets trained weights, now: it said "'nas retrain' trains
    it" of a job still running and while another retraining ran, both a 409 (the probe of
    exports)."""
    job = client.job(job_id)
    refused = job.get("retrain_refused")
    if refused is not None:
        return f"it cannot be retrained here ({refused})"
    retrain = f"'nas retrain {job_id} --rank {rank}'"
    if job["state"] in ("QUEUED", "RUNNING"):
        final = (job.get("spec") or {}).get("final")
        if final is not None and rank <= int(final.get("retrain_top_k", 1)):
            return "the job still runs: its final: retraining trains it, then export again"
        return f"the job still runs: {retrain} once it has finished, then export again"
    running = client.trials(job_id, state="RUNNING", limit=1)["data"]
    if running:
        return (
            f"a retraining of the job runs (trial {running[0]['number']}): export again once "
            f"it has ended, or then run {retrain}"
        )
    return f"{retrain} trains it, then export again"


def _written(path: Path) -> str:
    """``path`` with its size when it is a file the download made (a device or a named
    pipe, written into, has none to tell: /dev/null said 0 bytes)."""
    if path.is_file() and path.parts[:2] != ("/", "dev"):
        return f"{path} ({path.stat().st_size:,} bytes)"
    return str(path)


def _download(output: str | None, fetch: Callable[[str | None], Path]) -> Path | None:
    """``fetch(output)`` (a client download to a file or folder), except that ``-o -``
    writes the file to stdout (``None`` then)."""
    import shutil
    import tempfile

    if output != "-":
        return fetch(output)
    with tempfile.TemporaryDirectory(prefix="nas-download-") as folder:
        path = fetch(folder + "/")
        with path.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return None


def _cmd_policy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        path = _download(args.output, lambda target: client.policy(args.job, target))
    if path is None:
        print(f"wrote job {args.job}'s RL² policy to stdout", file=sys.stderr)
        return 0
    print(
        f"wrote {_written(path)}: job {args.job}'s RL² policy, "
        f"for controller: {{name: rl2, policy: {path}}}"
    )
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    with _client(args) as client:
        started = client.retrain(args.job, args.rank)
        try:  # (from its start on: a Ctrl-C as the line below printed said nothing more)
            print(
                f"job {args.job} rank {args.rank}: retraining as trial "
                f"{started['trial_number']} (id {started['trial_id']})",
                file=sys.stderr,
            )
            if args.no_wait:
                print(json.dumps(started))
                return 0
            trial = client.wait_trial(started["trial_id"])
        except KeyboardInterrupt:
            # (it said "interrupted" alone: the retraining went on, a delete and another
            # retraining of the job refused until it ended: the CLI probe)
            raise KeyboardInterrupt(
                f"the retraining goes on on the server (trial {started['trial_number']} of "
                f"job {args.job}): 'nas trials {args.job} --state running' shows it; the job "
                "cannot be deleted or retrained again until it ends"
            ) from None
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


def _database_source(args: argparse.Namespace) -> str:
    """Where the command's database URL came from, as the user gave it."""
    if getattr(args, "db", None):
        return "--db"
    if os.environ.get("NAS_DATABASE_URL"):
        return "$NAS_DATABASE_URL"
    return _data_dir_source(args)


def _data_dir_source(args: argparse.Namespace) -> str:
    """Where the command's data directory came from, as the user gave it."""
    if getattr(args, "data_dir", None):
        return "--data-dir"
    if os.environ.get("NAS_DATA_DIR"):
        return "$NAS_DATA_DIR"
    return "the default data directory ./.nas"


def _check_host(host: str) -> None:
    """``--host`` is an address this machine can bind (``CommandError`` naming it): uvicorn
    said "ERROR: [Errno -2] Name or service not known", naming neither."""
    import socket

    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(
            f"--host {host!r}: no such address ({why}); e.g. 127.0.0.1, or "
            "0.0.0.0 for every interface",
            code=1,
        ) from None


def _check_port(host: str, port: int) -> None:
    """``--port`` can be bound on ``host`` now (``CommandError`` naming it): uvicorn said
    "ERROR: [Errno 98] ... address already in use" after the database's migration lines,
    and exited 3 (the CLI probe). (uvicorn binds it again a moment later.)"""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as uvicorn binds)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"--port {port}: cannot listen on {host}:{port} "
                f"({exc.strerror or exc}): another server runs there? choose another port",
                code=1,
            ) from None


def _check_folders(args: argparse.Namespace, settings: Any) -> None:
    """The data folder is a folder where it exists, and the artifacts folder is one or can be
    made (``CommandError`` naming the setting): a file there started a server whose every
    export was a 500 and whose retrainings were accepted, then failed."""
    data_source = _data_dir_source(args)
    if settings.artifacts_dir is not None:
        artifacts_source = "$NAS_ARTIFACTS_DIR"
    else:
        artifacts_source = f"the artifacts folder (artifacts/ under {data_source})"
    data = settings.data_dir.expanduser()
    if data.exists() and not data.is_dir():
        raise CommandError(f"{data_source} {str(data)!r} is a file, not a folder", code=1)
    artifacts = settings.resolved_artifacts_dir().expanduser()
    try:
        artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file, not a folder" if artifacts.is_file() else (exc.strerror or str(exc))
        raise CommandError(
            f"{artifacts_source} {str(artifacts)!r} cannot be used as a folder: {why}", code=1
        ) from None


def _database_url(args: argparse.Namespace) -> str:
    """The command's database URL, checked to be one SQLAlchemy can use (``CommandError``
    naming where it came from and what is valid, before anything connects)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = _settings(args).resolved_database_url()
    # (a URL that does not parse is shown with its password masked all the same)
    shown = re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)  # (to the last @: one may be in it)
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        parsed.get_dialect().import_dbapi()
    # (ValueError: a port that is no number, an unclosed [ of an IPv6 host: a traceback)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise CommandError(
            f"{_database_source(args)}: {shown!r} is not a database URL this service can use "
            f"({str(exc).splitlines()[0]}); use sqlite:///FILE or "
            "postgresql+psycopg://USER[:PASSWORD]@HOST:PORT/DATABASE"
        ) from None
    return url


def _unreachable(args: argparse.Namespace, url: str, exc: Exception) -> CommandError:
    """A database error at connection time as one line naming the database (exit 1)."""
    from api.db import short_error

    return CommandError(
        f"cannot use database {describe_database(url)} (from {_database_source(args)}): "
        f"{short_error(exc)}",
        code=1,
    )


def _check_connects(args: argparse.Namespace, url: str, *, schema: bool = False) -> None:
    """Connect to ``url`` once (``CommandError`` naming it when that fails); with ``schema``,
    also check that it is at the schema's revision (``api.db.check_schema``), as a server
    that does not migrate it needs."""
    from sqlalchemy.exc import DBAPIError

    from api.db import SchemaNotCurrent, check_schema, check_upgradable, make_engine

    try:
        engine = make_engine(url)  # (creates a SQLite file's folder)
    except OSError as exc:  # (it printed "error: [Errno 17] File exists: '...'")
        raise CommandError(
            f"cannot use database {describe_database(url)} (from {_database_source(args)}): "
            f"its folder cannot be made: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else ""),
            code=1,
        ) from None
    try:
        with engine.connect() as connection:
            if not schema:  # (it will be upgraded: can it be?)
                check_upgradable(connection)
        if schema:
            check_schema(engine)
    except DBAPIError as exc:
        raise _unreachable(args, url, exc) from None
    except SchemaNotCurrent as exc:
        raise CommandError(
            f"cannot {'use' if args.command == 'keys' else 'serve'} {describe_database(url)} "
            f"(from {_database_source(args)}): {exc}",
            code=1,
        ) from None
    finally:
        engine.dispose()


def _check_ray_reachable(address: str) -> None:
    """A Ray cluster named by ``host:port`` answers there (``CommandError`` when nothing
    does): Ray's own connect retries for minutes with its warnings alone, the port unbound."""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # (none: a local instance; auto, ray://: Ray's own ways of finding one)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise CommandError(
            f"the Ray cluster at {address} cannot be reached ({exc.strerror or exc}): start "
            "its head there (ray start --head --port=PORT) or correct --ray-address / "
            "NAS_RAY_ADDRESS / RAY_ADDRESS",
            code=1,
        ) from None
    _check_ray_token(address)


def _missing_ray_token() -> str | None:
    """Why this process has no Ray token although ``RAY_AUTH_MODE`` asks for one, looked up
    where Ray's loader looks (``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH``
    names, else ``~/.ray/auth_token``; its first line); ``None`` when it has one, when token
    auth is not asked for here, or when Kubernetes' service-account token serves
    (``RAY_ENABLE_K8S_TOKEN_AUTH``: left to Ray, whose check of the token follows)."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_ENABLE_K8S_TOKEN_AUTH"):
        return None
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    path = Path(named or "~/.ray/auth_token").expanduser()
    try:
        lines = path.read_text(errors="replace").splitlines()
        if lines and lines[0].strip():
            return None
        found = "is empty"
    except OSError as exc:
        found = f"cannot be read ({exc.strerror or exc})"
    where = f"RAY_AUTH_TOKEN_PATH's {str(path)!r}" if named else f"{str(path)!r}"
    return (
        f"RAY_AUTH_MODE is token, but this process has none: RAY_AUTH_TOKEN is "
        f"{'empty' if 'RAY_AUTH_TOKEN' in os.environ else 'unset'} and {where} {found}"
    )


def _check_ray_token(address: str, wait_s: float = 10.0) -> None:
    """The Ray cluster at ``address`` takes this process's token (``CommandError`` when it
    refuses it): Ray's own connect tried for 20 s, a warning a second, then a traceback.
    Asks its GCS once, as Ray's connect does first; an answer other than a refusal, or none
    within ``wait_s``, leaves the verdict to Ray's connect."""
    import threading

    if (missing := _missing_ray_token()) is not None:
        # (Ray's own loader fails a C++ check then: a 30-frame native stack, "a bug in Ray")
        raise CommandError(
            f"cannot join the Ray cluster at {address}: {missing}; give this server the "
            "head's token (`ray get-auth-token` on the head prints it)",
            code=1,
        )
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # (a Ray without either: its connect tells)
        return
    refused: list[str] = []

    def ask() -> None:
        try:
            GcsClient(address=address)
        except AuthenticationError as exc:
            refused.append(str(exc).split(". ")[0])
        except Exception:  # noqa: BLE001, S110 - any other answer: Ray's connect tells
            pass

    asking = threading.Thread(target=ask, name="ray-token-check", daemon=True)
    asking.start()
    asking.join(wait_s)
    if refused:
        raise CommandError(
            f"the Ray cluster at {address} refused this server's token ({refused[0]}): give "
            "it the head's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token or "
            "RAY_AUTH_TOKEN_PATH names; `ray get-auth-token` on the head prints it)",
            code=1,
        )


def _db(args: argparse.Namespace, url: str, *, migrate: bool = True) -> Any:
    """An engine on ``url``, upgraded to the latest schema; without ``migrate``, checked to
    be at it (a ``CommandError`` otherwise, as a server that does not migrate refuses it)."""
    if not migrate:
        _check_connects(args, url, schema=True)
    from sqlalchemy.exc import DBAPIError

    from api.db import SchemaUnusable, make_engine, upgrade

    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise _unreachable(args, url, exc) from None
    except SchemaUnusable as exc:
        engine.dispose()
        raise CommandError(
            f"cannot use {describe_database(url)} (from {_database_source(args)}): {exc}", code=1
        ) from None
    return engine


def _cmd_keys(args: argparse.Namespace) -> int:
    from api.auth import create_key, rotate_key
    from api.db import make_session_factory, session_scope
    from api.repositories import ApiKeyRepository, JobRepository
    from api.settings import sqlite_file

    url = _database_url(args)
    database_file = sqlite_file(url)
    fresh = database_file is not None and not database_file.exists()
    if database_file is not None and fresh and args.keys_command != "create":
        # Nothing to list or revoke there: say so rather than create an empty database.
        raise CommandError(
            f"no database at {database_file.resolve()} (from {_database_source(args)}), so no "
            "keys: pass the server's --db or --data-dir ('nas keys create' makes a new one)"
        )
    # (NAS_MIGRATE_ON_START=false: the operator upgrades the schema, 'nas keys' does not)
    migrate = _settings(args).migrate_on_start
    if fresh and not migrate:
        raise CommandError(
            f"no database at {database_file.resolve()} (from {_database_source(args)}), and "
            "NAS_MIGRATE_ON_START is false: create it with 'nas db upgrade' first"
        )
    engine = _db(args, url, migrate=migrate)
    factory = make_session_factory(engine, write=True)
    where = describe_database(url)
    with session_scope(factory) as session:
        if args.keys_command == "create":
            row, key = create_key(session, name=args.name, admin=args.admin)
            print(key)
            print(
                f"key {row.id} '{row.name}'{' (admin)' if row.admin else ''} created in "
                f"database {where}; it is shown only now: export NAS_API_KEY=<key>\n"
                "A server accepts it only if it uses this database (nas serve --db URL or "
                "NAS_DATABASE_URL, else --data-dir DIR or NAS_DATA_DIR).",
                file=sys.stderr,
            )
            if fresh:
                print(
                    f"note: {database_file} did not exist and was created just now: a server "
                    "already running uses another database; pass its --db or --data-dir",
                    file=sys.stderr,
                )
        elif args.keys_command == "list":
            print(f"keys in database {where}:", file=sys.stderr)
            for row in ApiKeyRepository(session).list():
                state = "revoked" if row.revoked_at else "active"
                admin = "admin" if row.admin else "user"
                print(f"{row.id:>4}  {row.prefix}...  {row.name:<20} {admin:<5} {state}")
        elif args.keys_command == "rotate":
            rotated = rotate_key(session, args.id)
            if rotated is None:
                print(f"error: no active key {args.id}", file=sys.stderr)
                return 2
            row, key = rotated
            print(key)
            print(
                f"key {row.id} '{row.name}'{' (admin)' if row.admin else ''} has a new secret "
                f"in database {where}, shown only now; its jobs stay its own, and the old "
                "secret is refused from now on (open event streams with it end)",
                file=sys.stderr,
            )
        else:
            if not ApiKeyRepository(session).revoke(args.id):
                print(f"error: no active key {args.id}", file=sys.stderr)
                return 2
            # (its jobs went on without a word: a leaked key's queue kept taking run slots)
            going = JobRepository(session).unfinished_ids(args.id)  # (before a word: it may fail)
            print(f"key {args.id} revoked")
            if going:
                ids = ", ".join(str(i) for i in going[:20]) + (", ..." if len(going) > 20 else "")
                print(
                    f"its {len(going)} queued or running job(s) go on ({ids}): an admin key "
                    "cancels them (nas cancel ID)",
                    file=sys.stderr,
                )
    engine.dispose()
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from api.db import current_revision

    engine = _db(args, _database_url(args))
    print(f"database at revision {current_revision(engine)}")
    engine.dispose()
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _cell(value: Any, width: int = 12) -> str:
    """A table cell: numbers as ``_fmt`` writes them, anything else as text (cut short)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if float(value).is_integer() and abs(value) < 1e12:
            return str(int(value))  # counts (parameters, FLOPs) in full
        return _fmt(value)
    if value is None:
        return _fmt(value)
    text = _printable(str(value))
    return text if len(text) <= width else text[: width - 1] + "…"  # cut, and says so


def _printable(text: str) -> str:
    """``text`` with its control characters escaped (``\x1b``, ``\n``): a value read from
    a file (a table's cell) printed as it was could clear the terminal or forge a row."""
    if not any(unicodedata.category(c) == "Cc" for c in text):
        return text
    return "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c) == "Cc" else c for c in text
    )


def _whole(text: str) -> int:
    """An argparse type: a whole number written in digits (``int`` read ``nas delete 3_2`` as
    job 32, as the server read ``/jobs/3_2``: the HTTP API probe)."""
    if not re.fullmatch(r"-?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"not a whole number in digits: {text!r}")
    return int(text)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high``."""

    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def _key_name(text: str) -> str:
    """An argparse type: a name ``api.auth.check_key_name`` accepts, so that a name too long
    for the column, or not UTF-8, is refused alike on every database instead of being a
    driver's traceback (PostgreSQL) or stored (SQLite)."""
    from api.auth import check_key_name

    try:
        return check_key_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _upper(text: str) -> str:
    """States are matched whatever their case (``--state running``)."""
    return text.upper()


def _add_client_options(cmd: argparse.ArgumentParser, default: Any) -> None:
    cmd.add_argument(
        "--server",
        default=default,
        metavar="URL",
        help="service URL (default: $NAS_SERVER, else http://127.0.0.1:8000)",
    )
    cmd.add_argument(
        "--api-key", default=default, metavar="KEY", help="API key (default: $NAS_API_KEY)"
    )


def _add_database_options(cmd: argparse.ArgumentParser, default: Any) -> None:
    cmd.add_argument(
        "--db",
        default=default,
        metavar="URL",
        help="database URL (default: $NAS_DATABASE_URL, else the SQLite file nas.db in the "
        "data directory)",
    )
    cmd.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="data directory: the default SQLite database and the artifacts (default: "
        "$NAS_DATA_DIR, else ./.nas)",
    )


def _version() -> str:
    from api.version import VERSION

    return VERSION


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        print(f"nas (nas-service) {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``nas`` parser. Shared options (``--server``, ``--api-key``; ``--db``,
    ``--data-dir``) are accepted before or after the subcommand: the subcommands' copies
    default to nothing (``SUPPRESS``), so they never overwrite a value given before."""
    parser = argparse.ArgumentParser(
        prog="nas",
        description="Neural architecture search and hyperparameter optimisation: run a search "
        "here (nas search) or use the service (nas serve, then submit, watch, show, trials, "
        "export).",
        epilog="'nas COMMAND --help' describes a command.",
    )
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    _add_client_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    search = sub.add_parser(
        "search",
        help="run one search in this process",
        description="run one search in this process (no server): a spec file in, a run folder out",
    )
    search.add_argument("spec", help="job spec, YAML or JSON")
    search.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(func=_cmd_search)

    def client_command(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_)
        _add_client_options(cmd, argparse.SUPPRESS)
        return cmd

    serve = sub.add_parser(
        "serve",
        help="run the service (HTTP API + job runner)",
        description="run the service: the HTTP API, the dashboard and the job runner",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=_bounded(0, 65535),
        default=8000,
        help="port (default %(default)s; 0: any free one)",
    )
    _add_database_options(serve, None)
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
    submit.add_argument("spec", help="job spec, YAML or JSON")
    submit.add_argument("--wait", action="store_true", help="watch until the job finishes")
    submit.set_defaults(func=_cmd_submit)

    jobs = client_command("jobs", "list jobs, newest first")
    jobs.add_argument(
        "--state",
        type=_upper,
        choices=JOB_STATES,
        metavar="STATE",
        help=f"only jobs in this state, any case: {', '.join(JOB_STATES)}",
    )
    jobs.add_argument("--name", help="only jobs of this name (the spec's name, exactly)")
    jobs.add_argument(
        "--limit",
        type=_bounded(1, MAX_PAGE),
        default=50,
        help=f"at most this many jobs, 1..{MAX_PAGE} (default %(default)s)",
    )
    jobs.add_argument(
        "--offset", type=_bounded(0, 10_000_000), default=0, help="skip this many (default 0)"
    )
    jobs.add_argument("--json", action="store_true", help="the API's JSON page instead of a table")
    jobs.set_defaults(func=_cmd_jobs)

    show = client_command(
        "show",
        "a job's state and progress, and its best architecture: genotype, hyperparameters, "
        "metrics, held-out test accuracy",
    )
    show.add_argument("job", type=_whole, help="job id")
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="the API's JSON document of the job")
    shown.add_argument(
        "--spec",
        action="store_true",
        help="the job's spec as stored (YAML, defaults filled in): nas submit takes it back",
    )
    show.set_defaults(func=_cmd_show)

    trials = client_command("trials", "list a job's trials with their metrics and hyperparameters")
    trials.add_argument("job", type=_whole, help="job id")
    trials.add_argument(
        "--top",
        type=_bounded(1, MAX_PAGE),
        metavar="K",
        help=f"the best K completed trials by the objective, 1..{MAX_PAGE} (not with "
        "--state, --sort, --order, --limit, --offset)",
    )
    trials.add_argument(
        "--state",
        type=_upper,
        choices=TRIAL_STATES,
        metavar="STATE",
        help=f"only trials in this state, any case: {', '.join(TRIAL_STATES)}",
    )
    trials.add_argument(
        "--sort",
        metavar="KEY",
        help="number (default), objective, or a metric the job's evaluator reports "
        "(e.g. val_accuracy; the server lists them when the name is wrong)",
    )
    # No defaults here (None): --top refuses any of them that was given.
    trials.add_argument("--order", choices=["asc", "desc"], help="asc (default) or desc")
    trials.add_argument(
        "--limit",
        type=_bounded(1, MAX_PAGE),
        help=f"at most this many trials, 1..{MAX_PAGE} (default 50)",
    )
    trials.add_argument("--offset", type=_bounded(0, 10_000_000), help="skip this many (default 0)")
    shape = trials.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="the API's JSON instead of a table")
    shape.add_argument(
        "--csv",
        action="store_true",
        help="every trial (of --state) as CSV on stdout, in number order: one column per "
        "metric, hyperparameter (hp.NAME) and architecture choice (choice.I), for a "
        "spreadsheet or pandas (not with --top, --sort, --order, --limit, --offset)",
    )
    trials.set_defaults(func=_cmd_trials)

    curves = client_command("curves", "a job's per-epoch curves and best-so-far history")
    curves.add_argument("job", type=_whole, help="job id")
    curves.add_argument("--json", action="store_true", help="the API's JSON instead of tables")
    curves.set_defaults(func=_cmd_curves)

    watch = client_command("watch", "live progress of a job until it ends")
    watch.add_argument("job", type=_whole, help="job id")
    watch.set_defaults(func=_cmd_watch)

    cancel = client_command("cancel", "cancel a job (its trials are kept)")
    cancel.add_argument("job", type=_whole, help="job id")
    cancel.set_defaults(func=_cmd_cancel)

    export = client_command("export", "download one of a job's best architectures")
    export.add_argument("job", type=_whole, help="job id")
    export.add_argument(
        "--format",
        default="json",
        help="json (default), pytorch (a zip: model.py, architecture.json, and weights.pt when "
        "trained; a meta-learning job's model.py has adapt() or, few-shot embeddings, "
        "classify()), torchscript, onnx (few-shot embeddings: output 'embedding'), "
        "model-card (Markdown); a table space: json only",
    )
    export.add_argument("--rank", type=_whole, default=1, help="1 = the best (default)")
    export.add_argument(
        "-o",
        "--output",
        help="file, or folder (existing, or any path ending in /: created), or - for stdout "
        "(default: the server's file name, here)",
    )
    export.add_argument(
        "--untrained",
        action="store_true",
        help="torchscript/onnx even without trained weights (fresh initialisation)",
    )
    export.set_defaults(func=_cmd_export)

    policy = client_command(
        "policy", "download a job's RL² policy (a meta-training job's rl2-policy.pt)"
    )
    policy.add_argument("job", type=_whole, help="job id")
    policy.add_argument(
        "-o",
        "--output",
        help="file, or folder (existing, or any path ending in /: created), or - for stdout "
        "(default: the server's file name, here)",
    )
    policy.set_defaults(func=_cmd_policy)

    retrain = client_command("retrain", "retrain one of a job's best architectures from scratch")
    retrain.add_argument("job", type=_whole, help="job id")
    retrain.add_argument("--rank", type=_whole, default=1, help="1 = the best (default)")
    retrain.add_argument(
        "--no-wait",
        action="store_true",
        help="start it and return, printing the API's answer as JSON (trial_id to poll)",
    )
    retrain.set_defaults(func=_cmd_retrain)

    delete = client_command("delete", "delete a job with its trials and files")
    delete.add_argument("job", type=_whole, help="job id")
    delete.set_defaults(func=_cmd_delete)

    keys = sub.add_parser(
        "keys",
        help="manage API keys (on the database directly: use the server's --db or --data-dir)",
        description="manage API keys: create, list, revoke or rotate them, on the database "
        "directly (use the server's --db or --data-dir)",
    )
    _add_database_options(keys, None)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument(
        "--name",
        required=True,
        type=_key_name,
        help=f"who or what the key is for: 1..{KEY_NAME_LENGTH} characters, not blank",
    )
    create.add_argument("--admin", action="store_true", help="sees and changes every job")
    listing = keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id", type=_bounded(1, MAX_ID), help=f"key id (nas keys list), 1..{MAX_ID}")
    rotate = keys_sub.add_parser(
        "rotate",
        help="give a key a new secret and print it (shown once): its jobs, name and role stay, "
        "the old secret is refused from now on",
    )
    rotate.add_argument("id", type=_bounded(1, MAX_ID), help=f"key id (nas keys list), 1..{MAX_ID}")
    for action in (create, listing, revoke, rotate):
        _add_database_options(action, argparse.SUPPRESS)
    keys.set_defaults(func=_cmd_keys)

    db = sub.add_parser(
        "db", help="database schema", description="the database's schema: upgrade it"
    )
    db.add_argument("action", choices=["upgrade"], help="upgrade: migrate to the latest schema")
    _add_database_options(db, None)
    db.set_defaults(func=_cmd_db)
    return parser


#: Set by ``_terminate_as_interrupt``'s handler: the interrupt ``main`` meets was a SIGTERM.
_terminated = False


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a batch scheduler's time limit) stops ``nas search``
    as Ctrl-C does, keeping what the run has (it ended at once, the trials' file empty:
    the HPO probe); the exit status is then 143, as a shell reports a SIGTERM. The signal's
    earlier handling comes back afterwards (the command may run inside another program)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        global _terminated
        _terminated = True
        raise KeyboardInterrupt("terminated (SIGTERM)")

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def main(argv: Sequence[str] | None = None) -> int:
    global _terminated
    _terminated = False
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:
        # Also while the command still imports what it needs (its first half second), not
        # only once it runs. (What the interrupted command leaves behind, where it says: a
        # job that goes on, a run folder's files.)
        what = "terminated" if _terminated else "interrupted"
        print(f"{what}: {exc}" if str(exc) else what, file=sys.stderr)
        return 143 if _terminated else 130


def _main(argv: Sequence[str] | None) -> int:
    import httpx

    from api.client import ApiError, ServerUnreachable

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare 'nas': what it can do
        parser.print_help()
        return 0
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that went away is noticed here, not at exit
        return code
    except BrokenPipeError:
        # 'nas trials 1 | head': the reader has what it wanted; stop quietly as other
        # tools do. Python would write to the closed pipe once more at exit: not there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except ServerUnreachable as exc:
        hint = " (is 'nas serve' running?)" if isinstance(exc.__cause__, httpx.ConnectError) else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {_in_cli_terms(exc, args)}", file=sys.stderr)
        return 2
    except NasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        server = getattr(args, "server", None) or os.environ.get("NAS_SERVER") or "the server"
        print(f"error: cannot talk to {server}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
