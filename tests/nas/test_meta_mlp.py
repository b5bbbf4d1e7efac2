"""The ``mlp`` space: MAML's 40-40 ReLU network and its relatives, for regression and vector
inputs; the network, its export source and drawing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from nas.errors import InvalidArchitectureError
from nas.evaluators import build_evaluator
from nas.export.card import draw_network
from nas.export.source import export_pytorch_source
from nas.models import build_model, count_parameters
from nas.spaces import SPACES, MlpSpace, create_space
from nas.trial import TrialState
from workers.search import parse_spec


def test_the_maml_sinusoid_network_is_expressible() -> None:
    space = MlpSpace()
    arch = space.from_layers([40, 40])
    assert space.describe(arch) == {
        "depth": 2,
        "widths": [40, 40],
        "activation": "relu",
        "norm": "none",
    }
    net = build_model(space, arch, (1,), 1)
    # 1 -> 40 -> 40 -> 1: (40 + 40) + (1600 + 40) + (40 + 1)
    assert count_parameters(net) == 1761
    layers = [type(m).__name__ for m in net.body] + [type(net.head).__name__]
    assert layers == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    x = torch.linspace(-5, 5, 7).unsqueeze(1)
    manual = net.head(torch.relu(net.body[2](torch.relu(net.body[0](x)))))
    torch.testing.assert_close(net(x), manual)


def test_decisions_cover_depth_widths_activation_and_norm() -> None:
    space = create_space("mlp", max_layers=3, widths=[8, 16])
    names = [d.name for d in space.decisions()]
    assert names == ["depth", "width1", "width2", "width3", "activation", "norm"]
    assert space.size() == 3 * 2**3 * 2 * 2
    arch = space.from_layers([16], "tanh", "layer")
    net = build_model(space, arch, (1, 10), 4)  # a (C, L) signal, flattened: 10 inputs
    assert [type(m).__name__ for m in net.body] == ["Linear", "LayerNorm", "Tanh"]
    assert net.body[0].in_features == 10 and net(torch.zeros(3, 1, 10)).shape == (3, 4)
    # The widths of unused layers do not change the network.
    other = space.make([arch.choices[0], arch.choices[1], 1 - arch.choices[2], *arch.choices[3:]])
    assert other != arch and space.describe(other) == space.describe(arch)


def test_bad_configs_and_architectures_are_named() -> None:
    with pytest.raises(ValidationError, match=r"min_layers \(3\) exceeds max_layers \(2\)"):
        SPACES.get("mlp").Config(min_layers=3, max_layers=2)
    with pytest.raises(ValidationError, match="activations"):
        SPACES.get("mlp").Config(activations=["relu", "gelu"])
    with pytest.raises(InvalidArchitectureError, match="width1: width 50 is not a choice"):
        MlpSpace().from_layers([50])
    with pytest.raises(InvalidArchitectureError, match="depth: 5 layers; valid: 1..4"):
        MlpSpace().from_layers([20] * 5)
    with pytest.raises(ValueError, match="num_classes must be at least 1"):
        build_model(MlpSpace(), MlpSpace().from_layers([20]), (1,), 0)


@pytest.mark.parametrize(
    ("widths", "activation", "norm", "shape", "outputs"),
    [([40, 40], "relu", "none", (1,), 1), ([20, 80, 40], "tanh", "layer", (1, 40), 10)],
)
def test_exports_as_standalone_source_and_draws_itself(
    widths: list[int], activation: str, norm: str, shape: tuple[int, ...], outputs: int
) -> None:
    space = MlpSpace()
    arch = space.from_layers(widths, activation, norm)
    source = export_pytorch_source(space, arch, shape, outputs)  # verifies outputs match
    namespace: dict[str, Any] = {"__name__": "exported"}
    exec(compile(source, "<mlp>", "exec"), namespace)  # noqa: S102
    exported = namespace["build"]()
    assert exported(torch.zeros(2, *shape)).shape == (2, outputs)
    drawing = draw_network(build_model(space, arch, shape, outputs), arch, shape)
    rows = [line for line in drawing.splitlines() if line.startswith("layer")]
    assert len(rows) == len(widths)
    assert f"linear {widths[-1]}" in rows[-1] and activation in rows[-1]
    assert ("LayerNorm" in drawing) == (norm == "layer")


def test_trains_as_a_classifier_with_the_standalone_evaluator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {
        "name": "mlp-digits",
        "dataset": {"name": "digits"},
        "space": {"name": "mlp"},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 5},
        "budget": {"trials": 1},
    }
    threads = torch.get_num_threads()
    monkeypatch.setenv("NAS_TORCH_THREADS", "1")  # a small network: one thread is faster
    try:
        space, evaluator = build_evaluator(parse_spec(spec))
        (result,) = evaluator.evaluate([MlpSpace().from_layers([80])])
    finally:
        torch.set_num_threads(threads)
    assert isinstance(space, MlpSpace)
    assert result.state is TrialState.COMPLETE
    assert result.objective is not None and result.objective > 50.0  # 10 classes: chance 10 %
    assert np.isfinite(result.metrics["train_loss"])
