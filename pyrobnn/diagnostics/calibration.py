"""Calibration of predictive distributions, as numbers and as figures.

Classification (top-label calibration, Guo, Pleiss, Sun & Weinberger, "On calibration of modern
neural networks", ICML 2017, section 2): the top-label confidences p̂_n = max_k p_nk are put
into B equal-width bins on [0, 1]; per bin B_b the accuracy acc(B_b) and the mean confidence
conf(B_b) give the reliability diagram, and

    ECE = Σ_b (|B_b| / N) |acc(B_b) − conf(B_b)|      (Naeini, Cooper & Hauskrecht 2015; Guo eq. 3)
    MCE = max_{b : |B_b| > 0} |acc(B_b) − conf(B_b)|  (Naeini et al. 2015; Guo eq. 5).

Proper scoring rules: the Brier score (Brier 1950), mean_n Σ_k (p_nk − 1[y_n = k])², and the
negative log-likelihood −(1/N) Σ_n log p_{n, y_n}.

Regression (Kuleshov, Fenner & Ermon, "Accurate uncertainties for deep learning using
calibrated regression", ICML 2018, eq. 9): with the predictive CDF F_n, a calibrated forecaster
has, for every level p, (1/N) Σ_n 1[F_n(y_n) ≤ p] = p.  :func:`regression_calibration_curve`
gives the observed frequency against p from predictive draws of y; :func:`interval_coverage`
gives the fraction of targets inside the central c-intervals [F⁻¹((1−c)/2), F⁻¹((1+c)/2)] for
several levels c (a calibrated model covers a fraction c).

:func:`calibration_section` gathers the numbers and figures for a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "reliability_diagram", "expected_calibration_error", "maximum_calibration_error", "brier_score",
    "classification_nll", "classification_calibration", "interval_coverage", "regression_calibration_curve",
    "regression_calibration", "calibration_section", "DEFAULT_LEVELS",
]

#: central-interval levels reported for regression
DEFAULT_LEVELS = (0.5, 0.8, 0.9, 0.95)


def _arr(a, name) -> np.ndarray:
    a = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)
    if a.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    return a


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _class_probs(probs, y) -> tuple[np.ndarray, np.ndarray]:
    """(probs as (N, K), labels as int (N,)), checked.  ``probs`` (N,) is P(y=1) of a binary
    task; (N, K) are class probabilities."""
    p = _arr(probs, "probs").astype(float)
    y = _arr(y, "y")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains non-finite values; expected probabilities in [0, 1]")
    if y.ndim != 1 or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"y must be a 1-D array of integer class labels, got shape {y.shape}")
    y = y.astype(int)
    if p.ndim == 1:
        p = np.stack([1 - p, p], -1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N,) or (N, K) with N = len(y) = {y.shape[0]}, got shape {p.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in 0..{p.shape[1] - 1}, got range {y.min()}..{y.max()}")
    return p, y


def _top_label(probs, y):
    """(confidence, correct) of the top-label prediction."""
    p, y = _class_probs(probs, y)
    return p.max(-1), (p.argmax(-1) == y).astype(float)


def reliability_diagram(probs, y, n_bins: int = 10) -> dict:
    """Data of the reliability diagram: the top-label confidences are put into ``n_bins``
    equal-width bins on [0, 1]; per bin the mean confidence, the accuracy and the count
    (Guo et al. 2017, section 2).  Empty bins have NaN confidence and accuracy."""
    n_bins = _check_bins(n_bins)
    conf, correct = _top_label(probs, y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 goes to bin 0
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"edges": edges.tolist(), "confidence": mean_conf.tolist(), "accuracy": acc.tolist(),
            "count": count.astype(int).tolist()}


def _gaps(d: dict) -> tuple[np.ndarray, np.ndarray]:
    count = np.asarray(d["count"], dtype=float)
    keep = count > 0
    gap = np.abs(np.asarray(d["accuracy"]) - np.asarray(d["confidence"]))
    return count[keep], gap[keep]


def expected_calibration_error(probs, y, n_bins: int = 10) -> float:
    """ECE = Σ_b (|B_b| / N) |acc(B_b) − conf(B_b)| over equal-width confidence bins of the
    top-label prediction (Naeini et al. 2015; Guo et al. 2017, eq. 3)."""
    count, gap = _gaps(reliability_diagram(probs, y, n_bins))
    return float(np.sum(count * gap) / count.sum())


def maximum_calibration_error(probs, y, n_bins: int = 10) -> float:
    """MCE = max over non-empty bins of |acc(B_b) − conf(B_b)| (Naeini et al. 2015; Guo et al.
    2017, eq. 5)."""
    return float(np.max(_gaps(reliability_diagram(probs, y, n_bins))[1]))


def brier_score(probs, y) -> float:
    """Brier score (Brier 1950).  Binary (``probs`` of shape (N,), P(y=1)):
    mean_n (p_n − y_n)²; K classes (``probs`` (N, K)): mean_n Σ_k (p_nk − 1[y_n = k])²."""
    raw = _arr(probs, "probs")
    p, y = _class_probs(probs, y)
    if raw.ndim == 1:
        return float(np.mean((p[:, 1] - y) ** 2))
    return float(np.mean(np.sum((p - np.eye(p.shape[1])[y]) ** 2, -1)))


def classification_nll(probs, y, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the labels, −(1/N) Σ_n log p_{n, y_n} (probabilities
    below ``eps`` count as ``eps``, so a confident mistake costs −log eps, not infinity)."""
    p, y = _class_probs(probs, y)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, None))))


def classification_calibration(probs, y, n_bins: int = 10) -> dict:
    """Every classification number of this module at once: ``accuracy``, ``nll``, ``brier``,
    ``ece``, ``mce`` and the ``reliability`` diagram data."""
    conf, correct = _top_label(probs, y)
    rel = reliability_diagram(probs, y, n_bins)
    count, gap = _gaps(rel)
    return {"n": int(len(conf)), "accuracy": float(correct.mean()), "nll": classification_nll(probs, y),
            "brier": brier_score(probs, y), "ece": float(np.sum(count * gap) / count.sum()),
            "mce": float(gap.max()), "reliability": rel}


# --------------------------------------------------------------------------- regression
def _y_draws(y, y_draws) -> tuple[np.ndarray, np.ndarray]:
    y = _arr(y, "y").astype(float)
    s = _arr(y_draws, "y_draws").astype(float)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (N,), got shape {y.shape}")
    if s.ndim != 2 or s.shape[1] != y.shape[0]:
        raise ValueError(f"y_draws must be (S, N) predictive draws of y with N = len(y) = {y.shape[0]}, "
                         f"got shape {s.shape}")
    return y, s


def _levels(levels, name="levels") -> np.ndarray:
    lv = np.atleast_1d(_arr(levels, name).astype(float))
    if lv.ndim != 1 or np.any((lv <= 0) | (lv >= 1)):
        raise ValueError(f"{name} must be probabilities in (0, 1), got {lv.tolist()}")
    return lv


def interval_coverage(y, y_draws, levels=DEFAULT_LEVELS) -> dict:
    """Coverage of central predictive intervals: for each level c the fraction of targets inside
    [q_n((1−c)/2), q_n((1+c)/2)], q_n the empirical quantiles of the predictive draws
    ``y_draws`` (S, N) of y_n, and the mean interval width.  Returns ``{"levels", "coverage",
    "width"}`` (lists over the levels)."""
    y, s = _y_draws(y, y_draws)
    lv = _levels(levels)
    lo = np.quantile(s, (1 - lv) / 2, axis=0)
    hi = np.quantile(s, (1 + lv) / 2, axis=0)
    inside = (y >= lo) & (y <= hi)
    return {"levels": lv.tolist(), "coverage": inside.mean(-1).tolist(), "width": (hi - lo).mean(-1).tolist()}


def regression_calibration_curve(y, y_draws, n_levels: int = 19) -> dict:
    """Calibration curve of a regression forecaster (Kuleshov et al. 2018, eq. 9): for levels
    p = 1/(n+1), …, n/(n+1), the observed frequency (1/N) Σ_n 1[F̂_n(y_n) ≤ p] with the
    empirical predictive CDF F̂_n(y) = (1/S) Σ_s 1[y_n^(s) ≤ y] of the draws ``y_draws`` (S, N).
    Also ``calibration_error`` = mean_p (observed − p)² (their eq. 10 with equal weights)."""
    y, s = _y_draws(y, y_draws)
    n_levels = _check_bins(n_levels)
    pit = (s <= y).mean(0)  # probability integral transform F̂_n(y_n)
    p = np.arange(1, n_levels + 1) / (n_levels + 1)
    obs = (pit[None, :] <= p[:, None]).mean(-1)
    return {"expected": p.tolist(), "observed": obs.tolist(), "calibration_error": float(np.mean((obs - p) ** 2))}


def regression_calibration(y, y_draws, levels=DEFAULT_LEVELS, n_levels: int = 19) -> dict:
    """``interval_coverage`` and ``regression_calibration_curve`` of the same draws, together."""
    return {"intervals": interval_coverage(y, y_draws, levels),
            "curve": regression_calibration_curve(y, y_draws, n_levels)}


# --------------------------------------------------------------------------- figures and report
def plot_regression_calibration(cal: dict, path, title: str = "Regression calibration") -> Path:
    """Observed against expected frequency (Kuleshov et al. 2018, figure 1) and the coverage of
    the central intervals against their nominal level, from :func:`regression_calibration`."""
    from .plots import plt, save_figure

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    c = cal["curve"]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot(c["expected"], c["observed"], "o-", ms=4, label="model")
    ax.set_xlabel("expected frequency p")
    ax.set_ylabel("observed frequency of F(y) ≤ p")
    ax.set_title(f"{title} (error {c['calibration_error']:.2g})")
    ax.legend(fontsize=8)
    iv = cal["intervals"]
    ax2.plot([0, 1], [0, 1], "k--", lw=1, label="nominal")
    ax2.plot(iv["levels"], iv["coverage"], "s-", ms=5, label="observed coverage")
    for lv, cov, w in zip(iv["levels"], iv["coverage"], iv["width"]):
        ax2.annotate(f"w={w:.2g}", (lv, cov), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax2.set_xlabel("central interval level")
    ax2.set_ylabel("fraction of targets inside")
    ax2.set_title("Coverage of central intervals (w: mean width)")
    ax2.legend(fontsize=8)
    for a in (ax, ax2):
        a.set_xlim(0, 1)
        a.set_ylim(0, 1.02)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def calibration_section(out_dir, y, *, probs=None, y_draws=None, n_bins: int = 10, levels=DEFAULT_LEVELS,
                        name: str = "calibration") -> dict:
    """Numbers and figures of calibration for a report: classification from ``probs`` ((N,) or
    (N, K)) — :func:`classification_calibration` and a reliability diagram with bin counts;
    regression from predictive draws ``y_draws`` (S, N) — :func:`regression_calibration` and its
    figure.  Figures are written atomically under ``out_dir``.  Returns ``{"metrics": ...,
    "figures": [paths]}``."""
    from .plots import plot_reliability

    if (probs is None) == (y_draws is None):
        raise ValueError("calibration_section needs exactly one of probs (classification) or y_draws (regression)")
    out_dir = Path(out_dir)
    if probs is not None:
        m = classification_calibration(probs, y, n_bins)
        fig = plot_reliability(m, out_dir / f"{name}_reliability.png",
                               title=f"Reliability diagram (MCE = {m['mce']:.3f})")
    else:
        m = regression_calibration(y, y_draws, levels)
        fig = plot_regression_calibration(m, out_dir / f"{name}_regression.png")
    return {"metrics": m, "figures": [fig]}
