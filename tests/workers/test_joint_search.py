"""Joint search end to end: architecture + optimiser + learning rate + loss on MNIST-1D."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workers.local import run_local_search
from workers.search import parse_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_joint_search_records_every_choice_per_trial(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "examples/mnist1d-joint.yaml").read_text())
    doc["dataset"]["num_samples"] = 600  # the example's search, on a smaller dataset
    doc["final"] = {"retrain_top_k": 1, "epochs": 1, "train_on": "train"}
    # a name of the user's own, spelled as other tools spell weight decay: searched and
    # recorded, and the summary says that no trial trained with it
    doc["hparams"]["wd"] = {"type": "float", "low": 0.0, "high": 0.01}
    resolved = parse_spec(doc)
    assert resolved.hparams is not None
    summary = run_local_search(resolved, tmp_path / "run", progress=False)

    trials = [json.loads(line) for line in (tmp_path / "run/trials.jsonl").read_text().splitlines()]
    assert len(trials) == 6
    (warning,) = summary["warnings"]
    assert warning.startswith("hparams.wd is a name of your own") and "'weight_decay'" in warning
    assert all(t["state"] == "COMPLETE" for t in trials)
    for t in trials:
        hp = t["hparams"]
        assert resolved.hparams.validate(hp) == hp
        assert {"optimizer", "lr", "loss"} <= set(hp)
        # Inactive conditional hyperparameters are absent, not placeholders.
        assert ("momentum" in hp) == (hp["optimizer"] == "sgd")
        assert ("label_smoothing" in hp) == (hp["loss"] == "label_smoothing")
    assert len({t["hparams"]["lr"] for t in trials}) == 6
    assert len({json.dumps(t["hparams"], sort_keys=True) for t in trials}) == 6
    assert len({t["hparams"]["optimizer"] for t in trials}) == 2
    assert len({t["hparams"]["loss"] for t in trials}) >= 2

    best = summary["best"]
    best_trial = trials[best["trial"]]
    assert best["hparams"] == best_trial["hparams"]
    [final] = summary["final"]
    assert final["hparams"] == best_trial["hparams"]  # retrained with the trial's procedure
