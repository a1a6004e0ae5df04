"""NUTS / HMC on BNN models: exactness against a closed-form posterior, the shape of the
result, reproducibility and argument checks.  Convergence on the shipped toy spec is tested
in tests/test_toy_quality.py."""


import os
from functools import partial

import arviz_stats as azs
import numpy as np
import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.mcmc import PotentialEnergy, _initial_values, _layout, adaptation_schedule, fit_hmc, fit_nuts

Z = 4.0  # tolerance in Monte-Carlo standard errors


# ---------------------------------------------------------------------- fixtures
def linear_regression_problem(n=20, p=3, sigma=0.5, prior_scale=1.0, dtype=torch.float64, seed=1):
    """Bayesian linear regression as a one-layer BNN, with its Gaussian posterior in closed form:
    precision A = X̃ᵀX̃/σ² + I/s², mean A⁻¹X̃ᵀy/σ² (X̃ = [X, 1]: the packed site holds the
    weight row, then the bias)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=dtype)
    x[:, 1] = x[:, 0] + 0.3 * x[:, 1]  # correlated inputs: the posterior is not axis-aligned
    w = torch.linspace(-1.0, 1.0, p, dtype=dtype)
    y = x @ w + 0.2 + sigma * torch.randn(n, generator=g, dtype=dtype)
    xt = torch.cat([x, torch.ones(n, 1, dtype=dtype)], 1)
    prec = xt.T @ xt / sigma**2 + torch.eye(p + 1, dtype=dtype) / prior_scale**2
    cov = torch.linalg.inv(prec)
    mean = cov @ xt.T @ y / sigma**2
    net = pb.BNN([pb.Linear(p, 1)], pb.Gaussian(sigma), prior=pb.priors.Normal(0.0, prior_scale))
    return net, x, y, mean.numpy(), cov.numpy()


def check_gaussian_moments(w, mean, cov):
    """Posterior mean and variance of every coordinate within Z Monte-Carlo standard errors
    (MCSE from the effective sample size of w and of (w − mean)²)."""
    var = np.diag(cov)
    m = w.reshape(-1, w.shape[-1]).mean(0)
    mcse_mean = azs.mcse(w, chain_axis=0, draw_axis=1)
    sq = (w - mean) ** 2
    v = sq.reshape(-1, w.shape[-1]).mean(0)
    mcse_var = azs.mcse(sq, chain_axis=0, draw_axis=1)
    assert np.all(np.abs(m - mean) < Z * mcse_mean), (m, mean, mcse_mean)
    assert np.all(np.abs(v - var) < Z * mcse_var), (v, var, mcse_var)
    # enough effective draws for the MCSEs (and so the tolerances) to be meaningful
    ess = azs.ess(w, chain_axis=0, draw_axis=1)
    assert np.all(ess > 100), ess


def tiny_net(**kw):
    return pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3, **kw))


def tiny_data(n=12):
    d = pb.data.toy_curve(n_train=n, n_test=0)
    return d.x_train, d.y_train


FAST = dict(num_samples=15, warmup=10, chains=2, max_tree_depth=5, progress=False, jit=False)


# ---------------------------------------------------------------------- exactness
@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_matches_closed_form_linear_regression(kernel):
    net, x, y, mean, cov = linear_regression_problem()
    post = fit_nuts(net, x, y, num_samples=400, warmup=200, chains=4, kernel=kernel,
                    num_steps=6 if kernel == "hmc" else None, seed=3, progress=False)
    w = post.samples["weights"].numpy()
    assert w.shape == (4, 400, 4)
    check_gaussian_moments(w, mean, cov)
    assert int(post.sample_stats["diverging"].sum()) == 0
    if kernel == "nuts":  # split R-hat of 8 half-chains of 200 draws fluctuates by ~0.005 around 1
        assert np.all(azs.rhat(w, chain_axis=0, draw_axis=1) < 1.02)


def hierarchical_quadrature(x, y, sigma, hyper, family="normal"):
    """p(s | y) of Bayesian linear regression with prior w ~ N(0, s²) (packed [w, b]) and
    s ~ ``hyper``, by quadrature on a fine grid of log s: the marginal likelihood is
    N(y | 0, s² X̃X̃ᵀ + σ² I).  Returns E[s | y], sd[s | y] and E[w | y] = ∫ p(s | y) m(s) ds."""
    n = x.shape[0]
    xt = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
    log_s = torch.linspace(-6.0, 4.0, 4001, dtype=torch.float64)
    s = log_s.exp()
    cov = s[:, None, None] ** 2 * (xt @ xt.T) + sigma**2 * torch.eye(n, dtype=torch.float64)
    ll = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov).log_prob(y)
    logw = ll + hyper.log_prob(s) + log_s  # density in log s
    wts = torch.softmax(logw, 0)
    prec = xt.T @ xt / sigma**2 + torch.eye(xt.shape[1], dtype=torch.float64) / s[:, None, None] ** 2
    m = torch.linalg.solve(prec, (xt.T @ y / sigma**2).expand(len(s), -1).unsqueeze(-1))[..., 0]
    es = (wts * s).sum()
    sd = ((wts * s**2).sum() - es**2).sqrt()
    return float(es), float(sd), (wts[:, None] * m).sum(0).numpy()


def test_hyperprior_on_the_scale_matches_quadrature():
    """A LogNormal hyperprior on the prior scale of Bayesian linear regression: NUTS's posterior
    means of the scale and of the weights within Z Monte-Carlo standard errors of the
    one-dimensional quadrature."""
    import pyro.distributions as dist

    net, x, y, _, _ = linear_regression_problem(n=15)
    net.set_prior(pb.priors.AdaptiveNormal(0.0, 1.0))
    hyper = dist.LogNormal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.75, dtype=torch.float64))
    post = fit_nuts(net, x, y, num_samples=500, warmup=300, chains=4, seed=2, progress=False,
                    hyperpriors={"scale": hyper})
    assert set(post.samples) == {"weights", "hyper.scale"} and post.samples["hyper.scale"].shape == (4, 500)
    es, sd, ew = hierarchical_quadrature(x, y, 0.5, hyper)
    s = post.samples["hyper.scale"].numpy()
    w = post.samples["weights"].numpy()
    mcse_s = float(azs.mcse(s[..., None], chain_axis=0, draw_axis=1)[0])
    assert abs(s.mean() - es) < Z * mcse_s, (s.mean(), es)
    # the data move the scale far from its hyperprior (mean 1.32), so the check has power
    assert abs(float(hyper.mean) - es) > 10 * Z * mcse_s
    assert abs(s.std() - sd) < 0.15 * sd, (s.std(), sd)
    mc = azs.mcse(w, chain_axis=0, draw_axis=1)
    assert np.all(np.abs(w.reshape(-1, 4).mean(0) - ew) < Z * mc), (w.reshape(-1, 4).mean(0), ew, mc)
    assert float(azs.ess(s[..., None], chain_axis=0, draw_axis=1)[0]) > 100
    assert post.info["hyperpriors"]["hyper.scale"].startswith("LogNormal")


def test_hyperprior_errors():
    import pyro.distributions as dist

    x, y = tiny_data()
    net = tiny_net()
    kw = dict(num_samples=2, warmup=0, chains=1, progress=False, jit=False)
    with pytest.raises(ValueError, match=r"no adaptive Normal or Laplace prior"):
        fit_nuts(net, x, y, hyperpriors={"scale": dist.HalfCauchy(1.0)}, **kw)
    with pytest.raises(ValueError, match=r"hyperpriors\[0\]\['scale'\]: a scale needs a hyperprior on \(0, ∞\)"):
        fit_nuts(net, x, y, hyperpriors={0: {"scale": dist.Normal(0.0, 1.0)}}, **kw)
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'sigma1'"):
        fit_nuts(net, x, y, hyperpriors={0: {"sigma1": dist.HalfCauchy(1.0)}}, **kw)
    with pytest.raises(ValueError, match=r"needs backend='torch'"):
        fit_nuts(net, x, y, hyperpriors={0: {"scale": dist.HalfCauchy(1.0)}}, backend="pyro", **kw)
    with pytest.raises(ValueError, match=r"scalar torch/Pyro distribution"):
        fit_nuts(net, x, y, hyperpriors={0: {"scale": 1.0}}, **kw)
    mix = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3), prior=pb.priors.ScaleMixture())
    with pytest.raises(ValueError, match=r"Normal and Laplace priors .*not ScaleMixture"):
        fit_nuts(mix, x, y, hyperpriors={0: {"scale": dist.HalfCauchy(1.0)}}, **kw)
    shared = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3))  # one prior on both layers
    with pytest.raises(ValueError, match=r"layers \[0, 2\] share one prior instance.*per_layer=True"):
        fit_nuts(shared, x, y, hyperpriors={0: {"scale": dist.HalfCauchy(1.0)}, 2: {"scale": dist.HalfCauchy(1.0)}},
                 **kw)
    with pytest.raises(ValueError, match=r"both frozen and given a hyperprior"):
        fit_nuts(net, x, y, frozen={0: {"scale": 0.5}}, hyperpriors={0: {"scale": dist.HalfCauchy(1.0)}}, **kw)


def test_hyperprior_per_layer_sites_and_export():
    import pyro.distributions as dist

    x, y = tiny_data()
    net = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3))
    net.set_prior(pb.priors.Laplace(0.0, 1.0), layers=[2])
    post = fit_nuts(net, x, y, num_samples=6, warmup=4, chains=2, progress=False, jit=False,
                    hyperpriors={0: {"scale": dist.HalfNormal(2.0)}, 2: {"loc": dist.Normal(0.0, 1.0),
                                                                          "scale": dist.Gamma(2.0, 2.0)}})
    assert {"hyper.layers.0.scale", "hyper.layers.2.loc", "hyper.layers.2.scale"} <= set(post.samples)
    assert (post.samples["hyper.layers.2.scale"] > 0).all()
    from pyrobnn.diagnostics import to_datatree
    tree = to_datatree(post, x, y)
    assert tree["posterior"]["hyper.layers.0.scale"].dims == ("chain", "draw")


def test_fixed_step_size_stays_fixed_while_the_mass_matrix_adapts():
    x, y = tiny_data()
    post = fit_nuts(tiny_net(), x, y, kernel="hmc", num_steps=5, step_size=0.01, adapt_step_size=False,
                    adapt_mass_matrix=True, warmup=40, num_samples=5, chains=2, jit=False, progress=False)
    assert torch.all(post.info["step_size_adapted"] == 0.01)
    assert torch.all(post.sample_stats["step_size"] == 0.01)


def test_pyro_backend_parallel_chains_with_few_draws():
    """chain_method='parallel' hands Pyro a picklable kernel and reads the divergences without
    Pyro's R-hat (which needs 4 draws)."""
    x, y = tiny_data()
    post = fit_nuts(tiny_net(), x, y, backend="pyro", chain_method="parallel", chains=2, num_samples=3, warmup=2,
                    jit=False, progress=False)
    assert post.samples["weights"].shape == (2, 3, tiny_net().num_weights)
    assert post.sample_stats["diverging"].shape == (2, 3)


def test_hierarchical_potential_by_hand():
    """The potential with sampled hyperparameters (Normal scale on layer 0, Laplace loc and
    scale on layer 2) equals a plain-torch log joint at random points, Jacobians included."""
    import pyro.distributions as dist

    from pyrobnn.infer.mcmc import _build_potential, _resolve_hyperpriors

    x, y = tiny_data()
    x, y = x.double(), y.double()
    net = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3)).double()
    net.set_prior(pb.priors.Laplace(0.0, 1.0), layers=[2])
    like = torch.zeros((), dtype=torch.float64)
    t = partial(torch.tensor, dtype=torch.float64)
    h0, hl, hs = dist.HalfNormal(t(2.0)), dist.Normal(t(0.0), t(1.0)), dist.Gamma(t(2.0), t(2.0))
    hypers = _resolve_hyperpriors(net, {0: {"scale": h0}, 2: {"loc": hl, "scale": hs}}, like)
    potential, z0 = _build_potential(net, x, y, 3, "model", 0, hypers, like)
    assert z0.shape == (3, net.num_weights + 3)
    z = torch.randn(3, potential.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v = potential.constrain(z)
    parts = net.unpack({"weights": v["weights"]})
    s0, loc2, s2 = v["hyper.layers.0.scale"], v["hyper.layers.2.loc"], v["hyper.layers.2.scale"]
    w0 = torch.cat([parts["layers.0.weight"].reshape(3, -1), parts["layers.0.bias"]], -1)
    w2 = torch.cat([parts["layers.2.weight"].reshape(3, -1), parts["layers.2.bias"]], -1)
    lp = torch.distributions.Normal(t(0.0), s0[:, None]).log_prob(w0).sum(-1)
    lp = lp + torch.distributions.Laplace(loc2[:, None], s2[:, None]).log_prob(w2).sum(-1)
    lp = lp + h0.log_prob(s0) + hl.log_prob(loc2) + hs.log_prob(s2)
    lp = lp + z[:, -3] + z[:, -1]  # log-Jacobians of the two exp transforms (scales)
    h = torch.tanh(x[None] @ parts["layers.0.weight"].transpose(-1, -2) + parts["layers.0.bias"][:, None])
    f = (h @ parts["layers.2.weight"].transpose(-1, -2))[..., 0] + parts["layers.2.bias"]
    lp = lp + torch.distributions.Normal(f, net.likelihood.scale).log_prob(y).sum(-1)
    torch.testing.assert_close(potential.log_density(z), lp, rtol=1e-12, atol=1e-9)


def test_potential_is_pyros_potential():
    """The vectorised potential equals Pyro's potential of the model (``initialize_model``),
    including a constrained site (learned noise, through its log-Jacobian)."""
    from pyro.infer.mcmc.util import initialize_model

    x, y = tiny_data()
    x, y = x.double(), y.double()
    net = tiny_net(learned=True).double()
    trace = _initial_values(net, x, y, 1, "model", 0)[0]
    sites, fns = _layout(trace)
    pot = PotentialEnergy(net, x, y, sites, fns)
    assert [s.name for s in sites] == ["weights", "noise"]
    _, pyro_pe, _, _ = initialize_model(net, (x, y))
    z = torch.randn(3, pot.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = pot(z)
    for c in range(3):
        params = {s.name: z[c, s.start:s.stop].reshape(s.ushape) for s in sites}
        assert torch.allclose(ours[c], pyro_pe(params), rtol=1e-10, atol=1e-8)


def test_compiled_potential_matches_eager(caplog):
    """The compiled sampler draws what the eager one draws, through the direct compile path
    (Inductor's private ``compile_fx_inner``, pinned here: its self-check against the traced
    graph must pass, not fall back to ``torch._inductor.compile``), and that path goes through
    Inductor's FX-graph cache (a hit or a miss, never a bypass), so that a later fit of the same
    graph skips code generation."""
    import logging

    pytest.importorskip("torch._inductor")
    from torch._dynamo.utils import counters

    # 40 points on [-1, 1] and a tight likelihood: gradient terms of order 10^3 cancel in the self-check's
    # all-zero example, where an absolute tolerance of 1e-4 once failed the direct path on rounding.
    # 4 chains: the graph of test_toy_quality's small toy fit, which then comes from the cache
    x = torch.linspace(-1, 1, 40).unsqueeze(-1)
    y = torch.sin(3 * x).squeeze(-1)
    net = pb.BNN([pb.Linear(1, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(0.1))
    common = dict(num_samples=5, warmup=0, chains=4, step_size=0.002, adapt_step_size=False, max_tree_depth=5,
                  progress=False, seed=4)
    before = dict(counters["inductor"])
    with caplog.at_level(logging.INFO, logger="pyrobnn.infer.mcmc.compile"):
        a = fit_nuts(net, x, y, jit=True, **common)
    if not a.info["compiled"]:
        pytest.skip(f"compilation unavailable: {a.info['compile_fallback']}")
    assert not [r.getMessage() for r in caplog.records if "compile_fx_inner failed" in r.getMessage()]
    seen = {k: counters["inductor"][k] - before.get(k, 0) for k in ("fxgraph_cache_hit", "fxgraph_cache_miss",
                                                                  "fxgraph_cache_bypass")}
    if os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES") != "1":
        assert seen["fxgraph_cache_hit"] + seen["fxgraph_cache_miss"] == 1 and seen["fxgraph_cache_bypass"] == 0, seen
    b = fit_nuts(net, x, y, jit=False, **common)
    assert torch.allclose(a.samples["weights"], b.samples["weights"], atol=1e-4)
    # other data of the same shape: the same graph, served by the cache, computes with the new data
    y2 = torch.cos(2 * x).squeeze(-1)
    before = dict(counters["inductor"])
    with caplog.at_level(logging.INFO, logger="pyrobnn.infer.mcmc.compile"):
        a2 = fit_nuts(net, x, y2, jit=True, **common)
    assert a2.info["compiled"] and not [r for r in caplog.records if "compile_fx_inner failed" in r.getMessage()]
    if os.environ.get("TORCHINDUCTOR_FORCE_DISABLE_CACHES") != "1":
        assert counters["inductor"]["fxgraph_cache_hit"] - before.get("fxgraph_cache_hit", 0) == 1
    b2 = fit_nuts(net, x, y2, jit=False, **common)
    assert torch.allclose(a2.samples["weights"], b2.samples["weights"], atol=1e-4)
    assert not torch.allclose(a2.samples["weights"], a.samples["weights"], atol=1e-2)  # the data did change them


def test_tanh_rewrite_matches_torch_tanh():
    """The compiled step's tanh, 1 - 2/(exp(2x) + 1), against torch.tanh: within a few float32
    ulps of 1 everywhere, exact at the extremes; its gradient through ATen's tanh_backward."""
    from pyrobnn.infer.mcmc import _tanh

    x = torch.cat([torch.linspace(-30, 30, 100001), torch.tensor([0.0, 1e-30, -1e-8, 50.0, -50.0, 1e4, -1e4]),
                   torch.tensor([float("inf"), -float("inf")])])
    got, ref = _tanh(x), torch.tanh(x)
    assert (got - ref).abs().max() <= 4 * torch.finfo(torch.float32).eps
    assert got[-2] == 1 and got[-1] == -1 and got[-4] == 1 and got[-3] == -1
    assert torch.isnan(_tanh(torch.tensor([float("nan")]))).all()
    x64 = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    assert (_tanh(x64) - torch.tanh(x64)).abs().max() <= 4 * torch.finfo(torch.float64).eps
    if torch.cuda.is_available():  # the GPU keeps its own tanh
        assert _tanh(x.cuda()) is NotImplemented


# ---------------------------------------------------------------------- result
def test_draws_and_sample_stats_shapes():
    x, y = tiny_data()
    net = tiny_net()
    post = fit_nuts(net, x, y, **FAST)
    assert post.method == "nuts"
    assert post.samples["weights"].shape == (2, 15, net.num_weights)
    expected = {"diverging", "accept_prob", "step_size", "tree_depth", "num_steps", "energy", "lp"}
    assert set(post.sample_stats) == expected
    for name, v in post.sample_stats.items():
        assert v.shape == (2, 15), name
    assert post.sample_stats["diverging"].dtype == torch.bool
    acc = post.sample_stats["accept_prob"]
    assert bool(((acc >= 0) & (acc <= 1)).all())
    steps, depth = post.sample_stats["num_steps"], post.sample_stats["tree_depth"]
    assert bool((steps >= 1).all()) and bool((steps <= 2 ** 5 - 1).all())
    assert bool((steps >= 2 ** depth - 1).all()) and bool((steps <= 2 ** (depth + 1) - 1).all())
    assert post.info["chains"] == 2 and post.info["seed"] == 0
    assert post.info["inverse_mass_matrix"].shape == (2, net.num_weights)


def test_hmc_and_learned_noise():
    x, y = tiny_data()
    net = tiny_net(learned=True)
    post = fit_hmc(net, x, y, num_steps=5, **FAST)
    assert post.method == "hmc"
    assert post.samples["noise"].shape == (2, 15)
    assert bool((post.samples["noise"] > 0).all())
    assert "tree_depth" not in post.sample_stats
    assert bool((post.sample_stats["num_steps"] == 5).all())


def test_seeds_reproducible():
    x, y = tiny_data()
    a = fit_nuts(tiny_net(), x, y, seed=7, **FAST)
    b = fit_nuts(tiny_net(), x, y, seed=7, **FAST)
    c = fit_nuts(tiny_net(), x, y, seed=8, **FAST)
    assert torch.equal(a.samples["weights"], b.samples["weights"])
    assert torch.equal(a.sample_stats["num_steps"], b.sample_stats["num_steps"])
    assert not torch.equal(a.samples["weights"], c.samples["weights"])


def test_chains_start_from_different_model_inits():
    x, y = tiny_data()
    net = tiny_net()
    traces = _initial_values(net, x, y, 3, "model", 0)
    w = torch.stack([t.nodes["weights"]["value"] for t in traces])
    bound = 1.0  # PyTorch's default init: |w| <= 1/sqrt(fan_in), fan_in >= 1
    assert bool((w.abs() <= bound).all())
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    again = torch.stack([t.nodes["weights"]["value"] for t in _initial_values(net, x, y, 3, "model", 0)])
    assert torch.equal(w, again)


def test_given_init_and_sequential_chains():
    x, y = tiny_data()
    net = tiny_net()
    start = torch.full((net.num_weights,), 0.1)
    post = fit_nuts(net, x, y, init={"weights": start}, chain_method="sequential", **FAST)
    assert post.samples["weights"].shape == (2, 15, net.num_weights)
    assert post.info["chain_method"] == "sequential"


def test_predict_from_nuts_posterior():
    x, y = tiny_data()
    net = tiny_net()
    post = fit_nuts(net, x, y, **FAST)
    xs = torch.linspace(-0.2, 1.2, 9)[:, None]
    pred = post.predict(xs, num_samples=None)
    assert pred.mean.shape == (9,)
    assert pred.mean_draws.shape == (30, 9)
    assert bool((pred.total_var >= pred.aleatoric_var).all())
    ll = post.log_likelihood(x, y, num_samples=None)
    assert ll.shape == (2, 15, x.shape[0])


def test_frozen_hyperparameters():
    x, y = tiny_data()
    net = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(0.3), prior=pb.priors.AdaptiveNormal())
    post = fit_nuts(net, x, y, frozen={"scale": 0.5}, **FAST)
    assert float(net.prior_of(0).scale) == pytest.approx(0.5)
    assert post.info["prior_hyperparameters"][0]["scale"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="frozen"):
        fit_nuts(net, x, y, frozen={"not_a_hyperparameter": 1.0}, **FAST)


def test_pyro_reference_backend():
    x, y = tiny_data()
    net = tiny_net()
    post = fit_nuts(net, x, y, backend="pyro", **FAST)
    assert post.samples["weights"].shape == (2, 15, net.num_weights)
    for name in ("diverging", "accept_prob", "step_size", "tree_depth", "num_steps", "energy", "lp"):
        assert post.sample_stats[name].shape == (2, 15), name
    acc = post.sample_stats["accept_prob"]
    assert bool(((acc >= -1e-6) & (acc <= 1 + 1e-6)).all())
    assert bool((post.sample_stats["num_steps"] >= 1).all())


def test_adaptation_schedule_is_stans():
    assert adaptation_schedule(1000) == [(0, 74), (75, 99), (100, 149), (150, 249), (250, 449), (450, 949),
                                         (950, 999)]
    assert adaptation_schedule(10) == [(0, 9)]
    assert adaptation_schedule(0) == []


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, name", [
    ({"num_samples": 0}, "num_samples"),
    ({"chains": 0}, "chains"),
    ({"warmup": -1}, "warmup"),
    ({"target_accept": 1.0}, "target_accept"),
    ({"target_accept": 0.0}, "target_accept"),
    ({"kernel": "mala"}, "kernel"),
    ({"max_tree_depth": 0}, "max_tree_depth"),
    ({"step_size": -0.1}, "step_size"),
    ({"init": "zeros"}, "init"),
    ({"backend": "jax"}, "backend"),
    ({"chain_method": "parallel"}, "chain_method"),
])
def test_bad_arguments_raise(kwargs, name):
    x, y = tiny_data()
    with pytest.raises(ValueError, match=name):
        fit_nuts(tiny_net(), x, y, **{**FAST, **kwargs})


# ---------------------------------------------------------------------- slow
@pytest.mark.slow
def test_pyro_backend_matches_closed_form():
    net, x, y, mean, cov = linear_regression_problem()
    post = fit_nuts(net, x, y, num_samples=500, warmup=300, chains=2, backend="pyro", seed=5, progress=False)
    check_gaussian_moments(post.samples["weights"].numpy(), mean, cov)
