"""A job's curves: per-epoch points stored through ``CurveRepository`` and served with the
best-so-far history by ``GET /api/v1/jobs/{id}/curves``, on SQLite and PostgreSQL.

Points and trials are written through the repositories, as the job runner writes them (in a
checkpoint's transaction); the server runs no jobs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from api.auth import create_key
from api.cli import main as nas_main
from api.client import ApiError, NasClient
from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import CurvePointModel, JobModel
from api.repositories import CurveRepository, TrialRepository
from nas.architecture import Architecture
from nas.trial import RunningTrial, TrialRecord, TrialResult, TrialState
from tests.api.conftest import LiveServer

# Objectives of trials 0..9 in number order; None: the trial has no objective.
STATES = ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED",
          "COMPLETE", "RUNNING", "COMPLETE"]  # fmt: skip
OBJECTIVES = [0.5, 0.3, None, 0.7, 0.2, 0.2, 0.95, 0.1, None, 0.7]
# PRUNED (0.95) never counts; a tie (9: 0.7 after 3: 0.7) is no improvement.
BEST_MAXIMIZE = [{"trial": 0, "value": 0.5}, {"trial": 3, "value": 0.7}]
BEST_MINIMIZE = [
    {"trial": 0, "value": 0.5},
    {"trial": 1, "value": 0.3},
    {"trial": 4, "value": 0.2},
    {"trial": 7, "value": 0.1},
]


def supernet_point(epoch: int) -> dict[str, Any]:
    """A point as ``workers.shared`` records one (``curve.json``)."""
    return {
        "epoch": epoch,
        "train_loss": 2.0 / (epoch + 1),
        "train_accuracy": 10.0 * (epoch + 1),
        "skipped_steps": 0,
        "lr": 0.05,
        "seconds": 1.25,
        "rewards": 20,
        "mean_reward": 0.1 + 0.1 * epoch,
        "entropy": 1.5 - 0.1 * epoch,
        "baseline": 0.05 * epoch,
    }


def add_job(
    session: Any,
    owner_id: int | None,
    *,
    direction: str | None = "maximize",
    objectives: list[float | None] | None = None,
    states: list[str] | None = None,
) -> int:
    """A finished job with trials ``0..n-1`` (recorded as the runner records them)."""
    spec: dict[str, Any] = {"name": "curves", "objective": {"metric": "val_accuracy"}}
    if direction is not None:
        spec["objective"]["direction"] = direction
    objectives = objectives or []
    states = states or ["COMPLETE"] * len(objectives)
    job = JobModel(
        name="curves",
        owner_id=owner_id,
        spec=spec,
        state="SUCCEEDED",
        state_counts={},
        n_trials=len(objectives),
    )
    session.add(job)
    session.flush()
    trials = TrialRepository(session)
    for number, (state, objective) in enumerate(zip(states, objectives, strict=True)):
        arch = Architecture("nb201", (number % 5,) * 6, 1)
        if state == "RUNNING":
            trials.add_running(job.id, [RunningTrial(number, number, arch, {}, 0.0, "test")])
            continue
        result = TrialResult(
            TrialState(state), objective, error=None if state != "FAIL" else "failed"
        )
        trials.add_records(job.id, [TrialRecord(number, number, arch, {}, result, 0.0, 0.0)])
    return job.id


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class Tenants:
    """A server that runs no jobs, users A and B and an admin (their keys and ids)."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.write = server.app.state.nas.write
        with session_scope(self.write) as session:
            a, self.key_a = create_key(session, name="user-a")
            b, self.key_b = create_key(session, name="user-b")
            _, self.key_admin = create_key(session, name="root", admin=True)
            self.a, self.b = a.id, b.id

    def client(self, key: str) -> NasClient:
        return self.server.client(key)


@pytest.fixture
def tenants(server_factory: Any) -> Tenants:
    return Tenants(server_factory(run_jobs=False))


# --- the endpoint ------------------------------------------------------------------------------
def test_curves_serve_epochs_in_order_and_best_so_far_maximize(tenants: Tenants) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(session, tenants.a, objectives=OBJECTIVES, states=STATES)
        curves = CurveRepository(session)
        # Checkpoints add their epochs in batches, and a batch may come in any order.
        assert curves.add_many(job_id, "supernet", [supernet_point(2), supernet_point(0)]) == 2
        assert curves.add_many(job_id, "supernet", [supernet_point(1)]) == 1
        curves.add_many(job_id, "meta", [{"epoch": 0, "meta_loss": 0.25}])
    with tenants.client(tenants.key_a) as client:
        answer = client.curves(job_id)
    assert answer == {
        "job_id": job_id,
        "direction": "maximize",
        "epochs": {
            "meta": [{"epoch": 0, "meta_loss": 0.25}],
            "supernet": [supernet_point(0), supernet_point(1), supernet_point(2)],
        },
        "best_so_far": BEST_MAXIMIZE,
        "n_trials": len(OBJECTIVES),
    }


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("minimize", BEST_MINIMIZE), ("maximize", BEST_MAXIMIZE), (None, BEST_MAXIMIZE)],
)
def test_best_so_far_follows_the_objective_direction(
    tenants: Tenants, direction: str | None, expected: list[dict[str, Any]]
) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(
            session, tenants.a, direction=direction, objectives=OBJECTIVES, states=STATES
        )
    with tenants.client(tenants.key_a) as client:
        answer = client.curves(job_id)
    assert answer["direction"] == (direction or "maximize")
    assert answer["best_so_far"] == expected
    assert answer["epochs"] == {}


def test_a_job_without_points_or_trials_has_empty_curves(tenants: Tenants) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(session, tenants.a)
        # Another job's points and trials are not this one's.
        other = add_job(session, tenants.a, objectives=[0.4])
        CurveRepository(session).add_many(other, "supernet", [supernet_point(0)])
    with tenants.client(tenants.key_a) as client:
        assert client.curves(job_id) == {
            "job_id": job_id,
            "direction": "maximize",
            "epochs": {},
            "best_so_far": [],
            "n_trials": 0,
        }
        assert client.curves(other)["best_so_far"] == [{"trial": 0, "value": 0.4}]


def test_curves_are_the_owners_and_admins_only(tenants: Tenants) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(session, tenants.a, objectives=[0.5])
    with tenants.client(tenants.key_admin) as admin:
        assert admin.curves(job_id)["best_so_far"] == [{"trial": 0, "value": 0.5}]
    with tenants.client(tenants.key_b) as other:
        with pytest.raises(ApiError) as foreign:
            other.curves(job_id)
        with pytest.raises(ApiError) as missing:
            other.curves(job_id + 1000)
    # Another user's job answers exactly like one that does not exist.
    assert foreign.value.status_code == missing.value.status_code == 404
    assert foreign.value.detail == f"job {job_id} not found"
    path = f"{tenants.server.url}/api/v1/jobs/{job_id}/curves"
    assert httpx.get(path).status_code == 401
    wrong = httpx.get(path, headers={"Authorization": "Bearer nas_not-a-key"})
    assert wrong.status_code == 401
    assert httpx.get(path, headers={"Authorization": f"Bearer {tenants.key_a}"}).is_success


def test_openapi_documents_the_curves_response(tenants: Tenants) -> None:
    schema = httpx.get(f"{tenants.server.url}/openapi.json").json()
    operation = schema["paths"]["/api/v1/jobs/{job_id}/curves"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/JobCurves"}
    assert "404" in operation["responses"]
    fields = schema["components"]["schemas"]["JobCurves"]["properties"]
    assert set(fields) == {"job_id", "direction", "epochs", "best_so_far", "n_trials"}
    point = schema["components"]["schemas"]["EpochPoint"]
    assert point["required"] == ["epoch"] and point["additionalProperties"] is True


def test_deleting_a_job_deletes_its_curve_points(tenants: Tenants) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(session, tenants.a, objectives=[0.5])
        kept = add_job(session, tenants.a)
        CurveRepository(session).add_many(job_id, "supernet", map(supernet_point, range(3)))
        CurveRepository(session).add_many(kept, "supernet", map(supernet_point, range(2)))
    with tenants.client(tenants.key_a) as client:
        client.delete(job_id)
        with pytest.raises(ApiError) as gone:
            client.curves(job_id)
        assert gone.value.status_code == 404
        assert len(client.curves(kept)["epochs"]["supernet"]) == 2
    with session_scope(tenants.write) as session:
        rows = session.execute(
            select(CurvePointModel.job_id, func.count()).group_by(CurvePointModel.job_id)
        ).all()
    assert [tuple(r) for r in rows] == [(kept, 2)]


def test_nas_curves_prints_a_table(tenants: Tenants, capsys: pytest.CaptureFixture[str]) -> None:
    with session_scope(tenants.write) as session:
        job_id = add_job(session, tenants.a, objectives=OBJECTIVES, states=STATES)
        CurveRepository(session).add_many(job_id, "supernet", map(supernet_point, range(2)))
    server = ["--server", tenants.server.url, "--api-key", tenants.key_a]
    assert nas_main(["curves", str(job_id), *server]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "supernet: 2 epochs"
    assert lines[1].split()[:3] == ["EPOCH", "train_loss", "train_accuracy"]  # whole names
    assert lines[2].split()[:3] == ["0", "2", "10"]
    assert lines[3].split()[:3] == ["1", "1", "20"]
    assert lines[4] == f"best so far (maximize, {len(OBJECTIVES)} trials):"
    assert [line.split() for line in lines[6:]] == [["0", "0.5"], ["3", "0.7"]]
    assert nas_main(["curves", str(job_id + 1000), *server]) == 2


# --- the repository ----------------------------------------------------------------------------
def test_delete_from_drops_the_epochs_after_a_checkpoint(engine: Engine) -> None:
    write = make_session_factory(engine, write=True)
    with session_scope(write) as session:
        job_id, other = add_job(session, None), add_job(session, None)
        curves = CurveRepository(session)
        curves.add_many(job_id, "supernet", map(supernet_point, range(5)))
        curves.add_many(job_id, "meta", [{"epoch": e} for e in range(5)])
        curves.add_many(other, "supernet", map(supernet_point, range(5)))
    # Resume from a checkpoint taken after epoch 2: epochs 3 and 4 were never checkpointed.
    with session_scope(write) as session:
        assert CurveRepository(session).delete_from(job_id, "supernet", 3) == 2
        assert CurveRepository(session).delete_from(job_id, "supernet", 3) == 0
    with session_scope(write) as session:  # the resumed search records them again
        CurveRepository(session).add_many(job_id, "supernet", [supernet_point(3)])
    with write() as session:
        points = CurveRepository(session).points(job_id)
        assert [(p.series, p.step) for p in points] == [
            *(("meta", e) for e in range(5)),
            *(("supernet", e) for e in range(4)),
        ]
        assert points[-1].values == {k: v for k, v in supernet_point(3).items() if k != "epoch"}
        assert [p.step for p in CurveRepository(session).points(other)] == list(range(5))


def test_an_epoch_is_recorded_once_per_series(engine: Engine) -> None:
    """A write retried after a lost connection records its epoch again: kept once, as first
    written (the runner's writes are idempotent, ``api.db.retry_transient``)."""
    write = make_session_factory(engine, write=True)
    with session_scope(write) as session:
        job_id = add_job(session, None)
        CurveRepository(session).add_many(job_id, "supernet", [supernet_point(0)])
    with session_scope(write) as session:
        again = {**supernet_point(0), "train_loss": 99.0}
        CurveRepository(session).add_many(job_id, "supernet", [again, supernet_point(1)])
    with write() as session:
        points = CurveRepository(session).points(job_id)
        assert [p.step for p in points] == [0, 1]
        assert points[0].values["train_loss"] == supernet_point(0)["train_loss"]


def test_points_need_an_integer_epoch_and_store_finite_json(engine: Engine) -> None:
    write = make_session_factory(engine, write=True)
    with session_scope(write) as session:
        job_id = add_job(session, None)
        curves = CurveRepository(session)
        for bad in ({"loss": 1.0}, {"epoch": 1.0}, {"epoch": "1"}, {"epoch": True}):
            with pytest.raises(TypeError, match="integer 'epoch'"):
                curves.add_many(job_id, "supernet", [bad])
        assert curves.add_many(job_id, "supernet", []) == 0
        point = {"epoch": 0, "train_loss": math.nan, "mean_reward": None, "lr": math.inf}
        curves.add_many(job_id, "supernet", [point])
    with write() as session:
        [stored] = CurveRepository(session).points(job_id)
        assert stored.values == {"train_loss": None, "mean_reward": None, "lr": None}
