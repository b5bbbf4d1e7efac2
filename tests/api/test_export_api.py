"""Exports of a job's best architectures, retraining and job deletion, over real HTTP on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
import torch
from sqlalchemy import func, select

from api.cli import main
from api.client import WEIGHTS_HEADER, ApiError, NasClient, UntrainedExportWarning
from api.db import session_scope
from api.models import (
    ArtifactModel,
    CheckpointModel,
    IntermediateValueModel,
    JobModel,
    TrialModel,
)
from api.repositories import JobRepository, TrialRepository
from nas.architecture import Architecture
from nas.export import load_network
from nas.spaces import SPACES, Nb201Space
from nas.trial import RunningTrial
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec, wait_for

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny networks on a shared machine: one thread trains them faster than several."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("NAS_TORCH_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def _submit(client: NasClient, spec: dict[str, Any]) -> int:
    """Submit and wait until the job is visible: ``POST /jobs`` commits in a request-scoped
    dependency of ``api/deps.py``, which FastAPI exits only after the 201 was sent."""
    job_id = int(client.submit(spec)["id"])

    def visible() -> bool:
        try:
            return bool(client.job(job_id))
        except ApiError as exc:
            if exc.status_code != 404:
                raise
            return False

    wait_for(visible, timeout=10)
    return job_id


def _error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        call()
    return err.value


def _rows(server: LiveServer, job_id: int) -> dict[str, int]:
    """Rows that belong to the job, per table."""
    tables = {
        "jobs": (JobModel, JobModel.id),
        "trials": (TrialModel, TrialModel.job_id),
        "intermediate": (IntermediateValueModel, IntermediateValueModel.job_id),
        "checkpoints": (CheckpointModel, CheckpointModel.job_id),
        "artifacts": (ArtifactModel, ArtifactModel.job_id),
    }
    with server.app.state.nas.read() as session:
        return {
            name: int(
                session.scalar(select(func.count()).select_from(model).where(column == job_id)) or 0
            )
            for name, (model, column) in tables.items()
        }


def _artifacts(server: LiveServer, job_id: int, kind: str) -> list[ArtifactModel]:
    with server.app.state.nas.read() as session:
        return list(
            session.scalars(
                select(ArtifactModel).where(
                    ArtifactModel.job_id == job_id, ArtifactModel.kind == kind
                )
            ).all()
        )


def _input(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(3))


def test_standalone_job_exports_trained_weights_retrains_and_deletes(
    server: LiveServer,
    user_key: str,
    client: NasClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = standalone_spec(trials=3, epochs=1, final={"retrain_top_k": 1, "epochs": 2})
    job = client.wait(_submit(client, spec), timeout=60)
    job_id = job["id"]
    assert job["state"] == "SUCCEEDED", job["reason"]
    final = job["summary"]["final"][0]
    artifacts = server.settings.resolved_artifacts_dir()

    # json: the architecture, its search metrics and the retrained test accuracy.
    doc = json.loads(client.export(job_id, "json", 1, tmp_path / "best.json").read_text())
    assert (
        doc["architecture"] == final["architecture"] == job["summary"]["ranked"][0]["architecture"]
    )
    assert doc["rank"] == 1 and doc["ranked_architectures"] >= 2
    assert doc["weights"] == (
        f"trained, from scratch with the job's final recipe, test accuracy "
        f"{final['test_accuracy']:.2f}"
    )
    assert doc["final"]["test_accuracy"] == final["test_accuracy"]
    assert "rank" not in doc["final"]  # (summary.final's counts from 0: not a second rank)
    assert doc["metrics"]["retrained_test_accuracy"] == final["test_accuracy"]
    assert doc["metrics"]["val_accuracy"] == job["best"]["value"]
    assert doc["input_shape"] == [1, 8, 8] and doc["num_classes"] == 10
    assert doc["provenance"]["trial"] == job["best"]["trial_number"]
    assert doc["provenance"]["job_id"] == job["id"]  # an int, as everywhere (it was "1")
    # what an input is: the exported network scores 10 % on raw load_digits() images
    assert doc["inputs"].startswith("scikit-learn's load_digits() images divided by 16")

    # Weights damaged on disk: a network export is a 409 naming the remedy (was a 500).
    weights = artifacts / final["weights"]
    intact = weights.read_bytes()
    weights.write_bytes(intact[:100])
    err = _error(lambda: client.export(job_id, "torchscript", 1, tmp_path / "broken.pt"))
    assert err.status_code == 409, err
    assert "retrained weights of rank 1 (rank0.pt) cannot be read" in str(err)
    assert f"nas retrain {job_id} --rank 1" in str(err)
    weights.write_bytes(intact)

    # Our network with the retrained weights: what every other format must reproduce.
    arch = Architecture.from_dict(final["architecture"])
    space = SPACES.get("enas-macro").from_config(final["space_config"])
    ours = load_network(space, arch, (1, 8, 8), 10, artifacts / final["weights"])
    x = _input((1, 8, 8))
    with torch.no_grad():
        expected = ours(x)

    scripted = torch.jit.load(str(client.export(job_id, "torchscript", 1, tmp_path / "m.pt")))
    with torch.no_grad():
        assert torch.allclose(scripted(x), expected, atol=1e-5, rtol=0)

    onnx_path = client.export(job_id, "onnx", 1, tmp_path)  # a folder: the server's name
    assert onnx_path.name == f"digits-standalone-job{job_id}-rank1.onnx"
    head = client._http.get(f"/api/v1/jobs/{job_id}/export", params={"format": "onnx"})
    assert head.headers[WEIGHTS_HEADER] == "trained"
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": x.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)

    with zipfile.ZipFile(client.export(job_id, "pytorch", 1, tmp_path / "m.zip")) as archive:
        assert sorted(archive.namelist()) == ["architecture.json", "model.py", "weights.pt"]
        archive.extractall(tmp_path / "pytorch")
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec((tmp_path / "pytorch/model.py").read_text(), namespace)  # noqa: S102
    net = namespace["build"](str(tmp_path / "pytorch/weights.pt")).eval()
    with torch.no_grad():
        assert torch.allclose(net(x), expected, atol=1e-5, rtol=0)

    card = client.export(job_id, "model-card", 1, tmp_path / "card.md").read_text()
    assert card.startswith("# Model card") and "Weights: trained" in card
    assert f"| Inputs | {doc['inputs']} |" in card
    source = " ".join((tmp_path / "pytorch/model.py").read_text().split())
    assert f"Inputs: {doc['inputs']}." in source
    assert f"{final['test_accuracy']:.2f}" in card

    exports = _artifacts(server, job_id, "export")
    assert len(exports) == 5 and all((artifacts / a.path).is_file() for a in exports)
    assert all(a.path.startswith(f"jobs/{job_id}/exports/") for a in exports)
    client.export(job_id, "onnx", 1, tmp_path / "again.onnx")  # served again, not re-recorded
    assert len(_artifacts(server, job_id, "export")) == 5

    # Rank 2 has no weights: torchscript is refused with the way to get them ...
    err = _error(lambda: client.export(job_id, "torchscript", 2, tmp_path / "r2.pt"))
    assert err.status_code == 409 and f"nas retrain {job_id} --rank 2" in str(err)
    doc2 = json.loads(client.export(job_id, "json", 2, tmp_path / "r2.json").read_text())
    assert (
        doc2["weights"].startswith("none") and f"nas retrain {job_id} --rank 2" in (doc2["weights"])
    )
    assert doc2["final"] is None and doc2["architecture"] != doc["architecture"]

    # ... which retraining gives, recorded as the next trial of the job.
    before = client.job(job_id)
    started = client.retrain(job_id, rank=2)
    assert started["trial_number"] == before["n_trials"] and started["state"] == "RUNNING"
    assert started["architecture"] == doc2["architecture"]
    trial = client.wait_trial(started["trial_id"], timeout=60)
    assert trial["state"] == "COMPLETE", trial["error"]
    assert 0.0 <= trial["metrics"]["test_accuracy"] <= 100.0 and trial["objective"] is None
    after = client.job(job_id)
    assert after["n_trials"] == before["n_trials"] + 1
    assert after["trial_states"]["COMPLETE"] == before["trial_states"]["COMPLETE"] + 1
    numbers = [t["number"] for t in client.all_trials(job_id)]
    assert numbers == list(range(after["n_trials"]))
    assert after["summary"]["final"][-1]["trial"] == trial["number"]
    assert len(_artifacts(server, job_id, "final_weights")) == 2
    assert client.job(job_id)["best"] == before["best"]  # test accuracy is no objective
    scripted = torch.jit.load(str(client.export(job_id, "torchscript", 2, tmp_path / "r2.pt")))
    doc2 = json.loads(client.export(job_id, "json", 2, tmp_path / "r2.json").read_text())
    assert doc2["final"]["test_accuracy"] == trial["metrics"]["test_accuracy"]

    # The CLI streams the same download.
    auth = ["--server", server.url, "--api-key", user_key]
    out = tmp_path / "cli.onnx"
    args = ["export", str(job_id), "--format", "onnx", "--rank", "2", "-o", str(out), *auth]
    assert main(args) == 0
    onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    # The CLI retrains (and waits), then deletes: rows and files go.
    capsys.readouterr()
    assert main(["retrain", str(job_id), "--rank", "1", *auth]) == 0
    assert "retrained: test_accuracy=" in capsys.readouterr().out
    assert _rows(server, job_id)["artifacts"] == 3 + 9  # weights, exports
    folder = artifacts / "jobs" / str(job_id)
    assert (folder / "final").is_dir() and (folder / "exports").is_dir()
    assert main(["delete", str(job_id), *auth]) == 0
    assert _rows(server, job_id) == dict.fromkeys(_rows(server, job_id), 0)
    assert not folder.exists()
    assert _error(lambda: client.job(job_id)).status_code == 404
    assert _error(lambda: client.delete(job_id)).status_code == 404


def test_a_joint_jobs_export_shows_the_recipe_its_weights_were_trained_with(
    client: NasClient, tmp_path: Path
) -> None:
    """final: retrains with the ranking trial's optimizer and lr over its own; the export's
    recipe (JSON and model card) showed final:'s adam / 0.001 beside weights trained by SGD."""
    hparams = {
        "optimizer": {"type": "categorical", "choices": ["sgd"]},
        "lr": {"type": "float", "low": 0.02, "high": 0.03},
        "momentum": {"type": "float", "low": 0.5, "high": 0.6},
    }
    spec = standalone_spec(trials=2, epochs=1, hparams=hparams, final={"epochs": 1})
    job = client.wait(_submit(client, spec), timeout=60)
    assert job["state"] == "SUCCEEDED", job["reason"]
    used = job["summary"]["final"][0]["hparams"]
    doc = json.loads(client.export(job["id"], "json", 1, tmp_path / "best.json").read_text())
    recipe = doc["final"]["recipe"]
    assert recipe["optimizer"] == "sgd" and recipe["lr"] == used["lr"] != 0.001
    assert recipe["momentum"] == used["momentum"] and recipe["epochs"] == 1
    assert recipe["batch_size"] == 128  # final:'s own, which no hyperparameter set
    card = client.export(job["id"], "model-card", 1, tmp_path / "card.md").read_text()
    assert "| final.optimizer | sgd |" in card and "| final.optimizer | adam |" not in card


def test_tabular_job_exports_the_architecture_but_cannot_train(
    server: LiveServer, client: NasClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = client.wait(_submit(client, nb201_spec(budget={"trials": 30})), timeout=60)
    job_id = job["id"]
    assert job["state"] == "SUCCEEDED"
    doc = json.loads(client.export(job_id, path=tmp_path / "a.json").read_text())
    assert doc["architecture"] == job["summary"]["best"]["architecture"]
    # a format in any case, as a state filter (format="JSON" was a 422)
    same = client.export(job_id, "JSON", path=tmp_path / "A.json").read_bytes()
    assert same == (tmp_path / "a.json").read_bytes()
    assert doc["input_shape"] == [3, 32, 32] and doc["num_classes"] == 10
    assert doc["weights"].startswith("none") and "tabular" in doc["weights"]
    assert doc["metrics"]["val_accuracy"] == job["best"]["value"]
    count = doc["ranked_architectures"]
    assert 1 < count <= 30

    for fmt in ("torchscript", "onnx"):
        err = _error(lambda fmt=fmt: client.export(job_id, fmt, 1, tmp_path / "x"))
        assert err.status_code == 409
        assert "tabular" in str(err) and "format=pytorch" in str(err)
        assert "untrained=true" in str(err)
    err = _error(lambda: client.retrain(job_id, 1))
    assert err.status_code == 422 and "cannot be retrained" in str(err) and "tabular" in str(err)
    # The rank is a query parameter: a JSON body naming one was ignored (rank 1 retrained).
    retrain = f"/api/v1/jobs/{job_id}/retrain"
    said = client._http.post(retrain, json={"rank": 2})
    assert said.status_code == 422, said.text
    assert said.json()["detail"][0]["loc"] == ["body"] and "?rank=2" in said.text
    for empty in ({}, None, "{ }", "null\n"):  # says nothing: the job's own problem answers
        sent = {"json": empty} if not isinstance(empty, str) else {"content": empty}
        answer = client._http.post(retrain, **sent)
        assert answer.status_code == 422 and "cannot be retrained" in answer.text
    # without a key: a 401 first, the body unread (it was a 422 naming the body)
    stranger = httpx.post(f"{client.server}{retrain}", json={"rank": 2})
    assert stranger.status_code == 401, stranger.text
    assert client.job(job_id)["n_trials"] == 30  # nothing recorded

    # A bundle or card without trained weights says so (it came without a word: the probe
    # of a new user's tasks); the bare graph asked for, or json, does not warn.
    untrained = f"job {job_id} rank {count}: the exported network has random weights"
    with pytest.warns(UntrainedExportWarning, match=untrained):
        card = client.export(job_id, "model-card", count, tmp_path / "card.md").read_text()
    assert "Weights: none" in card and "search's estimates" in card
    with pytest.warns(UntrainedExportWarning, match=f"job {job_id} rank 2: "):
        bundle = client.export(job_id, "pytorch", 2, tmp_path / "m.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["architecture.json", "model.py"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedExportWarning)
        client.export(job_id, "pytorch", 2, tmp_path / "bare.zip", untrained=True)
        client.export(job_id, "json", 2, tmp_path / "2.json")
    head = client._http.get(f"/api/v1/jobs/{job_id}/export", params={"format": "pytorch"})
    assert head.headers[WEIGHTS_HEADER] == "untrained"
    head = client._http.get(f"/api/v1/jobs/{job_id}/export", params={"format": "json"})
    assert WEIGHTS_HEADER not in head.headers
    graph = client.export(job_id, "torchscript", 1, tmp_path / "g.pt", untrained=True)
    assert torch.jit.load(str(graph))(_input((3, 32, 32))).shape == (1, 10)
    # downloaded into a folder, its name says the weights are random
    named = client.export(job_id, "torchscript", 1, f"{tmp_path}/into/", untrained=True)
    assert named.name == f"nb201-random-job{job_id}-rank1-untrained.pt"

    # Bad requests: clear 4xx answers.
    for rank in (0, count + 1):
        err = _error(lambda rank=rank: client.export(job_id, "json", rank, tmp_path / "x"))
        assert err.status_code == 422 and f"valid: 1..{count}" in str(err)
    err = _error(lambda: client.export(job_id, "keras", 1, tmp_path / "x"))
    assert err.status_code == 422 and err.detail[0]["loc"] == ["query", "format"]
    assert all(f"'{name}'" in str(err) for name in ("json", "pytorch", "onnx", "model-card"))
    monkeypatch.setattr(Nb201Space, "network_class", None)  # as if nb201 built no network
    err = _error(lambda: client.export(job_id, "pytorch", 1, tmp_path / "x"))
    assert err.status_code == 422 and "cannot export to pytorch" in str(err)
    monkeypatch.undo()

    for call in (
        lambda: client.export(job_id + 100, "json", 1, tmp_path / "x"),
        lambda: client.retrain(job_id + 100, 1),
        lambda: client.delete(job_id + 100),
    ):
        err = _error(call)
        assert err.status_code == 404 and "not found" in str(err)
    with server.client(server.create_key("user-b")) as other:
        for call in (
            lambda: other.export(job_id, "json", 1, tmp_path / "x"),
            lambda: other.retrain(job_id, 1),
            lambda: other.delete(job_id),
        ):
            assert _error(call).status_code == 404
    assert not (tmp_path / "x").exists()
    with server.client(server.create_key("admin", admin=True)) as admin:
        admin.delete(job_id)  # an admin may delete anyone's job
    assert _rows(server, job_id)["trials"] == 0


def test_ties_of_a_first_objective_rank_by_the_others_in_every_read(
    client: NasClient, tmp_path: Path
) -> None:
    """Size first, accuracy second: NAS-Bench-201 cells tie on size. The job's best, /best
    and the export ranks (the summary's rank 1, then the database's ranking) order tied
    trials by accuracy; they ranked the tied trial tried first, dominated, as the best."""
    objective = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "maximize"]}
    spec = nb201_spec(budget={"trials": 80}, objective=objective, seed=4)
    job = client.wait(_submit(client, spec), timeout=60)
    assert job["state"] == "SUCCEEDED"
    best_of: dict[str, tuple[float, float, int]] = {}  # architecture -> its best trial's key
    for t in client.all_trials(job["id"]):
        if t["state"] == "COMPLETE":
            key = (t["metrics"]["params_M"], -t["metrics"]["val_accuracy"], t["number"])
            arch = json.dumps(t["architecture"], sort_keys=True)
            best_of[arch] = min(best_of.get(arch, key), key)
    expected = sorted(best_of.values(), key=lambda k: (k[0], k[1]))  # (ties: tried first)
    assert expected[0][0] == expected[1][0]  # (what the test needs: a tie at the top)
    assert job["best"]["trial_number"] == expected[0][2]
    assert job["best"]["trial_number"] in {p["trial"] for p in job["summary"]["pareto"]}
    ranked_trials = [n for *_, n in sorted(_all_keys(client, job["id"]))]
    assert [t["number"] for t in client.best(job["id"], k=5)] == ranked_trials[:5]
    for rank in range(1, 9):
        doc = json.loads(client.export(job["id"], "json", rank, tmp_path / "a.json").read_text())
        got = (doc["metrics"]["params_M"], -doc["metrics"]["val_accuracy"])
        assert got == expected[rank - 1][:2], rank
    # The model card says which metric the search ranked by (it named val_accuracy always).
    with pytest.warns(UntrainedExportWarning):  # (a table job: no weights)
        card = client.export(job["id"], "model-card", 1, tmp_path / "card.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in card.splitlines() if " | " in line}
    assert rows["params_M"].endswith("what the search ranked by (minimize) |")
    assert "objective 2 of 2 (maximize): it breaks ties" in rows["val_accuracy"]
    assert card.count("ranked by") == 1


def _all_keys(client: NasClient, job_id: int) -> list[tuple[float, float, int]]:
    """(size, -accuracy, number) of each completed trial."""
    return [
        (t["metrics"]["params_M"], -t["metrics"]["val_accuracy"], t["number"])
        for t in client.all_trials(job_id)
        if t["state"] == "COMPLETE"
    ]


def test_a_job_where_no_candidate_was_feasible_says_so_and_exports_nothing(
    client: NasClient, tmp_path: Path
) -> None:
    """Every candidate breaks the constraint: the job ends SUCCEEDED (the search ran as
    asked) with a warning, and an export says the job ended without a completed trial."""
    spec = nb201_spec(
        objective={"metric": "val_accuracy", "direction": "maximize",
                   "constraints": {"max_flops": 1}},
        budget={"trials": 5000},
    )  # fmt: skip
    job = client.wait(_submit(client, spec), timeout=120)
    assert job["state"] == "SUCCEEDED" and "no feasible candidate" in job["reason"]
    assert job["best"] is None and set(job["trial_states"]) == {"PRUNED"}
    (warning,) = job["warnings"]
    assert warning.startswith(f"no trial completed ({job['n_trials']} PRUNED)")
    err = _error(lambda: client.export(job["id"], "json", 1, tmp_path / "x.json"))
    assert err.status_code == 409
    assert f"job {job['id']} ended SUCCEEDED without a completed trial" in str(err)


def test_queued_and_running_jobs(
    server_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server: LiveServer = server_factory(max_running_jobs=1)
    key = server.create_key("a")
    with server.client(key) as client:
        long_job = _submit(client, standalone_spec(trials=500, epochs=2))
        wait_for(lambda: client.job(long_job)["state"] == "RUNNING", timeout=30)
        queued = _submit(client, standalone_spec())  # waits: one job at a time
        assert client.job(queued)["state"] == "QUEUED"

        err = _error(lambda: client.export(queued, "json", 1, tmp_path / "x"))
        assert err.status_code == 409 and "no completed trial" in str(err)
        err = _error(lambda: client.retrain(queued, 1))
        assert err.status_code == 409 and "once it has finished" in str(err)
        err = _error(lambda: client.delete(long_job))
        assert err.status_code == 409 and f"nas cancel {long_job}" in str(err)

        # A running job's best so far exports; it cannot be retrained yet.
        wait_for(lambda: client.job(long_job)["trial_states"].get("COMPLETE"), timeout=30)
        doc = json.loads(client.export(long_job, "json", 1, tmp_path / "r.json").read_text())
        assert doc["rank"] == 1 and doc["weights"].startswith("none")
        assert "once it has finished, retrain it" in doc["weights"]
        assert _error(lambda: client.retrain(long_job, 1)).status_code == 409
        # nas export's note says so too (it said "'nas retrain' trains it": a 409 now)
        capsys.readouterr()
        auth = ["--server", server.url, "--api-key", key]
        out = str(tmp_path / "r.zip")
        assert main(["export", str(long_job), "--format", "pytorch", "-o", out, *auth]) == 0
        note = capsys.readouterr().err
        assert f"the job still runs: 'nas retrain {long_job} --rank 1' once it has finished" in note

        client.delete(queued)  # never started: deleted at once
        assert _rows(server, queued)["jobs"] == 0
        # cancelled before it started: nothing to retrain, said where the dashboard looks
        # (retrain_refused was null while POST /retrain answered 409)
        cancelled = _submit(client, standalone_spec())
        assert client.cancel(cancelled)["state"] == "CANCELLED"
        refused = client.job(cancelled)["retrain_refused"]
        assert refused == (
            f"job {cancelled} ended CANCELLED without a completed trial: there is nothing to "
            "retrain"
        )
        assert "json" in client.job(cancelled)["export_formats"]  # (what the space exports)
        err = _error(lambda: client.retrain(cancelled, 1))
        assert err.status_code == 409 and "without a completed trial" in str(err)
        client.cancel(long_job)
        assert client.wait(long_job, timeout=30)["state"] == "CANCELLED"
        # the same export again: written anew for the job's new state, not served as cached
        doc = json.loads(client.export(long_job, "json", 1, tmp_path / "r.json").read_text())
        assert doc["weights"] == f"none, freshly initialised; run 'nas retrain {long_job} --rank 1'"
        client.delete(long_job)
        assert _rows(server, long_job) == dict.fromkeys(_rows(server, long_job), 0)
        assert not (server.settings.resolved_artifacts_dir() / "jobs" / str(long_job)).exists()


def test_a_job_whose_data_file_now_leads_out_of_the_roots_is_not_retrained(
    client: NasClient, server: LiveServer, tmp_path: Path
) -> None:
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "data.npz"
    arrays = {"x": np.zeros((40, 16), np.float32), "y": np.arange(40) % 2}
    np.savez(data, **arrays)
    spec = standalone_spec(trials=1, epochs=1, dataset={"name": "npz", "path": str(data)})
    job_id = client.submit(spec)["id"]
    assert client.wait(job_id, timeout=60)["state"] == "SUCCEEDED"
    assert client.job(job_id)["retrain_refused"] is None
    outside = tmp_path / "outside.npz"
    np.savez(outside, **arrays)
    data.unlink()
    data.symlink_to(outside)
    # The job read says so beforehand (it said null: the dashboard offered Retrain best)
    refused = client.job(job_id)["retrain_refused"]
    assert "dataset.path no longer lies under this server's data roots" in refused, refused
    err = _error(lambda: client.retrain(job_id, 1))
    assert err.status_code == 409
    assert "not readable here: dataset.path no longer lies under this server's data roots" in str(
        err
    )
    assert client.job(job_id)["n_trials"] == 1  # nothing recorded
    # A chart that reads no file still answers; the drawing reads the dataset's shape.
    assert client._http.get(f"/api/v1/jobs/{job_id}/parallel").status_code == 200
    trial_id = next(iter(client.all_trials(job_id)))["id"]
    drawing = client._http.get(f"/api/v1/trials/{trial_id}/drawing")
    assert drawing.status_code == 409 and "dataset.path no longer lies under" in drawing.text


def test_weights_that_no_longer_fit_the_jobs_data_are_a_409_that_says_retrain(
    client: NasClient, server: LiveServer
) -> None:
    """A job's data file rewritten with more classes since its retraining: its exports
    answered 422 at --format with PyTorch's state_dict text; the request was fine, the
    weights no longer fit the network its spec now builds."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "classes.npz"
    x = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    np.savez(data, x=x, y=np.arange(60) % 3)
    spec = standalone_spec(
        trials=1, epochs=1, dataset={"name": "npz", "path": str(data)}, final={"epochs": 1}
    )
    job_id = client.submit(spec)["id"]
    assert client.wait(job_id, timeout=120)["state"] == "SUCCEEDED"
    np.savez(data, x=x, y=np.arange(60) % 7)  # seven classes now
    # A job that records what its file held (``summary.data_files``) says the file changed
    # (see the test below); one stored before it did, that its weights no longer fit.
    with session_scope(server.app.state.nas.write) as session:
        job = JobRepository(session).get(job_id)
        assert job is not None and "dataset.path" in job.summary["data_files"]
        job.summary = {k: v for k, v in job.summary.items() if k != "data_files"}
    for fmt in ("pytorch", "onnx"):
        err = _error(
            lambda fmt=fmt: client._request(
                "GET", f"/api/v1/jobs/{job_id}/export", params={"format": fmt}
            )
        )
        assert err.status_code == 409, str(err)
        assert "do not fit the network its spec builds now" in str(err)
        assert f"nas retrain {job_id} --rank 1" in str(err)
        assert "state_dict" not in str(err)


def test_a_data_file_replaced_since_the_search_is_refused_for_retraining_and_export(
    client: NasClient, server: LiveServer
) -> None:
    """A job's data file overwritten after its search (other examples, shapes and classes):
    a retraining trained and tested on the new data without a word, rewrote the job's
    rank-1 figures, and exports took the new shapes (the probe of retraining). A file only
    touched since, its contents the same, is still the job's."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "replaced.npz"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16)).astype(np.float32)
    np.savez(data, x=x, y=np.arange(60) % 3)
    spec = standalone_spec(trials=2, epochs=1, dataset={"name": "npz", "path": str(data)})
    job_id = client.submit(spec)["id"]
    job = client.wait(job_id, timeout=120)
    assert job["state"] == "SUCCEEDED" and job["retrain_refused"] is None
    recorded = job["summary"]["data_files"]["dataset.path"]
    assert recorded["size"] == data.stat().st_size and len(recorded["sha256"]) == 64
    os.utime(data, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: the same data
    assert client.job(job_id)["retrain_refused"] is None
    client._request("GET", f"/api/v1/jobs/{job_id}/export", params={"format": "json"})
    np.savez(data, x=rng.normal(size=(50, 3, 4)).astype(np.float32), y=np.arange(50) % 5)
    said = f"job {job_id}'s dataset.path: the file changed since the search (other contents)"
    assert said in client.job(job_id)["retrain_refused"]
    err = _error(lambda: client.retrain(job_id, 1))
    assert err.status_code == 409 and said in str(err)
    err = _error(
        lambda: client._request("GET", f"/api/v1/jobs/{job_id}/export", params={"format": "json"})
    )
    assert err.status_code == 409 and said in str(err)
    assert client.job(job_id)["n_trials"] == 2  # nothing recorded


def test_a_retraining_on_another_server_blocks_deletion_until_its_heartbeat_stops(
    server_factory: Any,
) -> None:
    """Deleting a job whose retraining another server ran answered 204 and dropped that
    retraining; a retraining whose server died elsewhere, once its lease is over, no longer
    blocks anything."""
    server: LiveServer = server_factory(job_lease_s=1.0)
    with server.client(server.create_key("a")) as client:
        job_id = client.wait(_submit(client, nb201_spec(budget={"trials": 5})), timeout=60)["id"]
        with session_scope(server.app.state.nas.write) as session:  # as another machine's
            TrialRepository(session).add_running(
                job_id,
                [RunningTrial(5, -1, Architecture("nb201", (0,) * 6), {}, time.time(),
                              "elsewhere:4242:retrain")],
            )  # fmt: skip
        err = _error(lambda: client.delete(job_id))
        assert err.status_code == 409 and "a retraining of job" in str(err)
        time.sleep(1.2)  # its heartbeat is never renewed: past the lease
        client.delete(job_id)
        assert _error(lambda: client.job(job_id)).status_code == 404


def test_an_export_during_a_retraining_says_to_wait_for_it(
    client: NasClient, server: LiveServer
) -> None:
    """The weights note said "run 'nas retrain'" while a retraining ran, which the server
    refuses (409) until it ends."""
    job_id = client.wait(_submit(client, standalone_spec(trials=2, epochs=1)), timeout=60)["id"]
    with session_scope(server.app.state.nas.write) as session:  # as another machine's
        TrialRepository(session).add_running(
            job_id,
            [RunningTrial(2, -1, Architecture("enas-macro", (0,) * 4), {}, time.time(),
                          "elsewhere:4242:retrain")],
        )  # fmt: skip
    doc = client._request("GET", f"/api/v1/jobs/{job_id}/export")
    assert doc["weights"] == (
        "none, freshly initialised; a retraining of this job is running (trial 2); export "
        "again when it has finished"
    )


def test_retrained_weights_missing_here_are_a_409_that_says_where(
    client: NasClient, server: LiveServer, tmp_path: Path
) -> None:
    """A server whose artifacts folder lacks the job's retrained weights (another server's
    NAS_DATA_DIR) exported the pytorch bundle with random weights, and refused TorchScript
    with "retrain it first", although the job lists its weights."""
    spec = standalone_spec(trials=2, epochs=1, final={"epochs": 1})
    job = client.wait(_submit(client, spec), timeout=60)
    assert job["state"] == "SUCCEEDED", job["reason"]
    weights = job["summary"]["final"][0]["weights"]
    (server.settings.resolved_artifacts_dir() / weights).unlink()
    for fmt in ("pytorch", "torchscript"):
        err = _error(lambda fmt=fmt: client.export(job["id"], fmt, 1, tmp_path / "x"))
        assert err.status_code == 409, str(err)
        assert f"({weights}) are not in this server's artifacts folder" in str(err)
    doc = json.loads(client.export(job["id"], "json", 1, tmp_path / "best.json").read_text())
    assert doc["rank"] == 1  # the architecture itself still exports


def test_a_download_opened_before_the_jobs_delete_sends_the_whole_file(tmp_path: Path) -> None:
    """The download was a FileResponse, which opened the path once the answer was under
    way: a delete moving the job's folder aside between the two made it a 500, or a 200
    whose body broke off. The file is now opened first."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from fastapi import HTTPException

    from api.routes.exports import _download

    folder = tmp_path / "jobs" / "7" / "exports"
    folder.mkdir(parents=True)
    data = bytes(range(256)) * 9000  # more than one chunk
    (folder / "rank1-pytorch.zip").write_bytes(data)
    response = _download(folder / "rank1-pytorch.zip", "application/zip", "job7 é.zip", 7)
    (tmp_path / "jobs" / "7").rename(tmp_path / "jobs" / ".deleting-7")  # the delete
    for path in (tmp_path / "jobs" / ".deleting-7").rglob("*"):
        if path.is_file():
            path.unlink()

    async def body() -> bytes:
        return b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]

    with ThreadPoolExecutor(1) as thread:  # (a loop of its own: pytest's may be running here)
        assert thread.submit(asyncio.run, body()).result(timeout=60) == data
    assert response.headers["content-length"] == str(len(data))
    assert (
        response.headers["content-disposition"] == "attachment; filename*=utf-8''job7%20%C3%A9.zip"
    )
    with pytest.raises(HTTPException) as gone:  # gone before it was opened: the job is
        _download(folder / "rank1-pytorch.zip", "application/zip", "x.zip", 7)
    assert gone.value.status_code == 404


def test_a_format_failing_on_the_folder_its_jobs_delete_moved_aside_is_a_404(
    server: LiveServer, client: NasClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ONNX export racing the job's delete answered 422 at query.format with the
    server's temporary path (the probe of lifecycle operations): the exporter wraps the
    missing folder in its own error. The delete made certain: the folder moves aside
    while the format writes."""
    from nas.errors import ExportError
    from nas.export.formats.onnx import OnnxFormat

    job_id = client.wait(_submit(client, nb201_spec(budget={"trials": 5})), timeout=60)["id"]
    folder = server.settings.resolved_artifacts_dir() / "jobs" / str(job_id)

    def deleted_meanwhile(self: Any, ctx: Any, path: Path) -> Path:
        folder.rename(folder.with_name(f".deleting-{job_id}"))
        raise ExportError(f"ONNX export failed: [Errno 2] No such file or directory: '{path}'")

    monkeypatch.setattr(OnnxFormat, "write", deleted_meanwhile)
    err = _error(lambda: client.export(job_id, "onnx", 1, tmp_path / "x", untrained=True))
    assert err.status_code == 404 and err.detail == f"job {job_id} not found", err
    assert not folder.exists()  # (the folders made for the write are not left behind)


def test_exports_and_retrains_racing_the_jobs_delete_answer_200_or_404(
    server: LiveServer, client: NasClient, user_key: str
) -> None:
    """Exports and retrains sent while the job was being deleted: 500s (a file gone under
    the answer, a folder moved aside under a write, a ranking whose trials went between two
    reads, a lock on a row deleted meanwhile), 200s whose body broke off, and the export
    folders made again after the delete left behind."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    artifacts = server.settings.resolved_artifacts_dir()
    exports = [("pytorch", 1), ("model-card", 1), ("json", 2), ("pytorch", 3), ("json", 1)]
    answers: list[tuple[str, int]] = []

    def send(method: str, path: str, pause: float, **params: Any) -> int:
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {user_key}"}) as http:  # fmt: skip
            start.wait()
            time.sleep(pause)
            return http.request(method, path, params=params).status_code

    for seed in range(4):
        job = client.wait(
            client.submit(nb201_spec(budget={"trials": 60}, seed=seed))["id"], timeout=60
        )
        at = f"/api/v1/jobs/{job['id']}"
        start = threading.Barrier(len(exports) + 2)
        rng = random.Random(seed)
        with ThreadPoolExecutor(len(exports) + 2) as pool:
            futures = {
                pool.submit(send, "GET", f"{at}/export", rng.random() * 0.3, format=f, rank=r): (
                    "export"
                )
                for f, r in exports
            }
            futures[pool.submit(send, "POST", f"{at}/retrain", rng.random() * 0.3)] = "retrain"
            futures[pool.submit(send, "DELETE", at, 0.1 + rng.random() * 0.15)] = "delete"
            answers += [(what, future.result(timeout=120)) for future, what in futures.items()]
        assert not (artifacts / "jobs" / str(job["id"])).exists(), answers[-7:]
    assert all(status < 500 for _, status in answers), answers
    assert {status for what, status in answers if what == "export"} <= {200, 404}, answers
