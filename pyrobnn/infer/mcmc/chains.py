"""The torch backend's driver: warm-up and sampling of C chains in lock step (or one after
the other), with adaptation, checkpoints, callbacks, progress bar and interruption."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from ..interrupt import FitInterrupted
from .adaptation import _Adapter
from .compile import _make_kernels
from .chees import ChEES
from .tree import _BatchedHMC, _State

def _run_torch(model, x, y, potential, z0, settings, seed, progress, checkpointer=None, callback=None, stop=None,
               group=None, kernels=None, make_sampler=_BatchedHMC):
    """All chains of ``z0`` (C, D): in lock step, or one after another (chain c with seed
    ``seed + c``); with a process ``group``, each rank runs its contiguous block of chains one
    after another and every rank gathers them all, in chain order.  ``kernels`` (leapfrog,
    value and gradient, compiled?, compile seconds, fallback reason) and ``make_sampler``
    replace the compiled torch step and :class:`.tree._BatchedHMC` (the native backend's)."""
    chains = z0.shape[0]
    sequential = (settings["chain_method"] == "sequential" and chains > 1) or group is not None
    if kernels is None:
        with pyro.validation_enabled(False):
            kernels = _make_kernels(potential, 1 if sequential else chains, z0, settings["jit"])
    run = partial(_run_torch_chains, settings=settings, progress=progress, kernels=kernels, checkpointer=checkpointer,
                  callback=callback, stop=stop, make_sampler=make_sampler)
    if not sequential:
        return run(potential, z0, seed=seed)
    mine = range(chains) if group is None else torch.tensor_split(torch.arange(chains), group.world_size)[group.rank]
    outs = [run(potential, z0[c:c + 1], seed=None if seed is None else seed + c, label=f" [{c}]", chain=c)
            for c in (int(c) for c in mine)]
    if group is not None:  # every rank's chains, in chain order (ranks hold contiguous blocks)
        from .. import distributed as D

        parts = D.all_gather_object([_to(o, torch.device("cpu")) for o in outs], group)
        outs = [_to(o, z0.device) for part in parts for o in part]
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


def _to(out, device):
    """A chain's (draws, stats, extra) with its tensors on ``device``."""
    draws, stats, extra = out
    move = (lambda v: v.to(device) if torch.is_tensor(v) else v)
    return draws.to(device), {k: move(v) for k, v in stats.items()}, {k: move(v) for k, v in extra.items()}


def _run_torch_chains(potential, z0, settings, seed, progress, kernels, label="", chain=None, checkpointer=None,
                      callback=None, stop=None, make_sampler=_BatchedHMC):
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
        sampler = make_sampler(leapfrog, gen, settings["kernel"], settings["max_tree_depth"], settings["num_steps"])
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
            if settings["kernel"] == "chees":  # T starts at one step of the mean step size
                sampler.chees = ChEES(float(state.step_size.mean()), 2 ** settings["max_tree_depth"])
        else:
            try:
                start, state = int(saved["iteration"]), _State.from_state_dict(saved["state"], like)
                adapter.load_state_dict(saved["adapter"], like)
                gen.set_state(saved["generator"])
                sampler.calls, calls_warm = int(saved["calls"]), int(saved["calls_warmup"])
                if settings["kernel"] == "chees":
                    sampler.chees = ChEES(1.0, 2 ** settings["max_tree_depth"])
                    sampler.chees.load_state_dict(saved["chees"])
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
                    "seconds": time.perf_counter() - t0, "seconds_warmup": t_warm, "mean_accept": mean_acc,
                    **({"chees": sampler.chees.state_dict()} if sampler.chees is not None else {})}

        bar = tqdm(total=total, initial=start, desc=("Warmup" if start < warmup else "Sample") + label,
                   disable=None if progress else True, dynamic_ncols=True)  # None: only on a terminal
        t0 = time.perf_counter() - elapsed  # time spent before a resume counts, the interruption does not
        for it in range(start, total):
            if it == warmup:
                t_warm = time.perf_counter() - t0
                calls_warm = sampler.calls
                if sampler.chees is not None and warmup:
                    sampler.chees.finish_warmup()
                bar.set_description("Sample" + label)
                mean_acc = None
            eps = state.step_size
            st = sampler.transition(state)
            if it < warmup:
                if sampler.chees is not None:
                    sampler.chees.adapt()
                # a new mass matrix restarts the step size (Stan, Pyro) unless it is held fixed
                if adapter.step(it, state.z, st["accept_prob"], state) and settings["adapt_step_size"]:
                    sampler.find_step_size(state)
                    adapter.reset_dual_averaging(state.step_size)
                    if sampler.chees is not None:
                        sampler.chees.restart()
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
    if sampler.chees is not None:
        extra["trajectory_length"] = sampler.chees.trajectory_length
    return draws, stats, extra
