"""Side-by-side comparison of several fits: :func:`compare`.

``compare({"svi": tree_svi, "nuts": tree_nuts}, out_dir)`` ranks the fits by their expected
log pointwise predictive density estimated with PSIS-LOO on the training data (ArviZ
``compare``, stacking weights; Yao, Vehtari, Simpson & Gelman, "Using stacking to average
Bayesian predictive distributions", Bayesian Analysis 2018), puts the held-out predictive
metrics side by side, overlays a handful of weight marginals (forest plot) and, for 1-D
regression, the predictive bands, and writes ``index.html``, ``compare.json``,
``forest.png`` and ``bands.png`` into ``out_dir``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import html as H
from . import metrics as M
from . import plots as P
from .report import _DIAG_LABELS, _METRIC_LABELS, _warnings_html, load_tree

__all__ = ["compare", "Comparison"]


@dataclass
class Comparison:
    """Result of :func:`compare`: ``elpd`` (the ArviZ comparison table, or None when the fits
    do not share their in-sample data), ``metrics`` (held-out metrics, one column per fit),
    ``diagnostics`` (fit name → diagnostics values), ``warnings`` (sentences) and ``path``
    (``index.html`` when written)."""

    elpd: pd.DataFrame | None
    metrics: pd.DataFrame
    diagnostics: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None

    def __repr__(self) -> str:
        parts = ["Comparison"]
        if self.elpd is not None:
            parts.append("ELPD (PSIS-LOO):\n" + self.elpd.to_string())
        parts.append("Held-out metrics:\n" + self.metrics.to_string())
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


def compare(trees: dict, out_dir=None, *, n_weights: int = 8, title: str = "pyrobnn comparison") -> Comparison:
    """Compare fits given as ``{name: tree}`` (DataTrees, ``.nc`` files or run directories).

    Returns a :class:`Comparison`; with ``out_dir`` also writes the HTML page and figures
    there (files written atomically, ``index.html`` last)."""
    import arviz as az

    if not isinstance(trees, dict) or len(trees) < 2:
        raise ValueError(f"compare needs a dict of at least two fits {{name: tree}}, got "
                         f"{type(trees).__name__} with {len(trees) if hasattr(trees, '__len__') else '?'} entries")
    trees = {str(k): load_tree(v) for k, v in trees.items()}
    warn: list[str] = []

    # ---- ELPD by PSIS-LOO on the shared in-sample data
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
            warn.append(f"ArviZ could not compare the ELPDs ({type(exc).__name__}: {exc}).")
    elif why is not None:
        warn.append(f"No ELPD comparison: {why}; PSIS-LOO values are only comparable on the same data.")
    # every fit's own warnings (diagnose's Pareto-k sentence already says its ELPD is unreliable)
    warn += [f"{name}: {w}" for name, d in diags.items() for w in d.warnings]

    # ---- held-out metrics side by side
    pms = {name: M.predictive_metrics(t) for name, t in trees.items()}
    keys = []
    for pm in pms.values():
        keys += [k for k in pm if k not in keys and not isinstance(pm[k], dict)]
    rows = {(_METRIC_LABELS.get(k, k)): [pms[n].get(k, np.nan) for n in trees] for k in keys}
    for extra, label in (("fit_seconds", "fit time (s)"),):
        rows[label] = [float(t.attrs.get(extra, np.nan)) for t in trees.values()]
    metrics_df = pd.DataFrame(rows, index=list(trees)).T

    diag_df = _diagnostics_table(diags, list(trees))
    result = Comparison(elpd=elpd, metrics=metrics_df, diagnostics={n: d.values for n, d in diags.items()},
                        warnings=warn)
    if out_dir is None:
        return result

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = _common_weights(trees, n_weights)
    forest = P.plot_forest(trees, out / "forest.png", items) if items else None
    bands = P.plot_bands_overlay(trees, out / "bands.png")
    payload = {
        "fits": {n: {"method": t.attrs.get("method"), "dataset": t.attrs.get("dataset"),
                     "predictive": pms[n], "diagnostics": diags[n].values} for n, t in trees.items()},
        "elpd": None if elpd is None else _df_records(elpd),
        "warnings": warn,
        "figures": {k: v.name for k, v in (("forest", forest), ("bands", bands)) if v is not None},
    }
    H.write_text(out / "compare.json", M.to_json(payload))

    body = ["<h2>Fits</h2>"]
    body.append(H.table([(n, str(t.attrs.get("method", "?")).upper(), t.attrs.get("dataset", "–"),
                          t.attrs.get("n_train", "–"), t.attrs.get("n_eval", "–"),
                          f"{t.attrs.get('num_chains')} × {t.attrs.get('num_draws')}")
                         for n, t in trees.items()],
                        header=("fit", "method", "dataset", "training points", "evaluation points",
                                "chains × draws")))
    body.append("<h2>Warnings</h2>")
    body.append(_warnings_html(warn, none="None."))
    body.append("<h2>Expected log predictive density (PSIS-LOO, training data)</h2>")
    if elpd is not None:
        body.append('<p class="small">Ranked by elpd (higher is better); elpd_diff and dse are relative to the '
                    'best fit; weight: stacking weights.</p>')
        body.append(elpd.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    else:
        body.append('<p class="note">Not available (see the warnings).</p>')
    body.append("<h2>Held-out predictive metrics</h2>")
    body.append(metrics_df.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    if diag_df is not None:
        body.append("<h2>Convergence</h2>")
        body.append('<p class="small">MCMC: R-hat and ESS of the predictions at every evaluation input '
                    '(function space) and of the weights; SVI: Pareto k of the importance ratios p/q.</p>')
        body.append(diag_df.to_html(border=0, na_rep="–", float_format=lambda v: f"{v:.4g}"))
    if bands is not None:
        body.append(H.figure(bands, "Predictive mean and central 90% interval of each fit; black: training data."))
    if forest is not None:
        body.append(H.figure(forest, "Marginal posteriors of a handful of weights: point = mean, thick = central "
                                     "50%, thin = central 89% interval."))
    body.append('<h2>Files</h2><p><a href="compare.json">compare.json</a></p>')
    result.path = H.write_text(out / "index.html", H.page(title, "\n".join(body)))
    return result


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


def _common_weights(trees: dict, n: int):
    """Up to ``n`` scalar weights present in every fit: the first fit's largest |mean|/sd,
    plus the noise scale if present."""
    posts = [t["posterior"].to_dataset() for t in trees.values()]
    shared = [v for v in posts[0].data_vars if all(v in p and p[v].shape[2:] == posts[0][v].shape[2:]
                                                   for p in posts)]
    if not shared:
        return []
    first = posts[0]
    scored = []
    for name in shared:
        da = first[name]
        mean = da.mean(("chain", "draw")).values
        sd = da.std(("chain", "draw")).values
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(mean) / np.where(sd > 0, sd, np.inf)
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        for k, val in enumerate(np.ravel(z)):
            idx = np.unravel_index(k, mean.shape) if dims else ()
            scored.append((float(val), name, dict(zip(dims, (int(i) for i in idx)))))
    items = [(name, coords) for name in shared if name == "noise" for coords in [{}]]
    scored.sort(key=lambda t: -t[0] if np.isfinite(t[0]) else 0)
    for _, name, coords in scored:
        if len(items) >= n:
            break
        if (name, coords) not in items:
            items.append((name, coords))
    return items
