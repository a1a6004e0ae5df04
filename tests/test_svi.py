"""SVI: exactness against plain PyTorch, unbiasedness, schedules, checkpoints, failures."""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal

import pyrobnn as pb
from pyrobnn.infer import NonFiniteLossError, blundell_pi, elbo_terms, kl_weight, make_elbo
from pyrobnn.infer.guides import init_to_model
from pyrobnn.model.priors import normal_log_prob

N_DATA = 200


def data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = torch.sin(x.sum(-1)) + 0.1 * torch.randn(n, generator=g)
    return x, y


def net_and_guide(prior, guide_cls=pb.guides.MeanField, **gkw):
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(3, 6), "tanh", pb.Linear(6, 1)], pb.Gaussian(scale=0.3), prior=prior)
    guide = guide_cls(net, **gkw)
    x, y = data()
    guide.setup(x, y, n_data=N_DATA)
    # move the locations and scales away from their initial values
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net, guide, x, y


def plain_forward(w_flat, x):
    """The 3-6-1 tanh net by hand from a flat vector laid out as layers.0.weight|bias, layers.2.weight|bias."""
    w0, b0, w1, b1 = torch.split(w_flat, [18, 6, 6, 1])
    h = torch.tanh(x @ w0.view(6, 3).T + b0)
    return (h @ w1.view(1, 6).T + b1)[:, 0]


def test_meanfield_scale_mixture_loss_and_grad_equal_plain_torch():
    """Blundell eq. (2) with the scale-mixture prior (eq. 7), same noise draws, by hand."""
    prior = pb.priors.ScaleMixture(0.25, math.exp(-1), math.exp(-6))
    net, guide, x, y = net_and_guide(prior)
    pyro.set_rng_seed(123)
    terms = elbo_terms(make_elbo("trace"), net, guide, (x, y), {"n_data": N_DATA})
    got_grads = torch.autograd.grad(terms.loss, [guide.weights_loc, guide.weights_rho])

    mu = guide.weights_loc.detach().clone().requires_grad_()
    rho = guide.weights_rho.detach().clone().requires_grad_()
    torch.manual_seed(123)
    eps = torch.randn(mu.shape)
    sigma = F.softplus(rho)
    w = mu + sigma * eps
    log_q = torch.distributions.Normal(mu, sigma).log_prob(w).sum()
    pi, s1, s2 = 0.25, math.exp(-1), math.exp(-6)
    log_p = torch.log(pi * torch.exp(normal_log_prob(w, 0.0, torch.tensor(s1)))
                      + (1 - pi) * torch.exp(normal_log_prob(w, 0.0, torch.tensor(s2)))).sum()
    log_lik = torch.distributions.Normal(plain_forward(w, x), 0.3).log_prob(y).sum() * N_DATA / x.shape[0]
    loss = log_q - log_p - log_lik
    ref_grads = torch.autograd.grad(loss, [mu, rho])

    torch.testing.assert_close(terms.loss, loss, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(terms.nll, -log_lik, rtol=1e-5, atol=1e-4)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_elbo_terms_equal_pyro_trace_elbo():
    net, guide, x, y = net_and_guide(pb.priors.Laplace(0.0, 0.3))
    pyro.set_rng_seed(7)
    ours = elbo_terms(make_elbo("trace"), net, guide, (x, y), {"n_data": N_DATA}).loss
    pyro.set_rng_seed(7)
    theirs = Trace_ELBO().differentiable_loss(net, guide, x, y, n_data=N_DATA)
    torch.testing.assert_close(ours, theirs)


def test_ard_guide_loss_equals_basov_eq7_times_n():
    """Basov eq. (7): loss = −(1/B) Σ log p(y_b | x_b, ŵ) + ½ Σ ln(1 + γ²) / N, times N."""
    net, guide, x, y = net_and_guide(pb.priors.ARD(), pb.guides.ARD)
    net.update_priors(guide.loc_scale)  # empirical-Bayes δ² = σ² + μ²
    pyro.set_rng_seed(5)
    terms = elbo_terms(make_elbo("meanfield"), net, guide, (x, y), {"n_data": N_DATA})
    gamma, rho = guide.weights_gamma.detach(), guide.weights_rho.detach()
    torch.manual_seed(5)
    sigma = F.softplus(rho)
    w = gamma * sigma + sigma * torch.randn(gamma.shape)
    b = x.shape[0]
    eq7 = (-torch.distributions.Normal(plain_forward(w, x), 0.3).log_prob(y).sum() / b
           + 0.5 * torch.log1p(gamma**2).sum() / N_DATA)
    torch.testing.assert_close(terms.loss, eq7 * N_DATA, rtol=1e-5, atol=1e-4)


def test_blundell_schedule_loss_is_eq4():
    """Minibatch i of M: our loss = (N/B)(−log p(D_i|w)) + M π_i KL = M · F_i of eq. (4) (N = M B)."""
    m = 5
    pis = [blundell_pi(i, m) for i in range(1, m + 1)]
    assert sum(pis) == pytest.approx(1.0)
    assert pis[0] == pytest.approx(2 ** (m - 1) / (2**m - 1))
    net, guide, x, y = net_and_guide(pb.priors.Normal(0.0, 1.0))
    b = x.shape[0] // m
    for i in range(1, m + 1):
        xb, yb = x[(i - 1) * b:i * b], y[(i - 1) * b:i * b]
        pyro.set_rng_seed(i)
        terms = elbo_terms(make_elbo("trace"), net, guide, (xb, yb), {"n_data": m * b},
                           kl_weight=kl_weight("blundell", i, m))
        loglik_i = -terms.nll * b / (m * b)  # log p(D_i | w)
        f_i = pis[i - 1] * terms.kl - loglik_i
        torch.testing.assert_close(terms.loss, m * f_i, rtol=1e-5, atol=1e-4)
    # huge M does not overflow
    assert blundell_pi(1, 5000) == pytest.approx(0.5)
    assert kl_weight("anneal", 1, 10, epoch=1, anneal_epochs=4) == pytest.approx(0.5)


@pytest.mark.parametrize("prior", [pb.priors.Normal(0.2, 0.7), pb.priors.ARD()], ids=["normal", "ard"])
def test_monte_carlo_kl_is_unbiased(prior):
    net, guide, x, y = net_and_guide(prior)
    if prior.adaptive:
        with torch.no_grad():  # ARD variances away from the optimum, so the KL is not trivial
            net.update_priors(lambda s: (guide.loc_scale(s)[0] * 0.5, guide.loc_scale(s)[1] * 2))
    analytic = elbo_terms(make_elbo("meanfield"), net, guide, (x, y), {"n_data": N_DATA}).kl.item()
    pyro.set_rng_seed(0)
    batches = torch.tensor([elbo_terms(make_elbo("trace", 200), net, guide, (x, y), {"n_data": N_DATA}).kl.item()
                            for _ in range(25)])
    mean, se = batches.mean().item(), (batches.std() / math.sqrt(len(batches))).item()
    assert abs(mean - analytic) < 4 * se, (mean, analytic, se)
    assert se < 0.05 * abs(analytic)  # the test has power


def test_vectorised_particles_equal_sequential_in_expectation():
    net, guide, x, y = net_and_guide(pb.priors.Normal())
    pyro.set_rng_seed(1)
    vec = torch.stack([elbo_terms(make_elbo("trace", 50, True, 1), net, guide, (x, y), {"n_data": N_DATA}).loss
                       for _ in range(20)]).detach()
    seq = torch.stack([elbo_terms(make_elbo("trace", 50, False, 1), net, guide, (x, y), {"n_data": N_DATA}).loss
                       for _ in range(20)]).detach()
    se = math.sqrt(vec.var() / 20 + seq.var() / 20)
    assert abs(vec.mean() - seq.mean()) < 4 * se


GUIDES = [pb.guides.MeanField, pb.guides.ARD, pb.guides.Delta, pb.guides.WeightNoise]
PRIORS = [lambda: pb.priors.Normal(), lambda: pb.priors.Laplace(), lambda: pb.priors.ScaleMixture(),
          lambda: pb.priors.Flat(), lambda: pb.priors.ARD(), lambda: pb.priors.AdaptiveNormal(),
          lambda: pb.priors.AdaptiveLaplace()]


@pytest.mark.parametrize("guide_cls", GUIDES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("make_prior", PRIORS, ids=["normal", "laplace", "mixture", "flat", "ard", "anormal", "alaplace"])
def test_every_guide_with_every_prior(guide_cls, make_prior):
    x, y = data(64)
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.3), prior=make_prior())
    guide = guide_cls(net)
    post = pb.fit_svi(net, guide, x, y, epochs=15, batch_size=32, lr=0.01, progress=False)
    losses = [h["loss"] for h in post.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    pred = post.predict(x, num_samples=10)
    assert pred.mean.shape == (64,) and torch.isfinite(pred.total_var).all()


@pytest.mark.parametrize("auto", [AutoNormal, AutoLowRankMultivariateNormal])
def test_pyro_autoguides_run_on_the_model(auto):
    x, y = data(64)
    torch.manual_seed(0)
    pyro.clear_param_store()
    net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.3, learned=True))
    guide = auto(net, init_loc_fn=init_to_model, init_scale=0.01)
    post = pb.fit_svi(net, guide, x, y, epochs=30, batch_size=32, lr=0.01, progress=False)
    assert post.history[-1]["loss"] < post.history[0]["loss"]
    draws = post.draws(20)
    assert draws["weights"].shape == (1, 20, net.num_weights) and draws["noise"].shape == (1, 20)
    assert post.predict(x, num_samples=20).mean.shape == (64,)


def test_learned_noise_and_layouts_train():
    x, y = data(64)
    for layout in ("layer", "tensor"):
        torch.manual_seed(0)
        net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.5, learned=True),
                     site_layout=layout)
        guide = pb.guides.MeanField(net)
        post = pb.fit_svi(net, guide, x, y, epochs=10, batch_size=32, lr=0.01, progress=False, num_particles=4)
        assert set(guide.site_names) == set(net.latent_sites)
        assert post.history[-1]["loss"] < post.history[0]["loss"]


def fit_small(epochs, **kw):
    x, y = data(64)
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.3), prior=pb.priors.AdaptiveNormal())
    guide = pb.guides.MeanField(net)
    post = pb.fit_svi(net, guide, x, y, epochs=epochs, batch_size=16, lr=0.01, progress=False, seed=3, **kw)
    return net, guide, post


def test_checkpoint_resume_is_exact(tmp_path):
    ck = tmp_path / "run.ckpt"
    _, g_full, post_full = fit_small(6)
    fit_small(3, checkpoint=ck, checkpoint_every=3)  # "killed" after epoch 3
    assert ck.exists() and not list(tmp_path.glob("*.tmp"))
    _, g_res, post_res = fit_small(6, checkpoint=ck, checkpoint_every=3, resume=True)
    for (k, a), (_, b) in zip(g_full.state_dict().items(), g_res.state_dict().items()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in post_full.history] == [h["loss"] for h in post_res.history]
    saved = torch.load(ck, weights_only=True)
    assert saved["epoch"] == 6


@pytest.mark.parametrize("where,match", [("loss", r"loss at epoch 1, step 1 .*NLL is inf"),
                                         ("grad", r"gradient at epoch 1, step 1 ")])
def test_non_finite_loss_stops_with_last_finite_parameters(where, match):
    x, y = data(64)
    noise = 1e-30 if where == "loss" else 0.3  # 1e-30² underflows: the NLL overflows
    if where == "grad":
        x[5, 0] = float("inf")  # tanh saturates: the loss stays finite, its gradient does not
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=noise))
    if where == "grad":
        net.check_data = lambda *a: None  # let the infinite input through to training
    guide = pb.guides.MeanField(net)
    guide.setup(x, y, n_data=64)
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=match):
        pb.fit_svi(net, guide, x, y, epochs=3, batch_size=64, progress=False, shuffle=False)
    for k, v in guide.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_windowed_finiteness_checks_stop_where_a_check_at_every_step_does(where, tmp_path):
    # the loop reads its finiteness flag every `check_finite_every` steps and replays a non-finite window from a
    # copy of its start: the error, the step it names, the parameters, the adaptive prior's buffers and the
    # checkpoint must be those of a check before every update
    x, y = data(64)
    if where == "loss":
        y[37] = 1e30  # finite, but its squared error overflows float32
    else:
        x[37, 0] = float("inf")  # tanh saturates: the loss stays finite, its gradient does not
    out = {}
    for every in (1, 3, 100):
        torch.manual_seed(0)
        net = pb.BNN([pb.Linear(3, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.3),
                     prior=pb.priors.AdaptiveNormal())
        net.check_data = lambda *a: None  # let the infinite input through to training
        guide = pb.guides.MeanField(net)
        ck = tmp_path / f"every{every}.ckpt"
        with pytest.raises(NonFiniteLossError, match=f"non-finite {where}") as e:
            pb.fit_svi(net, guide, x, y, epochs=3, batch_size=8, lr=0.01, progress=False, seed=5, checkpoint=ck,
                       check_finite_every=every)
        out[every] = (str(e.value).replace(str(ck), "CK"), net.state_dict(), guide.state_dict(),
                      torch.load(ck, weights_only=True))
    msg, net_state, guide_state, saved = out[1]
    assert "step 1 " not in msg  # the poisoned row comes after the first step of the first window
    for every in (3, 100):
        assert out[every][0] == msg
        for a, b in ((net_state, out[every][1]), (guide_state, out[every][2]), (saved["guide"], out[every][3]["guide"])):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert all(torch.isfinite(v).all() for v in out[every][2].values())
    with pytest.raises(ValueError, match="check_finite_every must be a positive integer"):
        pb.fit_svi(net, guide, x, y, progress=False, check_finite_every=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(batch_size=-1), "batch_size must be a positive integer"),
    (dict(kl="linear"), "kl must be one of"),
    (dict(optimizer="rmsprop"), "optimizer must be one of"),
    (dict(elbo="tracegraph"), "elbo must be one of"),
    (dict(resume=True), "resume=True needs checkpoint"),
])
def test_fit_svi_argument_errors(kwargs, match):
    x, y = data(16)
    net = pb.BNN([pb.Linear(3, 1)], pb.Gaussian())
    with pytest.raises(ValueError, match=match):
        pb.fit_svi(net, pb.guides.MeanField(net), x, y, progress=False, **kwargs)


def test_non_finite_data_is_refused():
    x, y = data(16)
    y[3] = float("nan")
    net = pb.BNN([pb.Linear(3, 1)], pb.Gaussian())
    with pytest.raises(ValueError, match=r"y has 1 non-finite value"):
        pb.fit_svi(net, pb.guides.MeanField(net), x, y, progress=False)


def test_history_and_progress_fields():
    _, _, post = fit_small(2)
    assert [set(h) for h in post.history] == [{"epoch", "loss", "nll", "kl", "seconds"}] * 2
    h = post.history[-1]
    assert h["loss"] == pytest.approx(h["nll"] + h["kl"], rel=1e-4)
