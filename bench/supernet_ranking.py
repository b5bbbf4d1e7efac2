"""How well the shared weights rank architectures: Kendall tau and Spearman rho between the
supernet's score and standalone validation accuracy, per ranking remedy, side by side.

Per case (an ENAS example spec) and seed:

* ``--archs`` architectures are drawn uniformly from the case's space (``space.sample``);
* ground truth: each is trained standalone by the product's ``StandaloneEvaluator`` with its
  default recipe (``--standalone-epochs`` overrides the epochs) and scored on the validation
  split; with ``--truth-seeds K`` K times (trial seeds seed, seed+1000, ...) and averaged,
  since one training's validation accuracy is itself a noisy rank (the first two trainings'
  agreement is printed as ``standalone vs standalone``). Standalone training is deterministic
  per (seed, architecture, recipe), so results are cached in ``--cache`` (JSON) and reused by
  every variant and every rerun;
* per training variant the supernet is trained by the product's own ENAS search
  (``workers.shared.SharedWeightSearch`` on the example spec with the variant's evaluator
  options, the ENAS controller's policy choosing the children), then the architectures are
  scored on the whole validation split by ``SharedWeightEvaluator.score_full``; the scoring
  variant ``+bn`` loads the same trained supernet into an evaluator with
  ``bn_recalibration`` and scores again.

Printed per case: each variant's tau per seed, mean tau, mean rho, and where the supernet's
top pick ranks standalone (1 = best); the parameter count alone as a ranking for reference.
Target (issue 17): mean Kendall tau >= 0.6 on MNIST-1D enas-macro over 3 seeds.

    .venv/bin/python bench/supernet_ranking.py [--cases macro micro digits] [--seeds 0 1 2]
        [--archs 30] [--epochs N] [--standalone-epochs N] [--truth-seeds K]
        [--variants enas enas+bn ...] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _args import at_least, description, non_negative_int, positive_int
from scipy.stats import kendalltau, spearmanr

from nas.architecture import Architecture
from nas.evaluators.shared import SharedWeightConfig, SharedWeightEvaluator
from nas.evaluators.standalone import StandaloneEvaluator
from nas.spec import load_spec_file
from workers.search import ResolvedSpec, parse_spec
from workers.shared import SharedWeightSearch

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "macro": REPO / "examples/mnist1d-enas-macro.yaml",
    "micro": REPO / "examples/mnist1d-enas-micro.yaml",
    "digits": REPO / "examples/digits-enas.yaml",
}
#: Training variants: evaluator options over the example's (``{E}``: the search epochs; ``K``:
#: the space's ``fair_k``, the children of one fair step).
TRAINING: dict[str, dict[str, Any]] = {
    "enas": {},
    # The end of the SGDR cycle that E falls in (70 for 60 with T0 10, Tmul 2): the learning
    # rate annealed to lr_min, where E itself may stop mid-cycle.
    "cycle": {"epochs": "cycle"},
    "warmup": {"warmup_epochs": "E/3"},
    "uniform": {"warmup_epochs": "E"},
    "long": {"epochs": "2E"},
    "long-warmup": {"epochs": "2E", "warmup_epochs": "2E/3"},
    # FairNAS strict-fair steps (K children per minibatch, one optimizer step): E/K fair
    # epochs (as many child trainings as E plain epochs), the first third of E then the
    # policy, and all E epochs (about K times the cost).
    "fair-short": {"epochs": "E/K", "warmup_epochs": "E/K", "warmup_sampling": "fair"},
    "fair-warmup": {"warmup_epochs": "E/3", "warmup_sampling": "fair"},
    "fair": {"warmup_epochs": "E", "warmup_sampling": "fair"},
    # Few-shot NAS: the supernet split into one sub-supernet per first-layer op halfway
    # (split_epoch), with the policy's children, or with uniform children throughout.
    "split": {"split_epoch": "E/2"},
    "split-early": {"split_epoch": "E/3"},
    "split-uniform": {"split_epoch": "E/2", "warmup_epochs": "E"},
}


def _cycle_end(epochs: int, t0: int, t_mul: int) -> int:
    start, length = 0, t0
    while start + length < epochs:
        start, length = start + length, length * t_mul
    return start + length


def _resolve_options(
    options: dict[str, Any], epochs: int, t0: int, t_mul: int, fair_k: int
) -> dict[str, Any]:
    table = {
        "E": epochs,
        "E/K": max(1, epochs // fair_k),
        "E/3": max(1, epochs // 3),
        "E/2": max(1, epochs // 2),
        "2E": 2 * epochs,
        "2E/3": 2 * epochs // 3,
        "cycle": _cycle_end(epochs, t0, t_mul),
    }
    return {k: table.get(v, v) if isinstance(v, str) else v for k, v in options.items()}


def _spec(case: str, seed: int, epochs: int | None, options: dict[str, Any]) -> ResolvedSpec:
    spec = load_spec_file(str(CASES[case]))
    spec["seed"] = seed
    evaluator = spec["evaluator"]
    if epochs is not None:
        evaluator["epochs"] = epochs
    defaults = SharedWeightConfig()
    evaluator.update(
        _resolve_options(
            options,
            int(evaluator.get("epochs", defaults.epochs)),
            int(evaluator.get("lr_t0", defaults.lr_t0)),
            int(evaluator.get("lr_t_mul", defaults.lr_t_mul)),
            parse_spec(spec).build_space().fair_k,
        )
    )
    spec["budget"] = {"minutes": 10_000}  # the supernet's epochs, never cut short
    spec.pop("final", None)
    return parse_spec(spec)


def _archs(resolved: ResolvedSpec, seed: int, count: int) -> list[Architecture]:
    space = resolved.build_space()
    rng = np.random.default_rng(10_000 + seed)
    archs: dict[Architecture, None] = {}
    while len(archs) < count:
        archs[space.sample(rng)] = None
    return list(archs)


def _standalone(
    resolved: ResolvedSpec,
    case: str,
    seed: int,
    archs: list[Architecture],
    epochs: int | None,
    cache_path: Path,
    jobs: int = 1,
) -> tuple[list[float], list[float]]:
    """Standalone validation accuracy and parameter count per architecture (cached)."""
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    params = {"epochs": epochs} if epochs is not None else {}
    space = resolved.build_space()
    prefix = json.dumps(
        [
            resolved.spec.dataset.name,
            resolved.dataset_params,
            space.name,
            space.config,
            params,
            seed,
        ],
        sort_keys=True,
        default=str,
    )
    keyed = [(f"{prefix}|{arch.key}", arch) for arch in archs]
    missing = [(i, key, arch) for i, (key, arch) in enumerate(keyed) if key not in cache]
    if missing:
        work = [(resolved, space, seed, params, arch) for _, _, arch in missing]
        started = time.perf_counter()
        if jobs > 1:
            # Separate processes (spawned: CUDA cannot be forked), each training its share;
            # standalone training is deterministic per architecture, so the figures are those
            # of one process.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                results = pool.map(_train_standalone, work)
                done = zip(missing, results)
                for n, ((_, key, _), figures) in enumerate(done, 1):
                    cache[key] = figures
                    cache_path.write_text(json.dumps(cache))  # an interrupted run keeps it
                    _report(case, seed, n, len(missing), figures, started)
        else:
            for n, ((_, key, _), item) in enumerate(zip(missing, work, strict=True), 1):
                cache[key] = _train_standalone(item)
                cache_path.write_text(json.dumps(cache))
                _report(case, seed, n, len(missing), cache[key], started)
    out_acc = [float(cache[key]["val_accuracy"]) for key, _ in keyed]
    out_params = [float(cache[key]["params"]) for key, _ in keyed]
    return out_acc, out_params


_EVALUATORS: dict[str, StandaloneEvaluator] = {}


def _train_standalone(item: tuple[ResolvedSpec, Any, int, dict[str, Any], Architecture]) -> dict:
    """One architecture trained standalone: its validation accuracy and parameter count."""
    resolved, space, seed, params, arch = item
    key = json.dumps(
        [resolved.spec.dataset.name, resolved.dataset_params, space.config, params, seed],
        default=str,
    )
    if key not in _EVALUATORS:  # one per process and recipe: the data is loaded once
        _EVALUATORS[key] = StandaloneEvaluator.from_spec(
            dataset=resolved.spec.dataset.name,
            dataset_params=resolved.dataset_params,
            space=space,
            params=params,
            seed=seed,
        )
    result = _EVALUATORS[key].evaluate([arch])[0]
    return {
        "val_accuracy": result.metrics.get("val_accuracy"),
        "params": result.metrics.get("params"),
    }


def _report(case: str, seed: int, n: int, total: int, figures: dict, started: float) -> None:
    print(
        f"  [{case} seed {seed}] standalone {n}/{total}: {figures['val_accuracy']:.2f} % "
        f"({time.perf_counter() - started:.1f} s so far)",
        flush=True,
    )


def _figures(truth: list[float], scores: list[float]) -> dict[str, float]:
    tau = float(kendalltau(scores, truth).statistic)
    rho = float(spearmanr(scores, truth).statistic)
    best = int(np.argmax(scores))
    rank = 1 + sum(t > truth[best] for t in truth)
    return {"tau": tau, "rho": rho, "top_pick_rank": rank}


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--cases", nargs="+", default=["macro"], choices=sorted(CASES), help="(default: macro)"
    )
    parser.add_argument(
        "--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2], help="(default: 0 1 2)"
    )
    parser.add_argument(
        "--archs",
        type=at_least(2, "a rank correlation needs two"),
        default=30,
        help="architectures ranked per case and seed (default 30)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="supernet epochs (default: the example's)"
    )
    parser.add_argument(
        "--standalone-epochs",
        type=positive_int,
        default=None,
        help="standalone epochs (default: the evaluator's default recipe)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["enas", "enas+bn", "cycle", "cycle+bn", "warmup", "warmup+bn"],
        help=f"training variant ({', '.join(TRAINING)}), '+bn' to score with bn_recalibration "
        "(default: enas enas+bn cycle cycle+bn warmup warmup+bn)",
    )
    parser.add_argument(
        "--bn-batches",
        type=positive_int,
        default=8,
        help="bn_recalibration of the '+bn' variants (default 8)",
    )
    parser.add_argument(
        "--truth-seeds",
        type=positive_int,
        default=1,
        help="standalone trainings per architecture (trial seeds seed, seed+1000, ...): the "
        "ground truth is their mean, and with 2 or more the first two's tau is printed as "
        "'standalone vs standalone', the agreement of the ground truth with itself (default 1)",
    )
    parser.add_argument(
        "--cache",
        default="/tmp/supernet_ranking_cache.json",
        help="standalone trainings' results, kept between runs and reused (default: "
        "/tmp/supernet_ranking_cache.json; delete it to train them again)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="processes training the standalone ground truth side by side (e.g. on a GPU "
        "machine, where each small network leaves the device mostly idle; default 1)",
    )
    parser.add_argument("--out", default=None, help="write every figure as JSON here")
    parser.add_argument(
        "--ground-truth-only",
        action="store_true",
        help="only fill the standalone cache (e.g. in a second process with its own --cache)",
    )
    args = parser.parse_args()
    for variant in args.variants:
        if variant.removesuffix("+bn") not in TRAINING:
            parser.error(
                f"unknown variant {variant!r}: one of {', '.join(TRAINING)}, each optionally "
                "with '+bn'"
            )
    cache = Path(args.cache)
    rows: list[dict[str, Any]] = []
    for case in args.cases:
        for seed in args.seeds:
            base = _spec(case, seed, args.epochs, {})
            archs = _archs(base, seed, args.archs)
            runs = [
                _standalone(
                    base, case, seed + 1000 * k, archs, args.standalone_epochs, cache, args.jobs
                )
                for k in range(args.truth_seeds)
            ]
            sizes = runs[0][1]
            truth = [float(np.mean(values)) for values in zip(*(acc for acc, _ in runs))]
            rows.append(
                {"case": case, "seed": seed, "variant": "params only", **_figures(truth, sizes)}
            )
            if args.truth_seeds > 1:  # how well one standalone training ranks like another
                rows.append(
                    {
                        "case": case,
                        "seed": seed,
                        "variant": "standalone vs standalone",
                        **_figures(runs[1][0], runs[0][0]),
                    }
                )
            if args.ground_truth_only:
                continue
            trained = {v.removesuffix("+bn") for v in args.variants}
            for name in [t for t in TRAINING if t in trained]:
                resolved = _spec(case, seed, args.epochs, TRAINING[name])
                search = SharedWeightSearch(resolved)
                started = time.perf_counter()
                search.run()
                train_s = time.perf_counter() - started
                evaluator = search.evaluator
                last = search.curve[-1] if search.curve else {}
                common = {
                    "case": case,
                    "seed": seed,
                    "train_s": train_s,
                    "epochs": evaluator.epoch,
                    "train_accuracy": last.get("train_accuracy"),
                    "mean_reward": last.get("mean_reward"),
                }
                if name in args.variants:
                    scores = evaluator.score_full(archs)
                    rows.append({**common, "variant": name, **_figures(truth, scores)})
                    print(json.dumps(rows[-1]), flush=True)
                if f"{name}+bn" in args.variants:
                    config = SharedWeightConfig(
                        **{**evaluator.config.model_dump(), "bn_recalibration": args.bn_batches}
                    )
                    recal = SharedWeightEvaluator(
                        space=evaluator.space, data=evaluator.data, config=config, seed=seed
                    )
                    recal.load_state_dict(evaluator.state_dict())
                    scores = recal.score_full(archs)
                    rows.append({**common, "variant": f"{name}+bn", **_figures(truth, scores)})
                    print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    _print_table(rows, args)


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.archs} architectures per seed, seeds {args.seeds}, supernet epochs "
        f"{args.epochs or 'of the example'}, standalone epochs "
        f"{args.standalone_epochs or 'of the default recipe'}"
    )
    for case in args.cases:
        print(
            f"\n{case}: Kendall tau per seed | mean tau | mean Spearman rho | top pick's "
            f"standalone rank per seed | supernet train acc (last epoch) | train s"
        )
        names = list(dict.fromkeys(r["variant"] for r in rows if r["case"] == case))
        for name in names:
            sel = [r for r in rows if r["case"] == case and r["variant"] == name]
            taus = " ".join(f"{r['tau']:+.2f}" for r in sel)
            ranks = " ".join(str(r["top_pick_rank"]) for r in sel)
            acc = [r["train_accuracy"] for r in sel if r.get("train_accuracy") is not None]
            secs = [r["train_s"] for r in sel if "train_s" in r]
            print(
                f"  {name:<24} {taus:<22} | {statistics.mean(r['tau'] for r in sel):+.3f} | "
                f"{statistics.mean(r['rho'] for r in sel):+.3f} | {ranks:<10} | "
                + (f"{statistics.mean(acc):.1f}" if acc else "-")
                + " | "
                + (f"{statistics.median(secs):.0f}" if secs else "-")
            )
    print("\ntarget: mean tau >= 0.6 on macro over 3 seeds")


if __name__ == "__main__":
    main()
