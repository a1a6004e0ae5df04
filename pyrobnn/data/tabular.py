"""Tabular datasets: scikit-learn's bundled sets, CSV files and NPZ archives.

All three share one path: encode the target (:mod:`.targets`), split train/test
(stratified for classification), then standardise with training statistics
(:func:`.dataset.make_dataset`).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .csvtable import Table, read_table
from .dataset import Dataset, make_dataset
from .errors import DataError, Location
from .paths import resolve_path
from .targets import check_task, encode_targets
from .values import at_index, check_numeric_dtype, check_real_values

SKLEARN_DATASETS: dict[str, str] = {
    "breast_cancer": "binary",
    "digits": "multiclass",
    "iris": "multiclass",
    "wine": "multiclass",
    "diabetes": "regression",
}
"""Names accepted by :func:`sklearn_dataset` and their task."""


def _check_split_args(test_fraction, seed) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.integer, np.floating)) \
            or not 0.0 <= test_fraction < 1.0:
        raise DataError(None, f"test_fraction={test_fraction!r} is not valid; expected a number with "
                              "0 <= test_fraction < 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DataError(None, f"seed={seed!r} is not valid; expected an integer with 0 <= seed < 2**32")


def split_indices(n: int, test_fraction: float, seed: int, stratify: np.ndarray | None = None):
    """Return ``(train_idx, test_idx)`` for ``n`` rows (``test_idx`` is ``None`` if ``test_fraction == 0``).

    Uses :func:`sklearn.model_selection.train_test_split` with ``random_state=seed``,
    stratified on ``stratify`` when given (classification).

    Raises:
        DataError: invalid ``test_fraction``/``seed``, or too few rows (or too few per class) to split.
    """
    _check_split_args(test_fraction, seed)
    idx = np.arange(n)
    if test_fraction == 0:
        return idx, None
    from sklearn.model_selection import train_test_split

    try:
        train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError as e:
        raise DataError(None,
                        f"cannot split {n} rows with test_fraction={test_fraction!r}"
                        f"{' (stratified by class)' if stratify is not None else ''}: {e}") from None
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
    if not isinstance(name, str) or name not in SKLEARN_DATASETS:
        raise DataError(
            None, f"name={name!r} is not a bundled scikit-learn dataset; expected one of {sorted(SKLEARN_DATASETS)}"
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


def _column_names(arg: str, value, table: Table) -> list[str]:
    """``value`` (a column name or a sequence of them) as a list of distinct header names."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise DataError(None, f"{arg}={value!r} is not valid; expected a column name or a list of column names "
                              f"of {table.path} (one of {table.header})")
    for n in names:
        if n not in table.header:
            raise DataError(None, f"{arg}={value!r}: {n!r} is not a column of {table.path}; expected one of "
                                  f"{table.header}")
    if len(set(names)) != len(names):
        raise DataError(None, f"{arg}={value!r} names a column twice; expected distinct column names")
    return list(names)


def _target_values(table: Table, name: str, task: str | None) -> np.ndarray:
    """The raw target column: numbers (int64 only if integer-written, see :mod:`.csvtable`) or text labels."""
    if task == "regression":
        return table.numbers(name, hint="; task='regression' needs a numeric target")
    if table.is_numeric(name):
        hint = ("; a target column is numeric when more than half of its cells are numbers: fix or remove the "
                "row")
        return table.numbers(name, hint=hint)
    return table.labels(name)


def csv_dataset(
    path: str | os.PathLike,
    target: str | Sequence[str],
    task: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    delimiter: str = ",",
    categorical: str | Sequence[str] | None = None,
) -> Dataset:
    """Load a delimited text file with a header row.

    The file is read by the rules of :mod:`pyrobnn.data.csvtable`: UTF-8, fields stripped of
    surrounding whitespace, blank lines skipped; a column is numeric when more than half of its
    non-empty cells are numbers, and then every cell must be a finite number within float32's
    range; an empty cell, ``nan`` or ``inf`` is an error naming the file, column, row and value
    (nothing is imputed).

    ``target`` names the target column (a list of names gives a multi-output regression
    target of shape ``(N, T)``).  Every other column is a feature: numeric columns are used as
    is; other columns, and those named in ``categorical``, are one-hot encoded with one column
    ``"<name>=<value>"`` per distinct value (sorted as text); ``meta["categories"]`` records
    them.  Pass ``categorical=[...]`` for a column of categories written as numbers (codes, zip
    codes), or when a column is mostly numbers and the rest are categories.

    The task is ``task`` if given.  ``task=None`` infers it from the target column's values
    (:func:`.targets.infer_task`): text labels are classes; a column whose cells are all
    *written* as integers (``3``, not ``3.0`` or ``1e30``) is read as integers, which are
    classes when there are at most 20 distinct values; any other numeric column is regression.
    Class labels are mapped to ``0..K-1`` in sorted order with the original labels in
    ``meta["classes"]``; with a classification ``task``, numeric labels must be whole numbers
    (``2.0`` is label 2; ``2.5`` is an error).  The split and standardisation are as in
    :func:`sklearn_dataset`.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: bad content (the message names the file, column, data row, line and value)
            or an invalid argument (named).
    """
    check_task(task)
    _check_split_args(test_fraction, seed)
    found = resolve_path(path, "", "CSV file", "Pass the path of an existing delimited text file with a header row.")
    if found.is_dir():
        raise FileNotFoundError(f"CSV file not found: {found} is a directory; expected a file with a header row")
    table = read_table(found, delimiter)
    if isinstance(target, (list, tuple)) and not target:
        raise DataError(None, f"target={target!r} names no column; expected one of {table.header}")
    targets = _column_names("target", target, table)
    categorical_names = [] if categorical is None else _column_names("categorical", categorical, table)
    both = [n for n in categorical_names if n in targets]
    if both:
        raise DataError(None, f"categorical={categorical!r} names the target column {both[0]!r}; expected feature "
                              "columns only (set task= to read the target as class labels)")

    # targets
    if len(targets) > 1:
        if task not in (None, "regression"):
            raise DataError(None, f"task={task!r} is not valid with several target columns; expected 'regression'")
        hint = "; a multi-column target is regression and needs numbers"
        y_raw = np.stack([table.numbers(t, hint).astype(np.float64) for t in targets], axis=1)
    else:
        y_raw = _target_values(table, targets[0], task)

    def locate(index: tuple[int, ...]) -> Location:
        column = targets[index[1]] if len(index) > 1 else targets[0]
        return table.where(column, index[0]) if index else Location(path=table.path, column=column)

    task, y, classes = encode_targets(y_raw, task, locate=locate)

    # features
    blocks, names, categories = [], [], {}
    for name in table.header:
        if name in targets:
            continue
        if name in categorical_names or not table.is_numeric(name):
            values, block = table.one_hot(name)
            blocks.append(block)
            names.extend(f"{name}={v}" for v in values)
            categories[name] = values
        else:
            hint = f"; if the column holds categories, pass categorical=[{name!r}]"
            blocks.append(table.numbers(name, hint).astype(np.float64)[:, None])
            names.append(name)
    if not blocks:
        raise DataError(str(found), f"no feature columns besides target={target!r}; expected at least one "
                                          "more column")
    x = np.concatenate(blocks, axis=1)
    return _finish(found.stem, task, x, y, classes, test_fraction, seed, standardize, names,
                   {"path": str(found), "target": target, "categories": categories})


_NPZ_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError, KeyError,
                    NotImplementedError)
"""What numpy and zipfile raise for an archive or member that is not a valid, pickle-free
``.npz``/``.npy`` (``NotImplementedError``: a zip feature such as an unknown compression or version)."""


def _read_npz(found: Path, keys: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays ``keys`` that the archive holds (others are not read) and the names of all its arrays."""
    origin = str(found)
    try:
        archive = np.load(found, allow_pickle=False)
    except _NPZ_READ_ERRORS as e:
        raise DataError(origin, f"cannot be read as an NPZ archive ({type(e).__name__}: {e}); expected an archive "
                                "written by numpy.savez without pickled objects") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(origin, "holds a single .npy array; expected an .npz archive of named arrays written by "
                                "numpy.savez (e.g. numpy.savez(path, x=x, y=y))")
    arrays = {}
    with archive:
        present = list(archive.files)
        for k in keys:
            if k not in present:
                continue
            try:
                arrays[k] = archive[k]
            except _NPZ_READ_ERRORS as e:
                raise DataError(Location(path=origin, key=k),
                                f"cannot be read ({type(e).__name__}: {e}); expected a numeric (or, for labels, "
                                "string) array saved without pickled objects") from None
    return arrays, present


def _check_x(x: np.ndarray, origin: str, key: str) -> None:
    where = Location(path=origin, key=key)
    check_numeric_dtype(x, where)
    if x.ndim < 2:
        raise DataError(where, f"has shape {x.shape}; expected at least 2 dimensions (N, features...) — "
                               "reshape a single feature to (N, 1)")
    if x.shape[0] == 0:
        raise DataError(where, f"has shape {x.shape}, no rows; expected at least one row")
    if x[0].size == 0:
        raise DataError(where, f"has shape {x.shape}, no features; expected at least one value per row")
    check_real_values(x, at_index(origin, key))


def _check_y(y: np.ndarray, n: int, origin: str, key: str, x_key: str) -> None:
    where = Location(path=origin, key=key)
    if y.dtype.kind not in "biufUS":
        raise DataError(where, f"holds {y.dtype} values (dtype kind {y.dtype.kind!r}); expected numbers or "
                               "string labels")
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise DataError(where, f"has shape {y.shape}; expected (N,) or, for several regression targets, (N, T) "
                               "with T >= 1")
    if len(y) != n:
        raise DataError(where, f"has {len(y)} rows but {x_key!r} has {n}; expected equal")


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
    """Load arrays from a ``numpy.savez`` archive (read without pickling).

    ``x`` holds numbers of shape ``(N, ...)`` with at least one feature (reshape a single
    feature to ``(N, 1)``); ``y`` is ``(N,)`` numbers or string labels (or ``(N, T)`` numbers
    for regression).  If the archive holds ``x_test_key`` and ``y_test_key`` those arrays are
    the test split (one without the other is an error), otherwise the data are split as in
    :func:`sklearn_dataset`.  An optional 1-D ``feature_names`` array is used if present.
    Task inference (:func:`.targets.infer_task`: float targets are regression, integer targets
    with at most 20 distinct values are classes), label encoding (``meta["classes"]``) and
    standardisation follow :func:`csv_dataset`; label codes are assigned over train and test
    together, so both share one mapping.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: the file is not a pickle-free ``.npz``; an array is missing, not numeric
            (or, for targets, not strings), of the wrong shape, empty, holds NaN/infinity or
            values beyond float32's range; an invalid argument.  The message names the file,
            the array key and, for a bad value, its index.
    """
    check_task(task)
    _check_split_args(test_fraction, seed)
    for arg, key in (("x_key", x_key), ("y_key", y_key), ("x_test_key", x_test_key), ("y_test_key", y_test_key)):
        if not isinstance(key, str) or not key:
            raise DataError(None, f"{arg}={key!r} is not valid; expected the name of an array in the archive")
    found = resolve_path(path, "", "NPZ file", "Pass the path of an archive written by numpy.savez.")
    if found.is_dir():
        raise FileNotFoundError(f"NPZ file not found: {found} is a directory; expected an archive written by "
                                "numpy.savez")
    origin = str(found)
    arrays, present = _read_npz(found, [x_key, y_key, x_test_key, y_test_key, "feature_names"])
    for arg, key in (("x_key", x_key), ("y_key", y_key)):
        if key not in arrays:
            raise DataError(None, f"{arg}={key!r} is not an array in {found}; expected one of {sorted(present)}")
    x, y = arrays[x_key], arrays[y_key]
    _check_x(x, origin, x_key)
    _check_y(y, len(x), origin, y_key, x_key)
    feature_names = None
    if "feature_names" in arrays:
        names = arrays["feature_names"]
        if names.ndim != 1 or (x.ndim == 2 and len(names) != x.shape[1]):
            raise DataError(Location(path=origin, key="feature_names"),
                            f"has shape {names.shape}; expected one name per feature, shape ({x.shape[1]},)"
                            if x.ndim == 2 else f"has shape {names.shape}; expected a 1-D array of names")
        feature_names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in names.tolist()]
    meta: dict[str, Any] = {"path": origin}
    has_test = [k for k in (x_test_key, y_test_key) if k in arrays]
    if len(has_test) == 1:
        other = y_test_key if has_test[0] == x_test_key else x_test_key
        raise DataError(Location(path=origin, key=has_test[0]),
                        f"is in the archive but {other!r} is not; expected both test arrays or neither")
    if has_test:
        x_te, y_te = arrays[x_test_key], arrays[y_test_key]
        _check_x(x_te, origin, x_test_key)
        if x_te.shape[1:] != x.shape[1:]:
            raise DataError(Location(path=origin, key=x_test_key),
                            f"has shape {x_te.shape}; expected (N, {', '.join(map(str, x.shape[1:]))}) like "
                            f"{x_key!r}")
        _check_y(y_te, len(x_te), origin, y_test_key, x_test_key)
        if y_te.shape[1:] != y.shape[1:] or (y.dtype.kind in "US") != (y_te.dtype.kind in "US"):
            raise DataError(Location(path=origin, key=y_test_key),
                            f"has shape {y_te.shape} and dtype {y_te.dtype}; expected targets like {y_key!r} "
                            f"(shape {y.shape}, dtype {y.dtype})")
        n = len(y)

        def locate(index: tuple[int, ...]) -> Location:
            if index and index[0] >= n:
                return Location(path=origin, key=y_test_key, index=(index[0] - n, *index[1:]))
            return Location(path=origin, key=y_key, index=index)

        task, y_all, classes = encode_targets(np.concatenate([y, y_te]), task, locate=locate)
        if classes is not None:
            meta["classes"] = classes
        return make_dataset(
            found.stem, task, x.astype(np.float64), y_all[:n], x_te.astype(np.float64), y_all[n:],
            standardize_x=standardize, standardize_y=standardize,
            num_classes=None if classes is None else max(len(classes), 2),
            feature_names=feature_names, meta=meta,
        )
    task, y, classes = encode_targets(y, task, locate=at_index(origin, y_key))
    return _finish(found.stem, task, x.astype(np.float64), y, classes, test_fraction, seed, standardize,
                   feature_names, meta)
