"""Priors against independent scipy computations and numerical optimisation."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats
from scipy.special import logsumexp

import pyrobnn as pb
from pyrobnn.model.priors import expected_abs_deviation, mixture_median



@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def points(n=200, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) * scale


def test_normal_log_prob_matches_scipy():
    w = points()
    p = pb.priors.Normal(0.3, 0.7).double()
    np.testing.assert_allclose(p.log_prob(w).numpy(), stats.norm.logpdf(w.numpy(), 0.3, 0.7), rtol=1e-12)
    np.testing.assert_allclose(float(p.log_prob_sum(w)), stats.norm.logpdf(w.numpy(), 0.3, 0.7).sum(), rtol=1e-12)


def test_laplace_log_prob_matches_scipy():
    w = points(seed=1)
    p = pb.priors.Laplace(-0.2, 0.4).double()
    np.testing.assert_allclose(p.log_prob(w).numpy(), stats.laplace.logpdf(w.numpy(), -0.2, 0.4), rtol=1e-12)


@pytest.mark.parametrize("pi,s1,s2", [(0.5, 1.0, math.exp(-6)), (0.25, math.exp(-1), math.exp(-7)), (0.75, 1.0, math.exp(-8))])
def test_scale_mixture_log_prob_matches_scipy(pi, s1, s2):
    w = torch.cat([points(seed=2, scale=1.0), points(seed=3, scale=1e-3)])
    p = pb.priors.ScaleMixture(pi, s1, s2).double()
    x = w.numpy()
    ref = logsumexp([np.log(pi) + stats.norm.logpdf(x, 0, s1), np.log1p(-pi) + stats.norm.logpdf(x, 0, s2)], axis=0)
    np.testing.assert_allclose(p.log_prob(w).numpy(), ref, rtol=1e-10)


def test_flat_log_prob_is_zero():
    w = points()
    assert torch.equal(pb.priors.Flat().log_prob(w), torch.zeros_like(w))


def test_ard_log_prob_uses_per_weight_variance():
    w = points(50)
    p = pb.priors.ARD()
    p.bind(50)
    var = torch.rand(50, generator=torch.Generator().manual_seed(4)) + 0.1
    p.variance = var
    np.testing.assert_allclose(p.log_prob(w).numpy(), stats.norm.logpdf(w.numpy(), 0, np.sqrt(var.numpy())),
                               rtol=1e-12)
    # a slice of the per-weight hyperparameters
    np.testing.assert_allclose(p.log_prob(w[10:20], slice(10, 20)).numpy(),
                               stats.norm.logpdf(w[10:20].numpy(), 0, np.sqrt(var[10:20].numpy())), rtol=1e-12)


@pytest.mark.parametrize("prior", [pb.priors.Normal(0.1, 0.5), pb.priors.AdaptiveNormal(-0.2, 2.0)])
def test_normal_kl_matches_torch(prior):
    prior = prior.double()
    loc, scale = points(30, 5), points(30, 6).abs() + 0.05
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(loc, scale),
                                            torch.distributions.Normal(prior.loc, prior.scale))
    torch.testing.assert_close(prior.kl_normal(loc, scale), ref)


def random_posterior(w=40, seed=0, point=False):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(w, generator=g, dtype=torch.float64) * 0.5 + 0.2
    scale = torch.zeros(w) if point else torch.rand(w, generator=g, dtype=torch.float64) * 0.4 + 0.05
    return loc, scale


@pytest.mark.parametrize("point", [False, True])
def test_adaptive_normal_optimum_matches_numerical_minimum(point):
    """Graves (2011): μ̂, σ̂² minimise Σ KL[q_i || N(μ, σ²)] (E_q[−log p] for a point estimate)."""
    loc, scale = random_posterior(point=point)
    m, s = loc.numpy(), scale.numpy()

    def objective(theta):  # Σ_i E_q[−log N(w_i | μ, σ²)], up to constants
        mu, log_sigma = theta
        var = np.exp(2 * log_sigma)
        return np.sum(log_sigma + (s**2 + (m - mu) ** 2) / (2 * var))

    res = optimize.minimize(objective, x0=[0.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    p = pb.priors.AdaptiveNormal().double()
    p.update(loc, scale)
    assert float(p.loc) == pytest.approx(res.x[0], abs=1e-5)
    assert float(p.scale) == pytest.approx(np.exp(res.x[1]), rel=1e-5)


@pytest.mark.parametrize("point", [False, True])
def test_adaptive_laplace_optimum_matches_numerical_minimum(point):
    """Graves (2011): Laplace μ̂ = median, b̂ = mean absolute deviation; for a Gaussian posterior
    the same objective E_q[−log p] is minimised with E|w − μ| integrated numerically."""
    loc, scale = random_posterior(w=15, seed=3, point=point)
    m, s = loc.numpy(), scale.numpy()

    def e_abs(mu):
        if point:
            return np.abs(m - mu)
        return np.array([integrate.quad(lambda w: abs(w - mu) * stats.norm.pdf(w, mi, si), mi - 12 * si, mi + 12 * si,
                                        points=[mu] if abs(mu - mi) < 12 * si else None, epsabs=1e-12)[0]
                         for mi, si in zip(m, s)])

    def objective(mu):  # minimised over b in closed form: W log(2 b̂) + W
        b = e_abs(mu).mean()
        return len(m) * np.log(2 * b)

    res = optimize.minimize_scalar(objective, bounds=(m.min(), m.max()), method="bounded",
                                   options={"xatol": 1e-9})
    b_ref = e_abs(res.x).mean()
    p = pb.priors.AdaptiveLaplace().double()
    p.update(loc, scale)
    assert float(p.loc) == pytest.approx(res.x, abs=1e-5)
    assert float(p.scale) == pytest.approx(b_ref, rel=1e-6)
    # the objective at our optimum is no worse than scipy's
    assert objective(float(p.loc)) <= objective(res.x) + 1e-9


def test_adaptive_fixed_parts_stay_fixed():
    loc, scale = random_posterior()
    p = pb.priors.AdaptiveNormal(0.0, math.sqrt(0.1), fit_scale=False).double()  # Graves' "adaptive mean L2"
    p.update(loc, scale)
    assert float(p.scale) == pytest.approx(math.sqrt(0.1))
    assert float(p.loc) == pytest.approx(float(loc.mean()))
    q = pb.priors.AdaptiveLaplace(0.0, 1 / 12, fit_scale=False).double()
    q.update(loc, torch.zeros_like(loc))
    assert float(q.scale) == pytest.approx(1 / 12) and float(q.loc) == pytest.approx(float(loc.median()))


def test_expected_abs_deviation_matches_quadrature():
    loc, scale = random_posterior(w=5, seed=9)
    got = expected_abs_deviation(loc, scale, torch.tensor(0.1)).numpy()
    ref = [integrate.quad(lambda w: abs(w - 0.1) * stats.norm.pdf(w, mi, si), -np.inf, np.inf)[0]
           for mi, si in zip(loc.numpy(), scale.numpy())]
    np.testing.assert_allclose(got, ref, rtol=1e-7)
    assert float(mixture_median(loc, torch.zeros_like(loc))) == pytest.approx(float(loc.median()))


def test_ard_closed_form_kl():
    """Basov eq. (5)-(6): at δ² = σ² + μ² the KL is ½ Σ ln(1 + γ²), γ = μ/σ."""
    loc, scale = random_posterior(w=64, seed=11)
    p = pb.priors.ARD()
    p.bind(64)
    p.update(loc, scale)
    gamma = loc / scale
    torch.testing.assert_close(p.kl_normal(loc, scale).sum(), 0.5 * torch.log1p(gamma**2).sum())
    # and the update minimises the KL: perturbing δ² only increases it
    kl0 = p.kl_normal(loc, scale).sum()
    for f in (0.9, 1.1):
        p.variance = p.variance * f
        assert p.kl_normal(loc, scale).sum() > kl0
        p.variance = p.variance / f


@pytest.mark.parametrize("kwargs,match", [
    (dict(cls=pb.priors.Normal, scale=-1.0), "scale must be a positive"),
    (dict(cls=pb.priors.Laplace, scale=0.0), "scale must be a positive"),
    (dict(cls=pb.priors.ScaleMixture, pi=1.5), r"pi must lie in \(0, 1\)"),
    (dict(cls=pb.priors.ScaleMixture, sigma2=-0.1), "sigma2 must be a positive"),
    (dict(cls=pb.priors.ARD, init_scale=0.0), "init_scale must be a positive"),
])
def test_bad_hyperparameters_raise(kwargs, match):
    cls = kwargs.pop("cls")
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
