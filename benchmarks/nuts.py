"""Effective samples per second of pyrobnn's NUTS against NumPyro's NUTS, measured in one run.

Both samplers run the same model on the same data: a 1-10-1 tanh BNN (31 weights, one flat
weight vector), Normal(0, 1) prior on every weight, Gaussian likelihood with fixed noise
``--noise`` (0.1), 50 points of the toy curve of Blundell et al. (2015)
(``pyrobnn.data.toy_curve(n_train=50)``), float32, the same warmup / draws per chain, target
acceptance 0.8, maximum tree depth 10, diagonal mass matrix.

Quality is measured in function space: the network output (the predictive mean of each
draw) at a grid of ``--grid`` points over [-0.2, 1.2]; bulk ESS of each grid point across
chains (``arviz_stats.ess``), then the minimum and the median over the grid, divided by the
wall time.  Two times are reported: *steady* (compilation excluded: pyrobnn's compile time is
subtracted, NumPyro's model is run a second time on the same ``MCMC`` object) and *total*
(the first call, compilation included).  The tables print medians over ``--repeats`` runs
and the ratio pyrobnn / NumPyro of those medians; then where the time goes: microseconds per
leapfrog step (per chain) in the sampling phase, and for pyrobnn the share of the time spent
inside the compiled leapfrog call against the tree bookkeeping around it.  ``--pyro`` adds
Pyro's own NUTS kernel (short runs: per-leapfrog cost only is meaningful).

Usage: python benchmarks/nuts.py [--repeats 3] [--warmup 500] [--samples 500] [--quick] [--pyro]
Results are also written atomically to benchmarks/results/nuts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import pyrobnn as pb
from pyrobnn.utils.files import atomic_write
from pyrobnn.infer.mcmc import fit_nuts

HIDDEN = 10


def make_problem(noise):
    data = pb.data.toy_curve(n_train=50)
    net = pb.BNN([pb.Linear(1, HIDDEN), "tanh", pb.Linear(HIDDEN, 1)], pb.Gaussian(noise),
                 prior=pb.priors.Normal(0.0, 1.0))
    return net, data.x_train, data.y_train


def function_space_ess(f):
    """f: (chain, draw, grid) network outputs → bulk ESS and R-hat per grid point."""
    import arviz_stats as azs

    return azs.ess(f, chain_axis=0, draw_axis=1, method="bulk"), azs.rhat(f, chain_axis=0, draw_axis=1)


# ---------------------------------------------------------------------- pyrobnn
def run_pyrobnn(net, x, y, grid, chains, warmup, samples, seed, **kw):
    t0 = time.perf_counter()
    post = fit_nuts(net, x, y, num_samples=samples, warmup=warmup, chains=chains, seed=seed, progress=False, **kw)
    wall = time.perf_counter() - t0
    w = post.samples["weights"]
    f = net.network(grid, {"weights": w.reshape(-1, w.shape[-1])})[..., 0].reshape(chains, samples, -1)
    ess, rhat = function_space_ess(f.numpy())
    info, st = post.info, post.sample_stats
    steps = st["num_steps"]
    compile_s = info.get("seconds_compile", 0.0)
    out = {
        "wall_total": wall, "compile": compile_s, "wall_steady": wall - compile_s,
        "seconds_warmup": info["seconds_warmup"], "seconds_sampling": info["seconds_sampling"],
        "ess_min": float(ess.min()), "ess_median": float(np.median(ess)), "rhat_max": float(rhat.max()),
        "chain_steps_sampling": int(steps.sum()), "mean_tree_depth": float(st["tree_depth"].float().mean())
        if "tree_depth" in st else None,
        "divergences": int(st["diverging"].sum()), "accept_prob": float(st["accept_prob"].mean()),
        "step_size": float(st["step_size"][:, -1].mean()),
    }
    out["us_per_leapfrog_per_chain"] = 1e6 * info["seconds_sampling"] / max(1, out["chain_steps_sampling"])
    if "leapfrog_calls_sampling" in info:
        out["leapfrog_calls_sampling"] = info["leapfrog_calls_sampling"]
        out["us_per_leapfrog_call"] = 1e6 * info["seconds_sampling"] / max(1, info["leapfrog_calls_sampling"])
    return out


def time_compiled_leapfrog(net, x, y, chains, n=2000):
    """µs per call of the compiled leapfrog step alone (all chains advance one step)."""
    import pyro

    from pyrobnn.infer.mcmc import PotentialEnergy, _initial_values, _layout, _make_kernels

    traces = _initial_values(net, x, y, chains, "model", 0)
    sites, fns = _layout(traces[0])
    pot = PotentialEnergy(net, x, y, sites, fns)
    with pyro.validation_enabled(False):
        leapfrog, _, compiled, _, _ = _make_kernels(pot, chains, x, True)
    d = pot.dim
    g = torch.Generator().manual_seed(0)
    state = torch.randn(chains, 3, d, generator=g) * 0.3
    step, inv_mass = torch.full((chains, 1), 1e-3), torch.ones(chains, d)
    for _ in range(50):
        leapfrog(state, step, inv_mass)
    t0 = time.perf_counter()
    for _ in range(n):
        leapfrog(state, step, inv_mass)
    return 1e6 * (time.perf_counter() - t0) / n, compiled


# ---------------------------------------------------------------------- NumPyro
def numpyro_model_fn(noise):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    d = 3 * HIDDEN + 1

    def model(x, y):
        w = numpyro.sample("weights", nd.Normal(0.0, 1.0).expand([d]).to_event(1))
        # same packing as pyrobnn's flat site: layers.0.weight (H,1), layers.0.bias (H), layers.2.weight (1,H), bias (1)
        w1, b1 = w[:HIDDEN].reshape(HIDDEN, 1), w[HIDDEN:2 * HIDDEN]
        w2, b2 = w[2 * HIDDEN:3 * HIDDEN].reshape(1, HIDDEN), w[3 * HIDDEN:]
        out = (jnp.tanh(x @ w1.T + b1) @ w2.T + b2)[:, 0]
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("obs", nd.Normal(out, noise), obs=y)

    return model


def run_numpyro(x, y, grid, chains, warmup, samples, seed, noise, chain_method):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    xj, yj, gj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy()), jnp.asarray(grid.numpy())
    model = numpyro_model_fn(noise)
    mcmc = MCMC(NUTS(model, target_accept_prob=0.8, max_tree_depth=10), num_warmup=warmup, num_samples=samples,
                num_chains=chains, chain_method=chain_method, progress_bar=False)
    fields = ("num_steps", "diverging", "accept_prob")

    def draws():
        w = np.asarray(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["weights"]))
        w1, b1 = w[..., :HIDDEN], w[..., HIDDEN:2 * HIDDEN]
        w2, b2 = w[..., 2 * HIDDEN:3 * HIDDEN], w[..., 3 * HIDDEN:]
        h = np.tanh(np.asarray(gj)[None, None, :, 0:1] * w1[:, :, None, :] + b1[:, :, None, :])
        return (h * w2[:, :, None, :]).sum(-1) + b2

    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    t0 = time.perf_counter()
    mcmc.run(k1, xj, yj, extra_fields=fields)
    draws()
    wall_total = time.perf_counter() - t0
    ess_first, _ = function_space_ess(draws())
    # steady state: the same MCMC object again (already compiled)
    t0 = time.perf_counter()
    mcmc.run(k2, xj, yj, extra_fields=fields)
    f = draws()
    wall_steady = time.perf_counter() - t0
    ess, rhat = function_space_ess(f)
    ex = mcmc.get_extra_fields(group_by_chain=True)
    steps = int(np.asarray(ex["num_steps"]).sum())
    out = {
        "wall_total": wall_total, "ess_min_first_run": float(ess_first.min()),
        "ess_median_first_run": float(np.median(ess_first)), "wall_steady": wall_steady,
        "compile": max(0.0, wall_total - wall_steady),
        "ess_min": float(ess.min()), "ess_median": float(np.median(ess)), "rhat_max": float(rhat.max()),
        "chain_steps_sampling": steps, "divergences": int(np.asarray(ex["diverging"]).sum()),
        "accept_prob": float(np.asarray(ex["accept_prob"]).mean()),
        "mean_tree_depth": float(np.log2(np.asarray(ex["num_steps"]) + 1).mean()),
    }
    # sampling phase alone (no warmup), for the cost per leapfrog step
    mcmc.post_warmup_state = mcmc.last_state
    t0 = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, xj, yj, extra_fields=fields)
    draws()
    t_sample = time.perf_counter() - t0
    steps = int(np.asarray(mcmc.get_extra_fields()["num_steps"]).sum())
    out.update(seconds_sampling=t_sample, us_per_leapfrog_per_chain=1e6 * t_sample / max(1, steps))
    return out


# ---------------------------------------------------------------------- Pyro's kernel
def run_pyro_model_jit(net, x, y, warmup, samples, seed, max_tree_depth):
    """Pyro's NUTS on the model itself with ``jit_compile=True`` (the textbook way): µs per
    leapfrog step between the first and the last iteration (JIT tracing excluded)."""
    import pyro
    from pyro.infer import MCMC, NUTS

    pyro.set_rng_seed(seed)
    kernel = NUTS(net, jit_compile=True, ignore_jit_warnings=True, full_mass=False, max_tree_depth=max_tree_depth)
    calls, marks = [0], []
    orig_setup = kernel.setup

    def setup(*a, **k):  # count potential evaluations (one per leapfrog step)
        orig_setup(*a, **k)
        pf = kernel.potential_fn

        def counted(params):
            calls[0] += 1
            return pf(params)

        kernel.potential_fn = counted

    kernel.setup = setup
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True,
                hook_fn=lambda *a: marks.append((time.perf_counter(), calls[0])))
    mcmc.run(x, y)
    (t0, c0), (t1, c1) = marks[0], marks[-1]
    return {"leapfrog_steps": c1 - c0, "us_per_leapfrog_per_chain": 1e6 * (t1 - t0) / max(1, c1 - c0)}


# ---------------------------------------------------------------------- main
def median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def summarise(rows):
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and not isinstance(rows[0][k], bool)]
    out = {k: median(rows, k) for k in keys}
    for what in ("ess_min", "ess_median"):
        out[f"{what}_per_s_steady"] = median([{**r, "v": r[what] / r["wall_steady"]} for r in rows], "v")
    out["ess_min_per_s_total"] = median(
        [{**r, "v": r.get("ess_min_first_run", r["ess_min"]) / r["wall_total"]} for r in rows], "v")
    return out


def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--chains", type=str, default="1,4", help="comma-separated chain counts")
    ap.add_argument("--grid", type=int, default=50)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (tiny nets: 1 is fastest)")
    ap.add_argument("--numpyro-chain-method", default="sequential", choices=["sequential", "vectorized"])
    ap.add_argument("--pyro", action="store_true", help="also time Pyro's NUTS kernel (short runs)")
    ap.add_argument("--quick", action="store_true", help="one short repeat (< 2 minutes)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "nuts.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.samples = 1, 150, 150
    torch.set_num_threads(args.threads)
    chain_counts = [int(c) for c in args.chains.split(",")]

    net, x, y = make_problem(args.noise)
    grid = torch.linspace(-0.2, 1.2, args.grid)[:, None]
    results = {"settings": {**vars(args), "model": f"1-{HIDDEN}-1 tanh BNN, {net.num_weights} weights, Normal(0,1) "
                                                    f"prior, Gaussian noise {args.noise}, toy_curve n_train=50",
                            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                        "torch": torch.__version__}},
               "runs": {}, "summary": {}}
    try:
        import jax
        import numpyro

        results["settings"]["machine"].update(jax=jax.__version__, numpyro=numpyro.__version__)
        have_numpyro = True
    except ImportError:
        print("numpyro/jax not installed: pip install numpyro jax (pyrobnn[bench]); timing pyrobnn only")
        have_numpyro = False

    for chains in chain_counts:
        for name in ("pyrobnn", "numpyro"):
            results["runs"][f"{name}/{chains}"] = []
        for rep in range(args.repeats):
            seed = rep
            r = run_pyrobnn(net, x, y, grid, chains, args.warmup, args.samples, seed)
            results["runs"][f"pyrobnn/{chains}"].append(r)
            print(f"  pyrobnn chains={chains} repeat={rep}: wall {r['wall_total']:.1f}s (compile {r['compile']:.1f}s) "
                  f"ESS min {r['ess_min']:.0f} R-hat max {r['rhat_max']:.3f}", flush=True)
            if have_numpyro:
                r = run_numpyro(x, y, grid, chains, args.warmup, args.samples, seed, args.noise,
                                args.numpyro_chain_method)
                results["runs"][f"numpyro/{chains}"].append(r)
                print(f"  numpyro chains={chains} repeat={rep}: wall {r['wall_total']:.1f}s (steady "
                      f"{r['wall_steady']:.1f}s) ESS min {r['ess_min']:.0f} R-hat max {r['rhat_max']:.3f}", flush=True)
        for name in ("pyrobnn", "numpyro"):
            rows = results["runs"][f"{name}/{chains}"]
            if rows:
                results["summary"][f"{name}/{chains}"] = summarise(rows)

    # where the time goes
    where = {}
    for chains in chain_counts:
        us, compiled = time_compiled_leapfrog(net, x, y, chains)
        s = results["summary"][f"pyrobnn/{chains}"]
        share = us / s["us_per_leapfrog_call"] if s.get("us_per_leapfrog_call") else float("nan")
        where[f"pyrobnn/{chains}"] = {"compiled": compiled, "us_per_compiled_leapfrog_call": us,
                                      "us_per_leapfrog_call_in_sampler": s.get("us_per_leapfrog_call"),
                                      "share_in_leapfrog": share}
    if args.pyro:  # Pyro's kernel is ~100x slower: short runs, shallow trees, per-leapfrog cost only
        pw, ps, depth = 20, 10, 6
        r = run_pyrobnn(net, x, y, grid, 1, pw, ps, 0, backend="pyro", max_tree_depth=depth)
        where["pyro-kernel/compiled-potential/1"] = {"us_per_leapfrog_per_chain": r["us_per_leapfrog_per_chain"],
                                                     "warmup": pw, "samples": ps, "max_tree_depth": depth}
        r = run_pyro_model_jit(net, x, y, pw, ps, 0, depth)
        where["pyro-kernel/model-jit/1"] = {**r, "warmup": pw, "samples": ps, "max_tree_depth": depth}
    results["where_time_goes"] = where

    # ---------------------------------------------------------------- print
    st = results["settings"]
    print(f"\nNUTS on {st['model']}; grid {args.grid} points in [-0.2, 1.2]; warmup {args.warmup} + "
          f"{args.samples} draws per chain; medians of {args.repeats} repeat(s); torch threads {args.threads}; "
          f"NumPyro chain_method={args.numpyro_chain_method}")
    head = ["sampler", "chains", "wall s", "compile s", "ESS min", "ESS med", "R-hat max", "ESS/s min",
            "ESS/s med", "ESS/s min (incl. compile)", "µs/leapfrog/chain", "tree depth"]
    lines = [head]
    for chains in chain_counts:
        rows = {}
        for name in ("pyrobnn", "numpyro"):
            s = results["summary"].get(f"{name}/{chains}")
            if s is None:
                continue
            rows[name] = s
            lines.append([name, str(chains), fmt(s["wall_total"]), fmt(s["compile"]), fmt(s["ess_min"]),
                          fmt(s["ess_median"]), fmt(s["rhat_max"], 4), fmt(s["ess_min_per_s_steady"]),
                          fmt(s["ess_median_per_s_steady"]), fmt(s["ess_min_per_s_total"]),
                          fmt(s["us_per_leapfrog_per_chain"]), fmt(s.get("mean_tree_depth"))])
        if len(rows) == 2:
            a, b = rows["pyrobnn"], rows["numpyro"]
            ratio = {k: a[k] / b[k] for k in ("ess_min_per_s_steady", "ess_median_per_s_steady",
                                              "ess_min_per_s_total", "us_per_leapfrog_per_chain")}
            results["summary"][f"ratio/{chains}"] = ratio
            lines.append(["pyrobnn/numpyro", str(chains), "", "", "", "", "", fmt(ratio["ess_min_per_s_steady"]),
                          fmt(ratio["ess_median_per_s_steady"]), fmt(ratio["ess_min_per_s_total"]),
                          fmt(ratio["us_per_leapfrog_per_chain"]), ""])
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for i, r in enumerate(lines):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nwhere the time goes (sampling phase):")
    for k, v in where.items():
        if k.startswith("pyrobnn"):
            print(f"  {k}: compiled leapfrog call alone {v['us_per_compiled_leapfrog_call']:.1f} µs, per call inside "
                  f"the sampler {fmt(v['us_per_leapfrog_call_in_sampler'])} µs -> {100 * v['share_in_leapfrog']:.0f}% "
                  f"in the leapfrog, the rest in tree bookkeeping (compiled={v['compiled']})")
        else:
            print(f"  {k}: {v['us_per_leapfrog_per_chain']:.0f} µs per leapfrog step "
                  f"(short run: {v['warmup']}+{v['samples']} iterations)")
    for chains in chain_counts:
        s = results["summary"].get(f"numpyro/{chains}")
        if s:
            print(f"  numpyro/{chains}: {s['us_per_leapfrog_per_chain']:.1f} µs per leapfrog step per chain")
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2, default=float)))
    print(f"\nwritten {args.out}")
    return results


if __name__ == "__main__":
    main()
