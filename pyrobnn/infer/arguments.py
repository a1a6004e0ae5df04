"""Checks shared by the argument preambles of :func:`pyrobnn.fit_svi` and
:func:`pyrobnn.infer.mcmc.fit_nuts`: the data, the seed, the dtype, the switches and the
memory a fit needs, all before any work is done."""

from __future__ import annotations

import torch

from ..model.memory import OVERRIDE_HINT, MemoryEstimate, check_fits
from ..utils.validation import ArgumentTypeError, as_tensor, check_bool, check_int

__all__ = ["MAX_SEED", "check_seed", "check_dtype", "check_optional_bool", "prepare_data", "float_dtype_of",
           "check_fit_memory", "data_bytes"]

#: seeds go to Python's, NumPy's and torch's generators; NumPy takes 0 ≤ seed < 2**32
MAX_SEED = 2**32 - 1


def check_seed(seed) -> int | None:
    """``None`` or an integer in [0, 2**32 − 1]."""
    return None if seed is None else check_int("seed", seed, 0, MAX_SEED)


def check_dtype(dtype) -> torch.dtype | None:
    """``None`` or a floating torch dtype."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise ArgumentTypeError(f"dtype must be None or a floating torch.dtype such as torch.float64, got {dtype!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype (torch.float32, torch.float64), got {dtype}")
    return dtype


def check_optional_bool(name: str, value) -> bool | None:
    """``None`` or a bool."""
    return None if value is None else check_bool(name, value)


def prepare_data(model, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` as tensors, checked against ``model`` and in the form its likelihood observes
    (:meth:`pyrobnn.BNN.prepare_data`); for other Pyro models only converted (numpy arrays) and
    checked for one row each and matching row counts."""
    if hasattr(model, "prepare_data"):
        return model.prepare_data(x, y)
    x, y = as_tensor("x", x), as_tensor("y", y)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must have at least one row, got shape {tuple(x.shape)}")
    if y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0] if y.dim() else 'no rows (a scalar)'}")
    return x, y


def float_dtype_of(x: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """The floating dtype a fit runs in: ``dtype``, else the data's, else torch's default."""
    return dtype or (x.dtype if torch.is_floating_point(x) else torch.get_default_dtype())


def data_bytes(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> int:
    """Bytes of the data as placed for a fit (x in ``dtype``; y in ``dtype`` unless integer)."""
    b = torch.empty((), dtype=dtype).element_size()
    yb = b if torch.is_floating_point(y) else y.element_size()
    return x.numel() * b + y.numel() * yb


def check_fit_memory(model, check_memory: bool | None, estimate: MemoryEstimate, available: int | None = None) -> None:
    """Refuse a fit whose ``estimate`` exceeds the available memory, unless ``check_memory`` is
    False (``None``: the model's own ``check_memory`` setting, True for models without one)."""
    if check_memory is None:
        check_memory = getattr(model, "check_memory", True)
    if check_memory:
        check_fits(estimate, available, hint=OVERRIDE_HINT)
