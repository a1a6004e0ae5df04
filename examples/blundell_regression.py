"""Blundell et al. (2015), "Weight Uncertainty in Neural Networks", ICML — the toy regression of
section 5.2 / figure 5: the predictive uncertainty of a Bayesian network should grow away from the
training data.

Data: y = x + 0.3 sin(2π(x + ε)) + 0.3 sin(4π(x + ε)) + ε, ε ~ N(0, 0.02²), x ~ U(0, 0.5)
(``pyrobnn.data.toy_curve``); predictions on [−0.2, 1.2].  Because ε also enters the sines, the
noise of y given x is not 0.02 but between 0.01 and 0.13 (root-mean-square about 0.06), so the
likelihood here learns its noise scale (a latent site with a log-normal prior) instead of fixing it.
Inputs and targets are standardised with training statistics; results are on the original scale.

One network, 1-50-50-1 ReLU with Blundell's scale-mixture prior π N(0, σ1²) + (1 − π) N(0, σ2²),
and three posteriors of it:

* Bayes by Backprop — mean-field Gaussian guide, Monte-Carlo KL (``pyrobnn.guides.MeanField``);
* MAP — a point estimate under the same prior (``pyrobnn.guides.Delta``);
* NUTS — ``pyrobnn.infer.mcmc.fit_nuts`` on the same model, several chains.

Writes a figure of the three predictive bands (mean and central 90 % interval of y) side by side,
and a table with the coverage of held-out points inside the training range [0, 0.5] and the
interval width inside versus outside it.

    python examples/blundell_regression.py            # full run
    python examples/blundell_regression.py --quick    # smoke test, writes *_quick.*
"""

from __future__ import annotations

import math

import arviz as az
import matplotlib.pyplot as plt
import torch
import xarray as xr

import pyrobnn as pb
from pyrobnn.data import toy_function
from pyrobnn.infer.mcmc import fit_nuts

from _common import Clock, finish, fmt, machine, markdown_table, parse_args

N_TRAIN, N_TEST = 300, 200
TRAIN_RANGE = (0.0, 0.5)
PLOT_RANGE = (-0.2, 1.2)
HIDDEN = 50
PRIOR = dict(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
NOISE_INIT = 0.2          # prior median of the noise scale, standardised units
INTERVAL = 0.9
PREDICT_DRAWS = 400

FULL = dict(bbb_epochs=5000, bbb_lr=3e-3, map_epochs=3000, map_lr=1e-2,
            nuts=dict(chains=4, warmup=300, num_samples=300, max_tree_depth=8))
QUICK = dict(bbb_epochs=300, bbb_lr=3e-3, map_epochs=300, map_lr=1e-2,
             nuts=dict(chains=2, warmup=40, num_samples=40, max_tree_depth=5))


def make_net():
    return pb.BNN([pb.Linear(1, HIDDEN), "relu", pb.Linear(HIDDEN, HIDDEN), "relu", pb.Linear(HIDDEN, 1)],
                  pb.Gaussian(NOISE_INIT, learned=True), pb.priors.ScaleMixture(**PRIOR))


class Standardiser:
    """z = (v − mean) / std with training statistics, and back."""

    def __init__(self, x, y):
        self.xm, self.xs = x.mean(), x.std()
        self.ym, self.ys = y.mean(), y.std()

    def x(self, x):
        return (x - self.xm) / self.xs

    def y(self, y):
        return (y - self.ym) / self.ys

    def y_back(self, z):
        return z * self.ys + self.ym


def summarise(post, std: Standardiser, x_grid):
    """Predictive mean and central interval of y on the original scale, and the noise scale."""
    pred = post.predict(std.x(x_grid), num_samples=PREDICT_DRAWS, seed=0)
    lo, hi = pred.interval(INTERVAL, seed=0)
    return {"mean": std.y_back(pred.mean), "lo": std.y_back(lo), "hi": std.y_back(hi),
            "noise": float(pred.aleatoric_var.mean().sqrt() * std.ys),
            "epistemic_sd": (pred.epistemic_var.sqrt() * std.ys)}


def nuts_rhat(post, x) -> dict:
    """ArviZ's rank-normalised split R-hat of the network output f(x) at every x, and of the noise scale."""
    chains, draws = post.samples["noise"].shape[:2]
    f = post.predict(x, draws=post.samples).mean_draws.reshape(chains, draws, -1).numpy()
    tree = xr.Dataset({"f": (("chain", "draw", "x"), f), "noise": (("chain", "draw"), post.samples["noise"].numpy())})
    r = az.rhat(tree)
    return {"rhat_f_max": float(r["f"].max()), "rhat_f_median": float(r["f"].median()),
            "rhat_noise": float(r["noise"])}


def metrics(band_test, ds):
    x = ds.x_test[:, 0]
    inside = (x >= TRAIN_RANGE[0]) & (x <= TRAIN_RANGE[1])
    y = ds.y_test
    covered = (y >= band_test["lo"]) & (y <= band_test["hi"])
    width = band_test["hi"] - band_test["lo"]
    far = (x < TRAIN_RANGE[0] - 0.1) | (x > TRAIN_RANGE[1] + 0.4)
    return {
        "coverage_inside": float(covered[inside].float().mean()),
        "rmse_inside": float((band_test["mean"] - y)[inside].pow(2).mean().sqrt()),
        "width_inside": float(width[inside].mean()),
        "width_outside": float(width[~inside].mean()),
        "width_far": float(width[far].mean()),
        "n_inside": int(inside.sum()),
        "noise": band_test["noise"],
    }


def main():
    args = parse_args(__doc__.splitlines()[0])
    cfg = QUICK if args.quick else FULL
    clock = Clock()
    ds = pb.data.toy_curve(n_train=N_TRAIN, n_test=N_TEST, x_range=TRAIN_RANGE, test_range=PLOT_RANGE, seed=0)
    std = Standardiser(ds.x_train, ds.y_train)
    x, y = std.x(ds.x_train), std.y(ds.y_train)
    x_grid = torch.linspace(*PLOT_RANGE, 400)[:, None]
    print(f"toy curve: {N_TRAIN} training points on {list(TRAIN_RANGE)}, {N_TEST} held-out points on "
          f"{list(PLOT_RANGE)}; {machine()}", flush=True)

    posts, seconds, extra = {}, {}, {}
    c = Clock()
    net = make_net()
    posts["Bayes by Backprop"] = pb.fit_svi(net, pb.guides.MeanField(net, init_scale=1e-3), x, y,
                                            epochs=cfg["bbb_epochs"], batch_size=N_TRAIN, lr=cfg["bbb_lr"],
                                            elbo="trace", seed=0, progress=False)
    seconds["Bayes by Backprop"] = c.seconds
    print(f"Bayes by Backprop: {c.seconds:.0f} s", flush=True)
    c = Clock()
    net = make_net()
    posts["MAP"] = pb.fit_svi(net, pb.guides.Delta(net), x, y, epochs=cfg["map_epochs"], batch_size=N_TRAIN,
                              lr=cfg["map_lr"], seed=0, progress=False)
    seconds["MAP"] = c.seconds
    print(f"MAP: {c.seconds:.0f} s", flush=True)
    c = Clock()
    net = make_net()
    post = fit_nuts(net, x, y, **cfg["nuts"], seed=0, progress=False)
    posts["NUTS"] = post
    seconds["NUTS"] = c.seconds
    stats = post.sample_stats
    extra["NUTS"] = {"divergences": int(stats["diverging"].sum()), "mean_tree_depth": float(stats["tree_depth"].float().mean()),
                     "max_tree_depth": cfg["nuts"]["max_tree_depth"],
                     "step_size": [float(s) for s in stats["step_size"][:, -1]],
                     "accept_prob": float(stats["accept_prob"].float().mean()),
                     **{k: v for k, v in cfg["nuts"].items()}}
    extra["NUTS"].update(nuts_rhat(post, std.x(ds.x_test)))
    print(f"NUTS: {c.seconds:.0f} s; {extra['NUTS']['divergences']} divergences, mean tree depth "
          f"{extra['NUTS']['mean_tree_depth']:.1f}, R-hat of f(x) max {extra['NUTS']['rhat_f_max']:.2f}", flush=True)

    rows, results, bands = [], {}, {}
    for name, p in posts.items():
        m = metrics(summarise(p, std, ds.x_test), ds)
        results[name] = {**m, "seconds": seconds[name], **extra.get(name, {})}
        bands[name] = summarise(p, std, x_grid)
        rows.append([name, fmt(m["rmse_inside"], 3), fmt(m["coverage_inside"]), fmt(m["width_inside"], 3),
                     fmt(m["width_outside"], 3), fmt(m["width_far"], 3), fmt(m["width_outside"] / m["width_inside"]),
                     fmt(m["noise"], 3), f"{seconds[name]:.0f}"])
    n_in = results["MAP"]["n_inside"]
    table = markdown_table(
        ["posterior", "RMSE in [0, 0.5]", f"coverage of {INTERVAL:.0%} interval in [0, 0.5] ({n_in} pts)",
         "width inside", "width outside", "width far (x<−0.1 or x>0.9)", "outside / inside", "noise σ (learned)",
         "time (s)"], rows)
    nuts = extra["NUTS"]
    settings = (f"1-{HIDDEN}-{HIDDEN}-1 ReLU, scale-mixture prior π={PRIOR['pi']}, σ1={PRIOR['sigma1']}, "
                f"σ2=e^{math.log(PRIOR['sigma2']):.0f} (standardised units), learned Gaussian noise. "
                f"BBB: MeanField, initial σ 1e-3, Adam lr {cfg['bbb_lr']}, {cfg['bbb_epochs']} full-batch steps. "
                f"MAP: Delta guide, Adam lr {cfg['map_lr']}, {cfg['map_epochs']} steps. NUTS: {nuts['chains']} "
                f"chains × ({nuts['warmup']} warmup + {nuts['num_samples']} draws), max tree depth "
                f"{nuts['max_tree_depth']}: {nuts['divergences']} divergences, mean tree depth "
                f"{nuts['mean_tree_depth']:.1f}, mean acceptance {nuts['accept_prob']:.2f}, split R-hat of the "
                f"network output over the held-out x: median {nuts['rhat_f_median']:.2f}, max {nuts['rhat_f_max']:.2f} "
                f"(noise σ: {nuts['rhat_noise']:.2f}). Intervals: central "
                f"{INTERVAL:.0%} of y from {PREDICT_DRAWS} posterior draws (noise included); widths on the "
                f"original y scale, averaged over the held-out grid inside / outside [0, 0.5]. The root-mean-square "
                f"noise of the data inside [0, 0.5] is about 0.06.")
    text = f"{table}\n\n{settings}\n"

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), sharey=True)
    xg = x_grid[:, 0].numpy()
    truth = toy_function(xg)
    for ax, (name, b) in zip(axes, bands.items()):
        ax.axvspan(*TRAIN_RANGE, color="0.93", zorder=0)
        ax.fill_between(xg, b["lo"].numpy(), b["hi"].numpy(), color="tab:blue", alpha=0.3,
                        label=f"{INTERVAL:.0%} predictive interval")
        ax.plot(xg, b["mean"].numpy(), color="tab:blue", lw=1.8, label="predictive mean")
        ax.plot(xg, truth, color="k", ls="--", lw=1, label="noise-free curve")
        ax.scatter(ds.x_test[:, 0].numpy(), ds.y_test.numpy(), s=6, color="tab:orange", alpha=0.6,
                   label="held-out points")
        ax.scatter(ds.x_train[:, 0].numpy(), ds.y_train.numpy(), s=6, color="k", label="training points")
        r = results[name]
        ax.set_title(f"{name}\ncoverage in range {r['coverage_inside']:.2f}, width in/out "
                     f"{r['width_inside']:.2f}/{r['width_outside']:.2f}", fontsize=10)
        ax.set_xlabel("x")
        ax.set_xlim(*PLOT_RANGE)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y")
    axes[0].set_ylim(-1.5, 3.0)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Toy regression of Blundell et al. (2015): predictive bands (grey: training range)")
    fig.tight_layout()

    finish("blundell_regression", args.quick, clock, text,
           {"results": results, "settings": dict(cfg), "n_train": N_TRAIN, "n_test": N_TEST, "prior": PRIOR}, fig)


if __name__ == "__main__":
    main()
