r"""Estimator (b): the full mean-field posterior of BDCMF (Xiao et al. 2019, REFERENCE §4).

The variational family is ``q(U) q(G) q(V) q_φ(Z | X)`` with independent Gaussians
``q(u_i) = N(m_i, diag s_i²)`` (likewise g_k, v_j) and the amortised encoder for z_j
(:func:`.model.mean_field_guide`); the bound is the ELBO of the Pyro model
:func:`.model.bdcmf_model`,

.. math::

    \mathcal{L}(q) = E_q\big[\log p(R, S, X, U, G, Z, V)\big] - E_q\big[\log q(U, G, Z, V)\big].

It is maximised from the point estimate of :func:`.point.fit_point` (same settings), in one of
two ways (``settings.full_updates``):

``"cavi"``: each epoch maximises ``L`` *exactly* in q(u), then q(g), then q(v), and
then takes ``m_steps`` SGVB steps on φ, θ.  Given the other blocks, the ELBO in ``q(u_i)`` is
``−½ E[u_iᵀ Λ_i u_i] + b_iᵀ E[u_i] + H[q(u_i)]`` with

.. math::

    Λ_i = \sum_j C_{ij} E[v_j v_j^\top] + λ_q \sum_k E_{ik} E[g_k g_k^\top] + λ_u I, \quad
    b_i = \sum_j C_{ij} R_{ij} m_{v_j} + λ_q \sum_k E_{ik} S_{ik} m_{g_k},

``E[v vᵀ] = m mᵀ + diag s²``, whose optimum over diagonal Gaussians is ``m_i = Λ_i⁻¹ b_i``,
``s_ik² = 1/(Λ_i)_kk`` (:func:`.als.gaussian_rows`; the sums over all entries by the
weighted-ALS split of :mod:`.als`).  q(g_k) and q(v_j) are alike, q(v_j) with prior mean
``E[z_j] = μ_j`` (``E_q[log N(v_j | z_j, λ_v⁻¹I)]`` adds ``λ_v I`` to Λ and ``λ_v μ_j`` to b).
The networks' part of ``L`` given q(v) is the point estimator's M-step with ``v = m_v`` (the
``−(λ_v/2)Σ s_v²`` term does not involve φ, θ).

``"svi"`` (default): ``full_steps`` steps of Pyro's ``Trace_ELBO`` (one reparametrised draw) with Adam
(``full_lr``) on all variational parameters and the networks together.

Coordinate ascent run to convergence exposes a property of this model's mean-field optimum
(checked exact against a dense computation in ``tests/test_bdcmf.py``): it prunes latent
dimensions.  The variance of q(v) enters every ``Λ_i`` as an extra ridge
``Σ_j C_ij s_{v_j}²`` — summed over *all* M items, the ψ2-weighted zeros included — and the
variance of q(u) enters every ``Λ_j`` alike; a dimension whose signal is below that ridge
shrinks, which lowers the other block's precision, raises its variance and shrinks the
dimension further.  This is the automatic rank selection of variational Bayesian matrix
factorisation (Nakajima & Sugiyama 2011) with a noise variance of ``1/ψ2 = 100`` on 99% of the
entries, so the threshold is high.  On the planted data of ``benchmarks/results/bdcmf``
(2000 × 4500, K = 10) recall@100 falls from 0.64 after one sweep to 0.18 after 15 while the
ELBO rises, all but one of the ten columns of ``m_u`` collapsing (norms ~1 against ~20), and
it does so with λ_q = 0, λ_g = 1 or 10, λ_v = 1 or 100, ψ2 = 0.1 alike.  SVI from the point
estimate moves towards the same optimum and is stopped after ``full_steps`` steps.

The history records a one-draw ``Trace_ELBO`` estimate of ``L``.  The fit's ``u``, ``v``, ``g``
are posterior means and ``u_scale`` etc. posterior standard deviations, from which
:meth:`.fit.BDCMFFit.score_std` gives each score's.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import Tensor
from tqdm.auto import tqdm

from ...utils.rng import seeded
from .als import gaussian_rows, normal_equations
from .fit import BDCMFFit
from .model import Content, MeanFieldParams, bdcmf_model, mean_field_guide
from .point import fit_point, sgvb_step
from .settings import BDCMFSettings

__all__ = ["fit_full", "elbo_terms", "cavi_sweep"]


def elbo_terms(ratings, social, content: Content | None, n_users: int, n_items: int, s: BDCMFSettings, decoder,
               params: MeanFieldParams, encoder) -> tuple[tuple, dict]:
    """The model and guide arguments of one ELBO evaluation (``(args, kwargs)`` for
    ``Trace_ELBO().differentiable_loss(bdcmf_model, mean_field_guide, *args, **kwargs)``)."""
    return (ratings, social, content, n_users, n_items, s, decoder), {"params": params, "encoder": encoder}


def cavi_sweep(mean: dict, var: dict, mu: Tensor | None, ratings: Tensor, social: Tensor | None, s: BDCMFSettings,
               n_users: int, n_items: int) -> None:
    """One exact coordinate-ascent sweep q(u) → q(g) → q(v) (module docstring), in place on the
    dicts ``mean`` and ``var`` (keys ``"u"``, ``"v"`` and, with the graph, ``"g"``)."""
    P, q = normal_equations(ratings[:, 0], ratings[:, 1], n_users, mean["v"], s.psi1, s.psi2, var["v"])
    if social is not None:
        Ps, qs = normal_equations(social[:, 0], social[:, 1], n_users, mean["g"], s.psi3, s.psi4, var["g"])
        P, q = P + s.lambda_q * Ps, q + s.lambda_q * qs
    mean["u"], var["u"] = gaussian_rows(P, q, s.lambda_u)
    if social is not None:
        Pg, qg = normal_equations(social[:, 1], social[:, 0], n_users, mean["u"], s.psi3, s.psi4, var["u"])
        mean["g"], var["g"] = gaussian_rows(s.lambda_q * Pg, s.lambda_q * qg, s.lambda_g)
    Pv, qv = normal_equations(ratings[:, 1], ratings[:, 0], n_items, mean["u"], s.psi1, s.psi2, var["u"])
    mean["v"], var["v"] = gaussian_rows(Pv, qv, s.lambda_v, mu)


def fit_full(ratings: Tensor, n_users: int, n_items: int, settings: BDCMFSettings, social: Tensor | None = None,
             content_counts: Tensor | None = None, progress: bool = False, start: BDCMFFit | None = None) -> BDCMFFit:
    """Fit the mean-field posterior (module docstring), starting from ``start`` (a point fit with
    the same settings; fitted by :func:`.point.fit_point` when None)."""
    s = settings
    if not s.collaborative:
        raise ValueError(f"the full posterior needs free item factors; method {s.method!r} has none")
    if start is None:
        start = fit_point(ratings, n_users, n_items, replace(s, estimator="point"), social, content_counts, progress)
    dev = ratings.device
    social = social if s.uses_social else None
    names = ["u", "v"] + (["g"] if s.uses_social else [])
    mean = {k: getattr(start, k).clone() for k in names}
    var = {k: torch.full_like(mean[k], s.init_scale ** 2) for k in names}
    encoder, decoder = start.encoder, start.decoder
    history = list(start.history)
    with seeded(s.seed + 1):
        content = Content.of(content_counts, dev) if s.uses_content else None
        nets = [p for m in (encoder, decoder) if m is not None for p in m.parameters()]
        elbo = Trace_ELBO()

        def record(step, t0):
            params = MeanFieldParams(mean, s.init_scale, {k: v.sqrt() for k, v in var.items()}).to(dev)
            args, kwargs = elbo_terms(ratings, social, content, n_users, n_items, s, decoder, params, encoder)
            with torch.no_grad():
                value = -float(elbo.loss(bdcmf_model, mean_field_guide, *args, **kwargs))
            history.append({"step": step, "elbo": value, "seconds": time.perf_counter() - t0})
            return value

        t0 = time.perf_counter()
        if s.full_updates == "cavi":
            opt = torch.optim.Adam(nets, lr=s.lr) if nets else None
            bar = tqdm(range(s.epochs), desc=f"CAVI {s.method}", unit="epoch", disable=not progress,
                       dynamic_ncols=True)
            for epoch in bar:
                with torch.no_grad():
                    mu = encoder(content.freq)[0] if content is not None else None
                    cavi_sweep(mean, var, mu, ratings, social, s, n_users, n_items)
                for _ in range(s.m_steps if content is not None else 0):
                    sgvb_step(TraceMeanField_ELBO(), opt, mean["v"], content, s, decoder, encoder, weight_v=True)
                bar.set_postfix(elbo=f"{record(epoch + 1, t0):.4g}")
        else:
            params = MeanFieldParams(mean, s.init_scale).to(dev)
            opt = torch.optim.Adam(list(params.parameters()) + nets, lr=s.full_lr)
            args, kwargs = elbo_terms(ratings, social, content, n_users, n_items, s, decoder, params, encoder)
            bar = tqdm(range(s.full_steps), desc=f"SVI {s.method}", unit="step", disable=not progress,
                       dynamic_ncols=True)
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
                for k in names:
                    loc, scale = params.loc_scale(k)
                    mean[k], var[k] = loc.detach().clone(), scale.detach() ** 2
    sd = {k: v.sqrt() for k, v in var.items()}
    return BDCMFFit(replace(s, estimator="full"), mean["u"], mean["v"], mean.get("g"), sd["u"], sd["v"], sd.get("g"),
                    encoder, decoder, history)
