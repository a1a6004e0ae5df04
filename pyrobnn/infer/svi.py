"""Stochastic variational inference: :func:`fit_svi`.

What the loop does per step, and why it costs little more than a hand-written PyTorch loop
(``python benchmarks/svi_step.py --whole-fit`` measures it):

* the minibatch is ``x[perm[i·B:(i+1)·B]]`` with one permutation per epoch, drawn on the CPU by
  the fit's own generator and moved once to the data's device; the data stay where they are
  (on the device they were given on, or moved there once before training), so a step indexes,
  it does not copy from the host;
* the ELBO's terms come from :mod:`pyrobnn.infer.torch_elbo` for a BNN with a MeanField or ARD
  guide (plain tensor arithmetic, no Pyro trace; Pyro's ``Trace_ELBO`` otherwise); Pyro's argument
  validation runs on the first step only; the KL weight is computed only for a non-uniform
  schedule;
* backward, optimizer step, and the epoch's running (loss, NLL, KL) added in place into a
  three-element tensor on the device — nothing is read back to the host per step;
* finiteness is read back once per window of ``check_finite_every`` steps (100) and at epoch
  ends: a non-finite loss leaves the running sum non-finite and a non-finite gradient the
  parameters after the update, so one number tells whether the window was clean; a window that
  was not is replayed step by step from a copy of its start (the same random draws), which finds
  the step and stops with the parameters of the last finite one, as a check before every update
  would;
* error messages, progress text and records are built per epoch (or on error), never per step;
  the progress bar counts epochs and redraws at most twice a second, only on a terminal.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoLaplaceApproximation
from tqdm.auto import tqdm

from ..model.memory import estimate_svi
from ..utils.rng import preserve_rng, seeded
from ..utils.validation import ArgumentTypeError, check_bool, check_config
from .arguments import (
    check_dtype,
    check_fit_memory,
    check_optional_bool,
    check_seed,
    data_bytes,
    float_dtype_of,
    prepare_data,
)
from . import distributed as D
from .checkpoint import apply_checkpoint, read_checkpoint, save_checkpoint
from .elbo import elbo_terms, make_elbo
from .guides import laplace_autoguide
from .torch_elbo import LOCAL_ESTIMATORS, TorchEstimator, check_local_estimator, supports
from .interrupt import FitInterrupted, StopOnInterrupt
from .kl_schedule import kl_weight
from .posterior import GuidePosterior, Posterior
from .svi_config import OPTIMIZERS, SVI_DEFAULTS, SVIConfig

__all__ = ["fit_svi", "SVIConfig", "NonFiniteLossError", "FitInterrupted", "resolve_device", "OPTIMIZERS"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss; the parameters are those of the last finite step."""


def resolve_device(device, x: torch.Tensor | None = None) -> torch.device:
    """"auto" → the data's device if it is on a GPU, else CUDA when available, else CPU."""
    if device is None or device == "auto":
        if x is not None and x.device.type != "cpu":
            return x.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False")
    return device


#: guide class → its family in :mod:`pyrobnn.model.memory` estimates
_GUIDE_FAMILIES = {"MeanField": "meanfield", "ARD": "ard", "Delta": "delta", "WeightNoise": "weight_noise",
                   "AutoNormal": "auto_normal", "AutoLowRankMultivariateNormal": "auto_lowrank"}


def place(model, x: torch.Tensor, y: torch.Tensor, device, dtype):
    """Move ``model`` and the data to the resolved device (the data's device for "auto") and
    floating dtype (``dtype``, else the data's); integer targets keep their dtype.  Returns
    ``(x, y, device, float dtype)``."""
    dev = resolve_device(device, x)
    float_dtype = float_dtype_of(x, dtype)
    if isinstance(model, torch.nn.Module):
        model.to(device=dev, dtype=float_dtype)
    x = x.to(device=dev, dtype=float_dtype)
    y = y.to(device=dev, dtype=float_dtype if torch.is_floating_point(y) else y.dtype)
    return x, y, dev, float_dtype


def fit_svi(
    model,
    guide,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: SVIConfig | None = None,
    epochs: int = SVI_DEFAULTS.epochs,
    batch_size: int = SVI_DEFAULTS.batch_size,
    optimizer: str = SVI_DEFAULTS.optimizer,
    lr: float | None = SVI_DEFAULTS.lr,
    optimizer_kwargs: dict | None = SVI_DEFAULTS.optimizer_kwargs,
    kl: str = SVI_DEFAULTS.kl,
    anneal_epochs: int = SVI_DEFAULTS.anneal_epochs,
    elbo: str = SVI_DEFAULTS.elbo,
    num_particles: int = SVI_DEFAULTS.num_particles,
    vectorize_particles: bool = SVI_DEFAULTS.vectorize_particles,
    empirical_bayes: bool = SVI_DEFAULTS.empirical_bayes,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | None = None,
    seed: int | None = 0,
    shuffle: bool = SVI_DEFAULTS.shuffle,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = SVI_DEFAULTS.checkpoint_every,
    resume: bool = False,
    callback=None,
    max_plate_nesting: int = SVI_DEFAULTS.max_plate_nesting,
    check_memory: bool | None = None,
    handle_interrupt: bool = True,
    distributed: bool = False,
    check_finite_every: int = SVI_DEFAULTS.check_finite_every,
) -> Posterior:
    """Fit ``guide`` to the posterior of ``model`` given (x, y) by minibatch SVI.

    Each step draws a weight sample from the guide and minimises the minibatch ELBO
    F_i = w_i KL[q || p] − (N/B) log p(D_i | w) (Blundell et al. 2015, eq. 2 and 8–9): the KL
    is Monte-Carlo (``elbo="trace"``, Pyro's ``Trace_ELBO``) or analytic where it exists
    (``elbo="meanfield"``, ``TraceMeanField_ELBO``); ``elbo="local_reparam"`` (Kingma et al.
    2015) and ``"flipout"`` (Wen et al. 2018) give every example its own weight noise, for
    Gaussian guides on linear layers (:mod:`pyrobnn.infer.torch_elbo`); w_i follows ``kl`` ("uniform",
    "blundell" or "anneal", see :mod:`pyrobnn.infer.kl_schedule`).  With ``num_particles > 1``
    the particles run as one vectorised pass.  Adaptive (empirical-Bayes) priors are set to
    their closed-form optimum given the guide before every step.

    The settings of the method are those of :class:`~pyrobnn.infer.svi_config.SVIConfig`, whose
    defaults the keyword arguments take; ``config=SVIConfig(...)`` gives them all at once instead
    (a setting given both ways is refused), and the posterior records them in
    ``info["config"]``.  ``optimizer`` is "adam", "adadelta" (Graves 2011) or "sgd"; ``lr``
    defaults to 1e-3, 1.0 and 1e-2 respectively.  ``device="auto"`` follows the data (CUDA when the data is
    there, or when available).  Checkpoints (``checkpoint=path``) are written atomically every
    ``checkpoint_every`` epochs and at the end; ``resume=True`` continues from one.

    Every argument is checked before any work (``ValueError``/``TypeError`` naming it): x must
    fit the network, y the likelihood (numpy arrays are accepted; integer 0/1 labels are
    observed as floats under a Bernoulli likelihood), the guide must have been built for this
    network.  ``check_memory`` (default: the model's own setting, True) refuses a fit whose
    memory (:func:`pyrobnn.model.memory.estimate_svi`) exceeds what the device has available,
    before anything is allocated; pass ``check_memory=False`` to try anyway.

    With ``handle_interrupt`` (in the main thread), a first Ctrl-C (SIGINT) stops training after
    the current step: the state is saved to ``checkpoint`` (also mid-epoch) and
    :class:`FitInterrupted` is raised; ``resume=True`` then continues bit for bit as if never
    interrupted.  A second Ctrl-C interrupts at once.  The caller's global random generators
    are left as they were (``seed`` seeds a private copy of torch's).

    ``distributed=True`` runs data-parallel SVI in a job started by ``torchrun`` (or in an
    initialised ``torch.distributed`` process group; see :mod:`pyrobnn.infer.distributed`):
    every rank passes the same model, guide, data and arguments, ``batch_size`` is the batch of
    one rank (the global batch is ``batch_size × world size``), and the result equals a single
    process's fit with the global batch on the same global order of rows, to floating-point
    rounding.  Rank 0 alone reads and writes ``checkpoint`` and shows progress; every rank
    returns the same posterior.  ``seed=None`` draws one fresh seed for all ranks.

    A non-finite loss raises :class:`NonFiniteLossError` naming the step, the term and the
    minibatch's rows, with the parameters of the last finite step left in place (and saved to
    ``checkpoint`` when given).  The check costs nothing per step: every ``check_finite_every``
    steps, at epoch ends and before an interrupt's checkpoint, the loop reads back whether the
    epoch's running loss and the parameters are finite (one number; on an accelerator a read
    waits for all queued work, so it is not done per step).  A non-finite loss leaves the running
    sum non-finite and a non-finite gradient the parameters; such a window is replayed step by step
    from a copy of its starting state, with the same random draws, checking the loss and gradients
    before each update, so the error, the step it names and the parameters kept are those of a
    check at every step.  The copy costs the memory of the parameters and optimizer state once
    more; ``check_finite_every=1`` checks every step before its update and keeps no copy (with
    ``distributed=True`` every step is checked: the ranks exchange their stop flags every step).  Returns a :class:`GuidePosterior` whose
    ``history`` has one entry per epoch (loss, nll, kl, seconds).
    """
    # ---- every argument checked before any work (no guide parameter created, no step taken)
    given = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, optimizer_kwargs=optimizer_kwargs,
                 kl=kl, anneal_epochs=anneal_epochs, elbo=elbo, num_particles=num_particles,
                 vectorize_particles=vectorize_particles, empirical_bayes=empirical_bayes, shuffle=shuffle,
                 checkpoint_every=checkpoint_every, check_finite_every=check_finite_every,
                 max_plate_nesting=max_plate_nesting)
    config = check_config(config, SVIConfig, given)
    for name, flag in (("progress", progress), ("resume", resume), ("handle_interrupt", handle_interrupt)):
        check_bool(name, flag)
    check_bool("distributed", distributed)
    check_memory = check_optional_bool("check_memory", check_memory)
    seed = check_seed(seed)
    dtype = check_dtype(dtype)
    if callback is not None and not callable(callback):
        raise ArgumentTypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, (str, Path)):
        raise ArgumentTypeError(f"checkpoint must be a path (str or pathlib.Path) or None, got "
                                f"{type(checkpoint).__name__}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path>")
    if not callable(guide):
        raise ArgumentTypeError(f"guide must be a Pyro guide (e.g. pyrobnn.guides.MeanField(model)), got "
                                f"{type(guide).__name__}")
    x, y = prepare_data(model, x, y)
    if hasattr(guide, "check_model"):
        guide.check_model(model)
    if config.elbo in LOCAL_ESTIMATORS:
        check_local_estimator(config.elbo, model, guide)
    dev = resolve_device(device, x)
    if hasattr(model, "memory_facts"):
        fdt = float_dtype_of(x, dtype)
        family = _GUIDE_FAMILIES.get(type(guide).__name__, "meanfield")
        est = estimate_svi(**model.memory_facts(x.shape[1:]), n_data=x.shape[0],
                           batch_size=config.batch_size, num_particles=config.num_particles, guide=family,
                           rank=int(getattr(guide, "rank", 0) or 0), optimizer=config.optimizer,
                           data_bytes=data_bytes(x, y, fdt), dtype=fdt, device=dev)
        check_fit_memory(model, check_memory, est)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    group = D.join(dev) if distributed else None
    try:
        if group is not None:
            seed = D.shared_seed(seed, group)
            D.check_same_data(x, y, group)
        # the caller's global generators are restored afterwards: training seeds torch's and a resumed
        # run restores the checkpoint's
        scope = seeded(seed) if seed is not None else preserve_rng() if resume else nullcontext()
        with scope, StopOnInterrupt(handle_interrupt) as stop:
            post = _train(model, guide, x, y, stop=stop, **config.kwargs(), device=device, dtype=dtype, seed=seed,
                          progress=progress, ckpt=ckpt, resume=resume, callback=callback, group=group)
        post.info["config"] = config.record()
        return post
    finally:
        if group is not None:
            D.leave(group)


def _train(model, guide, x, y, *, stop, epochs, batch_size, optimizer, lr, optimizer_kwargs, kl, anneal_epochs,
           elbo, num_particles, vectorize_particles, empirical_bayes, device, dtype, seed, shuffle, progress, ckpt,
           checkpoint_every, resume, callback, max_plate_nesting, check_finite_every, group=None) -> Posterior:
    x, y, dev, float_dtype = place(model, x, y, device, dtype)
    n = x.shape[0]
    world = 1 if group is None else group.world_size
    main = group is None or group.is_main
    bsz = min(batch_size * world, n)  # the global minibatch; each rank takes its shard of it
    num_batches = math.ceil(n / bsz)
    shuffle_gen = torch.Generator(device="cpu")
    shuffle_gen.manual_seed(0 if seed is None else seed)

    # set the guide up on the first minibatch (creates its parameters) and move it
    with poutine.block():
        if getattr(guide, "is_setup", True) is False:
            guide.setup(x[:bsz], y[:bsz], n_data=n)
        else:
            guide(x[:bsz], y[:bsz], n_data=n)
    guide.to(device=dev)
    if group is not None:  # the same starting point everywhere, whatever each rank's initialisation drew
        D.broadcast_state([model, guide], group)

    params = [p for p in list(model.parameters()) + list(guide.parameters()) if p.requires_grad]
    opt_cls, default_lr = OPTIMIZERS[optimizer]
    opt = opt_cls(params, lr=default_lr if lr is None else lr, **(optimizer_kwargs or {}))
    if elbo in ("trace", "meanfield") and num_particles == 1 and supports(model, guide):
        elbo_obj = TorchEstimator(elbo)  # the same numbers from the same draws, without Pyro's tracing
    else:
        elbo_obj = make_elbo(elbo, num_particles, vectorize_particles, max_plate_nesting)

    start_epoch, history, start_batch, saved_perm, saved_sums = 0, [], 0, None, None
    state = read_checkpoint(ckpt) if main and resume and ckpt.exists() else None
    if group is not None:  # rank 0 reads the checkpoint; every rank restores it
        state = D.broadcast_object(state, group)
    if state is not None:
        ck = apply_checkpoint(state, ckpt, model=model, guide=guide, optimizer=opt, shuffle_generator=shuffle_gen)
        start_epoch, history, start_batch = ck["epoch"], ck["history"], ck["batch"]
        saved_perm, saved_sums = ck["perm"], ck["sums"]

    def save(epoch_done: int, batch_done: int = 0, perm=None, sums=None) -> None:
        if not main:
            return
        save_checkpoint(ckpt, model=model, guide=guide, optimizer=opt, epoch=epoch_done, history=history,
                        shuffle_generator=shuffle_gen, batch=batch_done, perm=perm, sums=sums)

    eb = empirical_bayes and getattr(model, "has_adaptive_prior", False) and hasattr(guide, "loc_scale")
    # disable=None: tqdm draws the bar only when stderr is a terminal, never into a log file; rank 0 alone.
    # mininterval: at most two redraws a second
    bar = tqdm(range(start_epoch, epochs), desc="SVI", unit="epoch", disable=None if progress and main else True,
               initial=start_epoch, total=epochs, dynamic_ncols=True, mininterval=0.5)
    step = start_epoch * num_batches + start_batch
    validate = True
    reduce = None if group is None else D.GradientReducer(params)
    # the KL weight of minibatch i: Blundell's depends on i alone (listed once), the others on the epoch alone
    blundell = [kl_weight(kl, i + 1, num_batches) for i in range(num_batches)] if kl == "blundell" else None
    elbo_kwargs = {"n_data": n}
    # steps between two finiteness checks (a check reads a number back, which waits for an accelerator's queued
    # work); the ranks of a distributed fit exchange their stop flags every step, which waits anyway
    every = 1 if group is not None else check_finite_every
    zero = torch.zeros((), dtype=float_dtype, device=dev)
    with pyro.validation_enabled(False):  # Pyro's argument checks: the first step only, below
        for epoch in bar:
            t0 = time.perf_counter()
            first = start_batch if epoch == start_epoch else 0
            if first:  # resumed between two steps: the epoch's order and running sums come from the checkpoint
                perm = saved_perm.to(dev) if saved_perm is not None else None
                sums = saved_sums.to(device=dev, dtype=float_dtype)
            else:
                perm = torch.randperm(n, generator=shuffle_gen).to(dev) if shuffle else None
                sums = torch.zeros(3, device=dev, dtype=float_dtype)
            accs = sums.unbind()
            # the epoch's minibatches of row numbers, as views of the permutation (one split per epoch)
            batches = perm.split(bsz) if shuffle else None
            w_epoch = 1.0 if blundell is not None else kl_weight(kl, 1, num_batches, epoch, anneal_epochs)
            i, replay_to = first, None
            if every > 1:
                window = _Snapshot(model, guide, opt, i, step, sums)
            while i < num_batches:
                checked = every == 1 or replay_to is not None
                idx = batches[i] if shuffle else slice(i * bsz, (i + 1) * bsz)
                mine, share = (idx, 1.0) if group is None else D.shard(_row_numbers(idx, n, dev), group)
                # on the data's device: a gather of the rows (a view without shuffling), no host copy
                if torch.is_tensor(mine):
                    xb, yb = x.index_select(0, mine), y.index_select(0, mine)
                else:
                    xb, yb = x[mine], y[mine]
                if eb:
                    model.update_priors(guide.loc_scale)
                w = w_epoch if blundell is None else blundell[i]
                if validate:  # Pyro's argument checks on the first step only (the loop runs without them)
                    with pyro.validation_enabled(True):
                        terms = elbo_terms(elbo_obj, model, guide, (xb, yb), elbo_kwargs, kl_weight=w)
                    validate = False
                else:
                    terms = elbo_terms(elbo_obj, model, guide, (xb, yb), elbo_kwargs, kl_weight=w)
                kl_part = terms.kl if torch.is_tensor(terms.kl) else zero + terms.kl
                if group is None:
                    loss, nll = terms.loss, terms.nll
                else:  # this rank's part of the minibatch ELBO: its share of the likelihood, the KL on rank 0 only
                    nll = terms.nll * share if share != 1.0 else terms.nll
                    kl_part = kl_part if main else zero
                    loss = nll + w * kl_part
                for p in params:  # opt.zero_grad(set_to_none=True), without its per-call profiling scope
                    p.grad = None
                loss.backward()
                stats = (loss.detach(), nll.detach(), kl_part.detach())
                if reduce is not None:  # one all_reduce: every gradient, the step's terms and the stop flags
                    reduced = reduce(torch.stack([*stats, zero + float(stop.requested)]))
                    stats, stop_flag = reduced[:3].unbind(), reduced[3]
                if checked and not _all_finite([stats[0]] + [p.grad for p in params if p.grad is not None]) \
                        and _non_finite(stats, params):  # before the update: the parameters stay finite
                    bar.close()
                    where = _where(epoch, step, i, num_batches)
                    kept = _kept(ckpt, save, epoch, i, perm, sums)
                    raise _non_finite_error(stats, where, kept, _rows(idx, n))
                opt.step()
                step += 1
                i += 1
                for acc, v in zip(accs, stats):  # in place into the views of `sums`: no stacking per step
                    acc += v
                if group is not None and bool(stop_flag > 0):  # a rank was interrupted: all stop at this step
                    stop.requested = True
                if every > 1 and (i == replay_to or (replay_to is None and (
                        (i - window.batch) % every == 0 or i == num_batches or stop.requested))):
                    # a non-finite loss leaves the running sums non-finite, a non-finite gradient the parameters
                    if replay_to is None and not _all_finite([sums] + params):  # replay the window step by step
                        replay_to = i
                        i, step, sums = window.restore()
                        accs = sums.unbind()
                        continue
                    replay_to = None  # a replay that met only finite steps (a nondeterministic kernel) carries on
                    if i < num_batches:  # the next epoch takes its own
                        window = _Snapshot(model, guide, opt, i, step, sums)
                if stop.requested and i < num_batches:
                    bar.close()
                    if ckpt is not None:
                        save(epoch, i, perm, sums)
                    raise FitInterrupted(f"{_where(epoch, step - 1, i - 1, num_batches)[:-1]}; the epoch is incomplete)",
                                         ckpt)
            means = (sums / num_batches).tolist()
            rec = {"epoch": epoch + 1, "loss": means[0], "nll": means[1], "kl": means[2],
                   "seconds": time.perf_counter() - t0}
            history.append(rec)
            bar.set_postfix(nll=f"{rec['nll']:.4g}", kl=f"{rec['kl']:.4g}", refresh=False)
            if callback is not None:
                callback(rec)
            if ckpt is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs or stop.requested):
                save(epoch + 1)
            if stop.requested and epoch + 1 < epochs:
                bar.close()
                raise FitInterrupted(f"epoch {epoch + 1} (step {step}, the end of the epoch)", ckpt)
    bar.close()
    if eb:
        model.update_priors(guide.loc_scale)
    info = {"seed": seed, "epochs": epochs, "batch_size": bsz, "optimizer": optimizer, "lr": opt.param_groups[0]["lr"],
            "kl_schedule": kl, "elbo": elbo, "num_particles": num_particles, "device": str(dev),
            "n_data": n, "guide": type(guide).__name__, "check_finite_every": every}
    if group is not None:
        info.update(world_size=world, batch_size_per_rank=math.ceil(bsz / world), backend=group.backend)
    if isinstance(guide, AutoLaplaceApproximation):  # the MAP is fitted: its Gaussian approximation is the posterior
        guide = laplace_autoguide(guide, x, y, n_data=n)
        info["posterior_guide"] = "Laplace approximation (AutoMultivariateNormal, covariance H⁻¹ over the full data)"
    return GuidePosterior(model=model, method="svi", guide=guide, history=history, info=info,
                     example_args=((x[:1], y[:1]), {"n_data": n}))


def _row_numbers(idx, n: int, dev) -> torch.Tensor:
    """The global minibatch ``idx`` (a permutation slice or a ``slice`` of ``n`` rows) as a
    tensor of row numbers."""
    if torch.is_tensor(idx):
        return idx
    return torch.arange(idx.start, min(idx.stop, n), device=dev)


def _where(epoch: int, step: int, batch: int, num_batches: int) -> str:
    """The step (0-based counters) as error messages name it."""
    return f"epoch {epoch + 1}, step {step + 1} (minibatch {batch + 1} of {num_batches})"


def _all_finite(tensors) -> bool:
    """Whether every element of ``tensors`` is finite, read back as one number: a NaN or inf
    anywhere makes the sum non-finite, and t − t == 0 holds exactly for finite t.  (Finite values
    whose sum passes the float range read as non-finite: callers confirm with :func:`_non_finite`.)"""
    total = None
    for t in tensors:
        t = t.detach().sum()
        total = t if total is None else total + t
    return bool((total - total) == 0)


def _non_finite(stats, params) -> bool:
    """Whether the step's loss or a gradient is really NaN or inf (the one-number flag can also
    trip when finite gradients sum past the float range)."""
    return not bool(torch.isfinite(stats[0])) or any(
        p.grad is not None and not bool(p.grad.isfinite().all()) for p in params)


def _non_finite_error(stats, where: str, kept: str, rows: str) -> NonFiniteLossError:
    """The error for a step whose (loss, NLL, KL) are `stats`."""
    if not bool(torch.isfinite(stats[0])):
        bad = [name for name, v in (("NLL", stats[1]), ("KL", stats[2])) if not torch.isfinite(v)]
        return NonFiniteLossError(
            f"non-finite loss at {where}: {' and '.join(bad) or 'loss'} {'are' if len(bad) > 1 else 'is'} "
            f"{stats[0].item()}; {kept}. Check the data for NaN/inf or extreme values (this minibatch: rows {rows}), "
            f"lower the learning rate or the guide's init_scale.")
    return NonFiniteLossError(
        f"non-finite gradient at {where} (the loss {stats[0].item():.6g} is finite); {kept}. Check the data for "
        f"extreme values (this minibatch: rows {rows}) or lower the learning rate.")


def _copy_state(state: dict) -> dict:
    """A copy of one parameter's optimizer state (tensors cloned on their device)."""
    return {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}


class _Snapshot:
    """The training state at the start of a window of unchecked steps — module states, optimizer
    state, torch's generators (the step's only source of randomness; the window's minibatch order
    is fixed for the epoch), the epoch's running sums — copied on the device without waiting for
    it, so that a window that went non-finite can be replayed step by step."""

    def __init__(self, model, guide, opt, batch: int, step: int, sums: torch.Tensor):
        self.batch, self.step, self.sums = batch, step, sums.clone()
        self.modules = [(m, {k: v.clone() for k, v in m.state_dict().items()}) for m in (model, guide)]
        self.opt = opt
        self.opt_state = {p: _copy_state(st) for p, st in opt.state.items()}
        self.rng = torch.random.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self) -> tuple[int, int, torch.Tensor]:
        for m, state in self.modules:
            m.load_state_dict(state)
        self.opt.state.clear()
        for p, st in self.opt_state.items():
            self.opt.state[p] = _copy_state(st)
        torch.random.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        return self.batch, self.step, self.sums.clone()


def _kept(ckpt, save, epoch, batch, perm, sums) -> str:
    """The sentence saying where the last finite step's parameters are, saving them if a
    checkpoint path was given."""
    if ckpt is None:
        return "the model and guide keep the parameters of the last finite step"
    save(epoch, batch, perm, sums)
    return f"the parameters of the last finite step are kept and saved to {str(ckpt)!r}"


def _rows(idx, n: int, limit: int = 8) -> str:
    rows = torch.arange(n)[idx.cpu() if torch.is_tensor(idx) else idx].tolist()
    more = f", ... ({len(rows)} rows)" if len(rows) > limit else ""
    return ", ".join(str(r) for r in rows[:limit]) + more
