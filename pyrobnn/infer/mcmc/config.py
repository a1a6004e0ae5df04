"""The samplers' settings (:class:`NUTSConfig`) and constants: kernels, backends, chain methods,
tree-depth and divergence limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import partial

from ...utils.validation import ArgumentTypeError, check_bool, check_choice, check_int, check_number


KERNELS = ("nuts", "hmc", "chees")
BACKENDS = ("torch", "pyro", "native")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
#: deepest NUTS tree accepted: a tree of depth d takes up to 2^d − 1 leapfrog steps per draw
MAX_TREE_DEPTH = 30
MAX_ENERGY_ERROR = 1000.0  # divergence threshold (Stan, Pyro, NumPyro)
_LOG_STEP_TARGET = math.log(0.8)  # step-size heuristic: double/halve until exp(-ΔH) crosses 0.8 (Stan)


@dataclass(frozen=True)
class NUTSConfig:
    """The settings of one NUTS/HMC run — the single place they are defined.

    :func:`~pyrobnn.infer.mcmc.fit_nuts` takes them as keyword arguments (whose defaults are
    these) or as ``config=NUTSConfig(...)``; the spec schema's ``[mcmc]`` table derives its
    fields' defaults from them, and the run's ``info["config"]`` records them.  Each field is
    checked on construction (``ValueError``/``TypeError`` naming it):

    ``num_samples`` kept draws and ``warmup`` adaptation iterations per chain; ``chains``;
    ``target_accept`` ∈ (0, 1), the dual-averaging target; ``max_tree_depth`` (a tree takes at
    most 2^depth − 1 leapfrog steps; ChEES trajectories at most 2^depth); ``jit`` compiles the
    leapfrog step; ``kernel`` "nuts", "hmc" or "chees" (ChEES-HMC, :mod:`.chees`: many chains
    in lock step with a shared adapted trajectory length); ``step_size`` the initial step size (None: found by the doubling heuristic);
    ``num_steps`` HMC's leapfrog steps (None: a trajectory length of 2π);
    ``adapt_step_size`` / ``adapt_mass_matrix``; ``init`` "model", "median" (or, to
    fit_nuts, a dict of site values); ``backend`` "torch" | "pyro" | "native" (C code for MLPs, :mod:`.native`; None: torch for a BNN);
    ``chain_method`` "vectorized" | "sequential" | "parallel" (None: the backend's default);
    ``checkpoint_every`` iterations between checkpoints."""

    num_samples: int = 500
    warmup: int = 500
    chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10
    jit: bool = True
    kernel: str = "nuts"
    step_size: float | None = None
    num_steps: int | None = None
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True
    init: str | dict = "model"
    backend: str | None = None
    chain_method: str | None = None
    checkpoint_every: int = 100

    def __post_init__(self):
        put = partial(object.__setattr__, self)
        put("num_samples", check_int("num_samples", self.num_samples, 1))
        put("warmup", check_int("warmup", self.warmup, 0))
        put("chains", check_int("chains", self.chains, 1))
        put("max_tree_depth", check_int("max_tree_depth", self.max_tree_depth, 1, MAX_TREE_DEPTH))
        put("target_accept", check_number("target_accept", self.target_accept, 0.0, 1.0, lo_open=True, hi_open=True,
                                          expected="a number that lies in (0, 1)"))
        check_choice("kernel", self.kernel, KERNELS)
        if self.step_size is not None:
            put("step_size", check_number("step_size", self.step_size, 0.0, lo_open=True,
                                          expected="a positive number or None"))
        if self.num_steps is not None:
            put("num_steps", check_int("num_steps", self.num_steps, 1))
        for name in ("jit", "adapt_step_size", "adapt_mass_matrix"):
            check_bool(name, getattr(self, name))
        if isinstance(self.init, str) and self.init not in ("model", "median"):
            raise ValueError(f"init must be 'model', 'median' or a dict {{site: value}}, got {self.init!r}")
        if not isinstance(self.init, (str, dict)):
            raise ArgumentTypeError(f"init must be 'model', 'median' or a dict {{site: value}}, "
                                    f"got {type(self.init).__name__}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.chain_method is not None and self.chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {self.chain_method!r}")
        check_int("checkpoint_every", self.checkpoint_every)

    def record(self) -> dict:
        """The settings as plain data, for a run's metadata (a dict ``init`` as "given")."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(out["init"], dict):
            out["init"] = "given"
        return out


#: the defaults of every NUTS/HMC setting
NUTS_DEFAULTS = NUTSConfig()
