"""The ``nas`` console script as a user meets it (issue 13, items 15 and 17): run in
subprocesses against a real server, the way a shell runs it."""

from __future__ import annotations

import csv
import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from api.models import JobState
from api.version import VERSION
from tests.api.conftest import LiveServer, nb201_spec
from tests.conftest import sigint_as_from_a_terminal

REPO = Path(__file__).resolve().parents[2]
NAS = str(Path(sys.executable).parent / "nas")
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def nas(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``nas ARGS`` with no server or key from the caller's environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("NAS_SERVER", "NAS_API_KEY")}
    return subprocess.run(
        [NAS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, **env},
        check=False,
    )


# --- item 15: which database a key went to; options where users put them ---------------------
def test_keys_create_names_its_database_and_takes_options_after_the_subcommand(
    server: LiveServer, tmp_path: Path
) -> None:
    url = make_url(server.settings.resolved_database_url())
    if url.get_backend_name() == "postgresql":  # trust auth: the password is shown, not used
        url = url.set(password="s3cret")
    db = url.render_as_string(hide_password=False)

    made = nas("keys", "create", "--name", "alice", "--db", db)  # --db after the subcommand
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("nas_")
    if url.get_backend_name() == "sqlite":
        shown = f"sqlite:///{Path(url.database).resolve()}"
    else:
        shown = url.render_as_string(hide_password=True)
        assert "s3cret" not in made.stderr and "***" in shown
    assert f"created in database {shown}" in made.stderr
    assert "A server accepts it only if it uses this database" in made.stderr

    # Client options before the subcommand as well as after it.
    jobs = nas("--server", server.url, "--api-key", key, "jobs")
    assert jobs.returncode == 0, jobs.stderr
    assert "(0 jobs)" in jobs.stdout
    listed = nas("keys", "--db", db, "list")
    assert listed.returncode == 0 and "alice" in listed.stdout
    assert f"keys in database {shown}" in listed.stderr

    # The mistake of the issue: a key made without the server's data directory.
    other = tmp_path / "elsewhere"
    stray = nas("keys", "create", "--name", "bob", "--data-dir", str(other))
    assert stray.returncode == 0, stray.stderr
    assert f"created in database sqlite:///{(other / 'nas.db').resolve()}" in stray.stderr
    assert "did not exist and was created just now" in stray.stderr
    refused = nas("jobs", "--server", server.url, "--api-key", stray.stdout.strip())
    assert refused.returncode == 2
    assert "401" in refused.stderr and "against this server's database" in refused.stderr


# --- item 17: what users look for --------------------------------------------------------------
@pytest.fixture
def finished_job(server: LiveServer) -> tuple[str, int]:
    """An API key and a finished NAS-Bench-201 job of 1,000 trials with one hyperparameter."""
    key = server.create_key("cli")
    spec = nb201_spec(
        budget={"trials": 1000}, hparams={"width": {"type": "categorical", "choices": [8, 16]}}
    )
    with server.client(key) as client:
        job = client.submit(spec)
        assert client.wait(job["id"], timeout=120)["state"] == "SUCCEEDED"
    return key, job["id"]


@sqlite_only
def test_help_version_and_option_values(server: LiveServer, finished_job: tuple[str, int]) -> None:
    bare = nas()
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("usage: nas") and "show" in bare.stdout
    version = nas("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"nas (nas-service) {VERSION}"
    helped = nas("trials", "--help")
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert "WAITING, RUNNING, COMPLETE, PRUNED, FAIL" in text
    assert "number (default), objective, or a metric" in text
    assert "at most this many trials, 1..1000 (default 50)" in text
    from api.cli import JOB_STATES

    assert JOB_STATES == tuple(s.value for s in JobState)

    key, job_id = finished_job
    auth = ("--server", server.url, "--api-key", key)
    jobs = nas("jobs", "--state", "succeeded", *auth)  # any case
    assert jobs.returncode == 0, jobs.stderr
    assert "(1 job)" in jobs.stdout
    assert nas("jobs", "--state", "running", *auth).stdout.endswith("(0 jobs)\n")
    bad = nas("trials", str(job_id), "--limit", "0", *auth)
    assert bad.returncode == 2 and "0 is not in 1..1000" in bad.stderr
    wrong = nas("trials", str(job_id), "--state", "done", *auth)
    assert wrong.returncode == 2 and "invalid choice: 'DONE'" in wrong.stderr


@sqlite_only
def test_trials_show_metrics_and_hyperparameters(
    server: LiveServer, finished_job: tuple[str, int]
) -> None:
    key, job_id = finished_job
    auth = ("--server", server.url, "--api-key", key)
    listing = nas("trials", str(job_id), "--state", "complete", "--limit", "3", *auth)
    assert listing.returncode == 0, listing.stderr
    header, *rows, footer = listing.stdout.splitlines()
    assert header.split() == [
        "#",
        "STATE",
        "OBJECTIVE",
        "val_accuracy",
        "params_M",
        "flops_M",
        "latency_s",
        "hp.width",
        "ARCHITECTURE",
    ]
    with server.client(key) as client:
        first = client.trials(job_id, limit=1)["data"][0]
    cells = rows[0].split()
    assert cells[0] == "0" and cells[1] == "COMPLETE"
    assert cells[4] == f"{first['metrics']['params_M']:.4g}"
    assert cells[7] == str(first["hparams"]["width"])
    assert len(rows) == 3 and footer == "(3 shown of 1000)"
    top = nas("trials", str(job_id), "--top", "2", *auth)
    assert top.returncode == 0, top.stderr
    assert top.stdout.splitlines()[-1] == "(the best 2 of 1000 trials)"


@sqlite_only
def test_every_trial_as_csv(server: LiveServer, finished_job: tuple[str, int]) -> None:
    """Every trial as CSV, for a spreadsheet or pandas (as Optuna's trials_dataframe; there
    was no way but paging the JSON: the probe of a new user's tasks)."""
    key, job_id = finished_job
    auth = ("--server", server.url, "--api-key", key)
    made = nas("trials", str(job_id), "--csv", *auth)
    assert made.returncode == 0, made.stderr
    rows = list(csv.DictReader(io.StringIO(made.stdout)))
    with server.client(key) as client:
        trials = list(client.all_trials(job_id))
    assert len(rows) == len(trials) == 1000
    assert list(rows[0])[:9] == [
        "number", "state", "objective", "val_accuracy", "params_M", "flops_M", "latency_s",
        "hp.width", "choice.0",
    ]  # fmt: skip
    for row, trial in zip(rows, trials, strict=True):
        assert int(row["number"]) == trial["number"] and row["state"] == trial["state"]
        assert float(row["objective"]) == trial["objective"]
        assert int(row["hp.width"]) == trial["hparams"]["width"]
        assert [int(row[f"choice.{i}"]) for i in range(6)] == trial["architecture"]["choices"]
    refused = nas("trials", str(job_id), "--csv", "--limit", "5", *auth)
    assert refused.returncode == 2 and "--csv cannot be combined with --limit" in refused.stderr


def test_a_metric_named_as_another_csv_column_is_told_apart() -> None:
    """A table's own metric columns named ``error`` or ``state`` gave the CSV two columns of
    one name (pandas read the trial's error as ``error.1``: the review of --csv)."""
    from api.cli import trials_csv

    row = {
        "number": 0, "state": "COMPLETE", "objective": 0.5, "hparams": {"x": 1},
        "metrics": {"val": 0.5, "error": 1.5, "state": 2, "hp.x": 3, 'naïve "q", r': 4},
        "architecture": {"choices": [1, 0]}, "error": None, "cost_s": 1.0,
    }  # fmt: skip
    out = io.StringIO()
    trials_csv([row], out)
    header, values = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[:9] == [
        "number", "state", "objective", "val", "metric.error", "metric.state", "metric.hp.x",
        'naïve "q", r', "hp.x",
    ]  # fmt: skip
    assert len(set(header)) == len(header)
    assert dict(zip(header, values, strict=True))["error"] == ""
    assert dict(zip(header, values, strict=True))["metric.error"] == "1.5"


def test_text_a_file_gave_is_printed_escaped_and_written_to_csv_as_no_formula() -> None:
    """A table's cells (a file's text) and other text values were printed as they were: an
    escape sequence cleared the terminal, a newline forged a row; in the CSV a cell
    ``=HYPERLINK(...)`` became a live formula in the spreadsheet (the security probe)."""
    from api.cli import trials_csv, trials_table

    row = {
        "number": 0, "state": "COMPLETE", "objective": 0.5, "metrics": {"m": -0.5},
        "hparams": {"h": "\x1b[2Jx"}, "architecture": {"choices": [0, 1]}, "error": "=1+1",
    }  # fmt: skip
    decisions = [("o\x1bpt", ["\x1b[31mred", "b"]), ("w", ['=HYPERLINK("http://e/")', "-1"])]
    lines = trials_table([row], decisions)
    assert len(lines) == 2 and "\x1b" not in "".join(lines), lines
    assert "o\\x1bpt=" in lines[1], lines  # (the column's name too: the review)
    decisions[0] = ("opt", decisions[0][1])
    assert "pt=\\x1b[31mred" in lines[1] and "\\x1b[2Jx" in lines[1], lines
    out = io.StringIO()
    trials_csv([row], out, decisions)
    header, values = list(csv.reader(io.StringIO(out.getvalue())))
    cells = dict(zip(header, values, strict=True))
    assert cells["choice.w"] == "-1"  # a number stays one, and so does a negative metric
    assert cells["m"] == "-0.5"
    assert cells["error"] == "'=1+1"
    row["architecture"] = {"choices": [0, 0]}
    out = io.StringIO()
    trials_csv([row], out, decisions)
    header, values = list(csv.reader(io.StringIO(out.getvalue())))
    assert dict(zip(header, values, strict=True))["choice.w"] == '\'=HYPERLINK("http://e/")'


def test_a_trials_table_keeps_a_choice_name_whole_and_marks_what_it_cuts() -> None:
    """Text cells were cut at 14 characters with nothing to show it: 'label_smoothin'."""
    from api.cli import trials_table

    row = {"number": 0, "state": "COMPLETE", "objective": 0.5, "metrics": {}}
    rows = [
        {**row, "hparams": {"loss": "label_smoothing"}, "architecture": {"choices": [1]}},
        {**row, "hparams": {"loss": "x" * 30}, "architecture": {"choices": [2]}},
    ]
    _, whole, cut = trials_table(rows)
    assert whole.split()[3] == "label_smoothing"
    assert cut.split()[3] == "x" * 19 + "…"


@sqlite_only
def test_show_gives_the_best_architecture_genotype_and_test_accuracy(
    server: LiveServer, finished_job: tuple[str, int]
) -> None:
    key, job_id = finished_job
    shown = nas("show", str(job_id), "--server", server.url, "--api-key", key)
    assert shown.returncode == 0, shown.stderr
    with server.client(key) as client:
        job = client.job(job_id)
        best_trial = client.best(job_id, 1)[0]
    best = job["summary"]["best"]
    out = shown.stdout
    assert out.startswith(f"job {job_id} nb201-random: SUCCEEDED (trial budget reached (1000))")
    assert f"best: trial {best['trial']}, val_accuracy={best['objective']['val_accuracy']:.4g}" in (
        out
    )
    assert f'genotype: {{"arch_str": "{best["genotype"]["arch_str"]}"}}' in out
    assert f"held-out: test_accuracy={best['final_metrics']['test_accuracy']:.4g}" in out
    assert f"hyperparameters: width={best['hparams']['width']}" in out
    assert "flops_M=" in out and f"nas export {job_id} --format pytorch" in out

    # Before a summary exists (a running job), the best trial so far, its genotype read
    # from the job's space.
    from api.cli import describe_job

    running = {**job, "state": "RUNNING", "summary": None}
    lines = describe_job(running, best_trial)
    assert f"best so far: trial {best_trial['number']}" in lines[3]
    assert f'  genotype: {{"arch_str": "{best["genotype"]["arch_str"]}"}}' in lines


@sqlite_only
def test_a_closed_pipe_ends_the_listing_quietly(
    server: LiveServer, finished_job: tuple[str, int]
) -> None:
    """``nas trials 1 | head``: the reader takes the first bytes and goes; 1,000 rows (about
    100 kB) are more than a pipe holds (64 kB), so a later write of ``nas`` fails."""
    key, job_id = finished_job
    proc = subprocess.Popen(
        [NAS, "trials", str(job_id), "--limit", "1000", "--server", server.url, "--api-key", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = os.read(proc.stdout.fileno(), 100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.startswith(b"     #  STATE")
    assert err == ""  # was: "error: [Errno 32] Broken pipe", or a traceback
    assert code == 141  # as a process ended by SIGPIPE


@sqlite_only
def test_watch_of_a_missing_job_draws_no_bar(server: LiveServer) -> None:
    key = server.create_key("cli")
    watched = nas("watch", "999", "--server", server.url, "--api-key", key)
    assert watched.returncode == 2
    assert "HTTP 404" in watched.stderr and "%|" not in watched.stderr
    assert "job 999:" not in watched.stderr


def _ctrl_c_after(argv: list[str], said: str) -> tuple[int, str]:
    """Run ``argv``, send it SIGINT (as a terminal's Ctrl-C) once its stderr has said
    ``said``; its exit status and the rest of its stderr."""
    proc = subprocess.Popen(
        sigint_as_from_a_terminal(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = ""
        while said not in seen:
            char = proc.stderr.read(1)
            assert char, seen
            seen += char
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@sqlite_only
def test_ctrl_c_on_watch_says_the_job_goes_on(server: LiveServer) -> None:
    """Ctrl-C on 'nas submit --wait' said 'interrupted' only: the job ran on on the server,
    and nothing said so or how to stop it."""
    from tests.api.conftest import standalone_spec

    key = server.create_key("cli")
    with server.client(key) as client:
        job = client.submit(standalone_spec(trials=200, epochs=50))
        try:  # (once its bar is drawn: it is watching)
            code, err = _ctrl_c_after(
                [NAS, "watch", str(job["id"]), "--server", server.url, "--api-key", key],
                f"job {job['id']}: ",
            )
        finally:
            client.cancel(job["id"])
    assert code == 130, err
    assert f"interrupted: job {job['id']} goes on running on the server" in err
    assert f"'nas cancel {job['id']}' stops it" in err


@sqlite_only
def test_ctrl_c_on_retrain_says_the_retraining_goes_on(server: LiveServer) -> None:
    """Ctrl-C while 'nas retrain' waited said 'interrupted' only: the retraining ran on, and
    a delete or another retraining of the job was refused until it ended (the CLI probe)."""
    from tests.api.conftest import standalone_spec

    key = server.create_key("cli")
    with server.client(key) as client:
        job = client.submit(standalone_spec(trials=1, epochs=1))
        assert client.wait(job["id"], timeout=120)["state"] == "SUCCEEDED"
        code, err = _ctrl_c_after(  # (once it has started: it waits now)
            [NAS, "retrain", str(job["id"]), "--server", server.url, "--api-key", key],
            "retraining as trial",
        )
    assert code == 130, err
    assert f"interrupted: the retraining goes on on the server (trial 1 of job {job['id']})" in err
    assert "cannot be deleted or retrained again until it ends" in err


def test_ctrl_c_while_a_command_starts_says_interrupted_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in a command's first half second (while it imports and reads its arguments)
    printed a traceback; later it printed 'interrupted' and exited 130: now both alike."""
    import api.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api.cli, "build_parser", interrupted)
    assert api.cli.main(["jobs"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_show_says_which_retraining_of_a_rank_exports_take() -> None:
    """A rank retrained twice (final:, then nas retrain) was listed twice alike, without
    saying that exports take the latest."""
    from api.cli import describe_result
    from tests.api.conftest import standalone_spec

    arch = {"space": "mlp", "version": 1, "choices": [0, 1]}
    other = {"space": "mlp", "version": 1, "choices": [1, 1]}
    finals = [
        {"rank": 0, "architecture": arch, "test_accuracy": 43.2, "weights": "f/rank0.pt"},
        {"rank": 1, "architecture": other, "test_accuracy": 30.6, "weights": "f/rank1.pt"},
        {"rank": 0, "architecture": arch, "test_accuracy": 43.2, "weights": "f/retrain-trial4.pt"},
    ]
    best = {"trial": 0, "architecture": arch, "objective": {"val_accuracy": 50.0}}
    job = {"id": 1, "state": "SUCCEEDED", "spec": standalone_spec(), "export_formats": ["json"]}
    shown = describe_result({**job, "summary": {"best": best, "final": finals}}, None)
    retrained = [line for line in shown if line.startswith("retrained rank")]
    again = " (retrained again below: exports take the latest)"
    assert retrained == [
        f"retrained rank 1: test_accuracy=43.2 weights=f/rank0.pt{again}",
        "retrained rank 2: test_accuracy=30.6 weights=f/rank1.pt",
        "retrained rank 1: test_accuracy=43.2 weights=f/retrain-trial4.pt",
    ]


def test_show_counts_one_trial_in_the_singular() -> None:
    """A front of one trial read "Pareto front: 1 trials" (the probe of an Optuna user)."""
    from api.cli import describe_job
    from tests.api.conftest import standalone_spec

    arch = {"space": "mlp", "version": 1, "choices": [0, 1]}
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "params", "direction": "minimize"},
    ]
    job = {
        "id": 7,
        "name": "mo",
        "state": "RUNNING",
        "progress": 0.5,
        "n_trials": 1,
        "trial_states": {"COMPLETE": 1},
        "spec": standalone_spec(),
    }
    front = {"objectives": objectives, "front": [{"trial": 0, "values": [90.0, 1200]}]}
    best = {"number": 0, "architecture": arch, "objective": 90.0, "metrics": {"val_accuracy": 90.0}}
    shown = describe_job(job, best, front)
    assert any(line.startswith("progress 50.0%, 1 trial {") for line in shown), shown
    assert "Pareto front so far: 1 trial (GET /api/v1/jobs/7/pareto)" in shown


# --- nas serve ----------------------------------------------------------------------------------
def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def _serve_until_signal(
    tmp_path: Path, backend: str, sig: signal.Signals, **env: str
) -> tuple[int, str]:
    """Start ``nas serve --port 0`` (with ``env`` added), wait for the URL it prints, check it
    answers there, send ``sig``; the exit status and everything it wrote."""
    proc = subprocess.Popen(
        [NAS, "serve", "--port", "0", "--backend", backend, "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NAS_RAY_NUM_CPUS": "1", **env},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 150
        url = None
        while url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, "nas serve ended before printing its URL:\n" + "".join(output)
            output.append(line)
            if "listening on http://" in line:
                url = line.split("listening on ")[1].split()[0]
        assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := lines.get(timeout=10)) != "":
        output.append(line)
    return code, "".join(output)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_and_stops_quietly(tmp_path: Path, sig: signal.Signals) -> None:
    # (once as an API-only server, which says that it runs no jobs: its jobs stayed QUEUED
    # without a word when no other server ran them)
    api_only = sig == signal.SIGINT
    env = {"NAS_RUN_JOBS": "false"} if api_only else {}
    code, output = _serve_until_signal(tmp_path, "inline", sig, **env)
    assert code == 0, output
    assert "Traceback" not in output and "nas serve: stopped" in output
    assert ("nas serve: runs no jobs (NAS_RUN_JOBS=false)" in output) == api_only, output


@pytest.mark.slow
def test_serve_with_ray_stops_quietly_on_sigterm(tmp_path: Path) -> None:
    """Ray's start replaces the signal handlers; a SIGTERM then printed a traceback."""
    code, output = _serve_until_signal(tmp_path, "ray", signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output and "SIGTERM received" not in output, output


# --- make run: scripts/demo.sh ---------------------------------------------------------------
@pytest.mark.slow
def test_demo_log_redirected_to_a_file_is_whole_and_says_what_next(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(nb201_spec(budget={"trials": 30})))
    data, log = tmp_path / "data", tmp_path / "demo.log"
    env = {**os.environ, "NAS_DATA_DIR": str(data), "NAS_BACKEND": "inline"}
    env.pop("NAS_SERVER", None)
    env.pop("NAS_API_KEY", None)
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", str(REPO / "scripts/demo.sh"), str(spec)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=240,
            check=False,
        )
    text = log.read_text()
    assert proc.returncode == 0, text
    # What came before the submit is still there ('tee /dev/stderr' truncated the file).
    assert text.startswith("nas serve: http://127.0.0.1:"), text[:500]
    assert "job 1 (nb201-random) QUEUED" in text and "job 1 SUCCEEDED" in text
    assert "genotype:" in text and "held-out: test_accuracy=" in text
    assert f"the database {data}/nas.db" in text and f"{data}/artifacts/jobs/1/" in text
    assert ".venv/bin/nas export 1 --format pytorch -o model.zip" in text


def test_every_commands_help_says_what_it_does() -> None:
    """'nas --help' ends with "'nas COMMAND --help' describes a command", but search, serve,
    keys and db printed their usage and options alone."""
    import argparse

    from api.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    undescribed = [name for name, sub in commands.choices.items() if not sub.description]
    assert undescribed == []
