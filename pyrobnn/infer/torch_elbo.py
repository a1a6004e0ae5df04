"""ELBO estimators of a BNN with a Gaussian guide, in plain PyTorch.

For a :class:`~pyrobnn.BNN` whose latent sites are its weights and a Gaussian guide on every
weight (:class:`~pyrobnn.guides.MeanField`, :class:`~pyrobnn.guides.ARD`), the minibatch ELBO

    F = π · KL[q || p] − (N/B) Σ_{n ∈ batch} E_q[log p(y_n | x_n, W)]

is computed here from the guide's (μ, σ) and the network's layers directly, without Pyro's
tracing — which costs more than the arithmetic itself on small networks.  Four estimators:

* ``"trace"`` — one weight sample w = μ + σ ∘ ε for the minibatch and the Monte-Carlo KL
  log q(w) − log p(w): the numbers of Pyro's ``Trace_ELBO`` on the same model and guide, from the
  same random draws (tests/test_torch_elbo.py checks them against
  :func:`pyrobnn.infer.elbo.elbo_terms`).  :func:`~pyrobnn.fit_svi` uses it for ``elbo="trace"``
  whenever :func:`supports` holds, and Pyro's tracing otherwise.
* ``"meanfield"`` — the same sample for the likelihood, the closed-form KL where every prior
  has one (``TraceMeanField_ELBO``'s numbers).
* ``"local_reparam"`` (Kingma, Salimans & Welling 2015): for an input row h (fixed given the
  earlier layers) the pre-activations a = W h + b are Gaussian under q, with

      E[a_j] = Σ_i μ_ji h_i + μ_bj,     Var[a_j] = Σ_i σ_ji² h_i² + σ_bj²,

  so they are sampled directly, a = E[a] + √Var[a] ∘ ε with ε ~ N(0, I) per example and unit.
  Every example gets its own weight noise, so the minibatch gradient's variance falls with B.
  No weight matrix is sampled; the KL is the closed form where the prior has one, else the
  Monte-Carlo term at one independent draw (unbiased either way).
* ``"flipout"`` (Wen et al. 2018): one perturbation ΔW = σ ∘ E (E ~ N(0, I)) shared by the
  minibatch, decorrelated per example by random signs r_n ∈ {±1}^in, s_n ∈ {±1}^out:

      a_n = μ_W h_n + μ_b + ((ΔW (h_n ∘ r_n)) ∘ s_n) + Δb,

  which for each example is distributed exactly as W h_n + b with W ~ q (sign flips leave a
  symmetric perturbation's distribution unchanged).  The KL is the Monte-Carlo term at
  w = μ + ΔW.

All four have the same expectation, because each example's term depends only on the
distribution of that example's path through the network.  The per-example estimators need
every Bayesian layer to be :class:`~pyrobnn.Linear` (a convolution raises ``ValueError``);
deterministic layers and activations run as usual.  The likelihood must have no latent sites of
its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.distributions.transforms import identity_transform

from ..model.priors import standard_normal_log_prob_sum
from .elbo import ElboTerms

__all__ = ["TorchEstimator", "LOCAL_ESTIMATORS", "check_local_estimator", "supports"]

#: the estimators that give every example its own weight noise
LOCAL_ESTIMATORS = ("local_reparam", "flipout")
_KINDS = ("trace", "meanfield") + LOCAL_ESTIMATORS


def supports(model, guide) -> bool:
    """True when this module can compute the ELBO of ``model`` with ``guide``: a BNN whose
    latent sites are its weights, no likelihood latents, and a set-up MeanField or ARD guide
    (exactly those classes) over exactly those sites, unconstrained and outside any plate."""
    if not (hasattr(model, "unpack") and hasattr(model, "site_sizes") and hasattr(model, "network")):
        return False
    if model.likelihood.latent_shapes() or type(guide).__name__ not in ("MeanField", "ARD"):
        return False
    if type(guide).__module__ != "pyrobnn.infer.guides" or not guide.is_setup:
        return False
    sites = guide._sites
    return [s.name for s in sites] == list(model.site_sizes) and all(
        not s.frames and s.transform is identity_transform and s.event_dim == 1 for s in sites)


def check_local_estimator(kind: str, model, guide) -> None:
    """Raise ``ValueError`` naming what does not fit the per-example estimator ``kind`` in
    ``model`` and ``guide``."""
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


class TorchEstimator:
    """The estimator ``kind`` ("trace", "meanfield", "local_reparam" or "flipout"; see the
    module docstring) of one minibatch's ELBO terms; :func:`pyrobnn.infer.elbo.elbo_terms`
    dispatches to :meth:`terms`.

    What a step needs of the model and guide that does not change from step to step (the
    guide's sites in its drawing order, the likelihood, the names of the layers' weights) is
    looked up once, on the first call with a (model, guide) pair, and kept while the estimator
    is called with that pair: a step runs the tensor operations and little else."""

    num_particles = 1

    def __init__(self, kind: str):
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self.kind = kind
        self.analytic_kl = kind in ("meanfield", "local_reparam")
        self._plan = None

    def _plan_for(self, model, guide) -> "_Plan":
        plan = self._plan
        if plan is None or plan.model is not model or plan.guide is not guide:
            plan = self._plan = _Plan(model, guide)
        return plan

    def terms(self, model, guide, args, kwargs, kl_weight: float = 1.0) -> ElboTerms:
        plan = self._plan_for(model, guide)
        x, y = args[0], args[1]
        n_data = kwargs.get("n_data")
        scale = 1.0 if n_data is None else int(n_data) / x.shape[0]
        local = self.kind in LOCAL_ESTIMATORS
        locs, scales, samples, kl = {}, {}, {}, None
        for site in plan.sites:  # the guide's order: the order Pyro's guide draws in
            loc, sd = guide.loc_scale(site)
            eps = torch.randn_like(loc)  # torch.randn(loc.shape, dtype=, device=): the same draws, parsed faster
            w = loc + eps * sd
            samples[site] = w
            if local:
                locs[site], scales[site] = loc, sd
            site_kl = self._site_kl(model, site, loc, sd, w, eps)
            kl = site_kl if kl is None else kl + site_kl
        if local:
            out = self._network(plan, x, model.unpack(locs), model.unpack({s: v.square() for s, v in scales.items()}),
                                model.unpack({s: samples[s] - locs[s] for s in samples}))
        else:
            out = model.network(x, samples)
        # the data plate's N/B on the minibatch's summed log-likelihood
        log_lik = plan.likelihood.log_prob_sum(out, {}, y)
        nll = -log_lik if scale == 1.0 else log_lik * -scale
        if kl is None:
            kl = torch.zeros((), dtype=nll.dtype, device=nll.device)
        return ElboTerms(nll + kl if kl_weight == 1.0 else nll + kl_weight * kl, nll, kl)

    def _site_kl(self, model, site, loc, scale, w, eps):
        prior = model.site_prior(site)
        if self.analytic_kl:
            try:
                return prior.kl_normal(loc, scale)
            except NotImplementedError:  # a prior without a closed form: the Monte-Carlo term below
                pass
        # log q(w) − log p(w) at w = loc + scale·eps, as the guide's ReparamNormal computes log q
        log_q = standard_normal_log_prob_sum(eps, scale)
        return log_q - prior.log_prob(w)

    def _network(self, plan, x, mu, var, delta):
        h = x
        for layer, w, b in plan.layers:
            if w is None:
                h = layer(h)
                continue
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


class _Plan:
    """The parts of a (model, guide) pair that a step reads and that stay fixed during a fit:
    the guide's site names, the likelihood, and for the local estimators the network as a list of
    (layer, weight name, bias name) — a Bayesian layer with the names of its weights in
    ``model.unpack``'s output, or another layer with ``None``."""

    def __init__(self, model, guide):
        self.model, self.guide = model, guide
        self.sites = tuple(guide.site_names)
        self.likelihood = model.likelihood
        self.layers = tuple((layer, w, b) for layer, (w, b) in zip(model.layers, model.weight_keys))
