r"""The BDCMF generative model (Xiao, Liang, Shen & Meng, AAAI 2019; REFERENCE §4) in Pyro.

.. math::

    u_i \sim N(0, λ_u^{-1} I), \quad g_k \sim N(0, λ_g^{-1} I), \quad z_j \sim N(0, I),
    \quad v_j \mid z_j \sim N(z_j, λ_v^{-1} I)

    x_j \mid z_j \sim \mathrm{Mult}\big(n_j, \mathrm{softmax}(f_θ(z_j))\big)            \quad\text{(decoder)}

    R_{ij} \sim N(u_i^\top v_j, C_{ij}^{-1}), \; C_{ij} \in \{ψ_1, ψ_2\}; \qquad
    S_{ik} \sim N(u_i^\top g_k, (λ_q E_{ik})^{-1}), \; E_{ik} \in \{ψ_3, ψ_4\}

over *all* N × M rating entries and all N × N user pairs (the unlisted ones are zeros).  The
rating and social terms are ``pyro.factor`` sites computed exactly by :mod:`.als` (no dense
matrix); ``λ_q`` scales the social precision, so it balances the graph against the ratings
(``λ_q = 0`` drops the graph).  The content likelihood is a factor in a plate over items
subsampled ``batch_size`` at a time (Pyro scales it by ``M / batch_size``).

The amortised posterior of the content code is ``q_φ(z_j | x_j) = N(μ_j, diag δ_j²)``
(:class:`Encoder`, fed word frequencies ``x_j / n_j``; a sparse CSR input is multiplied without densifying).  :func:`content_model` /
:func:`content_guide` are the M-step of the point estimator: with the item factors ``v``
held fixed they are a VAE whose ELBO is

.. math::

    \sum_j E_{q_φ}[\log p_θ(x_j \mid z_j) + \log N(v_j \mid z_j, λ_v^{-1} I)] - KL(q_φ(z_j) \,\|\, N(0, I)),

the part of the point estimator's bound that depends on θ and φ.  :func:`bdcmf_model` with
:func:`mean_field_guide` is the full-posterior estimator (b): Gaussian mean-field
``q(u_i) q(g_k) q(v_j)`` times ``q_φ(z_j | x_j)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from .als import gaussian_loglik
from .settings import BDCMFSettings

__all__ = ["Encoder", "Decoder", "Content", "MeanFieldParams", "multinomial_loglik", "bdcmf_model", "mean_field_guide",
           "content_model", "content_guide"]


class Encoder(nn.Module):
    """``q_φ(z | x) = N(μ, diag δ²)``: word frequencies → tanh hidden layer → ``(μ, δ)``; a
    sparse input is multiplied with ``torch.sparse.mm`` (no dense bag-of-words matrix)."""

    def __init__(self, n_words: int, hidden: int, K: int):
        super().__init__()
        self.hidden = nn.Linear(n_words, hidden)
        self.loc = nn.Linear(hidden, K)
        self.scale = nn.Linear(hidden, K)

    def forward(self, freq: Tensor) -> tuple[Tensor, Tensor]:
        if freq.layout != torch.strided:
            pre = freq @ self.hidden.weight.T + self.hidden.bias
        else:
            pre = self.hidden(freq)
        h = torch.tanh(pre)
        return self.loc(h), softplus(self.scale(h)) + 1e-4


class Decoder(nn.Module):
    """``f_θ(z)``: the word logits of ``p_θ(x | z)`` (tanh hidden layer, linear output)."""

    def __init__(self, n_words: int, hidden: int, K: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(K, hidden), nn.Tanh(), nn.Linear(hidden, n_words))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def multinomial_loglik(logits: Tensor, counts: Tensor) -> Tensor:
    """``log Mult(x | n, softmax(logits))`` per row, with ``n = Σ_w x_w``:
    ``log n! − Σ_w log x_w! + Σ_w x_w log π_w``."""
    n = counts.sum(-1)
    return (torch.lgamma(n + 1) - torch.lgamma(counts + 1).sum(-1)
            + (counts * torch.log_softmax(logits, -1)).sum(-1))


@dataclass
class Content:
    """Item content ready for the networks, in compressed-row form: ``indptr`` ``(M + 1,)``,
    ``cols``, ``counts`` (the nonzero word counts, row by row), row totals ``totals``, and the word
    frequencies ``freq`` (``x_j / n_j``) as a sparse CSR tensor for the encoder."""

    indptr: Tensor
    cols: Tensor
    counts: Tensor
    totals: Tensor
    freq: Tensor
    n_words: int

    @classmethod
    def of(cls, counts: Tensor, device=None) -> Content:
        x = counts.coalesce()
        if device is not None:
            x = x.to(device)
        idx, val = x.indices(), x.values()
        M, W = x.shape
        indptr = torch.zeros(M + 1, dtype=torch.int64, device=val.device)
        indptr[1:] = torch.bincount(idx[0], minlength=M).cumsum(0)
        totals = torch.zeros(M, dtype=val.dtype, device=val.device).index_add_(0, idx[0], val)
        with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            freq = torch.sparse_csr_tensor(indptr, idx[1], val / totals.clamp_min(1.0)[idx[0]], (M, W),
                                           check_invariants=False)
        return cls(indptr, idx[1], val, totals, freq, int(W))

    @property
    def n_items(self) -> int:
        return int(self.indptr.numel() - 1)

    def rows(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Dense ``(counts, frequencies)`` of the items ``idx``: ``(len(idx), W)`` each."""
        lo, n = self.indptr[idx], self.indptr[idx + 1] - self.indptr[idx]
        dev = lo.device
        which = torch.repeat_interleave(torch.arange(idx.numel(), device=dev), n)
        pos = torch.repeat_interleave(lo - torch.cumsum(n, 0) + n, n) + torch.arange(int(n.sum()), device=dev)
        counts = torch.zeros(idx.numel(), self.n_words, dtype=self.counts.dtype, device=dev)
        counts[which, self.cols[pos]] = self.counts[pos]
        return counts, counts / self.totals[idx].clamp_min(1.0).unsqueeze(-1)


def _standard(zero: Tensor, scale: float, K: int):
    return dist.Normal(zero, scale).expand([K]).to_event(1)


def bdcmf_model(ratings: Tensor, social: Tensor | None, content: Content | None, n_users: int, n_items: int,
                s: BDCMFSettings, decoder: Decoder | None = None, *, params=None, encoder=None) -> None:
    """The generative model of the module docstring as a Pyro model (sites ``u``, ``g``, ``z``,
    ``v``; factors ``R``, ``S`` over all entries; factor ``x`` in a subsampled item plate).
    ``params`` and ``encoder`` belong to the guide and are ignored (Pyro passes both the same
    arguments)."""
    K = s.K
    zero = torch.zeros((), device=ratings.device)
    with pyro.plate("users", n_users):
        u = pyro.sample("u", _standard(zero, s.lambda_u ** -0.5, K))
        g = pyro.sample("g", _standard(zero, s.lambda_g ** -0.5, K)) if s.uses_social else None
    with pyro.plate("items", n_items):
        if s.uses_content:
            z = pyro.sample("z", _standard(zero, 1.0, K))
            v = pyro.sample("v", dist.Normal(z, s.lambda_v ** -0.5).to_event(1))
        else:
            z = None
            v = pyro.sample("v", _standard(zero, s.lambda_v ** -0.5, K))
    pyro.factor("R", gaussian_loglik(u, v, ratings, s.psi1, s.psi2))
    if g is not None:
        pyro.factor("S", gaussian_loglik(u, g, social, s.psi3, s.psi4, weight=s.lambda_q))
    if z is not None:
        with pyro.plate("docs", n_items, subsample_size=min(s.batch_size, n_items)) as idx:
            counts, _ = content.rows(idx)
            pyro.factor("x", multinomial_loglik(decoder(z[idx]), counts))


class MeanFieldParams(nn.Module):
    """The parameters of :func:`mean_field_guide`: ``{site}_loc`` and ``{site}_rho`` (σ = softplus ρ)
    for each of ``sites`` (``name -> initial loc``), initial scale ``init_scale`` (or ``scales[name]``)."""

    def __init__(self, init: dict[str, Tensor], init_scale: float, scales: dict[str, Tensor] | None = None):
        super().__init__()
        rho = math.log(math.expm1(init_scale))
        for name, start in init.items():
            self.register_parameter(f"{name}_loc", nn.Parameter(start.detach().clone()))
            r = torch.full_like(start, rho) if scales is None else torch.log(torch.expm1(scales[name].detach()))
            self.register_parameter(f"{name}_rho", nn.Parameter(r.clone()))

    def loc_scale(self, name: str) -> tuple[Tensor, Tensor]:
        return getattr(self, f"{name}_loc"), softplus(getattr(self, f"{name}_rho"))


def mean_field_guide(ratings: Tensor, social: Tensor | None, content: Content | None, n_users: int, n_items: int,
                     s: BDCMFSettings, decoder: Decoder | None = None, *, params: MeanFieldParams,
                     encoder: Encoder | None = None) -> None:
    """``q(u) q(g) q(v) q_φ(z | x)``: independent Gaussians ``N(loc, softplus(ρ)²)`` per entry of
    u, g, v (:class:`MeanFieldParams`) and the amortised encoder for z."""
    with pyro.plate("users", n_users):
        pyro.sample("u", dist.Normal(*params.loc_scale("u")).to_event(1))
        if s.uses_social:
            pyro.sample("g", dist.Normal(*params.loc_scale("g")).to_event(1))
    with pyro.plate("items", n_items):
        if s.uses_content:
            mu, delta = encoder(content.freq)
            pyro.sample("z", dist.Normal(mu, delta).to_event(1))
        pyro.sample("v", dist.Normal(*params.loc_scale("v")).to_event(1))


def content_model(v: Tensor, content: Content, s: BDCMFSettings, decoder: Decoder, encoder: Encoder | None = None,
                  weight_v: bool = True) -> None:
    """M-step model: ``z_j ~ N(0, I)``, ``x_j ~ p_θ(x | z_j)``, and (``weight_v``) the fixed item
    factor ``v_j`` observed as ``N(z_j, λ_v⁻¹ I)``; items subsampled ``batch_size`` at a time."""
    M = content.n_items
    with pyro.plate("items", M, subsample_size=min(s.batch_size, M)) as idx:
        counts, _ = content.rows(idx)
        z = pyro.sample("z", dist.Normal(torch.zeros_like(v[idx]), 1.0).to_event(1))
        pyro.factor("x", multinomial_loglik(decoder(z), counts))
        if weight_v:
            pyro.sample("v", dist.Normal(z, s.lambda_v ** -0.5).to_event(1), obs=v[idx])


def content_guide(v: Tensor, content: Content, s: BDCMFSettings, decoder: Decoder, encoder: Encoder,
                  weight_v: bool = True) -> None:
    """M-step guide: ``q_φ(z_j | x_j)`` on the same subsample of items."""
    M = content.n_items
    with pyro.plate("items", M, subsample_size=min(s.batch_size, M)) as idx:
        _, freq = content.rows(idx)
        mu, delta = encoder(freq)
        pyro.sample("z", dist.Normal(mu, delta).to_event(1))
