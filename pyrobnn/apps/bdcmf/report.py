"""The HTML report of a recommender run: recall@M curves of every method, in-matrix and cold
start, and recall against the collaborative parameters λ_v and λ_q where a sweep was run."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from ...diagnostics.html import figure, page, table, write_text
from ...diagnostics.plots import save_figure
from ...utils.files import atomic_write

__all__ = ["write_report", "write_json"]


def write_json(path, obj) -> Path:
    """``obj`` as indented JSON, written atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, default=str)))
    return path


def _ks(metrics: dict) -> list[int]:
    return sorted(int(k.split("@")[1]) for k in metrics if k.startswith("recall@") and not k.endswith("_se"))


def _recall_figure(results: dict, part: str, path: Path):
    fig, ax = plt.subplots(figsize=(5, 3.6))
    drawn = False
    for name, res in results.items():
        m = res.get(part)
        if not m:
            continue
        ks = _ks(m)
        ax.errorbar(ks, [m[f"recall@{k}"] for k in ks], yerr=[m.get(f"recall@{k}_se", 0.0) for k in ks],
                    marker="o", capsize=3, label=name)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("M (list length)")
    ax.set_ylabel("recall@M")
    ax.set_title(part.replace("_", " "))
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _sweep_figure(sweep: list[dict], param: str, path: Path):
    fig, ax = plt.subplots(figsize=(5, 3.6))
    values = [r["value"] for r in sweep]
    for part in ("in_matrix", "cold_start"):
        if not sweep[0].get(part):
            continue
        ks = _ks(sweep[0][part])
        k = ks[len(ks) // 2]
        ax.plot(values, [r[part][f"recall@{k}"] for r in sweep], marker="o", label=f"{part} recall@{k}")
    positive = [x for x in values if x > 0]
    if positive and len(positive) < len(values):  # a zero (e.g. λ_q = 0: no graph) on a log-like axis
        ax.set_xscale("symlog", linthresh=min(positive))
    elif positive:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel("recall")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_report(out, results: dict, sweeps: dict | None = None, notes: str = "", title: str = "Recommender (BDCMF)"):
    """Write ``index.html``, ``metrics.json`` and figures into ``out``.  ``results`` maps a method
    name to its :func:`.harness.evaluate` output; ``sweeps`` maps a parameter name to a list of
    ``{"value": ..., "in_matrix": ..., "cold_start": ...}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    body = [f"<p class='note'>{notes}</p>" if notes else ""]
    for part in ("in_matrix", "cold_start"):
        rows, ks = [], None
        for name, res in results.items():
            m = res.get(part)
            if not m:
                continue
            ks = ks or _ks(m)
            rows.append([name] + [f"{m[f'recall@{k}']:.4f} ± {m.get(f'recall@{k}_se', float('nan')):.4f}"
                                  for k in ks] + [m["users"]])
        if rows:
            body.append(f"<h2>{part.replace('_', ' ')}</h2>")
            body.append(table(rows, ["method"] + [f"recall@{k}" for k in ks] + ["users"]))
            body.append(figure(_recall_figure(results, part, out / f"recall_{part}.png"), f"recall@M, {part}"))
    for param, sweep in (sweeps or {}).items():
        body.append(f"<h2>recall against {param}</h2>")
        body.append(figure(_sweep_figure(sweep, param, out / f"sweep_{param}.png"), f"recall against {param}"))
    write_json(out / "metrics.json", {"results": results, "sweeps": sweeps or {}})
    return write_text(out / "index.html", page(title, "\n".join(body)))
