"""The dashboard's chart endpoints over HTTP on SQLite and PostgreSQL: bounded sizes that
keep every best-so-far step, parallel coordinates and importance over the top trials and a
sample, the timeline, a trial's drawing by its space, the jobs overview; 404 for another
user's job or trial, 401 without a key, 422 naming a bad parameter."""

from __future__ import annotations

import json
from typing import Any

import httpx

from api.cli import describe_job, main
from nas.pareto import non_dominated
from tests.api.conftest import LiveServer, nb201_spec


def _get(server: LiveServer, key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_chart_endpoints(server: LiveServer, user_key: str, client: Any) -> None:
    job = client.wait(client.submit(nb201_spec(budget={"trials": 300}))["id"], timeout=60)
    assert job["state"] == "SUCCEEDED"
    jid = job["id"]
    trials = list(client.all_trials(jid))
    done = [t for t in trials if t["state"] == "COMPLETE" and t["objective"] is not None]

    # history: 300 trials in at most 50 buckets; each bucket's extremes; every best step
    hist = _get(server, user_key, f"/jobs/{jid}/history?points=50").json()
    assert hist["n_trials"] == 300 and hist["bucket_width"] == 6
    assert len(hist["buckets"]) == 50
    first = [t["objective"] for t in done if t["number"] < 6]
    assert hist["buckets"][0]["min"] == min(first) and hist["buckets"][0]["max"] == max(first)
    assert sum(b["count"] for b in hist["buckets"]) == len(done)
    best, steps = float("-inf"), []
    for t in sorted(done, key=lambda t: t["number"]):
        if t["objective"] > best:
            best = t["objective"]
            steps.append({"trial": t["number"], "value": t["objective"]})
    assert hist["best_so_far"] == steps
    assert steps[-1]["value"] == job["best"]["value"]

    # parallel coordinates: the 10 best first, then a sample of 20 evenly spaced others
    pc = _get(server, user_key, f"/jobs/{jid}/parallel?top=10&sample=20").json()
    assert [c["name"] for c in pc["columns"]] == [f"edge_{i}" for i in range(6)] or len(
        pc["columns"]
    ) == 6
    top = sorted(done, key=lambda t: (-t["objective"], t["number"]))[:10]
    assert [r["trial"] for r in pc["rows"][:10]] == [t["number"] for t in top]
    assert all(r["top"] for r in pc["rows"][:10]) and not any(r["top"] for r in pc["rows"][10:])
    assert 10 < len(pc["rows"]) <= 30
    by_number = {t["number"]: t for t in done}
    for row in pc["rows"]:
        assert row["values"] == [
            float(c) for c in by_number[row["trial"]]["architecture"]["choices"]
        ]

    # importance: Optuna's PED-ANOVA (default) and fANOVA over the 6 edges, normalised
    for evaluator in ("ped-anova", "fanova"):
        imp = _get(
            server, user_key, f"/jobs/{jid}/importance?evaluator={evaluator}&top=50&sample=100"
        ).json()
        assert imp["evaluator"] == evaluator and imp["trials"] > 100
        assert len(imp["importances"]) == 6
        assert abs(sum(i["importance"] for i in imp["importances"]) - 1) < 1e-6
    bad = _get(server, user_key, f"/jobs/{jid}/importance?evaluator=shap")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "evaluator"]

    # the Python client reads each (a user had to call its private _request)
    assert client.history(jid, points=50) == hist
    assert client.parallel(jid, top=10, sample=20) == pc
    assert client.importance(jid, top=50, sample=100, evaluator="fanova") == imp
    assert (
        client.pareto(jid, sample=7)
        == _get(server, user_key, f"/jobs/{jid}/pareto?sample=7").json()
    )
    latest = client.timeline(jid, limit=5)["workers"]
    assert sum(len(w["trials"]) for w in latest) == 5

    # timeline: the latest 40 trials by worker
    tl = _get(server, user_key, f"/jobs/{jid}/timeline?limit=40").json()
    assert sum(len(w["trials"]) for w in tl["workers"]) == 40
    # its times written as the trial reads write them (they said +00:00 where those say Z)
    by_number = {t["number"]: t for t in trials}
    for lane in tl["workers"]:
        for t in lane["trials"]:
            if t["trial"] in by_number:
                assert (t["start"], t["end"]) == (
                    by_number[t["trial"]]["started_at"],
                    by_number[t["trial"]]["finished_at"],
                ), t

    # a trial's drawing: the space's own text (as in the model card) and its SVG
    trial = trials[0]
    drawing = _get(server, user_key, f"/trials/{trial['id']}/drawing").json()
    assert drawing["space"] == "nb201" and drawing["trial"] == 0
    assert "node3 = " in drawing["text"] and drawing["svg"].startswith("<svg")
    assert drawing["svg"].count('class="node"') == 4
    assert list(drawing["genotype"]) == ["arch_str"]
    assert drawing["genotype"]["arch_str"].startswith("|")

    # the jobs overview: components without the whole spec
    overview = _get(server, user_key, "/dashboard/jobs").json()
    assert overview["count"] == 1
    row = overview["data"][0]
    assert (row["controller"], row["space"], row["dataset"], row["evaluator"]) == (
        "random", "nb201", "nb201-cifar10", "tabular"
    )  # fmt: skip
    assert row["job"]["id"] == jid and row["warm_start"] == []
    assert row["job"]["time_bound_minutes"] is None  # (a trial budget: no bound of the ETA)

    # another user: 404 like a missing job or trial; no key: 401; bad parameters: 422
    other = server.create_key("user-b")
    for path in (f"/jobs/{jid}/history", f"/jobs/{jid}/parallel", f"/jobs/{jid}/importance",
                 f"/jobs/{jid}/timeline", f"/trials/{trial['id']}/drawing"):  # fmt: skip
        assert _get(server, other, path).status_code == 404, path
        assert httpx.get(f"{server.url}/api/v1{path}").status_code == 401, path
    assert _get(server, other, "/dashboard/jobs").json()["count"] == 0
    bad = _get(server, user_key, f"/jobs/{jid}/history?points=1")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "points"]
    assert _get(server, user_key, "/trials/0/drawing").status_code == 422
    assert _get(server, user_key, "/jobs/2147483648/history").status_code == 422


def test_pareto_front_of_a_multi_objective_job(
    server: LiveServer, user_key: str, client: Any
) -> None:
    objective = {"metrics": ["val_accuracy", "params_M"], "directions": ["maximize", "minimize"]}
    job = client.wait(
        client.submit(nb201_spec(budget={"trials": 150}, objective=objective))["id"], timeout=60
    )
    firsts: dict[str, tuple[int, float, float]] = {}  # architecture -> its first trial
    for t in client.all_trials(job["id"]):
        if t["state"] == "COMPLETE":
            point = (t["number"], t["metrics"]["val_accuracy"], t["metrics"]["params_M"])
            firsts.setdefault(json.dumps(t["architecture"], sort_keys=True), point)
    points = list(firsts.values())

    def dominated(p: tuple[int, float, float]) -> bool:
        return any(q[1] >= p[1] and q[2] <= p[2] and (q[1] > p[1] or q[2] < p[2]) for q in points)

    pf = _get(server, user_key, f"/jobs/{job['id']}/pareto?sample=20").json()
    assert [o["metric"] for o in pf["objectives"]] == ["val_accuracy", "params_M"]
    front = {p["trial"] for p in pf["front"]}
    # the front: exactly the non-dominated architectures (each by its first trial), as the
    # job's summary has it: two architectures with equal values are both on it (the
    # endpoint kept one trial per pair of values)
    assert front == {n for n, a, b in points if not dominated((n, a, b))}
    assert front == {p["trial"] for p in job["summary"]["pareto"]}
    assert 0 < len(pf["others"]) <= 20
    assert not front & {p["trial"] for p in pf["others"]}
    # nas show names both objectives and the front (it showed one objective and one best)
    shown = describe_job(client.job(job["id"]), None)
    assert "objectives val_accuracy (maximize), params_M (minimize)" in shown[2]
    header = next(line for line in shown if line.startswith("Pareto front:"))
    assert header.startswith(f"Pareto front: {len(job['summary']['pareto'])} trials")
    single = client.wait(client.submit(nb201_spec(budget={"trials": 5}))["id"], timeout=60)
    empty = _get(server, user_key, f"/jobs/{single['id']}/pareto").json()
    assert empty["front"] == [] and len(empty["objectives"]) == 1


def test_the_pareto_front_of_three_objectives_weighs_all_three(
    server: LiveServer, user_key: str, client: Any
) -> None:
    """The endpoint's front is the job's (its summary's, what nas show counts): it was the
    front of the first two objectives alone, smaller, and a chart of it drew members of the
    real front as dominated."""
    names = ["latency_s", "val_accuracy", "flops_M"]
    objective = {"metrics": names, "directions": ["minimize", "maximize", "minimize"]}
    job = client.wait(
        client.submit(nb201_spec(budget={"trials": 80}, objective=objective, seed=1))["id"],
        timeout=60,
    )
    pf = _get(server, user_key, f"/jobs/{job['id']}/pareto?sample=200").json()
    assert [o["metric"] for o in pf["objectives"]] == names
    front = {p["trial"]: p["values"] for p in pf["front"]}
    summary = {p["trial"]: p["values"] for p in job["summary"]["pareto"]}
    assert set(front) == set(summary)
    for trial, values in front.items():
        assert values == [summary[trial][m] for m in names]
    two = non_dominated([v[:2] for v in front.values()], ["minimize", "maximize"])
    assert len(two) < len(front)  # (what the test needs: the third objective matters here)
    # Each member says its rank, which export takes (a member had no way to its export but
    # trying ranks one by one); nas show prints it.
    shown = describe_job(client.job(job["id"]), None)
    for member in pf["front"]:
        doc = client._request(
            "GET",
            f"/api/v1/jobs/{job['id']}/export",
            params={"format": "json", "rank": member["rank"]},
        )
        entry = next(p for p in job["summary"]["pareto"] if p["trial"] == member["trial"])
        assert entry["rank"] == member["rank"]
        assert doc["architecture"] == entry["architecture"]
        if member["trial"] in [p["trial"] for p in job["summary"]["pareto"][:10]]:
            assert any(
                f"trial {member['trial']} (rank {member['rank']}): " in line for line in shown
            )
    assert all(p["rank"] is None for p in pf["others"])


def test_a_job_without_a_summary_gives_its_fronts_ranks_too(
    server: LiveServer, user_key: str, client: Any, capsys: Any
) -> None:
    """A cancelled job keeps no summary: its front's ranks were null (they came from the
    summary) and nas show printed no front, though export by rank worked."""
    from api.db import session_scope
    from api.models import JobModel

    objective = {"metrics": ["params_M", "val_accuracy"], "directions": ["minimize", "maximize"]}
    job = client.wait(
        client.submit(nb201_spec(budget={"trials": 60}, objective=objective, seed=4))["id"],
        timeout=60,
    )
    with session_scope(server.app.state.nas.write) as session:  # (as a cancel leaves it)
        row = session.get(JobModel, job["id"])
        row.summary, row.state = None, "CANCELLED"
    pf = _get(server, user_key, f"/jobs/{job['id']}/pareto?sample=0").json()
    ranks = {p["trial"]: p["rank"] for p in pf["front"]}
    assert ranks == {p["trial"]: p["rank"] for p in job["summary"]["pareto"]}
    assert min(ranks.values()) == 1
    for trial, rank in ranks.items():
        doc = client._request(
            "GET", f"/api/v1/jobs/{job['id']}/export", params={"format": "json", "rank": rank}
        )
        assert doc["provenance"]["trial"] == trial
    shown = describe_job(client.job(job["id"]), client.best(job["id"])[0], pf)
    assert f"Pareto front: {len(ranks)} trials (GET /api/v1/jobs/{job['id']}/pareto)" in shown
    first = min(ranks, key=lambda t: ranks[t])
    assert any(line.startswith(f"  trial {first} (rank 1): params_M=") for line in shown)
    assert main(["show", str(job["id"]), "--server", server.url, "--api-key", user_key]) == 0
    assert capsys.readouterr().out.splitlines()[-len(shown) :] == shown  # nas show asks for it


def test_the_page_and_only_its_files_are_served(server: LiveServer) -> None:
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-auth="keys"' in page.text and "/dashboard/app.js" in page.text
    for name in ("app.js", "charts.js", "style.css"):
        assert httpx.get(f"{server.url}/dashboard/{name}").status_code == 200
    assert httpx.get(f"{server.url}/dashboard/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{server.url}/dashboard/index.html").status_code == 404
    # The browser's copy sent back: 304, no body (every load sent the whole script again).
    full = httpx.get(f"{server.url}/dashboard/app.js")
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    for condition in ({"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'},
                      {"If-Modified-Since": modified}):  # fmt: skip
        again = httpx.get(f"{server.url}/dashboard/app.js", headers=condition)
        assert again.status_code == 304 and again.content == b"", condition
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-cache"
    for condition in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "not a date"},
                      {"If-None-Match": '"other"', "If-Modified-Since": modified},
                      # a year past datetime's: OverflowError, a 500 (the review of the 304s)
                      {"If-Modified-Since": "Sat, 01 Jan 99999999999 00:00:00 GMT"},
                      {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 +99999999999999999999"}):  # fmt: skip
        again = httpx.get(f"{server.url}/dashboard/app.js", headers=condition)
        assert again.status_code == 200 and again.content == full.content, condition


def test_the_history_and_timeline_end_with_the_search_not_its_retrainings(
    server: LiveServer, user_key: str, client: Any
) -> None:
    """A retraining is the job's next trial (no objective): the history counted it, and the
    best-so-far line ran on to it. Its drawing is the network it trained (``final.channels``
    wider than the search's 8; it was drawn at the searched width)."""
    from tests.api.conftest import standalone_spec

    spec = standalone_spec(trials=3, epochs=1, final={"epochs": 1, "channels": 12})
    job = client.wait(client.submit(spec)["id"], timeout=60)
    started = client.retrain(job["id"], 1)
    assert client.wait_trial(started["trial_id"], timeout=120)["state"] == "COMPLETE"
    drawn = _get(server, user_key, f"/trials/{started['trial_id']}/drawing").json()["text"]
    assert "(12, 8, 8)" in drawn and "(8, 8, 8)" not in drawn, drawn
    searched = client.trials(job["id"])["data"][0]["id"]
    drawn = _get(server, user_key, f"/trials/{searched}/drawing").json()["text"]
    assert "(8, 8, 8)" in drawn and "(12, 8, 8)" not in drawn, drawn
    assert client.job(job["id"])["n_trials"] == 4
    hist = _get(server, user_key, f"/jobs/{job['id']}/history").json()
    assert hist["n_trials"] == 3
    assert max(b["end"] for b in hist["buckets"]) == 2
    # nor does the timeline's time axis run on to it (its lane squeezed the search)
    lanes = _get(server, user_key, f"/jobs/{job['id']}/timeline").json()["workers"]
    assert sorted(t["trial"] for lane in lanes for t in lane["trials"]) == [0, 1, 2]


def test_a_joint_searchs_front_holds_configurations_not_architectures(
    database_url: str,
) -> None:
    """Two trials of one architecture with other hyperparameters are two configurations:
    /pareto left the second off the front although it dominates the first (as the job's
    summary did, ``SearchLoop.pareto``)."""
    from api.charts import pareto
    from api.db import make_engine, make_session_factory, session_scope, upgrade
    from api.models import JobModel, JobState
    from api.repositories import JobRepository, TrialRepository
    from nas.architecture import Architecture
    from nas.trial import TrialRecord, TrialResult, TrialState

    objective = {"metrics": ["val_accuracy", "params_M"], "directions": ["maximize", "minimize"]}
    spec = nb201_spec(
        objective=objective, hparams={"rate": {"type": "categorical", "choices": [0.1, 0.2]}}
    )
    arch, other = (Architecture("nb201", (c, 1, 2, 3, 4, 0)) for c in (0, 1))
    trials = [(arch, 0.1, 21.25, 2.5), (other, 0.1, 30.0, 3.0), (arch, 0.2, 27.5, 2.5)]
    records = [
        TrialRecord(
            n,
            n,
            a,
            {"rate": rate},
            TrialResult(
                state=TrialState.COMPLETE,
                objective=acc,
                metrics={"val_accuracy": acc, "params_M": size},
            ),
            started_at=0,
            finished_at=1,
        )
        for n, (a, rate, acc, size) in enumerate(trials)
    ]
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        with session_scope(make_session_factory(engine, write=True)) as session:
            job = JobRepository(session).add(
                JobModel(name="joint", spec=spec, state=JobState.SUCCEEDED.value)
            )
            TrialRepository(session).add_records(job.id, records)
            session.flush()
            front = pareto(session, job, sample=0)["front"]
        # (rank 2: trial 2's configuration is its architecture's best, which rank 2 exports)
        assert front == [
            {"trial": 1, "values": [30.0, 3.0], "rank": 1},
            {"trial": 2, "values": [27.5, 2.5], "rank": 2},
        ]
    finally:
        engine.dispose()


def test_the_eta_is_bounded_by_minutes_only_where_time_is_all_the_progress_measures() -> None:
    """The progress is the largest share of the budgets spent (trials, minutes, simulated
    time) or of a supernet's epochs, a meta-training's iterations: (1 - progress) of the
    minutes bounds the time left only where the minutes are all it measures (the review:
    50 of 100 trials in 5 of 60 minutes was said to end in 30 minutes)."""
    from api.services import _time_bound
    from nas.spec import ResolvedSpec
    from tests.api.conftest import standalone_spec

    def bound(evaluator: dict[str, Any], **budget: Any) -> float | None:
        spec = {**standalone_spec(), "evaluator": evaluator, "budget": budget}
        return _time_bound(ResolvedSpec.from_stored(spec))

    standalone = {"name": "standalone", "epochs": 1}
    assert bound(standalone, minutes=10) == 10.0
    assert bound(standalone, minutes=10, max_trials=5000) == 10.0  # (a cap)
    assert bound(standalone, minutes=60, trials=100) is None
    assert bound(standalone, minutes=60, simulated_seconds=1e5) is None
    assert bound({"name": "shared-weights"}, minutes=10) is None
    meta = {"name": "rl2-meta", "tasks": ["nb201-cifar10", "nb201-cifar100"], "iterations": 5}
    assert bound(meta, minutes=10) is None
    assert bound(standalone, trials=12) is None
