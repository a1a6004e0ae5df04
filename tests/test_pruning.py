"""Weight pruning by signal-to-noise ratio."""

import pytest
import torch

import pyrobnn as pb
from pyrobnn.apps import prune, signal_to_noise


@pytest.fixture(scope="module")
def fitted():
    d = pb.data.toy_curve(n_train=40, n_test=10)
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(1, 10), "tanh", pb.Linear(10, 1)], pb.Gaussian(0.1))
    post = pb.fit_svi(net, pb.guides.MeanField(net), d.x_train, d.y_train, epochs=20, progress=False)
    return d, net, post


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_prune_removes_the_lowest_snr_weights(fitted, fraction):
    d, net, post = fitted
    pruned, masks = prune(post, fraction)
    keep = masks["weights"]
    assert int((~keep).sum()) == round(fraction * net.num_weights)
    snr = signal_to_noise(post.guide)["weights"]
    if 0 < fraction:
        assert snr[~keep].max() <= snr[keep].min()
    loc, _ = post.guide.loc_scale("weights")
    expected = torch.where(keep, loc, torch.zeros_like(loc)).detach()
    torch.testing.assert_close(pruned.guide.median()["weights"], expected)
    # predictions are those of the network at the pruned means
    pred = pruned.predict(d.x_test, num_samples=3)
    torch.testing.assert_close(pred.mean, net.network(d.x_test, {"weights": expected})[:, 0])


def test_prune_point_estimate_ranks_by_magnitude(fitted):
    d, net, _ = fitted
    post = pb.fit_svi(net, pb.guides.Delta(net), d.x_train, d.y_train, epochs=5, progress=False)
    _, masks = prune(post, 0.5)
    w = post.guide.median()["weights"].abs()
    keep = masks["weights"]
    assert int(keep.sum()) == net.num_weights - round(0.5 * net.num_weights)
    assert w[~keep].max() <= w[keep].min()
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\)"):
        prune(post, 1.0)
