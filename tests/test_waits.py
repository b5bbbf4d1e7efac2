"""Every test's own waits fit its timeout (pytest-timeout), so that a loaded machine makes a
test slower, never killed mid-wait: the waits with a fixed ``timeout=`` in one test add up
to at most its timeout less ``TEARDOWN_S``. A wait sized by the ``time_left`` fixture fits
by construction and is not counted."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, TEARDOWN_S

#: Calls that block up to their ``timeout=``: polling helpers, the client's job and trial
#: waits, subprocesses, threads.
_WAITS = {"wait_for", "wait", "wait_trial", "run", "communicate", "join", "check_output"}


def _timeout_of(node: ast.FunctionDef, default: float) -> float:
    for decorator in node.decorator_list:
        if (
            isinstance(decorator, ast.Call)
            and ast.unparse(decorator.func) == "pytest.mark.timeout"
            and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
        ):
            return float(decorator.args[0].value)
    return default


def _repeats(loop: ast.For) -> int:
    """How often ``for ... in range(N)`` runs (``N`` a constant); 1 for other loops."""
    it = loop.iter
    if (
        isinstance(it, ast.Call)
        and ast.unparse(it.func) == "range"
        and len(it.args) == 1
        and isinstance(it.args[0], ast.Constant)
        and isinstance(it.args[0].value, int)
    ):
        return max(1, it.args[0].value)
    return 1


def _fixed_waits(node: ast.AST, times: int = 1) -> list[tuple[int, str, float]]:
    """``(line, call, seconds)`` of each wait with a constant timeout under ``node``, a
    wait in ``for ... in range(N)`` counted N times."""
    waits = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.For):
            waits += _fixed_waits(child, times * _repeats(child))
            continue
        if isinstance(child, ast.Call):
            name = ast.unparse(child.func).rsplit(".", 1)[-1]
            for keyword in child.keywords:
                value = keyword.value
                if (
                    name in _WAITS
                    and keyword.arg == "timeout"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, (int, float))
                ):
                    waits.append((child.lineno, name, float(value.value) * times))
        waits += _fixed_waits(child, times)
    return waits


def _overdrawn(path: Path, default: float, label: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
            continue
        timeout = _timeout_of(node, default)
        waits = _fixed_waits(node)
        total = sum(seconds for _, _, seconds in waits)
        if total > timeout - TEARDOWN_S:
            listed = ", ".join(f"{name}={s:g} (line {line})" for line, name, s in waits)
            problems.append(
                f"{label}::{node.name}: waits of {total:g} s in a {timeout:g} s "
                f"timeout ({listed}); size them with time_left or raise the timeout marker"
            )
    return problems


def test_every_tests_fixed_waits_fit_its_timeout(pytestconfig: pytest.Config) -> None:
    default = float(pytestconfig.getini("timeout") or math.inf)
    problems = [
        problem
        for path in sorted((REPO / "tests").rglob("test_*.py"))
        for problem in _overdrawn(path, default, str(path.relative_to(REPO)))
    ]
    assert not problems, "\n".join(problems)


def test_the_check_finds_waits_that_outlast_the_timeout(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    source = (
        "@pytest.mark.timeout(300)\n"
        "def test_slow(client, time_left):\n"
        "    wait_for(ready, timeout=180, interval=0.05)\n"
        "    client.wait(job_id, timeout=300)\n"
        "    client.wait(job_id, timeout=time_left())\n"
        "def test_fine(client):\n"
        "    client.wait(job_id, timeout=100)\n"
        "def test_looped(client):\n"
        "    for _ in range(5):\n"
        "        wait_for(ready, timeout=60)\n"
    )
    sample.write_text(source)
    problems = _overdrawn(sample, 300, "test_sample.py")
    assert len(problems) == 2, problems
    assert "test_slow: waits of 480 s in a 300 s timeout" in problems[0]
    assert "test_looped: waits of 300 s in a 300 s timeout" in problems[1]


@pytest.mark.timeout(100)
def test_time_left_keeps_the_teardown_inside_the_timeout_marker(
    time_left: Callable[..., float],
) -> None:
    assert 100 - TEARDOWN_S - 10 < time_left() <= 100 - TEARDOWN_S
    assert time_left(3) == 3
