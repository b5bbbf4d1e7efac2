"""Fixtures of the dashboard's tests: one live server (SQLite, inline backend) per module
with finished NAS-Bench-201 jobs (one of them two-objective, one MetaQNN's) and a finished ENAS job, and one headless Chromium per
session (Debian's ``chromium``, driven by Playwright; nothing is downloaded)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import LiveServer, make_settings, nb201_spec
from tests.conftest import NB201_TABLE

CHROMIUM = os.environ.get("NAS_TEST_CHROMIUM", "/usr/bin/chromium")


def enas_spec(**overrides: Any) -> dict[str, Any]:
    """A tiny ENAS search on digits (a few seconds): supernet epochs with rewards."""
    spec: dict[str, Any] = {
        "name": "digits-enas",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "enas"},
        "evaluator": {"name": "shared-weights", "epochs": 2, "batch_size": 64,
                      "rewards_per_epoch": 5},
        "budget": {"minutes": 5},
        "seed": 0,
    }  # fmt: skip
    spec.update(overrides)
    return spec


class Site:
    """The live server, two users' keys and the ids of the finished jobs."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.url = server.url
        self.key = server.create_key("dash-a")
        self.other_key = server.create_key("dash-b")
        with server.client(self.key) as client:
            nb201 = client.submit(nb201_spec(budget={"trials": 120}))
            enas = client.submit(enas_spec())
            objective = {
                "metrics": ["val_accuracy", "params_M"],
                "directions": ["maximize", "minimize"],
            }
            multi = client.submit(
                nb201_spec(name="nb201-pareto", budget={"trials": 80}, objective=objective)
            )
            metaqnn = client.submit(
                nb201_spec(
                    name="nb201-metaqnn",
                    controller={"name": "metaqnn", "total_models": 30},
                    budget={"trials": 30},
                )
            )
            self.nb201 = client.wait(nb201["id"], timeout=60)
            self.enas = client.wait(enas["id"], timeout=120)
            self.multi = client.wait(multi["id"], timeout=60)
            self.metaqnn = client.wait(metaqnn["id"], timeout=60)
        with server.client(self.other_key) as client:
            self.foreign = client.wait(
                client.submit(nb201_spec(budget={"trials": 5}))["id"], timeout=60
            )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    saved = os.environ.get("NAS_NB201_TABLE")
    os.environ["NAS_NB201_TABLE"] = str(NB201_TABLE)
    data: Path = tmp_path_factory.mktemp("dashboard")
    server = LiveServer(make_settings(f"sqlite:///{data / 'nas.db'}", data / "data")).start()
    try:
        yield Site(server)
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("NAS_NB201_TABLE", None)
        else:
            os.environ["NAS_NB201_TABLE"] = saved


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/install.sh --browser (make test) installs Debian's chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()
