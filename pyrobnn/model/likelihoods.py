"""Likelihoods: from network output to the observation site.

Each likelihood declares how many network outputs it needs (:meth:`Likelihood.num_outputs`),
any latent sites of its own (the learned noise of :class:`Gaussian`), and one function,
:meth:`Likelihood.distribution`, that both the Pyro model and the vectorised predictive use,
so the two can never disagree; :meth:`Likelihood.log_prob_sum` is its summed log-density in
one fused expression for training loops (tests/test_torch_elbo.py checks it against
``distribution(...).log_prob``).  In the model the observations sit in
``pyro.plate("data", size=N, subsample=...)``: with a minibatch of B rows the log-likelihood
is scaled by N/B, which makes minibatch ELBOs unbiased (Blundell et al. 2015, eq. 8).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.config import Configurable
from ..utils.validation import check_bool, check_int, check_number
from .priors import normal_log_prob_sum

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Categorical"]


class Likelihood(Configurable, nn.Module):
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

    def log_prob_sum(self, out: torch.Tensor, latents: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """Σ_n log p(y_n | out_n), summed over every example (and every leading sample dim of
        ``out``): the observation site's log-likelihood, as :meth:`distribution` gives it.
        Subclasses compute it directly where a fused form exists (one kernel per step in a
        training loop instead of a distribution object)."""
        return self.distribution(out, latents).log_prob(y).sum()

    def check_targets(self, y: torch.Tensor, name: str = "y") -> None:
        """Raise ValueError (naming the argument ``name``) if ``y`` cannot be observed under this
        likelihood."""

    def prepare_targets(self, y: torch.Tensor, dtype: torch.dtype | None = None, name: str = "y") -> torch.Tensor:
        """``y`` checked (:meth:`check_targets`) and in the dtype the observation site takes
        (``dtype``, the model's floating dtype, for real-valued targets).  Returns a new tensor
        when a conversion is needed; the caller's is never changed."""
        self.check_targets(y, name)
        return self.observed_form(y, dtype)

    def observed_form(self, y: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Checked targets ``y`` in the dtype the observation site takes (no checks; a new
        tensor when converted)."""
        return y

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
        learned = check_bool("Gaussian likelihood learned", learned)
        heteroscedastic = check_bool("Gaussian likelihood heteroscedastic", heteroscedastic)
        if learned and heteroscedastic:
            raise ValueError("Gaussian likelihood: choose learned=True or heteroscedastic=True, not both")
        scale = check_number("Gaussian likelihood scale", scale, lo=0, lo_open=True)
        noise_prior_scale = check_number("Gaussian likelihood noise_prior_scale", noise_prior_scale, lo=0, lo_open=True)
        min_scale = check_number("Gaussian likelihood min_scale", min_scale, lo=0)
        self.learned, self.heteroscedastic = learned, heteroscedastic
        self.register_buffer("scale", torch.tensor(scale))
        self.register_buffer("noise_prior_scale", torch.tensor(noise_prior_scale))
        self.register_buffer("min_scale", torch.tensor(min_scale))

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

    def log_prob_sum(self, out, latents, y):
        if self.learned or self.heteroscedastic:
            return super().log_prob_sum(out, latents, y)
        lp = normal_log_prob_sum(y, out[..., 0], self.scale)  # one per leading sample index
        return lp if lp.dim() == 0 else lp.sum()

    def check_targets(self, y, name="y"):
        if not torch.is_floating_point(y) or y.dim() != 1:
            hint = f" (use {name}.squeeze(-1))" if y.dim() == 2 and y.shape[1] == 1 else ""
            raise ValueError(f"{name} must be real-valued targets of shape (N,) for the Gaussian likelihood, got dtype "
                             f"{y.dtype} shape {tuple(y.shape)}{hint}")

    def observed_form(self, y, dtype=None):
        return y if dtype is None else y.to(dtype)

    def extra_repr(self):
        return f"noise={self.mode}, scale={float(self.scale):.4g}"


class Bernoulli(Likelihood):
    """Binary targets in {0, 1}; one network output, the logit."""

    task = "binary"

    def num_outputs(self):
        return 1

    def distribution(self, out, latents):
        return dist.Bernoulli(logits=out[..., 0])

    def log_prob_sum(self, out, latents, y):
        logits = out[..., 0]
        return -F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype).expand_as(logits), reduction="sum")

    def check_targets(self, y, name="y"):
        """Targets of shape (N,) with values 0 and 1: floats, integers or bools (integer and bool
        labels are what data loaders and comparisons give; :meth:`prepare_targets` turns them into
        floats for the Bernoulli site)."""
        if y.dim() != 1:
            raise ValueError(f"{name} must have shape (N,) for the Bernoulli likelihood, got shape {tuple(y.shape)}")
        if torch.is_complex(y):
            raise ValueError(f"{name} must hold values 0 or 1 for the Bernoulli likelihood, got dtype {y.dtype}")
        if y.dtype != torch.bool:
            bad = int(((y != 0) & (y != 1)).sum())
            if bad:
                first = y[(y != 0) & (y != 1)][0].item()
                raise ValueError(f"{name} must hold values 0 or 1 for the Bernoulli likelihood; {bad} value"
                                 f"{'s are' if bad > 1 else ' is'} not (e.g. {first!r})")

    def observed_form(self, y, dtype=None):
        if dtype is None:
            dtype = y.dtype if torch.is_floating_point(y) else torch.get_default_dtype()
        return y.to(dtype)


class Categorical(Likelihood):
    """Class labels 0..K−1; K network outputs, the logits."""

    task = "multiclass"

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = check_int("Categorical likelihood num_classes", num_classes, 2, maximum=2**31 - 1)

    def num_outputs(self):
        return self.num_classes

    def distribution(self, out, latents):
        return dist.Categorical(logits=out)

    def log_prob_sum(self, out, latents, y):
        # log softmax(out)[y] summed: the negative of the summed cross-entropy
        return -F.cross_entropy(out.reshape(-1, out.shape[-1]), y.expand(out.shape[:-1]).reshape(-1), reduction="sum")

    def check_targets(self, y, name="y"):
        if torch.is_floating_point(y) or torch.is_complex(y) or y.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class labels 0..{self.num_classes - 1} for the Categorical "
                             f"likelihood, got dtype {y.dtype} (convert with {name}.long() if the values are whole)")
        if y.dim() != 1:
            raise ValueError(f"{name} must have shape (N,) for the Categorical likelihood (one label per row), got "
                             f"shape {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"Categorical likelihood: labels must lie in 0..{self.num_classes - 1}, "
                             f"got range {int(y.min())}..{int(y.max())} in {name}")

    def observed_form(self, y, dtype=None):
        return y.long()

    def extra_repr(self):
        return f"num_classes={self.num_classes}"
