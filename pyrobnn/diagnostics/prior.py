"""Prior predictive checks: functions drawn from a network's prior, and the wide limit.

Neal (1996, "Bayesian learning for neural networks", chapter 2): a network with one hidden
layer of H units,

    f(x) = b + Σ_{j=1..H} v_j h(u_j·x + a_j),   u_j, a_j ~ N(0, σ_w²),   v_j, b ~ N(0, σ_v²/H),

is a sum of H independent terms, so as H → ∞ its prior over functions tends to a Gaussian
process with covariance

    K(x, x') = σ_v² E[h(z) h(z')],   (z, z') ~ N(0, [[k(x,x), k(x,x')], [k(x,x'), k(x',x')]]),
    k(x, x') = σ_w² (x·x' + 1).

Closed forms of the expectation: ReLU, the arc-cosine kernel of degree 1 (Cho & Saul, NIPS
2009, eq. 6), E[h h'] = √(k k') (sin θ + (π − θ) cos θ) / (2π) with cos θ = k(x,x') / √(k k');
erf, the arcsine kernel (Williams, "Computing with infinite networks", NIPS 1996, eq. 11),
E[h h'] = (2/π) arcsin(2 k(x,x') / √((1 + 2k)(1 + 2k'))).

At finite width the covariance is exactly K(x, x') + σ_v²/H (the output bias), so it converges
to the kernel as 1/H; what the width changes beyond that is the shape of the distribution: the
excess kurtosis of f(x) is 3H(m₄ − m₂²) / (1 + H m₂)² with m_p = E[h(z)^p], z ~ N(0, k(x, x))
(the fourth cumulant of a sum of independent terms), which falls to 0 as 1/H.
:func:`wide_limit_check` measures both on draws from pyrobnn's own prior of such a network.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..model import BNN, Gaussian, Linear, priors
from ..utils.rng import seeded
from ..utils.validation import check_int, check_positive

__all__ = ["Erf", "one_hidden_layer_kernel", "hidden_moments", "wide_network", "prior_function_draws",
           "wide_limit_check", "plot_wide_limit", "plot_prior_draws", "KERNEL_ACTIVATIONS"]

KERNEL_ACTIVATIONS = ("relu", "erf")


class Erf(nn.Module):
    """The error-function activation h(z) = erf(z) (Williams 1996)."""

    def forward(self, x):
        return torch.erf(x)


def _check_activation(activation):
    if activation not in KERNEL_ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(KERNEL_ACTIVATIONS)}, got {activation!r}")


def _pre_kernel(x1, x2, sigma_w):
    return sigma_w**2 * (x1 @ x2.T + 1.0)


def one_hidden_layer_kernel(x1, x2, activation: str = "relu", sigma_w: float = 1.0, sigma_v: float = 1.0):
    """The wide-limit covariance K(x1_i, x2_j) (float64, (N1, N2)) of the network in this
    module's docstring, for inputs ``x1`` (N1, D) and ``x2`` (N2, D)."""
    _check_activation(activation)
    x1 = torch.as_tensor(x1, dtype=torch.float64)
    x2 = torch.as_tensor(x2, dtype=torch.float64, device=x1.device)
    k12 = _pre_kernel(x1, x2, sigma_w)
    k1 = sigma_w**2 * ((x1 * x1).sum(-1) + 1.0)
    k2 = sigma_w**2 * ((x2 * x2).sum(-1) + 1.0)
    if activation == "relu":
        norm = torch.sqrt(k1[:, None] * k2[None, :])
        cos = (k12 / norm).clamp(-1.0, 1.0)
        th = torch.arccos(cos)
        e = norm * (torch.sin(th) + (math.pi - th) * cos) / (2 * math.pi)
    else:
        e = (2 / math.pi) * torch.arcsin(2 * k12 / torch.sqrt((1 + 2 * k1)[:, None] * (1 + 2 * k2)[None, :]))
    return sigma_v**2 * e


def hidden_moments(activation: str, k: float) -> tuple[float, float]:
    """(E[h(z)²], E[h(z)⁴]) for z ~ N(0, k): ReLU in closed form (k/2, 3k²/2); erf by
    Gauss–Hermite quadrature with 200 nodes."""
    _check_activation(activation)
    if activation == "relu":
        return k / 2, 3 * k**2 / 2
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    from scipy.special import erf

    h = erf(math.sqrt(k) * z)
    return float(np.sum(w * h**2)), float(np.sum(w * h**4))


def wide_network(in_features: int, width: int, activation: str = "relu", sigma_w: float = 1.0,
                 sigma_v: float = 1.0) -> BNN:
    """The one-hidden-layer network of this module's docstring as a :class:`~pyrobnn.BNN`:
    prior N(0, σ_w²) on the first layer's weights and biases, N(0, σ_v²/H) on the output
    layer's (a Gaussian likelihood of unit scale, unused by the prior draws)."""
    _check_activation(activation)
    width = check_int("width", width)
    net = BNN([Linear(in_features, width), "relu" if activation == "relu" else Erf(), Linear(width, 1)],
              Gaussian(scale=1.0), priors.Normal(0.0, check_positive("sigma_w", sigma_w)))
    net.set_prior(priors.Normal(0.0, check_positive("sigma_v", sigma_v) / math.sqrt(width)), layers=[2])
    return net


@torch.no_grad()
def prior_function_draws(net: BNN, x: torch.Tensor, num_draws: int = 100, seed: int | None = 0) -> torch.Tensor:
    """Network outputs f(x) for ``num_draws`` weight draws from ``net``'s prior: (S, N, out).
    Drawn on the network's device from a seeded stream; the caller's generators are untouched."""
    num_draws = check_int("num_draws", num_draws)
    x = torch.as_tensor(x).to(device=net.device, dtype=net.dtype)
    with seeded(seed):
        draws = {s: net.site_prior(s).sample((num_draws,)) for s in net.site_sizes}
    return net.network(x, draws)


def _excess_kurtosis(f: np.ndarray) -> float:
    c = f - f.mean()
    return float(np.mean(c**4) / np.mean(c**2) ** 2 - 3.0)


def wide_limit_check(x, widths=(1, 4, 16, 64, 256), activation: str = "relu", num_draws: int = 20000,
                     sigma_w: float = 1.0, sigma_v: float = 1.0, seed: int = 0, batches: int = 20) -> dict:
    """Prior covariance and kurtosis of :func:`wide_network` at several widths against the
    wide limit, from ``num_draws`` prior draws at the inputs ``x`` (N, D).

    Per width: ``cov`` (the empirical covariance of f over draws, N×N), ``cov_se`` (its Monte
    Carlo standard error, per entry), ``finite_width_cov`` = K + σ_v²/H, ``max_abs_error`` =
    max |cov − K|, ``max_z`` = max |cov − (K + σ_v²/H)| / cov_se, ``kurtosis`` (excess
    kurtosis of f(x_0)) with ``kurtosis_se`` (spread of ``batches`` batch estimates / √batches)
    and ``kurtosis_expected`` = 3H(m₄ − m₂²)/(1 + H m₂)²."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"x must be (N, D) inputs, got shape {tuple(x.shape)}")
    num_draws, batches = check_int("num_draws", num_draws, minimum=2), check_int("batches", batches, minimum=2)
    kernel = one_hidden_layer_kernel(x, x, activation, sigma_w, sigma_v).cpu().numpy()
    k00 = float(sigma_w**2 * (float((x[0] * x[0]).sum()) + 1.0))
    m2, m4 = hidden_moments(activation, k00)
    rows = []
    for i, h in enumerate(widths):
        net = wide_network(x.shape[1], h, activation, sigma_w, sigma_v)
        f = prior_function_draws(net, x, num_draws, seed=seed + i)[..., 0].double().cpu().numpy()  # (S, N)
        prods = f[:, :, None] * f[:, None, :]  # the prior mean is 0: E[f f'] is the covariance
        cov = prods.mean(0)
        se = prods.std(0, ddof=1) / math.sqrt(num_draws)
        finite = kernel + sigma_v**2 / h
        kb = [_excess_kurtosis(b) for b in np.array_split(f[:, 0], batches)]
        rows.append({"width": int(h), "cov": cov.tolist(), "cov_se": se.tolist(), "finite_width_cov": finite.tolist(),
                     "max_abs_error": float(np.max(np.abs(cov - kernel))),
                     "max_z": float(np.max(np.abs(cov - finite) / se)),
                     "kurtosis": _excess_kurtosis(f[:, 0]), "kurtosis_se": float(np.std(kb, ddof=1) / math.sqrt(batches)),
                     "kurtosis_expected": 3 * h * (m4 - m2**2) / (1 + h * m2) ** 2})
    return {"activation": activation, "sigma_w": sigma_w, "sigma_v": sigma_v, "num_draws": num_draws,
            "x": x.tolist(), "kernel": kernel.tolist(), "widths": rows}


def plot_wide_limit(result: dict, path):
    """Left: max |empirical prior covariance − GP kernel| against width, with σ_v²/H (the exact
    finite-width offset) and the Monte Carlo standard error; right: excess kurtosis of f(x₀)
    against width, measured (± 2 s.e.) and predicted."""
    from .plots import plt, save_figure

    rows = result["widths"]
    h = np.array([r["width"] for r in rows], dtype=float)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.loglog(h, [r["max_abs_error"] for r in rows], "o-", label="max |Cov_prior − K_GP| (measured)")
    ax.loglog(h, result["sigma_v"] ** 2 / h, "k--", lw=1, label="σ_v²/H (exact offset: output bias)")
    ax.loglog(h, [np.max(r["cov_se"]) for r in rows], ":", color="gray", label="Monte Carlo s.e. (max entry)")
    ax.set_xlabel("hidden units H")
    ax.set_ylabel("covariance error")
    ax.set_title(f"Prior covariance → {result['activation']} GP kernel")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    k = np.array([r["kurtosis"] for r in rows])
    se = np.array([r["kurtosis_se"] for r in rows])
    ax2.errorbar(h, k, yerr=2 * se, fmt="o", capsize=3, label="measured (± 2 s.e.)")
    ax2.plot(h, [r["kurtosis_expected"] for r in rows], "k--", lw=1, label="3H(m₄ − m₂²)/(1 + H m₂)²")
    ax2.axhline(0, color="gray", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("hidden units H")
    ax2.set_ylabel("excess kurtosis of f(x₀)")
    ax2.set_title("Non-Gaussianity falls as 1/H")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_prior_draws(net: BNN, x, path, num_draws: int = 20, seed: int = 0, title: str = "Functions from the prior"):
    """Functions f(x) drawn from ``net``'s prior over a 1-D input grid ``x`` (N,) or (N, 1),
    with the pointwise 90% band of 500 draws."""
    from .plots import plt, save_figure

    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1)
    f = prior_function_draws(net, x, max(500, num_draws), seed)[..., 0].cpu().numpy()
    xs = x[:, 0].numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    lo, hi = np.quantile(f, [0.05, 0.95], axis=0)
    ax.fill_between(xs, lo, hi, alpha=0.2, lw=0, label="90% of prior functions")
    for i in range(num_draws):
        ax.plot(xs, f[i], lw=0.8, alpha=0.7)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
