"""The native backend (``backend="native"``): NUTS for small MLP BNNs in plain C.

For a network of fully connected layers the cost of a leapfrog step is a few thousand
floating-point operations, far less than what PyTorch spends dispatching them.  This backend
writes the potential energy and its gradient in closed form,

    U(w) = Σ_k ½ (w_k − μ_k)²/s_k² + Σ_n ℓ(f(x_n; w), y_n) + const,
    ∂U/∂W_l = δ_lᵀ h_l,   ∂U/∂b_l = Σ_n δ_l,   δ_{l−1} = (δ_l W_l) ⊙ φ'(h_l),

(ℓ = ½ (f − y)²/σ² for a Gaussian likelihood with fixed σ, softplus(f) − y f for a Bernoulli
one; h_{l+1} = φ(h_l W_lᵀ + b_l); δ_L = ∂ℓ/∂f ⊙ φ'_L), and the whole NUTS transition
(the algorithm of :mod:`.tree`: multinomial NUTS with the generalised no-U-turn criterion,
biased progressive sampling between sub-trees, divergence at ΔH > 1000) in one C source,
``native_nuts.c``.  One call of the compiled library advances every chain by one transition,
each chain an independent tree (no lock step: a chain stops when its own tree stops).

The C source is compiled at first use with the system C compiler (``$CC``, default ``cc``;
``-O3 -shared -fPIC``, no fast-math, no ``-march=native``; about a second) and cached on disk
under the hash of the source and the command: ``$PYROBNN_NATIVE_CACHE``, else
``$XDG_CACHE_HOME/pyrobnn``, else ``~/.cache/pyrobnn``; each library is written beside its place
and renamed into it, and loaded with :mod:`ctypes`.  On x86-64 a second build with AVX2 and
fused multiply-adds is compiled alongside (in parallel) and loaded when the CPU reports both
(``__builtin_cpu_supports``), so a cache shared by different machines stays valid; the two
builds agree to rounding (a test checks 1e-12).  tanh and the sigmoid are branch-free
polynomial evaluations of e^z − 1 (within 1e-15 relative of libm's) so that their loops
vectorise.  All computation is in float64 (the data and state are converted; the draws are
returned in the model's dtype).

The sampler reuses the torch backend's driver (:func:`.chains._run_torch`): warm-up with
step-size dual averaging and diagonal mass adaptation, checkpoints, callbacks, progress and
interruption.  Randomness stays exact under checkpoint and resume: each transition draws one
64-bit seed per chain from the driver's torch generator, and the C code expands it
(splitmix64 into xoshiro256**) for the momentum, the directions and the uniforms.  The
step-size heuristic and ``kernel="hmc"`` run the driver's own Python code on the C leapfrog.

Supported models (:func:`native_model` refuses others with a ``ValueError`` naming what is
unsupported): a :class:`~pyrobnn.BNN` whose latent sites are its weight sites only (no
sampled hyperparameters, no learned noise), layers :class:`~pyrobnn.Linear` (Bayesian, with
or without bias) each followed by at most one activation among tanh / relu / sigmoid, a
Normal prior (any loc and scale per layer; adaptive ones frozen), a Gaussian likelihood with
fixed noise or a Bernoulli one, data on the CPU.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import shutil
import platform
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...utils.files import usual_mode
from .tree import _BatchedHMC

_log = logging.getLogger(__name__)

__all__ = ["native_model", "NativeModel", "library_path"]

_SOURCE = Path(__file__).with_name("native_nuts.c")
#: -fno-trapping-math lets loops with selects (tanh's two branches) vectorise (no value changes:
#: floating-point exception flags are never read); -ffp-contract=off keeps a*b + c two roundings
_FLAGS = ("-O3", "-shared", "-fPIC", "-std=c99", "-fno-trapping-math", "-ffp-contract=off", "-Wno-psabi")
#: builds for instruction sets beyond the baseline, chosen at load time on a CPU that has them;
#: AVX2 with fused multiply-adds (one rounding for a*b + c: results differ from the baseline
#: build's in the last bits, about 20% faster)
_VARIANTS = {"avx2": ("-mavx2", "-mfma", "-ffp-contract=fast")}
_ACTIVATIONS = {"tanh": 1, "relu": 2, "sigmoid": 3}
_LIB = None
_HINT = "; use backend='torch'"


class _Model(ctypes.Structure):
    _fields_ = [("n_data", ctypes.c_int64), ("dim", ctypes.c_int64), ("n_layers", ctypes.c_int64),
                ("likelihood", ctypes.c_int64), ("width", ctypes.c_void_p), ("act", ctypes.c_void_p),
                ("w_off", ctypes.c_void_p), ("b_off", ctypes.c_void_p), ("x", ctypes.c_void_p),
                ("y", ctypes.c_void_p), ("prior_loc", ctypes.c_void_p), ("prior_prec", ctypes.c_void_p),
                ("noise_prec", ctypes.c_double), ("constant", ctypes.c_double)]


def _cache_dir() -> Path:
    if os.environ.get("PYROBNN_NATIVE_CACHE"):
        return Path(os.environ["PYROBNN_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyrobnn"


def library_path(variant: str = "") -> Path:
    """Where the compiled library for this source, compiler command and instruction-set
    ``variant`` ("" for the baseline, or one of ``_VARIANTS``) is cached."""
    cc = os.environ.get("CC", "cc")
    cmd = " ".join((cc, *_FLAGS, *_VARIANTS.get(variant, ())))
    key = hashlib.sha256(_SOURCE.read_bytes() + cmd.encode()).hexdigest()[:20]
    return _cache_dir() / f"native_nuts{'_' + variant if variant else ''}_{key}.so"


def _compile(variants, optional=()) -> None:
    """Compile the missing libraries of ``variants`` and ``optional`` (in parallel), each written
    atomically.  An ``optional`` build that fails (a compiler without AVX2 flags) is logged and
    left out: the baseline build serves."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise RuntimeError(f"backend='native' compiles C code at first use but the C compiler {cc!r} was not found "
                           f"(set $CC){_HINT}")
    jobs = []
    for v in (*variants, *optional):
        path = library_path(v)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        cmd = [cc, *_FLAGS, *_VARIANTS.get(v, ()), "-o", tmp, str(_SOURCE), "-lm"]
        jobs.append((path, tmp, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    errors = []
    optional_paths = {library_path(v) for v in optional}
    for path, tmp, proc in jobs:  # each library is compiled beside its place and renamed into it
        _, err = proc.communicate()
        if proc.returncode == 0:
            usual_mode(tmp)
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
            if path in optional_paths:
                _log.warning("backend='native': the optional build %s failed; using the baseline build (%s)",
                             path.name, err.strip()[:500])
            else:
                errors.append(f"{path.name}: {err}")
    if errors:
        raise RuntimeError(f"backend='native': compiling {_SOURCE.name} with {cc} failed:\n" + "\n".join(errors)
                           + _HINT)


def _load(path: Path):
    lib = ctypes.CDLL(str(path))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.pyrobnn_work_size.argtypes, lib.pyrobnn_work_size.restype = [p], i64
    lib.pyrobnn_potential.argtypes, lib.pyrobnn_potential.restype = [p, i64, p, p, p], ctypes.c_int
    lib.pyrobnn_leapfrog.argtypes, lib.pyrobnn_leapfrog.restype = [p, i64, p, p, p, p, p], ctypes.c_int
    lib.pyrobnn_nuts.argtypes = [p, i64, p, p, p, p, p, i64, p, p, p, p, p]
    lib.pyrobnn_nuts.restype = ctypes.c_int
    lib.pyrobnn_cpu_supports.argtypes, lib.pyrobnn_cpu_supports.restype = [ctypes.c_char_p], ctypes.c_int
    lib.path = path
    return lib


def _library(variant: str | None = None):
    """The loaded library (compiled and cached at first use) and the seconds that took: the
    fastest variant this CPU runs (``variant`` forces one: "" for the baseline)."""
    global _LIB
    if variant is None and _LIB is not None:
        return _LIB, 0.0
    t0 = time.perf_counter()
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    _compile([""] + ([variant] if variant else []), optional=list(_VARIANTS) if x86 and variant is None else ())
    lib = _load(library_path())
    if variant is None:
        for v in _VARIANTS if x86 else ():
            if library_path(v).exists() and lib.pyrobnn_cpu_supports(v.encode()):
                lib = _load(library_path(v))
                break
        _LIB = lib
    elif variant:
        lib = _load(library_path(variant))
    return lib, time.perf_counter() - t0


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise MemoryError(f"backend='native': {what} could not allocate its work space")


def _layers(model):
    """[(layer index, Linear, activation code)] of the network, or ValueError naming the
    first layer the native backend cannot run."""
    from ...model.layers import Activation, Linear

    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear) and layer.bayesian:
            out.append([i, layer, 0])
        elif isinstance(layer, Activation) and layer.name in _ACTIVATIONS and out and out[-1][2] == 0:
            out[-1][2] = _ACTIVATIONS[layer.name]
        else:
            what = (f"activation {layer.name!r} (supported: {sorted(_ACTIVATIONS)}, at most one after each Linear)"
                    if isinstance(layer, Activation) else
                    "a deterministic Linear (bayesian=False)" if isinstance(layer, Linear) else type(layer).__name__)
            raise ValueError(f"backend='native' runs networks of Bayesian Linear layers, each followed by at most one "
                             f"of {sorted(_ACTIVATIONS)}; layers.{i} is {what}{_HINT}")
    if not out:
        raise ValueError(f"backend='native' needs at least one Bayesian Linear layer{_HINT}")
    return out


class NativeModel:
    """The C description of an eligible model (:func:`native_model`): float64 copies of the
    data, the per-weight prior location and precision, the layout of every layer's weight
    and bias in the packed vector (read from the model's segments and the potential's sites),
    and calls of the library on float64 CPU tensors."""

    def __init__(self, model, x, y, potential, variant: str | None = None):
        from ...model.likelihoods import Bernoulli, Gaussian
        from ...model.priors import Normal

        if x.device.type != "cpu" or y.device.type != "cpu":
            raise ValueError(f"backend='native' runs on the CPU; the data are on {x.device}{_HINT} for this device")
        if getattr(potential, "hypers", ()):
            names = [h.name for h in potential.hypers]
            raise ValueError(f"backend='native' samples the weights only; sampled hyperparameters {names} "
                             f"(hyperpriors=) are not supported{_HINT}")
        weight_sites = getattr(model, "site_sizes", {})
        for s in potential.sites:
            if s.name not in weight_sites or not s.identity:
                raise ValueError(f"backend='native' samples the weights only; latent site {s.name!r} is not a weight "
                                 f"site{_HINT}")
        lik = model.likelihood
        if isinstance(lik, Gaussian) and not lik.learned and not lik.heteroscedastic:
            kind, sigma = 0, float(lik.scale)
        elif isinstance(lik, Bernoulli):
            kind, sigma = 1, None
        else:
            mode = f" with {lik.mode} noise" if isinstance(lik, Gaussian) else ""
            raise ValueError(f"backend='native' supports a Gaussian likelihood with fixed noise or a Bernoulli one, "
                             f"not {type(lik).__name__}{mode}{_HINT}")
        layers = _layers(model)
        if x.dim() != 2 or x.shape[1] != layers[0][1].in_features:
            raise ValueError(f"backend='native' needs x of shape (N, {layers[0][1].in_features}), got "
                             f"{tuple(x.shape)}{_HINT}")
        if layers[-1][1].out_features != 1:
            raise ValueError(f"backend='native' needs one network output, got {layers[-1][1].out_features}{_HINT}")
        start = {s.name: s.start for s in potential.sites}
        dim = potential.dim
        offsets = {}
        loc, scale = np.empty(dim), np.empty(dim)
        for seg, prior in zip(model.segments, model._segment_prior):
            if not isinstance(prior, Normal):
                raise ValueError(f"backend='native' supports Normal priors only; layer {seg.layer} has "
                                 f"{type(prior).__name__}{_HINT}")
            at = start[seg.site] + seg.start
            offsets[seg.name] = at
            loc[at:at + seg.numel] = float(prior.loc)
            scale[at:at + seg.numel] = float(prior.scale)
        n = x.shape[0]
        self.dim, self.n_data = dim, n
        self._keep = {
            "width": torch.tensor([layers[0][1].in_features] + [lay.out_features for _, lay, _ in layers]),
            "act": torch.tensor([a for _, _, a in layers]),
            "w_off": torch.tensor([offsets[f"layers.{i}.weight"] for i, _, _ in layers]),
            "b_off": torch.tensor([offsets.get(f"layers.{i}.bias", -1) for i, _, _ in layers]),
            "x": x.detach().to(torch.float64).T.contiguous(),  # feature-major: (in, N)
            "y": y.detach().to(torch.float64).contiguous(),
            "prior_loc": torch.from_numpy(loc), "prior_prec": torch.from_numpy(1.0 / scale**2),
        }
        # the normalising terms: Σ_k (log s_k + ½ log 2π), and N (log σ + ½ log 2π) for a Gaussian
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        const = float(np.log(scale).sum()) + dim * half_log_2pi
        if kind == 0:
            const += n * (math.log(sigma) + half_log_2pi)
        k = self._keep
        self.struct = _Model(n, dim, len(layers), kind, *(_ptr(k[f]) for f in ("width", "act", "w_off", "b_off", "x",
                                                                               "y", "prior_loc", "prior_prec")),
                             0.0 if sigma is None else 1.0 / sigma**2, const)
        self.lib, self.seconds_compile = _library(variant)
        self._ref = ctypes.byref(self.struct)

    def value_and_grad(self, z: torch.Tensor):
        """U (C,) and ∇U (C, D) at the rows of z (C, D)."""
        z = z.detach().to(torch.float64).contiguous()
        u = z.new_empty(z.shape[0])
        g = torch.empty_like(z)
        _check(self.lib.pyrobnn_potential(self._ref, z.shape[0], _ptr(z), _ptr(u), _ptr(g)), "the potential")
        return u, g

    def leapfrog(self, state: torch.Tensor, step: torch.Tensor, inv_mass: torch.Tensor):
        """One leapfrog step of the packed state (C, 3, D), as :func:`.integrator._leapfrog_fn`."""
        state = state.contiguous()
        c = state.shape[0]
        step = step.reshape(-1).expand(c).contiguous()
        inv_mass = inv_mass.expand(c, self.dim).contiguous()
        out, u = torch.empty_like(state), state.new_empty(c)
        _check(self.lib.pyrobnn_leapfrog(self._ref, c, _ptr(state), _ptr(step), _ptr(inv_mass), _ptr(out), _ptr(u)),
               "the leapfrog step")
        return out, u


class _NativeSampler(_BatchedHMC):
    """The driver's sampler (:class:`.tree._BatchedHMC`'s interface) whose NUTS transition is
    one call of the C library for all chains; ``calls`` counts leapfrog steps summed over
    chains (chains do not move in lock step)."""

    def __init__(self, native, leapfrog, generator, kernel="nuts", max_tree_depth=10, num_steps=None, **kw):
        super().__init__(leapfrog, generator, kernel, max_tree_depth, num_steps, **kw)
        self.native = native

    def step(self, x, step, inv_mass):
        self.calls += x.shape[0]
        return self.leapfrog(x, step, inv_mass)

    def transition(self, state) -> dict:
        if self.kernel != "nuts":
            return super().transition(state)
        c = state.u.shape[0]
        seeds = torch.randint(-2**63, 2**63 - 1, (c,), dtype=torch.int64, generator=self.gen)
        zg, u = state.zg.contiguous().clone(), state.u.contiguous().clone()
        step, inv_mass = state.step_size.contiguous(), state.inv_mass.contiguous()
        acc, energy = torch.empty_like(u), torch.empty_like(u)
        div = torch.empty(c, dtype=torch.bool)
        depth, steps = torch.empty(c, dtype=torch.int64), torch.empty(c, dtype=torch.int64)
        rc = self.native.lib.pyrobnn_nuts(self.native._ref, c, _ptr(zg), _ptr(u), _ptr(step), _ptr(inv_mass),
                                          _ptr(seeds), self.max_tree_depth, _ptr(acc), _ptr(div), _ptr(depth),
                                          _ptr(steps), _ptr(energy))
        _check(rc, "the NUTS transition")
        self.calls += int(steps.sum())
        state.zg, state.u = zg, u
        return {"accept_prob": acc, "diverging": div, "tree_depth": depth, "num_steps": steps, "energy": energy}


def native_model(model, x, y, potential, settings: dict) -> NativeModel:
    """The :class:`NativeModel` of ``model`` on (x, y) for the run ``settings``, or
    ``ValueError`` naming what the native backend does not support."""
    if settings["kernel"] not in ("nuts", "hmc"):
        raise ValueError(f"backend='native' runs kernel 'nuts' or 'hmc', not {settings['kernel']!r}{_HINT}")
    if not hasattr(model, "site_sizes") or not hasattr(model, "layers"):
        raise ValueError(f"backend='native' needs a pyrobnn BNN, got {type(model).__name__}; use backend='pyro'")
    return NativeModel(model, x, y, potential)


def _run_native(model, x, y, potential, z0, settings, seed, progress, checkpointer=None, callback=None, stop=None):
    """:func:`.chains._run_torch` with the C kernels and sampler, in float64; the draws and
    the adapted step sizes and masses come back in the dtype of ``z0``."""
    from .chains import _run_torch

    native = native_model(model, x, y, potential, settings)
    kernels = (native.leapfrog, native.value_and_grad, True, native.seconds_compile, None)
    draws, stats, extra = _run_torch(model, x, y, potential, z0.to(torch.float64), settings, seed, progress,
                                     checkpointer, callback, stop, kernels=kernels,
                                     make_sampler=partial(_NativeSampler, native))
    extra["native_library"] = str(native.lib.path)
    for k in ("step_size_adapted", "inverse_mass_matrix"):
        extra[k] = extra[k].to(z0.dtype)
    stats = {k: v.to(z0.dtype) if v.is_floating_point() else v for k, v in stats.items()}
    return draws.to(z0.dtype), stats, extra
