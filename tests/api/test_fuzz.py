"""Schema fuzzing (issue 13): schemathesis runs every check (no 5xx, documented statuses and
bodies, headers, auth, methods...) over every operation with at least 100 examples each, then
its stateful phase along the OpenAPI links (create -> read, cancel, export, retrain, delete),
against a real server on each database (SQLite here, PostgreSQL in test_fuzz_postgresql.py: two
files, so that the suite's two workers fuzz the databases side by side). Any failure fails the
test, with schemathesis's own report. Its coverage phase (boundary values of every parameter)
runs on PostgreSQL, whose columns have the narrower bounds (32-bit ids), for every operation
but the job spec's body (some 4,600 cases, 40 s of two cores, of bounds the spec model checks
alike on both databases: schemathesis.toml); on SQLite the same API is fuzzed without it.

The event stream (``/events``) is left out: it streams until its job ends, and the job of a
fuzzed spec never ends on this API-only server (tests/api/test_events.py covers it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import LiveServer

CONFIG = Path(__file__).parent / "fuzz" / "schemathesis.toml"


@pytest.mark.timeout(600)  # schemathesis may take its 400 s on a loaded machine
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_nothing(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fuzz(server_factory(run_jobs=False), tmp_path, coverage=False)


def fuzz(server: LiveServer, tmp_path: Path, *, coverage: bool = True) -> None:
    """Run schemathesis against ``server`` (with its coverage phase or not); fail with its
    report."""
    key = server.create_key("fuzzer")
    command = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful" if coverage else "examples,fuzzing,stateful",
        "--max-examples",
        "100",
        "--exclude-path-regex",
        "/events$",
        "--request-timeout",
        "20",
        "--seed",
        "20261204",
        "--no-color",
    ]
    done = subprocess.run(
        command,
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    summary = re.search(r"(\d+) generated", done.stdout)
    assert summary and int(summary.group(1)) >= 1000, report
    print(report[-1500:])
