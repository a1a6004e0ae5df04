"""Lower-variance ELBO estimators for Gaussian guides on linear layers: the local
reparameterisation trick and Flipout.

With a diagonal Gaussian guide q(W) = Π N(μ_ij, σ_ij²), one weight sample per minibatch makes
the examples' gradient noise perfectly correlated, so the variance of the minibatch gradient
does not fall as 1/B.  Both estimators below give every example its own weight perturbation
at the cost of about one extra matrix product per layer, and both have the *same expectation*
as the plain estimator F = π·KL[q || p] − (N/B) Σ_n E_q[log p(y_n | x_n, W)], because each
example's term depends only on the distribution of that example's path through the net.

* **Local reparameterisation** (Kingma, Salimans & Welling 2015): for an input row h (fixed
  given the earlier layers) the pre-activations a = W h + b are Gaussian under q, with

      E[a_j] = Σ_i μ_ji h_i + μ_bj,     Var[a_j] = Σ_i σ_ji² h_i² + σ_bj²,

  so they are sampled directly, a = E[a] + √Var[a] ∘ ε with ε ~ N(0, I) per example and unit.
  No weight matrix is sampled; the KL term is therefore the closed form KL[q || p] where the
  prior has one, else the Monte-Carlo log q(w) − log p(w) at one independent draw w ~ q (an
  unbiased estimate either way).
* **Flipout** (Wen et al. 2018): one perturbation ΔW = σ ∘ E (E ~ N(0, I)) is shared by the
  minibatch and decorrelated per example by random signs r_n ∈ {±1}^in, s_n ∈ {±1}^out:

      a_n = μ_W h_n + μ_b + ((ΔW (h_n ∘ r_n)) ∘ s_n) + Δb,

  which for each example is distributed exactly as W h_n + b with W ~ q (the sign flips leave
  a symmetric perturbation's distribution unchanged).  The KL is the Monte-Carlo term at
  w = μ + ΔW (as ``Trace_ELBO`` computes it) — or the closed form with ``analytic_kl``.

Layers: every Bayesian layer must be :class:`~pyrobnn.Linear` (a convolution or another layer
type raises ``ValueError``); deterministic layers and activations run as usual.  The guide must
be Gaussian on every weight site (:class:`~pyrobnn.guides.MeanField` or
:class:`~pyrobnn.guides.ARD`), and the likelihood must have no latent sites of its own.  The
model and guide are read, never traced by Pyro, so these estimators run in plain PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .elbo import ElboTerms

__all__ = ["LocalEstimator", "LOCAL_ESTIMATORS", "check_local_estimator"]

#: estimator name → the kind of per-example noise it gives
LOCAL_ESTIMATORS = ("local_reparam", "flipout")


def check_local_estimator(kind: str, model, guide) -> None:
    """Raise ``ValueError`` naming what does not fit ``kind`` in ``model`` and ``guide``."""
    if kind not in LOCAL_ESTIMATORS:
        raise ValueError(f"elbo must be one of {LOCAL_ESTIMATORS} here, got {kind!r}")
    if not (hasattr(model, "unpack") and hasattr(model, "layers") and hasattr(model, "site_sizes")):
        raise ValueError(f"elbo={kind!r} needs a pyrobnn BNN as the model, got {type(model).__name__}")
    from ..model.layers import BayesianLayer, Linear

    for i, layer in enumerate(model.layers):
        if isinstance(layer, BayesianLayer) and layer.bayesian and not isinstance(layer, Linear):
            raise ValueError(f"elbo={kind!r} supports Bayesian Linear layers only; layer {i} is "
                             f"{type(layer).__name__} (use elbo='trace' for this network)")
    if model.likelihood.latent_shapes():
        raise ValueError(f"elbo={kind!r} needs a likelihood without latent sites; "
                         f"{type(model.likelihood).__name__} samples {sorted(model.likelihood.latent_shapes())}")
    if type(guide).__name__ not in ("MeanField", "ARD") or not hasattr(guide, "loc_scale"):
        raise ValueError(f"elbo={kind!r} needs a Gaussian guide on every weight (pyrobnn.guides.MeanField or ARD), "
                         f"got {type(guide).__name__}")


class LocalEstimator:
    """The ``elbo="local_reparam"`` / ``"flipout"`` estimator of one minibatch's ELBO terms
    (see the module docstring); :func:`pyrobnn.infer.elbo.elbo_terms` dispatches to
    :meth:`terms`.  ``analytic_kl``: use the closed-form KL where every prior has one (always
    attempted for local reparameterisation, which samples no weights)."""

    num_particles = 1

    def __init__(self, kind: str, analytic_kl: bool = False):
        if kind not in LOCAL_ESTIMATORS:
            raise ValueError(f"kind must be one of {LOCAL_ESTIMATORS}, got {kind!r}")
        self.kind = kind
        self.analytic_kl = bool(analytic_kl) or kind == "local_reparam"

    def terms(self, model, guide, args, kwargs, kl_weight: float = 1.0) -> ElboTerms:
        x, y = args[0], args[1]
        n_data = kwargs.get("n_data") or x.shape[0]
        locs, scales, deltas, kl = {}, {}, {}, 0.0
        for site in model.site_sizes:
            loc, scale = guide.loc_scale(site)
            locs[site], scales[site] = loc, scale
            eps = torch.randn_like(loc)
            delta = scale * eps
            deltas[site] = delta
            kl = kl + self._site_kl(model, site, loc, scale, loc + delta, eps)
        mu = model.unpack(locs)
        out = self._network(model, x, mu, model.unpack({s: v.square() for s, v in scales.items()}),
                            model.unpack(deltas))
        nll = -model.likelihood.distribution(out, {}).log_prob(y).sum() * (n_data / x.shape[0])
        return ElboTerms(nll + kl_weight * kl, nll, kl)

    def _site_kl(self, model, site, loc, scale, w, eps):
        prior = model.site_prior(site)
        if self.analytic_kl:
            try:
                return prior.kl_normal(loc, scale).sum()
            except NotImplementedError:
                pass
        # log q(w) − log p(w) at w = loc + scale·eps (the constant −½ log 2π cancels nowhere: keep it)
        log_q = (-0.5 * eps.square() - scale.log()).sum() - 0.5 * eps.numel() * torch.log(
            torch.tensor(2.0 * torch.pi, dtype=loc.dtype, device=loc.device))
        return log_q - prior.log_prob(w).sum()

    def _network(self, model, x, mu, var, delta):
        from ..model.layers import BayesianLayer

        h = x
        for i, layer in enumerate(model.layers):
            if not (isinstance(layer, BayesianLayer) and layer.bayesian):
                h = layer(h)
                continue
            w, b = f"layers.{i}.weight", f"layers.{i}.bias"
            mean = F.linear(h, mu[w], mu.get(b))
            if self.kind == "local_reparam":
                v = F.linear(h.square(), var[w], var.get(b))
                h = mean + v.clamp_min(0.0).sqrt() * torch.randn_like(mean)
            else:
                r = torch.randint(0, 2, h.shape, device=h.device).to(h.dtype).mul_(2).sub_(1)
                s = torch.randint(0, 2, mean.shape, device=h.device).to(h.dtype).mul_(2).sub_(1)
                pert = F.linear(h * r, delta[w]) * s
                h = mean + pert + (delta[b] if b in delta else 0.0)
        return h
