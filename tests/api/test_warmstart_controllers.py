"""Warm starts of ENAS and MetaQNN over HTTP (issue 14): a warm-started job's controller
starts from the source job's last checkpoint (ENAS's policy, MetaQNN's Q-table), copied into
the job's stored spec at submit, so the job outlives its source; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from api.client import ApiError, NasClient
from api.db import session_scope
from api.repositories import CheckpointRepository
from controllers.enas import _from_plain
from nas.spec import ResolvedSpec
from tests.api.conftest import LiveServer, nb201_spec
from workers.search import build_components


def _checkpoint(server: LiveServer, job_id: int) -> dict:
    with session_scope(server.app.state.nas.write) as session:
        checkpoint = CheckpointRepository(session).get(job_id)
        assert checkpoint is not None
        return dict(checkpoint.controller_state)


def test_enas_and_metaqnn_start_from_their_sources_last_checkpoint(
    server: LiveServer, client: NasClient
) -> None:
    enas = {"name": "enas", "num_aggregate": 5, "lstm_size": 8}
    # (its schedule spans each job's own budget: 24 models, then 10; the Q-table transfers)
    metaqnn = {"name": "metaqnn"}
    sources = {
        name: client.submit(nb201_spec(controller=section, budget={"trials": 24}, seed=3))
        for name, section in (("enas", enas), ("metaqnn", metaqnn))
    }
    for name, job in sources.items():
        assert client.wait(job["id"], timeout=120)["state"] == "SUCCEEDED", name
    final = {name: _checkpoint(server, job["id"]) for name, job in sources.items()}

    warm = {}
    for name, section in (("enas", enas), ("metaqnn", metaqnn)):
        spec = nb201_spec(
            name=f"warm-{name}",
            dataset={"name": "nb201-cifar100"},
            controller=section,
            budget={"trials": 10},
            warm_start={"jobs": [sources[name]["id"]], "top_k": 3},
            seed=11,
        )
        warm[name] = client.submit(spec)
        stored = warm[name]["spec"]["warm_start"]
        assert stored["controller_state"]["source"] == sources[name]["id"]
        # Neither learns from observations: none is stored (tpe's are, see test_warmstart).
        assert stored["observations"] == []

    # The first policy / Q-table of each warm-started job is its source's final one.
    built = {
        name: build_components(ResolvedSpec.from_stored(job["spec"])).controller
        for name, job in warm.items()
    }
    source_policy = _from_plain(final["enas"]["enas"]["policy"])
    policy = built["enas"].policy.state_dict()
    assert policy.keys() == source_policy.keys()
    assert all(torch.equal(policy[k], source_policy[k]) for k in policy)
    assert built["metaqnn"].q == final["metaqnn"]["metaqnn"]["q"]
    assert built["metaqnn"].q  # the source did learn something: not the empty start

    # A cold job of the same controller and seed starts elsewhere: the transfer is real.
    cold = nb201_spec(
        controller=enas, dataset={"name": "nb201-cifar100"}, budget={"trials": 1}, seed=11
    )
    cold_policy = build_components(ResolvedSpec.from_stored(client.submit(cold)["spec"]))
    assert not all(
        torch.equal(cold_policy.controller.policy.state_dict()[k], source_policy[k])
        for k in source_policy
    )

    # Deleting the sources changes nothing: the state lives in the warm jobs' specs.
    for job in sources.values():
        client.delete(job["id"])
    for name, job in warm.items():
        done = client.wait(job["id"], timeout=120)
        assert done["state"] == "SUCCEEDED", name
        assert done["spec"]["warm_start"] == job["spec"]["warm_start"]

    # The stored spec submitted again, as 'nas show --spec' prints it: it was a 422 once a
    # source was deleted (its jobs re-resolved), and an ENAS policy as lists of numbers made
    # a real one's YAML larger than a request may be; the same warm start, with no source.
    for name, job in warm.items():
        document = yaml.safe_dump(job["spec"], sort_keys=False)
        again = client._request(
            "POST",
            "/api/v1/jobs",
            content=document.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        assert again["spec"]["warm_start"] == job["spec"]["warm_start"], name
    # ... but sources edited since are resolved, not passed over for the stored ones
    edited = yaml.safe_load(document)
    edited["warm_start"]["jobs"] = [999_999]
    with pytest.raises(ApiError) as refused:
        client.submit(edited)
    assert refused.value.status_code == 422 and "no job 999999" in str(refused.value)
    policy_text = json.dumps(warm["enas"]["spec"]["warm_start"]["controller_state"])
    parameters = sum(t.numel() for t in source_policy.values())
    assert len(policy_text) < 6 * parameters + 2000  # base64 of float32: about 5.3 bytes each


def test_a_source_that_ended_on_its_simulated_budget_hands_on_its_final_q_table(
    server: LiveServer, client: NasClient
) -> None:
    """A MetaQNN source on simulated_seconds ends with the budget refusing a candidate,
    which stays pending: its end wrote no checkpoint (the last one was up to
    NAS_FLUSH_INTERVAL_S old, or none at all), so a warm start took a stale Q-table or
    none. The job's row now holds its controller as it ended, as nas search's does."""
    spec = nb201_spec(
        controller={"name": "metaqnn", "total_models": 60},
        budget={"simulated_seconds": 3000},
        seed=5,
    )
    source = client.wait(client.submit(spec)["id"], timeout=120)
    assert source["state"] == "SUCCEEDED", source["reason"]
    assert source["reason"].startswith("simulated time budget reached")
    # the same search in this process: its controller's final Q-table
    from workers.search import SearchLoop, parse_spec

    loop = SearchLoop(parse_spec(spec))
    loop.run()
    assert len(loop.trials) == source["n_trials"]
    expected = loop.components.controller.state_dict()["metaqnn"]["q"]
    warm = client.submit(
        nb201_spec(
            name="warm-metaqnn",
            dataset={"name": "nb201-cifar100"},
            controller={"name": "metaqnn", "total_models": 60},
            budget={"trials": 5},
            warm_start={"jobs": [source["id"]]},
        )
    )
    transferred = warm["spec"]["warm_start"]["controller_state"]
    assert transferred is not None and transferred["source"] == source["id"]
    assert json.loads(json.dumps(transferred["state"]["q"])) == json.loads(json.dumps(expected))
