"""Effective samples per second of pyrobnn's NUTS against NumPyro's NUTS, measured in one run.

pyrobnn runs twice: ``backend="torch"`` (rows "pyrobnn") and ``backend="native"`` (rows
"native": the potential, its gradient and the NUTS transition in C, float64; its compile time
is measured on a fresh cache directory at the first run and reported apart).  ``--no-native``
leaves it out.

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

#: the problems: layer widths, data and the inputs at which the network's output is compared
PROBLEMS = {
    "toy": "1-10-1 tanh, 50 points of toy_curve",
    "deep": "1-50-50-1 tanh, 100 points of toy_curve",
    "concrete": "8-50-1 tanh, UCI concrete split 0 (all 927 training rows, standardised)",
}


def make_problem(name, noise):
    """(net, x, y, grid, widths): ``grid`` holds the inputs of the function-space comparison
    (50 points over [-0.2, 1.2] for the toy curve; the first 50 test rows for concrete)."""
    if name == "concrete":
        data = pb.data.uci(name="concrete", split=0)
        widths = [8, 50, 1]
        grid = data.x_test[:50]
    else:
        data = pb.data.toy_curve(n_train=50 if name == "toy" else 100)
        widths = [1, 10, 1] if name == "toy" else [1, 50, 50, 1]
        grid = torch.linspace(-0.2, 1.2, 50)[:, None]
    layers = []
    for i in range(len(widths) - 1):
        layers += [pb.Linear(widths[i], widths[i + 1])] + (["tanh"] if i < len(widths) - 2 else [])
    net = pb.BNN(layers, pb.Gaussian(noise), prior=pb.priors.Normal(0.0, 1.0))
    return net, data.x_train, data.y_train, grid, widths


def mlp_numpy(w, grid, widths):
    """Outputs (chain, draw, grid) of the tanh MLP for packed weights w (chain, draw, D), in
    pyrobnn's packing of the flat site: per layer the weight (out, in) row-major, then the bias."""
    h = np.broadcast_to(np.asarray(grid, dtype=np.float64), (*w.shape[:2], *np.shape(grid)))
    at = 0
    for i in range(len(widths) - 1):
        a, b = widths[i], widths[i + 1]
        W = w[..., at:at + a * b].reshape(*w.shape[:2], b, a)
        at += a * b
        bias = w[..., at:at + b]
        at += b
        h = np.einsum("cdna,cdba->cdnb", h, W) + bias[:, :, None, :]
        if i < len(widths) - 2:
            h = np.tanh(h)
    return h[..., 0]


def function_space_ess(f):
    """f: (chain, draw, grid) network outputs → bulk ESS and R-hat per grid point."""
    import arviz_stats as azs

    return azs.ess(f, chain_axis=0, draw_axis=1, method="bulk"), azs.rhat(f, chain_axis=0, draw_axis=1)


# ---------------------------------------------------------------------- pyrobnn
def run_pyrobnn(net, x, y, grid, chains, warmup, samples, seed, keep=False, **kw):
    t0 = time.perf_counter()
    post = fit_nuts(net, x, y, num_samples=samples, warmup=warmup, chains=chains, seed=seed, progress=False, **kw)
    wall = time.perf_counter() - t0
    w = post.samples["weights"]
    f = net.network(grid, {"weights": w.reshape(-1, w.shape[-1])})[..., 0].reshape(chains, samples, -1).numpy()
    ess, rhat = function_space_ess(f)
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
    out["ess_min_per_s_steady_run"] = out["ess_min"] / out["wall_steady"]
    if keep:
        out["_f"] = f
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
def numpyro_model_fn(noise, widths):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    d = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    def model(x, y):
        w = numpyro.sample("weights", nd.Normal(0.0, 1.0).expand([d]).to_event(1))
        # the same packing as pyrobnn's flat site: per layer the weight (out, in), then the bias
        h, at = x, 0
        for i in range(len(widths) - 1):
            a, b = widths[i], widths[i + 1]
            W = w[at:at + a * b].reshape(b, a)
            at += a * b
            h = h @ W.T + w[at:at + b]
            at += b
            if i < len(widths) - 2:
                h = jnp.tanh(h)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("obs", nd.Normal(h[:, 0], noise), obs=y)

    return model


def run_numpyro(x, y, grid, chains, warmup, samples, seed, noise, chain_method, widths, keep=False):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())
    model = numpyro_model_fn(noise, widths)
    mcmc = MCMC(NUTS(model, target_accept_prob=0.8, max_tree_depth=10), num_warmup=warmup, num_samples=samples,
                num_chains=chains, chain_method=chain_method, progress_bar=False)
    fields = ("num_steps", "diverging", "accept_prob")

    def draws():
        w = np.asarray(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["weights"]))
        return mlp_numpy(w.astype(np.float64), grid.numpy(), widths)

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
    out["ess_min_per_s_steady_run"] = out["ess_min"] / out["wall_steady"]
    if keep:
        out["_f"] = f
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


def agreement(fa, fb):
    """Function-space agreement of two samplers' outputs (chain, draw, grid): per grid point the
    difference of the predictive means and of the 5% and 95% quantiles in units of their
    Monte-Carlo standard errors (MCSE of a mean: sd/sqrt(ESS); of a quantile q, approximately
    sqrt(q(1-q)/ESS)/density at the quantile, the density taken as the normal one with the
    sample sd), then the largest |z| over the grid and the share of |z| > 3 (about 0.3% of
    points expected under agreement, before correlation along the grid)."""
    from scipy.stats import norm

    out = {}
    za = {}
    for name, f in (("a", fa), ("b", fb)):
        ess = np.asarray(function_space_ess(f)[0])
        flat = f.reshape(-1, f.shape[-1])
        za[name] = (flat, ess, flat.std(0))
    (fa_, ea, sa), (fb_, eb, sb) = za["a"], za["b"]
    z_mean = (fa_.mean(0) - fb_.mean(0)) / np.sqrt(sa**2 / ea + sb**2 / eb)
    out["mean_z_max"] = float(np.abs(z_mean).max())
    out["mean_z_share_above_3"] = float((np.abs(z_mean) > 3).mean())
    for q in (0.05, 0.95):
        dens = norm.pdf(norm.ppf(q))
        se2 = (q * (1 - q) / ea) * (sa / dens) ** 2 + (q * (1 - q) / eb) * (sb / dens) ** 2
        z = (np.quantile(fa_, q, 0) - np.quantile(fb_, q, 0)) / np.sqrt(se2)
        out[f"q{int(q * 100):02d}_z_max"] = float(np.abs(z).max())
        out[f"q{int(q * 100):02d}_z_share_above_3"] = float((np.abs(z) > 3).mean())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=str, default="toy,deep,concrete",
                    help="comma-separated: " + ", ".join(f"{k} ({v})" for k, v in PROBLEMS.items()))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--chains", type=str, default="1,4", help="comma-separated chain counts")
    ap.add_argument("--noise", type=float, default=0.1, help="Gaussian noise of the toy problems")
    ap.add_argument("--noise-concrete", type=float, default=0.3, help="Gaussian noise (standardised target)")
    ap.add_argument("--many-chains", type=str, default="",
                    help="comma-separated chain counts for the many-chain curve on the toy problem (pyrobnn only)")
    ap.add_argument("--many-warmup", type=int, default=100)
    ap.add_argument("--many-kernels", type=str, default="nuts",
                    help="comma-separated kernels for the many-chain curve: nuts, chees (ChEES-HMC adapts its "
                         "trajectory length during warm-up: give it --many-warmup 300 or more), native (NUTS with "
                         "backend='native')")
    ap.add_argument("--many-samples", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (tiny nets: 1 is fastest)")
    ap.add_argument("--numpyro-chain-method", default="sequential", choices=["sequential", "vectorized"])
    ap.add_argument("--pyro", action="store_true", help="also time Pyro's NUTS kernel (short runs)")
    ap.add_argument("--no-native", dest="native", action="store_false", help="leave out backend='native'")
    ap.add_argument("--no-torch", dest="torch", action="store_false",
                    help="leave out backend='torch' (slow on the larger problems; native and NumPyro only)")
    ap.add_argument("--quick", action="store_true", help="one short repeat (< 2 minutes)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "nuts.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.samples = 1, 150, 150
    torch.set_num_threads(args.threads)
    chain_counts = [int(c) for c in args.chains.split(",") if c]
    problems = [p for p in args.problems.split(",") if p]
    for p in problems:
        if p not in PROBLEMS:
            raise SystemExit(f"unknown problem {p!r}; expected some of {sorted(PROBLEMS)}")
    results = {"settings": {**vars(args), "problems": {p: PROBLEMS[p] for p in problems},
                            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                        "torch": torch.__version__, "load_average_at_start": os.getloadavg()}},
               "runs": {}, "summary": {}, "agreement": {}, "many_chains": {}}
    try:
        import jax
        import numpyro

        results["settings"]["machine"].update(jax=jax.__version__, numpyro=numpyro.__version__)
        have_numpyro = True
    except ImportError:
        print("numpyro/jax not installed: pip install numpyro jax (pyrobnn[bench]); timing pyrobnn only")
        have_numpyro = False

    def save():
        clean = json.loads(json.dumps(results, default=lambda o: None if isinstance(o, np.ndarray) else float(o)))
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(clean, indent=2)))

    if args.native:  # compile the native library afresh once, so that its compile time is measured
        import tempfile

        os.environ["PYROBNN_NATIVE_CACHE"] = tempfile.mkdtemp(prefix="pyrobnn-native-")
    samplers = tuple(name for name, on in (("pyrobnn", args.torch), ("native", args.native), ("numpyro", True)) if on)
    where = {}
    for prob in problems:
        noise = args.noise_concrete if prob == "concrete" else args.noise
        net, x, y, grid, widths = make_problem(prob, noise)
        results["settings"]["problems"][prob] += f"; {net.num_weights} weights, Normal(0,1) prior, noise {noise}"
        for chains in chain_counts:
            for name in samplers:
                results["runs"][f"{prob}/{name}/{chains}"] = []
            for rep in range(args.repeats):
                seed = rep
                ra = None
                if args.torch:
                    ra = run_pyrobnn(net, x, y, grid, chains, args.warmup, args.samples, seed, keep=rep == 0)
                    results["runs"][f"{prob}/pyrobnn/{chains}"].append(ra)
                    print(f"  {prob} pyrobnn chains={chains} repeat={rep}: wall {ra['wall_total']:.1f}s (compile "
                          f"{ra['compile']:.1f}s) ESS min {ra['ess_min']:.0f} R-hat max {ra['rhat_max']:.3f}",
                          flush=True)
                rn = None
                if args.native:
                    rn = run_pyrobnn(net, x, y, grid, chains, args.warmup, args.samples, seed, keep=rep == 0,
                                     backend="native")
                    results["runs"][f"{prob}/native/{chains}"].append(rn)
                    if "native_compile_seconds" not in results:
                        results["native_compile_seconds"] = rn["compile"]
                    print(f"  {prob} native chains={chains} repeat={rep}: wall {rn['wall_total']:.2f}s (compile "
                          f"{rn['compile']:.2f}s) ESS min {rn['ess_min']:.0f} R-hat max {rn['rhat_max']:.3f} "
                          f"{rn['us_per_leapfrog_per_chain']:.2f} µs/leapfrog", flush=True)
                    if rep == 0 and ra is not None:
                        results["agreement"][f"{prob}/{chains}/native-vs-torch"] = agreement(rn["_f"], ra["_f"])
                if have_numpyro:
                    rb = run_numpyro(x, y, grid, chains, args.warmup, args.samples, seed, noise,
                                     args.numpyro_chain_method, widths, keep=rep == 0)
                    results["runs"][f"{prob}/numpyro/{chains}"].append(rb)
                    print(f"  {prob} numpyro chains={chains} repeat={rep}: wall {rb['wall_total']:.1f}s (steady "
                          f"{rb['wall_steady']:.1f}s) ESS min {rb['ess_min']:.0f} R-hat max {rb['rhat_max']:.3f}",
                          flush=True)
                    if rep == 0:
                        if ra is not None:
                            results["agreement"][f"{prob}/{chains}"] = agreement(ra["_f"], rb["_f"])
                            print(f"  {prob} agreement chains={chains}: {results['agreement'][f'{prob}/{chains}']}")
                        if rn is not None:
                            results["agreement"][f"{prob}/{chains}/native-vs-numpyro"] = agreement(rn["_f"], rb["_f"])
                    rb.pop("_f", None)
                for r in (ra, rn):
                    if r is not None:
                        r.pop("_f", None)
                save()
            for name in samplers:
                rows = results["runs"][f"{prob}/{name}/{chains}"]
                if rows:
                    results["summary"][f"{prob}/{name}/{chains}"] = summarise(rows)
            b = results["summary"].get(f"{prob}/numpyro/{chains}")
            for name, key in (("pyrobnn", "ratio"), ("native", "native_ratio")):
                a = results["summary"].get(f"{prob}/{name}/{chains}")
                if a and b:
                    results["summary"][f"{prob}/{key}/{chains}"] = {
                        k: a[k] / b[k] for k in ("ess_min_per_s_steady", "ess_median_per_s_steady",
                                                 "ess_min_per_s_total", "us_per_leapfrog_per_chain")}
            if not args.torch:
                save()
                continue
            us, compiled = time_compiled_leapfrog(net, x, y, chains)
            s = results["summary"][f"{prob}/pyrobnn/{chains}"]
            share = us / s["us_per_leapfrog_call"] if s.get("us_per_leapfrog_call") else float("nan")
            where[f"{prob}/pyrobnn/{chains}"] = {"compiled": compiled, "us_per_compiled_leapfrog_call": us,
                                                 "us_per_leapfrog_call_in_sampler": s.get("us_per_leapfrog_call"),
                                                 "share_in_leapfrog": share}
            save()

    if args.many_chains:  # total ESS/s against the number of chains in lock step (toy problem, pyrobnn)
        net, x, y, grid, widths = make_problem("toy", args.noise)
        for kernel in args.many_kernels.split(","):
            for chains in (int(c) for c in args.many_chains.split(",")):
                r = (run_pyrobnn(net, x, y, grid, chains, args.many_warmup, args.many_samples, 0, backend="native")
                     if kernel == "native" else
                     run_pyrobnn(net, x, y, grid, chains, args.many_warmup, args.many_samples, 0, kernel=kernel))
                r["kernel"] = kernel
                results["many_chains"][str(chains) if kernel == "nuts" else f"{kernel}/{chains}"] = r
                print(f"  many chains={chains} ({kernel}): wall {r['wall_total']:.1f}s ESS min {r['ess_min']:.0f} -> "
                      f"{r['ess_min_per_s_steady_run']:.1f} ESS/s", flush=True)
                save()

    if args.pyro:  # Pyro's kernel is ~100x slower: short runs, shallow trees, per-leapfrog cost only
        net, x, y, grid, widths = make_problem("toy", args.noise)
        pw, ps, depth = 20, 10, 6
        r = run_pyrobnn(net, x, y, grid, 1, pw, ps, 0, backend="pyro", max_tree_depth=depth)
        where["pyro-kernel/compiled-potential/1"] = {"us_per_leapfrog_per_chain": r["us_per_leapfrog_per_chain"],
                                                     "warmup": pw, "samples": ps, "max_tree_depth": depth}
        r = run_pyro_model_jit(net, x, y, pw, ps, 0, depth)
        where["pyro-kernel/model-jit/1"] = {**r, "warmup": pw, "samples": ps, "max_tree_depth": depth}
    results["where_time_goes"] = where

    # ---------------------------------------------------------------- print
    print(f"\nNUTS, warmup {args.warmup} + {args.samples} draws per chain; medians of {args.repeats} repeat(s); "
          f"torch threads {args.threads}; NumPyro chain_method={args.numpyro_chain_method}")
    head = ["problem", "sampler", "chains", "wall s", "compile s", "ESS min", "ESS med", "R-hat max", "ESS/s min",
            "ESS/s med", "ESS/s min (incl. compile)", "µs/leapfrog/chain", "tree depth"]
    lines = [head]
    for prob in problems:
        for chains in chain_counts:
            for name in samplers:
                s = results["summary"].get(f"{prob}/{name}/{chains}")
                if s is None:
                    continue
                lines.append([prob, name, str(chains), fmt(s["wall_total"]), fmt(s["compile"]), fmt(s["ess_min"]),
                              fmt(s["ess_median"]), fmt(s["rhat_max"], 4), fmt(s["ess_min_per_s_steady"]),
                              fmt(s["ess_median_per_s_steady"]), fmt(s["ess_min_per_s_total"]),
                              fmt(s["us_per_leapfrog_per_chain"]), fmt(s.get("mean_tree_depth"))])
            for key, label in (("ratio", "pyrobnn/numpyro"), ("native_ratio", "native/numpyro")):
                ratio = results["summary"].get(f"{prob}/{key}/{chains}")
                if ratio:
                    lines.append([prob, label, str(chains), "", "", "", "", "",
                                  fmt(ratio["ess_min_per_s_steady"]), fmt(ratio["ess_median_per_s_steady"]),
                                  fmt(ratio["ess_min_per_s_total"]), fmt(ratio["us_per_leapfrog_per_chain"]), ""])
    widths_ = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for i, r in enumerate(lines):
        print("  ".join(c.rjust(w) if j > 1 else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths_))))
        if i == 0:
            print("  ".join("-" * w for w in widths_))
    if results["agreement"]:
        print("\nagreement in function space (repeat 0; PROBLEM/CHAINS: torch vs NumPyro, .../native-vs-X: native vs X; "
              "|z| of mean / 5% / 95% quantile differences "
              "in MC standard errors, max over the grid):")
        for k, v in results["agreement"].items():
            print(f"  {k}: mean {v['mean_z_max']:.2f}, q05 {v['q05_z_max']:.2f}, q95 {v['q95_z_max']:.2f}")
    if "native_compile_seconds" in results:
        print(f"\nnative backend: compiling the C library (fresh cache) took {results['native_compile_seconds']:.2f} s")
    if results["many_chains"]:
        print(f"\nmany chains in lock step (toy, warmup {args.many_warmup} + {args.many_samples}, one run each):")
        for c, r in results["many_chains"].items():
            print(f"  {r.get('kernel', 'nuts'):<5} chains {c.split('/')[-1]:>4}: wall {r['wall_steady']:.1f}s, ESS min {r['ess_min']:.0f}, "
                  f"ESS/s min {r['ess_min_per_s_steady_run']:.1f}, tree depth {fmt(r['mean_tree_depth'])}, "
                  f"µs/leapfrog/chain {r['us_per_leapfrog_per_chain']:.2f}")
    print("\nwhere the time goes (sampling phase):")
    for k, v in where.items():
        if "/pyrobnn/" in k:
            print(f"  {k}: compiled leapfrog call alone {v['us_per_compiled_leapfrog_call']:.1f} µs, per call inside "
                  f"the sampler {fmt(v['us_per_leapfrog_call_in_sampler'])} µs -> {100 * v['share_in_leapfrog']:.0f}% "
                  f"in the leapfrog, the rest in tree bookkeeping (compiled={v['compiled']})")
        else:
            print(f"  {k}: {v['us_per_leapfrog_per_chain']:.0f} µs per leapfrog step "
                  f"(short run: {v['warmup']}+{v['samples']} iterations)")
    save()
    print(f"\nwritten {args.out}")
    return results


if __name__ == "__main__":
    main()
