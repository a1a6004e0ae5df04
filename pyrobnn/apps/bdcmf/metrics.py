r"""Evaluation of recommendations: recall@M and precision@M on held-out positives, and the
alignment of recovered factors with planted ones.

For user ``i`` with held-out positives ``T_i`` and the ``M`` highest-scored items ``top_M(i)``
among those not observed in training (Xiao et al. 2019; Wang & Blei 2011)

.. math::

    \mathrm{recall@}M = \frac{|top_M(i) ∩ T_i|}{|T_i|}, \qquad
    \mathrm{precision@}M = \frac{|top_M(i) ∩ T_i|}{M},

averaged over the users with ``T_i ≠ ∅``.  Scores are computed ``chunk`` users at a time, so
no users × items matrix is held.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ranking_metrics", "procrustes_correlation", "random_recall"]


@torch.no_grad()
def ranking_metrics(u: Tensor, v: Tensor, test: Tensor, train: Tensor | None = None, ks=(50, 100, 200),
                    chunk: int = 512) -> dict[str, float]:
    """``recall@k``, ``precision@k`` (mean over users with test items) and their standard errors
    (``recall@k_se``) for scores ``u vᵀ``; ``train`` pairs are excluded from the ranking."""
    n_users, n_items = u.shape[0], v.shape[0]
    ks = list(dict.fromkeys(min(int(k), n_items) for k in ks))  # k beyond the catalogue: all items, once
    kmax = max(ks)
    dev = u.device
    test_key = torch.unique(test[:, 0].to(dev) * n_items + test[:, 1].to(dev))
    n_test = torch.bincount(test[:, 0].to(dev), minlength=n_users)
    hits = {k: [] for k in ks}
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        s = u[start:stop] @ v.T
        if train is not None:
            tr = train[(train[:, 0] >= start) & (train[:, 0] < stop)].to(dev)
            s[tr[:, 0] - start, tr[:, 1]] = -math.inf
        top = s.topk(kmax, dim=1).indices
        key = (torch.arange(start, stop, device=dev).unsqueeze(1) * n_items + top)
        hit = torch.isin(key, test_key)
        for k in ks:
            hits[k].append(hit[:, :k].sum(1))
    has = n_test > 0
    out = {"users": int(has.sum())}
    for k in ks:
        h = torch.cat(hits[k]).double()[has]
        rec, prec = h / n_test[has], h / k
        out[f"recall@{k}"] = float(rec.mean())
        out[f"recall@{k}_se"] = float(rec.std() / math.sqrt(rec.numel())) if rec.numel() > 1 else float("nan")
        out[f"precision@{k}"] = float(prec.mean())
    return out


def random_recall(n_candidates: int, k: int) -> float:
    """Expected recall@k of a random ranking over ``n_candidates`` items: ``k / n_candidates``."""
    return min(1.0, k / n_candidates)


@torch.no_grad()
def procrustes_correlation(estimate: Tensor, truth: Tensor) -> float:
    """Correlation of the entries of ``estimate R`` and ``truth``, with ``R`` the orthogonal
    matrix minimising ``‖estimate R − truth‖`` (orthogonal Procrustes: ``R = W Zᵀ`` from the SVD
    ``estimateᵀ truth = W Σ Zᵀ``).  Factors of ``u_iᵀ v_j`` are identified up to rotation only."""
    a = estimate.double() - estimate.double().mean(0)
    b = truth.double().to(a.device) - truth.double().to(a.device).mean(0)
    w, _, zt = torch.linalg.svd(a.T @ b, full_matrices=False)
    aligned = (a @ w @ zt).flatten()
    return float(torch.corrcoef(torch.stack([aligned, b.flatten()]))[0, 1])
