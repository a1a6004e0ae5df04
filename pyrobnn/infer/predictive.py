"""Posterior predictive summaries and the split of uncertainty.

Given per-draw predictive distributions p(y | x, w_t), t = 1..T (weights from a guide or
MCMC), the posterior predictive is their average (REFERENCE §5).  Regression: total variance =
aleatoric (mean over t of the noise variance) + epistemic (variance over t of the predicted
means).  Classification: total = entropy of the mean prediction; aleatoric = mean entropy;
epistemic = their difference (the mutual information used by BALD, Houlsby et al. 2011).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["Prediction", "summarize_draws", "predictive_log_likelihood"]


@dataclass
class Prediction:
    """Summary of the posterior predictive at N inputs from S draws.

    Regression: ``mean`` (N,), ``aleatoric_var``, ``epistemic_var``, ``total_var`` (N,),
    ``mean_draws`` (S, N) and ``noise_draws`` (S, N) (per-draw predictive mean and std).
    Classification: ``probs`` (N, K) (binary: K = 2), ``prob_draws`` (S, N, K), ``entropy``
    (total), ``expected_entropy`` (aleatoric), ``mutual_information`` (epistemic), and
    ``mean`` = the predicted class (or P(y=1) for binary).
    """

    task: str
    mean: torch.Tensor
    mean_draws: torch.Tensor | None = None
    noise_draws: torch.Tensor | None = None
    aleatoric_var: torch.Tensor | None = None
    epistemic_var: torch.Tensor | None = None
    total_var: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    prob_draws: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    expected_entropy: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def std(self) -> torch.Tensor:
        """Total predictive standard deviation (regression)."""
        return self.total_var.sqrt()

    def sample_y(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One predictive draw of y per posterior draw: (S, N)."""
        if self.task == "regression":
            eps = torch.randn(self.mean_draws.shape, generator=generator, dtype=self.mean_draws.dtype,
                              device=self.mean_draws.device)
            return self.mean_draws + self.noise_draws * eps
        flat = self.prob_draws.reshape(-1, self.prob_draws.shape[-1])
        y = torch.multinomial(flat, 1, generator=generator).reshape(self.prob_draws.shape[:-1])
        return y

    def interval(self, prob: float = 0.9, num_per_draw: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Central ``prob`` interval of the predictive distribution of y (regression), from
        ``num_per_draw`` y draws per posterior draw."""
        if not 0 < prob < 1:
            raise ValueError(f"prob must lie in (0, 1), got {prob!r}")
        lo, hi = self.quantiles(((1 - prob) / 2, (1 + prob) / 2), num_per_draw, seed)
        return lo, hi

    def quantiles(self, probs, num_per_draw: int = 20, seed: int = 0) -> torch.Tensor:
        """Quantiles ``probs`` of the predictive distribution of y (regression), (len(probs), N),
        from one set of ``num_per_draw`` y draws per posterior draw."""
        if self.task != "regression":
            raise ValueError("quantiles are defined for regression predictions")
        g = torch.Generator(device=self.mean_draws.device).manual_seed(seed)
        s, n = self.mean_draws.shape
        eps = torch.randn((num_per_draw, s, n), generator=g, dtype=self.mean_draws.dtype,
                          device=self.mean_draws.device)
        y = (self.mean_draws + self.noise_draws * eps).reshape(-1, n)
        q = torch.tensor(probs, dtype=y.dtype, device=y.device)
        return torch.quantile(y, q, dim=0)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def summarize_draws(task: str, dist_draws) -> Prediction:
    """Build a :class:`Prediction` from the per-draw predictive distribution (batch (S, N))."""
    if task == "regression":
        loc, scale = dist_draws.loc, dist_draws.scale.expand_as(dist_draws.loc)
        mean = loc.mean(0)
        alea = (scale**2).mean(0)
        epi = loc.var(0, unbiased=False) if loc.shape[0] > 1 else torch.zeros_like(mean)
        return Prediction(task, mean, mean_draws=loc, noise_draws=scale, aleatoric_var=alea, epistemic_var=epi,
                          total_var=alea + epi)
    if task == "binary":
        p1 = dist_draws.probs
        prob_draws = torch.stack([1 - p1, p1], -1)
    else:
        prob_draws = dist_draws.probs
    probs = prob_draws.mean(0)
    ent = _entropy(probs)
    exp_ent = _entropy(prob_draws).mean(0)
    mean = probs[..., 1] if task == "binary" else probs.argmax(-1)
    return Prediction(task, mean, probs=probs, prob_draws=prob_draws, entropy=ent, expected_entropy=exp_ent,
                      mutual_information=(ent - exp_ent).clamp_min(0))


def predictive_log_likelihood(log_lik_draws: torch.Tensor) -> torch.Tensor:
    """Pointwise log of the posterior predictive density, log (1/S) Σ_t p(y_n | w_t): (N,)."""
    s = log_lik_draws.shape[0]
    return torch.logsumexp(log_lik_draws, 0) - math.log(s)
