"""The dashboard in a real Chromium (Debian's package, driven by Playwright) against a real
server over HTTP: every page renders without a console error, each chart has data, the
trials table pages, sorts and filters, a running job's page gains rows from the event
stream, a wrong key shows the login, another user's job is not found, and a 422's field
errors appear at the field of the spec editor."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from api.client import ApiError
from api.db import session_scope
from api.models import JobModel
from tests.api.conftest import nb201_spec, standalone_spec, wait_for
from tests.api.dashboard.conftest import Site


class Page:
    """A browser page signed in to the site, recording console errors and failed loads."""

    def __init__(self, browser: Any, site: Site, key: str | None) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)  # (a loaded CI machine: 15 s ran out once)
        self.errors: list[str] = []
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}")
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.site = site
        self.page.goto(site.url + "/")
        if key is not None:
            self.page.fill("#login-key", key)
            self.page.click("#login-form button")
            self.page.wait_for_selector("#jobs tbody tr")

    def go(self, fragment: str) -> Any:
        self.page.goto(f"{self.site.url}/#{fragment}")
        # the page's first render is done (charts may still be loading)
        self.page.wait_for_function(
            "fragment => document.querySelector('#main').dataset.route === '#' + fragment",
            arg=fragment,
        )
        return self.page


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Page]:
    p = Page(browser, site, site.key)
    yield p
    p.context.close()


def _rows(page: Any, table: str) -> list[str]:
    return page.locator(f"#{table} tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.trial ?? r.dataset.job ?? '')"
    )


def _unlabelled_controls(page: Any) -> list[str]:
    """Form controls with neither a <label> nor an aria-label (none may be)."""
    return page.locator("main select, main input, main textarea").evaluate_all(
        "cs => cs.filter(c => !c.labels?.length && !c.getAttribute('aria-label'))"
        ".map(c => c.outerHTML.slice(0, 80))"
    )


def _chart_counts(page: Any) -> dict[str, int]:
    return page.locator("figure.chart").evaluate_all(
        "fs => Object.fromEntries(fs.map(f => [f.id, Number(f.querySelector('svg')"
        "?.getAttribute('data-count') ?? (f.querySelector('svg.arch') ? 1 : 0))]))"
    )


def test_every_page_renders_with_its_charts_and_no_console_error(page: Page, site: Site) -> None:
    p = page.page
    # jobs page: both jobs with their components
    jobs = {r: None for r in _rows(p, "jobs")}
    assert set(jobs) == {
        str(site.nb201["id"]), str(site.enas["id"]), str(site.multi["id"]), str(site.metaqnn["id"])
    }  # fmt: skip
    # "Retrain best" only where the server would retrain (its job read says why not)
    assert "tabular benchmark" in site.nb201["retrain_refused"]
    assert site.enas["retrain_refused"] is None
    retrain = {
        job["id"]: p.locator(f"#jobs tr[data-job='{job['id']}'] button", has_text="Retrain best")
        for job in (site.nb201, site.enas)
    }
    assert retrain[site.enas["id"]].count() == 1 and retrain[site.nb201["id"]].count() == 0
    enas_row = p.locator(f"#jobs tr[data-job='{site.enas['id']}']").inner_text()
    assert "enas" in enas_row and "enas-macro" in enas_row and "digits" in enas_row
    # its best is the architecture derived from the supernet, which no trial scored
    derived = site.enas["summary"]["best"]["objective"]["val_accuracy"]
    assert site.enas["best"] == {"trial_number": None, "value": derived}
    assert "(derived)" in enas_row and "(#" not in enas_row, enas_row
    assert _unlabelled_controls(p) == []

    # the ENAS job: history, supernet curves, parallel coordinates, importance, timeline
    page.go(f"/jobs/{site.enas['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    best = p.inner_text("#main dt:has-text('Best') + dd #job-best")
    assert "derived from the supernet" in best and "trial" not in best, best
    counts = _chart_counts(p)
    assert _unlabelled_controls(p) == []
    # every chart has a caption naming it and its numbers in a table
    for figure in p.locator("figure.chart").all():
        assert figure.locator("figcaption").inner_text().strip()
        assert figure.locator("details table").count() == 1
    for chart in ("history", "curve-supernet-mean_reward-baseline", "curve-supernet-entropy",
                  "curve-supernet-train_loss", "parallel", "importance", "timeline"):  # fmt: skip
        assert counts.get(chart, 0) > 0, (chart, counts)
    # each chart's numbers are in a table: the supernet's 2 epochs
    rows = p.locator("#curve-supernet-entropy details tbody tr").count()
    assert rows == 2

    # the NAS-Bench-201 job: history buckets cover its 120 trials
    page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    assert _chart_counts(p)["history"] >= 120
    # its held-out figure (the table's test accuracy of the best), said not to be what the
    # search ranked by (the page showed none)
    held = p.inner_text("#main dt:has-text('Held-out') + dd #job-held-out")
    test_accuracy = site.nb201["summary"]["best"]["final_metrics"]["test_accuracy"]
    assert f"test_accuracy {test_accuracy:.4f}".rstrip("0").rstrip(".") in held, held
    assert "not what the search ranked by (val_accuracy)" in held, held
    # why it offers no Retrain best, and a title of its own (every page had the same one)
    refused = p.inner_text("#retrain-refused")
    assert refused == f"not offered: {site.nb201['retrain_refused']}", refused
    assert p.title() == f"Job {site.nb201['id']}: {site.nb201['name']} – nas-service dashboard"
    # a trial: metrics, and its architecture drawn by the space as SVG with the genotype
    p.click("#trials tbody tr[data-trial='0'] a")
    p.wait_for_selector("#drawing svg.arch")
    assert p.locator("#drawing svg.arch g.node").count() == 4  # the cell's node0..node3
    assert "arch_str" in p.locator("#architecture").inner_text()

    # a standalone-trained ENAS trial has intermediate values per epoch
    page.go(f"/jobs/{site.enas['id']}")
    p.click("#trials tbody tr[data-trial='0'] a")
    p.wait_for_selector("#drawing svg.arch")
    genotype = p.locator("#architecture table").last.inner_text()  # its layers as JSON
    assert '"op":' in genotype and "[object Object]" not in genotype, genotype

    # the MetaQNN job: its reward by epsilon stage (one row per stage of its schedule)
    page.go(f"/jobs/{site.metaqnn['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    assert _chart_counts(p)["curve-epsilon-stages"] >= 2 * 10  # mean and best of 10 stages
    stages = p.locator("#curve-epsilon-stages details tbody tr td:first-child").evaluate_all(
        "tds => tds.map(t => t.textContent)"  # in the closed <details>: no inner text
    )
    assert len(stages) == 10 and stages[0].startswith("ε 1 (stage 0, 15/15 models)"), stages
    assert "Retrain best" not in p.inner_text("main")

    # the two-objective job: its Pareto front
    page.go(f"/jobs/{site.multi['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    assert _chart_counts(p)["pareto"] == 80
    assert p.locator("#pareto details tbody tr").count() >= 1  # the front's trials

    page.go(f"/compare?jobs={site.nb201['id']},{site.enas['id']}")
    p.wait_for_selector("#compare-best")
    assert _chart_counts(p)["compare-best"] > 0
    # the best architectures by their named choices (they were raw indices: 3.1.3.3.3.1)
    p.wait_for_selector("#compare h2:has-text('Best architectures')")
    best = "#compare div:has(> h2:has-text('Best architectures')) tbody tr td:last-child"
    cells = p.locator(best).all_text_contents()
    assert len(cells) == 2 and all(":" in c for c in cells), cells
    # the shared-weight job's best is its derived architecture, as on its own page (the row
    # showed its best one-minibatch trial: another architecture and score)
    row = p.locator("#compare div:has(> h2:has-text('Best architectures')) tbody tr").nth(1)
    enas_cells = row.locator("td").all_text_contents()
    genotype = site.enas["summary"]["best"]["genotype"]
    shown = ", ".join(
        f"{k}: {json.dumps(v, separators=(',', ':')) if isinstance(v, dict | list) else v}"
        for k, v in genotype.items()
    )
    assert enas_cells[1] == "derived" and enas_cells[4] == shown, (enas_cells, shown)
    # text left-aligned, numbers right-aligned: a right-aligned genotype in a wide table sat
    # past the card's edge (its cell looked blank); each starts inside its scroll box
    table = "#compare div:has(> h2:has-text('Best architectures'))"
    aligned = p.locator(f"{table} tbody tr:first-child td").evaluate_all(
        "tds => tds.map(t => getComputedStyle(t).textAlign)"
    )
    assert aligned == ["right", "right", "left", "right", "left"], aligned
    starts = p.locator(f"{table} tbody td:last-child").evaluate_all(
        "tds => tds.map(t => { const r = document.createRange(); r.selectNodeContents(t);"
        " const x = r.getBoundingClientRect().left;"
        " return [x - t.getBoundingClientRect().left,"
        " x < t.closest('.scroll').getBoundingClientRect().right]; })"
    )
    assert all(0 <= x < 20 and seen for x, seen in starts), starts
    page.go("/compare?jobs=abc")
    p.wait_for_selector("#compare [role=alert]:has-text('Not job ids: abc')")
    assert page.errors == []


def test_trials_table_pages_sorts_and_filters(page: Page, site: Site) -> None:
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial]")
    assert _rows(p, "trials") == [str(n) for n in range(25)]
    assert p.inner_text("#trials-count") == "1–25 of 120 trials"
    p.click("#trials-next")  # keyset cursor
    p.wait_for_selector("#trials tbody tr[data-trial='25']")
    assert _rows(p, "trials") == [str(n) for n in range(25, 50)]
    p.click("#trials-prev")
    p.wait_for_selector("#trials tbody tr[data-trial='0']")

    # sort by the objective from the keyboard (header button: descending first)
    p.focus("#trials th button[data-sort='objective']")
    p.keyboard.press("Enter")
    p.wait_for_selector("#trials th[aria-sort='descending']")
    best = str(site.nb201["best"]["trial_number"])
    p.wait_for_function(f"document.querySelector('#trials tbody tr')?.dataset.trial === '{best}'")
    values = [float(v) for v in p.locator("#trials tbody tr td:nth-child(3)").all_inner_texts()]
    assert values == sorted(values, reverse=True)
    p.select_option("#trial-order", "asc")
    p.wait_for_selector("#trials th[aria-sort='ascending']")
    p.wait_for_function(
        "(() => { const v = [...document.querySelectorAll('#trials tbody tr td:nth-child(3)')]"
        ".map(t => parseFloat(t.textContent)); return v.length && v[0] < v[v.length - 1]; })()"
    )

    # filter: no trial FAILED in this job, all COMPLETE
    p.select_option("#trial-state", "FAIL")
    p.wait_for_function("document.querySelector('#trials-count').textContent === 'no trials'")
    assert p.inner_text("#trials tbody") == "No FAIL trials."  # (the body was blank)
    p.select_option("#trial-state", "COMPLETE")
    p.wait_for_function(
        "document.querySelector('#trials-count').textContent.endsWith('of 120 trials')"
    )
    assert page.errors == []


def test_a_running_job_gains_rows_live(page: Page, site: Site) -> None:
    with site.server.client(site.key) as client:
        job = client.submit(standalone_spec(trials=8, epochs=1, name="live"))
        p = page.go(f"/jobs/{job['id']}")
        p.wait_for_selector("#trials")
        first = len([r for r in _rows(p, "trials") if r])
        # rows arrive through the event stream while the job runs (no reload)
        p.wait_for_function(
            f"document.querySelectorAll('#trials tbody tr[data-trial]').length > {first}",
            timeout=30_000,
        )
        assert client.job(job["id"])["n_trials"] < 8 or first < 8
        client.wait(job["id"], timeout=60)
    p.wait_for_function(
        "document.querySelectorAll('#trials tbody tr[data-trial]').length === 8", timeout=15_000
    )
    assert page.errors == []


def test_a_wrong_key_shows_the_login_and_another_users_job_is_not_found(
    browser: Any, site: Site
) -> None:
    wrong = Page(browser, site, None)
    try:
        wrong.page.fill("#login-key", "nas_not-a-key")
        wrong.page.click("#login-form button")
        wrong.page.wait_for_function(
            "document.querySelector('#login-error').textContent.includes('not accepted')"
        )
        assert wrong.page.is_visible("#login") and not wrong.page.is_visible("#main")
    finally:
        wrong.context.close()
    other = Page(browser, site, site.other_key)
    try:
        assert _rows(other.page, "jobs") == [str(site.foreign["id"])]
        p = other.go(f"/jobs/{site.nb201['id']}")
        p.wait_for_selector("[role=alert][data-status='404']")
        assert "Not found" in p.inner_text("main")
        assert "nb201-random" not in p.inner_text("main")
    finally:
        other.context.close()


def test_submit_shows_the_servers_422_at_the_field(page: Page, site: Site) -> None:
    p = page.page
    spec = (
        "name: bad\n"
        "dataset: {name: nb201-cifar10}\n"
        "space:\n"
        "  name: nb201\n"
        "controller:\n"
        "  name: no-such-controller\n"
        "evaluator: {name: tabular}\n"
        "budget: {trials: 0}\n"
    )
    p.fill("#spec", spec)
    p.click("#submit-form button[type=submit]")
    p.wait_for_selector("#spec-errors li")
    items = p.locator("#spec-errors li").evaluate_all(
        "ls => ls.map(l => [l.dataset.loc, l.textContent])"
    )
    by_loc = dict(items)
    assert "controller.name" in by_loc, items
    assert "line 6" in by_loc["controller.name"]  # the editor's line of controller.name
    assert "budget.trials" in by_loc and "line 8" in by_loc["budget.trials"]
    assert p.get_attribute("#spec", "aria-invalid") == "true"
    # jumping to the field selects its line in the editor
    p.locator("#spec-errors li[data-loc='controller.name'] button").click()
    selected = p.evaluate(
        "(() => { const a = document.querySelector('#spec');"
        " return a.value.slice(a.selectionStart, a.selectionEnd); })()"
    )
    assert selected == "  name: no-such-controller"
    # the 422 is expected; the page reports no other error
    assert [e for e in page.errors if "422" not in e] == []


def test_a_warm_started_jobs_page_names_its_sources(page: Page, site: Site) -> None:
    with site.server.client(site.key) as client:
        warm = client.submit(
            nb201_spec(
                name="nb201-warm",
                dataset={"name": "nb201-cifar100"},
                budget={"trials": 6},
                warm_start={"jobs": [site.nb201["id"]], "top_k": 4},
            )
        )
        assert client.wait(warm["id"], timeout=60)["state"] == "SUCCEEDED"
    p = page.go(f"/jobs/{warm['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    text = p.inner_text("main")
    assert f"job {site.nb201['id']} (nb201-random); 2 predicted by a model" in text, text
    assert page.errors == []


def test_a_page_left_while_it_loads_does_not_overwrite_the_next(page: Page, site: Site) -> None:
    """A job page whose fetch came back after the user had gone to Compare replaced the
    Compare page (the URL said #/compare, the page showed the job)."""
    p = page.page
    slowed = "**/api/v1/jobs/*/trials?limit=5*"

    def late(route: Any) -> None:
        p.wait_for_timeout(1500)
        route.continue_()

    p.route(slowed, late)
    p.goto(f"{site.url}/#/jobs/{site.nb201['id']}")
    p.wait_for_selector("#main:not([data-route])", state="attached")
    p.goto(f"{site.url}/#/compare")
    p.wait_for_function("document.querySelector('#main').dataset.route === '#/compare'")
    p.wait_for_timeout(2500)  # the job page's slowed fetch has come back meanwhile
    p.unroute(slowed)
    assert p.locator("#main h1").inner_text() == "Compare jobs"
    assert p.evaluate("document.querySelector('#main').dataset.route") == "#/compare"


def test_colours_and_long_names_show(page: Page, site: Site) -> None:
    """Legend labels took the axis text's grey, not their line's colour; an export re-rendered
    the whole job page (back to the first trials page, charts reloaded)."""
    p = page.go(f"/jobs/{site.enas['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    fills = p.locator("figure.chart svg.plot text[fill]").evaluate_all(
        "ts => ts.map(t => getComputedStyle(t).fill)"
    )
    assert fills and all(f != "rgb(68, 68, 68)" for f in fills)
    p.evaluate("document.querySelector('#charts').dataset.marker = 'same'")
    with p.expect_download():
        p.get_by_role("button", name="Export").click()
    p.wait_for_function("document.querySelector('[role=status]').textContent.includes('done')")
    assert p.evaluate("document.querySelector('#charts').dataset.marker") == "same"
    assert not page.errors, page.errors


def test_the_jobs_table_fits_a_1280_pixel_window_and_axes_are_labelled(
    page: Page, site: Site
) -> None:
    """At 1280 px the jobs table's Actions column lay past the window's edge (reached only
    by scrolling the table sideways); the parallel-coordinates chart's number axes (the
    objective's) had no values."""
    p = page.go("/")
    p.wait_for_selector("#jobs tbody tr[data-job] button")
    fits = p.evaluate(
        "() => { const box = document.querySelector('#jobs').parentElement;"
        " return [box.scrollWidth, box.clientWidth]; }"
    )
    assert fits[0] <= fits[1], fits
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#parallel svg")
    labels = p.locator("#parallel svg text.pc-label").evaluate_all(
        "ts => ts.map(t => t.textContent)"
    )
    best = p.evaluate("document.querySelector('#parallel svg').getAttribute('data-count')")
    assert int(best) > 0 and any(t.replace(".", "", 1).isdigit() for t in labels), labels
    assert not page.errors, page.errors


def test_a_full_first_page_keeps_counting_and_the_list_shows_new_jobs(
    page: Page, site: Site
) -> None:
    """Once the first page of 25 trials was full the live page stopped reloading it ('1–25 of
    27 trials' after the job ended with 45), and the jobs list polled only while a listed job
    ran, so a job submitted elsewhere never appeared."""
    with site.server.client(site.key) as client:
        space = {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]}
        job = client.submit(standalone_spec(trials=30, epochs=1, name="live-full", space=space))
        p = page.go(f"/jobs/{job['id']}")
        p.wait_for_selector("#trials")
        client.wait(job["id"], timeout=120)
        p.wait_for_function(
            "document.querySelector('#trials-count').textContent === '1–25 of 30 trials'",
            timeout=15_000,
        )
        # The list looks again every 10 s while none of its jobs runs: the page's clock is
        # moved on past that instead of waiting for it.
        p.clock.install()
        p.reload()
        p = page.go("/")
        p.wait_for_selector(f"#jobs tr[data-job='{job['id']}']")
        late = client.submit(nb201_spec(budget={"trials": 3}, name="late"))
        client.wait(late["id"], timeout=60)
        p.clock.fast_forward(10_000)
        p.wait_for_selector(f"#jobs tr[data-job='{late['id']}']", timeout=20_000)
        # a page that is not all of them says which (#/?offset=1 said "N job(s)", all of them)
        total = client.jobs()["count"]
        p = page.go("/?offset=1")
        p.wait_for_function(
            "want => document.querySelector('#jobs-count')?.textContent === want",
            arg=f"2–{min(total, 51)} of {total} jobs",
            timeout=15_000,
        )
    assert page.errors == []


def test_a_running_jobs_eta_counts_down_between_updates(
    page: Page, site: Site, time_left: Callable[..., float]
) -> None:
    """The ETA was computed when a job's row was drawn, and the row is redrawn only when the
    job changes: during a long trial it stood still. It counts down now, in the same
    element, from the finishing time estimated at the last update."""
    with site.server.client(site.key) as client:
        # Short trials, many: the first soon gives an estimate, the rest keep the job running
        job = client.submit(standalone_spec(trials=12, epochs=15, name="eta"))
        try:
            # The page's clock, moved on by a minute: an estimate in minutes (a loaded
            # machine's) changes too, without waiting for it
            page.page.clock.install()
            page.page.reload()
            p = page.go("/")
            cell = f"#jobs tr[data-job='{job['id']}'] .eta[data-finish]"
            # the first trial completed (progress > 0): the row has an estimate (a loaded
            # machine trains the 15 epochs for a minute)
            p.wait_for_selector(cell, timeout=1000 * time_left(180))
            read = (
                "(sel) => { const el = document.querySelector(sel);"
                " const same = !!el && el === window.etaCell; window.etaCell = el;"
                " return el && [same, el.dataset.finish, el.textContent]; }"
            )
            shown = p.evaluate(read, cell)
            for _ in range(20):  # until no trial ended (and redrew the row) in between
                p.clock.fast_forward(61_000)
                before, shown = shown, p.evaluate(read, cell)
                if shown is None or shown[0]:
                    break
            assert shown is not None and shown[0], "the row was redrawn at every try"
            assert shown[1] == before[1] and shown[2] != before[2], (before, shown)
            # a finishing time (by the page's clock, ahead of this one), not a duration
            assert int(shown[1]) > 1000 * time.time() - 60_000, shown
        finally:
            with contextlib.suppress(ApiError):  # it may have ended
                client.cancel(job["id"])
    assert page.errors == []


def test_the_eta_follows_the_pace_of_the_search_not_the_time_before_it(
    page: Page, site: Site, time_left: Callable[..., float]
) -> None:
    """The ETA extrapolated the time since the job's start: a job that spent hours before
    its trials (building its data, or its server down until it resumed) was given hours for
    a minute of trials left (54 min or more after 10 h). Once the page has seen the progress
    grow twice it goes by the pace between those readings."""
    with site.server.client(site.key) as client:
        job = client.submit(standalone_spec(trials=12, epochs=15, name="paced"))
        try:
            wait_for(lambda: client.job(job["id"])["progress"] > 0, timeout=time_left(180))
            with session_scope(site.server.app.state.nas.write) as session:
                row = session.get(JobModel, job["id"])
                assert row is not None and row.started_at is not None
                row.started_at -= timedelta(hours=10)
            p = page.go("/")
            cell = f"#jobs tr[data-job='{job['id']}'] .eta[data-finish]"
            first = p.wait_for_selector(cell, timeout=1000 * time_left(60))
            assert (first.text_content() or "").endswith(" h")  # from the job's start
            # (12 trials of 15 epochs: under a minute on a quiet machine, about 10 on a
            # loaded one; counted from the start, 54 min or more)
            p.wait_for_function(
                "(sel) => { const el = document.querySelector(sel);"
                " return !el || Number(el.dataset.finish) - Date.now() < 20 * 60_000; }",
                arg=cell,
                timeout=1000 * time_left(240),
            )
            assert p.query_selector(cell), "the job ended with its ETA counted from its start"
        finally:
            with contextlib.suppress(ApiError):
                client.cancel(job["id"])
    assert page.errors == []


def test_the_eta_never_passes_the_time_budget(
    page: Page, site: Site, time_left: Callable[..., float]
) -> None:
    """A pace read from the first coarse steps of a 10-minute job's progress said 13 min
    (the dashboard probe): the search ends within (1 - progress) of its budget.minutes."""
    with site.server.client(site.key) as client:
        spec = standalone_spec(trials=12, epochs=15, name="timed", budget={"minutes": 3})
        job = client.submit(spec)
        try:
            wait_for(lambda: client.job(job["id"])["progress"] > 0, timeout=time_left(180))
            with session_scope(site.server.app.state.nas.write) as session:
                row = session.get(JobModel, job["id"])
                assert row is not None and row.started_at is not None
                row.started_at -= timedelta(hours=10)  # (counted from it: hours)
            for fragment in ("/", f"/jobs/{job['id']}"):
                p = page.go(fragment)
                cell = p.wait_for_selector(".eta[data-finish]", timeout=1000 * time_left(60))
                left_s = int(cell.get_attribute("data-finish") or 0) - p.evaluate("Date.now()")
                assert 0 < left_s <= 180_000, (fragment, left_s, cell.text_content())
        finally:
            with contextlib.suppress(ApiError):
                client.cancel(job["id"])
    assert page.errors == []


def test_parallel_coordinates_choice_labels_do_not_overlap(page: Page, site: Site) -> None:
    """A decision with more choices than its axis has room for printed every label, one over
    the other; now it names as many as fit (the first and the last among them), each with
    its full text as a tooltip."""
    space = {
        "name": "metaqnn",
        "max_layers": 2,
        "input_size": 8,
        "channels": 4,
        "kernels": [1, 3, 5, 7],  # (9 was past the 8 x 8 input: refused now)
        "pools": [2, 3],
        "fc_units": [16, 32, 64],
    }
    with site.server.client(site.key) as client:
        job = client.submit(standalone_spec(trials=4, epochs=1, name="crowded", space=space))
        client.wait(job["id"], timeout=120)
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#parallel svg")
    axes = p.evaluate(
        """() => {
          const by = {};
          for (const t of document.querySelectorAll('#parallel svg text.pc-label[font-size]')) {
            (by[t.getAttribute('x')] ??= []).push([Number(t.getAttribute('y')), t.textContent]);
          }
          return Object.values(by);
        }"""
    )
    step0 = max(axes, key=len)
    # 20 choices (12 convs, 2 pools, 3 FC, GAP, SM, PAD)
    assert 10 <= len(step0) < 20, step0
    ys = sorted(y for y, _ in step0)
    assert min(b - a for a, b in pairwise(ys)) >= 9, step0
    assert any(text.startswith("PAD") for _, text in step0), step0  # the last choice
    assert not page.errors, page.errors


def test_a_phone_window_does_not_scroll_sideways(browser: Any, site: Site) -> None:
    """At 390 px chart cards kept a 420 px minimum, the spec editor 560 px: pages were wider
    than the window."""
    phone = Page(browser, site, site.key)
    try:
        phone.page.set_viewport_size({"width": 390, "height": 844})
        for fragment, ready in (
            ("/", "#jobs tbody tr"),
            (f"/jobs/{site.nb201['id']}", "#charts[data-loaded]"),
            (f"/jobs/{site.enas['id']}", "#charts[data-loaded]"),
        ):
            p = phone.go(fragment)
            p.wait_for_selector(ready)
            widths = p.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], (fragment, widths)
        assert phone.errors == []
    finally:
        phone.context.close()


def test_a_declined_delete_does_nothing_and_row_choices_survive_a_redraw(
    page: Page, site: Site
) -> None:
    """Declining the Delete confirmation still said 'Delete: done'; the jobs list redraws a
    row whenever any listed job changes, which reset the export format chosen and wiped the
    last action's answer; Cancel asked nothing."""
    with site.server.client(site.key) as client:
        running = client.submit(standalone_spec(trials=6, epochs=2, name="redraws"))
        p = page.go("/")
        dialogs: list[str] = []
        p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        cancel = f"#jobs tr[data-job='{running['id']}'] button:has-text('Cancel')"
        p.click(cancel)  # declined: the job goes on
        assert dialogs and dialogs[-1].startswith(f"Cancel job {running['id']}?")
        row = f"#jobs tr[data-job='{site.nb201['id']}']"
        status = f"{row} [role=status]"
        p.wait_for_selector(f"{row} select")
        p.select_option(f"{row} select", "model-card")
        p.click(f"{row} button:has-text('Delete')")
        assert dialogs[-1].startswith(f"Delete job {site.nb201['id']}")
        assert "done" not in (p.text_content(status) or "")
        p.evaluate(f"document.querySelector(\"{status}\").dataset.mark = 'before'")
        # the running job's row changes: the list redraws every row
        p.wait_for_function(f'!document.querySelector("{status}")?.dataset.mark', timeout=30_000)
        assert p.eval_on_selector(f"{row} select", "s => s.value") == "model-card"
        assert client.job(site.nb201["id"])["state"] == "SUCCEEDED"  # not deleted
        client.wait(running["id"], timeout=120)
    assert page.errors == []


def test_a_meta_training_job_offers_its_policy(page: Page, site: Site) -> None:
    """A meta-training job's only result is its policy file; its page offered Delete alone.
    It has no trials: its trials table was an empty body, its Compare row dashes."""
    from tests.workers.test_meta_train_search import table_meta_spec

    with site.server.client(site.key) as client:
        job = client.wait(
            client.submit(table_meta_spec(site.server.settings.data_dir))["id"], timeout=120
        )
    assert job["state"] == "SUCCEEDED", job["reason"]
    p = page.go(f"/jobs/{job['id']}")
    with p.expect_download() as download:
        p.get_by_role("button", name="Download policy").click()
    assert download.value.suggested_filename == f"rl2-policy-job{job['id']}.pt"
    # its curve is by iteration (it was plotted over the point number, labelled epoch)
    p.wait_for_selector("#charts[data-loaded]")
    captions = p.locator("figure.chart figcaption").all_text_contents()
    assert any("meta_train: auc_z per iteration" in c for c in captions), captions
    assert not any("iteration per" in c or "per epoch" in c for c in captions), captions
    p.wait_for_selector("#trials-none:has-text('No trials: a meta-training job trains a policy')")
    p = page.go(f"/compare?jobs={job['id']}")
    best = "#compare div:has(> h2:has-text('Best architectures')) tbody td:last-child"
    assert p.wait_for_selector(best).inner_text() == "no trials"
    assert page.errors == []


def test_a_page_opened_before_any_trial_completed_gains_the_metric_columns(
    page: Page, site: Site
) -> None:
    """The trials table's metric columns come from the job's completed trials: a page opened
    before the first one completed never showed val_accuracy, params... until reloaded."""
    with site.server.client(site.key) as client:
        job = client.submit(standalone_spec(trials=2, epochs=40, name="early"))
        p = page.go(f"/jobs/{job['id']}")
        p.wait_for_selector("#trials")
        assert client.job(job["id"])["trial_states"].get("COMPLETE", 0) == 0, "opened too late"
        p.wait_for_selector("#trials thead button[data-sort='val_accuracy']", timeout=60_000)
        with contextlib.suppress(ApiError):  # (it may have finished meanwhile)
            client.cancel(job["id"])
    assert page.errors == []


def test_count_axes_have_whole_ticks(page: Page, site: Site) -> None:
    """An ENAS job's 2 epochs were ticked 0, 0.2, ... 1 and a short history trial 0.5, 1.5."""
    p = page.go(f"/jobs/{site.enas['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    ticks = p.locator("figure.chart svg.plot g.axis text[text-anchor=middle][y='220']")
    texts = ticks.all_text_contents()
    assert texts and all(t.lstrip("-").isdigit() for t in texts), texts
    assert page.errors == []


def test_axis_and_lane_labels_are_whole_and_apart(page: Page, site: Site) -> None:
    """Values that barely change (4.275682 to 4.275705) had y tick labels cut at the chart's
    left edge and over the axis title (a fixed 52 px margin); a timeline cut a Ray worker's
    name to its last 18 characters unmarked ('y:vm:4d6d2ccc:7850'), with no way to read it
    whole. Drawn here by the dashboard's own chart module, from such values."""
    p = page.page
    drawn = p.evaluate(
        """async () => {
          const m = await import('/dashboard/charts.js');
          const flat = m.lineChart('flat', 'flat', [{ name: 'val_loss',
            points: [[1, 4.275682], [2, 4.275705], [3, 4.275691]] }], { yLabel: 'val_loss' });
          const at = (iso) => `2024-01-01T00:00:0${iso}Z`;
          const lanes = m.timelineChart('lanes', 'lanes', { workers: [
            { worker: 'ray:vm:4d6d2ccc:7850', trials: [{ trial: 0, state: 'COMPLETE', start: at(0), end: at(2) }] },
            { worker: 'inline@vm:1', trials: [{ trial: 1, state: 'COMPLETE', start: at(1), end: at(3) }] }] });
          document.querySelector('#main').prepend(flat, lanes);
          const box = (el) => el.getBoundingClientRect();
          const edge = box(flat.querySelector('svg')).left;
          const ticks = [...flat.querySelectorAll('g.axis text[text-anchor=end]')]
            .map((t) => [t.textContent, box(t).left - edge]);
          const title = box(flat.querySelector('g.axis text[transform]')).right - edge;
          const names = [...lanes.querySelectorAll('text.worker')].map((t) =>
            [t.firstChild.textContent, t.querySelector('title')?.textContent,
             box(t).left - box(lanes.querySelector('svg')).left]);
          return { ticks, title, names };
        }"""
    )
    texts = [text for text, _ in drawn["ticks"]]
    assert len(texts) >= 3 and len(set(texts)) == len(texts), texts  # told apart
    # each whole inside the chart, right of the y axis title
    assert all(left > drawn["title"] >= 0 for _, left in drawn["ticks"]), drawn
    (cut, cut_title, cut_left), (short, short_title, _) = drawn["names"]
    assert cut == "…:vm:4d6d2ccc:7850" and cut_title == "ray:vm:4d6d2ccc:7850", drawn
    assert cut_left >= 0, drawn
    assert short == short_title == "inline@vm:1", drawn
    assert page.errors == []


def test_values_a_float_step_apart_or_at_the_float_limits_draw(page: Page, site: Site) -> None:
    """Two objective values one float step apart (0.3 and 0.30000000000000004, a user's
    table) hung the page: the tick step fell under the float resolution there and the tick
    loop never moved on. Values of +-1e308 (a span past the largest float) drew no axis."""
    drawn = page.page.evaluate(
        """async () => {
          const m = await import('/dashboard/charts.js');
          const near = m.lineChart('near', 'near', [{ name: 'v',
            points: [[1, 0.3], [2, 0.30000000000000004]] }], { yLabel: 'v' });
          const far = m.lineChart('far', 'far', [{ name: 'v',
            points: [[1, -1e308], [2, 1e308]] }], { yLabel: 'v' });
          const ys = (el) => [...el.querySelectorAll('g.axis text[text-anchor=end]')]
            .map((t) => t.textContent);
          return { near: ys(near), far: ys(far), marks: far.querySelectorAll('circle').length };
        }"""
    )
    assert 2 <= len(drawn["near"]) <= 21 and len(set(drawn["near"])) == len(drawn["near"]), drawn
    assert 2 <= len(drawn["far"]) <= 21, drawn
    assert page.errors == []


def test_sorting_by_keyboard_keeps_the_focus(page: Page, site: Site) -> None:
    """The header row is drawn again on every load: Enter on a sort button dropped the focus
    to the page's body."""
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials thead button[data-sort='objective']")
    p.focus("#trials thead button[data-sort='objective']")
    p.keyboard.press("Enter")
    p.wait_for_selector("#trials thead th[aria-sort] button[data-sort='objective']")
    assert p.evaluate("document.activeElement.dataset.sort") == "objective"
    assert page.errors == []


def test_simulated_seconds_say_so(page: Page, site: Site) -> None:
    """A NAS-Bench-201 trial's seconds are the table's training time, not measured: the
    trials table and the trial page showed them as plain seconds."""
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial]")
    cells = p.locator("#trials tbody tr[data-trial] td:nth-last-child(2)").all_text_contents()
    assert cells and all(c.endswith(" sim.") for c in cells), cells
    # (clicked once the charts above the table are drawn: they move it down as they come)
    p.wait_for_selector("#charts[data-loaded]")
    p.locator("#trials tbody tr[data-trial] a").first.click()
    p.wait_for_function("document.querySelector('#main').dataset.route?.startsWith('#/trials/')")
    text = p.inner_text("#main")
    assert "simulated: a benchmark table's training time" in text, text[:500]
    assert page.errors == []


def test_an_unknown_page_says_so_and_empty_tables_say_none(page: Page, site: Site) -> None:
    """'#/trials/abc' showed the jobs page; an empty table (a trial without hyperparameters)
    showed its headers alone."""
    p = page.go("/trials/abc")
    p.wait_for_selector("#main [role=alert]:has-text('No page #/trials/abc')")
    with site.server.client(site.key) as client:
        trial = client.trials(site.nb201["id"], limit=1)["data"][0]
    p = page.go(f"/trials/{trial['id']}")
    table = "h2:has-text('Hyperparameters') + div table tbody"
    p.wait_for_selector(f"{table} td:has-text('None.')")
    assert page.errors == []


def test_parallel_coordinates_with_many_axes_keep_their_size(page: Page, site: Site) -> None:
    """Thirteen axes were shrunk into the card, their labels to about 5 px; the chart keeps
    its natural size now and its card scrolls sideways."""
    hparams = {f"h{i}": {"type": "float", "low": 0, "high": 1} for i in range(6)}
    with site.server.client(site.key) as client:
        job = client.submit(nb201_spec(budget={"trials": 30}, hparams=hparams, name="wide"))
        client.wait(job["id"], timeout=60)
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#parallel svg")
    drawn, natural = p.evaluate(
        "() => { const s = document.querySelector('#parallel svg');"
        " return [s.getBoundingClientRect().width, s.viewBox.baseVal.width]; }"
    )
    assert natural > 900 and drawn >= natural - 1, (drawn, natural)
    widths = p.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths  # the card scrolls, not the page
    # the objective is the first axis, in sight without scrolling (last, it lay past the
    # card's edge: the dashboard probe)
    first = p.evaluate("document.querySelector('#parallel svg text.pc-label').textContent")
    assert first.startswith("val_accuracy"), first  # (its text, then its title's)
    assert page.errors == []


def test_the_skip_link_keeps_the_page(page: Page, site: Site) -> None:
    """'Skip to content' (#main) was routed as a page: it showed 'Not found'; then its #main
    stayed in the address, which a reload or a bookmark showed as no page."""
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials")
    p.focus("a.skip")
    p.keyboard.press("Enter")
    p.wait_for_function("document.activeElement?.id === 'main'")
    p.wait_for_timeout(300)  # (a route would have replaced the page by now)
    assert p.evaluate("location.hash") == f"#/jobs/{site.nb201['id']}"
    assert p.locator("#trials").count() == 1 and p.locator("text=Not found").count() == 0
    assert page.errors == []


def test_a_retraining_is_followed_and_named_in_the_trials_table(page: Page, site: Site) -> None:
    """'Retrain best' said 'done' as soon as the retraining had started, and the finished
    job's page (no live updates) kept its trial RUNNING until reloaded; a retraining also
    showed as a plain trial with no objective, its test accuracy only in a column further on.
    The metric columns came from the first 5 completed trials only (a pruned trial's
    epochs_trained, trial 6's test_accuracy had none); the job's page never showed a
    retraining's held-out figures, and the retraining's own page showed its objective "–"
    without saying why."""
    pruned = {"name": "median", "n_startup_trials": 2}  # (with a pruner: val_accuracy too)
    evaluator = {"name": "standalone", "epochs": 2, "batch_size": 64, "pruner": pruned}
    spec = standalone_spec(6, 2, name="retrained", final={"epochs": 1}, evaluator=evaluator)
    with site.server.client(site.key) as client:
        job = client.wait(client.submit(spec)["id"], timeout=120)
    p = page.go(f"/jobs/{job['id']}")
    # the search's own final: retraining of its best, on the test split
    held = "#main dt:has-text('Held-out') + dd #job-held-out"
    p.wait_for_selector(f"{held} th:text-is('retrained rank 1')")
    assert "test_accuracy " in p.inner_text(held) and "not what the search ranked by" in (
        p.inner_text(held)
    )
    p.click("button:has-text('Retrain best')")
    status = ".actions [role=status]"
    p.wait_for_selector(f"{status}:has-text('Retrain best: started as trial 6')")
    row = "#trials tbody tr[data-trial='6']"
    p.wait_for_selector(f"{row} .retraining")  # RUNNING first, then redrawn once it ended
    p.wait_for_selector(f"{status}:has-text('Retrain best: trial 6 COMPLETE, test_accuracy')")
    p.wait_for_selector(f"{row} .retraining:has-text('retraining: test_accuracy ')")
    with site.server.client(site.key) as client:
        trials = client.trials(job["id"], limit=10)["data"]
    trial = trials[6]
    assert trial["state"] == "COMPLETE" and trial["worker"].endswith(":retrain"), trial
    # its metrics have columns (test_accuracy: no other trial of the job holds it), as
    # have a pruned trial's (epochs_trained)
    assert any(t["state"] == "PRUNED" for t in trials), [t["state"] for t in trials]
    p.wait_for_selector(f"{held} th:text-is('retrained rank 1 (trial 6)')")
    p.wait_for_selector("#trials thead button[data-sort='test_accuracy']")
    heads = p.locator("#trials thead th").all_text_contents()
    assert "epochs_trained" in heads, heads
    cell = p.locator(f"{row} td").nth(heads.index("test_accuracy")).inner_text()
    assert cell == f"{trial['metrics']['test_accuracy']:.4f}".rstrip("0").rstrip("."), cell
    # its own page says it is a retraining, of which rank
    page.go(f"/trials/{trial['id']}")
    said = p.inner_text("#main dt:has-text('Objective') + dd")
    assert said.startswith("–: a retraining of the job's rank 1 architecture"), said
    assert "(test_accuracy " in said, said
    # a searched trial's intermediate values each on a chart of its own, one line each (a
    # loss near 2 lay flat on the accuracy's 0-100 axis)
    page.go(f"/trials/{trials[0]['id']}")
    lines = p.locator("figure.chart[id^='intermediate-']").evaluate_all(
        "fs => Object.fromEntries(fs.map(f => [f.id, f.querySelectorAll('path.line').length]))"
    )
    assert {"intermediate-val_accuracy", "intermediate-train_loss"} <= set(lines), lines
    assert set(lines.values()) == {1}, lines
    assert page.errors == []


def test_a_running_retraining_is_said_instead_of_offering_another(page: Page, site: Site) -> None:
    """A finished job's page offered 'Retrain best' while a retraining of it ran (started by
    'nas retrain' or another page), which the server refuses (409: one at a time): the page
    says it runs instead, and offers the button again once it has ended."""
    spec = standalone_spec(2, 1, name="retraining-long", final={"epochs": 30})
    with site.server.client(site.key) as client:
        job = client.wait(client.submit(spec)["id"], timeout=120)
        assert job["state"] == "SUCCEEDED", job["reason"]
        started = client.retrain(job["id"])
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector(f"#main #retraining-{job['id']}:has-text('A retraining is running')")
    assert p.locator("#main button:has-text('Retrain best')").count() == 0
    with site.server.client(site.key) as client:  # (it was still running when said so)
        assert client.trial(started["trial_id"])["state"] in ("RUNNING", "COMPLETE")
        ended = client.wait_trial(started["trial_id"], timeout=120)
    assert ended["state"] == "COMPLETE", ended
    p.wait_for_selector("#main button:has-text('Retrain best')", timeout=30_000)
    assert p.locator(f"#retraining-{job['id']}").count() == 0
    assert page.errors == []


def test_a_running_trials_page_follows_it_until_it_ends(
    page: Page, site: Site, time_left: Callable[..., float]
) -> None:
    """A trial's page was drawn once: opened while the trial trained, it kept its state and
    the epochs it had then. It follows the trial now: each epoch's values as they come, then
    its result."""
    with site.server.client(site.key) as client:
        job = client.submit(standalone_spec(trials=1, epochs=30, name="follow"))
        try:
            trial = wait_for(
                lambda: next(iter(client.trials(job["id"], state="RUNNING")["data"]), None),
                timeout=time_left(120),
            )
            p = page.go(f"/trials/{trial['id']}")
            state = "#main dt:has-text('State') + dd"
            assert p.inner_text(state) == "RUNNING"
            # when it started, and its seconds so far, counting (it said "Seconds 0" and not
            # when it started: the dashboard probe)
            started = p.inner_text("#main dt:has-text('Started') + dd")
            assert started == p.evaluate(
                "iso => { const d = new Date(iso), z = (n) => String(n).padStart(2, '0');"
                " return `${d.getFullYear()}-${z(d.getMonth() + 1)}-${z(d.getDate())} `"
                " + `${z(d.getHours())}:${z(d.getMinutes())}:${z(d.getSeconds())}`; }",
                trial["started_at"],
            ), started
            seconds = "#main dt:has-text('Seconds') + dd"
            assert p.inner_text(seconds).endswith(" so far (running)")
            chart = "#intermediate-train_loss svg"  # (each epoch's; validation at the end)
            # more epochs drawn than when the page was first drawn, without a reload
            first = int(p.get_attribute(chart, "data-count") or 0) if p.query_selector(chart) else 0
            p.wait_for_function(
                f"(n) => Number(document.querySelector('{chart}')?.dataset.count) > n",
                arg=first,
                timeout=1000 * time_left(120),
            )
            p.wait_for_selector(f"{state}:has-text('COMPLETE')", timeout=1000 * time_left(180))
            assert p.get_attribute(chart, "data-count") == "30"
            ended = client.trial(trial["id"])
            assert p.inner_text(seconds) == f"{ended['cost_s']:.2f}".rstrip("0").rstrip(".")
            assert p.inner_text("#main dt:has-text('Finished') + dd") != "–"
        finally:
            with contextlib.suppress(ApiError):  # (409 once it has ended)
                client.cancel(job["id"])
    assert page.errors == []


def test_the_jobs_list_keeps_the_keyboard_focus_across_redraws(page: Page, site: Site) -> None:
    """Each redraw of the jobs list (every 2 s while a job runs) dropped the focus to the
    page's body, so a keyboard user lost their place in the table."""
    with site.server.client(site.key) as client:
        running = client.submit(standalone_spec(trials=6, epochs=2, name="focus"))
        p = page.go("/")
        select = f"#jobs tr[data-job='{site.nb201['id']}'] select"
        p.wait_for_selector(select)
        p.focus(select)
        p.evaluate(f"document.querySelector(\"{select}\").dataset.mark = 'before'")
        p.wait_for_function(f'!document.querySelector("{select}")?.dataset.mark', timeout=30_000)
        assert p.evaluate("document.activeElement.closest('tr')?.dataset.job") == str(
            site.nb201["id"]
        )
        assert p.evaluate("document.activeElement.tagName") == "SELECT"
        client.wait(running["id"], timeout=120)
    assert page.errors == []


def test_a_job_without_importances_says_why(page: Page, site: Site) -> None:
    """The importance chart was left out without a word when nothing explains the
    objective yet (here: one completed trial)."""
    with site.server.client(site.key) as client:
        job = client.wait(client.submit(nb201_spec(budget={"trials": 1}))["id"], timeout=60)
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    note = p.inner_text("#importance-none")
    assert "over 1 completed trial(s)" in note and "two or more" in note, note
    assert p.locator("#history").count() == 1  # the other charts are drawn
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#charts[data-loaded]")
    assert p.locator("#importance-none").count() == 0 and p.locator("#importance").count() == 1
    assert page.errors == []


def test_the_api_docs_render_without_the_internet(browser: Any, site: Site) -> None:
    """/docs and /redoc loaded Swagger UI and ReDoc from a CDN: blank pages on a machine
    without internet access. They come from this server now; requests elsewhere fail here."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def local_only(route: Any) -> None:
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(f"{route.request.resource_type} {route.request.url}")
            route.abort()

    context.route("**/*", local_only)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(site.url + "/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/jobs']")
        assert "nas-service" in page.locator(".info .title").inner_text()
        assert outside == []
        page.goto(site.url + "/redoc")
        page.wait_for_selector("h1:has-text('nas-service')")  # ReDoc's rendering of the
        assert page.locator("[data-section-id^='operation/']").count() > 10  # spec's paths
    finally:
        context.close()
    # ReDoc's footer links its maker's logo, which its bundle names on their site
    assert errors == [] and all(url.startswith("image ") for url in outside), outside


def test_a_jobs_warnings_show_on_its_page_and_in_the_list(page: Page, site: Site) -> None:
    """A job's warnings (what a reader of its result must know: no trial completed, the time
    budget cut the search short) were in the API only."""
    spec = nb201_spec(name="all-pruned", budget={"trials": 4})
    spec["objective"] = {"metric": "val_accuracy", "constraints": {"max_params": 1}}
    with site.server.client(site.key) as client:
        job = client.wait(client.submit(spec)["id"], timeout=60)
    assert job["warnings"] and job["warnings"][0].startswith("no trial completed"), job
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#job-warnings li")
    assert (p.text_content("#job-warnings li") or "").startswith("no trial completed (4 PRUNED)")
    # its timeline draws PRUNED apart from FAIL (both were red), with a legend
    p.wait_for_selector("#charts[data-loaded]")
    fills = p.locator("#timeline rect[data-state]").evaluate_all(
        "rs => rs.map(r => r.getAttribute('fill'))"
    )
    assert len(fills) == 4 and set(fills) == {"#8c8c8c"}, fills
    assert p.locator("#timeline svg text:text-is('pruned')").count() == 1
    p = page.go("/")
    p.wait_for_selector(f"#jobs tr[data-job='{job['id']}'] .warning:has-text('a warning')")
    p = page.go(f"/jobs/{site.nb201['id']}")  # none: nothing said (it was written "null")
    p.wait_for_selector("#charts[data-loaded]")
    assert p.locator("#job-warnings").count() == 0 and "null" not in p.inner_text("#main")
    assert page.errors == []


def test_odd_addresses_say_what_they_show(page: Page, site: Site) -> None:
    """#/jobs/0 and over-long ids showed the server's validation text; ?state=running (the
    CLI takes any case) and ?offset=abc were sent as they were; compare took '1.5' for job 1
    and drew a job twice when named twice; a deep offset offered 50 steps back only."""
    for address in ("/jobs/0", "/jobs/99999999999", "/trials/0"):
        p = page.go(address)
        p.wait_for_selector(f"#main [role=alert]:has-text('No page #{address}')")
    p = page.go("/?state=succeeded")
    p.wait_for_selector("#jobs tbody tr[data-job]")
    assert p.input_value("#job-state") == "SUCCEEDED"
    assert "null" not in p.inner_text("#main")  # (an absent notice was written as "null")
    p = page.go("/?state=done&offset=abc")
    p.wait_for_selector("#main [role=alert]:has-text('No job state \"done\"')")
    p.wait_for_selector(f"#jobs tbody tr[data-job='{site.nb201['id']}']")
    p = page.go("/?offset=100000")
    p.wait_for_selector("#jobs tbody td:has-text('No jobs this far: there are')")
    assert p.locator(".pager a:has-text('Newest')").count() == 1
    assert "offset=0" in (p.get_attribute(".pager a:has-text('Newer')", "href") or "")
    job = site.nb201["id"]
    p = page.go(f"/compare?jobs=1.5,{job},{job},x")
    p.wait_for_selector("#compare-wrong:has-text('Not job ids: 1.5, x')")
    best = "#compare div:has(> h2:has-text('Best architectures')) tbody tr"
    p.wait_for_selector(best)
    assert p.locator(best).count() == 1  # named twice, drawn once
    # more than 6 jobs: the first 6 compared, the rest named as left out (they were dropped
    # unsaid, and the box rewritten to the first 6)
    ids = [site.nb201["id"], site.enas["id"], site.multi["id"], site.metaqnn["id"]]
    ids += [2_000_000_000 + i for i in range(4)]  # (no such jobs: said not found)
    asked = ",".join(map(str, ids))
    p = page.go(f"/compare?jobs={asked}")
    notice = p.inner_text("#compare-limit")
    assert notice == (
        f"Compare shows at most 6 jobs: showing {', '.join(map(str, ids[:6]))};"
        f" left out {ids[6]}, {ids[7]}."
    ), notice
    assert p.input_value("#compare-jobs") == asked
    p.wait_for_selector(best)
    assert p.locator(best).count() == 4
    assert p.locator("#compare [role=alert]:has-text('not found')").count() == 2
    assert [e for e in page.errors if "404" not in e] == []  # (the 404s are expected)


def test_compare_says_when_two_jobs_draw_the_same_line(page: Page, site: Site) -> None:
    """Two jobs with the same best-so-far steps (the same spec and seed) drew one line over
    the other: the second is dashed and its legend names the first."""
    with site.server.client(site.key) as client:
        twin = client.wait(client.submit(nb201_spec(budget={"trials": 120}))["id"], timeout=60)
    first = site.nb201["id"]
    p = page.go(f"/compare?jobs={first},{twin['id']}")
    p.wait_for_selector("#compare-best")
    legend = p.locator("#compare-best text.legend").all_text_contents()
    assert legend == [f"job {first}", f"job {twin['id']} (same as job {first})"], legend
    dashes = p.locator("#compare-best path.line").evaluate_all(
        "ps => ps.map(p => p.getAttribute('stroke-dasharray'))"
    )
    assert dashes[0] is None and dashes[1], dashes
    # the legend lies on the plot: a white halo keeps it readable where lines cross it (six
    # jobs' lines ran through its text: the dashboard probe)
    halo = p.locator("#compare-best text.legend").first.evaluate(
        "t => { const c = getComputedStyle(t); return [c.paintOrder, c.stroke]; }"
    )
    assert halo[0].startswith("stroke") and halo[1] == "rgb(255, 255, 255)", halo
    assert page.errors == []


def test_a_failed_trials_error_shows_in_the_trials_table(page: Page, site: Site) -> None:
    """Why a trial failed was on its own page only: a job whose trials all failed showed a
    table of FAIL states to open one by one."""
    rng = np.random.default_rng(0)
    path = site.server.settings.data_dir / "huge.npz"  # every loss NaN in its first batch
    x = np.float32(3e38) * rng.choice([-1.0, 1.0], size=(200, 16)).astype(np.float32)
    np.savez(path, x=x, y=rng.integers(0, 3, 200))
    spec = standalone_spec(trials=2, epochs=1, dataset={"name": "npz", "path": str(path)})
    with site.server.client(site.key) as client:
        job = client.wait(client.submit(spec)["id"], timeout=120)
    assert job["state"] == "FAILED", job
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial='0'] .trial-error")
    errors = p.locator("#trials .trial-error").all_text_contents()
    assert len(errors) == 2 and all(e.startswith("diverged: loss became nan") for e in errors)
    assert page.errors == []


def test_an_export_without_weights_offers_the_untrained_graph(page: Page, site: Site) -> None:
    """A graph format without trained weights is a 409 whose fix (untrained=true) the
    dashboard could not ask for; and a two-objective job's best did not say by which."""
    with site.server.client(site.key) as client:  # trainable, not retrained
        job = client.wait(client.submit(standalone_spec(trials=1, epochs=1))["id"], timeout=120)
    p = page.go(f"/jobs/{job['id']}")
    p.select_option(f"select[aria-label='export format for job {job['id']}']", "onnx")
    p.get_by_role("button", name="Export", exact=True).click()
    p.wait_for_selector(".actions [role=status]:has-text('untrained=true')")
    with p.expect_download() as download:
        p.get_by_role("button", name="Download the untrained onnx graph").click()
    assert download.value.suggested_filename.endswith("-untrained.onnx")
    p.wait_for_selector(".actions [role=status]:has-text('the untrained onnx graph downloaded')")
    # a bundle of random weights is served (200) and said so, as nas export and the client
    # say it (the page said "Export: done" alone: the dashboard probe)
    p.select_option(f"select[aria-label='export format for job {job['id']}']", "pytorch")
    with p.expect_download() as download:
        p.get_by_role("button", name="Export", exact=True).click()
    assert download.value.suggested_filename.endswith("-untrained.zip")
    status = p.wait_for_selector(".actions [role=status]:has-text('Export: done')")
    assert status.text_content() == (
        "Export: done, untrained: the network's weights are random (the job holds no trained "
        "weights of it); Retrain best, then export again for trained ones"
    )
    p = page.go(f"/jobs/{site.multi['id']}")
    p.wait_for_selector("#job-best:has-text('by the first objective')")
    p = page.go("/")
    best = f"#jobs tr[data-job='{site.multi['id']}'] td.num[title]"
    p.wait_for_selector(best)
    title = p.get_attribute(best, "title") or ""
    assert title.startswith("best val_accuracy (the first of val_accuracy, params_M)"), title
    assert [e for e in page.errors if "409" not in e] == []  # (the 409 is expected)


def test_owners_cancel_answers_compare_lengths_and_pager_focus(
    browser: Any, page: Page, site: Site
) -> None:
    """An admin's list did not say whose job was whose; Cancel said 'Cancel: [object
    Object]'; two runs of one spec that ran on for different lengths drew one line over the
    other; the pager's Next, disabled under the keyboard's focus, dropped it to the body."""
    boss = site.server.create_key("boss", admin=True)
    # every user's jobs or the caller's own, as the server knows it (a page holding one
    # other user's jobs only was captioned "Your jobs", their owner unsaid)
    with site.server.client(boss) as client:
        assert client._request("GET", "/api/v1/dashboard/jobs?limit=1")["all_users"] is True
    with site.server.client(site.key) as client:
        assert client._request("GET", "/api/v1/dashboard/jobs?limit=1")["all_users"] is False
    admin = Page(browser, site, boss)
    try:
        p = admin.page
        p.wait_for_selector("#jobs caption:has-text('Jobs of every user')")
        foreign = site.foreign["id"]
        row = f"#jobs tr[data-job='{foreign}']"
        assert p.text_content(f"{row} .owner") == "by dash-b"
        admin.go(f"/jobs/{foreign}")
        p.wait_for_selector("#main dt:has-text('Owner') + dd:has-text('dash-b')")
        assert admin.errors == []
    finally:
        admin.context.close()

    with site.server.client(site.key) as client:
        running = client.submit(standalone_spec(trials=50, epochs=2, name="to-cancel"))
        longer = client.wait(client.submit(nb201_spec(budget={"trials": 125}))["id"], timeout=60)
        same = client._request("GET", f"/api/v1/jobs/{longer['id']}/history")["best_so_far"]
        first = client._request("GET", f"/api/v1/jobs/{site.nb201['id']}/history")["best_so_far"]
        assert same == first  # (the same seed: its first 120 trials are the other job's)
        p = page.go(f"/jobs/{running['id']}")
        p.on("dialog", lambda d: d.accept())
        p.get_by_role("button", name="Cancel").click()
        p.wait_for_selector("#main [role=status]:has-text('Cancel: done')")
        client.wait(running["id"], timeout=60)

    rng = np.random.default_rng(1)  # a job without a completed trial: every loss NaN
    path = site.server.settings.data_dir / "huge-compare.npz"
    x = np.float32(3e38) * rng.choice([-1.0, 1.0], size=(200, 16)).astype(np.float32)
    np.savez(path, x=x, y=rng.integers(0, 3, 200))
    with site.server.client(site.key) as client:
        spec = standalone_spec(trials=2, epochs=1, dataset={"name": "npz", "path": str(path)})
        empty = client.wait(client.submit(spec)["id"], timeout=120)["id"]
        assert client.best(empty, 1) == []
    p = page.go(f"/compare?jobs={site.nb201['id']},{empty},{longer['id']}")
    p.wait_for_selector("#compare-best")
    architectures = "#compare div:has(> h2:has-text('Best architectures')) tbody td:last-child"
    p.wait_for_selector(architectures)
    assert p.locator(architectures).nth(1).inner_text() == "no completed trial (2 trials)"
    legend = p.locator("#compare-best text.legend").all_text_contents()
    # (the empty job: no line, so not in the legend either)
    assert legend == [
        f"job {site.nb201['id']}",
        f"job {longer['id']} (same as job {site.nb201['id']})",
    ], legend
    # that job alone: said, with no chart (an empty one with a 0..1 axis was drawn)
    p = page.go(f"/compare?jobs={empty}")
    p.wait_for_selector(f"#compare p:has-text('Job {empty}: no completed trial, nothing to plot')")
    p.wait_for_selector(architectures)
    assert p.locator("#compare-best").count() == 0

    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial]")
    p.focus("#trials-next")
    while not p.eval_on_selector("#trials-next", "b => b.disabled"):
        shown = p.text_content("#trials-count") if p.locator("#trials-count").count() else None
        p.keyboard.press("Enter")
        p.wait_for_function(
            "shown => (document.querySelector('#trials-count')?.textContent ?? null) !== shown"
            " || document.querySelector('#trials-next').disabled",
            arg=shown,
        )
    assert p.evaluate("document.activeElement.id") == "trials-prev"
    assert page.errors == []


def test_a_table_jobs_trials_show_the_tables_cells(page: Page, site: Site) -> None:
    """A table job's trials table had its metrics and an empty hyperparameters column: which
    row of the user's table a trial was showed only on its own page (the dashboard probe)."""
    from tests.api.test_table_jobs import ROWS, table_spec, write_table

    path = write_table(site.server.settings.data_dir / "cells")
    with site.server.client(site.key) as client:
        job = client.wait(
            client.submit(table_spec(path, controller={"name": "grid"}))["id"], timeout=60
        )
    p = page.go(f"/jobs/{job['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial]")
    heads = p.locator("#trials thead th").all_inner_texts()
    assert "architecture" in heads, heads
    at = heads.index("architecture") + 1
    shown = p.locator(f"#trials tbody tr td:nth-child({at})").all_inner_texts()
    assert sorted(shown) == sorted(
        f"opt={o} width={w}" for o in ("adam", "sgd") for w in ("8", "16", "64")
    )
    values = p.locator("#trials tbody tr td:nth-child(4)").all_inner_texts()  # (val)
    for cells, val in zip(shown, values, strict=True):
        opt, width = (c.split("=")[1] for c in cells.split())
        assert val == ("–" if (opt, width) not in ROWS else f"{ROWS[(opt, width)][0]:g}")
    assert page.errors == []


def test_the_trials_tables_sort_and_page_are_kept_in_the_address(page: Page, site: Site) -> None:
    """Sorted by the objective, on page 2: Back from a trial (or a reload, or the link sent
    to a colleague) showed page 1 in number order (the dashboard probe)."""
    p = page.go(f"/jobs/{site.nb201['id']}")
    p.wait_for_selector("#trials tbody tr[data-trial]")
    p.click("#trials th button[data-sort='objective']")
    p.wait_for_selector("#trials th[aria-sort='descending']")
    p.click("#trials-next")
    p.wait_for_function("document.querySelector('#trials-count').textContent.startsWith('26–50')")
    expected = f"#/jobs/{site.nb201['id']}?sort=objective&order=desc&offset=25"
    p.wait_for_function("want => location.hash === want", arg=expected)
    rows = _rows(p, "trials")
    p.click(f"#trials tbody tr[data-trial='{rows[0]}'] a")
    p.wait_for_selector("h1:has-text('Trial')")
    p.go_back()
    p.wait_for_function("document.querySelector('#trials-count')?.textContent.startsWith('26–50')")
    assert _rows(p, "trials") == rows
    assert p.locator("#trial-sort").input_value() == "objective"
    assert p.locator("#trial-order").input_value() == "desc"
    p.click("#trials-prev")  # (the pages before it are there to go back to)
    p.wait_for_function("document.querySelector('#trials-count').textContent.startsWith('1–25')")
    p.wait_for_function(
        "want => location.hash === want", arg=f"#/jobs/{site.nb201['id']}?sort=objective&order=desc"
    )
    # an offset past the trials (or past any number) is said, the pages before it reachable
    # (a huge one replaced the page by "Invalid array length": the review)
    # (not page.go: the address is made canonical, offset=10000000, as it loads)
    p.evaluate("h => { location.hash = h; }", f"#/jobs/{site.nb201['id']}?offset=100000000000000")
    p.wait_for_function(
        "document.querySelector('#trials-count')?.textContent === 'none this far: 120 trials'"
    )
    assert p.locator("#trials-prev").is_enabled()
    assert page.errors == []


@pytest.mark.timeout(300)
def test_pages_say_the_server_is_gone_and_follow_it_again_once_restarted(
    browser: Any, tmp_path: Any
) -> None:
    """A server restarted under an open job page left it as it was, its ETA counting down,
    for good; the jobs list stopped polling at its first failed read (a job submitted
    after the restart never appeared); a page opened while the server was down said only
    'Failed to fetch' and stayed so (the dashboard probe). Each now says the server cannot
    be reached and follows it again once it answers."""
    from types import SimpleNamespace

    from tests.api.conftest import LiveServer, make_settings

    settings = make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data")
    server = LiveServer(settings).start()
    key = server.create_key("restart")
    site = SimpleNamespace(url=server.url, key=key)
    pages: list[Page] = []
    try:
        with server.client(key) as client:
            # (long enough to be running when the server stops: ~0.5 s a trial)
            job = client.submit(standalone_spec(trials=20, epochs=2, name="restarted"))
        jobs, job_page, gone = (Page(browser, site, key) for _ in range(3))  # type: ignore[arg-type]
        pages += [jobs, job_page, gone]
        job_page.go(f"/jobs/{job['id']}")
        job_page.page.wait_for_selector("#trials tbody tr[data-trial] a")
        trial = job_page.page.locator("#trials tbody tr[data-trial] a").first.get_attribute("href")
        with server.client(key) as client:
            assert client.job(job["id"])["state"] == "RUNNING"  # (the page follows it)
        server.stop()
        for p in (jobs.page, job_page.page):
            p.wait_for_selector("#offline", state="visible")
        # a page asked for while the server is down: said so (not 'Failed to fetch'), retried
        gone.page.evaluate("fragment => { location.hash = fragment; }", trial)
        gone.page.wait_for_selector("main [role=alert]:has-text('cannot be reached')")

        server = LiveServer(settings, port=server.port).start()
        with server.client(key) as client:
            done = client.wait(job["id"], timeout=120)  # (taken over by the new server)
            # the job page follows the job again: its end shown, every trial listed
            job_page.page.wait_for_selector(f"#main .state-{done['state']}")
            job_page.page.wait_for_function(
                "n => document.querySelector('#trials-count').textContent.endsWith(`of ${n} trials`)",
                arg=done["n_trials"],
            )
            gone.page.wait_for_selector("h1:has-text('Trial')")
            # the jobs list polls again: a job submitted since shows up
            later = client.submit(standalone_spec(trials=1, epochs=1, name="after"))
            jobs.page.wait_for_selector(f"#jobs tr[data-job='{later['id']}']")
            assert jobs.page.locator("#offline").is_hidden()
        for p in pages:
            assert [e for e in p.errors if "Failed to load resource" not in e] == [], p.errors
    finally:
        for p in pages:
            p.context.close()
        server.stop()
