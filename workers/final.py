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
from nas.constraints import CONSTRAINTS, measure_architectures, verdict
from nas.datasets import DatasetSplits, load_dataset
from nas.models import count_parameters
from nas.pareto import tie_break_key
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
from workers.backend import Interrupted, StopFn


def retraining_recipe(final: FinalSpec, hparams: Mapping[str, Any] | None = None) -> TrainRecipe:
    """How ``final:`` retrains an architecture: its recipe, with the training hyperparameters
    of the trial that ranked it (a joint search's optimizer, lr, loss, ...) set over it; the
    epochs stay ``final``'s."""
    recipe = TrainRecipe(
        epochs=final.epochs,
        batch_size=final.batch_size,
        optimizer=final.optimizer,
        lr=final.lr,
        weight_decay=final.weight_decay,
        lr_schedule=final.lr_schedule,
        label_smoothing=final.label_smoothing,
        loss=final.loss,
        focal_gamma=final.focal_gamma,
        momentum=final.momentum,
    )
    return recipe.with_hparams(hparams, exclude=("epochs",))


def final_space(resolved: ResolvedSpec, space: SearchSpace) -> SearchSpace:
    """The search space, with the final section's width override (ENAS retrains wider).
    ``channels: fit`` picks a width per architecture (``fit_width``); without one this is
    the searched width."""
    final = resolved.spec.final
    if final is None or final.channels is None or final.channels == "fit":
        return space
    return with_channels(space, final.channels)


def with_channels(space: SearchSpace, channels: int) -> SearchSpace:
    """``space`` with another first-stage width."""
    return SPACES.get(space.name).from_config({**space.config, "channels": channels})


#: The widest width ``fit_width`` tries (``final.channels``' own bound).
MAX_FIT_CHANNELS = 1024


def width_bounds(space: SearchSpace) -> tuple[int, int]:
    """The narrowest and widest ``channels`` the space's config accepts (its field's ``ge`` /
    ``le``), within 1 .. ``MAX_FIT_CHANNELS``."""
    narrowest, widest = 1, MAX_FIT_CHANNELS
    for bound in type(space).Config.model_fields["channels"].metadata:
        narrowest = max(narrowest, int(getattr(bound, "ge", narrowest)))
        widest = min(widest, int(getattr(bound, "le", widest)))
    return narrowest, widest


def fit_width(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    limits: Mapping[str, float],
    device: torch.device,
) -> SearchSpace:
    """``space`` at the widest width (``width_bounds``) at which ``arch``'s
    standalone network satisfies ``limits`` (``objective.constraints``), measured as the
    search measures its candidates (``nas.constraints``). Each figure grows with the width,
    so the width is found by doubling from the searched one and then bisecting; the chosen
    width is one that was measured to hold. Raises ``ValueError`` when not even the
    narrowest does."""
    figures = [CONSTRAINTS[key] for key in limits]
    narrowest, widest = width_bounds(space)

    def holds(channels: int) -> bool:
        (measured,) = measure_architectures(
            with_channels(space, channels), [arch], input_shape, num_classes, device, figures
        )
        return verdict(measured, limits) is None

    start = min(max(narrowest, int(space.config["channels"])), widest)
    if holds(start):
        good, bad = start, None
        while bad is None and good < widest:
            wider = min(2 * good, widest)
            if holds(wider):
                good = wider
            else:
                bad = wider
        if bad is None:
            return with_channels(space, good)
    else:
        if start == narrowest or not holds(narrowest):
            raise ValueError(
                f"{space.describe(arch)} breaks objective.constraints ({dict(limits)}) even "
                f"at {narrowest} channel(s), the space's narrowest: no width to retrain it at"
            )
        good, bad = narrowest, start
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if holds(middle) else (good, middle)
    return with_channels(space, good)


def earning_trial(
    trials: Sequence[Any],
    arch: Architecture,
    score: float,
    then: Sequence[tuple[str, str]] = (),
) -> Any | None:
    """The trial that earned a ranked architecture its score: the first trial of ``arch``
    whose objective is ``score`` (a later one with the same result is a repeat, or a
    recorded result reused) and, of several objectives, the best of those by the others
    ``then`` (``nas.pareto.tie_break_key``, as the search ranked them); ``None`` when no
    trial did (a derived ENAS architecture)."""
    earning = None
    for t in trials:
        if t.architecture != arch or t.result.objective != score:
            continue
        if earning is None or tie_break_key(t.result.metrics, then) > tie_break_key(
            earning.result.metrics, then
        ):
            earning = t
    return earning


def ranked_hparams(
    trials: Sequence[Any],
    ranked: Sequence[tuple[Architecture, float]],
    then: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """The hyperparameters of the trial that earned each ranked architecture its score
    (``{}`` when no trial did: a derived ENAS architecture)."""
    out = []
    for arch, score in ranked:
        trial = earning_trial(trials, arch, score, then)
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
    should_stop: StopFn | None = None,
    done: list[dict[str, Any]] | None = None,
    ranks: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Train each architecture from scratch with the ``final:`` recipe; report test accuracy,
    parameters and FLOPs, and save the weights under ``out_dir/final/`` when given.
    ``ranks``: each architecture's 0-based rank in the job's ranking (default 0, 1, ...),
    which seeds its training: a retraining of rank K alone repeats what ``final:`` trained
    for it.

    ``hparams`` (joint search: each architecture's trial's hyperparameters) override the
    recipe's training-procedure fields for that architecture, except ``epochs``: the final
    section's epoch count always holds (searches train for a few epochs only).
    ``should_stop`` is asked after every epoch: ``Interrupted`` when it answers a reason (a
    cancel, a server shutdown), so that a long retraining stops within an epoch. ``done``:
    the list each result is appended to as its architecture is retrained (what an
    interrupt leaves: the retrainings that finished; the list returned otherwise)."""

    def after_epoch(epoch: int, loss: float) -> None:
        reason = should_stop() if should_stop is not None else None
        if reason is not None:
            raise Interrupted(f"the final retraining stopped after epoch {epoch + 1}: {reason}")

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
    searched_space = final_space(resolved, space)
    constraints = spec.objective.constraints
    limits = constraints.limits() if constraints is not None else {}
    results = [] if done is None else done
    ranks = list(range(len(archs))) if ranks is None else list(ranks)
    for i, (rank, arch) in enumerate(zip(ranks, archs, strict=True)):
        started = time.perf_counter()
        build_space = searched_space
        if final.channels == "fit":
            build_space = fit_width(space, arch, data.input_shape, data.num_classes, limits, device)
        trial_hparams = dict(hparams[i]) if hparams is not None else {}
        model, loss = train_from_scratch(
            build_space,
            arch,
            data.input_shape,
            data.num_classes,
            train,
            retraining_recipe(final, trial_hparams),
            seed=spec.seed * 1000 + rank,
            device=device,
            on_epoch=after_epoch,
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
