"""A ``cuda`` device where the work will find none is a 422 at submit, not a job that fails
when it starts (``api.services.check_runnable_here``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from api.services import check_runnable_here
from nas.errors import SpecError
from workers.search import parse_spec

CPU_ONLY = not torch.cuda.is_available()


def _spec(device: str = "auto", final_device: str | None = None, gpus: float = 0) -> Any:
    spec: dict[str, Any] = {
        "name": "d",
        "dataset": {"name": "mnist1d"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1, "device": device},
        "budget": {"trials": 1},
        "resources": {"gpus_per_trial": gpus},
    }
    if final_device is not None:
        spec["final"] = {"epochs": 1, "device": final_device}
    return parse_spec(spec)


def _problem(resolved: Any, backend: str, runs_jobs: bool = True) -> tuple[list[Any], str]:
    with pytest.raises(SpecError) as info:
        check_runnable_here(resolved, backend, runs_jobs=runs_jobs)
    (problem,) = info.value.errors
    return list(problem["loc"]), problem["msg"]


def test_a_ray_trial_asking_for_cuda_needs_a_gpu_per_trial() -> None:
    loc, msg = _problem(_spec("cuda"), "ray")
    assert loc == ["evaluator", "device"]
    assert "set resources.gpus_per_trial: 1" in msg
    loc, msg = _problem(_spec("cuda:1", gpus=1), "ray")  # one GPU assigned: only cuda:0
    assert "set resources.gpus_per_trial: 2" in msg
    check_runnable_here(_spec("auto"), "ray")
    check_runnable_here(_spec("cpu"), "ray")


@pytest.mark.skipif(not CPU_ONLY, reason="a CUDA device is present")
def test_cuda_on_a_server_without_one_is_refused_where_that_server_runs_the_work() -> None:
    loc, msg = _problem(_spec("cuda"), "inline")
    assert loc == ["evaluator", "device"] and "0 CUDA devices" in msg
    loc, msg = _problem(_spec(final_device="cuda"), "inline")
    assert loc == ["final", "device"] and "final: retrains in this server" in msg
    # an API-only replica cannot tell what the server that runs the jobs has
    check_runnable_here(_spec("cuda"), "inline", runs_jobs=False)
    check_runnable_here(_spec(final_device="cuda"), "inline", runs_jobs=False)
    check_runnable_here(_spec(final_device="cpu"), "inline")


@pytest.mark.parametrize("device", ["cuda:01", "cuda:128", "cuda:99999999999999999999", "gpu"])
@pytest.mark.parametrize("where", ["evaluator", "final"])
def test_a_device_torch_cannot_name_is_refused_at_its_field(device: str, where: str) -> None:
    """``cuda:01`` and an index past 8 bits made ``torch.device`` raise at submit (a 500), and
    ``cuda:300`` would have wrapped around to another index."""
    with pytest.raises(SpecError) as info:
        _spec(device) if where == "evaluator" else _spec(final_device=device)
    (problem,) = info.value.errors
    assert list(problem["loc"]) == [where, "device"]
    assert "expected auto, cpu, cuda or cuda:N (N from 0 to 127)" in problem["msg"]
    _spec("cuda:127") if where == "evaluator" else _spec(final_device="cuda:127")
