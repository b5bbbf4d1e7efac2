"""Multi-objective search on NAS-Bench-201 CIFAR-10 (accuracy vs parameters), checked against
the true Pareto front of the whole table.

Each run is a job spec with ``objective: {metrics: [val_accuracy, params_M], directions:
[maximize, minimize]}`` under the NATS-Bench protocol budget (12,000 simulated s on CIFAR-10),
parsed by ``nas.spec.parse_spec`` and run by ``workers.search.SearchLoop``; the search sees
what the protocol shows it (12-epoch validation accuracy, and the table's analytic parameter
count) and reports its front (``SearchOutcome.pareto``: its non-dominated trials).

Scoring: the reported architectures are scored by what papers report, 200-epoch test accuracy
(``c10_test200``) vs parameters (``c10_params_analytic_M``), and compared with the true front
of those two columns over all 15,625 architectures. Both objectives are normalised to [0, 1]
by the table's range (accuracy: (a - worst) / (best - worst); parameters: (max - p) / (max -
min)), so the reference point is (worst accuracy, most parameters) of the table; the figure is
HV(reported) / HV(true front), mean +- population std over seeds 0..runs-1. A stricter second
figure puts the reference point at the table's median accuracy and median parameter count
(only the better half of each objective counts). The same ratio with validation accuracy (what
the search optimised) is printed beside it.

    .venv/bin/python bench/nb201_pareto.py                 # 20 seeds, nsga2 and random
    .venv/bin/python bench/nb201_pareto.py --runs 5 --only random
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _args import description, positive_int, prefix_of, row_names

from controllers import CONTROLLERS
from nas.evaluators import TabularEvaluator
from nas.evaluators.tabular import TABLE_ENV
from nas.pareto import hypervolume_2d, non_dominated
from workers.search import SearchComponents, SearchLoop, build_components, parse_spec

DEFAULT_TABLE = REPO.parent / "shared" / "data" / "nb201" / "nb201_tabular.csv.gz"
BUDGET_S = 12_000.0
TARGET = 0.95
DIRECTIONS = ("maximize", "minimize")

#: label -> controller section of the spec
CONTROLLERS_RUN: dict[str, dict] = {
    "nsga2 (population 50, Optuna default)": {"name": "nsga2"},
    "nsga2 (population 20)": {"name": "nsga2", "population_size": 20},
    "random": {"name": "random"},
}


def make_spec(table: str, seed: int, controller: dict) -> dict:
    return {
        "name": f"bench-nb201-pareto-{controller['name']}",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": controller,
        "evaluator": {"name": "tabular", "table": table},
        "objective": {"metrics": ["val_accuracy", "params_M"], "directions": list(DIRECTIONS)},
        "budget": {"simulated_seconds": BUDGET_S},
        "seed": seed,
    }


class Scorer:
    """Hypervolume ratios of a set of architectures (table row codes) against the true front
    of (accuracy column, parameters), normalised by the table's range."""

    def __init__(self, accuracy: np.ndarray, params: np.ndarray, reference: str) -> None:
        self.acc = (accuracy - accuracy.min()) / (accuracy.max() - accuracy.min())
        self.par = (params.max() - params) / (params.max() - params.min())
        if reference == "worst":
            self.ref = (0.0, 0.0)
        else:  # the median of each objective
            self.ref = (float(np.median(self.acc)), float(np.median(self.par)))
        points = np.stack([self.acc, self.par], axis=1)
        self.front = non_dominated(points, ("maximize", "maximize"))
        self.true_hv = hypervolume_2d(points[self.front], self.ref, ("maximize", "maximize"))

    def ratio(self, codes: list[int]) -> float:
        points = [(self.acc[c], self.par[c]) for c in codes]
        return hypervolume_2d(points, self.ref, ("maximize", "maximize")) / self.true_hv


def run(table: str, runs: int, controller: dict, shared: SearchComponents) -> list[dict]:
    evaluator = shared.evaluator
    assert isinstance(evaluator, TabularEvaluator)
    results = []
    for seed in range(runs):
        resolved = parse_spec(make_spec(table, seed, controller))
        spec = resolved.spec
        ctrl = CONTROLLERS.get(spec.controller.name)(
            space=shared.space,
            direction=spec.objective.direction,
            seed=spec.seed,
            objectives=spec.objective.objectives,
            **resolved.controller_params,
        )
        outcome = SearchLoop(
            resolved, components=SearchComponents(shared.space, evaluator, ctrl)
        ).run()
        codes = [int(c) for c in evaluator.table.codes([t.architecture for t in outcome.pareto])]
        results.append(
            {
                "codes": codes,
                "queries": len(outcome.trials),
                "simulated_s": outcome.simulated_s,
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--runs", type=positive_int, default=20, help="seeds 0..runs-1 (default 20)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        type=prefix_of(CONTROLLERS_RUN),
        default=None,
        metavar="NAME",
        help=f"rows whose label starts so: {', '.join(row_names(CONTROLLERS_RUN))} (default: all)",
    )
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE),
        help=f"nb201_tabular.csv.gz (default: ${TABLE_ENV}, else {DEFAULT_TABLE})",
    )
    args = parser.parse_args(argv)
    table = Path(args.table).expanduser()
    if not table.is_file():
        parser.error(f"no NAS-Bench-201 table at {str(table)!r} (set --table or ${TABLE_ENV})")
    print(
        f"# bench/nb201_pareto.py  python {platform.python_version()}  "
        f"{os.cpu_count()} CPUs  table {table}"
    )
    started = time.perf_counter()
    shared = build_components(parse_spec(make_spec(str(table), 0, {"name": "random"})))
    t = shared.evaluator.table  # type: ignore[attr-defined]
    params = t.column("c10_params_analytic_M")
    scorers = {
        "test, worst ref": Scorer(t.column("c10_test200"), params, "worst"),
        "test, median ref": Scorer(t.column("c10_test200"), params, "median"),
        "val12, worst ref": Scorer(t.column("c10_val12"), params, "worst"),
    }
    test = scorers["test, worst ref"]
    print(
        f"== nb201-cifar10: accuracy vs parameters, budget {BUDGET_S:g} simulated s, "
        f"{args.runs} runs (seeds 0..{args.runs - 1})"
    )
    print(
        f"  true front (test200 vs params, whole table): {len(test.front)} architectures; "
        f"val12 front: {len(scorers['val12, worst ref'].front)}"
    )
    for label, controller in CONTROLLERS_RUN.items():
        if args.only is not None and not any(label.startswith(p) for p in args.only):
            continue
        began = time.perf_counter()
        results = run(str(table), args.runs, controller, shared)
        wall = time.perf_counter() - began
        print(f"  {label}")
        for name, scorer in scorers.items():
            ratios = [scorer.ratio(r["codes"]) for r in results]
            mean, std = statistics.fmean(ratios), statistics.pstdev(ratios)
            flag = ""
            if name == "test, worst ref":
                flag = f"  target >= {TARGET}: {'met' if mean >= TARGET else 'NOT met'}"
            print(
                f"    HV ratio ({name:16s}): {mean:.4f} +- {std:.4f} "
                f"(min {min(ratios):.4f}, max {max(ratios):.4f}){flag}"
            )
        sizes = [len(r["codes"]) for r in results]
        queries = [r["queries"] for r in results]
        print(
            f"    reported front size: mean {statistics.fmean(sizes):.1f} (min {min(sizes)}, "
            f"max {max(sizes)}); queries per run median {statistics.median(queries):g}; "
            f"wall {wall:.1f} s"
        )
    print(f"total wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
