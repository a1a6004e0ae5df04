r"""Estimator (b): the full mean-field posterior of BDCMF by SVI (Xiao et al. 2019, REFERENCE §4).

The variational family is ``q(U) q(G) q(V) q_φ(Z | X)`` with independent Gaussians
``q(u_i) = N(m_i, diag s_i²)`` (likewise g_k, v_j) and the amortised encoder for z_j
(:func:`.model.mean_field_guide`).  SVI maximises

.. math::

    \mathcal{L}(q) = E_q\big[\log p(R, S, X, U, G, Z, V)\big] - E_q\big[\log q(U, G, Z, V)\big]

over the variational parameters, φ and the decoder's θ together, with one reparametrised draw
per step (Pyro's ``Trace_ELBO``) and Adam.  The rating and social likelihoods cover every
entry exactly (:mod:`.als`); the content likelihood is estimated on ``batch_size`` items per
step, scaled by ``M / batch_size``.  The means start at the point estimate of
:func:`.point.fit_point` (same settings) and the networks continue from it; the scales start at
``init_scale``.  The fit's ``u``, ``v``, ``g`` are the posterior means and ``u_scale`` etc. the
posterior standard deviations, from which :meth:`.fit.BDCMFFit.score_std` gives each score's.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from pyro.infer import Trace_ELBO
from torch import Tensor
from tqdm.auto import tqdm

from ...utils.rng import seeded
from .fit import BDCMFFit
from .model import Content, MeanFieldParams, bdcmf_model, mean_field_guide
from .point import fit_point
from .settings import BDCMFSettings

__all__ = ["fit_full", "elbo_terms"]


def elbo_terms(ratings, social, content: Content | None, n_users: int, n_items: int, s: BDCMFSettings, decoder,
               params: MeanFieldParams, encoder) -> tuple[tuple, dict]:
    """The model and guide arguments of one ELBO evaluation (``(args, kwargs)`` for
    ``Trace_ELBO().differentiable_loss(bdcmf_model, mean_field_guide, *args, **kwargs)``)."""
    return (ratings, social, content, n_users, n_items, s, decoder), {"params": params, "encoder": encoder}


def fit_full(ratings: Tensor, n_users: int, n_items: int, settings: BDCMFSettings, social: Tensor | None = None,
             content_counts: Tensor | None = None, progress: bool = False, start: BDCMFFit | None = None) -> BDCMFFit:
    """Fit the mean-field posterior by SVI (module docstring), starting from ``start`` (a point
    fit with the same settings; fitted by :func:`.point.fit_point` when None)."""
    s = settings
    if start is None:
        start = fit_point(ratings, n_users, n_items, replace(s, estimator="point"), social, content_counts, progress)
    dev = ratings.device
    with seeded(s.seed + 1):
        content = Content.of(content_counts, dev) if s.uses_content else None
        init = {"u": start.u, "v": start.v}
        if s.uses_social:
            init["g"] = start.g
        params = MeanFieldParams(init, s.init_scale).to(dev)
        modules = [params] + [m for m in (start.encoder, start.decoder) if m is not None]
        opt = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=s.full_lr)
        elbo = Trace_ELBO()
        args, kwargs = elbo_terms(ratings, social if s.uses_social else None, content, n_users, n_items, s,
                                  start.decoder, params, start.encoder)
        history = list(start.history)
        bar = tqdm(range(s.full_steps), desc=f"SVI {s.method}", unit="step", disable=not progress, dynamic_ncols=True)
        t0 = time.perf_counter()
        for step in bar:
            opt.zero_grad()
            loss = elbo.differentiable_loss(bdcmf_model, mean_field_guide, *args, **kwargs)
            loss.backward()
            opt.step()
            if (step + 1) % 10 == 0 or step + 1 == s.full_steps:
                value = -float(loss.detach())
                history.append({"step": step + 1, "elbo": value, "seconds": time.perf_counter() - t0})
                bar.set_postfix(elbo=f"{value:.4g}")
    with torch.no_grad():
        u, us = (t.detach().clone() for t in params.loc_scale("u"))
        v, vs = (t.detach().clone() for t in params.loc_scale("v"))
        g = gs = None
        if s.uses_social:
            g, gs = (t.detach().clone() for t in params.loc_scale("g"))
    return BDCMFFit(replace(s, estimator="full"), u, v, g, us, vs, gs, start.encoder, start.decoder, history)
