"""``table``: the user's own benchmark table (a tabular or surrogate benchmark, or results
exported from another tool), searched by the ``table`` space and answered by the ``table``
evaluator. The dataset has no arrays and no parameters: the file is the space's
(``space.path``), its protocol the evaluator's.

``read_table`` reads a CSV file (optionally gzip-compressed) or a Parquet file once per
process: a header row (Parquet: the schema) naming the columns, then one row per evaluated
configuration. A Parquet file's cells are read as the text their values print as (``16``,
``0.5``, ``adam``; a null is an empty cell), so a decision's choices are its column's distinct
values as text, as from a CSV. Errors say what the file must be, never what it holds (no cell
values, row counts or bytes): a service must not tell a client about the files it reads. A
table over ``MAX_TABLE_BYTES`` or ``MAX_TABLE_CELLS`` is refused before it is read whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from nas.datasets.base import DatasetEntry
from nas.errors import DatasetError
from nas.paths import spec_path

__all__ = [
    "ENTRIES",
    "CsvTable",
    "NotANumber",
    "TableDatasetConfig",
    "TableTooLarge",
    "bounded_lines",
    "read_table",
]

#: The largest table read: its text (the file on disk, and as read once decompressed; a
#: column's cells counted at its longest cell's width, as they are held) and its cells
#: (rows x columns, header excluded). NAS-Bench-201 as a CSV (15,625 rows of 52 columns) is
#: 0.8 million cells. A larger file is refused before it is read whole (the size on disk at
#: once; the text and cells as they are read, stopping at the limit): an 18 MB .csv.gz of 8
#: million rows took 34 s and 2.9 GB of a server's memory to refuse, now 2 s and 0.2 GB.
MAX_TABLE_BYTES = 64 * 2**20
MAX_TABLE_CELLS = 2_000_000
#: The longest line of a CSV table (its row is parsed whole before its cells are counted).
MAX_LINE_CHARS = 2**20
TOO_LARGE = (
    f"the table is larger than a table may be: at most {MAX_TABLE_BYTES // 2**20} MiB of text "
    f"(uncompressed; lines of at most {MAX_LINE_CHARS // 2**20} MiB) and "
    f"{MAX_TABLE_CELLS:,} cells (rows x columns)"
)
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
EXPECTED = (
    "expected a CSV file (UTF-8, optionally gzip-compressed) or a Parquet file: a header row "
    "(Parquet: columns) naming each column once, then one row per configuration with one cell "
    "per column"
)


class TableDatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, eq=False)
class CsvTable:
    """A CSV table as text columns (numpy string arrays, one per header name, in file order);
    ``numbers`` converts a column to floats once (an empty cell is NaN: a missing value)."""

    header: tuple[str, ...]
    columns: dict[str, np.ndarray]
    _numbers: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))

    def text(self, column: str) -> np.ndarray:
        """The column's cells as text (``KeyError`` when there is no such column)."""
        return self.columns[column]

    def numbers(self, column: str) -> np.ndarray:
        """The column's cells as float64, an empty cell (a missing value) NaN; ``KeyError``
        when there is no such column, ``NotANumber`` (its data row) when a cell is not a
        finite number: ``nan`` and ``inf`` are refused as text is, so that a missing value is
        written one way (an empty cell) and no result is one that JSON cannot carry."""
        if column not in self._numbers:
            cells = self.columns[column]
            values = np.empty(len(cells), dtype=np.float64)
            for i, cell in enumerate(cells.tolist()):
                text = cell.strip()
                if not text:
                    values[i] = math.nan
                    continue
                try:
                    values[i] = number = float(text)
                except ValueError:
                    raise NotANumber(i) from None
                if not math.isfinite(number):
                    raise NotANumber(i)
            values.setflags(write=False)
            self._numbers[column] = values
        return self._numbers[column]


def data_row(*indices: int) -> str:
    """How an error names a table's rows (index 0 = the first below the header): "data
    row 1" for the first, "data rows 1 and 3", in every message alike (some said "data row
    0" for the first, others "data row 1"). A result's ``table_row`` counts from 0."""
    numbers = [str(i + 1) for i in indices]
    if len(numbers) == 1:
        return f"data row {numbers[0]}"
    return f"data rows {', '.join(numbers[:-1])} and {numbers[-1]}"


class NotANumber(ValueError):
    """A cell of a numeric column is not a finite number; ``row`` is its data row (0 = the
    first)."""

    def __init__(self, row: int) -> None:
        super().__init__(f"{data_row(row)} is not a finite number")
        self.row = row


def read_table(path: str | Path, *, where: str) -> CsvTable:
    """The table at ``path``, read once per process while the file is unchanged (cached by
    resolved path, modification time and size). ``where`` names the spec field that gave
    the path; every error is a ``DatasetError`` starting with it."""
    file = spec_path(path)
    try:
        stat = file.stat()
        real = file.resolve(strict=True)
    except OSError:
        raise DatasetError(f"{where}: no such file {str(path)!r}") from None
    if not file.is_file():
        raise DatasetError(f"{where}: {str(path)!r} is not a file")
    if stat.st_size > MAX_TABLE_BYTES:
        raise DatasetError(f"{where}: {TOO_LARGE}")
    try:
        return _read(str(real), stat.st_mtime_ns, stat.st_size)
    except TableTooLarge:
        raise DatasetError(f"{where}: {TOO_LARGE}") from None
    except _NotATable as exc:
        raise DatasetError(f"{where}: {EXPECTED}; {exc}") from None


class TableTooLarge(Exception):
    """The table is over ``MAX_TABLE_BYTES`` or ``MAX_TABLE_CELLS``."""


class _NotATable(ValueError):
    """What is wrong with the file, in terms of what was expected."""


@lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> CsvTable:
    try:
        with open(path, "rb") as raw:
            magic = raw.read(4)
    except OSError:
        raise _NotATable("this file is not one") from None
    if magic == _PARQUET_MAGIC:
        names, cells = _read_parquet(path)
        return _columns(names, cells)
    compressed = magic[:2] == _GZIP_MAGIC
    try:
        opened = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115
        with opened as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(bounded_lines(text))
            header = next(reader, None)
            rows = []
            cells = 0
            for row in reader:
                if row:
                    cells += len(row)
                    if cells > MAX_TABLE_CELLS:
                        raise TableTooLarge
                    rows.append(row)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, gzip.BadGzipFile):
        raise _NotATable("this file is not one") from None
    if not header or any(not name.strip() for name in header):
        raise _NotATable("the header row must name every column")
    # (a file separated by ';' read as one column 'a;v', or failed with no row named)
    other = next((sep for sep in ";\t|" if len(header) == 1 and sep in header[0]), None)
    hint = f" (its header holds {other!r}: a CSV file here is separated by commas)" if other else ""
    bad = next((r for r, row in enumerate(rows) if len(row) != len(header)), None)
    if bad is not None:
        raise _NotATable(
            f"{data_row(bad)} has {len(rows[bad])} cells, the header {len(header)} columns "
            f"(a cell holding a comma is quoted){hint}"
        )
    if hint:
        raise _NotATable(f"it has one column{hint}")
    return _columns(header, [[row[j] for row in rows] for j in range(len(header))])


def bounded_lines(text: io.TextIOBase) -> Iterator[str]:
    """The lines of ``text``, each at most ``MAX_LINE_CHARS`` and all together at most
    ``MAX_TABLE_BYTES`` characters (``TableTooLarge`` past either, before reading on)."""
    total = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        total += len(line)
        if total > MAX_TABLE_BYTES or (len(line) > MAX_LINE_CHARS and line[-1] != "\n"):
            raise TableTooLarge
        yield line


def _columns(header: list[str], cells: list[list[str]]) -> CsvTable:
    """The table from its header and its columns' cells (text), checked alike for CSV and
    Parquet."""
    if not header or any(not name.strip() for name in header):
        raise _NotATable("the header row must name every column")
    names = tuple(name.strip() for name in header)
    if len(set(names)) != len(names):
        raise _NotATable("a column name appears twice in the header")
    if not cells or not cells[0]:
        raise _NotATable("the file has no data row")
    # Held as fixed-width text: each cell as wide as its column's longest.
    widths = [max(map(len, column)) for column in cells]
    if len(cells[0]) * sum(widths) > MAX_TABLE_BYTES:
        raise TableTooLarge
    columns = {}
    for name, column in zip(names, cells, strict=True):
        values = np.array(column, dtype=str)
        values.setflags(write=False)
        columns[name] = values
    return CsvTable(names, columns)


def _read_parquet(path: str) -> tuple[list[str], list[list[str]]]:
    """A Parquet file's column names and cells as text (a null is an empty cell; numbers
    print as Python prints them). Only flat columns: a list or record column is not a cell."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        if meta.num_rows * meta.num_columns > MAX_TABLE_CELLS or (
            sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            > MAX_TABLE_BYTES
        ):
            raise TableTooLarge
        table = pq.read_table(path)
    except (OSError, pa.ArrowException, ValueError):
        raise _NotATable("this file is not one (an unreadable Parquet file)") from None
    if any(pa.types.is_nested(field.type) for field in table.schema):
        raise _NotATable("a Parquet column holds lists or records, not one value per cell")
    cells = [
        ["" if v is None else v if isinstance(v, str) else str(v) for v in column.to_pylist()]
        for column in table.columns
    ]
    return list(table.column_names), cells


def clear_cache() -> None:
    """Forget the tables read so far (tests)."""
    _read.cache_clear()


#: ``tabular`` is only a marker here (not None: a table, no arrays to train on).
ENTRIES = {"table": DatasetEntry(TableDatasetConfig, None, tabular="table")}
