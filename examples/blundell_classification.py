"""Blundell et al. (2015), "Weight Uncertainty in Neural Networks", ICML — section 5.1 on Fashion-MNIST.

A 784-400-400-10 ReLU classifier (``models/fashion_mnist.toml``) trained five ways, the same number
of epochs each (minibatches of 128):

* SGD — plain PyTorch, no regularisation;
* dropout — plain PyTorch, dropout 0.5 on both hidden layers;
* Bayes by Backprop (mean-field Gaussian posterior, Monte-Carlo KL) with a single Gaussian prior;
* Bayes by Backprop with the scale-mixture prior π N(0, σ1²) + (1 − π) N(0, σ2²), with uniform
  KL weights per minibatch and with Blundell's π_i = 2^(M−i) / (2^M − 1).

Then Blundell's pruning experiment: remove the weights with the lowest signal-to-noise |μ|/σ
(0, 50, 75, 95, 98 %) and predict with the posterior means of the rest; and a histogram of log SNR.

    python examples/blundell_classification.py              # full run (see --epochs)
    python examples/blundell_classification.py --quick      # smoke test on a subset, writes *_quick.*
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import pyrobnn as pb
from pyrobnn.apps.pruning import prune, signal_to_noise

from _common import REPO, Clock, finish, fmt, machine, markdown_table, parse_args

BATCH = 128
SGD_LR, SGD_MOMENTUM = 0.01, 0.9
DROPOUT = 0.5
BBB_LR = 1e-3
INIT_SCALE = 1e-3  # initial posterior σ of every weight
GAUSS_PRIOR = {"family": "normal", "loc": 0.0, "scale": 1.0}
MIXTURE_PRIOR = {"family": "scale_mixture", "pi": 0.25, "sigma1": 1.0, "sigma2": math.exp(-6)}
MC_DRAWS = 10
PRUNE_FRACTIONS = (0.0, 0.5, 0.75, 0.95, 0.98)


def extra_args(p):
    p.add_argument("--epochs", type=int, default=None, help="epochs for every method (default 10; quick: 1)")


# ----------------------------------------------------------------------------- deterministic baselines
def mlp(dropout: float) -> nn.Module:
    layers = [nn.Linear(784, 400), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(400, 400), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(400, 10))
    return nn.Sequential(*layers)


@torch.no_grad()
def error_pct(logits, y) -> float:
    return 100.0 * float((logits.argmax(-1) != y).float().mean())


@torch.no_grad()
def batched_logits(fn, x, batch=5000):
    return torch.cat([fn(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def train_plain(ds, epochs, dropout, seed=0):
    torch.manual_seed(seed)
    net = mlp(dropout)
    opt = torch.optim.SGD(net.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)
    gen = torch.Generator().manual_seed(seed)
    n = ds.x_train.shape[0]
    curve = []
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(n, generator=gen).split(BATCH):
            loss = F.cross_entropy(net(ds.x_train[idx]), ds.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        curve.append(error_pct(batched_logits(net, ds.x_test), ds.y_test))
    net.eval()
    return net, curve


# ----------------------------------------------------------------------------- Bayes by Backprop
def bbb_net(prior: dict):
    """The network of ``models/fashion_mnist.toml`` with the given prior (spec overrides)."""
    return pb.BNN.from_spec(REPO / "models" / "fashion_mnist.toml", overrides={"prior": prior})


def mean_weights(guide):
    return guide.median()


def train_bbb(ds, epochs, prior, kl, seed=0):
    net = bbb_net(prior)
    guide = pb.guides.MeanField(net, init_scale=INIT_SCALE)
    curve = []

    def callback(rec):
        w = mean_weights(guide)
        curve.append(error_pct(batched_logits(lambda xb: net.network(xb, w), ds.x_test), ds.y_test))

    post = pb.fit_svi(net, guide, ds.x_train, ds.y_train, epochs=epochs, batch_size=BATCH, optimizer="adam",
                      lr=BBB_LR, kl=kl, elbo="trace", seed=seed, progress=False, callback=callback)
    return post, curve


@torch.no_grad()
def bbb_errors(post, ds):
    net = post.model
    w = mean_weights(post.guide)
    err_mean = error_pct(batched_logits(lambda xb: net.network(xb, w), ds.x_test), ds.y_test)
    probs = post.predict(ds.x_test, num_samples=MC_DRAWS, seed=0).probs
    err_mc = 100.0 * float((probs.argmax(-1) != ds.y_test).float().mean())
    return err_mean, err_mc


@torch.no_grad()
def pruning_table(post, ds):
    rows = []
    net = post.model
    for f in PRUNE_FRACTIONS:
        pruned, masks = prune(post, f)
        kept = int(sum(int(m.sum()) for m in masks.values()))
        w = pruned.guide.median()
        err = error_pct(batched_logits(lambda xb: net.network(xb, w), ds.x_test), ds.y_test)
        rows.append({"fraction": f, "kept": kept, "test_error": err})
    return rows


def main():
    args = parse_args(__doc__.splitlines()[0], extra_args)
    clock = Clock()
    epochs = args.epochs or (1 if args.quick else 10)
    if args.quick:
        ds = pb.data.fashion_mnist(flatten=True, n_train=3000, n_test=1000)
    else:
        ds = pb.data.fashion_mnist(flatten=True)
    print(f"Fashion-MNIST: {ds.x_train.shape[0]} train / {ds.x_test.shape[0]} test; {epochs} epochs of batch "
          f"{BATCH}; {machine()}", flush=True)

    results, curves, posts = [], {}, {}
    for name, dropout in (("SGD", 0.0), ("Dropout", DROPOUT)):
        c = Clock()
        net, curve = train_plain(ds, epochs, dropout)
        err = error_pct(batched_logits(net, ds.x_test), ds.y_test)
        results.append({"method": name, "test_error_mean": err, "test_error_mc": None, "seconds": c.seconds})
        curves[name] = curve
        print(f"{name:<34s} test error {err:5.2f}%  ({c.seconds:.0f} s)", flush=True)

    bbb_runs = [("BBB, Gaussian prior", GAUSS_PRIOR, "uniform"),
                ("BBB, scale mixture, uniform KL", MIXTURE_PRIOR, "uniform"),
                ("BBB, scale mixture, Blundell KL", MIXTURE_PRIOR, "blundell")]
    for name, prior, kl in bbb_runs:
        c = Clock()
        post, curve = train_bbb(ds, epochs, prior, kl)
        err_mean, err_mc = bbb_errors(post, ds)
        results.append({"method": name, "test_error_mean": err_mean, "test_error_mc": err_mc, "seconds": c.seconds,
                        "prior": prior, "kl": kl, "final_epoch": post.history[-1]})
        curves[name], posts[name] = curve, post
        print(f"{name:<34s} test error {err_mean:5.2f}% (posterior mean), {err_mc:5.2f}% ({MC_DRAWS}-draw average)"
              f"  ({c.seconds:.0f} s)", flush=True)

    prunes = {name: pruning_table(p, ds) for name, p in posts.items()}
    n_weights = posts[bbb_runs[0][0]].model.num_weights

    # ------------------------------------------------------------------ tables
    table = markdown_table(
        ["method", "epochs", "test error % (posterior mean / net)", f"test error % ({MC_DRAWS}-draw average)",
         "train time (s)"],
        [[r["method"], epochs, fmt(r["test_error_mean"]), fmt(r["test_error_mc"]) if r["test_error_mc"] is not None
          else "—", f"{r['seconds']:.0f}"] for r in results])
    names = list(prunes)
    ptable = markdown_table(
        ["proportion removed", "weights kept"] + [f"test error % — {n}" for n in names],
        [[f"{100 * row['fraction']:.0f}%", f"{row['kept']:,}"] + [fmt(prunes[n][i]["test_error"]) for n in names]
         for i, row in enumerate(prunes[names[0]])])
    mix = MIXTURE_PRIOR
    settings = (f"{ds.x_train.shape[0]} training / {ds.x_test.shape[0]} test images, {epochs} epochs of minibatch "
                f"{BATCH} for every method. SGD/dropout: SGD lr {SGD_LR}, momentum {SGD_MOMENTUM}. BBB: Adam lr "
                f"{BBB_LR}, initial σ {INIT_SCALE}, one weight sample per step, Monte-Carlo KL; Gaussian prior "
                f"N(0, {GAUSS_PRIOR['scale']}²); scale mixture π={mix['pi']}, −ln σ1={-math.log(mix['sigma1']) + 0.0:.0f}, "
                f"−ln σ2={-math.log(mix['sigma2']):.0f}. Pruning: the lowest |μ|/σ weights are set to 0, the others "
                f"to their posterior means ({n_weights:,} weights in all).")
    text = f"{table}\n\n{settings}\n\nPruning by signal-to-noise (Blundell et al. 2015, table 2):\n\n{ptable}\n"

    # ------------------------------------------------------------------ figures
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    ax = axes[0]
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title("Test error per epoch\n(BBB: posterior-mean weights)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    snr_logs = {}
    for name, post in posts.items():
        snr = torch.cat([v.reshape(-1) for v in signal_to_noise(post.guide).values()])
        snr_logs[name] = torch.log10(snr).numpy()
    lo = min(float(np.percentile(v, 0.1)) for v in snr_logs.values())
    hi = max(float(np.percentile(v, 99.9)) for v in snr_logs.values())
    bins = np.linspace(lo, hi, 80)
    for name, v in snr_logs.items():
        ax.hist(v, bins=bins, histtype="step", lw=1.4, density=True, label=name)
    ref = snr_logs[bbb_runs[1][0]]
    for f in PRUNE_FRACTIONS[1:]:
        q = float(np.quantile(ref, f))
        ax.axvline(q, color="grey", ls=":", lw=1)
        ax.text(q, ax.get_ylim()[1] * 0.95, f"{100 * f:.0f}%", rotation=90, va="top", ha="right", fontsize=7)
    ax.set_xlabel("log10 signal-to-noise |μ|/σ")
    ax.set_ylabel("density")
    ax.set_title("Signal-to-noise of the weights\n(dotted: pruning cut-offs of the mixture/uniform net)")
    ax.legend(fontsize=8)
    ax = axes[2]
    for name in names:
        ax.plot([100 * r["fraction"] for r in prunes[name]], [r["test_error"] for r in prunes[name]], marker="o",
                label=name)
    ax.set_xlabel("weights removed (%)")
    ax.set_ylabel("test error (%)")
    ax.set_title("Pruning by |μ|/σ\n(posterior means of the kept weights)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Bayes by Backprop on Fashion-MNIST, 784-400-400-10, {epochs} epochs")
    fig.tight_layout()

    finish("blundell_classification", args.quick, clock, text,
           {"results": results, "curves": curves, "pruning": prunes, "epochs": epochs, "batch_size": BATCH,
            "n_train": ds.x_train.shape[0], "n_test": ds.x_test.shape[0]}, fig)


if __name__ == "__main__":
    main()
