r"""Exact Gaussian terms of BDCMF over *all* N × M entries without a dense N × M matrix.

In BDCMF (Xiao et al. 2019, REFERENCE §4) every entry of the implicit rating matrix is
observed: ``R_ij ~ N(u_iᵀv_j, C_ij⁻¹)`` with confidence ``C_ij = ψ1`` where ``R_ij = 1`` (the
``nnz`` listed pairs Ω) and ``C_ij = ψ2`` elsewhere (``R_ij = 0``).  The social graph is the same
with ``(S, E, ψ3, ψ4)``.  Both the weighted squared error and the normal equations of the
closed-form updates split into a dense part that costs ``O((N + M) K²)`` and a sparse
correction over Ω that costs ``O(nnz K²)`` — the trick of weighted ALS for implicit feedback
(Hu, Koren & Volinsky 2008), which handles the ψ2-weighted zeros *exactly* (no sampling):

.. math::

    \sum_{ij} C_{ij}(R_{ij} - u_i^\top v_j)^2
      = ψ_2\,\mathrm{tr}\big((U^\top U)(V^\top V)\big)
        + \sum_{(i,j)\in Ω}\big[ψ_1 (1 - u_i^\top v_j)^2 - ψ_2 (u_i^\top v_j)^2\big]

    \sum_j C_{ij} v_j v_j^\top = ψ_2 V^\top V + (ψ_1 - ψ_2)\sum_{j:(i,j)\in Ω} v_j v_j^\top,
    \qquad \sum_j C_{ij} R_{ij} v_j = ψ_1 \sum_{j:(i,j)\in Ω} v_j .

The per-row sums over Ω are accumulated with ``index_add_`` in chunks of pairs, so the peak
extra memory is a few MB whatever ``nnz`` is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["normal_equations", "weighted_sq_error", "gaussian_loglik", "solve_rows", "gaussian_rows"]

_CHUNK_ELEMENTS = 1 << 22


def normal_equations(rows: Tensor, cols: Tensor, n_rows: int, other: Tensor, pos: float,
                     neg: float, other_var: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(P, q)`` with ``P_i = Σ_j C_ij o_j o_jᵀ`` (``(n_rows, K, K)``) and ``q_i = Σ_j C_ij R_ij o_j``
    (``(n_rows, K)``) over every column ``j`` of ``other`` (``(M, K)``), where the observed pairs
    ``(rows[p], cols[p])`` have ``R = 1, C = pos`` and all others ``R = 0, C = neg``.

    With ``other_var`` (``(M, K)`` variances of independent Gaussian ``o_j``), ``P_i`` holds the
    second moments ``Σ_j C_ij E[o_j o_jᵀ] = Σ_j C_ij (o_j o_jᵀ + diag var_j)`` instead."""
    K = other.shape[1]
    P = (neg * (other.T @ other)).expand(n_rows, K, K).clone()
    q = other.new_zeros(n_rows, K)
    step = max(1, _CHUNK_ELEMENTS // (K * K))
    for start in range(0, rows.numel(), step):
        r, o = rows[start:start + step], other[cols[start:start + step]]
        P.index_add_(0, r, (pos - neg) * (o.unsqueeze(-1) * o.unsqueeze(-2)))
        q.index_add_(0, r, pos * o)
    if other_var is not None:
        d = (neg * other_var.sum(0)).expand(n_rows, K).clone()
        d.index_add_(0, rows, (pos - neg) * other_var[cols])
        P = P + torch.diag_embed(d)
    return P, q


def solve_rows(P: Tensor, q: Tensor, prior_precision: float, prior_mean: Tensor | None = None) -> Tensor:
    """Rows ``x_i = (P_i + λ I)⁻¹ (q_i + λ m_i)`` by batched Cholesky (``λ = prior_precision``)."""
    K = P.shape[-1]
    A = P + prior_precision * torch.eye(K, dtype=P.dtype, device=P.device)
    rhs = q if prior_mean is None else q + prior_precision * prior_mean
    L = torch.linalg.cholesky(A)
    return torch.cholesky_solve(rhs.unsqueeze(-1), L).squeeze(-1)


def gaussian_rows(P: Tensor, q: Tensor, prior_precision: float,
                  prior_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The optimal diagonal Gaussian ``N(m_i, diag σ_i²)`` for a block whose ELBO is
    ``−½ E[xᵀ Λ_i x] + bᵀ E[x] + H[q]`` with ``Λ_i = P_i + λ I`` and ``b_i = q_i + λ m⁰_i``:
    ``m_i = Λ_i⁻¹ b_i`` and ``σ_ik² = 1 / (Λ_i)_kk`` (maximising
    ``−½ tr(Λ (m mᵀ + diag σ²)) + bᵀm + ½ Σ_k log σ_k²``).  Returns ``(means, variances)``."""
    mean = solve_rows(P, q, prior_precision, prior_mean)
    return mean, 1.0 / (P.diagonal(dim1=-2, dim2=-1) + prior_precision)


def weighted_sq_error(a: Tensor, b: Tensor, pairs: Tensor, pos: float, neg: float) -> Tensor:
    """``Σ_ij C_ij (R_ij − a_iᵀ b_j)²`` over all ``len(a) × len(b)`` entries (module docstring)."""
    s = (a[pairs[:, 0]] * b[pairs[:, 1]]).sum(-1)
    dense = neg * ((a.T @ a) * (b.T @ b)).sum()
    return dense + (pos * (1.0 - s) ** 2 - neg * s ** 2).sum()


def gaussian_loglik(a: Tensor, b: Tensor, pairs: Tensor, pos: float, neg: float, weight: float = 1.0) -> Tensor:
    """``Σ_ij log N(R_ij | a_iᵀb_j, (weight·C_ij)⁻¹)`` over all entries, normalising constants included."""
    n_all = a.shape[0] * b.shape[0]
    n_pos = pairs.shape[0]
    const = 0.5 * (n_pos * math.log(weight * pos) + (n_all - n_pos) * math.log(weight * neg)
                   - n_all * math.log(2 * math.pi))
    return const - 0.5 * weight * weighted_sq_error(a, b, pairs, pos, neg)
