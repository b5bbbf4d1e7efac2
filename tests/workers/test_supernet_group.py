"""One supernet trained by 2 Ray workers on a 2-node ``ray.cluster_utils.Cluster``
(``workers.supernet_group``): the weights after an epoch are those of one process that
averages the gradients of the same two children on the same two half-batches."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import ray
import torch
from ray.cluster_utils import Cluster
from torch import nn

from nas.evaluators import SharedWeightEvaluator
from workers.backend import SearchEvents
from workers.ray_backend import ActorRun
from workers.search import build_components, parse_spec

SPEC: dict[str, Any] = {
    "name": "digits-enas-2",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
    # One epoch: the policy changes only in the reward phase after it, so every step's
    # children come from the initial policy (frozen for these steps).
    "controller": {"name": "enas", "num_aggregate": 3},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 1,
        "batch_size": 128,  # 11 steps over digits' 1294 training images
        "rewards_per_epoch": 6,
        "derive_samples": 4,
        "top_k": 2,
    },
    "resources": {"workers": 2, "max_retries": 0},
    "budget": {"minutes": 5},
    "seed": 3,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head that runs nothing and two one-CPU nodes: the two workers on two nodes."""
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _reference_weights(resolved: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One process: per step, the two children's gradients on the two half-batches, summed
    and halved (an op one child did not use contributes zero), clipped, one SGD step.
    Returns the initial and the trained weights."""
    components = build_components(resolved)
    ev = components.evaluator
    assert isinstance(ev, SharedWeightEvaluator)
    initial = {k: v.detach().clone() for k, v in ev.supernet.named_parameters()}
    steps = ev.steps_per_epoch
    children = [components.controller.sample_for_training() for _ in range(2 * steps)]
    x = torch.as_tensor(ev.data.x_train, dtype=torch.float32)
    y = torch.as_tensor(ev.data.y_train, dtype=torch.long)
    order = torch.randperm(len(y), generator=ev.generator)
    params = list(ev.supernet.parameters())
    size, loss_fn = ev.config.batch_size, nn.CrossEntropyLoss()
    ev.supernet.train()
    for step in range(steps):
        for group in ev.optimizer.param_groups:
            group["lr"] = ev.learning_rate(step / steps)
        halves = order[step * size : (step + 1) * size].tensor_split(2)
        summed: dict[int, torch.Tensor] = {}
        for rank, half in enumerate(halves):
            ev.optimizer.zero_grad(set_to_none=True)
            loss_fn(ev.supernet(x[half], children[2 * step + rank]), y[half]).backward()
            for i, p in enumerate(params):
                if p.grad is not None:
                    summed[i] = summed.get(i, torch.zeros_like(p)) + p.grad
        for i, p in enumerate(params):
            p.grad = summed[i] / 2 if i in summed else None
        nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], ev.config.grad_clip)
        ev.optimizer.step()
    return initial, {k: v.detach() for k, v in ev.supernet.named_parameters()}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_workers_train_the_supernet_of_averaged_gradients(cluster: Cluster) -> None:
    resolved = parse_spec(SPEC)
    run = ActorRun(resolved, SearchEvents(), workers=2, max_restarts=0, poll_s=0.05)
    try:
        outcome = run.run()
        state = run.state()
    finally:
        run.close()
    assert outcome.stop_reason.startswith("search epochs done"), outcome.stop_reason
    assert [t.number for t in outcome.trials] == list(range(6))  # each reward once
    workers = {t.worker for t in outcome.trials}
    assert len(workers) == 2, workers  # rewards scored by both workers...
    assert len({w.split(":")[2] for w in workers}) == 2  # ...on both nodes
    assert len(outcome.ranked) == 2

    assert state.evaluator is not None
    trained = torch.load(io.BytesIO(state.evaluator), map_location="cpu")["supernet"]
    initial, expected = _reference_weights(resolved)
    moved = max(float((expected[k] - initial[k]).abs().max()) for k in expected)
    assert moved > 1e-2  # the steps changed the weights: the comparison below can fail
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5, msg=name)
