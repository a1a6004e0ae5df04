"""An equally weighted mixture of fitted posteriors: deep ensembles of Bayesian fits.

K fits of the same network from different initialisations (K MAP-plus-Laplace fits, K
mean-field SVI fits, ...) each approximate one mode of the posterior; their mixture

    p(y | x) = (1/K) Σ_k p_k(y | x),        p_k(y | x) ≈ (1/S) Σ_s p(y | x, w_ks),  w_ks ~ q_k

covers several (Wilson & Izmailov 2020, "MultiSWAG"; Eschenhagen et al. 2021, mixtures of
Laplace approximations).  With S draws from every member the mixture is the pool of all K·S
draws with equal weights, so every summary is the one of a single posterior over the pooled
draws: predictive mean (1/KS) Σ μ_ks, aleatoric variance (1/KS) Σ σ²_ks, epistemic variance
the variance of the pooled μ_ks (the law of total variance across members), class
probabilities and the entropy split likewise, and the log predictive density

    log p(y | x) = log (1/KS) Σ_ks p(y | x, w_ks) = logsumexp_k [log p_k(y | x)] − log K.

Each member is evaluated with the same ``num_samples`` and its own seed (``seed + k``), so a
member's draws are the ones it would give alone with that seed.

    members = []
    for k in range(5):
        torch.manual_seed(k)                       # a different initialisation per member
        net = pb.BNN([pb.Linear(8, 50), "relu", pb.Linear(50, 1)], pb.Gaussian(0.5, learned=True))
        members.append(pb.fit_laplace(net, x, y, epochs=300, seed=k, progress=False))
    ens = pb.Ensemble(members)
    pred = ens.predict(x_test, num_samples=200)
    lpd = ens.log_predictive_density(x_test, y_test)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .posterior import Posterior
from .predictive import Prediction, predictive_log_likelihood, summarize_draws
from ..utils.validation import check_int

__all__ = ["Ensemble"]


class _PooledDraws:
    """Per-draw predictive distributions of all members, stacked on the draw axis, in the form
    :func:`summarize_draws` reads (``loc``/``scale`` or ``probs``)."""

    def __init__(self, task: str, preds: Sequence[Prediction]):
        if task == "regression":
            self.loc = torch.cat([p.mean_draws for p in preds], 0)
            self.scale = torch.cat([p.noise_draws.expand_as(p.mean_draws) for p in preds], 0)
        else:
            probs = torch.cat([p.prob_draws for p in preds], 0)
            self.probs = probs[..., 1] if task == "binary" else probs


class Ensemble:
    """The equally weighted mixture of ``members`` (fitted :class:`~pyrobnn.infer.posterior.Posterior`
    objects of one task: regression, binary or multiclass); see the module docstring for the
    maths.  ``predict`` and ``log_predictive_density`` take the arguments of a single
    posterior's and pool the members' draws."""

    def __init__(self, members: Sequence[Posterior]):
        members = list(members) if not isinstance(members, Posterior) else [members]
        if not members:
            raise ValueError("members must hold at least one fitted posterior, got none")
        for i, m in enumerate(members):
            if not isinstance(m, Posterior):
                raise TypeError(f"members[{i}] must be a fitted posterior (pyrobnn Posterior), got {type(m).__name__}")
        tasks = {m.model.likelihood.task for m in members}
        if len(tasks) > 1:
            raise ValueError(f"members must share one task, got {sorted(tasks)}")
        self.members = members
        self.task = tasks.pop()

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        methods = sorted({m.method for m in self.members})
        return f"Ensemble({len(self)} members, task={self.task!r}, method={'/'.join(methods)})"

    def _seeds(self, seed: int | None) -> list[int | None]:
        return [None if seed is None else seed + k for k in range(len(self))]

    def predict(self, x: torch.Tensor, num_samples: int = 200, batch_size: int = 4096, seed: int | None = 0) -> Prediction:
        """The mixture's posterior predictive at ``x`` from ``num_samples`` draws of every member
        (member k with seed ``seed + k``): a :class:`Prediction` over the pooled draws."""
        check_int("num_samples", num_samples, minimum=1)
        preds = [m.predict(x, num_samples=num_samples, batch_size=batch_size, seed=s)
                 for m, s in zip(self.members, self._seeds(seed))]
        return summarize_draws(self.task, _PooledDraws(self.task, preds))

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, num_samples: int = 200, seed: int | None = 0,
                       batch_size: int = 4096) -> torch.Tensor:
        """Pointwise log p(y_n | x_n, w) for every draw of every member: (members, draws, N)."""
        check_int("num_samples", num_samples, minimum=1)
        parts = [m.log_likelihood(x, y, num_samples=num_samples, seed=s, batch_size=batch_size)
                 for m, s in zip(self.members, self._seeds(seed))]
        parts = [p.reshape(-1, p.shape[-1]) for p in parts]
        counts = [p.shape[0] for p in parts]
        if len(set(counts)) > 1:  # equal weights need equal draws (stored MCMC draws are thinned to about num_samples)
            raise ValueError(f"members gave different numbers of draws {counts} for num_samples={num_samples}; "
                             "pass a num_samples that every member can give exactly")
        return torch.stack(parts, 0)

    def log_predictive_density(self, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        """Pointwise log predictive density of the mixture, (N,): the log of the mean of
        p(y_n | x_n, w) over the pooled draws, i.e. logsumexp over members of their own log
        predictive densities minus log K."""
        ll = self.log_likelihood(x, y, **kw)
        return predictive_log_likelihood(ll.reshape(-1, ll.shape[-1]))

    def member_log_predictive_density(self, x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        """Each member's own pointwise log predictive density, (members, N) (the same draws as
        :meth:`log_predictive_density`)."""
        return torch.stack([predictive_log_likelihood(ll) for ll in self.log_likelihood(x, y, **kw)])
