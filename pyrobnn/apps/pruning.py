"""Weight pruning by signal-to-noise ratio (Blundell et al. 2015, section 5.1).

Each weight's signal-to-noise ratio is |μ| / σ under the variational posterior; removing the
weights with the lowest ratio (setting them to zero) and predicting with the posterior means
of the rest lets a Bayes-by-Backprop network drop most of its weights with little loss.
"""

from __future__ import annotations

import torch

from ..infer.guides import Delta
from ..infer.posterior import Posterior

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
    """Remove the ``fraction`` of weights with the lowest |μ|/σ (one threshold across all
    weight sites) and return a point-estimate posterior at the means of the kept weights,
    with the boolean keep-masks per site.

    ``sites`` defaults to the model's weight sites (a learned noise site is never pruned).
    """
    if posterior.guide is None or not hasattr(posterior.guide, "loc_scale"):
        raise ValueError("prune needs a posterior fitted with a pyrobnn guide (MeanField, ARD, WeightNoise, Delta)")
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}")
    model, guide = posterior.model, posterior.guide
    names = list(getattr(model, "weight_sites", guide.site_names)) if sites is None else list(sites)
    snr = signal_to_noise(guide, names)
    all_snr = torch.cat([v.reshape(-1) for v in snr.values()])
    k = int(round(float(fraction) * all_snr.numel()))
    if k > 0:
        threshold = torch.kthvalue(all_snr.cpu(), k).values.to(all_snr.device)
        masks = {n: v > threshold for n, v in snr.items()}
    else:
        masks = {n: torch.ones_like(v, dtype=torch.bool) for n, v in snr.items()}
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
    return Posterior(model=model, method=posterior.method, guide=point, history=posterior.history, info=info,
                     example_args=posterior.example_args), masks
