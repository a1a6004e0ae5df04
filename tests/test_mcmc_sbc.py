"""Simulation-based calibration of fit_nuts (Talts, Betancourt, Simpson, Vehtari & Gelman 2018,
"Validating Bayesian inference algorithms with simulation-based calibration", arXiv:1804.06788).

For a model p(θ) p(y | θ): draw θ* ~ p(θ), y ~ p(y | θ*), run the sampler on y and take L
(nearly independent, thinned) draws θ_1..L.  The rank r = #{l : θ_l < θ*} ∈ {0, …, L} of the
true value is uniform on {0, …, L} for every parameter exactly when the sampler draws from the
posterior (averaged over the prior predictive).  Over N replications the ranks are binned into B
equal bins ((L + 1) divisible by B) and uniformity is tested with Pearson's χ² statistic
Σ_b (O_b − N/B)² / (N/B) on B − 1 degrees of freedom.  Each parameter is tested at level
``LEVEL`` / P (Bonferroni over the P parameters).

The model is Bayesian linear regression as a one-layer BNN (2 inputs and a bias, Normal(0, 1)
prior, Gaussian noise 0.5, 10 fixed inputs).  The full check (≥ 200 replications) is slow and
also run by ``benchmarks/sbc.py``, which commits its numbers; the default run checks the
machinery on a conjugate model whose posterior is sampled exactly (accepted) and on a posterior
that is too narrow (rejected).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import pyrobnn as pb
from pyrobnn.infer.mcmc import fit_nuts

LEVEL = 0.01  # family-wise level of the uniformity test (Bonferroni over the parameters)
BINS = 10


def rank_of_truth(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(L, P) draws and (P,) true values → (P,) ranks #{l : draws[l] < truth} in {0, …, L}."""
    return (draws < truth[None]).sum(0)


def uniformity(ranks: np.ndarray, num_draws: int, bins: int = BINS) -> dict:
    """Pearson's χ² test that ranks (N, P) in {0, …, L} (L = ``num_draws``) are uniform: counts
    per bin (P, B), the statistic and p-value per parameter."""
    if (num_draws + 1) % bins:
        raise ValueError(f"num_draws + 1 = {num_draws + 1} must be divisible by bins = {bins}")
    which = ranks * bins // (num_draws + 1)
    counts = np.stack([np.bincount(which[:, j], minlength=bins) for j in range(ranks.shape[1])])
    expected = ranks.shape[0] / bins
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    return {"counts": counts, "chi2": chi2, "p_value": stats.chi2.sf(chi2, bins - 1), "df": bins - 1,
            "replications": int(ranks.shape[0]), "num_draws": int(num_draws), "level": LEVEL,
            "level_per_parameter": LEVEL / ranks.shape[1]}


# ---------------------------------------------------------------------- the BNN model
def regression_design(n=10, p=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, generator=g, dtype=torch.float64)


SIGMA = 0.5


def simulate(x, gen):
    """θ* ~ N(0, I) (weights, then the bias, as the BNN packs them) and y ~ N(xw + b, σ²)."""
    theta = torch.randn(x.shape[1] + 1, generator=gen, dtype=x.dtype)
    y = x @ theta[:-1] + theta[-1] + SIGMA * torch.randn(x.shape[0], generator=gen, dtype=x.dtype)
    return theta, y


def nuts_sbc_ranks(replications, warmup=60, samples=100, thin=1, seed=0, progress=None):
    """Ranks (N, P) of the true parameters among the thinned NUTS draws, and L."""
    x = regression_design()
    net = pb.BNN([pb.Linear(x.shape[1], 1)], pb.Gaussian(SIGMA), prior=pb.priors.Normal(0.0, 1.0))
    gen = torch.Generator().manual_seed(seed)
    num_draws = samples // thin - 1  # L + 1 = samples / thin values of the rank
    ranks = []
    for r in range(replications):
        theta, y = simulate(x, gen)
        post = fit_nuts(net, x, y, chains=1, warmup=warmup, num_samples=samples, seed=seed + r,
                        progress=False, dtype=torch.float64)
        draws = post.samples["weights"][0, thin - 1::thin][:num_draws].numpy()
        ranks.append(rank_of_truth(draws, theta.numpy()))
        if progress is not None:
            progress(np.stack(ranks), num_draws)
    return np.stack(ranks), num_draws


# ---------------------------------------------------------------------- tests
def conjugate_ranks(replications, num_draws, scale, seed=0):
    """θ ~ N(0, 1), y_i ~ N(θ, 1), i = 1..5: the posterior is N(Σy / 6, 1 / 6); draws from it
    with the standard deviation multiplied by ``scale`` (1: exact)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=replications)
    y = theta[:, None] + rng.normal(size=(replications, 5))
    mean, sd = y.sum(1) / 6, np.sqrt(1 / 6) * scale
    draws = mean[:, None] + sd * rng.normal(size=(replications, num_draws))
    return (draws < theta[:, None]).sum(1)[:, None]


def test_uniformity_accepts_exact_posterior_draws_and_rejects_a_too_narrow_posterior():
    exact = uniformity(conjugate_ranks(400, 99, 1.0), 99)
    assert exact["counts"].sum() == 400 and exact["counts"].shape == (1, BINS)
    assert exact["p_value"][0] > exact["level_per_parameter"]
    narrow = uniformity(conjugate_ranks(400, 99, 0.6), 99)  # overconfident: U-shaped rank histogram
    assert narrow["p_value"][0] < 1e-6
    ends = narrow["counts"][0, [0, -1]].sum()
    assert ends > 2 * 400 * 2 / BINS


def test_rank_of_truth_and_bins():
    draws = np.array([[0.0, 5.0], [1.0, 6.0], [2.0, 7.0]])
    assert rank_of_truth(draws, np.array([1.5, 4.0])).tolist() == [2, 0]
    with pytest.raises(ValueError, match="divisible"):
        uniformity(np.zeros((5, 1), dtype=int), 10)


@pytest.mark.slow
def test_nuts_is_calibrated_on_bayesian_linear_regression():
    ranks, num_draws = nuts_sbc_ranks(200)
    result = uniformity(ranks, num_draws)
    assert result["replications"] >= 200
    assert (result["p_value"] > result["level_per_parameter"]).all(), result
