"""The :class:`Dataset` container and the one standardisation routine every loader uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .values import at_index, check_real_values

TASKS = ("regression", "binary", "multiclass")

# A column whose standard deviation is below this fraction of max(1, |mean|) is treated as
# constant (its std is set to 1), so round-off in e.g. a column of 0.998s does not blow up.
_CONSTANT_RTOL = 1e-10


def standardize(
    train: np.ndarray, *others: np.ndarray | None
) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray, np.ndarray]:
    """Standardise arrays column-wise with statistics of ``train`` only.

    Mean and (population, ``ddof=0``) standard deviation are taken over axis 0 of
    ``train`` in float64; a constant column gets std 1 so it maps to 0 instead of NaN.
    The same shift and scale are applied to each array in ``others`` (``None`` passes
    through), so test data never leaks into the statistics.

    Returns:
        ``(train_std, [other_std, ...], mean, std)``; ``mean``/``std`` have shape
        ``train.shape[1:]``.
    """
    train = np.asarray(train, dtype=np.float64)
    if train.shape[0] == 0:
        raise DataError(None, "standardize: train has 0 rows; expected at least one row")
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    constant = std <= _CONSTANT_RTOL * np.maximum(1.0, np.abs(mean))
    std = np.where(constant, 1.0, std)
    out = [None if o is None else (np.asarray(o, dtype=np.float64) - mean) / std for o in others]
    return (train - mean) / std, out, mean, std


@dataclass(repr=False)
class Dataset:
    """A train/test pair of tensors plus what is needed to report results in original units.

    Attributes:
        name: dataset name.
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        x_train, x_test: float32 inputs, shape ``(N, *features)`` (images ``(N, 1, 28, 28)``).
        y_train, y_test: regression: float32 ``(N,)`` or ``(N, T)``; binary: float32 0/1
            ``(N,)``; multiclass: int64 ``(N,)`` in ``0..num_classes-1``.
        num_classes: number of classes (``None`` for regression).
        feature_names: one name per input column, if known.
        x_mean, x_std, y_mean, y_std: standardisation statistics of the training split
            (``None`` when that part was not standardised).
        meta: loader-specific extras (e.g. ``classes``, ``n_splits``, ``n_hidden``).
    """

    name: str
    task: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor | None = None
    y_test: Tensor | None = None
    num_classes: int | None = None
    feature_names: list[str] | None = None
    x_mean: Tensor | None = None
    x_std: Tensor | None = None
    y_mean: Tensor | None = None
    y_std: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(None, f"task={self.task!r} is not valid; expected one of {list(TASKS)}")
        if (self.x_test is None) != (self.y_test is None):
            raise DataError(None, "x_test and y_test must both be given or both be None")
        for xs, ys, split in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if xs is not None and xs.shape[0] != ys.shape[0]:
                raise DataError(None,
                    f"x_{split} has {xs.shape[0]} rows but y_{split} has {ys.shape[0]}; expected equal"
                )

    # ------------------------------------------------------------------ properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(13,)`` or ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples (0 if there is no test split)."""
        return 0 if self.x_test is None else int(self.x_test.shape[0])

    # ------------------------------------------------------------------ unit conversion
    def y_to_original(self, y: Tensor) -> Tensor:
        """Map targets (or predictive means) from standardised to original units: ``y * y_std + y_mean``.

        Identity when the targets were not standardised.
        """
        if self.y_mean is None or self.y_std is None:
            return y
        return y * self.y_std.to(y) + self.y_mean.to(y)

    def scale_to_original(self, s: Tensor) -> Tensor:
        """Map a scale (standard deviation, RMSE, MAE) to original units: ``s * y_std``.

        Identity when the targets were not standardised.
        """
        if self.y_std is None:
            return s
        return s * self.y_std.to(s)

    def log_lik_to_original(self, ll: Tensor, per_target: bool = False) -> Tensor:
        """Convert a Gaussian log-density from standardised to original units: ``ll - log(y_std)``.

        The change of variables ``y = y_std * z + y_mean`` divides the density by ``y_std``.
        With several targets (``y_std`` of shape ``(T,)``) ``ll`` is taken to be the joint
        log-density of all ``T`` targets, so ``sum(log y_std)`` is subtracted; pass
        ``per_target=True`` when the last axis of ``ll`` holds one value per target.
        Identity when the targets were not standardised.
        """
        if self.y_std is None:
            return ll
        log_std = torch.log(self.y_std.to(ll))
        if log_std.ndim > 0 and not per_target:
            log_std = log_std.sum()
        return ll - log_std

    # ------------------------------------------------------------------ devices
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Dataset:
        """Return a copy with every tensor moved to ``device``.

        Floating-point tensors (inputs, regression and binary targets, statistics) are cast
        to ``dtype`` if given; integer labels stay int64.
        """

        def move(t: Tensor | None) -> Tensor | None:
            if t is None:
                return None
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        changes = {f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), Tensor)}
        return dataclasses.replace(self, **changes, meta=dict(self.meta))

    def __repr__(self) -> str:
        def shape(t: Tensor | None) -> str:
            return "None" if t is None else f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"

        parts = [f"name={self.name!r}", f"task={self.task!r}", f"x_train={shape(self.x_train)}",
                 f"y_train={shape(self.y_train)}", f"x_test={shape(self.x_test)}",
                 f"y_test={shape(self.y_test)}"]
        if self.num_classes is not None:
            parts.append(f"num_classes={self.num_classes}")
        parts.append(f"standardized_x={self.x_mean is not None}")
        parts.append(f"standardized_y={self.y_mean is not None}")
        return f"Dataset({', '.join(parts)})"


def make_dataset(
    name: str,
    task: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    standardize_x: bool = False,
    standardize_y: bool = False,
    num_classes: int | None = None,
    feature_names: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from numpy arrays, standardising with training statistics.

    Inputs become float32.  Float inputs and targets must be finite and within float32's range
    (:class:`.errors.DataError` naming the array and index otherwise).  Targets become float32 for ``"regression"`` and ``"binary"``
    (0/1) and int64 for ``"multiclass"``; classification targets must already be integer
    codes ``0..num_classes-1``.  ``standardize_y`` only applies to regression.
    """
    if task not in TASKS:
        raise DataError(None, f"task={task!r} is not valid; expected one of {list(TASKS)}")
    for key, arr in (("x_train", x_train), ("x_test", x_test), ("y_train", y_train), ("y_test", y_test)):
        if arr is not None and np.asarray(arr).dtype.kind == "f":
            check_real_values(np.asarray(arr), at_index(None, f"{name}: {key}"))
    x_mean = x_std = y_mean = y_std = None
    if standardize_x:
        x_train, (x_test,), x_mean, x_std = standardize(x_train, x_test)
    if standardize_y and task == "regression":
        y_train, (y_test,), y_mean, y_std = standardize(y_train, y_test)

    def floats(a: np.ndarray | None) -> Tensor | None:
        return None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float32))

    def labels(a: np.ndarray | None) -> Tensor | None:
        if a is None:
            return None
        a = np.asarray(a)
        if task == "multiclass":
            return torch.as_tensor(a.astype(np.int64))
        return torch.as_tensor(a.astype(np.float32))

    if task != "regression":
        k = num_classes if num_classes is not None else (2 if task == "binary" else None)
        for arr, split in ((y_train, "train"), (y_test, "test")):
            if arr is None or np.size(arr) == 0:
                continue
            arr = np.asarray(arr)
            if np.any(arr < 0) or np.any(arr != np.round(arr)) or (k is not None and np.any(arr >= k)):
                raise DataError(None,
                    f"y_{split} must hold integer class codes 0..{'K' if k is None else k}-1 for task={task!r}"
                )
        if num_classes is None:
            num_classes = 2 if task == "binary" else int(np.max(y_train)) + 1

    return Dataset(
        name=name,
        task=task,
        x_train=floats(x_train),
        y_train=labels(y_train),
        x_test=floats(x_test),
        y_test=labels(y_test),
        num_classes=num_classes if task != "regression" else None,
        feature_names=None if feature_names is None else [str(f) for f in feature_names],
        x_mean=floats(x_mean),
        x_std=floats(x_std),
        y_mean=floats(y_mean),
        y_std=floats(y_std),
        meta=dict(meta or {}),
    )

