"""The summary of a finished search (``workers.summary``)."""

from __future__ import annotations

import numpy as np

from nas.trial import TrialRecord, TrialResult, TrialState
from workers.backend import SearchOutcome
from workers.search import parse_spec
from workers.summary import summarize

SPEC = {
    "name": "derived",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
    "controller": {"name": "enas"},
    "evaluator": {"name": "shared-weights", "epochs": 1},
    "budget": {"trials": 10},
}


def test_a_derived_best_names_no_trial_even_one_of_its_architecture_and_score() -> None:
    """A shared-weight search's answer is derived from the supernet and scored on the whole
    validation split; a trial of the same architecture whose one-minibatch score happened
    to equal it (100.0 on small data) was named as the best's trial."""
    resolved = parse_spec(SPEC)
    space = resolved.build_space()
    arch = space.sample(np.random.default_rng(0))
    trial = TrialRecord(
        number=3,
        candidate_id=3,
        architecture=arch,
        hparams={},
        result=TrialResult(TrialState.COMPLETE, objective=100.0, metrics={"val_accuracy": 100.0}),
        started_at=0.0,
        finished_at=1.0,
    )

    def outcome(derived: bool) -> SearchOutcome:
        return SearchOutcome(
            trials=[trial],
            best=trial,
            stop_reason="done",
            wall_s=1.0,
            simulated_s=0.0,
            ranked=[(arch, 100.0)],
            derived=derived,
        )

    assert "trial" not in summarize(resolved, outcome(True), space)["best"]
    assert summarize(resolved, outcome(False), space)["best"]["trial"] == 3  # a trial search's
