"""Acquisition functions of pool-based active learning and the choice of a batch.

Every score is computed from the per-draw class probabilities p_t(y | x) = p(y | x, w_t),
t = 1..S, of the pool points, ``prob_draws`` (S, N, K), all draws and points in one tensor
pass (on the device the draws live on).  With p̄ = (1/S) Σ_t p_t and H the entropy:

* ``bald`` — the mutual information between the label and the weights,
  I[y; w | x, D] = H[p̄] − (1/S) Σ_t H[p_t] (Houlsby et al. 2011, eq. 3; Gal, Islam &
  Ghahramani, "Deep Bayesian active learning with image data", ICML 2017, eq. 5);
* ``max_entropy`` — H[p̄] (Shannon 1948; Gal et al. 2017, eq. 3);
* ``variation_ratio`` — 1 − max_k p̄_k (Freeman 1965; Gal et al. 2017, eq. 4);
* ``mean_std`` — (1/K) Σ_k sqrt(E_t[p_tk²] − p̄_k²) (Kampffmeyer et al. 2016; Kendall et al.
  2015; Gal et al. 2017, section 3);
* ``random`` — uniform scores (the baseline).

A batch of k points is the top-k scores (``"topk"``), or — Kirsch, Farquhar, Atighehchian,
Jesson, Branchaud-Charron & Gal, "Stochastic batch acquisition", TMLR 2023 — k points drawn
without replacement with probability ∝ score^β (``"power"``), which avoids the near-duplicates
a top-k batch of BALD picks.  Already-labelled points are never chosen.
"""

from __future__ import annotations

import torch

from ...infer.predictive import entropy_split

__all__ = ["ACQUISITIONS", "BATCH_MODES", "bald", "max_entropy", "variation_ratio", "mean_std", "random_scores",
           "score", "select_batch"]

BATCH_MODES = ("topk", "power")


def _check_draws(prob_draws) -> torch.Tensor:
    if not isinstance(prob_draws, torch.Tensor) or prob_draws.ndim != 3:
        shape = tuple(prob_draws.shape) if hasattr(prob_draws, "shape") else type(prob_draws).__name__
        raise ValueError(f"prob_draws must be a tensor (S, N, K) of per-draw class probabilities, got {shape}")
    return prob_draws


def bald(prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """I[y; w] = H[p̄] − mean_t H[p_t] per pool point (N,)."""
    return entropy_split(_check_draws(prob_draws))[2]


def max_entropy(prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """H[p̄] per pool point (N,)."""
    return entropy_split(_check_draws(prob_draws))[0]


def variation_ratio(prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """1 − max_k p̄_k per pool point (N,)."""
    return 1.0 - _check_draws(prob_draws).mean(0).max(-1).values


def mean_std(prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """Mean over classes of the standard deviation over draws of p_tk (N,)."""
    return _check_draws(prob_draws).std(0, unbiased=False).mean(-1)


def random_scores(prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """Uniform(0, 1) scores (N,) from ``generator`` (a torch.Generator on the draws' device)."""
    p = _check_draws(prob_draws)
    return torch.rand(p.shape[1], generator=generator, device=p.device, dtype=p.dtype)


ACQUISITIONS = {"bald": bald, "max_entropy": max_entropy, "variation_ratio": variation_ratio,
                "mean_std": mean_std, "random": random_scores}


def score(name: str, prob_draws: torch.Tensor, generator=None) -> torch.Tensor:
    """Scores (N,) of the acquisition function ``name`` (one of :data:`ACQUISITIONS`)."""
    if name not in ACQUISITIONS:
        raise ValueError(f"acquisition {name!r} is unknown; expected one of {sorted(ACQUISITIONS)}")
    return ACQUISITIONS[name](prob_draws, generator)


def select_batch(scores: torch.Tensor, labelled: torch.Tensor, k: int, mode: str = "topk", beta: float = 1.0,
                 generator=None) -> torch.Tensor:
    """Indices (k,) into the pool of the next points to label, among those with
    ``labelled[i] == False``: the k highest ``scores`` (``mode="topk"``, ties broken by index)
    or k draws without replacement with probability ∝ max(score, 0)^β (``mode="power"``;
    uniform among the unlabelled if every score is 0)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k (points acquired per round) must be a positive integer, got {k!r}")
    if mode not in BATCH_MODES:
        raise ValueError(f"mode {mode!r} is unknown; expected one of {list(BATCH_MODES)}")
    if scores.ndim != 1 or labelled.shape != scores.shape or labelled.dtype != torch.bool:
        raise ValueError(f"scores (N,) and a boolean labelled mask (N,) are expected, got {tuple(scores.shape)} "
                         f"and {tuple(labelled.shape)} {labelled.dtype}")
    free = (~labelled).nonzero().squeeze(-1)
    if free.numel() < k:
        raise ValueError(f"the pool has {free.numel()} unlabelled points, fewer than the {k} asked for in one round")
    s = scores[free]
    if mode == "topk":
        order = torch.sort(s, descending=True, stable=True).indices
        return free[order[:k]]
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    w = s.clamp_min(0).to(torch.float64) ** beta
    if not torch.isfinite(w).all():
        raise ValueError("acquisition scores must be finite")
    if w.sum() <= 0:
        w = torch.ones_like(w)
    return free[torch.multinomial(w, k, replacement=False, generator=generator)]
