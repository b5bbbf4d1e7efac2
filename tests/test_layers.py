"""The layer rules of ARCHITECTURE.md (``api -> workers -> controllers -> nas``, and which
external packages the lower layers may not use), as the import-linter contracts in
``pyproject.toml``: the real tree keeps them, and a tree that breaks one fails them.

import-linter runs in a subprocess: it locates the root packages by importing them, and this
test process has the real ``nas`` and friends imported already."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
ROOTS = ("nas", "controllers", "workers", "api")


def _contract_names() -> dict[str, str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root`` with the contracts of ``config``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--no-logo",
            str(config),
        ],
        check=False,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_cover_the_layers() -> None:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    assert tuple(config["root_packages"]) == ROOTS
    layers = [c for c in config["contracts"] if c["type"] == "layers"]
    assert [c["layers"] for c in layers] == [list(ROOTS[::-1])]  # top first: api ... nas
    # Imports under ``if TYPE_CHECKING:`` count as imports.
    assert not config.get("exclude_type_checking_imports", False)


def test_the_tree_keeps_the_layer_contracts() -> None:
    result = lint_imports(REPO, PYPROJECT)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"import-linter contracts broken:\n{report}"
    assert f"Contracts: {len(_contract_names())} kept, 0 broken." in report, report


# --- a throwaway tree that breaks one rule at a time ------------------------------------------
_CLEAN = {
    "nas/__init__.py": "",
    "nas/core.py": "import numpy\n",
    "controllers/__init__.py": "import nas.core\n",
    "workers/__init__.py": "import controllers\nimport ray\n",
    "api/__init__.py": "import workers\nimport fastapi\nimport sqlalchemy\n",
}

_LAZY = "def load():\n    import {module}\n    return {module}\n"
_TYPE_CHECKING = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import {module}\n"

# (file, source, broken contract's id, the import the report must name)
VIOLATIONS = [
    ("nas/bad.py", _LAZY.format(module="controllers"), "layers", "nas.bad -> controllers"),
    ("nas/bad.py", "from workers import x\n", "layers", "nas.bad -> workers"),
    ("controllers/bad.py", _LAZY.format(module="workers"), "layers", "controllers.bad -> workers"),
    ("controllers/bad.py", "import api\n", "layers", "controllers.bad -> api"),
    ("workers/bad.py", _TYPE_CHECKING.format(module="api"), "layers", "workers.bad -> api"),
    ("nas/bad.py", _LAZY.format(module="ray"), "pure-library", "nas.bad -> ray"),
    ("controllers/bad.py", "import sqlalchemy.orm\n", "pure-library", "controllers.bad -> sql"),
    ("nas/bad.py", "from fastapi import FastAPI\n", "pure-library", "nas.bad -> fastapi"),
    ("controllers/bad.py", "import alembic\n", "pure-library", "controllers.bad -> alembic"),
    ("nas/bad.py", "import psycopg\n", "pure-library", "nas.bad -> psycopg"),
    ("workers/bad.py", _LAZY.format(module="fastapi"), "workers-no-service", "workers.bad -> fa"),
    ("workers/bad.py", "import sqlalchemy\n", "workers-no-service", "workers.bad -> sqlalchemy"),
]


def _tree(root: Path, extra: dict[str, str]) -> Path:
    """Tiny packages named like ours under ``root``, and a copy of our pyproject.toml."""
    for name, text in {**_CLEAN, **extra}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shutil.copy(PYPROJECT, root / "pyproject.toml")
    return root / "pyproject.toml"


def test_a_clean_tree_keeps_the_contracts(tmp_path: Path) -> None:
    result = lint_imports(tmp_path, _tree(tmp_path, {}))
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert f"Contracts: {len(_contract_names())} kept, 0 broken." in report, report


@pytest.mark.parametrize(("path", "source", "contract", "chain"), VIOLATIONS)
def test_a_violation_breaks_its_contract(
    tmp_path: Path, path: str, source: str, contract: str, chain: str
) -> None:
    result = lint_imports(tmp_path, _tree(tmp_path, {path: source}))
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    names = _contract_names()
    assert f"{names[contract]} BROKEN" in report, report
    assert f"Contracts: {len(names) - 1} kept, 1 broken." in report, report
    assert chain in report, report
