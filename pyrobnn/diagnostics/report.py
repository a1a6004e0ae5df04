"""One self-contained HTML report of a fit: :func:`report`.

``report(tree, out_dir)`` writes into ``out_dir``:

* ``index.html`` — fit summary, warnings as sentences, held-out metrics, diagnostics, the
  figures below and the specs;
* ``predictive_band.png`` (regression with 1-D input), ``uncertainty.png``, ``ppc.png``,
  ``loo_pit.png``, ``pareto_k.png``, ``calibration.png`` (classification), ``trace.png``,
  ``rank.png`` and ``function_convergence.png`` (MCMC), ``svi_history.png`` (SVI) — each
  only when it applies;
* ``metrics.json`` — every number of the page, the warnings and the figure names;
* ``posterior.nc`` — the tree itself (reopens with ``xarray.open_datatree`` and ArviZ).

Every file is written under a temporary name and renamed into place, ``index.html`` last.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from . import html as H
from . import metrics as M
from . import plots as P
from .export import load_datatree, save_datatree

__all__ = ["report", "load_tree", "verdict", "Verdict", "spec_names", "REPORT_FILES", "COVERAGE_90_RANGE"]

#: every file a report may write (figures only when they apply).
REPORT_FILES = ("index.html", "metrics.json", "posterior.nc", "predictive_band.png", "uncertainty.png", "ppc.png",
                "loo_pit.png", "pareto_k.png", "calibration.png", "trace.png", "rank.png",
                "function_convergence.png", "svi_history.png")

_METRIC_LABELS = {
    "n": "evaluation points",
    "rmse": "RMSE",
    "rmse_original": "RMSE (original units)",
    "nll": "NLL (mean −log predictive density)",
    "nll_se": "NLL standard error",
    "nll_original": "NLL (original units)",
    "coverage_50": "coverage of central 50% intervals",
    "coverage_90": "coverage of central 90% intervals",
    "n_in_range": "evaluation points inside the training range",
    "coverage_90_in_range": "coverage of central 90% intervals inside the training range",
    "coverage_50_in_range": "coverage of central 50% intervals inside the training range",
    "coverage_90_out_of_range": "coverage of central 90% intervals outside the training range",
    "nll_in_range": "NLL inside the training range",
    "nll_in_range_se": "NLL standard error inside the training range",
    "rmse_in_range": "RMSE inside the training range",
    "mean_epistemic_var_in_range": "mean epistemic variance inside the training range",
    "mean_epistemic_var_out_of_range": "mean epistemic variance outside the training range",
    "width_90_in_range": "mean width of 90% intervals inside the training range",
    "width_90_out_of_range": "mean width of 90% intervals outside the training range",
    "width_90_ratio": "90% interval width outside / inside the training range",
    "mean_aleatoric_var": "mean aleatoric variance",
    "mean_epistemic_var": "mean epistemic variance",
    "accuracy": "accuracy",
    "brier": "Brier score",
    "ece": "expected calibration error",
    "roc_auc": "ROC-AUC",
    "mean_entropy": "mean predictive entropy (nats)",
    "mean_mutual_information": "mean mutual information (nats)",
}


def load_tree(tree_or_path) -> xr.DataTree:
    """A tree, or a ``.nc``/``.zarr`` file, or a run directory holding ``posterior.nc``."""
    if isinstance(tree_or_path, xr.DataTree):
        return tree_or_path
    p = Path(tree_or_path)
    if p.is_dir() and p.suffix != ".zarr":
        for name in ("posterior.nc", "posterior.zarr"):
            if (p / name).exists():
                return load_datatree(p / name)
        raise FileNotFoundError(f"{str(p)!r} holds no posterior.nc; expected a run directory written by "
                                f"'pyrobnn fit' or pyrobnn.report")
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {str(p)!r}")
    return load_datatree(p)


def summary_rows(tree) -> list[tuple[str, object]]:
    a = tree.attrs
    info = M._fit_info(tree)
    rows = [("method", str(a.get("method", "?")).upper()), ("task", a.get("task", "?"))]
    if a.get("dataset"):
        rows.append(("dataset", a["dataset"]))
    if "n_train" in a:
        rows.append(("training points", int(a["n_train"])))
    if "n_eval" in a:
        rows.append(("evaluation points", int(a["n_eval"])))
    rows.append(("weights", int(a.get("num_weights", 0))))
    rows.append(("chains × draws exported", f"{a.get('num_chains', '?')} × {a.get('num_draws', '?')}"))
    if "fit_seconds" in a:
        rows.append(("fit time (s)", float(a["fit_seconds"])))
    for key in ("guide", "epochs", "batch_size", "optimizer", "lr", "kl_schedule", "elbo", "num_particles",
                "kernel", "backend", "num_samples", "warmup", "chains", "target_accept", "max_tree_depth", "jit",
                "seconds_compile", "seconds_warmup", "seconds_sampling", "device"):
        if key in info:
            rows.append((key.replace("_", " "), info[key] if isinstance(info[key], (int, float)) else str(info[key])))
    rows.append(("seed", a.get("seed", "?")))
    rows.append(("created", a.get("created_at", "?")))
    rows.append(("versions", f"pyrobnn {a.get('creation_library_version', '?')}, torch {a.get('torch_version', '?')}, "
                             f"pyro {a.get('inference_library_version', '?')}, arviz {a.get('arviz_version', '?')}"))
    return rows


def _metric_rows(pm: dict, keys=None):
    return [(_METRIC_LABELS.get(k, k), v) for k, v in pm.items()
            if k != "reliability" and not isinstance(v, dict) and (keys is None or k in keys)]


#: the held-out metrics measured inside the training range (in distribution) and outside it
IN_RANGE_KEYS = ("n_in_range", "coverage_90_in_range", "coverage_50_in_range", "rmse_in_range", "nll_in_range",
                 "nll_in_range_se", "width_90_in_range", "mean_epistemic_var_in_range")
OUT_OF_RANGE_KEYS = ("coverage_90_out_of_range", "width_90_out_of_range", "width_90_ratio",
                     "mean_epistemic_var_out_of_range")


def _metric_tables(pm: dict) -> list[str]:
    """The held-out metrics as HTML: in distribution, away from the data, and over all points."""
    if "n_in_range" not in pm:
        return [H.table(_metric_rows(pm), header=("metric", "value"))]
    rest = [k for k in pm if k not in IN_RANGE_KEYS + OUT_OF_RANGE_KEYS]
    return ["<h3>In distribution: held-out points inside the training range</h3>",
            H.table(_metric_rows(pm, IN_RANGE_KEYS), header=("metric", "value")),
            "<h3>Away from the data: evaluation points outside the training range</h3>",
            H.table(_metric_rows(pm, OUT_OF_RANGE_KEYS), header=("metric", "value")),
            "<h3>All evaluation points</h3>",
            H.table(_metric_rows(pm, rest), header=("metric", "value"))]


#: labels of the diagnostics values (:func:`pyrobnn.diagnostics.metrics.diagnose`)
_DIAG_LABELS = {
    "rhat_max": "largest R-hat", "rhat_max_at": "… at", "rhat_num_above": f"parameters with R-hat > {M.RHAT_MAX}",
    "ess_bulk_min": "smallest bulk ESS", "ess_bulk_min_at": "… at", "ess_tail_min": "smallest tail ESS",
    "ess_tail_min_at": "… at", "mcse_mean_max": "largest MCSE of a mean", "mcse_mean_max_at": "… at",
    "divergences": "divergent transitions", "bfmi_min": "smallest E-BFMI", "tree_depth_at_max":
    "transitions at max tree depth", "acceptance_rate_mean": "mean acceptance rate",
    "step_size_mean": "mean step size", "vi_pareto_k": "Pareto k of p/q (variational fit)",
    "elbo_rel_change_last_10pct": "relative ELBO change over the last 10% of epochs",
    "elbo_still_falling": "ELBO still falling (beyond its noise)",
    "final_elbo": "ELBO (mean over the last epoch's minibatches)",
    "elpd_loo": "elpd (PSIS-LOO, training data)", "elpd_loo_se": "elpd standard error", "p_loo":
    "effective number of parameters p_loo", "loo_kind": "PSIS-LOO variant", "pareto_k_max": "largest Pareto k",
    "pareto_k_num_above_0.7": "observations with Pareto k > 0.7",
    "f_rhat_max": "largest function-space R-hat", "f_rhat_max_at": "… at", "f_rhat_num_above":
    f"function values with R-hat > {M.RHAT_MAX}", "f_ess_bulk_min": "smallest function-space bulk ESS",
    "f_ess_bulk_min_at": "… at", "f_ess_tail_min": "smallest function-space tail ESS",
    "f_ess_tail_min_at": "… at",
}


def _diag_rows(values: dict):
    return [(_DIAG_LABELS.get(k, k), v) for k, v in values.items()]


def _warnings_html(warnings, notes=(), none: str = "No diagnostic raised a warning.", cautions=()) -> str:
    parts = [f'<div class="warn">{H.esc(w)}</div>' for w in warnings] or [f'<div class="ok">{H.esc(none)}</div>']
    parts += [f'<div class="caution">{H.esc(c)}</div>' for c in cautions]
    parts += [f'<p class="note">{H.esc(n)}</p>' for n in notes]
    return "\n".join(parts)


#: held-out coverage of the central 90% intervals that the verdict calls calibrated; at the
#: default fit's 200 in-distribution points three binomial standard errors of a calibrated
#: model's coverage, 3·sqrt(0.9·0.1/200) = 0.064, span 0.84–0.96, inside this band.
COVERAGE_90_RANGE = (0.80, 0.97)


@dataclass
class Verdict:
    """The plain-language summary a report leads with.

    ``converged``: did the fit converge by its own diagnostics (None when nothing says);
    ``calibrated``: is the held-out calibration within :data:`COVERAGE_90_RANGE` (regression)
    (None without held-out targets); ``problems``: sentences of what must be fixed before the
    fit is used (the diagnostics' warnings, and a miscalibration); ``lines``: the verdict as
    ``(status, sentence)`` pairs, status ``"ok"``, ``"problem"``, ``"caution"`` or ``"info"``."""

    converged: bool | None = None
    calibrated: bool | None = None
    problems: list[str] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def headline(self) -> str:
        if self.problems:
            return f"Not ready to use: {len(self.problems)} problem{'s' if len(self.problems) > 1 else ''} below."
        if self.converged is False:
            return "Not converged."
        return "A usable fit." if self.calibrated else "The fit converged; see the held-out checks below."


def spec_names(tree) -> tuple[str | None, str | None]:
    """The ``name`` of the model spec and of the inference spec recorded in the tree (None when
    absent)."""
    names = []
    for key, table in (("model_spec", "model"), ("inference_spec", "inference")):
        try:
            names.append(tomllib.loads(str(tree.attrs.get(key) or "")).get(table, {}).get("name"))
        except tomllib.TOMLDecodeError:
            names.append(None)
    return names[0], names[1]


def _training_range(tree) -> tuple[float, float] | None:
    x = M._x_1d(tree, "constant_data", original=True) if tree.attrs.get("in_sample") == "train" else None
    return (float(x.min()), float(x.max())) if x is not None and x.size else None


def verdict(tree, pm: dict | None = None, diag=None) -> Verdict:
    """Judge a fit in plain words: did it converge, is it calibrated on held-out data from the
    data's distribution, and where is it unsure (in distribution and away from the data
    apart).  ``pm`` and ``diag`` reuse computed :func:`~pyrobnn.diagnostics.predictive_metrics`
    and :func:`~pyrobnn.diagnostics.diagnose` results."""
    tree = load_tree(tree)
    pm = M.predictive_metrics(tree) if pm is None else pm
    diag = M.diagnose(tree) if diag is None else diag
    method = str(tree.attrs.get("method", ""))
    v, dv = Verdict(problems=list(diag.warnings)), diag.values

    # ---- convergence
    if method == "svi" and "elbo_still_falling" in dv:
        v.converged = not dv["elbo_still_falling"]
        change = 100 * dv["elbo_rel_change_last_10pct"]
        v.lines.append(("ok", f"Training converged: the negative ELBO stopped falling (its mean over the last 10% "
                              f"of epochs differs from the previous 10%'s by {-change:+.1f}%, not a fall beyond three "
                              f"standard errors of its Monte-Carlo noise).") if v.converged else
                       ("problem", f"Training has not converged: the negative ELBO was still falling by "
                                   f"{change:.1f}% over the last 10% of epochs; run more epochs."))
    elif method in ("nuts", "hmc"):
        nchain = int(tree.attrs.get("num_chains", 1))
        rhat, ess = dv.get("f_rhat_max", dv.get("rhat_max")), dv.get("f_ess_bulk_min", dv.get("ess_bulk_min"))
        where = "predictions at every evaluation input" if "f_rhat_max" in dv else "weights"
        if rhat is not None and ess is not None:
            ess_min = M.ESS_MIN_PER_CHAIN * nchain
            v.converged = bool(rhat <= M.RHAT_MAX and ess >= ess_min) and not dv.get("divergences")
            if v.converged:
                v.lines.append(("ok", f"The {nchain} chains converged: on the {where} R-hat is at most {rhat:.3f} "
                                      f"(≤ {M.RHAT_MAX}) and bulk ESS at least {ess:.0f} (≥ {ess_min}), with no "
                                      f"divergent transitions."))
            else:
                v.lines.append(("problem", f"The chains have not converged: on the {where} R-hat reaches "
                                           f"{rhat:.3f} (limit {M.RHAT_MAX}), bulk ESS is down to {ess:.0f} (needs "
                                           f"{ess_min}), {dv.get('divergences', 0)} divergent transitions; see "
                                           f"the problems below."))
        depth = dv.get("tree_depth_at_max")
        if depth:
            n = nchain * int(tree.attrs.get("num_draws", 1))
            v.lines.append(("caution", f"{depth} of {n} transitions ({100 * depth / n:.0f}%) stopped at the maximum "
                                       f"tree depth."))

    # ---- held-out calibration, in distribution
    task = tree.attrs.get("task", "regression")
    if pm and task == "regression":
        inside = "coverage_90_in_range" in pm
        n = pm["n_in_range"] if inside else pm["n"]
        c90 = pm["coverage_90_in_range"] if inside else pm["coverage_90"]
        c50 = pm.get("coverage_50_in_range") if inside else pm.get("coverage_50")
        rng_ = _training_range(tree) if inside else None
        where = (f"the {n} held-out points inside the training inputs' range [{rng_[0]:.3g}, {rng_[1]:.3g}]"
                 if rng_ else f"the {n} held-out points")
        se = math.sqrt(0.9 * 0.1 / n)
        lo, hi = COVERAGE_90_RANGE
        v.calibrated = lo <= c90 <= hi
        facts = (f"on {where}, the central 90% intervals hold {100 * c90:.0f}% of the targets (a calibrated model: "
                 f"90% ± {100 * se:.0f}% standard error)" + (f" and the 50% intervals {100 * c50:.0f}%" if c50 is not None
                                                           else ""))
        if v.calibrated:
            v.lines.append(("ok", f"Calibrated on held-out data: {facts}."))
        else:
            what = ("over-confident: its intervals are too narrow. Learn the noise (likelihood noise = \"learned\"), "
                    "widen the guide (guide.init_scale) or compare with NUTS" if c90 < lo else
                    "under-confident: its intervals are too wide. Check the likelihood's noise scale, or learn it "
                    "(likelihood noise = \"learned\")")
            msg = f"Not calibrated on held-out data: {facts}; the model is {what}."
            v.lines.append(("problem", msg))
            v.problems.append(msg)
        if "nll_in_range" in pm:
            v.lines.append(("info", f"In distribution the held-out RMSE is {pm['rmse_in_range']:.3g} and the mean "
                                    f"negative log predictive density {pm['nll_in_range']:.3g} ± "
                                    f"{pm['nll_in_range_se']:.2g}."))
    elif pm:
        v.lines.append(("info", f"On the {pm['n']} held-out points: accuracy {pm['accuracy']:.3f}, expected "
                                f"calibration error {pm['ece']:.3f} (0 for a calibrated classifier; see the "
                                f"reliability diagram), NLL {pm['nll']:.3g} ± {pm['nll_se']:.2g}."))
    else:
        v.lines.append(("caution", "No held-out targets: calibration could not be checked. Evaluate on a test split "
                                   "(to_datatree(post, x_test, y_test))."))

    # ---- where the model is unsure: away from the data, shown apart
    if "width_90_ratio" in pm:
        rng_ = _training_range(tree)
        away = f"outside the training range [{rng_[0]:.3g}, {rng_[1]:.3g}]" if rng_ else "outside the training range"
        epi = pm["mean_epistemic_var_out_of_range"] / max(pm["mean_epistemic_var_in_range"], 1e-300)
        text = (f"Away from the data ({pm['n'] - pm['n_in_range']} evaluation inputs {away}) the 90% intervals are "
                f"{pm['width_90_ratio']:.2g}× as wide as inside and the epistemic (weight) variance is {epi:.2g}× "
                f"as large; they hold {100 * pm['coverage_90_out_of_range']:.0f}% of the targets there. This is "
                f"extrapolation, not calibration: it is kept apart from the held-out numbers above.")
        if method == "svi":
            text += (" A mean-field guide is known to be over-confident away from the data; pyrobnn compare with a "
                     "NUTS fit shows by how much.")
        v.lines.append(("caution" if method == "svi" else "info", text))
    return v


def _verdict_html(v: Verdict) -> str:
    cls = {"ok": "ok", "problem": "warn", "caution": "caution", "info": "info"}
    parts = [f'<p class="headline">{H.esc(v.headline)}</p>']
    parts += [f'<div class="{cls[s]}">{H.esc(t)}</div>' for s, t in v.lines]
    return "\n".join(parts)


def report(tree, out_dir, *, title: str | None = None, write_tree: bool = True, max_trace_params: int = 6) -> Path:
    """Write the HTML report of ``tree`` (a DataTree from :func:`~pyrobnn.diagnostics.to_datatree`,
    or a ``.nc`` file, or a run directory) into ``out_dir`` and return the path of
    ``index.html``.  See the module docstring for the files."""
    tree = load_tree(tree)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a = tree.attrs
    method = str(a.get("method", "?"))
    task = a.get("task", "regression")

    pm = M.predictive_metrics(tree)
    loo_res = M.loo(tree)
    diag = M.diagnose(tree, loo_result=loo_res)

    figs: dict[str, Path | None] = {}
    figs["predictive_band"] = P.plot_predictive_band(tree, out / "predictive_band.png")
    figs["uncertainty"] = P.plot_uncertainty(tree, out / "uncertainty.png")
    figs["calibration"] = P.plot_reliability(pm, out / "calibration.png") if task != "regression" else None
    figs["ppc"] = _safe(P.plot_ppc, tree, out / "ppc.png")
    figs["loo_pit"] = _safe(P.plot_loo_pit, tree, out / "loo_pit.png")
    figs["pareto_k"] = _safe(P.plot_pareto_k, loo_res, out / "pareto_k.png")
    figs["svi_history"] = P.plot_svi_history(tree, out / "svi_history.png")
    if method in ("nuts", "hmc"):
        if len(tree["posterior"].data_vars):
            items = P.select_weights(tree, max_trace_params, stat=diag.ranking, largest=diag.ranking_largest)
            figs["trace"] = _safe(P.plot_trace, tree, out / "trace.png", items)
            figs["rank"] = _safe(P.plot_rank, tree, out / "rank.png", items)
        figs["function_convergence"] = _safe(P.plot_function_convergence, tree, out / "function_convergence.png",
                                             diag.function_space)

    nc_name = None
    if write_tree:
        save_datatree(tree, out / "posterior.nc")
        nc_name = "posterior.nc"

    figure_names = {k: v.name for k, v in figs.items() if v is not None}
    payload = {
        "method": method,
        "task": task,
        "dataset": a.get("dataset"),
        "n_train": a.get("n_train"),
        "n_eval": a.get("n_eval"),
        "fit_seconds": a.get("fit_seconds"),
        "final_elbo": diag.values.get("final_elbo"),  # SVI: the last epoch's mean minibatch ELBO
        "predictive": pm,
        "diagnostics": diag.values,
        "warnings": diag.warnings,
        "notes": diag.notes,
        "figures": figure_names,
        "tree": nc_name,
    }

    # ---- page
    v = verdict(tree, pm, diag)
    payload["verdict"] = {"headline": v.headline, "converged": v.converged, "calibrated": v.calibrated,
                          "lines": [{"status": st, "text": t} for st, t in v.lines], "problems": v.problems}
    payload["cautions"] = diag.cautions
    H.write_text(out / "metrics.json", M.to_json(payload))
    model_name, inference_name = spec_names(tree)
    title = title or (f"pyrobnn report — {model_name} × {inference_name}" if model_name and inference_name else
                      f"pyrobnn report — {a.get('dataset') or task} — {method.upper()}")
    sub = [f"model spec <b>{H.esc(model_name or '–')}</b>", f"inference spec <b>{H.esc(inference_name or '–')}</b>",
           f"data {H.esc(a.get('dataset') or '–')} ({a.get('n_train', '?')} training / {a.get('n_eval', '?')} "
           f"evaluation points)", f"{method.upper()}"]
    if a.get("fit_seconds") is not None:
        sub.append(f"fitted in {float(a['fit_seconds']):.1f} s")
    body = ['<p class="sub">' + " · ".join(sub) + "</p>", "<h2>Verdict</h2>", _verdict_html(v)]
    if pm:
        body.append("<h2>Held-out predictive performance</h2>")
        body.append(f'<p class="small">From the posterior predictive (mean over {a.get("num_chains", 1)}×'
                    f'{a.get("num_draws", "?")} draws) on the evaluation points, which the fit never saw.</p>')
        body += _metric_tables(pm)
    if figs["predictive_band"] is not None:
        body.append(H.figure(figs["predictive_band"], "Predictive mean with central 50% and 90% intervals of y and "
                                                      "a few posterior draws of the function (thin lines); "
                                                      "black: training data, red: held-out data."))
    if figs["uncertainty"] is not None:
        cap = ("Aleatoric (noise) and epistemic (weight) standard deviation along x." if task == "regression" else
               "Predictive entropy and mutual information (epistemic part) of correct and wrong predictions.")
        body.append(H.figure(figs["uncertainty"], cap))
    if figs["calibration"] is not None:
        body.append(H.figure(figs["calibration"], "Reliability diagram: accuracy against confidence of the "
                                                  "predicted class; bars below the diagonal are over-confident."))
    body.append("<h2>Problems and cautions</h2>")
    body.append('<p class="small">Problems (red) must be fixed before the fit is used; cautions (amber) are '
                'limits of the approximation or of an estimate, each with what to do about it.</p>')
    body.append(_warnings_html(v.problems, diag.notes, none="No problems: nothing needs fixing before use.",
                               cautions=diag.cautions))
    body.append("<h2>Diagnostics</h2>")
    worst = "largest R-hat" if diag.ranking_largest else "smallest bulk ESS"
    if diag.values:
        body.append(H.table(_diag_rows(diag.values), header=("diagnostic", "value")))
    if diag.table is not None:
        body.append(f'<p class="small">Parameters with the {worst} (ArviZ summary):</p>')
        body.append(diag.table.to_html(classes="summary", border=0, na_rep="–"))
    if figs["svi_history"] is not None:
        body.append(H.figure(figs["svi_history"], "Negative ELBO, expected negative log-likelihood and KL "
                                                  "divergence per epoch."))
    if figs.get("function_convergence") is not None:
        body.append(H.figure(figs["function_convergence"], "R-hat and effective sample size of the predictions "
                                                           "at every evaluation input: the predictions converged "
                                                           "where R-hat stays below and ESS above the dashed "
                                                           "lines."))
    if figs.get("trace") is not None:
        body.append(H.figure(figs["trace"], f"Traces and marginals of the parameters with the {worst} "
                                            "(divergences marked)."))
    if figs.get("rank") is not None:
        body.append(H.figure(figs["rank"], "Rank ECDF differences per chain: well-mixed chains stay inside "
                                           "the envelope."))
    if figs["ppc"] is not None:
        body.append(H.figure(figs["ppc"], "Posterior predictive check on the in-sample data: distribution of "
                                          "replicated y (blue) and of the observed y (black)."))
    if figs["loo_pit"] is not None:
        body.append(H.figure(figs["loo_pit"], f"LOO-PIT: difference between the ECDF of the leave-one-out "
                                              f"probability integral transforms of the training data and the "
                                              f"uniform ECDF, with ArviZ's {100 * P.LOO_PIT_ENVELOPE_PROB:.0f}% "
                                              f"simultaneous envelope (grey) and its uniformity test's p-value; a "
                                              f"calibrated model stays inside the envelope. For a variational fit "
                                              f"the leave-one-out step is only approximate (see the cautions)."))
    if figs["pareto_k"] is not None:
        body.append(H.figure(figs["pareto_k"], f"Pareto k of every observation in PSIS-LOO; above "
                                               f"{M.PARETO_K_MAX} the estimate for that point is unreliable."))
    body.append("<h2>Fit</h2>")
    body.append(H.table(summary_rows(tree)))
    for key, label in (("model_spec", "Model spec"), ("inference_spec", "Inference spec")):
        if a.get(key):
            body.append(f"<h2>{label}</h2><pre>{H.esc(a[key])}</pre>")
    body.append("<h2>Model</h2><pre>" + H.esc(a.get("model_repr", "")) + "</pre>")
    files = ['<a href="metrics.json">metrics.json</a>']
    if nc_name:
        files.append(f'<a href="{nc_name}">{nc_name}</a> (open with <code>xarray.open_datatree</code>; '
                     f'ArviZ reads it without pyrobnn)')
    body.append("<h2>Files</h2><p>" + " · ".join(files) + "</p>")
    index = H.write_text(out / "index.html", H.page(title, "\n".join(body)))
    return index


def _safe(fn, *args):
    """Draw an optional figure; a failure inside ArviZ's plotting leaves the figure out."""
    import matplotlib.pyplot as plt

    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - one missing figure must not lose the whole report
        plt.close("all")
        return None
