"""Issue 13 item 14: the README's bundled examples run as shown, with no environment variable
set: the NAS-Bench-201 table is found beside the checkout (``../shared/data``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.client import NasClient
from nas.evaluators.tabular import CHECKOUT_TABLE, TABLE_ENV
from tests.api.conftest import LiveServer
from tests.conftest import REPO

EXAMPLE = REPO / "examples/nb201-random.yaml"


def _without_table_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != TABLE_ENV}


def test_the_checkout_finds_the_shared_table() -> None:
    assert CHECKOUT_TABLE.is_file(), CHECKOUT_TABLE


def test_nas_search_runs_the_nb201_example_without_configuration(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "search", str(EXAMPLE), "--out", str(out), "--quiet"],
        check=False,
        cwd=REPO,
        env=_without_table_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] > 50


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_service_runs_the_nb201_example_without_configuration(
    server: LiveServer, user_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TABLE_ENV)
    with NasClient(server.url, api_key=user_key) as client:
        job = client.wait(client.submit(EXAMPLE)["id"], timeout=120)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["n_trials"] > 50
