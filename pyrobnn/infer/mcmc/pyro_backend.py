"""The ``backend="pyro"`` reference: Pyro's own :class:`pyro.infer.NUTS` / :class:`pyro.infer.HMC`,
handed the same compiled potential on one packed vector (a BNN) or the model itself."""

from __future__ import annotations

import sys
import time

import pyro
import torch

from .compile import _make_kernels

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



def _bar_wanted(progress: bool) -> bool:
    """Pyro's own progress bar only where ours would show: asked for, and stderr a terminal."""
    return bool(progress) and sys.stderr.isatty()

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
