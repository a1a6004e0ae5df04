"""One posterior shape for SVI and MCMC.

A :class:`Posterior` holds the model, and either a fitted guide (SVI) or stored draws (MCMC).
Draws always come in the ArviZ layout ``(chain, draw, *site_shape)`` — SVI draws are one
chain — so prediction, export and reports do not care which inference made them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pyro import poutine

from .checkpoint import seeded
from .predictive import Prediction, predictive_log_likelihood, summarize_draws

__all__ = ["Posterior"]


@dataclass
class Posterior:
    """Result of :func:`~pyrobnn.fit_svi` or :func:`~pyrobnn.fit_nuts`.

    Attributes: ``model`` (the BNN), ``method`` ("svi", "nuts" or "hmc"), ``guide`` (SVI),
    ``samples`` (MCMC: site → (chain, draw, *shape)), ``history`` (SVI: per-epoch dicts with
    loss, nll, kl, seconds), ``sample_stats`` (MCMC: name → (chain, draw)), ``info`` (seed,
    settings, timings, specs).
    """

    model: object
    method: str
    guide: object = None
    samples: dict | None = None
    history: list = field(default_factory=list)
    sample_stats: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    #: (args, kwargs) the guide can be called with, for guides without ``sample_posterior``
    example_args: tuple = ((), {})

    # ------------------------------------------------------------------ draws
    @property
    def num_stored(self) -> int:
        if self.samples is None:
            return 0
        v = next(iter(self.samples.values()))
        return v.shape[0] * v.shape[1]

    def draws(self, num_samples: int | None = None, seed: int | None = None) -> dict[str, torch.Tensor]:
        """Posterior draws of every latent site, ``(chain, draw, *shape)``.

        MCMC: the stored draws (thinned evenly across each chain to about ``num_samples`` in
        total if given).  SVI: ``num_samples`` fresh draws from the guide (default 1000) as
        one chain; ``seed`` makes them reproducible."""
        if self.samples is not None:
            if num_samples is None or num_samples >= self.num_stored:
                return self.samples
            v = next(iter(self.samples.values()))
            per_chain = max(1, int(num_samples) // v.shape[0])
            idx = torch.linspace(0, v.shape[1] - 1, per_chain).round().long()
            return {k: s[:, idx.to(s.device)] for k, s in self.samples.items()}
        if self.guide is None:
            raise ValueError("this posterior has neither a guide nor stored samples")
        n = 1000 if num_samples is None else int(num_samples)
        if n < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
        with seeded(seed):
            flat = self._guide_draws(n)
        return {k: v.unsqueeze(0) for k, v in flat.items()}

    @torch.no_grad()
    def _guide_draws(self, n: int) -> dict[str, torch.Tensor]:
        if hasattr(self.guide, "sample_posterior"):
            return self.guide.sample_posterior(n)
        # any other Pyro guide (e.g. an autoguide): call it n times on a one-row batch
        args, kwargs = self.example_args
        with poutine.block():
            samples = [self.guide(*args, **kwargs) for _ in range(n)]
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    @staticmethod
    def flatten(draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(chain, draw, *shape) → (chain·draw, *shape)."""
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predictive_distribution(self, x: torch.Tensor, draws: dict[str, torch.Tensor]):
        flat = self.flatten(draws)
        x = x.to(device=self.model.device, dtype=self.model.dtype)
        flat = {k: v.to(device=self.model.device) for k, v in flat.items()}
        return self.model.predictive_distribution(x, flat)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor | None, draws: dict,
                 batch_size: int = 4096) -> tuple[Prediction, torch.Tensor | None]:
        """One vectorised predictive pass per batch of ``batch_size`` inputs that gives both the
        :class:`Prediction` at ``x`` and, when ``y`` is given, the pointwise log-likelihood
        log p(y_n | x_n, w) for every draw, (chain, draw, N) (else None)."""
        if hasattr(self.model, "prepare_data"):  # x must fit the network, y the likelihood (ValueError naming them)
            x, y = self.model.prepare_data(x, y)
        task = self.model.likelihood.task
        c, s = next(iter(draws.values())).shape[:2]
        if y is not None:
            y = y.to(self.model.device)
            y = y if task == "multiclass" else y.to(self.model.dtype)
        parts, lls = [], []
        for start in range(0, x.shape[0], batch_size):
            d = self.predictive_distribution(x[start:start + batch_size], draws)
            parts.append(summarize_draws(task, d))
            if y is not None:
                lls.append(d.log_prob(y[start:start + batch_size]).reshape(c, s, -1))
        pred = parts[0] if len(parts) == 1 else _concat_predictions(parts)
        return pred, (torch.cat(lls, -1) if y is not None else None)

    def predict(self, x: torch.Tensor, num_samples: int = 200, draws: dict | None = None,
                batch_size: int = 4096, seed: int | None = 0) -> Prediction:
        """Posterior predictive at ``x`` from ``num_samples`` draws, all draws in one vectorised
        pass per batch of ``batch_size`` inputs.  Returns a :class:`Prediction` (means,
        variance split, class probabilities and entropies)."""
        draws = self.draws(num_samples, seed=seed) if draws is None else draws
        return self.evaluate(x, None, draws, batch_size)[0]

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, draws: dict | None = None,
                       num_samples: int = 200, seed: int | None = 0, batch_size: int = 4096) -> torch.Tensor:
        """Pointwise log p(y_n | x_n, w) for every draw: (chain, draw, N)."""
        draws = self.draws(num_samples, seed=seed) if draws is None else draws
        return self.evaluate(x, y, draws, batch_size)[1]

    def log_predictive_density(self, x, y, **kw) -> torch.Tensor:
        """Pointwise log posterior-predictive density of (x, y): (N,)."""
        ll = self.log_likelihood(x, y, **kw)
        return predictive_log_likelihood(ll.reshape(-1, ll.shape[-1]))

    # ------------------------------------------------------------------ export
    def to_datatree(self, x=None, y=None, **kwargs):
        """An ArviZ 1.x ``xarray.DataTree`` in the InferenceData schema; see
        :func:`pyrobnn.diagnostics.to_datatree`."""
        from ..diagnostics.export import to_datatree  # export sits downstream of inference

        return to_datatree(self, x, y, **kwargs)


def _concat_predictions(parts: list[Prediction]) -> Prediction:
    out = {}
    for name in Prediction.__dataclass_fields__:
        vals = [getattr(p, name) for p in parts]
        if name == "task":
            out[name] = vals[0]
        elif name == "extra":
            out[name] = {}
        elif vals[0] is None:
            out[name] = None
        else:
            dim = 1 if name in ("mean_draws", "noise_draws", "prob_draws") else 0
            out[name] = torch.cat(vals, dim)
    return Prediction(**out)
