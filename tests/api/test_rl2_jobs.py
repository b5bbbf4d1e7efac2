"""An rl2 job over HTTP: its policy file comes from the data roots like any spec file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from api.client import ApiError, NasClient
from controllers.rl2 import Rl2Policy, save_policy
from tests.api.conftest import LiveServer, nb201_spec


def _policy(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_policy(Rl2Policy([5] * 6, hidden=16), path, {"tasks": []})
    return str(path)


def test_an_rl2_job_runs_with_a_policy_under_the_data_roots(
    server: LiveServer, client: NasClient, tmp_path: Path
) -> None:
    inside = _policy(server.settings.data_dir / "policies" / "rl2.pt")
    job = client.submit(
        nb201_spec(controller={"name": "rl2", "policy": inside}, budget={"trials": 15})
    )
    done = client.wait(job["id"], timeout=120)
    assert done["state"] == "SUCCEEDED", done["reason"]
    assert done["n_trials"] == 15
    with pytest.raises(ApiError) as none:  # (it said "an rl2 job keeps the copy it runs")
        client.policy(job["id"], tmp_path)
    assert none.value.status_code == 409
    assert none.value.detail == (
        f"job {job['id']} keeps no RL² policy: it runs the policy file its spec names "
        "(controller.policy), which stays yours; a job that names policy_job keeps a copy"
    )
    outside = _policy(tmp_path / "elsewhere" / "rl2.pt")
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(controller={"name": "rl2", "policy": outside}))
    assert info.value.status_code == 422
    assert info.value.detail[0]["loc"] == ["controller", "policy"]


def test_a_policy_file_that_is_no_policy_is_a_422_that_creates_nothing(
    server: LiveServer, client: NasClient
) -> None:
    garbage = server.settings.data_dir / "policies" / "garbage.pt"
    garbage.parent.mkdir(parents=True, exist_ok=True)
    garbage.write_bytes(b"not a policy")
    before = client.jobs()["count"]
    with pytest.raises(ApiError) as info:
        client.submit(nb201_spec(controller={"name": "rl2", "policy": str(garbage)}))
    assert info.value.status_code == 422
    (problem,) = info.value.detail
    assert problem["loc"] == ["controller", "policy"]
    assert "not a readable rl2 policy file" in problem["msg"]
    assert client.jobs()["count"] == before
