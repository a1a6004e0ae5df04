"""Figures of an exported tree, written as PNG files.

ArviZ draws what it has (posterior predictive checks, LOO-PIT, trace, rank and forest plots,
Pareto k); matplotlib draws the rest (predictive bands, ELBO curves, reliability diagrams,
uncertainty split).  Every function takes a tree (or several), writes one PNG atomically and
returns its path, or returns None when the tree lacks what the figure needs.  Matplotlib runs
on the Agg backend; figures are closed after saving.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..utils.files import atomic_write  # noqa: E402
from .metrics import _has, _x_1d  # noqa: E402

__all__ = [
    "save_figure", "plot_predictive_band", "plot_svi_history", "plot_reliability", "plot_ppc", "plot_loo_pit",
    "plot_trace", "plot_rank", "plot_forest", "plot_pareto_k", "plot_uncertainty", "plot_bands_overlay",
    "select_weights", "plot_function_convergence",
]

_DPI = 110
_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(fig, path) -> Path:
    """Save a matplotlib figure to ``path`` (PNG) atomically and close it."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=_DPI, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def _pc_figure(pc):
    """The matplotlib figure of an ArviZ PlotCollection."""
    return pc.viz["figure"].item() if "figure" in pc.viz.ds else plt.gcf()


def _save_pc(pc, path, title: str | None = None) -> Path:
    """Save an ArviZ PlotCollection (matplotlib backend)."""
    fig = _pc_figure(pc)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _ds(tree, group):
    return tree[group].to_dataset()


def _x1d(tree, group) -> np.ndarray | None:
    # inputs standardised by the data loader are plotted in their original units
    return _x_1d(tree, group, original=True)


def is_1d_regression(tree) -> bool:
    return tree.attrs.get("task") == "regression" and _x1d(tree, "predictions_constant_data") is not None \
        and _has(tree, "predictions")


# --------------------------------------------------------------------------- regression
def _band(ax, tree, color, label_prefix="", show_points=True):
    x = _x1d(tree, "predictions_constant_data")
    pred = _ds(tree, "predictions")
    order = np.argsort(x)
    xs = x[order]
    q = pred["quantiles"]
    lo90, hi90 = q.sel(quantile=0.05).values[order], q.sel(quantile=0.95).values[order]
    lo50, hi50 = q.sel(quantile=0.25).values[order], q.sel(quantile=0.75).values[order]
    ax.fill_between(xs, lo90, hi90, color=color, alpha=0.18, lw=0, label=f"{label_prefix}90% interval")
    ax.fill_between(xs, lo50, hi50, color=color, alpha=0.35, lw=0, label=f"{label_prefix}50% interval")
    ax.plot(xs, pred["mean"].values[order], color=color, lw=2, label=f"{label_prefix}predictive mean")
    if show_points:
        _data_points(ax, tree)


def _data_points(ax, tree):
    """The training points (black) and the held-out points (red crosses) of a 1-D regression."""
    if tree.attrs.get("in_sample") == "train" and _has(tree, "observed_data"):
        xt = _x1d(tree, "constant_data")
        if xt is not None:
            ax.scatter(xt, _ds(tree, "observed_data")["obs"].values, s=14, color="black", zorder=5,
                       label="training data")
    if _has(tree, "predictions_observed_data"):
        ax.scatter(_x1d(tree, "predictions_constant_data"), _ds(tree, "predictions_observed_data")["obs"].values,
                   s=8, color="tab:red", alpha=0.5, marker="x", zorder=4, label="held-out data")


def _function_draws(ax, tree, color, n: int = 20):
    """A few posterior draws of the function E[y | x, w] (``predictions.mu``), evenly spaced
    over the pooled chains, as thin lines."""
    pred = _ds(tree, "predictions")
    if "mu" not in pred:
        return
    x = _x1d(tree, "predictions_constant_data")
    o = np.argsort(x)
    mu = pred["mu"].values.reshape(-1, x.shape[0])
    pick = np.linspace(0, mu.shape[0] - 1, min(n, mu.shape[0])).round().astype(int)
    for k, i in enumerate(pick):
        ax.plot(x[o], mu[i, o], color=color, lw=0.6, alpha=0.45, zorder=3,
                label=f"{len(pick)} posterior function draws" if k == 0 else None)


def plot_predictive_band(tree, path) -> Path | None:
    """Predictive mean with central 50% and 90% intervals of y over a 1-D input, with the
    training points and the held-out points."""
    if not is_1d_regression(tree):
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _band(ax, tree, _COLORS[0])
    _function_draws(ax, tree, _COLORS[0])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"Posterior predictive ({tree.attrs.get('method', '?').upper()})")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_bands_overlay(trees: dict, path) -> Path | None:
    """Predictive bands of several fits over the same 1-D input, one colour each."""
    trees = {k: t for k, t in trees.items() if is_1d_regression(t)}
    if len(trees) < 1:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, t) in enumerate(trees.items()):
        c = _COLORS[i % len(_COLORS)]
        x = _x1d(t, "predictions_constant_data")
        pred = _ds(t, "predictions")
        o = np.argsort(x)
        q = pred["quantiles"]
        ax.fill_between(x[o], q.sel(quantile=0.05).values[o], q.sel(quantile=0.95).values[o], color=c, alpha=0.15,
                        lw=0, label=f"{name}: 90% interval")
        ax.plot(x[o], q.sel(quantile=0.05).values[o], color=c, lw=0.8, ls="--")
        ax.plot(x[o], q.sel(quantile=0.95).values[o], color=c, lw=0.8, ls="--")
        ax.plot(x[o], pred["mean"].values[o], color=c, lw=2, label=f"{name}: mean")
    _data_points(ax, next(iter(trees.values())))
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Posterior predictive, overlaid")
    ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_uncertainty(tree, path) -> Path | None:
    """Regression with 1-D input: aleatoric and epistemic standard deviation along x.
    Classification: histograms of predictive entropy and mutual information for correct and
    wrong predictions."""
    task = tree.attrs.get("task")
    if not _has(tree, "predictions"):
        return None
    pred = _ds(tree, "predictions")
    if task == "regression":
        x = _x1d(tree, "predictions_constant_data")
        if x is None:
            return None
        o = np.argsort(x)
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.plot(x[o], np.sqrt(pred["aleatoric_var"].values[o]), label="aleatoric std (noise)")
        ax.plot(x[o], np.sqrt(pred["epistemic_var"].values[o]), label="epistemic std (weights)")
        ax.plot(x[o], np.sqrt(pred["total_var"].values[o]), color="black", lw=1, ls="--", label="total std")
        if tree.attrs.get("in_sample") == "train":
            xt = _x1d(tree, "constant_data")
            if xt is not None:
                ax.plot(xt, np.zeros_like(xt), "|", color="black", ms=10, label="training inputs")
        ax.set_xlabel("x")
        ax.set_ylabel("standard deviation")
        ax.set_title("Uncertainty split")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return save_figure(fig, path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    correct = None
    if _has(tree, "predictions_observed_data"):
        correct = pred["label"].values == _ds(tree, "predictions_observed_data")["obs"].values
    for ax, key, title in ((axes[0], "entropy", "predictive entropy (total)"),
                           (axes[1], "mutual_information", "mutual information (epistemic)")):
        v = pred[key].values
        bins = np.linspace(0, max(float(v.max()), 1e-6), 30)
        if correct is None:
            ax.hist(v, bins=bins, color=_COLORS[0])
        else:
            ax.hist(v[correct], bins=bins, alpha=0.6, label=f"correct ({correct.sum()})", density=True)
            ax.hist(v[~correct], bins=bins, alpha=0.6, label=f"wrong ({(~correct).sum()})", density=True)
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("nats")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- SVI
def plot_svi_history(tree, path) -> Path | None:
    """Negative ELBO, expected negative log-likelihood and KL per epoch."""
    if not _has(tree, "svi"):
        return None
    h = _ds(tree, "svi")
    keys = [(k, t) for k, t in (("loss", "negative ELBO"), ("nll", "expected NLL"), ("kl", "KL(q || prior)"))
            if k in h]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    axes = np.atleast_1d(axes)
    ep = h["epoch"].values
    for ax, (k, title) in zip(axes, keys):
        v = h[k].values.astype(float)
        ax.plot(ep, v, lw=1.5)
        if np.all(v[np.isfinite(v)] > 0) and np.nanmax(v) / max(np.nanmin(v), 1e-300) > 5:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle("SVI training (per epoch, mean over minibatches)")
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- classification
def plot_reliability(metrics: dict, path, title="Reliability diagram") -> Path | None:
    """Reliability diagram from :func:`~pyrobnn.diagnostics.metrics.reliability_diagram`
    data (``metrics["reliability"]``): accuracy against confidence per bin, with counts."""
    rel = metrics.get("reliability")
    if not rel:
        return None
    edges = np.asarray(rel["edges"])
    acc = np.asarray(rel["accuracy"], dtype=float)
    conf = np.asarray(rel["confidence"], dtype=float)
    count = np.asarray(rel["count"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ok = count > 0
    ax.bar(centers[ok], acc[ok], width=width * 0.95, color=_COLORS[0], alpha=0.8, edgecolor="black", lw=0.5,
           label="accuracy in bin")
    ax.vlines(centers[ok], np.minimum(acc[ok], conf[ok]), np.maximum(acc[ok], conf[ok]), color="tab:red", lw=2)
    ax.plot(centers[ok], conf[ok], "o", color="tab:red", ms=5, label="mean confidence in bin (red line: gap)")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.03)
    ece = metrics.get("ece")
    ax.set_title(title + (f" (ECE = {ece:.3f})" if ece is not None else ""))
    ax.legend(fontsize=8, loc="upper left")
    ax2.bar(centers, count, width=width * 0.95, color="gray")
    ax2.set_xlabel("confidence of the predicted class")
    ax2.set_ylabel("count")
    ax2.set_xlim(0, 1)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- ArviZ plots
def plot_ppc(tree, path) -> Path | None:
    """Posterior predictive check: distribution of y draws against the observed y (ArviZ
    ``plot_ppc_dist``; classification: ``plot_ppc_rootogram`` of the class counts)."""
    import arviz as az

    if not (_has(tree, "posterior_predictive") and _has(tree, "observed_data")):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if tree.attrs.get("task") == "regression":
            pc = az.plot_ppc_dist(tree, num_samples=100, figure_kwargs={"figsize": (7, 4)})
        else:
            pc = az.plot_ppc_rootogram(tree, figure_kwargs={"figsize": (7, 4)})
    fig = _pc_figure(pc)
    for ax in fig.axes:
        ax.set_xlabel("y (observed and replicated)" if tree.attrs.get("task") == "regression" else "class")
    return _save_pc(pc, path, "Posterior predictive check (in-sample data)")


#: probability inside the simultaneous envelope of the LOO-PIT figure
LOO_PIT_ENVELOPE_PROB = 0.99


def plot_loo_pit(tree, path) -> Path | None:
    """LOO-PIT Δ-ECDF (ArviZ ``plot_loo_pit``: the curve, its ``pot_c`` uniformity test's
    p-value and the points that depart most) with ArviZ's simultaneous envelope
    (``arviz_stats.ecdf_utils.ecdf_pit``; Säilynoja, Bürkner & Vehtari, "Graphical test for
    discrete uniformity and its applications in goodness-of-fit evaluation and multiple sample
    comparison", Statistics and Computing 2022): the band holds the whole Δ-ECDF of ``n``
    independent uniform values with probability :data:`LOO_PIT_ENVELOPE_PROB`, so a calibrated
    model's curve stays inside it everywhere.  ArviZ 1.x's own ``method="envelope"`` fails on
    LOO-PIT values (and is deprecated there because LOO-PIT values are only nearly independent,
    so the band is approximate), hence the band is drawn here from the same function."""
    import arviz as az
    from arviz_stats.ecdf_utils import ecdf_pit

    if not (_has(tree, "log_likelihood") and _has(tree, "posterior_predictive") and _has(tree, "observed_data")):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = az.plot_loo_pit(tree, figure_kwargs={"figsize": (7, 4)})
        n = int(_ds(tree, "observed_data")["obs"].size)
        x, _, lower, upper = ecdf_pit(np.linspace(0.0, 1.0, n), LOO_PIT_ENVELOPE_PROB, n_simulations=1000)
    for ax in _pc_figure(pc).axes:
        ax.fill_between(x, lower - x, upper - x, color="0.5", alpha=0.25, lw=0,
                        label=f"{100 * LOO_PIT_ENVELOPE_PROB:.0f}% simultaneous envelope")
        ax.legend(loc="lower left", fontsize=8)
    return _save_pc(pc, path, "LOO-PIT (in-sample data)")


def plot_pareto_k(loo_result, path) -> Path | None:
    """Pareto k of every observation (ArviZ ``plot_khat``), with the 0.7 threshold."""
    import arviz as az

    if loo_result is None or getattr(loo_result, "pareto_k", None) is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = az.plot_khat(loo_result, figure_kwargs={"figsize": (7, 3.5)})
    return _save_pc(pc, path, "PSIS-LOO Pareto k")


def select_weights(tree, n: int = 6, stat=None, largest=True) -> list[tuple[str, dict]]:
    """A handful of scalar parameters to plot: the ``n`` with the largest (or smallest)
    value of a per-parameter statistic ``stat`` (a Dataset like ``az.rhat``), else the first
    entries of each weight tensor plus ``noise``."""
    from .metrics import _ranked

    post = _ds(tree, "posterior")
    if stat is not None:
        return [(name, coords) for name, coords, _ in _ranked(stat, n, largest)]
    out = []
    names = list(post.data_vars)
    per = max(1, n // max(1, len(names)))
    for name in names:
        da = post[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra:
            out.append((name, {}))
            continue
        size = int(np.prod([da.sizes[d] for d in extra]))
        for k in range(min(per, size)):
            idx = np.unravel_index(k, [da.sizes[d] for d in extra])
            out.append((name, dict(zip(extra, (int(i) for i in idx)))))
    return out[:max(n, len(names))]


def _subtree(tree, items, group="posterior"):
    import xarray as xr

    from .metrics import scalar_dataset

    groups = {group: scalar_dataset(_ds(tree, group), items)}
    if _has(tree, "sample_stats") and "diverging" in _ds(tree, "sample_stats"):
        groups["sample_stats"] = _ds(tree, "sample_stats")[["diverging"]]
    return xr.DataTree.from_dict(groups)


def plot_trace(tree, path, items) -> Path | None:
    """Trace and marginal density of a handful of parameters (ArviZ ``plot_trace_dist``),
    divergences marked."""
    import arviz as az

    if not items:
        return None
    sub = _subtree(tree, items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = az.plot_trace_dist(sub, figure_kwargs={"figsize": (11, 1.7 * len(items) + 1)})
    fig = pc.viz["figure"].item()
    for ax in fig.axes:
        ax.yaxis.label.set_fontsize(8)
    return _save_pc(pc, path)


def plot_function_convergence(tree, path, fs=None) -> Path | None:
    """Function-space R-hat and bulk/tail ESS at every evaluation input (MCMC with several
    chains), against x for a 1-D input, else against the evaluation points sorted by R-hat;
    the thresholds of :func:`~pyrobnn.diagnostics.metrics.diagnose` dashed.  ``fs``: a result
    of :func:`~pyrobnn.diagnostics.metrics.function_space_convergence` (computed if None)."""
    from .metrics import ESS_MIN_PER_CHAIN, RHAT_MAX, function_space_convergence

    fs = function_space_convergence(tree) if fs is None else fs
    if fs is None or "rhat" not in fs:
        return None

    def per_input(da, reduce):
        # one number per evaluation input (the worst class for probabilities)
        return reduce(da.values.reshape(da.sizes["pred_id"], -1), axis=1)

    rhat = per_input(fs["rhat"], np.nanmax)
    bulk, tail = per_input(fs["ess_bulk"], np.nanmin), per_input(fs["ess_tail"], np.nanmin)
    x = _x1d(tree, "predictions_constant_data")
    if x is not None:
        order, xs, xlabel = np.argsort(x), np.sort(x), "x"
    else:
        order = np.argsort(-rhat)
        xs, xlabel = np.arange(rhat.size), "evaluation point (sorted by R-hat)"
    nchain = int(_ds(tree, "predictions").sizes.get("chain", 1))
    what = "predictive mean" if fs.attrs.get("variable") == "mu" else "class probabilities (worst class)"
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].plot(xs, rhat[order], color=_COLORS[0], lw=1.5)
    axes[0].axhline(RHAT_MAX, color="black", ls="--", lw=1, label=f"{RHAT_MAX}")
    axes[0].set_ylabel("R-hat")
    axes[1].plot(xs, bulk[order], color=_COLORS[0], lw=1.5, label="bulk ESS")
    axes[1].plot(xs, tail[order], color=_COLORS[1], lw=1.5, label="tail ESS")
    axes[1].axhline(ESS_MIN_PER_CHAIN * nchain, color="black", ls="--", lw=1,
                    label=f"{ESS_MIN_PER_CHAIN * nchain} ({ESS_MIN_PER_CHAIN} per chain)")
    axes[1].set_ylabel("effective sample size")
    axes[1].set_ylim(bottom=0)
    if x is not None and tree.attrs.get("in_sample") == "train":
        xt = _x1d(tree, "constant_data")
        if xt is not None:
            for ax in axes:
                ax.axvspan(float(xt.min()), float(xt.max()), color="grey", alpha=0.12, lw=0,
                           label="training range" if ax is axes[1] else None)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Function-space convergence of the {what} ({nchain} chains)")
    return save_figure(fig, path)


def plot_rank(tree, path, items) -> Path | None:
    """Rank ECDF plots of a handful of parameters (ArviZ ``plot_rank``): well-mixed chains
    stay inside the envelope."""
    import arviz as az

    if not items or int(tree["posterior"].sizes.get("chain", 1)) < 2:
        return None
    sub = _subtree(tree, items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pc = az.plot_rank(sub, col_wrap=3, figure_kwargs={"figsize": (11, 3.2 * ((len(items) + 2) // 3) + 0.5)})
    fig = pc.viz["figure"].item()
    if fig.get_layout_engine() is None:
        fig.subplots_adjust(hspace=0.55, wspace=0.25)
    return _save_pc(pc, path, "Rank ECDF per chain (difference from uniform)")


def _pooled(post, items, n):
    """The chosen scalars with chains pooled and thinned evenly to ``n`` draws, as one chain —
    so fits with different numbers of chains and draws line up in one plot."""
    import xarray as xr

    from .metrics import scalar_dataset

    ds = scalar_dataset(post, items).stack(__s=("chain", "draw"))
    ds = ds.drop_vars([c for c in ("__s", "chain", "draw") if c in ds.coords])
    idx = np.linspace(0, ds.sizes["__s"] - 1, n).round().astype(int)
    ds = ds.isel(__s=idx).rename(__s="draw").expand_dims(chain=1).transpose("chain", "draw")
    return xr.DataTree.from_dict({"posterior": ds.assign_coords(chain=[0], draw=np.arange(n))})


def plot_forest(trees: dict, path, items) -> Path | None:
    """Forest plot of a handful of weights for one or several fits (ArviZ ``plot_forest``:
    mean, central 50% and 89% intervals; one colour per fit, chains pooled)."""
    import arviz as az

    if not items:
        return None
    posts = {name: _ds(t, "posterior") for name, t in trees.items()}
    posts = {name: p for name, p in posts.items() if all(n in p for n, _ in items)}
    if not posts:
        return None
    n = min(int(p.sizes["chain"] * p.sizes["draw"]) for p in posts.values())
    subs = {name: _pooled(p, items, n) for name, p in posts.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = subs if len(subs) > 1 else next(iter(subs.values()))
        height = 0.35 * len(items) * len(subs) + 1.5
        pc = az.plot_forest(data, combined=True, figure_kwargs={"figsize": (8, height)})
        if len(subs) > 1:
            try:
                pc.add_legend("model")
            except Exception as exc:  # noqa: BLE001 - a legend is a nicety: the plot goes out without one
                logging.getLogger(__name__).info("no legend on the weight-marginal plot (%s: %s)", type(exc).__name__, exc)
    return _save_pc(pc, path, "Weight marginals")
