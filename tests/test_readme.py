"""The README's job specs are specs: a snippet showing a whole job (its dataset and space)
must validate as written, but for the ``name`` and ``budget`` a fragment may leave to the
reader. (The table example had no ``controller``: run as shown, ``nas search`` answered
"controller: field required".)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.search import parse_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def _job_snippets() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    docs = [yaml.safe_load(block) for block in blocks]
    return [d for d in docs if isinstance(d, dict) and {"dataset", "space"} <= set(d)]


@pytest.mark.parametrize("doc", _job_snippets(), ids=lambda d: str(d["space"]["name"]))
def test_every_job_spec_of_the_readme_validates(
    doc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the table example's file, as the README describes it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    rows = [
        f"{o},{w},{50 + i},{49 + i},{10 * (i + 1)}"
        for i, (o, w) in enumerate((o, w) for o in ("adam", "sgd") for w in (16, 32, 64))
    ]
    (tmp_path / "data" / "bench.csv").write_text(
        "optimizer,width,val_acc,test_acc,train_s\n" + "\n".join(rows) + "\n"
    )
    doc = {"name": "readme", "budget": {"trials": 5}, **doc}
    parse_spec(doc)


def test_the_readme_shows_job_specs() -> None:
    assert len(_job_snippets()) >= 4
