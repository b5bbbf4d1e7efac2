"""Final retraining: the best architectures of a search, trained from scratch and tested.

This is where test accuracy is first looked at: never during the search.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.architecture import Architecture
from nas.datasets import DatasetSplits, load_dataset
from nas.models import count_parameters
from nas.spaces import SPACES, SearchSpace
from nas.spec import FinalSpec, ResolvedSpec
from nas.training import (
    TrainRecipe,
    accuracy,
    configure_cpu_threads,
    count_flops,
    select_device,
    to_tensors,
    train_from_scratch,
)


def final_space(resolved: ResolvedSpec, space: SearchSpace) -> SearchSpace:
    """The search space, with the final section's width override (ENAS retrains wider)."""
    final = resolved.spec.final
    if final is None or final.channels is None:
        return space
    return SPACES.get(space.name).from_config({**space.config, "channels": final.channels})


def ranked_hparams(
    trials: Sequence[Any], ranked: Sequence[tuple[Architecture, float]]
) -> list[dict[str, Any]]:
    """The hyperparameters of the trial that earned each ranked architecture its score
    (``{}`` when no trial did: a derived ENAS architecture)."""
    out = []
    for arch, score in ranked:
        trial = next(
            (t for t in trials if t.architecture == arch and t.result.objective == score), None
        )
        out.append(dict(trial.hparams) if trial is not None else {})
    return out


def retrain(
    resolved: ResolvedSpec,
    space: SearchSpace,
    archs: list[Architecture],
    *,
    out_dir: Path | None = None,
    data: DatasetSplits | None = None,
    hparams: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train each architecture from scratch with the ``final:`` recipe; report test accuracy,
    parameters and FLOPs, and save the weights under ``out_dir/final/`` when given.

    ``hparams`` (joint search: each architecture's trial's hyperparameters) override the
    recipe's training-procedure fields for that architecture, except ``epochs``: the final
    section's epoch count always holds (searches train for a few epochs only)."""
    spec = resolved.spec
    final: FinalSpec = spec.final or FinalSpec()
    data = data or load_dataset(spec.dataset.name, seed=spec.seed, **resolved.dataset_params)
    device = select_device(final.device)
    if device.type == "cpu":
        configure_cpu_threads()
    x, y = data.x_train, data.y_train
    if final.train_on == "train+valid":
        x, y = np.concatenate([x, data.x_valid]), np.concatenate([y, data.y_valid])
    train = to_tensors(x, y, device)
    test = to_tensors(data.x_test, data.y_test, device)
    recipe = TrainRecipe(
        epochs=final.epochs,
        batch_size=final.batch_size,
        optimizer=final.optimizer,
        lr=final.lr,
        weight_decay=final.weight_decay,
        lr_schedule=final.lr_schedule,
        label_smoothing=final.label_smoothing,
    )
    build_space = final_space(resolved, space)
    results = []
    for rank, arch in enumerate(archs):
        started = time.perf_counter()
        trial_hparams = dict(hparams[rank]) if hparams is not None else {}
        model, loss = train_from_scratch(
            build_space,
            arch,
            data.input_shape,
            data.num_classes,
            train,
            recipe.with_hparams(trial_hparams, exclude=("epochs",)),
            seed=spec.seed * 1000 + rank,
            device=device,
        )
        result: dict[str, Any] = {
            "rank": rank,
            "architecture": arch.to_dict(),
            "genotype": build_space.describe(arch),
            "test_accuracy": accuracy(model, *test),
            "train_loss": loss,
            "params": count_parameters(model),
            "flops": count_flops(model, data.input_shape, device),
            "train_seconds": round(time.perf_counter() - started, 3),
            "space_config": build_space.config,
        }
        if trial_hparams:
            result["hparams"] = trial_hparams
        if out_dir is not None:
            path = out_dir / "final" / f"rank{rank}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)
            result["weights"] = str(path)
        results.append(result)
    return results
