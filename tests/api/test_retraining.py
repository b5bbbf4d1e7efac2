"""``retrain_final``: the one path that trains a job's best architectures from scratch, puts
their weights under the job's folder and records them (the runner's ``final:`` step and
``POST /jobs/{id}/retrain``), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import ArtifactModel, JobModel, JobState, TrialModel
from api.repositories import JobRepository, TrialRepository
from api.retraining import (
    STOPPED_BY_SHUTDOWN,
    Retrainings,
    reap_stale_retrainings,
    retrain_final,
)
from api.services import NotFoundError
from nas.architecture import Architecture
from nas.export import load_network
from nas.trial import RunningTrial
from tests.api.conftest import serving, standalone_spec, wait_for
from workers.search import parse_spec


@pytest.fixture
def write(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield make_session_factory(engine, write=True)
    engine.dispose()


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _job(write: sessionmaker[Session], spec: dict[str, Any]) -> int:
    with session_scope(write) as session:
        job = JobRepository(session).add(
            JobModel(name="retrain", spec=spec, state=JobState.SUCCEEDED.value, state_counts={})
        )
        return job.id


def _artifacts(write: sessionmaker[Session], job_id: int) -> list[tuple[str, str, Any]]:
    """The job's artifact rows as (kind, path, meta)."""
    with session_scope(write) as session:
        rows = session.scalars(
            select(ArtifactModel).where(ArtifactModel.job_id == job_id).order_by(ArtifactModel.id)
        ).all()
        return [(r.kind, r.path, r.meta) for r in rows]


def test_trains_places_and_records_the_weights(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    spec = standalone_spec(final={"retrain_top_k": 2, "epochs": 1})
    job_id = _job(write, spec)
    resolved = parse_spec(spec)
    space = resolved.build_space()
    archs = [space.sample(np.random.default_rng(seed)) for seed in (1, 2)]
    artifacts = tmp_path / "artifacts"

    final = retrain_final(write, artifacts, job_id, resolved, space, archs, [{"lr": 0.05}, {}])

    folder = artifacts / "jobs" / str(job_id) / "final"
    assert sorted(p.name for p in folder.iterdir()) == ["rank0.pt", "rank1.pt"]  # no scratch
    assert [e["weights"] for e in final] == [
        f"jobs/{job_id}/final/rank0.pt",
        f"jobs/{job_id}/final/rank1.pt",
    ]
    assert [e["rank"] for e in final] == [0, 1] and "trial" not in final[0]
    assert final[0]["hparams"] == {"lr": 0.05} and "hparams" not in final[1]
    assert [e["architecture"] for e in final] == [a.to_dict() for a in archs]
    assert _artifacts(write, job_id) == [
        ("final_weights", e["weights"], {"rank": e["rank"], "test_accuracy": e["test_accuracy"]})
        for e in final
    ]
    # The weights are the network's: they load strictly into what exports build.
    load_network(space, archs[1], (1, 8, 8), 10, artifacts / final[1]["weights"])
    trained = torch.load(artifacts / final[1]["weights"], weights_only=True)
    # Rank 2 alone (POST /retrain?rank=2) repeats what final: trained for it: it was seeded
    # as rank 1 (a list of one), and scored what that architecture scores as the best.
    (again,) = retrain_final(write, artifacts, job_id, resolved, space, [archs[1]], [{}], ranks=[1])
    assert again["rank"] == 1 and again["test_accuracy"] == final[1]["test_accuracy"]
    retrained = torch.load(artifacts / again["weights"], weights_only=True)
    assert all(torch.equal(retrained[k], v) for k, v in trained.items())


def test_a_retraining_trial_records_with_its_caller_or_not_at_all(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    spec = standalone_spec(final={"epochs": 1})
    job_id = _job(write, spec)
    resolved = parse_spec(spec)
    space = resolved.build_space()
    arch = space.sample(np.random.default_rng(3))
    artifacts = tmp_path / "artifacts"
    seen: list[Any] = []

    def record(session: Session, job: JobModel, entries: list[dict[str, Any]]) -> None:
        seen.append((job.id, [dict(e) for e in entries]))
        JobRepository(session).set_fields(job.id, summary={"final": entries})

    (entry,) = retrain_final(
        write, artifacts, job_id, resolved, space, [arch], ranks=[4], trial=9, record=record
    )
    assert entry["weights"] == f"jobs/{job_id}/final/retrain-trial9.pt"
    assert entry["rank"] == 4 and entry["trial"] == 9
    assert seen == [(job_id, [entry])]
    (row,) = _artifacts(write, job_id)
    assert row[2] == {"rank": 4, "test_accuracy": entry["test_accuracy"], "trial": 9}
    with session_scope(write) as session:
        assert JobRepository(session).get(job_id).summary == {"final": [entry]}

    # A failing record rolls the artifact back and removes the weights.
    def broken(session: Session, job: JobModel, entries: list[dict[str, Any]]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        retrain_final(write, artifacts, job_id, resolved, space, [arch], trial=10, record=broken)
    assert not (artifacts / f"jobs/{job_id}/final/retrain-trial10.pt").exists()
    assert len(_artifacts(write, job_id)) == 1

    # A job deleted while it trained: nothing is kept.
    with session_scope(write) as session:
        JobRepository(session).delete(job_id)
    with pytest.raises(NotFoundError):
        retrain_final(write, artifacts, job_id, resolved, space, [arch], trial=11)
    assert sorted(p.name for p in (artifacts / f"jobs/{job_id}/final").iterdir()) == [
        "retrain-trial9.pt"
    ]
    with pytest.raises(ValueError, match="one architecture for a retraining trial"):
        retrain_final(write, artifacts, job_id, resolved, space, [arch, arch], trial=12)


def test_a_killed_retrainings_scratch_folder_is_swept_by_the_next(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    """A ``kill -9`` during a retraining left ``final/.scratch-*`` behind for good; the next
    retraining of the job removes those of dead processes, not of live ones."""
    spec = standalone_spec(final={"epochs": 1})
    job_id = _job(write, spec)
    resolved = parse_spec(spec)
    space = resolved.build_space()
    final = tmp_path / "artifacts" / f"jobs/{job_id}/final"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    for name, pid in ((".scratch-dead", dead.pid), (".scratch-live", os.getpid())):
        (final / name).mkdir(parents=True)
        (final / name / "owner").write_text(f"{socket.gethostname()}:{pid}")
        (final / name / "rank0.pt").write_bytes(b"half")
    arch = space.sample(np.random.default_rng(3))
    retrain_final(write, tmp_path / "artifacts", job_id, resolved, space, [arch])
    assert sorted(p.name for p in final.iterdir()) == [".scratch-live", "rank0.pt"]


def _running(
    write: sessionmaker[Session], job_id: int, number: int, worker: str, ago: float
) -> None:
    with session_scope(write) as session:
        TrialRepository(session).add_running(
            job_id,
            [
                RunningTrial(
                    number=number,
                    candidate_id=-1,
                    architecture=Architecture("enas-macro", (0,) * 4),
                    hparams={},
                    started_at=time.time() - ago,
                    worker=worker,
                )
            ],
        )


def _trial(write: sessionmaker[Session], job_id: int, number: int) -> TrialModel:
    with session_scope(write) as session:
        query = select(TrialModel).where(TrialModel.job_id == job_id, TrialModel.number == number)
        return session.scalars(query).one()


def test_a_retraining_renews_its_heartbeat_and_a_silent_one_is_reaped_on_any_machine(
    write: sessionmaker[Session],
) -> None:
    """A retraining whose server died on another machine stayed RUNNING for good and
    blocked every later retraining and the job's deletion (only a dead process on this
    machine was recognised). Now a retraining renews its trial's heartbeat while it runs,
    and one whose heartbeat is older than the lease is failed by whichever server looks."""
    job_id = _job(write, standalone_spec())
    retrainings = Retrainings(limit=1, lease_s=0.6)
    release = threading.Event()
    _running(write, job_id, 0, retrainings.worker, ago=0)
    retrainings.run(job_id, 0, lambda: release.wait(30), write)
    try:
        first = wait_for(lambda: _trial(write, job_id, 0).heartbeat_at, timeout=10)
        later = wait_for(
            lambda: (_trial(write, job_id, 0).heartbeat_at or first) > first, timeout=10
        )
        assert later
        _running(write, job_id, 1, "elsewhere:4242:retrain", ago=5)  # silent for 5 s
        _running(write, job_id, 2, "elsewhere:4243:retrain", ago=0)  # just started
        with session_scope(write) as session:
            reap_stale_retrainings(session, job_id, retrainings)
        states = {n: _trial(write, job_id, n).state for n in (0, 1, 2)}
        assert states == {0: "RUNNING", 1: "FAIL", 2: "RUNNING"}
        assert _trial(write, job_id, 1).error == "the server stopped while this retraining ran"
    finally:
        release.set()
    wait_for(lambda: not retrainings.running(job_id), timeout=10)


def test_a_job_deletes_once_its_retrainings_trial_is_recorded_finished(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    """'nas retrain' saw its trial COMPLETE and 'nas delete' right after answered 409 "a
    retraining is running": the retraining's thread, whose last write that result is, had
    not yet left this server's registry (a CI run). Only a RUNNING retraining trial stops
    a delete; one recorded finished does not, whatever the registry says a moment longer."""
    from api.auth import LOCAL_ADMIN
    from api.deletion import delete_job
    from api.services import ConflictError

    retrainings = Retrainings(limit=1, lease_s=60.0)
    job_id = _job(write, standalone_spec())
    arch = Architecture("enas-macro", (0, 0, 0))
    with session_scope(write) as session:
        TrialRepository(session).add_running(job_id, [RunningTrial(
            number=0, candidate_id=-1, architecture=arch, hparams={}, started_at=time.time(),
            worker=retrainings.worker,
        )])  # fmt: skip
    retrainings._add(job_id, 0)  # its thread runs
    with pytest.raises(ConflictError, match="a retraining of job"):
        delete_job(write, tmp_path / "artifacts", retrainings, LOCAL_ADMIN, job_id)
    with session_scope(write) as session:
        TrialRepository(session).finish(job_id, 0, state="COMPLETE", metrics={})
    delete_job(write, tmp_path / "artifacts", retrainings, LOCAL_ADMIN, job_id)  # (still listed)
    with session_scope(write) as session:
        assert JobRepository(session).get(job_id) is None


def test_a_retraining_that_waited_for_a_slot_through_a_shutdown_never_starts(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    """A retraining queued for a slot got it while the server stopped and began to train
    (reading its data, its first epoch) past the shutdown's wait. It fails at once now."""
    from api.retraining import RetrainStarted, _retrain

    job_id = _job(write, standalone_spec())
    retrainings = Retrainings(limit=1)
    release = threading.Event()
    _running(write, job_id, 0, retrainings.worker, ago=0)
    _running(write, job_id, 1, retrainings.worker, ago=0)
    retrainings.run(job_id, 0, lambda: release.wait(30), write)
    started = RetrainStarted(job_id, 1, 0, 1, {})
    # (a spec it cannot even read: had it started, the trial's error would say so)
    queued = lambda: _retrain(
        write, tmp_path, {}, started, Architecture("x", (0,)), should_stop=retrainings.stop_reason
    )
    retrainings.run(job_id, 1, queued, write)
    stopping = threading.Thread(target=retrainings.stop, args=(20.0,))
    stopping.start()
    wait_for(lambda: retrainings.stop_reason() is not None, timeout=10)
    release.set()
    stopping.join(30)
    assert not stopping.is_alive()
    trial = _trial(write, job_id, 1)
    assert (trial.state, trial.error) == ("FAIL", STOPPED_BY_SHUTDOWN)


def test_a_retraining_that_waited_for_a_slot_starts_when_it_gets_one(
    write: sessionmaker[Session], tmp_path: Path
) -> None:
    """A retraining waiting for a slot showed its request's time as its start (and a trial
    page its seconds from there): it starts when its slot is free."""
    from api.retraining import RetrainStarted, _retrain

    job_id = _job(write, standalone_spec())
    retrainings = Retrainings(limit=1)
    release = threading.Event()
    _running(write, job_id, 0, retrainings.worker, ago=0)
    _running(write, job_id, 1, retrainings.worker, ago=0)
    asked = _trial(write, job_id, 1).started_at
    retrainings.run(job_id, 0, lambda: release.wait(30), write)
    started = RetrainStarted(job_id, 1, 0, 1, {})
    # (a spec it cannot read: it fails once started, its start recorded first)
    queued = lambda: _retrain(write, tmp_path, {}, started, Architecture("x", (0,)))
    retrainings.run(job_id, 1, queued, write)
    time.sleep(1.0)  # it waits for the slot
    release.set()
    wait_for(lambda: _trial(write, job_id, 1).state == "FAIL", timeout=30)
    trial = _trial(write, job_id, 1)
    assert asked is not None and trial.started_at is not None
    assert (trial.started_at - asked).total_seconds() >= 0.9, (asked, trial.started_at)


def test_sigterm_during_a_retraining_stops_it_and_the_server_cleanly(tmp_path: Path) -> None:
    """``nas serve`` aborted on SIGTERM while a retraining trained ("terminate called without
    an active exception", exit 134: the interpreter ended inside its thread's torch call),
    leaving its trial RUNNING until a later request reaped it."""
    from api.client import NasClient

    data = tmp_path / "d"
    serve = serving("--no-auth", "--data-dir", str(data), "--backend", "inline")
    with serve as (proc, url), NasClient(url) as client:
        job_id = client.submit(standalone_spec(trials=1, epochs=1))["id"]
        assert client.wait(job_id, timeout=60)["state"] == "SUCCEEDED"
        trial_id = client.retrain(job_id)["trial_id"]  # 60 epochs: final:'s default
        wait_for(lambda: client.trial(trial_id)["state"] == "RUNNING", timeout=30)
        time.sleep(0.5)  # an epoch or so into it
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        assert proc.stdout is not None
        output = proc.stdout.read()
    assert code == 0, output
    assert "terminate called" not in output and "Traceback" not in output, output
    engine = make_engine(f"sqlite:///{data / 'nas.db'}")
    try:
        with sessionmaker(engine)() as session:
            trial = session.scalars(select(TrialModel).where(TrialModel.id == trial_id)).one()
            assert (trial.state, trial.error) == ("FAIL", STOPPED_BY_SHUTDOWN)
    finally:
        engine.dispose()
