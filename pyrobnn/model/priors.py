"""Weight priors.

A prior is a small :class:`torch.nn.Module` whose hyperparameters are buffers (so
``.to(device)`` / ``.to(dtype)`` move them).  It gives an *elementwise* log-density over a
flat vector of weights; :class:`pyrobnn.model.sites.SitePrior` turns one or several priors
into the distribution of a Pyro sample site.

Families
--------
* :class:`Normal`, :class:`Laplace` — fixed location and scale.
* :class:`ScaleMixture` — Blundell et al. (2015), eq. (7) of the paper (REFERENCE eq. 3).
* :class:`Flat` — improper uniform prior: maximum likelihood / plain weight noise.
* :class:`ARD` — a separate Gaussian variance per weight, fitted by empirical Bayes
  (MacKay; Basov, eq. 5): δ² = σ² + μ².
* :class:`AdaptiveNormal`, :class:`AdaptiveLaplace` — Graves (2011), section 4: shared
  hyperparameters set to their closed-form optimum given the current posterior.

Empirical-Bayes priors (``adaptive = True``) implement :meth:`Prior.update`, which receives
the posterior's per-weight location and scale (scale 0 for a point estimate) and sets the
hyperparameters to the minimiser of E_q[−log p(w)] (equivalently of KL[q || p]).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..utils.config import Configurable
from ..utils.validation import check_bool, check_number, check_positive

__all__ = [
    "Prior",
    "Normal",
    "Laplace",
    "ScaleMixture",
    "Flat",
    "ARD",
    "AdaptiveNormal",
    "AdaptiveLaplace",
]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _positive(name: str, value: float) -> float:
    return check_positive(name, value)


def normal_log_prob(w, loc, scale):
    """Elementwise log N(w | loc, scale²)."""
    return standard_normal_log_prob((w - loc) / scale, scale)


def standard_normal_log_prob(z, scale):
    """Elementwise log N(w | loc, scale²) at a point given by its standardised value
    z = (w − loc)/scale: −½ z² − log scale − ½ log 2π (e.g. z = the noise of a reparameterised
    draw, which saves recomputing it)."""
    return -0.5 * z * z - torch.log(scale) - _LOG_SQRT_2PI


def standard_normal_log_prob_sum(z, scale):
    """Σ over the last dim of :func:`standard_normal_log_prob`, arranged for a training step:
    with z free of gradients (the noise of a draw), only −Σ log scale enters the graph."""
    return (-0.5 * _sum_last(z.square()) - z.shape[-1] * _LOG_SQRT_2PI) - _sum_last(torch.log(scale))


def normal_log_prob_sum(w, loc, scale):
    """Σ over the last dim of log N(w | loc, scale²) for a one-element ``scale``: −½ Σ ((w − loc)/scale)²
    − n (log scale + ½ log 2π), with the per-element constant added once, times the count (in the
    fewest kernels: this runs every training step)."""
    return _sum_last(((w - loc) / scale).square()).mul(-0.5) - torch.log(scale).add(_LOG_SQRT_2PI).mul(w.shape[-1])


def _sum_last(t):
    """``t.sum(-1)``; a full sum for a vector (the same number, a cheaper backward)."""
    return t.sum() if t.dim() == 1 else t.sum(-1)


def laplace_log_prob(w, loc, scale):
    """Elementwise log of the Laplace density exp(−|w − loc| / scale) / (2 scale)."""
    return -(w - loc).abs() / scale - torch.log(2 * scale)


def normal_kl(q_loc, q_scale, p_loc, p_scale):
    """Elementwise KL[N(q_loc, q_scale²) || N(p_loc, p_scale²)] (Graves 2011, eq. 13)."""
    var_ratio = (q_scale / p_scale) ** 2
    t = ((q_loc - p_loc) / p_scale) ** 2
    return 0.5 * (var_ratio + t - 1.0 - torch.log(var_ratio))


class Prior(Configurable, nn.Module):
    """Base class of weight priors.

    Subclasses implement :meth:`log_prob` (elementwise over a flat weight vector) and,
    where it exists in closed form, :meth:`kl_normal`.  ``index`` selects this prior's
    per-weight hyperparameters (only :class:`ARD` has any) for the weights passed in.
    """

    #: has per-weight hyperparameters; :meth:`bind` sizes them
    per_weight = False
    #: hyperparameters that :meth:`log_prob_at` accepts as given tensors (e.g. sampled by MCMC
    #: under a hyperprior); empty when the family has none
    given_hyperparameters: tuple[str, ...] = ()
    #: hyperparameters are set by :meth:`update` (empirical Bayes)
    adaptive = False
    #: the density integrates to one (``False`` for :class:`Flat`)
    proper = True

    def bind(self, num_weights: int) -> None:
        """Size per-weight hyperparameters for ``num_weights`` weights (no-op by default)."""

    def log_prob(self, w: torch.Tensor, index=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement log_prob")

    def log_prob_sum(self, w: torch.Tensor, index=None) -> torch.Tensor:
        """Σ over the last dimension of :meth:`log_prob` (subclasses may do it in fewer passes)."""
        return self.log_prob(w, index).sum(-1)

    def kl_normal(self, loc, scale, index=None) -> torch.Tensor:
        """Elementwise KL[N(loc, scale²) || p]; raises NotImplementedError without a closed form."""
        raise NotImplementedError(f"no closed-form KL for a Gaussian against {type(self).__name__}")

    def sample(self, shape, index=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} cannot be sampled")

    def update(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Set hyperparameters to their optimum given the posterior (no-op unless adaptive)."""

    def hyperparameters(self) -> dict[str, float]:
        """Scalar hyperparameters, for reports and specs."""
        return {k: float(v) for k, v in self.named_buffers() if v.dim() == 0}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:.4g}" for k, v in self.hyperparameters().items())

    def _buf(self, name: str, value: float) -> None:
        self.register_buffer(name, torch.tensor(float(value)))


class Normal(Prior):
    """Gaussian prior N(loc, scale²) on every weight."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0):
        super().__init__()
        self._buf("loc", check_number("loc", loc))
        self._buf("scale", _positive("scale", scale))

    given_hyperparameters = ("loc", "scale")

    def log_prob(self, w, index=None):
        return self.log_prob_at(w)

    def log_prob_at(self, w, loc=None, scale=None):
        """Elementwise log density with ``loc`` and/or ``scale`` given (tensors broadcasting
        against ``w``, e.g. one row per MCMC chain) instead of the stored ones."""
        return normal_log_prob(w, self.loc if loc is None else loc, self.scale if scale is None else scale)

    def log_prob_sum(self, w, index=None):
        return normal_log_prob_sum(w, self.loc, self.scale)

    def kl_normal(self, loc, scale, index=None):
        return normal_kl(loc, scale, self.loc, self.scale)

    def sample(self, shape, index=None):
        return self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)


class Laplace(Prior):
    """Laplace prior with density exp(−|w − loc| / scale) / (2 scale)."""

    def __init__(self, loc: float = 0.0, scale: float = 1.0):
        super().__init__()
        self._buf("loc", check_number("loc", loc))
        self._buf("scale", _positive("scale", scale))

    given_hyperparameters = ("loc", "scale")

    def log_prob(self, w, index=None):
        return self.log_prob_at(w)

    def log_prob_at(self, w, loc=None, scale=None):
        """Elementwise log density with ``loc`` and/or ``scale`` given instead of the stored ones."""
        return laplace_log_prob(w, self.loc if loc is None else loc, self.scale if scale is None else scale)

    def sample(self, shape, index=None):
        return torch.distributions.Laplace(self.loc, self.scale).sample(shape)


class ScaleMixture(Prior):
    """Blundell et al. (2015) scale-mixture prior, eq. (7):
    p(w) = π N(w | 0, σ1²) + (1 − π) N(w | 0, σ2²), with σ1 > σ2 and σ2 ≪ 1."""

    def __init__(self, pi: float = 0.5, sigma1: float = 1.0, sigma2: float = math.exp(-6)):
        super().__init__()
        pi = check_number("pi", pi)
        if not 0.0 < pi < 1.0:
            raise ValueError(f"pi must lie in (0, 1), got {pi!r}")
        sigma1, sigma2 = _positive("sigma1", sigma1), _positive("sigma2", sigma2)
        if not sigma2 < sigma1:
            raise ValueError(f"sigma2 must be < sigma1 (the narrow component of the mixture), got sigma1={sigma1!r}, "
                             f"sigma2={sigma2!r}")
        self._buf("pi", pi)
        self._buf("sigma1", sigma1)
        self._buf("sigma2", sigma2)

    def log_prob(self, w, index=None):
        a = torch.log(self.pi) + normal_log_prob(w, 0.0, self.sigma1)
        b = torch.log1p(-self.pi) + normal_log_prob(w, 0.0, self.sigma2)
        return torch.logaddexp(a, b)

    def sample(self, shape, index=None):
        pick = torch.rand(shape, dtype=self.pi.dtype, device=self.pi.device) < self.pi
        scale = torch.where(pick, self.sigma1, self.sigma2)
        return scale * torch.randn_like(scale)


class Flat(Prior):
    """Improper uniform prior (log-density 0): maximum likelihood, or Graves' plain weight noise."""

    proper = False

    def log_prob(self, w, index=None):
        return torch.zeros_like(w)


class ARD(Prior):
    """Automatic relevance determination: w_k ~ N(0, δ_k²) with one variance per weight.

    The variances are fitted by empirical Bayes: ∂KL/∂δ_k² = 0 gives δ_k² = σ_k² + μ_k²
    (Basov, eq. 5), after which KL = ½ Σ ln(1 + μ_k²/σ_k²) (eq. 6).
    """

    per_weight = True
    adaptive = True

    def __init__(self, init_scale: float = 1.0, min_variance: float = 1e-16):
        super().__init__()
        self.init_scale = _positive("init_scale", init_scale)
        self.min_variance = check_number("min_variance", min_variance, lo=0.0)
        self.register_buffer("variance", torch.empty(0))

    def bind(self, num_weights: int) -> None:
        if self.variance.numel() != num_weights:
            self.variance = torch.full(
                (num_weights,), self.init_scale**2, dtype=self.variance.dtype, device=self.variance.device
            )

    def _var(self, index):
        if self.variance.numel() == 0:
            raise RuntimeError("ARD prior is not attached to any weights yet (set it on a BNN first)")
        return self.variance if index is None else self.variance[index]

    def log_prob(self, w, index=None):
        return normal_log_prob(w, 0.0, self._var(index).sqrt())

    def kl_normal(self, loc, scale, index=None):
        return normal_kl(loc, scale, 0.0, self._var(index).sqrt())

    def sample(self, shape, index=None):
        var = self._var(index)
        return var.sqrt() * torch.randn(tuple(shape), dtype=var.dtype, device=var.device)

    @torch.no_grad()
    def update(self, loc, scale):
        self.variance = (scale**2 + loc**2).clamp_min(self.min_variance).to(self.variance)

    def hyperparameters(self):
        v = self.variance
        return {"init_scale": self.init_scale, "mean_variance": float(v.mean()) if v.numel() else float("nan")}


class AdaptiveNormal(Normal):
    """Graves (2011) adaptive Gaussian prior: the shared (loc, scale) are set to
    μ̂ = (1/W) Σ μ_i and σ̂² = (1/W) Σ [σ_i² + (μ_i − μ̂)²] (section 4; σ_i = 0 for a point
    estimate).  ``fit_loc=False`` keeps ``loc`` fixed ("adaptive variance"), ``fit_scale=False``
    keeps ``scale`` fixed (Graves' "adaptive mean" rows)."""

    adaptive = True

    def __init__(self, loc: float = 0.0, scale: float = 1.0, fit_loc: bool = True, fit_scale: bool = True,
                 min_scale: float = 1e-8):
        super().__init__(loc, scale)
        self.fit_loc, self.fit_scale = check_bool("fit_loc", fit_loc), check_bool("fit_scale", fit_scale)
        self.min_scale = check_number("min_scale", min_scale, lo=0.0)

    @torch.no_grad()
    def update(self, loc, scale):
        mu = loc.mean() if self.fit_loc else self.loc
        if self.fit_scale:
            var = (scale**2 + (loc - mu) ** 2).mean()
            self.scale.copy_(var.sqrt().clamp_min(self.min_scale))
        self.loc.copy_(mu)


def _gauss_cdf(z):
    return 0.5 * (1.0 + torch.erf(z * (0.5**0.5)))


def expected_abs_deviation(loc, scale, m):
    """E|w − m| for w ~ N(loc, scale²) (elementwise; scale may be 0)."""
    d = loc - m
    safe = scale.clamp_min(torch.finfo(loc.dtype).tiny)
    z = d / safe
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    gauss = safe * 2.0 * pdf + d * (2.0 * _gauss_cdf(z) - 1.0)
    return torch.where(scale > 0, gauss, d.abs())


def mixture_median(loc, scale, iters: int = 60):
    """Median of the equal-weight mixture Σ_i N(loc_i, scale_i²) (point masses where scale is 0).

    The minimiser of Σ_i E|w_i − m| over m; found by bisection on Σ_i (2 Φ((m − μ_i)/σ_i) − 1)."""
    if bool((scale == 0).all()):
        return loc.median()
    lo, hi = (loc - 10 * scale).min(), (loc + 10 * scale).max()
    safe = scale.clamp_min(torch.finfo(loc.dtype).tiny)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        cdf = torch.where(scale > 0, _gauss_cdf((mid - loc) / safe), (mid >= loc).to(loc.dtype))
        if bool(cdf.mean() < 0.5):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class AdaptiveLaplace(Laplace):
    """Graves (2011) adaptive Laplace prior: loc is set to the median of the posterior
    (the median of the weights for a point estimate, of the Gaussian mixture otherwise) and
    scale to b̂ = (1/W) Σ E_q|w_i − μ̂|, the minimiser of E_q[−log p(w)].  ``fit_loc`` /
    ``fit_scale`` as in :class:`AdaptiveNormal`."""

    adaptive = True

    def __init__(self, loc: float = 0.0, scale: float = 1.0, fit_loc: bool = True, fit_scale: bool = True,
                 min_scale: float = 1e-8):
        super().__init__(loc, scale)
        self.fit_loc, self.fit_scale = check_bool("fit_loc", fit_loc), check_bool("fit_scale", fit_scale)
        self.min_scale = check_number("min_scale", min_scale, lo=0.0)

    @torch.no_grad()
    def update(self, loc, scale):
        m = mixture_median(loc, scale) if self.fit_loc else self.loc
        if self.fit_scale:
            self.scale.copy_(expected_abs_deviation(loc, scale, m).mean().clamp_min(self.min_scale))
        self.loc.copy_(m)
