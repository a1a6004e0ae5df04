"""The 1-D toy regression curve of Blundell et al. (2015).

Blundell, Cornebise, Kavukcuoglu & Wierstra, "Weight Uncertainty in Neural Networks",
ICML 2015, section 5.2:  ``y = x + 0.3 sin(2π(x+ε)) + 0.3 sin(4π(x+ε)) + ε``,
``ε ~ N(0, 0.02²)``, training inputs ``x ~ U(0, 0.5)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .dataset import Dataset, make_dataset
from .errors import DataError


def toy_function(x, eps=0.0):
    """Evaluate ``x + 0.3 sin(2π(x+eps)) + 0.3 sin(4π(x+eps)) + eps`` (Blundell et al. 2015).

    Works on numpy arrays, torch tensors and floats; ``eps=0`` gives the noise-free curve.
    """
    sin = torch.sin if isinstance(x, torch.Tensor) else np.sin
    z = x + eps
    return x + 0.3 * sin(2 * math.pi * z) + 0.3 * sin(4 * math.pi * z) + eps


def toy_curve(
    n_train: int = 100,
    n_test: int = 200,
    noise: float = 0.02,
    x_range: tuple[float, float] = (0.0, 0.5),
    test_range: tuple[float, float] = (-0.2, 1.2),
    seed: int = 0,
    standardize_x: bool = False,
    n_heldout: int = 0,
) -> Dataset:
    """Toy regression data of Blundell et al. (2015), "Weight Uncertainty in Neural Networks".

    With ``rng = numpy.random.default_rng(seed)`` the draws are, in this order:
    ``x = rng.uniform(*x_range, n_train)``, ``eps = rng.normal(0, noise, n_train)``,
    then ``eps_test = rng.normal(0, noise, n_test)`` for the test grid
    ``numpy.linspace(*test_range, n_test)``; targets are :func:`toy_function(x, eps)`.
    The test grid extends beyond the training interval to show in-between/out-of-range
    uncertainty.  ``x`` has shape ``(N, 1)``, ``y`` shape ``(N,)``; nothing is standardised.
    ``n_test=0`` gives no test split.

    ``n_heldout > 0`` makes the test split answer two questions apart: inside ``x_range`` the
    grid is replaced by ``n_heldout`` held-out points drawn like the training data
    (``x_held = rng.uniform(*x_range, n_heldout)``, then their noise, both drawn after the
    grid's noise), so calibration measured there is calibration on the data's distribution;
    the grid points outside ``x_range`` remain and show the behaviour away from the data.
    The test split is then sorted by ``x``.  With ``standardize_x=True`` the inputs (train and
    test) are standardised with the training statistics, kept in ``x_mean``/``x_std`` —
    the training interval then spans about ±1.7 and the test grid about [−3, 6.6], which lets
    a network with unit-scale priors follow the curve's wiggles.
    """
    if int(n_train) != n_train or n_train < 1:
        raise DataError(None, f"n_train={n_train!r} is not valid; expected a positive integer")
    if int(n_test) != n_test or n_test < 0:
        raise DataError(None, f"n_test={n_test!r} is not valid; expected a non-negative integer")
    if int(n_heldout) != n_heldout or n_heldout < 0:
        raise DataError(None, f"n_heldout={n_heldout!r} is not valid; expected a non-negative integer")
    if n_heldout and not n_test:
        raise DataError(None, f"n_heldout={n_heldout!r} needs a test grid; expected n_test > 0")
    if noise < 0:
        raise DataError(None, f"noise={noise!r} is not valid; expected a standard deviation >= 0")
    for arg, (lo, hi) in (("x_range", x_range), ("test_range", test_range)):
        if not lo < hi:
            raise DataError(None, f"{arg}={(lo, hi)!r} is not valid; expected (low, high) with low < high")
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], int(n_train))
    eps = rng.normal(0.0, noise, int(n_train))
    y = toy_function(x, eps)
    x_test = y_test = None
    if n_test:
        x_test = np.linspace(test_range[0], test_range[1], int(n_test))
        y_test = toy_function(x_test, rng.normal(0.0, noise, int(n_test)))
        if n_heldout:
            x_held = rng.uniform(x_range[0], x_range[1], int(n_heldout))
            y_held = toy_function(x_held, rng.normal(0.0, noise, int(n_heldout)))
            away = (x_test < x_range[0]) | (x_test > x_range[1])
            x_test, y_test = np.concatenate([x_test[away], x_held]), np.concatenate([y_test[away], y_held])
            order = np.argsort(x_test, kind="stable")
            x_test, y_test = x_test[order], y_test[order]
        x_test = x_test[:, None]
    return make_dataset(
        "toy_curve", "regression", x[:, None], y, x_test, y_test,
        standardize_x=bool(standardize_x), feature_names=["x"],
        meta={"noise": noise, "x_range": tuple(x_range), "test_range": tuple(test_range), "seed": seed,
              "n_heldout": int(n_heldout)},
    )
