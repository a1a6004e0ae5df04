"""Scoped use of the global random number generators.

Library code that needs a seeded stream runs inside :func:`seeded`, and code that may seed or
restore generators runs inside :func:`preserve_rng`, so the caller's random streams (torch's
CPU and CUDA generators, Python's ``random``, NumPy's legacy global state) are left as they
were.
"""

from __future__ import annotations

import random
import secrets
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["preserve_rng", "seeded", "fresh_seed"]


@contextmanager
def preserve_rng():
    """Run a block and restore every global generator it may touch afterwards (torch's CPU and
    CUDA generators, Python's ``random``, NumPy's legacy global state), so library code that
    seeds or restores generators leaves the caller's random streams as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextmanager
def seeded(seed: int | None):
    """Run a block with torch's CPU and CUDA generators seeded with ``seed`` and restore every
    global generator afterwards (:func:`preserve_rng`), so the caller's random stream is untouched
    (``None``: no change)."""
    if seed is None:
        yield
        return
    with preserve_rng():
        _seed_torch(int(seed))
        yield


def _seed_torch(seed: int) -> None:
    """Seed torch's CPU generator and those of the accelerators present (CUDA, MPS), as
    :func:`torch.manual_seed` does for them.  Unlike it, nothing is queued for accelerators the
    machine lacks: torch records a stack trace with every such queued seed, which cost more than a
    small fit's setup."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)


def fresh_seed() -> int:
    """A new seed in [0, 2**32 − 1] from the operating system's entropy (:mod:`secrets`), drawn
    without reading or advancing any global generator; record it to reproduce the run."""
    return secrets.randbits(32)
