"""Basov, "Automatic regularisation of neural networks by ARD" — figure 1 on breast cancer.

One hidden ReLU layer of width 1, 2, 4, ..., 64, 256, 1024 and a sigmoid output (Bernoulli
likelihood), on scikit-learn's breast-cancer data (569 × 30; 80/20 splits, seeds 0..9):

* an unregularised network — plain PyTorch, full-batch Adam for a fixed number of epochs, which
  drives its training AUC to 1;
* the ARD Bayesian network — prior N(0, δ_k²) with one δ_k per weight fitted by empirical Bayes
  (δ_k² = σ_k² + μ_k²) and Basov's guide μ = γσ, σ = softplus(ρ), so the KL is ½ Σ ln(1 + γ_k²)
  (``pyrobnn.priors.ARD`` + ``pyrobnn.guides.ARD``, analytic KL: ``elbo="meanfield"``).

Reports train and test ROC-AUC per width (mean over seeds), the train–test gap, and the Pearson
correlation between the BNN's train and test AUC over all (width, seed) runs — Basov's argument
that a BNN's hyperparameters can be chosen on training metrics alone.

    python examples/basov_ard.py            # full run, writes examples/results/basov_ard.*
    python examples/basov_ard.py --quick    # widths 1..64, 2 seeds, short training; writes *_quick.*
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

import pyrobnn as pb

from _common import Clock, finish, machine, markdown_table, parse_args

WIDTHS = (1, 2, 4, 8, 16, 32, 64)
WIDE = (256, 1024)
SEEDS = tuple(range(10))
PLAIN_EPOCHS, PLAIN_LR = 2000, 1e-2   # full-batch Adam
BNN_EPOCHS, BNN_LR = 1000, 1e-2       # full-batch Adam
INIT_SCALE = 0.01                     # initial posterior σ of the ARD guide
PREDICT_DRAWS = 100


def auc(y, score) -> float:
    return float(roc_auc_score(y.numpy(), score.detach().numpy()))


def fit_plain(ds, width, seed, epochs):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(30, width), nn.ReLU(), nn.Linear(width, 1))
    opt = torch.optim.Adam(net.parameters(), lr=PLAIN_LR)
    for _ in range(epochs):
        loss = F.binary_cross_entropy_with_logits(net(ds.x_train).squeeze(-1), ds.y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        f_train, f_test = net(ds.x_train).squeeze(-1), net(ds.x_test).squeeze(-1)
        return (auc(ds.y_train, f_train), auc(ds.y_test, f_test),
                float(F.binary_cross_entropy_with_logits(f_train, ds.y_train)),
                float(F.binary_cross_entropy_with_logits(f_test, ds.y_test)))


def fit_bnn(ds, width, seed, epochs):
    torch.manual_seed(seed)
    net = pb.BNN([pb.Linear(30, width), "relu", pb.Linear(width, 1)], pb.Bernoulli(), pb.priors.ARD())
    guide = pb.guides.ARD(net, init_scale=INIT_SCALE)
    n = ds.x_train.shape[0]
    post = pb.fit_svi(net, guide, ds.x_train, ds.y_train, epochs=epochs, batch_size=n, optimizer="adam",
                      lr=BNN_LR, elbo="meanfield", seed=seed, progress=False)
    p_train = post.predict(ds.x_train, num_samples=PREDICT_DRAWS, seed=seed).mean  # P(y = 1)
    p_test = post.predict(ds.x_test, num_samples=PREDICT_DRAWS, seed=seed).mean
    # log loss of the posterior predictive, −(1/N) Σ log (1/S) Σ_s p(y_n | x_n, w_s)
    ll_train = -float(post.log_predictive_density(ds.x_train, ds.y_train, num_samples=PREDICT_DRAWS, seed=seed).mean())
    ll_test = -float(post.log_predictive_density(ds.x_test, ds.y_test, num_samples=PREDICT_DRAWS, seed=seed).mean())
    return auc(ds.y_train, p_train), auc(ds.y_test, p_test), ll_train, ll_test, post.history[-1]


def mean_se(values):
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def main():
    args = parse_args(__doc__.splitlines()[0])
    clock = Clock()
    widths = WIDTHS if args.quick else WIDTHS + WIDE
    seeds = SEEDS[:2] if args.quick else SEEDS
    plain_epochs = 300 if args.quick else PLAIN_EPOCHS
    bnn_epochs = 100 if args.quick else BNN_EPOCHS
    print(f"breast cancer, widths {list(widths)}, seeds {list(seeds)}; unregularised: {plain_epochs} epochs, "
          f"BNN: {bnn_epochs} epochs (full batch); {machine()}", flush=True)

    runs = []
    for seed in seeds:
        ds = pb.data.sklearn_dataset("breast_cancer", test_fraction=0.2, seed=seed)
        for width in widths:
            c = Clock()
            p_tr, p_te, p_ltr, p_lte = fit_plain(ds, width, seed, plain_epochs)
            t_plain = c.seconds
            b_tr, b_te, b_ltr, b_lte, last = fit_bnn(ds, width, seed, bnn_epochs)
            runs.append({"seed": seed, "width": width, "plain_train_auc": p_tr, "plain_test_auc": p_te,
                         "bnn_train_auc": b_tr, "bnn_test_auc": b_te, "plain_train_logloss": p_ltr,
                         "plain_test_logloss": p_lte, "bnn_train_logloss": b_ltr, "bnn_test_logloss": b_lte,
                         "bnn_final_nll": last["nll"],
                         "bnn_final_kl": last["kl"], "seconds_plain": t_plain, "seconds_bnn": c.seconds - t_plain})
            print(f"seed {seed} width {width:5d}: unregularised {p_tr:.3f}/{p_te:.3f}, ARD BNN {b_tr:.3f}/{b_te:.3f} "
                  f"(train/test AUC; {c.seconds:.1f} s)", flush=True)

    summary = []
    for width in widths:
        rs = [r for r in runs if r["width"] == width]
        row = {"width": width}
        for key in ("plain_train_auc", "plain_test_auc", "bnn_train_auc", "bnn_test_auc", "plain_train_logloss",
                    "plain_test_logloss", "bnn_train_logloss", "bnn_test_logloss"):
            row[key], row[key + "_se"] = mean_se([r[key] for r in rs])
        row["plain_gap"], row["plain_gap_se"] = mean_se([r["plain_train_auc"] - r["plain_test_auc"] for r in rs])
        row["bnn_gap"], row["bnn_gap_se"] = mean_se([r["bnn_train_auc"] - r["bnn_test_auc"] for r in rs])
        summary.append(row)
    bnn_tr = np.array([r["bnn_train_auc"] for r in runs])
    bnn_te = np.array([r["bnn_test_auc"] for r in runs])
    plain_tr = np.array([r["plain_train_auc"] for r in runs])
    plain_te = np.array([r["plain_test_auc"] for r in runs])
    pearson_bnn = float(np.corrcoef(bnn_tr, bnn_te)[0, 1])
    pearson_plain = float(np.corrcoef(plain_tr, plain_te)[0, 1]) if plain_tr.std() > 0 else float("nan")

    def pm(row, key):
        return f"{row[key]:.3f} ± {row[key + '_se']:.3f}"

    table = markdown_table(
        ["width", "unreg. train AUC", "unreg. test AUC", "unreg. gap", "ARD BNN train AUC", "ARD BNN test AUC",
         "ARD BNN gap"],
        [[r["width"], pm(r, "plain_train_auc"), pm(r, "plain_test_auc"), pm(r, "plain_gap"), pm(r, "bnn_train_auc"),
          pm(r, "bnn_test_auc"), pm(r, "bnn_gap")] for r in summary])
    loss_table = markdown_table(
        ["width", "unreg. train log loss", "unreg. test log loss", "ARD BNN train log loss", "ARD BNN test log loss"],
        [[r["width"], pm(r, "plain_train_logloss"), pm(r, "plain_test_logloss"), pm(r, "bnn_train_logloss"),
          pm(r, "bnn_test_logloss")] for r in summary])
    corr = (f"Pearson correlation of train and test AUC over all {len(runs)} (width, seed) runs: ARD BNN "
            f"r = {pearson_bnn:.3f}; unregularised r = {pearson_plain:.3f}"
            f"{' (its train AUC is constant)' if not math.isfinite(pearson_plain) else ''}.")
    settings = (f"Mean ± standard error over seeds {seeds[0]}..{seeds[-1]} (80/20 stratified splits, inputs "
                f"standardised with training statistics). Unregularised: full-batch Adam lr {PLAIN_LR}, "
                f"{plain_epochs} epochs. ARD BNN: full-batch Adam lr {BNN_LR}, {bnn_epochs} epochs, initial σ "
                f"{INIT_SCALE}, analytic KL ½Σln(1+γ²), AUC of the posterior predictive P(y=1) from "
                f"{PREDICT_DRAWS} draws. Gap = train AUC − test AUC.")
    text = (f"{table}\n\n{corr}\n\n{settings}\n\nLog loss (mean negative log predictive probability per "
            f"point; BNN: of the posterior predictive), mean ± s.e. over seeds:\n\n{loss_table}\n")

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = axes.ravel()
    w = np.array(widths)
    styles = {"plain": ("tab:red", "unregularised"), "bnn": ("tab:blue", "ARD BNN")}
    ax = axes[0]
    for model, (color, label) in styles.items():
        for split, ls in (("train", "-"), ("test", "--")):
            key = f"{model}_{split}_auc"
            m = np.array([r[key] for r in summary])
            se = np.array([r[key + "_se"] for r in summary])
            ax.errorbar(w, m, yerr=se, color=color, ls=ls, marker="o", ms=4, capsize=2, label=f"{label}, {split}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("ROC-AUC")
    ax.set_title("AUC vs width (mean ± s.e. over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    for model, (color, label) in styles.items():
        m = np.array([r[f"{model}_gap"] for r in summary])
        se = np.array([r[f"{model}_gap_se"] for r in summary])
        ax.errorbar(w, m, yerr=se, color=color, marker="o", ms=4, capsize=2, label=label)
    ax.axhline(0.02, color="grey", ls=":", lw=1, label="0.02")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("train AUC − test AUC")
    ax.set_title("Generalisation gap")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[2]
    for model, (color, label) in styles.items():
        for split, ls in (("train", "-"), ("test", "--")):
            key = f"{model}_{split}_logloss"
            m = np.array([r[key] for r in summary])
            se = np.array([r[key + "_se"] for r in summary])
            ax.errorbar(w, m, yerr=se, color=color, ls=ls, marker="o", ms=4, capsize=2, label=f"{label}, {split}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden width")
    ax.set_ylabel("log loss (nats per point)")
    ax.set_title("Log loss vs width")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[3]
    ax.scatter(bnn_tr, bnn_te, s=14, color="tab:blue", label=f"ARD BNN (r = {pearson_bnn:.2f})")
    ax.scatter(plain_tr, plain_te, s=14, color="tab:red", marker="x", label="unregularised")
    lo = min(bnn_te.min(), plain_te.min(), bnn_tr.min()) - 0.005
    ax.plot([lo, 1], [lo, 1], color="grey", lw=1, ls=":")
    ax.set_xlabel("train AUC")
    ax.set_ylabel("test AUC")
    ax.set_title("Every (width, seed) run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("ARD Bayesian network vs unregularised network on breast cancer (Basov, figure 1)")
    fig.tight_layout()

    finish("basov_ard", args.quick, clock, text,
           {"summary": summary, "runs": runs, "pearson_bnn": pearson_bnn, "pearson_plain": pearson_plain,
            "widths": list(widths), "seeds": list(seeds), "plain_epochs": plain_epochs, "bnn_epochs": bnn_epochs},
           fig)


if __name__ == "__main__":
    main()
