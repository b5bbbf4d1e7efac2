"""Few-shot classification on the generated ``glyphs`` benchmark (issue 15): MAML, first-order
MAML, Reptile, Prototypical Networks, Matching Networks and the pretrain-then-fine-tune
baseline side by side on 5-way 1-shot and 5-shot episodes with the same Conv-4 network, and a
short architecture search whose best network is compared with Conv-4 under the same
meta-training budget.

Everything goes through the product's own path: each run is a job spec validated by
``parse_spec`` and scored by the registered evaluator (``evaluate`` for the reward on the
meta-validation episodes, ``final_metrics`` for the 600 meta-test episodes); the search is
``workers.search.SearchLoop`` (what ``nas search`` runs).

- Data: ``glyphs`` (200 generated characters, 20 drawings each; 120 / 40 / 40
  meta-train / meta-validation / meta-test characters) at ``--size`` (20) x 20 pixels
  instead of Omniglot's 28 (time on 2 shared cores; 20 is the smallest side on which
  Conv-4's four poolings leave the fourth convolution a 3 x 3 map), 5-way.
- Network: Conv-4 of the MAML paper as a ``metaqnn`` architecture, ``C(3,F) P(2)`` four
  times then the classifier on the flattened 2 x 2 map (``SM``), with ``--filters`` (8)
  filters per layer instead of the paper's 64 (time on 2 shared cores); batch norm with the
  statistics of each task's examples (all methods but pretraining).
- Meta-training: ``--iterations`` (100) outer steps of ``--meta-batch`` (4) episodes, K
  support and ``--queries`` (5) query examples per class, Adam 1e-3, for every method (the
  pretraining baseline: as many minibatches of as many examples). MAML and first-order
  MAML: one inner step of 0.4 in training, 3 at test (the paper's Omniglot settings);
  Reptile: 5 SGD steps of 0.1 on a task's examples, 5 at test; Matching Networks: plain
  cosine attention (no full-context embeddings: the paper's Omniglot setting);
  pretraining: all 120 meta-train characters, then a new linear head fitted by 100
  gradient steps of 1.0 on each task's L2-normalised support embeddings.
- Test: 600 meta-test episodes (5 query examples per class: ``--eval-queries``), mean
  accuracy and 95% interval (1.96 standard errors).
- Reward: 50 meta-validation episodes.
- Search: ``--search-trials`` (6) architectures of the ``metaqnn`` space (up to 9 layers,
  3x3 / 5x5 convolutions of F/2, F or 2F filters, max pooling, classifier on the flat map or
  after global pooling) sampled by the ``random`` controller, each meta-trained by
  Prototypical Networks on 5-way 1-shot episodes for ``--search-iterations`` (30) and scored
  on 50 meta-validation episodes; the best is then meta-trained with Conv-4's budget and
  tested on the same 600 meta-test episodes as Conv-4.

    nice -n 10 .venv/bin/python bench/meta_fewshot.py [--size 20] [--filters 8]
        [--iterations 100] [--meta-batch 4] [--queries 5] [--eval-queries 5]
        [--search-trials 6] [--search-iterations 30] [--methods ...] [--shots 1 5]
        [--no-search] [--seed 0] [--out runs/meta_fewshot.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch
from _args import description, positive_int

from nas.evaluators import build_evaluator
from nas.spaces import MetaQNNSpace
from workers.search import SearchLoop, parse_spec

METHODS: dict[str, dict[str, Any]] = {
    "maml": {"name": "maml", "inner_steps": 1, "inner_lr": 0.4, "eval_steps": 3},
    "fomaml": {"name": "fomaml", "inner_steps": 1, "inner_lr": 0.4, "eval_steps": 3},
    "reptile": {"name": "reptile", "inner_steps": 5, "inner_lr": 0.1, "eval_steps": 5},
    "protonet": {"name": "protonet"},
    "matching": {"name": "matching"},
    "pretrain": {"name": "pretrain", "finetune_steps": 100, "finetune_lr": 1.0},
}
LABELS = {
    "maml": "MAML (second order)",
    "fomaml": "first-order MAML",
    "reptile": "Reptile",
    "protonet": "Prototypical Networks",
    "matching": "Matching Networks",
    "pretrain": "pretrain + fine-tune a new head",
}


_SIZE = [20]


def args_size() -> int:
    return _SIZE[0]


def space_params(filters: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "metaqnn",
        "max_layers": 9,
        "input_size": args_size(),
        "channels": filters,
        "kernels": [3],
        "pools": [2],
        "fc_units": [],
        **extra,
    }


def conv4(space: MetaQNNSpace, filters: int) -> Any:
    return space.from_labels([f"C(3,{filters})", "P(2)"] * 4 + ["SM"])


def spec(
    args: argparse.Namespace,
    method: str,
    shots: int,
    *,
    space: dict[str, Any],
    iterations: int,
    val_tasks: int = 50,
    trials: int = 1,
    controller: str = "random",
) -> dict[str, Any]:
    evaluator = {
        **METHODS[method],
        "meta_iterations": iterations,
        "meta_batch": args.meta_batch,
        "shots": shots,
        "queries": args.queries,
        "eval_shots": shots,
        "eval_points": args.eval_queries,
        "val_tasks": val_tasks,
        "test_tasks": 600,
    }
    if method == "pretrain":  # as many examples per step as a meta-batch of episodes holds
        evaluator["batch_size"] = args.meta_batch * 5 * (shots + args.queries)
        for key in ("meta_batch", "shots", "queries"):  # (no episodes: refused)
            del evaluator[key]
    return {
        "name": f"fewshot-{method}-{shots}shot",
        "dataset": {"name": "glyphs", "ways": 5, "size": args.size},
        "space": space,
        "controller": {"name": controller},
        "evaluator": evaluator,
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
        "budget": {"trials": trials},
        "seed": args.seed,
    }


def search_space(args: argparse.Namespace) -> dict[str, Any]:
    return space_params(args.filters, channels=args.filters * 2, kernels=[3, 5])


def run_one(
    args: argparse.Namespace, method: str, shots: int, arch_labels: list[str] | None = None
) -> dict[str, Any]:
    """Meta-train one architecture (Conv-4 unless ``arch_labels``, one of the search
    space's), score it on the meta-validation episodes and test it on 600 meta-test
    episodes."""
    space_spec = search_space(args) if arch_labels else space_params(args.filters)
    resolved = parse_spec(spec(args, method, shots, space=space_spec, iterations=args.iterations))
    space, evaluator = build_evaluator(resolved)
    assert isinstance(space, MetaQNNSpace)
    arch = space.from_labels(arch_labels) if arch_labels else conv4(space, args.filters)
    started = time.perf_counter()
    (result,) = evaluator.evaluate([arch])
    trained = time.perf_counter() - started
    final = evaluator.final_metrics(arch)
    tested = time.perf_counter() - started - trained
    row = {
        "method": method,
        "shots": shots,
        "architecture": space.labels(arch),
        "state": result.state.name,
        "error": result.error,
        "metrics": result.metrics,
        "final": final,
        "train_eval_s": round(trained, 1),
        "test_s": round(tested, 1),
    }
    accuracy = final.get("meta_test_accuracy", float("nan"))
    half = final.get("meta_test_accuracy_ci95", float("nan"))
    print(
        f"{method:9s} {shots}-shot  meta-test {accuracy:6.2f} +- {half:4.2f}  "
        f"(val {result.metrics.get('meta_val_accuracy', float('nan')):.2f}; "
        f"{trained:.0f} s meta-training + val, {tested:.0f} s test)",
        flush=True,
    )
    return row


def search(args: argparse.Namespace) -> dict[str, Any]:
    """A short random search over the metaqnn space with ProtoNet on 5-way 1-shot."""
    resolved = parse_spec(
        spec(
            args,
            "protonet",
            1,
            space=search_space(args),
            iterations=args.search_iterations,
            trials=args.search_trials,
        )
    )
    started = time.perf_counter()
    outcome = SearchLoop(resolved).run()
    assert outcome is not None and outcome.best is not None
    built = resolved.build_space()
    assert isinstance(built, MetaQNNSpace)
    trials = [
        {
            "architecture": built.labels(t.architecture),
            "meta_val_accuracy": t.result.metrics.get("meta_val_accuracy"),
            "state": t.result.state.name,
        }
        for t in outcome.trials
    ]
    best = built.labels(outcome.best.architecture)
    seconds = time.perf_counter() - started
    print(f"search: {len(trials)} trials in {seconds:.0f} s, best {' '.join(best)}", flush=True)
    for t in trials:
        print(f"  {t['meta_val_accuracy']}  {' '.join(t['architecture'])}", flush=True)
    return {"trials": trials, "best": best, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=description(__doc__), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--size", type=positive_int, default=20, help="glyph size")
    parser.add_argument("--filters", type=positive_int, default=8, help="conv filters")
    parser.add_argument("--iterations", type=positive_int, default=100, help="meta-iterations")
    parser.add_argument("--meta-batch", type=positive_int, default=4, help="tasks per iteration")
    parser.add_argument(
        "--queries", type=positive_int, default=5, help="query examples per meta-training task"
    )
    parser.add_argument(
        "--eval-queries", type=positive_int, default=5, help="query examples per meta-test task"
    )
    parser.add_argument(
        "--search-trials", type=positive_int, default=6, help="trials of the architecture search"
    )
    parser.add_argument(
        "--search-iterations",
        type=positive_int,
        default=30,
        help="meta-iterations of each search trial",
    )
    parser.add_argument(
        "--methods", nargs="*", default=list(METHODS), choices=list(METHODS), help="methods"
    )
    parser.add_argument("--shots", nargs="*", type=positive_int, default=[1, 5], help="shots")
    parser.add_argument("--no-search", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/meta_fewshot.json"),
        help="where the report goes (runs/ is ignored by git)",
    )
    args = parser.parse_args()
    _SIZE[0] = args.size

    started = time.perf_counter()
    report: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
        "runs": [],
    }
    for shots in args.shots:
        for method in args.methods:
            report["runs"].append(run_one(args, method, shots))
    if not args.no_search:
        found = search(args)
        report["search"] = found
        report["searched_vs_conv4"] = {
            "conv4": next(
                (r for r in report["runs"] if r["method"] == "protonet" and r["shots"] == 1),
                None,
            )
            or run_one(args, "protonet", 1),
            "searched": run_one(args, "protonet", 1, found["best"]),
        }
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["load_average_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"total {report['total_s']} s; wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
