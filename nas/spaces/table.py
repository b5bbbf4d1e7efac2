"""``table``: the space of the user's own benchmark table (``nas.datasets.table``).

Each decision is a column of the table (CSV or Parquet); its choices are the column's distinct values (as
text), sorted (by number when every value is a number), unless the spec gives ``choices``:
an explicit order, which must be exactly the column's distinct values. Every row of the
table is one architecture; a combination of choices that no row holds is not in the table
(``row_of`` answers ``None``; the ``table`` evaluator prunes it at no cost).

The file is read when the space is first asked for its decisions, once per process
(``nas.datasets.table.read_table``). The space builds no network: it is searched, not
trained or exported as a model.

Example (``bench.csv`` with columns optimizer, width, accuracy, seconds):
    >>> space = TableSpace(path="bench.csv", decisions=["optimizer", {"column": "width",
    ...                    "choices": ["64", "32", "16"]}])
    >>> space.describe(space.sample(np.random.default_rng(0)))
    {'optimizer': 'adam', 'width': '32'}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property, lru_cache
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from nas.architecture import Architecture
from nas.datasets import FILE_PARAM
from nas.datasets.table import CsvTable, data_row, read_table
from nas.errors import DatasetError
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

__all__ = ["TableDecision", "TableSpace", "TableSpaceConfig"]


def _as_text(value: Any) -> Any:
    """A number written in a YAML spec (``16``) names the cell ``16``; a boolean names no
    one cell (``True``, ``true``, ``1``?): refused, saying to quote the cell as written (it
    was pydantic's bare 'Input should be a valid string')."""
    if isinstance(value, bool):
        raise ValueError(  # noqa: TRY004 (pydantic reports a ValueError at the field)
            f"{str(value).lower()} is a boolean, not a cell of the table: write the cell as "
            f"the column holds it, quoted (e.g. '{value}')"
        )
    if isinstance(value, int | float):
        return str(value)
    return value


class TableDecision(BaseModel):
    """One decision: a column of the table, with its choices in an explicit order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = Field(min_length=1, description="the column of the table")
    choices: list[str] | None = Field(
        None,
        min_length=1,
        description="the column's distinct values in the order the search sees them "
        "(exactly those values, each once); default: sorted",
    )

    @field_validator("choices", mode="before")
    @classmethod
    def _cells(cls, value: Any) -> Any:
        return [_as_text(v) for v in value] if isinstance(value, list) else value

    @field_validator("choices")
    @classmethod
    def _once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each choice may appear once")
        return value


def _one_decision(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A decision as one of its two forms: the union's errors are those of the form the spec
    wrote, at its fields (``decisions.<i>.choices``), not under pydantic's member names
    (``decisions.<i>.TableDecision.choices`` beside ``decisions.<i>.str``)."""
    try:
        return handler(value)
    except ValidationError as exc:
        member = "TableDecision" if isinstance(value, dict) else None
        errors = [
            InitErrorDetails(
                type=e["type"], loc=tuple(e["loc"][1:]), input=e["input"], ctx=e.get("ctx", {})
            )
            for e in exc.errors()
            if member is not None and e["loc"][:1] == (member,)
        ]
        if not errors:
            raise PydanticCustomError(
                "decision_type", "a decision is a column name or {column, choices}"
            ) from None
        raise ValidationError.from_exception_data(exc.title, errors) from None


#: A decision as the spec writes it: a column name, or ``{column, choices}``.
DecisionItem = Annotated[str | TableDecision, WrapValidator(_one_decision)]


class TableSpaceConfig(SpaceConfig):
    path: str = Field(
        min_length=1,
        description="the benchmark table: a CSV file (optionally gzip-compressed) or a Parquet "
        "file, with one column per decision and columns for metrics and cost",
        json_schema_extra=FILE_PARAM,
    )
    decisions: list[DecisionItem] = Field(
        min_length=1,
        max_length=64,
        description="the decision columns, in order: a column name, or {column, choices}",
    )

    @field_validator("decisions")
    @classmethod
    def _distinct(cls, value: list[str | TableDecision]) -> list[str | TableDecision]:
        columns = [d if isinstance(d, str) else d.column for d in value]
        if any(not c for c in columns):
            raise ValueError("a decision names a column (an empty name is none)")
        if len(set(columns)) != len(columns):
            raise ValueError("each column may be a decision once")
        return value


class TableSpace(SearchSpace):
    """The combinations of the decision columns' values; the rows of the table are the
    architectures it holds.

    Example:
        >>> space = TableSpace(path="nb201.csv", decisions=[f"edge{i}" for i in range(6)])
        >>> space.row_of(space.sample(np.random.default_rng(0)))  # the row, None if absent
    """

    name = "table"
    version = 1
    Config = TableSpaceConfig
    # Searched from its table: nothing to train, no network to export.
    trainable = False
    has_supernet = False
    network_class = None

    def __init__(
        self, *, path: str, decisions: Sequence[str | TableDecision | dict[str, Any]]
    ) -> None:
        self.path = path
        self._given: list[tuple[str, tuple[str, ...] | None]] = []
        for decision in decisions:
            if isinstance(decision, str):
                self._given.append((decision, None))
                continue
            if isinstance(decision, dict):
                decision = TableDecision.model_validate(decision)
            choices = None if decision.choices is None else tuple(decision.choices)
            self._given.append((decision.column, choices))

    @property
    def config(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "decisions": [
                column if choices is None else {"column": column, "choices": list(choices)}
                for column, choices in self._given
            ],
        }

    def pinned_config(self) -> dict[str, Any]:
        """Every decision with its choices, as read from the table now: an architecture's
        choices are indices into them, and a value added to a column later would move them
        (a finished job's exports and drawings, and warm starts from it, then named other
        rows). With them written out, a table that no longer holds exactly those values is
        refused (``space.decisions.<i>.choices``) instead."""
        return {
            "path": self.path,
            "decisions": [{"column": d.name, "choices": list(d.choices)} for d in self.decisions()],
        }

    # --- the table ---------------------------------------------------------------------
    @property
    def table(self) -> CsvTable:
        """The table (read once per process)."""
        return read_table(self.path, where="space.path")

    @cached_property
    def _index(self) -> tuple[tuple[Decision, ...], dict[tuple[int, ...], int]]:
        return _table_index(self.table, tuple(self._given))

    def decisions(self) -> list[Decision]:
        return list(self._index[0])

    def row_of(self, arch: Architecture) -> int | None:
        """The table's row (0 = the first data row) of ``arch``; ``None`` when no row holds
        that combination."""
        self.validate(arch)
        return self._index[1].get(tuple(arch.choices))

    def holds(self, arch: Architecture) -> bool:
        """Only a combination that a row of the table holds."""
        return self.row_of(arch) is not None

    def rows_of(self, archs: Sequence[Architecture]) -> list[int | None]:
        """``row_of`` of each architecture."""
        return [self.row_of(arch) for arch in archs]

    @property
    def rows(self) -> int:
        """How many architectures the table holds (its data rows)."""
        return len(self._index[1])

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """``{column: value}`` of each decision."""
        return super().describe(arch)


@lru_cache(maxsize=8)
def _table_index(
    table: CsvTable, given: tuple[tuple[str, tuple[str, ...] | None], ...]
) -> tuple[tuple[Decision, ...], dict[tuple[int, ...], int]]:
    """The decisions and the row of each combination, once per table read and per
    decisions (a ``DatasetError`` naming the decision when a column does not fit)."""
    decisions: list[Decision] = []
    codes = np.empty((table.rows, len(given)), dtype=np.int64)
    for i, (column, choices) in enumerate(given):
        where = f"space.decisions.{i}"
        try:
            cells = np.char.strip(table.text(column))  # a cell "adam " is "adam"
        except KeyError:
            raise DatasetError(f"{where}: the table has no column {column!r}") from None
        listed = cells.tolist()
        # (a NaN, Parquet's or the text "nan", was a choice "nan" that sorted the column's
        # numbers as text: 16, 32, 64, 8, nan; a missing value, as an empty cell is)
        blank = next(
            (r for r, cell in enumerate(listed) if not cell or cell.lower() == "nan"), None
        )
        if blank is not None:
            raise DatasetError(  # (no cell repeated: the file may not be the caller's)
                f"{where}: column {column!r} must hold a value in every row (a decision "
                f"column has no empty or not-a-number cells: {data_row(blank)})"
            )
        distinct, inverse = np.unique(cells, return_inverse=True)
        values = [str(v) for v in distinct.tolist()]
        if choices is None:
            order = _sorted(values)
        else:
            if len(choices) != len(values) or set(choices) != set(values):
                # (named: a YAML 0.00001 read as 1e-05, against the file's text 0.00001)
                # (the caller's own choices only: no cell of the file is repeated)
                known = set(values)
                absent = [c for c in choices if c not in known]
                untold = len(known - set(choices))
                raise DatasetError(
                    f"{where}.choices: must be exactly the distinct values of column "
                    f"{column!r}, each once, as the file writes them"
                    + (f"; not in the column: {', '.join(map(repr, absent))}" if absent else "")
                    + (f"; {untold} of its values not given" if untold else "")
                    + ("; a repeated choice" if len(set(choices)) != len(choices) else "")
                    + " (write a number as text, quoted, where YAML would change it: '0.00001')"
                )
            order = list(choices)
        position = {value: k for k, value in enumerate(order)}
        remap = np.array([position[v] for v in values], dtype=np.int64)
        codes[:, i] = remap[inverse.reshape(-1)]
        decisions.append(Decision(column, tuple(order), "op"))
    rows: dict[tuple[int, ...], int] = {}
    for r, code in enumerate(codes.tolist()):
        first = rows.setdefault(tuple(code), r)
        if first != r:  # (the rows were not named: an export of several seeds has many)
            raise DatasetError(
                "space.decisions: expected one row per combination of the decision columns' "
                f"values; {data_row(first, r)} have the same values in every decision "
                "column (one row per combination: average a benchmark's seeds first)"
            )
    return tuple(decisions), rows


def _sorted(values: list[str]) -> list[str]:
    """By number when every value is a finite number (``8 < 16``), else as text."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return sorted(values)
    if not all(math.isfinite(n) for n in numbers):
        return sorted(values)
    return [v for _, v in sorted(zip(numbers, values, strict=True))]
