"""A shared-weight search whose supernet splits into sub-supernets (few-shot NAS,
``evaluator.split_epoch``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nas.errors import SpecError
from workers.search import parse_spec
from workers.shared import SharedWeightSearch

SPEC: dict[str, Any] = {
    "name": "tiny-enas-split",
    "dataset": {"name": "mnist1d", "num_samples": 400},
    "space": {"name": "enas-macro", "layers": 3, "channels": 4},
    "controller": {"name": "enas"},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 2,
        "split_epoch": 1,
        "rewards_per_epoch": 5,
        "derive_samples": 4,
    },
    "budget": {"minutes": 1},
    "seed": 3,
}


def test_a_split_search_trains_its_sub_supernets_and_resumes_from_its_checkpoint() -> None:
    search = SharedWeightSearch(parse_spec(SPEC))
    outcome = search.run()
    assert search.evaluator.is_split and search.evaluator.epoch == 2
    assert [p["epoch"] for p in search.curve] == [0, 1]
    assert outcome.ranked and len(outcome.trials) == 10
    # The checkpoint of the split supernet loads into a fresh search (its own shapes).
    state = search.evaluator_state()
    resumed = SharedWeightSearch(parse_spec(SPEC))
    resumed.load_evaluator_state(state)
    assert resumed.evaluator.is_split
    archs = [arch for arch, _ in outcome.ranked]
    assert resumed.evaluator.score_full(archs) == search.evaluator.score_full(archs)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"evaluator": {"split_epoch": 2}}, "below epochs (2)"),
        ({"resources": {"workers": 2}}, "one process"),
    ],
)
def test_split_epoch_must_come_before_the_last_epoch_and_train_in_one_process(
    change: dict[str, Any], words: str
) -> None:
    spec = copy.deepcopy(SPEC)
    for key, value in change.items():
        spec.setdefault(key, {}).update(value)
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert [e["loc"] for e in info.value.errors] == [("evaluator", "split_epoch")]
    assert words in str(info.value)
