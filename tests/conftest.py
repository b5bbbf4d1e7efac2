"""Shared fixtures: the NAS-Bench-201 table from ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NB201_TABLE = Path(
    os.environ.get("NAS_NB201_TABLE", REPO.parent / "shared/data/nb201/nb201_tabular.csv.gz")
)


@pytest.fixture(scope="session")
def nb201_table() -> Path:
    if not NB201_TABLE.is_file():
        pytest.fail(f"NAS-Bench-201 table not found at {NB201_TABLE}; set NAS_NB201_TABLE")
    return NB201_TABLE


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated datasets go to one cache per test session, not the user's cache dir."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nas-cache"))
