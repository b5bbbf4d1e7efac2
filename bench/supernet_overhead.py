"""Shared-weight overhead: one training step of a child run through the supernet, divided by
the same step on the standalone child network.

What is measured, per sampled architecture ``arch``:

* supernet step: ``loss = cross_entropy(supernet(x, arch), y)``, ``opt.zero_grad(set_to_none=True)``,
  ``loss.backward()``, ``opt.step()``, where ``opt`` is SGD over **all** ``supernet.parameters()``
  (as in ENAS, one optimizer owns the shared weights; parameters the child does not use have
  ``grad is None`` and are skipped by the step);
* child step: the same on ``supernet.extract_child(arch)`` (same op modules and weights, only
  the parameters ``arch`` uses) with SGD over the child's parameters;
* both optimizers: ``SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.00025)`` with torch's
  default implementation (on CPU that is the per-parameter for-loop, not foreach);
* input: a random batch shaped like MNIST-1D, ``(batch, 1, 40)``, 10 classes; ``train()`` mode;
  ``torch.set_num_threads(threads)``.

Steps are timed one by one with ``time.perf_counter``; after a warm-up, ``repeats`` rounds each
run ``steps`` steps of every variant back to back, the order rotating every round, so that the
noise of a shared machine hits all variants alike. Per architecture the ratio is
median(supernet step) / median(child step); per space the figure is the median of those ratios.
Target: <= 1.5.

Extra variants (``--variants``), same interleaving, to locate overhead:

* ``foreach``: both optimizers with ``foreach=True`` (ratio vs. a foreach child);
* ``fused``: both optimizers with ``fused=True``;
* ``active``: the supernet optimizer's param group holds only the parameters that ``arch`` uses
  (found from the grads after a warm-up backward; momentum state is kept per parameter, so this
  is what "step only the params that have grads" costs); ratio vs. the default child;
* ``clip``: both steps add ``clip_grad_norm_([p for p in net.parameters() if p.grad is not None],
  5.0)`` before the SGD step, as the shared-weight evaluator's ``train_epoch`` does (ENAS
  child_grad_bound); ratio vs. a clipped child. Its time is counted in the ``step`` phase;
* ``clip-cached``: as ``clip`` but filtering a parameter list built once
  (``list(net.parameters())``) instead of walking the module tree every step.

    .venv/bin/python bench/supernet_overhead.py
    .venv/bin/python bench/supernet_overhead.py --archs 3 --configs small --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
import torch
import torch.nn.functional as F
from _args import description, non_negative_int, positive_int

from nas.architecture import Architecture
from nas.models import build_supernet, count_parameters
from nas.spaces import MacroSpace, MicroSpace, SearchSpace

TARGET = 1.5
INPUT_SHAPE = (1, 40)  # MNIST-1D: one channel, 40 samples
NUM_CLASSES = 10
#: ENAS child optimizer, as SharedWeightConfig defaults (lr_max, momentum, Nesterov, child_l2_reg)
SGD_KW = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.00025}
GRAD_CLIP = 5.0
VARIANTS = ("foreach", "fused", "active", "clip", "clip-cached")
PHASES = ("zero_grad", "forward", "backward", "step")

#: name -> (space key, constructor); "small" and "large" ends of an MNIST-1D search's range
CONFIGS: dict[str, tuple[str, Callable[[], SearchSpace]]] = {
    "macro-L8-c16": ("enas-macro", lambda: MacroSpace(layers=8, channels=16)),
    "macro-L8-c32": ("enas-macro", lambda: MacroSpace(layers=8, channels=32)),
    "micro-B5-N1-c8": ("enas-micro", lambda: MicroSpace(nodes=5, cells=1, channels=8)),
    "micro-B5-N2-c16": ("enas-micro", lambda: MicroSpace(nodes=5, cells=2, channels=16)),
}
CONFIG_SETS = {
    "small": ["macro-L8-c16", "micro-B5-N1-c8"],
    "large": ["macro-L8-c32", "micro-B5-N2-c16"],
    "both": list(CONFIGS),
}


@dataclass
class Stepper:
    """One (network, optimizer) pair whose training step is timed phase by phase."""

    name: str
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    arch: Architecture | None  # passed to forward for the supernet; None for a child
    x: torch.Tensor
    y: torch.Tensor
    clip: bool = False
    clip_params: list[torch.nn.Parameter] | None = None  # filter this list, not net.parameters()
    times: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})

    def step(self, record: bool = True) -> None:
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        out = self.net(self.x, self.arch) if self.arch is not None else self.net(self.x)
        loss = F.cross_entropy(out, self.y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        if self.clip:
            params = self.clip_params if self.clip_params is not None else self.net.parameters()
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], GRAD_CLIP)
        self.opt.step()
        t4 = time.perf_counter()
        if record:
            self.times.append(t4 - t0)
            for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                self.phases[name].append(dt)

    def median(self) -> float:
        return statistics.median(self.times)

    def phase_medians(self) -> dict[str, float]:
        return {p: statistics.median(v) for p, v in self.phases.items()}


def sgd(params, variant: str) -> torch.optim.SGD:
    extra = (
        {"foreach": True} if variant == "foreach" else {"fused": True} if variant == "fused" else {}
    )
    return torch.optim.SGD(params, **SGD_KW, **extra)


def measure_arch(
    supernet: torch.nn.Module,
    arch: Architecture,
    variants: list[str],
    *,
    batch: int,
    warmup: int,
    repeats: int,
    steps: int,
    seed: int,
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *INPUT_SHAPE, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    supernet.train()
    child = supernet.extract_child(arch)
    child.train()
    steppers: dict[str, Stepper] = {
        "super": Stepper("super", supernet, sgd(supernet.parameters(), "default"), arch, x, y),
        "child": Stepper("child", child, sgd(child.parameters(), "default"), None, x, y),
    }
    for variant in variants:
        if variant in ("foreach", "fused"):
            steppers[f"super-{variant}"] = Stepper(
                f"super-{variant}", supernet, sgd(supernet.parameters(), variant), arch, x, y
            )
            steppers[f"child-{variant}"] = Stepper(
                f"child-{variant}", child, sgd(child.parameters(), variant), None, x, y
            )
        elif variant == "active":
            opt = sgd(supernet.parameters(), "default")
            steppers["super-active"] = Stepper("super-active", supernet, opt, arch, x, y)
        elif variant == "clip":
            steppers["super-clip"] = Stepper(
                "super-clip", supernet, sgd(supernet.parameters(), "default"), arch, x, y, True
            )
            steppers["child-clip"] = Stepper(
                "child-clip", child, sgd(child.parameters(), "default"), None, x, y, True
            )
        elif variant == "clip-cached":
            steppers["super-clip-cached"] = Stepper(
                "super-clip-cached",
                supernet,
                sgd(supernet.parameters(), "default"),
                arch,
                x,
                y,
                True,
                list(supernet.parameters()),
            )
            steppers["child-clip-cached"] = Stepper(
                "child-clip-cached",
                child,
                sgd(child.parameters(), "default"),
                None,
                x,
                y,
                True,
                list(child.parameters()),
            )
    # Warm-up (also fills the grads that tell which supernet parameters arch uses).
    for _ in range(warmup):
        for s in steppers.values():
            s.step(record=False)
    if "super-active" in steppers:
        opt = steppers["super-active"].opt
        used = [p for p in supernet.parameters() if p.grad is not None]
        opt.param_groups[0]["params"] = used
    order = list(steppers.values())
    for r in range(repeats):
        k = r % len(order)
        rotated = order[k:] + order[:k]
        if r % 2:
            rotated.reverse()
        for s in rotated:
            for _ in range(steps):
                s.step()
    med = {name: s.median() for name, s in steppers.items()}
    ratios = {"default": med["super"] / med["child"]}
    for variant in variants:
        if variant in ("foreach", "fused", "clip", "clip-cached"):
            ratios[variant] = med[f"super-{variant}"] / med[f"child-{variant}"]
        elif variant == "active":
            ratios[variant] = med["super-active"] / med["child"]
    return {
        "median_s": med,
        "ratios": ratios,
        "phases": {name: s.phase_medians() for name, s in steppers.items()},
        "child_params": count_parameters(child),
        "child_tensors": len(list(child.parameters())),
    }


def profile_steps(supernet: torch.nn.Module, arch: Architecture, batch: int, n: int) -> None:
    """cProfile ``n`` default supernet steps and ``n`` child steps; print the top entries."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *INPUT_SHAPE, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    child = supernet.extract_child(arch)
    for label, stepper in (
        ("supernet", Stepper("super", supernet, sgd(supernet.parameters(), "default"), arch, x, y)),
        ("child", Stepper("child", child, sgd(child.parameters(), "default"), None, x, y)),
    ):
        for _ in range(3):
            stepper.step(record=False)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            stepper.step(record=False)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        print(f"    -- cProfile, {n} {label} steps, top 12 by tottime --")
        for line in buf.getvalue().splitlines():
            if line.strip():
                print("    " + line)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=description(__doc__), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--configs", choices=[*CONFIG_SETS, *CONFIGS], default="both")
    parser.add_argument(
        "--archs", type=positive_int, default=10, help="sampled architectures per config"
    )
    parser.add_argument("--batch", type=positive_int, default=128, help="batch size")
    parser.add_argument(
        "--warmup", type=non_negative_int, default=3, help="untimed steps per variant"
    )
    parser.add_argument("--repeats", type=positive_int, default=10, help="interleaved rounds")
    parser.add_argument(
        "--steps", type=positive_int, default=3, help="timed steps per variant per round"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        default="foreach,active,clip,clip-cached",
        help="comma list of extra variants: foreach, fused, active, clip, clip-cached; 'none' "
        "for none",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the first architecture of each config (done anyway on a FAIL)",
    )
    args = parser.parse_args(argv)
    variants = [] if args.variants in ("", "none") else args.variants.split(",")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        parser.error(f"unknown variants {bad}; valid: {', '.join(VARIANTS)}")
    if "active" in variants and args.warmup < 1:
        parser.error(
            "--warmup 0 with the 'active' variant: its parameters are found from the grads "
            "of the warm-up steps (use --warmup 1 or more, or leave 'active' out of --variants)"
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    configs = CONFIG_SETS.get(args.configs, [args.configs])

    print(
        f"# bench/supernet_overhead.py  python {platform.python_version()}  torch "
        f"{torch.__version__}  threads {torch.get_num_threads()}"
    )
    print(
        f"# step = zero_grad(set_to_none) + forward + cross_entropy + backward + SGD step "
        f"({', '.join(f'{k}={v}' for k, v in SGD_KW.items())}; torch default impl),"
    )
    print(
        f"#   batch {args.batch} x {INPUT_SHAPE}, {NUM_CLASSES} classes; supernet optimizer "
        f"holds all supernet parameters; child = supernet.extract_child(arch)"
    )
    print(
        f"# {args.archs} archs per config; per arch: {args.warmup} warm-up steps, then "
        f"{args.repeats} interleaved rounds x {args.steps} steps per variant; medians"
    )
    print(f"# ratio = median supernet step / median child step; target <= {TARGET}")

    per_space: dict[str, list[dict]] = {}
    total = time.perf_counter()
    for config in configs:
        space_name, make = CONFIGS[config]
        space = make()
        supernet = build_supernet(space, INPUT_SHAPE, NUM_CLASSES)
        rng = np.random.default_rng(args.seed)
        archs = [space.sample(rng) for _ in range(args.archs)]
        print()
        print(f"== {config}: {space!r}")
        print(
            f"   supernet: {count_parameters(supernet):,} parameters in "
            f"{len(list(supernet.parameters()))} tensors"
        )
        head = f"   {'arch':>4} {'child params':>12} {'tensors':>7} {'child ms':>8} {'super ms':>8} {'ratio':>6}"
        for v in variants:
            head += f" {'r-' + v:>9}"
        print(head)
        started = time.perf_counter()
        results = []
        for i, arch in enumerate(archs):
            res = measure_arch(
                supernet,
                arch,
                variants,
                batch=args.batch,
                warmup=args.warmup,
                repeats=args.repeats,
                steps=args.steps,
                seed=args.seed + i,
            )
            res["config"] = config
            results.append(res)
            line = (
                f"   {i:>4} {res['child_params']:>12,} {res['child_tensors']:>7} "
                f"{fmt_ms(res['median_s']['child'])} {fmt_ms(res['median_s']['super'])} "
                f"{res['ratios']['default']:6.3f}"
            )
            for v in variants:
                line += f" {res['ratios'][v]:9.3f}"
            print(line, flush=True)
        med = statistics.median(r["ratios"]["default"] for r in results)
        line = f"   median ratio {med:.3f}"
        for v in variants:
            line += f"; {v} {statistics.median(r['ratios'][v] for r in results):.3f}"
        print(line + f"   ({time.perf_counter() - started:.0f} s)")
        print("   median phase times, ms (zero_grad / forward / backward / step):")
        for name in results[0]["phases"]:
            ph = {p: statistics.median(r["phases"][name][p] for r in results) for p in PHASES}
            print(f"     {name:<18}" + " / ".join(f"{ph[p] * 1e3:.3f}" for p in PHASES))
        per_space.setdefault(space_name, []).extend(results)
        if args.profile or med > TARGET:
            profile_steps(supernet, archs[0], args.batch, 20)

    print()
    print("== summary: median over all sampled archs of each space")
    failed = False
    for space_name, results in per_space.items():
        med = statistics.median(r["ratios"]["default"] for r in results)
        verdict = "PASS" if med <= TARGET else "FAIL"
        failed |= verdict == "FAIL"
        configs_run = sorted({r["config"] for r in results})
        line = (
            f"   {space_name:<11} median ratio {med:.3f} over {len(results)} archs "
            f"({', '.join(configs_run)}): {verdict} (target <= {TARGET})"
        )
        extras = [f"{v} {statistics.median(r['ratios'][v] for r in results):.3f}" for v in variants]
        if extras:
            line += "; variants: " + ", ".join(extras)
        print(line)
    print(f"total wall time: {time.perf_counter() - total:.0f} s")
    if failed:
        print("at least one space is above the target; see the profiles above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
