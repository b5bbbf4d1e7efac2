"""Meta-training as a job (issue 14): an ``rl2-meta`` job records its curve, stores its
policy as an artifact, and later jobs name it (``policy_job``), copied at submit so deleting
the meta-training job breaks nothing; a policy for another space is a 422; cancel stops it
and keeps the policy as trained so far."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.cli import describe_job, main
from api.client import ApiError, NasClient
from controllers.rl2 import load_policy
from tests.api.conftest import LiveServer, make_settings, nb201_spec, wait_for
from tests.conftest import local_ray


def meta_spec(**evaluator: Any) -> dict[str, Any]:
    params = {
        "tasks": ["nb201-cifar10", "nb201-cifar100"],
        "iterations": 4,
        "steps": 10,
        "batch": 4,
        "hidden": 8,
        "record_every": 2,
        **evaluator,
    }
    return nb201_spec(
        name="rl2-meta",
        dataset={"name": "nb201-imagenet16-120"},
        controller={"name": "rl2"},
        evaluator={"name": "rl2-meta", **params},
        budget={"minutes": 5},
    )


def test_a_meta_training_job_stores_a_policy_that_later_jobs_name(
    server: LiveServer, client: NasClient, user_key: str, tmp_path: Path, capsys: Any
) -> None:
    meta = client.wait(client.submit(meta_spec())["id"], timeout=120)
    assert meta["state"] == "SUCCEEDED", meta["reason"]
    assert meta["summary"]["meta_training"]["iterations"] == 4
    assert meta["summary"]["files"] == [{"name": "rl2-policy.pt", "kind": "rl2_policy"}]
    shown = "\n".join(describe_job(meta, None))  # nas show
    assert f"policy_job: {meta['id']}" in shown and "4 iterations" in shown
    assert f"nas policy {meta['id']}" in shown
    assert "no completed trial" not in shown  # a finished meta-training job has none to have
    with pytest.raises(ApiError) as no_architecture:  # it said "no completed trial yet"
        client.export(meta["id"], "json", path=tmp_path / "x.json")
    assert no_architecture.value.status_code == 409
    assert f"download the policy: GET /api/v1/jobs/{meta['id']}/policy" in str(
        no_architecture.value
    )
    # nothing exports and nothing retrains (it listed json, pytorch, model-card; a retrain
    # was refused for its tasks' "tabular benchmark" dataset)
    assert meta["export_formats"] == []
    assert meta["retrain_refused"].startswith("it is a meta-training job (rl2-meta)")
    with pytest.raises(ApiError) as no_retraining:
        client.retrain(meta["id"], 1)
    assert no_retraining.value.status_code == 422
    assert "meta-training job" in str(no_retraining.value)
    points = client.curves(meta["id"])["epochs"]["meta_train"]
    assert [p["iteration"] for p in points] == [2, 4]
    assert all(p["auc_z"] is not None and p["entropy"] > 0 for p in points)
    artifacts = server.settings.resolved_artifacts_dir()
    policy, info = load_policy(artifacts / "jobs" / str(meta["id"]) / "files" / "rl2-policy.pt")
    assert policy.cardinalities == [5] * 6 and info["space"]["name"] == "nb201"
    _downloads_the_policy(server, user_key, meta["id"], tmp_path, capsys)

    user = client.submit(
        nb201_spec(controller={"name": "rl2", "policy_job": meta["id"]}, budget={"trials": 12})
    )
    copy = Path(user["spec"]["controller"]["policy"])  # the job's own copy, in the stored spec
    assert copy.is_relative_to(artifacts / "jobs" / str(user["id"])) and copy.is_file()
    # Its stored spec (nas show --spec) submits again: the copy is this server's to make,
    # not a file of the data roots (it was a 422 at controller.policy).
    again = client.submit(user["spec"])
    own = Path(again["spec"]["controller"]["policy"])
    assert own.is_relative_to(artifacts / "jobs" / str(again["id"])) and own.is_file()
    with pytest.raises(ApiError) as both:  # a policy file of the user's besides: one way
        client.submit(
            {
                **user["spec"],
                "controller": {**user["spec"]["controller"], "policy": str(tmp_path / "mine.pt")},
            }
        )
    assert both.value.detail[0]["loc"][:2] == ["controller", "policy"]
    _refused_at_the_field(server, client, meta["id"])
    # another user's, job and copy alike: no job of theirs, as an id never given is (it
    # said "was deleted", of jobs that exist)
    with server.client(server.create_key("other")) as other:
        for spec in (
            nb201_spec(controller={"name": "rl2", "policy_job": meta["id"]}),
            again["spec"],
        ):
            with pytest.raises(ApiError) as foreign:
                other.submit(spec)
            assert foreign.value.status_code == 422
            assert foreign.value.detail[0]["msg"].startswith(f"no job {meta['id']} of yours (")
    client.delete(meta["id"])  # the source goes; the job that uses its policy does not care
    done = client.wait(user["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", done["reason"]
    assert done["n_trials"] == 12 and copy.is_file()
    with pytest.raises(ApiError) as gone:  # now there is no such job to name
        client.submit(nb201_spec(controller={"name": "rl2", "policy_job": meta["id"]}))
    assert gone.value.status_code == 422
    assert gone.value.detail[0]["loc"] == ["controller", "policy_job"]
    # (as another user's job and an id never given: it said "was deleted" of any user's
    # deleted job, which told them from live ones: the probe of a team's server)
    assert f"no job {meta['id']} of yours (a deleted meta-training job's" in str(gone.value)
    # ... but the stored spec of the job that ran its policy submits again, from that job's
    # copy (it said "no job N of yours", though nas show --spec promises it submits)
    rerun = client.submit(client.job(user["id"])["spec"])
    rerun_copy = Path(rerun["spec"]["controller"]["policy"])
    assert rerun_copy.is_relative_to(artifacts / "jobs" / str(rerun["id"]))
    assert rerun_copy.read_bytes() == copy.read_bytes()
    assert client.wait(rerun["id"], timeout=60)["state"] == "SUCCEEDED"
    # with the jobs that held copies gone too, the stored spec says so (it said "no job N
    # of yours" of the user's own deleted job)
    for held in (user["id"], rerun["id"]):
        client.delete(held)
    with pytest.raises(ApiError) as none_left:
        client.submit(done["spec"])
    assert "and so is the copy a deleted job ran" in str(none_left.value)


def _downloads_the_policy(
    server: LiveServer, key: str, meta_job: int, tmp_path: Path, capsys: Any
) -> None:
    """GET .../policy and ``nas policy`` give the stored file; another user gets a 404."""
    stored = server.settings.resolved_artifacts_dir() / "jobs" / str(meta_job) / "files"
    with server.client(key) as mine:
        got = mine.policy(meta_job, tmp_path)
    assert got == tmp_path / f"rl2-policy-job{meta_job}.pt"
    assert got.read_bytes() == (stored / "rl2-policy.pt").read_bytes()
    out = tmp_path / "cli" / "p.pt"
    out.parent.mkdir()
    argv = ["policy", str(meta_job), "-o", str(out), "--server", server.url, "--api-key", key]
    assert main(argv) == 0
    assert out.read_bytes() == got.read_bytes() and "RL² policy" in capsys.readouterr().out
    # nas curves: a point per record_every iterations, and no trials to have a best of (it
    # said "meta_train: 2 epochs" and "(no completed trial yet)")
    argv = ["curves", str(meta_job), "--server", server.url, "--api-key", key]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("meta_train: 2 points\nPOINT ") and "iteration" in shown
    assert "epochs" not in shown and "no completed trial" not in shown
    with server.client(server.create_key("someone-else")) as other, pytest.raises(ApiError) as info:
        other.policy(meta_job, tmp_path / "theirs.pt")
    assert info.value.status_code == 404 and not (tmp_path / "theirs.pt").exists()


def _refused_at_the_field(server: LiveServer, client: NasClient, meta_job: int) -> None:
    """A policy for another space's decisions, no policy, trials for meta-training: 422s."""
    other = {
        "name": "tiny",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": _tiny_table(server), "decisions": ["a", "b"]},
        "controller": {"name": "rl2", "policy_job": meta_job},
        "evaluator": {"name": "table", "fitness": "acc"},
        "objective": {"metric": "acc"},
        "budget": {"trials": 3},
    }
    for spec, loc, says in (
        (other, ["controller", "policy_job"], "trained for the decisions of space 'nb201'"),
        (  # a wrong table's field, as with any controller (it was at 'space')
            {
                **other,
                "space": {**other["space"], "decisions": ["a", {"column": "b", "choices": [7, 8]}]},
            },
            ["space", "decisions", 1, "choices"],
            "must be exactly the distinct values",
        ),
        (nb201_spec(controller={"name": "rl2"}), ["controller", "policy"], "policy_job"),
        (meta_spec() | {"budget": {"trials": 5}}, ["budget", "trials"], "evaluator.iterations"),
        (
            {**other, "controller": {"name": "rl2"}, "evaluator": _tables("/etc/passwd")},
            ["evaluator", "tables", 0],
            "data roots",
        ),
    ):
        with pytest.raises(ApiError) as info:
            client.submit(spec)
        assert info.value.status_code == 422
        assert [e["loc"] for e in info.value.detail] == [loc], info.value.detail
        assert says in info.value.detail[0]["msg"]


def _tiny_table(server: LiveServer) -> str:
    table = server.settings.data_dir / "tiny.csv"
    rows = [(a, b) for a in "xyz" for b in "12"]
    table.write_text("a,b,acc\n" + "".join(f"{a},{b},{i}\n" for i, (a, b) in enumerate(rows)))
    return str(table)


def _tables(*paths: str) -> dict[str, Any]:
    return {"name": "rl2-meta", "tables": list(paths), "fitness": "acc", "iterations": 2}


def test_cancel_stops_meta_training_at_its_next_iteration_and_keeps_its_policy(
    client: NasClient, tmp_path: Path
) -> None:
    job = client.submit(meta_spec(iterations=100_000, record_every=1))
    wait_for(lambda: len(client.curves(job["id"])["epochs"].get("meta_train", [])) >= 2, timeout=60)
    client.cancel(job["id"])
    done = client.wait(job["id"], timeout=60)
    assert done["state"] == "CANCELLED" and done["reason"].startswith("cancelled")
    # (it said "after 0 finished trials": a meta-training job runs none)
    _assert_kept_as_trained_so_far(client, done, tmp_path)


def test_a_meta_training_failed_by_its_time_limit_is_not_said_to_have_a_policy(
    client: NasClient,
) -> None:
    """nas show / watch said 'policy stored: name it with policy_job N, or download it' of a
    job FAILED by budget.on_time_limit: fail, which stores none (both ways a 4xx)."""
    spec = meta_spec(iterations=100_000, record_every=1)
    spec["budget"] = {"minutes": 0.03, "on_time_limit": "fail"}
    job = client.wait(client.submit(spec)["id"], timeout=60)
    assert job["state"] == "FAILED" and job["summary"]["meta_training"], job["reason"]
    shown = "\n".join(describe_job(job, None))
    assert "policy stored: name it" not in shown and "no policy stored (FAILED)" in shown, shown


def test_a_job_without_a_policy_says_why_there_is_none(client: NasClient, tmp_path: Path) -> None:
    """It was a 404, as for a job that does not exist (the stateful fuzzer took it for a
    resource lost right after its creation)."""
    job = client.submit(nb201_spec(budget={"trials": 3}))
    with pytest.raises(ApiError) as info:
        client.policy(job["id"], tmp_path)
    assert info.value.status_code == 409
    assert info.value.detail == (
        f"job {job['id']} has no RL² policy: only a meta-training job (rl2-meta) leaves one, "
        "and an rl2 job keeps the copy it runs"
    )
    with pytest.raises(ApiError) as missing:
        client.policy(10**6, tmp_path)
    assert missing.value.status_code == 404


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory, num_cpus=1)


@pytest.mark.slow
def test_a_meta_training_cancelled_on_ray_keeps_its_policy_too(
    ray_instance: None, tmp_path: Path
) -> None:
    """On Ray the meta-training runs in an actor, which the cancel ends: what it keeps is
    built here from its last checkpoint."""
    settings = make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    server = LiveServer(settings).start()
    try:
        with server.client(server.create_key("a")) as client:
            job = client.submit(meta_spec(iterations=100_000, record_every=1))
            wait_for(
                lambda: len(client.curves(job["id"])["epochs"].get("meta_train", [])) >= 2,
                timeout=120,
            )
            client.cancel(job["id"])
            done = client.wait(job["id"], timeout=60)
            assert done["state"] == "CANCELLED", done["reason"]
            _assert_kept_as_trained_so_far(client, done, tmp_path)
    finally:
        server.stop()


def _assert_kept_as_trained_so_far(client: NasClient, done: dict[str, Any], tmp_path: Path) -> None:
    """A cancelled meta-training keeps its policy as of its last recorded iteration (it
    kept nothing: the minutes it had trained were lost), and a later job may name it."""
    found = re.fullmatch(
        r"cancelled by user after (\d+) recorded meta-training iterations; kept as trained so "
        r"far: "
        r"rl2-policy.pt",
        done["reason"],
    )
    assert found, done["reason"]
    iterations = int(found[1])
    assert 0 < iterations < 1000
    assert done["summary"] is None  # a cancelled job has no summary; its files stay
    assert client.curves(done["id"])["epochs"]["meta_train"][-1]["iteration"] == iterations
    _, meta = load_policy(client.policy(done["id"], tmp_path))
    assert meta["iterations"] == iterations and meta["iterations_planned"] == 100_000
    user = client.submit(
        nb201_spec(controller={"name": "rl2", "policy_job": done["id"]}, budget={"trials": 3})
    )
    finished = client.wait(user["id"], timeout=60)
    assert finished["state"] == "SUCCEEDED", finished["reason"]


def test_a_cancel_stops_a_long_iteration_and_an_iteration_too_large_is_refused(
    client: NasClient, time_left: Callable[..., float], tmp_path: Path
) -> None:
    """10,000 steps x 1,024 episodes x a GRU of 1,024 was accepted and grew the server to
    18 GB in 35 s, and a cancel answered 200 but waited for the iteration to end: the
    product is bounded at submit, and a cancel is heard between an iteration's steps."""
    huge = meta_spec(steps=10_000, batch=1024, hidden=1024, iterations=2, record_every=1)
    with pytest.raises(ApiError) as info:
        client.submit(huge)
    assert info.value.status_code == 422
    assert [e["loc"] for e in info.value.detail] == [["evaluator", "batch"]]
    assert "at most 2 GiB" in info.value.detail[0]["msg"]
    # An iteration of tens of seconds (10,000 steps), cancelled in its first.
    job = client.submit(meta_spec(steps=10_000, batch=16, hidden=16, iterations=2))
    wait_for(lambda: client.job(job["id"])["state"] == "RUNNING", timeout=time_left(60))
    client.cancel(job["id"])
    done = client.wait(job["id"], timeout=time_left(20))
    assert done["state"] == "CANCELLED"
    assert done["reason"] == "cancelled by user after 0 recorded meta-training iterations"
    with pytest.raises(ApiError) as info:  # nothing trained: no policy kept, and why
        client.policy(done["id"], tmp_path)
    assert info.value.status_code == 409
    assert info.value.detail == (
        f"job {done['id']} has no RL² policy: it was cancelled before its first recorded "
        "iteration (evaluator.record_every)"
    )
    with pytest.raises(ApiError) as info:  # it sent the caller to that 409 for the policy
        client.export(done["id"], "json", path=tmp_path / "x.json")
    assert info.value.status_code == 409 and "/policy" not in str(info.value)
    assert "it ended CANCELLED without one" in str(info.value)


def test_meta_training_on_earlier_jobs_of_the_service(
    server: LiveServer, client: NasClient, user_key: str, time_left: Callable[..., float]
) -> None:
    """``evaluator.jobs``: earlier jobs' completed trials are the tasks, copied into the
    stored spec at submit (the sources may go); a job that is not yours or searched another
    space is a 422 at its field."""
    sources = [
        client.wait(
            client.submit(nb201_spec(budget={"trials": n}, seed=n))["id"], timeout=time_left(60)
        )
        for n in (30, 40)
    ]
    assert all(s["state"] == "SUCCEEDED" for s in sources)
    spec = meta_spec(jobs=[s["id"] for s in sources])
    del spec["evaluator"]["tasks"]
    meta = client.submit(spec)
    tasks = meta["spec"]["evaluator"]["job_tasks"]
    assert [t["job"] for t in tasks] == [s["id"] for s in sources]
    assert [len(t["fitness"]) for t in tasks] == [30, 40]
    best = client.best(sources[0]["id"], k=1)[0]
    assert tasks[0]["choices"][0] == best["architecture"]["choices"]
    assert tasks[0]["fitness"][0] == best["metrics"]["val_accuracy"]
    for source in sources:
        client.delete(source["id"])  # the meta-training job has what it needs
    done = client.wait(meta["id"], timeout=time_left(120))
    assert done["state"] == "SUCCEEDED", done["reason"]
    assert done["summary"]["files"] == [{"name": "rl2-policy.pt", "kind": "rl2_policy"}]
    # its stored spec submits again with its sources gone (it said "no job N of yours")
    again = client.submit(client.job(meta["id"])["spec"])
    assert again["spec"]["evaluator"]["job_tasks"] == tasks
    assert client.wait(again["id"], timeout=time_left(120))["state"] == "SUCCEEDED"

    table_job = client.submit(
        {
            **nb201_spec(budget={"trials": 3}),
            "space": {"name": "table", "path": _tiny_table(server), "decisions": ["a", "b"]},
            "dataset": {"name": "table"},
            "evaluator": {"name": "table", "fitness": "acc"},
            "objective": {"metric": "acc"},
        }
    )
    with server.client(server.create_key("someone-else")) as other:
        theirs = other.submit(nb201_spec(budget={"trials": 3}))["id"]
    for jobs, says in (
        ([meta["id"] + 1000], "no job"),
        ([theirs], "no job"),
        ([table_job["id"]], "searched space"),
    ):
        bad = meta_spec(jobs=jobs)
        del bad["evaluator"]["tasks"]
        with pytest.raises(ApiError) as info:
            client.submit(bad)
        assert info.value.status_code == 422
        assert [e["loc"] for e in info.value.detail] == [["evaluator", "jobs", 0]]
        assert says in info.value.detail[0]["msg"]
    huge = meta_spec(jobs=[sources[0]["id"]])
    del huge["evaluator"]["tasks"]
    huge["space"] = {"name": "enas-macro", "layers": 12, "channels": 8}
    with pytest.raises(ApiError) as info:
        client.submit(huge)
    assert [e["loc"] for e in info.value.detail] == [["space"]]
    assert "at most 200,000 architectures" in info.value.detail[0]["msg"]


def test_job_tasks_a_client_sends_do_not_stand_in_for_a_job(
    server: LiveServer, client: NasClient, time_left: Callable[..., float]
) -> None:
    """``evaluator.job_tasks`` were trusted when their jobs matched ``jobs``: another user's
    job, or one of yours, with made-up trials was accepted unchecked (201), and made-up
    choices failed the job when it started. A job that exists is read again, with its
    checks; only a job that is gone (deleted since its stored spec was written) is taken
    from job_tasks, their content checked against the space."""
    with server.client(server.create_key("someone-else")) as other:
        theirs = other.wait(
            other.submit(nb201_spec(budget={"trials": 3}))["id"], timeout=time_left(60)
        )
    mine = client.wait(client.submit(nb201_spec(budget={"trials": 4}))["id"], timeout=time_left(60))
    gone = client.wait(client.submit(nb201_spec(budget={"trials": 1}))["id"], timeout=time_left(60))
    client.delete(gone["id"])
    assert theirs["state"] == mine["state"] == gone["state"] == "SUCCEEDED"
    made_up = {"choices": [[1] * 6], "fitness": [99.0]}
    never = gone["id"] + 1000  # an id no job had: not a deleted job's (it was taken as one)

    def meta(jobs: list[int], *tasks: dict[str, Any]) -> dict[str, Any]:
        spec = meta_spec(jobs=jobs, job_tasks=list(tasks), iterations=1)
        del spec["evaluator"]["tasks"]
        return spec

    for spec, loc, says in (
        (
            meta([theirs["id"]], {"job": theirs["id"], **made_up}),
            ["evaluator", "jobs", 0],
            "no job",
        ),
        (meta([], {"job": mine["id"], **made_up}), ["evaluator", "job_tasks"], "evaluator.jobs"),
        (
            meta([gone["id"]], {"job": gone["id"], "choices": [[9] * 6], "fitness": [1.0]}),
            ["evaluator", "job_tasks", 0],
            "not architectures of this space",
        ),
        (meta([never], {"job": never, **made_up}), ["evaluator", "jobs", 0], f"no job {never}"),
        (
            meta([mine["id"]], {"job": mine["id"] + 1, **made_up}),
            ["evaluator", "job_tasks", 0],
            "not in evaluator.jobs",
        ),
    ):
        with pytest.raises(ApiError) as info:
            client.submit(spec)
        assert info.value.status_code == 422
        assert [e["loc"] for e in info.value.detail] == [loc], info.value.detail
        assert says in info.value.detail[0]["msg"]
    # A job of yours that still exists is read, not taken from what the client sent.
    read = client.submit(meta([mine["id"]], {"job": mine["id"], **made_up}))
    [task] = read["spec"]["evaluator"]["job_tasks"]
    assert len(task["fitness"]) == 4 and 99.0 not in task["fitness"]


def test_what_a_meta_training_job_would_meet_when_it_starts_is_a_422_at_submit(
    server: LiveServer, client: NasClient
) -> None:
    """Each was accepted (201): a custom NAS-Bench-201 ``table`` that is not one (FAILED at
    start), a table whose fitness holds inf (SUCCEEDED having learnt nothing: every figure
    0.0), ``fitness`` with NAS-Bench-201 tasks (ignored), one file under two paths (one task
    counted twice)."""
    server.settings.data_dir.mkdir(parents=True, exist_ok=True)
    tiny = _tiny_table(server)
    infinite = server.settings.data_dir / "infinite.csv"
    infinite.write_text(Path(tiny).read_text().replace(",3\n", ",inf\n"))
    link = server.settings.data_dir / "link.csv"
    link.symlink_to(tiny)
    twice = server.settings.data_dir / "twice.csv"  # x,1 again: data rows 1 and 7
    twice.write_text(Path(tiny).read_text() + "x,1,9\n")
    on_tables = {
        "name": "tables",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": tiny, "decisions": ["a", "b"]},
        "controller": {"name": "rl2"},
        "objective": {"metric": "acc"},
        "budget": {"minutes": 1},
    }
    for spec, loc, says in (
        (meta_spec(table=tiny), ["evaluator", "table"], "expected the NAS-Bench-201 table"),
        # (and a tabular search's: created, then FAILED at its start)
        (
            nb201_spec(evaluator={"name": "tabular", "table": tiny}),
            ["evaluator", "table"],
            "expected the NAS-Bench-201 table",
        ),
        (
            {**on_tables, "evaluator": _tables(tiny, str(infinite))},
            ["evaluator", "tables", 1],
            "data row 4 is not a finite number",
        ),
        (meta_spec(fitness="c10_val12"), ["evaluator", "fitness"], "evaluator.tables"),
        # (named as a table space names them: it said "two rows")
        (
            {**on_tables, "evaluator": _tables(tiny, str(twice))},
            ["evaluator", "tables", 1],
            "data rows 1 and 7 have the same values in every decision column",
        ),
        (
            {**on_tables, "evaluator": _tables(tiny, str(link))},
            ["evaluator", "tables", 1],
            "the same file as evaluator.tables.0",
        ),
        # ... written another way: a 500 (a ValidationError of the absolute paths)
        (
            {**on_tables, "evaluator": _tables(tiny, tiny.replace("/tiny", "/./tiny"))},
            ["evaluator", "tables", 1],
            "the same file as evaluator.tables.0 (written another way",
        ),
    ):
        with pytest.raises(ApiError) as info:
            client.submit(spec)
        assert info.value.status_code == 422
        assert [e["loc"] for e in info.value.detail] == [loc], info.value.detail
        assert says in info.value.detail[0]["msg"]
    # the stored spec's default fitness with tasks is no setting of the user's
    assert client.submit(meta_spec(fitness="val_accuracy"))["spec"]["evaluator"]["fitness"] == (
        "val_accuracy"
    )


def test_a_policy_copy_in_artifacts_outside_the_data_roots_still_runs(
    server_factory: Any, tmp_path: Path
) -> None:
    """The job's own copy of a policy lies in its artifacts folder, which need not be a data
    root: the job starts (the check at start allows that one folder, for that field)."""
    server: LiveServer = server_factory(artifacts_dir=tmp_path / "artifacts-elsewhere")
    assert not any(
        (tmp_path / "artifacts-elsewhere").resolve().is_relative_to(root)
        for root in server.settings.resolved_data_roots()
    )
    with server.client(server.create_key("a")) as client:
        meta = client.wait(client.submit(meta_spec())["id"], timeout=120)
        assert meta["state"] == "SUCCEEDED", meta["reason"]
        user = client.submit(
            nb201_spec(controller={"name": "rl2", "policy_job": meta["id"]}, budget={"trials": 5})
        )
        done = client.wait(user["id"], timeout=60)
        assert done["state"] == "SUCCEEDED", done["reason"]
        # Another job's copy is not a data root's file: naming it directly is refused.
        with pytest.raises(ApiError) as refused:
            client.submit(
                nb201_spec(
                    controller={"name": "rl2", "policy": user["spec"]["controller"]["policy"]}
                )
            )
        assert refused.value.status_code == 422
        assert refused.value.detail[0]["loc"] == ["controller", "policy"]


def test_meta_training_on_jobs_follows_their_direction_or_is_refused(
    client: NasClient,
) -> None:
    """A source job that minimised the fitness, under a meta-training job that maximises it,
    gave its values as they were: the policy learnt to find what the source avoided. It is a
    422 at ``evaluator.jobs.I``; meta-training in the source's direction is accepted."""
    minimised = nb201_spec(budget={"trials": 3}, objective={"metric": "val_accuracy"})
    minimised["objective"]["direction"] = "minimize"
    source = client.wait(client.submit(minimised)["id"], timeout=60)
    assert source["state"] == "SUCCEEDED", source["reason"]
    spec = meta_spec(jobs=[source["id"]], iterations=1)
    del spec["evaluator"]["tasks"]
    with pytest.raises(ApiError) as info:  # (val_accuracy: maximised unless told)
        client.submit(spec)
    assert info.value.status_code == 422
    assert [e["loc"] for e in info.value.detail] == [["evaluator", "jobs", 0]]
    assert f"job {source['id']} minimized 'val_accuracy'" in info.value.detail[0]["msg"]
    agreed = client.submit({**spec, "objective": {"direction": "minimize"}})
    assert agreed["spec"]["objective"] == {**agreed["spec"]["objective"], "direction": "minimize"}
    assert agreed["spec"]["evaluator"]["job_tasks"][0]["job"] == source["id"]
    assert client.wait(agreed["id"], timeout=60)["state"] == "SUCCEEDED"


def test_a_made_up_copy_path_is_a_422_not_a_500(server: LiveServer, client: NasClient) -> None:
    """A job folder named '²' (isdigit, not int) or 30 digits (past the id column) in a
    policy copy's path answered 500."""
    artifacts = server.settings.resolved_artifacts_dir()
    for folder in ("²", "9" * 30):
        path = artifacts / "jobs" / folder / "files" / "rl2-policy-from-job-7.pt"
        spec = nb201_spec(controller={"name": "rl2", "policy_job": 7, "policy": str(path)})
        with pytest.raises(ApiError) as refused:
            client.submit(spec)
        assert refused.value.status_code == 422, refused.value
