"""A meta-learning job over real HTTP (SQLite and PostgreSQL): its best architecture's
meta-learned weights are a file of the job, and its exports are made from them (json notes
it, the pytorch bundle ships them with Meta-SGD's rates and ``adapt``, TorchScript and ONNX
are no longer refused for want of weights)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from sqlalchemy import select

from api.client import ApiError, NasClient
from api.models import ArtifactModel
from nas.metalearning import META_WEIGHTS_FILE, MetaWeights
from tests.api.conftest import LiveServer, wait_for

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

SPEC: dict[str, Any] = {
    "name": "sine-metasgd",
    "dataset": {"name": "sinusoid", "x_range": [-4.5, 4.5]},  # (the exports say so)
    "space": {"name": "mlp", "max_layers": 2, "widths": [20, 40]},
    "controller": {"name": "random"},
    "evaluator": {
        "name": "metasgd",
        "meta_iterations": 10,
        "meta_batch": 4,
        "inner_lr": 0.05,
        "val_tasks": 5,
        "test_tasks": 10,
        "eval_points": 20,
        "eval_steps": 2,
        "final_steps": [1, 2],
    },
    "objective": {"metric": "meta_val_mse", "direction": "minimize"},
    "budget": {"trials": 2},
    "seed": 5,
}


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    threads = torch.get_num_threads()
    monkeypatch.setenv("NAS_TORCH_THREADS", "1")
    yield
    torch.set_num_threads(threads)


def _submit(client: NasClient, spec: dict[str, Any]) -> int:
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


def test_a_meta_learning_job_exports_its_meta_learned_weights(
    server: LiveServer, client: NasClient, tmp_path: Path
) -> None:
    job = client.wait(_submit(client, SPEC), timeout=120)
    job_id = job["id"]
    assert job["state"] == "SUCCEEDED", job
    assert job["summary"]["files"] == [{"name": META_WEIGHTS_FILE, "kind": "meta_weights"}]
    # sorted by what its (regression) trials hold; by the accuracy of classification
    # episodes, a 422 (it was number order: a sort by a value no trial holds)
    by_mse = client.trials(job_id, sort="meta_val_mse")["data"]
    assert [t["metrics"]["meta_val_mse"] for t in by_mse] == sorted(
        t["metrics"]["meta_val_mse"] for t in by_mse
    )
    with pytest.raises(ApiError) as refused:
        client.trials(job_id, sort="meta_val_accuracy")
    assert refused.value.status_code == 422
    assert refused.value.detail[0]["msg"] == (
        f"job {job_id}'s trials hold no 'meta_val_accuracy' (its dataset 'sinusoid'); valid: "
        "number, objective, meta_val_mse, meta_train_loss, params"
    )  # (flops and latency_ms are held only under their constraints, which it sets none of)
    artifacts = server.settings.resolved_artifacts_dir()
    with server.app.state.nas.read() as session:
        rows = session.scalars(
            select(ArtifactModel).where(
                ArtifactModel.job_id == job_id, ArtifactModel.kind == "meta_weights"
            )
        ).all()
        assert [row.path for row in rows] == [f"jobs/{job_id}/files/{META_WEIGHTS_FILE}"]
    meta = MetaWeights.load(artifacts / rows[0].path)
    assert meta.architecture == job["summary"]["best"]["architecture"]
    assert meta.rates is not None and meta.lr is None and meta.steps == 2

    doc = json.loads(client.export(job_id, "json", 1, tmp_path / "a.json").read_text())
    assert doc["weights"].startswith("meta-learned by the search (metasgd)")
    # the job's own input range (every export said the default's "x in [-5, 5]")
    assert doc["inputs"].startswith("one number x in [-4.5, 4.5], shape (1,)"), doc["inputs"]
    assert "(A in [0.1, 5], phi in [0, 3.14159265359])" in doc["inputs"]
    assert (
        doc["metrics"]["meta_test_mse_2step"]
        == job["summary"]["best"]["final_metrics"]["meta_test_mse_2step"]
    )
    # how the weights adapt, without the bundle: the algorithm, steps, step size, task size
    assert doc["adaptation"] == {
        "algorithm": "metasgd",
        "loss": "mse",
        "steps": 2,
        "lr": None,
        "shots": 5,
        "ways": None,
        "rates": "learned per parameter: rates.pt in the pytorch bundle",
    }

    bundle = client.export(job_id, "pytorch", 1, tmp_path / "m.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == [
            "architecture.json",
            "model.py",
            "rates.pt",
            "weights.pt",
        ]
        archive.extractall(tmp_path / "bundle")
    namespace: dict[str, Any] = {"__name__": "exported_model"}
    exec((tmp_path / "bundle" / "model.py").read_text(), namespace)  # noqa: S102
    net = namespace["build"](str(tmp_path / "bundle" / "weights.pt"))
    for name, value in net.state_dict().items():
        assert torch.equal(value, meta.weights[name])
    x = torch.linspace(-5, 5, 10)[:, None]
    y = 2.0 * torch.sin(x - 0.5)
    adapted = namespace["adapt"](net, x, y, rates=str(tmp_path / "bundle" / "rates.pt"))
    with torch.no_grad():
        assert float(((adapted(x) - y) ** 2).mean()) < float(((net(x) - y) ** 2).mean())

    # TorchScript and ONNX need trained weights: the meta-learned ones are.
    script = client.export(job_id, "torchscript", 1, tmp_path / "g.pt")
    graph = client.export(job_id, "onnx", 1, tmp_path / "g.onnx")
    want = torch.jit.load(str(script))(x).detach().numpy()
    onnx = onnxruntime.InferenceSession(str(graph)).run(None, {"input": x.numpy()})[0]
    assert np.allclose(onnx, want, atol=1e-5)
    with torch.no_grad():
        assert np.allclose(net(x).numpy(), want, atol=1e-5)
    card = client.export(job_id, "model-card", 1, tmp_path / "card.md").read_text()
    assert "Weights: meta-learned" in card and "nas retrain" not in card
    assert f"| Inputs | {doc['inputs']} |" in card
    source = " ".join((tmp_path / "bundle" / "model.py").read_text().split())
    assert f"Inputs: {doc['inputs']}." in source
    # each metric says what it is for this job: its 10 meta-test tasks, its step counts
    rows = {line.split(" | ")[0].strip("| "): line for line in card.splitlines() if " | " in line}
    assert (
        "mean squared error, mean over 10 meta-test tasks, after 2 adaptation"
        in rows["meta_test_mse_2step"]
    )
    assert "| gradient steps on the support set | 2 |" in card
    assert "| step size | learned per parameter (rates.pt) |" in card


def test_a_metric_based_job_offers_the_exports_it_can_make(
    client: NasClient, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """A Prototypical Networks job's torchscript and onnx answered 409 (its network's forward
    pass ends in a classifier it never trains); they now hold its learned embedding, say so,
    and answer what model.py's embedder does. Matching Networks with full-context embeddings
    (LSTMs over a whole support set, which no per-example graph holds) does not list them and
    gets a 409 naming the export that has them. Its pytorch bundle carries the meta-learned
    embedding (it was freshly initialised) and ``classify``."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    job = client.wait(_submit(client, _fewshot_spec("protonet")), timeout=time_left(120))
    assert job["state"] == "SUCCEEDED", job
    assert job["export_formats"] == ["json", "pytorch", "torchscript", "onnx", "model-card"]
    doc = json.loads(client.export(job["id"], "json", 1, tmp_path / "a.json").read_text())
    assert doc["weights"].startswith("meta-learned by the search (protonet): the network up")
    assert "TorchScript and ONNX hold the embedding (output `embedding`" in doc["weights"]
    assert doc["adaptation"] == {
        "algorithm": "protonet",
        "loss": "cross_entropy",
        "comparison": {"kind": "prototypes"},
        "shots": 1,
        "ways": 3,
    }
    script = client.export(job["id"], "torchscript", 1, tmp_path / "g.pt")
    files = {"nas.embedding.json": ""}
    traced = torch.jit.load(str(script), _extra_files=files)
    described = json.loads(files["nas.embedding.json"])
    assert (described["output"], described["comparison"]) == ("embedding", {"kind": "prototypes"})
    assert (described["ways"], described["shots"], described["batch_statistics"]) == (3, 1, True)
    graph = client.export(job["id"], "onnx", 1, tmp_path / "g.onnx")
    session = onnxruntime.InferenceSession(str(graph))
    assert [output.name for output in session.get_outputs()] == ["embedding"]

    bundle = client.export(job["id"], "pytorch", 1, tmp_path / "m.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["architecture.json", "model.py", "weights.pt"]
        archive.extractall(tmp_path / "bundle")
    namespace: dict[str, Any] = {"__name__": "exported_model"}
    exec((tmp_path / "bundle" / "model.py").read_text(), namespace)  # noqa: S102
    net = namespace["build"](str(tmp_path / "bundle" / "weights.pt"))
    # one example per class: each is its own class's prototype, so a query equal to a
    # support example is labelled as that example
    g = torch.Generator().manual_seed(0)
    support = torch.rand(3, *namespace["INPUT_SHAPE"], generator=g)
    labels = torch.tensor([2, 0, 1])
    log_probs = namespace["classify"](net, support, labels, support)
    assert log_probs.argmax(dim=-1).tolist() == [2, 0, 1]
    with torch.no_grad():  # the graphs embed as model.py does
        want = namespace["embedder"](net)(support)
        assert torch.allclose(traced(support), want, atol=1e-4, rtol=1e-4)
    (onnx_embedding,) = session.run(["embedding"], {"input": support.numpy()})
    assert np.allclose(onnx_embedding, want.numpy(), atol=1e-4, rtol=1e-4)
    card = client.export(job["id"], "model-card", 1, tmp_path / "card.md").read_text()
    assert "Weights: meta-learned by the search (protonet)" in card
    assert "| a query is labelled by | the nearest class prototype" in card
    assert "protonet, matching: query cross-entropy" in card  # its meta_train_loss

    # pretrain: a body trained over its own classes, whose head is not the exported one
    spec = _fewshot_spec("pretrain", batch_size=8, finetune_steps=3)
    job = client.wait(_submit(client, spec), timeout=time_left(120))
    assert job["state"] == "SUCCEEDED", job
    doc = json.loads(client.export(job["id"], "json", 1, tmp_path / "p.json").read_text())
    assert doc["weights"].startswith("pretrained by the search (pretrain): the network up")
    assert doc["adaptation"]["comparison"]["kind"] == "finetune"
    assert "TorchScript and ONNX hold the embedding (output `embedding`)" in doc["weights"]
    files = {"nas.embedding.json": ""}
    torch.jit.load(
        str(client.export(job["id"], "torchscript", 1, tmp_path / "p.pt")), _extra_files=files
    )
    assert json.loads(files["nas.embedding.json"])["batch_statistics"] is False

    # full-context embeddings: no graph holds their LSTMs
    job = client.wait(_submit(client, _fewshot_spec("matching", fce=True)), timeout=time_left(120))
    assert job["state"] == "SUCCEEDED", job
    assert job["export_formats"] == ["json", "pytorch", "model-card"]
    doc = json.loads(client.export(job["id"], "json", 1, tmp_path / "m.json").read_text())
    assert "TorchScript" not in doc["weights"]
    for fmt in ("torchscript", "onnx"):
        with pytest.raises(ApiError) as refused:
            client.export(job["id"], fmt, 1, tmp_path / f"m-{fmt}")
        assert refused.value.status_code == 409
        assert "full-context embeddings (fce)" in str(refused.value)
        assert "format=pytorch" in str(refused.value)
    client.export(job["id"], "onnx", 1, tmp_path / "m.onnx", untrained=True)  # the bare graph


def test_a_cancel_during_the_meta_test_keeps_the_searchs_result(client: NasClient) -> None:
    """The cancel was seen only once the meta-test ended (56 s on glyphs), and the job's
    result was then thrown away (summary null): a cancel during final: keeps it."""
    spec = {**SPEC, "evaluator": {**SPEC["evaluator"], "test_tasks": 100_000}}
    job_id = _submit(client, spec)
    wait_for(lambda: "meta-testing" in (client.job(job_id)["reason"] or ""), timeout=120)
    client.cancel(job_id)
    job = client.wait(job_id, timeout=60)
    assert job["state"] == "CANCELLED", job
    assert job["reason"] == (
        "cancelled by user after the search's 2 trials had ended (the search's result is "
        "kept; see its warnings)"
    )
    assert job["summary"]["best"]["architecture"] and job["best"] is not None
    assert not job["summary"]["best"].get("final_metrics")
    assert any("stopped (cancelled)" in w for w in job["warnings"]), job["warnings"]
    assert job["summary"]["files"] == [{"name": META_WEIGHTS_FILE, "kind": "meta_weights"}]
