"""Bring your own benchmark table over HTTP (issue 14 item 2): a table under the server's
data roots is searched like any job, warm-starts another, and is read only from there."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli import describe_result, main
from api.client import ApiError, NasClient
from tests.api.conftest import LiveServer

#: (opt, width) -> (val, test, seconds); (sgd, 64) is not in the table.
ROWS = {
    ("adam", "8"): (70.0, 69.5, 10),
    ("adam", "16"): (80.0, 79.5, 20),
    ("adam", "64"): (90.0, 88.5, 40),
    ("sgd", "8"): (60.0, 61.5, 10),
    ("sgd", "16"): (75.0, 74.5, 20),
}


def write_table(folder: Path, name: str = "bench.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["opt,width,val,test,seconds"]
    lines += [f"{o},{w},{v},{t},{s}" for (o, w), (v, t, s) in ROWS.items()]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def table_spec(path: Path | str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "my-table",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": str(path), "decisions": ["opt", "width"]},
        "controller": {"name": "random"},
        "evaluator": {
            "name": "table",
            "fitness": "val",
            "heldout": "test",
            "cost": [{"column": "seconds"}],
        },
        "objective": {"metric": "val", "direction": "maximize"},
        "budget": {"trials": 12},
        "seed": 0,
    }
    spec.update(overrides)
    return spec


def test_a_table_job_succeeds_and_reports_the_best_rows_heldout_figure(
    server: LiveServer, client: NasClient
) -> None:
    path = write_table(server.settings.data_dir)
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    assert job["state"] == "SUCCEEDED", job["reason"]
    best = job["summary"]["best"]
    genotype = best["genotype"]
    val, test, _ = ROWS[(genotype["opt"], genotype["width"])]
    assert best["objective"] == {"val": val}
    assert best["final_metrics"]["test"] == test
    assert "test" not in best["metrics"]  # never shown to the search
    states = job["trial_states"]
    assert sum(states.values()) == 12 and set(states) <= {"COMPLETE", "PRUNED"}
    pruned = client._request(
        "GET", f"/api/v1/jobs/{job['id']}/trials", params={"state": "PRUNED", "limit": 50}
    )["data"]
    assert len(pruned) == states.get("PRUNED", 0)
    assert all(t["error"] == "not in the table" for t in pruned)


def test_a_table_job_warm_starts_from_another_on_the_same_table(
    server: LiveServer, client: NasClient
) -> None:
    # (named relatively, from the server's folder: stored absolute, and compared so with
    # the source's space, which was stored so too)
    path = os.path.relpath(write_table(server.settings.data_dir))
    source = client.wait(
        client.submit(table_spec(path, controller={"name": "grid"}, budget={"trials": 6}))["id"],
        timeout=120,
    )
    assert source["state"] == "SUCCEEDED", source["reason"]
    warm = table_spec(
        path,
        name="warm",
        controller={"name": "tpe"},
        budget={"trials": 6},
        warm_start={"jobs": [source["id"]], "top_k": 3, "predicted": 0},
        seed=9,
    )
    job = client.submit(warm)
    assert job["spec"]["warm_start"]["sources"][0]["job_id"] == source["id"]
    assert job["spec"]["space"]["path"] == os.path.abspath(path) == source["spec"]["space"]["path"]
    done = client.wait(job["id"], timeout=120)
    assert done["state"] == "SUCCEEDED", done["reason"]
    first = client._request(
        "GET", f"/api/v1/jobs/{job['id']}/trials", params={"limit": 3, "sort": "number"}
    )["data"]
    # the source's three best rows, best first
    best_rows = sorted(ROWS.values(), reverse=True)[:3]
    assert [t["objective"] for t in first] == [v for v, _, _ in best_rows]
    assert done["summary"]["best"]["final_metrics"]["test"] == 88.5


def test_a_table_job_warm_starts_from_one_on_another_table_of_the_same_decisions(
    server: LiveServer, client: NasClient
) -> None:
    """Two tables of the same columns and choices (a CIFAR-10 and a CIFAR-100 benchmark)
    were other spaces for their paths alone: a warm start between them was a 422 (the
    warm-start probe). The source lends its rows' ranks; a table of other choices does not."""
    source_path = write_table(server.settings.data_dir / "a")
    source = client.wait(
        client.submit(table_spec(source_path, controller={"name": "grid"}))["id"], timeout=120
    )
    other = write_table(server.settings.data_dir / "b", "other.csv")
    other.write_text(other.read_text().replace("90.0,88.5", "91.0,89.5"))
    warm = {"jobs": [source["id"]], "top_k": 2, "predicted": 0}
    job = client.wait(
        client.submit(table_spec(other, budget={"trials": 4}, warm_start=warm, seed=3))["id"],
        timeout=120,
    )
    assert job["state"] == "SUCCEEDED", job["reason"]
    first = client.trials(job["id"], limit=2)["data"]
    assert [t["objective"] for t in first] == [91.0, 80.0]  # the source's two best rows
    # another column's choices: other architectures, refused at the field as before
    fewer = write_table(server.settings.data_dir / "c", "fewer.csv")
    fewer.write_text("\n".join(x for x in fewer.read_text().splitlines() if ",64," not in x))
    with pytest.raises(ApiError) as refused:
        client.submit(table_spec(fewer, warm_start=warm))
    assert refused.value.status_code == 422
    assert "searched another space" in str(refused.value) and "decision '" in str(refused.value)
    assert "path" not in str(refused.value)  # (two tables' paths may differ: it was named)


def test_a_table_outside_the_data_roots_is_refused_before_it_is_read(
    server: LiveServer, client: NasClient, tmp_path: Path
) -> None:
    outside = write_table(tmp_path / "elsewhere")
    prior = {"architecture": {"space": "table", "choices": [0, 0]}, "score": 1.0}
    for path in (outside, "/etc/passwd", "/nonexistent/bench.csv", "bench\x00.csv"):
        # with priors, checking them reads the table: the path is refused first
        with pytest.raises(ApiError) as info:
            client.submit(table_spec(path, warm_start={"priors": [prior]}))
        assert info.value.status_code == 422
        (problem,) = info.value.detail
        assert problem["loc"] == ["space", "path"]
        # (a NUL is refused as text before it is taken for a path)
        says = "NUL character" if "\x00" in str(path) else "NAS_DATA_ROOTS"
        assert says in problem["msg"], problem


def test_a_bad_table_under_the_roots_is_a_422_naming_the_field_not_the_content(
    server: LiveServer, user_key: str
) -> None:
    folder = server.settings.data_dir
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "bad.csv"
    bad.write_text("opt,width,val,test,seconds\nadam,8,secret-cell,1,1\n")
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {user_key}"}, timeout=30
    ) as http:
        before = http.get("/api/v1/jobs").json()["count"]
        problems = {
            "evaluator.fitness": (table_spec(bad), "column 'val' must be numeric"),
            "space.decisions.1": (
                {
                    **table_spec(bad),
                    "space": {"name": "table", "path": str(bad), "decisions": ["opt", "depth"]},
                },
                "the table has no column 'depth'",
            ),
        }
        for field, (spec, message) in problems.items():
            response = http.post("/api/v1/jobs", json=spec)
            assert response.status_code == 422, response.text
            (problem,) = response.json()["detail"]
            assert ".".join(str(p) for p in problem["loc"]) == field
            assert problem["msg"].startswith(message)
            assert "secret-cell" not in response.text
        # nothing was created
        assert http.get("/api/v1/jobs").json()["count"] == before


def test_table_problems_found_by_a_user_probe_are_422s_at_their_fields(
    server: LiveServer, user_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table too large (was: 34 s and 2.9 GB to refuse), a scale that overflows to
    infinity (was: accepted, a listing of bare Infinity, a simulated budget spent with no
    trial), a fitness column the table lacks (was: only objective.metric's error)."""
    import nas.datasets.table as table_module

    path = write_table(server.settings.data_dir)
    big = write_table(server.settings.data_dir, "big.csv")
    with big.open("a") as file:
        file.writelines(f"opt{i},8,1,1,1\n" for i in range(100))
    monkeypatch.setattr(table_module, "MAX_TABLE_CELLS", 200)
    overflow = table_spec(path, budget={"simulated_seconds": 1e6})
    overflow["evaluator"]["cost"] = [{"column": "seconds", "scale": 1e308}]
    no_fitness = table_spec(path)
    no_fitness["evaluator"]["fitness"] = "nope"
    cases = [
        (table_spec(big), "space.path", "the table is larger than a table may be: at most"),
        (overflow, "evaluator.cost.0.scale", "1e+308 * column 'seconds' is not a finite number"),
        (no_fitness, "evaluator.fitness", "the table has no column 'nope'"),
    ]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {user_key}"}, timeout=30
    ) as http:
        for spec, field, message in cases:
            response = http.post("/api/v1/jobs", json=spec)
            assert response.status_code == 422, response.text
            first = response.json()["detail"][0]
            assert ".".join(str(p) for p in first["loc"]) == field, response.text
            assert first["msg"].startswith(message), response.text
        assert http.get("/api/v1/jobs").json()["count"] == 0


def test_a_table_jobs_best_exports_as_json_and_not_as_a_network(
    server: LiveServer, client: NasClient
) -> None:
    path = write_table(server.settings.data_dir)
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    response = client._http.get(f"/api/v1/jobs/{job['id']}/export", params={"format": "json"})
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["genotype"] == {"opt": "adam", "width": "64"}
    assert document["metrics"]["val"] == 90.0 and document["metrics"]["test"] == 88.5
    assert document["space"]["config"]["path"] == str(path)
    assert (document["input_shape"], document["num_classes"]) == (None, None)
    network = client._http.get(f"/api/v1/jobs/{job['id']}/export", params={"format": "onnx"})
    assert network.status_code == 422
    assert "table" in network.json()["detail"][0]["msg"]
    # What the job offers says so too: no model.py to train, json the one format, and the
    # CLI's next step is that one (it suggested a pytorch export the server refuses).
    assert document["weights"] == (
        "none: space 'table' builds no network, its architectures are choices only"
    )
    assert job["export_formats"] == ["json"]
    shown = "\n".join(describe_result(job, None))
    assert f"nas export {job['id']} --format json -o architecture.json" in shown
    assert "--format pytorch" not in shown


def _reading_the_table(job: dict[str, Any], trial: dict[str, Any]) -> list[tuple[str, dict]]:
    """The requests that read a job's table: its charts, a trial's drawing, an export."""
    return [
        (f"/api/v1/jobs/{job['id']}/parallel", {}),
        (f"/api/v1/jobs/{job['id']}/importance", {}),
        (f"/api/v1/trials/{trial['id']}/drawing", {}),
        (f"/api/v1/jobs/{job['id']}/export", {"format": "json"}),
    ]


def test_charts_and_exports_do_not_read_a_table_that_now_leads_out_of_the_roots(
    server: LiveServer, client: NasClient, tmp_path: Path
) -> None:
    path = write_table(server.settings.data_dir)
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    assert job["state"] == "SUCCEEDED", job["reason"]
    trial = next(iter(client.all_trials(job["id"])))
    # The table replaced by a link to one outside the roots whose cells would show.
    outside = write_table(tmp_path / "elsewhere")
    outside.write_text(outside.read_text().replace("adam", "secret-cell"))
    path.unlink()
    path.symlink_to(outside)
    for url, params in _reading_the_table(job, trial):
        response = client._http.get(url, params=params)
        assert response.status_code == 409, (url, response.text)
        assert "space.path no longer lies under this server's data roots" in response.text
        assert "secret-cell" not in response.text
    # What does not read the table still answers.
    assert client._http.get(f"/api/v1/jobs/{job['id']}/history").status_code == 200


def test_charts_of_a_table_rewritten_without_rows_are_a_409(
    server: LiveServer, client: NasClient
) -> None:
    """A job's table rewritten with its header only: the charts that read it answered a
    422 with no field (the request was fine; the job's file changed)."""
    path = write_table(server.settings.data_dir, "emptied.csv")
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    assert job["state"] == "SUCCEEDED", job["reason"]
    trial = next(iter(client.all_trials(job["id"])))
    path.write_text("opt,width,val,test,seconds\n")
    for url, params in _reading_the_table(job, trial):
        response = client._http.get(url, params=params)
        assert response.status_code == 409, (url, response.text)
        assert "no data row" in response.text, (url, response.text)


def test_importance_of_a_job_whose_trials_all_scored_the_same_is_empty_not_a_500(
    server: LiveServer, client: NasClient
) -> None:
    server.settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = server.settings.data_dir / "flat.csv"
    path.write_text("opt,width,val,test,seconds\n" + "".join(
        f"{o},{w},50,50,1\n" for o in ("adam", "sgd") for w in ("8", "16")
    ))  # fmt: skip
    spec = table_spec(path, controller={"name": "grid"}, budget={"trials": 4})
    job = client.wait(client.submit(spec)["id"], timeout=120)
    assert job["state"] == "SUCCEEDED" and job["trial_states"] == {"COMPLETE": 4}
    for evaluator in ("ped-anova", "fanova"):  # fANOVA raised "zero total variance"
        response = client._http.get(
            f"/api/v1/jobs/{job['id']}/importance", params={"evaluator": evaluator}
        )
        assert response.status_code == 200, response.text
        assert response.json()["importances"] == [] and response.json()["trials"] == 4


def test_a_table_jobs_trials_sort_by_its_own_metric_columns(
    server: LiveServer, client: NasClient
) -> None:
    """The listing sorts by any metric the job's evaluator reports; a table's are the columns
    its spec names, which the listing refused ("valid: number, objective")."""
    path = write_table(server.settings.data_dir)
    job = client.wait(
        client.submit(table_spec(path, controller={"name": "grid"}))["id"], timeout=120
    )
    page = client.trials(job["id"], sort="val", order="desc")
    values = [t["metrics"]["val"] for t in page["data"] if t["state"] == "COMPLETE"]
    assert values == sorted((v for v, _, _ in ROWS.values()), reverse=True)
    # a column the spec does not name as a metric (the held-out one), which no trial holds:
    # the order was ignored and the page came in number order; and a constraint's figure
    # without its column in evaluator.figures (params, flops, latency_ms were called valid)
    for column in ("test", "nope", "params", "latency_ms"):
        with pytest.raises(ApiError) as refused:
            client.trials(job["id"], sort=column, order="desc")
        assert refused.value.status_code == 422, refused.value
        assert f"'{column}'" in str(refused.value), refused.value
        assert str(refused.value).endswith("; valid: number, objective, val"), refused.value
    # Columns named as exported CSVs name them: accepted at submit, then refused as sort
    # keys by a pattern of letters, digits and _.- (the listing itself called them valid)
    odd = server.settings.data_dir / "odd.csv"
    odd.write_text(write_table(server.settings.data_dir).read_text().replace(
        "opt,width,val,test,seconds", "opt,width,val/acc,acc@1,train time (s)"
    ))  # fmt: skip
    spec = table_spec(odd, objective={"metric": "val/acc"}, controller={"name": "grid"})
    spec["evaluator"] = {
        "name": "table", "fitness": "val/acc", "metrics": ["acc@1", "train time (s)"],
    }  # fmt: skip
    job = client.wait(client.submit(spec)["id"], timeout=120)
    for column in ("val/acc", "acc@1", "train time (s)"):
        page = client.trials(job["id"], sort=column, order="desc")
        values = [t["metrics"][column] for t in page["data"] if t["state"] == "COMPLETE"]
        assert len(values) == len(ROWS) and values == sorted(values, reverse=True), column


def test_a_table_jobs_trials_list_the_tables_cells_not_choice_indices(
    server: LiveServer, client: NasClient, user_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``nas trials`` and its ``--csv`` named a table job's architectures by choice index
    (``0,2``), which the user's table never holds: they read as the table's cells."""
    path = write_table(server.settings.data_dir)
    job = client.wait(
        client.submit(table_spec(path, controller={"name": "grid"}))["id"], timeout=120
    )
    trials = list(client.all_trials(job["id"]))
    auth = ["--server", server.url, "--api-key", user_key]
    assert main(["trials", str(job["id"]), "--csv", *auth]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(trials) == 6  # (2 x 3 combinations, one not in the table)
    assert {(r["choice.opt"], r["choice.width"]) for r in rows} == {
        (o, w) for o in ("adam", "sgd") for w in ("8", "16", "64")
    }
    for row in rows:
        if row["state"] == "COMPLETE":
            assert float(row["val"]) == ROWS[(row["choice.opt"], row["choice.width"])][0]
        else:
            assert (row["choice.opt"], row["choice.width"]) == ("sgd", "64")
    assert main(["trials", str(job["id"]), "--sort", "val", "--order", "desc", *auth]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("  opt=adam width=64"), lines
    assert lines[2].endswith("  opt=adam width=16"), lines
    assert main(["trials", str(job["id"]), "--top", "1", *auth]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("  opt=adam width=64")


def test_a_table_that_gained_a_value_is_refused_not_read_as_other_rows(
    server: LiveServer, client: NasClient
) -> None:
    """An architecture's choices are indices into each column's values: a row with a new
    value added to the table moved them, and a finished job's exports, drawings and warm
    starts named other rows without a word (its best 'sgd' became 'rmsprop'). The job
    stores each decision's choices as read at its submit: a table that no longer holds
    exactly those is refused at them."""
    path = write_table(server.settings.data_dir, "grows.csv")
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["spec"]["space"]["decisions"] == [
        {"column": "opt", "choices": ["adam", "sgd"]},
        {"column": "width", "choices": ["8", "16", "64"]},
    ]
    trial = next(t for t in client.all_trials(job["id"]) if t["state"] == "COMPLETE")
    # exported once before (kept under the job's artifacts): not served again as if the
    # table still read so (rank 1's copy was, where rank 2's answered 409: the probe)
    kept = client._http.get(f"/api/v1/jobs/{job['id']}/export", params={"format": "json"})
    assert kept.status_code == 200, kept.text
    with path.open("a") as table:
        table.write("rmsprop,8,50.0,49.5,10\n")
    for url, params in _reading_the_table(job, trial):
        response = client._http.get(url, params=params)
        assert response.status_code == 409, (url, response.text)
        assert "space.decisions.0.choices" in response.text, (url, response.text)
    with pytest.raises(ApiError) as info:
        client.submit(job["spec"])
    assert info.value.detail[0]["loc"][:3] == ["space", "decisions", 0]
    # a job submitted now stores the table as it is
    again = client.submit(table_spec(path))
    assert again["spec"]["space"]["decisions"][0]["choices"] == ["adam", "rmsprop", "sgd"]


def test_a_table_trials_drawing_is_its_genotype_without_a_picture(
    server: LiveServer, client: NasClient
) -> None:
    """It was a 422 'cannot draw', so the dashboard's trial page showed an error and the
    trial's decisions nowhere."""
    path = write_table(server.settings.data_dir)
    job = client.wait(client.submit(table_spec(path))["id"], timeout=120)
    trial = next(t for t in client.all_trials(job["id"]) if t["state"] == "COMPLETE")
    drawing = client._http.get(f"/api/v1/trials/{trial['id']}/drawing")
    assert drawing.status_code == 200, drawing.text
    body = drawing.json()
    assert (body["text"], body["svg"]) == (None, None)
    assert set(body["genotype"]) == {"opt", "width"}
    assert (body["genotype"]["opt"], body["genotype"]["width"]) in ROWS


def test_meta_training_tables_are_checked_at_submit(server: LiveServer, client: NasClient) -> None:
    """An rl2-meta job's tables were read only when it started: a table without a decision's
    column, or without the fitness column, was accepted (201) and failed in its Ray actor
    three times over with an unreadable reason."""
    data = server.settings.data_dir
    good = write_table(data)
    no_width = data / "no-width.csv"
    no_width.write_text("opt,val\nadam,1\n")

    def meta(tables: list[Path], fitness: str = "val") -> dict[str, Any]:
        return table_spec(
            good,
            controller={"name": "rl2"},
            evaluator={
                "name": "rl2-meta",
                "tables": [str(t) for t in tables],
                "fitness": fitness,
                "iterations": 2,
                "steps": 4,
                "batch": 2,
                "hidden": 8,
            },
            objective={"metric": fitness, "direction": "maximize"},
            budget={"minutes": 1},
        )

    for spec, loc, fragment in [
        (meta([good, no_width]), "evaluator.tables.1", "no column 'width'"),
        (meta([good], fitness="cost"), "evaluator.fitness", "no column 'cost'"),
        (meta([good], fitness="width"), "evaluator.fitness", "a decision column"),
    ]:
        with pytest.raises(ApiError) as refused:
            client.submit(spec)
        assert refused.value.status_code == 422, refused.value
        assert f"{loc}: " in str(refused.value) and fragment in str(refused.value), refused.value
    assert client.jobs()["count"] == 0
    job = client.wait(client.submit(meta([good]))["id"], timeout=60)
    assert job["state"] == "SUCCEEDED", job["reason"]
