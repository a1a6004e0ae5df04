"""Constants of the samplers: kernels, backends, chain methods, tree-depth and divergence limits."""

from __future__ import annotations

import math


KERNELS = ("nuts", "hmc")
BACKENDS = ("torch", "pyro")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
#: deepest NUTS tree accepted: a tree of depth d takes up to 2^d − 1 leapfrog steps per draw
MAX_TREE_DEPTH = 30
MAX_ENERGY_ERROR = 1000.0  # divergence threshold (Stan, Pyro, NumPyro)
_LOG_STEP_TARGET = math.log(0.8)  # step-size heuristic: double/halve until exp(-ΔH) crosses 0.8 (Stan)
