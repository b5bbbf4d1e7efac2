"""``nas.metalearning``: the meta-gradients of MAML (second and first order), Meta-SGD and
Reptile, checked against finite differences and against each other as the module documents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from nas.datasets import load_tasks
from nas.datasets.tasks import TaskBatch
from nas.metalearning import (
    FunctionalNet,
    MetaLearner,
    Params,
    adapt,
    adaptation_losses,
    maml_gradient,
    meta_loss,
    metasgd_gradient,
    reptile_direction,
)
from nas.spaces import MlpSpace
from nas.training import DivergedError

TASKS = load_tasks("sinusoid")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small tensors: one thread is far faster than two contending on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(width: int = 3, activation: str = "tanh", seed: int = 0) -> FunctionalNet:
    """1 -> width -> 1 in float64 (finite differences need the precision)."""
    space = MlpSpace(max_layers=1, widths=[width], activations=[activation], norms=["none"])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = space.build_network((1,), 1, space.from_layers([width], activation))
    return FunctionalNet(module.double())


def tasks64(n: int = 4, shots: int = 5, seed: int = 0) -> TaskBatch:
    batch = TASKS.sample(TASKS.stream("train", seed), n_tasks=n, shots=shots, queries=shots)
    return TaskBatch(*(t.double() for t in vars(batch).values()))


def flat(params: Params) -> torch.Tensor:
    return torch.cat([v.reshape(-1) for v in params.values()])


def finite_difference(fn: object, params: Params, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of ``fn(params)`` in every parameter entry."""
    out = []
    for name, value in params.items():
        for i in range(value.numel()):
            shifted = []
            for sign in (1.0, -1.0):
                p = {k: v.clone() for k, v in params.items()}
                p[name].view(-1)[i] += sign * eps
                shifted.append(float(fn(p)))  # type: ignore[operator]
            out.append((shifted[0] - shifted[1]) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_maml_gradient_matches_finite_differences(steps: int) -> None:
    net, tasks = tiny_net(), tasks64()
    params = net.initial_params()
    loss, grads = maml_gradient(net, params, tasks, steps=steps, lr=0.1)

    def objective(p: Params) -> torch.Tensor:
        return meta_loss(net, p, tasks, steps=steps, lr=0.1)

    numeric = finite_difference(objective, params)
    assert float(loss) == pytest.approx(float(objective(params)), rel=1e-12)
    torch.testing.assert_close(flat(grads), numeric, rtol=1e-5, atol=1e-7)
    # First order leaves out the second-order terms: it misses the finite differences.
    _, first = maml_gradient(net, params, tasks, steps=steps, lr=0.1, first_order=True)
    assert (flat(first) - numeric).abs().max() > 1e-3


def test_vmap_and_a_python_loop_over_tasks_give_the_same_gradient() -> None:
    net, tasks = tiny_net(width=8, activation="relu"), tasks64(n=6)
    params = net.initial_params()
    for first_order in (False, True):
        batched = maml_gradient(net, params, tasks, steps=2, lr=0.05, first_order=first_order)
        looped = maml_gradient(
            net, params, tasks, steps=2, lr=0.05, first_order=first_order, vectorize=False
        )
        torch.testing.assert_close(batched[0], looped[0])
        torch.testing.assert_close(flat(batched[1]), flat(looped[1]))


def test_first_and_second_order_are_equal_without_inner_steps() -> None:
    net, tasks = tiny_net(), tasks64()
    params = net.initial_params()
    _, second = maml_gradient(net, params, tasks, steps=0, lr=0.1)
    _, first = maml_gradient(net, params, tasks, steps=0, lr=0.1, first_order=True)
    torch.testing.assert_close(flat(first), flat(second), rtol=0, atol=1e-15)
    # ... and both are the plain gradient of the query loss (joint training).
    p = {k: v.clone().requires_grad_() for k, v in params.items()}
    losses = [net.loss(p, tasks.query_x[i], tasks.query_y[i]) for i in range(len(tasks))]
    plain = torch.autograd.grad(torch.stack(losses).mean(), list(p.values()))
    torch.testing.assert_close(flat(second), torch.cat([g.reshape(-1) for g in plain]))


def test_first_order_maml_is_the_query_gradient_at_the_adapted_parameters() -> None:
    net, tasks = tiny_net(), tasks64()
    params = net.initial_params()
    _, first = maml_gradient(net, params, tasks, steps=2, lr=0.1, first_order=True)
    per_task = []
    for i in range(len(tasks)):
        adapted = adapt(net, params, tasks.support_x[i], tasks.support_y[i], steps=2, lr=0.1)
        leaf = {k: v.detach().requires_grad_() for k, v in adapted.items()}
        loss = net.loss(leaf, tasks.query_x[i], tasks.query_y[i])
        per_task.append(
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(leaf.values()))])
        )
    torch.testing.assert_close(flat(first), torch.stack(per_task).mean(0))
    _, second = maml_gradient(net, params, tasks, steps=2, lr=0.1)
    assert (flat(second) - flat(first)).abs().max() > 1e-3


def test_metasgd_gradients_match_finite_differences_and_maml_at_uniform_rates() -> None:
    net, tasks = tiny_net(), tasks64()
    params = net.initial_params()
    rates = {k: torch.full_like(v, 0.1) for k, v in params.items()}
    _, grads, rate_grads = metasgd_gradient(net, params, rates, tasks, steps=2)
    # With every rate 0.1 the parameters' gradient is MAML's with alpha 0.1.
    _, maml = maml_gradient(net, params, tasks, steps=2, lr=0.1)
    torch.testing.assert_close(flat(grads), flat(maml))

    def objective(r: Params) -> torch.Tensor:
        return meta_loss(net, params, tasks, steps=2, lr=r)

    torch.testing.assert_close(
        flat(rate_grads), finite_difference(objective, rates), rtol=1e-5, atol=1e-7
    )
    assert flat(rate_grads).abs().max() > 0


def test_reptile_direction_after_one_step_is_the_scaled_task_gradient() -> None:
    net, tasks = tiny_net(), tasks64()
    params = net.initial_params()
    _, direction = reptile_direction(net, params, tasks, steps=1, lr=0.1)
    # One SGD step: params - adapted = lr * grad of the loss on all of the task's examples.
    x = torch.cat([tasks.support_x, tasks.query_x], dim=1)
    y = torch.cat([tasks.support_y, tasks.query_y], dim=1)
    grads = []
    for i in range(len(tasks)):
        p = {k: v.clone().requires_grad_() for k, v in params.items()}
        g = torch.autograd.grad(net.loss(p, x[i], y[i]), list(p.values()))
        grads.append(torch.cat([v.reshape(-1) for v in g]))
    torch.testing.assert_close(flat(direction), 0.1 * torch.stack(grads).mean(0))


def test_adaptation_losses_are_the_query_losses_after_each_step_count() -> None:
    net, tasks = tiny_net(), tasks64(n=5)
    params = net.initial_params()
    losses = adaptation_losses(net, params, tasks, steps=[3, 0, 1], lr=0.1, chunk=2)
    assert losses.shape == (5, 3)
    for i in range(len(tasks)):
        for column, steps in enumerate([3, 0, 1]):
            adapted = adapt(
                net, params, tasks.support_x[i], tasks.support_y[i], steps=steps, lr=0.1
            )
            expected = net.loss(adapted, tasks.query_x[i], tasks.query_y[i])
            torch.testing.assert_close(losses[i, column], expected.detach())


def test_maml_meta_training_lowers_the_loss_after_adaptation() -> None:
    space = MlpSpace()
    torch.manual_seed(0)
    net = FunctionalNet(space.build_network((1,), 1, space.from_layers([40, 40])))
    learner = MetaLearner(net, algorithm="maml", inner_steps=1, inner_lr=0.01)
    held_out = TASKS.fixed("valid", 0, n_tasks=100, shots=10, queries=50, grid=True)
    before = float(learner.adaptation_losses(held_out, [1]).mean())
    stream = TASKS.stream("train", 0)
    for _ in range(300):
        learner.step(TASKS.sample(stream, n_tasks=10, shots=10, queries=10))
    after = float(learner.adaptation_losses(held_out, [1]).mean())
    assert after < 0.7 * before, (before, after)


def test_a_diverging_inner_loop_raises_and_leaves_the_weights_alone() -> None:
    space = MlpSpace()
    torch.manual_seed(0)
    net = FunctionalNet(space.build_network((1,), 1, space.from_layers([40, 40])))
    learner = MetaLearner(net, algorithm="maml", inner_steps=5, inner_lr=10.0)
    before = learner.current()
    with pytest.raises(DivergedError, match="meta-training loss"):
        learner.step(TASKS.sample(TASKS.stream("train", 0), n_tasks=5, shots=10, queries=10))
    torch.testing.assert_close(flat(learner.current()), flat(before))
