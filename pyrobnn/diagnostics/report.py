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

from pathlib import Path

import xarray as xr

from . import html as H
from . import metrics as M
from . import plots as P
from .export import load_datatree, save_datatree

__all__ = ["report", "load_tree", "REPORT_FILES"]

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
    "coverage_90_in_range": "coverage of central 90% intervals inside the training range",
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


def _metric_rows(pm: dict):
    return [(_METRIC_LABELS.get(k, k), v) for k, v in pm.items() if k != "reliability" and not isinstance(v, dict)]


#: labels of the diagnostics values (:func:`pyrobnn.diagnostics.metrics.diagnose`)
_DIAG_LABELS = {
    "rhat_max": "largest R-hat", "rhat_max_at": "… at", "rhat_num_above": f"parameters with R-hat > {M.RHAT_MAX}",
    "ess_bulk_min": "smallest bulk ESS", "ess_bulk_min_at": "… at", "ess_tail_min": "smallest tail ESS",
    "ess_tail_min_at": "… at", "mcse_mean_max": "largest MCSE of a mean", "mcse_mean_max_at": "… at",
    "divergences": "divergent transitions", "bfmi_min": "smallest E-BFMI", "tree_depth_at_max":
    "transitions at max tree depth", "acceptance_rate_mean": "mean acceptance rate",
    "step_size_mean": "mean step size", "vi_pareto_k": "Pareto k of p/q (variational fit)",
    "elbo_rel_change_last_10pct": "relative ELBO change over the last 10% of epochs",
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


def _warnings_html(warnings, notes=(), none: str = "No diagnostic raised a warning.") -> str:
    parts = [f'<div class="warn">{H.esc(w)}</div>' for w in warnings] or [f'<div class="ok">{H.esc(none)}</div>']
    parts += [f'<p class="note">{H.esc(n)}</p>' for n in notes]
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
        "predictive": pm,
        "diagnostics": diag.values,
        "warnings": diag.warnings,
        "notes": diag.notes,
        "figures": figure_names,
        "tree": nc_name,
    }
    H.write_text(out / "metrics.json", M.to_json(payload))

    # ---- page
    title = title or f"pyrobnn report — {a.get('dataset') or task} — {method.upper()}"
    body = ["<h2>Fit</h2>", H.table(summary_rows(tree))]
    body.append("<h2>Warnings</h2>")
    body.append(_warnings_html(diag.warnings, diag.notes))
    if pm:
        body.append("<h2>Held-out predictive performance</h2>")
        body.append(f'<p class="small">On the {pm.get("n")} evaluation points, from the posterior predictive '
                    f'(mean over {a.get("num_chains", 1)}×{a.get("num_draws", "?")} draws).</p>')
        body.append(H.table(_metric_rows(pm), header=("metric", "value")))
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
        body.append(H.figure(figs["loo_pit"], "LOO-PIT: difference between the ECDF of the leave-one-out "
                                              "probability integral transforms and the uniform ECDF; a calibrated "
                                              "model stays inside the envelope."))
    if figs["pareto_k"] is not None:
        body.append(H.figure(figs["pareto_k"], f"Pareto k of every observation in PSIS-LOO; above "
                                               f"{M.PARETO_K_MAX} the estimate for that point is unreliable."))
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
