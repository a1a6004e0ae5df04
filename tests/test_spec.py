"""Tests for pyrobnn.spec: the shipped spec files, overrides, validation messages, builders."""

from __future__ import annotations

import copy
import inspect
import math
import os
import tomllib
from pathlib import Path

import pytest
import torch

import pyrobnn as pb
from pyrobnn.data import DATA_ROOT_ENV, SKLEARN_DATASETS, UCI_DATASETS, sklearn_dataset, toy_curve
from pyrobnn.spec import (
    InferenceSpec,
    ModelSpec,
    SpecError,
    build_data,
    build_guide,
    build_model,
    load_inference_spec,
    load_model_spec,
    mcmc_kwargs,
    parse_value,
    svi_kwargs,
    to_toml,
)
from pyrobnn.spec.datasets import data_facts

REPO = Path(__file__).resolve().parents[1]
MODEL_FILES = sorted((REPO / "models").glob("*.toml"))
INFERENCE_FILES = sorted((REPO / "inference").glob("*.toml"))
FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    """Specs name data paths relative to the repository root."""
    monkeypatch.chdir(REPO)


def _data_available(spec: ModelSpec) -> bool:
    if spec.data.source == "fashion_mnist":
        return Path(spec.data.options.get("root", FMNIST_ROOT)).is_dir()
    if spec.data.source == "uci":
        root = spec.data.options.get("root")
        env = os.environ.get(DATA_ROOT_ENV)
        return (root is not None and Path(root).is_dir()) or (env is not None and (Path(env) / "uci").is_dir())
    return True


# ============================================================================ shipped files

def test_the_required_files_are_shipped():
    names = {p.name for p in MODEL_FILES} | {p.name for p in INFERENCE_FILES}
    for required in ("toy_regression.toml", "uci_regression.toml", "breast_cancer.toml", "digits_classifier.toml",
                     "fashion_mnist.toml", "svi_meanfield.toml", "svi_ard.toml", "map.toml", "nuts.toml"):
        assert required in names


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_model_file_loads_and_builds(path):
    rel = path.relative_to(REPO)
    spec = load_model_spec(rel)
    assert spec.path == str(rel) and spec.source_text == path.read_text() and spec.overrides == ()
    assert spec.name == path.stem
    net = build_model(spec)
    assert isinstance(net, pb.BNN) and net.spec is spec
    assert net.likelihood.num_outputs() == spec.likelihood.num_outputs
    # the network runs on inputs of the shape the data has (a spec without [data], such as the bandits',
    # takes what its first layer reads), and gives the likelihood's outputs
    facts = spec.data.facts if spec.data is not None else None
    x = torch.zeros(3, *(facts.input_shape if facts is not None else spec.layers[0].size[:1]))
    out = net.network(x, net.init_values())
    assert out.shape == (3, spec.likelihood.num_outputs)
    guide = build_guide("svi_meanfield", net)
    assert isinstance(guide, pb.guides.MeanField)
    if spec.data is None:
        return
    if not _data_available(spec):
        pytest.skip(f"data for {rel} not found")
    small = ["data.n_train=64", "data.n_test=16"] if spec.data.source == "fashion_mnist" else []
    ds = build_data(load_model_spec(rel, small))
    assert ds.task == spec.likelihood.task
    assert tuple(ds.input_shape) == facts.input_shape
    if spec.likelihood.family == "categorical":
        assert ds.num_classes == spec.likelihood.num_classes


@pytest.mark.parametrize("path", INFERENCE_FILES, ids=lambda p: p.name)
def test_inference_file_loads_builds_and_fits(path):
    rel = path.relative_to(REPO)
    spec = load_inference_spec(rel)
    assert spec.path == str(rel) and spec.name == path.stem
    kw = svi_kwargs(spec)
    mk = mcmc_kwargs(spec)
    assert mk["kernel"] == ("hmc" if spec.method == "hmc" else "nuts")
    net = build_model("models/toy_regression.toml")
    guide = build_guide(spec, net)
    ds = toy_curve(n_train=20, n_test=0)
    inspect.signature(pb.fit_svi).bind(net, guide, ds.x_train, ds.y_train, **kw)
    post = pb.fit_svi(net, guide, ds.x_train, ds.y_train, **{**kw, "epochs": 1}, progress=False)
    assert len(post.history) == 1 and math.isfinite(post.history[0]["loss"])


def test_round_trip_toy_fit_two_epochs():
    spec = load_model_spec("models/toy_regression.toml")
    net = build_model(spec)
    ds = build_data(spec)
    ispec = load_inference_spec("inference/svi_meanfield.toml", ["svi.epochs=2"])
    post = pb.fit_svi(net, build_guide(ispec, net), ds.x_train, ds.y_train, **svi_kwargs(ispec), progress=False)
    assert len(post.history) == 2
    assert all(math.isfinite(h["loss"]) for h in post.history)


def test_from_spec_and_bare_names():
    net = pb.BNN.from_spec("toy_regression", ["prior.scale=0.5"])
    assert net.prior_of(0).hyperparameters()["scale"] == pytest.approx(0.5)
    assert load_inference_spec("map").guide.family == "delta"


def test_known_data_facts_match_the_loaders():
    for name, task in SKLEARN_DATASETS.items():
        facts = data_facts("sklearn", {"name": name})
        ds = sklearn_dataset(name)
        assert (facts.task, facts.input_shape) == (ds.task, tuple(ds.input_shape)) == (task, facts.input_shape)
        assert facts.num_classes == ds.num_classes
    assert data_facts("toy", {}).input_shape == tuple(toy_curve(n_train=2, n_test=0).input_shape)
    env = os.environ.get(DATA_ROOT_ENV)
    uci_root = Path(env) / "uci" if env else REPO.parent / "shared" / "data" / "uci"
    if not uci_root.is_dir():
        pytest.skip(f"UCI data not found at {uci_root}")
    for name in UCI_DATASETS:
        n_features = len((uci_root / name / "index_features.txt").read_text().split())
        assert data_facts("uci", {"name": name}).input_shape == (n_features,), name


# ============================================================================ builders

TOY = {
    "model": {"layers": [{"linear": [1, 8]}, "tanh", {"linear": [8, 8]}, "tanh", {"linear": [8, 1]}]},
    "likelihood": {"family": "gaussian", "scale": 0.1},
    "data": {"source": "toy", "n_train": 20},
}


def _with(base, **tables):
    d = copy.deepcopy(base)
    d.update(tables)
    return d


def test_prior_overrides_and_per_layer():
    spec = load_model_spec(_with(TOY, prior={
        "family": "adaptive_normal", "per_layer": True,
        "override": [{"layers": [-1], "family": "normal", "scale": 0.1}],
    }))
    assert spec.prior.overrides[0].layers == (4,)
    net = build_model(spec)
    assert isinstance(net.prior_of(4), pb.priors.Normal) and not isinstance(net.prior_of(4), pb.priors.AdaptiveNormal)
    assert net.prior_of(4).hyperparameters()["scale"] == pytest.approx(0.1)
    assert isinstance(net.prior_of(0), pb.priors.AdaptiveNormal)
    assert net.prior_of(0) is not net.prior_of(2)  # per layer


def test_every_prior_family_and_guide_family_builds():
    from pyrobnn.spec.schema import GUIDE_FAMILIES, PRIOR_FAMILIES

    ds = toy_curve(n_train=16, n_test=0)
    for family in PRIOR_FAMILIES:
        net = build_model(_with(TOY, prior={"family": family}))
        assert type(net.prior_of(0)).__name__.lower().replace("adaptive", "adaptive_") \
            .replace("scalemixture", "scale_mixture") == family
    for family in GUIDE_FAMILIES:
        net = build_model(TOY)
        guide = build_guide({"guide": family, "svi": {"epochs": 1}}, net)
        post = pb.fit_svi(net, guide, ds.x_train, ds.y_train, **svi_kwargs({"svi": {"epochs": 1}}), progress=False)
        assert math.isfinite(post.history[0]["loss"]), family


def test_autoguide_starts_at_the_model_init_values():
    net = build_model(TOY)
    guide = build_guide({"guide": {"family": "auto_normal", "init_scale": 1e-3}}, net)
    torch.manual_seed(0)
    expected = net.init_values()["weights"]
    torch.manual_seed(0)
    ds = toy_curve(n_train=4, n_test=0)
    guide(ds.x_train, ds.y_train)
    assert torch.allclose(guide.median()["weights"], expected)


def test_svi_and_mcmc_kwargs():
    spec = load_inference_spec("inference/svi_meanfield.toml", ["inference.dtype=float64", "svi.lr=0.5"])
    kw = svi_kwargs(spec)
    assert kw["dtype"] is torch.float64 and kw["lr"] == 0.5 and kw["seed"] == 0 and kw["device"] == "auto"
    mk = mcmc_kwargs(load_inference_spec("inference/hmc.toml"))
    assert mk["kernel"] == "hmc" and mk["step_size"] == 0.01 and mk["num_steps"] == 20
    mk = mcmc_kwargs(load_inference_spec("inference/nuts.toml", ["nuts.frozen.scale=1.0", "nuts.frozen.4.loc=0"]))
    assert mk["kernel"] == "nuts" and "num_steps" not in mk and mk["max_tree_depth"] == 12
    assert mk["frozen"] == {"scale": 1.0, 4: {"loc": 0}}
    mk = mcmc_kwargs(load_inference_spec("inference/nuts.toml", [
        'nuts.hyperpriors.scale.family="half_cauchy"', "nuts.hyperpriors.scale.scale=2.0",
        'nuts.hyperpriors.4.loc.family="normal"', "nuts.hyperpriors.4.loc.loc=0", "nuts.hyperpriors.4.loc.scale=3"]))
    import pyro.distributions as dist

    hs, hl = mk["hyperpriors"]["scale"], mk["hyperpriors"][4]["loc"]
    assert isinstance(hs, dist.HalfCauchy) and float(hs.scale) == 2.0
    assert isinstance(hl, dist.Normal) and (float(hl.loc), float(hl.scale)) == (0.0, 3.0)
    from pyrobnn.infer.mcmc import fit_nuts

    for path in INFERENCE_FILES:
        inspect.signature(fit_nuts).bind(None, None, None, **mcmc_kwargs(load_inference_spec(path)), progress=False)


def test_nuts_from_spec_runs():
    """A tiny NUTS run with the spec's arguments (frozen hyperparameters applied)."""
    from pyrobnn.infer.mcmc import fit_nuts

    net = build_model(_with(TOY, prior={"family": "adaptive_normal"}))
    ispec = load_inference_spec("inference/nuts.toml", ["nuts.num_samples=3", "nuts.warmup=3", "nuts.chains=1",
                                                        "nuts.jit=false", "nuts.max_tree_depth=3",
                                                        "nuts.frozen.scale=0.5"])
    ds = toy_curve(n_train=10, n_test=0)
    post = fit_nuts(net, ds.x_train, ds.y_train, **mcmc_kwargs(ispec), progress=False)
    assert post.samples["weights"].shape == (1, 3, net.num_weights)
    assert net.prior_of(0).hyperparameters()["scale"] == pytest.approx(0.5)
    # the same prior's scale sampled under a hyperprior instead
    ispec = load_inference_spec(ispec, ["nuts.frozen={}", 'nuts.hyperpriors.scale.family="log_normal"',
                                        "nuts.hyperpriors.scale.loc=0", "nuts.hyperpriors.scale.scale=0.5"])
    post = fit_nuts(net, ds.x_train, ds.y_train, **mcmc_kwargs(ispec), progress=False)
    assert post.samples["hyper.scale"].shape == (1, 3) and (post.samples["hyper.scale"] > 0).all()


def test_uci_root_falls_back_to_the_data_env_var(monkeypatch, tmp_path):
    shared = Path(os.environ.get(DATA_ROOT_ENV) or REPO.parent / "shared" / "data")
    if not (shared / "uci" / "bostonHousing").is_dir():
        pytest.skip(f"UCI data not found under {shared}")
    monkeypatch.chdir(tmp_path)  # ../shared/data/uci does not exist from here
    monkeypatch.setenv(DATA_ROOT_ENV, str(shared))
    ds = build_data(REPO / "models" / "uci_regression.toml")
    assert ds.name == "bostonHousing" and tuple(ds.input_shape) == (13,)
    monkeypatch.delenv(DATA_ROOT_ENV)
    with pytest.raises(FileNotFoundError, match="shared/data/uci"):
        build_data(REPO / "models" / "uci_regression.toml")


def test_loaded_data_are_checked_against_the_model(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 5},{'xyz'[i % 3]}\n" for i in range(30)))
    spec = {"model": {"layers": [{"linear": [2, 4]}, "relu", {"linear": [4, 1]}]},
            "likelihood": {"family": "gaussian"}, "data": {"source": "csv", "path": str(csv), "target": "label"}}
    with pytest.raises(SpecError, match=r'likelihood.family = "gaussian": expected "categorical" for multiclass'):
        build_data(spec)
    spec["likelihood"] = {"family": "categorical", "num_classes": 3}
    spec["model"]["layers"][-1] = {"linear": [4, 3]}
    spec["model"]["layers"][0] = {"linear": [5, 4]}
    with pytest.raises(SpecError, match=r'model.layers\[0\].linear = \[5, 4\]: expected in_features = 2'):
        build_data(spec)
    bad_range = _model(data={"source": "toy", "x_range": [1.0, 0.0]})
    with pytest.raises(SpecError, match=r'<dict>: data = \{ source = "toy", x_range = \[1.0, 0.0\] \}: '
                                        r'expected arguments the "toy" loader accepts: x_range=\(1.0, 0.0\) is not'):
        build_data(bad_range)
    spec["data"]["n_rows"] = 3
    with pytest.raises(SpecError, match=r'data.n_rows = 3: unknown key'):
        load_model_spec(spec)


# ============================================================================ overrides

def test_overrides_change_values():
    spec = load_inference_spec("inference/svi_ard.toml", ["guide.init_scale=1e-3", "svi.epochs=5", "svi.kl=blundell"])
    assert spec.guide.init_scale == 1e-3 and spec.svi.epochs == 5 and spec.svi.kl == "blundell"
    assert spec.overrides == ("guide.init_scale=1e-3", "svi.epochs=5", "svi.kl=blundell")
    assert spec.source_text.startswith("# inference/svi_ard.toml with overrides: guide.init_scale=1e-3")
    # the recorded text reproduces the spec
    assert load_inference_spec(tomllib.loads(spec.source_text)) == spec

    m = load_model_spec("models/toy_regression.toml", ["prior.family=laplace", "model.layers[0].linear=[1,20]",
                                                       "model.layers[1]=relu", "data.n_train=7"])
    assert m.prior.family == "laplace" and m.layers[1].activation == "relu" and m.data.options["n_train"] == 7
    m2 = load_model_spec(m, ["prior=scale_mixture"])  # a whole table, by its family's name
    assert m2.prior.family == "scale_mixture" and m2.prior.params["pi"] == 0.5
    assert m2.overrides[-1] == "prior=scale_mixture" and m2.path == "models/toy_regression.toml"
    m3 = load_model_spec("models/toy_regression.toml", ['prior={family="scale_mixture", pi=0.25}'])
    assert m3.prior.params["pi"] == 0.25
    # MCMC settings can be overridden under any of their names
    h = load_inference_spec("inference/hmc.toml", ["nuts.warmup=10", "mcmc.chains=2", "inference.method=nuts"])
    assert (h.mcmc.warmup, h.mcmc.chains, h.method) == (10, 2, "nuts")
    # a dict input is not modified and gets a TOML rendering
    d = copy.deepcopy(TOY)
    s = load_model_spec(d, {"prior.scale": 2.0})
    assert d == TOY and s.prior.params["scale"] == 2.0
    assert load_model_spec(tomllib.loads(s.source_text)) == s


def test_override_values_parse_as_toml():
    assert parse_value("5") == 5 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("[1, 20]") == [1, 20] and parse_value('"x"') == "x" and parse_value("laplace") == "laplace"
    assert parse_value("{ a = 1 }") == {"a": 1} and parse_value("1\nb = 2") == "1\nb = 2"


@pytest.mark.parametrize("override, expected", [
    ("svi.epochs=0", 'svi.epochs = 0: expected an integer >= 1 (set by override \'svi.epochs=0\')'),
    ("svi.epochs=abc", 'svi.epochs = "abc": expected an integer >= 1'),
    ("svi.epochs", "override 'svi.epochs': expected key.path=value"),
    ("svi..epochs=3", "expected a key path such as svi.epochs"),
    ("svii.epochs=3", 'svii = { epochs = 3 }: unknown key (did you mean "svi"?)'),
    ("guide.family=delta", 'guide.init_scale = 0.001: not a key of the "delta" guide'),
    ("inference.method=mcmc", 'inference.method = "mcmc": expected one of "svi", "nuts", "hmc"'),
    ("svi.epochs.x=1", "expected a table to set 'x' in"),
])
def test_bad_inference_overrides(override, expected):
    with pytest.raises(SpecError) as e:
        load_inference_spec("inference/svi_meanfield.toml", [override])
    assert str(e.value).startswith("inference/svi_meanfield.toml")
    assert expected in str(e.value)


def test_override_that_breaks_the_model_is_reported():
    with pytest.raises(SpecError) as e:
        load_model_spec("models/toy_regression.toml", ["model.layers[0].linear=[1,30]"])
    msg = str(e.value)
    assert "models/toy_regression.toml: model.layers[2].linear = [20, 1]: expected in_features = 30" in msg
    with pytest.raises(SpecError, match=r"index 9 is out of range for a list of 3"):
        load_model_spec("models/toy_regression.toml", ["model.layers[9].linear=[1,20]"])


# ============================================================================ malformed specs

LAYERS = '[{ linear = [1, 8] }, "tanh", { linear = [8, 1] }]'
MODEL_HEAD = f"[model]\nlayers = {LAYERS}\n"
GAUSS = '[likelihood]\nfamily = "gaussian"\nscale = 0.1\n[data]\nsource = "toy"\n'


def _model(**tables):
    return _with(TOY, **tables)


MALFORMED_MODELS = [
    # (TOML text or dict, expected substrings)
    (MODEL_HEAD + GAUSS + "[prior]\nscale = -1.0\n", ["prior.scale = -1.0: expected a number > 0"]),
    (MODEL_HEAD + GAUSS + "[prior]\nscale = 0\n", ["prior.scale = 0: expected a number > 0"]),
    (MODEL_HEAD + GAUSS + '[prior]\nfamily = "gausian"\n',
     ['prior.family = "gausian": expected one of "normal", "laplace"']),
    (MODEL_HEAD + GAUSS + '[prior]\nfamily = "scale_mixture"\npi = 1.5\n',
     ["prior.pi = 1.5: expected a number in (0, 1)"]),
    (MODEL_HEAD + GAUSS + '[prior]\nfamily = "scale_mixture"\nsigma1 = 0.01\nsigma2 = 0.1\n',
     ["prior.sigma2 = 0.1: expected a number < prior.sigma1 = 0.01"]),
    (MODEL_HEAD + GAUSS + "[prior]\nscael = 1.0\n", ['prior.scael = 1.0: unknown key (did you mean "scale"?)']),
    (MODEL_HEAD + GAUSS + "[prior]\npi = 0.5\n", ['prior.pi = 0.5: not a key of the "normal" prior']),
    (MODEL_HEAD + GAUSS + '[prior]\nfamily = "ard"\ninit_scale = "big"\n',
     ['prior.init_scale = "big": expected a number > 0']),
    (MODEL_HEAD + GAUSS + '[prior]\nper_layer = "yes"\n', ['prior.per_layer = "yes": expected true or false']),
    (f"[modle]\nlayers = {LAYERS}\n" + GAUSS, ['modle = { layers = ', 'unknown key (did you mean "model"?)']),
    (GAUSS, ["model: missing; expected a [model] table"]),
    ("[model]\nlayers = []\n" + GAUSS, ["model.layers = []: expected a non-empty list of layers"]),
    ('[model]\nlayers = [{ linear = [1, 8] }, "tahn", { linear = [8, 1] }]\n' + GAUSS,
     ['model.layers[1] = "tahn": expected an activation', '(did you mean "tanh"?)']),
    ('[model]\nlayers = [{ linear = [1, 0] }]\n' + GAUSS,
     ["model.layers[0].linear = [1, 0]: expected [in_features, out_features]: 2 integers >= 1"]),
    ('[model]\nlayers = [{ linear = [1, 8] }, "relu", { linear = [9, 1] }]\n' + GAUSS,
     ["model.layers[2].linear = [9, 1]: expected in_features = 8 to match the output of model.layers[0]"]),
    ('[model]\nlayers = [{ linear = [3, 8] }, "relu", { linear = [8, 1] }]\n' + GAUSS,
     ["model.layers[0].linear = [3, 8]: expected in_features = 1 to match the toy data"]),
    ('[model]\nlayers = [{ linear = [1, 8], bayesian = false }]\n' + GAUSS,
     ["model.layers = [{ linear = [1, 8], bayesian = false }]: expected at least one Bayesian layer"]),
    ('[model]\nlayers = [{ lienar = [1, 8] }]\n' + GAUSS,
     ['model.layers[0] = { lienar = [1, 8] }: expected a layer table with exactly one of linear, conv2d '
      '(did you mean "linear"?)']),
    ('[model]\nlayers = [{ linear = [1, 1], bais = false }]\n' + GAUSS,
     ['model.layers[0].bais = false: unknown key (did you mean "bias"?)']),
    (MODEL_HEAD + 'site_layout = "flat"\n' + GAUSS,
     ['model.site_layout = "flat": expected one of "packed", "layer", "tensor"']),
    (_model(likelihood={"family": "categorical", "num_classes": 3}),
     ['<dict>: likelihood.family = "categorical": expected "gaussian" for regression data (the toy data is a '
      'regression task)']),
    (_model(likelihood={"family": "gaussian", "noise": "heteroscedastic"}),
     ["model.layers[4].linear = [8, 1]: expected out_features = 2 for a gaussian likelihood with heteroscedastic"]),
    (_model(likelihood={"family": "gaussian", "noise": "learn"}),
     ['likelihood.noise = "learn": expected one of "fixed", "learned", "heteroscedastic" (did you mean "learned"?)']),
    (_model(likelihood={"family": "poisson"}), ['likelihood.family = "poisson": expected one of "gaussian"']),
    (_model(likelihood={"family": "gaussian", "num_classes": 3}),
     ['likelihood.num_classes = 3: not a key of the "gaussian" likelihood']),
    (_model(likelihood={"family": "gaussian", "scale": math.inf}), ["likelihood.scale = inf: expected a number > 0"]),
    ({"model": TOY["model"]}, ["likelihood.family: missing; expected one of"]),
    ({"model": {"layers": [{"linear": [64, 10]}]}, "likelihood": {"family": "bernoulli"},
      "data": {"source": "sklearn", "name": "digits"}},
     ['likelihood.family = "bernoulli": expected "categorical" for multiclass data (the sklearn dataset "digits"']),
    ({"model": {"layers": [{"linear": [30, 1]}]}, "likelihood": "categorical",
      "data": {"source": "sklearn", "name": "breast_cancer"}},
     ['likelihood.family = "categorical": expected "bernoulli" for binary data']),
    ({"model": {"layers": [{"linear": [64, 5]}]}, "likelihood": "categorical",
      "data": {"source": "sklearn", "name": "digits"}},
     ["model.layers[0].linear = [64, 5]: expected out_features = 10 for a categorical likelihood over 10 classes"]),
    ({"model": {"layers": [{"linear": [64, 5]}]}, "likelihood": {"family": "categorical", "num_classes": 5},
      "data": {"source": "sklearn", "name": "digits"}},
     ['likelihood.num_classes = 5: expected 10 (the sklearn dataset "digits" has 10 classes)']),
    ({"model": {"layers": [{"linear": [1, 5]}]}, "likelihood": {"family": "categorical", "num_classes": 1}},
     ["likelihood.num_classes = 1: expected an integer >= 2"]),
    ({"model": {"layers": [{"linear": [784, 10]}]}, "data": {"source": "fashion_mnist"}},
     ['model.layers[0].linear = [784, 10]: expected a flat input, but Fashion-MNIST has shape (1, 28, 28): '
      'put "flatten" before it']),
    ({"model": {"layers": [{"conv2d": [3, 4, 3]}, "flatten", {"linear": [2704, 10]}]},
      "data": {"source": "fashion_mnist"}},
     ["model.layers[0].conv2d = [3, 4, 3]: expected in_channels = 1 to match Fashion-MNIST"]),
    ({"model": {"layers": [{"conv2d": [1, 4, 3]}, "flatten", {"linear": [10, 10]}]},
      "data": {"source": "fashion_mnist"}},
     ["model.layers[2].linear = [10, 10]: expected in_features = 2704"]),
    ({"model": {"layers": [{"conv2d": [1, 4, 3], "stride": 0}]}, "data": {"source": "fashion_mnist"}},
     ["model.layers[0].stride = 0: expected an integer >= 1"]),
    ({"model": {"layers": [{"linear": [2, 5]}, "flatten", {"linear": [5, 1]}]}, "likelihood": "gaussian"},
     ['model.layers[1] = "flatten": expected an image (channels, height, width) before "flatten"']),
    (_model(prior={"override": [{"layers": [1], "family": "normal"}]}),
     ['prior.override[0].layers = [1]: expected a non-empty list of indices into model.layers of Bayesian layers '
      '(0, 2, 4); model.layers[1] is the activation "tanh"']),
    (_model(prior={"override": [{"layers": [7], "family": "normal"}]}),
     ["prior.override[0].layers = [7]: expected", "index 7 is out of range for 5 layers"]),
    (_model(prior={"override": [{"family": "normal"}]}), ["prior.override[0].layers: missing; expected"]),
    (_model(prior={"override": [{"layers": [0]}]}), ["prior.override[0].family: missing; expected one of"]),
    (_model(prior={"override": [{"layers": [0], "family": "normal", "override": []}]}),
     ["prior.override[0].override = []: unknown key"]),
    (_model(prior=3), ["prior = 3: expected a table (the prior: a table, or a family name as a string)"]),
    (_model(data={"source": "toys"}), ['data.source = "toys": expected one of', '(did you mean "toy"?)']),
    (_model(data={"n_train": 5}), ["data.source: missing; expected one of"]),
    (_model(data={"source": "sklearn"}), ['data.name: missing; the "sklearn" loader needs it']),
    (_model(data={"source": "sklearn", "name": "digit"}), ['data.name = "digit": expected one of', '"digits"']),
    (_model(data={"source": "toy", "n_trian": 3}), ['data.n_trian = 3: unknown key (did you mean "n_train"?)']),
    (_model(data={"source": "toy", "n_train": 0}), ["data.n_train = 0: expected an integer >= 1"]),
    (_model(data={"source": "sklearn", "name": "diabetes", "test_fraction": 1.0}),
     ["data.test_fraction = 1.0: expected a number in [0, 1)"]),
    (_model(model={"layers": TOY["model"]["layers"], "name": 3}), ["model.name = 3: expected a string"]),
    (_model(model={"name": "x"}), ['model.layers: missing; expected a list of layers: activation names, "flatten"']),
    (_model(prior={"override": [{"layers": [0, "x"], "family": "normal"}]}),
     ['prior.override[0].layers = [0, "x"]: expected a non-empty list of indices']),
]


@pytest.mark.parametrize("spec, expected", MALFORMED_MODELS, ids=range(len(MALFORMED_MODELS)))
def test_malformed_model_specs(spec, expected, tmp_path):
    if isinstance(spec, str):
        path = tmp_path / "bad.toml"
        path.write_text(spec)
        source, origin = path, str(path)
    else:
        source, origin = spec, "<dict>"
    with pytest.raises(SpecError) as e:
        load_model_spec(source)
    msg = str(e.value)
    assert msg.startswith(origin + ": ")
    for part in expected:
        assert part in msg


MALFORMED_INFERENCE = [
    ({"svi": {"epochs": 0}}, ["svi.epochs = 0: expected an integer >= 1"]),
    ({"svi": {"epochs": 1.5}}, ["svi.epochs = 1.5: expected an integer >= 1"]),
    ({"svi": {"epochs": True}}, ["svi.epochs = true: expected an integer >= 1"]),
    ({"svi": {"lr": 0}}, ["svi.lr = 0: expected a number > 0"]),
    ({"svi": {"lr": -1e-3}}, ["svi.lr = -0.001: expected a number > 0"]),
    ({"svi": {"num_particles": 0}}, ["svi.num_particles = 0: expected an integer >= 1"]),
    ({"svi": {"optimizer": "adamw"}}, ['svi.optimizer = "adamw": expected one of "adam", "adadelta", "sgd"']),
    ({"svi": {"kl": "blundel"}}, ['svi.kl = "blundel": expected one of "uniform", "blundell", "anneal" '
                                  '(did you mean "blundell"?)']),
    ({"svi": {"elbo": "mean_field"}}, ['svi.elbo = "mean_field": expected one of "trace", "meanfield"']),
    ({"svi": {"epoch": 3}}, ['svi.epoch = 3: unknown key (did you mean "epochs"?)']),
    ({"nuts": {"chains": 0}}, ["nuts.chains = 0: expected an integer >= 1"]),
    ({"nuts": {"target_accept": 1.0}}, ["nuts.target_accept = 1.0: expected a number in (0, 1)"]),
    ({"hmc": {"step_size": -0.1}}, ["hmc.step_size = -0.1: expected a number > 0"]),
    ({"mcmc": {"warmup": -1}}, ["mcmc.warmup = -1: expected an integer >= 0"]),
    ({"nuts": {}, "hmc": {}}, ["hmc = {}: expected only one of [mcmc], [nuts], [hmc]"]),
    ({"nuts": {"frozen": {"scale": "x"}}}, ['nuts.frozen.scale = "x": expected a number (the value held fixed)']),
    ({"nuts": {"frozen": {"layer": {"scale": 1.0}}}}, ["nuts.frozen.layer = { scale = 1.0 }: expected a number",
                                                       "or a table of them under a layer index"]),
    ({"nuts": {"frozen": {"2": {"scale": True}}}}, ["nuts.frozen.2.scale = true: expected a number"]),
    ({"nuts": {"backend": "jax"}}, ['nuts.backend = "jax": expected one of "torch", "pyro"']),
    ({"nuts": {"hyperpriors": {"scale": 1.0}}}, ['nuts.hyperpriors.scale = 1.0: expected a table { family = '
                                                 '"half_cauchy", scale = 1.0 }', "log_normal(loc, scale)"]),
    ({"nuts": {"hyperpriors": {"scale": {"family": "halfcauchy", "scale": 1.0}}}},
     ['nuts.hyperpriors.scale.family = "halfcauchy": expected one of "half_cauchy"', '(did you mean "half_cauchy"?)']),
    ({"nuts": {"hyperpriors": {"scale": {"family": "half_cauchy"}}}},
     ["nuts.hyperpriors.scale.scale: missing; expected a number > 0"]),
    ({"nuts": {"hyperpriors": {"scale": {"family": ["half_cauchy"], "scale": 1.0}}}},
     ['nuts.hyperpriors.scale.family = ["half_cauchy"]: expected one of "half_cauchy"']),
    ({"nuts": {"hyperpriors": {"scale": {"family": "gamma", "concentration": 2, "rate": 0}}}},
     ["nuts.hyperpriors.scale.rate = 0: expected a number > 0"]),
    ({"nuts": {"hyperpriors": {"scale": {"family": "half_cauchy", "scale": 1, "loc": 0}}}},
     ['nuts.hyperpriors.scale.loc = 0: not a key of the "half_cauchy" hyperprior', "takes: family, scale"]),
    ({"nuts": {"hyperpriors": {"scal": {"family": "half_cauchy", "scale": 1}}}},
     ['nuts.hyperpriors.scal = { family = "half_cauchy", scale = 1 }: expected one of "loc", "scale", or a layer '
      'index (did you mean "scale"?)']),
    ({"nuts": {"hyperpriors": {"2": {"sigma": {"family": "half_cauchy", "scale": 1}}}}},
     ['nuts.hyperpriors.2.sigma = { family = "half_cauchy", scale = 1 }: expected one of "loc", "scale"']),
    ({"inference": {"method": "vi"}}, ['inference.method = "vi": expected one of "svi", "nuts", "hmc"']),
    ({"inference": {"device": "gpu"}}, ['inference.device = "gpu": expected "auto", "cpu", "cuda"']),
    ({"inference": {"seed": -1}}, ["inference.seed = -1: expected an integer >= 0"]),
    ({"guide": {"family": "laplace"}}, ['guide.family = "laplace": expected one of "meanfield", "ard", "delta"']),
    ({"guide": {"family": "delta", "init_scale": 0.1}}, ['guide.init_scale = 0.1: not a key of the "delta" guide']),
    ({"guide": {"init_scale": 0}}, ["guide.init_scale = 0: expected a number > 0"]),
    ({"guide": {"family": "auto_lowrank", "rank": 0}}, ["guide.rank = 0: expected an integer >= 1"]),
    ({"svii": {}}, ['svii = {}: unknown key (did you mean "svi"?); an inference spec takes: inference, guide, svi, '
                    'mcmc, nuts, hmc']),
    ({"svi": []}, ["svi = []: expected a table"]),
]


@pytest.mark.parametrize("spec, expected", MALFORMED_INFERENCE, ids=range(len(MALFORMED_INFERENCE)))
def test_malformed_inference_specs(spec, expected):
    with pytest.raises(SpecError) as e:
        load_inference_spec(spec)
    msg = str(e.value)
    assert msg.startswith("<dict>: ")
    for part in expected:
        assert part in msg


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[model]\nname = = 3\n")
    with pytest.raises(SpecError) as e:
        load_model_spec(path)
    assert str(e.value).startswith(f"{path}: invalid TOML:") and "line 2" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_model_spec(tmp_path / "nope.toml")
    with pytest.raises(FileNotFoundError, match=r"inference/nope\.toml"):
        load_inference_spec("nope")
    with pytest.raises(TypeError, match="a model spec must be a path, a dict or a ModelSpec"):
        load_model_spec(3)


def test_spec_error_parts():
    with pytest.raises(SpecError) as e:
        load_model_spec(_model(prior={"scale": -2.0}))
    err = e.value
    assert (err.origin, err.key, err.value) == ("<dict>", "prior.scale", -2.0)
    assert err.expected == "expected a number > 0"


def test_specs_are_frozen():
    spec = load_model_spec("models/toy_regression.toml")
    with pytest.raises(AttributeError):
        spec.name = "x"
    assert isinstance(load_inference_spec({}), InferenceSpec)


# ============================================================================ TOML writer

def test_toml_writer_round_trips():
    data = {
        "title": 'quote " and \\ and \n newline and tab\t and é',
        "n": 3, "x": -1.5e-07, "flag": False, "inf": math.inf,
        "mixed": [{"linear": [1, 50]}, "tanh", {"conv2d": [1, 2, 3], "stride": 2}],
        "long": list(range(40)),
        "table": {"a": 1, "nested": {"b": [1.0, 2.0]}, "odd key": "v"},
        "only_tables": {"inner": {"c": "d"}},
        "entries": [{"layers": [4], "family": "normal"}, {"layers": [0], "sub": {"k": 1}}],
        "empty": {},
    }
    assert tomllib.loads(to_toml(data)) == data
    for path in MODEL_FILES + INFERENCE_FILES:
        raw = tomllib.loads(path.read_text())
        assert tomllib.loads(to_toml(raw)) == raw
