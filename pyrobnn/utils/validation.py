"""Checks of arguments given to the Python API, each raising an error that names the argument.

The lowest layer of the package (it imports only torch and numpy), used by ``model``,
``infer`` and ``spec`` alike, so that every numeric argument is checked once, up front, by
the same rules: integers are real integers (``True`` and ``2.0`` are not counts), numbers are
finite, and each has a range.  Type errors are :class:`ArgumentTypeError`, a ``TypeError``
that is also a ``ValueError`` so that callers catching either see it.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np
import torch

__all__ = [
    "ArgumentTypeError", "MAX_INT64", "check_int", "check_number", "check_positive", "check_probability", "check_bool",
    "as_tensor", "count_nonfinite", "describe_range", "check_config", "check_choice",
]

#: largest integer a torch index or counter can hold
MAX_INT64 = 2**63 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (e.g. a float where a count is expected)."""


def _fmt(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def describe_range(kind: str, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> str:
    """``"an integer >= 1"``, ``"a finite number in (0, 1)"`` and the like."""
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {_fmt(lo)}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {_fmt(hi)}"
    return kind


def check_int(name: str, value, minimum: int = 1, maximum: int | None = MAX_INT64, expected: str | None = None) -> int:
    """``value`` as an ``int``; raise naming ``name`` unless it is an integer (not a bool, not
    a float) in ``[minimum, maximum]``.  ``expected`` replaces the words after "must be" in
    the message.  Returns the value as a Python int."""
    if expected is not None:
        what = expected
    elif minimum == 1 and maximum in (MAX_INT64, None):
        what = "a positive integer"
    elif maximum in (MAX_INT64, None):
        what = describe_range("an integer", minimum)
    else:
        what = describe_range("an integer", minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() \
                and value.dtype != torch.bool:
            value = int(value)
        else:
            raise ArgumentTypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    value = operator.index(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {_fmt(value)}")
    return value


def check_number(name: str, value, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, expected: str | None = None) -> float:
    """``value`` as a finite ``float``; raise naming ``name`` unless it is a real number (not a
    bool, not a string) inside the given bounds (inclusive unless ``lo_open``/``hi_open``).
    ``expected`` replaces the words after "must be" in the message."""
    what = expected or describe_range("a finite number", lo, hi, lo_open, hi_open)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not math.isfinite(value)
    bad = bad or (lo is not None and (value <= lo if lo_open else value < lo))
    bad = bad or (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def check_positive(name: str, value) -> float:
    """A finite number > 0 (a scale, a learning rate), as a float."""
    return check_number(name, value, lo=0.0, lo_open=True, expected="a positive finite number")


def check_probability(name: str, value, open_ends: bool = False) -> float:
    """A probability in [0, 1] (``(0, 1)`` with ``open_ends``), as a float."""
    return check_number(name, value, 0.0, 1.0, lo_open=open_ends, hi_open=open_ends)


def check_bool(name: str, value) -> bool:
    """``value`` if it is a bool (``True``/``False``, numpy's too); numbers such as 0 and 1 are refused,
    since a misplaced number is more often a mistake than a switch."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices`` (a tuple, or a dict's keys); else a ValueError naming
    ``name`` and listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_config(config, config_class: type, given: dict):
    """The settings of a run: ``config`` (an instance of the frozen dataclass ``config_class``),
    or, when it is None, ``config_class(**given)`` from a function's keyword arguments, whose
    defaults are the dataclass's.  Settings given in both places are refused, naming them, so a
    keyword argument is never silently overridden."""
    if config is None:
        return config_class(**given)
    if not isinstance(config, config_class):
        raise ArgumentTypeError(f"config must be a {config_class.__name__} or None, got {type(config).__name__}")
    defaults = config_class()
    both = [k for k, v in given.items() if v is not getattr(defaults, k) and v != getattr(defaults, k)]
    if both:
        raise ValueError(f"{', '.join(both)} given both as keyword argument(s) and in config=; "
                         f"give the settings in one place (dataclasses.replace(config, ...))")
    return config


def as_tensor(name: str, value) -> torch.Tensor:
    """``value`` itself if it is a tensor; a numeric numpy array becomes a tensor sharing its memory
    (nothing is copied or changed; later conversions make new tensors).  Anything else is refused."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ArgumentTypeError(f"{name} must be a torch.Tensor or a numeric numpy array, got a numpy array of "
                                    f"dtype {value.dtype}")
        if value.dtype.byteorder == ">" or not value.flags.writeable:
            value = np.array(value, dtype=value.dtype.newbyteorder("="))
        return torch.from_numpy(value)
    raise ArgumentTypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")


def count_nonfinite(t: torch.Tensor, chunk: int = 1 << 20) -> int:
    """Number of NaN/inf elements of ``t``, checked in slices of about ``chunk`` elements along
    the first dimension, so that no full-size mask or copy is made (a data set of several
    hundred MB is checked with a few MB of extra memory)."""
    if not torch.is_floating_point(t) and not torch.is_complex(t):
        return 0
    if t.ndim == 0:
        return int(not bool(torch.isfinite(t)))
    if t.numel() == 0:
        return 0
    rows = max(1, chunk // max(1, t[0].numel()))
    return sum(int((~torch.isfinite(part)).sum()) for part in t.split(rows))
