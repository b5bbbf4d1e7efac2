"""CUDA code paths of ``nas/`` checked on one device, and GPU-vs-CPU timings on MNIST-1D.

Checks (on ``--device``, ``auto`` by default: CUDA when present, else CPU), each PASS/FAIL
with its figures; a failing check prints its traceback and the others still run:

* ``device``: ``select_device("auto")`` is CUDA when a GPU is present;
* ``standalone enas-macro`` / ``standalone metaqnn``: ``StandaloneEvaluator`` trials of the
  example spaces (``examples/mnist1d-*.yaml``) trained on the device with the MetaQNN example's
  recipe (5 epochs, Adam 0.003, batch 128); metaqnn with its restart-below-chance check and a
  median pruner (per-epoch validation on the device); ``train_from_scratch`` models stay there;
* ``constraints``: ``constraint_figures`` / ``check_constraints`` / ``measure_model`` (batch-1
  latency, CUDA-synchronised) on the device;
* ``shared-weights enas-macro`` / ``enas-micro``: a ``SharedWeightEvaluator`` supernet epoch,
  100 rewards, ``score_full``, ``extract_child`` (outputs equal to the supernet's), and the
  evaluator checkpoint (``state_dict``) reloaded on the device and on the CPU, with and
  without ``map_location`` (``workers/ray_backend.py`` loads it without);
* ``shared-weights enas-macro through DDP``: ``SharedWeightEvaluator.distribute`` (what each
  worker of a ``resources.workers`` group runs) in a one-process ``torch.distributed`` group
  on the device's backend (NCCL on CUDA, gloo on CPU): an epoch through DistributedDataParallel
  gives the weights of an epoch without it;
* ``enas search``: ``workers.local.run_local_search`` (``SharedWeightSearch``: ENAS controller
  on the CPU, supernet on the device, then ``workers.final.retrain``) on a short spec;
* ``export enas-macro`` / ``export metaqnn``: TorchScript, ONNX (onnxruntime), PyTorch source,
  model card and JSON written by ``nas.export.export`` from the device-trained model, and
  ``load_network`` from its (device) state_dict; outputs compared with the model's on real
  test inputs, both against a CPU copy of the model (what the export must reproduce) and
  against the model on the device (CUDA convolutions use TF32 by default: small gaps).

Timings (``--timing-devices``, default: ``cuda`` when present, then ``cpu``, same process, same
data): seconds per supernet epoch and per 100 rewards for the ENAS macro and micro example
spaces, seconds per standalone trial (5 epochs) of an enas-macro and a metaqnn child, and
batch-1 forward latency; medians of ``--repeats`` runs after a warm-up. CPU runs use
``configure_cpu_threads`` (the cores this process may use), as the evaluators do.

    .venv/bin/python bench/gpu_check.py                          # checks + timings
    .venv/bin/python bench/gpu_check.py --skip-checks --repeats 5
    .venv/bin/python bench/gpu_check.py --timing-devices cpu --json results.json

Exit status 1 when a check failed. Without a GPU everything runs on the CPU (device=cpu).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import io
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
import torch
from _args import description, positive_int

from nas.architecture import Architecture
from nas.datasets import DatasetSplits, load_dataset
from nas.evaluators.shared import SharedWeightConfig, SharedWeightEvaluator
from nas.evaluators.standalone import StandaloneEvaluator
from nas.models import count_parameters
from nas.spaces import MacroSpace, MetaQNNSpace, MicroSpace, SearchSpace
from nas.training import (
    TrainRecipe,
    accuracy,
    configure_cpu_threads,
    count_flops,
    select_device,
    to_tensors,
    train_from_scratch,
)
from nas.trial import TrialState

#: The example spaces (examples/mnist1d-enas-macro.yaml, -enas-micro.yaml, -metaqnn.yaml).
MACRO = {"layers": 6, "channels": 32, "channel_growth": 1}
MICRO = {"nodes": 4, "cells": 1, "stages": 3, "channels": 8}
METAQNN = {"max_layers": 6, "input_size": 40, "channels": 32}
METAQNN_LAYERS = ["C(5,32)", "P(2)", "C(3,32)", "P(2)", "FC(64)", "SM"]
#: The MetaQNN example's standalone recipe.
RECIPE = TrainRecipe(epochs=5, batch_size=128, lr=0.003)


class CheckFailed(AssertionError):
    pass


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def on_device(module: torch.nn.Module, device: torch.device) -> bool:
    return all(t.device.type == device.type for t in [*module.parameters(), *module.buffers()])


def metaqnn_arch(space: MetaQNNSpace) -> Architecture:
    try:
        return space.from_labels(METAQNN_LAYERS)
    except ValueError:  # a vocabulary change: any valid sequence will do
        return space.sample(np.random.default_rng(0))


def describe_environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_multiprocessors=props.multi_processor_count,
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            cuda_runtime=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
        for key, read in (
            ("cudnn_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
            ("matmul_allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
        ):
            try:
                env[key] = bool(read())
            except Exception as error:  # noqa: BLE001 - newer torch: fp32_precision instead
                env[key] = f"unreadable ({type(error).__name__})"

    return env


# --- checks --------------------------------------------------------------------------------
class Checks:
    def __init__(self, data: DatasetSplits, device_pref: str) -> None:
        self.data = data
        self.device_pref = device_pref
        self.device = select_device(device_pref)
        self.rows: list[dict[str, Any]] = []
        self.models: dict[str, tuple[SearchSpace, Architecture, torch.nn.Module, float]] = {}

    #: Run only the checks whose name holds this text (``--only``).
    only: str | None = None

    def run(self, name: str, fn: Callable[[], str]) -> None:
        if self.only is not None and self.only not in name:
            return
        started = time.perf_counter()
        try:
            detail, status = fn(), "PASS"
        except Exception as error:  # noqa: BLE001 - report and go on with the next check
            traceback.print_exc()
            detail, status = f"{type(error).__name__}: {error}", "FAIL"
        seconds = time.perf_counter() - started
        self.rows.append({"check": name, "status": status, "seconds": seconds, "detail": detail})
        print(f"[{status}] {name} ({seconds:.1f} s): {detail}", flush=True)

    def all(self) -> None:
        self.run("device", self.check_device)
        self.run("standalone enas-macro", self.check_standalone_macro)
        self.run("standalone metaqnn (restart + median pruner)", self.check_standalone_metaqnn)
        self.run("constraints", self.check_constraints)
        self.run("shared-weights enas-macro", lambda: self.check_shared(MacroSpace(**MACRO)))
        self.run("shared-weights enas-micro", lambda: self.check_shared(MicroSpace(**MICRO)))
        self.run("shared-weights enas-macro through DDP", self.check_shared_ddp)
        self.run("enas search (run_local_search)", self.check_enas_search)
        for key in ("enas-macro", "metaqnn"):
            self.run(f"export {key}", lambda key=key: self.check_export(key))

    # -- the checks; each returns its figures as text or raises -------------------------------
    def check_device(self) -> str:
        auto = select_device("auto")
        if torch.cuda.is_available():
            ensure(auto.type == "cuda", f"auto resolved to {auto} although CUDA is available")
            return (
                f"auto -> {auto} ({torch.cuda.get_device_name(auto)}); checks run on {self.device}"
            )
        return f"auto -> {auto} (no CUDA device); checks run on {self.device}"

    def check_standalone_macro(self) -> str:
        data, device = self.data, self.device
        space = MacroSpace(**MACRO)
        arch = space.sample(np.random.default_rng(0))
        ev = StandaloneEvaluator(space=space, data=data, recipe=RECIPE, device=self.device_pref)
        ensure(ev.device == device, f"evaluator device {ev.device}, expected {device}")
        result = ev.evaluate([arch])[0]
        ensure(result.state is TrialState.COMPLETE, f"{result.state.value}: {result.error}")
        ensure(
            result.objective is not None and result.objective > 20.0,
            f"val accuracy {result.objective} (chance is about 10 %)",
        )
        train = to_tensors(data.x_train, data.y_train, device)
        valid = to_tensors(data.x_valid, data.y_valid, device)
        model, loss = train_from_scratch(
            space,
            arch,
            data.input_shape,
            data.num_classes,
            train,
            RECIPE,
            seed=ev.trial_seed(arch),
            device=device,
        )
        ensure(on_device(model, device), "train_from_scratch left tensors off the device")
        ensure(not model.training, "train_from_scratch should return the model in eval mode")
        acc = accuracy(model, *valid)
        self.models["enas-macro"] = (space, arch, model, acc)
        self.macro_evaluator = ev
        m = result.metrics
        return (
            f"evaluator: val {result.objective:.2f} %, train loss {m['train_loss']:.4f}, "
            f"params {int(m['params'])}, flops {int(m['flops'])}, {result.cost_s:.2f} s; "
            f"train_from_scratch again (same seed): val {acc:.2f} %, loss {loss:.4f}"
        )

    def check_standalone_metaqnn(self) -> str:
        from nas.pruning import PrunerConfig

        data, device = self.data, self.device
        space = MetaQNNSpace(**METAQNN)
        archs = [metaqnn_arch(space)] + [space.sample(np.random.default_rng(s)) for s in (1, 2)]
        reports: list[tuple[int, int, dict[str, float]]] = []
        ev = StandaloneEvaluator(
            space=space,
            data=data,
            recipe=RECIPE,
            device=self.device_pref,
            restart_below_chance=True,
            pruner=PrunerConfig(name="median", n_startup_trials=1),
            report=lambda i, epoch, metrics: reports.append((i, epoch, dict(metrics))),
        )
        results = ev.evaluate(archs)
        states = [r.state.value for r in results]
        ensure(
            results[0].state is TrialState.COMPLETE, f"first trial {states[0]}: {results[0].error}"
        )
        ensure(
            all(r.state in (TrialState.COMPLETE, TrialState.PRUNED) for r in results),
            f"states {states}: {[r.error for r in results]}",
        )
        ensure(any("val_accuracy" in m for _, _, m in reports), "no per-epoch validation report")
        model, _ = train_from_scratch(
            space,
            archs[0],
            data.input_shape,
            data.num_classes,
            to_tensors(data.x_train, data.y_train, device),
            RECIPE,
            seed=ev.trial_seed(archs[0]),
            device=device,
        )
        ensure(on_device(model, device), "train_from_scratch left tensors off the device")
        acc = accuracy(model, *to_tensors(data.x_valid, data.y_valid, device))
        self.models["metaqnn"] = (space, archs[0], model, acc)
        parts = [
            f"{' '.join(space.labels(a))}: {r.state.value} val "
            f"{r.metrics.get('val_accuracy', float('nan')):.2f} % "
            f"restarts {int(r.metrics.get('lr_restarts', 0))}"
            for a, r in zip(archs, results, strict=True)
        ]
        return "; ".join(parts) + f"; {len(reports)} epoch reports"

    def check_constraints(self) -> str:
        from nas.constraints import measure_model

        _, arch, model, _ = self.models["enas-macro"]
        ev, device, shape = self.macro_evaluator, self.device, self.data.input_shape
        figures = ev.constraint_figures([arch], ["params", "flops", "latency_ms"])[0]
        ensure(figures["params"] == count_parameters(model), f"params {figures['params']}")
        cpu_flops = count_flops(copy.deepcopy(model).cpu(), shape, torch.device("cpu"))
        ensure(
            figures["flops"] == cpu_flops,
            f"flops {figures['flops']} on {device}, {cpu_flops} on cpu",
        )
        ensure(0 < figures["latency_ms"] < 1000, f"latency {figures['latency_ms']} ms")
        verdicts = ev.check_constraints(
            [arch], {"max_params": figures["params"] - 1, "max_flops": None, "max_latency_ms": 1e6}
        )
        ensure(verdicts[0][0] is not None and "params" in verdicts[0][0], f"{verdicts}")
        trained = measure_model(model, shape, device, ["latency_ms"], latency_repeats=50)
        ensure(on_device(model, device) and not model.training, "measure_model moved the model")
        return (
            f"untrained child on {device}: params {int(figures['params'])}, flops "
            f"{int(figures['flops'])} (= cpu count), latency {figures['latency_ms']:.3f} ms; "
            f"trained model latency {trained['latency_ms']:.3f} ms (median of 50); "
            f"verdict: {verdicts[0][0]}"
        )

    def check_shared(self, space: SearchSpace) -> str:
        data, device = self.data, self.device
        config = SharedWeightConfig(device=self.device_pref)
        ev = SharedWeightEvaluator(space=space, data=data, config=config, seed=0)
        ensure(on_device(ev.supernet, device), "supernet not on the device")
        rng = np.random.default_rng(0)
        stats = ev.train_epoch(lambda: space.sample(rng))
        ensure(stats["skipped_steps"] == 0 and math.isfinite(stats["train_loss"]), f"{stats}")
        archs = [space.sample(rng) for _ in range(100)]
        results = ev.evaluate(archs)
        ensure(
            all(r.state is TrialState.COMPLETE for r in results),
            f"{[r.error for r in results if r.state is not TrialState.COMPLETE][:3]}",
        )
        rewards = [float(r.objective) for r in results]  # type: ignore[arg-type]
        scores = ev.score_full(archs[:4])
        ensure(all(0.0 <= s <= 100.0 for s in scores), f"scores {scores}")

        # A child carries the supernet's weights: same outputs (batch statistics in both).
        child = ev.supernet.extract_child(archs[0])
        ensure(on_device(child, device), "extract_child left the child off the device")
        x = torch.from_numpy(data.x_valid[:128]).to(device)
        ev.supernet.train()
        child.train()
        with torch.no_grad():
            a, b = ev.supernet(x, archs[0]), child(x)
        child_gap = (a - b).abs().max().item()
        ensure(child_gap <= 1e-4 * (1 + a.abs().max().item()), f"child gap {child_gap:g}")

        # Checkpoint: saved here, reloaded on the device and on the CPU.
        buffer = io.BytesIO()
        torch.save(ev.state_dict(), buffer)
        raw = buffer.getvalue()
        probe = archs[:8]
        here = [r.objective for r in ev.evaluate(probe)]
        same = SharedWeightEvaluator(space=space, data=data, config=config, seed=1)
        same.load_state_dict(torch.load(io.BytesIO(raw)))  # as workers/ray_backend.py does
        again = [r.objective for r in same.evaluate(probe)]
        same_gap = max(abs(p - q) for p, q in zip(here, again, strict=True))
        ensure(same_gap <= 1.0, f"reloaded rewards {again} vs {here}")
        # Loaded onto the CPU first (as api/runner.py resumes a job), then into this device.
        mapped = SharedWeightEvaluator(space=space, data=data, config=config, seed=4)
        mapped.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu"))
        for reloaded in (same, mapped):
            reloaded.train_epoch(lambda: space.sample(rng))  # the optimizer state is usable
            moments = [
                s["momentum_buffer"]
                for s in reloaded.optimizer.state.values()
                if s.get("momentum_buffer") is not None
            ]
            ensure(
                bool(moments) and all(m.device.type == device.type for m in moments),
                "optimizer state off the device after reload",
            )
        cpu_config = SharedWeightConfig(device="cpu")
        on_cpu = SharedWeightEvaluator(space=space, data=data, config=cpu_config, seed=2)
        on_cpu.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu"))
        cpu_rewards = [r.objective for r in on_cpu.evaluate(probe)]
        cpu_gap = max(abs(p - q) for p, q in zip(here, cpu_rewards, strict=True))
        ensure(cpu_gap <= 5.0, f"cpu rewards {cpu_rewards} vs {device} {here}")
        bare = SharedWeightEvaluator(space=space, data=data, config=cpu_config, seed=3)
        bare.load_state_dict(torch.load(io.BytesIO(raw)))  # no map_location
        bare.train_epoch(lambda: space.sample(rng))
        ensure(on_device(bare.supernet, torch.device("cpu")), "cpu supernet moved")
        return (
            f"{count_parameters(ev.supernet)} supernet params; epoch {stats['seconds']:.2f} s, "
            f"loss {stats['train_loss']:.3f}, train acc {stats['train_accuracy']:.1f} %; "
            f"100 rewards mean {statistics.mean(rewards):.1f} %; score_full "
            f"{[round(s, 1) for s in scores]}; child gap {child_gap:.2g}; checkpoint "
            f"({len(raw) / 1e6:.1f} MB) reloaded on {device} (max reward gap {same_gap:.2f} points; "
            f"also via map_location cpu) and cpu "
            f"(max reward gap {cpu_gap:.2f} points), cpu without map_location trains"
        )

    def check_shared_ddp(self) -> str:
        import socket

        import torch.distributed as dist

        space = MacroSpace(**MACRO)
        config = SharedWeightConfig(device=self.device_pref)
        plain, again, wrapped = (
            SharedWeightEvaluator(space=space, data=self.data, config=config, seed=0)
            for _ in range(3)
        )
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # cuDNN's default algorithms add in any order: two plain epochs differ too. Compare
        # under deterministic algorithms, and against a second plain epoch.
        saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        dist.init_process_group(
            backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
        )
        try:
            wrapped.distribute()
            stats = []
            for ev in (plain, again, wrapped):
                rng = np.random.default_rng(0)
                stats.append(ev.train_epoch(lambda rng=rng: space.sample(rng)))
        finally:
            dist.destroy_process_group()
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved

        def gap(a: SharedWeightEvaluator, b: SharedWeightEvaluator) -> float:
            return max(
                (p - q).abs().max().item()
                for p, q in zip(a.supernet.parameters(), b.supernet.parameters(), strict=True)
            )

        ddp_gap, plain_gap = gap(plain, wrapped), gap(plain, again)
        b = stats[2]
        ensure(b["skipped_steps"] == 0 and math.isfinite(b["train_loss"]), f"{b}")
        ensure(
            ddp_gap <= max(1e-4, 4 * plain_gap),
            f"weights after an epoch through DDP differ by {ddp_gap:g} (two plain epochs: "
            f"{plain_gap:g})",
        )
        return (
            f"{backend}: max weight gap {ddp_gap:.2g} after one epoch through DDP (two plain "
            f"epochs: {plain_gap:.2g}); epoch {b['seconds']:.2f} s through DDP, "
            f"{stats[0]['seconds']:.2f} s without"
        )

    def check_enas_search(self) -> str:
        from workers.local import run_local_search
        from workers.search import parse_spec

        spec = {
            "name": "gpu-check-enas",
            "dataset": {"name": "mnist1d"},
            "space": {"name": "enas-macro", **MACRO},
            "controller": {"name": "enas"},
            "evaluator": {
                "name": "shared-weights",
                "epochs": 2,
                "rewards_per_epoch": 20,
                "derive_samples": 8,
                "device": self.device_pref,
            },
            "budget": {"minutes": 5},
            "final": {
                "retrain_top_k": 1,
                "epochs": 3,
                "lr": 0.003,
                "batch_size": 128,
                "device": self.device_pref,
            },
            "seed": 0,
        }
        with tempfile.TemporaryDirectory() as out:
            summary = run_local_search(parse_spec(spec), Path(out), progress=False)
            ensure(summary["trials"] == 40, f"{summary['trials']} trials, expected 2 x 20")
            ensure(summary["trial_states"] == {"COMPLETE": 40}, f"{summary['trial_states']}")
            final = summary["final"][0]
            weights = torch.load(final["weights"], weights_only=True)
            ensure(
                all(v.device.type == "cpu" for v in weights.values()),
                "final weights saved off the CPU",
            )
            from nas.export import load_network

            space = MacroSpace(**MACRO)
            arch = Architecture.from_dict(summary["best"]["architecture"])
            net = load_network(
                space, arch, self.data.input_shape, self.data.num_classes, final["weights"]
            )
            x, y = to_tensors(self.data.x_test, self.data.y_test, torch.device("cpu"))
            reloaded = accuracy(net, x, y)
        ensure(
            abs(reloaded - final["test_accuracy"]) <= 1.0,
            f"reloaded test accuracy {reloaded:.2f} vs {final['test_accuracy']:.2f}",
        )
        return (
            f"{summary['trials']} rewards in {summary['wall_time_s']:.1f} s; best score "
            f"{summary['ranked'][0]['score']:.2f} %; retrained 3 epochs: test "
            f"{final['test_accuracy']:.2f} % in {final['train_seconds']:.1f} s, weights on "
            f"cpu, reloaded on cpu: test {reloaded:.2f} %"
        )

    def check_export(self, key: str) -> str:
        import onnxruntime

        from nas.export import architecture_from_json, export, load_network

        space, arch, model, acc = self.models[key]
        device, shape, classes = self.device, self.data.input_shape, self.data.num_classes
        x = torch.from_numpy(self.data.x_test[:64])
        with torch.no_grad():
            on_dev = model(x.to(device)).cpu()
            cpu_copy = copy.deepcopy(model).cpu().eval()
            on_cpu = cpu_copy(x)
        scale = 1.0 + on_cpu.abs().max().item()
        common = {"space": space, "arch": arch, "input_shape": shape, "num_classes": classes}
        outputs: dict[str, torch.Tensor] = {}
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            path = export("torchscript", tmp / "model.pt", model=model, **common)
            with torch.no_grad():
                outputs["torchscript"] = torch.jit.load(str(path), map_location="cpu")(x)
            path = export("onnx", tmp / "model.onnx", model=model, **common)
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            outputs["onnx"] = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
            path = export("pytorch", tmp / "model.py", **common)
            namespace: dict[str, Any] = {"__name__": "gpu_check_exported_model"}
            exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102
            weights = tmp / "weights.pt"
            torch.save(model.state_dict(), weights)  # device tensors, as a user may save them
            with torch.no_grad():
                outputs["pytorch source"] = namespace["build"](str(weights)).eval()(x)
                outputs["load_network(state_dict)"] = load_network(
                    space, arch, shape, classes, model.state_dict()
                )(x)
                outputs["load_network(file)"] = load_network(space, arch, shape, classes, weights)(
                    x
                )
            path = export(
                "model-card",
                tmp / "card.md",
                model=model,
                metrics={"val_accuracy": acc},
                latency_runs=20,
                **common,
            )
            card = path.read_text()
            path = export("json", tmp / "arch.json", **common)
            ensure(architecture_from_json(path.read_text())[1] == arch, "JSON round trip")
        ensure(
            on_device(model, device) and not model.training,
            "exporting moved the model or changed its mode",
        )
        latency = next((line for line in card.splitlines() if line.startswith("| Latency")), "")
        if device.type == "cuda":
            ensure("cuda (" in latency, f"model card latency not on cuda: {latency}")
        parts, bad = [], []
        for name, got in outputs.items():
            gap_cpu = (got - on_cpu).abs().max().item()
            gap_dev = (got - on_dev).abs().max().item()
            agree = (got.argmax(1) == on_dev.argmax(1)).float().mean().item()
            parts.append(f"{name} {gap_cpu:.1e}/{gap_dev:.1e}/{100 * agree:.0f}%")
            tol = 1e-4 if name == "onnx" else 1e-5
            if not gap_cpu <= tol * scale or not gap_dev <= 5e-2 * scale or agree < 0.95:
                bad.append(name)
        ensure(not bad, f"outputs differ: {bad}; " + ", ".join(parts))
        return (
            f"val {acc:.2f} %; max |export - model| vs cpu copy / vs model on {device} / "
            f"argmax agreement on 64 test inputs: "
            + ", ".join(parts)
            + f"; card {latency.split('|')[2].strip() if latency else '?'}"
        )


# --- timings -------------------------------------------------------------------------------
def time_device(data: DatasetSplits, device_pref: str, repeats: int) -> dict[str, float]:
    device = select_device(device_pref)
    if device.type == "cpu":
        configure_cpu_threads()
    out: dict[str, float] = {}
    for label, space in (
        ("enas-macro 6x32", MacroSpace(**MACRO)),
        ("enas-micro B4 N1 c8", MicroSpace(**MICRO)),
    ):
        ev = SharedWeightEvaluator(
            space=space, data=data, config=SharedWeightConfig(device=device_pref), seed=0
        )
        rng = np.random.default_rng(0)

        def sample(space: SearchSpace = space, rng: np.random.Generator = rng) -> Architecture:
            return space.sample(rng)

        ev.train_epoch(sample)  # warm-up (cuDNN, allocator)
        ev.evaluate([sample() for _ in range(20)])
        epochs, rewards = [], []
        for _ in range(repeats):
            epochs.append(timed(lambda ev=ev, s=sample: ev.train_epoch(s), device))
            archs = [sample() for _ in range(100)]
            rewards.append(timed(lambda ev=ev, a=archs: ev.evaluate(a), device))
        out[f"{label}: supernet epoch, s"] = statistics.median(epochs)
        out[f"{label}: 100 rewards, s"] = statistics.median(rewards)
        print(
            f"  {device_pref}: {label}: epoch {[round(t, 3) for t in epochs]} s, "
            f"100 rewards {[round(t, 3) for t in rewards]} s",
            flush=True,
        )
    from nas.constraints import measure_model

    macro, metaqnn = MacroSpace(**MACRO), MetaQNNSpace(**METAQNN)
    for label, space, arch in (
        ("enas-macro 6x32 child", macro, macro.sample(np.random.default_rng(0))),
        ("metaqnn child", metaqnn, metaqnn_arch(metaqnn)),
    ):
        ev = StandaloneEvaluator(space=space, data=data, recipe=RECIPE, device=device_pref)
        ev.evaluate([arch], [{"epochs": 1}])  # warm-up
        trials = [timed(lambda ev=ev, a=arch: ev.evaluate([a]), device) for _ in range(repeats)]
        out[f"{label}: standalone trial ({RECIPE.epochs} epochs), s"] = statistics.median(trials)
        model = train_from_scratch(
            space,
            arch,
            data.input_shape,
            data.num_classes,
            to_tensors(data.x_train[:256], data.y_train[:256], device),
            TrainRecipe(epochs=1),
            seed=0,
            device=device,
        )[0]
        latency = measure_model(
            model, data.input_shape, device, ["latency_ms"], latency_repeats=100
        )["latency_ms"]
        out[f"{label}: batch-1 latency, ms"] = latency
        print(
            f"  {device_pref}: {label}: trials {[round(t, 3) for t in trials]} s, "
            f"latency {latency:.3f} ms",
            flush=True,
        )
    return out


def print_table(timings: dict[str, dict[str, float]], env: dict[str, Any]) -> str:
    devices = list(timings)
    names = list(dict.fromkeys(k for rows in timings.values() for k in rows))
    heads = [
        f"{d} ({env.get('gpu', 'GPU')})"
        if d.startswith("cuda")
        else f"{d} ({env['cpu_cores_usable']} threads)"
        for d in devices
    ]
    lines = [
        "| figure (median) | "
        + " | ".join(heads)
        + " |"
        + (" cpu / cuda |" if len(devices) == 2 else ""),
        "|---" * (len(devices) + 1 + (len(devices) == 2)) + "|",
    ]
    for name in names:
        values = [timings[d].get(name) for d in devices]
        cells = [f"{v:.3f}" if v is not None else "-" for v in values]
        ratio = ""
        if len(devices) == 2 and all(v for v in values):
            cpu = timings["cpu"].get(name) if "cpu" in timings else None
            gpu = next((timings[d][name] for d in devices if d != "cpu"), None)
            ratio = f" {cpu / gpu:.1f}x |" if cpu and gpu else " - |"
        lines.append(f"| {name} | " + " | ".join(cells) + " |" + ratio)
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--device", default="auto", help="device of the checks (auto|cpu|cuda)")
    parser.add_argument(
        "--timing-devices",
        nargs="+",
        default=None,
        help="devices to time; default: cuda (when present) and cpu",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed runs per figure (default 3)"
    )
    parser.add_argument(
        "--num-samples",
        type=positive_int,
        default=5000,
        help="MNIST-1D train + test (default 5000)",
    )
    parser.add_argument("--skip-checks", action="store_true")
    parser.add_argument("--only", default=None, help="run only the checks whose name has this")
    parser.add_argument("--skip-timings", action="store_true")
    parser.add_argument("--json", default=None, help="write checks, timings and environment here")
    args = parser.parse_args()

    if not os.environ.get("NAS_CACHE_DIR"):  # (a cache of this run's own, removed at its end)
        os.environ["NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="gpu-check-cache-")
        atexit.register(shutil.rmtree, os.environ["NAS_CACHE_DIR"], True)
    torch.manual_seed(0)
    env = describe_environment()
    print("environment: " + json.dumps(env), flush=True)
    data = load_dataset("mnist1d", seed=0, num_samples=args.num_samples)
    print(
        f"MNIST-1D: {data.sizes()}, input {data.input_shape}, {data.num_classes} classes",
        flush=True,
    )

    checks = None
    if not args.skip_checks:
        checks = Checks(data, args.device)
        checks.only = args.only
        print(f"\n== checks on {checks.device}", flush=True)
        checks.all()

    timings: dict[str, dict[str, float]] = {}
    table = ""
    if not args.skip_timings:
        devices = args.timing_devices or (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"])
        for device in devices:
            print(f"\n== timings on {device} ({args.repeats} repeats after a warm-up)", flush=True)
            timings[device] = time_device(data, device, args.repeats)
        print()
        table = print_table(timings, env)

    failed = [] if checks is None else [r["check"] for r in checks.rows if r["status"] != "PASS"]
    if checks is not None:
        print(
            f"\nchecks: {len(checks.rows) - len(failed)} passed, {len(failed)} failed"
            + (f" ({', '.join(failed)})" if failed else ""),
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": env,
                    "checks": [] if checks is None else checks.rows,
                    "timings": timings,
                    "table": table,
                    "repeats": args.repeats,
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
