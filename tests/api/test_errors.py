"""Client mistakes get a 4xx that names the field and what would be valid; nothing is
created; never a 500."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer, nb201_spec, wait_for


def _post(http: httpx.Client, body: bytes | str, content_type: str = "application/json") -> Any:
    return http.post("/api/v1/jobs", content=body, headers={"Content-Type": content_type})


def _locs(response: httpx.Response) -> dict[str, str]:
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in response.json()["detail"]}


BAD_SPECS = [
    # (what is wrong, the document, the field path reported, a fragment of the message)
    ("unknown key", {**nb201_spec(), "bogus": 1}, "bogus", "unknown field"),
    # JSON is strict in hparams too: true was taken for 1, "yes" for true
    (
        "hparam bound of another type",
        nb201_spec(hparams={"w": {"type": "int", "low": True, "high": 10}}),
        "hparams.w.low",
        "valid integer",
    ),
    (
        "hparam flag of another type",
        nb201_spec(hparams={"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": "yes"}}),
        "hparams.lr.log",
        "valid boolean",
    ),
    # stored, a NUL made every PostgreSQL query into the spec fail (the trial listing: 500)
    (
        "NUL character",
        nb201_spec(hparams={"opt": {"type": "categorical", "choices": ["a\x00", "b"]}}),
        "hparams.opt.choices.0",
        "NUL character",
    ),
    ("wrong type", nb201_spec(seed="zero"), "seed", "integer"),
    ("unknown space", nb201_spec(space={"name": "nope"}), "space.name", "nb201"),
    ("unknown controller", nb201_spec(controller={"name": "sgd"}), "controller.name", "random"),
    (  # a client's 10 kB name was echoed back whole
        "unknown long name",
        nb201_spec(controller={"name": "x" * 10_000}),
        "controller.name",
        "... (10000 characters); valid: cmaes",
    ),
    ("unknown dataset", nb201_spec(dataset={"name": "imagenet"}), "dataset.name", "mnist1d"),
    ("bad space param", nb201_spec(space={"name": "nb201", "layers": 3}), "space.layers", ""),
    ("no budget", nb201_spec(budget={}), "budget", "at least one"),
    ("negative budget", nb201_spec(budget={"trials": -1}), "budget.trials", "greater"),
    (
        "parallel workers inline",
        nb201_spec(resources={"workers": 4}),
        "resources.workers",
        "workers: 1",
    ),
    (  # (only Ray places and retries by them: they were accepted and ignored inline)
        "cpus per trial inline",
        nb201_spec(resources={"cpus_per_trial": 64}),
        "resources.cpus_per_trial",
        "does nothing: leave it out (default 1)",
    ),
    (
        "retries inline",
        nb201_spec(resources={"max_retries": 5}),
        "resources.max_retries",
        "does nothing: leave it out (default 2)",
    ),
    (
        "impossible constraint",
        nb201_spec(objective={"metric": "val_accuracy", "constraints": {"max_params": -5}}),
        "objective.constraints.max_params",
        "",
    ),
    ("missing section", {"name": "x"}, "dataset", "required"),
    (
        "final after meta-learning",
        {
            "name": "sine",
            "dataset": {"name": "sinusoid"},
            "space": {"name": "mlp"},
            "controller": {"name": "random"},
            "evaluator": {"name": "maml"},
            "objective": {"metric": "meta_val_mse", "direction": "minimize"},
            "budget": {"trials": 1},
            "final": {"epochs": 5},
        },
        "final",
        "retraining (final:) after a maml search is not supported yet: remove final:",
    ),
]


@pytest.mark.parametrize(
    ("case", "document", "loc", "fragment"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_invalid_specs_are_422_with_the_field_path(
    http: httpx.Client, case: str, document: dict, loc: str, fragment: str
) -> None:
    response = _post(http, json.dumps(document))
    assert response.status_code == 422, response.text
    errors = _locs(response)
    assert loc in errors, errors
    assert fragment.lower() in errors[loc].lower(), errors[loc]
    assert http.get("/api/v1/jobs").json()["count"] == 0  # nothing created


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        ('{"name": "x", ', "application/json", 422, "not valid JSON"),
        ("name: [unclosed", "application/yaml", 422, "not valid YAML"),
        ("[1, 2]", "application/json", 422, "mapping"),
        ("", "application/json", 422, "empty"),
        ("name: x", "text/html", 415, "application/yaml"),
        (b"\xff\xfe", "application/json", 400, "UTF-8"),
        # (read as UTF-8 whatever the charset said)
        ('{"name": "x"}'.encode("utf-16"), "application/json; charset=utf-16", 415, "UTF-8"),
        ("name: x", "application/yaml; charset=UTF-8", 422, "budget"),  # (only UTF-8 is)
    ],
)
def test_malformed_bodies(
    http: httpx.Client, body: Any, content_type: str, status: int, fragment: str
) -> None:
    response = _post(http, body, content_type)
    assert response.status_code == status, response.text
    assert fragment in response.text
    assert http.get("/api/v1/jobs").json()["count"] == 0


def test_a_compressed_body_is_said_to_be_one(http: httpx.Client) -> None:
    """A gzip body (Content-Encoding: gzip) was 'not UTF-8 text'."""
    import gzip
    import json

    body = gzip.compress(json.dumps(nb201_spec()).encode())
    response = http.post(
        "/api/v1/jobs",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == (
        "content-encoding 'gzip' is not supported; send the spec uncompressed"
    )
    assert http.get("/api/v1/jobs").json()["count"] == 0


def test_yaml_body_is_accepted(http: httpx.Client) -> None:
    import yaml

    response = _post(http, yaml.safe_dump(nb201_spec(budget={"trials": 3})), "application/yaml")
    assert response.status_code == 201, response.text


def test_a_yaml_body_is_as_strict_as_json_and_reads_its_exponents(http: httpx.Client) -> None:
    """YAML was read leniently (PyYAML gives 1e-4 as a string): 'seed: true' ran as seed 1
    and "trials: '3'" as 3, which a JSON body refuses."""
    base = "name: y\ndataset: {name: nb201-cifar10}\nspace: {name: nb201}\n"
    base += "controller: {name: random}\nevaluator: {name: tabular}\n"
    for extra, loc in (("budget: {trials: 3}\nseed: true\n", "seed"),
                       ("budget: {trials: '3'}\n", "budget.trials")):  # fmt: skip
        response = _post(http, base + extra, "application/yaml")
        assert response.status_code == 422, response.text
        assert loc in _locs(response), response.text
    assert http.get("/api/v1/jobs").json()["count"] == 0
    hparams = "hparams: {rate: {type: float, low: 1e-4, high: 1e-1, log: true}}\n"
    response = _post(http, base + "budget: {trials: 3}\n" + hparams, "application/yaml")
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["hparams"]["rate"]["low"] == 0.0001
    # YAML 1.2's integers, not PyYAML's YAML 1.1: 'seed: 010' ran as seed 8, 'seed: yes' as 1
    response = _post(http, base + "budget: {trials: 3}\nseed: 010\n", "application/yaml")
    assert response.status_code == 201 and response.json()["spec"]["seed"] == 10, response.text
    response = _post(http, base + "budget: {trials: 3}\nseed: yes\n", "application/yaml")
    assert response.status_code == 422 and "seed" in _locs(response), response.text


def test_oversized_body_is_413(server_factory: Any) -> None:
    server: LiveServer = server_factory(max_body_bytes=4096, run_jobs=False)
    key = server.create_key("a")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        spec = nb201_spec(name="x" * 10)
        spec["padding"] = "y" * 10_000
        response = _post(http, json.dumps(spec))
        assert response.status_code == 413 and "4096" in response.text

        def chunks():  # no Content-Length: the limit applies to the stream too
            yield json.dumps(spec).encode()

        response = http.post(
            "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert http.get("/api/v1/jobs").json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "loc", "fragment"),
    [
        ("/api/v1/jobs/{id}/trials?state=DONE", "query.state", "COMPLETE"),
        ("/api/v1/jobs/{id}/trials?sort=bogus", "query.sort", "val_accuracy"),
        ("/api/v1/jobs/{id}/trials?limit=0", "query.limit", "greater"),
        ("/api/v1/jobs/{id}/trials?sort=objective&after=3", "query.after", "sort=number"),
        ("/api/v1/jobs/{id}/trials?after=5&offset=5", "query.offset", "after (a cursor) or offset"),
        ("/api/v1/jobs/{id}/best?k=100000", "query.k", "less"),
        ("/api/v1/jobs?state=DONE", "query.state", "QUEUED"),
        # a parameter the route does not take: a typo was answered as if it were not there
        (
            "/api/v1/jobs?stat=RUNNING",
            "query.stat",
            "unknown query parameter 'stat'; valid: limit, name, offset, state",
        ),
        ("/api/v1/jobs/{id}/export?formt=onnx", "query.formt", "valid: format, rank, untrained"),
        ("/api/v1/jobs/{id}/best?K=3", "query.K", "valid: k"),
        ("/api/v1/jobs/{id}?verbose=1", "query.verbose", "valid: none"),
        ("/api/v1/jobs/{id}/trials?order=up", "query.order", "'asc' or 'desc'"),
        # one value each: the last of two was used (?format=json&format=onnx served ONNX)
        (
            "/api/v1/jobs/{id}/export?format=json&format=onnx",
            "query.format",
            "query parameter 'format' given 2 times; give it once",
        ),
        ("/api/v1/jobs/{id}/trials?limit=5&limit=6&limit=7", "query.limit", "given 3 times"),
    ],
)
def test_bad_query_parameters(http: httpx.Client, path: str, loc: str, fragment: str) -> None:
    job_id = _post(http, json.dumps(nb201_spec(budget={"trials": 3}))).json()["id"]
    response = http.get(path.format(id=job_id))
    assert response.status_code == 422, response.text
    errors = _locs(response)
    assert loc in errors and fragment.lower() in errors[loc].lower(), errors


def test_a_state_filter_takes_any_case(http: httpx.Client) -> None:
    """``?state=complete`` was a 422 over HTTP while ``nas trials --state complete`` and the
    Python client took any case (the probe of a new user's tasks)."""
    job_id = _post(http, json.dumps(nb201_spec(budget={"trials": 3}))).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED", 60)
    for given in ("complete", "Complete", "COMPLETE"):
        page = http.get(f"/api/v1/jobs/{job_id}/trials", params={"state": given})
        assert page.status_code == 200 and page.json()["count"] == 3, (given, page.text)
    for given in ("succeeded", "SUCCEEDED"):
        page = http.get("/api/v1/jobs", params={"state": given})
        assert page.status_code == 200 and page.json()["count"] == 1, (given, page.text)
    assert http.get("/api/v1/jobs", params={"state": "running"}).json()["count"] == 0
    # an order too (?order=DESC was a 422 where ?state=complete was taken)
    numbers = [
        t["number"] for t in http.get(f"/api/v1/jobs/{job_id}/trials?order=DESC").json()["data"]
    ]
    assert numbers == [2, 1, 0], numbers


def test_the_dashboard_page_takes_any_query(http: httpx.Client) -> None:
    """Only the API's routes refuse unknown query parameters: a link to the dashboard with a
    tracking parameter still opens it."""
    response = http.get("/?utm_source=mail")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]


def test_unknown_ids_are_404(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/api/v1/jobs/999"),
        ("POST", "/api/v1/jobs/999/cancel"),
        ("GET", "/api/v1/jobs/999/trials"),
        ("GET", "/api/v1/jobs/999/best"),
        ("GET", "/api/v1/jobs/999/events"),
        ("GET", "/api/v1/trials/999"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert "999" in response.json()["detail"]
    assert http.get("/api/v1/jobs/abc").status_code == 422


def test_a_whole_number_is_written_in_digits(http: httpx.Client) -> None:
    """Ids and numbers were read as Python reads them: DELETE /jobs/3_2 deleted job 32,
    /trials/9_28 read trial 928, ?limit=1.0 was 1 (the HTTP API probe). Each is a 422 at its
    parameter now, nothing done."""
    ids = [_post(http, json.dumps(nb201_spec(budget={"trials": 2}))).json()["id"] for _ in range(2)]
    for job_id in ids:
        wait_for(lambda j=job_id: http.get(f"/api/v1/jobs/{j}").json()["state"] == "SUCCEEDED", 60)
    first, second = ids
    typo = f"{str(second)[:-1]}_{str(second)[-1]}" if second >= 10 else f"0_{second}"
    for method, path, loc in [
        ("DELETE", f"/api/v1/jobs/{typo}", "path.job_id"),
        ("GET", f"/api/v1/jobs/+{first}", "path.job_id"),
        ("GET", f"/api/v1/jobs/{first}.0", "path.job_id"),
        ("GET", f"/api/v1/jobs/{first}/trials?limit=1.0", "query.limit"),
        ("GET", f"/api/v1/jobs/{first}/trials?after=0_1", "query.after"),
        ("GET", f"/api/v1/jobs/{first}/export?rank=0_1", "query.rank"),
        ("GET", "/api/v1/trials/1_0", "path.trial_id"),
        ("GET", "/api/v1/dashboard/jobs?offset=%201", "query.offset"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 422, (path, response.text)
        assert "must be a whole number written in digits" in _locs(response)[loc], response.text
    assert http.get("/api/v1/jobs").json()["count"] == 2  # nothing deleted
    assert http.get(f"/api/v1/jobs/{first}/trials?limit=1&after=-1").status_code == 200
    # an event stream's empty Last-Event-ID (an EventSource's first connect) is none
    with http.stream(
        "GET", f"/api/v1/jobs/{first}/events", headers={"Last-Event-ID": ""}
    ) as stream:
        assert stream.status_code == 200
        assert any(line.startswith("event: end") for line in stream.iter_lines())
    bad = http.get(f"/api/v1/jobs/{first}/events", headers={"Last-Event-ID": "1_0"})
    assert bad.status_code == 422 and "header.last-event-id" in _locs(bad), bad.text


def test_cancel_and_delete_refuse_a_body_that_says_something(http: httpx.Client) -> None:
    """A body on POST /cancel or DELETE (``{"force": true}``) was taken and ignored, where
    /retrain refused one: a 422 at ``body`` now, after the key and the path, nothing done."""
    job_id = _post(http, json.dumps(nb201_spec(budget={"trials": 2}))).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED", 60)
    for method, path in [
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/api/v1/jobs/{job_id}"),
    ]:
        said = http.request(method, path, json={"force": True})
        assert said.status_code == 422, said.text
        assert _locs(said) == {"body": f"{method} {path} takes no body"}, said.text
        bad_path = http.request(method, path.replace(f"/{job_id}", "/x"), json={"force": True})
        problems = bad_path.json()["detail"]  # the path first, said once (it was said twice)
        assert [p["loc"] for p in problems] == [["path", "job_id"]], bad_path.text
        stranger = httpx.request(method, f"{http.base_url}{path}", json={"force": True})
        assert stranger.status_code == 401, stranger.text  # the key first
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", json={}).status_code == 409  # (finished)
    assert http.delete(f"/api/v1/jobs/{job_id}").status_code == 204  # no body: deleted
