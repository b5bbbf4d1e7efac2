"""``TableEvaluator``: the user's own benchmark table answers queries, with the protocol
the spec sets.

The ``table`` space (``nas.spaces.table``) finds an architecture's row; this evaluator reads
that row's columns: ``fitness`` is the objective the search sees (reported as a metric under
its column name), ``metrics`` are further columns reported with it, ``cost`` the columns
whose weighted sum is the query's simulated cost (``budget.simulated_seconds`` spends it),
``heldout`` the figure reported for the architecture a search returns (``final_metrics``),
never shown to a controller. A combination no row holds is infeasible: a PRUNED trial at no
cost, as a constraint's; a row whose fitness cell is empty is a failed evaluation (FAIL, at
its cost).

The NAS-Bench-201 protocol on its table as a plain CSV (``examples/table-nb201-cifar10.yaml``):
fitness ``c10_val12``, held-out ``c10_test200``, cost ``0.06 * c10_train_time200_s +
c10valid_valid_per_epoch_time_s`` (12 of 200 training epochs and one validation epoch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from nas.architecture import Architecture
from nas.constraints import CONSTRAINTS
from nas.datasets.table import NotANumber, data_row, read_table
from nas.errors import AT_FIELD, DatasetError
from nas.evaluators.base import Evaluator, EvaluatorConfig
from nas.spaces.base import SearchSpace
from nas.spaces.table import TableSpace
from nas.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem

__all__ = ["NOT_IN_TABLE", "TableEvaluator", "TableEvaluatorConfig"]

#: Why a combination of choices is infeasible: no row of the table holds it.
NOT_IN_TABLE = "not in the table"


class ScaledColumn(BaseModel):
    """A numeric column times a factor."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = Field(min_length=1)
    scale: float = Field(1.0, ge=0, allow_inf_nan=False, description="the column's factor")


class ConstraintColumns(BaseModel):
    """The columns ``objective.constraints`` read (figure = scale * column)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    params: ScaledColumn | None = Field(None, description="parameters (max_params)")
    flops: ScaledColumn | None = Field(None, description="FLOPs of one example (max_flops)")
    latency_ms: ScaledColumn | None = Field(
        None, description="latency, milliseconds (max_latency_ms)"
    )


_HELDOUT_APART = (
    "the held-out column {!r} is never shown to the search: it cannot be the fitness or a metric"
)


#: What the evaluator reports under its own name: a column of that name would overwrite it.
ROW_METRIC = "table_row"


def _not_the_row(column: str) -> str:
    """A reported column is not named as the figure the evaluator reports itself (the row's
    number, ``table_row``), which it would overwrite."""
    if column == ROW_METRIC:
        raise ValueError(
            f"{ROW_METRIC!r} is the name the evaluator reports each architecture's row number "
            "under; rename that column of the table"
        )
    return column


def _not_fitness_or_heldout(column: str, info: ValidationInfo) -> str:
    """A metric column is neither the fitness (reported already) nor the held-out column
    (never shown to the search); refused at ``metrics.<i>``."""
    _not_the_row(column)
    if column == info.data.get("fitness"):
        raise ValueError(f"{column!r} is the fitness, reported already; drop it from metrics")
    if column == info.data.get("heldout"):
        raise ValueError(_HELDOUT_APART.format(column))
    return column


class TableEvaluatorConfig(EvaluatorConfig):
    fitness: str = Field(
        "val_accuracy",
        min_length=1,
        description="the column the search optimises (reported under its name: "
        "objective.metric names it)",
    )
    heldout: str | None = Field(
        None,
        min_length=1,
        description="the column reported for the search's best (final_metrics), never shown "
        "to the search",
    )
    cost: list[ScaledColumn] = Field(
        default_factory=list,
        max_length=16,
        description="a query's simulated cost in seconds: the sum of scale * column "
        "(budget.simulated_seconds spends it); none: queries cost nothing",
    )
    metrics: list[Annotated[str, AfterValidator(_not_fitness_or_heldout)]] = Field(
        default_factory=list, max_length=64, description="further columns reported"
    )
    figures: ConstraintColumns = Field(
        default_factory=ConstraintColumns,
        description="the columns objective.constraints read: params, flops, latency_ms",
    )

    @field_validator("fitness")
    @classmethod
    def _fitness_not_the_row(cls, value: str) -> str:
        return _not_the_row(value)

    @field_validator("heldout")
    @classmethod
    def _heldout_not_fitness(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _not_the_row(value)
        if value is not None and value == info.data.get("fitness"):
            raise ValueError(_HELDOUT_APART.format(value))
        return value

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if any(not m for m in value):
            raise ValueError("a metric names a column (an empty name is none)")
        if len(set(value)) != len(value):
            raise ValueError("each column may be reported once")
        return value

    @property
    def reported(self) -> tuple[str, ...]:
        return (self.fitness, *self.metrics)


class TableEvaluator(Evaluator):
    """Answers queries from the ``table`` space's table, a whole batch per call.

    Example:
        >>> space = TableSpace(path="bench.csv", decisions=["optimizer", "width"])
        >>> ev = TableEvaluator(space=space, fitness="val_acc", heldout="test_acc",
        ...                     cost=[{"column": "train_s"}])
        >>> ev.evaluate([space.sample(np.random.default_rng(0))])[0].objective
    """

    name = "table"
    Config = TableEvaluatorConfig
    #: The metrics are the columns a spec names (``spec_metrics``; an instance's ``metrics``).
    metrics: ClassVar[tuple[str, ...]] = ()
    batch_size = 256
    instant = True
    constraint_keys = ("max_params", "max_flops", "max_latency_ms")
    metric_notes: ClassVar[Mapping[str, str]] = {
        **Evaluator.metric_notes,
        ROW_METRIC: "the architecture's row in the benchmark table (0 = the first data row)",
    }
    trains_networks = False
    simulates_cost = True
    #: The space whose table this evaluator reads.
    space_name = TableSpace.name

    # --- the spec ------------------------------------------------------------------------
    @classmethod
    def spec_metrics(cls, spec: JobSpec) -> tuple[str, ...]:
        return _config(spec).reported

    @classmethod
    def listed_metrics(
        cls, params: Mapping[str, Any], dataset: str | None = None
    ) -> tuple[str, ...]:
        """The columns reported, and the constraint figures a pruned trial holds: those with
        a column in ``figures`` (a job without them offered params, flops and latency_ms,
        which no trial of it holds)."""
        config = TableEvaluatorConfig.model_validate(params)
        figures = [f for f in CONSTRAINTS.values() if getattr(config.figures, f) is not None]
        return (*config.reported, *figures)

    @classmethod
    def default_objective(
        cls, dataset: str, params: Mapping[str, Any]
    ) -> tuple[str, Literal["maximize", "minimize"]]:
        """The table's ``fitness`` column, maximized (a fitness to minimise says so in
        ``objective.direction``)."""
        fitness = params.get("fitness")
        return (fitness if isinstance(fitness, str) and fitness else "val_accuracy"), "maximize"

    @classmethod
    def spec_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The base checks with the columns the spec names, plus: a constraint needs its
        column (``evaluator.figures``), a simulated-time budget needs ``evaluator.cost``."""
        config = _config(spec)
        decisions = spec.space.params.get("decisions") if spec.space.name == "table" else None
        columns = {
            d if isinstance(d, str) else d.get("column") if isinstance(d, Mapping) else None
            for d in decisions or ()
        }
        # The columns first: a fitness the table lacks is the problem, more than an
        # objective.metric that names another column; and a fitness that is a decision
        # column is, not the objective.metric whose valid list would offer it.
        base = super().spec_problems(spec)
        missing = _missing_columns(spec, config)
        if config.fitness in columns:
            base = [p for p in base if p[0][:2] not in _OBJECTIVE_AT]
        elif missing:
            # An objective metric not reported is said with the reported columns the table
            # has (a misspelt fitness was offered as the valid one, for an objective naming
            # the table's real column), and, for a column of results, where to name it.
            base = [_unreported(spec, config, columns, p) for p in base]
        problems = [*missing, *base]
        constraints = spec.objective.constraints
        for key in constraints.limits() if constraints is not None else {}:
            figure = CONSTRAINTS[key]
            if getattr(config.figures, figure) is None:
                problems.append(
                    (
                        ("objective", "constraints", key),
                        (
                            f"{key} needs evaluator.figures.{figure}: the column of the table "
                            "that holds it (and its scale)"
                        ),
                    )
                )
        for field, column in (("fitness", config.fitness), ("heldout", config.heldout)):
            if column is not None and column in columns:
                problems.append(
                    (
                        ("evaluator", field),
                        (
                            f"{column!r} is a decision column (space.decisions): the {field} "
                            "must be a column of results, e.g. a validation accuracy"
                        ),
                    )
                )
        if spec.budget.simulated_seconds is not None and not config.cost:
            problems.append(
                (
                    ("budget", "simulated_seconds"),
                    (
                        "queries cost nothing without evaluator.cost (the columns whose sum is "
                        "a query's simulated seconds); set it or use budget.trials"
                    ),
                )
            )
        elif spec.budget.simulated_seconds is not None and not any(p.scale for p in config.cost):
            problems.append(
                (
                    ("evaluator", "cost"),
                    (
                        "every cost column has scale 0, so queries cost nothing and "
                        "budget.simulated_seconds is never reached; give a column a scale "
                        "above 0, or use budget.trials"
                    ),
                )
            )
        return problems

    @classmethod
    def data_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The table answers for the ``table`` space on the ``table`` dataset only."""
        problems: list[SpecProblem] = []
        if spec.space.name != cls.space_name:
            problems.append(
                (
                    ("space", "name"),
                    f"the table evaluator needs space {cls.space_name}, got {spec.space.name!r}",
                )
            )
        if spec.dataset.name != "table":
            problems.append(
                (
                    ("dataset", "name"),
                    f"the table evaluator needs dataset table, got {spec.dataset.name!r}",
                )
            )
        return problems

    @classmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> TableEvaluator:
        if not isinstance(space, TableSpace):
            raise DatasetError(
                f"space.name: the table evaluator needs space table, got {space.name!r}"
            )
        return cls(space=space, **params)

    @classmethod
    def check_files(
        cls,
        *,
        space: SearchSpace,
        params: Mapping[str, Any],
        dataset: str,
        dataset_params: Mapping[str, Any],
    ) -> None:
        """The table's columns this evaluator reads (building it reads them; the table is
        read once per process)."""
        cls.from_spec(dataset="table", dataset_params={}, space=space, params=params, seed=0)

    # --- answering -----------------------------------------------------------------------
    def __init__(
        self,
        *,
        space: TableSpace,
        fitness: str = "val_accuracy",
        heldout: str | None = None,
        cost: Sequence[ScaledColumn | Mapping[str, Any]] = (),
        metrics: Sequence[str] = (),
        figures: ConstraintColumns | Mapping[str, Any] | None = None,
    ) -> None:
        config = TableEvaluatorConfig.model_validate(
            {
                "fitness": fitness,
                "heldout": heldout,
                "cost": [c.model_dump() if isinstance(c, BaseModel) else dict(c) for c in cost],
                "metrics": list(metrics),
                "figures": (
                    figures.model_dump() if isinstance(figures, BaseModel) else dict(figures or {})
                ),
            }
        )
        self.space = space
        self.fitness = config.fitness
        self.heldout = config.heldout
        #: The metrics this evaluator reports: the fitness column, then ``metrics``.
        self.metrics = config.reported  # type: ignore[misc]
        space.decisions()  # read the table, check the decision columns
        self._columns = {
            name: self._numeric(
                name, "evaluator.fitness" if i == 0 else f"evaluator.metrics.{i - 1}"
            )
            for i, name in enumerate(self.metrics)
        }
        self._heldout = (
            None if self.heldout is None else self._numeric(self.heldout, "evaluator.heldout")
        )
        self._cost = np.zeros(space.table.rows)
        for i, part in enumerate(config.cost):
            values = self._numeric(part.column, f"evaluator.cost.{i}")
            bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
            if bad.size:
                row = int(bad[0])
                found = "empty" if np.isnan(values[row]) else "negative"
                raise DatasetError(
                    f"evaluator.cost.{i}: column {part.column!r} must hold a non-negative number "
                    f"in every row; {data_row(row)} is {found}"
                )
            scaled_cost = _scaled(part, values, f"evaluator.cost.{i}.scale")
            with np.errstate(over="ignore"):  # an overflowing sum is refused below
                self._cost = self._cost + scaled_cost
        if not np.all(np.isfinite(self._cost)):
            row = int(np.flatnonzero(~np.isfinite(self._cost))[0])
            raise DatasetError(
                "evaluator.cost: the sum of scale * column is not a finite number in "
                f"{data_row(row)}; use smaller scales"
            )
        self._figures: dict[str, np.ndarray] = {}
        for figure in CONSTRAINTS.values():
            scaled = getattr(config.figures, figure)
            if scaled is not None:
                values = self._numeric(scaled.column, f"evaluator.figures.{figure}")
                self._figures[figure] = _scaled(scaled, values, f"evaluator.figures.{figure}.scale")

    def _numeric(self, column: str, where: str) -> np.ndarray:
        """The column as floats, NaN for an empty cell (a missing value); a cell that is not
        a finite number (text, ``nan``, ``inf``) is refused by its data row, not quoted."""
        try:
            return self.space.table.numbers(column)
        except KeyError:
            raise DatasetError(f"{where}: the table has no column {column!r}") from None
        except NotANumber as exc:
            raise DatasetError(
                f"{where}: column {column!r} must be numeric (a finite number, or an empty "
                f"cell for a missing value, in every row); {exc}"
            ) from None

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        results = []
        for row in self.space.rows_of(archs):
            if row is None:
                results.append(TrialResult(TrialState.PRUNED, cost_s=0.0, error=NOT_IN_TABLE))
                continue
            cost = float(self._cost[row])
            value = float(self._columns[self.fitness][row])
            if math.isnan(value):
                results.append(
                    TrialResult(
                        TrialState.FAIL,
                        cost_s=cost,
                        simulated=True,
                        error=f"the table has no {self.fitness} for this row (empty cell)",
                    )
                )
                continue
            metrics = {
                name: float(column[row])
                for name, column in self._columns.items()
                if not math.isnan(column[row])
            }
            results.append(
                TrialResult(
                    TrialState.COMPLETE,
                    objective=value,
                    metrics=metrics,
                    cost_s=cost,
                    simulated=True,
                )
            )
        return results

    def check_constraints(
        self, archs: Sequence[Architecture], constraints: Mapping[str, float | None]
    ) -> list[tuple[str | None, dict[str, float]]]:
        """The base check, with a combination the table does not hold infeasible as such."""
        checked = super().check_constraints(archs, constraints)
        rows = self.space.rows_of(archs)
        return [
            (NOT_IN_TABLE, {}) if row is None else c for row, c in zip(rows, checked, strict=True)
        ]

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """From the columns of ``evaluator.figures`` (scaled); NaN where the table has no
        row or no value (an unknown figure violates its constraint)."""
        missing = [f for f in figures if f not in self._figures]
        if missing:
            raise DatasetError(f"evaluator.figures: {', '.join(missing)} not set")
        out = []
        for row in self.space.rows_of(archs):
            out.append(
                {f: math.nan if row is None else float(self._figures[f][row]) for f in figures}
            )
        return out

    def final_metrics(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        """The held-out column of the architecture's row (when set and not empty) and the
        row's number."""
        row = self.space.row_of(arch)
        if row is None:
            return {}
        out: dict[str, float] = {ROW_METRIC: row}
        if self._heldout is not None and not math.isnan(self._heldout[row]):
            out[self.heldout] = float(self._heldout[row])  # type: ignore[index]
        return out


def _scaled(part: ScaledColumn, values: np.ndarray, where: str) -> np.ndarray:
    """``part.scale * values``, refused at ``where`` (the scale) where a product overflows
    to infinity: a cost or figure no JSON answer carries, and a cost that would spend any
    simulated budget at once. An empty cell stays NaN (a missing value)."""
    with np.errstate(over="ignore"):
        scaled = part.scale * values
    overflow = np.flatnonzero(np.isinf(scaled))
    if len(overflow):
        raise DatasetError(
            f"{where}: {part.scale:g} * column {part.column!r} is not a finite number in "
            f"{data_row(int(overflow[0]))}; use a smaller scale"
        )
    return scaled


_OBJECTIVE_AT = (("objective", "metric"), ("objective", "metrics"))


def _objective_metric(spec: JobSpec, loc: tuple[Any, ...]) -> str | None:
    """The objective metric a problem at ``loc`` is about (``None``: another problem)."""
    if loc == ("objective", "metric"):
        return spec.objective.metric
    if loc[:2] == ("objective", "metrics") and len(loc) == 3 and spec.objective.metrics:
        return spec.objective.metrics[loc[2]]
    return None


def _unreported(
    spec: JobSpec, config: TableEvaluatorConfig, decisions: set[Any], problem: SpecProblem
) -> SpecProblem:
    """``problem`` as said when some column the spec names is missing from the table: an
    objective metric's valid list holds only the reported columns the table has, and a
    metric naming a column of results says to report it."""
    loc, _ = problem
    metric = _objective_metric(spec, loc)
    if metric is None:
        return problem
    header = _header(spec)
    valid = [c for c in config.reported if c in header]
    msg = f"evaluator 'table' does not report {metric!r}"
    if metric in header and metric not in decisions and metric != config.heldout:
        msg += ", a column of the table: name it as evaluator.fitness or in evaluator.metrics"
    return loc, msg + (f"; valid: {', '.join(valid)}" if valid else "")


def _header(spec: JobSpec) -> set[str]:
    """The table's column names (none when it cannot be read: said at space.path)."""
    path = spec.space.params.get("path") if spec.space.name == TableSpace.name else None
    try:
        return set(read_table(path, where="space.path").header) if isinstance(path, str) else set()
    except DatasetError:
        return set()


def _missing_columns(spec: JobSpec, config: TableEvaluatorConfig) -> list[SpecProblem]:
    """Each column the evaluator or the space's decisions name that the space's table lacks,
    at the field naming it (the table is read as the space reads it, once per process; a
    service has confined its path by then): all in one answer (a missing decision column
    was said only once the evaluator's were fixed). A table that cannot be read is a problem
    at its own field."""
    path = spec.space.params.get("path") if spec.space.name == TableSpace.name else None
    if not isinstance(path, str) or not path:
        return []
    try:
        header = set(read_table(path, where="space.path").header)
    except DatasetError as exc:
        at = AT_FIELD.fullmatch(str(exc))
        return [(("space", "path"), at.group(2) if at else str(exc))]
    named: list[tuple[tuple[Any, ...], str]] = []
    decisions = spec.space.params.get("decisions")
    for i, decision in enumerate(decisions if isinstance(decisions, list) else []):
        column = decision.get("column") if isinstance(decision, dict) else decision
        column = getattr(column, "column", column)  # a TableDecision, in a spec built in Python
        if isinstance(column, str):
            named.append((("space", "decisions", i), column))
    named.append((("evaluator", "fitness"), config.fitness))
    if config.heldout is not None:
        named.append((("evaluator", "heldout"), config.heldout))
    named += [(("evaluator", "metrics", i), m) for i, m in enumerate(config.metrics)]
    named += [(("evaluator", "cost", i), c.column) for i, c in enumerate(config.cost)]
    for figure in CONSTRAINTS.values():
        scaled = getattr(config.figures, figure)
        if scaled is not None:
            named.append((("evaluator", "figures", figure), scaled.column))
    return [
        (loc, f"the table has no column {column!r}")
        for loc, column in named
        if column not in header
    ]


def _config(spec: JobSpec) -> TableEvaluatorConfig:
    """The spec's evaluator parameters (validated before the cross-component checks)."""
    return TableEvaluatorConfig.model_validate(spec.evaluator.params)
