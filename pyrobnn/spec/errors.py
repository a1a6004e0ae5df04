"""The one exception of the spec layer, :class:`SpecError`, and the "did you mean" suggestion in its messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .render import format_value

__all__ = ["SpecError", "did_you_mean", "show_value"]


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` for the closest of ``options`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {format_value(close[0])}?)" if close else ""


def show_value(value, limit: int = 80) -> str:
    """A value as it would be written in TOML, shortened to ``limit`` characters."""
    try:
        text = format_value(value)
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpecError(ValueError):
    """A model or inference spec is malformed.

    The message names where the spec came from (a file path, or ``<dict>``), the key path
    inside it, the offending value and what was expected, e.g.
    ``models/x.toml: prior.scale = -1.0: expected a number > 0``.  The parts are kept as
    attributes: ``origin``, ``key`` (``""`` for the whole document), ``value`` and
    ``expected``.
    """

    _MISSING = object()

    def __init__(self, origin: str, key: str, expected: str, value=_MISSING, note: str = ""):
        self.origin, self.key, self.expected, self.note = origin, key, expected, note
        self.value = None if value is SpecError._MISSING else value
        where = origin if not key else f"{origin}: {key}"
        if value is not SpecError._MISSING:
            where += f" = {show_value(value)}"
        super().__init__(f"{where}: {expected}{note}")
