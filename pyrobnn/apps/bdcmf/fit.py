r"""A fitted BDCMF model: scores, cold-start scores, their uncertainty, saving and loading.

Scores are ``R*_ij = u_iᵀ v_j``; a cold-start item ``j`` (no ratings, only content ``x_j``) is
scored ``R*_ij = u_iᵀ E[z_j | x_j] = u_iᵀ μ_φ(x_j)`` (Xiao et al. 2019: ε_j = 0 for a new item).
For the full posterior (estimator b) the score's posterior standard deviation is exact under
the mean-field factorisation: for independent ``a ~ N(m, diag s²)`` and ``b ~ N(n, diag t²)``

.. math::

    \mathrm{Var}(a^\top b) = \sum_k m_k^2 t_k^2 + n_k^2 s_k^2 + s_k^2 t_k^2 ,

with ``b = v_j`` in-matrix and ``b = z_j ~ q_φ(z_j | x_j)`` for a cold-start item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ...utils.files import atomic_torch_save, atomic_write
from .model import Content, Decoder, Encoder
from .settings import BDCMFSettings

__all__ = ["BDCMFFit", "product_std", "load_fit"]


def product_std(m: Tensor, s: Tensor, n: Tensor, t: Tensor) -> Tensor:
    """Standard deviations of ``a_iᵀ b_j`` for independent diagonal Gaussians ``a_i ~ N(m_i, s_i²)``
    (rows of ``(A, K)`` tensors) and ``b_j ~ N(n_j, t_j²)`` (``(B, K)``): an ``(A, B)`` tensor."""
    var = (m ** 2) @ (t ** 2).T + (s ** 2) @ (n ** 2).T + (s ** 2) @ (t ** 2).T
    return var.sqrt()


@dataclass
class BDCMFFit:
    """Factors of a fitted model: posterior means ``u``, ``v``, ``g`` (``g`` None without the
    graph), posterior scales ``u_scale``, ``v_scale`` (estimator b only), the networks, the
    settings and the per-epoch/step ``history``."""

    settings: BDCMFSettings
    u: Tensor
    v: Tensor
    g: Tensor | None = None
    u_scale: Tensor | None = None
    v_scale: Tensor | None = None
    g_scale: Tensor | None = None
    encoder: Encoder | None = None
    decoder: Decoder | None = None
    history: list = field(default_factory=list)

    @property
    def n_users(self) -> int:
        return int(self.u.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.v.shape[0])

    def _users(self, users) -> Tensor:
        if users is None:
            return torch.arange(self.n_users, device=self.u.device)
        users = torch.as_tensor(users, device=self.u.device).long().reshape(-1)
        bad = (users < 0) | (users >= self.n_users)
        if bool(bad.any()):
            raise ValueError(f"users must be ids in [0, {self.n_users}), got {int(users[bad][0])}")
        return users

    @torch.no_grad()
    def scores(self, users=None) -> Tensor:
        """``R* = u_iᵀ v_j`` for ``users`` (ids; default all) and every item: ``(len(users), M)``."""
        return self.u[self._users(users)] @ self.v.T

    @torch.no_grad()
    def score_std(self, users=None) -> Tensor:
        """Posterior standard deviation of each score (estimator b only; module docstring)."""
        if self.u_scale is None:
            raise ValueError("score_std needs the full posterior (estimator='full'); a point estimate has none")
        users = self._users(users)
        return product_std(self.u[users], self.u_scale[users], self.v, self.v_scale)

    @torch.no_grad()
    def content_codes(self, counts: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, δ)`` of ``q_φ(z | x)`` for items with word ``counts`` (sparse or dense ``(B, W)``)."""
        if self.encoder is None:
            raise ValueError(f"method {self.settings.method!r} uses no item content, so it cannot score cold-start "
                             "items; use bdcmf, ctr or content")
        counts = counts.to(self.u.device)
        content = Content.of(counts if counts.layout == torch.sparse_coo else counts.to_sparse())
        return self.encoder(content.freq)

    @torch.no_grad()
    def cold_scores(self, counts: Tensor, users=None, with_std: bool = False):
        """Cold-start scores ``u_iᵀ μ_φ(x_j)`` of new items from their content only; with ``with_std``
        (estimator b) also their posterior standard deviations."""
        mu, delta = self.content_codes(counts)
        users = self._users(users)
        out = self.u[users] @ mu.T
        if not with_std:
            return out
        if self.u_scale is None:
            raise ValueError("with_std needs the full posterior (estimator='full')")
        return out, product_std(self.u[users], self.u_scale[users], mu, delta)

    def save(self, directory) -> Path:
        """Write ``factors.pt`` (tensors and network weights) and ``settings.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: getattr(self, k) for k in ("u", "v", "g", "u_scale", "v_scale", "g_scale")}
        state = {"tensors": {k: v.detach().cpu() for k, v in tensors.items() if v is not None},
                 "encoder": None if self.encoder is None else self.encoder.state_dict(),
                 "decoder": None if self.decoder is None else self.decoder.state_dict(),
                 "n_words": None if self.encoder is None else int(self.encoder.hidden.in_features)}
        atomic_torch_save(state, directory / "factors.pt")
        meta = {"settings": self.settings.to_dict(), "history": self.history}
        atomic_write(directory / "settings.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
        return directory


def load_fit(directory) -> BDCMFFit:
    """The :class:`BDCMFFit` written by :meth:`BDCMFFit.save`."""
    directory = Path(directory)
    meta = json.loads((directory / "settings.json").read_text())
    s = BDCMFSettings.from_dict(meta["settings"], where=str(directory / "settings.json"))
    state = torch.load(directory / "factors.pt", weights_only=True)
    encoder = decoder = None
    if state["encoder"] is not None:
        encoder, decoder = Encoder(state["n_words"], s.hidden, s.K), Decoder(state["n_words"], s.hidden, s.K)
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    t = state["tensors"]
    return BDCMFFit(s, t["u"], t["v"], t.get("g"), t.get("u_scale"), t.get("v_scale"), t.get("g_scale"),
                    encoder, decoder, meta.get("history", []))
