"""Warm starts over HTTP (issue 14): a job names earlier jobs, proposes their best
configurations first, shows its sources, and outlives them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from api.cli import describe_job
from api.client import ApiError, NasClient
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec


def _top_distinct(client: NasClient, job_id: int, k: int) -> list[list[int]]:
    best = client._request("GET", f"/api/v1/jobs/{job_id}/best", params={"k": 100})
    out: list[list[int]] = []
    for trial in best:
        if trial["architecture"]["choices"] not in out:
            out.append(trial["architecture"]["choices"])
    return out[:k]


def _first_trials(client: NasClient, job_id: int, n: int) -> list[list[int]]:
    page = client._request(
        "GET", f"/api/v1/jobs/{job_id}/trials", params={"limit": n, "sort": "number"}
    )
    return [t["architecture"]["choices"] for t in page["data"]]


def test_a_warm_started_job_proposes_its_sources_best_first_and_outlives_them(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    source = client.submit(nb201_spec(controller={"name": "tpe"}, budget={"trials": 30}))
    source = client.wait(source["id"], timeout=time_left(120))
    assert source["state"] == "SUCCEEDED"
    spec = nb201_spec(
        name="warm",
        dataset={"name": "nb201-cifar100"},
        controller={"name": "tpe"},
        budget={"trials": 10},
        warm_start={"jobs": [source["id"]], "top_k": 5, "predicted": 0},
        seed=7,
    )
    job = client.submit(spec)
    warm = job["spec"]["warm_start"]
    assert warm["sources"] == [
        {"job_id": source["id"], "name": "nb201-random", "dataset": "nb201-cifar10", "priors": 5}
    ]
    assert [p["score"] for p in warm["priors"]] == sorted(
        (p["score"] for p in warm["priors"]), reverse=True
    )
    done = client.wait(job["id"], timeout=time_left(120))
    assert done["state"] == "SUCCEEDED"
    shown = describe_job(done, None)  # nas show names the sources, as the job page does
    assert f"warm start from: job {source['id']} (nb201-random, 5 priors)" in shown
    expected = _top_distinct(client, source["id"], 5)
    assert _first_trials(client, job["id"], 5) == expected
    assert [p["architecture"]["choices"] for p in warm["priors"]] == expected

    # By default half of top_k are architectures the source never tried, predicted by a
    # model of its trials, marked, and proposed with the source's best by score.
    predicted = client.submit(
        {**spec, "name": "warm-predicted", "warm_start": {"jobs": [source["id"]], "top_k": 5}}
    )
    stored = predicted["spec"]["warm_start"]
    assert stored["predicted"] == 2 and stored["sources"][0]["priors"] == 3
    model = [p for p in stored["priors"] if p.get("predicted")]
    observed = [p["architecture"]["choices"] for p in stored["priors"] if not p.get("predicted")]
    assert len(model) == 2 and observed == expected[:3]
    tried = set(map(tuple, _first_trials(client, source["id"], 30)))
    assert all(tuple(p["architecture"]["choices"]) not in tried for p in model)
    assert client.wait(predicted["id"], timeout=time_left(120))["state"] == "SUCCEEDED"
    assert _first_trials(client, predicted["id"], 5) == [
        p["architecture"]["choices"] for p in stored["priors"]
    ]

    client.delete(source["id"])
    after = client.job(job["id"])
    assert after["spec"]["warm_start"] == warm
    assert after["state"] == "SUCCEEDED"
    with pytest.raises(ApiError) as info:
        client.submit(spec)
    assert info.value.status_code == 422
    assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 0]


def test_sources_of_another_space_or_user_are_a_422_at_their_field(
    server: LiveServer, client: NasClient, time_left: Callable[..., float]
) -> None:
    source = client.wait(client.submit(nb201_spec(budget={"trials": 5}))["id"], timeout=120)
    other_space = standalone_spec(warm_start={"jobs": [source["id"]]})
    with pytest.raises(ApiError) as info:
        client.submit(other_space)
    assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 0]
    # the fields that differ, not the two whole sections
    assert info.value.detail[0]["msg"] == (
        f"job {source['id']} searched space 'nb201'; this job searches 'enas-macro'"
    )
    # the same space otherwise set: the fields that differ, with both values
    narrower = standalone_spec(warm_start={"jobs": [source["id"]]})
    del narrower["warm_start"]
    wider = client.wait(
        client.submit({**narrower, "budget": {"trials": 1}})["id"], timeout=time_left(120)
    )
    narrower["space"] = {**narrower["space"], "channels": 4}
    narrower["warm_start"] = {"jobs": [wider["id"]]}
    with pytest.raises(ApiError) as info:
        client.submit(narrower)
    assert info.value.detail[0]["msg"] == (
        f"job {wider['id']} searched another space (channels: 8 there, 4 here); the spaces "
        "must match"
    )
    stranger_key = server.create_key("someone-else")
    with server.client(stranger_key) as stranger:
        with pytest.raises(ApiError) as info:
            stranger.submit(nb201_spec(warm_start={"jobs": [source["id"]]}))
        assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 0]
        assert info.value.detail[0]["msg"] == f"no job {source['id']} of yours"
        # Priors given as a stored spec records them, naming another user's job as their
        # source: the stranger's job page said it was warm-started from it.
        prior = {"architecture": source["summary"]["best"]["architecture"], "score": 1.0}
        recorded = {"job_id": source["id"], "name": "theirs", "priors": 1}
        for warm in (
            {"priors": [prior], "sources": [recorded]},
            {"jobs": [source["id"]], "priors": [prior], "sources": [recorded]},
        ):
            with pytest.raises(ApiError) as info:
                stranger.submit(nb201_spec(warm_start=warm))
            assert info.value.status_code == 422
            assert info.value.detail[0]["loc"] == ["warm_start", "sources", 0, "job_id"]
            assert f"job {source['id']} is not one of yours" in info.value.detail[0]["msg"]
        # an id no job ever had is refused alike (it was taken as a deleted source)
        never = {**recorded, "job_id": 2**31 - 1}
        with pytest.raises(ApiError) as info:
            stranger.submit(nb201_spec(warm_start={"priors": [prior], "sources": [never]}))
        assert f"job {2**31 - 1} is not one of yours" in info.value.detail[0]["msg"]
        # a source deleted since is taken as recorded (a stored spec outlives its sources)
        deleted = stranger.submit(nb201_spec(budget={"trials": 1}))["id"]
        stranger.wait(deleted, timeout=time_left(60))
        stranger.delete(deleted)
        gone = {**recorded, "job_id": deleted}
        warm = {"priors": [prior], "sources": [gone]}
        job = stranger.submit(nb201_spec(budget={"trials": 1}, warm_start=warm))
        assert job["spec"]["warm_start"]["sources"] == [gone]
        assert stranger.jobs()["count"] == 1
        # A prior (or observation) naming another user's job as its source, no recorded
        # sources beside: stored as named (the stranger's job said it came from that job).
        for kind in ("priors", "observations"):
            named = {**prior, "source": source["id"]}
            learner = {"name": "tpe"}  # (observations go to a controller that models them)
            warm = {"priors": [prior], kind: [named]}  # (observations come with priors)
            with pytest.raises(ApiError) as info:
                stranger.submit(nb201_spec(controller=learner, warm_start=warm))
            assert info.value.detail[0]["loc"] == ["warm_start", kind, 0, "source"]
            assert f"no job {source['id']} of yours" in info.value.detail[0]["msg"]
        assert stranger.jobs()["count"] == 1  # (nothing created)
        mine = {**prior, "source": job["id"]}  # a job of the caller's own: taken
        stranger.submit(nb201_spec(budget={"trials": 1}, warm_start={"priors": [mine]}))
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"runs": ["/tmp/run"]}))
    assert info.value.detail[0]["loc"] == ["warm_start", "runs"]
    # a joint source for a job without hparams: one error at the source (it was one per
    # configuration, at warm_start.priors.N)
    joint = nb201_spec(budget={"trials": 5}, hparams={"t": {"type": "categorical", "choices": [1]}})
    joint_id = client.wait(client.submit(joint)["id"], timeout=120)["id"]
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"jobs": [joint_id]}))
    assert [d["loc"] for d in info.value.detail] == [["warm_start", "jobs", 0]]
    assert "searched hyperparameters too" in info.value.detail[0]["msg"]


def test_a_job_stored_without_its_spaces_defaults_is_a_source(
    server: LiveServer, client: NasClient, time_left: Callable[..., float]
) -> None:
    """The first versions stored a space section as given, defaults left out: such a job
    was "another space" (channel_growth '(unset)' there, 2 here) to every new job, named
    or queried, though the same."""
    from api.db import session_scope
    from api.models import JobModel

    spec = standalone_spec(trials=1, epochs=1)
    old = client.wait(client.submit(spec)["id"], timeout=time_left(120))
    assert old["state"] == "SUCCEEDED"
    with session_scope(server.app.state.nas.write) as session:
        job = session.get(JobModel, old["id"])
        job.spec = {**job.spec, "space": spec["space"]}  # (as the first versions stored it)
    for warm in ({"jobs": [old["id"]]}, {"query": "same-space"}):
        job = client.submit({**spec, "warm_start": warm})
        assert [s["job_id"] for s in job["spec"]["warm_start"]["sources"]] == [old["id"]]
        client.cancel(job["id"])
    differ = {**spec["space"], "channel_growth": 1}
    with pytest.raises(ApiError) as info:
        client.submit({**spec, "space": differ, "warm_start": {"jobs": [old["id"]]}})
    assert "(channel_growth: 2 there, 1 here)" in info.value.detail[0]["msg"]


def test_a_same_space_query_takes_the_newest_finished_jobs(
    server: LiveServer, client: NasClient
) -> None:
    ids = [
        client.wait(client.submit(nb201_spec(budget={"trials": 8}, seed=s))["id"], timeout=120)[
            "id"
        ]
        for s in (1, 2, 3)
    ]
    job = client.submit(nb201_spec(warm_start={"query": "same-space", "limit": 2, "top_k": 6}))
    sources = [s["job_id"] for s in job["spec"]["warm_start"]["sources"]]
    assert sources == [ids[2], ids[1]]
    assert len(job["spec"]["warm_start"]["priors"]) == 6
    # "your newest finished jobs": an admin's own, not every user's (the probe of a team's
    # server: an admin's query took five users' jobs)
    with server.client(server.create_key("admin", admin=True)) as admin:
        with pytest.raises(ApiError) as refused:
            admin.submit(nb201_spec(warm_start={"query": "same-space"}))
        assert refused.value.status_code == 422 and "warm_start" in str(refused.value)
        mine = admin.wait(admin.submit(nb201_spec(budget={"trials": 8}))["id"], timeout=120)
        job = admin.submit(nb201_spec(warm_start={"query": "same-space"}))
        assert [s["job_id"] for s in job["spec"]["warm_start"]["sources"]] == [mine["id"]]


def test_a_query_passes_over_jobs_without_a_completed_trial(client: NasClient) -> None:
    """A newer job of the space that completed no trial (cancelled at its first, or every
    candidate infeasible) made every same-space query a 422; the query takes the others."""
    good = client.wait(client.submit(nb201_spec(budget={"trials": 8}))["id"], timeout=120)
    empty = nb201_spec(
        objective={"metric": "val_accuracy", "direction": "maximize",
                   "constraints": {"max_flops": 1}},
        budget={"trials": 5000},
    )  # fmt: skip
    nothing = client.wait(client.submit(empty)["id"], timeout=120)
    assert nothing["state"] == "SUCCEEDED" and not nothing["trial_states"].get("COMPLETE")
    job = client.submit(nb201_spec(warm_start={"query": "same-space"}))
    assert [s["job_id"] for s in job["spec"]["warm_start"]["sources"]] == [good["id"]]


def test_a_query_that_finds_none_says_why_the_jobs_of_the_space_were_passed_over(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    """'none of your finished jobs searched this space' while many had: they had searched
    other hyperparameters, which the refusal did not say. A source that searched none lends
    its architectures (with sampled hyperparameters), as when jobs: lists it: a query passed
    over it (the probe of the warm start)."""
    plain = nb201_spec(budget={"trials": 4})
    plain = client.wait(client.submit(plain)["id"], timeout=time_left(120))
    hparams = {"temperature": {"type": "float", "low": 0.5, "high": 2.0}}
    job = client.submit(nb201_spec(hparams=hparams, warm_start={"query": "same-space"}))
    assert [s["job_id"] for s in job["spec"]["warm_start"]["sources"]] == [plain["id"]]
    try:
        client.cancel(job["id"])
    except ApiError as exc:  # (table lookups: on a loaded machine it may have ended first)
        assert exc.status_code == 409 and "already" in str(exc), exc
    client.wait(job["id"], timeout=time_left(120))
    for done in (job["id"], plain["id"]):  # (the first a source of its hparams too)
        client.delete(done)
    other = nb201_spec(hparams={"temperature": {"type": "float", "low": 0.5, "high": 3.0}})
    other["budget"] = {"trials": 4}
    client.wait(client.submit(other)["id"], timeout=time_left(120))
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(hparams=hparams, warm_start={"query": "same-space"}))
    (problem,) = info.value.detail
    assert problem["loc"][-2:] == ["warm_start", "query"]
    assert problem["msg"] == (
        "none of your finished jobs that searched this space (same space and parameters) "
        "can lend to this one: 1 searched other hyperparameters (hparams)"
    )


def test_a_source_that_searched_the_metric_the_other_way_is_refused_or_passed_over(
    client: NasClient,
) -> None:
    """A source that minimised val_accuracy lent its lowest accuracies to a job maximising
    it, as its best: the target started from the worst cells of the space (1.0 %)."""
    lowest = {"metric": "val_accuracy", "direction": "minimize"}
    wrong = client.wait(
        client.submit(nb201_spec(budget={"trials": 8}, objective=lowest))["id"], timeout=120
    )
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"jobs": [wrong["id"]]}))
    assert info.value.status_code == 422
    assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 0]
    assert f"job {wrong['id']} minimized 'val_accuracy'" in info.value.detail[0]["msg"]
    assert "objective.direction: minimize" in info.value.detail[0]["msg"]
    assert client.jobs()["count"] == 1  # nothing created
    # the same direction is a source; a query passes over the other
    same = client.submit(nb201_spec(objective=lowest, warm_start={"jobs": [wrong["id"]]}))
    assert same["spec"]["warm_start"]["sources"][0]["job_id"] == wrong["id"]
    # its stored spec, its source's record edited: the job page named another job's name
    for field, value in (("name", "another"), ("dataset", "nb201-cifar100")):
        edited = copy.deepcopy(same["spec"])
        edited["warm_start"]["sources"][0][field] = value
        with pytest.raises(ApiError) as info:
            client.submit(edited)
        assert info.value.detail[0]["loc"] == ["warm_start", "sources", 0, field]
        assert f"job {wrong['id']}'s {field} is " in info.value.detail[0]["msg"]
    right = client.wait(client.submit(nb201_spec(budget={"trials": 8}))["id"], timeout=120)
    job = client.submit(nb201_spec(warm_start={"query": "same-space", "limit": 5}))
    assert [s["job_id"] for s in job["spec"]["warm_start"]["sources"]] == [right["id"]]


def test_a_pareto_source_lends_its_best_by_this_jobs_metric_and_not_the_other_way(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    """A source of several objectives was checked and ranked by its first alone (the probe
    of combined features): one searching [params_M, val_accuracy] lent its smallest
    networks as the most accurate to a job maximising val_accuracy, and one that minimised
    val_accuracy as its second objective was taken as a source of a job maximising it."""
    pareto = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "maximize"]}
    source = client.wait(
        client.submit(nb201_spec(budget={"trials": 30}, objective=pareto))["id"],
        timeout=time_left(120),
    )
    job = client.submit(nb201_spec(warm_start={"jobs": [source["id"]], "top_k": 5, "predicted": 0}))
    trials = list(client.all_trials(source["id"]))
    best_first = sorted(trials, key=lambda t: (-t["metrics"]["val_accuracy"], t["number"]))
    expected: list[list[int]] = []
    for trial in best_first:
        if trial["architecture"]["choices"] not in expected:
            expected.append(trial["architecture"]["choices"])
    priors = job["spec"]["warm_start"]["priors"]
    assert [p["architecture"]["choices"] for p in priors] == expected[:5]
    # the other way round, as its second objective: refused, and a query passes it over
    lowest = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "minimize"]}
    wrong = client.wait(
        client.submit(nb201_spec(budget={"trials": 8}, objective=lowest))["id"],
        timeout=time_left(120),
    )
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"jobs": [wrong["id"]]}))
    assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 0]
    assert f"job {wrong['id']} minimized 'val_accuracy'" in info.value.detail[0]["msg"]
    query = client.submit(nb201_spec(warm_start={"query": "same-space", "limit": 5}))
    taken = [s["job_id"] for s in query["spec"]["warm_start"]["sources"]]
    assert source["id"] in taken and wrong["id"] not in taken, taken


def test_a_source_named_twice_or_sources_made_up_are_refused(client: NasClient) -> None:
    source = client.wait(client.submit(nb201_spec(budget={"trials": 5}))["id"], timeout=120)
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"jobs": [source["id"], source["id"]]}))
    assert info.value.detail[0]["loc"] == ["warm_start", "jobs", 1]
    assert (
        info.value.detail[0]["msg"] == f"job {source['id']} is named twice; name each source once"
    )
    prior = {"architecture": source["summary"]["best"]["architecture"], "score": 1.0}
    made_up = nb201_spec(warm_start={"priors": [prior], "sources": [{"x": 1}]})
    with pytest.raises(ApiError) as info:
        client.submit(made_up)  # the job page showed "job undefined (undefined)"
    assert info.value.detail[0]["loc"][:3] == ["warm_start", "sources", 0]


def test_priors_are_validated_against_the_space(http_client: Any) -> None:
    bad = nb201_spec(
        warm_start={
            "priors": [
                {"architecture": {"space": "nb201", "choices": [9, 9, 9, 9, 9, 9]}, "score": 1}
            ]
        }
    )
    response = http_client.post("/api/v1/jobs", json=bad)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["warm_start", "priors", 0, "architecture"]


def test_a_controller_state_that_does_not_fit_is_a_422_that_creates_nothing(
    http_client: Any,
) -> None:
    """A state the controller cannot load is found at submit, not when the job starts."""
    before = http_client.get("/api/v1/jobs").json()["count"]
    prior = {"architecture": {"space": "nb201", "choices": [3, 3, 3, 3, 3, 3]}, "score": 1}
    spec = nb201_spec(
        controller={"name": "enas"},
        warm_start={"priors": [prior], "controller_state": {"source": 1, "state": {"x": 1}}},
    )
    response = http_client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["warm_start", "controller_state"]
    assert "not an ENAS policy of this space" in problem["msg"]
    assert http_client.get("/api/v1/jobs").json()["count"] == before


@pytest.fixture
def http_client(server: LiveServer, user_key: str) -> Any:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {user_key}"}, timeout=30
    ) as c:
        yield c


def test_a_sources_retraining_is_not_counted_among_its_ranks(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    """A retraining is a COMPLETE trial of its job with no objective: a source of 4 trials
    and one retraining scored its trials 1, 0.8, 0.6, 0.4 (ranks out of 5), where one with
    no retraining scores 1, 0.75, 0.5, 0.25."""
    source = client.wait(
        client.submit(standalone_spec(trials=4, epochs=1, name="source", final={"epochs": 1}))[
            "id"
        ],
        timeout=time_left(120),
    )
    assert source["state"] == "SUCCEEDED", source["reason"]
    retraining = client.wait_trial(client.retrain(source["id"], 1)["trial_id"], timeout=120)
    assert retraining["state"] == "COMPLETE" and retraining["objective"] is None
    assert client.job(source["id"])["trial_states"] == {"COMPLETE": 5}
    spec = standalone_spec(
        trials=1,
        epochs=1,
        name="warm",
        controller={"name": "tpe"},  # (a controller that learns from observations)
        warm_start={"jobs": [source["id"]], "top_k": 4, "predicted": 0},
    )
    job = client.submit(spec)
    observations = job["spec"]["warm_start"]["observations"]
    assert [o["score"] for o in observations] == [1.0, 0.75, 0.5, 0.25]
    client.cancel(job["id"])


def test_a_warm_start_whose_stored_spec_could_not_be_submitted_again_is_refused(
    server_factory: Any,
) -> None:
    """A short spec naming sources with many trials was stored at a size above the body
    limit: nas show --spec printed it, and submitting it again answered 413."""
    server: LiveServer = server_factory(max_body_bytes=30_000)
    with server.client(server.create_key("a")) as client:
        source = client.wait(client.submit(nb201_spec(budget={"trials": 300}))["id"], timeout=60)
        spec = nb201_spec(
            name="warm",
            controller={"name": "tpe"},
            warm_start={"jobs": [source["id"]], "observations_per_source": 300},
        )
        with pytest.raises(ApiError) as refused:
            client.submit(spec)
        assert refused.value.status_code == 422
        assert refused.value.detail[0]["loc"] == ["warm_start", "observations_per_source"]
        assert "above this server's body limit of 30,000" in refused.value.detail[0]["msg"]
        assert client.jobs()["count"] == 1  # the source alone
        spec["warm_start"]["observations_per_source"] = 20
        job = client.submit(spec)
        again = client.submit(client.job(job["id"])["spec"])  # as nas show --spec gives it
        assert again["spec"]["warm_start"] == job["spec"]["warm_start"]
        # what is accepted fits as the YAML nas show --spec prints (larger than its JSON,
        # which alone was measured at first)
        verdicts = []
        for n in range(40, 200, 20):
            spec["warm_start"]["observations_per_source"] = n
            try:
                stored = client.submit(spec)["spec"]
            except ApiError as exc:
                assert exc.status_code == 422, exc
                verdicts.append(False)
                continue
            assert len(yaml.safe_dump(stored, sort_keys=False)) <= 30_000, n
            verdicts.append(True)
        assert verdicts[0] and not verdicts[-1], verdicts


def test_the_stored_size_is_measured_as_the_yaml_it_is_printed_in() -> None:
    """enas-macro architectures print as YAML at about 2.6 times their JSON: a stored spec
    whose JSON fits half the limit was accepted although its YAML did not fit at all."""
    import json

    import numpy as np

    from api.services import check_resubmittable
    from nas.errors import SpecError
    from workers.search import parse_spec

    spec = standalone_spec(space={"name": "enas-macro", "layers": 12, "channels": 8})
    space = parse_spec(spec).build_space()
    rng = np.random.default_rng(0)
    priors = [
        {"architecture": space.sample(rng).to_dict(), "score": 1 - i / 400, "source": 1}
        for i in range(400)
    ]
    resolved = parse_spec({**spec, "warm_start": {"priors": priors}})
    stored = resolved.to_dict()
    as_json = len(json.dumps(stored, separators=(",", ":")))
    as_yaml = len(yaml.safe_dump(stored, sort_keys=False))
    assert as_yaml > 2 * as_json  # the case: JSON under half the limit, YAML over it
    limit = as_json * 2 + 1
    with pytest.raises(SpecError, match="above this server's body limit"):
        check_resubmittable(resolved, limit)
    check_resubmittable(resolved, as_yaml)


def test_a_source_job_of_another_space_version_is_a_422_at_its_field(
    server: LiveServer, client: NasClient
) -> None:
    """Said once, at warm_start.jobs.0 (it was one error per prior and observation)."""
    from sqlalchemy import select

    from api.db import session_scope
    from api.models import TrialModel

    source = client.wait(client.submit(nb201_spec(budget={"trials": 6}))["id"], timeout=120)
    with session_scope(server.app.state.nas.write) as session:
        for trial in session.scalars(select(TrialModel).where(TrialModel.job_id == source["id"])):
            trial.architecture = {**trial.architecture, "version": 2}  # (a space bumped since)
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(warm_start={"jobs": [source["id"]]}))
    said = (
        f"job {source['id']} searched version 2 of space 'nb201'; this job's 'nb201' is "
        "version 1: the spaces must match"
    )
    assert [(p["loc"][-3:], p["msg"]) for p in info.value.detail] == [
        (["warm_start", "jobs", 0], said)
    ]
