"""The Laplace approximation: the GGN against hand-built Jacobians, the linear-Gaussian model in
closed form (posterior and evidence), the marginal-likelihood optimum, the Posterior interface."""

import math

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.laplace import (
    LaplaceSettings,
    fit_laplace,
    ggn,
    log_marginal_likelihood,
    tune_prior_precision,
)

D64 = torch.float64


def _linear_gaussian(n=30, s=0.3, a=2.0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=D64)
    y = x @ torch.tensor([0.5, -1.0, 2.0], dtype=D64) + 0.7 + s * torch.randn(n, generator=g, dtype=D64)
    net = pb.BNN([pb.Linear(3, 1)], pb.Gaussian(scale=s), pb.priors.Normal(0, a)).to(D64)
    xt = torch.cat([x, torch.ones(n, 1, dtype=D64)], 1)  # [W | b]: the Laplace layout of a Linear layer
    return net, x, y, xt


def _conjugate(xt, y, s, delta):
    prec = xt.T @ xt / s**2 + delta * torch.eye(xt.shape[1], dtype=D64)
    cov = torch.linalg.inv(prec)
    return cov @ xt.T @ y / s**2, cov


def _as_mean(net, theta):
    """The Laplace layout [W | b] of a single Linear(3, 1) → the packed site (W then b)."""
    return {"weights": theta.clone()}  # W (1×3) row-major then b: the same order for one output


@pytest.mark.parametrize("structure", ["diag", "kron", "full"])
def test_linear_gaussian_ggn_is_the_exact_hessian(structure):
    net, x, y, xt = _linear_gaussian()
    exact = xt.T @ xt / 0.3**2
    curv = ggn(net, x, _as_mean(net, torch.zeros(4, dtype=D64)), structure=structure)
    if structure == "diag":
        torch.testing.assert_close(curv["diag"], exact.diagonal())
    elif structure == "full":
        torch.testing.assert_close(curv["full"], exact)
    else:  # one output with constant noise: K-FAC is exact, G ⊗ A = (N/σ²) ⊗ (X̃ᵀX̃/N)
        (g, a), = curv["kron"]
        torch.testing.assert_close(torch.kron(g, a), exact)


def test_linear_gaussian_laplace_posterior_and_evidence_are_exact():
    """y = X̃w + ε: the posterior is N(m, S), S = (X̃ᵀX̃/s² + δI)⁻¹, m = S X̃ᵀy/s², and the
    Laplace evidence at m is the exact log N(y; 0, s²I + X̃X̃ᵀ/δ)."""
    s, a = 0.3, 2.0
    net, x, y, xt = _linear_gaussian(s=s, a=a)
    delta = 1 / a**2
    m, cov = _conjugate(xt, y, s, delta)
    post = fit_laplace(net, x, y, structure="full", prior_precision=delta, epochs=200, lr=0.1, batch_size=30,
                       progress=False)
    torch.testing.assert_close(post.mean["weights"], m, rtol=0, atol=2e-3)  # the MAP, reached by Adam
    lam, q = post.curvature["eigvals"], post.curvature["eigvecs"]
    torch.testing.assert_close(q @ torch.diag(1 / (lam + delta)) @ q.T, cov)
    # evidence, with the closed-form mode
    curv = ggn(net, x, _as_mean(net, m), structure="full")
    loglik = torch.distributions.Normal(xt @ m, s).log_prob(y).sum()
    got = log_marginal_likelihood(float(loglik), float(m @ m), torch.linalg.eigvalsh(curv["full"]), delta)
    want = torch.distributions.MultivariateNormal(torch.zeros(30, dtype=D64),
                                                  s**2 * torch.eye(30, dtype=D64) + xt @ xt.T / delta).log_prob(y)
    torch.testing.assert_close(got, want)
    # draws have the posterior's moments (4 standard errors of 4000 draws)
    w = post.draws(4000, seed=1)["weights"][0]
    sd = cov.diagonal().sqrt()
    assert ((w.mean(0) - post.mean["weights"]).abs() < 4 * sd / math.sqrt(4000)).all()
    assert ((w.std(0) / sd - 1).abs() < 4 / math.sqrt(2 * 4000)).all()


def test_tuned_prior_precision_maximises_the_evidence():
    net, x, y, xt = _linear_gaussian()
    m, _ = _conjugate(xt, y, 0.3, 0.25)
    eig = torch.linalg.eigvalsh(xt.T @ xt / 0.3**2)
    best = tune_prior_precision(float(m @ m), eig)
    vals = log_marginal_likelihood(0.0, float(m @ m), eig, torch.tensor([best / 1.01, best, best * 1.01], dtype=D64))
    assert vals[1] > vals[0] and vals[1] > vals[2]
    gamma = float((eig / (eig + best)).sum())  # MacKay: δ‖θ‖² = γ
    assert best * float(m @ m) == pytest.approx(gamma, rel=1e-9)


def _jacobian_ggn(net, x, theta, lam_fn):
    """Σ_n J_nᵀ Λ_n J_n with J from torch.autograd.functional.jacobian, in the packed order."""
    jac = torch.autograd.functional.jacobian(lambda th: net.network(x, {"weights": th}), theta)  # (N, k, D)
    lam = lam_fn(net.network(x, {"weights": theta}))  # (N, k, k)
    return torch.einsum("nkd,nkl,nle->de", jac, lam, jac)


def _laplace_order(net):
    """Packed position of each Laplace-layout entry (W̃ = [W | b] row-major, layer by layer)."""
    idx = []
    for i in net.bayesian_layers:
        segs = {s.name.rsplit(".", 1)[1]: s for s in net.segments if s.layer == i}
        w, b = segs["weight"], segs["bias"]
        wi = (w.start + torch.arange(w.numel)).reshape(w.shape[0], -1)
        idx.append(torch.cat([wi, (b.start + torch.arange(b.numel)).reshape(-1, 1)], 1).reshape(-1))
    return torch.cat(idx)


LIKELIHOODS = {
    "gaussian": (lambda: pb.Gaussian(scale=0.5), 1, lambda f: torch.full((f.shape[0], 1, 1), 4.0, dtype=D64)),
    "bernoulli": (pb.Bernoulli, 1, lambda f: (torch.sigmoid(f) * (1 - torch.sigmoid(f))).reshape(-1, 1, 1)),
    "categorical": (lambda: pb.Categorical(3), 3,
                    lambda f: torch.diag_embed(torch.softmax(f, -1)) - torch.softmax(f, -1).unsqueeze(-1)
                    * torch.softmax(f, -1).unsqueeze(-2)),
}


@pytest.mark.parametrize("lik", sorted(LIKELIHOODS))
def test_ggn_diag_and_full_equal_autograd_jacobians(lik):
    make, k, lam_fn = LIKELIHOODS[lik]
    torch.manual_seed(0)
    net = pb.BNN([pb.Linear(2, 3), "tanh", pb.Linear(3, k)], make()).to(D64)
    x = torch.randn(7, 2, dtype=D64)
    theta = torch.randn(net.num_weights, dtype=D64)
    want = _jacobian_ggn(net, x, theta, lam_fn)
    order = _laplace_order(net)
    want = want[order][:, order]
    torch.testing.assert_close(ggn(net, x, {"weights": theta}, structure="full")["full"], want)
    torch.testing.assert_close(ggn(net, x, {"weights": theta}, structure="diag")["diag"], want.diagonal())
    # K-FAC of the last layer: G = Σ_n Λ_n (its output is the network's), A = (1/N) Σ ã ãᵀ
    (g, a), = ggn(net, x, {"weights": theta}, subset="last_layer", structure="kron")["kron"]
    hidden = torch.tanh(x @ net.unpack({"weights": theta})["layers.0.weight"].T
                        + net.unpack({"weights": theta})["layers.0.bias"])
    ht = torch.cat([hidden, torch.ones(7, 1, dtype=D64)], 1)
    torch.testing.assert_close(g, lam_fn(net.network(x, {"weights": theta})).sum(0))
    torch.testing.assert_close(a, ht.T @ ht / 7)


def _toy(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-2, 2, n).unsqueeze(-1)
    return x, torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(n, generator=g)


@pytest.mark.parametrize("subset,structure", [("all", "kron"), ("all", "diag"), ("last_layer", "full")])
def test_laplace_posterior_interface(subset, structure, tmp_path):
    x, y = _toy()
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(learned=True, scale=0.2))
    post = pb.fit_laplace(net, x, y, subset=subset, structure=structure, epochs=30, progress=False)
    assert isinstance(post, pb.Posterior) and post.method == "laplace"
    assert post.info["prior_precision"] > 0 and math.isfinite(post.info["log_marginal_likelihood"])
    draws = post.draws(32, seed=0)
    assert draws["weights"].shape == (1, 32, net.num_weights) and draws["noise"].shape == (1, 32)
    moved = (draws["weights"][0] != post.mean["weights"]).any(0)
    assert int(moved.sum()) == post.info["num_laplace_weights"]  # exactly the approximated weights vary
    pred = post.predict(x, num_samples=32)
    assert torch.isfinite(pred.total_var).all() and (pred.epistemic_var > 0).all()
    tree = post.to_datatree(x, y, num_samples=32)
    assert tree.attrs["method"] == "laplace" and "log_likelihood" in tree.children
    back = pb.load(post.save(tmp_path / "run"))
    assert type(back) is type(post) and back.prior_precision == post.prior_precision
    torch.testing.assert_close(back.predict(x, num_samples=32).mean, pred.mean, rtol=0, atol=0)


def test_glm_and_nn_predictives_agree_for_the_last_layer():
    """The network is linear in its last layer's weights, so its linearisation is exact there."""
    x, y = _toy()
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.1))
    post = pb.fit_laplace(net, x, y, subset="last_layer", epochs=30, progress=False)
    glm = post.predict(x, num_samples=16)
    post.predictive = "nn"
    nn = post.predict(x, num_samples=16)
    torch.testing.assert_close(glm.mean_draws, nn.mean_draws, rtol=1e-4, atol=1e-5)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="subset must be one of"):
        LaplaceSettings(subset="first")
    with pytest.raises(ValueError, match="structure must be one of"):
        LaplaceSettings(structure="lowrank")
    with pytest.raises(ValueError, match="prior_precision"):
        LaplaceSettings(prior_precision=0.0)
    x, y = _toy(8)
    het = pb.BNN([pb.Linear(1, 2)], pb.Gaussian(heteroscedastic=True))
    with pytest.raises(ValueError, match="heteroscedastic"):
        pb.fit_laplace(het, x, y, epochs=1, progress=False)
    conv = pb.BNN([pb.Conv2d(1, 2, 2), "flatten", pb.Linear(2, 1)], pb.Gaussian())
    with pytest.raises(ValueError, match="kron' needs Linear layers; layer 0 is Conv2d"):
        pb.fit_laplace(conv, torch.zeros(4, 1, 2, 2), torch.zeros(4), structure="kron", epochs=1, progress=False)


def test_sklearn_laplace_method():
    from pyrobnn.sklearn import BNNRegressor

    x, y = _toy()
    reg = BNNRegressor(hidden_sizes=(8,), method="laplace", epochs=100, lr=0.03, num_predictive_samples=16,
                       random_state=0).fit(x.numpy(), y.numpy())
    assert reg.posterior_.method == "laplace" and reg.score(x.numpy(), y.numpy()) > 0.7


def test_inference_spec_laplace_table():
    from pyrobnn import spec as S
    from pyrobnn.spec import SpecError

    ispec = S.load_inference_spec("inference/laplace.toml", ["laplace.structure=diag", "laplace.subset=last_layer"])
    assert ispec.method == "laplace" and ispec.laplace == LaplaceSettings(
        subset="last_layer", structure="diag", epochs=ispec.laplace.epochs)
    kw = S.laplace_kwargs(ispec)
    assert kw["structure"] == "diag" and kw["seed"] == 0 and set(kw) >= {"subset", "prior_precision", "predictive"}
    with pytest.raises(SpecError, match="laplace.structure"):
        S.load_inference_spec("inference/laplace.toml", ["laplace.structure=block"])


@pytest.mark.slow  # a MAP fit and a full report: seconds
def test_cli_fit_laplace_writes_a_standard_run(tmp_path):
    import json
    import sys

    from pyrobnn.cli import main

    out = tmp_path / "run"
    argv = sys.argv
    sys.argv = ["pyrobnn", "fit", "models/toy_regression.toml", "inference/laplace.toml", "--out", str(out),
                "--quiet", "--set", "laplace.epochs=30"]
    try:
        assert main() == 0
    finally:
        sys.argv = argv
    assert json.loads((out / "metrics.json").read_text())["method"] == "laplace"
    assert pb.load(out).method == "laplace"
