"""Declarative field tables and the checks that read a TOML table through them.

A section of a spec is a tuple of :class:`Field` — name, kind, default and range — and
:func:`read_table` turns a raw TOML table into a dict of checked, typed values, raising
:class:`~pyrobnn.spec.errors.SpecError` for unknown keys (with a "did you mean"), missing
required keys, wrong types and values out of range.  :class:`Context` carries where the
spec came from and which keys were set by overrides, so that every message names them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .errors import SpecError, did_you_mean

__all__ = ["MAX_INT", "REQUIRED", "Field", "Context", "integer", "number", "flag", "text", "choice", "read_table",
           "check_table", "check_keys", "join"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()
"""Default of a field that must be given."""

_MISSING = SpecError._MISSING


def join(prefix: str, key: str | int) -> str:
    """Key path ``prefix.key`` (or ``prefix[i]`` for a list index)."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


@dataclass
class Context:
    """Where a spec came from: ``origin`` (a path or ``<dict>``) and the key paths set by
    overrides (key path → the override text), so that errors can say so."""

    origin: str = "<dict>"
    overridden: dict[str, str] = field(default_factory=dict)

    def fail(self, key: str, expected: str, value: Any = _MISSING) -> NoReturn:
        """Raise :class:`SpecError` for ``key`` (and ``value``), saying what was ``expected``."""
        note = ""
        for path, text in self.overridden.items():
            if _related(path, key):
                note = f" (set by override {text!r})"
                break
        raise SpecError(self.origin, key, expected, value, note)


def _related(a: str, b: str) -> bool:
    """One key path is the other or lies inside it."""
    if not a or not b:
        return False
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith(short + ".") or long.startswith(short + "[")


@dataclass(frozen=True)
class Field:
    """One key of a table.

    ``kind`` is "int", "float", "bool", "str" or "choice" (a string from ``choices``) or
    "any" (checked by the section's own code; ``doc`` then says what is expected).
    ``default`` is :data:`REQUIRED` for a key that must be given; ``None`` for an optional one.
    ``lo``/``hi`` bound numbers (exclusive where ``lo_open``/``hi_open``).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    @property
    def expected(self) -> str:
        """What a valid value looks like, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.kind == "any":
            return self.doc or "a value"
        base = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[self.kind]
        if self.kind == "int" and self.hi is not None and self.lo is not None:
            upper = "" if self.hi == MAX_INT else f" (and <= {_num(self.hi)})"
            return f"{base} >= {_num(self.lo)}{upper}"
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"{base} in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        if self.lo is not None:
            return f"{base} {'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{base} {'<' if self.hi_open else '<='} {_num(self.hi)}"
        return base

    def check(self, ctx: Context, key: str, value: Any) -> Any:
        """The value, converted to the field's type; raise SpecError if it does not fit."""
        kind, given = self.kind, value
        if kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok:
                value = float(value)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind in ("str", "choice"):
            ok = isinstance(value, str)
        else:
            ok = True
        if not ok:
            ctx.fail(key, f"expected {self.expected}", value)
        if kind == "choice" and value not in self.choices:
            ctx.fail(key, f"expected {self.expected}{did_you_mean(value, self.choices)}", value)
        if kind in ("int", "float"):
            low_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
            high_bad = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
            if low_bad or high_bad:
                upper = f" (and <= {_num(self.hi)})" if high_bad and self.hi == MAX_INT else ""
                ctx.fail(key, f"expected {self.expected}{upper}", given)
        return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


#: largest integer a TOML document can hold (and torch can count to)
MAX_INT = 2**63 - 1


def integer(name: str, default: Any = REQUIRED, lo: int | None = None, hi: int | None = None, doc: str = "") -> Field:
    """An integer field, optionally ``>= lo``, and ``<= hi`` (default: the largest 64-bit integer,
    the TOML limit, shown in messages only when ``hi`` is given)."""
    return Field(name, "int", default, lo=lo, hi=MAX_INT if hi is None else hi, doc=doc)


def number(name: str, default: Any = REQUIRED, lo: float | None = None, hi: float | None = None,
           lo_open: bool = True, hi_open: bool = True, doc: str = "") -> Field:
    """A real-number field (integers accepted), bounds exclusive unless told otherwise."""
    return Field(name, "float", default, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, doc=doc)


def flag(name: str, default: Any = REQUIRED, doc: str = "") -> Field:
    """A boolean field."""
    return Field(name, "bool", default, doc=doc)


def text(name: str, default: Any = REQUIRED, doc: str = "") -> Field:
    """A free string field."""
    return Field(name, "str", default, doc=doc)


def choice(name: str, choices: Sequence[str], default: Any = REQUIRED, doc: str = "") -> Field:
    """A string field restricted to ``choices``."""
    return Field(name, "choice", default, choices=tuple(choices), doc=doc)


def check_table(ctx: Context, key: str, raw: Any, what: str) -> Mapping:
    """``raw`` itself if it is a table, else SpecError."""
    if not isinstance(raw, Mapping):
        ctx.fail(key, f"expected a table ({what})", raw)
    return raw


def check_keys(ctx: Context, prefix: str, raw: Mapping, allowed: Sequence[str], where: str,
               others: Mapping[str, str] | None = None) -> None:
    """SpecError for the first key of ``raw`` not in ``allowed``.

    ``others`` maps keys that are valid elsewhere (e.g. for another prior family) to a
    sentence saying so, which replaces the "did you mean" guess.
    """
    for k, v in raw.items():
        if k in allowed:
            continue
        listing = ", ".join(allowed) if allowed else "(none)"
        if others and k in others:
            ctx.fail(join(prefix, k), f"{others[k]}; {where} takes: {listing}", v)
        ctx.fail(join(prefix, k), f"unknown key{did_you_mean(k, allowed)}; {where} takes: {listing}", v)


def read_table(ctx: Context, prefix: str, raw: Mapping, fields: Sequence[Field], where: str,
               others: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Check ``raw`` against ``fields`` and return ``{name: value}`` with defaults filled in.

    ``extra`` names further keys allowed in the table but read by the caller.
    """
    check_keys(ctx, prefix, raw, [f.name for f in fields] + list(extra), where, others)
    out = {}
    for f in fields:
        key = join(prefix, f.name)
        if f.name not in raw:
            if f.default is REQUIRED:
                ctx.fail(key, f"missing; expected {f.expected}")
            out[f.name] = f.default
        else:
            out[f.name] = f.check(ctx, key, raw[f.name])
    return out
