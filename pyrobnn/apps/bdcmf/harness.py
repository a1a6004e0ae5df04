"""One entry point for every method and estimator, and evaluation on a :class:`~pyrobnn.data.RecsysSplit`."""

from __future__ import annotations

import time

from ...data.recsys import RecsysData, RecsysSplit
from .fit import BDCMFFit
from .full import fit_full
from .metrics import ranking_metrics
from .point import fit_point
from .settings import BDCMFSettings

__all__ = ["fit_bdcmf", "evaluate"]


def fit_bdcmf(data: RecsysData, settings: BDCMFSettings | None = None, progress: bool = False,
              device=None) -> BDCMFFit:
    """Fit ``settings.method`` with ``settings.estimator`` (``point``: variational EM; ``full``:
    mean-field SVI started from the point fit) to ``data``; ``device`` defaults to the data's.
    ``fit.history[-1]["fit_seconds"]`` records the wall time."""
    s = settings or BDCMFSettings()
    dev = device if device is not None else data.ratings.device
    ratings = data.ratings.to(dev)
    social = data.social.to(dev) if data.social is not None else None
    t0 = time.perf_counter()
    fit = (fit_point if s.estimator == "point" else fit_full)(ratings, data.n_users, data.n_items, s, social,
                                                               data.content, progress)
    fit.history.append({"fit_seconds": time.perf_counter() - t0})
    return fit


def evaluate(fit: BDCMFFit, split: RecsysSplit, ks=(50, 100, 200)) -> dict:
    """``{"in_matrix": ..., "cold_start": ...}`` ranking metrics (:func:`.metrics.ranking_metrics`):
    in-matrix over the warm items with training pairs excluded; cold-start over the held-out
    items scored from content only (absent for methods without content)."""
    out = {"in_matrix": ranking_metrics(fit.u, fit.v, split.test.to(fit.u.device), split.train.ratings, ks)}
    if fit.encoder is not None and split.cold_content is not None and split.cold_items.numel():
        mu, _ = fit.content_codes(split.cold_content)
        out["cold_start"] = ranking_metrics(fit.u, mu, split.cold_test.to(fit.u.device), None, ks)
    return out
