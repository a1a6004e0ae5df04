"""Reading a delimited text file into typed columns, with every bad cell reported by row and column.

The rules (used by :func:`.tabular.csv_dataset` and :func:`.bandit.mushroom`):

* The file is UTF-8 (a byte-order mark is ignored) with a header row; surrounding whitespace
  of every field is stripped.  A line that is blank (or holds only whitespace) is skipped; a
  row of empty fields such as ``,,`` is a row of empty cells.
* Header names must be non-empty and distinct, and every data row must have as many fields
  as the header.
* A cell is a *number* if it is written as a decimal number: ``12``, ``-3``, ``1.5``, ``.5``,
  ``1e-3`` (ASCII digits; no thousands separators, underscores or ``1,5``).  ``nan``, ``inf``,
  ``infinity`` (any case and sign) are numbers that are not finite.  Anything else is text.
* A column is *numeric* when more than half of its non-empty cells are numbers; then every
  cell must be a finite number whose magnitude fits float32 (about 3.4e38), else the cell is
  an error naming the file, column, data row, line and value.  Any other column is
  *categorical* (each distinct text is a category).  A caller can declare a column
  categorical whatever its cells look like.
* An empty cell is always an error: missing values are never imputed.
* A numeric column is *integer-written* when every cell is written as an integer (``12``,
  not ``12.0`` or ``1.2e1``); only such columns give integer values (and so can be read as
  class labels by :func:`.targets.infer_task`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, Location, show
from .values import FLOAT32_MAX

__all__ = ["Table", "read_table", "check_delimiter"]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_INT64_DIGITS = 19  # int64 holds every integer of up to 18 digits and some of 19

EMPTY, INT, FLOAT, NONFINITE, TEXT = "empty", "int", "float", "nonfinite", "text"


def cell_kind(cell: str) -> str:
    """``"empty"``, ``"int"``, ``"float"``, ``"nonfinite"`` (nan/inf) or ``"text"`` for a stripped cell."""
    if not cell:
        return EMPTY
    if _INT.fullmatch(cell):
        return INT
    if _FLOAT.fullmatch(cell):
        return FLOAT
    if _NONFINITE.fullmatch(cell):
        return NONFINITE
    return TEXT


def check_delimiter(delimiter) -> None:
    """Raise :class:`.errors.DataError` unless ``delimiter`` is one character other than a quote or line break."""
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise DataError(None, f"delimiter={delimiter!r} is not valid; expected one character other than a double "
                              "quote or a line break, e.g. ',' or '\\t'")


@dataclass
class Table:
    """A delimited file read as text: ``header``, data ``rows`` (stripped cells) and the 1-based
    ``lines`` on which each data row starts."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def cells(self, name: str) -> list[str]:
        """The cells of column ``name``, one per data row."""
        j = self.header.index(name)
        return [r[j] for r in self.rows]

    def where(self, name: str | None, i: int) -> Location:
        """The location of data row ``i`` (0-based) of column ``name``."""
        return Location(path=self.path, column=name, row=i + 1, line=self.lines[i])

    def is_numeric(self, name: str) -> bool:
        """Whether more than half of the non-empty cells of column ``name`` are numbers."""
        kinds = [cell_kind(c) for c in self.cells(name)]
        filled = sum(k != EMPTY for k in kinds)
        numbers = sum(k in (INT, FLOAT, NONFINITE) for k in kinds)
        return filled > 0 and 2 * numbers > filled

    def _no_empty(self, name: str, cells: list[str], what: str) -> None:
        for i, c in enumerate(cells):
            if not c:
                raise DataError(self.where(name, i), f"the cell is empty; expected {what} (missing values are not "
                                                     "imputed: fill the cell or remove the row)", c)

    def numbers(self, name: str, hint: str = "") -> np.ndarray:
        """Column ``name`` as numbers: int64 if every cell is integer-written and fits int64, else float64.

        Raises :class:`.errors.DataError` at the first empty, non-numeric or non-finite cell, or
        value beyond float32's range; ``hint`` is appended to the message for a non-numeric cell.
        """
        cells = self.cells(name)
        self._no_empty(name, cells, "a number")
        kinds = [cell_kind(c) for c in cells]
        n_numbers = sum(k in (INT, FLOAT, NONFINITE) for k in kinds)
        for i, (c, k) in enumerate(zip(cells, kinds)):
            if k == TEXT:
                raise DataError(self.where(name, i),
                                f"{show(c)} is not a number; expected a number in every cell ({n_numbers} of "
                                f"{len(cells)} cells of column {name!r} are numbers){hint}", c)
            if k == NONFINITE:
                raise DataError(self.where(name, i), f"{show(c)} is not a finite number; expected a finite number "
                                                     "(NaN and infinity are not accepted in data files)", c)
        if all(k == INT for k in kinds):
            ints = [int(c) if len(c.lstrip("+-").lstrip("0")) <= _INT64_DIGITS else None for c in cells]
            if all(v is not None and -(2**63) <= v < 2**63 for v in ints):
                return np.array(ints, dtype=np.int64)
        values = np.array([float(c) for c in cells], dtype=np.float64)
        big = np.flatnonzero(~(np.abs(values) <= FLOAT32_MAX))
        if big.size:
            i = int(big[0])
            raise DataError(self.where(name, i), f"{show(cells[i])} overflows float32 (largest finite value "
                                                 f"{FLOAT32_MAX:.4g}); expected values the float32 tensors of a "
                                                 "Dataset can hold (rescale the column)", cells[i])
        return values

    def labels(self, name: str) -> np.ndarray:
        """Column ``name`` as text labels (a string array); raises at the first empty cell."""
        cells = self.cells(name)
        self._no_empty(name, cells, "a value (a category or label)")
        return np.array(cells, dtype=str)

    def one_hot(self, name: str) -> tuple[list[str], np.ndarray]:
        """Column ``name`` one-hot encoded: ``(categories, block)`` with the distinct texts in sorted
        order and a float ``(rows, categories)`` block; raises at the first empty cell."""
        values, codes = np.unique(self.labels(name), return_inverse=True)
        return values.tolist(), np.eye(len(values))[codes.reshape(-1)]


def read_table(path: Path, delimiter: str = ",") -> Table:
    """Read ``path`` as a delimited text file with a header row (see the module rules).

    Raises:
        DataError: the file is not UTF-8 text, is not valid CSV, has no header or no data row,
            has empty or repeated header names, or a row with the wrong number of fields.
    """
    check_delimiter(delimiter)
    origin = str(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            prev = 0
            for r in reader:
                start, prev = prev + 1, reader.line_num
                cells = [c.strip() for c in r]
                if len(cells) == 0 or cells == [""]:
                    continue
                rows.append(cells)
                lines.append(start)
    except UnicodeDecodeError as e:
        raise DataError(origin, f"byte {e.start} is not UTF-8 ({e.reason}); expected a UTF-8 text file") from None
    except csv.Error as e:
        line = None if reader is None else reader.line_num
        raise DataError(Location(path=origin, line=line), f"not valid delimited text ({e}); expected a CSV file "
                                                          f"with delimiter={delimiter!r}") from None
    if not rows:
        raise DataError(origin, "the file is empty; expected a header row followed by data rows")
    header, header_line = rows[0], lines[0]
    for j, name in enumerate(header):
        if not name:
            raise DataError(Location(path=origin, line=header_line),
                            f"header field {j + 1} is empty; expected a name for every column (header {header[:8]})")
        if name in header[:j]:
            raise DataError(Location(path=origin, line=header_line),
                            f"column name {name!r} appears twice in the header; expected distinct names")
    rows, lines = rows[1:], lines[1:]
    if not rows:
        raise DataError(origin, "the file has a header but no data rows; expected at least one data row")
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise DataError(Location(path=origin, line=lines[i]),
                            f"data row {i + 1} has {len(r)} fields but the header has {len(header)}; expected "
                            f"{len(header)} fields (delimiter={delimiter!r}; quote fields that contain it)")
    return Table(origin, header, rows, lines)
