"""Tabular datasets: scikit-learn's bundled sets, CSV files and NPZ archives.

All three share one path: encode the target (:mod:`.targets`), split train/test
(stratified for classification), then standardise with training statistics
(:func:`.dataset.make_dataset`).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Sequence

import numpy as np

from .dataset import Dataset, make_dataset
from .paths import resolve_path
from .targets import encode_targets

SKLEARN_DATASETS: dict[str, str] = {
    "breast_cancer": "binary",
    "digits": "multiclass",
    "iris": "multiclass",
    "wine": "multiclass",
    "diabetes": "regression",
}
"""Names accepted by :func:`sklearn_dataset` and their task."""


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r} is not valid; expected 0 <= test_fraction < 1")


def split_indices(n: int, test_fraction: float, seed: int, stratify: np.ndarray | None = None):
    """Return ``(train_idx, test_idx)`` for ``n`` rows (``test_idx`` is ``None`` if ``test_fraction == 0``).

    Uses :func:`sklearn.model_selection.train_test_split` with ``random_state=seed``,
    stratified on ``stratify`` when given (classification).
    """
    _check_fraction(test_fraction)
    idx = np.arange(n)
    if test_fraction == 0:
        return idx, None
    from sklearn.model_selection import train_test_split

    try:
        train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError as e:
        raise ValueError(
            f"cannot split {n} rows with test_fraction={test_fraction!r}"
            f"{' (stratified by class)' if stratify is not None else ''}: {e}"
        ) from e
    return np.sort(train), np.sort(test)


def _finish(
    name: str,
    task: str,
    x: np.ndarray,
    y: np.ndarray,
    classes: list | None,
    test_fraction: float,
    seed: int,
    standardize: bool,
    feature_names: Sequence[str] | None,
    meta: dict[str, Any],
) -> Dataset:
    train, test = split_indices(len(x), test_fraction, seed, stratify=None if task == "regression" else y)
    if classes is not None:
        meta = {"classes": classes, **meta}
    return make_dataset(
        name, task, x[train], y[train],
        None if test is None else x[test], None if test is None else y[test],
        standardize_x=standardize, standardize_y=standardize,
        num_classes=None if classes is None else max(len(classes), 2),
        feature_names=feature_names,
        meta={**meta, "train_index": train, "test_index": test, "seed": seed, "test_fraction": test_fraction},
    )


def sklearn_dataset(name: str, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True) -> Dataset:
    """Load one of scikit-learn's bundled datasets (no network): breast_cancer, digits, iris, wine, diabetes.

    breast_cancer is ``"binary"`` (float 0/1, 0 = malignant), digits/iris/wine ``"multiclass"``,
    diabetes ``"regression"`` (raw, unscaled features).  The split is
    :func:`sklearn.model_selection.train_test_split` with ``random_state=seed``, stratified for
    classification.  With ``standardize`` inputs (and diabetes' target) are standardised with
    training statistics; constant columns (digits' blank pixels) get std 1.
    ``meta["classes"]`` holds the class names.
    """
    if name not in SKLEARN_DATASETS:
        raise ValueError(
            f"name={name!r} is not a bundled scikit-learn dataset; expected one of {sorted(SKLEARN_DATASETS)}"
        )
    import sklearn.datasets

    loader = getattr(sklearn.datasets, f"load_{name}")
    bunch = loader(scaled=False) if name == "diabetes" else loader()
    task = SKLEARN_DATASETS[name]
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    classes = None
    if task != "regression":
        y = y.astype(np.int64)
        classes = [str(c) for c in bunch.target_names]
    return _finish(name, task, x, y, classes, test_fraction, seed, standardize,
                   list(bunch.feature_names), {"source": f"sklearn.datasets.load_{name}"})


def _parse_column(values: list[str]) -> np.ndarray | None:
    """Float64 array if every value parses as a number, else ``None``."""
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        return None


def csv_dataset(
    path: str | os.PathLike,
    target: str | Sequence[str],
    task: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    delimiter: str = ",",
) -> Dataset:
    """Load a delimited text file with a header row.

    ``target`` names the target column (a list of names gives a multi-output regression
    target of shape ``(N, T)``).  Every other column is a feature: numeric columns (every
    value parses as a number) are used as is, any other column is one-hot encoded with one
    column ``"<name>=<value>"`` per distinct value (sorted); ``meta["categories"]`` records
    them.  ``task=None`` infers the task (:func:`.targets.infer_task`); class labels are mapped
    to ``0..K-1`` in sorted order with the original labels in ``meta["classes"]``.  The split
    and standardisation are as in :func:`sklearn_dataset`.  Surrounding whitespace of fields
    is stripped and blank lines are skipped.
    """
    found = resolve_path(path, "", "CSV file", "Pass the path of an existing delimited text file with a header row.")
    if found.is_dir():
        raise FileNotFoundError(f"CSV file not found: {found} is a directory; expected a file with a header row")
    with open(found, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ValueError(f"path={str(found)!r} has no data rows; expected a header row followed by data")
    header, rows = rows[0], rows[1:]
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise ValueError(
                f"path={str(found)!r}: data row {i + 1} has {len(r)} fields but the header has {len(header)} "
                f"(delimiter={delimiter!r})"
            )
    targets = [target] if isinstance(target, str) else list(target)
    missing = [t for t in targets if t not in header]
    if missing or not targets:
        raise ValueError(f"target={target!r} is not a column of {found}; expected one of {header}")
    columns = {name: [r[j] for r in rows] for j, name in enumerate(header)}

    # targets
    if len(targets) > 1:
        if task not in (None, "regression"):
            raise ValueError(f"task={task!r} is not valid with several target columns; expected 'regression'")
        parsed = [_parse_column(columns[t]) for t in targets]
        bad = [t for t, p in zip(targets, parsed) if p is None]
        if bad:
            raise ValueError(f"target={target!r}: columns {bad} are not numeric; expected numbers for regression")
        y_raw = np.stack(parsed, axis=1)
    else:
        numeric = _parse_column(columns[targets[0]])
        if numeric is None:
            y_raw = np.array(columns[targets[0]])
        elif np.all(np.isfinite(numeric)) and np.all(numeric == np.round(numeric)):
            y_raw = numeric.astype(np.int64)
        else:
            y_raw = numeric
    task, y, classes = encode_targets(y_raw, task)

    # features
    blocks, names, categories = [], [], {}
    for name in header:
        if name in targets:
            continue
        col = _parse_column(columns[name])
        if col is not None:
            blocks.append(col[:, None])
            names.append(name)
        else:
            values, codes = np.unique(np.array(columns[name]), return_inverse=True)
            blocks.append(np.eye(len(values))[codes])
            names.extend(f"{name}={v}" for v in values)
            categories[name] = values.tolist()
    if not blocks:
        raise ValueError(f"path={str(found)!r} has no feature columns besides target={target!r}")
    x = np.concatenate(blocks, axis=1)
    return _finish(found.stem, task, x, y, classes, test_fraction, seed, standardize, names,
                   {"path": str(found), "target": target, "categories": categories})


def npz_dataset(
    path: str | os.PathLike,
    x_key: str = "x",
    y_key: str = "y",
    task: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    x_test_key: str = "x_test",
    y_test_key: str = "y_test",
) -> Dataset:
    """Load arrays from a ``numpy.savez`` archive.

    ``x`` may have any shape ``(N, ...)``; ``y`` is ``(N,)`` (or ``(N, T)`` for regression).
    If the archive holds both ``x_test_key`` and ``y_test_key`` those arrays are the test
    split, otherwise the data are split as in :func:`sklearn_dataset`.  An optional
    ``feature_names`` array is used if present.  Task inference, label encoding
    (``meta["classes"]``) and standardisation follow :func:`csv_dataset`; label codes are
    assigned over train and test together, so both share one mapping.
    """
    found = resolve_path(path, "", "NPZ file", "Pass the path of an archive written by numpy.savez.")
    with np.load(found, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for arg, key in (("x_key", x_key), ("y_key", y_key)):
        if key not in arrays:
            raise ValueError(f"{arg}={key!r} is not an array in {found}; expected one of {sorted(arrays)}")
    x, y = arrays[x_key], arrays[y_key]
    if len(x) != len(y):
        raise ValueError(f"{x_key!r} has {len(x)} rows but {y_key!r} has {len(y)} in {found}; expected equal")
    feature_names = arrays["feature_names"].tolist() if "feature_names" in arrays else None
    meta: dict[str, Any] = {"path": str(found)}
    if x_test_key in arrays and y_test_key in arrays:
        x_te, y_te = arrays[x_test_key], arrays[y_test_key]
        if len(x_te) != len(y_te):
            raise ValueError(f"{x_test_key!r} and {y_test_key!r} have different lengths in {found}")
        task, y_all, classes = encode_targets(np.concatenate([y, y_te]), task)
        n = len(y)
        if classes is not None:
            meta["classes"] = classes
        return make_dataset(
            found.stem, task, x.astype(np.float64), y_all[:n], x_te.astype(np.float64), y_all[n:],
            standardize_x=standardize, standardize_y=standardize,
            num_classes=None if classes is None else max(len(classes), 2),
            feature_names=feature_names, meta=meta,
        )
    task, y, classes = encode_targets(y, task)
    return _finish(found.stem, task, x.astype(np.float64), y, classes, test_fraction, seed, standardize,
                   feature_names, meta)
