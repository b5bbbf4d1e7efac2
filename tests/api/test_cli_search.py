"""``nas search`` end to end: the console script, its run directory and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from nas.architecture import Architecture
from nas.spaces import MacroSpace, Nb201Space
from tests.api.conftest import wait_for
from tests.conftest import sigint_as_from_a_terminal

REPO = Path(__file__).resolve().parents[2]


def test_nas_search_on_nb201_writes_the_run_directory(tmp_path: Path, nb201_table: Path) -> None:
    spec = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    spec["evaluator"]["table"] = str(nb201_table)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "nas"), "search", str(spec_file), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "best:" in proc.stdout and "test_accuracy" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert summary["trials"] == len(trials) > 50
    assert summary["simulated_time_s"] <= 12000
    best = json.loads((out / "best_architecture.json").read_text())
    arch = Architecture.from_dict(best["architecture"])
    Nb201Space().validate(arch)
    assert best["objective"]["val_accuracy"] == max(t["objective"] for t in trials)
    assert 85 < best["final_metrics"]["test_accuracy"] <= 94.38
    assert best["genotype"]["arch_str"].startswith("|")
    assert yaml.safe_load((out / "spec.yaml").read_text())["name"] == "nb201-random"


def test_nas_search_of_several_objectives_names_its_front(
    tmp_path: Path, nb201_table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed only the best by the first objective: the front was in summary.json alone."""
    spec = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    spec["evaluator"]["table"] = str(nb201_table)
    spec["objective"] = {
        "metrics": ["params_M", "val_accuracy"],
        "directions": ["minimize", "maximize"],
    }
    spec["budget"] = {"trials": 40}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    assert main(["search", str(spec_file), "--out", str(out), "--quiet"]) == 0
    pareto = json.loads((out / "summary.json").read_text())["pareto"]
    printed = capsys.readouterr().out.splitlines()
    assert f"Pareto front: {len(pareto)} trials ({out / 'summary.json'}: pareto)" in printed


@pytest.mark.slow
def test_nas_search_tiny_mnist1d_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {
        "name": "tiny",
        "dataset": {"name": "mnist1d", "num_samples": 600},
        "space": {"name": "enas-macro", "layers": 3, "channels": 4},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 2, "batch_size": 64},
        "budget": {"trials": 3},
        "seed": 1,
    }
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["trials"] == 3 and summary["trial_states"] == {"COMPLETE": 3}
    best = summary["best"]
    MacroSpace(layers=3, channels=4).validate(Architecture.from_dict(best["architecture"]))
    assert 10.0 <= best["objective"]["val_accuracy"] <= 100.0
    assert best["metrics"]["params"] > 0 and best["metrics"]["flops"] > 0
    lines = (tmp_path / "run/trials.jsonl").read_text().splitlines()
    assert [json.loads(x)["number"] for x in lines] == [0, 1, 2]


def test_spec_error_names_the_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(
        "name: bad\ndataset: {name: mnist1d}\nspace: {name: enas-macro, layers: 0}\n"
        "controller: {name: random}\nevaluator: {name: standalone}\nbudget: {trials: 1}\n"
    )
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "space.layers" in err and "greater than or equal to 1" in err
    assert not (tmp_path / "run").exists()  # nothing half-created


def test_unsupported_settings_are_rejected_not_ignored(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    nb201_table: Path,
) -> None:
    spec = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    spec["resources"] = {"workers": 4}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("NAS_NB201_TABLE", str(nb201_table))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "resources.workers" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_meta_learning_search_with_final_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``final:`` retraining does not apply to a meta-learning job (yet): refused before
    anything runs, not ignored."""
    spec = yaml.safe_load((REPO / "examples/sinusoid-maml.yaml").read_text())
    spec["final"] = {"epochs": 5}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "final" in err and "not supported yet: remove final:" in err
    assert not (tmp_path / "run").exists()


def test_an_out_that_is_a_file_is_refused_before_the_search_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text((REPO / "examples/mnist1d-random.yaml").read_text())
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    assert main(["search", str(spec_file), "--out", str(taken), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--out {taken}: a file is there; name a folder" in err
    assert taken.read_text() == "mine"


@pytest.mark.parametrize(
    ("section", "field"),
    [("resources", "gpus_per_trial"), ("evaluator", "device"), ("final", "device")],
)
def test_gpus_this_process_lacks_are_refused_before_the_search_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, field: str
) -> None:
    """``nas search`` trains in its own process: a GPU it does not see is refused at the field,
    not ignored (``gpus_per_trial``) or met as a CUDA error once training starts (``device``)."""
    import torch

    here = torch.cuda.device_count()  # 0 on CPU-only machines: one more than there is
    spec = yaml.safe_load((REPO / "examples/mnist1d-random.yaml").read_text())
    value = here + 1 if field == "gpus_per_trial" else f"cuda:{here}"
    spec.setdefault(section, {})[field] = value
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{section}.{field}" in err and f"sees {here} CUDA devices" in err
    assert not (tmp_path / "run").exists()


def test_a_spec_file_is_read_as_strictly_as_a_json_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'seed: true' ran as seed 1 under nas search (YAML was read leniently)."""
    spec_file = tmp_path / "spec.yaml"
    text = (REPO / "examples/mnist1d-random.yaml").read_text()
    spec_file.write_text(text.replace("\nseed: 0\n", "\nseed: true\n"))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "seed: Input should be a valid integer" in err, err
    assert not (tmp_path / "run").exists()


def test_nas_search_prints_the_best_trials_hyperparameters(
    tmp_path: Path, nb201_table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A joint search's closing lines named the architecture and not its hyperparameters."""
    spec = {
        "name": "joint",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular"},
        "hparams": {
            "tag": {"type": "categorical", "choices": ["a", "b"]},
            "beta": {"type": "float", "low": 0.1, "high": 1.0},
            "width": {"type": "int", "low": 16, "high": 128, "step": 16},
        },
        "budget": {"trials": 5},
    }
    spec_file = tmp_path / "joint.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    best = json.loads((tmp_path / "run/summary.json").read_text())["best"]
    assert f"hparams: {json.dumps(best['hparams'])}" in capsys.readouterr().out.splitlines()
    # Warm-started from that run with the same section, as written: refused, "searched other
    # hyperparameters (not the same: beta, width)" (the run's spec.yaml keeps the section as
    # written, the new job's was compared with its defaults filled in: the probe of
    # reproducibility)
    warm = {**spec, "warm_start": {"runs": [str(tmp_path / "run")], "top_k": 2}}
    spec_file.write_text(yaml.safe_dump(warm))
    assert main(["search", str(spec_file), "--out", str(tmp_path / "warm"), "--quiet"]) == 0
    trials = [
        json.loads(line) for line in (tmp_path / "warm/trials.jsonl").read_text().splitlines()
    ]
    source = [json.loads(line) for line in (tmp_path / "run/trials.jsonl").read_text().splitlines()]
    ranked = sorted(source, key=lambda t: -t["objective"])
    assert trials[0]["hparams"] == ranked[0]["hparams"]


def test_a_damaged_warm_start_run_is_a_field_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``warm_start: {runs: [...]}`` on a folder whose trials.jsonl is not JSON raised a
    JSONDecodeError (exit 1, a traceback); one without a completed trial gave no priors.
    Both are exit 2 at the folder's ``warm_start.runs.I``, worded as the service's 422."""
    from tests.nas.test_warmstart import NB201_RUN_SPEC, write_run

    damaged = write_run(tmp_path / "damaged", trials="{not json\n")
    empty = write_run(tmp_path / "empty", trials="")
    for run, message in ((damaged, "trials.jsonl is not a trial"), (empty, "no completed trial")):
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text(yaml.safe_dump({**NB201_RUN_SPEC, "warm_start": {"runs": [str(run)]}}))
        assert main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"warm_start.runs.0: {str(run)!r}" in err and message in err, err
        assert "Traceback" not in err
        assert not (tmp_path / "run").exists()


def test_runs_started_in_the_same_second_get_their_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three runs of one spec started together (a seed sweep with &) all wrote into
    runs/NAME-TIMESTAMP, each over the others' files."""
    from workers.local import default_run_dir
    from workers.search import parse_spec

    monkeypatch.chdir(tmp_path)
    resolved = parse_spec(yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text()))
    monkeypatch.setattr("time.strftime", lambda _format: "20261206-080000")
    folders = [default_run_dir(resolved) for _ in range(3)]
    assert [f.name for f in folders] == [
        "nb201-random-20261206-080000",
        "nb201-random-20261206-080000-2",
        "nb201-random-20261206-080000-3",
    ]
    assert all(f.is_dir() for f in folders)


def _tiny_digits_spec(name: str, trials: int, final: dict[str, Any]) -> dict[str, Any]:
    """A search of a few one-epoch trials on digits, then its ``final`` retraining."""
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 64},
        "budget": {"trials": trials},
        "final": final,
        "seed": 1,
    }


def _interruptible_search(
    cwd: Path, spec_file: str, out: str, **popen: Any
) -> subprocess.Popen[str]:
    """``nas search SPEC --out OUT`` in ``cwd``, which a SIGINT interrupts as Ctrl-C does
    (stdout piped; stderr piped unless ``popen`` says otherwise)."""
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        sigint_as_from_a_terminal(
            [str(Path(sys.executable).parent / "nas"), "search", spec_file, "--out", out]
        ),
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
        **popen,
    )


@pytest.mark.slow
def test_a_sigterm_keeps_the_trials_completed_as_ctrl_c_does(
    tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """``kill`` (a batch scheduler's time limit, ``timeout``) ended nas search at once with
    nothing said and trials.jsonl empty, though trials had completed (the HPO probe): its
    lines were buffered, and SIGTERM was not handled. Each trial is on disk as it ends (a
    kill -9 keeps it too), and SIGTERM stops the search as Ctrl-C does."""
    import signal

    spec = _tiny_digits_spec("term", 200, {"epochs": 1})
    del spec["final"]
    spec_file, out = tmp_path / "term.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(spec))
    proc = _interruptible_search(tmp_path, str(spec_file), str(out), stderr=subprocess.PIPE)
    trials = out / "trials.jsonl"
    try:
        # a completed trial is on disk while the search runs (it stayed in a buffer)
        wait_for(
            lambda: trials.is_file() and trials.read_text().count("\n") >= 2,
            timeout=time_left(240),
            interval=0.05,
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=time_left(120))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert f"terminated: the trials completed so far are in {trials}" in err
    lines = trials.read_text().splitlines()
    assert len(lines) >= 2 and [json.loads(x)["number"] for x in lines] == list(range(len(lines)))


@pytest.mark.slow
def test_an_interrupt_during_the_final_retraining_keeps_the_searchs_result(
    tmp_path: Path,
) -> None:
    """Ctrl-C during final: left spec.yaml and trials.jsonl only, and said 'interrupted':
    the search's answer (for ENAS the architecture derived from the supernet) was lost."""
    import signal

    spec = _tiny_digits_spec("tiny", 2, {"epochs": 10_000, "retrain_top_k": 1})
    spec_file, out = tmp_path / "tiny.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump(spec))
    proc = _interruptible_search(tmp_path, str(spec_file), str(out))
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # (the progress bar's lines end in \r: read to the notice)
            if "retraining 1 architecture(s) from scratch" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"interrupted: during the final retraining; the search's result is in {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 2 and summary["final"] == []
    assert "the final retraining was interrupted after 0 of its 1" in summary["warnings"][-1]
    best = json.loads((out / "best_architecture.json").read_text())
    assert best["architecture"] == summary["best"]["architecture"]


@pytest.mark.slow
def test_an_interrupt_during_the_second_retraining_keeps_the_first(
    tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """Ctrl-C while the second of two architectures retrained dropped the first from
    summary.json (final: []) and left its weights under final/, whose they were unsaid; the
    weights' path was the working directory's, not found once read from elsewhere."""
    import signal

    # the first architecture's 40 epochs end; the second's are interrupted
    spec = _tiny_digits_spec("two", 3, {"epochs": 40, "retrain_top_k": 2})
    spec_file, out = tmp_path / "two.yaml", Path("run")
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    proc = _interruptible_search(tmp_path, str(spec_file), "run", stderr=subprocess.DEVNULL)
    first = tmp_path / "run" / "final" / "rank0.pt"
    try:
        wait_for(first.is_file, timeout=time_left(240), interval=0.01)
        # (its result is recorded right after its weights are saved; the second's 40 epochs
        # take seconds)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=time_left(120))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    summary = json.loads((tmp_path / out / "summary.json").read_text())
    assert [entry["rank"] for entry in summary["final"]] == [0], summary["final"]
    assert summary["final"][0]["weights"] == str(first.resolve())
    assert "interrupted after 1 of its 2 architectures" in summary["warnings"][-1]


def test_a_folder_used_before_holds_this_runs_files_only(
    tmp_path: Path, nb201_table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out into a folder of an earlier run left that run's other files: its summary.json
    (40 trials) beside this run's trials.jsonl, another architecture's final/ weights."""
    spec = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    spec["evaluator"]["table"] = str(nb201_table)
    spec["budget"] = {"trials": 5}
    spec_file, out = tmp_path / "spec.yaml", tmp_path / "run"
    spec_file.write_text(yaml.safe_dump({**spec, "budget": {"trials": 40}}))
    assert main(["search", str(spec_file), "--out", str(out), "--quiet"]) == 0  # the earlier
    capsys.readouterr()
    spec_file.write_text(yaml.safe_dump(spec))
    (out / "curve.json").write_text("[]")
    (out / "final").mkdir()
    (out / "final" / "rank0.pt").write_bytes(b"weights of another architecture")
    (out / "final" / "report.txt").write_text("mine")  # the user's own, in final/ too
    (out / "notes.txt").write_text("mine")
    assert main(["search", str(spec_file), "--out", str(out), "--quiet"]) == 0
    assert f"{out} held an earlier run: its files are replaced" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["trials"] == 5
    assert not (out / "final" / "rank0.pt").exists() and not (out / "curve.json").exists()
    assert (out / "notes.txt").read_text() == "mine"  # not a run's file: kept
    assert (out / "final" / "report.txt").read_text() == "mine"  # (final/ was removed whole)


def test_a_folder_with_files_of_a_runs_names_but_no_run_is_refused_and_kept(
    tmp_path: Path, nb201_table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out . in a project folder deleted the user's own spec.yaml (and final/, whole),
    saying the folder 'held an earlier run' that it never held."""
    spec = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    spec["evaluator"]["table"] = str(nb201_table)
    spec["budget"] = {"trials": 5}
    project = tmp_path / "project"
    project.mkdir()
    own = "# my commented spec\n" + yaml.safe_dump(spec)
    (project / "spec.yaml").write_text(own)
    assert main(["search", str(project / "spec.yaml"), "--out", str(project), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: --out {project} holds spec.yaml, files a run writes, but no earlier run" in err
    assert (project / "spec.yaml").read_text() == own and not (project / "trials.jsonl").exists()


@pytest.mark.slow
def test_an_interrupted_meta_training_keeps_its_policy_as_trained_so_far(
    tmp_path: Path, nb201_table: Path
) -> None:
    """Ctrl-C during an rl2-meta run said 'the trials completed so far are in trials.jsonl',
    an empty file (a meta-training runs no trials), and lost the policy trained until then,
    which the service keeps on a cancel."""
    import signal

    from controllers.rl2 import load_policy

    spec = yaml.safe_load((REPO / "examples/rl2-meta-nb201.yaml").read_text())
    spec["evaluator"].update(iterations=100_000, record_every=1, steps=10, batch=4, hidden=8)
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(spec))
    proc = _interruptible_search(
        tmp_path, "meta.yaml", "run", env={**os.environ, "NAS_NB201_TABLE": str(nb201_table)}
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # (the progress bar's lines end in \r)
            if "iteration=2" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    policy = tmp_path / "run" / "rl2-policy.pt"
    assert f"interrupted: the policy as trained so far is in {Path('run') / policy.name}" in err
    _, meta = load_policy(policy)
    assert meta["iterations"] >= 2 and meta["iterations_planned"] == 100_000


def test_a_relative_table_path_is_stored_absolute_and_compares_as_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's spec.yaml kept ``space.path`` as written: run again from another folder it
    found no such file, and a warm start naming the same file by its absolute path was
    refused as another space (the probe of nas search)."""
    data = tmp_path / "t"
    data.mkdir()
    rows = ["a,b,acc"] + [f"{a},{b},{(3 * a + b) % 7}" for a in range(3) for b in range(3)]
    (data / "bench.csv").write_text("\n".join(rows) + "\n")
    spec = {
        "name": "rel",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": "t/bench.csv", "decisions": ["a", "b"]},
        "controller": {"name": "random"},
        "evaluator": {"name": "table", "fitness": "acc"},
        "objective": {"metric": "acc", "direction": "maximize"},
        "budget": {"trials": 4},
        "seed": 0,
    }
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel.yaml").write_text(yaml.safe_dump(spec))
    assert main(["search", "rel.yaml", "--out", "run", "--quiet"]) == 0
    stored = yaml.safe_load((tmp_path / "run/spec.yaml").read_text())
    assert stored["space"]["path"] == str(data / "bench.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["search", str(tmp_path / "run/spec.yaml"), "--out", "again", "--quiet"]) == 0
    # a source written relative (a run of before), the target absolute: the same space
    monkeypatch.chdir(tmp_path)
    stored["space"]["path"] = "t/bench.csv"
    (tmp_path / "run/spec.yaml").write_text(yaml.safe_dump(stored))
    warm = {**spec, "space": {**spec["space"], "path": str(data / "bench.csv")}}
    warm["warm_start"] = {"runs": [str(tmp_path / "run")], "top_k": 2}
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump(warm))
    assert main(["search", "warm.yaml", "--out", "warm", "--quiet"]) == 0
