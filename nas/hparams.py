"""User-defined hyperparameter spaces: the job spec's ``hparams:`` section.

Each entry names one parameter, in declaration order::

    hparams:
      optimizer: {type: categorical, choices: [adam, sgd]}
      lr:        {type: float, low: 1.0e-4, high: 0.1, log: true}
      momentum:  {type: float, low: 0.5, high: 0.99, condition: {param: optimizer, equals: sgd}}
      width:     {type: int, low: 16, high: 128, step: 16}

``float`` and ``int`` parameters have ``low < high``, an optional ``log`` scale (needs
``low > 0``; not with ``step``) and an optional ``step`` (``high - low`` a multiple of it; an
int's step defaults to 1). ``categorical`` parameters list their ``choices`` (strings, numbers,
booleans or null). A ``condition`` (``{param: P, equals: V}`` or ``{param: P, in: [V, ...]}``)
makes a parameter active only when the categorical parameter ``P``, declared before it and
itself active, has one of those values; an inactive parameter is absent from a trial's
hyperparameters, never set to a placeholder.

``HparamSpace`` samples uniformly (log-uniformly on a log scale), validates, mutates (for
evolution) and maps itself to Optuna distributions, suggesting only active parameters.

Names in ``TRAINING_HPARAMS`` set the training procedure of a trial for evaluators that train
each trial (``standalone``), names in ``META_HPARAMS`` the meta-training procedure of the
meta-learning evaluators (``maml``, ``fomaml``, ``reptile``, ``metasgd``); their values are
checked against what training accepts (``PROCEDURE_HPARAMS``: both). Any other name is the
user's own: sampled, searched and recorded per trial like the rest.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from nas.errors import AT_SUBMIT, NasError, SpecError, at_submit

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = [
    "META_HPARAMS",
    "PROCEDURE_HPARAMS",
    "TRAINING_HPARAMS",
    "CategoricalParam",
    "Condition",
    "FloatParam",
    "HparamSpace",
    "IntParam",
    "InvalidHparamsError",
    "TrainingKey",
    "meant_name",
]


def _scalar(value: Any, info: ValidationInfo) -> Any:
    """A choice (or a condition's value) is one JSON scalar: said once, where pydantic's
    union told each of its members apart ("choices.0.str: Input should be a valid string",
    then .int, .float, .bool) for a mapping or a list. At submit, text without control
    characters (a job stored before that rule still loads)."""
    if isinstance(value, np.generic):  # (in-process callers: numpy's scalars as Python's)
        value = value.item()
    if isinstance(value, str):
        control = next((c for c in value if unicodedata.category(c) == "Cc"), None)
        if control is not None and at_submit(info.context):
            # (an escape sequence cleared the terminal of whoever listed the trials, an
            # admin's too, and a newline forged a row of 'nas trials': the security probe)
            raise ValueError(
                f"must not contain control characters (newlines, tabs, escapes), got {control!r}"
            )
        return value
    if value is None or isinstance(value, int | float | bool):
        return value
    kind = (
        "a mapping"
        if isinstance(value, Mapping)
        else "a list"
        if isinstance(value, list)
        else type(value).__name__
    )
    raise ValueError(f"must be a string, a number, true, false or null, not {kind}")


Value = Annotated[str | int | float | bool | None, BeforeValidator(_scalar)]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
TYPES = ("categorical", "float", "int")


class InvalidHparamsError(NasError, ValueError):
    """Hyperparameter values that do not belong to the space."""


# --- the section's entries ---------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Strict):
    """Active only when parameter ``param`` is active and has one of the given values."""

    param: str = Field(min_length=1)
    equals: Value = None
    in_: list[Value] | None = Field(None, alias="in", min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        if ("equals" in self.model_fields_set) == (self.in_ is not None):
            raise ValueError("set exactly one of equals, in")
        return self

    @property
    def values(self) -> tuple[Value, ...]:
        return (self.equals,) if self.in_ is None else tuple(self.in_)

    def to_dict(self) -> dict[str, Any]:
        if self.in_ is None:
            return {"param": self.param, "equals": self.equals}
        return {"param": self.param, "in": list(self.in_)}


MAX_STEPS = 10**15
"""The most grid points a stepped parameter may have: samplers draw the step index as an
integer, and float64 resolves the grid exactly only up to about 2^53."""


class FloatParam(_Strict):
    type: Literal["float"]
    low: FiniteFloat
    high: FiniteFloat
    log: bool = False
    step: FiniteFloat | None = Field(None, gt=0)
    condition: Condition | None = None


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)
    condition: Condition | None = None


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Value] = Field(min_length=1)
    condition: Condition | None = None


Param = FloatParam | IntParam | CategoricalParam
_MODELS: dict[str, type[BaseModel]] = {
    "categorical": CategoricalParam,
    "float": FloatParam,
    "int": IntParam,
}


# --- the training procedure's keys ---------------------------------------------------------------
@dataclass(frozen=True)
class TrainingKey:
    """A hyperparameter name that sets the training procedure (``TrainRecipe`` field)."""

    kind: Literal["number", "integer", "choice", "flag"]
    domain: str  # for messages
    check: Callable[[Any], bool]
    choices: tuple[str, ...] = ()


def _choice(*choices: str) -> TrainingKey:
    return TrainingKey("choice", ", ".join(choices), lambda v: v in choices, choices)


#: Names that set a trial's training procedure when the evaluator trains each trial
#: (``standalone``): each overrides the evaluator's value of the same name for that trial.
TRAINING_HPARAMS: dict[str, TrainingKey] = {
    "optimizer": _choice("adam", "adamw", "sgd"),
    "lr": TrainingKey("number", "0 < lr <= 10", lambda v: 0 < v <= 10),
    "lr_schedule": _choice("constant", "cosine"),
    "weight_decay": TrainingKey("number", "0 <= weight_decay <= 1", lambda v: 0 <= v <= 1),
    "momentum": TrainingKey("number", "0 <= momentum <= 1", lambda v: 0 <= v <= 1),
    "batch_size": TrainingKey("integer", "1 <= batch_size <= 65536", lambda v: 1 <= v <= 65536),
    "epochs": TrainingKey("integer", "1 <= epochs <= 10000", lambda v: 1 <= v <= 10_000),
    "loss": _choice("cross_entropy", "label_smoothing", "focal"),
    "label_smoothing": TrainingKey("number", "0 <= label_smoothing < 1", lambda v: 0 <= v < 1),
    "focal_gamma": TrainingKey("number", "0 <= focal_gamma <= 20", lambda v: 0 <= v <= 20),
}

#: Names that set a trial's meta-training procedure when the evaluator meta-learns (``maml``,
#: ``fomaml``, ``reptile``, ``metasgd``: each takes those its parameters have, see its
#: ``hparam_keys``): the inner loop's step size and steps, first-order or second-order
#: meta-gradients, tasks per meta-batch and the outer (meta) learning rate.
META_HPARAMS: dict[str, TrainingKey] = {
    "inner_lr": TrainingKey("number", "0 < inner_lr <= 10", lambda v: 0 < v <= 10),
    "inner_steps": TrainingKey("integer", "0 <= inner_steps <= 100", lambda v: 0 <= v <= 100),
    "first_order": TrainingKey("flag", "true, false", lambda v: isinstance(v, bool)),
    "meta_batch": TrainingKey("integer", "1 <= meta_batch <= 4096", lambda v: 1 <= v <= 4096),
    "outer_lr": TrainingKey("number", "0 < outer_lr <= 10", lambda v: 0 < v <= 10),
}

#: Every name that sets a training procedure (``TRAINING_HPARAMS`` and ``META_HPARAMS``): a
#: spec may search one only with an evaluator that sets it per trial (``hparam_keys``).
PROCEDURE_HPARAMS: dict[str, TrainingKey] = {**TRAINING_HPARAMS, **META_HPARAMS}

#: What other tools call the procedure names (PyTorch, Keras, learn2learn, Ray Tune examples).
_OTHER_TOOLS_NAMES = {
    "learning_rate": "lr",
    "lr_scheduler": "lr_schedule",
    "scheduler": "lr_schedule",
    "wd": "weight_decay",
    "l2": "weight_decay",
    "optim": "optimizer",
    "opt": "optimizer",
    "bs": "batch_size",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "loss_fn": "loss",
    "criterion": "loss",
    "inner_learning_rate": "inner_lr",
    "fast_lr": "inner_lr",
    "adaptation_steps": "inner_steps",
    "num_inner_steps": "inner_steps",
    "outer_learning_rate": "outer_lr",
    "meta_lr": "outer_lr",
    "meta_batch_size": "meta_batch",
    "tasks_per_batch": "meta_batch",
}


def meant_name(name: str, taken: Sequence[str]) -> str | None:
    """The name among ``taken`` (an evaluator's per-trial procedure names) that the user's
    own hyperparameter ``name`` was most likely meant to be (``learning_rate`` for ``lr``,
    ``momentun`` for ``momentum``, ``LR``), or ``None``: a search over such a name trains
    every trial the same way while looking as if it searched the procedure."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in taken:
        return key
    other = _OTHER_TOOLS_NAMES.get(key)
    if other in taken:
        return other
    close = difflib.get_close_matches(key, list(taken), n=1, cutoff=0.8)
    return close[0] if close else None


#: The most hyperparameters a spec may search (tuning libraries' spaces hold tens).
MAX_HPARAMS = 100


# --- the space ---------------------------------------------------------------------------------
class HparamSpace:
    """An ordered set of hyperparameters, some conditional on earlier categorical ones.

    Example:
        >>> space = HparamSpace.from_spec({"lr": {"type": "float", "low": 1e-4, "high": 0.1,
        ...                                       "log": True}})
        >>> values = space.sample(np.random.default_rng(0))  # {'lr': ...}
    """

    def __init__(self, params: Mapping[str, Param]) -> None:
        self.params: dict[str, Param] = dict(params)

    # --- parsing ---------------------------------------------------------------------------
    @classmethod
    def from_spec(
        cls, raw: Mapping[str, Any], *, loc: Sequence[str | int] = ("hparams",)
    ) -> HparamSpace:
        """Validate the ``hparams:`` mapping; raise ``SpecError`` with every problem found,
        each at its path (``hparams.lr.high``)."""
        space, errors = cls.parse(raw, loc=loc, submitted=True)
        if errors:
            raise SpecError(errors)
        return space

    @classmethod
    def parse(
        cls,
        raw: Mapping[str, Any],
        *,
        loc: Sequence[str | int] = ("hparams",),
        strict: bool = False,
        submitted: bool = False,
    ) -> tuple[HparamSpace, list[dict[str, Any]]]:
        """Like ``from_spec``, but answers the space (of the valid entries) and the errors.
        ``strict``: as JSON, nothing coerced (``low: true``, ``log: "yes"`` are refused);
        ``submitted``: a section submitted now, held to the rules of a submit (a stored
        one is read as it was accepted)."""
        base = tuple(loc)
        errors: list[dict[str, Any]] = []
        params: dict[str, Param] = {}
        if len(raw) > MAX_HPARAMS:
            # (20,000 were accepted: each importance chart of the job then cost seconds to
            # minutes of the server's CPU, and one of them a 500)
            return cls({}), [_err(base, f"at most {MAX_HPARAMS} hyperparameters, got {len(raw)}")]
        names = [str(n) for n in raw]
        for index, (name, entry) in enumerate(raw.items()):
            at = (*base, str(name))
            if not isinstance(name, str) or not _NAME.match(name):
                errors.append(
                    _err(
                        at,
                        "parameter names are letters, digits, _ . - (at most 100, starting "
                        "with a letter or _)",
                    )
                )
                continue
            param = _parse_entry(at, entry, errors, strict=strict, submitted=submitted)
            if param is None:
                continue
            problems = _check_param(param) + _check_training_key(name, param)
            if param.condition is not None:
                problems += _check_condition(name, param.condition, params, names[:index], names)
            for where, msg in problems:
                errors.append(_err((*at, *where), msg))
            if not problems:
                params[name] = param
        return cls(params), errors

    # --- plain data ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The section again (``from_spec(space.to_dict())`` is an equal space)."""
        out = {}
        for name, p in self.params.items():
            data = p.model_dump(exclude_none=True, exclude={"condition"})
            if p.condition is not None:
                data["condition"] = p.condition.to_dict()
            out[name] = data
        return out

    def __len__(self) -> int:
        return len(self.params)

    def __bool__(self) -> bool:
        return bool(self.params)

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __repr__(self) -> str:
        return f"HparamSpace({', '.join(self.params)})"

    # --- conditions ------------------------------------------------------------------------
    def conditional(self) -> list[str]:
        """The parameters with a condition (active in some trials only)."""
        return [name for name, p in self.params.items() if p.condition is not None]

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given the values of the parameters before it."""
        condition = self.params[name].condition
        if condition is None:
            return True
        if condition.param not in values:  # the parent is inactive
            return False
        return _member(values[condition.param], condition.values)

    def _complete(
        self, values: Mapping[str, Any], draw: Callable[[str, Param], Any]
    ) -> dict[str, Any]:
        """Walk the parameters in order: keep a value that is still active, draw one for a
        parameter that has become active, drop the inactive ones."""
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            if not self.is_active(name, out):
                continue
            out[name] = values[name] if name in values else draw(name, param)
        return out

    def largest(self, name: str) -> int | float | None:
        """The largest number parameter ``name`` can take: a range's highest point on its
        grid, a categorical's largest number choice (``None``: it has none). What a size
        limit that the value enters must hold for, as for a value given directly."""
        param = self.params[name]
        if isinstance(param, IntParam):
            return param.low + (param.high - param.low) // param.step * param.step
        if isinstance(param, FloatParam):
            return param.high
        numbers = [
            c for c in param.choices if isinstance(c, int | float) and not isinstance(c, bool)
        ]
        return max(numbers) if numbers else None

    # --- sampling --------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Active parameters only, each uniform (log-uniform on a log scale) over its range."""
        return self._complete({}, lambda _, p: _sample(p, rng))

    def mutate(self, values: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Change one active parameter: another choice for a categorical one, a Gaussian step
        (a tenth of the range, on the log scale where ``log``) for a number. Parameters that
        the change activates are sampled; those it deactivates are dropped."""
        active = [name for name in self.params if name in values]
        if not active:
            return self.sample(rng)
        name = active[int(rng.integers(len(active)))]
        changed = {**values, name: _perturb(self.params[name], values[name], rng)}
        kept = {k: v for k, v in changed.items() if k in self.params}
        return self._complete(kept, lambda _, p: _sample(p, rng))

    def tidy(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with each stepped float written as its decimal grid point (``low`` plus
        a whole number of steps: 0.3, not the 0.30000000000000004 that float sums
        give), as every trial records it."""
        out = dict(values)
        for name, value in values.items():
            p = self.params.get(name)
            if isinstance(p, FloatParam) and p.step is not None and isinstance(value, float):
                out[name] = _grid_point(p, round((value - p.low) / p.step))
        return out

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` in declaration order; raises ``InvalidHparamsError`` when a value is out
        of its range, an active parameter is missing or an inactive or unknown one is set."""
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise InvalidHparamsError(f"unknown hyperparameters: {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, param in self.params.items():
            active = self.is_active(name, out)
            if active and name not in values:
                raise InvalidHparamsError(f"{name}: missing (active)")
            if not active:
                if name in values:
                    raise InvalidHparamsError(f"{name}: set although its condition is not met")
                continue
            if not _contains(param, values[name]):
                raise InvalidHparamsError(f"{name}: {values[name]!r} is outside {_domain(param)}")
            out[name] = values[name]
        return out

    # --- Optuna ----------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """One Optuna distribution per parameter (conditional ones included)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, BaseDistribution] = {}
        for name, p in self.params.items():
            if isinstance(p, FloatParam):
                out[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                out[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
            else:
                out[name] = CategoricalDistribution(tuple(p.choices))
        return out

    def suggest(self, trial: optuna.Trial, *, prefix: str = "") -> dict[str, Any]:
        """Suggest the active parameters in ``trial`` (named ``prefix + name``), in order, so
        a conditional one is only suggested once its parent's value is known."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if not self.is_active(name, out):
                continue
            if isinstance(p, FloatParam):
                out[name] = trial.suggest_float(
                    prefix + name, p.low, p.high, step=p.step, log=p.log
                )
            elif isinstance(p, IntParam):
                out[name] = trial.suggest_int(prefix + name, p.low, p.high, step=p.step, log=p.log)
            else:
                out[name] = trial.suggest_categorical(prefix + name, p.choices)
        return out


# --- helpers -----------------------------------------------------------------------------------
def _err(loc: Sequence[str | int], msg: str) -> dict[str, Any]:
    return {"loc": tuple(loc), "msg": msg, "type": "value_error"}


def _parse_entry(
    at: tuple[str, ...],
    entry: Any,
    errors: list[dict[str, Any]],
    *,
    strict: bool = False,
    submitted: bool = False,
) -> Param | None:
    if not isinstance(entry, Mapping):
        errors.append(
            _err(
                at,
                f"must be a mapping with a type ({', '.join(TYPES)}), e.g. "
                "{type: float, low: 0.0001, high: 0.1, log: true}",
            )
        )
        return None
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in _MODELS:  # ([int]: unhashable, a TypeError)
        msg = "field required" if kind is None else f"unknown type {kind!r}"
        errors.append(_err((*at, "type"), f"{msg}; valid: {', '.join(TYPES)}"))
        return None
    context = AT_SUBMIT if submitted else None
    try:
        if strict:  # as JSON: a JSON array is a tuple, nothing else is coerced
            return _MODELS[kind].model_validate_json(  # type: ignore[return-value]
                json.dumps(dict(entry)), strict=True, context=context
            )
        return _MODELS[kind].model_validate(dict(entry), context=context)  # type: ignore[return-value]
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                valid = ", ".join(
                    f.alias or n for n, f in _MODELS[kind].model_fields.items() if n != "type"
                )
                msg = f"unknown field for a {kind} parameter; valid: {valid}"
            elif err["type"] == "missing":
                msg = "field required"
            msg = msg.removeprefix("Value error, ")
            errors.append({"loc": (*at, *err["loc"]), "msg": msg, "type": err["type"]})
        return None


def _check_param(p: Param) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(p, CategoricalParam):
        seen = set()
        for i, choice in enumerate(p.choices):
            # 1 and 1.0 are one number (a JSON reader may not tell them apart); true is no 1
            number = isinstance(choice, int | float) and not isinstance(choice, bool)
            key = ("number", float(choice)) if number else (type(choice).__name__, choice)
            if key in seen:
                problems.append((("choices", i), f"duplicate choice {choice!r}"))
            seen.add(key)
        return problems
    if p.high <= p.low:
        problems.append((("high",), f"high ({p.high}) must be greater than low ({p.low})"))
    elif isinstance(p, IntParam) and p.high - p.low >= 2**63:
        problems.append((("high",), "the range is too wide: high - low must be below 2^63"))
    elif isinstance(p, FloatParam) and not math.isfinite(p.high - p.low):
        problems.append((("high",), "the range is too wide: high - low must be a finite float64"))
    if p.log and p.low <= 0:
        problems.append((("low",), f"a log scale needs low > 0, got {p.low}"))
    has_step = p.step is not None if isinstance(p, FloatParam) else p.step != 1
    if p.log and has_step:
        problems.append((("step",), "step cannot be combined with log: true"))
    elif has_step and not problems:
        span, step = Decimal(str(p.high)) - Decimal(str(p.low)), Decimal(str(p.step))
        if span / step > MAX_STEPS:
            msg = (
                f"step ({p.step}) is too small for the range: (high - low) / step must be at "
                f"most {MAX_STEPS:.0e} steps, got {float(span / step):.3g}"
            )
            problems.append((("step",), msg))
        elif span % step != 0:
            problems.append(
                (("step",), f"high - low ({span}) must be a multiple of step ({p.step})")
            )
    return problems


def _check_training_key(name: str, p: Param) -> list[tuple[tuple[str | int, ...], str]]:
    key = PROCEDURE_HPARAMS.get(name)
    if key is None:
        return []
    if isinstance(p, CategoricalParam):
        problems = []
        for i, choice in enumerate(p.choices):
            if key.kind == "flag":
                ok = isinstance(choice, bool)
            elif key.kind == "choice":
                ok = isinstance(choice, str) and key.check(choice)
            elif key.kind == "integer":
                whole = isinstance(choice, int) and not isinstance(choice, bool)
                if not whole and isinstance(choice, (int, float)):
                    problems.append(
                        (("choices", i), f"{choice!r} is not valid for {name}: a whole number")
                    )
                    continue
                ok = whole and key.check(choice)
            else:
                ok = isinstance(choice, (int, float)) and not isinstance(choice, bool)
                if ok:
                    ok = key.check(choice)
                elif isinstance(choice, str) and _is_number(choice):
                    problems.append(
                        (
                            ("choices", i),
                            f"{choice!r} is a string: YAML reads 1e-3 as text, write 1.0e-3",
                        )
                    )
                    continue
            if not ok:
                problems.append(
                    (("choices", i), f"{choice!r} is not valid for {name}: {key.domain}")
                )
        return problems
    if key.kind == "choice":
        return [(("type",), f"{name} is one of {key.domain}: use type categorical")]
    if key.kind == "flag":
        return [
            (("type",), f"{name} is true or false: use type categorical, choices [true, false]")
        ]
    if key.kind == "integer" and isinstance(p, FloatParam):
        return [(("type",), f"{name} is an integer: use type int (or categorical)")]
    return [
        ((end,), f"{getattr(p, end)} is not valid for {name}: {key.domain}")
        for end in ("low", "high")
        if not key.check(getattr(p, end))
    ]


def _check_condition(
    name: str,
    condition: Condition,
    earlier: Mapping[str, Param],
    before: list[str],
    names: list[str],
) -> list[tuple[tuple[str | int, ...], str]]:
    parent = condition.param
    if parent == name:
        return [(("condition", "param"), "a parameter cannot be conditional on itself")]
    if parent in names and parent not in before:
        msg = (
            f"{parent!r} is declared after {name!r}; a condition refers to a parameter "
            f"declared before it (move {parent!r} up)"
        )
        return [(("condition", "param"), msg)]
    if parent not in before:
        msg = (
            f"unknown parameter {parent!r}; a condition refers to a parameter declared "
            f"before this one (declared before: {', '.join(before) or 'none'})"
        )
        return [(("condition", "param"), msg)]
    if parent not in earlier:  # declared before, but invalid itself: reported there
        return [(("condition", "param"), f"parameter {parent!r} is invalid")]
    target = earlier[parent]
    if not isinstance(target, CategoricalParam):
        return [
            (
                ("condition", "param"),
                f"{parent!r} is a {target.type} parameter; conditions refer to categorical ones",
            )
        ]
    where: tuple[str | int, ...] = ("condition", "equals") if condition.in_ is None else ()
    problems = []
    for i, value in enumerate(condition.values):
        if not _member(value, target.choices):
            loc = where or ("condition", "in", i)
            choices = ", ".join(repr(c) for c in target.choices)
            problems.append((loc, f"{value!r} is not a choice of {parent!r}; choices: {choices}"))
    return problems


def _member(value: Any, options: Sequence[Any]) -> bool:
    """``value in options`` without 1 == True == 1.0 confusion."""
    return any(type(value) is type(o) and value == o for o in options)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _domain(p: Param) -> str:
    if isinstance(p, CategoricalParam):
        return f"choices {p.choices}"
    step = "" if p.step is None or p.step == 1 and isinstance(p, IntParam) else f" step {p.step}"
    return f"[{p.low}, {p.high}]{' (log)' if p.log else ''}{step}"


def _contains(p: Param, value: Any) -> bool:
    if isinstance(p, CategoricalParam):
        return _member(value, p.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(p, IntParam):
        return isinstance(value, int) and p.low <= value <= p.high and (value - p.low) % p.step == 0
    if not (math.isfinite(value) and p.low <= value <= p.high):
        return False
    if p.step is None:
        return True
    k = (value - p.low) / p.step
    return abs(k - round(k)) < 1e-6


def _sample(p: Param, rng: np.random.Generator) -> Any:
    if isinstance(p, CategoricalParam):
        return p.choices[int(rng.integers(len(p.choices)))]
    if isinstance(p, IntParam):
        if p.log:  # as Optuna: log-uniform over [low - 0.5, high + 0.5], rounded
            x = math.exp(rng.uniform(math.log(p.low - 0.5), math.log(p.high + 0.5)))
            return int(min(max(round(x), p.low), p.high))
        return p.low + p.step * int(rng.integers((p.high - p.low) // p.step + 1))
    if p.log:
        return float(
            min(max(math.exp(rng.uniform(math.log(p.low), math.log(p.high))), p.low), p.high)
        )
    if p.step is not None:
        n = round((p.high - p.low) / p.step)
        return _grid_point(p, int(rng.integers(n + 1)))
    return float(rng.uniform(p.low, p.high))


def _grid_point(p: FloatParam, k: int) -> float:
    """``low + k * step`` as the decimal it stands for (0.3, not 0.30000000000000004)."""
    assert p.step is not None
    return float(Decimal(str(p.low)) + Decimal(str(p.step)) * k)


def _perturb(p: Param, value: Any, rng: np.random.Generator) -> Any:
    if isinstance(p, CategoricalParam):
        others = [c for c in p.choices if not _member(c, [value])]
        return others[int(rng.integers(len(others)))] if others else value

    def to(v: float) -> float:
        return math.log(v) if p.log else float(v)

    lo, hi = to(p.low), to(p.high)
    u = min(max(to(value), lo), hi) + rng.normal(0.0, 0.1 * (hi - lo))
    u = min(max(u, lo), hi)
    x = min(max(math.exp(u) if p.log else u, p.low), p.high)
    if isinstance(p, IntParam):
        new = p.low + p.step * round((x - p.low) / p.step)
        new = min(max(new, p.low), p.high)
        if new == value:  # always a change: one step up or down, within the range
            up = value + p.step <= p.high and (value - p.step < p.low or rng.random() < 0.5)
            new = value + p.step if up else value - p.step
        return int(new)
    if p.step is not None:
        n = round((p.high - p.low) / p.step)
        return _grid_point(p, min(max(round((x - p.low) / p.step), 0), n))
    return float(x)
