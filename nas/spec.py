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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nas.errors import SpecError

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


class Constraints(_Strict):
    max_params: int | None = Field(None, gt=0)
    max_flops: int | None = Field(None, gt=0)
    max_latency_ms: float | None = Field(None, gt=0)


class ObjectiveSpec(_Strict):
    metric: str = "val_accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"
    constraints: Constraints | None = None


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
SUPPORTED: dict[str, str] = {
    "hparams": "joint hyperparameter search is not supported yet",
    "objective.constraints": "constraints are not supported yet",
}


@dataclass(frozen=True)
class ResolvedSpec:
    """A valid spec plus each component's validated parameters."""

    spec: JobSpec
    dataset_params: dict[str, Any]
    space_params: dict[str, Any]
    controller_params: dict[str, Any]
    evaluator_params: dict[str, Any]

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
    )


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
    if spec.objective.metric not in evaluator.metrics:
        errors.append(
            _err(
                ("objective", "metric"),
                f"evaluator {spec.evaluator.name!r} does not report {spec.objective.metric!r}; "
                f"valid: {', '.join(evaluator.metrics)}",
            )
        )
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


def _err(loc: tuple[str, ...], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}
