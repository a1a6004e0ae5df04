"""Ensembles of fits (pyrobnn.infer.ensemble): the mixture's summaries against the closed forms
built from the members' own predictions with the same draws."""

import math

import pytest
import torch

import pyrobnn as pb


def _fit(seed, likelihood=None, x=None, y=None, width=6):
    torch.manual_seed(seed)  # a different initialisation per member
    likelihood = likelihood or pb.Gaussian(0.2)
    d_in = 1 if x is None else x.shape[1]
    d_out = 3 if isinstance(likelihood, pb.Categorical) else 1
    net = pb.BNN([pb.Linear(d_in, width), "tanh", pb.Linear(width, d_out)], likelihood)
    if x is None:
        d = pb.data.toy_curve(n_train=40, n_test=0, seed=1)
        x, y = d.x_train, d.y_train
    return pb.fit_svi(net, pb.guides.MeanField(net, init_scale=0.1), x, y, epochs=20, batch_size=20, lr=0.02,
                      seed=seed, progress=False)


@pytest.fixture(scope="module")
def members():
    return [_fit(s) for s in range(3)]


def test_regression_mixture_is_the_pool_of_the_members(members):
    ens = pb.Ensemble(members)
    x = torch.linspace(-1.5, 1.5, 17).unsqueeze(-1)
    pred = ens.predict(x, num_samples=50, seed=10)
    alone = [m.predict(x, num_samples=50, seed=10 + k) for k, m in enumerate(members)]  # member k's seed is seed + k
    mean = torch.stack([p.mean for p in alone]).mean(0)
    torch.testing.assert_close(pred.mean, mean)
    torch.testing.assert_close(pred.aleatoric_var, torch.stack([p.aleatoric_var for p in alone]).mean(0))
    # law of total variance across members: E_k[Var_k + m_k²] − m²
    second = torch.stack([p.total_var + p.mean**2 for p in alone]).mean(0)
    torch.testing.assert_close(pred.total_var, second - mean**2, rtol=1e-5, atol=1e-6)
    assert pred.mean_draws.shape == (150, 17)
    # the members disagree away from the data: the mixture's epistemic variance exceeds the mean of theirs there
    far = torch.stack([p.epistemic_var for p in alone]).mean(0)
    assert pred.epistemic_var[0] > far[0] and pred.epistemic_var[-1] > far[-1]


def test_log_predictive_density_is_the_log_mean_of_the_members_densities(members):
    ens = pb.Ensemble(members)
    d = pb.data.toy_curve(n_train=30, n_test=0, seed=4)
    lpd = ens.log_predictive_density(d.x_train, d.y_train, num_samples=40, seed=3)
    own = torch.stack([m.log_predictive_density(d.x_train, d.y_train, num_samples=40, seed=3 + k)
                       for k, m in enumerate(members)])
    torch.testing.assert_close(lpd, torch.logsumexp(own, 0) - math.log(3))
    torch.testing.assert_close(ens.member_log_predictive_density(d.x_train, d.y_train, num_samples=40, seed=3), own)
    # Jensen: the mixture's density is at least the mean member's in log space, point by point
    assert torch.all(lpd >= own.mean(0) - 1e-6)


def test_one_member_is_that_member(members):
    x = torch.linspace(-1, 1, 5).unsqueeze(-1)
    a = pb.Ensemble([members[0]]).predict(x, num_samples=30, seed=2)
    b = members[0].predict(x, num_samples=30, seed=2)
    torch.testing.assert_close(a.mean_draws, b.mean_draws)
    torch.testing.assert_close(a.epistemic_var, b.epistemic_var)


def test_classification_mixture_averages_probabilities():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    ms = [_fit(s, pb.Categorical(3), x, y) for s in range(2)]
    ens = pb.Ensemble(ms)
    pred = ens.predict(x[:7], num_samples=25, seed=0)
    alone = [m.predict(x[:7], num_samples=25, seed=k) for k, m in enumerate(ms)]
    torch.testing.assert_close(pred.probs, (alone[0].probs + alone[1].probs) / 2)
    torch.testing.assert_close(pred.probs.sum(-1), torch.ones(7))
    assert torch.all(pred.mutual_information >= 0) and torch.all(pred.entropy >= pred.expected_entropy - 1e-6)


def test_bad_members_are_named():
    with pytest.raises(ValueError, match="members must hold at least one"):
        pb.Ensemble([])
    with pytest.raises(TypeError, match=r"members\[1\] must be a fitted posterior"):
        pb.Ensemble([_fit(0), "not a fit"])
    x = torch.randn(20, 1)
    with pytest.raises(ValueError, match="members must share one task"):
        pb.Ensemble([_fit(0), _fit(1, pb.Categorical(3), x, torch.zeros(20, dtype=torch.long))])


def test_members_with_different_draw_counts_are_refused(members):
    import copy

    short = copy.copy(members[1])  # a member that gives one draw fewer than asked, as thinned MCMC draws can
    short.log_likelihood = lambda x, y, **kw: members[1].log_likelihood(x, y, **kw)[:, :-1]
    x = torch.linspace(-1, 1, 5).unsqueeze(-1)
    with pytest.raises(ValueError, match=r"different numbers of draws \[10, 9\]"):
        pb.Ensemble([members[0], short]).log_predictive_density(x, torch.zeros(5), num_samples=10)
