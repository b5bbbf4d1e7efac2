"""The summary of a finished search: best and ranked architectures, trial counts, the
Pareto front; what ``nas search`` writes to ``summary.json`` and the service keeps with the
job."""

from __future__ import annotations

import math
from typing import Any

from nas.evaluators.table import NOT_IN_TABLE
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec, spec_warnings
from nas.trial import TrialState
from workers.backend import SearchOutcome, TrialLog
from workers.final import earning_trial


def summarize(
    resolved: ResolvedSpec,
    outcome: SearchOutcome,
    space: SearchSpace,
    final: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec = resolved.spec
    states: dict[str, int] = {}
    for trial in outcome.trials:
        states[trial.result.state.value] = states.get(trial.result.state.value, 0) + 1
    ranked = [
        {"architecture": arch.to_dict(), "genotype": space.describe(arch), "score": score}
        for arch, score in outcome.ranked
    ]
    best = None
    if outcome.ranked:
        arch, score = outcome.ranked[0]
        best = {
            "architecture": arch.to_dict(),
            "genotype": space.describe(arch),
            "objective": {spec.objective.metric: score},
            "final_metrics": outcome.final_metrics,
        }
        then = spec.objective.objectives[1:]
        # (whose hparams final: used; none for a derived architecture, even where a trial of
        # it scored the same on its minibatch: the job page then named that trial)
        trial = None if outcome.derived else earning_trial(outcome.trials, arch, score, then)
        if trial is not None:
            best["trial"] = trial.number
            best["metrics"] = dict(trial.result.metrics)
            if trial.hparams:
                best["hparams"] = dict(trial.hparams)
        if final:
            best["final"] = {
                k: v for k, v in final[0].items() if k not in ("architecture", "genotype")
            }
    summary: dict[str, Any] = {
        "name": spec.name,
        "space": spec.space.name,
        "controller": spec.controller.name,
        "evaluator": spec.evaluator.name,
        "dataset": spec.dataset.name,
        "seed": spec.seed,
        "trials": len(outcome.trials),
        "trial_states": states,
        "stop_reason": outcome.stop_reason,
        # What the reader must know about this result (the time budget cut the search
        # short, a hyperparameter named almost like one the evaluator takes): shown by nas
        # search, nas show / watch, and the job over HTTP.
        "warnings": [*spec_warnings(spec), *outcome.warnings],
        "wall_time_s": round(outcome.wall_s, 3),
        "simulated_time_s": round(outcome.simulated_s, 3),
        "best": best,
        "ranked": ranked,
        "final": final,
    }
    completed = any(t.result.state is TrialState.COMPLETE for t in outcome.trials)
    if outcome.trials and not completed and outcome.failure() is None:
        # Every trial PRUNED (constraints no candidate met, a pruner) or some failed: the
        # job ran, but it found nothing to retrain or export, which the reader must see.
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        # (why, as far as the trials tell: the constraints were named where none were set)
        constrained = spec.objective.constraints is not None and spec.objective.constraints.limits()
        missing = sum(t.result.error == NOT_IN_TABLE for t in outcome.trials)
        why = f"; {missing} proposed combinations the table does not hold" if missing else ""
        if constrained and missing < len(outcome.trials):
            why += "; with objective.constraints, no candidate may have met them"
        summary["warnings"].append(
            f"no trial completed ({counts}): there is no best architecture to retrain or "
            f"export{why}"
        )
    elif (
        not outcome.trials
        and best is None
        and outcome.failure() is None
        and "meta_training" not in outcome.report  # (a policy, no trials, by design)
    ):
        # The budget ran out before the first trial (a tiny budget.minutes): the job
        # SUCCEEDED with nothing to show, which went without a word.
        summary["warnings"].append(
            f"no trial completed (none recorded: the budget ended before a first trial "
            f"counted, {outcome.stop_reason}): there is no best architecture to retrain or "
            "export"
        )
    asked = spec.final.retrain_top_k if spec.final is not None else 0
    if final and len(final) < asked:
        # (fewer architectures than asked were retrained, without a word: a shared-weight
        # search ranks only those it derives)
        why = (
            "a shared-weight search retrains the distinct architectures its "
            "evaluator.derive_samples draws from the policy: raise derive_samples"
            if outcome.derived
            else "it had no more distinct architectures"
        )
        summary["warnings"].append(
            f"final.retrain_top_k is {asked}, but the search ranked {len(outcome.ranked)} "
            f"architecture(s), so {len(final)} were retrained ({why})"
        )
    summary.update(outcome.report)  # a meta-training job's meta_training
    if outcome.files:
        summary["files"] = [{"name": f.name, "kind": f.kind} for f in outcome.files]
    if (failure := outcome.failure()) is not None:
        summary["failure"] = failure
    if spec.objective.is_multi:  # the Pareto front over the objectives, in trial order
        # Each with its rank, which exports and retrains address (1-based): its
        # architecture's, when that rank's trial has its hyperparameters (a joint search's
        # other configurations of a ranked architecture have none: null).
        objectives = spec.objective.objectives
        log = TrialLog(maximize=objectives[0][1] == "maximize", then=objectives[1:])
        ranked = {
            t.architecture: (place, t) for place, t in enumerate(log.ranked(outcome.trials), 1)
        }

        def rank(t: Any) -> int | None:
            place, ranked_trial = ranked[t.architecture]
            return place if dict(ranked_trial.hparams) == dict(t.hparams) else None

        summary["pareto"] = [
            {
                "trial": t.number,
                "rank": rank(t),
                "architecture": t.architecture.to_dict(),
                "genotype": space.describe(t.architecture),
                # (a joint search's front holds configurations: an architecture may be on it
                # twice, with other hyperparameters)
                **({"hparams": dict(t.hparams)} if spec.hparams else {}),
                "values": {m: _finite(t.result.metrics.get(m)) for m, _ in objectives},
            }
            for t in outcome.pareto
        ]
    return summary


def _finite(value: Any) -> Any:
    """A metric as JSON holds it: a number that is missing or not finite is ``None``."""
    if isinstance(value, int | float) and not math.isfinite(value):
        return None
    return value
