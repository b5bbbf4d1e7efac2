"""How the ``nas`` CLI and ``NasClient`` meet a user's mistakes and what the user reads:
bad option values, unusable or unreachable databases and servers, paths, option mixes that
would be ignored, and results printed the same way by every command (issue: CLI probe)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from api.cli import _fmt, _watch, main
from api.client import ApiError, NasClient, ServerUnreachable
from nas.errors import SpecError
from tests.api.conftest import LiveServer, PollingClient, free_port, make_settings, nb201_spec

NAS = str(Path(sys.executable).parent / "nas")
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
UNREACHABLE_PG = "postgresql+psycopg://nobody@127.0.0.1:1/db"


def nas(
    *args: str, cwd: Path | None = None, stdout: IO[bytes] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``nas ARGS`` in a subprocess, with no server, key or database from the caller's
    environment; its output captured (``stdout``: written to that file instead)."""
    unset = ("NAS_SERVER", "NAS_API_KEY", "NAS_DATABASE_URL", "NAS_DATA_DIR")
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [NAS, *args],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**environ, **env},
        cwd=cwd,
        check=False,
    )


def tiny_enas_spec() -> dict[str, Any]:
    """examples/digits-enas.yaml shrunk to seconds: 2 search epochs, a 1-epoch retraining."""
    return {
        "name": "tiny-enas",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 8, "reductions": [1]},
        "controller": {"name": "enas"},
        "evaluator": {
            "name": "shared-weights",
            "epochs": 2,
            "batch_size": 64,
            "rewards_per_epoch": 5,
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"minutes": 2},
        "final": {"retrain_top_k": 1, "epochs": 1, "batch_size": 64},
        "seed": 0,
    }


@pytest.fixture
def auth(server: LiveServer) -> list[str]:
    return ["--server", server.url, "--api-key", server.create_key("cli")]


def finished(server: LiveServer, auth: list[str], spec: dict[str, Any]) -> int:
    with server.client(auth[-1]) as client:
        job = client.submit(spec)
        assert client.wait(job["id"], timeout=300)["state"] == "SUCCEEDED"
    return int(job["id"])


# --- 1: a blank key name ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "   "])
def test_keys_create_refuses_a_blank_name_naming_the_option(tmp_path: Path, name: str) -> None:
    made = nas("keys", "create", "--name", name, "--data-dir", str(tmp_path / "d"))
    assert made.returncode == 2, made.stderr
    assert "argument --name: must not be empty or blank" in made.stderr
    assert "Traceback" not in made.stderr and made.stdout == ""
    assert not (tmp_path / "d").exists()  # refused before any database is made


# --- 2: an unusable or unreachable database -----------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:secret@127.0.0.1:notaport/x",
        "postgresql+psycopg://postgres@[::1:5432/x",
    ],
)
def test_a_database_url_that_does_not_parse_is_one_line_without_its_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port that is no number, or an unclosed [ of an IPv6 host, was a traceback
    (make_url's ValueError; the PostgreSQL probe)."""
    from api.cli import main

    assert main(["keys", "list", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --db: 'postgresql+psycopg://postgres") and "Traceback" not in err
    assert "is not a database URL this service can use" in err, err
    assert "secret" not in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "--db", "bogus://x", "list"],
        ["keys", "create", "--name", "a", "--db", "bogus://x"],
        ["db", "--db", "bogus://x", "upgrade"],
        ["serve", "--db", "bogus://x", "--port", "0", "--backend", "inline"],
    ],
)
def test_a_database_url_of_no_known_kind_is_one_line_naming_db(command: list[str]) -> None:
    ran = nas(*command)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith("error: --db: 'bogus://x' is not a database URL"), ran.stderr
    assert "sqlite:///FILE or postgresql+psycopg://" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1 and "Traceback" not in ran.stderr


def test_a_bad_database_url_from_the_environment_names_the_variable() -> None:
    ran = nas("keys", "list", NAS_DATABASE_URL="not a url")
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith("error: $NAS_DATABASE_URL: 'not a url' is not a database URL")
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "--db", UNREACHABLE_PG, "list"],
        ["db", "--db", UNREACHABLE_PG, "upgrade"],
        ["serve", "--db", UNREACHABLE_PG, "--port", "0", "--backend", "inline"],
    ],
)
def test_an_unreachable_database_is_one_line_naming_it(command: list[str]) -> None:
    ran = nas(*command)
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.startswith(f"error: cannot use database {UNREACHABLE_PG} (from --db): ")
    assert "Connection refused" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1 and "Traceback" not in ran.stderr


# --- 3: watch / submit --wait say the best as show does -----------------------------------------
@sqlite_only
def test_watch_of_a_shared_weight_search_prints_the_best_that_show_prints(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = finished(server, auth, tiny_enas_spec())
    assert main(["show", str(job_id), *auth]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert main(["watch", str(job_id), *auth]) == 0
    watched = capsys.readouterr().out.splitlines()

    # The summary's best is derived from the search, not a trial; the retraining is of it.
    best = next(i for i, line in enumerate(shown) if line.startswith("best:"))
    assert shown[best].startswith("best: derived from the search, val_accuracy=")
    assert any(line.startswith("retrained rank 1: test_accuracy=") for line in shown)
    assert watched[-len(shown[best:]) :] == shown[best:]  # the same lines, word for word
    assert not any(line.startswith("best: trial") for line in watched)

    # The job's best (GET /jobs/{id}, nas jobs' BEST) is that derived architecture's score,
    # not the best of the trials' one-minibatch rewards (another architecture's, higher).
    with server.client(auth[-1]) as client:
        job = client.job(job_id)
    derived = job["summary"]["best"]["objective"]["val_accuracy"]
    assert job["best"] == {"trial_number": None, "value": derived}
    assert main(["jobs", *auth]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "tiny-enas" in line)
    assert row.split()[-1] == _fmt(derived), row


@sqlite_only
def test_watch_of_a_meta_training_job_shows_its_iterations(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A meta-training job runs no trials: its bar said 'trials=0 best=-' throughout."""
    from tests.workers.test_meta_train_search import table_meta_spec

    job_id = finished(server, auth, table_meta_spec(server.settings.data_dir))
    assert main(["watch", str(job_id), *auth]) == 0
    bar = capsys.readouterr().err
    assert "iteration=" in bar and "auc_z=" in bar and "trials=0" not in bar, bar


@sqlite_only
def test_watch_of_a_finished_job_says_it_without_replaying_its_trials(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The event stream of a finished job sends every trial before its end: watching a
    finished job of thousands of trials waited seconds for lines it never printed."""
    job_id = finished(server, auth, nb201_spec(budget={"trials": 30}))

    class NoStream(PollingClient):
        def events(self, job_id: int) -> Any:
            raise AssertionError("the event stream of a finished job was read")

    with NoStream(server.url, api_key=auth[-1]) as client:
        assert _watch(client, job_id) == 0
    out, err = capsys.readouterr()
    assert f"job {job_id} SUCCEEDED" in out and 'trials: 30 {"COMPLETE": 30}' in out, out
    assert "100%" in err and "SUCCEEDED trials=30 best=" in err, err


# --- 4: --top with page options -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--state", "complete"], "--state"),
        (["--sort", "number"], "--sort"),  # even the default value, given, is refused
        (["--order", "desc", "--offset", "5"], "--order, --offset"),
        (["--limit", "3"], "--limit"),
    ],
)
def test_trials_top_refuses_the_page_options_it_would_ignore(
    options: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = f"http://127.0.0.1:{free_port()}"  # refused before anything is asked of it
    assert main(["trials", "1", "--top", "3", *options, "--server", server]) == 2
    assert capsys.readouterr().err == f"error: --top cannot be combined with {named}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["delete", "3_2"],
        ["show", "+2"],
        ["export", "1", "--rank", "0_1"],
        ["jobs", "--limit", "1_0"],
    ],
)
def test_a_number_is_written_in_digits(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """``nas delete 3_2`` deleted job 32 (Python's int reads "3_2" as 32), as the server read
    /jobs/3_2: refused before anything is asked of the server."""
    server = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--server", server])
    assert exit_.value.code == 2
    assert "not a whole number in digits" in capsys.readouterr().err


# --- 5, 8: export paths, stdout, the --untrained hint -------------------------------------------
@pytest.fixture
def nb201_job(server: LiveServer, auth: list[str]) -> int:
    return finished(server, auth, nb201_spec(budget={"trials": 10}))


@sqlite_only
def test_export_to_a_path_ending_in_a_slash_creates_that_folder(
    server: LiveServer, auth: list[str], nb201_job: int, tmp_path: Path
) -> None:
    with server.client(auth[-1]) as client:
        expected = client.export(nb201_job, "json", path=tmp_path / "best.json").read_bytes()
        saved = client.export(nb201_job, "json", path=f"{tmp_path / 'newdir'}/")
    assert saved.parent == tmp_path / "newdir" and saved.read_bytes() == expected

    made = nas("export", str(nb201_job), "-o", "dirnew/", *auth, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "dirnew").is_dir()  # was: a file named 'dirnew'
    assert [p.read_bytes() for p in (tmp_path / "dirnew").iterdir()] == [expected]
    # a file in a folder that does not exist: refused, nothing made (its folders were made)
    missing = nas("export", str(nb201_job), "-o", "nowhere/deeper/x.json", *auth, cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("error: no such folder: 'nowhere/deeper'"), missing.stderr
    assert not (tmp_path / "nowhere").exists()


@sqlite_only
def test_export_writes_into_a_pipe_or_a_links_file_never_replacing_them(
    server: LiveServer, auth: list[str], nb201_job: int, tmp_path: Path
) -> None:
    """``-o /dev/null`` (as root) replaced the device with a file, a named pipe became a
    file, a symbolic link a copy: the download's temporary file was renamed over each."""
    out = tmp_path / "out"
    out.mkdir()
    with server.client(auth[-1]) as client:
        expected = client.export(nb201_job, "json", path=out / "best.json").read_bytes()
    fifo = out / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    made = nas("export", str(nb201_job), "-o", "fifo", *auth, cwd=out)
    reader.join(timeout=30)
    assert made.returncode == 0, made.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and received == [expected]
    # (its size was the pipe's, 0 bytes, though the reader got them all)
    assert made.stdout.startswith(f"wrote fifo: job {nb201_job} rank 1"), made.stdout

    real = out / "real.json"
    real.write_text("earlier")
    (out / "link.json").symlink_to(real)
    with server.client(auth[-1]) as client:
        client.export(nb201_job, "json", path=out / "link.json")
    assert (out / "link.json").is_symlink() and real.read_bytes() == expected
    # -o /dev/stdout with stdout appended to a file (>>): written after what it held (the
    # link's file was replaced, what it held lost)
    log = out / "log.txt"
    log.write_text("before\n")
    with log.open("ab") as appended:
        made = nas("export", str(nb201_job), "-o", "/dev/stdout", *auth, stdout=appended)
    assert made.returncode == 0, made.stderr
    assert log.read_bytes().startswith(b"before\n" + expected)  # (then the "wrote" line)
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json",
        "fifo",
        "link.json",
        "log.txt",
        "real.json",
    ]


@sqlite_only
def test_export_to_dash_writes_stdout(
    server: LiveServer, auth: list[str], nb201_job: int, tmp_path: Path
) -> None:
    with server.client(auth[-1]) as client:
        expected = client.export(nb201_job, "json", path=tmp_path / "best.json").read_bytes()
    piped = nas("export", str(nb201_job), "-o", "-", *auth, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.encode() == expected and json.loads(piped.stdout)
    assert not (tmp_path / "-").exists()  # was: a file named '-'
    assert f"wrote job {nb201_job} rank 1 to stdout" in piped.stderr


@sqlite_only
def test_export_refusal_names_the_untrained_option(
    auth: list[str], nb201_job: int, tmp_path: Path
) -> None:
    refused = nas("export", str(nb201_job), "--format", "torchscript", *auth, cwd=tmp_path)
    assert refused.returncode == 2
    assert "HTTP 409" in refused.stderr and "add --untrained for the bare graph" in refused.stderr
    assert "untrained=true" not in refused.stderr  # the API's query parameter, not an option
    # A bundle without trained weights is written, and said (it was without a word).
    made = nas("export", str(nb201_job), "--format", "pytorch", "-o", "m.zip", *auth, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.rstrip().endswith(f"job {nb201_job} rank 1 (untrained: random weights)")
    assert made.stderr.startswith(
        "note: the network has random weights; it cannot be retrained here ("
    ), made.stderr
    asked = nas("export", str(nb201_job), "--format", "pytorch", "--untrained", "-o", "u.zip",
                *auth, cwd=tmp_path)  # fmt: skip
    assert asked.returncode == 0 and asked.stderr == "", asked.stderr


@sqlite_only
def test_an_export_refused_at_a_query_parameter_names_the_option(
    auth: list[str], nb201_job: int, tmp_path: Path
) -> None:
    """The 422 named the API's ``query.rank`` / ``query.format``; the user typed options."""
    refused = nas("export", str(nb201_job), "--rank", "999", *auth, cwd=tmp_path)
    assert refused.returncode == 2
    assert "HTTP 422: --rank: " in refused.stderr and "query.rank" not in refused.stderr
    refused = nas("export", str(nb201_job), "--format", "keras", *auth, cwd=tmp_path)
    assert "HTTP 422: --format: " in refused.stderr and "'onnx'" in refused.stderr


# --- 6: jobs paging -----------------------------------------------------------------------------
@sqlite_only
def test_jobs_footer_says_how_many_are_shown_and_offset_pages(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with server.client(auth[-1]) as client:
        ids = [client.submit(nb201_spec(budget={"trials": 5}))["id"] for _ in range(3)]
    assert main(["jobs", "--limit", "1", *auth]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "(1 shown of 3)" and len(lines) == 3
    assert main(["jobs", "--offset", "2", *auth]) == 0  # newest first: the oldest is last
    _header, row, footer = capsys.readouterr().out.splitlines()
    assert row.split()[0] == str(ids[0]) and footer == "(1 shown of 3)"
    assert main(["jobs", *auth]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(3 jobs)"


# --- 7, 9: server URLs and connection errors ----------------------------------------------------
def test_a_refused_connection_names_the_url_from_the_environment() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ran = nas("jobs", NAS_SERVER=url)
    assert ran.returncode == 2
    assert ran.stderr == (
        f"error: cannot talk to the server at {url}: [Errno 111] Connection refused "
        "(is 'nas serve' running?)\n"
    )


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_server_url_without_a_scheme_is_refused_saying_what_it_needs(how: str) -> None:
    given = {"option": ("--server", "localhost:8772")}.get(how, ())
    ran = nas("jobs", *given, **({"NAS_SERVER": "localhost:8772"} if how == "environment" else {}))
    assert ran.returncode == 2
    source = "--server" if how == "option" else "$NAS_SERVER"
    assert ran.stderr == (
        f"error: {source}: server URL 'localhost:8772' needs http:// or https:// and a host "
        "(e.g. http://localhost:8772)\n"
    )


@sqlite_only
def test_a_server_url_with_the_api_prefix_still_reaches_the_server(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "--server", f"{server.url}/api/v1/", *auth[2:]]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(0 jobs)"


@sqlite_only
def test_client_takes_states_in_any_case(server: LiveServer, auth: list[str]) -> None:
    job_id = finished(server, auth, nb201_spec(budget={"trials": 5}))
    with server.client(auth[-1]) as client:
        assert [j["id"] for j in client.jobs(state="succeeded")["data"]] == [job_id]
        assert client.trials(job_id, state="Complete")["count"] == 5


def test_client_names_the_url_of_a_refused_connection() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with NasClient(url, api_key="k") as client, pytest.raises(ServerUnreachable) as caught:
        client.jobs()
    assert isinstance(caught.value, ApiError) and caught.value.status_code is None
    assert str(caught.value).startswith(f"cannot talk to the server at {url}: ")
    with pytest.raises(ValueError, match="needs http:// or https://"):
        NasClient("localhost:8772")


def test_client_names_the_field_of_a_number_json_cannot_send() -> None:
    """A NaN in a spec mapping raised httpx's bare ``ValueError: Out of range float values
    are not JSON compliant`` (the probe of spec validation): no field, not a ``SpecError``;
    the same NaN sent as raw JSON was a clear 422. Refused before any request is made."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: no request may be needed
    spec = {**nb201_spec(), "budget": {"minutes": float("nan")}}
    with NasClient(url, api_key="k") as client, pytest.raises(SpecError) as caught:
        client.submit(spec)
    assert caught.value.errors == [
        {
            "loc": ("budget", "minutes"),
            "msg": "numbers must be finite, got nan",
            "type": "value_error",
        }
    ]
    # In a tuple (sent as a JSON array), and under a key JSON turns into a string: the same
    # bare ValueError was left (the review of that change).
    spec = {**nb201_spec(), "space": {"name": "nb201", "reductions": (1, float("inf"))}}
    with NasClient(url, api_key="k") as client, pytest.raises(SpecError) as caught:
        client.submit(spec)
    assert [(e["loc"], e["msg"]) for e in caught.value.errors] == [
        (("space", "reductions", 1), "numbers must be finite, got inf")
    ]
    spec = {**nb201_spec(), "evaluator": {"name": "tabular", 1: float("nan")}}
    with NasClient(url, api_key="k") as client, pytest.raises(SpecError) as caught:
        client.submit(spec)
    assert caught.value.errors[0]["loc"] == ("evaluator",)
    assert caught.value.errors[0]["msg"].startswith("keys must be strings, got int 1")


@sqlite_only
def test_client_sends_numpy_values_as_numbers_and_names_a_field_json_lacks(
    server: LiveServer, tmp_path: Path
) -> None:
    """A notebook's ``np.int64`` seed raised a bare ``TypeError: Object of type int64 is
    not JSON serializable`` naming no field (the probe of the Python client); a spec's text
    given as a str was read as a file name (``OSError: File name too long``)."""
    import datetime

    import numpy as np

    spec = {**nb201_spec(), "seed": np.int64(3)}
    spec["space"] = {"name": "nb201", "reductions": np.array([1, 2])}
    with server.client(server.create_key("numpy")) as client:
        sent = client.submit({**spec, "space": {"name": "nb201"}})["spec"]
        assert sent["seed"] == 3 and type(sent["seed"]) is int
        with pytest.raises(ApiError) as answer:  # sent as a list: the server's own answer
            client.submit(spec)
        assert answer.value.status_code == 422 and "reductions" in str(answer.value)
        spec = {**nb201_spec(), "budget": {"minutes": datetime.date(2026, 1, 1)}}
        with pytest.raises(SpecError) as caught:
            client.submit(spec)
        (error,) = caught.value.errors
        assert (
            error["loc"] == ("budget", "minutes") and "a date is not a JSON value" in error["msg"]
        )
        spec = {**nb201_spec(), "seed": np.datetime64("2026-01-01T00:00:00.000000000")}
        with pytest.raises(SpecError, match="a datetime64 is not a JSON value"):
            client.submit(spec)  # (not its nanoseconds as a number)
        with pytest.raises(SpecError, match="keys must be strings, got tuple"):
            client.submit({**nb201_spec(), "space": {"name": "nb201", (1, 2): 3}})
        with pytest.raises(TypeError, match="not the text of one: parse it first"):
            client.submit(json.dumps(nb201_spec()))
        assert client.jobs()["count"] == 1


@sqlite_only
def test_client_wait_outlasts_a_server_restart(
    database_url: str, tmp_path: Path, time_left: Any
) -> None:
    """A restarted server takes its jobs over, but ``wait`` gave up at the first refused
    connection of the restart; out of reach for ``unreachable_s`` in a row, it still
    raises."""
    first = LiveServer(make_settings(database_url, tmp_path / "data", run_jobs=False)).start()
    key = first.create_key("u")
    with first.client(key) as client:
        job_id = client.submit(nb201_spec(budget={"trials": 5}))["id"]
    first.stop()
    waited: list[Any] = []
    with NasClient(first.url, api_key=key) as client:
        with pytest.raises(ServerUnreachable):
            client.wait(job_id, unreachable_s=0.3, poll=0.05)
        with pytest.raises(TimeoutError, match="out of reach for the last"):
            client.wait(job_id, timeout=0.3, poll=0.05)  # (a timeout is a timeout)
        thread = threading.Thread(
            target=lambda: waited.append(client.wait(job_id, timeout=time_left(60), poll=0.05))
        )
        thread.start()
        time.sleep(0.3)  # (the wait meets refused connections)
        _back_on_its_port(first, database_url, tmp_path, thread, time_left)
    assert [job["state"] for job in waited] == ["SUCCEEDED"]


def _back_on_its_port(
    stopped: LiveServer, database_url: str, tmp_path: Path, follower: Any, time_left: Any
) -> None:
    """The server ``stopped`` started again on its port (a restart, which runs jobs), until
    ``follower`` (a thread following a job through the restart) has ended."""
    again = LiveServer(make_settings(database_url, tmp_path / "data"), port=stopped.port)
    try:
        again.start()
        follower.join(time_left(60))
    finally:
        again.stop()


@sqlite_only
def test_nas_watch_follows_a_job_through_a_server_restart(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], time_left: Any
) -> None:
    """nas watch (and submit --wait) exited 2 half a second into a server's restart, which
    takes the job over, with no next step; now it follows the job on once the server is
    back, saying so meanwhile."""
    first = LiveServer(make_settings(database_url, tmp_path / "data", run_jobs=False)).start()
    key = first.create_key("u")
    with first.client(key) as client:
        job_id = client.submit(nb201_spec(budget={"trials": 5}))["id"]  # (QUEUED: not run)
    codes: list[int] = []
    args = ["watch", str(job_id), "--server", first.url, "--api-key", key]
    watcher = threading.Thread(target=lambda: codes.append(main(args)))
    watcher.start()
    time.sleep(0.5)  # (the watch's stream is open)
    from api.app import request_stop

    request_stop(first.app)  # (as nas serve's SIGTERM does: streams end, no end event)
    first.stop()
    time.sleep(1.5)  # (the watch meets a refused connection)
    _back_on_its_port(first, database_url, tmp_path, watcher, time_left)
    assert codes == [0]
    captured = capsys.readouterr()
    assert f"job {job_id} SUCCEEDED" in captured.out
    assert f"job {job_id}: job {job_id}'s event stream closed before the job ended" in captured.err
    assert "following it again as soon as the server answers (for up to 60 s)" in captured.err


@sqlite_only
def test_a_wait_whose_key_is_revoked_says_so(
    database_url: str, tmp_path: Path, time_left: Any
) -> None:
    """A key revoked during a wait was answered with the 401's advice to create a key, whose
    new key sees none of the old one's jobs."""
    from api.db import session_scope
    from api.repositories import ApiKeyRepository

    server_off = LiveServer(make_settings(database_url, tmp_path / "data", run_jobs=False)).start()
    try:
        key = server_off.create_key("revoked-later")
        with server_off.client(key) as client:
            job_id = client.submit(nb201_spec())["id"]  # (QUEUED for ever here)
            raised: list[BaseException] = []

            def wait() -> None:
                try:
                    client.wait(job_id, timeout=time_left(60), poll=0.05)
                except BaseException as exc:  # noqa: BLE001 - checked below
                    raised.append(exc)

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.3)
            with session_scope(server_off.app.state.nas.write) as session:
                keys = ApiKeyRepository(session)
                (row,) = [k for k in keys.list() if k.name == "revoked-later"]
                assert keys.revoke(row.id)
            waiter.join(time_left(30))
    finally:
        server_off.stop()
    [error] = raised
    assert isinstance(error, ApiError) and error.status_code == 401
    assert "accepted earlier in this wait: it has been revoked, or rotated" in str(error)


def test_wait_on_a_hung_server_gives_up_after_unreachable_s_not_a_request_timeout_more(
    time_left: Any,
) -> None:
    """The out-of-reach time counted from the first request's timeout, not its start: a
    hung server's 60 s became 90."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    listener.listen(16)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with NasClient(url, api_key="k", timeout=1.0) as client:
            started = time.monotonic()
            with pytest.raises(ServerUnreachable) as caught:
                client.wait(1, unreachable_s=1.5, poll=0.05)
            took = time.monotonic() - started
    finally:
        listener.close()
    assert "out of reach for 2 s in a row while waiting for job 1" in str(caught.value)
    assert "wait again once it is back" in str(caught.value)
    assert took < 2.9, took  # (two timed-out requests, not three)


def test_wait_on_a_hung_server_ends_at_its_timeout_not_the_clients_request_timeout() -> None:
    """``wait(timeout=1)`` on a server that accepts and never answers raised
    ``TimeoutError`` after the client's 30 s request timeout (the probe of the Python
    client: SIGSTOP'd server, 30.1 s for a 5 s wait)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    listener.listen(16)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        # the default 30 s per request, and none (httpx's timeout=None: it was a TypeError)
        for limit in (30.0, None):
            with NasClient(url, api_key="k", timeout=limit) as client:
                for wait in (client.wait, client.wait_trial):
                    started = time.monotonic()
                    with pytest.raises(TimeoutError, match=r"still unknown after 1\.0 s"):
                        wait(1, timeout=1.0, poll=0.05)
                    took = time.monotonic() - started
                    assert took < 5, took  # (1 s, and a last look of at most 1 s)
    finally:
        listener.close()


def test_a_wait_ends_by_its_timeout_whatever_its_poll(time_left: Any) -> None:
    """``wait(timeout=2, poll=15)`` slept its whole poll first: a TimeoutError after 15 s
    (the probe of the Python client)."""
    import http.server

    class Running(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"state": "RUNNING"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    answering = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Running)
    threading.Thread(target=answering.serve_forever, daemon=True).start()
    try:
        with NasClient(f"http://127.0.0.1:{answering.server_port}", api_key="k") as client:
            for wait in (client.wait, client.wait_trial):
                started = time.monotonic()
                with pytest.raises(TimeoutError, match=r"still RUNNING after 0\.5 s"):
                    wait(1, timeout=0.5, poll=time_left(15))
                took = time.monotonic() - started
                assert took < 5, took  # (0.5 s and a last look, not the 15 s poll)
    finally:
        answering.shutdown()
        answering.server_close()


@sqlite_only
def test_a_key_read_with_its_newline_works_and_a_broken_key_is_named_not_echoed(
    server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key read from a file (its newline) failed as "cannot talk to the server ...
    Illegal header value b'Bearer <the whole key>'", which ``wait`` retried for 60 s as a
    server out of reach; a non-ASCII key raised a bare UnicodeEncodeError."""
    from api.client import ApiKeyError

    key = server.create_key("from-a-file")
    for padded in (f"{key}\n", f" {key} ", f"\t{key}\r\n"):
        with NasClient(server.url, api_key=padded) as client:
            assert client.jobs()["count"] == 0
    monkeypatch.setenv("NAS_API_KEY", f"{key}\n")
    with NasClient(server.url) as client:
        assert client.jobs()["count"] == 0
    assert main(["jobs", "--server", server.url]) == 0
    capsys.readouterr()
    secret = key.removeprefix("nas_")
    for broken, said in ((f"{key[:8]} {key[8:]}", "a space at character 9"), ("nas_ключ", "'к'")):
        with pytest.raises(ApiKeyError, match=f"api_key: the API key holds {said}") as caught:
            NasClient(server.url, api_key=broken)
        assert secret[4:] not in str(caught.value)
        assert main(["jobs", "--server", server.url, "--api-key", broken]) == 2
        err = capsys.readouterr().err
        assert f"--api-key: the API key holds {said}" in err and secret[4:] not in err, err
        monkeypatch.setenv("NAS_API_KEY", broken)
        assert main(["jobs", "--server", server.url]) == 2
        err = capsys.readouterr().err
        assert f"$NAS_API_KEY: the API key holds {said}" in err and secret[4:] not in err, err


def test_an_empty_server_or_key_option_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``--server "$UNSET"`` fell back to $NAS_SERVER without a word (the CLI probe); a tab
    or newline in a key was called "a space"."""
    for option in ("--server", "--api-key"):
        assert main(["jobs", option, ""]) == 2
        assert f"error: {option} is empty" in capsys.readouterr().err
    assert main(["jobs", "--api-key", "nas_ab\tc", "--server", "http://127.0.0.1:9"]) == 2
    assert "the API key holds '\\t' at character 7 of 8" in capsys.readouterr().err


def test_a_closed_client_says_it_is_closed() -> None:
    """A notebook's cell run again after its ``with`` block: httpx's "Cannot send a request,
    as the client has been closed"."""
    with NasClient("http://127.0.0.1:9", api_key="k") as client:
        pass
    for call in (client.jobs, lambda: client.delete(1), lambda: list(client.events(1))):
        with pytest.raises(RuntimeError, match="this NasClient is closed"):
            call()


# --- 10: whole column titles --------------------------------------------------------------------
@sqlite_only
def test_trials_show_whole_column_titles(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    long_name = {"my_very_long_hyperparameter": {"type": "categorical", "choices": [8, 16]}}
    job_id = finished(server, auth, nb201_spec(budget={"trials": 5}, hparams=long_name))
    assert main(["trials", str(job_id), *auth]) == 0
    header, *rows, _ = capsys.readouterr().out.splitlines()
    assert header.split()[-2:] == ["hp.my_very_long_hyperparameter", "ARCHITECTURE"]
    end = header.index("  ARCHITECTURE")  # every row's cells end where the titles do
    assert all(row[end - 1] != " " and row[end : end + 2] == "  " for row in rows)


@sqlite_only
def test_curves_show_whole_column_titles(
    server: LiveServer, auth: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    enas = finished(server, auth, tiny_enas_spec())
    assert main(["curves", str(enas), *auth]) == 0
    titles = capsys.readouterr().out.splitlines()[1].split()
    assert "train_accuracy" in titles and "train_accura" not in titles


# --- 11: listing the keys of a database that is not there --------------------------------------
@pytest.mark.parametrize("action", [["list"], ["revoke", "1"]])
def test_keys_of_a_missing_database_say_there_is_none_and_create_nothing(
    tmp_path: Path, action: list[str]
) -> None:
    nowhere = tmp_path / "x" / "nowhere"
    ran = nas("keys", "--data-dir", str(nowhere), *action)
    assert ran.returncode == 2
    assert ran.stderr.startswith(
        f"error: no database at {nowhere / 'nas.db'} (from --data-dir), so no keys"
    )
    assert not (tmp_path / "x").exists()


def test_a_spec_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    """``nas submit`` of a file that is not UTF-8 printed a UnicodeDecodeError traceback
    (``nas search`` of the same file said what was wrong)."""
    spec = tmp_path / "binary.yaml"
    spec.write_bytes(b"name: \xff\xfe\n")
    ran = nas("submit", str(spec), NAS_SERVER="http://127.0.0.1:1")  # read before any request
    assert ran.returncode == 2, ran.stderr
    assert f"cannot read '{spec}': not UTF-8 text (byte 6)" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("NAS_AUTH", "maybe", "Input should be 'keys' or 'none' (got 'maybe')"),
        ("NAS_MAX_RUNNING_JOBS", "-1", "greater than or equal to 1 (got '-1')"),
        ("NAS_JOB_LEASE_S", "inf", "Input should be a finite number (got 'inf')"),
        ("NAS_JOB_LEASE_S", "1e20", "less than or equal to 86400 (got '1e20')"),
        ("NAS_POLL_INTERVAL_S", "1e10", "less than or equal to 60 (got '1e10')"),
        ("NAS_FLUSH_INTERVAL_S", "inf", "Input should be a finite number (got 'inf')"),
        ("NAS_DB_RETRY_S", "1e300", "less than or equal to 86400 (got '1e300')"),
        # set but empty (a compose file's unset ${VAR}): the current folder, unsaid
        ("NAS_DATA_DIR", "", "set but empty: unset it for the default, or name one (got '')"),
        ("NAS_ARTIFACTS_DIR", " ", "set but empty"),
        ("NAS_DATA_ROOTS", "", "an empty folder name"),
        ("NAS_DATA_ROOTS", "/srv/a::/srv/b", "would be the current folder"),
        # (a name with its port never matched: names are compared)
        ("NAS_ALLOWED_HOSTS", "mybox:8000", "each a host name alone, without a port"),
    ],
)
def test_a_bad_setting_from_the_environment_is_one_line_naming_the_variable(
    variable: str, value: str, says: str
) -> None:
    """A bad ``$NAS_...`` setting printed pydantic's traceback, naming a field ('auth') that
    the user never wrote rather than the variable. ``NAS_JOB_LEASE_S=inf`` (or 1e20) started
    a server whose every runner tick then failed with an ``OverflowError`` (a lease is a
    ``timedelta``, a poll a thread wait): durations are finite and bounded. Checked before
    anything connects (the unreachable database makes a server that would start anyway
    fail at once)."""
    ran = nas(
        "serve",
        "--port",
        "0",
        "--backend",
        "inline",
        NAS_DATABASE_URL=UNREACHABLE_PG,
        **{variable: value},
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith(f"error: ${variable}: ") and says in ran.stderr, ran.stderr
    assert len(ran.stderr.splitlines()) == 1


def test_a_file_where_the_servers_folders_should_be_is_named_at_start(tmp_path: Path) -> None:
    """A file as the artifacts folder started a server whose exports were all 500s and
    whose retrainings failed after their 202; a file on the data folder's or database's
    path printed "error: [Errno 20] Not a directory" naming no setting."""
    afile = tmp_path / "afile"
    afile.write_text("")
    serve = ("serve", "--port", "0", "--backend", "inline")
    cases = [
        (
            {"NAS_ARTIFACTS_DIR": str(afile), "NAS_DATA_DIR": str(tmp_path / "d")},
            (),
            f"$NAS_ARTIFACTS_DIR '{afile}' cannot be used as a folder: a file, not a folder",
        ),
        ({}, ("--data-dir", str(afile)), f"--data-dir '{afile}' is a file, not a folder"),
        (
            {},
            ("--data-dir", str(afile / "d")),
            "the artifacts folder (artifacts/ under --data-dir)",
        ),
        (
            {"NAS_DATA_DIR": str(tmp_path / "d")},
            ("--db", f"sqlite:///{afile}/x.db"),
            "(from --db): its folder cannot be made: File exists",
        ),
    ]
    for env, args, says in cases:
        ran = nas(*serve, *args, cwd=tmp_path, **env)
        assert ran.returncode == 1, ran.stderr
        assert ran.stderr.startswith("error: ") and says in ran.stderr, ran.stderr
        assert len(ran.stderr.splitlines()) == 1, ran.stderr


def test_a_host_that_does_not_resolve_is_named_at_start(tmp_path: Path) -> None:
    """uvicorn said "ERROR: [Errno -2] Name or service not known", naming no option."""
    ran = nas("serve", "--port", "0", "--backend", "inline", "--host", "999.1.1.1", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.startswith("error: --host '999.1.1.1': no such address ("), ran.stderr


# --- 12: key ids and names the database cannot hold ---------------------------------------------
def test_keys_refuse_ids_and_names_the_database_cannot_hold_alike_on_both(
    database_url: str,
) -> None:
    """A key id past the 32-bit column was a driver traceback (PostgreSQL ``DataError``,
    SQLite ``OverflowError``), as was a name of bytes that are not UTF-8; a name longer than
    the column was a traceback on PostgreSQL and stored on SQLite. Each is now an argument
    error naming the bound, and the bounds themselves are accepted, on both databases."""
    refused = {
        ("revoke", "99999999999999999999"): "argument id: 99999999999999999999 is not in 1..",
        ("revoke", str(2**31)): f"argument id: {2**31} is not in 1..{2**31 - 1}",
        ("create", "--name", "a" * 201): "argument --name: at most 200 characters, got 201",
        ("create", "--name", os.fsdecode(b"bad\xffname")): "argument --name: not UTF-8 text",
        # (a newline wrote a row of 'nas keys list' of its own: a forged active admin key)
        ("create", "--name", "evil\n   9  nas_FAKE...  root  admin active"): (
            "argument --name: must not contain control characters (newlines, tabs, escapes), "
            "got '\\n'"
        ),
        ("create", "--name", "red\x1b[31m"): "must not contain control characters",
    }
    made = nas("keys", "create", "--name", "a" * 200, "--db", database_url)
    assert made.returncode == 0, made.stderr
    for action, says in refused.items():
        ran = nas("keys", *action, "--db", database_url)
        assert ran.returncode == 2, (action, ran.stderr)
        assert says in ran.stderr and "Traceback" not in ran.stderr, (action, ran.stderr)
        assert ran.stdout == ""
    listed = nas("keys", "list", "--db", database_url).stdout
    assert "a" * 200 in listed and len(listed.splitlines()) == 1  # the one key, in full
    revoked = nas("keys", "revoke", str(2**31 - 1), "--db", database_url)
    assert revoked.returncode == 2 and revoked.stderr == f"error: no active key {2**31 - 1}\n"
    from api import cli, models

    assert cli.KEY_NAME_LENGTH == models.KEY_NAME_LENGTH  # --help's bound is the column's


@sqlite_only
def test_serve_without_migrating_a_database_never_migrated_is_one_line(database_url: str) -> None:
    """``NAS_MIGRATE_ON_START=false`` on a database never migrated served 500s (see
    test_migrations); ``nas serve`` now says so in one line before anything starts."""
    ran = nas(
        "serve",
        "--port",
        "0",
        "--backend",
        "inline",
        "--db",
        database_url,
        NAS_MIGRATE_ON_START="false",
    )
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.startswith("error: cannot serve sqlite:///"), ran.stderr
    assert "revision none (never migrated)" in ran.stderr and "'nas db upgrade'" in ran.stderr
    assert len(ran.stderr.splitlines()) == 1


def test_keys_leave_the_schema_to_the_operator_without_migrate_on_start(
    database_url: str, tmp_path: Path
) -> None:
    """``nas keys list`` (or create, revoke) upgraded the schema whatever
    ``NAS_MIGRATE_ON_START`` said: an operator who upgrades by hand (older servers still
    running) had the schema changed by what looked like a read. Now they refuse, as the
    server does, on a database not at its schema's revision."""
    from api.db import current_revision, make_engine

    engine = make_engine(database_url)
    with engine.connect():  # a database there, never migrated (SQLite: an empty file)
        pass
    engine.dispose()
    for action in (["list"], ["create", "--name", "a"]):
        ran = nas("keys", *action, "--db", database_url, NAS_MIGRATE_ON_START="false")
        assert ran.returncode == 1, ran.stderr
        assert ran.stderr.startswith("error: cannot use "), ran.stderr
        assert "revision none (never migrated)" in ran.stderr and "'nas db upgrade'" in ran.stderr
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None  # untouched
    finally:
        engine.dispose()
    missing = tmp_path / "none" / "nas.db"
    ran = nas("keys", "create", "--name", "a", "--db", f"sqlite:///{missing}",
              NAS_MIGRATE_ON_START="false")  # fmt: skip
    assert ran.returncode == 2 and "create it with 'nas db upgrade' first" in ran.stderr
    assert not missing.exists()
    assert nas("db", "--db", database_url, "upgrade").returncode == 0
    made = nas("keys", "create", "--name", "a", "--db", database_url, NAS_MIGRATE_ON_START="false")
    assert made.returncode == 0, made.stderr


def test_serve_on_a_port_already_taken_claims_no_job(server_factory: Any, tmp_path: Path) -> None:
    """A ``nas serve`` that could not bind its port had started its job runner before (the
    app starts before uvicorn binds): it claimed the QUEUED job, exited, and left it RUNNING
    at 0 % under its lease. It now takes jobs only once it listens."""
    api = server_factory(run_jobs=False)  # holds the port; runs nothing
    with api.client(api.create_key("a")) as client:
        job_id = client.submit(nb201_spec())["id"]
        url = api.settings.resolved_database_url()
        ran = nas(
            "serve", "--port", str(api.port), "--db", url, "--backend", "inline", cwd=tmp_path
        )
        assert ran.returncode == 1, ran.stderr  # (uvicorn's exit 3, its raw error line)
        assert ran.stderr.startswith(f"error: --port {api.port}: cannot listen on "), ran.stderr
        assert "address already in use" in ran.stderr.lower(), ran.stderr
        assert "listening" not in ran.stdout
        assert client.job(job_id)["state"] == "QUEUED"
