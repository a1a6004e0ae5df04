"""The public functions :func:`fit_nuts` and :func:`fit_hmc`."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from ...model.memory import estimate_nuts
from ...utils.rng import fresh_seed
from ...utils.validation import ArgumentTypeError, check_bool, check_config
from ..arguments import check_dtype, check_fit_memory, check_optional_bool, check_seed, data_bytes, float_dtype_of, \
    prepare_data
from .. import distributed as D
from ..interrupt import StopOnInterrupt
from ..posterior import SamplePosterior
from ..svi import place, resolve_device
from .chains import _run_torch
from .checkpoint import _Checkpointer, _check_checkpoint_args, _fingerprint
from .config import NUTS_DEFAULTS, NUTSConfig
from .hyperpriors import _apply_frozen, _resolve_hyperpriors
from .native import _run_native
from .potential import _build_potential
from .pyro_backend import _run_pyro

def fit_nuts(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: NUTSConfig | None = None,
    num_samples: int = NUTS_DEFAULTS.num_samples,
    warmup: int = NUTS_DEFAULTS.warmup,
    chains: int = NUTS_DEFAULTS.chains,
    target_accept: float = NUTS_DEFAULTS.target_accept,
    max_tree_depth: int = NUTS_DEFAULTS.max_tree_depth,
    jit: bool = NUTS_DEFAULTS.jit,
    kernel: str = NUTS_DEFAULTS.kernel,
    step_size: float | None = NUTS_DEFAULTS.step_size,
    num_steps: int | None = NUTS_DEFAULTS.num_steps,
    adapt_step_size: bool = NUTS_DEFAULTS.adapt_step_size,
    adapt_mass_matrix: bool = NUTS_DEFAULTS.adapt_mass_matrix,
    seed: int | None = 0,
    progress: bool = True,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | None = None,
    init: str | dict = NUTS_DEFAULTS.init,
    frozen: dict | None = None,
    hyperpriors: dict | None = None,
    backend: str | None = NUTS_DEFAULTS.backend,
    chain_method: str | None = NUTS_DEFAULTS.chain_method,
    check_memory: bool | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = NUTS_DEFAULTS.checkpoint_every,
    resume: bool = False,
    callback: Callable[[dict], None] | None = None,
    handle_interrupt: bool = True,
    distributed: bool = False,
) -> SamplePosterior:
    """Sample the posterior of ``model`` given (x, y) with NUTS (or HMC), full batch.

    ``model`` is a :class:`~pyrobnn.BNN` (any Pyro model with ``backend="pyro"``).  Runs
    ``chains`` chains of ``warmup`` adaptation iterations (Stan's windowed step-size and
    diagonal mass-matrix adaptation towards ``target_accept``) and ``num_samples`` kept
    draws.  NUTS: the multinomial no-U-turn sampler (Hoffman & Gelman 2014; Betancourt 2017)
    with trees of at most 2^``max_tree_depth`` − 1 leapfrog steps.  ``kernel="hmc"``: static
    HMC (Neal 2011) with ``num_steps`` leapfrog steps (default: a trajectory length of 2π,
    as Pyro).  ``kernel="chees"``: ChEES-HMC (Hoffman, Radul & Sountsov 2021; many
    chains in lock step, one trajectory length adapted during warm-up, see
    :mod:`pyrobnn.infer.mcmc.chees`; ``info["trajectory_length"]`` records it).  ``step_size`` is the initial step size (found by the doubling heuristic when
    None).

    ``backend``: "torch" (all chains vectorised, the default for a BNN), "pyro" (Pyro's
    NUTS/HMC kernel, the reference) or "native" (the potential, its gradient and the whole NUTS
    transition in C, compiled at first use; MLPs of Linear layers with tanh/relu/sigmoid,
    Normal priors, a fixed-noise Gaussian or a Bernoulli likelihood, on the CPU; float64; see
    :mod:`pyrobnn.infer.mcmc.native`).  ``chain_method``: "vectorized" (torch backend default),
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
    ``samples``, started at the prior's current value.  ``seed`` makes the run reproducible;
    ``seed=None`` draws a fresh one (from the operating system, without touching any global
    generator; a resumed run keeps its checkpoint's), recorded as ``info["seed"]``.

    The settings of the method are those of :class:`NUTSConfig` (whose defaults the keyword
    arguments take); ``config=NUTSConfig(...)`` gives them all at once instead, and
    ``info["config"]`` records them.

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

    ``distributed=True`` (every rank of a ``torch.distributed`` job calling it alike, e.g. under
    ``torchrun``; see :mod:`pyrobnn.infer.distributed`) runs the chains across the ranks, each
    rank a contiguous block of them one after another, chain c with seed ``seed + c`` as
    ``chain_method="sequential"`` does; every rank then gathers all chains, so the result —
    draws, statistics, R-hat and ESS across all chains — equals the single process's
    ``chain_method="sequential"`` run, bit for bit on the CPU.  It needs the torch backend and
    no checkpoint (the chains' files would be spread over the ranks).

    Every argument is checked before any work (``ValueError``/``TypeError`` naming it), the data
    as for :func:`pyrobnn.fit_svi`.  ``check_memory`` (default: the model's own setting, True)
    refuses a run whose memory (:func:`pyrobnn.model.memory.estimate_nuts`: stored draws, chain
    states, the worst-case NUTS trajectory buffer, activations) exceeds what the device has
    available; ``check_memory=False`` tries anyway.
    """
    # ---- every argument checked before any work
    given = dict(num_samples=num_samples, warmup=warmup, chains=chains, target_accept=target_accept,
                 max_tree_depth=max_tree_depth, jit=jit, kernel=kernel, step_size=step_size, num_steps=num_steps,
                 adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix, init=init, backend=backend,
                 chain_method=chain_method, checkpoint_every=checkpoint_every)
    config = check_config(config, NUTSConfig, given)
    (num_samples, warmup, chains, target_accept, max_tree_depth, jit, kernel, step_size, num_steps, adapt_step_size,
     adapt_mass_matrix, init, backend, chain_method, checkpoint_every) = (getattr(config, k) for k in given)
    check_bool("progress", progress)
    check_memory = check_optional_bool("check_memory", check_memory)
    seed = seed_given = check_seed(seed)
    dtype = check_dtype(dtype)
    for name, value in (("frozen", frozen), ("hyperpriors", hyperpriors)):
        if value is not None and not isinstance(value, dict):
            raise ArgumentTypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    is_bnn = hasattr(model, "predictive_distribution") and hasattr(model, "site_sizes")
    if backend is None:
        backend = "torch" if is_bnn else "pyro"
    if backend in ("torch", "native") and not is_bnn:
        raise ValueError(f"backend={backend!r} needs a pyrobnn BNN; use backend='pyro' for other Pyro models")
    if chain_method is None:
        chain_method = "vectorized" if backend in ("torch", "native") else "sequential"
    if backend in ("torch", "native") and chain_method == "parallel":
        raise ValueError(f"chain_method='parallel' runs Pyro's worker processes: use backend='pyro' "
                         f"(the {backend} backend runs all chains in one call: chain_method='vectorized')")
    if kernel == "chees" and (backend != "torch" or chain_method != "vectorized" or chains < 2):
        raise ValueError(f"kernel='chees' adapts one trajectory length across chains in lock step: it needs "
                         f"backend='torch', chain_method='vectorized' and chains >= 2 (got backend={backend!r}, "
                         f"chain_method={chain_method!r}, chains={chains})")
    if backend == "pyro" and chain_method == "vectorized":
        raise ValueError("chain_method='vectorized' needs backend='torch'")
    # the native backend runs the torch backend's driver: the same checkpoints and callbacks
    _check_checkpoint_args(checkpoint, checkpoint_every, resume, callback, "torch" if backend == "native" else backend)
    check_bool("handle_interrupt", handle_interrupt)
    check_bool("distributed", distributed)
    if distributed:
        if backend != "torch" or kernel == "chees" or checkpoint is not None:
            raise ValueError("distributed=True runs chains of the torch backend's NUTS/HMC one after another on each "
                             "rank: it needs backend='torch', kernel 'nuts' or 'hmc' and no checkpoint")
        if config.chain_method not in (None, "sequential"):
            raise ValueError(f"distributed=True runs each chain with its own seed, as chain_method='sequential'; got "
                             f"chain_method={config.chain_method!r} (vectorised chains share one generator, so their "
                             f"draws depend on which chains run together)")
        chain_method = "sequential"
    x, y = prepare_data(model, x, y)
    group = D.join(resolve_device(device, x)) if distributed else None
    if group is not None:  # one seed for all ranks; the same data everywhere
        seed = D.shared_seed(seed, group)
        D.check_same_data(x, y, group)
    if seed is None:  # a fresh seed (a resumed run continues with the one its checkpoint recorded)
        seed = _Checkpointer.recorded_seed(checkpoint) if resume and Path(checkpoint).exists() else None
        seed = fresh_seed() if seed is None else seed
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
    if backend in ("torch", "native"):
        checkpointer = None
        if checkpoint is not None:
            checkpointer = _Checkpointer(checkpoint, checkpoint_every,
                                         _fingerprint(model, x, y, potential, z0, settings, seed, hypers), warmup)
            if resume and checkpointer.load():
                resumed_at = [int(c["iteration"]) for c in checkpointer.chains]
        run = _run_native if backend == "native" else partial(_run_torch, group=group)
        try:
            with StopOnInterrupt(handle_interrupt) as stop:
                draws, stats, extra = run(model, x, y, potential, z0, settings, seed,
                                          progress and (group is None or group.is_main), checkpointer, callback, stop)
        finally:
            if group is not None:
                D.leave(group)
    else:
        draws, stats, extra = _run_pyro(model, x, y, potential, z0, settings, seed, progress)
    samples = {k: v.detach().cpu() for k, v in potential.constrain(draws).items()}
    stats = {k: v.detach().cpu() for k, v in stats.items()}
    info = {"seed": seed, "seed_drawn": seed_given is None, "config": config.record(), **settings, "num_weights": getattr(model, "num_weights", None),
            "n_data": int(x.shape[0]), "sites": [s.name for s in potential.sites], **extra,
            "num_divergences": int(stats["diverging"].sum()) if "diverging" in stats else None,
            "seconds_total": time.perf_counter() - t_start}
    if group is not None:
        info.update(world_size=group.world_size, backend_group=group.backend)
    if hypers:
        info["hyperpriors"] = {h.name: repr(h.dist) for h in hypers}
    if checkpoint is not None:  # iterations each chain had completed when resumed (None: a fresh run)
        info.update(checkpoint=str(checkpoint), resumed_at=resumed_at)
    if hasattr(model, "prior_modules"):
        info["prior_hyperparameters"] = {i: model.prior_of(i).hyperparameters() for i in model.bayesian_layers}
    return SamplePosterior(model=model, method=kernel, samples=samples, sample_stats=stats, info=info)


fit_hmc = partial(fit_nuts, kernel="hmc")
fit_hmc.__doc__ = "HMC with a fixed number of leapfrog steps: :func:`fit_nuts` with ``kernel='hmc'``."
