"""What a bandit run writes: ``metrics.json``, the cumulative-regret plot and an HTML page.

Normalised regret follows Riquelme et al. (2018): an agent's cumulative regret divided by the
uniform policy's on the same stream, times 100 (Uniform = 100).  The uniform policy's regret
is its *expected* regret, Σ_t [max_a E r_t(a) − mean_a E r_t(a)], computed on the stream rather
than sampled, so the normaliser carries no noise of its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ...diagnostics.html import esc, figure, page, table, write_text  # noqa: E402
from ...diagnostics.plots import save_figure  # noqa: E402
from ...utils.files import atomic_write  # noqa: E402
from .runner import AGENTS, BanditRun  # noqa: E402

__all__ = ["bandit_metrics", "plot_regret", "write_report"]


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def bandit_metrics(run: BanditRun) -> dict:
    """Per agent: ``cumulative_regret`` (final, mean over seeds) and its standard error,
    ``normalised_regret`` (Uniform = 100, mean of the per-seed ratios) and its standard error,
    the per-seed values, ``steps_per_second`` (mean over seeds), the share of the loop's time
    spent in SVI training; plus the uniform policy's expected regret and the run's settings."""
    agents = {}
    for name, recs in run.records.items():
        finals = [r.cumulative_regret for r in recs]
        norm = [100.0 * f / u for f, u in zip(finals, run.uniform_regret)]
        cr, cr_se = _mean_se(finals)
        nr, nr_se = _mean_se(norm)
        seconds = sum(r.seconds for r in recs)
        agents[name] = {
            "description": AGENTS[name], "cumulative_regret": cr, "cumulative_regret_se": cr_se,
            "normalised_regret": nr, "normalised_regret_se": nr_se,
            "per_seed": {"seed": list(run.seeds), "cumulative_regret": finals, "normalised_regret": norm,
                         "steps_per_second": [r.steps_per_second for r in recs]},
            "steps_per_second": float(np.mean([r.steps_per_second for r in recs])),
            "training_share": sum(r.seconds_training for r in recs) / seconds if seconds > 0 else 0.0,
            "total_reward": float(np.mean([r.rewards.sum() for r in recs])),
        }
    return {"agents": agents, "uniform_expected_regret": {"mean": float(np.mean(run.uniform_regret)),
                                                          "per_seed": list(run.uniform_regret)},
            "settings": run.settings}


def plot_regret(run: BanditRun, path, log: bool = False, title: str | None = None) -> Path:
    """Cumulative regret against the step, one line per agent: the mean over seeds with a band
    of ± one standard error (with two seeds or more); ``log`` puts the regret on a log scale."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for name, recs in run.records.items():
        curves = np.stack([np.cumsum(r.regret) for r in recs])
        steps = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(0)
        (line,) = ax.plot(steps, mean, label=name, lw=1.6)
        if len(recs) > 1:
            se = curves.std(0, ddof=1) / math.sqrt(len(recs))
            ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative regret" + (" (log scale)" if log else ""))
    if log:
        ax.set_yscale("log")
    ax.set_title(title or "Cumulative regret (mean over seeds, band ± 1 s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_report(run: BanditRun, out_dir, title: str | None = None) -> dict:
    """Write ``metrics.json``, ``regret.png``, ``regret_log.png``, ``curves.npz`` (every
    per-step regret) and ``index.html`` into ``out_dir`` (atomically); returns the metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = bandit_metrics(run)
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    curves = {f"{name}/seed{s}": r.regret for name, recs in run.records.items() for s, r in zip(run.seeds, recs)}

    def save_curves(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **curves)

    atomic_write(out / "curves.npz", save_curves)
    env = run.settings.get("environment", {})
    title = title or f"Contextual bandit: {env.get('environment', '?')}" + (
        f", δ = {env['delta']}" if "delta" in env else "")
    lin = plot_regret(run, out / "regret.png")
    log = plot_regret(run, out / "regret_log.png", log=True)
    rows = [(name, m["cumulative_regret"], m["cumulative_regret_se"], m["normalised_regret"],
             m["normalised_regret_se"], m["steps_per_second"], 100 * m["training_share"], m["description"])
            for name, m in metrics["agents"].items()]
    s = run.settings
    body = (f'<p class="note">{s.get("steps")} steps, seeds {esc(s.get("seeds"))}; regret is the expected regret '
            f"against the oracle; normalised regret: Uniform = 100 (the uniform policy's expected regret on the same "
            f"stream).</p>"
            + table(rows, ["agent", "cumulative regret", "± s.e.", "normalised (Uniform = 100)", "± s.e.", "steps/s",
                           "% time in SVI", "what"], left_cols=1)
            + figure(lin, "Cumulative regret") + figure(log, "Cumulative regret, log scale")
            + "<h2>Settings</h2><pre>" + esc(json.dumps(s, indent=2)) + "</pre>")
    write_text(out / "index.html", page(title, body))
    return metrics
