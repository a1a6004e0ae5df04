"""The ELBO, split into its data term and its complexity term.

:func:`elbo_terms` runs Pyro's own ``Trace_ELBO`` / ``TraceMeanField_ELBO`` trace machinery
(guide trace, model replayed on it, log-probabilities, vectorised particles) and returns the
negative log-likelihood and the KL separately, so training can show both and can scale the
complexity term per minibatch (Blundell et al. 2015, eq. 8–9):

    F_i = w_i · KL[q || p] − E_q[log p(D_i | w)] · N / B,

where ``w_i = M π_i`` multiplies every latent site of model and guide alike and N/B comes
from ``pyro.plate("data", size=N, subsample_size=B)``.  With ``analytic=False`` the KL is the
Monte-Carlo estimate log q(w) − log p(w) at the sampled w (Blundell eq. 2), exactly what
``Trace_ELBO`` computes; with ``analytic=True`` it is the closed form where one is
registered and the Monte-Carlo estimate otherwise (``TraceMeanField_ELBO``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled
from torch.distributions import kl_divergence

__all__ = ["ElboTerms", "elbo_terms", "make_elbo", "ELBOS"]

#: the minibatch ELBO estimators: Pyro's ``Trace_ELBO`` (Monte-Carlo KL), ``TraceMeanField_ELBO``
#: (closed-form KL where it exists), and the per-example-noise estimators of
#: :mod:`pyrobnn.infer.torch_elbo` for Gaussian guides on linear layers
ELBOS = ("trace", "meanfield", "local_reparam", "flipout")


@dataclass
class ElboTerms:
    """``nll`` = −E_q[log p(D_batch | w)] · N/B and ``kl`` = KL[q || p] estimates (unscaled);
    ``loss = nll + kl_weight · kl``."""

    loss: torch.Tensor
    nll: torch.Tensor
    kl: torch.Tensor


def make_elbo(kind: str = "trace", num_particles: int = 1, vectorize_particles: bool = True,
              max_plate_nesting: float = float("inf")):
    """The estimator ``kind`` (one of :data:`ELBOS`): a Pyro ELBO object for "trace"
    (Monte-Carlo KL) or "meanfield" (analytic KL), a
    :class:`~pyrobnn.infer.torch_elbo.TorchEstimator` for "local_reparam" and "flipout"
    (one particle)."""
    if kind not in ELBOS:
        raise ValueError(f"elbo must be one of {ELBOS}, got {kind!r}")
    if kind in ("local_reparam", "flipout"):
        if int(num_particles) != 1:
            raise ValueError(f"elbo={kind!r} gives every example its own noise already; it takes num_particles=1, "
                             f"got {num_particles}")
        from .torch_elbo import TorchEstimator

        return TorchEstimator(kind)
    cls = Trace_ELBO if kind == "trace" else TraceMeanField_ELBO
    return cls(num_particles=int(num_particles), vectorize_particles=bool(vectorize_particles) and num_particles > 1,
               max_plate_nesting=max_plate_nesting)


def elbo_terms(elbo, model, guide, args=(), kwargs=None, kl_weight: float = 1.0) -> ElboTerms:
    """Loss, NLL and KL of one ELBO estimate (averaged over ``elbo.num_particles``)."""
    kwargs = kwargs or {}
    if hasattr(elbo, "terms"):  # a plain-torch estimator (pyrobnn.infer.torch_elbo)
        return elbo.terms(model, guide, args, kwargs, kl_weight)
    analytic = isinstance(elbo, TraceMeanField_ELBO)
    nll = 0.0
    kl = 0.0
    for model_trace, guide_trace in elbo._get_traces(model, guide, args, kwargs):
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                nll = nll - site["log_prob_sum"]
                continue
            gsite = guide_trace.nodes[name]
            if is_validation_enabled() and not gsite["fn"].has_rsample:
                raise ValueError(f"guide site {name!r} is not reparameterisable; pyrobnn's ELBO needs rsample")
            if analytic:
                try:
                    kl_site = kl_divergence(gsite["fn"], site["fn"])
                    if gsite["scale"] is not None and not (isinstance(gsite["scale"], float) and gsite["scale"] == 1.0):
                        kl_site = kl_site * gsite["scale"]
                    kl = kl + kl_site.sum()
                    continue
                except NotImplementedError:
                    pass
            kl = kl + gsite["log_prob_sum"] - site["log_prob_sum"]
        for name, gsite in guide_trace.nodes.items():
            if gsite["type"] == "sample" and name not in model_trace.nodes:
                kl = kl + gsite["log_prob_sum"]
    p = elbo.num_particles
    nll = nll / p
    kl = kl / p
    return ElboTerms(nll + kl_weight * kl, nll, kl)
