"""Tests of pyrobnn.diagnostics: metrics, DataTree export, reports and comparisons."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import xarray as xr
from pyro import poutine

import pyrobnn as pb
from pyrobnn.diagnostics import (
    accuracy,
    brier_score,
    compare,
    coverage,
    diagnose,
    expected_calibration_error,
    function_space_convergence,
    load_datatree,
    mean_nll,
    predictive_metrics,
    reliability_diagram,
    report,
    rmse,
    roc_auc,
    save_datatree,
    to_datatree,
    vi_pareto_k,
)
from pyrobnn.infer.posterior import SamplePosterior
from pyrobnn.infer.predictive import predictive_log_likelihood

S = 60  # guide draws in the export tests


# =========================================================================== metrics
def test_rmse_and_nll_by_hand():
    assert rmse([0.0, 1.0, 2.0], [0.0, 2.0, 0.0]) == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert mean_nll([-1.0, -2.0, -3.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shape"):
        rmse([0.0, 1.0], [0.0])


def test_coverage_by_hand():
    y = [0.0, 1.0, 2.0, 3.0]
    lo = [-1.0, 1.5, 1.0, 4.0]
    hi = [1.0, 2.0, 3.0, 5.0]
    assert coverage(y, lo, hi) == pytest.approx(0.5)  # points 0 and 2 are inside
    assert coverage([1.0], [1.0], [1.0]) == 1.0  # closed interval


def test_ece_and_reliability_tiny_example():
    # binary P(y=1); top-label confidences 0.9 (right), 0.8 (wrong), 0.7 (right, class 0), 0.6 (right)
    p = np.array([0.9, 0.8, 0.3, 0.6])
    y = np.array([1, 0, 0, 1])
    # every confidence in its own bin: ECE = mean |acc - conf| = (0.1 + 0.8 + 0.3 + 0.4) / 4
    assert expected_calibration_error(p, y, n_bins=10) == pytest.approx(0.4)
    rel = reliability_diagram(p, y, n_bins=10)
    assert sum(rel["count"]) == 4 and rel["count"][7] == 1  # 0.8 lies in (0.7, 0.8]
    assert rel["accuracy"][7] == 0.0 and rel["confidence"][7] == pytest.approx(0.8)
    # two points sharing a bin: acc 1/2, conf 0.95 → gap 0.45 with weight 2/3; third point exact
    probs = np.array([[0.95, 0.05, 0.0], [0.95, 0.0, 0.05], [0.0, 0.0, 1.0]])
    y3 = np.array([0, 1, 2])
    assert expected_calibration_error(probs, y3, n_bins=10) == pytest.approx(2 / 3 * 0.45)
    # one bin: ECE = |accuracy − mean confidence|
    assert expected_calibration_error(probs, y3, n_bins=1) == pytest.approx(abs(2 / 3 - (0.95 + 0.95 + 1) / 3))


def test_brier_and_accuracy_by_hand():
    assert brier_score([0.9, 0.2], [1, 0]) == pytest.approx((0.01 + 0.04) / 2)
    assert brier_score([[0.7, 0.2, 0.1]], [0]) == pytest.approx(0.09 + 0.04 + 0.01)
    assert accuracy([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]], [0, 0, 1]) == pytest.approx(2 / 3)


def test_roc_auc_matches_sklearn_and_mann_whitney():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 200), 0, 1)
    # Mann–Whitney: P(score of a positive > score of a negative)
    pos, neg = p[y == 1], p[y == 0]
    mw = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert roc_auc(p, y) == pytest.approx(mw)
    assert roc_auc(np.stack([1 - p, p], 1), y) == pytest.approx(roc_auc_score(y, p))
    y3 = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y3]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert roc_auc(probs, y3) == pytest.approx(roc_auc_score(y3, probs, multi_class="ovr", average="macro"))
    assert math.isnan(roc_auc(p[:5], np.ones(5, dtype=int)))


def _ratio_tree(log_ratio):
    ss = xr.Dataset({"log_p": (("chain", "draw"), log_ratio[None]),
                     "log_q": (("chain", "draw"), np.zeros_like(log_ratio)[None])})
    return xr.DataTree.from_dict({"sample_stats": ss})


def test_vi_pareto_k_recovers_known_tail():
    rng = np.random.default_rng(1)
    # importance weights Pareto(alpha = 2) have tail shape k = 1/alpha = 0.5
    w = rng.pareto(2.0, 4000) + 1.0
    assert vi_pareto_k(_ratio_tree(np.log(w))) == pytest.approx(0.5, abs=0.15)
    # nearly constant weights: a light tail
    assert vi_pareto_k(_ratio_tree(rng.normal(0, 0.1, 4000))) < 0.3


# =========================================================================== fixtures
def _toy(n_train=40, n_test=30):
    return pb.data.toy_curve(n_train, n_test, seed=0)


@pytest.fixture(scope="module")
def svi_fit():
    torch.manual_seed(0)
    d = _toy()
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(0.1, learned=True))
    guide = pb.guides.MeanField(net, init_scale=0.05)
    post = pb.fit_svi(net, guide, d.x_train, d.y_train, epochs=30, lr=0.02, progress=False, seed=0)
    return post, d


@pytest.fixture(scope="module")
def svi_tree(svi_fit):
    post, d = svi_fit
    return to_datatree(post, dataset=d, num_samples=S, prior_samples=20, seed=0,
                       model_spec="[model]\nname = 'toy'\n", inference_spec="[inference]\nmethod = 'svi'\n")


def _mcmc_posterior(svi_fit, offset=0.0, chains=3, draws=40, seed=0):
    """A hand-built MCMC-shaped posterior: guide draws arranged as (chain, draw), chain 1
    shifted by ``offset``, with sampler statistics."""
    post, _ = svi_fit
    g = torch.Generator().manual_seed(seed)
    flat = post.draws(chains * draws, seed=seed)
    samples = {k: v.reshape(chains, draws, *v.shape[2:]).clone() for k, v in flat.items()}
    samples["weights"][1] += offset
    stats = {
        "diverging": torch.zeros(chains, draws, dtype=torch.bool),
        "accept_prob": torch.rand(chains, draws, generator=g),
        "step_size": torch.full((chains, draws), 0.05),
        "tree_depth": torch.randint(1, 5, (chains, draws), generator=g),
        "energy": torch.randn(chains, draws, generator=g),
        "num_steps": torch.randint(1, 16, (chains, draws), generator=g),
    }
    stats["diverging"][0, 3] = True
    return SamplePosterior(model=post.model, method="nuts", samples=samples, sample_stats=stats,
                     info={"max_tree_depth": 10, "seconds_total": 1.5, "inverse_mass": torch.ones(50)})


@pytest.fixture(scope="module")
def mcmc_tree(svi_fit):
    _, d = svi_fit
    return to_datatree(_mcmc_posterior(svi_fit), dataset=d)


# =========================================================================== export
def test_svi_tree_groups_dims_shapes(svi_fit, svi_tree):
    post, d = svi_fit
    t = svi_tree
    for g in ("posterior", "posterior_predictive", "log_likelihood", "observed_data", "constant_data",
              "predictions", "predictions_constant_data", "predictions_observed_data", "sample_stats", "svi",
              "prior", "prior_predictive"):
        assert g in t.children, g
    p = t["posterior"]
    assert set(p.data_vars) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "noise"}
    assert p["layers.0.weight"].dims == ("chain", "draw", "layers.0.out", "layers.0.in")
    assert p["layers.0.weight"].shape == (1, S, 8, 1)
    assert p["layers.0.bias"].dims == ("chain", "draw", "layers.0.out")
    assert p["layers.2.weight"].shape == (1, S, 1, 8)
    assert p["noise"].shape == (1, S)
    n_tr, n_te = d.n_train, d.n_test
    assert t["log_likelihood"]["obs"].dims == ("chain", "draw", "obs_id")
    assert t["log_likelihood"]["obs"].shape == (1, S, n_tr)
    assert t["posterior_predictive"]["obs"].shape == (1, S, n_tr)
    np.testing.assert_allclose(t["observed_data"]["obs"].values, d.y_train.numpy())
    np.testing.assert_allclose(t["constant_data"]["x"].values, d.x_train.numpy())
    pr = t["predictions"]
    assert pr["obs"].shape == (1, S, n_te)
    for v in ("mean", "aleatoric_var", "epistemic_var", "total_var", "lpd"):
        assert pr[v].dims == ("pred_id",)
    assert pr["quantiles"].shape == (n_te, 4)
    np.testing.assert_allclose(t["predictions_observed_data"]["obs"].values, d.y_test.numpy())
    assert t["svi"]["loss"].shape == (30,) and list(t["svi"]["epoch"].values) == list(range(1, 31))
    assert t["prior"]["layers.0.weight"].shape == (1, 20, 8, 1) and "obs" not in t["prior"]
    a = t.attrs
    assert a["method"] == "svi" and a["task"] == "regression" and a["seed"] == 0
    assert a["in_sample"] == "train" and a["n_train"] == n_tr and a["n_eval"] == n_te
    for key in ("torch_version", "inference_library_version", "arviz_version", "creation_library_version",
                "created_at", "model_spec", "inference_spec", "fit_info"):
        assert key in a, key
    assert "name = 'toy'" in a["model_spec"]


def test_svi_tree_values_match_posterior(svi_fit, svi_tree):
    post, d = svi_fit
    t = svi_tree
    draws = post.draws(S, seed=0)  # the same guide draws the export used
    unpacked = post.model.unpack({"weights": draws["weights"]})
    np.testing.assert_allclose(t["posterior"]["layers.2.weight"].values, unpacked["layers.2.weight"].numpy())
    np.testing.assert_allclose(t["posterior"]["noise"].values, draws["noise"].numpy())
    ll = post.log_likelihood(d.x_train, d.y_train, draws=draws)
    np.testing.assert_allclose(t["log_likelihood"]["obs"].values, ll.numpy(), rtol=1e-5, atol=1e-5)
    ll_te = post.log_likelihood(d.x_test, d.y_test, draws=draws)
    lpd = predictive_log_likelihood(ll_te.reshape(S, -1))
    np.testing.assert_allclose(t["predictions"]["lpd"].values, lpd.numpy(), rtol=1e-5, atol=1e-5)
    pred = post.predict(d.x_test, draws=draws)
    np.testing.assert_allclose(t["predictions"]["mean"].values, pred.mean.numpy(), rtol=1e-5, atol=1e-6)
    # aleatoric + epistemic = total
    pr = t["predictions"]
    np.testing.assert_allclose(pr["aleatoric_var"] + pr["epistemic_var"], pr["total_var"], rtol=1e-5)


def test_evaluate_in_batches_equals_one_pass(svi_fit):
    post, d = svi_fit
    draws = post.draws(S, seed=0)
    pred, ll = post.evaluate(d.x_test, d.y_test, draws, batch_size=7)
    whole, ll1 = post.evaluate(d.x_test, d.y_test, draws, batch_size=10_000)
    torch.testing.assert_close(ll, ll1)
    torch.testing.assert_close(pred.mean_draws, whole.mean_draws)
    torch.testing.assert_close(ll, post.log_likelihood(d.x_test, d.y_test, draws=draws))
    assert post.evaluate(d.x_test, None, draws)[1] is None


def test_svi_log_p_and_log_q_match_pyro_traces(svi_fit, svi_tree):
    """log_q = log q(w) of the guide and log_p = log p(w) + Σ log p(y|x,w) of the model, checked
    against Pyro's own trace densities for a few draws."""
    post, d = svi_fit
    draws = post.draws(S, seed=0)
    ss = svi_tree["sample_stats"]
    for s in (0, 7, S - 1):
        value = {k: v[0, s] for k, v in draws.items()}
        gtr = poutine.trace(poutine.condition(post.guide, data=value)).get_trace(d.x_train, d.y_train)
        mtr = poutine.trace(poutine.condition(post.model, data=value)).get_trace(d.x_train, d.y_train)
        assert float(ss["log_q"][0, s]) == pytest.approx(float(gtr.log_prob_sum().detach()), rel=1e-4, abs=1e-3)
        assert float(ss["log_p"][0, s]) == pytest.approx(float(mtr.log_prob_sum().detach()), rel=1e-4, abs=1e-2)


def test_mcmc_tree_groups_and_stats(svi_fit, mcmc_tree):
    post, d = svi_fit
    t = mcmc_tree
    assert t.attrs["method"] == "nuts"
    p = t["posterior"]
    assert p["layers.0.weight"].shape == (3, 40, 8, 1)
    assert list(p["chain"].values) == [0, 1, 2]
    ss = t["sample_stats"]
    assert set(ss.data_vars) >= {"diverging", "acceptance_rate", "step_size", "tree_depth", "energy", "n_steps"}
    assert ss["diverging"].dtype == bool and int(ss["diverging"].sum()) == 1
    assert ss["acceptance_rate"].dims == ("chain", "draw")
    assert "log_q" not in ss
    assert t["log_likelihood"]["obs"].shape == (3, 40, d.n_train)
    assert t.attrs["fit_seconds"] == pytest.approx(1.5)
    assert "array of shape (50,)" in t.attrs["fit_info"]  # large tensors are summarised, not dumped
    # thinning to a total of about 30 draws keeps the chains
    t2 = to_datatree(_mcmc_posterior(svi_fit), d.x_test, d.y_test, num_samples=30)
    assert t2["posterior"]["noise"].shape == (3, 10)
    assert t2.attrs["in_sample"] == "evaluation"


def test_classification_trees():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(60, 2)), dtype=torch.float32)
    yb = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
    y3 = torch.as_tensor((x[:, 0] > 0).long() + (x[:, 1] > 0.5).long())
    for lik, y, k in ((pb.Bernoulli(), yb, 2), (pb.Categorical(3), y3, 3)):
        net = pb.BNN([pb.Linear(2, 6), "relu", pb.Linear(6, lik.num_outputs())], lik)
        post = pb.fit_svi(net, pb.guides.MeanField(net), x[:40], y[:40], epochs=20, lr=0.02, progress=False)
        t = to_datatree(post, x[40:], y[40:], train=(x[:40], y[:40]), num_samples=40)
        pr = t["predictions"]
        assert pr["probs"].dims == ("pred_id", "class") and pr["probs"].shape == (20, k)
        assert pr["prob"].dims == ("chain", "draw", "pred_id", "class") and pr["prob"].shape == (1, 40, 20, k)
        np.testing.assert_allclose(pr["prob"].mean(("chain", "draw")), pr["probs"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pr["probs"].sum("class"), 1.0, rtol=1e-5)
        assert (pr["mutual_information"] >= 0).all() and (pr["entropy"] <= math.log(k) + 1e-5).all()
        assert t["observed_data"]["obs"].dtype.kind == "i"
        assert set(np.unique(t["posterior_predictive"]["obs"].values)) <= set(range(k))
        m = predictive_metrics(t)
        probs, yt = pr["probs"].values, y[40:].numpy().astype(int)
        assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == yt))
        assert m["ece"] == pytest.approx(expected_calibration_error(probs, yt))
        assert m["brier"] == pytest.approx(brier_score(probs[:, 1] if k == 2 else probs, yt))


def test_to_datatree_errors(svi_fit):
    post, d = svi_fit
    with pytest.raises(ValueError, match="x has 30 rows but y has 29"):
        to_datatree(post, d.x_test, d.y_test[:-1])
    with pytest.raises(ValueError, match="num_samples"):
        to_datatree(post, d.x_test, d.y_test, num_samples=0)
    with pytest.raises(TypeError, match="train must be a pair"):
        to_datatree(post, d.x_test, d.y_test, train=d.x_train)


def test_posterior_method_delegates(svi_fit):
    post, d = svi_fit
    t = post.to_datatree(d.x_test, d.y_test, num_samples=10)
    assert t["posterior"]["noise"].shape == (1, 10)


# =========================================================================== files
def test_save_and_reopen_nc_and_zarr(svi_tree, tmp_path):
    for name in ("post.nc", "post.zarr"):
        path = save_datatree(svi_tree, tmp_path / name)
        back = load_datatree(path)
        assert set(back.children) == set(svi_tree.children)
        np.testing.assert_array_equal(back["posterior"]["layers.0.weight"].values,
                                      svi_tree["posterior"]["layers.0.weight"].values)
        assert back.attrs["model_spec"] == svi_tree.attrs["model_spec"]
        save_datatree(svi_tree, path)  # overwriting is fine
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    with pytest.raises(ValueError, match=r"\.nc or \.zarr"):
        save_datatree(svi_tree, tmp_path / "post.h5")


_REOPEN = """
import sys, warnings
warnings.simplefilter("ignore")
import matplotlib
matplotlib.use("Agg")
import arviz as az
import xarray as xr
tree = xr.open_datatree(sys.argv[1])
loo = az.loo(tree, pointwise=True)
assert loo.pareto_k.shape == (tree["observed_data"].sizes["obs_id"],)
summ = az.summary(tree, var_names=["noise", "layers.2.bias"])
assert "noise" in summ.index
az.plot_ppc_dist(tree, num_samples=10)
az.plot_forest(tree, var_names=["layers.2.bias", "noise"])
az.loo_pit(tree)
assert "pyrobnn" not in sys.modules, "pyrobnn was imported"
print("OK", round(float(loo.elpd), 3))
"""


def test_reopen_with_arviz_alone(svi_tree, tmp_path):
    path = save_datatree(svi_tree, tmp_path / "posterior.nc")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(_REOPEN), str(path)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("OK")


# =========================================================================== diagnostics
def test_diagnose_mcmc_sentences(svi_fit):
    _, d = svi_fit
    t = to_datatree(_mcmc_posterior(svi_fit, offset=0.5), dataset=d)
    dg = diagnose(t)
    assert dg.values["rhat_max"] > 1.01
    rhat_msgs = [w for w in dg.warnings if w.startswith("R-hat of ")]
    assert rhat_msgs and "above 1.01" in rhat_msgs[0] and "run longer chains" in rhat_msgs[0]
    assert any(w.startswith("1 of 120 transitions diverged") for w in dg.warnings)
    assert dg.values["divergences"] == 1
    assert "pareto_k_max" in dg.values and "elpd_loo" in dg.values
    # well-mixed chains (independent draws): no R-hat warning
    good = diagnose(to_datatree(_mcmc_posterior(svi_fit, offset=0.0), dataset=d))
    assert good.values["rhat_max"] < 1.1
    assert not any(w.startswith("R-hat") and float(w.split(" is ")[1].split(",")[0]) < 1.01 for w in good.warnings)


@pytest.mark.parametrize("fraction,problem", [(0.3, False), (0.8, True)])
def test_tree_depth_limit_is_a_caution_unless_most_transitions_hit_it(svi_fit, fraction, problem):
    """A transition cut at the depth limit is still valid MCMC: a caution, counted exactly, until
    more than half of the transitions hit the limit, when it is a problem."""
    _, d = svi_fit
    post = _mcmc_posterior(svi_fit)
    depth = post.sample_stats["tree_depth"]
    n_max = int(fraction * depth.numel())
    depth.view(-1)[:n_max] = 10  # info["max_tree_depth"] = 10; the rest are below 5
    dg = diagnose(to_datatree(post, dataset=d))
    assert dg.values["tree_depth_at_max"] == n_max
    msgs = [m for m in dg.warnings + dg.cautions if "maximum tree depth 10" in m]
    assert len(msgs) == 1 and msgs[0].startswith(f"{n_max} of {depth.numel()} transitions")
    assert (msgs[0] in dg.warnings) is problem


def _symmetric_chains(net, flat: torch.Tensor, chains: int) -> torch.Tensor:
    """(chains, draws, D) packed weights of a 1-H-1 tanh net: chain c holds the draws of
    ``flat`` (draws, D) with the hidden units permuted and (odd c) flipped in sign — the same
    functions, other weights."""
    parts = net.unpack({"weights": flat})
    h = parts["layers.0.bias"].shape[-1]
    out = []
    for c in range(chains):
        perm = torch.roll(torch.arange(h), c)
        sign = -1.0 if c % 2 else 1.0
        p = {"layers.0.weight": sign * parts["layers.0.weight"][:, perm],
             "layers.0.bias": sign * parts["layers.0.bias"][:, perm],
             "layers.2.weight": sign * parts["layers.2.weight"][:, :, perm],
             "layers.2.bias": parts["layers.2.bias"]}
        out.append(torch.cat([p[k].reshape(flat.shape[0], -1) for k in parts], -1))
    return torch.stack(out)


def test_function_space_draws_exported(svi_fit, svi_tree, mcmc_tree):
    post, d = svi_fit
    pred = post.predict(d.x_test, draws=post.draws(S, seed=0))
    mu = svi_tree["predictions"]["mu"]
    assert mu.dims == ("chain", "draw", "pred_id") and mu.shape == (1, S, d.n_test)
    np.testing.assert_allclose(mu.values[0], pred.mean_draws.numpy(), rtol=1e-5, atol=1e-6)
    # the diagnostics are ArviZ's, computed on those draws
    fs = function_space_convergence(mcmc_tree)
    import arviz_stats as azs
    f = mcmc_tree["predictions"]["mu"].values
    np.testing.assert_allclose(fs["rhat"].values, azs.rhat(f, chain_axis=0, draw_axis=1), rtol=1e-10)
    np.testing.assert_allclose(fs["ess_bulk"].values, azs.ess(f, chain_axis=0, draw_axis=1), rtol=1e-10)
    assert function_space_convergence(svi_tree) is not None and "rhat" not in function_space_convergence(svi_tree)


def test_function_space_diagnostics_see_through_weight_symmetries(svi_fit, tmp_path):
    """Chains that are hidden-unit permutations and sign flips of each other describe the same
    functions: the weight-space R-hat is far above 1.01, the function-space R-hat is not, and
    the weight-space problem becomes a note instead of a warning.  Shifting one chain's output
    bias changes its functions: then both warn."""
    post, d = svi_fit
    net = post.model
    flat = post.draws(600, seed=3)
    w = _symmetric_chains(net, flat["weights"][0], chains=4)  # (4, 600, D)
    noise = flat["noise"][0].expand(4, -1).clone()

    def tree_of(weights):
        stats = {"diverging": torch.zeros(4, 600, dtype=torch.bool), "step_size": torch.full((4, 600), 0.05)}
        p = SamplePosterior(model=net, method="nuts", samples={"weights": weights, "noise": noise}, sample_stats=stats,
                      info={"max_tree_depth": 10})
        return to_datatree(p, dataset=d)

    t = tree_of(w)
    dg = diagnose(t)
    print({k: dg.values[k] for k in ("rhat_max", "f_rhat_max", "f_ess_bulk_min")})
    assert dg.values["rhat_max"] > 1.5
    assert dg.values["f_rhat_max"] < 1.01 and dg.values["f_ess_bulk_min"] >= 400
    assert "x = " in dg.values["f_rhat_max_at"]
    assert not any("R-hat" in m or "ESS" in m for m in dg.warnings), dg.warnings
    assert any(n.startswith("The weights did not converge (largest R-hat") for n in dg.notes), dg.notes
    report(t, tmp_path / "sym")
    assert "function_convergence.png" in _files(tmp_path / "sym")
    html = (tmp_path / "sym" / "index.html").read_text()
    assert "largest function-space R-hat" in html and "The weights did not converge" in html

    shifted = w.clone()
    shifted[1, :, -1] += 0.5  # chain 1's output bias
    bad = diagnose(tree_of(shifted))
    assert bad.values["f_rhat_max"] > 1.01
    assert any(m.startswith("Function-space R-hat of the predictive mean is") for m in bad.warnings)
    assert any(m.startswith("R-hat of ") for m in bad.warnings)


def test_mcmc_diagnostics_without_exported_weights(svi_fit, tmp_path):
    """include_weights=False (large networks): the function-space and sampler diagnostics stay."""
    _, d = svi_fit
    t = to_datatree(_mcmc_posterior(svi_fit, offset=0.5), dataset=d, include_weights=False)
    assert not t["posterior"].data_vars
    dg = diagnose(t)
    assert "rhat_max" not in dg.values and dg.values["f_rhat_max"] > 1.01 and dg.values["divergences"] == 1
    assert any(w.startswith("Function-space R-hat") for w in dg.warnings)
    report(t, tmp_path)
    files = _files(tmp_path)
    assert "function_convergence.png" in files and "trace.png" not in files


def test_diagnose_svi(svi_tree):
    dg = diagnose(svi_tree)
    assert "rhat_max" not in dg.values
    assert any("R-hat and ESS do not apply" in n for n in dg.notes)
    assert dg.values["vi_pareto_k"] is not None and np.isfinite(dg.values["elpd_loo"])


def test_predictive_metrics_regression(svi_fit, svi_tree):
    m = predictive_metrics(svi_tree)
    pr = svi_tree["predictions"]
    y = svi_tree["predictions_observed_data"]["obs"].values
    assert m["rmse"] == pytest.approx(float(np.sqrt(np.mean((pr["mean"].values - y) ** 2))), rel=1e-6)
    assert m["nll"] == pytest.approx(-float(pr["lpd"].mean()), rel=1e-6)
    q = pr["quantiles"]
    inside = (y >= q.sel(quantile=0.05).values) & (y <= q.sel(quantile=0.95).values)
    assert m["coverage_90"] == pytest.approx(inside.mean())
    assert 0 <= m["coverage_50"] <= m["coverage_90"] <= 1
    # in / out of the training range [min, max] of the training inputs (toy: [0, 0.5])
    xe, xt = svi_tree["predictions_constant_data"]["x"].values[:, 0], svi_tree["constant_data"]["x"].values[:, 0]
    rng = (xe >= xt.min()) & (xe <= xt.max())
    assert 0 < rng.sum() < rng.size
    width = q.sel(quantile=0.95).values - q.sel(quantile=0.05).values
    assert m["coverage_90_in_range"] == pytest.approx(inside[rng].mean())
    assert m["width_90_in_range"] == pytest.approx(width[rng].mean(), rel=1e-6)
    assert m["width_90_ratio"] == pytest.approx(width[~rng].mean() / width[rng].mean(), rel=1e-6)
    # no training inputs in the tree: no in/out split
    post, d = svi_fit
    m2 = predictive_metrics(to_datatree(post, d.x_test, d.y_test, num_samples=20))
    assert "coverage_90" in m2 and "width_90_ratio" not in m2


# =========================================================================== report / compare
def _files(path):
    return {p.name for p in path.iterdir()}


def test_report_svi(svi_tree, tmp_path):
    index = report(svi_tree, tmp_path / "rep")
    out = tmp_path / "rep"
    assert index == out / "index.html"
    files = _files(out)
    assert {"index.html", "metrics.json", "posterior.nc", "predictive_band.png", "svi_history.png", "ppc.png",
            "loo_pit.png", "uncertainty.png"} <= files
    assert not {f for f in files if f.startswith(".")}
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "svi" and "rmse" in m["predictive"] and isinstance(m["warnings"], list)
    html = index.read_text()
    for name in m["figures"].values():
        assert (out / name).stat().st_size > 1000 and f'src="{name}"' in html
    assert "Held-out predictive performance" in html and "Model spec" in html
    assert (out / "predictive_band.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reopened = xr.open_datatree(out / "posterior.nc")
    assert "predictions" in reopened.children
    reopened.close()


def test_report_mcmc_has_trace_and_rank(svi_fit, tmp_path):
    _, d = svi_fit
    t = to_datatree(_mcmc_posterior(svi_fit, offset=0.5), dataset=d)
    report(t, tmp_path)
    files = _files(tmp_path)
    assert {"trace.png", "rank.png"} <= files and "svi_history.png" not in files
    html = (tmp_path / "index.html").read_text()
    assert "R-hat of layers." in html and "above 1.01" in html


def test_report_classification_has_calibration(tmp_path):
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(50, 2)), dtype=torch.float32)
    y = (x[:, 0] > 0).float()
    net = pb.BNN([pb.Linear(2, 4), "tanh", pb.Linear(4, 1)], pb.Bernoulli())
    post = pb.fit_svi(net, pb.guides.MeanField(net), x[:30], y[:30], epochs=10, progress=False)
    t = to_datatree(post, x[30:], y[30:], train=(x[:30], y[:30]), num_samples=30)
    report(t, tmp_path, write_tree=False)
    files = _files(tmp_path)
    assert "calibration.png" in files and "posterior.nc" not in files and "predictive_band.png" not in files
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert {"accuracy", "ece", "brier", "roc_auc"} <= set(m["predictive"])


def test_compare_svi_and_mcmc(svi_tree, mcmc_tree, tmp_path):
    res = compare({"svi": svi_tree, "nuts": mcmc_tree}, tmp_path / "cmp")
    assert res.reference == "nuts"  # the MCMC fit is the reference by default
    assert res.elpd is not None and set(res.elpd.index) == {"svi", "nuts"}
    assert list(res.metrics.columns) == ["svi", "nuts"]
    regions = set(res.heldout.index.get_level_values("region"))
    assert regions == {"in distribution", "away from the data", "all"}  # test grid reaches past the data
    assert ("in distribution", "RMSE") in res.heldout.index
    assert set(res.epistemic_ratio["svi"]) == {"near", "away", "all"}
    assert res.verdict[0].startswith("svi's held-out log predictive density in distribution ")
    assert "% of nuts's near the data" in res.verdict[0]
    files = _files(tmp_path / "cmp")
    assert {"index.html", "compare.json", "bands.png"} <= files and "forest.png" not in files
    html = (tmp_path / "cmp" / "index.html").read_text()
    assert "elpd_diff" in html and "Held-out ELPD difference against nuts" in html
    assert html.index("Verdict") < html.index("Held-out predictive performance")
    payload = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert payload["verdict"] == res.verdict and payload["reference"] == "nuts"
    assert compare({"a": svi_tree, "b": svi_tree}).path is None  # no out_dir: nothing written
    with pytest.raises(ValueError, match="at least two"):
        compare({"svi": svi_tree})
    with pytest.raises(ValueError, match="reference='x'"):
        compare({"a": svi_tree, "b": svi_tree}, reference="x")


def test_compare_numbers_against_hand_computation(svi_tree, mcmc_tree):
    """Every held-out number with its SE, the paired ELPD difference and the epistemic ratios,
    recomputed here from the trees' pointwise values with plain numpy."""
    res = compare({"svi": svi_tree, "nuts": mcmc_tree})
    y = svi_tree["predictions_observed_data"]["obs"].values
    x = svi_tree["predictions_constant_data"]["x"].values[:, 0]
    xt = svi_tree["constant_data"]["x"].values[:, 0]
    inside = (x >= xt.min()) & (x <= xt.max())
    p_s, p_n = svi_tree["predictions"].to_dataset(), mcmc_tree["predictions"].to_dataset()
    m, n = inside, inside.sum()
    # NLL: mean of −lpd, SE = sd/√n
    nll = -p_s["lpd"].values[m]
    cell = res.heldout.loc[("in distribution", "NLL (mean −log predictive density)")]
    assert cell[("svi", "value")] == pytest.approx(nll.mean()) and cell[("svi", "se")] == pytest.approx(
        np.sqrt(np.sum((nll - nll.mean()) ** 2) / (n - 1)) / np.sqrt(n))
    # RMSE and its delta-method SE
    e2 = (y[m] - p_s["mean"].values[m]) ** 2
    r = np.sqrt(e2.mean())
    cell = res.heldout.loc[("in distribution", "RMSE")]
    assert cell[("svi", "value")] == pytest.approx(r)
    assert cell[("svi", "se")] == pytest.approx(e2.std(ddof=1) / np.sqrt(n) / (2 * r))
    # coverage: binomial SE
    lo, hi = p_n["quantiles"].sel(quantile=0.05).values, p_n["quantiles"].sel(quantile=0.95).values
    hits = [(lo[i] <= y[i] <= hi[i]) for i in range(len(y)) if not inside[i]]
    c = sum(hits) / len(hits)
    cell = res.heldout.loc[("away from the data", "coverage of central 90% intervals")]
    assert cell[("nuts", "value")] == pytest.approx(c) and cell[("nuts", "se")] == pytest.approx(
        (c * (1 - c) / len(hits)) ** 0.5)
    # paired ELPD difference: Σ(a − b), SE = √n · sd(a − b)
    d = p_s["lpd"].values[m] - p_n["lpd"].values[m]
    row = res.elpd_heldout.loc[("svi", "in distribution")]
    assert row["elpd difference"] == pytest.approx(d.sum())
    assert row["SE"] == pytest.approx(np.sqrt(n) * np.sqrt(np.sum((d - d.mean()) ** 2) / (n - 1)))
    # epistemic variance ratios
    e_s, e_n = p_s["epistemic_var"].values, p_n["epistemic_var"].values
    assert res.epistemic_ratio["svi"]["near"] == pytest.approx(e_s[m].mean() / e_n[m].mean())
    assert res.epistemic_ratio["svi"]["away"] == pytest.approx(e_s[~m].mean() / e_n[~m].mean())
    # cost: MCMC over its smallest function-space bulk ESS, SVI over its independent draws
    assert res.cost.loc["seconds per effective draw", "svi"] == pytest.approx(
        float(svi_tree.attrs["fit_seconds"]) / int(svi_tree.attrs["num_draws"]))


def test_standard_error_formulas_small_cases():
    from pyrobnn.diagnostics.compare import elpd_difference, proportion_and_se, rmse_and_se

    # y − mean = (1, −1, 3): e² = (1, 1, 9), MSE = 11/3, sd(e²) = √(64/3), SE(MSE) = sd/√3
    r, se = rmse_and_se([1.0, 0.0, 3.0], [0.0, 1.0, 0.0])
    assert r == pytest.approx(np.sqrt(11 / 3)) and se == pytest.approx((np.sqrt(64 / 3) / np.sqrt(3)) / (2 * r))
    assert proportion_and_se([1, 1, 1, 0]) == pytest.approx((0.75, np.sqrt(0.75 * 0.25 / 4)))
    # differences (1, 2, 3): sum 6, sd 1, SE = √3
    assert elpd_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx((6.0, np.sqrt(3)))


def test_large_inputs_are_not_stored(svi_fit, monkeypatch):
    import pyrobnn.diagnostics.export as ex

    post, d = svi_fit
    monkeypatch.setattr(ex, "MAX_INPUT_VALUES", 10)
    t = to_datatree(post, d.x_test, d.y_test, num_samples=5)
    assert "x" not in t["predictions_constant_data"] and "not stored" in t["predictions_constant_data"].attrs["note"]
    assert t["predictions_constant_data"].sizes["pred_id"] == d.n_test


@pytest.mark.cuda
def test_export_and_report_on_cuda(tmp_path):
    d = _toy()
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(0.1, learned=True))
    post = pb.fit_svi(net, pb.guides.MeanField(net), d.x_train.cuda(), d.y_train.cuda(), epochs=5, progress=False)
    assert post.model.device.type == "cuda"
    t = to_datatree(post, dataset=d, num_samples=20, prior_samples=5)
    assert t["log_likelihood"]["obs"].shape == (1, 20, d.n_train) and "log_p" in t["sample_stats"]
    report(t, tmp_path)
    assert (tmp_path / "index.html").exists()


# =========================================================================== verdict
def test_verdict_calibration_follows_in_distribution_coverage(svi_tree):
    from pyrobnn.diagnostics.report import COVERAGE_90_RANGE, verdict

    pm, dg = predictive_metrics(svi_tree), diagnose(svi_tree)
    assert pm["n_in_range"] + (pm["n"] - pm["n_in_range"]) == pm["n"] and 0 < pm["n_in_range"] < pm["n"]
    v = verdict(svi_tree, pm, dg)
    lo, hi = COVERAGE_90_RANGE
    assert v.calibrated == (lo <= pm["coverage_90_in_range"] <= hi)
    problem_lines = [t for s, t in v.lines if s == "problem"]
    assert all(p in problem_lines for p in v.problems if p not in dg.warnings)
    # the same tree with an over-confident and an under-confident coverage in distribution
    for cov, word in ((0.5, "over-confident"), (0.995, "under-confident")):
        bad = verdict(svi_tree, {**pm, "coverage_90_in_range": cov}, dg)
        assert bad.calibrated is False and any(word in p for p in bad.problems)
        assert bad.headline.startswith("Not ready to use")
    # away from the data is reported apart, with the widening of the intervals
    away = [t for _, t in v.lines if t.startswith("Away from the data")]
    assert len(away) == 1 and f"{pm['width_90_ratio']:.2g}×" in away[0]


def test_verdict_mcmc_not_converged(svi_fit):
    from pyrobnn.diagnostics.report import verdict

    _, d = svi_fit
    t = to_datatree(_mcmc_posterior(svi_fit, offset=0.5), dataset=d)
    v = verdict(t)
    assert v.converged is False and v.lines[0][0] == "problem" and v.problems


def test_report_leads_with_verdict(svi_tree, tmp_path):
    report(svi_tree, tmp_path, write_tree=False)
    html = (tmp_path / "index.html").read_text()
    order = [html.index(h) for h in ("<h2>Verdict</h2>", "<h2>Held-out predictive performance</h2>",
                                     "<h2>Problems and cautions</h2>", "<h2>Diagnostics</h2>", "<h2>Fit</h2>")]
    assert order == sorted(order)
    assert "model spec <b>toy</b>" in html and "In distribution" in html and "Away from the data" in html
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["verdict"]["lines"] and m["verdict"]["problems"] == m["warnings"] + [
        p for p in m["verdict"]["problems"] if p.startswith("Not calibrated")]


def test_loo_with_a_saturated_observation():
    """An observation whose log-likelihood is the same in every draw (a probability of exactly 1
    in float32) defeats ArviZ's PSIS; pyrobnn's loo gives it uniform weights, its exact
    leave-one-out density and k̂ = 0, and every other observation exactly ArviZ's numbers."""
    import arviz as az

    from pyrobnn.diagnostics.metrics import loo

    rng = np.random.default_rng(0)
    ll = rng.normal(-1.0, 0.3, size=(2, 200, 6))
    ll[..., 2] = 0.0
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"w": (("chain", "draw"), rng.normal(size=(2, 200)))}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
    })
    with pytest.raises(ValueError, match="All tail values are the same"):
        az.loo(tree, pointwise=True)
    res = loo(tree)
    rest = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset(),
                                  "log_likelihood": tree["log_likelihood"].to_dataset().isel(obs=[0, 1, 3, 4, 5])})
    ref = az.loo(rest, pointwise=True)
    assert res.elpd_i.values[2] == 0.0 and res.pareto_k.values[2] == 0.0
    np.testing.assert_allclose(np.delete(res.elpd_i.values, 2), ref.elpd_i.values, rtol=1e-12)
    np.testing.assert_allclose(np.delete(res.pareto_k.values, 2), ref.pareto_k.values, rtol=1e-12)
    assert res.elpd == pytest.approx(ref.elpd)
