"""Runs as library objects: Posterior.save(path) and pyrobnn.load(path) for every kind of
posterior, bitwise-equal predictions after reload, and refusal of damaged or foreign files."""

from __future__ import annotations

import json
import math

import pyro
import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.guides import make_autoguide
from pyrobnn.utils.manifest import IntegrityError


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 2 - 1
    y = torch.sin(3 * x).squeeze(-1) + 0.1 * torch.randn(n, generator=g)
    return x, y


def _net(**kw):
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 8, bayesian=False), "relu", pb.Linear(8, 1)],
                 pb.Gaussian(scale=0.1, learned=True), prior=pb.priors.ScaleMixture(0.5, 1.0, math.exp(-6)), **kw)
    net.set_prior(pb.priors.AdaptiveNormal(0.0, 0.5), layers=[4])
    return net


def _same_prediction(a, b, x):
    pa, pb_ = a.predict(x, num_samples=50, seed=3), b.predict(x, num_samples=50, seed=3)
    assert torch.equal(pa.mean, pb_.mean) and torch.equal(pa.epistemic_var, pb_.epistemic_var)
    assert torch.equal(a.log_likelihood(x, torch.zeros(len(x)), seed=4), b.log_likelihood(x, torch.zeros(len(x)), seed=4))


@pytest.mark.parametrize("guide_kind", ["MeanField", "ARD", "Delta", "WeightNoise", "AutoNormal",
                                        "AutoLowRankMultivariateNormal"])
def test_svi_round_trip_predicts_bitwise_equal(tmp_path, guide_kind):
    x, y = _data()
    net = _net()
    if guide_kind.startswith("Auto"):
        guide = make_autoguide(guide_kind, net, init_scale=0.05, **({"rank": 2} if "LowRank" in guide_kind else {}))
    else:
        guide = getattr(pb.guides, guide_kind)(net)
    post = pb.fit_svi(net, guide, x, y, epochs=3, batch_size=16, progress=False, seed=1)
    path = post.save(tmp_path / "svi")
    loaded = pb.load(path)
    assert type(loaded) is pb.GuidePosterior and type(loaded.guide) is type(guide)
    assert loaded.history == post.history and loaded.info["seed"] == 1
    _same_prediction(post, loaded, torch.linspace(-2, 2, 25).unsqueeze(-1))


def test_nuts_round_trip_predicts_bitwise_equal(tmp_path):
    x, y = _data(20)
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.3))
    post = pb.fit_nuts(net, x, y, num_samples=10, warmup=10, chains=2, max_tree_depth=3, jit=False, progress=False)
    loaded = pb.load(post.save(tmp_path / "nuts"))
    assert type(loaded) is pb.SamplePosterior and loaded.method == "nuts"
    for k in post.samples:
        assert torch.equal(post.samples[k], loaded.samples[k])
    for k in post.sample_stats:
        assert torch.equal(torch.as_tensor(post.sample_stats[k]), loaded.sample_stats[k])
    assert torch.equal(post.info["inverse_mass_matrix"], loaded.info["inverse_mass_matrix"])
    _same_prediction(post, loaded, torch.linspace(-2, 2, 25).unsqueeze(-1))


def test_the_network_is_described_as_plain_data_and_rebuilt(tmp_path):
    net = _net()
    cfg = json.loads(json.dumps(net.config()))  # plain JSON
    assert [g["layers"] for g in cfg["priors"]] == [[0], [4]]
    rebuilt = pb.BNN.from_config(cfg)
    rebuilt.load_state_dict(net.state_dict())
    assert repr(rebuilt) == repr(net)
    assert rebuilt.prior_of(4) is not rebuilt.prior_of(0)


def test_float64_posteriors_stay_float64(tmp_path):
    x, y = _data()
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    post = pb.fit_svi(net, pb.guides.MeanField(net), x.double(), y.double(), epochs=2, progress=False)
    loaded = pb.load(post.save(tmp_path / "p"))
    assert loaded.model.dtype == torch.float64
    _same_prediction(post, loaded, torch.linspace(-1, 1, 5, dtype=torch.float64).unsqueeze(-1))


def test_save_never_replaces_what_it_did_not_write(tmp_path):
    x, y = _data()
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    post = pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=1, progress=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        post.save(mine)
    with pytest.raises(ValueError, match="not a directory written by pyrobnn"):
        post.save(mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    path = post.save(tmp_path / "run")
    post.save(path, overwrite=True)  # a saved posterior may be replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "run"]  # no temporary left behind


def test_damaged_or_newer_files_are_refused(tmp_path):
    x, y = _data()
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    path = pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=1, progress=False).save(tmp_path / "run")
    data = bytearray((path / "guide.pt").read_bytes())
    data[-30] ^= 0xFF
    (path / "guide.pt").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="guide.pt"):
        pb.load(path)
    doc = json.loads((path / "posterior.json").read_text())
    doc["format_version"] = 7
    (path / "posterior.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="posterior.json"):
        pb.load(path)
    from pyrobnn.utils.manifest import write_manifest

    write_manifest(path)  # consistent digests: now the version itself is refused
    with pytest.raises(IntegrityError, match="format_version 7"):
        pb.load(path)


def test_a_users_own_layer_cannot_be_saved_and_says_why(tmp_path):
    x, y = _data()
    net = pb.BNN([pb.Linear(1, 4), torch.nn.Tanh(), pb.Linear(4, 1)], pb.Gaussian(scale=0.1))
    post = pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"layer 1 \(Tanh\) is not a pyrobnn layer"):
        post.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_autoguides_made_here_keep_their_own_parameters():
    """make_autoguide names each guide apart (Pyro's private ``_pyro_name``): two guides on one
    model must not share the global param store's entries."""
    pyro.clear_param_store()
    net = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(scale=0.1))
    x, y = _data(8)
    a, b = make_autoguide("AutoNormal", net), make_autoguide("AutoNormal", net)
    a(x, y), b(x, y)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(1.0)
    assert all(not torch.equal(pa, pb_) for pa, pb_ in zip(a.parameters(), b.parameters()))
    assert len({name for name, _ in pyro.get_param_store().named_parameters()}) >= 2


# ------------------------------------------------------------------ export only converts
def test_export_converts_an_evaluation_made_by_the_posterior():
    from pyrobnn.diagnostics import to_datatree

    x, y = _data()
    net = _net()
    post = pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=2, progress=False)
    xe = torch.linspace(-1, 1, 7).unsqueeze(-1)
    ev = post.evaluation(xe, None, train=(x, y), num_samples=40, seed=5)
    a = to_datatree(ev)
    b = to_datatree(post, xe, None, train=(x, y), num_samples=40, seed=5)
    for group in ("posterior", "predictions", "log_likelihood", "posterior_predictive"):
        for var in a[group].data_vars:
            assert (a[group][var].values == b[group][var].values).all(), (group, var)
    with pytest.raises(ValueError, match="num_samples, seed: given with an Evaluation"):
        to_datatree(ev, num_samples=10, seed=1)


def test_the_export_module_draws_nothing_itself():
    """diagnostics/export.py converts what Posterior.evaluation yields: it calls none of the
    methods that draw from a posterior or a prior, or that run the network."""
    import ast
    import inspect

    from pyrobnn.diagnostics import export

    drawing = {"draws", "draw_chunks", "evaluate", "predict", "log_likelihood", "sample_posterior", "sample",
               "rsample", "predictive_distribution", "quantiles", "interval", "sample_y"}
    calls = [node.func.attr for node in ast.walk(ast.parse(inspect.getsource(export)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    assert not drawing & set(calls), drawing & set(calls)
    # it iterates the evaluation the posterior made (and asks it for the prior draws)
    assert {"chunks", "evaluation", "prior_predictive"} <= set(calls)
