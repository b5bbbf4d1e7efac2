"""The job spec: one document for ``nas search``, ``nas submit`` and ``POST /api/v1/jobs``.

``parse_spec`` validates in two passes and raises one ``SpecError`` listing every problem with
its field path: first the document's shape (pydantic, unknown keys rejected), then each
component's own parameters against the registry entry its ``name`` selects, then the
combinations (an evaluator that cannot score that space, an objective it does not measure).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nas.errors import SpecError
from nas.hparams import HparamSpace

__all__ = ["SUPPORTED", "JobSpec", "load_spec_file", "parse_spec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Component(BaseModel):
    """A registry-backed section: ``name`` plus that component's own parameters."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


Direction = Literal["maximize", "minimize"]


class Constraints(_Strict):
    """Hard limits checked before a candidate is trained (``nas.constraints``): a candidate
    over any of them becomes a PRUNED trial that costs no training."""

    max_params: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_flops: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_latency_ms: float | None = Field(None, gt=0, allow_inf_nan=False)

    def limits(self) -> dict[str, float]:
        """The constraints that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ObjectiveSpec(_Strict):
    """One objective (``metric``, ``direction``) or several (``metrics``, ``directions``:
    a Pareto front is searched for and reported; ``metric``/``direction`` then name the
    first, which ranks ``best`` and is the scalar single-objective controllers would see)."""

    metric: str = "val_accuracy"
    direction: Direction = "maximize"
    metrics: list[str] | None = Field(None, min_length=1, max_length=8)
    directions: list[Direction] | None = None
    constraints: Constraints | None = None

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, metrics: list[str] | None) -> list[str] | None:
        if metrics is not None and len(set(metrics)) != len(metrics):
            raise ValueError(f"each metric may appear once, got {metrics}")
        return metrics

    @field_validator("directions")
    @classmethod
    def _one_per_metric(cls, directions: list[str] | None, info: ValidationInfo) -> Any:
        if directions is None or "metrics" not in info.data:
            return directions  # (an invalid metrics is reported at metrics)
        metrics = info.data["metrics"]
        if metrics is None:
            raise ValueError("directions goes with metrics; one objective uses direction")
        if len(directions) != len(metrics):
            raise ValueError(
                f"one direction per metric: {len(metrics)} metrics, {len(directions)} directions"
            )
        return directions

    @model_validator(mode="after")
    def _first_is_primary(self) -> ObjectiveSpec:
        if self.metrics is None:
            return self
        if self.directions is None:
            raise ValueError("set directions, one per metric (maximize or minimize)")
        given = self.model_fields_set
        if "metric" in given and self.metric != self.metrics[0]:
            raise ValueError(
                f"metric {self.metric!r} must be the first of metrics {self.metrics} "
                f"(or leave metric out)"
            )
        if "direction" in given and self.direction != self.directions[0]:
            raise ValueError("direction must be the first of directions (or leave it out)")
        self.metric, self.direction = self.metrics[0], self.directions[0]
        return self

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """``(metric, direction)`` of each objective, the primary first."""
        if self.metrics is None or self.directions is None:
            return [(self.metric, self.direction)]
        return list(zip(self.metrics, self.directions, strict=True))

    @property
    def is_multi(self) -> bool:
        return len(self.objectives) > 1


class BudgetSpec(_Strict):
    trials: int | None = Field(None, ge=1, description="stop after this many trials")
    minutes: float | None = Field(None, gt=0, description="stop after this much wall time")
    simulated_seconds: float | None = Field(
        None, gt=0, description="tabular benchmarks: stop at this much simulated training time"
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> BudgetSpec:
        if self.trials is None and self.minutes is None and self.simulated_seconds is None:
            raise ValueError("set at least one of trials, minutes, simulated_seconds")
        return self


class ResourcesSpec(_Strict):
    workers: int = Field(1, ge=1, le=1024)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    #: A trial whose worker process or node dies is retried this many times, then FAIL.
    max_retries: int = Field(2, ge=0, le=100)


class FinalSpec(_Strict):
    """Retrain the best architectures from scratch and report test metrics."""

    retrain_top_k: int = Field(1, ge=1, le=100)
    epochs: int = Field(60, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(0.003, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    train_on: Literal["train", "train+valid"] = "train+valid"
    channels: int | None = Field(None, ge=1, le=1024, description="retrain at another width")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


class JobSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    dataset: Component
    space: Component
    controller: Component
    evaluator: Component
    hparams: dict[str, Any] | None = None
    objective: ObjectiveSpec = ObjectiveSpec()
    budget: BudgetSpec
    resources: ResourcesSpec = ResourcesSpec()
    final: FinalSpec | None = None
    seed: int = Field(0, ge=0, lt=2**63)


#: Sections and fields that parse but are not implemented yet, by where they would run.
#: A spec that sets one is rejected (never silently ignored); later issues empty this.
SUPPORTED: dict[str, str] = {}


@dataclass(frozen=True)
class ResolvedSpec:
    """A valid spec plus each component's validated parameters."""

    spec: JobSpec
    dataset_params: dict[str, Any]
    space_params: dict[str, Any]
    controller_params: dict[str, Any]
    evaluator_params: dict[str, Any]
    #: The validated ``hparams:`` section (``nas.hparams``); ``None`` when absent or empty.
    hparams: HparamSpace | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", exclude_none=True)


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON spec file; a syntax error names the file and line."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise SpecError.at(["<file>"], f"cannot read {str(file)!r}: {exc.strerror}") from None
    return parse_document(text, source=str(file))


def parse_document(text: str, *, source: str = "<spec>") -> dict[str, Any]:
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError.at(["<document>"], f"{source} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError.at(["<document>"], f"{source} must be a mapping of spec sections")
    return data


def parse_spec(data: Mapping[str, Any] | JobSpec) -> ResolvedSpec:
    """Validate a spec document fully; raise ``SpecError`` with every problem found."""
    if isinstance(data, JobSpec):
        spec = data
    else:
        try:
            spec = JobSpec.model_validate(dict(data))
        except ValidationError as exc:
            errors = _pydantic_errors(exc)
            # Report bad component names and parameters in the same answer.
            for section in ("dataset", "space", "controller", "evaluator"):
                raw = data.get(section)
                if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
                    _component_params(section, Component.model_validate(dict(raw)), errors)
            if isinstance(data.get("hparams"), Mapping):
                evaluator = data.get("evaluator")
                name = evaluator.get("name") if isinstance(evaluator, Mapping) else None
                _check_hparams(data["hparams"], name, errors)
            for field, message in SUPPORTED.items():
                value: Any = data
                for part in field.split("."):
                    value = value.get(part) if isinstance(value, Mapping) else None
                if value is not None:
                    errors.append(
                        {"loc": tuple(field.split(".")), "msg": message, "type": "not_supported"}
                    )
            raise SpecError(errors) from None
    errors: list[dict[str, Any]] = []
    params = {
        section: _component_params(section, getattr(spec, section), errors)
        for section in ("dataset", "space", "controller", "evaluator")
    }
    if not errors:
        _check_combinations(spec, params, errors)
    hparams = _check_hparams(spec.hparams, spec.evaluator.name, errors)
    for field, message in SUPPORTED.items():
        if _is_set(spec, field):
            errors.append({"loc": tuple(field.split(".")), "msg": message, "type": "not_supported"})
    if errors:
        raise SpecError(errors)
    return ResolvedSpec(
        spec,
        params["dataset"] or {},
        params["space"] or {},
        params["controller"] or {},
        params["evaluator"] or {},
        hparams,
    )


def _check_hparams(
    raw: Mapping[str, Any] | None, evaluator: Any, errors: list[dict[str, Any]]
) -> HparamSpace | None:
    """Validate the ``hparams:`` section; training-procedure names only with an evaluator
    that trains each trial (``Evaluator.hparam_keys``)."""
    from nas.evaluators import EVALUATORS
    from nas.hparams import TRAINING_HPARAMS

    if not raw:
        return None
    space, problems = HparamSpace.parse(raw)
    errors.extend(problems)
    if isinstance(evaluator, str) and evaluator in EVALUATORS:
        used = EVALUATORS.get(evaluator).hparam_keys
        users = [n for n in EVALUATORS.names() if EVALUATORS.get(n).hparam_keys]
        for name in raw:
            if name in TRAINING_HPARAMS and name not in used:
                errors.append(
                    _err(
                        ("hparams", name),
                        f"{name!r} sets the training procedure, which evaluator {evaluator!r} "
                        f"does not set per trial; evaluators that do: {', '.join(users)}",
                    )
                )
    return None if problems else space


def _is_set(spec: JobSpec, dotted: str) -> bool:
    value: Any = spec
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value is not None


def _pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "field required"
        out.append({"loc": tuple(err["loc"]), "msg": msg, "type": err["type"]})
    return out


def _registry(section: str) -> Any:
    if section == "dataset":
        from nas.datasets import DATASETS

        return DATASETS
    if section == "space":
        from nas.spaces import SPACES

        return SPACES
    if section == "evaluator":
        from nas.evaluators import EVALUATORS

        return EVALUATORS
    from controllers import CONTROLLERS  # controllers build on nas; imported only here

    return CONTROLLERS


def _component_params(
    section: str, component: Component, errors: list[dict[str, Any]]
) -> dict[str, Any] | None:
    registry = _registry(section)
    if component.name not in registry:
        errors.append(
            {
                "loc": (section, "name"),
                "msg": f"unknown {section} {component.name!r}; valid: {', '.join(registry.names())}",
                "type": "unknown_name",
            }
        )
        return None
    entry = registry.get(component.name)
    config_model = entry.config if section == "dataset" else entry.Config
    try:
        return config_model.model_validate(component.params).model_dump()
    except ValidationError as exc:
        for err in _pydantic_errors(exc):
            err["loc"] = (section, *err["loc"])
            errors.append(err)
        return None


def _check_combinations(
    spec: JobSpec, params: dict[str, dict[str, Any] | None], errors: list[dict[str, Any]]
) -> None:
    from nas.datasets import DATASETS
    from nas.evaluators import EVALUATORS
    from nas.models import NETWORKS

    dataset = DATASETS.get(spec.dataset.name)
    evaluator = EVALUATORS.get(spec.evaluator.name)
    space = spec.space.name
    if spec.evaluator.name == "tabular":
        if space != "nb201":
            errors.append(
                _err(("space", "name"), f"the tabular evaluator needs space nb201, got {space!r}")
            )
        if dataset.tabular is None:
            errors.append(
                _err(
                    ("dataset", "name"),
                    f"the tabular evaluator needs a NAS-Bench-201 dataset (nb201-cifar10, "
                    f"nb201-cifar100, nb201-imagenet16-120), got {spec.dataset.name!r}",
                )
            )
    else:
        if dataset.tabular is not None:
            errors.append(
                _err(
                    ("dataset", "name"), f"{spec.dataset.name!r} is a table; use evaluator tabular"
                )
            )
        if space not in NETWORKS:
            errors.append(
                _err(
                    ("space", "name"),
                    f"evaluator {spec.evaluator.name!r} trains networks; space {space!r} has no "
                    f"trainable network here (valid: {', '.join(sorted(NETWORKS))})",
                )
            )
    if (
        spec.evaluator.name == "shared-weights"
        and space in NETWORKS
        and not NETWORKS[space].has_supernet
    ):
        with_supernet = sorted(n for n, net in NETWORKS.items() if net.has_supernet)
        errors.append(
            _err(
                ("evaluator", "name"),
                f"space {space!r} has no shared-weight supernet; use evaluator standalone, or "
                f"a space with one: {', '.join(with_supernet)}",
            )
        )
    _check_objective(spec, evaluator, errors)
    if spec.final is not None and space not in NETWORKS:
        errors.append(
            _err(
                ("final",),
                f"space {space!r} has no trainable network here to retrain "
                f"(valid: {', '.join(sorted(NETWORKS))})",
            )
        )
    if spec.budget.simulated_seconds is not None and spec.evaluator.name != "tabular":
        errors.append(
            _err(("budget", "simulated_seconds"), "only tabular evaluators simulate training time")
        )


def _check_objective(spec: JobSpec, evaluator: Any, errors: list[dict[str, Any]]) -> None:
    """Objective metrics the evaluator reports, constraints it can check, several objectives
    only with a controller that handles them."""
    from nas.evaluators import EVALUATORS

    objective = spec.objective
    metrics: list[tuple[tuple[Any, ...], str]] = (
        [(("objective", "metric"), objective.metric)]
        if objective.metrics is None
        else [(("objective", "metrics", i), m) for i, m in enumerate(objective.metrics)]
    )
    for loc, metric in metrics:
        if metric not in evaluator.metrics:
            errors.append(
                _err(
                    loc,
                    f"evaluator {spec.evaluator.name!r} does not report {metric!r}; "
                    f"valid: {', '.join(evaluator.metrics)}",
                )
            )
    if objective.constraints is not None:
        for key in objective.constraints.limits():
            if key not in evaluator.constraint_keys:
                able = [n for n in EVALUATORS.names() if key in EVALUATORS.get(n).constraint_keys]
                can = ", ".join(evaluator.constraint_keys) or "none"
                errors.append(
                    _err(
                        ("objective", "constraints", key),
                        f"evaluator {spec.evaluator.name!r} cannot check {key} before training "
                        f"(it can check: {can}); evaluators that can: {', '.join(able)}",
                    )
                )
    if objective.is_multi:
        controllers = _registry("controller")
        if not getattr(controllers.get(spec.controller.name), "multi_objective", False):
            able = [n for n in controllers.names() if controllers.get(n).multi_objective]
            errors.append(
                _err(
                    ("controller", "name"),
                    f"controller {spec.controller.name!r} optimises one objective; with several "
                    f"objective metrics use one of: {', '.join(able)} (or set one metric)",
                )
            )
        if spec.evaluator.name == "shared-weights":
            errors.append(
                _err(
                    ("objective", "metrics"),
                    "the shared-weight search ranks architectures by one reward; several "
                    "objectives need evaluator standalone or tabular",
                )
            )


def _err(loc: tuple[Any, ...], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}
