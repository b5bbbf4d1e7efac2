"""``TabularEvaluator``: NAS-Bench-201 answered from its table, with the benchmark's protocol.

Protocol (NATS-Bench, see the table's README): the fitness of a queried architecture is its
12-epoch validation accuracy; each query costs the simulated time of 12 training epochs (on
CIFAR-10 plus one validation epoch); the search reports the 200-epoch test accuracy of the
architecture with the best fitness.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from nas.architecture import Architecture
from nas.datasets import FILE_PARAM, NB201_DATASETS
from nas.datasets.table import MAX_LINE_CHARS, MAX_TABLE_BYTES, TableTooLarge, bounded_lines
from nas.errors import DatasetError
from nas.evaluators.base import Evaluator, EvaluatorConfig
from nas.paths import spec_path
from nas.spaces.base import SearchSpace
from nas.spaces.nb201 import Nb201Space
from nas.trial import TrialResult, TrialState

TABLE_ENV = "NAS_NB201_TABLE"
NUM_ARCHS = 5**6


if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem


class TabularConfig(EvaluatorConfig):
    table: str | None = Field(
        None,
        description=f"path of nb201_tabular.csv.gz; default: ${TABLE_ENV}, else the checkout's "
        "../shared/data/nb201 copy",
        json_schema_extra=FILE_PARAM,
    )
    epochs: Literal[12, 200] = Field(
        12, description="fitness epochs, 12 or 200 (the table's two); the protocol uses 12"
    )


@dataclass(frozen=True)
class Nb201Table:
    """The NAS-Bench-201 table as numpy columns, rows ordered by base-5 ``ops`` code (so a
    batch of architectures is one fancy-index, not a loop of lookups)."""

    index: np.ndarray  # official benchmark index of each row
    arch_str: tuple[str, ...]
    columns: Mapping[str, np.ndarray]

    @staticmethod
    def code(choices: Sequence[int]) -> int:
        code = 0
        for c in choices:
            code = code * 5 + int(c)
        return code

    def codes(self, archs: Sequence[Architecture]) -> np.ndarray:
        choices = np.asarray([a.choices for a in archs], dtype=np.int64).reshape(-1, 6)
        return choices @ (5 ** np.arange(5, -1, -1))

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise DatasetError(f"the NAS-Bench-201 table has no column {name!r}") from None


#: Where a source checkout finds the table without configuration: ``../shared/data`` beside
#: the repository (the project's data folder; see README).
CHECKOUT_TABLE = Path(__file__).resolve().parents[3] / "shared/data/nb201/nb201_tabular.csv.gz"


def default_table_path() -> Path | None:
    """The table used when a spec names none: ``$NAS_NB201_TABLE``, else the checkout's
    shared copy when it exists; ``None`` when neither is there."""
    configured = os.environ.get(TABLE_ENV)
    if configured:
        return Path(configured).expanduser()
    return CHECKOUT_TABLE if CHECKOUT_TABLE.is_file() else None


def resolve_table_path(table: str | None) -> Path:
    file = spec_path(table) if table else default_table_path()
    if file is None:
        raise DatasetError(
            f"evaluator.table: no NAS-Bench-201 table configured; set evaluator.table or "
            f"${TABLE_ENV} to the path of nb201_tabular.csv.gz"
        )
    if not file.is_file():
        raise DatasetError(f"evaluator.table: no such file {str(file)!r}")
    return file.resolve()


@lru_cache(maxsize=2)
def load_table(path: Path) -> Nb201Table:
    """Read the table once per process (15,625 rows, about 0.2 s). A file that is not the
    table is refused with what was expected, never with what it holds."""
    expected = (
        f"evaluator.table: expected the NAS-Bench-201 table (nb201_tabular.csv.gz, "
        f"{NUM_ARCHS} rows with ops, arch_str and index columns)"
    )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise TableTooLarge
        with opener(path, "rt", newline="") as handle:
            # Read in bounded lines (a file of one endless line was read whole: gigabytes),
            # and one row past the table's is enough to refuse a larger file.
            reader = csv.DictReader(bounded_lines(handle))
            rows = list(itertools.islice(reader, NUM_ARCHS + 1))
        if len(rows) != NUM_ARCHS or not {"ops", "arch_str", "index"} <= set(rows[0]):
            raise ValueError
        return _table(rows)
    except TableTooLarge:
        raise DatasetError(
            f"{expected}; this file is larger than any such table may be (at most "
            f"{MAX_TABLE_BYTES // 2**20} MiB of text, lines of at most "
            f"{MAX_LINE_CHARS // 2**20} MiB)"
        ) from None
    except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError, csv.Error):
        raise DatasetError(expected) from None


def _table(rows: list[dict[str, str]]) -> Nb201Table:
    """The table's columns in architecture order; ``ValueError`` for rows that are not one
    architecture each (a row of another width, an ``ops`` twice or out of range)."""
    if any(None in row or None in row.values() for row in rows):
        raise ValueError("a row has more or fewer cells than the header")
    order = np.full(NUM_ARCHS, -1, dtype=np.int64)
    for i, row in enumerate(rows):
        ops = row["ops"].zfill(6)
        if len(ops) != 6 or not all(ch in "01234" for ch in ops):
            raise ValueError(f"ops {row['ops']!r} is not an architecture")
        order[Nb201Table.code(int(ch) for ch in ops)] = i
    if (order < 0).any():
        raise ValueError("an architecture's ops appear twice")
    numeric = [k for k in rows[0] if k not in ("arch_str", "ops") and not k.startswith("edge")]
    columns = {
        k: np.array([float(rows[i][k]) if rows[i][k] != "" else np.nan for i in order])
        for k in numeric
    }
    return Nb201Table(
        index=columns.pop("index").astype(np.int64),
        arch_str=tuple(rows[i]["arch_str"] for i in order),
        columns=columns,
    )


class TabularEvaluator(Evaluator):
    """Answers NAS-Bench-201 queries from the table, a whole batch per call.

    Example:
        >>> ev = TabularEvaluator(dataset="nb201-cifar10", table="../shared/data/nb201/nb201_tabular.csv.gz")
        >>> ev.evaluate([Nb201Space().from_arch_str(BEST_C10)])[0].objective
    """

    name = "tabular"
    Config = TabularConfig
    metrics = ("val_accuracy", "params_M", "flops_M", "latency_s")
    metric_directions: ClassVar[Mapping[str, Literal["maximize", "minimize"]]] = {
        "val_accuracy": "maximize",
        "test_accuracy": "maximize",
        "params_M": "minimize",
        "flops_M": "minimize",
        "latency_s": "minimize",
    }
    batch_size = 256
    instant = True
    constraint_keys = ("max_params", "max_flops", "max_latency_ms")
    metric_notes: ClassVar[Mapping[str, str]] = {
        **Evaluator.metric_notes,
        "params_M": "parameters, millions, from the NAS-Bench-201 table (counted from the cell)",
        "flops_M": (
            "MACs (multiply-accumulates) per example, millions, from the NAS-Bench-201 table, "
            "which calls them FLOPs: half the FLOPs of the benchmark's network (16 channels, "
            "5 cells a stage) counted with multiplies and adds separately"
        ),
        "latency_s": (
            "seconds, the latency recorded in the NAS-Bench-201 table on the benchmark's own "
            "hardware, not measured on this machine"
        ),
        "nb201_index": "the architecture's index in NAS-Bench-201",
    }
    trains_networks = False
    simulates_cost = True
    #: The table's space: NAS-Bench-201's cell.
    space_name = Nb201Space.name

    @classmethod
    def data_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The table answers for the NAS-Bench-201 space on its own datasets only."""
        problems: list[SpecProblem] = []
        if spec.space.name != cls.space_name:
            problems.append(
                (
                    ("space", "name"),
                    (
                        f"the tabular evaluator needs space {cls.space_name}, got "
                        f"{spec.space.name!r}"
                    ),
                )
            )
        if spec.dataset.name not in NB201_DATASETS:
            tables = list(NB201_DATASETS)
            problems.append(
                (
                    ("dataset", "name"),
                    (
                        f"the tabular evaluator needs a NAS-Bench-201 dataset ({', '.join(tables)}), "
                        f"got {spec.dataset.name!r}"
                    ),
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
    ) -> TabularEvaluator:
        return cls(dataset=dataset, **params)

    @classmethod
    def check_files(
        cls,
        *,
        space: SearchSpace,
        params: Mapping[str, Any],
        dataset: str,
        dataset_params: Mapping[str, Any],
    ) -> None:
        """The table read and its columns found as the job will (once per process: it is
        cached), so a file that is not the NAS-Bench-201 table is a 422 at submit (the job
        was created and failed when it started)."""
        cls(dataset=dataset, **params)

    def __init__(self, *, dataset: str, table: str | None = None, epochs: int = 12) -> None:
        if dataset not in NB201_DATASETS:
            raise DatasetError(
                f"dataset.name: the tabular evaluator needs a NAS-Bench-201 dataset "
                f"({', '.join(NB201_DATASETS)}), got {dataset!r}"
            )
        if epochs not in (12, 200):
            raise DatasetError(f"evaluator.epochs: the table has 12 and 200 epochs, got {epochs}")
        self.dataset = dataset
        self.prefix = NB201_DATASETS[dataset]
        self.space = Nb201Space()
        self.table = load_table(resolve_table_path(table))
        p = self.prefix
        self._fitness = self.table.column(f"{p}_val{epochs}")
        per_epoch = self.table.column(f"{p}_train_time200_s") / 200.0
        self._cost = per_epoch * epochs
        if p == "c10":  # the CIFAR-10 protocol also pays one validation epoch
            self._cost = self._cost + self.table.column("c10valid_valid_per_epoch_time_s")
        self._test = self.table.column(f"{p}_test200")
        self._params = self.table.column(f"{p}_params_analytic_M")
        self._flops = self.table.column(f"{p}_flops_M")
        self._latency = self.table.column(f"{p}_latency_s")

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        for arch in archs:
            self.space.validate(arch)
        codes = self.table.codes(archs)
        fitness, cost = self._fitness[codes], self._cost[codes]
        params, flops, latency = self._params[codes], self._flops[codes], self._latency[codes]
        return [
            TrialResult(
                TrialState.COMPLETE,
                objective=float(fitness[i]),
                metrics={
                    "val_accuracy": float(fitness[i]),
                    "params_M": float(params[i]),
                    "flops_M": float(flops[i]),
                    "latency_s": float(latency[i]),
                },
                cost_s=float(cost[i]),
                simulated=True,
            )
            for i in range(len(codes))
        ]

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """From the table: parameters (analytic count), FLOPs and the recorded latency, in
        units (not millions, not seconds). FLOPs count a multiply and an add apart, as
        ``standalone`` does (torch's counter), so a ``max_flops`` means the same network
        size on both: twice the table's ``flops_M``, which counts multiply-accumulates (the
        network built from the cell counts exactly twice it); the limit let networks of up
        to twice the size through here."""
        for arch in archs:
            self.space.validate(arch)
        codes = self.table.codes(archs)
        columns = {
            "params": self._params * 1e6,
            "flops": self._flops * 2e6,
            "latency_ms": self._latency * 1e3,
        }
        return [{f: float(columns[f][code]) for f in figures} for code in codes]

    def final_metrics(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        code = self.table.codes([arch])[0]
        return {
            "test_accuracy": float(self._test[code]),
            "nb201_index": int(self.table.index[code]),
        }

    def index_of(self, arch: Architecture) -> int:
        """The official NAS-Bench-201 index."""
        self.space.validate(arch)
        return int(self.table.index[self.table.codes([arch])[0]])
