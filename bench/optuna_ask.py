"""What the Optuna bridge costs per proposal: each Optuna controller of the product
(``controllers/optuna_search.py``) against plain Optuna with the same sampler, over the same
NAS-Bench-201 space, in one run.

For each controller, ``--trials`` proposals one after another (ask, then tell), the
objective a cheap deterministic function of the architecture's six choices (no table: only
the proposals' cost is measured). The product: ``CONTROLLERS.get(name)(space=Nb201Space(),
seed=s)``, ``ask`` + ``tell``, which builds a fresh sampler per ask and per tell (seeded by
trial number, for exact resume). Plain Optuna: ``study.optimize`` with the sampler's class
and the product's default options, one ``suggest_categorical`` per edge (``suggest_int``
for ``cmaes``, as the product maps them). Printed per controller: milliseconds per trial
over the first and the last 100 trials, median over ``--seeds`` runs, and the product's
ratio to plain Optuna; a cost that grows with the trials is the bridge's (before
``_keep_intersection``, ``nsga2`` at 1,000 trials took 24 ms per ask against 0.9).

Usage: ``.venv/bin/python bench/optuna_ask.py [--trials 1000] [--seeds 3]
[--controllers tpe cmaes nsga2]``
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controllers import CONTROLLERS
from nas.spaces import Nb201Space
from nas.trial import TrialResult, TrialState

WINDOW = 100


def objective(choices: list[int]) -> float:
    """A deterministic score with structure for the samplers to find."""
    return float(sum((i + 1) * c for i, c in enumerate(choices)) % 13)


def plain_sampler(name: str, seed: int, options: dict) -> optuna.samplers.BaseSampler:
    options = {k: v for k, v in options.items() if k != "max_pending"}
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **options)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, **options)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **options)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **options)
    raise SystemExit(f"no plain sampler for {name}")


def product_times(name: str, trials: int, seed: int) -> list[float]:
    controller = CONTROLLERS.get(name)(space=Nb201Space(), seed=seed)
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        candidate = controller.ask()
        score = objective(list(candidate.architecture.choices))
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=score))
        times.append(time.perf_counter() - started)
    return times


def plain_times(name: str, trials: int, seed: int) -> list[float]:
    options = CONTROLLERS.get(name).Config().model_dump(exclude_none=True)
    study = optuna.create_study(direction="maximize", sampler=plain_sampler(name, seed, options))
    space = Nb201Space()
    names = [d.name for d in space.decisions()]
    as_int = name == "cmaes"
    times: list[float] = []
    last = [time.perf_counter()]

    def measure(trial: optuna.Trial) -> float:
        choices = [
            trial.suggest_int(n, 0, 4) if as_int else trial.suggest_categorical(n, [0, 1, 2, 3, 4])
            for n in names
        ]
        return objective(choices)

    def tick(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    study.optimize(measure, n_trials=trials, callbacks=[tick])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--controllers", nargs="+", default=["tpe", "cmaes", "nsga2"])
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(
        f"# bench/optuna_ask.py  python {sys.version.split()[0]}  optuna {optuna.__version__}  "
        f"{args.trials} trials  {args.seeds} seeds  (ms per trial, median over seeds)"
    )
    print(
        f"{'controller':10s} {'product first':>14s} {'product last':>13s} "
        f"{'plain first':>12s} {'plain last':>11s} {'ratio last':>11s}"
    )
    for name in args.controllers:
        runs = {"product": [], "plain": []}
        for seed in range(args.seeds):
            runs["product"].append(product_times(name, args.trials, seed))
            runs["plain"].append(plain_times(name, args.trials, seed))
        figures = {
            (way, part): statistics.median(
                1000 * statistics.fmean(t[:WINDOW] if part == "first" else t[-WINDOW:])
                for t in times
            )
            for way, times in runs.items()
            for part in ("first", "last")
        }
        ratio = figures["product", "last"] / figures["plain", "last"]
        print(
            f"{name:10s} {figures['product', 'first']:14.2f} {figures['product', 'last']:13.2f} "
            f"{figures['plain', 'first']:12.2f} {figures['plain', 'last']:11.2f} {ratio:10.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
