"""Checks on numeric arrays before they become the float32 tensors of a :class:`.Dataset`.

Every check finds the *first* offending element and raises :class:`.errors.DataError` at
the :class:`.errors.Location` that ``locate(index)`` gives for it, so a message names the
file, column or array key, row and value.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import DataError, Location, show

__all__ = ["FLOAT32_MAX", "EXACT_INT_LIMIT", "Locate", "at_index", "check_numeric_dtype", "check_finite",
           "check_float32", "check_real_values"]

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest finite float32 (about 3.4e38): inputs and regression targets beyond it overflow to infinity."""

EXACT_INT_LIMIT = 2**53
"""Whole numbers stored as floats are exact only up to this magnitude (float64's 53-bit significand)."""

Locate = Callable[[tuple[int, ...]], Location]
"""Maps the index of an element of a checked array to its place in the file."""


def at_index(path: str | None, key: str | None) -> Locate:
    """A :data:`Locate` for an array ``key`` of file ``path``: the element's full index."""
    return lambda index: Location(path=path, key=key, index=index)


def _first(mask: np.ndarray) -> tuple[int, ...] | None:
    if not mask.any():
        return None
    flat = int(np.argmax(mask.reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def check_numeric_dtype(a: np.ndarray, where: Location, expected: str = "numbers") -> None:
    """Raise unless ``a`` holds booleans, integers or real floats (not strings, objects,
    complex numbers, dates or records)."""
    if a.dtype.kind not in "biuf":
        raise DataError(where, f"holds {a.dtype} values (dtype kind {a.dtype.kind!r}); expected {expected} "
                               "(booleans, integers or real floats)")


def check_finite(a: np.ndarray, locate: Locate, expected: str = "a finite number") -> None:
    """Raise at the first NaN or infinity of a float array (other dtypes pass)."""
    if a.dtype.kind != "f":
        return
    idx = _first(~np.isfinite(a))
    if idx is not None:
        raise DataError(locate(idx), f"{show(a[idx])} is not a finite number; expected {expected} "
                                     "(missing values are not imputed: remove or fill the row)", a[idx])


def check_float32(a: np.ndarray, locate: Locate) -> None:
    """Raise at the first finite value whose magnitude exceeds float32's range (it would become infinity)."""
    if a.dtype.kind != "f" or a.dtype.itemsize <= 4:  # float16/32 cannot exceed float32's range
        return
    with np.errstate(invalid="ignore"):
        idx = _first(np.abs(a) > FLOAT32_MAX)
    if idx is not None:
        raise DataError(locate(idx), f"{show(a[idx])} overflows float32 (largest finite value {FLOAT32_MAX:.4g}); "
                                     "expected values the float32 tensors of a Dataset can hold (rescale the "
                                     "column)", a[idx])


def check_real_values(a: np.ndarray, locate: Locate, expected: str = "a finite number") -> None:
    """:func:`check_finite` then :func:`check_float32`."""
    check_finite(a, locate, expected)
    check_float32(a, locate)
