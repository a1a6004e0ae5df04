"""NUTSConfig: the one definition of the NUTS/HMC settings that fit_nuts, the spec schema and
the run metadata derive from; fit_nuts(seed=None) draws a fresh seed without touching the
caller's generators."""

import dataclasses
import inspect
import random

import numpy as np
import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.mcmc import NUTS_DEFAULTS, NUTSConfig, fit_nuts
from pyrobnn.spec.schema import MCMC_FIELDS, MCMCSpec

FAST = dict(num_samples=4, warmup=2, chains=2, max_tree_depth=2, jit=False)


def tiny():
    d = pb.data.toy_curve(n_train=8, n_test=0)
    return pb.BNN([pb.Linear(1, 2), "tanh", pb.Linear(2, 1)], pb.Gaussian(0.3)), d.x_train, d.y_train


def test_fit_nuts_schema_and_spec_defaults_are_the_configs():
    params = inspect.signature(fit_nuts).parameters
    fields = {f.name: f for f in MCMC_FIELDS}
    spec = MCMCSpec()
    for f in dataclasses.fields(NUTSConfig):
        default = getattr(NUTS_DEFAULTS, f.name)
        assert params[f.name].default == default, f.name
        if f.name in fields and f.name not in ("init", "backend", "chain_method"):  # spec: None = fit_nuts' default
            assert fields[f.name].default == default, f.name
            assert getattr(spec, f.name) == default, f.name


@pytest.mark.parametrize("kwargs, name", [
    (dict(num_samples=0), "num_samples"), (dict(warmup=-1), "warmup"), (dict(target_accept=1.0), "target_accept"),
    (dict(max_tree_depth=0), "max_tree_depth"), (dict(kernel="mala"), "kernel"), (dict(step_size=-1.0), "step_size"),
    (dict(num_steps=0), "num_steps"), (dict(jit="yes"), "jit"), (dict(init="prior"), "init"),
    (dict(backend="jax"), "backend"), (dict(chain_method="threads"), "chain_method"),
    (dict(checkpoint_every=0), "checkpoint_every"),
])
def test_config_errors_name_the_field(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        NUTSConfig(**kwargs)


def test_config_argument_gives_the_same_run_and_is_recorded():
    net, x, y = tiny()
    a = fit_nuts(net, x, y, seed=5, progress=False, **FAST)
    b = fit_nuts(net, x, y, config=NUTSConfig(**FAST), seed=5, progress=False)
    assert torch.equal(a.samples["weights"], b.samples["weights"])
    assert b.info["config"] == NUTSConfig(**FAST).record()
    assert b.info["config"]["max_tree_depth"] == 2 and b.info["max_tree_depth"] == 2
    with pytest.raises(ValueError, match="num_samples"):
        fit_nuts(net, x, y, config=NUTSConfig(**FAST), num_samples=7, progress=False)
    with pytest.raises(TypeError, match="config"):
        fit_nuts(net, x, y, config={"num_samples": 3}, progress=False)


def test_seed_none_draws_a_fresh_recorded_seed_without_touching_global_generators():
    net, x, y = tiny()
    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(4)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    a = fit_nuts(net, x, y, seed=None, progress=False, **FAST)
    b = fit_nuts(net, x, y, seed=None, progress=False, **FAST)
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1])
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and np.array_equal(before[2], after[2])
    assert a.info["seed_drawn"] and b.info["seed_drawn"]
    assert isinstance(a.info["seed"], int) and a.info["seed"] != b.info["seed"]
    assert not torch.equal(a.samples["weights"], b.samples["weights"])
    again = fit_nuts(net, x, y, seed=a.info["seed"], progress=False, **FAST)  # the recorded seed reproduces it
    assert torch.equal(a.samples["weights"], again.samples["weights"])
    assert not again.info["seed_drawn"]


def test_resume_with_seed_none_continues_with_the_checkpoints_seed(tmp_path):
    net, x, y = tiny()
    path = tmp_path / "run.ckpt"
    first = fit_nuts(net, x, y, seed=None, checkpoint=path, progress=False, **FAST)
    resumed = fit_nuts(net, x, y, seed=None, checkpoint=path, resume=True, progress=False, **FAST)
    assert resumed.info["seed"] == first.info["seed"]
    assert torch.equal(first.samples["weights"], resumed.samples["weights"])


# ---------------------------------------------------------------------- ChEES-HMC
def test_chees_runs_in_lock_step_records_its_trajectory_and_resumes_bit_for_bit(tmp_path):
    net, x, y = tiny()
    kw = dict(num_samples=4, warmup=6, chains=4, kernel="chees", jit=False, progress=False, seed=2)
    post = fit_nuts(net, x, y, **kw)
    assert post.samples["weights"].shape == (4, 4, net.num_weights)
    assert set(post.sample_stats) == {"accept_prob", "diverging", "num_steps", "energy", "step_size", "lp"}
    assert post.info["trajectory_length"] > 0 and post.info["kernel"] == "chees"
    path = tmp_path / "chees.ckpt"
    stop = {"n": 0}

    def interrupt(record):
        stop["n"] += 1
        if stop["n"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_nuts(net, x, y, checkpoint=path, checkpoint_every=1, callback=interrupt, handle_interrupt=False, **kw)
    resumed = fit_nuts(net, x, y, checkpoint=path, resume=True, **kw)
    assert torch.equal(post.samples["weights"], resumed.samples["weights"])
    assert resumed.info["trajectory_length"] == post.info["trajectory_length"]


@pytest.mark.parametrize("kwargs", [dict(chains=1), dict(backend="pyro"), dict(chain_method="sequential")])
def test_chees_needs_vectorised_chains(kwargs):
    net, x, y = tiny()
    with pytest.raises(ValueError, match="chees"):
        fit_nuts(net, x, y, kernel="chees", progress=False, **{"chains": 2, **kwargs})


def _closed_form_check():
    """tests/test_mcmc.py's closed-form problem and moment check."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_mcmc import check_gaussian_moments, linear_regression_problem

    return check_gaussian_moments, linear_regression_problem


def test_chees_adapts_a_long_trajectory_and_mixes():
    """The fast version of the check below (16 chains of 300 + 50, eager, about 4 s): the adapted
    trajectory spans many step sizes and the draws are nearly independent.  Over seeds 0-3 the
    trajectory was 36-53 mean step sizes and the smallest bulk ESS of the four weights 612-1187 of
    800 draws; an adaptation that collapses to about one step (as a momentum-based Adam step once
    did here: ESS 87 of 19 200) fails both bounds."""
    import arviz_stats as azs

    check_gaussian_moments, linear_regression_problem = _closed_form_check()
    net, x, y, mean, cov = linear_regression_problem()
    post = fit_nuts(net, x, y, num_samples=50, warmup=300, chains=16, kernel="chees", seed=0, jit=False,
                    progress=False)
    w = post.samples["weights"].numpy()
    steps = post.info["trajectory_length"] / float(post.sample_stats["step_size"].float().mean())
    assert steps >= 15, steps
    assert np.all(azs.ess(w, chain_axis=0, draw_axis=1) >= 300)
    check_gaussian_moments(w, mean, cov)


@pytest.mark.slow
def test_chees_matches_closed_form_linear_regression():
    check_gaussian_moments, linear_regression_problem = _closed_form_check()
    net, x, y, mean, cov = linear_regression_problem()
    post = fit_nuts(net, x, y, num_samples=300, warmup=300, chains=64, kernel="chees", seed=3, progress=False)
    check_gaussian_moments(post.samples["weights"].numpy(), mean, cov)
