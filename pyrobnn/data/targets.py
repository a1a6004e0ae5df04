"""Turning a raw target column into a task and model-ready labels."""

from __future__ import annotations

import numpy as np

from .dataset import TASKS

MAX_INFERRED_CLASSES = 20
"""An integer-valued numeric target with at most this many distinct values is inferred as classes."""


def _is_numeric(y: np.ndarray) -> bool:
    return y.dtype.kind in "biuf"


def infer_task(y: np.ndarray) -> str:
    """Guess the task from a target array.

    Strings/objects or booleans are labels; floating-point targets are regression; integer
    targets are labels if they take at most :data:`MAX_INFERRED_CLASSES` distinct values,
    otherwise regression (:func:`.tabular.csv_dataset` reads a column whose values are all
    whole numbers as integers).  Two distinct labels give ``"binary"``, more give ``"multiclass"``.  Pass the
    task explicitly when this guess is wrong (e.g. an integer-valued regression target).
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


def encode_targets(y: np.ndarray, task: str | None, arg: str = "task") -> tuple[str, np.ndarray, list | None]:
    """Resolve ``task`` (inferring it if ``None``) and encode ``y`` for it.

    Returns ``(task, y, classes)``.  Regression returns float64 targets and ``classes=None``;
    classification maps the sorted distinct labels to ``0..K-1`` and returns them as
    ``classes`` (plain Python values), so ``classes[k]`` is the original label of class ``k``.

    Raises:
        ValueError: unknown task, non-numeric regression target, or a binary task with
            more than two distinct labels.
    """
    y = np.asarray(y)
    if task is None:
        task = infer_task(y)
    if task not in TASKS:
        raise ValueError(f"{arg}={task!r} is not valid; expected one of {list(TASKS)} or None (infer)")
    if task == "regression":
        if not _is_numeric(y):
            raise ValueError(f"{arg}='regression' needs a numeric target, got values like {y.reshape(-1)[:3].tolist()}")
        return task, y.astype(np.float64), None
    if y.ndim != 1:
        raise ValueError(f"{arg}={task!r} needs a 1-D target, got shape {y.shape}")
    classes, codes = np.unique(y, return_inverse=True)
    if task == "binary" and len(classes) > 2:
        raise ValueError(
            f"{arg}='binary' but the target has {len(classes)} distinct labels {classes[:10].tolist()}; "
            "expected at most 2 (use task='multiclass')"
        )
    return task, codes.astype(np.int64), classes.tolist()
