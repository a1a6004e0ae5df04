"""The native backend (``backend="native"``): the C potential and gradient equal
PotentialEnergy and its autograd gradient; its NUTS samples the closed-form posterior of
Bayesian linear regression; checkpoint/resume is bit-exact and seeds reproduce; unsupported
models are refused with errors naming what is unsupported."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.mcmc import fit_nuts
from pyrobnn.infer.mcmc.native import NativeModel, library_path
from pyrobnn.infer.mcmc.potential import _build_potential

sys.path.insert(0, str(Path(__file__).parent))
from test_mcmc import check_gaussian_moments, linear_regression_problem  # noqa: E402

F64 = torch.zeros((), dtype=torch.float64)


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_cache(tmp_path_factory):
    """One compile of the library per test module, into a fresh cache directory (the
    compile-and-cache path is exercised); one torch thread, as for every tiny-net test."""
    import pyrobnn.infer.mcmc.native as native

    mp = pytest.MonkeyPatch()
    mp.setenv("PYROBNN_NATIVE_CACHE", str(tmp_path_factory.mktemp("native")))
    mp.setattr(native, "_LIB", None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    mp.undo()


def mlp(widths, act, bias=True, noise=0.3, likelihood=None):
    layers = []
    for i in range(len(widths) - 1):
        layers += [pb.Linear(widths[i], widths[i + 1], bias=bias)] + ([act] if i < len(widths) - 2 else [])
    return pb.BNN(layers, likelihood or pb.Gaussian(noise), prior=pb.priors.Normal(0.1, 0.7))


def potential_of(net, x, y, chains=2):
    return _build_potential(net, x, y, chains, "model", 0, (), F64)


@pytest.mark.parametrize("widths,act,bias,likelihood", [
    ([1, 10, 1], "tanh", True, "gaussian"),
    ([3, 7, 5, 1], "relu", True, "gaussian"),
    ([2, 6, 1], "sigmoid", False, "gaussian"),
    ([4, 5, 1], "tanh", True, "bernoulli"),
])
def test_potential_and_gradient_equal_potential_energy(widths, act, bias, likelihood):
    """U and ∇U at random points equal PotentialEnergy and its autograd gradient (float64, rtol
    1e-10), with a different Normal prior (loc and scale) on the first layer; the library is in
    the cache directory."""
    g = torch.Generator().manual_seed(sum(widths))
    net = mlp(widths, act, bias, likelihood=pb.Bernoulli() if likelihood == "bernoulli" else None).double()
    net.set_prior(pb.priors.Normal(-0.2, 2.0), layers=[0])
    x = torch.randn(40, widths[0], generator=g, dtype=torch.float64)
    y = (torch.rand(40, generator=g, dtype=torch.float64) < 0.5).double() if likelihood == "bernoulli" else \
        torch.randn(40, generator=g, dtype=torch.float64)
    pot, _ = potential_of(net, x, y)
    native = NativeModel(net, x, y, pot)
    z = torch.randn(6, pot.dim, generator=g, dtype=torch.float64)
    zr = z.clone().requires_grad_(True)
    u = pot(zr)
    (grad,) = torch.autograd.grad(u.sum(), zr)
    un, gn = native.value_and_grad(z)
    torch.testing.assert_close(un, u.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(gn, grad, rtol=1e-10, atol=1e-10 * float(grad.abs().max()))
    assert library_path().exists()


def test_instruction_set_variants_agree():
    """The AVX2 build (chosen at load time where the CPU has it; fused multiply-adds) and the
    baseline build agree to rounding: rtol 1e-12 on the potential and the gradient."""
    from pyrobnn.infer.mcmc.native import _library

    lib, _ = _library("")
    if not lib.pyrobnn_cpu_supports(b"avx2"):
        pytest.skip("this CPU has no AVX2: only the baseline build runs here")
    g = torch.Generator().manual_seed(1)
    net = mlp([8, 50, 1], "tanh").double()
    x = torch.randn(93, 8, generator=g, dtype=torch.float64)
    y = torch.randn(93, generator=g, dtype=torch.float64)
    pot, _ = potential_of(net, x, y)
    z = 2 * torch.randn(20, pot.dim, generator=g, dtype=torch.float64)
    base, avx2 = (NativeModel(net, x, y, pot, variant=v).value_and_grad(z) for v in ("", "avx2"))
    torch.testing.assert_close(avx2[0], base[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(avx2[1], base[1], rtol=1e-12, atol=1e-12 * float(base[1].abs().max()))


def test_a_failing_optional_build_falls_back_to_the_baseline(tmp_path, monkeypatch, caplog):
    """An instruction-set build the compiler refuses is logged and left out; the baseline serves."""
    import pyrobnn.infer.mcmc.native as native

    monkeypatch.setenv("PYROBNN_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_LIB", None)
    monkeypatch.setattr(native, "_VARIANTS", {"bogus": ("-fno-such-option-anywhere",)})
    monkeypatch.setattr(native.platform, "machine", lambda: "x86_64")
    with caplog.at_level("WARNING", logger=native.__name__):
        lib, _ = native._library()
    assert lib.path == library_path("") and not library_path("bogus").exists()
    assert "optional build" in caplog.text and "bogus" in caplog.text


def test_leapfrog_equals_torch_integrator():
    """The C leapfrog step on the packed (C, 3, D) state equals the torch integrator's."""
    from pyrobnn.infer.mcmc.integrator import _leapfrog_fn, _value_and_grad_eager

    net = mlp([1, 10, 1], "tanh").double()
    d = pb.data.toy_curve(n_train=30, n_test=0)
    x, y = d.x_train.double(), d.y_train.double()
    pot, z0 = potential_of(net, x, y, chains=3)
    native = NativeModel(net, x, y, pot)
    g = torch.Generator().manual_seed(0)
    u0, g0 = native.value_and_grad(z0)
    state = torch.stack([z0, torch.randn(z0.shape, generator=g, dtype=torch.float64), g0], 1)
    step = torch.tensor([[0.01], [-0.02], [0.03]], dtype=torch.float64)
    inv_mass = torch.rand(3, pot.dim, generator=g, dtype=torch.float64) + 0.5
    ref, uref = _leapfrog_fn(_value_and_grad_eager(pot))(state, step, inv_mass)
    out, u = native.leapfrog(state, step, inv_mass)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(u, uref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("kernel", ["nuts", "hmc"])
def test_matches_closed_form_linear_regression(kernel):
    """Posterior mean and variance of every coordinate within Monte-Carlo error of the
    closed form (test_mcmc's check), float64."""
    net, x, y, mean, cov = linear_regression_problem()
    post = fit_nuts(net, x, y, num_samples=600, warmup=300, chains=4, kernel=kernel, seed=2, progress=False,
                    num_steps=6 if kernel == "hmc" else None, backend="native")
    assert post.info["backend"] == "native"
    assert int(post.sample_stats["diverging"].sum()) == 0
    check_gaussian_moments(post.samples["weights"].numpy(), mean, cov)


def test_float32_model_keeps_its_dtype():
    net, x, y, mean, cov = linear_regression_problem(dtype=torch.float32)
    post = fit_nuts(net, x, y, num_samples=400, warmup=200, chains=2, seed=0, progress=False, backend="native")
    assert post.samples["weights"].dtype == torch.float32
    assert post.sample_stats["accept_prob"].dtype == torch.float32
    assert net.dtype == torch.float32
    check_gaussian_moments(post.samples["weights"].double().numpy(), mean, cov)


def tiny():
    d = pb.data.toy_curve(n_train=20, n_test=0)
    return pb.BNN([pb.Linear(1, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(0.3)), d.x_train, d.y_train


KW = dict(num_samples=20, warmup=30, chains=3, max_tree_depth=6, progress=False, backend="native")


def assert_bitwise_equal(a, b):
    assert torch.equal(a.samples["weights"], b.samples["weights"])
    assert a.sample_stats.keys() == b.sample_stats.keys()
    for k in a.sample_stats:
        assert torch.equal(a.sample_stats[k], b.sample_stats[k]), k
    for k in ("step_size_adapted", "inverse_mass_matrix"):
        assert torch.equal(a.info[k], b.info[k]), k


def test_seed_reproducible_and_checkpoint_resume_bit_exact(tmp_path):
    """The same seed gives the same draws; another seed others; a run stopped inside warm-up
    and one stopped inside sampling resume to draws and statistics bitwise equal to an
    uninterrupted run's."""
    net, x, y = tiny()
    ref = fit_nuts(net, x, y, seed=5, **KW)
    assert_bitwise_equal(ref, fit_nuts(net, x, y, seed=5, **KW))
    assert not torch.equal(ref.samples["weights"], fit_nuts(net, x, y, seed=6, **KW).samples["weights"])

    class Stop(Exception):
        pass

    for k in (17, 41):
        path = tmp_path / f"run{k}.pt"

        def stop_at(rec, k=k):
            if rec["iteration"] == k:
                raise Stop

        with pytest.raises(Stop):
            fit_nuts(net, x, y, seed=5, checkpoint=path, checkpoint_every=1, callback=stop_at, **KW)
        resumed = fit_nuts(net, x, y, seed=5, checkpoint=path, resume=True, **KW)
        assert resumed.info["resumed_at"] == [k]
        assert_bitwise_equal(ref, resumed)


def test_sequential_chains_equal_single_chain_runs():
    """chain_method='sequential': chain 0 is the one-chain run with the same seed (chain c runs
    with seed + c); chains in one call are independent trees, so chain 0 of the vectorised run
    differs only through the generator's seeds drawn for the other chains."""
    net, x, y = tiny()
    kw = {**KW, "chains": 2}
    both = fit_nuts(net, x, y, seed=1, chain_method="sequential", **kw)
    one = fit_nuts(net, x, y, seed=1, **{**kw, "chains": 1})
    assert torch.equal(both.samples["weights"][0], one.samples["weights"][0])
    assert not torch.equal(both.samples["weights"][1], one.samples["weights"][0])


@pytest.mark.parametrize("build,match", [
    (lambda: pb.BNN([pb.Linear(1, 4), "elu", pb.Linear(4, 1)], pb.Gaussian(0.3)), "layers.1 is activation 'elu'"),
    (lambda: pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(0.3, learned=True)),
     "latent site 'noise'"),
    (lambda: pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(0.3),
                    prior=pb.priors.Laplace(0.0, 1.0)), "Normal priors only; layer 0 has Laplace"),
    (lambda: pb.BNN([pb.Linear(1, 4, bayesian=False), "tanh", pb.Linear(4, 1)], pb.Gaussian(0.3)),
     "deterministic Linear"),
    (lambda: pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 2)], pb.Categorical(2)), "not Categorical"),
])
def test_unsupported_models_are_refused(build, match):
    d = pb.data.toy_curve(n_train=10, n_test=0)
    net = build()
    y = (d.y_train > 0).long() if isinstance(net.likelihood, pb.Categorical) else d.y_train
    with pytest.raises(ValueError, match=match) as err:
        fit_nuts(net, d.x_train, y, **{**KW, "warmup": 1, "num_samples": 1})
    assert "backend='torch'" in str(err.value)


def test_unsupported_settings_and_devices_are_refused():
    net, x, y = tiny()
    with pytest.raises(ValueError, match="kernel='chees'"):
        fit_nuts(net, x, y, **{**KW, "kernel": "chees"})
    with pytest.raises(ValueError, match="hyperpriors"):
        fit_nuts(net, x, y, hyperpriors={"scale": pb.infer.mcmc.hyperprior("half_cauchy", scale=1.0)}, **KW)
    with pytest.raises(ValueError, match="chain_method='parallel'"):
        fit_nuts(net, x, y, **{**KW, "chain_method": "parallel"})
    # data on another device (no CUDA here: the meta device stands in for it) is refused, naming it
    pot, _ = potential_of(net.double(), x.double(), y.double())
    with pytest.raises(ValueError, match="on the CPU; the data are on meta"):
        NativeModel(net, x.double().to("meta"), y.double().to("meta"), pot)


@pytest.mark.slow
def test_agrees_with_torch_backend_in_function_space():
    """On the 1-10-1 tanh toy problem (50 points), the native and torch backends' predictive
    means and 5% / 95% quantiles on a grid agree within Monte-Carlo error (|z| < 4 at every
    grid point; MCSE from the bulk ESS, as benchmarks/nuts.py's agreement)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from nuts import agreement

    d = pb.data.toy_curve(n_train=50)
    net = pb.BNN([pb.Linear(1, 10), "tanh", pb.Linear(10, 1)], pb.Gaussian(0.1), prior=pb.priors.Normal(0.0, 1.0))
    grid = torch.linspace(-0.2, 1.2, 50)[:, None]
    f = {}
    for backend in ("native", "torch"):
        post = fit_nuts(net, d.x_train, d.y_train, num_samples=1000, warmup=500, chains=4, seed=0, progress=False,
                        backend=backend)
        w = post.samples["weights"]
        f[backend] = net.network(grid, {"weights": w.reshape(-1, w.shape[-1])})[..., 0].reshape(4, 1000, -1).numpy()
    z = agreement(f["native"].astype(np.float64), f["torch"].astype(np.float64))
    assert z["mean_z_max"] < 4 and z["q05_z_max"] < 4 and z["q95_z_max"] < 4, z
