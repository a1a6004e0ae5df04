"""Pyro's autoguides on a pyrobnn BNN: fit_svi, the predictive, the DataTree export, the report,
saving; and the Laplace approximation of AutoLaplaceApproximation against the closed form of a
linear-Gaussian model."""

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.guides import AUTOGUIDES, laplace_autoguide, make_autoguide

KINDS = ["AutoNormal", "AutoLowRankMultivariateNormal", "AutoMultivariateNormal", "AutoIAFNormal",
         "AutoLaplaceApproximation"]


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2, 2, n).unsqueeze(-1)
    return x, torch.sin(x[:, 0]) + 0.1 * torch.randn(n, generator=g)


def test_every_autoguide_is_listed():
    assert set(KINDS) == set(AUTOGUIDES)


@pytest.mark.parametrize("kind", KINDS)
def test_autoguide_through_fit_predict_export_save(kind, tmp_path):
    x, y = _data()
    # the Laplace approximation needs the MAP to be reached (a positive-definite Hessian): with the first layer
    # deterministic the posterior of the last is log-concave, so a few steps do
    laplace = kind == "AutoLaplaceApproximation"
    net = pb.BNN([pb.Linear(1, 4, bayesian=not laplace), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.2),
                 pb.priors.Normal(0, 1))
    guide = make_autoguide(kind, net, **({"hidden_dim": [20]} if kind == "AutoIAFNormal" else {}))
    post = pb.fit_svi(net, guide, x, y, epochs=30, lr=0.02, seed=0, progress=False)
    if kind == "AutoLaplaceApproximation":  # the point estimate became its Gaussian approximation
        assert type(post.guide).__name__ == "AutoMultivariateNormal" and "posterior_guide" in post.info
    draws = post.draws(16, seed=1)
    assert draws["weights"].shape == (1, 16, net.num_weights)
    assert draws["weights"].std(1).min() > 0  # a distribution, not a point
    pred = post.predict(x, num_samples=16)
    assert pred.mean.shape == (24,) and torch.isfinite(pred.total_var).all()
    tree = post.to_datatree(x, y, num_samples=16)
    assert tree["posterior"]["layers.2.weight"].shape == (1, 16, 1, 4)  # named by layer
    assert "log_likelihood" in tree.children
    saved = post.save(tmp_path / "run")
    back = pb.load(saved)
    torch.testing.assert_close(back.predict(x, num_samples=16).mean, pred.mean, rtol=0, atol=0)


@pytest.mark.slow  # matplotlib figures: seconds; the export it reads is tested for every autoguide above
def test_autoguide_report(tmp_path):
    x, y = _data()
    net = pb.BNN([pb.Linear(1, 3, bayesian=False), "tanh", pb.Linear(3, 1)], pb.Gaussian(scale=0.2))
    post = pb.fit_svi(net, make_autoguide("AutoLaplaceApproximation", net), x, y, epochs=20, lr=0.02,
                      progress=False)
    out = pb.report(post.to_datatree(x, y, num_samples=100), tmp_path / "report")
    assert (tmp_path / "report" / "metrics.json").is_file() and out is not None


def test_laplace_autoguide_is_exact_for_a_linear_gaussian_model():
    """y = Xw + ε, ε ~ N(0, s²), w ~ N(0, a²I): the posterior is N(m, S) with
    S = (XᵀX/s² + I/a²)⁻¹, m = S Xᵀy/s²; the log joint is quadratic, so the Laplace
    approximation at the MAP (= m) is exact."""
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(30, 3, generator=g, dtype=torch.float64)
        y = x @ torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64) + 0.3 * torch.randn(30, generator=g,
                                                                                      dtype=torch.float64)
        s, a = 0.3, 2.0
        net = pb.BNN([pb.Linear(3, 1, bias=False)], pb.Gaussian(scale=s), pb.priors.Normal(0, a)).double()
        prec = x.T @ x / s**2 + torch.eye(3, dtype=torch.float64) / a**2
        cov = torch.linalg.inv(prec)
        mean = cov @ x.T @ y / s**2
        guide = make_autoguide("AutoLaplaceApproximation", net)
        guide(x, y, n_data=30)
        with torch.no_grad():
            guide.loc.copy_(mean)  # the MAP in closed form
        gauss = laplace_autoguide(guide, x, y, n_data=30)
        got_cov = gauss.get_posterior().covariance_matrix
        torch.testing.assert_close(gauss.loc, mean)
        torch.testing.assert_close(got_cov, cov, rtol=1e-9, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_laplace_autoguide_names_a_non_positive_definite_hessian():
    x, y = _data(8)
    net = pb.BNN([pb.Linear(1, 2), "tanh", pb.Linear(2, 1)], pb.Gaussian(scale=0.2), pb.priors.Flat())
    guide = make_autoguide("AutoLaplaceApproximation", net)
    guide(x, y, n_data=8)
    with torch.no_grad():
        guide.loc.zero_()  # all weights zero: a saddle of the likelihood (flat prior)
    with pytest.raises(ValueError, match="positive-definite Hessian"):
        laplace_autoguide(guide, x, y, n_data=8)
