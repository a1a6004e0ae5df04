"""Likelihoods: from network output to the observation site.

Each likelihood declares how many network outputs it needs (:meth:`Likelihood.num_outputs`),
any latent sites of its own (the learned noise of :class:`Gaussian`), and one function,
:meth:`Likelihood.distribution`, that both the Pyro model and the vectorised predictive use,
so the two can never disagree.  In the model the observations sit in
``pyro.plate("data", size=N, subsample=...)``: with a minibatch of B rows the log-likelihood
is scaled by N/B, which makes minibatch ELBOs unbiased (Blundell et al. 2015, eq. 8).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Categorical"]


class Likelihood(nn.Module):
    """Base class.  ``task`` is "regression", "binary" or "multiclass"."""

    task = "regression"

    def num_outputs(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_latents(self) -> dict[str, torch.Tensor]:
        """Draw this likelihood's own latent sites inside the model (none by default)."""
        return {}

    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def distribution(self, out: torch.Tensor, latents: dict[str, torch.Tensor]):  # pragma: no cover
        """Distribution of y given network output ``out`` of shape (*S, N, k)."""
        raise NotImplementedError

    def check_targets(self, y: torch.Tensor) -> None:
        """Raise ValueError if ``y`` cannot be observed under this likelihood."""

    def forward(self, out, y=None, n_data=None, latents=None):
        n = out.shape[-2]
        size = n if n_data is None else int(n_data)
        subsample = _arange(n, out.device)
        with pyro.plate("data", size=size, subsample=subsample):
            return pyro.sample("obs", self.distribution(out, latents or {}), obs=y)


_ARANGE_CACHE: dict = {}


def _arange(n, device):
    key = (n, device)
    t = _ARANGE_CACHE.get(key)
    if t is None:
        t = _ARANGE_CACHE[key] = torch.arange(n, device=device)
    return t


class Gaussian(Likelihood):
    """y ~ N(f(x), σ²) with fixed σ (``scale=``), learned σ (``learned=True``, a latent site
    ``"noise"`` with prior LogNormal(log ``scale``, ``noise_prior_scale``)) or heteroscedastic
    σ(x) = softplus(g(x)) + ``min_scale`` from a second network output."""

    task = "regression"

    def __init__(self, scale: float = 1.0, learned: bool = False, heteroscedastic: bool = False,
                 noise_prior_scale: float = 1.0, min_scale: float = 1e-3):
        super().__init__()
        if learned and heteroscedastic:
            raise ValueError("Gaussian likelihood: choose learned=True or heteroscedastic=True, not both")
        scale = float(scale)
        if not scale > 0:
            raise ValueError(f"Gaussian likelihood scale must be > 0, got {scale!r}")
        self.learned, self.heteroscedastic = bool(learned), bool(heteroscedastic)
        self.register_buffer("scale", torch.tensor(scale))
        self.register_buffer("noise_prior_scale", torch.tensor(float(noise_prior_scale)))
        self.register_buffer("min_scale", torch.tensor(float(min_scale)))

    @property
    def mode(self) -> str:
        return "learned" if self.learned else "heteroscedastic" if self.heteroscedastic else "fixed"

    def num_outputs(self):
        return 2 if self.heteroscedastic else 1

    def noise_prior(self):
        return dist.LogNormal(torch.log(self.scale), self.noise_prior_scale)

    def latent_shapes(self):
        return {"noise": ()} if self.learned else {}

    def sample_latents(self):
        if not self.learned:
            return {}
        return {"noise": pyro.sample("noise", self.noise_prior())}

    def distribution(self, out, latents):
        loc = out[..., 0]
        if self.heteroscedastic:
            scale = F.softplus(out[..., 1]) + self.min_scale
        elif self.learned:
            scale = latents["noise"]
        else:
            scale = self.scale
        return dist.Normal(loc, scale)

    def check_targets(self, y):
        if not torch.is_floating_point(y) or y.dim() != 1:
            raise ValueError(f"Gaussian likelihood needs real targets of shape (N,), got dtype {y.dtype} "
                             f"shape {tuple(y.shape)}")

    def extra_repr(self):
        return f"noise={self.mode}, scale={float(self.scale):.4g}"


class Bernoulli(Likelihood):
    """Binary targets in {0, 1}; one network output, the logit."""

    task = "binary"

    def num_outputs(self):
        return 1

    def distribution(self, out, latents):
        return dist.Bernoulli(logits=out[..., 0])

    def check_targets(self, y):
        if y.dim() != 1 or not bool(((y == 0) | (y == 1)).all()):
            raise ValueError("Bernoulli likelihood needs targets of shape (N,) with values 0 or 1")


class Categorical(Likelihood):
    """Class labels 0..K−1; K network outputs, the logits."""

    task = "multiclass"

    def __init__(self, num_classes: int):
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"Categorical likelihood needs num_classes >= 2, got {num_classes!r}")
        self.num_classes = int(num_classes)

    def num_outputs(self):
        return self.num_classes

    def distribution(self, out, latents):
        return dist.Categorical(logits=out)

    def check_targets(self, y):
        if y.dtype not in (torch.int64, torch.int32) or y.dim() != 1:
            raise ValueError(f"Categorical likelihood needs integer labels of shape (N,), got dtype {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"Categorical likelihood: labels must lie in 0..{self.num_classes - 1}, "
                             f"got range {int(y.min())}..{int(y.max())}")

    def extra_repr(self):
        return f"num_classes={self.num_classes}"
