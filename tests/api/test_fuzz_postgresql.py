"""Schema fuzzing of the HTTP API on PostgreSQL: test_fuzz.py's run, in a file of its own so
that the suite's two workers (``--dist loadfile``) fuzz the two databases side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.test_fuzz import fuzz


@pytest.mark.timeout(600)  # schemathesis may take its 400 s on a loaded machine
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_schemathesis_finds_nothing_on_postgresql(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fuzz(server_factory(run_jobs=False), tmp_path)
