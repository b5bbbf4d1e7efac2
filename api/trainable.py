"""Whether a job's architectures can be trained from scratch here: the rule that
``POST /jobs/{id}/retrain``, the exports needing weights and the job read's
``retrain_refused`` field all ask (its own module, below ``api.services`` and
``api.retraining``, so that both can import it)."""

from __future__ import annotations

from nas.datasets import DATASETS, NB201_DATASETS
from nas.evaluators import EVALUATORS
from nas.spaces import SPACES
from nas.spec import ResolvedSpec

__all__ = ["trainable_problem"]


def trainable_problem(resolved: ResolvedSpec) -> str | None:
    """Why the job's architectures cannot be trained from scratch here, or ``None``."""
    dataset, space = resolved.spec.dataset.name, resolved.spec.space.name
    evaluator = EVALUATORS.get(resolved.spec.evaluator.name)
    if evaluator.search == "meta-train":
        return (
            f"it is a meta-training job ({evaluator.name}): it trains an RL² policy, not "
            "architectures (download the policy: nas policy JOB, GET /api/v1/jobs/JOB/policy)"
        )
    entry = DATASETS.get(dataset)
    if entry.tasks is not None:
        return (
            f"its dataset {dataset!r} is a task distribution for few-shot meta-learning: its "
            "models are meta-trained by the search's evaluator, not trained from scratch on "
            "arrays (the best's meta-test figures are in the job's final_metrics)"
        )
    if dataset in NB201_DATASETS:
        return (
            f"its dataset {dataset!r} is a tabular benchmark (accuracies read from the "
            "NAS-Bench-201 table): there is no data here to train on"
        )
    if entry.load is None:
        return (
            f"its dataset {dataset!r} is a benchmark table (each trial's figures are read "
            "from the table's rows): there is no data here to train on"
        )
    if not SPACES.get(space).trainable:
        trainable = [name for name in SPACES if SPACES.get(name).trainable]
        return f"space {space!r} has no trainable network (trainable: {', '.join(trainable)})"
    return None
