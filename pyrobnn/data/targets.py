"""Turning a raw target column into a task and model-ready labels."""

from __future__ import annotations

import numpy as np

from .dataset import TASKS
from .errors import DataError, Location, show
from .values import EXACT_INT_LIMIT, Locate, check_real_values

MAX_INFERRED_CLASSES = 20
"""An integer-typed target with at most this many distinct values is inferred as classes."""


def _default_locate(index: tuple[int, ...]) -> Location:
    return Location(key="y", index=index)


def infer_task(y: np.ndarray) -> str:
    """Guess the task from a target array, by its dtype (the rule is the same for every loader).

    * strings or booleans are labels;
    * floating-point targets are regression, even when every value is a whole number;
    * integer targets are labels if they take at most :data:`MAX_INFERRED_CLASSES` distinct
      values, otherwise regression;
    * a 2-D target is (multi-output) regression.

    Two distinct labels give ``"binary"``, more give ``"multiclass"``.
    :func:`.tabular.csv_dataset` gives a target column an integer dtype only when every cell is
    *written* as an integer (``3``, not ``3.0`` or ``3e0``).  Pass the task explicitly when
    the guess is wrong (e.g. an integer-valued regression target such as a count).
    """
    y = np.asarray(y)
    if y.ndim > 1:
        return "regression"
    if y.dtype.kind == "f":
        return "regression"
    if y.dtype.kind in "iu":
        n_values = len(np.unique(y))
        if n_values > MAX_INFERRED_CLASSES:
            return "regression"
        return "binary" if n_values <= 2 else "multiclass"
    return "binary" if len(np.unique(y)) <= 2 else "multiclass"


def check_task(task, arg: str = "task") -> None:
    """Raise :class:`.errors.DataError` unless ``task`` is ``None`` or one of :data:`.dataset.TASKS`."""
    if task is not None and (not isinstance(task, str) or task not in TASKS):
        raise DataError(None, f"{arg}={task!r} is not valid; expected one of {list(TASKS)} or None (infer)")


def float_labels_to_int(y: np.ndarray, locate: Locate, arg: str = "task", task: str = "") -> np.ndarray:
    """Whole-number float labels as int64; raise at the first NaN/infinity, non-whole value, or
    value beyond :data:`.values.EXACT_INT_LIMIT` (which a float cannot hold exactly)."""
    check_real_values(y, locate, expected=f"a class label for {arg}={task!r}")
    bad = np.flatnonzero(y != np.round(y))
    if bad.size:
        i = (int(bad[0]),)
        raise DataError(locate(i), f"{show(y[i])} is not a whole number; expected integer class labels for "
                                   f"{arg}={task!r} (use task='regression' for a continuous target)", y[i])
    big = np.flatnonzero(np.abs(y) > EXACT_INT_LIMIT)
    if big.size:
        i = (int(big[0]),)
        raise DataError(locate(i), f"{show(y[i])} is beyond 2**53 and cannot be represented exactly as a class "
                                   f"label written as a float; expected labels of magnitude <= 2**53 (write them "
                                   "as integers or strings)", y[i])
    return y.astype(np.int64)


def encode_targets(y: np.ndarray, task: str | None, arg: str = "task",
                   locate: Locate | None = None) -> tuple[str, np.ndarray, list | None]:
    """Resolve ``task`` (inferring it with :func:`infer_task` if ``None``) and encode ``y`` for it.

    Returns ``(task, y, classes)``.  Regression returns float64 targets and ``classes=None``;
    classification maps the sorted distinct labels to ``0..K-1`` and returns them as
    ``classes`` (plain Python values), so ``classes[k]`` is the original label of class ``k``.
    Float labels must be whole numbers (they become integers).  ``locate(index)`` names the
    place of an element in the file for messages.

    Raises:
        DataError: unknown task; non-numeric regression target; NaN/infinity; a regression
            value that overflows float32; a float class label that is not a whole number or
            is beyond 2**53; a 2-D classification target; a binary task with more than two
            distinct labels.
    """
    locate = locate or _default_locate
    check_task(task, arg)
    y = np.asarray(y)
    if y.dtype.kind not in "biufUS":
        raise DataError(None, f"the target holds {y.dtype} values; expected numbers or string labels")
    if task is None:
        task = infer_task(y)
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise DataError(None, f"{arg}='regression' needs a numeric target, got values like "
                                  f"{y.reshape(-1)[:3].tolist()}")
        check_real_values(y, locate, expected=f"a finite number for {arg}='regression'")
        return task, y.astype(np.float64), None
    if y.ndim != 1:
        raise DataError(None, f"{arg}={task!r} needs a 1-D target, got shape {y.shape}")
    if y.dtype.kind == "f":
        y = float_labels_to_int(y, locate, arg, task)
    classes, codes = np.unique(y, return_inverse=True)
    if task == "binary" and len(classes) > 2:
        raise DataError(None,
                        f"{arg}='binary' but the target has {len(classes)} distinct labels {classes[:10].tolist()}; "
                        "expected at most 2 (use task='multiclass')")
    return task, codes.reshape(-1).astype(np.int64), classes.tolist()
