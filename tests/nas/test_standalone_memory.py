"""A standalone trial that runs out of CPU memory is a FAIL trial with that cause, and the
search goes on: torch's CPU allocator raises a plain ``RuntimeError``, which failed the whole
job (and ``nas search`` with a traceback) where only ``torch.cuda.OutOfMemoryError`` was
caught. Real allocations, in a ``nas search`` whose address space is capped at 4 GiB."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import yaml

SPEC = {
    "name": "oom",
    "dataset": {"name": "digits"},
    # a 60,000 x 60,000 layer asks for 14.4 GB; 32-wide networks train
    "space": {"name": "mlp", "min_layers": 2, "max_layers": 2, "widths": [32, 60000]},
    "controller": {"name": "random"},
    "evaluator": {"name": "standalone", "epochs": 1},
    "budget": {"trials": 6},
    "seed": 0,
}


def _cap_address_space() -> None:
    limit = 4 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_a_trial_out_of_cpu_memory_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nas"), "search", "spec.yaml", "--out", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=_cap_address_space,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    trials = [json.loads(line) for line in (tmp_path / "run" / "trials.jsonl").open()]
    failed = [t for t in trials if t["state"] == "FAIL"]
    assert len(trials) == 6
    assert failed and all(t["error"].startswith("out of memory: ") for t in failed), failed
    assert "can't allocate memory" in failed[0]["error"]
    assert any(t["state"] == "COMPLETE" for t in trials)
