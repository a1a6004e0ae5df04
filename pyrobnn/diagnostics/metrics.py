"""Predictive metrics and sampling diagnostics of an exported tree.

Predictive metrics that ArviZ does not provide are written here, each as a small function of
arrays: RMSE, the mean negative log predictive density, coverage of central intervals,
expected calibration error and the reliability diagram (Naeini, Cooper & Hauskrecht, AAAI
2015; Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks", ICML 2017,
eq. 3), the Brier score (Brier, Monthly Weather Review 1950), accuracy, and ROC-AUC
(scikit-learn).  :func:`predictive_metrics` applies them to a tree's ``predictions`` group.

Sampling diagnostics come from ArviZ: rank-normalised split R-hat, bulk and tail ESS and MCSE
(Vehtari, Gelman, Simpson, Carpenter & Bürkner, "Rank-normalization, folding, and
localization: an improved R-hat", Bayesian Analysis 2021), PSIS-LOO and its Pareto k
(Vehtari, Gelman & Gabry 2017; Vehtari et al., "Pareto smoothed importance sampling", JMLR
2024), LOO-PIT, and — for a variational posterior whose tree carries ``log_p`` and ``log_q`` —
PSIS-LOO with the approximate-posterior correction (Magnusson et al., ICML 2019).
:func:`diagnose` collects them and turns every problem into a sentence saying what to do.

Function space.  A network's weights are not identified: hidden units can be permuted, and
with odd activations flipped in sign, without changing the function, so chains that each
settle into one of these equivalent modes disagree on the weights while agreeing on every
prediction.  The quantity of interest is the function, so for MCMC :func:`diagnose` also
computes R-hat and ESS of the per-draw predictive mean E[y | x, w] (regression) or class
probabilities (classification) at every evaluation input
(:func:`function_space_convergence`), and judges convergence by them; weight-space problems
are then reported as notes when the function-space diagnostics pass.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .calibration import (  # noqa: F401 - re-exported: one implementation, in calibration
    _arr, _top_label, brier_score, expected_calibration_error, maximum_calibration_error, reliability_diagram,
)

log = logging.getLogger(__name__)

__all__ = [
    "rmse", "mean_nll", "coverage", "reliability_diagram", "expected_calibration_error", "brier_score",
    "accuracy", "roc_auc", "predictive_metrics", "loo", "vi_pareto_k", "function_space_convergence", "diagnose",
    "Diagnostics",
    "RHAT_MAX", "ESS_MIN", "PARETO_K_MAX",
]

#: R-hat above this is reported (Vehtari et al. 2021 recommend 1.01).
RHAT_MAX = 1.01
#: bulk/tail ESS per chain below this is reported (Vehtari et al. 2021: 100 per chain).
ESS_MIN_PER_CHAIN = 100
ESS_MIN = ESS_MIN_PER_CHAIN
#: Pareto k above this makes the PSIS estimate unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7
#: the fraction of NUTS transitions at the maximum tree depth above which it is a problem, not a caution.
TREE_DEPTH_AT_MAX_WARN = 0.5
#: E-BFMI below this suggests poor exploration of the energy (Betancourt 2016).
BFMI_MIN = 0.3


# --------------------------------------------------------------------------- array metrics
def rmse(y, mean) -> float:
    """Root mean squared error of the predictive mean: sqrt(mean_n (y_n − ŷ_n)²)."""
    y, mean = _arr(y, "y").astype(float), _arr(mean, "mean").astype(float)
    if y.shape != mean.shape:
        raise ValueError(f"y has shape {y.shape} but mean has shape {mean.shape}; expected equal")
    return float(np.sqrt(np.mean((y - mean) ** 2)))


def mean_nll(lpd) -> float:
    """Mean negative log predictive density, −(1/N) Σ_n log p(y_n | x_n, D), from the
    pointwise log predictive densities ``lpd`` (N,)."""
    return float(-np.mean(_arr(lpd, "lpd").astype(float)))


def coverage(y, lower, upper) -> float:
    """Fraction of targets inside their interval [lower, upper]."""
    y, lo, hi = (_arr(a, n).astype(float) for a, n in ((y, "y"), (lower, "lower"), (upper, "upper")))
    if not (y.shape == lo.shape == hi.shape):
        raise ValueError(f"y, lower and upper must have equal shapes, got {y.shape}, {lo.shape}, {hi.shape}")
    return float(np.mean((y >= lo) & (y <= hi)))


def accuracy(probs, y) -> float:
    """Fraction of correct top-label predictions."""
    return float(np.mean(_top_label(probs, y)[1]))


def roc_auc(probs, y) -> float:
    """Area under the ROC curve (scikit-learn): binary from P(y=1); K classes one-vs-rest,
    macro-averaged.  NaN when only one class is present in ``y``."""
    from sklearn.metrics import roc_auc_score

    p = _arr(probs, "probs").astype(float)
    y = _arr(y, "y").astype(int)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    present = np.unique(y)
    if p.ndim == 1:
        if present.size < 2:
            return float("nan")
        return float(roc_auc_score(y, p))
    if present.size < p.shape[1]:
        # one-vs-rest over the classes present; probabilities renormalised over them
        if present.size < 2:
            return float("nan")
        q = p[:, present] / p[:, present].sum(-1, keepdims=True)
        remap = {c: i for i, c in enumerate(present)}
        if present.size == 2:
            return float(roc_auc_score(np.vectorize(remap.get)(y), q[:, 1]))
        return float(roc_auc_score(np.vectorize(remap.get)(y), q, multi_class="ovr", average="macro"))
    return float(roc_auc_score(y, p, multi_class="ovr", average="macro"))


# --------------------------------------------------------------------------- from a tree
def _fit_info(tree) -> dict:
    try:
        return json.loads(tree.attrs.get("fit_info", "{}"))
    except (TypeError, ValueError):
        return {}


def _has(tree, group: str) -> bool:
    return group in tree.children


def _attr(tree, key, default=None):
    return tree.attrs.get(key, default)


def _x_1d(tree, group: str, original: bool = False) -> np.ndarray | None:
    """The 1-D inputs ``x`` of ``group`` (None unless one input dimension); ``original``:
    undo the data loader's standardisation recorded in the tree (``x_mean``, ``x_std``)."""
    if not _has(tree, group) or "x" not in tree[group].to_dataset():
        return None
    x = tree[group].to_dataset()["x"].values
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        return None
    return x * tree.attrs.get("x_std", 1.0) + tree.attrs.get("x_mean", 0.0) if original else x


def _in_training_range(tree) -> np.ndarray | None:
    """Mask of the evaluation inputs inside [min, max] of the training inputs (1-D inputs, the
    training data in the tree, points on both sides); else None."""
    if _attr(tree, "in_sample") != "train":
        return None
    xt, xe = _x_1d(tree, "constant_data"), _x_1d(tree, "predictions_constant_data")
    if xt is None or xe is None:
        return None
    inside = (xe >= xt.min()) & (xe <= xt.max())
    return inside if inside.any() and not inside.all() else None


def _mean_se(values) -> float:
    """Standard error of a mean of ``n`` values, ``sd(values, ddof=1) / sqrt(n)`` (NaN for n < 2)."""
    v = np.asarray(values, dtype=float)
    return float(np.std(v, ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def predictive_metrics(tree, n_bins: int = 10) -> dict:
    """Held-out predictive metrics from the tree's ``predictions`` group and
    ``predictions_observed_data``; empty if the tree has no evaluation targets.

    Regression: ``rmse``, ``nll``, ``coverage_50``, ``coverage_90`` (and ``rmse_original``,
    ``nll_original`` in the original target units when the tree records ``y_std``); for a 1-D
    input with the training inputs in the tree and evaluation points both inside and outside
    their range also, on the ``n_in_range`` points inside it (in distribution),
    ``coverage_90_in_range``, ``coverage_50_in_range``, ``nll_in_range`` (± ``nll_in_range_se``)
    and ``rmse_in_range``; outside it (away from the data) ``coverage_90_out_of_range``; and
    ``width_90_in_range``, ``width_90_out_of_range``, ``width_90_ratio`` (outside / inside: how
    much the 90% interval widens away from the data), ``mean_epistemic_var_in_range`` and
    ``mean_epistemic_var_out_of_range``.
    Classification: ``accuracy``, ``nll``, ``brier``, ``ece``, ``roc_auc``,
    ``mean_entropy``, ``mean_mutual_information`` and the ``reliability`` diagram data."""
    if not (_has(tree, "predictions") and _has(tree, "predictions_observed_data")):
        return {}
    pred = tree["predictions"].to_dataset()
    y = tree["predictions_observed_data"].to_dataset()["obs"].values
    task = _attr(tree, "task", "regression")
    out: dict = {"n": int(y.shape[0])}
    if "lpd" in pred:
        lpd = pred["lpd"].values.astype(float)
        out["nll"] = mean_nll(lpd)
        out["nll_se"] = _mean_se(lpd)
    if task == "regression":
        out["rmse"] = rmse(y, pred["mean"].values)
        q = pred["quantiles"]
        for prob, lo, hi in ((50, 0.25, 0.75), (90, 0.05, 0.95)):
            out[f"coverage_{prob}"] = coverage(y, q.sel(quantile=lo).values, q.sel(quantile=hi).values)
        inside = _in_training_range(tree)
        if inside is not None:
            lo, hi = q.sel(quantile=0.05).values, q.sel(quantile=0.95).values
            out["n_in_range"] = int(inside.sum())
            out["coverage_90_in_range"] = coverage(y[inside], lo[inside], hi[inside])
            out["coverage_50_in_range"] = coverage(y[inside], q.sel(quantile=0.25).values[inside],
                                                   q.sel(quantile=0.75).values[inside])
            out["coverage_90_out_of_range"] = coverage(y[~inside], lo[~inside], hi[~inside])
            if "lpd" in pred:
                out["nll_in_range"] = mean_nll(lpd[inside])
                out["nll_in_range_se"] = _mean_se(-lpd[inside])
            out["rmse_in_range"] = rmse(y[inside], pred["mean"].values[inside])
            out["width_90_in_range"] = float(np.mean(hi[inside] - lo[inside]))
            out["width_90_out_of_range"] = float(np.mean(hi[~inside] - lo[~inside]))
            out["width_90_ratio"] = out["width_90_out_of_range"] / out["width_90_in_range"]
            epi = pred["epistemic_var"].values
            out["mean_epistemic_var_in_range"] = float(np.mean(epi[inside]))
            out["mean_epistemic_var_out_of_range"] = float(np.mean(epi[~inside]))
        out["mean_aleatoric_var"] = float(pred["aleatoric_var"].mean())
        out["mean_epistemic_var"] = float(pred["epistemic_var"].mean())
        y_std = _attr(tree, "y_std")
        if y_std is not None:
            out["rmse_original"] = out["rmse"] * float(y_std)
            if "nll" in out:
                out["nll_original"] = out["nll"] + math.log(float(y_std))
    else:
        probs = pred["probs"].values
        p = probs[:, 1] if task == "binary" else probs
        out["accuracy"] = accuracy(probs, y)
        out["brier"] = brier_score(p, y)
        out["ece"] = expected_calibration_error(probs, y, n_bins)
        out["roc_auc"] = roc_auc(probs, y)
        out["mean_entropy"] = float(pred["entropy"].mean())
        out["mean_mutual_information"] = float(pred["mutual_information"].mean())
        out["reliability"] = reliability_diagram(probs, y, n_bins)
    return out


def vi_pareto_k(tree) -> float | None:
    """Pareto k̂ of the importance ratios p(w, D) / q(w) over the guide's draws — how far the
    variational approximation is from the posterior (Yao, Vehtari, Simpson & Gelman, "Yes,
    but did it work?: Evaluating variational inference", ICML 2018): k̂ < 0.5 good, up to
    0.7 usable, above 0.7 the importance-sampling corrections are unreliable.  None when the
    tree has no ``log_p``/``log_q``."""
    if not _has(tree, "sample_stats"):
        return None
    ss = tree["sample_stats"].to_dataset()
    if "log_p" not in ss or "log_q" not in ss:
        return None
    import arviz_stats  # noqa: F401 - registers the .azstats accessor

    log_ratio = (ss["log_p"] - ss["log_q"]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # ArviZ's psislw smooths the weights exp(−input) (its input is usually −log-likelihood)
        _, k = (-log_ratio).azstats.psislw(dim=["chain", "draw"])
    k = float(k)
    return k if np.isfinite(k) else None


def loo(tree, pointwise: bool = True):
    """PSIS-LOO of the tree's ``log_likelihood`` group with ArviZ (None without one).

    For a variational posterior whose ``sample_stats`` holds ``log_p`` and ``log_q`` and whose
    importance ratios are usable (:func:`vi_pareto_k` ≤ 0.7), the estimate is corrected for
    sampling from q instead of the posterior (``arviz.loo_approximate_posterior``, Magnusson
    et al. 2019); otherwise it is plain ``arviz.loo``, which treats the guide's draws as
    posterior draws."""
    import arviz as az

    if not _has(tree, "log_likelihood"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _attr(tree, "method") == "svi":
            k = vi_pareto_k(tree)
            if k is not None and k <= PARETO_K_MAX:
                ss = tree["sample_stats"].to_dataset()
                try:
                    return az.loo_approximate_posterior(tree, ss["log_p"], ss["log_q"], pointwise=pointwise)
                except Exception as exc:  # noqa: BLE001 - plain PSIS-LOO instead; diagnose() reports which kind it got
                    log.info("the importance-corrected LOO failed (%s: %s); using plain PSIS-LOO",
                             type(exc).__name__, exc)
        reff = _likelihood_reff(tree)
        try:
            return az.loo(tree, pointwise=pointwise, reff=reff)
        except ValueError as exc:
            if not _psis_degenerate(exc):
                raise
            reff = reff if reff is not None else _likelihood_reff(tree, always=True)
            log_weights, k = _psis_weights_degenerate(tree, reff)
            return az.loo(tree, pointwise=pointwise, reff=reff, log_weights=log_weights, pareto_k=k)


def _psis_degenerate(exc: ValueError) -> bool:
    """Whether ArviZ's psislw refused an observation because its largest importance ratios are
    all equal (or too few to fit a tail)."""
    return any(m in str(exc) for m in ("All tail values are the same", "n_draws_tail must be at least 5"))


def _psis_weights_degenerate(tree, reff: float):
    """PSIS log weights and Pareto k̂ for a log-likelihood where some observation defeats
    ArviZ's ``psislw`` (its tail of importance ratios r_s = 1/p(y_i | θ_s) is flat).

    The usual case is a saturated likelihood: a class probability of exactly 1 in float32 in
    every draw, so log p(y_i | θ_s) is the same for all s.  The ratios are then constant, the
    normalised weights uniform, and the leave-one-out density is exactly that value: k̂ = 0.
    An observation whose tail is flat without being constant gets the raw normalised ratios
    and k̂ = ∞ (unreliable, as ArviZ's moment matching marks it).  Every other observation
    gets ArviZ's smoothed weights and k̂, computed together."""
    from scipy.special import logsumexp

    ds = tree["log_likelihood"].to_dataset()
    if len(ds.data_vars) != 1:
        raise ValueError(f"log_likelihood has {len(ds.data_vars)} variables; PSIS-LOO needs one")
    ll = next(iter(ds.data_vars.values()))
    sample = ("chain", "draw")
    obs = [d for d in ll.dims if d not in sample]
    flat = ll.stack(__obs__=obs).transpose(*sample, "__obs__")
    v = flat.values.astype(float)
    raw = -v - logsumexp(-v, axis=(0, 1), keepdims=True)  # normalised log ratios
    lw = raw.copy()
    k = np.where(np.ptp(v.reshape(-1, v.shape[-1]), axis=0) == 0, 0.0, np.inf)
    todo = np.flatnonzero(np.isinf(k))
    try:
        w, kk = flat.isel(__obs__=todo).azstats.psislw(r_eff=reff, dim=list(sample))
        lw[..., todo], k[todo] = w.transpose(*sample, "__obs__").values, kk.values
    except ValueError as exc:
        if not _psis_degenerate(exc):
            raise
        for i in todo:  # one at a time: the flat-tailed ones keep the raw ratios and k̂ = ∞
            try:
                w, kk = flat.isel(__obs__=i).azstats.psislw(r_eff=reff, dim=list(sample))
            except ValueError as exc_i:
                if not _psis_degenerate(exc_i):
                    raise
                continue
            lw[..., i], k[i] = w.transpose(*sample).values, float(kk)
    log_weights = flat.copy(data=lw).unstack("__obs__").transpose(*ll.dims)
    pareto_k = flat.isel(chain=0, draw=0, drop=True).copy(data=k).unstack("__obs__").transpose(*obs)
    return log_weights, pareto_k


def _likelihood_reff(tree, always: bool = False) -> float | None:
    """ArviZ takes the relative efficiency of the draws from the posterior's variables; a tree
    exported without its weights has none, so it is taken from exp(log-likelihood) instead,
    averaged over observations (as ``relative_eff`` of the R package loo).  None otherwise,
    unless ``always``."""
    import arviz_stats as azs

    if not always and (not _has(tree, "posterior") or tree["posterior"].data_vars):
        return None
    ll = np.concatenate([v.values.reshape(*v.shape[:2], -1)
                         for v in tree["log_likelihood"].to_dataset().data_vars.values()], -1)
    lik = np.exp(ll - ll.max(axis=(0, 1), keepdims=True))
    ess = azs.ess(lik, chain_axis=0, draw_axis=1, method="mean")
    return float(max(np.nanmean(ess) / (ll.shape[0] * ll.shape[1]), 1e-3))


# --------------------------------------------------------------------------- diagnostics
@dataclass
class Diagnostics:
    """Summary numbers (``values``) and sentences (``warnings``: a problem with the fit, to act
    on before using it; ``cautions``: a limit of the approximation or of an estimate, to keep in
    mind; ``notes``: context)."""

    values: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cautions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: object = None  # pandas DataFrame of az.summary for the worst parameters
    #: MCMC: the per-weight statistic the worst weights are ranked by (R-hat, or bulk ESS with
    #: one chain) and whether larger is worse; reused by the report's trace and rank plots
    ranking: object = None
    ranking_largest: bool = True
    #: MCMC: :func:`function_space_convergence` of the tree (None without per-draw predictions)
    function_space: object = None


def _fmt_index(coords: dict) -> str:
    vals = [str(int(v)) if isinstance(v, (int, np.integer)) else str(v) for v in coords.values()]
    return f"[{', '.join(vals)}]" if vals else ""


def _flat(ds):
    """Every scalar of every variable of a Dataset of per-parameter statistics, as
    (names, variable index per scalar, flat index within it, values) — one array pass instead
    of one Python step per weight."""
    names = list(ds.data_vars)
    vals = [np.asarray(ds[n].values, dtype=float).ravel() for n in names]
    var = np.concatenate([np.full(v.size, i) for i, v in enumerate(vals)]) if vals else np.zeros(0, int)
    flat = np.concatenate([np.arange(v.size) for v in vals]) if vals else np.zeros(0, int)
    values = np.concatenate(vals) if vals else np.zeros(0)
    return names, var, flat, values


def _item(ds, names, var, flat, k):
    name = names[var[k]]
    da = ds[name]
    coords = dict(zip(da.dims, np.unravel_index(int(flat[k]), da.shape))) if da.ndim else {}
    return name, coords


def _ranked(ds, n: int | None, largest: bool) -> list[tuple[str, dict, float]]:
    """The ``n`` finite scalars with the largest (or smallest) value, (name, coords, value),
    ties in the order of the Dataset."""
    names, var, flat, values = _flat(ds)
    ok = np.flatnonzero(np.isfinite(values))
    order = ok[np.argsort(-values[ok] if largest else values[ok], kind="stable")][:n]
    return [(*_item(ds, names, var, flat, k), float(values[k])) for k in order]


def _extreme(ds, largest: bool):
    top = _ranked(ds, 1, largest)
    return top[0] if top else None


def _count(ds, pred) -> int:
    values = _flat(ds)[3]
    values = values[np.isfinite(values)]
    return int(np.count_nonzero(pred(values)))


def function_space_convergence(tree):
    """R-hat, bulk ESS and tail ESS of the per-draw function values in ``predictions``
    (``mu``: E[y | x, w], dims ``pred_id``; or ``prob``: p(y = k | x, w), dims ``pred_id,
    class``) as an ``xarray.Dataset`` with variables ``rhat`` (None with one chain),
    ``ess_bulk``, ``ess_tail``; None when the tree has no such draws."""
    import arviz as az
    import xarray as xr

    if not _has(tree, "predictions"):
        return None
    pred = tree["predictions"].to_dataset()
    name = "mu" if "mu" in pred else "prob" if "prob" in pred else None
    if name is None:
        return None
    ds = pred[[name]]
    nchain = int(ds.sizes.get("chain", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"ess_bulk": az.ess(ds, method="bulk")[name], "ess_tail": az.ess(ds, method="tail")[name]}
        if nchain > 1:
            out["rhat"] = az.rhat(ds)[name]
    res = xr.Dataset(out)
    res.attrs["variable"] = name
    return res


def _function_space(d: Diagnostics, tree, nchain: int) -> bool | None:
    """Adds the function-space R-hat/ESS to ``d``; True when they pass, None when unavailable."""
    fs = d.function_space = function_space_convergence(tree)
    if fs is None:
        return None
    name = fs.attrs["variable"]
    what = "predictive mean" if name == "mu" else "class probability"
    ok = True

    def where(da, idx):
        coords = dict(zip(da.dims, np.unravel_index(int(idx), da.shape)))
        label = f"{name}{_fmt_index(coords)}"
        x = _input_at(tree, int(coords["pred_id"]))
        return label + (f" (x = {x:.4g})" if x is not None else "")

    if "rhat" in fs:
        r = fs["rhat"].values
        if np.isfinite(r).any():
            i = int(np.nanargmax(r))
            d.values["f_rhat_max"] = float(r.flat[i])
            d.values["f_rhat_max_at"] = where(fs["rhat"], i)
            n_bad = int(np.sum(r > RHAT_MAX))
            d.values["f_rhat_num_above"] = n_bad
            if r.flat[i] > RHAT_MAX:
                ok = False
                d.warnings.append(
                    f"Function-space R-hat of the {what} is {r.flat[i]:.3g} at {where(fs['rhat'], i)}, above "
                    f"{RHAT_MAX} ({n_bad} of {r.size} evaluation values): the chains disagree on the predictions; "
                    f"run longer chains (more warmup and draws), raise max_tree_depth, or use a tighter prior.")
    ess_min = ESS_MIN_PER_CHAIN * nchain
    for kind in ("bulk", "tail"):
        e = fs[f"ess_{kind}"].values
        if not np.isfinite(e).any():
            continue
        i = int(np.nanargmin(e))
        d.values[f"f_ess_{kind}_min"] = float(e.flat[i])
        d.values[f"f_ess_{kind}_min_at"] = where(fs[f"ess_{kind}"], i)
        if e.flat[i] < ess_min:
            ok = False
            d.warnings.append(
                f"Function-space {kind} ESS of the {what} is {e.flat[i]:.0f} at {where(fs[f'ess_{kind}'], i)}, "
                f"below {ess_min} ({ESS_MIN_PER_CHAIN} per chain): the predictive "
                f"{'mean is' if kind == 'bulk' else 'intervals are'} imprecise; draw more samples.")
    return ok and "rhat" in fs


def _input_at(tree, i: int) -> float | None:
    """The evaluation input number ``i`` in original units when inputs are 1-D, else None."""
    x = _x_1d(tree, "predictions_constant_data", original=True)
    return None if x is None or i >= x.shape[0] else float(x[i])


#: values of (chain, draw, weights) one per-weight statistic reads at once
SLAB_VALUES = 10_000_000


def per_weight(post, stat, **kwargs):
    """``stat`` (e.g. ``arviz.rhat``) of every variable of the Dataset ``post``, computed on
    slabs of at most :data:`SLAB_VALUES` values along each variable's first weight dimension,
    so a large posterior — possibly opened lazily from a file — is read a slab at a time; the
    statistics are per scalar, so the result equals one call on the whole Dataset."""
    import xarray as xr

    out = {}
    for name, da in post.data_vars.items():
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if not extra or da.size <= SLAB_VALUES:
            out[name] = stat(da.load() if not extra else da, **kwargs)
            continue
        dim = extra[0]
        step = max(1, SLAB_VALUES * da.sizes[dim] // da.size)
        parts = [stat(da.isel({dim: slice(i, i + step)}).load(), **kwargs) for i in range(0, da.sizes[dim], step)]
        out[name] = xr.concat(parts, dim=dim)
    return xr.Dataset(out)


def _weight_space(d: Diagnostics, tree, nchain: int) -> list[str]:
    """R-hat, bulk/tail ESS and MCSE of the weights into ``d``; returns the sentences about
    weight-space problems (warnings or a note, as :func:`diagnose` decides) and sets
    ``d.ranking`` and ``d.table`` (the worst weights)."""
    import arviz as az

    weight_msgs: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = tree["posterior"].to_dataset()
        rhat = per_weight(post, az.rhat) if nchain > 1 else None
        ess_bulk = per_weight(post, az.ess, method="bulk")
        ess_tail = per_weight(post, az.ess, method="tail")
        mcse = per_weight(post, az.mcse, method="mean")
    if rhat is not None:
        worst = _extreme(rhat, largest=True)
        n_bad = _count(rhat, lambda v: v > RHAT_MAX)
        if worst is not None:
            d.values["rhat_max"] = worst[2]
            d.values["rhat_max_at"] = worst[0] + _fmt_index(worst[1])
            d.values["rhat_num_above"] = n_bad
            if worst[2] > RHAT_MAX:
                more = f" ({n_bad} parameters are above {RHAT_MAX})" if n_bad > 1 else ""
                weight_msgs.append(
                    f"R-hat of {worst[0]}{_fmt_index(worst[1])} is {worst[2]:.3g}, above {RHAT_MAX}{more}: "
                    f"the chains disagree; run longer chains (more warmup and draws) or reparameterise.")
    else:
        d.notes.append("R-hat needs at least two chains; this run has one.")
    ess_min = ESS_MIN_PER_CHAIN * nchain
    for kind, ds in (("bulk", ess_bulk), ("tail", ess_tail)):
        worst = _extreme(ds, largest=False)
        if worst is None:
            continue
        d.values[f"ess_{kind}_min"] = worst[2]
        d.values[f"ess_{kind}_min_at"] = worst[0] + _fmt_index(worst[1])
        if worst[2] < ess_min:
            n_bad = _count(ds, lambda v: v < ess_min)
            weight_msgs.append(
                f"{kind.capitalize()} ESS of {worst[0]}{_fmt_index(worst[1])} is {worst[2]:.0f}, below "
                f"{ess_min} ({ESS_MIN_PER_CHAIN} per chain; {n_bad} parameters in all): "
                f"{'posterior means' if kind == 'bulk' else 'interval ends'} are imprecise; draw more samples.")
    worst = _extreme(mcse, largest=True)
    if worst is not None:
        d.values["mcse_mean_max"] = worst[2]
        d.values["mcse_mean_max_at"] = worst[0] + _fmt_index(worst[1])
    d.ranking, d.ranking_largest = (rhat, True) if rhat is not None else (ess_bulk, False)
    try:
        d.table = _worst_table(tree, d.ranking, largest=d.ranking_largest)
    except Exception:  # noqa: BLE001
        d.table = None
    return weight_msgs


def diagnose(tree, loo_result=None) -> Diagnostics:
    """Convergence and reliability diagnostics of a tree, with warnings as sentences.

    MCMC (more than one chain): R-hat, bulk and tail ESS, MCSE, divergences, E-BFMI, of the
    weights and — where the tree has per-draw predictions — in function space (see the module
    docstring; weight-space problems become notes when the function-space checks pass).
    Any posterior with a log-likelihood: PSIS-LOO with Pareto k (``loo_result`` reuses a
    computed one).  SVI: the ELBO trend of the last epochs."""
    import arviz as az

    d = Diagnostics()
    method = _attr(tree, "method", "")
    post = tree["posterior"].to_dataset() if _has(tree, "posterior") else None
    nchain = int(post.sizes.get("chain", 1)) if post is not None else 0
    ndraw = int(post.sizes.get("draw", 0)) if post is not None else 0
    has_vars = post is not None and len(post.data_vars) > 0

    if method in ("nuts", "hmc") and post is not None:
        weight_msgs = _weight_space(d, tree, nchain) if has_vars else []
        f_ok = _function_space(d, tree, nchain)
        if weight_msgs and f_ok:
            v = d.values
            facts = []
            if v.get("rhat_max", 0) > RHAT_MAX:
                facts.append(f"largest R-hat {v['rhat_max']:.3g} at {v['rhat_max_at']}, "
                             f"{v['rhat_num_above']} parameters above {RHAT_MAX}")
            for kind in ("bulk", "tail"):
                if v.get(f"ess_{kind}_min", math.inf) < ESS_MIN_PER_CHAIN * nchain:
                    facts.append(f"smallest {kind} ESS {v[f'ess_{kind}_min']:.0f} at {v[f'ess_{kind}_min_at']}")
            d.notes.append(
                f"The weights did not converge ({'; '.join(facts)}), but the predictions did: the function-space "
                f"R-hat and ESS pass at every evaluation input. A network's weights are not identified — hidden "
                f"units can be permuted, or flip sign, without changing the function — so chains can sit in "
                f"equivalent modes, or drift slowly along directions that leave the function unchanged, while "
                f"the predictions are well estimated; judge this fit by the function-space diagnostics.")
        else:
            d.warnings.extend(weight_msgs)
        ss = tree["sample_stats"].to_dataset() if _has(tree, "sample_stats") else {}
        if "diverging" in ss:
            div = ss["diverging"].values.astype(bool)
            n_div = int(div.sum())
            d.values["divergences"] = n_div
            if n_div:
                per_chain = div.reshape(div.shape[0], -1).sum(1).tolist()
                d.warnings.append(
                    f"{n_div} of {div.size} transitions diverged (per chain {per_chain}): the sampler missed parts "
                    f"of the posterior; raise target_accept (e.g. to 0.95) or use a tighter prior.")
        max_depth = _fit_info(tree).get("max_tree_depth")
        if "tree_depth" in ss and max_depth:
            at_max = int((ss["tree_depth"].values >= int(max_depth)).sum())
            d.values["tree_depth_at_max"] = at_max
            if at_max:
                # A trajectory cut at the depth limit is still a valid MCMC transition (NUTS with a
                # depth cap stays reversible), so a few of them cost efficiency, which the ESS above
                # already shows; when most transitions hit it the sampler runs fixed-length
                # trajectories and the limit, not the posterior, sets how far it moves.
                n_tr = ss["tree_depth"].size
                msg = (f"{at_max} of {n_tr} transitions ({100 * at_max / n_tr:.0f}%) stopped at the maximum tree "
                       f"depth {int(max_depth)}: their trajectories were cut short, which costs efficiency (the "
                       f"ESS counts it) but not correctness; raise max_tree_depth for longer trajectories (each "
                       f"level doubles their cost).")
                (d.warnings if at_max > TREE_DEPTH_AT_MAX_WARN * n_tr else d.cautions).append(msg)
        if "energy" in ss:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    bfmi = np.atleast_1d(az.bfmi(tree)["energy"].values.astype(float))
                d.values["bfmi_min"] = float(np.nanmin(bfmi))
                low = [i for i, b in enumerate(bfmi.ravel()) if b < BFMI_MIN]
                if low:
                    d.warnings.append(
                        f"E-BFMI of chain{'s' if len(low) > 1 else ''} {', '.join(map(str, low))} is "
                        f"{', '.join(f'{bfmi.ravel()[i]:.2f}' for i in low)}, below {BFMI_MIN}: the momentum "
                        f"resampling explores the energy poorly; run longer warmup or reparameterise.")
            except Exception as exc:  # noqa: BLE001 - a missing statistic is a note, not an error
                d.notes.append(f"E-BFMI could not be computed ({type(exc).__name__}).")
        if "acceptance_rate" in ss:
            d.values["acceptance_rate_mean"] = float(ss["acceptance_rate"].mean())
        if "step_size" in ss:
            d.values["step_size_mean"] = float(ss["step_size"].mean())
    elif method == "svi":
        k_vi = vi_pareto_k(tree)
        if k_vi is not None:
            d.values["vi_pareto_k"] = k_vi
            if k_vi > PARETO_K_MAX:
                d.cautions.append(
                    f"Pareto k of the importance ratios p/q is {k_vi:.2f}, above {PARETO_K_MAX}: the variational "
                    f"guide is far from the exact posterior (Yao et al. 2018; usual for a mean-field guide of a "
                    f"neural network), so importance sampling cannot correct it and its uncertainty where the "
                    f"held-out data do not reach may be misestimated. Trust the held-out checks above; to see "
                    f"how far off it is, fit NUTS and run pyrobnn compare, or try a richer guide.")
        d.notes.append(f"Draws are {ndraw} independent samples from the variational guide: R-hat and ESS do not "
                       f"apply; the guide's fit is judged by the ELBO and by PSIS-LOO's Pareto k.")
        if _has(tree, "svi"):
            h = tree["svi"].to_dataset()
            if "loss" in h and h.sizes.get("epoch", 0) >= 1:  # the last epoch's mean minibatch ELBO
                d.values["final_elbo"] = -float(h["loss"].values[-1])
            if "loss" in h and h.sizes.get("epoch", 0) >= 10:
                loss = h["loss"].values.astype(float)
                k = max(5, len(loss) // 10)
                last, prev = loss[-k:], loss[-2 * k:-k]
                change = (prev.mean() - last.mean()) / max(abs(prev.mean()), 1e-12)
                noise = last.std(ddof=1) / math.sqrt(k) if k > 1 else 0.0
                d.values["elbo_rel_change_last_10pct"] = float(change)
                falling = bool(prev.mean() - last.mean() > 3 * max(noise, 1e-12) and change > 0.01)
                d.values["elbo_still_falling"] = falling
                if falling:
                    d.warnings.append(
                        f"The negative ELBO was still falling by {100 * change:.1f}% over the last {k} epochs "
                        f"(more than three standard errors): training has not converged; run more epochs.")
            if "loss" in h and not np.all(np.isfinite(h["loss"].values)):
                d.warnings.append("The ELBO history has non-finite values: lower the learning rate.")

    # PSIS-LOO
    if _has(tree, "log_likelihood"):
        res = loo_result if loo_result is not None else loo(tree)
        if res is not None:
            d.values["elpd_loo"] = float(res.elpd)
            d.values["elpd_loo_se"] = float(res.se)
            d.values["p_loo"] = float(res.p)
            d.values["loo_kind"] = "approximate-posterior corrected" if getattr(res, "approx_posterior", False) \
                else "plain"
            k = getattr(res, "pareto_k", None)
            if k is not None:
                k = np.asarray(k).ravel()
                n_high = int(np.sum(k > PARETO_K_MAX))
                d.values["pareto_k_max"] = float(np.nanmax(k)) if k.size else float("nan")
                d.values["pareto_k_num_above_0.7"] = n_high
                if n_high:
                    worst = int(np.nanargmax(k))
                    them = "them" if n_high > 1 else "it"
                    d.cautions.append(
                        f"Pareto k is above {PARETO_K_MAX} for {n_high} of {k.size} observations (largest "
                        f"{k[worst]:.2f}, at obs_id {worst}): the PSIS-LOO estimate is unreliable for {them}; "
                        f"{'the guide is far from the posterior there, or ' if method == 'svi' else ''}"
                        f"{'these points are' if n_high > 1 else 'this point is'} highly influential — use K-fold "
                        f"cross-validation or a more robust model.")
            if method == "svi" and not getattr(res, "approx_posterior", False):
                why = ("the tree has no log_p/log_q (export with the training data to get them)"
                       if d.values.get("vi_pareto_k") is None else
                       "the importance ratios p/q are too heavy-tailed for the approximate-posterior correction")
                d.notes.append(f"PSIS-LOO treated the guide's draws as posterior draws: {why}.")
        in_sample = _attr(tree, "in_sample")
        if in_sample == "evaluation":
            d.notes.append("The log_likelihood group holds the evaluation data, not the training data: PSIS-LOO "
                           "then does not estimate leave-one-out accuracy; use the held-out NLL instead.")
    return d


def _worst_table(tree, stat_ds, largest: bool, n: int = 10):
    """az.summary for the ``n`` scalar parameters with the largest R-hat (or smallest ESS)."""
    import arviz as az

    items = _ranked(stat_ds, n, largest)
    if not items:
        return None
    ds = scalar_dataset(tree["posterior"].to_dataset(), [(name, coords) for name, coords, _ in items])
    import xarray as xr

    sub = xr.DataTree.from_dict({"posterior": ds})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.summary(sub, round_to=4)


def scalar_dataset(post, items):
    """A Dataset with one scalar-per-draw variable per (name, coords) pair, named
    ``name[i, j]`` — used to plot or tabulate a handful of weights of a large network."""
    import xarray as xr

    out = {}
    for name, coords in items:
        out[f"{name}{_fmt_index(coords)}"] = post[name].isel(coords) if coords else post[name]
    return xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in ("chain", "draw")]) for k, v in out.items()})


def to_json(obj) -> str:
    """JSON text with NaN/inf written as null."""
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (float, np.floating)):
            return float(o) if np.isfinite(o) else None
        if isinstance(o, np.ndarray):
            return clean(o.tolist())
        return o

    return json.dumps(clean(obj), indent=2, allow_nan=False)
