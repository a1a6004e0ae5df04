"""pyrobnn's Laplace approximation against laplace-torch's numbers on the same network and data.

laplace-torch is not a dependency: this comparison runs where it is installed
(``pip install laplace-torch``; run with ``--runslow``) and is skipped elsewhere; the closed-form and Jacobian tests in
``tests/test_laplace.py`` always run.  Its K-FAC keeps a Linear layer's weight and bias as two
blocks (G ⊗ A and G), where pyrobnn folds the bias into A (Martens & Grosse 2015), which is exact
for a last layer with one Gaussian output; so K-FAC is compared with laplace-torch's full GGN
where that holds, and diagonal and full GGN with laplace-torch's own.
"""

import warnings

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.laplace import _spectrum, ggn, log_marginal_likelihood


D64 = torch.float64


def _same_net():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 2, generator=g, dtype=D64)
    y = torch.sin(x.sum(1))
    net = pb.BNN([pb.Linear(2, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(scale=0.5)).to(D64)
    theta = torch.randn(net.num_weights, generator=g, dtype=D64)
    w = net.unpack({"weights": theta})
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).to(D64)
    with torch.no_grad():
        for i in (0, 2):
            seq[i].weight.copy_(w[f"layers.{i}.weight"])
            seq[i].bias.copy_(w[f"layers.{i}.bias"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y.unsqueeze(-1)), batch_size=20)
    loglik = float(torch.distributions.Normal(seq(x)[:, 0].detach(), 0.5).log_prob(y).sum())
    return net, theta, x, seq, loader, loglik


@pytest.mark.slow  # importing laplace-torch and its backends costs seconds; tests/test_laplace.py checks the same maths
@pytest.mark.parametrize("subset,structure,theirs", [
    ("all", "full", "full"), ("all", "diag", "diag"), ("last_layer", "full", "full"), ("last_layer", "diag", "diag"),
    ("last_layer", "kron", "full"),
])
def test_log_marginal_likelihood_matches_laplace_torch(subset, structure, theirs):
    laplace = pytest.importorskip("laplace")
    net, theta, x, seq, loader, loglik = _same_net()
    delta = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        la = laplace.Laplace(seq, "regression", subset_of_weights=subset, hessian_structure=theirs, sigma_noise=0.5,
                             prior_precision=delta)
        la.fit(loader)
        want = float(la.log_marginal_likelihood(torch.tensor(delta, dtype=D64), torch.tensor(0.5, dtype=D64)))
    curv = ggn(net, x, {"weights": theta}, subset=subset, structure=structure)
    eig, _ = _spectrum(curv, structure)
    got = float(log_marginal_likelihood(loglik, float(theta[curv["index"]].square().sum()), eig, delta))
    # laplace-torch computes parts of its full GGN in float32 (differences ~1e-8 relative): rel 1e-6
    assert got == pytest.approx(want, rel=1e-6)
