"""The job spec: one document for ``nas search``, ``nas submit`` and ``POST /api/v1/jobs``.

``parse_spec`` validates in two passes and raises one ``SpecError`` listing every problem with
its field path: first the document's shape (pydantic, unknown keys rejected), then each
component's own parameters against the registry entry its ``name`` selects, then the
combinations, which the components answer themselves (``Evaluator.spec_problems``: a space it
cannot score, an objective it does not measure; a controller's ``multi_objective``).

The library knows no controllers: the controller registry is passed in (``controllers=``;
``workers.parse_spec`` passes the built-in one). A validated spec is stored with every
default filled in (``ResolvedSpec.to_dict``) and read back with ``ResolvedSpec.from_stored``,
which validates nothing again.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nas.architecture import Architecture
from nas.errors import AT_FIELD, AT_SUBMIT, SpecError, at_submit
from nas.hparams import HparamSpace
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.spaces.base import SearchSpace

__all__ = [
    "JOB_NAME_PATTERN",
    "ControllerEntry",
    "JobSpec",
    "ResolvedSpec",
    "SpecProblem",
    "document_problems",
    "load_spec_file",
    "parse_document",
    "parse_spec",
    "spec_warnings",
]

#: One problem of a spec: the field path and what is wrong (and what would be valid).
SpecProblem = tuple[tuple[Any, ...], str]


#: What a job's name may be: it names its files (exports, run folders) and its downloads.
JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class ControllerEntry(Protocol):
    """What the spec parser asks of a registered controller class."""

    Config: ClassVar[type[BaseModel]]
    #: Handles several objectives; a spec with several is rejected for the others.
    multi_objective: ClassVar[bool]


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

    metric: str = Field(
        "val_accuracy",
        description="default: the evaluator's reward (few-shot: meta_val_accuracy on "
        "episodes, meta_val_mse, minimized, on regression tasks)",
    )
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
    max_trials: int | None = Field(
        None,
        ge=1,
        description="a cap, not a plan: the search stops at this many trials, and minutes "
        "that run out first do not cut it short (the service sets it to "
        "NAS_MAX_TRIALS_PER_JOB when trials is not given)",
    )
    minutes: float | None = Field(None, gt=0, description="stop after this much wall time")
    simulated_seconds: float | None = Field(
        None, gt=0, description="tabular benchmarks: stop at this much simulated training time"
    )

    on_time_limit: Literal["stop", "fail"] = Field(
        "stop",
        description="when minutes run out before the search's planned work (a shared-weight "
        "search's epochs, or budget.trials): stop and finish with a warning, or fail the job",
    )

    @field_validator("on_time_limit")
    @classmethod
    def _fail_needs_minutes(cls, value: str, info: ValidationInfo) -> str:
        """``fail`` without ``minutes`` was accepted and could never apply (the probe of
        budgets). (At submit only: a job stored before still loads.)"""
        # (minutes missing from info.data failed their own check: said there, not here)
        minutes_given = "minutes" not in info.data or info.data["minutes"] is not None
        if at_submit(info.context) and value == "fail" and not minutes_given:
            raise ValueError(
                "fail applies when budget.minutes run out before the search's planned work; "
                "there are no minutes here: set budget.minutes, or leave on_time_limit out"
            )
        return value

    @field_validator("max_trials")
    @classmethod
    def _cap_at_or_above_the_plan(cls, value: int | None, info: ValidationInfo) -> int | None:
        trials = info.data.get("trials")
        if value is not None and trials is not None and trials > value:
            raise ValueError(
                f"{value} is below trials ({trials}): a cap at or above the plan, or leave it out"
            )
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> BudgetSpec:
        if self.trials is None and self.minutes is None and self.simulated_seconds is None:
            capped = (
                f" (max_trials: {self.max_trials} is a cap on them, not a plan: for exactly "
                f"that many, trials: {self.max_trials})"
                if self.max_trials is not None
                else ""
            )
            raise ValueError(f"set at least one of trials, minutes, simulated_seconds{capped}")
        return self


class ResourcesSpec(_Strict):
    workers: int = Field(1, ge=1, le=1024)
    cpus_per_trial: float = Field(1.0, gt=0, le=1024)
    gpus_per_trial: float = Field(0.0, ge=0, le=1024)
    #: A trial whose worker process or node dies is retried this many times, then FAIL.
    max_retries: int = Field(2, ge=0, le=100)

    @field_validator("cpus_per_trial", "gpus_per_trial")
    @classmethod
    def _ray_quantity(cls, value: float, info: ValidationInfo) -> float:
        """What Ray can schedule, refused at submit rather than when the job starts (it
        failed then with Ray's ValueError): no amount below 0.0001 but 0, and above 1 only
        whole GPUs. (At submit only: a job stored before still loads.)"""
        if not at_submit(info.context):
            return value
        if 0 < value < 1e-4:
            raise ValueError(f"at least 0.0001 (Ray's precision) or 0, got {value!r}")
        if info.field_name == "gpus_per_trial" and value > 1 and not float(value).is_integer():
            raise ValueError(f"above 1, GPUs are whole (1, 2, ...) or a fraction of one: {value!r}")
        return value


_DEVICE_PATTERN = r"^(auto|cpu|cuda(:(0|[1-9]\d?|1[01]\d|12[0-7]))?)$"


def _device_setting(value: str) -> str:
    if not re.fullmatch(_DEVICE_PATTERN, value):
        raise ValueError(f"expected auto, cpu, cuda or cuda:N (N from 0 to 127), got {value!r}")
    return value


DeviceSetting = Annotated[
    str, AfterValidator(_device_setting), Field(json_schema_extra={"pattern": _DEVICE_PATTERN})
]
"""A ``device`` setting: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, N from 0 to 127 without
leading zeros (torch keeps a device index in 8 bits: ``cuda:300`` would wrap around)."""


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
    loss: Literal["cross_entropy", "label_smoothing", "focal"] = "cross_entropy"
    focal_gamma: float = Field(2.0, ge=0, le=10, description="with loss: focal")
    momentum: float = Field(0.9, ge=0, lt=1, description="with optimizer: sgd (Nesterov)")
    train_on: Literal["train", "train+valid"] = "train+valid"
    channels: Annotated[int, Field(ge=1, le=1024)] | Literal["fit"] | None = Field(
        None,
        description="retrain at another width (the space's first-stage channels, 1 to 1024); "
        "'fit': each architecture at the widest width (up to 1024) that objective.constraints "
        "allow; default: the searched width",
    )
    device: DeviceSetting = "auto"

    @field_validator("channels", mode="before")
    @classmethod
    def _width_or_fit(cls, value: Any) -> Any:
        """One error at ``final.channels`` for anything but a width or ``fit`` (not one per
        member of the union; the schema still states the bounds). A width is a whole number
        as a spec writes it: ``'16'`` or ``16.0`` is refused, as a quoted number is elsewhere."""
        if value is None or value == "fit":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise ValueError(f"a number of channels from 1 to 1024, or fit; got {value!r}")
        return value


class ArchitectureSpec(_Strict):
    """An architecture as ``Architecture.to_dict`` writes it (a trial's, an export's
    ``architecture``); whether it is one of the job's space is checked against the space."""

    space: str = Field(min_length=1, max_length=200)
    version: int = Field(1, ge=1, le=2**31 - 1)
    choices: list[int] = Field(max_length=100_000)

    @model_validator(mode="wrap")
    @classmethod
    def _as_stored(cls, data: Any, handler: Any, info: ValidationInfo) -> ArchitectureSpec:
        """A job stored before the field was checked (a plain mapping then) loads as it was
        read: its unknown keys left out, its version as ``int()`` took it; one that no
        architecture reads (a row edited by hand) as it is, for its own start to refuse
        (it failed every listing of its user's jobs)."""
        try:
            return handler(data)
        except ValidationError:
            if at_submit(info.context) or not isinstance(data, Mapping):
                raise
            try:
                arch = Architecture.from_dict(data)
            except (TypeError, ValueError):
                fields = {k: data[k] for k in cls.model_fields if k in data}
                return cls.model_construct(**fields)
            return cls.model_construct(
                space=arch.space, version=arch.version, choices=list(arch.choices)
            )


class PriorSpec(_Strict):
    """One configuration taken from a source search (``nas.warmstart``): proposed first."""

    # (a plain mapping took a version of true, "1" or 1.9 and kept unknown keys)
    architecture: ArchitectureSpec
    hparams: dict[str, Any] = Field(default_factory=dict)
    score: float = Field(ge=0, le=1, description="rank in its source: 1 = the source's best")
    source: int | str | None = Field(None, description="the source job id or run folder")
    predicted: bool = Field(
        False, description="not evaluated by a source: predicted by a model of their trials"
    )


class WarmSourceSpec(_Strict):
    """A source a warm start took configurations from, as the service (``job_id``, ``name``,
    ``dataset``) or ``nas search`` (``run``) records it, with the priors it gave."""

    job_id: int | None = Field(None, ge=1, le=2**31 - 1)
    name: str | None = Field(None, max_length=200)
    dataset: str | None = Field(None, max_length=200)
    run: str | None = Field(None, max_length=4096)
    priors: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _named(self) -> WarmSourceSpec:
        if (self.job_id is None) == (self.run is None):
            raise ValueError("a source is a job (job_id) or a run folder (run), one of them")
        return self


class WarmStartSpec(_Strict):
    """Start from earlier searches: their best configurations are proposed first and every
    controller learns from how they score here (``nas.warmstart``). Name the sources by
    ``jobs`` (ids, service) or ``query: same-space`` (your finished jobs on this space, newest
    first, at most ``limit``), or ``runs`` (``nas search`` output folders); ``top_k`` of
    their best distinct configurations are used; ``tpe`` and ``gp`` also learn from up to
    ``observations_per_source`` of each source's trials (``observations``), ``enas`` and
    ``metaqnn`` start from a source's last policy / Q-table (``controller_state``).
    ``predicted`` of the ``top_k`` are architectures no source evaluated, predicted best by a
    model of the sources' trials (``nas.warmstart.predicted_priors``). The
    service and ``nas search`` write the resolved ``priors``, ``observations``,
    ``controller_state`` (and ``sources``) into the stored spec, so a job keeps them."""

    jobs: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        None, min_length=1, max_length=50
    )
    query: Literal["same-space"] | None = None
    limit: int | None = Field(
        None,
        ge=1,
        le=50,
        description="most source jobs a query takes (a query only: default 5); null otherwise",
    )
    runs: list[str] | None = Field(None, min_length=1, max_length=50)
    top_k: int = Field(20, ge=1, le=1000, description="configurations taken from the sources")
    predicted: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="of the top_k, architectures no source evaluated, predicted best by a "
        "model of the sources' trials; null: half of top_k (rounded down) for a search of "
        "architectures alone, 0 with an hparams section (the model sees architectures only)",
    )
    observations_per_source: int = Field(
        200,
        ge=0,
        le=1000,
        description="completed trials of each source that tpe and gp learn from as "
        "observations scored by rank (not proposed, not trials of this job); 0: none",
    )
    priors: list[PriorSpec] | None = Field(None, max_length=1000)
    observations: list[PriorSpec] | None = Field(None, max_length=50_000)
    controller_state: dict[str, Any] | None = Field(
        None,
        description="what the controller starts from, taken from a source job's last "
        "checkpoint (ENAS: its policy, MetaQNN: its Q-table): {source, state}; written at submit",
    )
    sources: list[WarmSourceSpec] | None = Field(
        None, max_length=50, description="the sources used, written at submit"
    )

    @field_validator("controller_state")
    @classmethod
    def _source_and_state(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("state"), dict):
            raise ValueError(
                "expected {source, state}, state a mapping: a source job's controller state "
                "(its policy or Q-table), as the service writes it at submit"
            )
        return value

    @model_validator(mode="after")
    def _named(self) -> WarmStartSpec:
        named = [k for k in ("jobs", "query", "runs") if getattr(self, k) is not None]
        if len(named) > 1:
            raise ValueError(f"name sources one way: {' or '.join(named)}")
        if not named and self.priors is None:
            raise ValueError("name the sources: jobs, query or runs")
        if self.query is not None and self.limit is None:
            self.limit = 5
        return self

    @field_validator("limit")
    @classmethod
    def _limit_of_a_query(cls, value: int | None, info: ValidationInfo) -> int | None:
        """``limit`` caps a query's jobs; another one with ``jobs`` or ``runs`` would be
        ignored. (Specs stored before it defaulted to null hold 5 there, the old default:
        taken, and stored as null, so that ``nas show --spec`` of such a job submits.)"""
        if value is None or "query" not in info.data or info.data["query"] is not None:
            return value  # (a bad query has its own error)
        if value != 5 and at_submit(info.context):
            raise ValueError(
                "limit caps the jobs of a query (query: same-space); jobs and runs are used "
                "as listed: leave it out"
            )
        return None

    @field_validator("predicted")
    @classmethod
    def _within_top_k(cls, value: int | None, info: ValidationInfo) -> int | None:
        """At ``warm_start.predicted`` (it was the whole section's error)."""
        top_k = info.data.get("top_k")
        if value is not None and isinstance(top_k, int) and value > top_k:
            raise ValueError(
                f"predicted ({value}) counts among the top_k ({top_k}) priors: it must not "
                "exceed top_k"
            )
        return value

    def predicted_count(self, *, joint: bool) -> int:
        """How many priors the model predicts: ``predicted``, or its default (half of
        ``top_k`` for an architecture search, none for a ``joint`` one)."""
        if self.predicted is not None:
            return self.predicted
        return 0 if joint else self.top_k // 2


class JobSpec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=JOB_NAME_PATTERN)
    dataset: Component
    space: Component
    controller: Component
    evaluator: Component
    hparams: dict[str, Any] | None = None
    objective: ObjectiveSpec = ObjectiveSpec()
    budget: BudgetSpec
    resources: ResourcesSpec = ResourcesSpec()
    final: FinalSpec | None = None
    warm_start: WarmStartSpec | None = None
    seed: int = Field(0, ge=0, lt=2**63)


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
        """The spec as stored: JSON data with each component's parameters complete (their
        defaults filled in, unset ones ``None``), so that ``from_stored`` rebuilds this spec
        exactly."""
        data = self.spec.model_dump(mode="json", exclude_none=True)
        for section, params in (
            ("dataset", self.dataset_params),
            ("space", self.space_params),
            ("controller", self.controller_params),
            ("evaluator", self.evaluator_params),
        ):
            data[section] = {"name": data[section]["name"], **params}
        return data

    def file_params(
        self, controllers: Registry[type[ControllerEntry]] | None = None
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """The files this spec names: ``((section, parameter), path)`` for each set component
        parameter marked ``FILE_PARAM`` (``dataset.path``, ``evaluator.table``; with the
        ``controllers`` registry, the controller's too: ``controller.policy``)."""
        from nas.datasets import DATASETS, is_file_param
        from nas.evaluators import EVALUATORS
        from nas.spaces import SPACES

        found: list[tuple[tuple[str | int, ...], str]] = []
        sections: list[tuple[str, Any, dict[str, Any]]] = [
            ("dataset", DATASETS, self.dataset_params),
            ("space", SPACES, self.space_params),
            ("evaluator", EVALUATORS, self.evaluator_params),
        ]
        if controllers is not None:
            sections.append(("controller", controllers, self.controller_params))
        for section, registry, params in sections:
            entry = registry.get(getattr(self.spec, section).name)
            config = entry.config if section == "dataset" else entry.Config
            for name, field in config.model_fields.items():
                marked = is_file_param(field)
                value = params.get(name)
                if marked and isinstance(value, str):
                    found.append(((section, name), value))
                elif marked and isinstance(value, list):  # a list of files (rl2-meta tables)
                    found.extend(
                        ((section, name, i), v) for i, v in enumerate(value) if isinstance(v, str)
                    )
        return found

    def build_space(self) -> SearchSpace:
        """The spec's search space."""
        from nas.spaces import SPACES

        return SPACES.get(self.spec.space.name).from_config(self.space_params)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ResolvedSpec:
        """A spec that ``parse_spec`` validated and ``to_dict`` wrote (a job's stored spec),
        read back as it is: no registry look-up and no cross-component check again.
        Component parameters are taken as stored (a section written before defaults were
        stored keeps its omitted fields at the component's defaults)."""
        spec = JobSpec.model_validate(dict(data))
        hparams = None
        if spec.hparams:
            hparams, problems = HparamSpace.parse(spec.hparams)
            if problems:
                raise SpecError(problems)
        return cls(
            spec,
            spec.dataset.params,
            spec.space.params,
            spec.controller.params,
            spec.evaluator.params,
            hparams,
        )


#: How deep a spec document may nest (sections, component parameters, hyperparameter entries
#: need at most 5 levels); deeper documents are refused before they are built.
MAX_DEPTH = 32
#: The integers a spec may hold: those of a 64-bit column.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: How large a spec document may be once YAML aliases are expanded, as JSON text (about): the
#: size it is stored at. The server passes its body limit (``NAS_MAX_BODY_BYTES``) instead.
MAX_DOCUMENT_BYTES = 1_048_576


def load_spec_file(
    path: str | Path, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """Read a YAML or JSON spec file; a syntax error names the file and line."""
    file = Path(path)
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpecError.at(["<file>"], f"cannot read {str(file)!r}: {reason}") from None
    return parse_document(
        text,
        source=str(file),
        syntax=file_syntax(file, text),
        max_depth=max_depth,
        max_bytes=max_bytes,
    )


def file_syntax(path: str | Path, text: str) -> Literal["json", "yaml"]:
    """A spec file's syntax: by its name, ``.json`` JSON, ``.yaml``/``.yml`` YAML (which may
    be written in flow style, ``{name: x, ...}``: not JSON), any other name JSON when it
    starts with ``{``. A ``.yaml`` file holding JSON is read as JSON (JSON indented with
    tabs is no YAML)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if not text.lstrip().startswith("{"):
        return "yaml"
    if suffix not in (".yaml", ".yml"):
        return "json"
    try:
        json.loads(text)
    except ValueError:
        return "yaml"
    return "json"


def parse_document(
    text: str,
    *,
    source: str = "<spec>",
    syntax: Literal["auto", "json", "yaml"] = "auto",
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> dict[str, Any]:
    """Parse a spec document (``auto``: JSON when it starts with ``{``, else YAML) into plain
    JSON data. Refused with a ``SpecError`` at its path: nesting deeper than ``max_depth``
    (checked before anything is built), a key given twice in one mapping (with its line in
    YAML, its path in JSON), a document larger than ``max_bytes`` once its YAML aliases are
    expanded (an "alias bomb": a few hundred bytes of ``*alias`` lists that expand to
    millions of values), non-finite numbers (``Infinity``, ``.nan``), integers outside 64
    bits, strings that are not valid Unicode (lone surrogates), non-string keys, and YAML
    values JSON cannot hold (timestamps, binary)."""
    if syntax == "auto":
        syntax = "json" if text.lstrip().startswith("{") else "yaml"
    depth = _json_depth(text, max_depth) if syntax == "json" else _yaml_depth(text, max_depth)
    if depth > max_depth:
        raise SpecError.at(
            ["<document>"], f"{source} is nested deeper than {max_depth} levels; a spec needs 5"
        )
    try:
        if syntax == "json":
            # NaN and Infinity (JSON's extension) read as numbers, refused below at their field
            data = json.loads(
                text, parse_constant=float, parse_int=_json_int, object_pairs_hook=_json_object
            )
        else:
            data = yaml.load(text, Loader=_SpecLoader)  # a SafeLoader
    except _DuplicateYamlKey as exc:
        raise SpecError.at(["<document>"], f"{source}: {exc}", "duplicate_key") from None
    except _HugeInteger as exc:
        raise SpecError.at(["<document>"], f"{source}: {exc}", "integer_too_large") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError.at(
            ["<document>"], f"{source} is not valid {syntax.upper()}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise SpecError.at(["<document>"], f"{source} must be a mapping of spec sections")
    # JSON has no aliases: its size is the text's, which the caller bounds.
    expanded = None if syntax == "json" else max_bytes
    _check_expanded(data, source=source, max_bytes=expanded, max_depth=max_depth)
    problems = document_problems(data)
    if problems:
        raise SpecError([_err(loc, msg) for loc, msg in problems])
    return data


class _DuplicateYamlKey(yaml.YAMLError):
    pass


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the
    last silently). A key that a ``<<`` merge brings in may still be overridden."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Checked here, before the merge rewrites the pairs (of this mapping and, through
        # the recursion, of each it merges): after it, a merged key looks given twice.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _YAML_MERGE:
                    continue  # a collection key is refused later (keys must be strings)
                key = self.construct_object(key_node)
                mark = key_node.start_mark
                if key in first:
                    raise _DuplicateYamlKey(
                        f"the key {key!r} is given twice in one mapping, at line "
                        f"{first[key].line + 1}, column {first[key].column + 1} and at line "
                        f"{mark.line + 1}, column {mark.column + 1}; keep one"
                    )
                first[key] = mark
        super().flatten_mapping(node)


_YAML_MERGE = "tag:yaml.org,2002:merge"

# YAML 1.2's floats with an exponent and no dot (1e-4, 5E3), which PyYAML (YAML 1.1) reads
# as strings: a spec's YAML then holds the numbers it shows, and is validated as strictly
# as JSON.
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

# YAML 1.2's integers and booleans too (its core schema): PyYAML's YAML 1.1 read ``010`` as 8,
# ``1:30`` as 90, ``0b11`` as 3 and ``yes``, ``no``, ``on``, ``off`` as booleans, so that
# ``seed: 010`` ran seed 8 without a word and ``name: no`` was refused as not a string. Now
# ``010`` is 10, ``0o10`` 8, ``0x10`` 16 (digits grouped by ``_`` as before: ``1_000``), and
# the others are the strings they show (refused at their field where a number or a boolean
# is due).
_YAML_INT = "tag:yaml.org,2002:int"
_YAML_BOOL = "tag:yaml.org,2002:bool"
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_YAML_INT, _YAML_BOOL)]
    for first, resolvers in _SpecLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    _YAML_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_SpecLoader.add_implicit_resolver(
    _YAML_INT,
    re.compile(r"^(?:[-+]?[0-9]+(?:_[0-9]+)*|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)


#: The most characters an integer of a spec may be written with (a 64-bit field takes 20):
#: Python refuses to read decimals of more than 4,300 digits (a 500), and reads hex ones
#: of any length, whose size checks then failed the same way.
MAX_INTEGER_CHARS = 100


class _HugeInteger(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"an integer written with {len(text)} characters (at most {MAX_INTEGER_CHARS}; "
            "a spec's integers fit in 64 bits)"
        )


def _json_int(text: str) -> int:
    if len(text) > MAX_INTEGER_CHARS:
        raise _HugeInteger(text)
    return int(text)


def _yaml_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if len(text) > MAX_INTEGER_CHARS:
        raise _HugeInteger(text)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)  # decimal, leading zeros and all; the pattern admits only what int() reads


_SpecLoader.add_constructor(_YAML_INT, _yaml_int)


class _DuplicatedKeys(dict[str, Any]):
    """A JSON object that held a key more than once (``duplicated``, last value kept): the
    decoder's hook cannot say where the object is, the walk of the parsed document can."""

    duplicated: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) == len(pairs):
        return data
    seen: set[str] = set()
    duplicated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    marked = _DuplicatedKeys(data)
    marked.duplicated = list(dict.fromkeys(duplicated))
    return marked


def _check_expanded(data: Any, *, source: str, max_bytes: int | None, max_depth: int) -> None:
    """Refuse ``data`` if, written out as JSON, it would be larger than ``max_bytes`` (None:
    no limit) or nested deeper than ``max_depth``, and any JSON object in it that held a key
    twice.

    A YAML alias is one shared object, so a short text can stand for a huge (or, through a
    recursive anchor, endless) document; the walk visits each use of a shared object again,
    as writing it out would, and stops as soon as the size passes ``max_bytes``: it costs
    at most ``max_bytes`` steps, however the document is built."""
    size = 0
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > max_depth:
            raise SpecError.at(
                list(loc[:max_depth]) or ["<document>"],
                f"{source} is nested deeper than {max_depth} levels once its aliases are "
                "expanded; a spec needs 5",
            )
        if isinstance(value, dict):
            if isinstance(value, _DuplicatedKeys):
                raise SpecError.at(
                    list(loc) or ["<document>"],
                    f"{source}: the key {value.duplicated[0]!r} is given more than once in "
                    "this object; keep one",
                    "duplicate_key",
                )
            size += 2
            for key, item in value.items():
                size += len(key) + 4 if isinstance(key, str) else 8
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            size += 2 + len(value)
            stack.extend(((*loc, i), item) for i, item in enumerate(value))
        elif isinstance(value, str):
            size += len(value) + 2
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            size += len(str(value))
        else:
            size += 5  # a boolean, null (or what document_problems refuses)
        if max_bytes is not None and size > max_bytes:
            raise SpecError.at(
                ["<document>"],
                f"{source} is larger than {max_bytes} bytes as JSON once its YAML aliases "
                "(*name) are expanded; a spec is a few kilobytes (the server's limit is "
                "NAS_MAX_BODY_BYTES)",
                "document_too_large",
            )


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _json_depth(text: str, limit: int) -> int:
    """The deepest bracket nesting of a JSON text (strings skipped), counting stops past
    ``limit``; the parser itself recurses per level."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def _yaml_depth(text: str, limit: int) -> int:
    """The deepest collection nesting of a YAML text, from the parser's events (the parser
    keeps a stack; only the composer recurses). Counting stops past ``limit``."""
    depth = deepest = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
                if deepest > limit:
                    break
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass  # reported by the parse that follows, with its line
    return deepest


def document_problems(data: Any, at: tuple[Any, ...] = ()) -> list[SpecProblem]:
    """What in parsed spec data is not plain, storable JSON: non-finite floats, integers
    outside 64 bits, invalid Unicode, the NUL character, non-string keys, other types (YAML
    timestamps)."""
    problems: list[SpecProblem] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [(at, data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    shown = repr(key) if len(repr(key)) <= 40 else f"{repr(key)[:37]}..."
                    msg = (
                        f"keys must be strings, got {type(key).__name__} {shown} (in YAML, "
                        "quote a key that reads as a number: '1': ...)"
                    )
                    problems.append((loc, msg))
                elif not _valid_unicode(key):
                    problems.append((loc, "a key is not valid Unicode (a lone surrogate)"))
                elif "\x00" in key:
                    problems.append((loc, _NUL))
                else:
                    stack.append(((*loc, key), item))
        elif isinstance(value, list | tuple):  # (a tuple: a Python caller's list)
            stack.extend(((*loc, i), item) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                problems.append((loc, "integers must fit in 64 bits (-2^63 .. 2^63-1)"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append((loc, f"numbers must be finite, got {value}"))
        elif isinstance(value, str):
            if not _valid_unicode(value):
                problems.append((loc, "not valid Unicode text (a lone surrogate)"))
            elif "\x00" in value:
                problems.append((loc, _NUL))
        else:
            problems.append(
                (loc, f"{type(value).__name__} is not a JSON value; quote it as a string")
            )
    return problems


#: PostgreSQL's JSON cannot hold the NUL character: a spec with one stored, then failed
#: every query that reads into the spec.
_NUL = "text may not hold the NUL character (\\u0000)"


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _with_default_objective(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with the evaluator's own objective (``Evaluator.default_objective``) where it
    names no metric (a MAML job on sinusoid minimizes ``meta_val_mse`` unless told), and a
    named metric's known direction (``Evaluator.metric_direction``) where it names none
    (of several metrics, where each is known)."""
    from nas.evaluators import EVALUATORS

    objective = data.get("objective", {})
    evaluator, dataset = data.get("evaluator"), data.get("dataset")
    if not (isinstance(objective, Mapping) and isinstance(evaluator, Mapping)):
        return data
    name = evaluator.get("name")
    if not isinstance(name, str) or name not in EVALUATORS:
        return data
    entry = EVALUATORS.get(name)
    filled = dict(objective)
    if "metric" not in objective and "metrics" not in objective:
        dataset_name = dataset.get("name") if isinstance(dataset, Mapping) else None
        metric, direction = entry.default_objective(str(dataset_name), evaluator)
        filled["metric"] = metric
        filled.setdefault("direction", direction)
    elif (
        isinstance(objective.get("metric"), str)
        and "direction" not in objective
        and "metrics" not in objective  # (several: their directions, below)
    ):
        known = entry.metric_direction(objective["metric"])
        if known is not None:
            filled["direction"] = known
    elif (
        isinstance(metrics := objective.get("metrics"), list)
        and all(isinstance(m, str) for m in metrics)
        and "directions" not in objective
    ):
        # several objectives, as one: each metric's own direction where every one is known
        # (else ``directions`` is asked for: a metric of your own has no direction to take)
        known = [entry.metric_direction(m) for m in metrics]
        if metrics and all(d is not None for d in known):
            filled["directions"] = known
    return data if filled == dict(objective) else {**data, "objective": filled}


def parse_spec(
    data: Mapping[str, Any] | JobSpec,
    *,
    controllers: Registry[type[ControllerEntry]],
    strict: bool = False,
    check_files: Callable[[ResolvedSpec], None] | None = None,
) -> ResolvedSpec:
    """Validate a spec document fully; raise ``SpecError`` with every problem found.

    ``controllers`` is the registry the ``controller:`` section is checked against (the
    library knows no controllers; ``workers.parse_spec`` passes the built-in registry).
    ``strict``: no type coercion (``"5"`` or ``false`` for an integer is an error), as the
    service and ``nas search`` read every document (``parse_document`` reads YAML's ``1e-3``
    as a number); a spec built in Python may leave it off.
    ``check_files``: called with the spec once its components' parameters are valid, before
    any check that may read a file the spec names (a ``table`` space reads its table to
    check ``warm_start.priors``); a service confines the files to its data roots there
    (raising ``SpecError``)."""
    registries = _registries(controllers)
    if isinstance(data, JobSpec):
        spec = data
    else:
        problems = document_problems(dict(data))
        if problems:
            raise SpecError([_err(loc, msg) for loc, msg in problems])
        data = _with_default_objective(data)
        try:
            spec = JobSpec.model_validate(dict(data), strict=strict, context=AT_SUBMIT)
        except ValidationError as exc:
            errors = _pydantic_errors(exc, JobSpec)
            # Report bad component names and parameters in the same answer.
            for section in ("dataset", "space", "controller", "evaluator"):
                raw = data.get(section)
                if isinstance(raw, Mapping) and isinstance(raw.get("name"), str) and raw["name"]:
                    component = Component.model_validate(dict(raw))
                    _component_params(section, component, registries[section], errors, strict)
            if isinstance(data.get("hparams"), Mapping):
                evaluator = data.get("evaluator")
                name = evaluator.get("name") if isinstance(evaluator, Mapping) else None
                _check_hparams(data["hparams"], name, errors, strict=strict)
            raise SpecError(errors) from None
    errors: list[dict[str, Any]] = []
    params = {
        section: _component_params(section, getattr(spec, section), registry, errors, strict)
        for section, registry in registries.items()
    }
    # A controller may fill a default from the rest of the spec (MetaQNN: its schedule's
    # length from budget.trials), from the parameters the spec gives.
    entry = controllers.get(spec.controller.name) if not errors else None
    spec_defaults = getattr(entry, "spec_defaults", None)
    if spec_defaults is not None and params["controller"] is not None:
        params["controller"] = spec_defaults(spec, spec.controller.params, params["controller"])
    if not errors and check_files is not None:
        check_files(
            ResolvedSpec(
                spec,
                params["dataset"] or {},
                params["space"] or {},
                params["controller"] or {},
                params["evaluator"] or {},
            )
        )
    if not errors:
        _check_combinations(spec, controllers, errors, params["space"] or {})
    hparams = _check_hparams(
        spec.hparams, spec.evaluator.name, errors, strict=strict, params=params["evaluator"]
    )
    if errors:
        raise SpecError(errors)
    # The canonical form, as stored: each component with every parameter (defaults filled).
    spec = spec.model_copy(
        update={
            section: Component(name=getattr(spec, section).name, **(params[section] or {}))
            for section in registries
        }
    )
    return ResolvedSpec(
        spec,
        params["dataset"] or {},
        params["space"] or {},
        params["controller"] or {},
        params["evaluator"] or {},
        hparams,
    )


def _check_hparams(
    raw: Mapping[str, Any] | None,
    evaluator: Any,
    errors: list[dict[str, Any]],
    *,
    strict: bool = False,
    params: dict[str, Any] | None = None,
) -> HparamSpace | None:
    """Validate the ``hparams:`` section; training-procedure names (``PROCEDURE_HPARAMS``)
    only with an evaluator that sets them per trial (``Evaluator.hparam_keys``), and with
    ``params`` (the evaluator's validated parameters) only over values its own field takes
    (Reptile's ``inner_steps`` starts at 1)."""
    from nas.evaluators import EVALUATORS
    from nas.hparams import PROCEDURE_HPARAMS

    if not raw:
        return None
    space, problems = HparamSpace.parse(raw, strict=strict, submitted=True)
    errors.extend(problems)
    if isinstance(evaluator, str) and evaluator in EVALUATORS:
        used = EVALUATORS.get(evaluator).hparam_keys
        own = EVALUATORS.get(evaluator).Config.model_fields
        for name in raw:
            if name in PROCEDURE_HPARAMS and name not in used:
                users = [n for n in EVALUATORS.names() if name in EVALUATORS.get(n).hparam_keys]
                errors.append(
                    _err(
                        ("hparams", name),
                        f"{name!r} sets the training procedure, which evaluator {evaluator!r} "
                        f"does not set per trial; evaluators that do: {', '.join(users)}",
                    )
                )
            elif name in own and name not in used:
                # (MAML's eval_lr was searched, recorded and exported as a hyperparameter,
                # and every trial ran the evaluator's own value)
                per_trial = ", ".join(sorted(used)) or "none"
                errors.append(
                    _err(
                        ("hparams", name),
                        f"{name!r} is a parameter of evaluator {evaluator!r} that it does not "
                        f"take per trial: set evaluator.{name} instead (what it takes per "
                        f"trial: {per_trial})",
                    )
                )
        if params is not None and not problems:
            config = EVALUATORS.get(evaluator).Config
            for name, param in space.params.items():
                if name in used and name in PROCEDURE_HPARAMS:
                    msg = _outside_field(config, params, name, param, evaluator)
                    if msg is not None:
                        errors.append(_err(("hparams", name), msg))
    return None if problems else space


def spec_warnings(spec: JobSpec) -> list[str]:
    """What in a valid ``spec`` is most likely not what its author meant, each as a line the
    job shows with its warnings (``nas search``, ``nas submit``, the API's ``warnings``): a
    hyperparameter of the user's own named like one the evaluator takes per trial
    (``learning_rate`` for ``lr``), which every trial would ignore."""
    from nas.evaluators import EVALUATORS
    from nas.hparams import PROCEDURE_HPARAMS, meant_name

    warnings = []
    final = spec.final
    small = [
        metric
        for metric, direction in spec.objective.objectives
        if direction == "minimize" and metric.startswith(("params", "flops", "latency"))
    ]
    if final is not None and final.channels == "fit" and small:
        # (a front point of 5,050 parameters was retrained and exported at 11,935: within
        # max_params, but not the model chosen for its size: the probe of multi-objective
        # search)
        warnings.append(
            f"final.channels: fit widens each retrained architecture up to "
            f"objective.constraints, while the objective minimises {small[0]!r}: the "
            "retrained models are larger than the trials chosen for their size; give "
            "final.channels the search's width to retrain them as found"
        )
    if not spec.hparams or spec.evaluator.name not in EVALUATORS:
        return warnings
    taken = EVALUATORS.get(spec.evaluator.name).hparam_keys
    for name in spec.hparams:
        if name in PROCEDURE_HPARAMS:
            continue
        meant = meant_name(name, taken)
        if meant is not None and meant not in spec.hparams:
            warnings.append(
                f"hparams.{name} is a name of your own: searched and recorded, but evaluator "
                f"{spec.evaluator.name!r} trains every trial with its own {meant!r}; name it "
                f"{meant!r} to search it"
            )
    return warnings


def _outside_field(
    config: Any, params: dict[str, Any], name: str, param: Any, evaluator: str
) -> str | None:
    """Why a value of hyperparameter ``param`` (its bounds, or each choice) is one that the
    evaluator's own field ``name`` refuses; ``None`` when it takes them all."""
    values = list(param.choices) if hasattr(param, "choices") else [param.low, param.high]
    for value in values:
        try:
            config.model_validate({**params, name: value})
        except ValidationError as exc:
            found = [e["msg"] for e in _pydantic_errors(exc) if e["loc"] == (name,)]
            if found:
                return (
                    f"{value!r} is outside what evaluator {evaluator!r} takes for {name} "
                    f"({found[0].lower()})"
                )
    return None


def _pydantic_errors(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[dict[str, Any]]:
    """``exc``'s errors as the spec reports them; ``model``: the model validated, whose
    fields an unknown field's message then lists."""
    out = []
    for err in exc.errors(include_url=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, tuple(err["loc"])[:-1]) if model is not None else None
            msg = "unknown field" + (f"; valid: {', '.join(valid)}" if valid else "")
        elif err["type"] == "missing":
            msg = "field required"
            # (a misspelt name was left unsaid: "controller.name: field required" of
            # {nmae: random}, where a misspelt top-level section is named: the probe of
            # the Python client)
            given = err.get("input")
            if isinstance(given, Mapping) and err["loc"]:
                known = set(_fields_at(model, tuple(err["loc"])[:-1]) or ()) if model else set()
                others = [str(k) for k in given if str(k) not in known]  # (not a field's own)
                like = difflib.get_close_matches(str(err["loc"][-1]), others, n=1, cutoff=0.6)
                msg += f" ({like[0]!r} given: misspelt?)" if like else ""
        elif err["type"] == "value_error":  # a validator's own message, without pydantic's tag
            msg = msg.removeprefix("Value error, ")
        out.append({"loc": tuple(err["loc"]), "msg": msg, "type": err["type"]})
    return out


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model at ``loc`` inside ``model`` (list indices and
    ``Optional``/``list``/``dict`` wrappers passed through); ``None`` where none is found."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) else None
        if field is None:
            return None
        current = _model_in(field.annotation)
        if current is None:
            return None
    skip = getattr(current, "inapplicable_fields", frozenset())  # (inherited, refused)
    return [name for name in current.model_fields if name not in skip]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``X | None``, ``list[X]``, ...), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _registries(controllers: Registry[Any]) -> dict[str, Registry[Any]]:
    """The registry each component section is checked against, in section order."""
    from nas.datasets import DATASETS
    from nas.evaluators import EVALUATORS
    from nas.spaces import SPACES

    return {
        "dataset": DATASETS,
        "space": SPACES,
        "controller": controllers,
        "evaluator": EVALUATORS,
    }


def _quoted(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (a client's 10 kB name is
    not echoed back whole)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _component_params(
    section: str,
    component: Component,
    registry: Registry[Any],
    errors: list[dict[str, Any]],
    strict: bool = False,
) -> dict[str, Any] | None:
    if component.name not in registry:
        errors.append(
            {
                "loc": (section, "name"),
                "msg": f"unknown {section} {_quoted(component.name)}; valid: "
                f"{', '.join(registry.names())}",
                "type": "unknown_name",
            }
        )
        return None
    entry = registry.get(component.name)
    config_model = entry.config if section == "dataset" else entry.Config
    try:
        if strict:  # as JSON: no coercion, but a JSON array is a tuple (class_split: [...])
            parsed = config_model.model_validate_json(
                json.dumps(component.params), strict=True, context=AT_SUBMIT
            )
        else:
            parsed = config_model.model_validate(component.params, context=AT_SUBMIT)
        return parsed.model_dump(mode="json")
    except ValidationError as exc:
        for err in _pydantic_errors(exc, config_model):
            # A check of the whole config that names its field first ("test_fraction: ...")
            # is placed at that field.
            at = AT_FIELD.fullmatch(err["msg"]) if not err["loc"] else None
            if at is not None and at.group(1) in config_model.model_fields:
                err["loc"], err["msg"] = (at.group(1),), at.group(2)
            err["loc"] = (section, *err["loc"])
            errors.append(err)
        return None


def _check_combinations(
    spec: JobSpec,
    controllers: Registry[type[ControllerEntry]],
    errors: list[dict[str, Any]],
    space_params: dict[str, Any],
) -> None:
    """Cross-component rules, each answered by the component it concerns: the evaluator
    (which datasets, spaces, objectives and constraints it can work with), the controller
    (several objectives or one), the space (whether it has a network to retrain)."""
    from nas.evaluators import EVALUATORS
    from nas.spaces import SPACES

    for loc, msg in EVALUATORS.get(spec.evaluator.name).spec_problems(spec):
        errors.append(_err(loc, msg))
    if spec.objective.is_multi and not controllers.get(spec.controller.name).multi_objective:
        able = [n for n in controllers.names() if controllers.get(n).multi_objective]
        errors.append(
            _err(
                ("controller", "name"),
                f"controller {spec.controller.name!r} optimises one objective; with several "
                f"objective metrics use one of: {', '.join(able)} (or set one metric)",
            )
        )
    # A controller may answer for the rest of the spec too (rl2: a policy, or meta-training).
    own = getattr(controllers.get(spec.controller.name), "spec_problems", None)
    if own is not None:
        for loc, msg in own(spec, spec.controller.params):
            errors.append(_err(loc, msg))
    space = SPACES.get(spec.space.name)
    warm = spec.warm_start
    if warm is not None and spec.hparams and warm.predicted:
        errors.append(
            _err(
                ("warm_start", "predicted"),
                "the model predicts architectures alone, and this job searches "
                "hyperparameters too (an hparams section): set predicted to 0 or leave it out",
            )
        )
    # (observations given without priors went unchecked to the controller, whose error
    # named the section controller)
    if warm is not None and (warm.priors or warm.observations):
        from nas.hparams import HparamSpace
        from nas.warmstart import check_priors

        hparams, problems = HparamSpace.parse(spec.hparams) if spec.hparams else (None, [])
        if not problems:
            built = space.from_config(space_params)
            priors = [p.model_dump() for p in warm.priors or ()]
            for loc, msg in check_priors(priors, built, hparams):
                errors.append(_err(loc, msg))
            observations = [p.model_dump() for p in warm.observations or ()]
            for loc, msg in check_priors(observations, built, hparams):
                errors.append(_err(("warm_start", "observations", *loc[2:]), msg))
    final, constraints = spec.final, spec.objective.constraints
    limits = constraints.limits() if constraints is not None else {}
    if final is not None and final.channels == "fit" and not limits:
        errors.append(
            _err(
                ("final", "channels"),
                "channels: fit retrains each architecture at the widest width that "
                "objective.constraints allow, and none are set; set objective.constraints "
                "(max_params, max_flops, max_latency_ms) or give a number of channels",
            )
        )
    if (
        final is not None
        and final.channels is not None
        and "channels" not in space.Config.model_fields
    ):  # (a number was accepted, and the retraining failed after the search)
        widths = [n for n in SPACES.names() if "channels" in SPACES.get(n).Config.model_fields]
        errors.append(
            _err(
                ("final", "channels"),
                f"space {space.name!r} has no channels setting to "
                f"{'fit' if final.channels == 'fit' else 'change'} "
                f"(spaces with one: {', '.join(widths)})",
            )
        )
    elif (
        final is not None
        and isinstance(final.channels, int)
        and limits
        and final.channels != space_params.get("channels")
    ):
        errors.append(
            _err(
                ("final", "channels"),
                f"retraining at {final.channels} channels instead of the searched "
                f"{space_params.get('channels', 'width')} changes the figures that "
                f"objective.constraints bound ({', '.join(limits)}), so the retrained "
                f"networks would not keep to them; leave final.channels out, set it to "
                f"the space's channels, or to fit (the widest width within them)",
            )
        )
    if final is not None:
        # A setting the rest of the retraining recipe would ignore (as the standalone
        # evaluator's), unless a joint search sets what it depends on per architecture.
        from nas.training import unused_settings

        fields = type(final).model_fields
        for name, because in unused_settings(final, set(spec.hparams or ())):
            if getattr(final, name) != fields[name].default:
                errors.append(_err(("final", name), f"{because}; got {getattr(final, name)}"))
    if spec.final is not None and not space.trainable:
        trainable = [n for n in SPACES.names() if SPACES.get(n).trainable]
        errors.append(
            _err(
                ("final",),
                f"space {space.name!r} has no trainable network here to retrain "
                f"(valid: {', '.join(trainable)})",
            )
        )


def _err(loc: tuple[Any, ...], msg: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error"}
