"""Priors from source searches (``nas.warmstart``): ranks, not raw values; distinct; best
first; validated against the target's space."""

from __future__ import annotations

import pytest

from nas.errors import SpecError
from nas.spaces import Nb201Space
from nas.warmstart import Source, SourceTrial, check_priors, priors_from_trials


def _trial(choices: list[int], objective: float | None, complete: bool = True) -> SourceTrial:
    return SourceTrial(
        {"space": "nb201", "choices": choices, "version": 1}, {}, objective, complete
    )


def test_scores_are_ranks_in_each_source_so_scales_mix() -> None:
    cifar10 = Source(1, [_trial([0] * 6, 94.0), _trial([1] * 6, 90.0), _trial([2] * 6, 80.0)], True)
    cifar100 = Source(2, [_trial([3] * 6, 70.0), _trial([4] * 6, 60.0)], True)
    priors = priors_from_trials([cifar10, cifar100], top_k=10)
    assert [(p["architecture"]["choices"][0], round(p["score"], 3)) for p in priors] == [
        (0, 1.0),
        (3, 1.0),
        (1, 0.667),
        (4, 0.5),
        (2, 0.333),
    ]
    assert [p["source"] for p in priors[:2]] == [1, 2]


def test_minimised_objectives_failed_trials_and_duplicates() -> None:
    source = Source(
        "run",
        [
            _trial([1] * 6, 0.3),
            _trial([0] * 6, 0.1),
            _trial([0] * 6, 0.2),
            _trial([2] * 6, None, False),
        ],
        maximize=False,
    )
    priors = priors_from_trials([source], top_k=5)
    assert [p["architecture"]["choices"][0] for p in priors] == [0, 1]  # distinct, best first


def test_a_partial_source_is_ranked_over_all_its_completed_trials() -> None:
    top = Source(7, [_trial([0] * 6, 0.9), _trial([1] * 6, 0.8)], True, completed=100)
    assert [p["score"] for p in priors_from_trials([top], top_k=2)] == [1.0, 0.99]


def test_priors_must_belong_to_the_space() -> None:
    space = Nb201Space()
    good = {"architecture": {"space": "nb201", "choices": [0] * 6, "version": 1}, "score": 1}
    bad = {"architecture": {"space": "enas-macro", "choices": [0] * 6, "version": 1}, "score": 1}
    out_of_range = {"architecture": {"space": "nb201", "choices": [7] * 6}, "score": 1}
    problems = check_priors([good, bad, out_of_range], space, None)
    assert [loc for loc, _ in problems] == [
        ("warm_start", "priors", 1, "architecture"),
        ("warm_start", "priors", 2, "architecture"),
    ]
    with_hparams = {**good, "hparams": {"lr": 0.1}}
    assert check_priors([with_hparams], space, None)[0][0] == ("warm_start", "priors", 0, "hparams")


def test_nas_search_resolves_runs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nas.warmstart import resolve_runs
    from workers.local import run_local_search
    from workers.search import parse_spec

    spec = {
        "name": "src",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular"},
        "budget": {"trials": 20},
        "seed": 3,
    }
    run_local_search(parse_spec(spec), tmp_path / "src", progress=False)
    target = {**spec, "name": "tgt", "warm_start": {"runs": [str(tmp_path / "src")], "top_k": 4}}
    resolved = parse_spec(resolve_runs(target))
    warm = resolved.spec.warm_start
    assert warm is not None and warm.priors is not None and len(warm.priors) == 4
    assert warm.sources == [{"run": str(tmp_path / "src"), "priors": 4}]
    other = {**target, "space": {"name": "enas-macro"}}
    with pytest.raises(SpecError) as info:
        resolve_runs(other)
    assert info.value.errors[0]["loc"] == ("warm_start", "runs")
