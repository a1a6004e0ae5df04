"""A small TOML writer for plain data: dicts, lists, strings, numbers and booleans.

Used to give a spec built from a dict (or a file with overrides applied) a TOML text that
:mod:`tomllib` reads back to the same data, and to show offending values in error messages
the way they are written in a spec file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = ["dumps", "format_value", "format_key"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def format_key(key: str) -> str:
    """A TOML key: bare when it can be, otherwise a quoted string."""
    key = str(key)
    return key if _BARE_KEY.match(key) else _string(key)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def format_value(value) -> str:
    """One value as a TOML literal (inline tables and arrays for nested data)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float.__repr__(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{format_key(k)} = {format_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML; expected a dict, list, str, int, float or bool")


def _is_table_array(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, Mapping) for v in value)


def _write_table(lines: list[str], prefix: tuple[str, ...], table: Mapping, header: str | None) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)]
    nested = any(isinstance(v, Mapping) or _is_table_array(v) for v in table.values())
    if header is not None and (header.startswith("[[") or scalars or not nested):
        if lines:
            lines.append("")
        lines.append(header)
    for k, v in scalars:
        text = format_value(v)
        if isinstance(v, (list, tuple)) and len(text) > 80:  # one item a line
            text = "[\n" + "".join(f"  {format_value(item)},\n" for item in v) + "]"
        lines.append(f"{format_key(k)} = {text}")
    for k, v in table.items():
        path = prefix + (format_key(k),)
        if isinstance(v, Mapping):
            _write_table(lines, path, v, "[" + ".".join(path) + "]")
        elif _is_table_array(v):
            for item in v:
                _write_table(lines, path, item, "[[" + ".".join(path) + "]]")


def dumps(data: Mapping) -> str:
    """Render a dict of plain data as a TOML document (``tomllib.loads(dumps(d)) == d``)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"a TOML document is a dict, got {type(data).__name__}")
    lines: list[str] = []
    _write_table(lines, (), data, None)
    return "\n".join(lines) + "\n"
