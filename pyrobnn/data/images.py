"""Image data in the IDX format (MNIST, Fashion-MNIST), read with numpy only.

IDX layout (big-endian): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, one uint32 per
dimension, then the data in C order.  Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from .dataset import Dataset, make_dataset
from .errors import DataError

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FASHION_HOW_TO_GET = (
    "Install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
    "which puts the IDX files in /usr/share/datasets/fashion-mnist/, or pass root=<folder with "
    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
    "t10k-labels-idx1-ubyte[.gz]>."
)


def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | os.PathLike, max_items: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed, detected from its first bytes) into a numpy array.

    Returns an array of the file's shape and type (native byte order).  ``max_items`` reads
    only the first items along axis 0, which avoids decompressing the rest.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: bad magic number, unknown type code or truncated data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with _open(path) as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[:2] != b"\x00\x00" or magic[2] not in IDX_DTYPES:
            raise DataError(None,
                f"{path} is not an IDX file: magic bytes {magic.hex()}; expected 0000 + type code in "
                f"{[hex(k) for k in IDX_DTYPES]} + number of dimensions"
            )
        dtype = np.dtype(IDX_DTYPES[magic[2]])
        ndim = magic[3]
        header = f.read(4 * ndim)
        if len(header) != 4 * ndim:
            raise DataError(None, f"{path}: truncated IDX header; expected {ndim} dimension sizes")
        shape = list(struct.unpack(f">{ndim}I", header))
        if max_items is not None and ndim > 0:
            shape[0] = min(shape[0], int(max_items))
        count = int(np.prod(shape, dtype=np.int64))
        raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise DataError(None, f"{path}: truncated IDX data; expected {count * dtype.itemsize} bytes for shape "
                         f"{tuple(shape)}, got {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"Fashion-MNIST file not found: looked at {root / stem} and {root / (stem + '.gz')}. {_FASHION_HOW_TO_GET}"
    )


def _check_count(arg: str, value: int | None, available: int, allow_zero: bool) -> None:
    if value is None:
        return
    low = 0 if allow_zero else 1
    if int(value) != value or not low <= value <= available:
        raise DataError(None, f"{arg}={value!r} is not valid; expected an integer {low} <= {arg} <= {available} or None")


def fashion_mnist(
    root: str | os.PathLike = FASHION_MNIST_ROOT,
    flatten: bool = False,
    n_train: int | None = None,
    n_test: int | None = None,
    normalize: bool = True,
) -> Dataset:
    """Load Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from local IDX files.

    ``root`` holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or ``.gz`` (the
    Debian package ``dataset-fashion-mnist`` installs them in
    ``/usr/share/datasets/fashion-mnist``).  Inputs are float32 of shape ``(N, 1, 28, 28)``,
    or ``(N, 784)`` with ``flatten``; ``normalize`` scales pixels to ``[0, 1]`` (else 0..255).
    Labels are int64 in ``0..9``; ``meta["classes"]`` holds the class names.  ``n_train`` /
    ``n_test`` keep the first examples of each file (``n_test=0``: no test split).
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder not found: {folder}. {_FASHION_HOW_TO_GET}")
    _check_count("n_train", n_train, 60000, allow_zero=False)
    _check_count("n_test", n_test, 10000, allow_zero=True)

    def load(prefix: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        x = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"), n)
        y = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"), n)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(None, f"{folder}: {prefix} images have shape {x.shape} and labels {y.shape}; "
                             "expected (N, rows, cols) and (N,)")
        if n is not None and len(x) < n:
            arg = "n_train" if prefix == "train" else "n_test"
            raise DataError(None, f"{arg}={n} exceeds the {len(x)} examples in {folder}")
        return x, y

    x_train, y_train = load("train", n_train)
    x_test = y_test = None
    if n_test != 0:
        x_test, y_test = load("t10k", n_test)

    def images(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        if normalize:
            x /= 255.0
        return x.reshape(len(x), -1) if flatten else x[:, None, :, :]

    return make_dataset(
        "fashion_mnist", "multiclass", images(x_train), y_train,
        None if x_test is None else images(x_test), y_test,
        num_classes=10,
        meta={"classes": list(FASHION_MNIST_CLASSES), "root": str(folder), "normalize": normalize},
    )
