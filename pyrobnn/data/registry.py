"""Load any dataset by source name."""

from __future__ import annotations

from typing import Any, Callable

from .dataset import Dataset
from .errors import DataError
from .images import fashion_mnist
from .tabular import csv_dataset, npz_dataset, sklearn_dataset
from .toy import toy_curve
from .uci import uci

LOADERS: dict[str, Callable[..., Dataset]] = {
    "toy": toy_curve,
    "sklearn": sklearn_dataset,
    "uci": uci,
    "csv": csv_dataset,
    "npz": npz_dataset,
    "fashion_mnist": fashion_mnist,
}
"""Source names accepted by :func:`load` and the loader each calls."""


def load(source: str, **kwargs: Any) -> Dataset:
    """Load a dataset by source name, passing ``kwargs`` to its loader.

    ``"toy"`` → :func:`toy_curve`, ``"sklearn"`` → :func:`sklearn_dataset` (``name=``),
    ``"uci"`` → :func:`uci` (``root=``, ``name=``, ``split=``), ``"csv"`` →
    :func:`csv_dataset` (``path=``, ``target=``), ``"npz"`` → :func:`npz_dataset`
    (``path=``), ``"fashion_mnist"`` (or ``"fashion-mnist"``) → :func:`fashion_mnist`.

    Example: ``load("uci", name="bostonHousing", root="/data/uci", split=3)``.
    """
    key = source.replace("-", "_").lower() if isinstance(source, str) else source
    if not isinstance(key, str) or key not in LOADERS:
        raise DataError(None, f"source={source!r} is not a known data source; expected one of {sorted(LOADERS)}")
    return LOADERS[key](**kwargs)
