"""Several fits of the same data compared in function space: :func:`compare`.

A network's weights are not identified across fits (hidden units permute and flip sign), so
fits are compared by what they predict, on the same held-out points:

* held-out metrics side by side, each with its standard error: mean negative log predictive
  density ``−(1/n) Σ lpd_i`` (SE ``sd(lpd)/√n``), RMSE (delta method:
  ``SE(RMSE) ≈ SE(MSE) / (2 RMSE)`` with ``SE(MSE) = sd(e²)/√n``), coverage of the central 50%
  and 90% intervals (binomial: ``√(c(1−c)/n)``), accuracy for classifiers (binomial), and the
  expected calibration error — in distribution (evaluation inputs inside the training range) and
  away from the data apart, for 1-D inputs;
* the held-out ELPD difference of every fit against the reference (the MCMC fit when there is
  one), ``Δ = Σ_i (lpd_i^fit − lpd_i^ref)`` with the paired standard error
  ``SE(Δ) = √n · sd(lpd^fit − lpd^ref)`` (Vehtari, Gelman & Gabry, "Practical Bayesian model
  evaluation using leave-one-out cross-validation and WAIC", Statistics and Computing 2017,
  eq. 24), and the PSIS-LOO ELPD comparison on the training data (ArviZ ``compare``);
* the epistemic (weight) variance of each fit relative to the reference's, near the data and
  away from it — where mean-field variational inference is known to be over-confident;
* wall time and cost per effective sample: MCMC's fit time over the smallest function-space
  bulk ESS; a variational fit's draws are independent draws of the approximation, so its cost
  is its fit time over the number of draws (an approximation's draws, not the posterior's).

The page leads with one verdict sentence per fit, e.g. "svi's held-out log predictive density
is 1.2 SE below nuts's …; its epistemic variance away from the data is 4% of nuts's".
``compare(trees, out_dir)`` writes ``index.html``, ``compare.json`` and ``bands.png``
(predictive mean and 90% bands overlaid with the training and held-out points, 1-D regression).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import html as H
from . import metrics as M
from . import plots as P
from .report import _DIAG_LABELS, _warnings_html, load_tree, spec_names

__all__ = ["compare", "Comparison", "heldout_metrics", "elpd_difference", "mean_and_se", "rmse_and_se",
           "proportion_and_se"]


# --------------------------------------------------------------------------- standard errors
def mean_and_se(values) -> tuple[float, float]:
    """Mean of ``values`` and its standard error ``sd(values, ddof=1) / √n`` (NaN SE for n < 2)."""
    v = np.asarray(values, dtype=float).ravel()
    return float(v.mean()), M._mean_se(v)


def rmse_and_se(y, mean) -> tuple[float, float]:
    """RMSE ``√(mean e²)`` of ``e = y − mean`` and its delta-method standard error
    ``SE(mean e²) / (2 RMSE)`` with ``SE(mean e²) = sd(e²)/√n``."""
    e2 = (np.asarray(y, dtype=float) - np.asarray(mean, dtype=float)) ** 2
    mse, se_mse = mean_and_se(e2)
    r = math.sqrt(mse)
    return r, (se_mse / (2 * r) if r > 0 else float("nan"))


def proportion_and_se(hits) -> tuple[float, float]:
    """A proportion ``c`` of ``n`` 0/1 outcomes and its binomial standard error ``√(c(1−c)/n)``."""
    h = np.asarray(hits, dtype=float).ravel()
    c = float(h.mean())
    return c, math.sqrt(c * (1 - c) / h.size)


def elpd_difference(lpd_a, lpd_b) -> tuple[float, float]:
    """``Σ_i (a_i − b_i)`` over paired pointwise log predictive densities and its standard error
    ``√n · sd(a − b)`` (Vehtari, Gelman & Gabry 2017, eq. 24)."""
    d = np.asarray(lpd_a, dtype=float).ravel() - np.asarray(lpd_b, dtype=float).ravel()
    return float(d.sum()), float(math.sqrt(d.size) * np.std(d, ddof=1)) if d.size > 1 else float("nan")


def heldout_metrics(tree, mask=None) -> dict[str, tuple[float, float]]:
    """Held-out metrics of ``tree``'s evaluation points (those where ``mask`` is True), each as
    ``(value, standard error)``: ``n``, ``nll``, and for regression ``rmse``, ``coverage_50``,
    ``coverage_90``, ``width_90``, ``epistemic_var``; for classifiers ``accuracy`` and ``ece``
    (no SE).  Empty without evaluation targets."""
    if not (M._has(tree, "predictions") and M._has(tree, "predictions_observed_data")):
        return {}
    pred = tree["predictions"].to_dataset()
    y = tree["predictions_observed_data"].to_dataset()["obs"].values
    m = np.ones(y.shape[0], bool) if mask is None else np.asarray(mask, bool)
    if not m.any():
        return {}
    out: dict[str, tuple[float, float]] = {"n": (float(m.sum()), float("nan"))}
    if "lpd" in pred:
        out["nll"] = mean_and_se(-pred["lpd"].values[m])
    if tree.attrs.get("task", "regression") == "regression":
        out["rmse"] = rmse_and_se(y[m], pred["mean"].values[m])
        q = pred["quantiles"]
        for prob, lo, hi in ((50, 0.25, 0.75), (90, 0.05, 0.95)):
            lo_v, hi_v = q.sel(quantile=lo).values[m], q.sel(quantile=hi).values[m]
            out[f"coverage_{prob}"] = proportion_and_se((y[m] >= lo_v) & (y[m] <= hi_v))
        out["width_90"] = mean_and_se(q.sel(quantile=0.95).values[m] - q.sel(quantile=0.05).values[m])
        out["epistemic_var"] = mean_and_se(pred["epistemic_var"].values[m])
    else:
        probs = pred["probs"].values[m]
        out["accuracy"] = proportion_and_se(np.argmax(probs, -1) == y[m].astype(int))
        out["ece"] = (M.expected_calibration_error(probs, y[m]), float("nan"))
    return out


_HELDOUT_LABELS = {
    "n": "points", "nll": "NLL (mean −log predictive density)", "rmse": "RMSE",
    "coverage_50": "coverage of central 50% intervals", "coverage_90": "coverage of central 90% intervals",
    "width_90": "mean width of 90% intervals", "epistemic_var": "mean epistemic variance",
    "accuracy": "accuracy", "ece": "expected calibration error",
}


# --------------------------------------------------------------------------- the comparison
@dataclass
class Comparison:
    """Result of :func:`compare`.

    ``verdict``: one sentence per fit against the ``reference`` fit; ``heldout``: held-out metrics
    with standard errors (rows: ``(region, metric)``, columns ``(fit, "value" | "se")``; regions
    ``"in distribution"``, ``"away from the data"`` or ``"all"``); ``elpd_heldout``: held-out ELPD
    difference of each fit against the reference with its SE (None when the fits were not
    evaluated on the same points); ``elpd``: the PSIS-LOO comparison table on the training data
    (None when the fits do not share it); ``cost``: wall time, effective samples and seconds per
    effective sample; ``epistemic_ratio``: fit → {"near", "away"} epistemic variance relative to
    the reference's; ``diagnostics``, ``warnings``, ``path`` (``index.html`` when written)."""

    reference: str
    verdict: list[str]
    heldout: pd.DataFrame
    elpd_heldout: pd.DataFrame | None
    elpd: pd.DataFrame | None
    cost: pd.DataFrame
    epistemic_ratio: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def metrics(self) -> pd.DataFrame:
        """The held-out values without their SEs, one column per fit."""
        return self.heldout.xs("value", axis=1, level=1)

    def __repr__(self) -> str:
        parts = ["Comparison (reference: " + self.reference + ")", *self.verdict,
                 "Held-out metrics (value, SE):\n" + self.heldout.to_string()]
        if self.elpd_heldout is not None:
            parts.append("Held-out ELPD difference against the reference:\n" + self.elpd_heldout.to_string())
        parts.append("Cost:\n" + self.cost.to_string())
        if self.elpd is not None:
            parts.append("ELPD (PSIS-LOO, training data):\n" + self.elpd.to_string())
        parts += self.warnings
        if self.path is not None:
            parts.append(f"report: {self.path}")
        return "\n\n".join(parts)


def _same_observations(trees: dict) -> str | None:
    """None if every tree holds the same in-sample observations, else why not."""
    ref_name, ref = None, None
    for name, t in trees.items():
        if "observed_data" not in t.children or "log_likelihood" not in t.children:
            return f"{name!r} has no log_likelihood/observed_data group"
        obs = t["observed_data"].to_dataset()["obs"].values
        if ref is None:
            ref_name, ref = name, obs
        elif obs.shape != ref.shape or not np.allclose(obs.astype(float), ref.astype(float), atol=1e-6):
            return f"{name!r} and {ref_name!r} were evaluated on different in-sample data"
    return None


def _same_evaluation(trees: dict) -> str | None:
    """None if every tree was evaluated on the same held-out inputs and targets, else why not."""
    ref_name, ref = None, None
    for name, t in trees.items():
        if not (M._has(t, "predictions") and M._has(t, "predictions_observed_data")):
            return f"{name!r} has no held-out predictions"
        y = t["predictions_observed_data"].to_dataset()["obs"].values.astype(float)
        x = M._x_1d(t, "predictions_constant_data")
        if ref is None:
            ref_name, ref = name, (x, y)
        elif y.shape != ref[1].shape or not np.allclose(y, ref[1], atol=1e-6) or (
                x is not None and ref[0] is not None and not np.allclose(x, ref[0], atol=1e-6)):
            return f"{name!r} and {ref_name!r} were evaluated on different held-out points"
    return None


def _reference(trees: dict, reference: str | None) -> str:
    if reference is not None:
        if reference not in trees:
            raise ValueError(f"reference={reference!r} is not one of the fits {sorted(trees)}")
        return reference
    mcmc = [n for n, t in trees.items() if t.attrs.get("method") in ("nuts", "hmc")]
    return mcmc[0] if mcmc else next(iter(trees))


def _cost(name, tree, diag) -> dict:
    """Wall time, effective draws and seconds per effective draw of one fit."""
    secs = float(tree.attrs.get("fit_seconds", np.nan))
    if tree.attrs.get("method") in ("nuts", "hmc"):
        ess = diag.values.get("f_ess_bulk_min", diag.values.get("ess_bulk_min", np.nan))
        kind = "smallest bulk ESS of the predictions" if "f_ess_bulk_min" in diag.values else "smallest bulk ESS"
    else:
        ess = float(int(tree.attrs.get("num_chains", 1)) * int(tree.attrs.get("num_draws", 0)))
        kind = "independent draws of the approximation"
    return {"fit time (s)": secs, "effective draws": float(ess), "effective draws are": kind,
            "seconds per effective draw": secs / ess if ess and np.isfinite(ess) else np.nan}


def _se_words(d: float, se: float) -> str:
    if not np.isfinite(se) or se <= 0:
        return f"differs by {d:+.3g}"
    z = d / se
    if abs(z) <= 1:
        return "is within 1 SE of"
    return f"is {abs(z):.1f} SE {'above' if z > 0 else 'below'}"


def compare(trees: dict, out_dir=None, *, reference: str | None = None, title: str | None = None) -> Comparison:
    """Compare fits given as ``{name: tree}`` (DataTrees, ``.nc`` files or run directories) in
    function space; see the module docstring for what is compared and the standard errors.

    ``reference`` names the fit the others are measured against (default: the first MCMC fit,
    else the first fit).  Returns a :class:`Comparison`; with ``out_dir`` also writes the HTML
    page, ``compare.json`` and the figure there (files written atomically, ``index.html`` last)."""
    import arviz as az

    if not isinstance(trees, dict) or len(trees) < 2:
        raise ValueError(f"compare needs a dict of at least two fits {{name: tree}}, got "
                         f"{type(trees).__name__} with {len(trees) if hasattr(trees, '__len__') else '?'} entries")
    trees = {str(k): load_tree(v) for k, v in trees.items()}
    ref = _reference(trees, reference)
    warn: list[str] = []

    # ---- PSIS-LOO ELPD on the shared training data
    loos = {name: M.loo(t) for name, t in trees.items()}
    diags = {name: M.diagnose(t, loo_result=loos[name]) for name, t in trees.items()}
    elpd = None
    why = _same_observations(trees)
    if why is None and all(v is not None for v in loos.values()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                elpd = az.compare(loos, round_to="none")
        except Exception as exc:  # noqa: BLE001 - the rest of the comparison still stands
            warn.append(f"ArviZ could not compare the PSIS-LOO ELPDs ({type(exc).__name__}: {exc}).")
    elif why is not None:
        warn.append(f"No PSIS-LOO comparison: {why}; PSIS-LOO values are only comparable on the same data.")
    warn += [f"{name}: {w}" for name, d in diags.items() for w in d.warnings]

    # ---- held-out metrics with SEs, in distribution and away from the data apart
    why_eval = _same_evaluation(trees)
    if why_eval is not None:
        warn.append(f"No paired held-out comparison: {why_eval}.")
    inside = M._in_training_range(trees[ref])
    regions = {"all": None} if inside is None or why_eval else {"in distribution": inside,
                                                                "away from the data": ~inside, "all": None}
    rows: dict = {}
    for region, mask in regions.items():
        per_fit = {n: heldout_metrics(t, mask) for n, t in trees.items()}
        keys = [k for k in _HELDOUT_LABELS if any(k in v for v in per_fit.values())]
        for k in keys:
            rows[(region, _HELDOUT_LABELS[k])] = {(n, s): per_fit[n].get(k, (np.nan, np.nan))[j]
                                                  for n in trees for j, s in enumerate(("value", "se"))}
    heldout = pd.DataFrame.from_dict(rows, orient="index")
    if len(heldout):
        heldout.index = pd.MultiIndex.from_tuples(heldout.index, names=["region", "metric"])
        heldout.columns = pd.MultiIndex.from_tuples(heldout.columns, names=["fit", ""])

    # ---- paired held-out ELPD differences and epistemic variance ratios against the reference
    elpd_heldout, ratios = None, {}
    if why_eval is None:
        lpd = {n: t["predictions"].to_dataset()["lpd"].values for n, t in trees.items()
               if "lpd" in t["predictions"].to_dataset()}
        rec = {}
        for n in trees:
            if n == ref or n not in lpd or ref not in lpd:
                continue
            for region, mask in regions.items():
                m = slice(None) if mask is None else mask
                d, se = elpd_difference(lpd[n][m], lpd[ref][m])
                rec[(n, region)] = {"elpd difference": d, "SE": se, "difference / SE": d / se if se > 0 else np.nan,
                                    "points": int(np.size(lpd[n][m]))}
        if rec:
            elpd_heldout = pd.DataFrame.from_dict(rec, orient="index")
            elpd_heldout.index = pd.MultiIndex.from_tuples(elpd_heldout.index, names=["fit", "region"])
        if trees[ref].attrs.get("task", "regression") == "regression":
            epi = {n: t["predictions"].to_dataset()["epistemic_var"].values for n, t in trees.items()}
            for n in trees:
                if n == ref:
                    continue
                r = {}
                for region, key in (("in distribution", "near"), ("away from the data", "away"), ("all", "all")):
                    if region in regions:
                        m = slice(None) if regions[region] is None else regions[region]
                        r[key] = float(np.mean(epi[n][m]) / max(np.mean(epi[ref][m]), 1e-300))
                ratios[n] = r

    cost = pd.DataFrame({n: _cost(n, t, diags[n]) for n, t in trees.items()})
    verdict = _verdict(trees, ref, elpd_heldout, ratios, cost, regions)
    result = Comparison(reference=ref, verdict=verdict, heldout=heldout, elpd_heldout=elpd_heldout, elpd=elpd,
                        cost=cost, epistemic_ratio=ratios, diagnostics={n: d.values for n, d in diags.items()},
                        warnings=warn)
    if out_dir is None:
        return result

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bands = P.plot_bands_overlay(trees, out / "bands.png")
    payload = {
        "reference": ref,
        "verdict": verdict,
        "fits": {n: {"method": t.attrs.get("method"), "dataset": t.attrs.get("dataset"),
                     "model_spec": spec_names(t)[0], "inference_spec": spec_names(t)[1],
                     "predictive": M.predictive_metrics(t), "diagnostics": diags[n].values,
                     "heldout": {f"{r} / {k}": {"value": heldout.loc[(r, k), (n, "value")],
                                                "se": heldout.loc[(r, k), (n, "se")]} for r, k in heldout.index},
                     "cost": {k: v for k, v in cost[n].items()}} for n, t in trees.items()},
        "elpd_heldout": None if elpd_heldout is None else {f"{n} / {r}": row for (n, r), row in
                                                           elpd_heldout.to_dict(orient="index").items()},
        "epistemic_ratio": ratios,
        "elpd": None if elpd is None else _df_records(elpd),
        "warnings": warn,
        "figures": {"bands": bands.name} if bands is not None else {},
    }
    H.write_text(out / "compare.json", M.to_json(payload))

    names = " vs ".join(trees)
    body = ["<h2>Verdict</h2>"] + [f'<div class="info">{H.esc(s)}</div>' for s in verdict]
    body.append("<h2>Fits</h2>")
    body.append(H.table([(n, str(t.attrs.get("method", "?")).upper(), spec_names(t)[0] or "–",
                          spec_names(t)[1] or "–", t.attrs.get("dataset", "–"), t.attrs.get("n_train", "–"),
                          t.attrs.get("n_eval", "–"), f"{t.attrs.get('num_chains')} × {t.attrs.get('num_draws')}")
                         for n, t in trees.items()],
                        header=("fit", "method", "model spec", "inference spec", "dataset", "training points",
                                "evaluation points", "chains × draws")))
    if bands is not None:
        body.append(H.figure(bands, "Predictive mean and central 90% interval of y of each fit; black: training "
                                    "data, red: held-out data."))
    body.append("<h2>Held-out predictive performance</h2>")
    body.append('<p class="small">Each value with its standard error (SE): NLL and widths as means over points, '
                'RMSE by the delta method, coverage and accuracy binomial. "In distribution": evaluation inputs '
                'inside the training range; "away from the data": outside it.</p>')
    body.append(heldout.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    if elpd_heldout is not None:
        body.append(f"<h2>Held-out ELPD difference against {H.esc(ref)}</h2>")
        body.append('<p class="small">Σ (lpd<sub>fit</sub> − lpd<sub>reference</sub>) over the held-out points '
                    '(positive: the fit predicts them better), SE = √n · sd of the pointwise differences.</p>')
        body.append(elpd_heldout.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    if ratios:
        body.append(f"<h2>Epistemic variance relative to {H.esc(ref)}</h2>")
        body.append(H.table([(n, r.get("near", np.nan), r.get("away", np.nan), r.get("all", np.nan))
                             for n, r in ratios.items()],
                            header=("fit", "near the data", "away from the data", "all points")))
    body.append("<h2>Cost</h2>")
    body.append(cost.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    body.append("<h2>Warnings</h2>")
    body.append(_warnings_html(warn, none="None."))
    body.append("<h2>Expected log predictive density (PSIS-LOO, training data)</h2>")
    if elpd is not None:
        body.append('<p class="small">Ranked by elpd (higher is better); elpd_diff and dse are relative to the '
                    'best fit; weight: stacking weights. A variational fit\'s PSIS-LOO treats its draws as '
                    'posterior draws; prefer the held-out difference above.</p>')
        body.append(elpd.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    else:
        body.append('<p class="note">Not available (see the warnings).</p>')
    diag_df = _diagnostics_table(diags, list(trees))
    if diag_df is not None:
        body.append("<h2>Convergence</h2>")
        body.append('<p class="small">MCMC: R-hat and ESS of the predictions at every evaluation input '
                    '(function space) and of the weights; SVI: Pareto k of the importance ratios p/q.</p>')
        body.append(diag_df.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    body.append('<h2>Files</h2><p><a href="compare.json">compare.json</a></p>')
    result.path = H.write_text(out / "index.html", H.page(title or f"pyrobnn comparison — {names}", "\n".join(body)))
    return result


def _verdict(trees, ref, elpd_heldout, ratios, cost, regions) -> list[str]:
    """One sentence per fit against the reference."""
    out = []
    region = "in distribution" if "in distribution" in regions else "all"
    for n in trees:
        if n == ref:
            continue
        parts = []
        if elpd_heldout is not None and (n, region) in elpd_heldout.index:
            row = elpd_heldout.loc[(n, region)]
            where = "in distribution" if region == "in distribution" else "on all held-out points"
            parts.append(f"{n}'s held-out log predictive density {where} {_se_words(row['elpd difference'], row['SE'])}"
                         f" {ref}'s (Δelpd {row['elpd difference']:+.3g} ± {row['SE']:.2g} over "
                         f"{int(row['points'])} points)")
        r = ratios.get(n, {})
        if "away" in r:
            parts.append(f"its epistemic variance is {100 * r['near']:.0f}% of {ref}'s near the data and "
                         f"{100 * r['away']:.0f}% away from it")
        elif "all" in r:
            parts.append(f"its epistemic variance is {100 * r['all']:.0f}% of {ref}'s")
        t_n, t_r = cost.loc["fit time (s)", n], cost.loc["fit time (s)", ref]
        if np.isfinite(t_n) and np.isfinite(t_r):
            parts.append(f"it took {t_n:.1f} s against {t_r:.1f} s")
        if parts:
            out.append("; ".join(parts) + ".")
    return out or [f"No fit could be compared with {ref} on the same held-out points."]


#: the diagnostics values the comparison shows side by side
_DIAG_KEYS = ("f_rhat_max", "f_ess_bulk_min", "f_ess_tail_min", "rhat_max", "ess_bulk_min", "divergences",
              "tree_depth_at_max", "vi_pareto_k", "pareto_k_max")


def _diagnostics_table(diags: dict, names: list) -> pd.DataFrame | None:
    """The convergence numbers of every fit, one column each (rows no fit has are left out)."""
    rows = {_DIAG_LABELS[key]: [diags[n].values.get(key, np.nan) for n in names] for key in _DIAG_KEYS
            if any(key in diags[n].values for n in names)}
    return pd.DataFrame(rows, index=names).T if rows else None


def _df_records(df: pd.DataFrame) -> dict:
    return {str(idx): {str(c): (v.item() if hasattr(v, "item") else v) for c, v in row.items()}
            for idx, row in df.iterrows()}
