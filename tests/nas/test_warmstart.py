"""Priors from source searches (``nas.warmstart``): ranks, not raw values; distinct; best
first; validated against the target's space; the model's predictions are architectures no
source tried, the ones its trials point to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nas.errors import SpecError
from nas.spaces import Nb201Space
from nas.spec import WarmSourceSpec
from nas.warmstart import (
    Source,
    SourceTrial,
    check_priors,
    observations_from_trials,
    predicted_priors,
    priors_for,
    priors_from_trials,
)

REPO = Path(__file__).resolve().parents[2]


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


def test_observations_without_priors_are_checked_at_their_field() -> None:
    """A stored spec's observations given without priors went unchecked to the controller:
    tpe's "'77' not in (0, 1, 2, 3, 4)" at the section controller."""
    from workers.search import parse_spec

    doc = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    doc["controller"] = {"name": "tpe"}
    architecture = {"space": "nb201", "choices": [0, 0, 0, 0, 0, 77], "version": 1}
    observed = [{"architecture": architecture, "score": 1.0}]
    doc["warm_start"] = {"priors": [], "observations": observed}  # (as a stored spec has it)
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    [error] = info.value.errors
    assert error["loc"] == ("warm_start", "observations", 0, "architecture")
    assert error["msg"].startswith("not an architecture of this space")


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
    # The default: half of top_k evaluated by the source, half predicted by the model.
    assert warm.sources == [WarmSourceSpec(run=str(tmp_path / "src"), priors=2)]
    assert warm.predicted == 2
    assert sorted(p.predicted for p in warm.priors) == [False, False, True, True]
    tried = {
        tuple(json.loads(line)["architecture"]["choices"])
        for line in (tmp_path / "src" / "trials.jsonl").read_text().splitlines()
    }
    assert all(tuple(p.architecture.choices) not in tried for p in warm.priors if p.predicted)
    none = {**target, "warm_start": {**target["warm_start"], "predicted": 0}}
    warm = parse_spec(resolve_runs(none)).spec.warm_start
    assert warm is not None and warm.sources == [
        WarmSourceSpec(run=str(tmp_path / "src"), priors=4)
    ]
    other = {**target, "space": {"name": "enas-macro"}}
    with pytest.raises(SpecError) as info:
        resolve_runs(other)
    assert info.value.errors[0]["loc"] == ("warm_start", "runs", 0)
    # A resolved spec (the warm run's spec.yaml) run again keeps its priors: the source
    # folder moved away was an error, and a folder put in its place a silently other start.
    again = resolve_runs(target)
    (tmp_path / "src").rename(tmp_path / "moved")
    assert resolve_runs(again) == again
    # A source that searched the metric the other way lends its worst: refused.
    run_local_search(
        parse_spec({**spec, "objective": {"metric": "val_accuracy", "direction": "minimize"}}),
        tmp_path / "src",
        progress=False,
    )
    with pytest.raises(SpecError) as info:
        resolve_runs(target)
    assert info.value.errors[0]["loc"] == ("warm_start", "runs", 0)
    assert "minimized 'val_accuracy'; this job would maximize it" in info.value.errors[0]["msg"]


def test_a_pareto_run_lends_its_best_by_this_jobs_metric_and_not_the_other_way(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """As for a service source: a run of [params_M, val_accuracy] lent its smallest
    networks as the best of a job maximising val_accuracy, and one that minimised
    val_accuracy as its second objective was a source of such a job."""
    from nas.warmstart import resolve_runs
    from workers.local import run_local_search
    from workers.search import parse_spec

    pareto = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "maximize"]}
    spec = {**NB201_RUN_SPEC, "objective": pareto, "budget": {"trials": 20}, "seed": 3}
    run_local_search(parse_spec(spec), tmp_path / "src", progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / "src" / "trials.jsonl").read_text().splitlines()
    ]
    rows.sort(key=lambda row: -row["metrics"]["val_accuracy"])  # (stable: the first tried)
    expected: list[list[int]] = []
    for row in rows:
        if row["architecture"]["choices"] not in expected:
            expected.append(row["architecture"]["choices"])
    target = {
        **spec,
        "name": "tgt",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "warm_start": {"runs": [str(tmp_path / "src")], "top_k": 4, "predicted": 0},
    }
    warm = parse_spec(resolve_runs(target)).spec.warm_start
    assert warm is not None and warm.priors is not None
    assert [p.architecture.choices for p in warm.priors] == expected[:4]
    lowest = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "minimize"]}
    run_local_search(parse_spec({**spec, "objective": lowest}), tmp_path / "low", progress=False)
    other = {**target, "warm_start": {"runs": [str(tmp_path / "low")]}}
    with pytest.raises(SpecError) as info:
        resolve_runs(other)
    assert info.value.errors[0]["loc"] == ("warm_start", "runs", 0)
    assert "minimized 'val_accuracy'; this job would maximize it" in info.value.errors[0]["msg"]


def test_a_run_of_other_hyperparameters_is_refused_once_at_its_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A run searched with another hparams section (a range narrowed to zoom in) was
    refused with one error per prior and observation (43 lines), at fields the user never
    wrote, and never named the folder; the service said it once, at the source."""
    from nas.warmstart import resolve_runs
    from workers.local import run_local_search
    from workers.search import parse_spec

    hparams = {
        "rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "opt": {"type": "categorical", "choices": ["a", "b"]},
    }
    spec = {**NB201_RUN_SPEC, "hparams": hparams, "budget": {"trials": 8}, "seed": 3}
    run_local_search(parse_spec(spec), tmp_path / "src", progress=False)
    target = {**spec, "name": "tgt", "warm_start": {"runs": [str(tmp_path / "src")], "top_k": 2}}
    warm = parse_spec(resolve_runs(target)).spec.warm_start  # the same section: lent
    assert warm is not None and warm.priors and all(p.hparams for p in warm.priors)
    narrowed = {**target, "hparams": {**hparams, "rate": {**hparams["rate"], "high": 1e-3}}}
    with pytest.raises(SpecError) as info:
        resolve_runs(narrowed)
    assert [(e["loc"], e["msg"]) for e in info.value.errors] == [
        (
            ("warm_start", "runs", 0),
            (
                f"{str(tmp_path / 'src')!r} searched other hyperparameters (not the same: "
                "rate); the hparams sections must match"
            ),
        )
    ]
    with pytest.raises(SpecError) as info:
        resolve_runs({k: v for k, v in target.items() if k != "hparams"})
    assert "searched hyperparameters too" in info.value.errors[0]["msg"]
    # a run without hyperparameters lends its architectures to a job that searches some
    run_local_search(
        parse_spec({k: v for k, v in spec.items() if k != "hparams"}),
        tmp_path / "plain",
        progress=False,
    )
    plain = {**target, "warm_start": {"runs": [str(tmp_path / "plain")], "top_k": 2}}
    assert parse_spec(resolve_runs(plain)).spec.warm_start is not None


def test_a_run_of_another_space_version_is_refused_once_at_its_folder(tmp_path: Path) -> None:
    """Its trials' architectures of another version gave one error per prior and per
    observation, and the model predicted this version's architectures from them (the probe
    of the warm start)."""
    from nas.warmstart import resolve_runs
    from workers.local import run_local_search
    from workers.search import parse_spec

    spec = {**NB201_RUN_SPEC, "budget": {"trials": 8}}
    run_local_search(parse_spec(spec), tmp_path / "src", progress=False)
    trials = tmp_path / "src" / "trials.jsonl"
    rows = [json.loads(line) for line in trials.read_text().splitlines() if line.strip()]
    for row in rows:
        row["architecture"]["version"] = 2
    trials.write_text("".join(json.dumps(row) + "\n" for row in rows))
    target = {**spec, "name": "tgt", "warm_start": {"runs": [str(tmp_path / "src")], "top_k": 2}}
    with pytest.raises(SpecError) as info:
        resolve_runs(target)
    said = (
        f"{str(tmp_path / 'src')!r} searched version 2 of space 'nb201'; this job's "
        "'nb201' is version 1: the spaces must match"
    )
    assert [(e["loc"], e["msg"]) for e in info.value.errors] == [(("warm_start", "runs", 0), said)]


NB201_RUN_SPEC = {
    "name": "src",
    "dataset": {"name": "nb201-cifar10"},
    "space": {"name": "nb201"},
    "controller": {"name": "random"},
    "evaluator": {"name": "tabular"},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
    "budget": {"trials": 2},
}
GOOD_ROW = {
    "architecture": {"space": "nb201", "version": 1, "choices": [0, 1, 2, 3, 4, 0]},
    "state": "COMPLETE",
    "objective": 80.0,
}


def write_run(folder: Path, *, spec: object = None, trials: str | None = None) -> Path:
    """A ``nas search`` output folder as far as a warm start reads it: its ``spec.yaml``
    (``NB201_RUN_SPEC`` by default) and ``trials.jsonl`` (one completed trial by default)."""
    import yaml

    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(NB201_RUN_SPEC if spec is None else spec))
    (folder / "trials.jsonl").write_text(json.dumps(GOOD_ROW) + "\n" if trials is None else trials)
    return folder


@pytest.mark.parametrize(
    ("spec", "trials", "message"),
    [
        (None, "{not json\n", "line 1 of trials.jsonl is not a trial: Expecting property name"),
        ([1, 2], None, "its spec.yaml holds a list, not a job spec"),
        (None, json.dumps({"state": "COMPLETE", "objective": 1.0}), "it has no architecture"),
        (None, json.dumps({**GOOD_ROW, "architecture": 7}), "line 1 of trials.jsonl is not"),
        (None, json.dumps({**GOOD_ROW, "objective": "high"}), "objective: expected a number"),
        (None, json.dumps({**GOOD_ROW, "hparams": [1]}), "hparams: expected a JSON object"),
        (None, "[]\n", "expected a JSON object, got list"),
        ({**NB201_RUN_SPEC, "objective": "max"}, None, "has no objective direction"),
        (None, "", "has no completed trial to start from"),
        (None, json.dumps({**GOOD_ROW, "state": "FAIL", "objective": None}), "no completed trial"),
    ],
)
def test_a_damaged_run_folder_is_a_field_error_at_its_index(
    tmp_path: Path, spec: object, trials: str | None, message: str
) -> None:
    """A damaged source folder (or one without a completed trial) was a traceback (or no
    priors from it at all): it is a spec error at its own ``warm_start.runs.I``, as a bad
    source job is at ``warm_start.jobs.I``."""
    from nas.warmstart import resolve_runs

    good = write_run(tmp_path / "good")
    bad = write_run(tmp_path / "bad", spec=spec, trials=trials)
    target = {**NB201_RUN_SPEC, "name": "tgt", "warm_start": {"runs": [str(good), str(bad)]}}
    with pytest.raises(SpecError) as info:
        resolve_runs(target)
    [error] = info.value.errors
    assert error["loc"] == ("warm_start", "runs", 1)
    assert repr(str(bad)) in error["msg"] and message in error["msg"], error["msg"]
    # The good folder alone resolves.
    alone = resolve_runs({**target, "warm_start": {"runs": [str(good)]}})
    assert [p["source"] for p in alone["warm_start"]["priors"] if not p.get("predicted")] == [
        str(good)
    ]


def test_a_run_of_several_objectives_lends_its_ties_in_the_runs_own_order(tmp_path: Path) -> None:
    """A run ranked params_M first, val_accuracy second: of two cells of one size it lent
    the one tried first (29.9 %) as its best, where the run's best was the other (73.8 %)."""
    from nas.warmstart import _ranked, source_from_run

    objective = {
        "metric": "params_M",
        "direction": "minimize",
        "metrics": ["params_M", "val_accuracy"],
        "directions": ["minimize", "maximize"],
    }
    rows = [
        {**GOOD_ROW, "objective": 0.07, "metrics": {"params_M": 0.07, "val_accuracy": 29.9}},
        {
            **GOOD_ROW,
            "architecture": {"space": "nb201", "version": 1, "choices": [1, 1, 1, 1, 1, 1]},
            "objective": 0.07,
            "metrics": {"params_M": 0.07, "val_accuracy": 73.8},
        },
        {  # (a trial lacking the second objective ranks last among its ties)
            **GOOD_ROW,
            "architecture": {"space": "nb201", "version": 1, "choices": [2, 2, 2, 2, 2, 2]},
            "objective": 0.07,
        },
    ]
    run = write_run(
        tmp_path / "mo",
        spec={**NB201_RUN_SPEC, "objective": objective},
        trials="".join(json.dumps(row) + "\n" for row in rows),
    )
    source = source_from_run(run, space=NB201_RUN_SPEC["space"])
    ranked = [t.architecture["choices"][0] for t, _ in _ranked(source)]
    assert ranked == [1, 0, 2]


def _hidden_best_source(space: Nb201Space, best: tuple[int, ...], n: int, seed: int) -> Source:
    """A source that tried ``n`` random architectures, never ``best``, scored by how many
    decisions they share with it plus a bonus for sharing the first two together."""
    rng = np.random.default_rng(seed)
    trials = []
    while len(trials) < n:
        choices = tuple(int(c) for c in space.sample(rng).choices)
        if choices == best:
            continue
        same = [a == b for a, b in zip(choices, best, strict=True)]
        trials.append(_trial(list(choices), sum(same) + 2.0 * (same[0] and same[1])))
    return Source(1, trials, True)


def test_the_model_predicts_the_best_architecture_no_source_tried() -> None:
    space = Nb201Space()
    best = (3, 1, 4, 0, 2, 3)
    source = _hidden_best_source(space, best, n=80, seed=0)
    tried = {tuple(t.architecture["choices"]) for t in source.trials}
    predicted = predicted_priors([source], space, count=5)
    assert len(predicted) == 5
    assert tuple(predicted[0]["architecture"]["choices"]) == best
    assert all(tuple(p["architecture"]["choices"]) not in tried for p in predicted)
    assert all(p["predicted"] and p["source"] is None for p in predicted)
    scores = [p["score"] for p in predicted]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    # The source's own best is some decisions away from it: the model extrapolated.
    own_best = priors_from_trials([source], top_k=1)[0]["architecture"]["choices"]
    assert tuple(own_best) != best
    assert check_priors(predicted, space, None) == []


def test_priors_for_puts_the_sources_best_first_then_the_models() -> None:
    space = Nb201Space()
    source = _hidden_best_source(space, (0, 1, 2, 3, 4, 0), n=40, seed=1)
    priors = priors_for([source], space, top_k=6, predicted=2)
    assert [p for p in priors if not p.get("predicted")] == priors_from_trials([source], top_k=4)
    assert sum(p.get("predicted", False) for p in priors) == 2
    assert [p["score"] for p in priors] == sorted((p["score"] for p in priors), reverse=True)
    assert priors_for([source], space, top_k=3, predicted=0) == priors_from_trials(
        [source], top_k=3
    )
    assert all(p["predicted"] for p in priors_for([source], space, top_k=3, predicted=3))
    # Too little to fit a model: no predictions, the observed priors stand.
    tiny = Source(2, [_trial([0] * 6, 1.0)], True)
    assert priors_for([tiny], space, top_k=3, predicted=2) == priors_from_trials([tiny], top_k=1)


def test_a_large_space_is_sampled_and_searched_near_the_sources_best() -> None:
    """enas-macro has far more architectures than the model scores: its candidates are
    uniform samples and the neighbours of the sources' best, all valid in the space."""
    from nas.spaces import SPACES

    space = SPACES.get("enas-macro").from_config({})
    assert space.size() > 20_000
    rng = np.random.default_rng(0)
    trials = []
    for _ in range(30):
        arch = space.sample(rng)
        trials.append(SourceTrial(arch.to_dict(), {}, float(sum(c == 0 for c in arch.choices))))
    source = Source(1, trials, True)
    first = predicted_priors([source], space, count=3)
    assert predicted_priors([source], space, count=3) == first  # deterministic
    assert len(first) == 3 and check_priors(first, space, None) == []
    tried = {tuple(t.architecture["choices"]) for t in trials}
    assert all(tuple(p["architecture"]["choices"]) not in tried for p in first)
    best = max(trials, key=lambda t: t.objective or 0.0)

    def zeros(choices: list[int]) -> int:
        return sum(c == 0 for c in choices)

    assert zeros(first[0]["architecture"]["choices"]) >= zeros(best.architecture["choices"])


def test_the_predicted_count_defaults_to_half_of_top_k_and_is_checked() -> None:
    from workers.search import parse_spec

    spec = {
        "name": "tgt",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular"},
        "budget": {"trials": 5},
        "warm_start": {"jobs": [1], "top_k": 5},
    }
    warm = parse_spec(spec).spec.warm_start
    assert warm is not None and warm.predicted_count(joint=False) == 2
    assert warm.predicted_count(joint=True) == 0
    with pytest.raises(SpecError) as info:
        parse_spec({**spec, "warm_start": {"jobs": [1], "top_k": 5, "predicted": 6}})
    assert info.value.errors[0]["loc"][0] == "warm_start"
    assert "top_k" in info.value.errors[0]["msg"]
    joint = {
        **spec,
        "space": {"name": "mlp"},
        "dataset": {"name": "digits"},
        "evaluator": {"name": "standalone"},
        "hparams": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
        "warm_start": {"jobs": [1], "predicted": 3},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(joint)
    assert [e["loc"] for e in info.value.errors] == [("warm_start", "predicted")]
    assert "predicted to 0" in info.value.errors[0]["msg"]


def test_a_malformed_hparams_section_of_a_source_is_said_not_raised() -> None:
    """A hand-edited run folder's spec.yaml: a section that is no mapping raised
    AttributeError, one with a non-string key TypeError (the review of other_hparams)."""
    from nas.warmstart import other_hparams

    ours = {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}
    said = other_hparams("'run'", "notamapping", ours)
    assert (
        said
        == "'run' has an hparams section that is not a mapping; the hparams sections must match"
    )
    said = other_hparams("'run'", {1: {"type": "categorical", "choices": [1]}}, ours)
    assert said is not None and "not the same: 1, lr" in said
    said = other_hparams("'run'", {"lr": {"type": ["float"], "low": 0.001, "high": 0.1}}, ours)
    assert said is not None and "not the same: lr" in said  # (a TypeError: unhashable)
    same = {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True, "step": None}}
    assert other_hparams("'run'", same, ours) is None


def test_a_condition_written_with_equals_or_in_is_the_same_hparams_section() -> None:
    """``equals: b`` and ``in: [b]`` (or ``in`` in another order) are one condition: a
    source written either way lends its configurations (they were refused as "other
    hyperparameters")."""
    from nas.warmstart import other_hparams

    def section(condition: dict) -> dict:
        return {
            "optimizer": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
            "momentum": {"type": "float", "low": 0.5, "high": 0.99, "condition": condition},
        }

    ours = section({"param": "optimizer", "equals": "sgd"})
    assert other_hparams("'run'", section({"param": "optimizer", "in": ["sgd"]}), ours) is None
    both = section({"param": "optimizer", "in": ["sgd", "adamw"]})
    assert (
        other_hparams("'run'", section({"param": "optimizer", "in": ["adamw", "sgd"]}), both)
        is None
    )
    said = other_hparams("'run'", section({"param": "optimizer", "in": ["adam"]}), ours)
    assert said is not None and "momentum" in said


def test_two_tables_refused_as_one_space_name_the_decision_that_differs() -> None:
    """The refusal named the paths (which may differ) and cut the decisions inside the
    first, the same on both (the probe of users' tables); then it named a decision the same
    on both sides as giving no choices (the review)."""
    from nas.warmstart import other_space

    width = {"column": "width", "choices": ["8", "16"]}
    theirs = {"name": "table", "path": "/d/a.csv", "decisions": ["opt", width]}
    wider = {**width, "choices": ["8", "16", "128"]}
    said = other_space("job 2", theirs, {**theirs, "path": "/d/b.csv", "decisions": ["opt", wider]})
    assert said is not None and "path" not in said
    assert "decision 'width': choices ['8', '16'] there, ['8', '16', '128'] here" in said
    unpinned = {**theirs, "decisions": ["opt", "width"]}
    said = other_space("job 2", unpinned, theirs)
    assert said is not None and "decision 'width' gives no choices" in said
    assert "'opt' gives" not in said


def test_a_default_written_out_is_the_same_space() -> None:
    """A source whose spec wrote out the reductions the other left to their default ([1, 2]
    for 3 layers) searched "another space (reductions: [1, 2] there, None here)": the same
    network, refused in nas search, by job id and skipped by a same-space query (the probe
    of a NAS researcher). MetaQNN's size bins alike; a real difference is still named."""
    from nas.warmstart import other_space

    macro = {"name": "enas-macro", "layers": 3, "channels": 8}
    assert other_space("job 1", {**macro, "reductions": [1, 2]}, macro) is None
    assert other_space("job 1", macro, {**macro, "reductions": [2, 1]}) is None  # (a set)
    said = other_space("job 1", {**macro, "reductions": [1]}, macro)
    assert said == (
        "job 1 searched another space (reductions: [1] there, [1, 2] here); the spaces must match"
    )
    metaqnn = {"name": "metaqnn", "input_size": 40}
    assert other_space("job 1", {**metaqnn, "size_bins": [10, 5]}, metaqnn) is None
    assert other_space("job 1", {**metaqnn, "size_bins": [12, 5]}, metaqnn) is not None
    assert other_space("job 1", {**metaqnn, "fc_units": [32, 64, 128]}, metaqnn) is None


def test_repeats_of_one_configuration_share_its_score_as_observations() -> None:
    """The probe of warm starts: a table's three runs of one architecture (one result) were
    observations scored 0.625, 0.5 and 0.375, so TPE saw it as both good and bad. Another
    architecture of the same objective keeps its own rank."""
    source = Source(
        1,
        [
            _trial([0] * 6, 0.9),
            _trial([1] * 6, 0.8),
            _trial([2] * 6, 0.8),
            _trial([1] * 6, 0.8),
            _trial([3] * 6, 0.5),
        ],
        True,
    )
    observed = observations_from_trials([source], per_source=10)
    scores = [(o["architecture"]["choices"][0], round(o["score"], 9)) for o in observed]
    assert scores == [(0, 1.0), (1, 0.8), (2, 0.6), (1, 0.8), (3, 0.2)]
