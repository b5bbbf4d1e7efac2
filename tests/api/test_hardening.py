"""Issue 13: what a careless client or an attacker can send gets a 4xx naming the field, never
a 500, and creates nothing. Each test here failed on the main of 2026-12-04 (before the fix),
on both databases."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from openapi_spec_validator import validate

from api.client import tls_context
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec, wait_for


def _post_json(http: httpx.Client, text: str) -> httpx.Response:
    return http.post(
        "/api/v1/jobs",
        content=text.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json"},
    )


def _post_yaml(http: httpx.Client, text: str) -> httpx.Response:
    return http.post(
        "/api/v1/jobs", content=text.encode(), headers={"content-type": "application/yaml"}
    )


def _locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [e["loc"] for e in response.json()["detail"]]


def _no_jobs(http: httpx.Client) -> None:
    assert http.get("/api/v1/jobs").json()["count"] == 0


# --- item 1: ids and offsets out of the columns' range ----------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/jobs/{id}"),
        ("POST", "/api/v1/jobs/{id}/cancel"),
        ("DELETE", "/api/v1/jobs/{id}"),
        ("GET", "/api/v1/jobs/{id}/best"),
        ("GET", "/api/v1/jobs/{id}/events"),
        ("GET", "/api/v1/jobs/{id}/export"),
        ("POST", "/api/v1/jobs/{id}/retrain"),
        ("GET", "/api/v1/jobs/{id}/trials"),
        ("GET", "/api/v1/jobs/{id}/curves"),
        ("GET", "/api/v1/trials/{id}"),
    ],
)
def test_ids_beyond_the_column_are_a_422_not_a_500(
    http: httpx.Client, method: str, path: str
) -> None:
    too_big = (2**63,) if path.startswith("/api/v1/trials") else (2**31, 2**63)
    for value in (*too_big, 10**30, -1, 0):
        response = http.request(method, path.format(id=value))
        assert response.status_code == 422, (value, response.status_code, response.text)
        assert response.json()["detail"][0]["loc"][0] == "path"
    # The largest valid id is simply not found.
    assert http.request(method, path.format(id=2**31 - 1)).status_code in (404, 409)


def test_offsets_and_cursors_beyond_the_column_are_a_422(http: httpx.Client) -> None:
    for query in ("offset=9223372036854775808", "offset=10000001", "limit=0"):
        response = http.get(f"/api/v1/jobs?{query}")
        assert response.status_code == 422, (query, response.text)
    job_id = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 5})).json()["id"]
    for query in ("offset=9223372036854775808", "after=2147483648", "after=-2"):
        response = http.get(f"/api/v1/jobs/{job_id}/trials?{query}")
        assert response.status_code == 422, (query, response.text)


# --- items 3, 4, 5: nesting, non-finite numbers, invalid Unicode -------------------------------
def test_deep_nesting_is_refused_before_it_is_built(http: httpx.Client) -> None:
    deep_json = '{"name": "x", "hparams": ' + "[" * 1000 + "]" * 1000 + "}"
    deep_flow = "name: x\nhparams: " + "[" * 600 + "]" * 600 + "\n"
    deep_block = (
        "name: x\nhparams:\n"
        + "".join(" " * (i + 1) + "a:\n" for i in range(1200))
        + " " * 1201
        + "1\n"
    )
    deep_list = "- " * 20000 + "x\n"
    choices = {
        "type": "categorical",
        "choices": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    }
    for response in (
        _post_json(http, deep_json),
        _post_yaml(http, deep_flow),
        _post_yaml(http, deep_block),
        _post_yaml(http, deep_list),
        _post_json(http, json.dumps({**nb201_spec(), "hparams": {"x": choices}})),
    ):
        assert response.status_code == 422, response.text[:300]
        assert "nested deeper than 32" in response.text
    _no_jobs(http)


@pytest.mark.parametrize(
    ("field", "body"),
    [
        (["budget", "minutes"], '"budget": {"minutes": Infinity}'),
        (["budget", "simulated_seconds"], '"budget": {"simulated_seconds": NaN}'),
        (
            ["resources", "cpus_per_trial"],
            '"budget": {"trials": 3}, "resources": {"cpus_per_trial": -Infinity}',
        ),
    ],
)
def test_non_finite_json_numbers_are_refused(
    http: httpx.Client, field: list[str], body: str
) -> None:
    base = json.dumps({k: v for k, v in nb201_spec().items() if k != "budget"})[:-1]
    response = _post_json(http, base + ", " + body + "}")
    assert response.status_code == 422, response.text
    # at the field, as in YAML (it was the whole document's error)
    assert _locs(response) == [field], response.text
    assert "numbers must be finite" in response.text
    _no_jobs(http)


def test_non_finite_yaml_numbers_are_refused_at_their_field(http: httpx.Client) -> None:
    text = (
        "name: inf\ndataset: {name: nb201-cifar10}\nspace: {name: nb201}\n"
        "controller: {name: random}\nevaluator: {name: tabular}\n"
        "budget: {minutes: .inf, simulated_seconds: .nan}\nresources: {cpus_per_trial: .inf}\n"
    )
    locs = _locs(_post_yaml(http, text))
    assert ["budget", "minutes"] in locs
    assert ["budget", "simulated_seconds"] in locs
    assert ["resources", "cpus_per_trial"] in locs
    _no_jobs(http)


def test_lone_surrogates_are_refused_without_a_500(http: httpx.Client) -> None:
    spec = nb201_spec(hparams={"x": {"type": "categorical", "choices": ["a", "\ud800"]}})
    text = json.dumps(spec)  # escapes the surrogate as \ud800: valid JSON, invalid Unicode
    response = _post_json(http, text)
    assert ["hparams", "x", "choices", 1] in _locs(response)
    key = json.dumps({**nb201_spec(), "hparams": {"\udfff": {"type": "int", "low": 0, "high": 1}}})
    assert _post_json(http, key).status_code == 422
    name = json.dumps(nb201_spec(dataset={"name": "\ud800"}))
    assert _post_json(http, name).status_code == 422
    _no_jobs(http)


# --- items 6 and 7: bounded jobs, ranges that fit ----------------------------------------------
def test_budgets_above_the_server_limits_are_refused(http: httpx.Client) -> None:
    for budget, loc in (
        ({"trials": 10**12}, ["budget", "trials"]),
        ({"trials": 10**30}, ["budget", "trials"]),
        ({"minutes": 1e308}, ["budget", "minutes"]),
        ({"simulated_seconds": 1e300}, ["budget", "simulated_seconds"]),
    ):
        response = http.post("/api/v1/jobs", json=nb201_spec(budget=budget))
        assert loc in _locs(response), (budget, response.text)
    # just above the limit: the value shown tells the two apart ("at most 1e+09; got 1e+09")
    response = http.post("/api/v1/jobs", json=nb201_spec(budget={"simulated_seconds": 1.0000001e9}))
    (error,) = response.json()["detail"]
    assert error["msg"].endswith("(NAS_MAX_SIMULATED_SECONDS); got 1000000100.0"), error
    # a count in full (it said "got 1e+12")
    response = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 10**12}))
    (error,) = response.json()["detail"]
    assert error["msg"].endswith("(NAS_MAX_TRIALS_PER_JOB); got 1000000000000"), error
    _no_jobs(http)


def test_a_job_without_a_trial_budget_is_stored_with_the_server_limit(
    server_factory: Any,
) -> None:
    server = server_factory(max_trials_per_job=25, run_jobs=False)
    with server.client(server.create_key("u")) as client:
        job = client.submit(nb201_spec(budget={"simulated_seconds": 1e6}))
    budget = job["spec"]["budget"]
    assert (budget["max_trials"], budget["simulated_seconds"]) == (25, 1e6)
    assert "minutes" not in budget and "trials" not in budget  # a cap, not a plan


def test_overflowing_hparam_ranges_are_refused(http: httpx.Client) -> None:
    spec = standalone_spec(
        hparams={
            "lr": {"type": "float", "low": -1e308, "high": 1e308},
            "depth": {"type": "int", "low": -(2**62), "high": 2**62},
        }
    )
    locs = _locs(http.post("/api/v1/jobs", json=spec))
    assert ["hparams", "lr", "high"] in locs
    assert ["hparams", "depth", "high"] in locs
    beyond = standalone_spec(hparams={"width": {"type": "int", "low": 0, "high": 10**30}})
    assert _locs(http.post("/api/v1/jobs", json=beyond)) == [["hparams", "width", "high"]]
    _no_jobs(http)


# --- item 8: files only from the data roots ------------------------------------------------------
def test_files_outside_the_data_roots_are_refused_alike(
    http: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.npz"
    np.savez(outside, x=np.zeros((4, 8)), y=np.zeros(4, dtype=np.int64))
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    link = data_dir / "escape.npz"
    link.symlink_to(outside)
    answers = set()
    for path in (
        str(outside),
        "/etc/passwd",
        "/etc/shadow",
        "/nonexistent/x.npz",
        "/dev/zero",
        "/proc/self/environ",
        str(link),
        f"{data_dir}/../outside.npz",
        "~nosuchuser-of-this-machine/x.npz",  # expanduser raises: not a 500
    ):
        response = http.post(
            "/api/v1/jobs", json=standalone_spec(dataset={"name": "npz", "path": path})
        )
        assert _locs(response) == [["dataset", "path"]], (path, response.text)
        answers.add(response.json()["detail"][0]["msg"])
    table = http.post(
        "/api/v1/jobs", json=nb201_spec(evaluator={"name": "tabular", "table": "/etc/passwd"})
    )
    assert _locs(table) == [["evaluator", "table"]]
    answers.add(table.json()["detail"][0]["msg"])
    assert len(answers) == 1, answers  # one answer: nothing learnt about the file system
    assert "NAS_DATA_ROOTS" in answers.pop()
    _no_jobs(http)


def test_a_path_through_folders_outside_the_roots_answers_alike_whether_they_exist(
    http: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    """``/X/../../<data dir>/file.npz`` was accepted when the folder ``/X`` outside the data
    roots existed and a 422 "no such file" when it did not (the check took ``..`` lexically,
    the reader through the kernel): a map of the machine's folders and running processes
    (``/proc/PID``). Every reader now takes ``..`` as the check does, and the job stores the
    path without it."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    good = data_dir / "inside.npz"
    np.savez(good, x=np.zeros((40, 8), dtype=np.float32), y=np.arange(40) % 2)
    (tmp_path / "exists" / "deeper").mkdir(parents=True)
    up = "/".join([".."] * len(good.parent.parts[1:]))
    stored = []
    for detour in (tmp_path / "exists" / "deeper", tmp_path / "missing" / "deeper"):
        path = f"{detour}/../../{up}{good}"
        response = http.post(
            "/api/v1/jobs",
            json=standalone_spec(trials=1, dataset={"name": "npz", "path": path}),
        )
        assert response.status_code == 201, (path, response.text)
        stored.append(response.json()["spec"]["dataset"]["path"])
    assert stored == [str(good), str(good)]


def test_a_relative_path_is_stored_absolute_and_its_refusal_says_how_it_is_read(
    http: httpx.Client, server: LiveServer
) -> None:
    """A relative path is read from the server's working directory; it was stored as
    written, so a server started from another folder found no such file; and its refusal
    did not say how it is read."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    good = data_dir / "relative.npz"
    rng = np.random.default_rng(0)
    np.savez(good, x=rng.normal(size=(60, 16)).astype(np.float32), y=rng.integers(0, 3, 60))
    relative = os.path.relpath(good)  # (the server runs in this process: the same folder)
    assert not os.path.isabs(relative)
    spec = standalone_spec(
        trials=1,
        epochs=1,
        dataset={"name": "npz", "path": relative},
        space={"name": "enas-macro", "layers": 1, "channels": 4},
    )
    job = http.post("/api/v1/jobs", json=spec).json()
    assert job["spec"]["dataset"]["path"] == str(good)
    http.post(f"/api/v1/jobs/{job['id']}/cancel")
    refused = http.post(
        "/api/v1/jobs", json={**spec, "dataset": {"name": "npz", "path": "elsewhere.npz"}}
    )
    assert _locs(refused) == [["dataset", "path"]]
    assert "a relative path is read from the server's working directory" in refused.text


def test_a_file_under_the_roots_runs_and_errors_name_no_content(
    http: httpx.Client, server: LiveServer
) -> None:
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    good = data_dir / "good.npz"
    rng = np.random.default_rng(0)
    np.savez(good, x=rng.normal(size=(120, 16)).astype(np.float32), y=rng.integers(0, 3, 120))
    spec = standalone_spec(
        trials=1,
        epochs=1,
        dataset={"name": "npz", "path": str(good)},
        space={"name": "enas-macro", "layers": 1, "channels": 4},
    )
    before = http.get("/api/v1/jobs").json()["count"]
    job_id = http.post("/api/v1/jobs", json=spec).json()["id"]
    bad = data_dir / "bad.npz"
    np.savez(bad, secret_array_name=np.zeros((7, 3)))
    # the arrays' headers are read at submit: a 422 at the field, and no job
    refused = http.post("/api/v1/jobs", json={**spec, "dataset": {"name": "npz", "path": str(bad)}})
    assert refused.status_code == 422, refused.text
    assert _locs(refused) == [["dataset", "path"]]
    assert "expected an .npz file" in refused.text
    assert "secret_array_name" not in refused.text and "(7, 3)" not in refused.text
    # the labels are read at submit too (a label of 10^9 made a network of 10^9 outputs at
    # the job's start), and so are the array shapes a network needs: 422s naming no content
    for name, arrays, says in [
        ("negative", {"y": np.full(20, -7)}, "y must hold integer class labels 0..K-1"),
        ("huge", {"y": np.full(20, 10**9)}, "class labels 0..K-1, K at most 100000"),
        ("one-based", {"y": np.arange(20) % 3 + 1}, "labels that start above 0 leave the"),
        ("flat", {"x": np.zeros((20, 0), np.float32)}, "every dimension at least 1"),
        ("few", {"x": np.zeros((2, 16), np.float32), "y": np.zeros(2, int)}, "too few examples"),
    ]:
        path = data_dir / f"{name}.npz"
        np.savez(path, **{"x": np.zeros((20, 16), np.float32), "y": np.zeros(20, int), **arrays})
        refused = http.post(
            "/api/v1/jobs", json={**spec, "dataset": {"name": "npz", "path": str(path)}}
        )
        assert refused.status_code == 422, (name, refused.text)
        assert _locs(refused) == [["dataset", "path"]]
        assert says in refused.text, refused.text
        assert "-7" not in refused.text and "1000000000" not in refused.text
    assert wait_for(lambda: _finished(http, job_id), timeout=120)
    assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED"
    assert http.get("/api/v1/jobs").json()["count"] == before + 1


def _finished(http: httpx.Client, job_id: int) -> bool:
    return http.get(f"/api/v1/jobs/{job_id}").json()["state"] in (
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
    )


def test_data_roots_come_from_the_environment_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.settings import Settings

    monkeypatch.setenv("NAS_DATA_ROOTS", f"/srv/a{os.pathsep}/srv/b")
    assert Settings().resolved_data_roots() == [Path("/srv/a"), Path("/srv/b")]
    monkeypatch.setenv("NAS_DATA_ROOTS", '["/srv/c"]')
    assert Settings().resolved_data_roots() == [Path("/srv/c")]


# --- item 9: the OpenAPI document ----------------------------------------------------------------
def test_the_openapi_document_validates_and_every_ref_resolves(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    validate(doc)
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert "#/components/schemas/JobSpec" in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    submit = doc["paths"]["/api/v1/jobs"]["post"]
    assert {"201", "400", "401", "413", "415", "422"} <= set(submit["responses"])
    assert submit["security"] == [{"bearerAuth": []}]
    assert {"401", "404", "409", "422"} <= set(
        doc["paths"]["/api/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    )
    assert "security" not in doc["paths"]["/healthz"]["get"]
    # The trial listing's body (written by the database) was left out of its 200; a body
    # past the limit is a 413 for any POST or DELETE, read or not (the probe of HTTP).
    trials = doc["paths"]["/api/v1/jobs/{job_id}/trials"]["get"]["responses"]["200"]
    assert trials["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TrialList"
    }
    assert "413" in doc["paths"]["/api/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert "413" in doc["paths"]["/api/v1/jobs/{job_id}"]["delete"]["responses"]
    # Every error answer has its body (a route's own 422s and the 507s had a description
    # only, which a generated client cannot parse: the API consumer's probe); a route's own
    # reasons for a 503 are said beside the database's, which they replaced.
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert "application/json" in response.get("content", {}), (path, method, code)
    delete = doc["paths"]["/api/v1/jobs/{job_id}"]["delete"]["responses"]["503"]
    assert delete["description"].startswith("the database is unavailable; try again shortly; or:")
    retrain = doc["paths"]["/api/v1/jobs/{job_id}/retrain"]["post"]["responses"]["422"]
    assert "format" not in retrain["description"], retrain  # (the export's words)
    # The headers a client acts on are declared (none was: a generated client could not
    # learn to tell an export of random weights, X-NAS-Weights: the HTTP API probe).
    paths = doc["paths"]
    assert set(submit["responses"]["201"]["headers"]) == {"Location"}
    export = paths["/api/v1/jobs/{job_id}/export"]["get"]["responses"]["200"]
    assert set(export["headers"]) == {"Content-Disposition", "X-NAS-Weights"}
    assert "untrained" in export["headers"]["X-NAS-Weights"]["description"]
    assert (
        "Content-Disposition"
        in paths["/api/v1/jobs/{job_id}/policy"]["get"]["responses"]["200"]["headers"]
    )
    assert "Retry-After" in paths["/api/v1/jobs/{job_id}"]["get"]["responses"]["503"]["headers"]
    assert "WWW-Authenticate" in submit["responses"]["401"]["headers"]


def test_a_request_without_a_key_is_a_401_before_its_query_is_checked(
    server: LiveServer, http: httpx.Client, user_key: str
) -> None:
    """The router-wide query check answered a request without a key 422, naming the
    route's parameters; the README promises 401. Two Authorization headers took the first
    one's key whatever the second said."""
    with httpx.Client(base_url=server.url, timeout=60, verify=tls_context()) as anonymous:
        for path in (
            "/api/v1/jobs?foo=1",
            "/api/v1/jobs?limit=1&limit=2",
            # the trial listing checks the key in its own query: its 422 came first
            "/api/v1/jobs/1/trials?limit=0",
            "/api/v1/jobs/1/trials?state=nope",
            "/api/v1/jobs/x/trials",
        ):
            for key in (None, "nas_x"):  # no key, and one the server does not know
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = anonymous.get(path, headers=headers)
                assert response.status_code == 401, (path, key, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
        response = anonymous.get(
            "/api/v1/jobs", headers=[("Authorization", f"Bearer {user_key}")] * 2
        )
        assert response.status_code == 400
        assert response.json()["detail"].startswith("2 Authorization headers; send one")
        response = anonymous.get(
            "/api/v1/jobs/1/trials",
            headers=[("Authorization", "Bearer nope"), ("Authorization", f"Bearer {user_key}")],
        )
        assert response.status_code == 400
        response = anonymous.get(
            "/api/v1/jobs/1/trials?limit=0", headers=[("Authorization", f"Bearer {user_key}")] * 2
        )
        assert response.status_code == 400
    created = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 1}))
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/v1/jobs/{created.json()['id']}"
    refused = http.get("/api/v1/jobs?foo=1")  # with the key: the query's own 422
    assert refused.status_code == 422 and "unknown query parameter 'foo'" in refused.text
    refused = http.get("/api/v1/jobs/1/trials?limit=0")
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "limit"]


def test_an_unsupported_method_lists_every_method_of_the_path(http: httpx.Client) -> None:
    for path, allowed in (
        ("/api/v1/jobs", "GET, HEAD, POST"),
        ("/api/v1/jobs/1", "DELETE, GET, HEAD"),
        ("/api/v1/jobs/1/cancel", "POST"),
        ("/openapi.json", "GET, HEAD"),  # the app's own routes (their Allow was empty)
        ("/docs/assets/swagger-ui.css", "GET, HEAD"),  # static files (it was empty)
    ):
        response = http.request("OPTIONS", path)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
    refused = http.head("/api/v1/jobs/1/cancel")  # a HEAD where there is no GET
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"


def test_head_answers_the_headers_of_get_without_a_body(
    server: LiveServer, http: httpx.Client
) -> None:
    """FastAPI's routes answer GET alone: ``curl -I`` of an export or a job was a 405."""
    job_id = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 5})).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED", 60)
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/export?format=pytorch", "/"):
        got, head = http.get(path), http.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        for name in ("content-type", "content-disposition"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        if "content-length" in got.headers:  # (a JSON body's own length)
            assert head.headers["content-length"] == str(len(got.content)), path
    assert http.head(f"/api/v1/jobs/{job_id + 100}").status_code == 404
    # an event stream: its headers, then the answer ends (the stream is not waited out)
    running = http.post("/api/v1/jobs", json=standalone_spec(trials=3, epochs=40)).json()["id"]
    try:
        head = http.head(f"/api/v1/jobs/{running}/events", timeout=20)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
    finally:
        http.post(f"/api/v1/jobs/{running}/cancel")


def test_if_match_with_a_tag_is_a_412_and_changes_nothing(http: httpx.Client) -> None:
    """The API sends no entity tags: a delete guarded by ``If-Match: "v1"`` deleted the job
    all the same (the header was ignored)."""
    tagged = {"If-Match": '"v1"'}
    refused = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 3}), headers=tagged)
    assert refused.status_code == 412 and "If-Match" in refused.json()["detail"]
    _no_jobs(http)
    job_id = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 3})).json()["id"]
    wait_for(lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED", 60)
    for method, path in (("POST", "/cancel"), ("POST", "/retrain"), ("DELETE", "")):
        for tag in ('"v1"', '*, "v1"', 'W/"v1"'):
            answer = http.request(method, f"/api/v1/jobs/{job_id}{path}", headers={"If-Match": tag})
            assert answer.status_code == 412, (method, path, tag, answer.text)
    assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "SUCCEEDED"
    assert http.get(f"/api/v1/jobs/{job_id}", headers=tagged).status_code == 200  # reads: as ever
    # an empty If-Match is none, as other blank headers are
    assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"If-Match": ""}).status_code == 409
    assert http.delete(f"/api/v1/jobs/{job_id}", headers={"If-Match": "*"}).status_code < 300
    assert http.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_an_empty_or_scalar_yaml_body_is_a_422_naming_the_document(http: httpx.Client) -> None:
    for text in ("''\n", "just text", "[1, 2]"):
        assert _locs(_post_yaml(http, text)) == [["<document>"]]
    _no_jobs(http)


# --- found by the fuzzer -------------------------------------------------------------------------
def test_types_are_not_coerced_in_json_or_yaml(http: httpx.Client) -> None:
    for bad, loc in (
        ({"seed": False}, ["seed"]),
        ({"budget": {"trials": "5"}}, ["budget", "trials"]),
        ({"evaluator": {"name": "tabular", "epochs": "12"}}, ["evaluator", "epochs"]),
    ):
        assert loc in _locs(http.post("/api/v1/jobs", json=nb201_spec(**bad))), bad
    _no_jobs(http)
    yaml_text = (
        "name: y\ndataset: {name: nb201-cifar10}\nspace: {name: nb201}\n"
        "controller: {name: random}\nevaluator: {name: tabular}\nbudget: {trials: '5'}\n"
    )
    # YAML was coerced ('5' read as 5); it reads its exponents as numbers now, so it is
    # as strict as JSON
    refused = _post_yaml(http, yaml_text)
    assert refused.status_code == 422 and ["budget", "trials"] in _locs(refused)
    assert _post_yaml(http, yaml_text.replace("'5'", "5")).status_code == 201


def test_a_json_array_is_a_tuple_parameter(http: httpx.Client) -> None:
    """Pairs and triples (sinusoid ranges, an episodes class split, a MetaQNN schedule) are
    JSON arrays: strict about their items' types, not about arrays being tuples."""
    sinusoid = {
        "name": "s",
        "dataset": {"name": "sinusoid", "amplitude": [0.5, 2.0], "x_range": [-3, 3]},
        "space": {"name": "mlp"},
        "controller": {"name": "random"},
        "evaluator": {"name": "maml", "meta_iterations": 2},
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "budget": {"trials": 1},
    }
    episodes = {
        **sinusoid,
        "dataset": {
            "name": "episodes",
            "source": "mnist1d",
            "ways": 2,
            "class_split": [0.5, 0.3, 0.2],
        },
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
    }
    metaqnn = standalone_spec(
        trials=1, controller={"name": "metaqnn", "schedule": [[1.0, 2], [0.1, 2]]}
    )
    for spec in (sinusoid, episodes, metaqnn):
        response = http.post("/api/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        http.post(f"/api/v1/jobs/{response.json()['id']}/cancel")
    sinusoid["dataset"]["amplitude"] = ["0.5", 2.0]  # still strict inside
    assert _locs(http.post("/api/v1/jobs", json=sinusoid)) == [["dataset", "amplitude", 0]]


def test_timestamps_carry_their_utc_offset(http: httpx.Client) -> None:
    job = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 3})).json()
    assert job["created_at"].endswith(("Z", "+00:00")), job["created_at"]
    listed = http.get("/api/v1/jobs").json()["data"][0]
    assert listed["created_at"].endswith(("Z", "+00:00")), listed["created_at"]
