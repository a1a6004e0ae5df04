"""The one exception of the data layer, :class:`DataError`, and where in a file it points.

Every loader raises :class:`DataError` (a :class:`ValueError`) when a file's content or a
loader argument cannot give a correct dataset: a non-numeric cell in a numeric column, an
empty cell, NaN or infinity, a value that overflows float32, a class label that cannot be
represented exactly, an array of the wrong type or shape.  A missing file stays a
:class:`FileNotFoundError`.  The message names the file, then the column (CSV) or array key
(NPZ), the row and the value, and says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DataError", "Location", "show"]


def show(value, limit: int = 60) -> str:
    """``repr(value)`` shortened to ``limit`` characters, for messages."""
    text = repr(value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Location:
    """A place in a data file: ``path``, then a CSV ``column`` or an NPZ array ``key``, then a
    1-based CSV data ``row`` (with its 1-based ``line`` in the file) or an NPZ ``index``.

    ``str(location)`` gives e.g. ``data.csv: column 'age', data row 3 (line 4)`` or
    ``data.npz: array 'x' at index (3, 1)``; parts that are ``None`` are left out.
    """

    path: str | None = None
    column: str | None = None
    key: str | None = None
    row: int | None = None
    line: int | None = None
    index: tuple[int, ...] | None = None
    argument: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.argument is not None:
            parts.append(f"argument {self.argument}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        if self.key is not None:
            parts.append(f"array {self.key!r}")
        if self.row is not None:
            parts.append(f"data row {self.row}" + (f" (line {self.line})" if self.line is not None else ""))
        elif self.line is not None:
            parts.append(f"line {self.line}")
        inner = ", ".join(parts)
        if self.index is not None:
            inner = f"{inner} at index {tuple(int(i) for i in self.index)}".lstrip()
        if self.path is None:
            return inner or "(data)"
        return f"{self.path}: {inner}" if inner else self.path


class DataError(ValueError):
    """A data file's content, or an argument of a loader, cannot give a correct dataset.

    The message reads ``<where>: <problem>``, where ``<where>`` is a :class:`Location`
    (file, column or array key, row) and ``<problem>`` names the offending value and what
    was expected.  The parts are kept as attributes: ``location`` (a :class:`Location`, or
    ``None``), ``path``, ``column``, ``key``, ``row``, ``line``, ``index``, ``value`` (``None``
    when no single value is at fault) and ``problem``.
    """

    def __init__(self, location: Location | str | None, problem: str, value=None):
        if isinstance(location, str):
            location = Location(path=location)
        self.location = location
        self.problem = problem
        self.value = value
        loc = location or Location()
        self.path, self.column, self.key = loc.path, loc.column, loc.key
        self.row, self.line, self.index = loc.row, loc.line, loc.index
        where = str(location) if location is not None else ""
        super().__init__(f"{where}: {problem}" if where else problem)
