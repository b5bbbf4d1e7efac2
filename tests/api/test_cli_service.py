"""The service commands of ``nas`` against a live server."""

from __future__ import annotations

import json

import pytest
import yaml

from api.cli import _print_warnings, main
from api.client import ServerUnreachable
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec


def test_keys_submit_watch_jobs_trials_cancel(
    server: LiveServer, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", server.settings.resolved_database_url()]
    assert main(["keys", *db, "create", "--name", "cli-user"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("nas_")
    auth = ["--server", server.url, "--api-key", key]
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(nb201_spec(budget={"trials": 40})))

    assert main(["submit", str(spec), *auth, "--wait"]) == 0
    out = capsys.readouterr().out
    assert "job 1 (nb201-random) QUEUED" in out
    assert "job 1 SUCCEEDED: trial budget reached (40)" in out and "best: trial" in out

    assert main(["jobs", *auth]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out
    assert main(["trials", "1", "--top", "3", "--json", *auth]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 3 and top[0]["objective"] >= top[1]["objective"] >= top[2]["objective"]
    # a page is printed as the API answers it (it was its data alone: no count, no cursor)
    assert main(["trials", "1", "--limit", "2", "--json", *auth]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["count"] == 40 and [t["number"] for t in page["data"]] == [0, 1]
    assert main(["watch", "1", *auth]) == 0
    assert "trials: 40" in capsys.readouterr().out
    assert main(["cancel", "1", *auth]) == 2  # already finished: a clear 409
    assert "already SUCCEEDED" in capsys.readouterr().err

    # The stored spec, defaults filled in, submits again as it is (the model card says so).
    assert main(["show", "1", "--spec", *auth]) == 0
    stored = yaml.safe_load(capsys.readouterr().out)
    assert stored["budget"]["trials"] == 40 and "population_size" not in stored["controller"]
    assert stored["resources"]["workers"] == 1  # a default, filled in
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(stored))
    assert main(["submit", str(again), *auth, "--wait"]) == 0
    assert "job 2 SUCCEEDED: trial budget reached (40)" in capsys.readouterr().out

    assert main(["keys", *db, "list"]) == 0
    assert "cli-user" in capsys.readouterr().out
    # A revoked key's jobs go on: the revoke says which, and who cancels them (it said
    # nothing: the probe of a team's server).
    long = tmp_path / "long.yaml"
    long.write_text(yaml.safe_dump(standalone_spec(trials=500, epochs=2)))
    assert main(["submit", str(long), *auth]) == 0
    capsys.readouterr()
    assert main(["keys", *db, "revoke", "1"]) == 0
    said = capsys.readouterr()
    assert said.out == "key 1 revoked\n"
    assert "its 1 queued or running job(s) go on (3): an admin key cancels them" in said.err
    assert main(["jobs", *auth]) == 2
    assert "401" in capsys.readouterr().err
    assert main(["keys", *db, "create", "--name", "admin", "--admin"]) == 0
    admin = ["--server", server.url, "--api-key", capsys.readouterr().out.strip()]
    assert main(["cancel", "3", *admin]) == 0
    capsys.readouterr()
    # an admin's page of one other user's jobs says whose (it read as the admin's own)
    with server.client(admin[-1]) as client:
        assert client.wait(3, timeout=60)["state"] == "CANCELLED"
    assert main(["jobs", "--state", "cancelled", *admin]) == 0
    header, *rows, _ = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["ID", "OWNER", "NAME"], header
    assert [row.split()[:2] for row in rows] == [["3", "cli-user"]]
    # an admin's list of several users' jobs says whose each is (only the JSON did)
    assert main(["submit", str(spec), *admin]) == 0
    capsys.readouterr()
    assert main(["jobs", *admin]) == 0
    header, *rows, _ = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["ID", "OWNER", "NAME"], header
    assert [row.split()[:2] for row in rows] == [
        ["4", "admin"],
        ["3", "cli-user"],
        ["2", "cli-user"],
        ["1", "cli-user"],
    ]


def test_bad_spec_and_unreachable_server(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(nb201_spec()))
    assert main(["submit", str(spec), "--server", "http://127.0.0.1:9"]) == 2
    assert "is 'nas serve' running?" in capsys.readouterr().err


def test_serve_says_at_once_when_its_ray_cluster_cannot_be_reached(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """--ray-address naming a port where nothing listens: the server hung for minutes with
    Ray's connection warnings alone, its port never bound."""
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    code = main(
        ["serve", "--data-dir", str(tmp_path), "--port", "0", "--ray-address", f"127.0.0.1:{port}"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: the Ray cluster at 127.0.0.1:{port} cannot be reached" in err


def test_cancel_says_what_became_of_the_job_and_captured_warnings_print_once(
    server_factory, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """A QUEUED job is cancelled at once: 'job 1 CANCELLED (cancel requested)' said both.
    A warning went to stdout and stderr whenever stdout was not a terminal: twice in output
    captured as one stream (``2>&1``); now on stderr too only when stderr is a terminal."""
    server = server_factory(run_jobs=False)  # its jobs stay QUEUED
    auth = ["--server", server.url, "--api-key", server.create_key("a")]
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(nb201_spec()))
    assert main(["submit", str(spec), *auth]) == 0
    capsys.readouterr()
    assert main(["cancel", "1", *auth]) == 0
    assert capsys.readouterr().out == "job 1 CANCELLED\n"
    # A running one stops at its next trial or epoch; a meta-training job has neither.
    from api.db import make_session_factory, session_scope
    from api.repositories import JobRepository
    from tests.api.test_rl2_meta_jobs import meta_spec

    write = make_session_factory(server.app.state.nas.engine, write=True)
    for number, job_spec in ((2, nb201_spec()), (3, meta_spec())):
        spec.write_text(yaml.safe_dump(job_spec))
        assert main(["submit", str(spec), *auth]) == 0
        with session_scope(write) as session:
            JobRepository(session).set_fields(number, state="RUNNING", runner="elsewhere:1:x")
        capsys.readouterr()
        assert main(["cancel", str(number), *auth]) == 0
        said = capsys.readouterr().out
        assert said.startswith(f"job {number} RUNNING (cancel requested; it stops "), said
        assert ("its next trial or epoch" in said) == (number == 2), said
        assert ("its last whole iteration" in said) == (number == 3), said
    _print_warnings(["the time budget cut it short"])
    printed = capsys.readouterr()  # (neither stream is a terminal here)
    assert printed.out == "WARNING: the time budget cut it short\n" and printed.err == ""


def test_submit_says_at_once_that_a_hyperparameter_is_named_almost_like_a_per_trial_one(
    server_factory, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """``learning_rate`` for ``lr``: the job searched a name no evaluator reads; its warning
    is the job's from its submit on, not only once it has finished."""
    server = server_factory(run_jobs=False)  # the job stays QUEUED
    key = server.create_key("a")
    auth = ["--server", server.url, "--api-key", key]
    spec = tmp_path / "job.yaml"
    lr = {"type": "float", "low": 0.001, "high": 0.1, "log": True}
    spec.write_text(yaml.safe_dump(standalone_spec(hparams={"learning_rate": lr})))
    assert main(["submit", str(spec), *auth]) == 0
    out = capsys.readouterr().out
    assert "job 1 (digits-standalone) QUEUED\nWARNING: hparams.learning_rate is a name" in out
    assert "its own 'lr'; name it 'lr' to search it" in out
    with server.client(key) as client:
        job = client.job(1)
    assert job["state"] == "QUEUED" and len(job["warnings"]) == 1
    assert main(["show", "1", *auth]) == 0
    assert "WARNING: hparams.learning_rate" in capsys.readouterr().out


def test_a_rotated_key_keeps_its_jobs_and_refuses_its_old_secret(
    server_factory, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Jobs belong to the key that submitted them: an operator replacing a leaked secret by
    revoking the key and creating another (same name) left its jobs to no one but admins.
    ``nas keys rotate`` gives the key a new secret; its jobs stay, the old secret is a 401,
    and an event stream opened with it ends."""
    import threading

    import httpx

    server = server_factory(run_jobs=False)  # the job stays QUEUED: its stream stays open
    db = ["--db", server.settings.resolved_database_url()]
    old = server.create_key("alice")
    with server.client(old) as client:
        job_id = client.submit(nb201_spec())["id"]
        events = client.events(job_id)
        assert next(events)[0] == "job"
        assert main(["keys", *db, "rotate", "1"]) == 0
        printed = capsys.readouterr()
        new = printed.out.strip()
        assert new.startswith("nas_") and new != old
        assert "key 1 'alice' has a new secret" in printed.err
        ended: list[BaseException] = []

        def read_on() -> None:
            try:
                list(events)
            except ServerUnreachable as exc:  # the stream closed before the job ended
                ended.append(exc)

        reader = threading.Thread(target=read_on, daemon=True)
        reader.start()
        reader.join(timeout=15)
        assert not reader.is_alive(), "the old secret's stream still runs"
        assert ended and "revoked or rotated" in str(ended[0]), ended
    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job_id}/trials"):  # (the listing's own check)
        answer = httpx.get(server.url + path, headers={"Authorization": f"Bearer {old}"})
        assert answer.status_code == 401, (path, answer.text)
    with server.client(new) as client:
        assert [job["id"] for job in client.jobs()["data"]] == [job_id]
        assert client.trials(job_id)["count"] == 0
    assert main(["keys", *db, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and f"{new[:12]}..." in listed[0] and "active" in listed[0]
    assert main(["keys", *db, "revoke", "1"]) == 0
    assert main(["keys", *db, "rotate", "1"]) == 2  # a revoked key stays revoked
    assert capsys.readouterr().err.endswith("error: no active key 1\n")
