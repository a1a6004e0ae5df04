r"""Estimator (a): Bayesian point estimation of BDCMF by variational EM (Xiao et al. 2019).

The bound maximised is

.. math::

    \mathcal{L}_{point}(U, V, G, θ, φ) = \log p(R \mid U, V) + \log p(S \mid U, G) + \log p(U) + \log p(G)
      + \sum_j \Big( E_{q_φ}\big[\log N(v_j \mid z_j, λ_v^{-1} I) + \log p_θ(x_j \mid z_j)\big]
      - KL\big(q_φ(z_j \mid x_j) \,\|\, N(0, I)\big) \Big).

Since ``E_q[log N(v_j | z_j, λ_v⁻¹I)] = log N(v_j | μ_j, λ_v⁻¹I) − (λ_v/2) Σ_k δ_jk²``, the bound
is quadratic in each row of U, G, V given the others, and the **E-step** maximises it exactly,
block by block (weighted ridge regressions; sums over all entries by :mod:`.als`):

.. math::

    u_i &\leftarrow \big(V^\top C_i V + λ_q G^\top E_i G + λ_u I\big)^{-1}
                   \big(V^\top C_i R_i + λ_q G^\top E_i S_i\big) \\
    g_k &\leftarrow \big(λ_q U^\top E_{\cdot k} U + λ_g I\big)^{-1} λ_q U^\top E_{\cdot k} S_{\cdot k} \\
    v_j &\leftarrow \big(U^\top C_{\cdot j} U + λ_v I\big)^{-1} \big(U^\top C_{\cdot j} R_{\cdot j} + λ_v μ_j\big)

so the bound never decreases in the E-step.  Before the first epoch the networks are pre-trained alone as a VAE for ``pretrain_steps``
steps.  The **M-step** takes ``m_steps`` SGVB steps
(reparametrised Monte Carlo over z, analytic KL: Pyro's ``TraceMeanField_ELBO``) on θ, φ with
U, V, G fixed (:func:`.model.content_model`).  The history records the bound after each epoch,
its content part estimated with fixed draws (common random numbers) on a fixed subset of at
most ``EVAL_ITEMS`` items, scaled to all items.

Baselines in the same harness (:data:`.settings.METHODS`): ``ctr`` drops the graph (λ_q = 0),
``pmf`` also drops the content (μ_j = 0, no networks), ``content`` fixes ``v_j = μ_j`` (no
collaboration: users are fitted to the content codes; the networks are a plain VAE).
"""

from __future__ import annotations

import time

import torch
from pyro.infer import TraceMeanField_ELBO
from torch import Tensor
from tqdm.auto import tqdm

from ...utils.rng import seeded
from .als import gaussian_loglik, normal_equations, solve_rows
from .fit import BDCMFFit
from .model import Content, Decoder, Encoder, content_guide, content_model, multinomial_loglik
from .settings import BDCMFSettings

__all__ = ["fit_point", "estep", "estep_objective", "point_objective", "sgvb_step", "EVAL_ITEMS"]

EVAL_ITEMS = 1024


def _normal_sq(x: Tensor, precision: float) -> Tensor:
    return -0.5 * precision * (x ** 2).sum()


def estep_objective(u, v, g, mu, ratings, social, s: BDCMFSettings) -> Tensor:
    """The part of ``L_point`` that depends on U, V, G (up to constants): rating and social
    log-likelihoods, Gaussian priors of u and g, and ``log N(v_j | μ_j, λ_v⁻¹ I)``."""
    out = gaussian_loglik(u, v, ratings, s.psi1, s.psi2) + _normal_sq(u, s.lambda_u)
    out = out + _normal_sq(v - (mu if mu is not None else 0.0), s.lambda_v)
    if g is not None:
        out = out + gaussian_loglik(u, g, social, s.psi3, s.psi4, weight=s.lambda_q) + _normal_sq(g, s.lambda_g)
    return out


def estep(u, v, g, mu, ratings, social, s: BDCMFSettings, n_users: int, n_items: int, callback=None):
    """One exact block-coordinate sweep u → g → v (module docstring); returns ``(u, v, g)``.
    ``callback(u, v, g)`` is called after each block (for checks of monotonicity)."""
    P, q = normal_equations(ratings[:, 0], ratings[:, 1], n_users, v, s.psi1, s.psi2)
    if g is not None:
        Ps, qs = normal_equations(social[:, 0], social[:, 1], n_users, g, s.psi3, s.psi4)
        P, q = P + s.lambda_q * Ps, q + s.lambda_q * qs
    u = solve_rows(P, q, s.lambda_u)
    if callback is not None:
        callback(u, v, g)
    if g is not None:
        Pg, qg = normal_equations(social[:, 1], social[:, 0], n_users, u, s.psi3, s.psi4)
        g = solve_rows(s.lambda_q * Pg, s.lambda_q * qg, s.lambda_g)
        if callback is not None:
            callback(u, v, g)
    if s.collaborative:
        Pv, qv = normal_equations(ratings[:, 1], ratings[:, 0], n_items, u, s.psi1, s.psi2)
        v = solve_rows(Pv, qv, s.lambda_v, mu)
        if callback is not None:
            callback(u, v, g)
    return u, v, g


def point_objective(u, v, g, ratings, social, content: Content | None, encoder, decoder, s: BDCMFSettings,
                    items: Tensor | None = None, eps: Tensor | None = None) -> Tensor:
    """``L_point`` (module docstring) with the content part estimated by the draws
    ``z = μ + δ·eps`` on ``items`` (default all, one draw each) scaled by ``M / len(items)``."""
    if content is None or not s.uses_content:
        return estep_objective(u, v, g, None, ratings, social, s)
    M = content.n_items
    mu_all, delta_all = encoder(content.freq)
    if s.collaborative:
        base = estep_objective(u, v, g, mu_all, ratings, social, s) - 0.5 * s.lambda_v * (delta_all ** 2).sum()
    else:  # v_j = μ_j: no v prior, the networks are a plain VAE
        base = estep_objective(u, v, g, None, ratings, social, s) - _normal_sq(v, s.lambda_v)
    kl = 0.5 * (mu_all ** 2 + delta_all ** 2 - 1.0 - 2.0 * delta_all.log()).sum()
    items = torch.arange(M, device=u.device) if items is None else items
    counts, freq = content.rows(items)
    mu, delta = encoder(freq)
    z = mu + delta * (torch.randn_like(mu) if eps is None else eps)
    rec = multinomial_loglik(decoder(z), counts).sum() * (M / items.numel())
    return base - kl + rec


def sgvb_step(elbo, opt, v, content, s, decoder, encoder, weight_v) -> None:
    """One SGVB step of the networks on :func:`.model.content_model` with the item factors ``v`` fixed."""
    opt.zero_grad()
    loss = elbo.differentiable_loss(content_model, content_guide, v, content, s, decoder, encoder,
                                    weight_v=weight_v) / content.n_items
    loss.backward()
    opt.step()


def fit_point(ratings: Tensor, n_users: int, n_items: int, settings: BDCMFSettings, social: Tensor | None = None,
              content_counts: Tensor | None = None, progress: bool = False) -> BDCMFFit:
    """Fit BDCMF (or a baseline, ``settings.method``) by variational EM (module docstring).

    ``ratings``: ``(nnz, 2)`` observed (user, item) pairs; ``social``: ``(E, 2)`` directed edges
    (needed when the method uses the graph); ``content_counts``: sparse ``(n_items, W)`` word
    counts (needed when it uses content).  Device follows ``ratings``.  Runs under a private
    seed (``settings.seed``); the caller's random streams are left as they were.
    """
    s = settings
    dev = ratings.device
    if s.uses_social and (social is None or social.numel() == 0):
        raise ValueError(f"method {s.method!r} with lambda_q > 0 needs a non-empty social graph (social=...)")
    if s.uses_content and content_counts is None:
        raise ValueError(f"method {s.method!r} needs item content (content_counts=...)")
    with seeded(s.seed):
        content = Content.of(content_counts, dev) if s.uses_content else None
        encoder = decoder = None
        if content is not None:
            W = content.n_words
            encoder, decoder = Encoder(W, s.hidden, s.K).to(dev), Decoder(W, s.hidden, s.K).to(dev)
            opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=s.lr)
            elbo = TraceMeanField_ELBO()
            n_eval = min(EVAL_ITEMS, n_items)
            eval_items = torch.randperm(n_items, device=dev)[:n_eval]
            eval_eps = torch.randn(n_eval, s.K, device=dev)
            v0 = torch.zeros(n_items, s.K, device=dev)
            for _ in range(s.pretrain_steps):  # the networks alone, as a VAE
                sgvb_step(elbo, opt, v0, content, s, decoder, encoder, weight_v=False)
        u = 0.1 * torch.randn(n_users, s.K, device=dev)
        g = 0.1 * torch.randn(n_users, s.K, device=dev) if s.uses_social else None
        v = 0.1 * torch.randn(n_items, s.K, device=dev)
        history = []
        bar = tqdm(range(s.epochs), desc=f"EM {s.method}", unit="epoch", disable=not progress, dynamic_ncols=True)
        for epoch in bar:
            t0 = time.perf_counter()
            with torch.no_grad():
                mu = encoder(content.freq)[0] if content is not None else None
                if not s.collaborative:
                    v = mu
                u, v, g = estep(u, v, g, mu if s.collaborative else None, ratings, social if s.uses_social else None,
                                s, n_users, n_items)
            t1 = time.perf_counter()
            for _ in range(s.m_steps if content is not None else 0):
                sgvb_step(elbo, opt, v, content, s, decoder, encoder, weight_v=s.collaborative)
            t2 = time.perf_counter()
            with torch.no_grad():
                if content is not None and not s.collaborative:
                    v = encoder(content.freq)[0]
                obj = point_objective(u, v, g, ratings, social, content, encoder, decoder, s,
                                      *((eval_items, eval_eps) if content is not None else ()))
            history.append({"epoch": epoch + 1, "objective": float(obj), "estep_s": t1 - t0, "mstep_s": t2 - t1})
            bar.set_postfix(objective=f"{float(obj):.4g}")
    return BDCMFFit(s, u, v, g, encoder=encoder, decoder=decoder, history=history)
