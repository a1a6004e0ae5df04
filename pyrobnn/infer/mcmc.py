"""Hamiltonian Monte Carlo on a BNN: :func:`fit_nuts` and :func:`fit_hmc`.

The sampler runs on the *same* Pyro model as SVI, full batch (``n_data=None``), and returns a
:class:`~pyrobnn.infer.posterior.Posterior` whose draws are in the ArviZ layout
``(chain, draw, *site_shape)``.

Two backends share the model, the initial values, the seeds and the output:

* ``backend="torch"`` (default for a :class:`~pyrobnn.BNN`): NUTS and HMC written in plain
  PyTorch that advance *all chains at once* on a ``(chains, D)`` tensor.  The potential
  energy is built from the network's own functions (the site priors' ``log_prob`` and
  :meth:`~pyrobnn.BNN.predictive_distribution`), differentiated with ``torch.func`` and, with
  ``jit=True``, traced once to an ATen graph (``make_fx``) and compiled by TorchInductor, one
  leapfrog step per call (small matrix products are rewritten as broadcast-multiply-sum first,
  so that a small network's whole step, gradient included, becomes one fused C++ kernel).
  Pyro's NUTS spends most of its time in per-step Python (a site dictionary, a recursive
  tree, autograd bookkeeping); here a leapfrog step is one compiled call for every chain, and
  the tree bookkeeping is vectorised over the 2^j states of each doubling.  On a 1-10-1 tanh
  net with 50 points (benchmarks/nuts.py) a leapfrog step costs about 25 µs for one chain and
  35 µs for four, against 400-700 µs in Pyro's kernel and about 3 µs per chain in NumPyro,
  whose whole trajectory is one XLA program.
* ``backend="pyro"``: Pyro's own :class:`pyro.infer.NUTS` / :class:`pyro.infer.HMC`, the
  reference implementation.  For a BNN it is handed the same (compiled) potential on one
  packed unconstrained vector, so it skips tracing the model at every step; any other Pyro
  model runs through Pyro's model interface (``jit_compile``).

The NUTS transition is the multinomial variant with the generalised no-U-turn criterion
(Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15, Algorithms 3 and 6; Betancourt
2017, "A Conceptual Introduction to Hamiltonian Monte Carlo", arXiv:1701.02434, sections
A.3-A.4): the trajectory doubles in a random direction; every sub-tree is checked for a
U-turn and for divergence (energy error > 1000), an invalid new sub-tree ends the doubling
without being used, a valid one replaces the proposal with probability
min(1, W_new / W_old) (biased progressive sampling), and within a sub-tree the proposal is a
state drawn with probability proportional to exp(-H).  (Stan's additional U-turn checks across
sub-tree boundaries are not made, as in Pyro and NumPyro.)  Warmup follows Stan's windowed
adaptation (as Pyro's ``WarmupAdapter`` does): dual averaging of the log step size towards
``target_accept`` (Hoffman & Gelman 2014, section 3.2, γ = 0.05, t0 = 10, κ = 0.75) and a
diagonal inverse mass matrix estimated in doubling windows (75 / 25.. / 50 iterations) and
regularised towards 1e-3 as in Stan; the step size is re-initialised by the doubling
heuristic (Hoffman & Gelman 2014, Algorithm 4) after every mass-matrix update.

Empirical-Bayes (adaptive) priors are *frozen* by default: their hyperparameters are buffers
and keep the values they have when sampling starts (set them with ``frozen=``); MCMC samples
the weights given those hyperparameters.  Alternatively ``hyperpriors=`` gives the location or
scale of Normal and Laplace priors a hyperprior, and the hyperparameters are sampled with the
weights (a hierarchical BNN, as in Neal 1996): each becomes a latent site ``hyper.scale`` (or
``hyper.layers.<i>.scale`` for one layer's prior) of the posterior.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median
from torch.distributions import biject_to
from tqdm.auto import tqdm

from ..model.memory import estimate_nuts
from ..model.sites import SitePrior
from ..utils.files import atomic_torch_save
from ..utils.traces import latent_nodes
from ..utils.validation import ArgumentTypeError, check_bool, check_int, check_number
from .arguments import check_dtype, check_fit_memory, check_optional_bool, check_seed, data_bytes, float_dtype_of, \
    prepare_data
from .checkpoint import fingerprint_differences, read_checkpoint, tensor_digest
from .guides import _is_identity, init_to_model
from .interrupt import FitInterrupted, StopOnInterrupt
from .posterior import SamplePosterior
from .svi import place, resolve_device

__all__ = ["fit_nuts", "fit_hmc", "KERNELS", "BACKENDS", "adaptation_schedule", "PotentialEnergy", "HYPER_PARAMETERS",
           "HYPERPRIOR_FAMILIES", "hyperprior"]

KERNELS = ("nuts", "hmc")
BACKENDS = ("torch", "pyro")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
#: deepest NUTS tree accepted: a tree of depth d takes up to 2^d − 1 leapfrog steps per draw
MAX_TREE_DEPTH = 30
MAX_ENERGY_ERROR = 1000.0  # divergence threshold (Stan, Pyro, NumPyro)
_LOG_STEP_TARGET = math.log(0.8)  # step-size heuristic: double/halve until exp(-ΔH) crosses 0.8 (Stan)


# ====================================================================== model → potential
@dataclass(frozen=True)
class _Site:
    name: str
    shape: torch.Size  # constrained value shape
    ushape: torch.Size  # unconstrained shape
    start: int
    stop: int
    transform: object  # unconstrained → constrained
    identity: bool


def _layout(trace) -> tuple[list[_Site], dict]:
    sites, fns, start = [], {}, 0
    for name, node in latent_nodes(trace):
        fn = node["fn"]
        if fn.has_enumerate_support:
            raise ValueError(f"site {name!r} is discrete; NUTS/HMC need continuous latent sites")
        t = biject_to(fn.support)
        value = node["value"].detach()
        u = t.inv(value)
        n = u.numel()
        sites.append(_Site(name, value.shape, u.shape, start, start + n, t, _is_identity(t)))
        fns[name] = fn
        start += n
    if not sites:
        raise ValueError("the model has no latent sample sites to sample")
    return sites, fns


class PotentialEnergy:
    """U(z) = −log p(w(z), D) − log|det ∂w/∂z| for a batch of unconstrained vectors ``z``
    of shape (C, D): one row per chain, every latent site of the model packed into one
    vector (constrained sites through :func:`torch.distributions.biject_to`).

    The density is the model's own: each latent site's prior ``log_prob`` and the likelihood
    from :meth:`~pyrobnn.BNN.predictive_distribution`, summed over the data (full batch)."""

    def __init__(self, model, x, y, sites: list[_Site], fns: dict, hypers: tuple = ()):
        self.model, self.x, self.y = model, x, y
        self.sites, self.fns = sites, fns
        self.dim = sites[-1].stop
        self.hypers = tuple(hypers)
        hyper_priors = {id(h.prior) for h in self.hypers}
        #: weight sites one of whose priors has a sampled hyperparameter
        self._hyper_sites = {name for name, fn in fns.items() if isinstance(fn, SitePrior)
                             and any(id(part.prior) in hyper_priors for part in fn.parts)}
        covered = {id(part.prior) for name in self._hyper_sites for part in fns[name].parts}
        missing = [h.name for h in self.hypers if id(h.prior) not in covered]
        if missing:  # never sample a hyperparameter that no weight site's density uses
            raise ValueError(f"no weight site of the model uses the prior of {missing}")

    def constrain(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """(*S, D) unconstrained → {site: (*S, *shape)} constrained values."""
        batch = z.shape[:-1]
        out = {}
        for s in self.sites:
            u = z[..., s.start:s.stop].reshape(*batch, *s.ushape)
            out[s.name] = (u if s.identity else s.transform(u)).reshape(*batch, *s.shape)
        return out

    def unconstrain(self, values: dict[str, torch.Tensor], batch=()) -> torch.Tensor:
        parts = []
        for s in self.sites:
            v = values[s.name]
            u = v if s.identity else s.transform.inv(v)
            parts.append(u.reshape(*batch, -1))
        return torch.cat(parts, -1)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        c = z.shape[0]
        values, jac = {}, {}
        for s in self.sites:
            u = z[:, s.start:s.stop].reshape(c, *s.ushape)
            if s.identity:
                values[s.name] = u.reshape(c, *s.shape)
            else:
                values[s.name] = v = s.transform(u)
                jac[s.name] = s.transform.log_abs_det_jacobian(u, v).reshape(c, -1).sum(-1)
        # sampled hyperparameters, (C, 1) per chain, by prior
        bound: dict[int, dict[str, torch.Tensor]] = {}
        for h in self.hypers:
            bound.setdefault(id(h.prior), {})[h.param] = values[h.name].reshape(c, 1)
        lp = None
        for s in self.sites:
            v = values[s.name]
            if s.name in self._hyper_sites:
                term = self.fns[s.name].log_prob(v.reshape(c, -1), bound)
            else:
                term = self.fns[s.name].log_prob(v).reshape(c, -1).sum(-1)
            if s.name in jac:
                term = term + jac[s.name]
            lp = term if lp is None else lp + term
        like = self.model.predictive_distribution(self.x, values).log_prob(self.y)
        return lp + like.reshape(c, -1).sum(-1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return -self.log_density(z)


# ---------------------------------------------------------------------- hyperpriors
#: hyperparameters that can be given hyperpriors (of the priors whose ``given_hyperparameters`` list them)
HYPER_PARAMETERS = ("loc", "scale")


#: hyperprior families by name (specs use these names): their parameters, in order
HYPERPRIOR_FAMILIES = {
    "half_cauchy": ("scale",),
    "half_normal": ("scale",),
    "log_normal": ("loc", "scale"),
    "gamma": ("concentration", "rate"),
    "inverse_gamma": ("concentration", "rate"),
    "normal": ("loc", "scale"),
}


def hyperprior(family: str, **params):
    """A hyperprior by name, e.g. ``hyperprior("half_cauchy", scale=1.0)``: one of
    :data:`HYPERPRIOR_FAMILIES`, as a Pyro distribution (every parameter but ``loc`` must be
    positive)."""
    import pyro.distributions as dist

    if family not in HYPERPRIOR_FAMILIES:
        raise ValueError(f"unknown hyperprior family {family!r}; expected one of {sorted(HYPERPRIOR_FAMILIES)}")
    need = HYPERPRIOR_FAMILIES[family]
    if set(params) != set(need):
        raise ValueError(f"hyperprior {family!r} takes {list(need)}, got {sorted(params)}")
    for k, v in params.items():
        v = float(v)
        if not math.isfinite(v) or (k != "loc" and not v > 0):
            raise ValueError(f"hyperprior {family!r}: {k} must be a {'finite' if k == 'loc' else 'positive'} "
                             f"number, got {params[k]!r}")
    cls = {"half_cauchy": dist.HalfCauchy, "half_normal": dist.HalfNormal, "log_normal": dist.LogNormal,
           "gamma": dist.Gamma, "inverse_gamma": dist.InverseGamma, "normal": dist.Normal}[family]
    return cls(*(torch.tensor(float(params[k])) for k in need))


@dataclass(frozen=True)
class _Hyper:
    """A prior hyperparameter sampled with the weights: site ``name``, the prior instance it
    belongs to, which hyperparameter (``"loc"`` or ``"scale"``) and its hyperprior."""

    name: str
    prior: object
    param: str
    dist: object


def _on(dist, like):
    """``dist`` with its parameters on ``like``'s device and dtype (standard families)."""
    try:
        params = {k: torch.as_tensor(getattr(dist, k)).to(like) for k in dist.arg_constraints}
        return type(dist)(**params, validate_args=False)
    except Exception:  # noqa: BLE001 - an unusual distribution is used as given
        return dist


def _prior_layers(model, prior) -> list[int]:
    return [i for i in model.bayesian_layers if model.prior_of(i) is prior]


def _resolve_hyperpriors(model, hyperpriors, like) -> list[_Hyper]:
    """``hyperpriors`` as :func:`fit_nuts` takes it → one :class:`_Hyper` per (prior instance,
    hyperparameter); errors name the key."""
    if not isinstance(hyperpriors, dict):
        raise ValueError(f"hyperpriors must be a dict or None, got {type(hyperpriors).__name__}")
    if not hasattr(model, "prior_modules"):
        raise ValueError("hyperpriors= needs a pyrobnn BNN (a model with priors)")
    wanted = []  # (prior, param, dist, label)
    for key, val in hyperpriors.items():
        if isinstance(key, int) and not isinstance(key, bool):
            if not isinstance(val, dict):
                raise ValueError(f"hyperpriors[{key}] must be a dict {{hyperparameter: distribution}}, got {val!r}")
            wanted += [(model.prior_of(key), k, v, f"hyperpriors[{key}][{k!r}]") for k, v in val.items()]
        else:
            adaptive = [p for p in model.prior_modules if p.adaptive and p.given_hyperparameters]
            if not adaptive:
                raise ValueError(f"hyperpriors[{key!r}]: the model has no adaptive Normal or Laplace prior; use "
                                 f"{{layer: {{{key!r}: ...}}}} to give any layer's Normal or Laplace prior one")
            wanted += [(p, key, val, f"hyperpriors[{key!r}]") for p in adaptive]
    out: list[_Hyper] = []
    seen: dict[tuple[int, str], str] = {}
    every = model.bayesian_layers
    for prior, param, dist, label in wanted:
        if not prior.given_hyperparameters:
            raise ValueError(f"{label}: hyperpriors are supported for Normal and Laplace priors (and their adaptive "
                             f"variants), not {type(prior).__name__}")
        if param not in prior.given_hyperparameters:
            raise ValueError(f"{label}: unknown hyperparameter {param!r}; expected one of "
                             f"{list(prior.given_hyperparameters)}")
        if not isinstance(dist, torch.distributions.Distribution) or dist.batch_shape or dist.event_shape:
            raise ValueError(f"{label} must be a scalar torch/Pyro distribution (e.g. "
                             f"pyro.distributions.HalfCauchy(1.0)), got {dist!r}")
        if param == "scale" and not _positive_support(dist):
            raise ValueError(f"{label}: a scale needs a hyperprior on (0, ∞), got {type(dist).__name__} with "
                             f"support {dist.support}")
        key = (id(prior), param)
        layers = _prior_layers(model, prior)
        if key in seen:
            raise ValueError(f"{label}: {type(prior).__name__}.{param} already has a hyperprior ({seen[key]}); "
                             f"layers {layers} share one prior instance, so one hyperprior covers them all — for "
                             f"one per layer give each layer its own prior (BNN.set_prior(prior, per_layer=True))")
        seen[key] = label
        where = "" if layers == every else "layers." + "+".join(map(str, layers)) + "."
        out.append(_Hyper(f"hyper.{where}{param}", prior, param, _on(dist, like)))
    return out


def _positive_support(dist) -> bool:
    t = biject_to(dist.support)
    probe = t(torch.tensor([-30.0, 0.0, 30.0]))
    return bool((probe > 0).all())


def _value_and_grad_eager(potential: Callable) -> Callable:
    def vg(z):
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            u = potential(z)
            (g,) = torch.autograd.grad(u.sum(), z)
        return u.detach(), g

    return vg


def _value_and_grad_functional(potential: Callable) -> Callable:
    from torch.func import grad_and_value

    def summed(z):
        u = potential(z)
        return u.sum(), u.detach()

    gv = grad_and_value(summed, has_aux=True)

    def vg(z):
        g, (_, u) = gv(z)
        return u, g

    return vg


def _leapfrog_fn(value_and_grad: Callable) -> Callable:
    """One velocity-Verlet step (Neal 2011, "MCMC using Hamiltonian dynamics", eq. 5.18-5.20)
    for every chain.  The phase-space state is packed as ``(C, 3, D)``: position z, momentum r
    and the gradient g of the potential at z; ``step`` (C, 1) carries each chain's signed step
    size and ``inv_mass`` (C, D) its diagonal inverse mass matrix.  Returns the new packed
    state and the potential energy (C,)."""

    def leapfrog(state, step, inv_mass):
        z, r, g = state.unbind(1)
        r = r - (0.5 * step) * g
        z = z + step * (inv_mass * r)
        u, g = value_and_grad(z)
        r = r - (0.5 * step) * g
        return torch.stack([z, r, g], 1), u

    return leapfrog


#: matrix products with at most this many multiply-adds are written as broadcast-multiply-sum
#: before compiling, so that TorchInductor fuses them into its own loops instead of calling a
#: BLAS routine whose fixed cost dominates tiny products (about 2x per leapfrog step for a
#: 1-10-1 net on 50 points); larger products keep the BLAS call
SMALL_MATMUL_FLOPS = 8192


def _small(a, b):
    return math.prod(a.shape) * b.shape[-1] <= SMALL_MATMUL_FLOPS


def _mm(a, b):
    return (a.unsqueeze(-1) * b.unsqueeze(0)).sum(-2) if _small(a, b) else NotImplemented


def _bmm(a, b):
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2) if _small(a, b) else NotImplemented


def _baddbmm(c, a, b, beta=1, alpha=1):
    if beta != 1 or alpha != 1 or not _small(a, b):
        return NotImplemented
    return c + (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _addmm(c, a, b, beta=1, alpha=1):
    if beta != 1 or alpha != 1 or not _small(a, b):
        return NotImplemented
    return c + (a.unsqueeze(-1) * b.unsqueeze(0)).sum(-2)


def _tanh(x):
    """tanh(x) = 1 − 2 / (e^{2x} + 1) on the CPU.  Inductor's CPU code calls SLEEF's tanh,
    which costs 4–10 ns per element depending on the magnitude of x and made tanh more than
    half of a leapfrog step of a small tanh net; the vectorised exp is about twice as fast per
    step.  Exact at ±∞ (e^{2x} → ∞ or 0), absolute error within a few float32 ulps of 1
    elsewhere (tested against torch.tanh).  The gradient keeps ATen's (1 − tanh²) form."""
    if x.device.type != "cpu":
        return NotImplemented
    return 1 - 2 / (torch.exp(2 * x) + 1)


_MATMUL_DECOMPOSITIONS = {}


def _decompositions():
    """ATen rewrites applied while tracing the leapfrog step (small matrix products, tanh)."""
    if not _MATMUL_DECOMPOSITIONS:
        aten = torch.ops.aten
        _MATMUL_DECOMPOSITIONS.update({aten.mm.default: _mm, aten.bmm.default: _bmm,
                                       aten.baddbmm.default: _baddbmm, aten.addmm.default: _addmm,
                                       aten.tanh.default: _tanh})
    return _MATMUL_DECOMPOSITIONS


def _lift_constants(gm) -> list:
    """Turn the tensors a traced graph captured (data, prior buffers) into leading inputs, so
    that the compiler neither folds nor copies them; returns their values."""
    graph = gm.graph
    first = next(n for n in graph.nodes if n.op == "placeholder")
    consts = []
    for node in list(graph.nodes):
        if node.op == "get_attr":
            with graph.inserting_before(first):
                ph = graph.placeholder(f"_constant_{len(consts)}")
            consts.append(getattr(gm, node.target))
            node.replace_all_uses_with(ph)
            graph.erase_node(node)
    graph.lint()
    gm.recompile()
    return consts


def _bar_wanted(progress: bool) -> bool:
    """Pyro's own progress bar only where ours would show: asked for, and stderr a terminal."""
    return bool(progress) and sys.stderr.isatty()


class _NoCudaRuntimeLine(logging.Filter):
    """Drops the one line ``torch.utils.cpp_extension`` logs on import when PyTorch was built for
    CUDA but the machine has no CUDA runtime ("No CUDA runtime is found, using CUDA_HOME=...").
    TorchInductor imports that module to compile CPU kernels too, where CUDA plays no part, so
    the line tells a CPU user nothing they can act on.  Every other record of that logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


def _quiet_cpp_extension_import() -> None:
    """Install :class:`_NoCudaRuntimeLine` on the ``torch.utils.cpp_extension`` logger (once)
    before TorchInductor is imported."""
    log = logging.getLogger("torch.utils.cpp_extension")
    if not any(isinstance(f, _NoCudaRuntimeLine) for f in log.filters):
        log.addFilter(_NoCudaRuntimeLine())


def _compile_direct(fn: Callable, example_args: tuple) -> Callable:
    """Compile straight to Inductor's generated code, skipping the AOT-autograd and dispatch
    wrappers around it (about a quarter of the cost of one small leapfrog step).  Relies on
    Inductor internals; the result is checked against the traced graph once."""
    _quiet_cpp_extension_import()
    from torch._inductor.compile_fx import compile_fx_inner
    from torch._inductor.decomposition import select_decomp_table
    from torch.fx.experimental.proxy_tensor import make_fx

    with pyro.validation_enabled(False):
        gm = make_fx(fn, decomposition_table={**select_decomp_table(), **_decompositions()})(*example_args)
    consts = _lift_constants(gm)
    call = compile_fx_inner(gm, [*consts, *example_args]).current_callable

    def run(*args):
        return call([*consts, *args])

    out, ref = run(*example_args), gm(*consts, *example_args)
    if len(out) != len(ref) or not all(a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-4)
                                       for a, b in zip(out, ref)):
        raise RuntimeError("the directly compiled step disagrees with its traced graph")
    return run


def _compile(fn: Callable, example_args: tuple) -> Callable:
    """Trace ``fn`` to an ATen graph once (``make_fx``, small matrix products decomposed) and
    compile it with TorchInductor.  Shapes are fixed to those of ``example_args``."""
    _quiet_cpp_extension_import()
    import torch._inductor
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        return _compile_direct(fn, example_args)
    except Exception:  # Inductor internals differ in this torch version: use the public entry point
        pass
    with pyro.validation_enabled(False):
        gm = make_fx(fn, decomposition_table=_decompositions())(*example_args)
    compiled = torch._inductor.compile(gm, list(example_args))
    compiled(*example_args)  # build now, so that the first sampling step is not slower
    return compiled


# ====================================================================== adaptation
def adaptation_schedule(warmup: int) -> list[tuple[int, int]]:
    """Stan's warmup windows (first, last iteration): an initial buffer of 75 iterations
    (step size only), mass-matrix windows of 25, 50, 100, ... and a final buffer of 50;
    shrunk to 15% / 75% / 10% when ``warmup`` < 150 and one window when < 20
    (the schedule of Pyro's ``WarmupAdapter``)."""
    if warmup < 1:
        return []
    if warmup < 20:
        return [(0, warmup - 1)]
    start, end, init = 75, 50, 25
    if start + end + init > warmup:
        start, end = int(0.15 * warmup), int(0.1 * warmup)
        init = warmup - start - end
    windows = [(0, start - 1)]
    end_start = warmup - end
    size, first = init, start
    while first < end_start:
        cur_first, cur_size = first, size
        if 3 * cur_size <= end_start - cur_first:
            size = 2 * cur_size
        else:
            cur_size = end_start - cur_first
        first = cur_first + cur_size
        windows.append((cur_first, first - 1))
    windows.append((end_start, warmup - 1))
    return windows


class _Adapter:
    """Per-chain step-size dual averaging and diagonal mass-matrix estimation, vectorised over
    chains (every chain has its own step size and mass matrix)."""

    def __init__(self, warmup, chains, dim, target, adapt_step, adapt_mass, like, gamma=0.05, t0=10.0,
                 kappa=0.75):
        self.windows = adaptation_schedule(warmup) if (adapt_step or adapt_mass) else []
        self.adapt_step, self.adapt_mass, self.target = adapt_step, adapt_mass, target
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.window = 0
        self._reset_welford(chains, dim, like)
        self.reset_dual_averaging(torch.ones(chains, dtype=like.dtype, device=like.device))

    def _reset_welford(self, chains, dim, like):
        self.n = 0
        self.mean = like.new_zeros(chains, dim)
        self.m2 = like.new_zeros(chains, dim)

    def reset_dual_averaging(self, step_size):
        self.mu = torch.log(10 * step_size)
        self.g_avg = torch.zeros_like(step_size)
        self.x_avg = torch.zeros_like(step_size)
        self.t = 0

    def dual_averaging(self, accept_prob):
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.g_avg = (1 - w) * self.g_avg + w * (self.target - accept_prob)
        x = self.mu - (self.t**0.5) / self.gamma * self.g_avg
        wt = self.t ** (-self.kappa)
        self.x_avg = (1 - wt) * self.x_avg + wt * x
        return torch.exp(x)

    def welford(self, z):
        self.n += 1
        delta = z - self.mean
        self.mean = self.mean + delta / self.n
        self.m2 = self.m2 + delta * (z - self.mean)

    _STATE = ("window", "n", "mean", "m2", "mu", "g_avg", "x_avg", "t")

    def state_dict(self) -> dict:
        """Dual averaging, Welford sums and window position (tensors and ints)."""
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, saved: dict, like) -> None:
        for k in self._STATE:
            v = saved[k]
            setattr(self, k, v.to(like.device) if torch.is_tensor(v) else int(v))

    def variance(self):
        """Regularised per-chain variance (Stan): n/(n+5) var + 1e-3 · 5/(n+5)."""
        n = self.n
        var = self.m2 / (n - 1)
        return (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))

    def step(self, t, z, accept_prob, state):
        """Called after warmup iteration ``t``; updates ``state.step_size`` / ``state.inv_mass``.
        Returns True when the mass matrix changed (the caller re-initialises the step size)."""
        if self.window >= len(self.windows):
            return False
        _, last = self.windows[self.window]
        nwin = len(self.windows)
        mass_phase = self.adapt_mass and 0 < self.window < nwin - 1
        if self.adapt_step:
            state.step_size = self.dual_averaging(accept_prob)
        if mass_phase:
            self.welford(z)
        changed = False
        if t == last:
            if self.window == nwin - 1:
                if self.adapt_step:
                    state.step_size = torch.exp(self.x_avg)
            elif mass_phase:
                if self.n >= 2:
                    state.inv_mass = self.variance()
                    changed = True
                self._reset_welford(*z.shape, z)
            self.window += 1
        return changed


# ====================================================================== the vectorised sampler
@dataclass
class _State:
    zg: torch.Tensor  # (C, 3, D) packed [position, (unused) momentum, gradient]
    u: torch.Tensor  # (C,) potential energy at the position
    step_size: torch.Tensor  # (C,)
    inv_mass: torch.Tensor  # (C, D) diagonal inverse mass matrix

    @property
    def z(self):
        return self.zg[:, 0]

    def state_dict(self) -> dict:
        return {"zg": self.zg, "u": self.u.clone(), "step_size": self.step_size, "inv_mass": self.inv_mass}

    @classmethod
    def from_state_dict(cls, saved: dict, like) -> "_State":
        return cls(*(saved[k].to(like.device) for k in ("zg", "u", "step_size", "inv_mass")))


_BLOCKS: dict = {}


def _binary_blocks(size, device):
    """First and last index of every binary sub-tree (2, 4, ..., ``size`` states) of a
    trajectory of ``size`` = 2^m states, and the (B, 2) index of their two ends."""
    key = (size, str(device))
    if key not in _BLOCKS:
        first = [a for b in (2 ** i for i in range(1, size.bit_length())) for a in range(0, size, b)]
        last = [a + b - 1 for b in (2 ** i for i in range(1, size.bit_length())) for a in range(0, size, b)]
        f = torch.tensor(first, device=device)
        t = torch.tensor(last, device=device)
        _BLOCKS[key] = (f, t, torch.stack([f, t], 1))
    return _BLOCKS[key]


class _BatchedHMC:
    """NUTS / HMC advancing C chains in lock step.

    A doubling of 2^j leapfrog steps is integrated for all chains together; the U-turn and
    divergence checks of every sub-tree, the first point at which a sequential NUTS would have
    stopped, the multinomial choice inside the sub-tree and the acceptance statistic are then
    computed for the 2^j states at once.  Steps a chain would not have taken (after its
    sub-tree turned or diverged) are computed but never used or counted; when every chain has
    stopped, the doubling ends early (checked at sub-tree sizes 8, 16, ...)."""

    def __init__(self, leapfrog, generator, kernel="nuts", max_tree_depth=10, num_steps=None,
                 trajectory_length=2 * math.pi):
        self.leapfrog, self.gen = leapfrog, generator
        self.kernel, self.max_tree_depth = kernel, max_tree_depth
        self.calls = 0  # leapfrog calls (each advances every chain by one step)
        self.num_steps, self.trajectory_length = num_steps, trajectory_length

    # ------------------------------------------------------------------ utilities
    def _rand(self, shape, like):
        return torch.rand(shape, generator=self.gen, dtype=like.dtype, device=like.device)

    @staticmethod
    def kinetic(r, inv_mass):
        return 0.5 * (r * r * inv_mass).sum(-1)

    def with_momentum(self, state):
        """Packed (C, 3, D) phase-space state with a fresh momentum r ~ N(0, M)."""
        zg = state.zg
        r = torch.randn(zg[:, 1].shape, generator=self.gen, dtype=zg.dtype, device=zg.device)
        r = r * state.inv_mass.rsqrt()
        return torch.stack([zg[:, 0], r, zg[:, 2]], 1), r

    @staticmethod
    def _turning(ends, rho, inv_mass):
        """Generalised no-U-turn criterion (Betancourt 2017, section A.4.2): a (sub)trajectory
        with momentum sum ρ and end momenta p⁻, p⁺ (``ends``: (..., 2, C, D)) turns if
        ρ·M⁻¹p⁻ ≤ 0 or ρ·M⁻¹p⁺ ≤ 0."""
        dots = ((rho * inv_mass).unsqueeze(-3) * ends).sum(-1)
        return (dots <= 0).any(-2)

    def _terminations(self, R, H, H0, inv_mass):
        """(P, C) masks for P = 2^m steps: ``stop`` — a sequential NUTS would stop building
        the sub-tree at step k: state k diverged, or a binary sub-tree ending at k turned;
        ``div`` — state k diverged.  All P − 1 binary sub-trees are checked at once; their
        momentum sums come from a float64 cumulative sum."""
        P = R.shape[0]
        div = ~(H - H0 <= MAX_ENERGY_ERROR)  # catches NaN
        if P == 1:
            return div, div
        first, last, ends = _binary_blocks(P, R.device)
        csum = torch.cat([torch.zeros_like(R[:1], dtype=torch.float64), R.double().cumsum(0)])
        rho = (csum[last + 1] - csum[first]).to(R.dtype)  # (B, C, D)
        turn = self._turning(R[ends], rho, inv_mass)  # (B, C)
        stop = div.to(torch.int32).index_add_(0, last, turn.to(torch.int32)) > 0
        return stop, div

    # ------------------------------------------------------------------ step size heuristic
    def find_step_size(self, state, lo=1e-10, hi=1e10):
        """Hoffman & Gelman (2014), Algorithm 4, per chain: double or halve the step size until
        the one-step acceptance probability crosses 0.8 (Stan's and Pyro's threshold)."""
        eps = state.step_size.clone()
        inv_mass = state.inv_mass

        def log_accept(eps):
            zrg, r = self.with_momentum(state)
            h0 = state.u + self.kinetic(r, inv_mass)
            new, u1 = self.leapfrog(zrg, eps[:, None], inv_mass)
            self.calls += 1
            return h0 - (u1 + self.kinetic(new[:, 1], inv_mass))

        direction = torch.where(log_accept(eps) > _LOG_STEP_TARGET, 2.0, 0.5).to(eps)
        done = torch.zeros_like(eps, dtype=torch.bool)
        for _ in range(80):
            new = torch.where(done, eps, eps * direction)
            going = torch.where(log_accept(new) > _LOG_STEP_TARGET, 2.0, 0.5).to(eps)
            eps = new
            done = done | (going != direction) | (eps <= lo) | (eps >= hi)
            if bool(done.all()):
                break
        state.step_size = eps.clamp(lo, hi)

    # ------------------------------------------------------------------ transitions
    def transition(self, state) -> dict:
        if self.kernel == "hmc":
            return self._hmc(state)
        return self._nuts(state)

    def _hmc(self, state):
        """Static HMC (Neal 2011, section 5.3.2): L leapfrog steps, then a Metropolis test."""
        inv_mass = state.inv_mass
        x, r = self.with_momentum(state)
        h0 = state.u + self.kinetic(r, inv_mass)
        if self.num_steps is not None:
            steps = torch.full_like(state.u, self.num_steps, dtype=torch.long)
        else:
            steps = torch.ceil(self.trajectory_length / state.step_size).long().clamp_min(1)
        n_max = int(steps.max())
        step = state.step_size[:, None]
        u = state.u
        for k in range(n_max):
            x1, u1 = self.leapfrog(x, step, inv_mass)
            self.calls += 1
            live = k < steps
            if bool(live.all()):
                x, u = x1, u1
            else:  # chains with fewer steps stop where they are
                x, u = torch.where(live[:, None, None], x1, x), torch.where(live, u1, u)
        h1 = u + self.kinetic(x[:, 1], inv_mass)
        delta = h1 - h0
        accept_prob = torch.exp(-delta).clamp(max=1.0).nan_to_num(0.0)
        accept = self._rand(state.u.shape, state.u) < accept_prob
        state.zg = torch.where(accept[:, None, None], x, state.zg)
        state.u = torch.where(accept, u, state.u)
        energy = torch.where(accept, h1, h0)
        return {"accept_prob": accept_prob, "diverging": ~(delta <= MAX_ENERGY_ERROR), "num_steps": steps,
                "energy": energy}

    def _nuts(self, state):
        inv_mass = state.inv_mass
        c = state.u.shape[0]
        dev = state.u.device
        x0, r0 = self.with_momentum(state)
        h0 = state.u + self.kinetic(r0, inv_mass)
        left = right = x0  # packed edge states (C, 3, D)
        prop = state.zg
        prop_uh = torch.stack([state.u, h0], -1)  # potential and energy of the proposal
        log_w = -h0
        rho = r0
        active = torch.ones(c, dtype=torch.bool, device=dev)
        depth = torch.zeros(c, dtype=torch.long, device=dev)
        n_steps = torch.zeros(c, dtype=torch.long, device=dev)
        sum_acc = torch.zeros_like(h0)
        diverging = torch.zeros_like(active)
        idx = torch.arange(c, device=dev)
        # per doubling: direction, multinomial choice inside the sub-tree, biased transition
        uniforms = self._rand((self.max_tree_depth, 3, c), h0)
        for j in range(self.max_tree_depth):
            forward = uniforms[j, 0] < 0.5
            fwd = forward[:, None, None]
            x = torch.where(fwd, right, left)
            step = torch.where(forward, state.step_size, -state.step_size)[:, None]
            size = 1 << j
            # the sub-tree's states, written in place (P, C, 3, D) and potentials (P, C)
            X, U = x.new_empty((size, *x.shape)), h0.new_empty((size, c))
            check_at, P = 8, size
            for k in range(size):
                x, u = self.leapfrog(x, step, inv_mass)
                self.calls += 1
                X[k], U[k] = x, u
                if k + 1 == check_at and k + 1 < size:
                    check_at *= 2
                    R = X[:k + 1, :, 1]
                    stop, _ = self._terminations(R, U[:k + 1] + self.kinetic(R, inv_mass), h0, inv_mass)
                    if bool((stop.any(0) | ~active).all()):
                        P = k + 1
                        break
            X, U = X[:P], U[:P]
            R = X[:, :, 1]
            H = U + self.kinetic(R, inv_mass)
            stop, div = self._terminations(R, H, h0, inv_mass)
            stopped = stop.any(0)
            # steps a sequential NUTS takes: up to and including the first stop
            first = torch.where(stopped, stop.to(torch.uint8).argmax(0), P - 1)
            taken = (torch.arange(P, device=dev)[:, None] <= first) & active
            acc = torch.exp(h0 - H).clamp(max=1.0).nan_to_num(0.0)
            sum_acc = sum_acc + (acc * taken).sum(0)
            n_steps = n_steps + taken.sum(0)
            diverging = diverging | (div & taken).any(0)
            valid = active & ~stopped if P == size else torch.zeros_like(active)
            # multinomial choice inside the sub-tree: P(k) ∝ exp(-H_k), by inverting the CDF
            logits = (-H).nan_to_num(nan=-math.inf)
            log_w_sub = torch.logsumexp(logits, 0)
            cdf = torch.exp(logits - log_w_sub).cumsum(0)
            pick = (cdf < uniforms[j, 1] * cdf[-1]).sum(0).clamp(max=P - 1)
            # biased progressive sampling: move to the sub-tree with probability min(1, W_new / W_old)
            take = valid & (torch.log(uniforms[j, 2]) < log_w_sub - log_w)
            prop = torch.where(take[:, None, None], X[pick, idx], prop)
            prop_uh = torch.where(take[:, None], torch.stack([U[pick, idx], H[pick, idx]], -1), prop_uh)
            # grow the trees whose sub-tree was valid, and check the whole trajectory for a U-turn
            edge = X[-1]
            vf = valid & forward
            right = torch.where(vf[:, None, None], edge, right)
            left = torch.where((valid & ~forward)[:, None, None], edge, left)
            log_w = torch.where(valid, torch.logaddexp(log_w, log_w_sub), log_w)
            rho = torch.where(valid[:, None], rho + R.sum(0), rho)
            depth = depth + valid
            ends = torch.stack([left[:, 1], right[:, 1]])
            active = valid & ~self._turning(ends, rho, inv_mass)
            if not bool(active.any()):
                break
        state.zg, state.u = prop, prop_uh[:, 0]
        return {"accept_prob": sum_acc / n_steps.clamp_min(1), "diverging": diverging, "tree_depth": depth,
                "num_steps": n_steps, "energy": prop_uh[:, 1]}


# ====================================================================== public API
def _apply_frozen(model, frozen) -> set:
    """Set hyperparameters of the model's priors before sampling.  ``frozen`` maps a buffer
    name (``"loc"``, ``"scale"``, ``"variance"``, ...) to a value for every adaptive prior that
    has that buffer, or a Bayesian layer index to such a dict for that layer's prior.  Returns
    the (id(prior), hyperparameter) pairs it set."""
    if not isinstance(frozen, dict):
        raise ValueError(f"frozen must be a dict of hyperparameter values or None, got {type(frozen).__name__}")
    if not hasattr(model, "prior_modules"):
        raise ValueError("frozen= needs a pyrobnn BNN (a model with priors)")
    targets = []
    for key, val in frozen.items():
        if isinstance(key, int):
            if not isinstance(val, dict):
                raise ValueError(f"frozen[{key}] must be a dict of hyperparameter values, got {val!r}")
            targets += [(model.prior_of(key), k, v, f"frozen[{key}][{k!r}]") for k, v in val.items()]
        else:
            adaptive = [p for p in model.prior_modules if p.adaptive]
            priors = [p for p in adaptive if key in dict(p.named_buffers())]
            if not priors:
                have = sorted({n for p in adaptive for n, _ in p.named_buffers()})
                raise ValueError(f"frozen[{key!r}]: no adaptive prior of this model has a hyperparameter {key!r}; "
                                 f"the adaptive priors have {have} (use {{layer: {{...}}}} to set any layer's prior)")
            targets += [(p, key, val, f"frozen[{key!r}]") for p in priors]
    for prior, name, val, label in targets:
        bufs = dict(prior.named_buffers())
        if name not in bufs:
            raise ValueError(f"{label}: {type(prior).__name__} has no hyperparameter {name!r}; it has {sorted(bufs)}")
        buf = bufs[name]
        new = torch.as_tensor(val, dtype=buf.dtype, device=buf.device)
        if buf.numel() and new.shape != buf.shape:
            new = new.expand(buf.shape)
        with torch.no_grad():
            if new.shape == buf.shape:
                buf.copy_(new)
            else:
                setattr(prior, name, new.clone())
    return {(id(prior), name) for prior, name, _, _ in targets}


def _build_potential(model, x, y, chains, init, seed, hypers, like):
    """The potential energy of the model's latent sites plus the sampled hyperparameters
    ``hypers`` (appended to the packed vector, each started at its prior's current value), and
    the initial unconstrained values (chains, D)."""
    traces = _initial_values(model, x, y, chains, init, seed)
    sites, fns = _layout(traces[0])
    start = sites[-1].stop
    hyper_init = {}
    for h in hypers:
        t = biject_to(h.dist.support)
        value = getattr(h.prior, h.param).detach().to(like).reshape(())
        if not bool(torch.isfinite(h.dist.log_prob(value))):
            raise ValueError(f"{h.name}: the prior's current {h.param} {float(value):.4g} lies outside the support "
                             f"of its hyperprior {h.dist}; set it with frozen= first")
        sites.append(_Site(h.name, value.shape, t.inv(value).shape, start, start + 1, t, _is_identity(t)))
        fns[h.name] = h.dist
        hyper_init[h.name] = value
        start += 1
    potential = PotentialEnergy(model, x, y, sites, fns, hypers)
    if isinstance(init, dict):
        z0 = _given_init(potential, {**hyper_init, **init}, chains, like)
    else:
        z0 = torch.stack([potential.unconstrain({s.name: tr.nodes[s.name]["value"].detach()
                                                 if s.name in tr.nodes else hyper_init[s.name] for s in sites})
                          for tr in traces]).to(like)
    return potential, z0


def _check_checkpoint_args(checkpoint, checkpoint_every, resume, callback, backend) -> None:
    """Errors naming the argument for ``checkpoint``, ``checkpoint_every``, ``resume`` and
    ``callback`` of :func:`fit_nuts`."""
    check_int("checkpoint_every", checkpoint_every)
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path>, the file to resume from")
    if checkpoint is not None and (not isinstance(checkpoint, (str, Path)) or Path(checkpoint).is_dir()):
        raise ValueError(f"checkpoint must be the path of a file (it need not exist yet), got {checkpoint!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of one argument (the iteration's record) or None, "
                         f"got {callback!r}")
    given = [name for name, v in (("checkpoint", checkpoint), ("callback", callback)) if v is not None]
    if given and backend != "torch":
        raise ValueError(f"{' and '.join(given)}= need{'s' if len(given) == 1 else ''} backend='torch': Pyro's "
                         f"own kernel (backend='pyro') cannot be checkpointed or resumed")


def _fingerprint(model, x, y, potential, z0, settings, seed, hypers) -> dict:
    """What a checkpoint must agree with to be resumed: the settings and seed, the model's
    architecture, sites and buffers (prior and likelihood hyperparameters), the data and the
    initial state (plain values; tensors as SHA-256 digests)."""
    return {**settings, "seed": seed, "model": repr(model),
            "sites": ", ".join(f"{s.name}{tuple(s.shape)}" for s in potential.sites),
            "model buffers": tensor_digest(*model.state_dict().values()),
            "hyperpriors": ", ".join(f"{h.name}={h.dist!r}" for h in hypers),
            "x shape": tuple(x.shape), "x dtype": str(x.dtype), "y shape": tuple(y.shape), "y dtype": str(y.dtype),
            "x values": tensor_digest(x), "y values": tensor_digest(y), "initial state": tensor_digest(z0)}


def _initial_values(model, x, y, chains, init, seed):
    """One trace of the model per chain under the init strategy: the model's own initial
    values (``init="model"``), Pyro's prior median (``"median"``) or given values."""
    if isinstance(init, dict) or init == "model":
        strategy = init_to_model
    elif init == "median":
        strategy = init_to_median
    else:
        raise ValueError(f"init must be 'model', 'median' or a dict of site values, got {init!r}")
    traces = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else seed)
        for _ in range(chains):
            with poutine.block(), InitMessenger(strategy):
                traces.append(poutine.trace(model).get_trace(x, y))
    return traces


def _given_init(potential, init, chains, like):
    rows = []
    for s in potential.sites:
        if s.name not in init:
            names = [t.name for t in potential.sites]
            raise ValueError(f"init is missing site {s.name!r}; expected values for {names}")
        v = torch.as_tensor(init[s.name], dtype=like.dtype, device=like.device)
        if v.shape == s.shape:
            v = v.expand(chains, *s.shape)
        if v.shape != (chains, *s.shape):
            raise ValueError(f"init[{s.name!r}] must have shape {tuple(s.shape)} or {(chains, *s.shape)}, "
                             f"got {tuple(v.shape)}")
        rows.append((s, v))
    return potential.unconstrain({s.name: v for s, v in rows}, batch=(chains,))


def fit_nuts(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 500,
    warmup: int = 500,
    chains: int = 4,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    jit: bool = True,
    kernel: str = "nuts",
    step_size: float | None = None,
    num_steps: int | None = None,
    adapt_step_size: bool = True,
    adapt_mass_matrix: bool = True,
    seed: int | None = 0,
    progress: bool = True,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | None = None,
    init: str | dict = "model",
    frozen: dict | None = None,
    hyperpriors: dict | None = None,
    backend: str | None = None,
    chain_method: str | None = None,
    check_memory: bool | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    callback: Callable[[dict], None] | None = None,
    handle_interrupt: bool = True,
) -> SamplePosterior:
    """Sample the posterior of ``model`` given (x, y) with NUTS (or HMC), full batch.

    ``model`` is a :class:`~pyrobnn.BNN` (any Pyro model with ``backend="pyro"``).  Runs
    ``chains`` chains of ``warmup`` adaptation iterations (Stan's windowed step-size and
    diagonal mass-matrix adaptation towards ``target_accept``) and ``num_samples`` kept
    draws.  NUTS: the multinomial no-U-turn sampler (Hoffman & Gelman 2014; Betancourt 2017)
    with trees of at most 2^``max_tree_depth`` − 1 leapfrog steps.  ``kernel="hmc"``: static
    HMC (Neal 2011) with ``num_steps`` leapfrog steps (default: a trajectory length of 2π,
    as Pyro).  ``step_size`` is the initial step size (found by the doubling heuristic when
    None).

    ``backend``: "torch" (all chains vectorised, the default for a BNN) or "pyro" (Pyro's
    NUTS/HMC kernel, the reference).  ``chain_method``: "vectorized" (torch backend default),
    "sequential" (one chain after the other) or "parallel" (Pyro's worker processes; pyro
    backend only).  ``jit=True`` compiles the potential energy and its gradient (TorchInductor;
    falls back to eager PyTorch with a warning if compilation fails; the compiled step is built
    for the shapes of this call, a few seconds per call).  Small networks run fastest with
    ``torch.set_num_threads(1)``.

    ``init``: "model" (each chain starts from the network's own initial weights, drawn
    afresh per chain), "median" (Pyro's prior median) or a dict {site: value} (shape of the
    site, or (chains, *shape)).  Adaptive (empirical-Bayes) priors are frozen at their current
    hyperparameters; ``frozen`` sets them first (a dict {"scale": 0.5} for every prior with that
    hyperparameter, or {layer: {...}}).  ``hyperpriors`` samples them instead (torch backend):
    {"scale": pyro.distributions.HalfCauchy(1.0)} for every adaptive Normal/Laplace prior, or
    {layer: {"loc": ..., "scale": ...}} for that layer's Normal/Laplace prior; each becomes a
    site ``hyper.<param>`` (``hyper.layers.<i>.<param>`` for a prior on some layers only) in
    ``samples``, started at the prior's current value.  ``seed`` makes the run reproducible.

    Checkpoints (torch backend): with ``checkpoint=path`` the sampler's whole state (iteration,
    position, step size, inverse mass matrix, the adaptation's dual averaging and Welford sums,
    the random generator, the draws and statistics so far, timing counters) is written
    atomically every ``checkpoint_every`` iterations (warm-up or sampling), after every
    warm-up adaptation window (:func:`adaptation_schedule`) and at the end; with
    ``chain_method="sequential"`` the file holds every chain started.  ``resume=True``
    continues from the file if it exists (else starts afresh) and gives the same draws and
    statistics, bit for bit, as an uninterrupted run with the same seed on the same device.
    The file records the settings, the seed and a fingerprint of the model and data (shapes,
    dtype, digests of x, y, the prior/likelihood buffers and the initial state): resuming a
    run that differs raises ``ValueError`` naming what differs (``checkpoint_every`` and
    ``progress`` may change); an unreadable file raises ``ValueError`` naming it.
    ``callback(record)`` (torch backend) is called after every iteration with
    ``{"iteration", "iterations", "phase", "chain", "accept_prob", "step_size",
    "checkpoint_written"}`` (chain: None when chains are vectorised); an exception it raises
    stops the run, leaving the last checkpoint in place.  With ``handle_interrupt`` (torch
    backend, main thread) a first Ctrl-C stops after the current iteration, writes the
    checkpoint there and raises :class:`~pyrobnn.infer.interrupt.FitInterrupted`; a second one
    interrupts at once.

    Returns a :class:`Posterior` with ``samples`` {site: (chain, draw, *shape)} and
    ``sample_stats`` {name: (chain, draw)}: ``diverging``, ``accept_prob`` (mean Metropolis
    acceptance over the trajectory), ``step_size``, ``num_steps`` (leapfrog steps),
    ``tree_depth`` (NUTS: doublings merged into the tree), ``energy`` (Hamiltonian of the
    chosen state; pyro backend: at the start of the transition) and ``lp`` (−potential energy:
    the log joint in unconstrained coordinates).  ``info`` records the settings, the seed,
    the adapted step sizes and inverse mass matrices, and the warmup / sampling wall times.

    Every argument is checked before any work (``ValueError``/``TypeError`` naming it), the data
    as for :func:`pyrobnn.fit_svi`.  ``check_memory`` (default: the model's own setting, True)
    refuses a run whose memory (:func:`pyrobnn.model.memory.estimate_nuts`: stored draws, chain
    states, the worst-case NUTS trajectory buffer, activations) exceeds what the device has
    available; ``check_memory=False`` tries anyway.
    """
    # ---- every argument checked before any work
    num_samples = check_int("num_samples", num_samples, 1)
    warmup = check_int("warmup", warmup, 0)
    chains = check_int("chains", chains, 1)
    # a tree of depth d takes up to 2^d − 1 leapfrog steps per draw and keeps 2^(d−1) states
    max_tree_depth = check_int("max_tree_depth", max_tree_depth, 1, MAX_TREE_DEPTH)
    target_accept = check_number("target_accept", target_accept, 0.0, 1.0, lo_open=True, hi_open=True,
                                 expected="a number that lies in (0, 1)")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if step_size is not None:
        step_size = check_number("step_size", step_size, 0.0, lo_open=True, expected="a positive number or None")
    if num_steps is not None:
        num_steps = check_int("num_steps", num_steps, 1)
    for name, flag in (("jit", jit), ("adapt_step_size", adapt_step_size), ("adapt_mass_matrix", adapt_mass_matrix),
                       ("progress", progress)):
        check_bool(name, flag)
    check_memory = check_optional_bool("check_memory", check_memory)
    seed = check_seed(seed)
    dtype = check_dtype(dtype)
    if isinstance(init, str) and init not in ("model", "median"):
        raise ValueError(f"init must be 'model', 'median' or a dict {{site: value}}, got {init!r}")
    if not isinstance(init, (str, dict)):
        raise ArgumentTypeError(f"init must be 'model', 'median' or a dict {{site: value}}, got {type(init).__name__}")
    for name, value in (("frozen", frozen), ("hyperpriors", hyperpriors)):
        if value is not None and not isinstance(value, dict):
            raise ArgumentTypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    is_bnn = hasattr(model, "predictive_distribution") and hasattr(model, "site_sizes")
    if backend is None:
        backend = "torch" if is_bnn else "pyro"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" and not is_bnn:
        raise ValueError("backend='torch' needs a pyrobnn BNN; use backend='pyro' for other Pyro models")
    if chain_method is None:
        chain_method = "vectorized" if backend == "torch" else "sequential"
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    if backend == "torch" and chain_method == "parallel":
        raise ValueError("chain_method='parallel' runs Pyro's worker processes: use backend='pyro' "
                         "(the torch backend vectorises chains: chain_method='vectorized')")
    if backend == "pyro" and chain_method == "vectorized":
        raise ValueError("chain_method='vectorized' needs backend='torch'")
    _check_checkpoint_args(checkpoint, checkpoint_every, resume, callback, backend)
    check_bool("handle_interrupt", handle_interrupt)
    x, y = prepare_data(model, x, y)
    if hasattr(model, "memory_facts"):
        fdt = float_dtype_of(x, dtype)
        est = estimate_nuts(**model.memory_facts(x.shape[1:]), n_data=x.shape[0], chains=chains,
                            num_samples=num_samples, max_tree_depth=max_tree_depth, kernel=kernel,
                            data_bytes=data_bytes(x, y, fdt), trajectory_buffer=backend == "torch", dtype=fdt,
                            device=resolve_device(device, x))
        check_fit_memory(model, check_memory, est)

    t_start = time.perf_counter()
    x, y, dev, float_dtype = place(model, x, y, device, dtype)
    frozen_keys = _apply_frozen(model, frozen) if frozen is not None else set()
    like = torch.zeros((), dtype=float_dtype, device=dev)
    hypers = _resolve_hyperpriors(model, hyperpriors, like) if hyperpriors else []
    if hypers and backend != "torch":
        raise ValueError("hyperpriors= needs backend='torch' (Pyro's kernel samples the model's own sites only)")
    if hypers:
        both = {(id(h.prior), h.param) for h in hypers} & frozen_keys
        if both:
            raise ValueError("a hyperparameter cannot be both frozen and given a hyperprior; "
                             f"{len(both)} appear in both frozen= and hyperpriors=")

    potential, z0 = _build_potential(model, x, y, chains, init, seed, hypers, like)

    settings = dict(num_samples=num_samples, warmup=warmup, chains=chains, target_accept=target_accept,
                    max_tree_depth=max_tree_depth, jit=jit, kernel=kernel, step_size=step_size, num_steps=num_steps,
                    adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix,
                    init=init if isinstance(init, str) else "given", backend=backend, chain_method=chain_method,
                    device=str(dev), dtype=str(float_dtype).replace("torch.", ""))
    resumed_at = None
    if backend == "torch":
        checkpointer = None
        if checkpoint is not None:
            checkpointer = _Checkpointer(checkpoint, checkpoint_every,
                                         _fingerprint(model, x, y, potential, z0, settings, seed, hypers), warmup)
            if resume and checkpointer.load():
                resumed_at = [int(c["iteration"]) for c in checkpointer.chains]
        with StopOnInterrupt(handle_interrupt) as stop:
            draws, stats, extra = _run_torch(model, x, y, potential, z0, settings, seed, progress, checkpointer,
                                             callback, stop)
    else:
        draws, stats, extra = _run_pyro(model, x, y, potential, z0, settings, seed, progress)
    samples = {k: v.detach().cpu() for k, v in potential.constrain(draws).items()}
    stats = {k: v.detach().cpu() for k, v in stats.items()}
    info = {"seed": seed, **settings, "num_weights": getattr(model, "num_weights", None),
            "n_data": int(x.shape[0]), "sites": [s.name for s in potential.sites], **extra,
            "num_divergences": int(stats["diverging"].sum()) if "diverging" in stats else None,
            "seconds_total": time.perf_counter() - t_start}
    if hypers:
        info["hyperpriors"] = {h.name: repr(h.dist) for h in hypers}
    if checkpoint is not None:  # iterations each chain had completed when resumed (None: a fresh run)
        info.update(checkpoint=str(checkpoint), resumed_at=resumed_at)
    if hasattr(model, "prior_modules"):
        info["prior_hyperparameters"] = {i: model.prior_of(i).hyperparameters() for i in model.bayesian_layers}
    return SamplePosterior(model=model, method=kernel, samples=samples, sample_stats=stats, info=info)


fit_hmc = partial(fit_nuts, kernel="hmc")
fit_hmc.__doc__ = "HMC with a fixed number of leapfrog steps: :func:`fit_nuts` with ``kernel='hmc'``."


# ====================================================================== torch backend
def _make_kernels(potential, chains, like, jit, what="leapfrog"):
    """Returns (fn, eager value_and_grad, compiled?, compile seconds, fallback reason), where fn
    is the leapfrog step (``what="leapfrog"``) or the value and gradient (``"value_and_grad"``)
    for ``chains`` rows, compiled when ``jit``."""
    eager_vg = _value_and_grad_eager(potential)
    eager = _leapfrog_fn(eager_vg) if what == "leapfrog" else eager_vg
    if not jit:
        return eager, eager_vg, False, 0.0, None
    t0 = time.perf_counter()
    d = potential.dim

    def example(*shape, value=0.0):  # distinct tensors: aliased example inputs would be compiled as aliases
        return torch.full((chains, *shape), value, dtype=like.dtype, device=like.device)

    try:
        vg = _value_and_grad_functional(potential)
        if what == "leapfrog":
            fn = _compile(_leapfrog_fn(vg), (example(3, d), example(1, value=1e-3), example(d, value=1.0)))
        else:
            fn = _compile(vg, (example(d),))
        return fn, eager_vg, True, time.perf_counter() - t0, None
    except Exception as e:  # no C++ compiler, an op inductor cannot lower, ...
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        warnings.warn(f"fit_nuts: compiling the potential failed ({reason}); running eager PyTorch", RuntimeWarning,
                      stacklevel=3)
        return eager, eager_vg, False, time.perf_counter() - t0, reason


def _run_torch(model, x, y, potential, z0, settings, seed, progress, checkpointer=None, callback=None, stop=None):
    chains = z0.shape[0]
    sequential = settings["chain_method"] == "sequential" and chains > 1
    with pyro.validation_enabled(False):
        kernels = _make_kernels(potential, 1 if sequential else chains, z0, settings["jit"])
    run = partial(_run_torch_chains, settings=settings, progress=progress, kernels=kernels, checkpointer=checkpointer,
                  callback=callback, stop=stop)
    if not sequential:
        return run(potential, z0, seed=seed)
    outs = [run(potential, z0[c:c + 1], seed=None if seed is None else seed + c, label=f" [{c}]", chain=c)
            for c in range(chains)]
    draws = torch.cat([o[0] for o in outs], 0)
    stats = {k: torch.cat([o[1][k] for o in outs], 0) for k in outs[0][1]}
    extra = {}
    for k in outs[0][2]:
        vals = [o[2][k] for o in outs]
        if torch.is_tensor(vals[0]):
            extra[k] = torch.cat(vals, 0)
        elif k.startswith(("seconds_warmup", "seconds_sampling", "leapfrog_calls")):
            extra[k] = sum(vals)
        else:
            extra[k] = vals[0]
    return draws, stats, extra


class _Checkpointer:
    """The torch sampler's checkpoint file: the run's fingerprint (settings, seed, shapes and
    digests of the model, data and initial state) and the loop state of every chain started —
    one entry for vectorised chains; with ``chain_method="sequential"`` the finished chains'
    final states, then the running chain's.  A loop state is everything the sampling loop
    needs to continue exactly: iteration, phase-space state, step size, inverse mass matrix,
    the adapter's dual averaging, Welford sums and window, the generator's state, the draws
    and statistics recorded so far and the timing counters.  Written atomically
    (:func:`~pyrobnn.utils.files.atomic_torch_save`) after every ``every`` iterations,
    after the last iteration of every warm-up adaptation window and at the end of each chain."""

    KIND = "pyrobnn.mcmc"
    VERSION = 1

    def __init__(self, path, every: int, fingerprint: dict, warmup: int):
        self.path, self.every, self.fingerprint = Path(path), every, fingerprint
        self.window_ends = {last for _, last in adaptation_schedule(warmup)}
        self.chains: list[dict] = []

    def load(self) -> bool:
        """Read the file if there is one (returns whether there was); a file that is not a
        sampler checkpoint, or one written by a run with other settings or data, is refused
        with a ``ValueError`` naming the file and what differs."""
        if not self.path.exists():
            return False
        ck = read_checkpoint(self.path, self.KIND)
        if ck.get("version") != self.VERSION or not isinstance(ck.get("fingerprint"), dict) \
                or not isinstance(ck.get("chains"), list) or not all(isinstance(c, dict) for c in ck["chains"]):
            raise ValueError(f"checkpoint file {self.path} is not a version-{self.VERSION} sampler checkpoint "
                             f"(format version {ck.get('version')!r}, or entries missing). Remove it to start afresh.")
        diffs = fingerprint_differences(ck["fingerprint"], self.fingerprint)
        if diffs:
            raise ValueError(f"checkpoint file {self.path} was written by a different run and cannot be resumed: "
                             + "; ".join(diffs) + ". Resume with the same model, data, settings and seed, or give "
                             "another checkpoint path (resume=False starts afresh and overwrites it).")
        self.chains = ck["chains"]
        return True

    def saved(self, slot: int) -> dict | None:
        return self.chains[slot] if slot < len(self.chains) else None

    def due(self, it: int, total: int) -> bool:
        """Whether to write after (0-based) iteration ``it`` of ``total``."""
        return (it + 1) % self.every == 0 or it in self.window_ends or it + 1 == total

    def write(self, slot: int, loop: dict) -> None:
        self.chains[slot:] = [loop]
        atomic_torch_save({"kind": self.KIND, "version": self.VERSION, "fingerprint": self.fingerprint,
                           "chains": self.chains}, self.path)


def _run_torch_chains(potential, z0, settings, seed, progress, kernels, label="", chain=None, checkpointer=None,
                      callback=None, stop=None):
    """Warm-up and sampling of the chains ``z0`` (C, D) in lock step; ``chain`` is the chain's
    index when chains run one after another (None: all chains here).  With ``checkpointer``
    the loop starts from the saved state of this chain, if any, and saves its state as it goes;
    ``callback`` gets a record after every iteration."""
    chains, dim = z0.shape
    like = z0
    gen = torch.Generator(device=z0.device)
    gen.manual_seed(0 if seed is None else seed)
    leapfrog, vg, compiled, compile_s, reason = kernels
    slot = chain or 0
    saved = checkpointer.saved(slot) if checkpointer is not None else None
    warmup, num_samples = settings["warmup"], settings["num_samples"]
    total = warmup + num_samples
    names = ["accept_prob", "diverging", "num_steps", "energy", "step_size", "lp"]
    if settings["kernel"] == "nuts":
        names.insert(3, "tree_depth")
    with pyro.validation_enabled(False):
        sampler = _BatchedHMC(leapfrog, gen, settings["kernel"], settings["max_tree_depth"], settings["num_steps"])
        adapter = _Adapter(warmup, chains, dim, settings["target_accept"], settings["adapt_step_size"],
                           settings["adapt_mass_matrix"], like)
        draws = torch.empty(chains, num_samples, dim, dtype=like.dtype, device=like.device)
        rec = {k: [] for k in names}
        if saved is None:
            start, elapsed, t_warm, mean_acc = 0, 0.0, 0.0, None
            u0, g0 = vg(z0)
            bad = ~torch.isfinite(u0) | ~torch.isfinite(g0).all(-1)
            if bool(bad.any()):
                raise ValueError(f"the potential energy or its gradient is not finite at the initial values of chains "
                                 f"{bad.nonzero().flatten().tolist()}; choose another init")
            init_eps = 1.0 if settings["step_size"] is None else float(settings["step_size"])
            state = _State(torch.stack([z0, torch.zeros_like(z0), g0], 1), u0,
                           torch.full((chains,), init_eps, dtype=like.dtype, device=like.device),
                           torch.ones(chains, dim, dtype=like.dtype, device=like.device))
            if settings["adapt_step_size"]:
                sampler.find_step_size(state)  # as Pyro: the heuristic starts from step_size (default 1)
            adapter.reset_dual_averaging(state.step_size)
            calls_warm = sampler.calls
        else:
            try:
                start, state = int(saved["iteration"]), _State.from_state_dict(saved["state"], like)
                adapter.load_state_dict(saved["adapter"], like)
                gen.set_state(saved["generator"])
                sampler.calls, calls_warm = int(saved["calls"]), int(saved["calls_warmup"])
                kept = saved["draws"]
                if not (0 <= start <= total and state.zg.shape == (chains, 3, dim)
                        and kept.shape == (chains, max(0, start - warmup), dim)):
                    raise ValueError(f"iteration {start} of {total}, state {tuple(state.zg.shape)}, draws "
                                     f"{tuple(kept.shape)}")
                draws[:, :kept.shape[1]] = kept.to(like.device)
                for k in names:
                    rec[k] = list(saved["stats"][k].to(like.device).unbind(1))
                elapsed, t_warm = float(saved["seconds"]), float(saved["seconds_warmup"])
                mean_acc = saved["mean_accept"]
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
                where = "" if chain is None else f" (chain {chain})"
                raise ValueError(f"checkpoint file {checkpointer.path} holds an incomplete or inconsistent sampler "
                                 f"state{where} ({type(e).__name__}: {e}). Remove it to start afresh.") from e

        def loop_state(done):
            return {"iteration": done, "state": state.state_dict(), "adapter": adapter.state_dict(),
                    "generator": gen.get_state(), "calls": sampler.calls, "calls_warmup": calls_warm,
                    "draws": draws[:, :max(0, done - warmup)].clone(),
                    "stats": {k: torch.stack(v, 1) if v else like.new_empty(chains, 0) for k, v in rec.items()},
                    "seconds": time.perf_counter() - t0, "seconds_warmup": t_warm, "mean_accept": mean_acc}

        bar = tqdm(total=total, initial=start, desc=("Warmup" if start < warmup else "Sample") + label,
                   disable=None if progress else True, dynamic_ncols=True)
        t0 = time.perf_counter() - elapsed  # time spent before a resume counts, the interruption does not
        for it in range(start, total):
            if it == warmup:
                t_warm = time.perf_counter() - t0
                calls_warm = sampler.calls
                bar.set_description("Sample" + label)
                mean_acc = None
            eps = state.step_size
            st = sampler.transition(state)
            if it < warmup:
                # a new mass matrix restarts the step size (Stan, Pyro) unless it is held fixed
                if adapter.step(it, state.z, st["accept_prob"], state) and settings["adapt_step_size"]:
                    sampler.find_step_size(state)
                    adapter.reset_dual_averaging(state.step_size)
            else:
                s = it - warmup
                draws[:, s] = state.z
                st["step_size"] = eps
                st["lp"] = -state.u
                for k in names:
                    rec[k].append(st[k])
            if progress:  # the running mean acceptance costs a device sync: only for the bar
                n = it + 1 if it < warmup else it - warmup + 1
                a = float(st["accept_prob"].mean())
                mean_acc = a if mean_acc is None else mean_acc + (a - mean_acc) / n
                bar.set_postfix({"step size": f"{float(state.step_size.mean()):.2e}", "acc. prob": f"{mean_acc:.3f}"},
                                refresh=False)
                bar.update()
            written = checkpointer is not None and checkpointer.due(it, total)
            if written:
                checkpointer.write(slot, loop_state(it + 1))
            if callback is not None:
                callback({"iteration": it + 1, "iterations": total, "phase": "warmup" if it < warmup else "sampling",
                          "chain": chain, "accept_prob": st["accept_prob"], "step_size": state.step_size,
                          "checkpoint_written": written})
            if stop is not None and stop.requested and it + 1 < total:  # Ctrl-C: stop between two iterations
                if checkpointer is not None and not written:
                    checkpointer.write(slot, loop_state(it + 1))
                bar.close()
                which = "" if chain is None else f" of chain {chain}"
                raise FitInterrupted(f"iteration {it + 1} of {total}{which} "
                                     f"({'warm-up' if it < warmup else 'sampling'})",
                                     None if checkpointer is None else Path(checkpointer.path))
        bar.close()
        t_total = time.perf_counter() - t0
    stats = {k: torch.stack(v, 1) for k, v in rec.items()}
    extra = {"step_size_adapted": state.step_size.detach().cpu(), "inverse_mass_matrix": state.inv_mass.detach().cpu(),
             "compiled": compiled, "compile_fallback": reason, "seconds_compile": compile_s,
             "seconds_warmup": t_warm if warmup else 0.0, "seconds_sampling": t_total - (t_warm if warmup else 0.0),
             "leapfrog_calls_warmup": calls_warm, "leapfrog_calls_sampling": sampler.calls - calls_warm}
    return draws, stats, extra


# ====================================================================== pyro backend
class _PackedPotential(torch.autograd.Function):
    """Pyro's kernels differentiate ``potential_fn`` with autograd; this hands them the value
    and the gradient computed together (compiled) as one autograd node."""

    @staticmethod
    def forward(ctx, z, vg):
        u, g = vg(z.detach()[None])
        ctx.save_for_backward(g[0])
        return u[0]

    @staticmethod
    def backward(ctx, grad_out):
        (g,) = ctx.saved_tensors
        return grad_out * g, None


def _pyro_kernel_class(kernel):
    from pyro.infer.mcmc import HMC, NUTS

    base = NUTS if kernel == "nuts" else HMC

    class Recording(base):
        """Pyro's kernel, recording per-iteration statistics Pyro does not keep."""

        def sample(self, params):
            self._rec_energy = None
            self._rec_doublings = 0
            self._rec_last_invalid = False
            self._rec_depth = 0
            return super().sample(params)

        def _kinetic_energy(self, r_unscaled):
            k = super()._kinetic_energy(r_unscaled)
            if getattr(self, "_rec_energy", 0) is None:
                self._rec_energy = float(k)
            return k

        def _build_tree(self, *args):
            self._rec_depth = getattr(self, "_rec_depth", 0) + 1
            try:
                tree = super()._build_tree(*args)
            finally:
                self._rec_depth -= 1
            if self._rec_depth == 0:
                self._rec_doublings += 1
                self._rec_last_invalid = bool(tree.turning or tree.diverging)
            return tree

    return Recording


def _run_pyro(model, x, y, potential, z0, settings, seed, progress):
    from pyro.infer.mcmc import MCMC

    chains, dim = z0.shape
    kernel_name = settings["kernel"]
    Kernel = _pyro_kernel_class(kernel_name)
    kw = dict(step_size=1.0 if settings["step_size"] is None else float(settings["step_size"]),
              adapt_step_size=settings["adapt_step_size"], adapt_mass_matrix=settings["adapt_mass_matrix"],
              full_mass=False, target_accept_prob=settings["target_accept"])
    if kernel_name == "nuts":
        kw["max_tree_depth"] = settings["max_tree_depth"]
    elif settings["num_steps"] is not None:
        kw["num_steps"] = settings["num_steps"]
    if settings["chain_method"] == "parallel":
        # Pyro pickles the kernel into its worker processes: its own class, not the local
        # recording subclass (which the parallel path does not read anyway)
        from pyro.infer.mcmc import HMC, NUTS

        return _run_pyro_parallel(model, x, y, potential, z0, settings, seed, progress,
                                  NUTS if kernel_name == "nuts" else HMC, kw)
    is_bnn = hasattr(model, "predictive_distribution") and hasattr(model, "site_sizes")
    compile_s, compiled, reason = 0.0, False, None
    if is_bnn:
        t0 = time.perf_counter()
        with pyro.validation_enabled(False):
            vg, _, compiled, compile_s, reason = _make_kernels(potential, 1, z0, settings["jit"], "value_and_grad")
        calls = [0]

        def potential_fn(params):
            calls[0] += 1
            return _PackedPotential.apply(params["z"], vg)

        make = lambda: Kernel(potential_fn=potential_fn, **kw)  # noqa: E731
        compile_s = time.perf_counter() - t0
    else:
        calls = [0]
        make = lambda: Kernel(model, jit_compile=settings["jit"], ignore_jit_warnings=True, **kw)  # noqa: E731

    all_draws, all_stats = [], []
    t_warm = t_sample = 0.0
    steps_sizes, inv_mass = [], []
    for c in range(chains):
        pyro.set_rng_seed((0 if seed is None else seed) + c)
        kern = make()
        rec = {k: [] for k in ("accept_prob", "diverging", "num_steps", "energy", "step_size", "lp")}
        if kernel_name == "nuts":
            rec["tree_depth"] = []
        track = {"calls": calls[0], "mean": 0.0, "ndiv": 0, "pe": None}

        def hook(kernel, params, stage, i, rec=rec, track=track):
            n = i + 1
            m = kernel._mean_accept_prob  # Pyro keeps the running mean; recover this iteration's value
            a = track["mean"] + n * (m - track["mean"]) if n > 1 else m
            track["mean"] = m
            ndiv = len(kernel._divergences)
            nsteps = calls[0] - track["calls"]
            track["calls"] = calls[0]
            pe = float(kernel._potential_energy_last)
            k0 = getattr(kernel, "_rec_energy", None)
            energy = float("nan") if k0 is None or track["pe"] is None else k0 + track["pe"]
            track["pe"] = pe
            if stage.startswith("Warmup"):
                if i == settings["warmup"] - 1:
                    track["warm_end"] = time.perf_counter()
                    track["mean"] = 0.0
                return
            rec["accept_prob"].append(a)
            rec["diverging"].append(ndiv > track["ndiv"])
            track["ndiv"] = ndiv
            rec["num_steps"].append(nsteps)
            rec["step_size"].append(kernel.step_size)
            rec["lp"].append(-pe)
            rec["energy"].append(energy)
            if "tree_depth" in rec:
                rec["tree_depth"].append(kernel._rec_doublings - int(kernel._rec_last_invalid))

        init = {"z": z0[c]} if is_bnn else {s.name: z0[c, s.start:s.stop].reshape(s.ushape) for s in potential.sites}
        mcmc = MCMC(kern, num_samples=settings["num_samples"], warmup_steps=settings["warmup"], num_chains=1,
                    initial_params=init, hook_fn=hook, disable_progbar=not _bar_wanted(progress))
        t0 = time.perf_counter()
        with pyro.validation_enabled(False):
            mcmc.run(x, y) if not is_bnn else mcmc.run()
        t1 = time.perf_counter()
        we = track.get("warm_end", t0) if settings["warmup"] else t0
        t_warm += we - t0
        t_sample += t1 - we
        s = mcmc.get_samples()
        if is_bnn:
            all_draws.append(s["z"].reshape(settings["num_samples"], dim))
        else:
            all_draws.append(potential.unconstrain(s, batch=(settings["num_samples"],)))
        dtype = z0.dtype
        all_stats.append({k: torch.tensor(v, dtype=torch.bool if k == "diverging" else
                                          torch.long if k in ("num_steps", "tree_depth") else dtype)
                          for k, v in rec.items()})
        steps_sizes.append(float(kern.step_size))
        imm = kern.inverse_mass_matrix
        inv_mass.append(torch.cat([v.reshape(-1) for v in imm.values()]).detach().cpu() if imm else torch.ones(dim))
    draws = torch.stack(all_draws).to(z0)
    stats = {k: torch.stack([s[k] for s in all_stats]) for k in all_stats[0]}
    if not is_bnn:
        stats.pop("num_steps")  # Pyro's model path does not expose the number of potential calls
        for k in ("energy",):
            stats.pop(k, None)
    extra = {"step_size_adapted": torch.tensor(steps_sizes), "inverse_mass_matrix": torch.stack(inv_mass),
             "compiled": compiled, "compile_fallback": reason, "seconds_compile": compile_s,
             "seconds_warmup": t_warm, "seconds_sampling": t_sample}
    return draws, stats, extra


def _run_pyro_parallel(model, x, y, potential, z0, settings, seed, progress, Kernel, kw):
    from pyro.infer.mcmc import MCMC

    chains, dim = z0.shape
    pyro.set_rng_seed(0 if seed is None else seed)
    kern = Kernel(model, jit_compile=settings["jit"], ignore_jit_warnings=True, **kw)
    init = {s.name: z0[:, s.start:s.stop].reshape(chains, *s.ushape) for s in potential.sites}
    mcmc = MCMC(kern, num_samples=settings["num_samples"], warmup_steps=settings["warmup"], num_chains=chains,
                initial_params=init, disable_progbar=not _bar_wanted(progress), mp_context="spawn")
    t0 = time.perf_counter()
    mcmc.run(x, y)
    t = time.perf_counter() - t0
    s = mcmc.get_samples(group_by_chain=True)
    draws = torch.cat([potential.unconstrain({k: s[k] for k in s}, batch=(chains, settings["num_samples"]))], -1)
    # the divergences Pyro's workers report, per chain (mcmc.diagnostics() would also compute
    # R-hat and ESS of every site, and fails for fewer than 4 draws)
    div = torch.zeros(chains, settings["num_samples"], dtype=torch.bool)
    for c, d in enumerate(mcmc._diagnostics):
        for i in (d or {}).get("divergences", []):
            div[c, i] = True
    extra = {"compiled": bool(settings["jit"]), "compile_fallback": None, "seconds_compile": 0.0,
             "seconds_warmup": float("nan"), "seconds_sampling": t}
    return draws.to(z0), {"diverging": div}, extra
