"""Graves (2011), "Practical Variational Inference for Neural Networks", NIPS — table 1 grid.

Every row of Graves' table is one posterior family (Delta, Gaussian with fixed σ_i = 0.075, or a
full diagonal Gaussian) crossed with one prior family (uniform, Laplace, Gaussian; fixed, with an
adaptive mean, or fully adaptive by empirical Bayes).  Here each row is exactly one model spec
(``models/graves_digits_<prior>.toml``) plus one inference spec (``inference/graves_<posterior>.toml``),
built through :mod:`pyrobnn.spec`, and fitted to scikit-learn's 8x8 digits (a 64-100-10 ReLU
network instead of Graves' TIMIT recurrent network).

For every row the script reports the test error at the epoch with the best validation error
(20 % of the training split held out), that epoch (Graves' "epochs" column), the fraction of
weights with signal-to-noise |μ|/σ < 1 (Gaussian posteriors; undefined for a point estimate,
whose σ is 0) with the test error after removing them, and — for every row, ranking weights by
|μ|/σ or by |w| for a point estimate — the largest pruned fraction whose test error stays within
0.5 points of the unpruned one.

    python examples/graves_grid.py            # full run, writes examples/results/graves_grid.*
    python examples/graves_grid.py --quick    # smoke test (few epochs), writes *_quick.*
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import pyrobnn as pb
from pyrobnn.apps.pruning import prune, signal_to_noise
from pyrobnn.spec import build_data, build_guide, build_model, load_inference_spec, load_model_spec, svi_kwargs

from _common import REPO, Clock, finish, fmt, markdown_table, parse_args

# (Graves' row name, model spec, inference spec) — his table order
ROWS = [
    ("Adaptive L1", "graves_digits_adaptive_laplace", "graves_delta"),
    ("Adaptive L2", "graves_digits_adaptive_normal", "graves_delta"),
    ("Adaptive mean L2", "graves_digits_adaptive_mean_normal", "graves_delta"),
    ("L2", "graves_digits_normal", "graves_delta"),
    ("Maximum likelihood", "graves_digits_flat", "graves_delta"),
    ("L1", "graves_digits_laplace", "graves_delta"),
    ("Adaptive mean L1", "graves_digits_adaptive_mean_laplace", "graves_delta"),
    ("Weight noise", "graves_digits_flat", "graves_weight_noise"),
    ("Adaptive prior weight noise", "graves_digits_adaptive_normal", "graves_weight_noise"),
    ("Adaptive weight noise", "graves_digits_adaptive_normal", "graves_meanfield"),
]
GRAVES_TIMIT = {  # phoneme error %, epochs (Graves 2011, table 1)
    "Adaptive L1": (49.0, 7), "Adaptive L2": (35.1, 421), "Adaptive mean L2": (28.0, 53), "L2": (27.4, 59),
    "Maximum likelihood": (27.1, 44), "L1": (26.0, 545), "Adaptive mean L1": (25.4, 765),
    "Weight noise": (25.4, 220), "Adaptive prior weight noise": (24.7, 260), "Adaptive weight noise": (23.8, 384),
}
VAL_FRACTION = 0.2
PRUNE_FRACTIONS = (0.5, 0.75, 0.9, 0.95, 0.98)
PRUNE_TOLERANCE = 0.5  # percentage points of test error
MC_DRAWS = 100


def split_validation(x, y, fraction, seed=0):
    """Hold out ``fraction`` of the training split (a fixed random permutation)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_val = int(round(fraction * x.shape[0]))
    val, fit = perm[:n_val], perm[n_val:]
    return x[fit], y[fit], x[val], y[val]


@torch.no_grad()
def logits_at(net, weights: dict, x):
    return net.network(x, {s: weights[s] for s in net.weight_sites})


def error_pct(logits, y) -> float:
    return 100.0 * float((logits.argmax(-1) != y).float().mean())


@torch.no_grad()
def pruned_error(post, net, x, y, fraction: float) -> float:
    """Test error with the ``fraction`` of weights of lowest |μ|/σ set to 0 (``prune``; a point
    estimate, σ = 0, is ranked by |w|), predicting with the means of the rest."""
    pruned, _ = prune(post, fraction)
    return error_pct(logits_at(net, pruned.guide.median(), x), y)


def run_row(name, model_name, inference_name, epochs_override):
    mspec = load_model_spec(REPO / "models" / f"{model_name}.toml")
    overrides = [f"svi.epochs={epochs_override}"] if epochs_override else []
    ispec = load_inference_spec(REPO / "inference" / f"{inference_name}.toml", overrides)
    ds = build_data(mspec)
    x_fit, y_fit, x_val, y_val = split_validation(ds.x_train, ds.y_train, VAL_FRACTION)
    net = build_model(mspec)
    guide = build_guide(ispec, net)
    is_point = ispec.guide.family == "delta"

    curve, best = [], {}

    def callback(rec):
        logits = logits_at(net, guide.median(), x_val)
        err, nll = error_pct(logits, y_val), float(F.cross_entropy(logits, y_val))
        curve.append({"epoch": rec["epoch"], "val_error": err, "val_nll": nll, "train_nll": rec["nll"],
                      "kl": rec["kl"]})
        if not best or (err, nll) < (best["val_error"], best["val_nll"]):
            best.update(epoch=rec["epoch"], val_error=err, val_nll=nll,
                        guide={k: v.detach().clone() for k, v in guide.state_dict().items()},
                        model={k: v.detach().clone() for k, v in net.state_dict().items()})

    clock = Clock()
    kw = svi_kwargs(ispec)
    post = pb.fit_svi(net, guide, x_fit, y_fit, **kw, progress=False, callback=callback)
    seconds = clock.seconds
    # back to the epoch with the best validation error (Graves: early stopping on validation data)
    guide.load_state_dict(best["guide"])
    net.load_state_dict(best["model"])

    test_logits = logits_at(net, guide.median(), ds.x_test)
    err_mean = error_pct(test_logits, ds.y_test)
    if is_point:
        err_mc = err_mean
    else:
        err_mc = 100.0 * float((post.predict(ds.x_test, num_samples=MC_DRAWS, seed=0).probs.argmax(-1)
                                != ds.y_test).float().mean())

    snr_fraction = err_snr = None
    if not is_point:
        snr = torch.cat([v.reshape(-1) for v in signal_to_noise(guide, net.weight_sites).values()])
        snr_fraction = float((snr < 1).float().mean())
        err_snr = pruned_error(post, net, ds.x_test, ds.y_test, snr_fraction)
    pruning = {f: pruned_error(post, net, ds.x_test, ds.y_test, f) for f in PRUNE_FRACTIONS}
    ok = [f for f, e in pruning.items() if e <= err_mean + PRUNE_TOLERANCE]
    max_removable = max(ok) if ok else 0.0
    hyper = {k: v for k, v in net.prior_of(0).hyperparameters().items()}
    return {
        "name": name, "model_spec": f"models/{model_name}.toml", "inference_spec": f"inference/{inference_name}.toml",
        "posterior": ispec.guide.family, "prior": mspec.prior.family, "prior_params": dict(mspec.prior.params),
        "epochs": kw["epochs"], "best_epoch": best["epoch"], "best_val_error": best["val_error"],
        "test_error_mean_weights": err_mean, "test_error_mc": err_mc, "snr_below_1_fraction": snr_fraction,
        "test_error_after_snr_pruning": err_snr, "pruning": pruning, "max_fraction_within_tolerance": max_removable,
        "prior_after_fit": hyper, "seconds": seconds, "curve": curve,
        "n_fit": int(x_fit.shape[0]), "n_val": int(x_val.shape[0]), "n_test": int(ds.x_test.shape[0]),
    }


def nats(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def describe_prior(r) -> str:
    h = r["prior_after_fit"]
    if r["prior"] == "flat":
        return "uniform"
    loc, scale = h.get("loc", 0.0), h.get("scale", float("nan"))
    kind = "Gauss" if "normal" in r["prior"] else "Laplace"
    spread = f"σ={scale:.3g}" if kind == "Gauss" else f"b={scale:.3g}"
    return f"{kind} μ={loc:.2g}, {spread}"


def main():
    args = parse_args(__doc__.splitlines()[0])
    clock = Clock()
    torch.manual_seed(0)
    epochs_override = 12 if args.quick else None
    results = []
    for name, model_name, inference_name in ROWS:
        r = run_row(name, model_name, inference_name, epochs_override)
        results.append(r)
        print(f"{name:<28s} test error {r['test_error_mean_weights']:5.2f}%  best epoch {r['best_epoch']:4d}/"
              f"{r['epochs']}  ({r['seconds']:.0f} s)", flush=True)

    headers = ["row (Graves 2011)", "model spec", "inference spec", "test err % (mean w)", "test err % (MC)",
               "best epoch", "\\|μ\\|/σ<1 fraction", "test err % w/o them", "removable within +0.5 pt",
               "prior at best epoch", "last epoch: NLL / complexity (nats)", "TIMIT err % / epochs"]
    rows = []
    for r in results:
        g = GRAVES_TIMIT[r["name"]]
        rows.append([
            r["name"], r["model_spec"].split("/")[-1], r["inference_spec"].split("/")[-1],
            fmt(r["test_error_mean_weights"]), fmt(r["test_error_mc"]), f"{r['best_epoch']} / {r['epochs']}",
            "n/a (σ=0)" if r["snr_below_1_fraction"] is None else fmt(r["snr_below_1_fraction"]),
            fmt(r["test_error_after_snr_pruning"]),
            f"{100 * r['max_fraction_within_tolerance']:.0f}%", describe_prior(r),
            f"{nats(r['curve'][-1]['train_nll'])} / {nats(r['curve'][-1]['kl'])}", f"{g[0]} / {g[1]}"])
    n = results[0]
    table = markdown_table(headers, rows)
    prune_headers = ["row"] + [f"{100 * f:.0f}% removed" for f in PRUNE_FRACTIONS]
    prune_rows = [[r["name"]] + [fmt(r["pruning"][f]) for f in PRUNE_FRACTIONS] for r in results]
    prune_table = markdown_table(prune_headers, prune_rows)
    note = (f"scikit-learn digits: {n['n_fit']} fitting / {n['n_val']} validation / {n['n_test']} test images; "
            f"64-100-10 ReLU; up to {n['epochs']} epochs; test error at the epoch of best validation error. "
            "NLL and complexity are the training-set terms of the loss in the last epoch (complexity: "
            "E_q[log q(w) − log p(w)] for Gaussian posteriors — under the flat prior a constant, the negative "
            "entropy of q —, and −log p(w) for a point estimate, 0 under the flat prior). "
            "Pruning ranks weights by |μ|/σ (Gaussian posteriors) or |w| (Delta) and zeroes the lowest; "
            "test error % after pruning:")
    text = f"{table}\n\n{note}\n\n{prune_table}\n"

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for r in results:
        ax = axes[0] if r["posterior"] == "delta" else axes[1]
        ep = [c["epoch"] for c in r["curve"]]
        ax.plot(ep, [c["val_error"] for c in r["curve"]], label=r["name"], lw=1.2)
    for ax, title in zip(axes, ("Delta posterior (point estimates)", "Gaussian posteriors")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("validation error (%)")
    axes[0].set_yscale("log")
    axes[0].set_ylim(1, 100)
    fig.suptitle("Graves (2011) grid on digits: validation error while training")
    fig.tight_layout()

    finish("graves_grid", args.quick, clock, text, {"rows": results}, fig, figure_stem="graves_grid_curves")


if __name__ == "__main__":
    main()
