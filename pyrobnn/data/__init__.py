"""Datasets for pyrobnn: toy regression, UCI benchmarks, tabular files, Fashion-MNIST, Mushroom,
recommender data (ratings, social graph, item content).

Every loader reads local files (no network) and returns a :class:`Dataset` of float32 inputs
and task-typed targets, standardised with training-split statistics where asked.  Bad file
content or a bad loader argument raises :class:`DataError` (a ``ValueError``) naming the file,
column or array key, row and value; a missing file raises ``FileNotFoundError``.
"""

from .bandit import mushroom
from .dataset import TASKS, Dataset, make_dataset, standardize
from .errors import DataError
from .images import FASHION_MNIST_CLASSES, fashion_mnist, read_idx
from .paths import DATA_ROOT_ENV
from .recsys import RecsysData, RecsysSplit, recsys, recsys_synthetic, split_ratings
from .registry import LOADERS, load
from .tabular import SKLEARN_DATASETS, csv_dataset, npz_dataset, sklearn_dataset
from .targets import infer_task
from .toy import toy_curve, toy_function
from .uci import UCI_DATASETS, uci, uci_dir, uci_n_splits

__all__ = [
    "DATA_ROOT_ENV",
    "FASHION_MNIST_CLASSES",
    "LOADERS",
    "SKLEARN_DATASETS",
    "TASKS",
    "UCI_DATASETS",
    "DataError",
    "Dataset",
    "RecsysData",
    "RecsysSplit",
    "csv_dataset",
    "fashion_mnist",
    "infer_task",
    "load",
    "make_dataset",
    "mushroom",
    "npz_dataset",
    "read_idx",
    "recsys",
    "recsys_synthetic",
    "sklearn_dataset",
    "split_ratings",
    "standardize",
    "toy_curve",
    "toy_function",
    "uci",
    "uci_dir",
    "uci_n_splits",
]
