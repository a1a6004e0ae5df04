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

__all__ = ["Prediction", "summarize_draws", "predictive_log_likelihood", "DrawSummary", "entropy_split"]


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


def entropy_split(prob_draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split of predictive entropy from per-draw class probabilities ``prob_draws`` (S, ..., K):
    total H[(1/S) Σ_t p_t], aleatoric (1/S) Σ_t H[p_t], and epistemic = their difference, the
    mutual information I[y; w | x] that BALD ranks by (Houlsby, Huszár, Ghahramani & Lengyel
    2011, eq. 3), clamped at 0 against rounding.  Each (...)."""
    probs = prob_draws.mean(0)
    ent = _entropy(probs)
    exp_ent = _entropy(prob_draws).mean(0)
    return ent, exp_ent, (ent - exp_ent).clamp_min(0)


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
    ent, exp_ent, mi = entropy_split(prob_draws)
    mean = probs[..., 1] if task == "binary" else probs.argmax(-1)
    return Prediction(task, mean, probs=probs, prob_draws=prob_draws, entropy=ent, expected_entropy=exp_ent,
                      mutual_information=mi)


def predictive_log_likelihood(log_lik_draws: torch.Tensor) -> torch.Tensor:
    """Pointwise log of the posterior predictive density, log (1/S) Σ_t p(y_n | w_t): (N,)."""
    s = log_lik_draws.shape[0]
    return torch.logsumexp(log_lik_draws, 0) - math.log(s)


class DrawSummary:
    """The :class:`Prediction` of S draws assembled from chunks of draws, in order.

    One chunk: that chunk's Prediction itself (the numbers of one vectorised pass).  Several:
    the means over draws (predictive mean, aleatoric variance, class probabilities, expected
    entropy) are running sums in float64, the epistemic variance is merged chunk by chunk
    (Chan, Golub & LeVeque 1979), and the pointwise log predictive density is a running
    logsumexp, so the per-draw class probabilities are never kept; regression keeps the
    per-draw means and noise scales (S, N), which :meth:`Prediction.quantiles` needs.
    ``add_log_lik`` takes the chunk's pointwise log-likelihood (k, N) for :meth:`lpd`."""

    def __init__(self, task: str):
        self.task = task
        self.first: Prediction | None = None
        self.count = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.keep: dict[str, list] = {"mean_draws": [], "noise_draws": []}
        self.lse: torch.Tensor | None = None
        self.first_ll: torch.Tensor | None = None
        self.ll_count = 0

    def add(self, pred: Prediction) -> None:
        """Fold in the Prediction of the next chunk of draws."""
        f64 = torch.float64
        if self.first is None:
            self.first = pred
        if self.task == "regression":
            loc, scale = pred.mean_draws, pred.noise_draws
            k = loc.shape[0]
            m_b = loc.to(f64).mean(0)
            m2_b = ((loc.to(f64) - m_b) ** 2).sum(0)
            if self.count == 0:
                self.sums.update(mean=m_b, m2=m2_b, alea=(scale.to(f64) ** 2).sum(0))
            else:
                n_a = self.count
                delta = m_b - self.sums["mean"]
                self.sums["mean"] = self.sums["mean"] + delta * k / (n_a + k)
                self.sums["m2"] = self.sums["m2"] + m2_b + delta**2 * n_a * k / (n_a + k)
                self.sums["alea"] = self.sums["alea"] + (scale.to(f64) ** 2).sum(0)
            self.keep["mean_draws"].append(loc)
            self.keep["noise_draws"].append(scale)
            self.count += k
            return
        p = pred.prob_draws
        k = p.shape[0]
        if self.count == 0:
            self.sums.update(probs=p.to(f64).sum(0), ent=_entropy(p).to(f64).sum(0))
        else:
            self.sums["probs"] += p.to(f64).sum(0)
            self.sums["ent"] += _entropy(p).to(f64).sum(0)
        self.count += k

    def add_log_lik(self, ll: torch.Tensor) -> None:
        """Fold in the pointwise log-likelihood (k, N) of the next chunk."""
        if self.first_ll is None:
            self.first_ll = ll
        part = torch.logsumexp(ll.to(torch.float64), 0)
        self.lse = part if self.lse is None else torch.logaddexp(self.lse, part)
        self.ll_count += ll.shape[0]

    @property
    def chunks_seen_one(self) -> bool:
        return self.first is not None and self.count == self._first_count()

    def _first_count(self) -> int:
        p = self.first.mean_draws if self.task == "regression" else self.first.prob_draws
        return p.shape[0]

    def result(self) -> Prediction:
        """The Prediction of all draws (without ``prob_draws`` when assembled from chunks)."""
        if self.first is None:
            raise ValueError("DrawSummary.result: no chunk was added")
        if self.chunks_seen_one:
            return self.first
        dtype = self.first.mean.dtype if self.task == "regression" else self.first.probs.dtype
        n = self.count
        if self.task == "regression":
            mean = self.sums["mean"].to(dtype)
            alea = (self.sums["alea"] / n).to(dtype)
            epi = (self.sums["m2"] / n).to(dtype)
            return Prediction(self.task, mean, mean_draws=torch.cat(self.keep["mean_draws"]),
                              noise_draws=torch.cat(self.keep["noise_draws"]), aleatoric_var=alea,
                              epistemic_var=epi, total_var=alea + epi)
        probs = (self.sums["probs"] / n).to(dtype)
        ent = _entropy(probs)
        exp_ent = (self.sums["ent"] / n).to(dtype)
        mean = probs[..., 1] if self.task == "binary" else probs.argmax(-1)
        return Prediction(self.task, mean, probs=probs, entropy=ent, expected_entropy=exp_ent,
                          mutual_information=(ent - exp_ent).clamp_min(0))

    def lpd(self) -> torch.Tensor | None:
        """Pointwise log posterior predictive density (N,) of the log-likelihoods added."""
        if self.first_ll is None:
            return None
        if self.ll_count == self.first_ll.shape[0]:
            return predictive_log_likelihood(self.first_ll)
        return (self.lse - math.log(self.ll_count)).to(self.first_ll.dtype)
