"""Layers, the BNN container and its site layouts."""

import pytest
import torch
from pyro import poutine

import pyrobnn as pb
from pyrobnn.model.priors import normal_log_prob

ALL_PRIORS = [
    lambda: pb.priors.Normal(0.0, 1.0),
    lambda: pb.priors.Laplace(0.0, 0.5),
    lambda: pb.priors.ScaleMixture(0.5, 1.0, 0.0025),
    lambda: pb.priors.Flat(),
    lambda: pb.priors.ARD(),
    lambda: pb.priors.AdaptiveNormal(),
    lambda: pb.priors.AdaptiveLaplace(),
]


def small_net(prior=None, layout="packed", likelihood=None):
    return pb.BNN([pb.Linear(3, 5), "tanh", pb.Linear(5, 4), "relu", pb.Linear(4, 1)],
                  likelihood or pb.Gaussian(scale=0.5), prior=prior, site_layout=layout)


@pytest.mark.parametrize("x_per_draw", [False, True])
@pytest.mark.parametrize("lead", [(7,), (2, 3)])
def test_linear_batched_equals_separate(x_per_draw, lead):
    torch.manual_seed(0)
    layer = pb.Linear(6, 4)
    w, b = torch.randn(*lead, 4, 6), torch.randn(*lead, 4)
    x = torch.randn(*lead, 10, 6) if x_per_draw else torch.randn(10, 6)
    y = layer(x, w, b)
    assert y.shape == (*lead, 10, 4)
    flat_w, flat_b, flat_y = w.reshape(-1, 4, 6), b.reshape(-1, 4), y.reshape(-1, 10, 4)
    flat_x = x.reshape(-1, 10, 6) if x_per_draw else None
    for s in range(flat_w.shape[0]):
        xs = flat_x[s] if x_per_draw else x
        torch.testing.assert_close(flat_y[s], torch.nn.functional.linear(xs, flat_w[s], flat_b[s]))


@pytest.mark.parametrize("x_per_draw", [False, True])
def test_conv2d_batched_equals_separate(x_per_draw):
    torch.manual_seed(1)
    layer = pb.Conv2d(3, 5, 3, stride=1, padding=1)
    s = 4
    w, b = torch.randn(s, 5, 3, 3, 3), torch.randn(s, 5)
    x = torch.randn(s, 2, 3, 8, 8) if x_per_draw else torch.randn(2, 3, 8, 8)
    y = layer(x, w, b)
    assert y.shape == (s, 2, 5, 8, 8)
    for i in range(s):
        xs = x[i] if x_per_draw else x
        ref = torch.nn.functional.conv2d(xs, w[i], b[i], 1, 1)
        torch.testing.assert_close(y[i], ref, rtol=1e-4, atol=1e-5)


def test_network_with_draws_equals_separate_passes():
    torch.manual_seed(2)
    net = pb.BNN([pb.Conv2d(1, 2, 3), "relu", "flatten", pb.Linear(2 * 6 * 6, 3)], pb.Categorical(3))
    x = torch.randn(5, 1, 8, 8)
    draws = {"weights": torch.randn(4, net.num_weights) * 0.3}
    out = net.network(x, draws)
    assert out.shape == (4, 5, 3)
    for s in range(4):
        torch.testing.assert_close(out[s], net.network(x, {"weights": draws["weights"][s]}), rtol=1e-4, atol=1e-5)


def test_deterministic_layers_mix_with_bayesian():
    net = pb.BNN([pb.Linear(3, 8, bayesian=False), "elu", pb.Linear(8, 1)], pb.Gaussian())
    assert net.bayesian_layers == [2]
    assert [s.name for s in net.segments] == ["layers.2.weight", "layers.2.bias"]
    assert net.num_weights == 9
    assert len(list(net.parameters())) == 2  # the deterministic layer's weight and bias
    out = net.network(torch.randn(4, 3), {"weights": torch.randn(6, 9)})
    assert out.shape == (6, 4, 1)


def trace_model(net, x, y, n_data=None):
    return poutine.trace(net).get_trace(x, y, n_data)


@pytest.mark.parametrize("layout", ["packed", "layer", "tensor"])
def test_layouts_give_the_same_joint_density(layout):
    torch.manual_seed(3)
    x, y = torch.randn(10, 3), torch.randn(10)
    ref = small_net(pb.priors.Laplace(0.0, 0.5))
    values = ref.init_values()["weights"]
    net = small_net(pb.priors.Laplace(0.0, 0.5), layout)
    # split the packed vector into this layout's sites
    site_values = {}
    for seg in net.segments:
        ref_seg = next(s for s in ref.segments if s.name == seg.name)
        site_values.setdefault(seg.site, []).append(values[ref_seg.start:ref_seg.stop])
    site_values = {k: torch.cat(v) for k, v in site_values.items()}
    expected_sites = {"packed": ["weights"], "layer": ["layers.0", "layers.2", "layers.4"],
                      "tensor": [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]}[layout]
    assert net.weight_sites == expected_sites
    tr = poutine.trace(poutine.condition(net, data=site_values)).get_trace(x, y)
    tr_ref = poutine.trace(poutine.condition(ref, data={"weights": values})).get_trace(x, y)
    torch.testing.assert_close(tr.log_prob_sum(), tr_ref.log_prob_sum())
    # hand computation of the joint
    w = ref.unpack({"weights": values})
    h = torch.tanh(x @ w["layers.0.weight"].T + w["layers.0.bias"])
    h = torch.relu(h @ w["layers.2.weight"].T + w["layers.2.bias"])
    f = (h @ w["layers.4.weight"].T + w["layers.4.bias"])[:, 0]
    lp = torch.distributions.Laplace(0.0, 0.5).log_prob(values).sum() + normal_log_prob(y, f, torch.tensor(0.5)).sum()
    torch.testing.assert_close(tr.log_prob_sum(), lp)


def test_minibatch_likelihood_is_scaled_by_n_over_b():
    torch.manual_seed(4)
    net = small_net()
    x, y = torch.randn(8, 3), torch.randn(8)
    data = {"weights": net.init_values()["weights"]}
    tr1 = poutine.trace(poutine.condition(net, data=data)).get_trace(x, y, None)
    tr2 = poutine.trace(poutine.condition(net, data=data)).get_trace(x, y, 80)
    obs1 = tr1.nodes["obs"]["fn"].log_prob(y).sum()
    tr1.compute_log_prob(), tr2.compute_log_prob()
    torch.testing.assert_close(tr2.nodes["obs"]["log_prob_sum"], 10 * obs1)
    torch.testing.assert_close(tr2.nodes["weights"]["log_prob_sum"], tr1.nodes["weights"]["log_prob_sum"])


def test_per_layer_priors_and_swapping():
    torch.manual_seed(5)
    net = small_net(pb.priors.Normal(0.0, 1.0))
    net.set_prior(pb.priors.Laplace(0.0, 0.1), layers=[4])
    assert isinstance(net.prior_of(0), pb.priors.Normal) and isinstance(net.prior_of(4), pb.priors.Laplace)
    v = torch.randn(net.num_weights)
    w = net.unpack({"weights": v})
    expected = sum(torch.distributions.Normal(0.0, 1.0).log_prob(w[f"layers.{i}.{p}"]).sum()
                   for i in (0, 2) for p in ("weight", "bias"))
    expected += sum(torch.distributions.Laplace(0.0, 0.1).log_prob(w[f"layers.4.{p}"]).sum() for p in ("weight", "bias"))
    torch.testing.assert_close(net.site_prior("weights").log_prob(v), expected)
    with pytest.raises(ValueError, match="layer 1 is not a Bayesian layer"):
        net.set_prior(pb.priors.Normal(), layers=[1])


def test_per_layer_adaptive_hyperparameters():
    net = small_net(pb.priors.AdaptiveNormal(), )
    net.set_prior(pb.priors.AdaptiveNormal(), per_layer=True)
    priors = [net.prior_of(i) for i in (0, 2, 4)]
    assert len({id(p) for p in priors}) == 3
    loc = torch.randn(net.num_weights)
    net.update_priors(lambda site: (loc, torch.zeros_like(loc)))
    w = net.unpack({"weights": loc})
    for i, p in zip((0, 2, 4), priors):
        layer_w = torch.cat([w[f"layers.{i}.weight"].reshape(-1), w[f"layers.{i}.bias"]])
        assert float(p.loc) == pytest.approx(float(layer_w.mean()), rel=1e-5)
        assert float(p.scale) == pytest.approx(float(layer_w.std(unbiased=False)), rel=1e-5)


@pytest.mark.parametrize("make_prior", ALL_PRIORS)
def test_float64_sites(make_prior):
    net = small_net(make_prior()).to(torch.float64)
    guide = pb.guides.MeanField(net)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    guide.setup(x, y)
    gtr = poutine.trace(guide).get_trace(x, y)
    tr = poutine.trace(poutine.replay(net, trace=gtr)).get_trace(x, y)
    tr.compute_log_prob()
    assert tr.nodes["weights"]["value"].dtype == torch.float64
    assert tr.nodes["weights"]["log_prob"].dtype == torch.float64
    assert tr.nodes["obs"]["log_prob"].dtype == torch.float64
    assert all(b.dtype == torch.float64 for p in net.prior_modules for b in p.buffers())


@pytest.mark.cuda
@pytest.mark.parametrize("make_prior", ALL_PRIORS)
def test_cuda_sites(make_prior):
    net = small_net(make_prior()).to("cuda")
    x, y = torch.randn(6, 3, device="cuda"), torch.randn(6, device="cuda")
    guide = pb.guides.MeanField(net)
    guide.setup(x, y)
    gtr = poutine.trace(guide).get_trace(x, y)
    tr = poutine.trace(poutine.replay(net, trace=gtr)).get_trace(x, y)
    tr.compute_log_prob()
    assert tr.nodes["weights"]["value"].is_cuda and tr.nodes["obs"]["log_prob"].is_cuda


def test_bad_construction_errors():
    with pytest.raises(ValueError, match="site_layout must be one of"):
        small_net(layout="flat")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        pb.BNN([pb.Linear(2, 2), "swish", pb.Linear(2, 1)], pb.Gaussian())
    with pytest.raises(ValueError, match="at least one Bayesian layer"):
        pb.BNN([pb.Linear(2, 1, bayesian=False)], pb.Gaussian())
    with pytest.raises(ValueError, match="Linear out_features must be >= 1"):
        pb.Linear(2, 0)
    with pytest.raises(TypeError, match="prior must be a pyrobnn prior"):
        small_net().set_prior("normal")
    with pytest.raises(ValueError, match="Categorical likelihood: labels must lie in 0..2"):
        pb.BNN([pb.Linear(2, 3)], pb.Categorical(3)).check_data(torch.zeros(2, 2), torch.tensor([0, 5]))


@pytest.mark.parametrize("shape", [(), (0, 3), (7,), (50, 3), (9, 4, 5)])
def test_count_nonfinite_in_slices_matches_the_full_mask(shape):
    from pyrobnn.model.bnn import count_nonfinite

    g = torch.Generator().manual_seed(0)
    t = torch.randn(shape, generator=g)
    flat = t.view(-1)
    if flat.numel():
        idx = torch.randperm(flat.numel(), generator=g)[: max(1, flat.numel() // 7)]
        flat[idx[0::3]] = float("nan")
        flat[idx[1::3]] = float("inf")
        flat[idx[2::3]] = -float("inf")
    expected = int((~torch.isfinite(t)).sum())
    for chunk in (1, 4, 13, 1 << 20):  # slice boundaries everywhere
        assert count_nonfinite(t, chunk=chunk) == expected
    assert count_nonfinite(t.T if t.ndim == 2 else t) == expected  # non-contiguous input
    assert count_nonfinite(torch.ones(shape, dtype=torch.long)) == 0
    # large finite values whose float32 sum overflows are not mistaken for non-finite ones
    assert count_nonfinite(torch.full((4, 3), 3e38)) == 0
