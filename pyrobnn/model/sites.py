"""How a network's weights map to Pyro sample sites.

Pyro's cost per sample site dominates small networks, so by default a :class:`~pyrobnn.BNN`
puts *all* Bayesian weights into one flat site (``"weights"``, layout ``"packed"``); layouts
``"layer"`` (one site per layer, weight and bias together) and ``"tensor"`` (one site per
tensor, as an idiomatic PyroModule would) are available for comparison.  Every site holds a
flat vector; :class:`Segment` records which slice of which site is which tensor, so traces
are unpacked into ``layers.0.weight``-style names for users and exports.

:class:`SitePrior` is the site's distribution: it applies each weight's prior to its slice
(several priors may share a site when they are set per layer) and, where every prior has one,
gives the closed-form KL against a diagonal Gaussian (registered with
:func:`torch.distributions.kl.register_kl`, used by ``TraceMeanField_ELBO``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro.distributions import Independent, Normal, TorchDistribution
from torch.distributions import constraints
from torch.distributions.kl import register_kl

from .priors import Prior

LAYOUTS = ("packed", "layer", "tensor")


@dataclass(frozen=True)
class Segment:
    """One weight tensor inside a site: ``site[..., start:stop].view(shape)``."""

    name: str  # e.g. "layers.0.weight"
    layer: int  # index of the layer in BNN.layers
    site: str
    start: int
    stop: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class PriorPart:
    """A contiguous run ``site[start:stop]`` governed by ``prior``, whose own per-weight
    hyperparameters for it are ``prior_start:prior_stop``."""

    prior: Prior
    start: int
    stop: int
    prior_start: int
    prior_stop: int

    def prior_index(self):
        if not self.prior.per_weight:
            return None
        return slice(self.prior_start, self.prior_stop)


class SitePrior(TorchDistribution):
    """Distribution of one flat weight site: a product of per-slice priors.

    ``event_shape`` is ``(num_weights,)``; ``log_prob`` sums the elementwise log-densities
    of the parts.  Improper when any part is :class:`~pyrobnn.priors.Flat`.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, parts: tuple[PriorPart, ...], num_weights: int, batch_shape=torch.Size(),
                 validate_args=None):
        self.parts = parts
        self.num_weights = num_weights
        super().__init__(torch.Size(batch_shape), torch.Size((num_weights,)), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        return SitePrior(self.parts, self.num_weights, batch_shape)

    def _whole(self, part):
        return part.start == 0 and part.stop == self.num_weights

    def log_prob(self, value, given: dict | None = None):
        """Σ of every part's prior log density.  ``given`` maps id(prior) to hyperparameter
        tensors ({"scale": (C, 1), ...}) that replace that prior's stored ones (hyperparameters
        sampled under a hyperprior)."""
        total = None
        for part in self.parts:
            v = value if self._whole(part) else value[..., part.start:part.stop]
            over = given.get(id(part.prior)) if given else None
            if over:
                lp = part.prior.log_prob_at(v, **over).sum(-1)
            else:
                lp = part.prior.log_prob_sum(v, part.prior_index())
            total = lp if total is None else total + lp
        if not self.batch_shape:
            return total
        return total.expand(torch.broadcast_shapes(total.shape, self.batch_shape))

    def kl_normal(self, loc, scale):
        total = None
        for part in self.parts:
            sl = slice(part.start, part.stop)
            kl = part.prior.kl_normal(loc[..., sl], scale[..., sl], part.prior_index()).sum(-1)
            total = kl if total is None else total + kl
        return total

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            pieces = [p.prior.sample(shape + (p.stop - p.start,), p.prior_index()) for p in self.parts]
        return torch.cat(pieces, -1)

    @property
    def proper(self) -> bool:
        return all(p.prior.proper for p in self.parts)


@register_kl(Independent, SitePrior)
def _kl_independent_normal_siteprior(q, p):
    base = q.base_dist
    if not isinstance(base, Normal) or q.reinterpreted_batch_ndims != 1:
        raise NotImplementedError
    return p.kl_normal(base.loc, base.scale)
