"""fit_svi's loop against the plain loop it stands for, bit for bit.

The loop takes shortcuts that must not change a number: the estimator looks up the guide's
sites, the layers and the likelihood once per fit, minibatches are gathered with
``index_select`` from one split of the epoch's permutation, the KL weights are listed per
epoch, gradients are cleared by hand, finiteness is read back once per window.  The reference
below does each step the plain way — a fresh estimator, ``x[perm[i·B:(i+1)·B]]``, the weight
from :func:`kl_weight` at every step, ``opt.zero_grad`` — with the same generators, and the
parameters and the epoch history must come out identical (``torch.equal``), not merely close.
"""

from __future__ import annotations

import math

import pytest
import torch
from pyro import poutine

import pyrobnn as pb
from pyrobnn.infer import kl_weight
from pyrobnn.infer.elbo import elbo_terms
from pyrobnn.infer.torch_elbo import TorchEstimator

N, BATCH, EPOCHS, SEED, LR = 90, 16, 3, 5, 0.02


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 2, generator=g)
    return x, torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(N, generator=g)


def network(prior):
    return pb.BNN([pb.Linear(2, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.2), prior=prior)


def plain_loop(model, guide, x, y, kind, kl, anneal_epochs):
    """fit_svi's steps written out: seeded as fit_svi seeds, one permutation per epoch from a
    generator seeded alike, each step's terms from a new estimator."""
    torch.manual_seed(SEED)
    shuffle = torch.Generator().manual_seed(SEED)
    with poutine.block():
        guide.setup(x[:BATCH], y[:BATCH], n_data=N)
    params = [p for p in list(model.parameters()) + list(guide.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    m = math.ceil(N / BATCH)
    history = []
    for epoch in range(EPOCHS):
        perm = torch.randperm(N, generator=shuffle)
        sums = torch.zeros(3)
        for i in range(m):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            w = kl_weight(kl, i + 1, m, epoch, anneal_epochs)
            t = elbo_terms(TorchEstimator(kind), model, guide, (x[idx], y[idx]), {"n_data": N}, kl_weight=w)
            opt.zero_grad(set_to_none=True)
            t.loss.backward()
            opt.step()
            for j, v in enumerate((t.loss, t.nll, t.kl)):
                sums[j] += v.detach()
        history.append((sums / m).tolist())
    return history


@pytest.mark.parametrize("kind,kl,prior", [
    ("trace", "uniform", pb.priors.Normal(0.0, 1.0)),
    ("trace", "blundell", pb.priors.ScaleMixture()),
    ("meanfield", "anneal", pb.priors.Normal(0.1, 0.5)),
])
def test_fit_svi_is_the_plain_loop_bit_for_bit(kind, kl, prior):
    x, y = data()
    ref_model = network(prior)
    ref_guide = pb.guides.MeanField(ref_model)
    ref_history = plain_loop(ref_model, ref_guide, x, y, kind, kl, anneal_epochs=2)

    model = network(prior)
    guide = pb.guides.MeanField(model)
    before = torch.get_rng_state()
    post = pb.fit_svi(model, guide, x, y, epochs=EPOCHS, batch_size=BATCH, lr=LR, elbo=kind, kl=kl, anneal_epochs=2,
                      seed=SEED, progress=False, empirical_bayes=False, check_finite_every=4)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is left as it was
    ref = dict(ref_guide.named_parameters())
    got = dict(guide.named_parameters())
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    assert [[h["loss"], h["nll"], h["kl"]] for h in post.history] == ref_history
