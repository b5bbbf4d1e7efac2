"""Export of a meta-trained model: a meta-learning search keeps its best architecture's
meta-learned weights (Meta-SGD: with its learned rates) as a file of the run, the export
formats take them as weights, and the standalone ``model.py``'s ``adapt`` gives what the
evaluator's own adaptation gives."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

from nas.datasets.tasks import TaskBatch
from nas.errors import ExportError
from nas.export import FORMATS, ExportContext, load_network
from nas.export.formats.base import EMBEDDING_KEY
from nas.metalearning import (
    META_WEIGHTS_FILE,
    META_WEIGHTS_KIND,
    FunctionalNet,
    MetaWeights,
    adaptation_scores,
)
from nas.spaces import SPACES
from workers.search import SearchLoop, parse_spec

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

SPEC: dict[str, Any] = {
    "name": "sine-export",
    "dataset": {"name": "sinusoid"},
    "space": {"name": "mlp", "max_layers": 2, "widths": [20, 40]},
    "controller": {"name": "random"},
    "evaluator": {
        "name": "metasgd",
        "meta_iterations": 20,
        "meta_batch": 4,
        "inner_lr": 0.05,
        "eval_shots": 10,
        "val_tasks": 10,
        "test_tasks": 20,
        "eval_points": 30,
        "eval_steps": 3,
        "final_steps": [1, 3],
    },
    "objective": {"metric": "meta_val_mse", "direction": "minimize"},
    "budget": {"trials": 2},
    "seed": 3,
}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the meta-learning evaluators use one
    yield
    torch.set_num_threads(threads)


def _load_bundle(path: Path, into: Path) -> dict[str, Any]:
    """``model.py`` of a pytorch bundle run in a fresh namespace (its files beside it)."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    namespace: dict[str, Any] = {"__name__": "exported_model"}
    source = (into / "model.py").read_text()
    exec(compile(source, str(into / "model.py"), "exec"), namespace)  # noqa: S102
    return namespace


def _mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).mean())


def test_a_metasgd_search_exports_its_meta_learned_weights_and_adapt(tmp_path: Path) -> None:
    loop = SearchLoop(parse_spec(SPEC))
    outcome = loop.run()
    assert outcome is not None and outcome.best is not None
    files = {f.name: f for f in outcome.files}
    assert set(files) == {META_WEIGHTS_FILE} and files[META_WEIGHTS_FILE].kind == META_WEIGHTS_KIND
    meta = MetaWeights.load(files[META_WEIGHTS_FILE].data)
    arch = outcome.best.architecture
    assert meta.architecture == arch.to_dict()
    assert (meta.algorithm, meta.loss, meta.steps, meta.lr) == ("metasgd", "mse", 3, None)
    evaluator: Any = loop.components.evaluator
    learner, _ = evaluator._final_learner(arch)  # what final_metrics scored
    learned = learner.current()
    assert meta.rates is not None and set(meta.rates) == set(learned)
    for name, value in learned.items():
        # the file holds CPU tensors whatever device meta-trained them
        assert torch.equal(meta.weights[name], value.cpu())
        assert torch.equal(meta.rates[name], learner.step_size()[name].cpu())
    # The rates are learned: no longer all the initial inner_lr.
    assert any(not torch.all(r == 0.05) for r in meta.rates.values())

    space = loop.components.space
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=(1,),
        num_classes=1,
        weights=meta.weights,
        adaptation=meta.adaptation(),
        bundle=True,
    )
    bundle = FORMATS.get("pytorch").write(ctx, tmp_path / "model.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == [
            "architecture.json",
            "model.py",
            "rates.pt",
            "weights.pt",
        ]
    ns = _load_bundle(bundle, tmp_path / "bundle")
    assert ns["ADAPTATION"] == {
        "algorithm": "metasgd",
        "loss": "mse",
        "steps": 3,
        "lr": None,
        "rates": "rates.pt",
    }
    assert "def adapt(" in (tmp_path / "bundle" / "model.py").read_text()
    net = ns["build"](str(tmp_path / "bundle" / "weights.pt"))

    tasks = evaluator.tasks.fixed(
        "test",
        evaluator.seed,
        n_tasks=10,
        shots=evaluator.config.eval_shots,
        queries=evaluator.eval_queries,
        grid=True,
    )
    # the evaluator's own adaptation (its rates), on its device; the bundle runs on the CPU
    expected = learner.scores(tasks.to(evaluator.device), [0, 3]).cpu()
    rates = str(tmp_path / "bundle" / "rates.pt")
    befores, afters = [], []
    for i in range(len(tasks)):
        sx, sy = tasks.support_x[i], tasks.support_y[i]
        qx, qy = tasks.query_x[i], tasks.query_y[i]
        before = _mse(ns["adapt"](net, sx, sy, steps=0, rates=rates), qx, qy)
        after = _mse(ns["adapt"](net, sx, sy, rates=rates), qx, qy)  # ADAPTATION's 3 steps
        assert before == pytest.approx(float(expected[i, 0, 0]), rel=1e-5)
        assert after == pytest.approx(float(expected[i, 1, 0]), rel=1e-4)
        befores.append(before)
        afters.append(after)
    # Adapting helps on these meta-test tasks (on average: 20 meta-iterations only).
    assert sum(afters) < sum(befores)
    # A copy: the loaded network keeps the meta-learned weights.
    for name, value in net.state_dict().items():
        assert torch.equal(value, meta.weights[name])
    with pytest.raises(ValueError, match="rates"):
        ns["adapt"](net, tasks.support_x[0], tasks.support_y[0])  # rates are not guessed
    # Targets (K,) against outputs (K, 1) broadcast to a (K, K) loss, silently: refused.
    sx, sy = tasks.support_x[0], tasks.support_y[0]
    assert sy.shape == (len(sx), 1)
    with pytest.raises(ValueError, match=r"support_y has shape \(\d+,\) and the outputs"):
        ns["adapt"](net, sx, sy.flatten(), rates=rates)

    # The other network formats take the meta-learned weights too (their own load-back
    # check compares them with the network built from these weights).
    script = FORMATS.get("torchscript").write(ctx, tmp_path / "model.pt")
    loaded = torch.jit.load(str(script))
    x = tasks.query_x[0]
    assert torch.allclose(loaded(x), net.eval()(x), atol=1e-5)


def test_adapt_of_a_classifier_with_batch_norms_matches_the_meta_learning_code(
    tmp_path: Path,
) -> None:
    """Cross-entropy and batch norms (batch statistics, as in meta-training) through
    ``adapt``'s defaults (ADAPTATION's step size and steps)."""
    space = SPACES.get("enas-macro").from_config({"layers": 2, "channels": 8, "reductions": [1]})
    arch = space.sample(np.random.default_rng(0))
    shape, ways = (1, 8, 8), 5
    torch.manual_seed(0)
    weights = load_network(space, arch, shape, ways).state_dict()
    adaptation = {
        "algorithm": "maml",
        "loss": "cross_entropy",
        "steps": 2,
        "lr": 0.5,
        "rates": None,
    }
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=shape,
        num_classes=ways,
        weights=weights,
        adaptation=adaptation,
        bundle=True,
    )
    bundle = FORMATS.get("pytorch").write(ctx, tmp_path / "model.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert "rates.pt" not in archive.namelist()
    ns = _load_bundle(bundle, tmp_path / "bundle")
    net = ns["build"](str(tmp_path / "bundle" / "weights.pt"))

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(ways).repeat(2)[None]
    support = torch.randn(1, 2 * ways, *shape, generator=g)
    # Query examples near the support examples, of the same classes.
    query = support + 0.1 * torch.randn(support.shape, generator=g)
    task = TaskBatch(support, labels, query, labels.clone())
    functional = FunctionalNet(load_network(space, arch, shape, ways, weights), "cross_entropy")
    expected = adaptation_scores(
        functional, functional.initial_params(), task, steps=[0, 2], lr=0.5
    )

    def loss(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(task.query_x[0]), task.query_y[0]))

    before = loss(ns["adapt"](net, task.support_x[0], task.support_y[0], steps=0))
    after = loss(ns["adapt"](net, task.support_x[0], task.support_y[0]))
    assert before == pytest.approx(float(expected[0, 0, 0]), rel=1e-5)
    assert after == pytest.approx(float(expected[0, 1, 0]), rel=1e-4)
    assert after < before
    # under inference_mode (a user predicting) it still takes its gradient steps
    with torch.inference_mode():
        sx, sy = task.support_x[0].clone(), task.support_y[0].clone()  # inference tensors
        adapted = ns["adapt"](net, sx, sy)
    assert loss(adapted) == pytest.approx(after, rel=1e-5)


@pytest.mark.parametrize(
    ("evaluator", "params", "comparison"),
    [
        ("protonet", {}, {"kind": "prototypes"}),
        ("matching", {"cosine_scale": 5.0}, {"kind": "cosine", "scale": 5.0}),
        (
            "matching",
            {"fce": True, "fce_steps": 2},
            {"kind": "cosine", "scale": 1.0, "fce_steps": 2},
        ),
        (
            "pretrain",
            {"finetune_steps": 5, "finetune_lr": 0.5, "batch_size": 8},
            {"kind": "finetune", "steps": 5, "lr": 0.5, "batch_statistics": False},
        ),
    ],
)
def test_a_metric_based_search_exports_its_embedding_and_classify(
    tmp_path: Path, evaluator: str, params: dict[str, Any], comparison: dict[str, Any]
) -> None:
    """A Prototypical or Matching Networks or pretrain search handed on no weights: its
    exports were freshly initialised networks. Now its best embedding (with full-context
    embeddings' LSTMs; pretrain: the pretrained body) is a file of the run, and the bundle's
    ``classify`` labels a task's queries as the evaluator's learner does."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    loop = SearchLoop(parse_spec(_fewshot_spec(evaluator, **params)))
    outcome = loop.run()
    assert outcome is not None and outcome.best is not None
    files = {f.name: f for f in outcome.files}
    assert set(files) == {META_WEIGHTS_FILE}
    meta = MetaWeights.load(files[META_WEIGHTS_FILE].data)
    arch = outcome.best.architecture
    assert (meta.algorithm, meta.loss, meta.steps, meta.comparison) == (
        evaluator,
        "cross_entropy",
        0,
        comparison,
    )
    evaluator_: Any = loop.components.evaluator
    learner, _ = evaluator_._final_learner(arch)  # what final_metrics scored
    fce = bool(params.get("fce"))
    assert (meta.extra is not None) == fce
    if evaluator == "pretrain":  # the body, running statistics included; not the head
        body = learner.model.state_dict()
        learned = {k: v for k, v in body.items() if v.shape == meta.weights[k].shape}
        assert any("running_mean" in k for k in learned)
        assert len(learned) == len(meta.weights) - 2  # the N-way classifier's weight, bias
    else:
        learned = dict(learner.params) | dict(learner.extra)
        for name, value in learner.extra.items():
            assert torch.equal(meta.extra[name], value.detach().cpu())  # type: ignore[index]
    for name, value in learned.items():
        assert torch.equal((meta.extra or {}).get(name, meta.weights.get(name)), value.cpu())

    space = loop.components.space
    ways = evaluator_.tasks.outputs
    shape = tuple(evaluator_.tasks.input_shape)
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=shape,
        num_classes=ways,
        weights=meta.weights,
        adaptation=meta.adaptation(),
        bundle=True,
    )
    bundle = FORMATS.get("pytorch").write(ctx, tmp_path / "model.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert ("context.pt" in archive.namelist()) == fce
    ns = _load_bundle(bundle, tmp_path / "bundle")
    assert ns["ADAPTATION"]["comparison"] == comparison
    context = str(tmp_path / "bundle" / "context.pt") if fce else None
    assert "def classify(" in (tmp_path / "bundle" / "model.py").read_text()
    net = ns["build"](str(tmp_path / "bundle" / "weights.pt"))  # loads strictly

    tasks = evaluator_.tasks.fixed(  # 2 shots: an order within a class (fce reads it)
        "test", evaluator_.seed, n_tasks=6, shots=2, queries=evaluator_.eval_queries, grid=True
    )
    expected = learner.scores(tasks.to(evaluator_.device), [0]).cpu()  # loss, accuracy
    embedding = ns["embedder"](net)
    for i in range(len(tasks)):
        sx, sy, qx, qy = (
            tasks.support_x[i],
            tasks.support_y[i],
            tasks.query_x[i],
            tasks.query_y[i],
        )
        log_probs = ns["classify"](net, sx, sy, qx, context=context)
        assert log_probs.shape == (len(qx), ways)
        loss = float(torch.nn.functional.nll_loss(log_probs, qy))
        accuracy = float((log_probs.argmax(dim=-1) == qy).float().mean() * 100)
        assert loss == pytest.approx(float(expected[i, 0, 0]), rel=1e-4, abs=1e-5)
        assert accuracy == pytest.approx(float(expected[i, 0, 1]))
        assert torch.equal(ns["classify"](embedding, sx, sy, qx, context=context), log_probs)
    sx, sy, qx = tasks.support_x[0], tasks.support_y[0], tasks.query_x[0]
    with pytest.raises(ValueError, match="every label"):
        ns["classify"](net, sx, sy, qx, ways + 1, context=context)
    # labels outside 0..ways-1 were left out of every class without a word
    for labels, classes in ((sy - 1, None), (sy, ways - 1)):
        with pytest.raises(ValueError, match="labels 0.."):
            ns["classify"](net, sx, labels, qx, classes, context=context)
    with pytest.raises(ValueError, match="one label per support example"):
        ns["classify"](net, sx, sy[:-1], qx, context=context)
    if fce:  # its LSTMs are not guessed; they read the support set in class order
        with pytest.raises(ValueError, match="context.pt"):
            ns["classify"](net, sx, sy, qx)
        classes_reversed = torch.argsort(-sy, stable=True)  # (each class's order kept)
        shuffled = ns["classify"](
            net, sx[classes_reversed], sy[classes_reversed], qx, context=context
        )
        assert torch.equal(shuffled, ns["classify"](net, sx, sy, qx, context=context))
    else:
        with pytest.raises(ValueError, match="takes no context"):
            ns["classify"](net, sx, sy, qx, context={})
    # in inference mode (pretrain fits its head with no autograd) and in double precision
    reference = ns["classify"](net, sx, sy, qx, context=context)
    with torch.inference_mode():
        assert torch.equal(ns["classify"](net, sx, sy, qx, context=context), reference)
    doubled = ns["classify"](net.double(), sx.double(), sy, qx.double(), context=context)
    assert torch.allclose(doubled.float(), reference, atol=1e-3)
    net.float()
    if torch.cuda.is_available():  # the network and the task on a GPU, the labels anywhere
        on_gpu = ns["classify"](net.cuda(), sx.cuda(), sy, qx.cuda(), context=context)
        on_cpu = ns["classify"](net.cpu(), sx, sy, qx, context=context)
        assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)

    # TorchScript and ONNX hold the embedding and say so (they were refused: the network's
    # forward pass ends in a classifier these learners never train); fce's LSTMs over the
    # support set fit no per-example graph: refused, naming the export that has them
    want = embedding(torch.cat([sx, qx]))
    for fmt in ("torchscript", "onnx"):
        target = tmp_path / f"embedding-{fmt}"
        if fce:
            with pytest.raises(ExportError, match="export pytorch"):
                FORMATS.get(fmt).write(ctx, target)
            assert not target.exists()
            continue
        FORMATS.get(fmt).write(ctx, target)
        if fmt == "torchscript":
            files = {EMBEDDING_KEY: ""}
            graph = torch.jit.load(str(target), _extra_files=files)
            with torch.no_grad():
                got = graph(torch.cat([sx, qx]))
            described = json.loads(files[EMBEDDING_KEY])
        else:
            session = onnxruntime.InferenceSession(str(target))
            assert [o.name for o in session.get_outputs()] == ["embedding"]
            assert session.get_outputs()[0].shape == ["batch", want.shape[1]]
            got = torch.from_numpy(
                session.run(["embedding"], {"input": torch.cat([sx, qx]).numpy()})[0]
            )
            described = json.loads(session.get_modelmeta().custom_metadata_map[EMBEDDING_KEY])
        assert got.shape == want.shape  # the embedding, not the classifier's logits
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
        assert described["output"] == "embedding"
        assert described["comparison"] == comparison
        assert described["batch_statistics"] == (evaluator != "pretrain")

    # the JSON and the model card say how it classifies, with no gradient steps
    doc = FORMATS.get("json").document(ctx)
    assert doc["adaptation"] == {
        "algorithm": evaluator,
        "loss": "cross_entropy",
        "comparison": comparison,
        **({"context": "LSTM weights: context.pt in the pytorch bundle"} if fce else {}),
    }
    card = (FORMATS.get("model-card").write(ctx, tmp_path / "card.md")).read_text()
    assert "| a query is labelled by |" in card and "gradient steps" not in card
    assert ("| full-context embeddings | LSTMs over the support set, 2 attention" in card) == fce


def test_pretrain_exports_its_body_not_its_pretraining_classifier() -> None:
    """With as many pretraining classes as ways, the pretrained classifier had the exported
    one's shape and was exported as if it were a task's: the export says it is not."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    spec = _fewshot_spec("pretrain", batch_size=8, finetune_steps=3)
    spec["dataset"].update(ways=5, class_split=[0.34, 0.33, 0.33])  # 5 pretraining classes
    loop = SearchLoop(parse_spec(spec))
    outcome = loop.run()
    assert outcome is not None and outcome.best is not None
    meta = MetaWeights.load(outcome.files[0].data)
    evaluator: Any = loop.components.evaluator
    learner, _ = evaluator._final_learner(outcome.best.architecture)
    body = learner.model.state_dict()
    head = [k for k in body if k.startswith("classifier.")]  # metaqnn's classifier_path
    assert head and all(body[k].shape == meta.weights[k].shape for k in head)
    assert not any(torch.equal(body[k].cpu(), meta.weights[k]) for k in head)
    assert all(torch.equal(body[k].cpu(), meta.weights[k]) for k in body if k not in head)


def test_an_onnx_embeddings_width_is_a_number_not_a_symbol(tmp_path: Path) -> None:
    """An enas-macro embedding (global pooling after batch norms written as reductions) came
    out with the output shape ['batch', 'ReduceMeanembedding_dim_1']: only the batch is free."""
    from nas.export.formats.onnx import export_onnx
    from nas.export.network import build_network, embedding_network

    space = SPACES.get("enas-macro")(layers=2, channels=4, reductions=[1])
    arch = space.sample(np.random.default_rng(0))
    embedding = embedding_network(build_network(space, arch, (1, 8, 8), 2), {"kind": "prototypes"})
    path = export_onnx(embedding, (1, 8, 8), tmp_path / "embedding.onnx", output="embedding")
    session = onnxruntime.InferenceSession(str(path))
    assert session.get_outputs()[0].shape == ["batch", 8]
    x = torch.randn(5, 1, 8, 8)
    (got,) = session.run(["embedding"], {"input": x.numpy()})
    with torch.no_grad():
        assert np.allclose(got, embedding(x).numpy(), atol=1e-5)
