"""Exports: standalone PyTorch source (run in an interpreter without this package),
TorchScript, ONNX (onnxruntime, dynamic batch), JSON round trip, model card, errors."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

import nas.export as export_pkg
from nas.architecture import Architecture
from nas.errors import ExportError, NasError
from nas.export import (
    FORMATS,
    ExportContext,
    architecture_from_json,
    build_network,
    draw_network,
    export,
    export_json,
    export_onnx,
    export_pytorch_source,
    export_torchscript,
    exportable_spaces,
    get_format,
    load_network,
    model_card,
    supported_formats,
)
from nas.models import ClassifierHead, NetworkSource, SpaceNetwork
from nas.ops import conv_layer
from nas.spaces import MacroSpace, MetaQNNSpace, MicroSpace, Nb201Space, SearchSpace
from nas.spaces.base import Decision

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

NUM_CLASSES = 5
# Every op of each space appears: macro samples with all skips of the last layer on (so each
# reduction point reduces several sources); micro and nb201 are written out.
MICRO_ALL_OPS = (0, 1, 0, 4, 2, 0, 2, 3) + (0, 1, 4, 1, 1, 2, 3, 2)  # normal, reduce
NB201_ALL_OPS = (3, 1, 4, 2, 0, 3)
# metaqnn: both pool kernels, FC layers with dropout (1-D), GAP (2-D).
METAQNN_LAYERS = {
    "metaqnn-1d": ["C(3,8)", "P(3)", "C(5,4)", "P(2)", "FC(16)", "FC(8)", "SM"],
    "metaqnn-2d": ["C(3,4)", "P(3)", "C(3,8)", "P(2)", "C(1,8)", "GAP", "SM"],
}
CASES: dict[str, tuple[SearchSpace, tuple[int, ...], dict[str, int] | None]] = {
    "macro-1d": (MacroSpace(layers=4, channels=4), (1, 40), None),
    "macro-2d": (MacroSpace(layers=4, channels=3, dropout=0.5), (1, 8, 8), None),
    "micro-1d": (MicroSpace(nodes=2, cells=1, stages=2, channels=4), (1, 40), None),
    "micro-2d": (MicroSpace(nodes=2, cells=1, stages=2, channels=3), (1, 8, 8), None),
    "nb201-2d": (Nb201Space(), (3, 8, 8), {"channels": 4, "cells": 1}),
    "metaqnn-1d": (
        MetaQNNSpace(max_layers=6, input_size=40, channels=8, fc_units=[16, 8], dropout=0.5),
        (1, 40),
        None,
    ),
    "metaqnn-2d": (MetaQNNSpace(max_layers=6, input_size=8, channels=8), (1, 8, 8), None),
}
over_cases = pytest.mark.parametrize("case", list(CASES))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def architecture(case: str) -> Architecture:
    space = CASES[case][0]
    if isinstance(space, MicroSpace):
        return space.make(MICRO_ALL_OPS)
    if isinstance(space, Nb201Space):
        return space.make(NB201_ALL_OPS)
    if isinstance(space, MetaQNNSpace):
        return space.from_labels(METAQNN_LAYERS[case])
    choices = list(space.sample(np.random.default_rng(7)).choices)
    choices[-(space.layers - 1) :] = [1] * (space.layers - 1)  # last layer: every skip on
    return space.make(choices)


@cache
def trained_like(case: str) -> nn.Module:
    """Seeded random weights, with BN affine parameters and running statistics randomised
    too (so the comparisons depend on every saved tensor); eval mode."""
    space, shape, options = CASES[case]
    torch.manual_seed(11)
    model = build_network(space, architecture(case), shape, NUM_CLASSES, options)
    generator = torch.Generator().manual_seed(12)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model.eval()


def example_input(case: str, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, *CASES[case][1], generator=torch.Generator().manual_seed(5))


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# --- standalone PyTorch source ---------------------------------------------------------------
# Run with -I -S: no script dir, no PYTHON* variables, no site processing, so the editable
# install's import hook is not set up; only the site-packages folder (torch) is put on the path.
RUNNER = textwrap.dedent(
    """
    import importlib.util
    import runpy
    import sys

    sys.path.append(sys.argv[1])  # site-packages, without its .pth files
    assert importlib.util.find_spec("nas") is None, "nas-service is importable here"
    import torch

    spec = importlib.util.spec_from_file_location("model", "model.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    net = model.build()
    net.load_state_dict(torch.load("weights.pt", weights_only=True), strict=True)
    net.eval()
    with torch.no_grad():
        torch.save(net(torch.load("input.pt", weights_only=True)), "output.pt")
    sys.argv = ["model.py", "weights.pt"]
    runpy.run_path("model.py", run_name="__main__")  # the file's own entry point
    assert "nas" not in sys.modules
    """
)


@over_cases
def test_pytorch_source_runs_without_this_package(case: str, tmp_path: Path) -> None:
    space, shape, options = CASES[case]
    model = trained_like(case)
    source = export_pytorch_source(space, architecture(case), shape, NUM_CLASSES, options=options)
    assert "import nas" not in source and "from nas" not in source
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "model.py").write_text(source)
    (tmp_path / "run.py").write_text(RUNNER)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    x = example_input(case)
    torch.save(x, tmp_path / "input.pt")
    site_packages = str(Path(torch.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-I", "-S", "run.py", site_packages],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"output (1, {NUM_CLASSES})" in done.stdout
    got = torch.load(tmp_path / "output.pt", weights_only=True)
    assert got.shape == (3, NUM_CLASSES)
    assert (got - outputs(model, x)).abs().max().item() <= 1e-5


def test_pytorch_source_defines_only_the_ops_it_uses() -> None:
    space = MacroSpace(layers=2, channels=4, reductions=[])
    source = export_pytorch_source(space, space.make([4, 5, 0]), (1, 12), NUM_CLASSES)
    assert "class Pool(" in source and "class ExportedNet(nn.Module)" in source
    for unused in ("class SepConv(", "class ReLUConvBN(", "class FactorizedReduce(", "F.pad"):
        assert unused not in source
    assert source.count("class ") == 3  # Pool, ClassifierHead, ExportedNet


METAQNN_VARIANTS = {  # input shape, layers, dropout: cheap in-process checks
    "sm-on-conv": ((1, 40), ["C(1,2)", "P(2)", "C(3,8)", "P(3)", "SM"], 0.0),
    "gap-dropout": ((1, 40), ["C(5,8)", "GAP", "SM"], 0.3),
    "fc-2d": ((2, 8, 8), ["C(3,4)", "P(2)", "C(3,8)", "P(3)", "FC(16)", "FC(16)", "SM"], 0.2),
    "non-square": ((1, 6, 8), ["C(5,2)", "P(3)", "C(3,4)", "P(2)", "SM"], 0.0),
}


@pytest.mark.parametrize("variant", list(METAQNN_VARIANTS))
def test_metaqnn_source_and_drawing_follow_the_layers(variant: str) -> None:
    shape, layers, dropout = METAQNN_VARIANTS[variant]
    space = MetaQNNSpace(
        max_layers=6, input_size=max(shape[1:]), channels=8, fc_units=[16], dropout=dropout
    )
    arch = space.from_labels(layers)
    # verify=True runs the source here: same state_dict keys and shapes, same outputs.
    source = export_pytorch_source(space, arch, shape, NUM_CLASSES)
    assert "import nas" not in source and "from nas" not in source
    model = build_network(space, arch, shape, NUM_CLASSES).eval()
    labels = space.labels(arch)
    # One comment per layer with body modules; SM has one (its Flatten) only right after a
    # conv or pool layer.
    flat_sm = not any(label.startswith("FC") or label == "GAP" for label in labels)
    comments = [line.strip()[2:] for line in source.splitlines() if line.strip()[:2] == "# "]
    assert [c.split(":")[0] for c in comments] == [
        name for name in labels if name != "SM" or flat_sm
    ]
    with torch.no_grad():
        features = tuple(model.body(torch.zeros(1, *shape)).shape[1:])
    assert re.search(
        rf"body\.(\d+-)?{len(model.body) - 1}, output {re.escape(str(features))}", comments[-1]
    )
    drawing = draw_network(model, arch, shape).splitlines()
    assert [line.split()[0] for line in drawing if line[:1] not in ("", " ")] == [
        "input",
        *labels,
        "layers:",
    ]
    assert drawing[-1] == "layers: " + " -> ".join(labels)
    assert drawing[-3].endswith(f"({NUM_CLASSES},)")  # SM: the logits


# --- TorchScript and ONNX --------------------------------------------------------------------
@over_cases
def test_torchscript_loads_and_matches(case: str, tmp_path: Path) -> None:
    model = trained_like(case)
    path = export_torchscript(model, CASES[case][1], tmp_path / "model.ts")
    loaded = torch.jit.load(str(path))
    for batch in (1, 3):
        x = example_input(case, batch)
        assert (loaded(x) - outputs(model, x)).abs().max().item() <= 1e-5


@over_cases
def test_onnx_runs_in_onnxruntime_with_a_dynamic_batch(case: str, tmp_path: Path) -> None:
    model = trained_like(case)
    path = export_onnx(model, CASES[case][1], tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        x = example_input(case, batch)
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == (batch, NUM_CLASSES)
        assert np.abs(got - outputs(model, x).numpy()).max() <= 1e-4


def test_graph_exports_in_several_threads_at_once_all_succeed(tmp_path: Path) -> None:
    """A server exports in a thread pool; torch's ONNX exporter keeps process-wide state, so
    two exports at once failed ('GLOBALS.in_onnx_export must be False')."""
    from concurrent.futures import ThreadPoolExecutor

    case = next(iter(CASES))
    model, shape = trained_like(case), CASES[case][1]
    jobs = [
        (
            export_onnx if i % 3 else export_torchscript,
            tmp_path / f"m{i}.{'onnx' if i % 3 else 'ts'}",
        )
        for i in range(9)
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        done = list(pool.map(lambda job: job[0](model, shape, job[1]), jobs))
    assert done == [path for _, path in jobs] and all(p.stat().st_size > 0 for p in done)


# --- JSON and the model card -----------------------------------------------------------------
@over_cases
def test_json_round_trips_to_the_same_architecture(case: str) -> None:
    space, shape, options = CASES[case]
    arch = architecture(case)
    data = export_json(
        space,
        arch,
        input_shape=shape,
        num_classes=NUM_CLASSES,
        hyperparameters={"lr": 0.05, "batch_size": np.int64(64)},
        metrics={"test_accuracy": np.float32(91.5)},
        job_id="job-1",
        trial=3,
        seed=0,
        options=options,
    )
    text = json.dumps(data)
    rebuilt_space, rebuilt = architecture_from_json(text)
    assert rebuilt == arch
    assert rebuilt_space.config == space.config
    assert data["genotype"] == space.describe(arch)
    assert data["input_shape"] == list(shape) and data["num_classes"] == NUM_CLASSES
    assert data["provenance"]["package_version"] == export_pkg.provenance.package_version()
    assert data["provenance"]["trial"] == 3 and data["hyperparameters"]["batch_size"] == 64
    # The recorded network options rebuild the same network.
    rebuilt_net = build_network(rebuilt_space, rebuilt, shape, NUM_CLASSES, data["network_options"])
    assert rebuilt_net.state_dict().keys() == trained_like(case).state_dict().keys()


def test_json_rejects_a_foreign_or_broken_export() -> None:
    space = MacroSpace(layers=2)
    data = export_json(space, space.make([0, 1, 1]))
    with pytest.raises(ExportError, match="version"):
        architecture_from_json({**data, "space": {**data["space"], "version": 9}})
    with pytest.raises(ExportError, match="needs 'space'"):
        architecture_from_json({"architecture": data["architecture"]})
    with pytest.raises(NasError, match="unknown space"):
        architecture_from_json({**data, "space": {"name": "nope"}})
    with pytest.raises(ExportError, match="JSON"):
        export_json(space, space.make([0, 1, 1]), metrics={"bad": float("nan")})


@pytest.mark.parametrize("case", ["macro-1d", "micro-2d", "nb201-2d", "metaqnn-1d", "metaqnn-2d"])
def test_model_card(case: str) -> None:
    space, shape, _ = CASES[case]
    arch = architecture(case)
    model = trained_like(case)
    card = model_card(
        space,
        arch,
        model,
        shape,
        accuracies={"test_accuracy": 91.25, "params": 2690.0, "train_loss": 2.0},
        command="nas submit examples/x.yaml --seed 0",
        job_id="job-1",
        latency_runs=3,
        hyperparameters={"lr": 0.07458, "optimizer": "sgd", "batch_size": 64},
    )
    params = sum(p.numel() for p in model.parameters())
    assert "| params | 2690 |" in card and "| train_loss | 2.00 |" in card  # not 2690.00
    # hyperparameters as the trial ran them (the card rounded 0.07458 to 0.07)
    assert "| lr | 0.07458 |" in card and "| batch_size | 64 |" in card
    assert card.startswith(f"# Model card: {space.name}")
    assert f"| Parameters | {params:,} |" in card
    assert "| FLOPs | " in card and "ms median of 3 forward passes at batch size 1" in card
    assert "| test_accuracy | 91.25 |" in card
    assert "nas submit examples/x.yaml --seed 0" in card and "- job id: job-1" in card
    last_op = space.layer_choices(arch)[-1][0] if isinstance(space, MacroSpace) else ""
    drawing = {
        "macro-1d": f"layer 3    {last_op} + skip from 0, 1, 2",
        "micro-2d": "node0 = identity(cell_in0) + sep_conv5(cell_in1)",
        "nb201-2d": "node3 = nor_conv_1x1(node0) + none(node1) + nor_conv_3x3(node2)",
        "metaqnn-1d": "FC(16)     flatten -> linear -> ReLU -> dropout 0.5   (16,)",
        "metaqnn-2d": "GAP        global avg pool                            (8,)",
    }[case]
    assert drawing in card, card
    if isinstance(space, MetaQNNSpace):  # the layer list, in order, one row per layer
        assert "layers: " + " -> ".join(METAQNN_LAYERS[case]) in card
        rows = [card.index(f"\n{label} ") for label in METAQNN_LAYERS[case]]
        assert rows == sorted(rows)


def _card_number(card: str, row: str) -> int:
    """The first number of the card's table row ``| row | ...``."""
    match = re.search(rf"^\| {re.escape(row)} \| ([\d,]+) ", card, re.MULTILINE)
    assert match, f"no row {row!r} in:\n{card}"
    return int(match.group(1).replace(",", ""))


def test_model_card_labels_each_figure_and_they_agree(nb201_table: Path, tmp_path: Path) -> None:
    """Issue 13 item 19: a NAS-Bench-201 card showed FLOPs 298,681,600 and ``flops_M``
    149.34, latency 64.9 ms and 0.02 s, without saying which is which."""
    from nas.evaluators import TabularEvaluator

    evaluator = TabularEvaluator(dataset="nb201-cifar10", table=str(nb201_table))
    space = Nb201Space()
    arch = space.from_arch_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|"
    )
    result = evaluator.evaluate([arch])[0]
    metrics = {**result.metrics, **evaluator.final_metrics(arch), "retrained_test_accuracy": 93.0}
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=(3, 32, 32),
        num_classes=10,
        metrics=metrics,
        latency_runs=2,
    )
    card = FORMATS.get("model-card").write(ctx, tmp_path / "card.md").read_text()
    flops, macs = _card_number(card, "FLOPs"), _card_number(card, "MACs")
    assert macs == flops // 2 and "multiplies and adds counted separately" in card
    # The table's "FLOPs" are multiply-accumulates of the same network: they agree with MACs.
    assert metrics["flops_M"] * 1e6 == pytest.approx(macs, rel=1e-4)
    flops_row = next(line for line in card.splitlines() if line.startswith("| flops_M |"))
    assert "MACs" in flops_row and "NAS-Bench-201" in flops_row
    # Two latencies, each saying where it comes from.
    assert re.search(
        r"^\| Latency, measured at export \| [\d.]+ ms median .* batch size 1", card, re.MULTILINE
    )
    latency_row = next(line for line in card.splitlines() if line.startswith("| latency_s |"))
    assert "NAS-Bench-201" in latency_row and "not measured on this machine" in latency_row
    # Four significant digits below 1 (was 0.02 for 0.0150 s: two decimals of a second).
    shown = float(latency_row.split("|")[2])
    assert shown == pytest.approx(metrics["latency_s"], rel=1e-3), latency_row
    # Every metric row says what it is.
    rows = [
        line
        for line in card.split("## Metrics")[1].split("##")[0].splitlines()
        if line.startswith("| ") and not line.startswith("| metric")
    ]
    assert len(rows) == len(metrics)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and cells[2], row
    assert "| retrained_test_accuracy | 93.00 | these weights, retrained from scratch: test" in card


def test_evaluators_agree_on_what_a_metric_is() -> None:
    """The card looks a metric's note up by name across evaluators: a name must mean one
    thing, whichever evaluator reports it."""
    from nas.evaluators import EVALUATORS

    seen: dict[str, tuple[str, str]] = {}
    for name in EVALUATORS:
        for metric, note in EVALUATORS.get(name).metric_notes.items():
            if metric in seen:
                assert seen[metric][1] == note, (metric, seen[metric][0], name)
            seen[metric] = (name, note)
        missing = set(EVALUATORS.get(name).metrics) - set(EVALUATORS.get(name).metric_notes)
        assert not missing, (name, missing)


# --- the format table, the one-call export, errors ---------------------------------------------
class TableOnlySpace(SearchSpace):
    """A space with no network (like a purely tabular benchmark)."""

    name = "table-only"

    def decisions(self) -> list[Decision]:
        return [Decision("op", ("a", "b"))]


def test_unknown_format_and_unsupported_space_are_clear_errors() -> None:
    with pytest.raises(ExportError, match=r"unknown export format 'tflite'; valid: json, pytorch"):
        get_format("tflite")
    table_only = TableOnlySpace()
    assert supported_formats(table_only) == ["json"]
    assert supported_formats("nb201") == list(FORMATS)
    assert supported_formats(CASES["metaqnn-2d"][0]) == list(FORMATS)
    assert {"enas-macro", "enas-micro", "metaqnn", "nb201"} <= set(exportable_spaces())
    for fmt in ("pytorch", "torchscript", "onnx", "model-card"):
        with pytest.raises(ExportError, match=f"cannot export to {fmt}"):
            get_format(fmt, table_only)
    with pytest.raises(ExportError, match="no network"):
        export_pytorch_source(table_only, table_only.make([1]), (1, 8), NUM_CLASSES)
    assert export_json(table_only, table_only.make([1]))["genotype"] == {"op": "b"}


def test_network_options_and_weights_errors(tmp_path: Path) -> None:
    space, shape, _ = CASES["macro-1d"]
    arch = architecture("macro-1d")
    with pytest.raises(ExportError, match="takes no network options"):
        build_network(space, arch, shape, NUM_CLASSES, {"channels": 8})
    with pytest.raises(ExportError, match="unknown nb201 network options"):
        build_network(Nb201Space(), Nb201Space().make(NB201_ALL_OPS), (3, 8, 8), 5, {"width": 2})
    wider = MacroSpace(layers=4, channels=8)
    torch.save(build_network(wider, arch, shape, NUM_CLASSES).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ExportError, match="do not fit"):
        load_network(space, arch, shape, NUM_CLASSES, tmp_path / "w.pt")


def test_export_writes_every_format(tmp_path: Path) -> None:
    space, shape, _ = CASES["micro-1d"]
    arch = architecture("micro-1d")
    weights = tmp_path / "rank0.pt"
    torch.save(trained_like("micro-1d").state_dict(), weights)
    written: dict[str, Any] = {}
    for fmt in FORMATS:
        spec = FORMATS.get(fmt)
        path = export(
            fmt,
            tmp_path / "out" / f"model{spec.suffix}",
            space=space,
            arch=arch,
            input_shape=shape,
            num_classes=NUM_CLASSES,
            weights=weights,
            metrics={"test_accuracy": 80.0},
            latency_runs=2,
        )
        assert path.is_file() and path.stat().st_size > 0
        written[fmt] = path
    assert architecture_from_json(written["json"].read_text())[1] == arch
    x = example_input("micro-1d")
    loaded = torch.jit.load(str(written["torchscript"]))
    assert (loaded(x) - outputs(trained_like("micro-1d"), x)).abs().max().item() <= 1e-5
    with pytest.raises(ExportError, match="needs input_shape"):
        export("onnx", tmp_path / "m.onnx", space=space, arch=arch)


def test_a_context_adds_a_bundle_a_card_note_and_document_keys(tmp_path: Path) -> None:
    """What a service adds to an export: a zip download, keys of its own in the JSON, a
    paragraph under the card's title, the retraining recipe in the card."""
    space, shape, _ = CASES["macro-1d"]
    arch = architecture("macro-1d")
    weights = tmp_path / "rank0.pt"
    torch.save(trained_like("macro-1d").state_dict(), weights)
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=shape,
        num_classes=NUM_CLASSES,
        weights=weights,
        hyperparameters={"lr": 0.1},
        recipe={"epochs": 3, "channels": None},
        note="Rank 1 of 2.",
        document={"rank": 1, "final": {"test_accuracy": 90.0}},
        bundle=True,
        latency_runs=2,
    )
    pytorch = FORMATS.get("pytorch")
    assert (pytorch.file_suffix(), pytorch.file_suffix(bundle=True)) == (".py", ".zip")
    assert pytorch.file_media_type(bundle=True) == "application/zip"
    assert FORMATS.get("onnx").file_suffix(bundle=True) == ".onnx"  # no bundled form

    with zipfile.ZipFile(pytorch.write(ctx, tmp_path / "model.zip")) as archive:
        assert sorted(archive.namelist()) == ["architecture.json", "model.py", "weights.pt"]
        assert archive.read("weights.pt") == weights.read_bytes()
        source = archive.read("model.py").decode()
        bundled = json.loads(archive.read("architecture.json"))
    assert source == export_pytorch_source(space, arch, shape, NUM_CLASSES)
    document = json.loads(FORMATS.get("json").write(ctx, tmp_path / "a.json").read_text())
    for data in (bundled, document):
        assert list(data)[-2:] == ["rank", "final"] and data["final"] == {"test_accuracy": 90.0}
        assert architecture_from_json(data)[1] == arch
    card = FORMATS.get("model-card").write(ctx, tmp_path / "card.md").read_text()
    assert card.splitlines()[:4] == [
        f"# Model card: {space.name} architecture",
        "",
        "Rank 1 of 2.",
        "",
    ]
    assert "| lr | 0.1 |" in card and "| final.epochs | 3 |" in card
    assert "final.channels" not in card
    assert (
        "Rank 1 of 2."
        not in FORMATS.get("model-card")
        .write(dataclasses.replace(ctx, note=None), tmp_path / "plain.md")
        .read_text()
    )

    # Weights that do not fit the network are refused before anything is written.
    wider = MacroSpace(layers=4, channels=8)
    torch.save(build_network(wider, arch, shape, NUM_CLASSES).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ExportError, match="do not fit"):
        pytorch.write(dataclasses.replace(ctx, weights=tmp_path / "w.pt"), tmp_path / "bad.zip")
    assert not (tmp_path / "bad.zip").exists()


# --- a new space is one module ----------------------------------------------------------------
class TinyNetwork(SpaceNetwork["TinySpace"]):
    """conv3 -> classifier head; writes its own forward and draws itself."""

    def __init__(
        self,
        space: TinySpace,
        input_shape: tuple[int, ...],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        if arch is None:
            raise ValueError("tiny has no supernet")
        width = int(space.describe(arch)["width"])
        self.conv = conv_layer(self.dim)(self.input_shape[0], width, 3, padding=1)
        self.head = ClassifierHead(width, num_classes, 0.0)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        self._resolve(arch)
        return self.head(self.conv(x))

    def write_source(self, writer: Any) -> NetworkSource:
        signature = "forward(self, x: torch.Tensor) -> torch.Tensor"
        return NetworkSource(forward=writer.method(signature, ["return self.head(self.conv(x))"]))

    def draw(self, arch: Architecture, drawing: Any) -> str:
        shapes = drawing.shapes([self.conv, self.head])
        return "\n".join(
            [
                drawing.row("conv", f"conv3 x {self.conv.out_channels}", shapes[id(self.conv)]),
                drawing.row("head", "linear", shapes[id(self.head)]),
            ]
        )


class TinySpace(SearchSpace):
    """A space whose module is all there is of it (not even registered by name)."""

    name = "tiny"
    trainable = True
    network_class = TinyNetwork

    def decisions(self) -> list[Decision]:
        return [Decision("width", ("2", "4"))]


def test_a_space_module_with_its_network_exports_to_every_format(tmp_path: Path) -> None:
    space = TinySpace()
    arch = space.make([1])
    assert supported_formats(space) == list(FORMATS)
    # verify=True runs the source: same state_dict keys and shapes, same outputs.
    source = export_pytorch_source(space, arch, (1, 12), NUM_CLASSES)
    assert "class ClassifierHead(nn.Module)" in source and "self.conv = nn.Conv1d(1, 4, 3" in source
    model = build_network(space, arch, (1, 12), NUM_CLASSES)
    assert isinstance(model, TinyNetwork)
    assert draw_network(model, arch, (1, 12)).splitlines() == [
        "conv       conv3 x 4                                  (4, 12)",
        f"head       linear                                     ({NUM_CLASSES},)",
    ]
    for fmt in FORMATS:
        path = export(
            fmt,
            tmp_path / f"tiny{FORMATS.get(fmt).suffix}",
            space=space,
            arch=arch,
            input_shape=(1, 12),
            num_classes=NUM_CLASSES,
            latency_runs=2,
        )
        assert path.is_file() and path.stat().st_size > 0
    assert "conv3 x 4" in (tmp_path / "tiny.md").read_text()
