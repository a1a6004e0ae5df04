"""The plain-torch ELBO estimators (:mod:`pyrobnn.infer.torch_elbo`).

"trace" and "meanfield" must give Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO`` numbers and
gradients from the same random draws.  Local reparameterisation and Flipout must have the expectation of the plain estimator; on a single linear-Gaussian layer that
expectation has a closed form, E_q[log N(y; a, s²)] = log N(y; E[a], s²) − Var[a]/(2s²) per
example, which every estimator is checked against (tolerance: 4 Monte-Carlo standard errors
from the estimators' own draws).  On a two-hidden-layer net the three estimators are compared
with each other, and their gradient variances are measured.
"""

from __future__ import annotations

import math

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.elbo import elbo_terms, make_elbo
from pyrobnn.infer.torch_elbo import TorchEstimator, supports

M = 400  # Monte-Carlo draws per estimator


@pytest.mark.parametrize("guide_cls", ["MeanField", "ARD"])
@pytest.mark.parametrize("kind", ["trace", "meanfield"])
def test_trace_and_meanfield_give_pyros_numbers_from_the_same_draws(kind, guide_cls):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(12, generator=g, dtype=torch.float64)
    net = pb.BNN([pb.Linear(3, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(scale=0.3),
                 prior=pb.priors.Normal(0.0, 0.7)).double()
    guide = getattr(pb.guides, guide_cls)(net, init_scale=0.2)
    guide.setup(x, y, n_data=40)
    assert supports(net, guide)
    results = []
    for est in (make_elbo(kind), TorchEstimator(kind)):
        torch.manual_seed(11)
        t = elbo_terms(est, net, guide, (x, y), {"n_data": 40}, kl_weight=0.3)
        guide.zero_grad(set_to_none=True)
        t.loss.backward()
        results.append((t.loss.detach(), t.nll.detach(), torch.as_tensor(t.kl).detach(),
                        [p.grad.clone() for p in guide.parameters()]))
    (l0, n0, k0, g0), (l1, n1, k1, g1) = results
    for a, b in ((l0, l1), (n0, n1), (k0, k1), *zip(g0, g1)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_fast_path_is_taken_only_where_it_applies():
    d = pb.data.toy_curve(n_train=8, seed=0)
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    for guide, expected in ((pb.guides.MeanField(net), True), (pb.guides.Delta(net), False)):
        guide.setup(d.x_train, d.y_train)
        assert supports(net, guide) is expected
    learned = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1, learned=True))
    guide = pb.guides.MeanField(learned)
    guide.setup(d.x_train, d.y_train)
    assert not supports(learned, guide)  # the noise is a latent site of the likelihood: Pyro's tracing


def _draws(kind, net, guide, x, y, n_data, m=M, grads=False):
    est = make_elbo(kind)
    vals, gs = [], []
    for _ in range(m):
        t = elbo_terms(est, net, guide, (x, y), {"n_data": n_data})
        vals.append(torch.stack([t.nll.detach(), torch.as_tensor(t.kl).detach()]))
        if grads:
            guide.zero_grad()
            t.nll.backward()
            gs.append(torch.cat([p.grad.reshape(-1) for p in guide.parameters()]))
    return torch.stack(vals), (torch.stack(gs) if grads else None)


def _linear_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20, generator=g, dtype=torch.float64)
    net = pb.BNN([pb.Linear(3, 1)], pb.Gaussian(scale=0.5), prior=pb.priors.Normal(0.0, 1.0)).double()
    guide = pb.guides.MeanField(net, init_scale=0.4)
    guide.setup(x, y, n_data=60)
    return net, guide, x, y


@pytest.mark.parametrize("kind", ["trace", "local_reparam", "flipout"])
def test_expected_nll_of_a_linear_gaussian_layer_matches_the_closed_form(kind):
    torch.manual_seed(1)
    net, guide, x, y = _linear_problem()
    loc, scale = guide.loc_scale("weights")
    w_mu, b_mu, w_var, b_var = loc[:3], loc[3], scale[:3] ** 2, scale[3] ** 2
    mean, var, s = x @ w_mu + b_mu, x**2 @ w_var + b_var, 0.5
    exact = -(torch.distributions.Normal(mean, s).log_prob(y) - var / (2 * s * s)).sum() * (60 / 20)
    vals, _ = _draws(kind, net, guide, x, y, 60)
    nll = vals[:, 0]
    se = nll.std() / math.sqrt(len(nll))
    assert abs(nll.mean() - exact) < 4 * se + 1e-9, (kind, nll.mean().item(), exact.item(), se.item())
    # the KL: closed form for local reparameterisation, Monte-Carlo (unbiased) for the others
    kl_exact = pb.priors.Normal(0.0, 1.0).kl_normal(loc, scale).sum()
    kl = vals[:, 1]
    if kind == "local_reparam":
        torch.testing.assert_close(kl, kl_exact.expand_as(kl).detach())
    else:
        assert abs(kl.mean() - kl_exact) < 4 * kl.std() / math.sqrt(len(kl))


@pytest.mark.parametrize("m", [60, pytest.param(1000, marks=pytest.mark.slow)])
def test_deeper_net_same_expectation_and_lower_gradient_variance(m):
    torch.manual_seed(2)
    d = pb.data.toy_curve(n_train=32, seed=1)
    net = pb.BNN([pb.Linear(1, 16), "tanh", pb.Linear(16, 16), "relu", pb.Linear(16, 1)], pb.Gaussian(scale=0.2),
                 prior=pb.priors.Normal(0.0, 1.0))
    guide = pb.guides.MeanField(net, init_scale=0.2)
    guide.setup(d.x_train, d.y_train, n_data=32)
    res = {k: _draws(k, net, guide, d.x_train, d.y_train, 32, m=m, grads=True)
           for k in ("trace", "local_reparam", "flipout")}
    ref = res["trace"][0][:, 0]
    for kind in ("local_reparam", "flipout"):
        nll = res[kind][0][:, 0]
        se = math.sqrt(ref.var() / len(ref) + nll.var() / len(nll))
        assert abs(nll.mean() - ref.mean()) < 4 * se, (kind, nll.mean().item(), ref.mean().item(), se)
    gvar = {k: v[1].var(0).sum().item() for k, v in res.items()}
    # per-example noise: far lower gradient variance than one shared weight sample
    assert gvar["local_reparam"] < 0.2 * gvar["trace"], gvar
    assert gvar["flipout"] < 0.5 * gvar["trace"], gvar


def test_fit_svi_and_specs_take_the_estimators():
    d = pb.data.toy_curve(n_train=64, seed=0)
    for kind in ("local_reparam", "flipout"):
        net = pb.BNN([pb.Linear(1, 16), "tanh", pb.Linear(16, 1)], pb.Gaussian(scale=0.1),
                     prior=pb.priors.Normal(0.0, 1.0))
        post = pb.fit_svi(net, pb.guides.MeanField(net), d.x_train, d.y_train, epochs=8, batch_size=32, lr=0.02,
                          elbo=kind, progress=False)
        first, last = post.history[0]["loss"], post.history[-1]["loss"]
        assert last < first and post.info["elbo"] == kind
    from pyrobnn.spec import load_inference_spec

    assert load_inference_spec("svi_meanfield", ["svi.elbo=flipout"]).svi.elbo == "flipout"


def test_what_the_estimators_cannot_do_is_refused_naming_it():
    d = pb.data.toy_curve(n_train=16, seed=0)
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    with pytest.raises(ValueError, match="num_particles=1"):
        pb.fit_svi(net, pb.guides.MeanField(net), d.x_train, d.y_train, epochs=1, elbo="flipout", num_particles=2,
                   progress=False)
    with pytest.raises(ValueError, match="Gaussian guide"):
        pb.fit_svi(net, pb.guides.Delta(net), d.x_train, d.y_train, epochs=1, elbo="local_reparam", progress=False)
    conv = pb.BNN([pb.Conv2d(1, 2, 3), pb.Flatten(), pb.Linear(2 * 4 * 4, 2)], pb.Categorical(2))
    xi, yi = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="layer 0 is Conv2d"):
        pb.fit_svi(conv, pb.guides.MeanField(conv), xi, yi, epochs=1, elbo="local_reparam", progress=False)
    with pytest.raises(ValueError, match="elbo must be one of"):
        pb.fit_svi(net, pb.guides.MeanField(net), d.x_train, d.y_train, epochs=1, elbo="nope", progress=False)


@pytest.mark.parametrize("lik,k,labels", [(pb.Gaussian(scale=0.4), 1, None), (pb.Bernoulli(), 1, 2),
                                          (pb.Categorical(5), 5, 5)])
@pytest.mark.parametrize("lead", [(), (3,)])
def test_likelihood_log_prob_sum_is_the_distributions_summed_log_density(lik, k, labels, lead):
    # the fused sum the training step uses against the distribution the model and the predictive use
    g = torch.Generator().manual_seed(2)
    out = torch.randn(*lead, 7, k, generator=g, dtype=torch.float64)
    if labels is None:
        y = torch.randn(7, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, labels, (7,), generator=g)
        y = y.to(torch.float64) if labels == 2 else y
    lik = lik.double()
    want = lik.distribution(out, {}).log_prob(y).sum()
    torch.testing.assert_close(lik.log_prob_sum(out, {}, y), want, rtol=1e-12, atol=1e-12)
