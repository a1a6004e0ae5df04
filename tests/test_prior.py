"""Prior predictive draws and the wide limit of a one-hidden-layer network (Neal 1996)."""

import math

import numpy as np
import pytest
import torch

from pyrobnn.diagnostics.prior import (
    hidden_moments,
    one_hidden_layer_kernel,
    plot_prior_draws,
    plot_wide_limit,
    prior_function_draws,
    wide_limit_check,
    wide_network,
)

X = torch.tensor([[-1.0], [0.3], [2.0]])


def test_kernels_by_hand():
    sw, sv = 1.5, 0.7
    k = sw**2 * (X[:, 0] ** 2 + 1)
    relu = one_hidden_layer_kernel(X, X, "relu", sw, sv)
    assert torch.allclose(relu.diagonal(), sv**2 * k.double() / 2)  # E relu(z)² = k/2
    erf = one_hidden_layer_kernel(X, X, "erf", sw, sv)
    assert torch.allclose(erf.diagonal(), sv**2 * (2 / math.pi) * torch.arcsin(2 * k / (1 + 2 * k)).double())
    # off-diagonal against a plain Monte-Carlo expectation over the bivariate normal (z, z')
    rng = np.random.default_rng(0)
    n = 400_000
    u = rng.normal(size=n) * sw
    a = rng.normal(size=n) * sw
    z0, z2 = u * X[0, 0].item() + a, u * X[2, 0].item() + a
    for act, kern, h in (("relu", relu, lambda z: np.maximum(z, 0)), ("erf", erf, None)):
        if h is None:
            from scipy.special import erf as h
        prod = sv**2 * h(z0) * h(z2)
        assert abs(prod.mean() - kern[0, 2].item()) < 4 * prod.std() / math.sqrt(n), act
    assert hidden_moments("relu", 2.0) == (1.0, 6.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        one_hidden_layer_kernel(X, X, "tanh")


def test_prior_draws_follow_the_prior_and_leave_rng_alone():
    net = wide_network(1, 8, "relu", sigma_w=1.0, sigma_v=2.0)
    state = torch.get_rng_state()
    f1 = prior_function_draws(net, X, 50, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(f1, prior_function_draws(net, X, 50, seed=3)) and f1.shape == (50, 3, 1)
    assert net.prior_of(2).scale.item() == pytest.approx(2.0 / math.sqrt(8))


def test_wide_limit_fast(tmp_path):
    r = wide_limit_check(X, widths=(1, 64), activation="relu", num_draws=8000, seed=0)
    rows = r["widths"]
    for row in rows:
        # the measured covariance equals the exact finite-width covariance K + σ_v²/H within 4.5 s.e.
        # (the largest of 6 distinct entries)
        assert row["max_z"] < 4.5, row["width"]
        assert abs(row["kurtosis"] - row["kurtosis_expected"]) < 4 * row["kurtosis_se"], row["width"]
    se = max(np.max(row["cov_se"]) for row in rows)
    assert rows[-1]["max_abs_error"] < 1 / 64 + 4 * se < rows[0]["max_abs_error"]
    assert rows[-1]["kurtosis"] < rows[0]["kurtosis"] / 5
    assert plot_wide_limit(r, tmp_path / "wide.png").stat().st_size > 0
    assert plot_prior_draws(wide_network(1, 50), torch.linspace(-3, 3, 40), tmp_path / "p.png").exists()


@pytest.mark.slow
def test_wide_limit_erf_and_relu_many_widths():
    for act in ("relu", "erf"):
        r = wide_limit_check(X, widths=(1, 4, 16, 64, 256, 1024), activation=act, num_draws=100_000, seed=1)
        for row in r["widths"]:
            assert row["max_z"] < 4.5, (act, row["width"])
            assert abs(row["kurtosis"] - row["kurtosis_expected"]) < 5 * row["kurtosis_se"], (act, row["width"])
        assert r["widths"][-1]["max_abs_error"] < 1 / 1024 + 4 * max(np.max(w["cov_se"]) for w in r["widths"])
