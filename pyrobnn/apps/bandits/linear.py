"""Exact Bayesian linear regression with a Normal-inverse-gamma prior (Riquelme, Tucker &
Snoek 2018, "LinFullPost"; the conjugate update is standard, e.g. Bishop 2006, section 3.3).

Model: y = βᵀz + ε, ε ~ N(0, σ²); prior σ² ~ InvGamma(a₀, b₀), β | σ² ~ N(0, σ²/λ · I).
After n observations (Z, y) the posterior is again Normal-inverse-gamma:

    Λ_n = ZᵀZ + λI,   μ_n = Λ_n⁻¹ Zᵀy,
    a_n = a₀ + n/2,   b_n = b₀ + ½ (yᵀy − μ_nᵀ Λ_n μ_n),
    σ² ~ InvGamma(a_n, b_n),   β | σ² ~ N(μ_n, σ² Λ_n⁻¹).

Only the sufficient statistics ZᵀZ, Zᵀy, yᵀy and n are kept (float64), so an observation
costs O(d²) and a posterior draw one Cholesky factorisation, O(d³).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...utils.validation import check_int, check_number

__all__ = ["BayesianLinearRegression"]


class BayesianLinearRegression:
    """Conjugate Bayesian linear regression on ``dim`` features (no intercept is added: append
    a constant feature for one)."""

    def __init__(self, dim: int, lambda_prior: float = 0.25, a0: float = 6.0, b0: float = 6.0):
        self.dim = check_int("dim", dim)
        self.lambda_prior = check_number("lambda_prior", lambda_prior, lo=0, lo_open=True)
        self.a0 = check_number("a0", a0, lo=0, lo_open=True)
        self.b0 = check_number("b0", b0, lo=0, lo_open=True)
        self.reset()

    def reset(self) -> None:
        """Forget every observation (back to the prior)."""
        self.zz = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self.zy = torch.zeros(self.dim, dtype=torch.float64)
        self.yy = torch.zeros((), dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.float64)

    def add(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Observe rows ``z`` (n, dim) or (dim,) with targets ``y`` (n,) or a scalar."""
        z = torch.as_tensor(z).to(torch.float64).reshape(-1, self.dim)
        y = torch.as_tensor(y).to(torch.float64).reshape(-1)
        self.zz += z.T @ z
        self.zy += z.T @ y
        self.yy += y @ y
        self.n += y.numel()

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(μ_n, Λ_n, a_n, b_n)`` as in the module docstring."""
        precision = self.zz + self.lambda_prior * torch.eye(self.dim, dtype=torch.float64)
        mean = torch.cholesky_solve(self.zy.unsqueeze(-1), torch.linalg.cholesky(precision)).squeeze(-1)
        a = self.a0 + 0.5 * self.n
        b = self.b0 + 0.5 * (self.yy - mean @ precision @ mean).clamp_min(0.0)
        return mean, precision, a, b

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of β from the posterior (σ² drawn first) with ``generator`` (a torch CPU
        generator; ``None``: torch's global one)."""
        mean, precision, a, b = self.posterior()
        gamma_seed = int(torch.randint(2**62, (), generator=generator))  # torch's Gamma takes no generator
        sigma2 = b / float(np.random.default_rng(gamma_seed).gamma(float(a)))
        chol = torch.linalg.cholesky(precision)  # Λ = L Lᵀ; β = μ + σ L⁻ᵀ ε has covariance σ² Λ⁻¹
        eps = torch.randn(self.dim, dtype=torch.float64, generator=generator)
        return mean + math.sqrt(sigma2) * torch.linalg.solve_triangular(chol.T, eps.unsqueeze(-1), upper=True).squeeze(-1)

    def state_dict(self) -> dict:
        return {"zz": self.zz.clone(), "zy": self.zy.clone(), "yy": self.yy.clone(), "n": self.n.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.zz, self.zy, self.yy, self.n = (state[k].clone().to(torch.float64) for k in ("zz", "zy", "yy", "n"))
