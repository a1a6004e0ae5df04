"""Weight pruning by signal-to-noise ratio (Blundell et al. 2015, section 5.1).

Each weight's signal-to-noise ratio is |μ| / σ under the variational posterior; removing the
weights with the lowest ratio (setting them to zero) and predicting with the posterior means
of the rest lets a Bayes-by-Backprop network drop most of its weights with little loss.
"""

from __future__ import annotations

import torch

from ..infer.guides import Delta
from ..infer.posterior import GuidePosterior, Posterior

__all__ = ["signal_to_noise", "prune"]


@torch.no_grad()
def signal_to_noise(guide, sites=None) -> dict[str, torch.Tensor]:
    """|μ| / σ of every weight of the guide's sites (``inf`` where σ = 0, e.g. a Delta guide)."""
    names = guide.site_names if sites is None else list(sites)
    out = {}
    for name in names:
        loc, scale = guide.loc_scale(name)
        out[name] = loc.abs() / scale
    return out


@torch.no_grad()
def prune(posterior: Posterior, fraction: float, sites=None) -> tuple[Posterior, dict[str, torch.Tensor]]:
    """Remove the ``fraction`` of weights with the lowest |μ|/σ (ranked across all weight sites
    together) and return a point-estimate posterior at the means of the kept weights, with the
    boolean keep-masks per site.  A point-estimate guide (σ = 0) is ranked by |w| instead.

    ``sites`` defaults to the model's weight sites (a learned noise site is never pruned).
    """
    if posterior.guide is None or not hasattr(posterior.guide, "loc_scale"):
        raise ValueError("prune needs a posterior fitted with a pyrobnn guide (MeanField, ARD, WeightNoise, Delta)")
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}")
    model, guide = posterior.model, posterior.guide
    names = list(getattr(model, "weight_sites", guide.site_names)) if sites is None else list(sites)
    locs = {n: guide.loc_scale(n)[0] for n in names}
    point_estimate = all(bool((guide.loc_scale(n)[1] == 0).all()) for n in names)
    score = {n: locs[n].abs() for n in names} if point_estimate else signal_to_noise(guide, names)
    flat = torch.cat([v.reshape(-1) for v in score.values()])
    keep = torch.ones_like(flat, dtype=torch.bool)
    k = int(round(float(fraction) * flat.numel()))
    if k > 0:  # exactly the k lowest scores, ties broken by position
        keep[torch.argsort(flat, stable=True)[:k]] = False
    masks, start = {}, 0
    for n, v in score.items():
        masks[n] = keep[start:start + v.numel()].reshape(v.shape)
        start += v.numel()
    point = Delta(model)
    args, kwargs = posterior.example_args
    point.setup(*args, **kwargs)
    medians = guide.median()
    for s in point._sites:
        value = medians[s.name]
        if s.name in masks:
            value = torch.where(masks[s.name], value, torch.zeros_like(value))
        getattr(point, f"{s.key}_value").copy_(value if s.transform is None else s.transform.inv(value))
    info = dict(posterior.info, pruned_fraction=float(fraction),
                kept=int(sum(int(m.sum()) for m in masks.values())))
    return GuidePosterior(model=model, method=posterior.method, guide=point, history=posterior.history, info=info,
                     example_args=posterior.example_args), masks
