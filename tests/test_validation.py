"""Bad inputs and out-of-range settings are refused up front with an error naming the argument
(Python) or the file, key and value (specs), and fits that cannot fit in memory are refused
before anything large is allocated."""

import numpy as np
import pytest
import torch

import pyrobnn as pb
import pyrobnn.model.memory as memory
from pyrobnn.infer.mcmc import fit_nuts
from pyrobnn.model.memory import InsufficientMemoryError, estimate_nuts, estimate_svi
from pyrobnn.spec import SpecError, load_inference_spec, load_model_spec

GiB = 1024**3


def reg(width=2, hidden=4):
    return pb.BNN([pb.Linear(width, hidden), "tanh", pb.Linear(hidden, 1)], pb.Gaussian(scale=0.5))


def bern():
    return pb.BNN([pb.Linear(2, 4), "tanh", pb.Linear(4, 1)], pb.Bernoulli())


def cat():
    return pb.BNN([pb.Linear(2, 4), "tanh", pb.Linear(4, 3)], pb.Categorical(3))


def conv():
    return pb.BNN([pb.Conv2d(1, 2, 3), "relu", "flatten", pb.Linear(2 * 6 * 6, 1)], pb.Gaussian())


def X(n=10, w=2):
    return torch.randn(n, w, generator=torch.Generator().manual_seed(0))


def Y(n=10):
    return torch.randn(n, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- data given to fit_svi / fit_nuts
# (make network, x, y, exception, parts of the message)
DATA_CASES = {
    "x wider than the first layer": (reg, lambda: X(w=3), Y, ValueError,
                                     ["x of shape (10, 3)", "layers.0", "expected inputs of shape (2,)"]),
    "image of the wrong size": (conv, lambda: torch.randn(10, 1, 7, 7), Y, ValueError,
                                ["x of shape (10, 1, 7, 7)", "layers.3", "(72,)", "got (50,)"]),
    "flat x into a conv net": (conv, lambda: torch.randn(10, 64), Y, ValueError,
                               ["x of shape (10, 64)", "layers.0", "channels=1, height, width"]),
    "x of one dimension": (lambda: reg(1), lambda: torch.randn(10), Y, ValueError,
                           ["x must have one row per example", "x.unsqueeze(-1)"]),
    "empty x and y": (reg, lambda: torch.randn(0, 2), lambda: torch.randn(0), ValueError, ["x has no rows"]),
    "rows of x and y differ": (reg, X, lambda: Y(9), ValueError, ["x has 10 rows but y has 9"]),
    "bernoulli targets not 0/1": (bern, X, lambda: torch.full((10,), 0.5), ValueError,
                                  ["y must hold values 0 or 1", "Bernoulli", "0.5"]),
    "labels outside 0..K-1": (cat, X, lambda: torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 2]), ValueError,
                              ["labels must lie in 0..2", "0..3", "in y"]),
    "negative labels": (cat, X, lambda: torch.tensor([0, 1, 2, -1, 0, 1, 2, 0, 1, 2]), ValueError,
                        ["labels must lie in 0..2", "-1..2"]),
    "float class labels": (cat, X, lambda: torch.zeros(10), ValueError,
                           ["y must hold integer class labels 0..2", "float32"]),
    "NaN in x": (reg, lambda: torch.full((10, 2), float("nan")), Y, ValueError,
                 ["x has 20 non-finite values (NaN or inf)"]),
    "inf in y": (reg, X, lambda: torch.full((10,), float("inf")), ValueError,
                 ["y has 10 non-finite values (NaN or inf)"]),
    "y of shape (N, 2) for one output": (reg, X, lambda: torch.randn(10, 2), ValueError,
                                         ["y must be real-valued targets of shape (N,)", "(10, 2)"]),
    "y of shape (N, 1)": (reg, X, lambda: torch.randn(10, 1), ValueError, ["shape (N,)", "y.squeeze(-1)"]),
    "integer y for regression": (reg, X, lambda: torch.ones(10, dtype=torch.long), ValueError,
                                 ["y must be real-valued", "int64"]),
    "x a list": (reg, lambda: X().tolist(), Y, TypeError, ["x must be a torch.Tensor or a numpy array", "list"]),
    "y a numpy array of strings": (reg, X, lambda: np.array(["a"] * 10), TypeError,
                                   ["y must be a torch.Tensor or a numeric numpy array"]),
    "last layer wider than the likelihood reads": (
        lambda: pb.BNN([pb.Linear(2, 3)], pb.Gaussian()), X, Y, ValueError,
        ["output has shape (3,)", "reads 1 output", "last layer"]),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
@pytest.mark.parametrize("fit", ["svi", "nuts"])
def test_bad_data_is_refused_before_any_work(case, fit):
    make, x, y, exc, parts = DATA_CASES[case]
    net = make()
    guide = pb.guides.MeanField(net)
    with pytest.raises(exc) as e:
        if fit == "svi":
            pb.fit_svi(net, guide, x(), y(), epochs=1, progress=False)
        else:
            fit_nuts(net, x(), y(), num_samples=2, warmup=1, chains=1, jit=False, progress=False)
    for part in parts:
        assert part in str(e.value)
    assert not guide.is_setup and not list(guide.parameters())  # no guide parameter was created


@pytest.mark.parametrize("labels", [
    torch.tensor([0, 1] * 5), torch.tensor([0, 1] * 5, dtype=torch.int32), torch.tensor([True, False] * 5),
    np.array([0.0, 1.0] * 5),
], ids=["int64", "int32", "bool", "numpy float"])
def test_bernoulli_accepts_integer_and_bool_labels_without_changing_them(labels):
    """Integer/bool 0/1 labels are what loaders and comparisons give: they are observed as floats,
    in a new tensor, the caller's untouched."""
    before = torch.as_tensor(labels).clone()
    net = bern()
    post = pb.fit_svi(net, pb.guides.MeanField(net), X(), labels, epochs=1, progress=False)
    assert post.history[0]["loss"] == post.history[0]["loss"]  # finite, not NaN
    assert torch.equal(torch.as_tensor(labels), before) and torch.as_tensor(labels).dtype == before.dtype


def test_numpy_inputs_are_converted():
    net = reg()
    post = pb.fit_svi(net, pb.guides.MeanField(net), X().numpy(), Y().numpy(), epochs=1, progress=False)
    assert post.predict(X(4).numpy(), num_samples=3).mean.shape == (4,)


def test_categorical_accepts_small_integer_label_dtypes():
    net = cat()
    y = torch.tensor([0, 1, 2, 1, 0, 1, 2, 0, 1, 2], dtype=torch.uint8)
    post = pb.fit_svi(net, pb.guides.MeanField(net), X(), y, epochs=1, progress=False)
    assert len(post.history) == 1


# ---------------------------------------------------------------- a guide built for another network
def test_guide_for_another_network_is_refused():
    net_a, net_b = reg(hidden=4), reg(hidden=5)
    guide = pb.guides.MeanField(net_a)
    with pytest.raises(ValueError) as e:
        pb.fit_svi(net_b, guide, X(), Y(), epochs=1, progress=False)
    msg = str(e.value)
    assert "guide (MeanField) was built for a network with the sites {weights (17,)}" in msg
    assert "the model has {weights (21,)}" in msg and "pyrobnn.guides.MeanField(model)" in msg
    assert not list(guide.parameters())


def test_guide_set_up_for_another_network_is_refused():
    net_a, net_b = reg(hidden=4), reg(hidden=5)
    guide = pb.guides.MeanField(net_a).setup(X(), Y())
    with pytest.raises(ValueError, match=r"guide \(MeanField\) was set up for the sites \{weights \(17,\)\}"):
        pb.fit_svi(net_b, guide, X(), Y(), epochs=1, progress=False)


def test_same_structure_guide_is_accepted():
    net_a, net_b = reg(), reg()
    post = pb.fit_svi(net_b, pb.guides.MeanField(net_a), X(), Y(), epochs=1, progress=False)
    assert len(post.history) == 1


def test_predict_with_x_of_wrong_width():
    net = reg()
    post = pb.fit_svi(net, pb.guides.MeanField(net), X(), Y(), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"x of shape \(5, 3\) does not fit the network: layers.0"):
        post.predict(torch.randn(5, 3), num_samples=2)


# ---------------------------------------------------------------- settings of the Python API
# (call, exception, message parts)
def _svi(**kw):
    net = reg()
    return lambda: pb.fit_svi(net, pb.guides.MeanField(net), X(), Y(), progress=False, **kw)


def _nuts(**kw):
    return lambda: fit_nuts(reg(), X(), Y(), progress=False, **kw)


SETTING_CASES = {
    "epochs=1e23": (_svi(epochs=1e23), TypeError, ["epochs must be a positive integer", "float"]),
    "epochs=10**23": (_svi(epochs=10**23), ValueError, ["epochs must be a positive integer"]),
    "epochs=0": (_svi(epochs=0), ValueError, ["epochs must be a positive integer, got 0"]),
    "batch_size=-1": (_svi(batch_size=-1), ValueError, ["batch_size must be a positive integer"]),
    "num_particles=0": (_svi(num_particles=0), ValueError, ["num_particles must be a positive integer"]),
    "anneal_epochs=0": (_svi(anneal_epochs=0), ValueError, ["anneal_epochs must be a positive integer"]),
    "checkpoint_every=True": (_svi(checkpoint_every=True), TypeError, ["checkpoint_every must be", "bool"]),
    "max_plate_nesting=0": (_svi(max_plate_nesting=0), ValueError, ["max_plate_nesting must be a positive integer"]),
    "lr=0": (_svi(lr=0.0), ValueError, ["lr must be a positive finite number, got 0.0"]),
    "lr=-1": (_svi(lr=-1.0), ValueError, ["lr must be a positive finite number"]),
    "lr=nan": (_svi(lr=float("nan")), ValueError, ["lr must be a positive finite number, got nan"]),
    "lr='1e-3'": (_svi(lr="1e-3"), TypeError, ["lr must be a positive finite number", "str"]),
    "elbo='x'": (_svi(elbo="x"), ValueError, ["elbo must be one of"]),
    "shuffle=1": (_svi(shuffle=1), TypeError, ["shuffle must be True or False, got 1"]),
    "vectorize_particles='no'": (_svi(vectorize_particles="no"), TypeError, ["vectorize_particles must be True"]),
    "seed=-1": (_svi(seed=-1), ValueError, ["seed must be an integer in [0, 4294967295], got -1"]),
    "seed=1.5": (_svi(seed=1.5), TypeError, ["seed must be an integer"]),
    "dtype=int64": (_svi(dtype=torch.int64), ValueError, ["dtype must be a floating torch.dtype"]),
    "check_memory=0": (_svi(check_memory=0), TypeError, ["check_memory must be True or False"]),
    "callback=3": (_svi(callback=3), TypeError, ["callback must be callable"]),
    "nuts num_samples=0": (_nuts(num_samples=0), ValueError, ["num_samples must be a positive integer"]),
    "nuts num_samples=1e23": (_nuts(num_samples=1e23), TypeError, ["num_samples must be a positive integer"]),
    "nuts warmup=-1": (_nuts(warmup=-1), ValueError, ["warmup must be an integer >= 0"]),
    "nuts chains=0": (_nuts(chains=0), ValueError, ["chains must be a positive integer"]),
    "nuts target_accept=1": (_nuts(target_accept=1.0), ValueError, ["target_accept must be", "(0, 1)"]),
    "nuts target_accept=nan": (_nuts(target_accept=float("nan")), ValueError, ["target_accept must be"]),
    "nuts step_size=inf": (_nuts(step_size=float("inf")), ValueError, ["step_size must be a positive number"]),
    "nuts max_tree_depth=100": (_nuts(max_tree_depth=100), ValueError,
                                ["max_tree_depth must be an integer in [1, 30]"]),
    "nuts num_steps=0": (_nuts(num_steps=0, kernel="hmc"), ValueError, ["num_steps must be a positive integer"]),
    "nuts jit=2": (_nuts(jit=2), TypeError, ["jit must be True or False"]),
    "nuts init='zeros'": (_nuts(init="zeros"), ValueError, ["init must be 'model', 'median' or a dict"]),
    "nuts seed=2**32": (_nuts(seed=2**32), ValueError, ["seed must be an integer in [0, 4294967295]"]),
    "Linear(2, 1.5)": (lambda: pb.Linear(2, 1.5), TypeError, ["Linear out_features must be >= 1", "float"]),
    "Linear(2, True)": (lambda: pb.Linear(2, True), TypeError, ["Linear out_features must be >= 1", "bool"]),
    "Linear(0, 3)": (lambda: pb.Linear(0, 3), ValueError, ["Linear in_features must be >= 1"]),
    "Linear(2, 2**40)": (lambda: pb.Linear(2, 2**40), ValueError,
                         ["Linear out_features must be >= 1", "<= 2147483647"]),
    "Linear bias=1": (lambda: pb.Linear(2, 3, bias=1), TypeError, ["Linear bias must be True or False"]),
    "Conv2d kernel_size=0": (lambda: pb.Conv2d(1, 2, 0), ValueError, ["Conv2d kernel_size must be an integer in [1,"]),
    "Conv2d stride=0": (lambda: pb.Conv2d(1, 2, 3, stride=0), ValueError, ["Conv2d stride must be"]),
    "Conv2d padding=-1": (lambda: pb.Conv2d(1, 2, 3, padding=-1), ValueError,
                          ["Conv2d padding must be an integer in [0,"]),
    "Flatten(0)": (lambda: pb.Flatten(0), ValueError, ["Flatten ndims must be"]),
    "Normal loc=nan": (lambda: pb.priors.Normal(float("nan")), ValueError, ["loc must be a finite number"]),
    "Normal scale=0": (lambda: pb.priors.Normal(0.0, 0.0), ValueError, ["scale must be a positive finite number"]),
    "Laplace scale='1'": (lambda: pb.priors.Laplace(0.0, "1"), TypeError, ["scale must be a positive finite number"]),
    "ScaleMixture pi=1.5": (lambda: pb.priors.ScaleMixture(1.5), ValueError, ["pi must lie in (0, 1), got 1.5"]),
    "ScaleMixture sigma2>sigma1": (lambda: pb.priors.ScaleMixture(0.5, 0.1, 1.0), ValueError,
                                   ["sigma2 must be < sigma1"]),
    "ARD min_variance=-1": (lambda: pb.priors.ARD(min_variance=-1), ValueError, ["min_variance must be"]),
    "AdaptiveNormal fit_loc=2": (lambda: pb.priors.AdaptiveNormal(fit_loc=2), TypeError, ["fit_loc must be True"]),
    "AdaptiveLaplace min_scale=-1": (lambda: pb.priors.AdaptiveLaplace(min_scale=-1), ValueError, ["min_scale must"]),
    "Gaussian scale=nan": (lambda: pb.Gaussian(scale=float("nan")), ValueError, ["Gaussian likelihood scale must"]),
    "Gaussian noise_prior_scale=0": (lambda: pb.Gaussian(noise_prior_scale=0), ValueError,
                                     ["noise_prior_scale must be a finite number > 0"]),
    "Gaussian learned=1": (lambda: pb.Gaussian(learned=1), TypeError, ["Gaussian likelihood learned must be True"]),
    "Categorical(2.5)": (lambda: pb.Categorical(2.5), TypeError, ["Categorical likelihood num_classes must be"]),
    "Categorical(1)": (lambda: pb.Categorical(1), ValueError, ["Categorical likelihood num_classes must be", "[2,"]),
    "MeanField init_scale=inf": (lambda: pb.guides.MeanField(reg(), init_scale=float("inf")), ValueError,
                                 ["init_scale must be a positive finite number"]),
    "ARD guide init_scale=0": (lambda: pb.guides.ARD(reg(), init_scale=0), ValueError, ["init_scale must be"]),
    "WeightNoise sigma=-1": (lambda: pb.guides.WeightNoise(reg(), sigma=-1), ValueError, ["sigma must be"]),
    "BNN check_memory=1": (lambda: pb.BNN([pb.Linear(2, 1)], pb.Gaussian(), check_memory=1), TypeError,
                           ["check_memory must be True or False"]),
}


@pytest.mark.parametrize("case", list(SETTING_CASES))
def test_out_of_range_settings_are_refused(case):
    call, exc, parts = SETTING_CASES[case]
    with pytest.raises(exc) as e:
        call()
    for part in parts:
        assert part in str(e.value)


def test_type_errors_are_also_value_errors():
    """Callers that catch ValueError (the command line) see wrongly typed settings too."""
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        _svi(epochs=1.5)()


# ---------------------------------------------------------------- specs
MODEL = {"model": {"layers": [{"linear": [1, 4]}, "tanh", {"linear": [4, 1]}]}, "likelihood": "gaussian"}


def model_with(**tables):
    doc = {k: dict(v) for k, v in MODEL.items() if isinstance(v, dict)}
    doc["likelihood"] = MODEL["likelihood"]
    for k, v in tables.items():
        doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) and isinstance(doc.get(k), dict) else v
    return doc


# (loader, document, key, expected part of the message)
SPEC_CASES = {
    "float layer size": (load_model_spec, model_with(model={"layers": [{"linear": [1, 1e9]}]}),
                         "model.layers[0].linear = [1, 1000000000.0]", "2 integers >= 1 (and <= 2147483647)"),
    "layer size beyond int32": (load_model_spec, model_with(model={"layers": [{"linear": [1, 2**40]}]}),
                                "model.layers[0].linear", "(and <= 2147483647)"),
    "zero layer size": (load_model_spec, model_with(model={"layers": [{"linear": [0, 1]}]}),
                        "model.layers[0].linear = [0, 1]", "integers >= 1"),
    "conv stride 0": (load_model_spec, model_with(model={"layers": [{"conv2d": [1, 2, 3], "stride": 0}]}),
                      "model.layers[0].stride = 0", "expected an integer >= 1"),
    "check_memory a number": (load_model_spec, model_with(model={**MODEL["model"], "check_memory": 0}),
                              "model.check_memory = 0", "expected true or false"),
    "prior scale 0": (load_model_spec, model_with(prior={"family": "normal", "scale": 0}), "prior.scale = 0",
                      "expected a number > 0"),
    "pi 1": (load_model_spec, model_with(prior={"family": "scale_mixture", "pi": 1.0}), "prior.pi = 1.0",
             "expected a number in (0, 1)"),
    "noise scale -1": (load_model_spec, model_with(likelihood={"family": "gaussian", "scale": -1.0}),
                       "likelihood.scale = -1.0", "expected a number > 0"),
    "epochs 1e23": (load_inference_spec, {"svi": {"epochs": 1e23}}, "svi.epochs = 1e+23", "expected an integer >= 1"),
    "epochs 10**23": (load_inference_spec, {"svi": {"epochs": 10**23}}, "svi.epochs", "(and <= 9223372036854775807)"),
    "batch_size 0": (load_inference_spec, {"svi": {"batch_size": 0}}, "svi.batch_size = 0", "expected an integer >= 1"),
    "lr 0": (load_inference_spec, {"svi": {"lr": 0}}, "svi.lr = 0", "expected a number > 0"),
    "lr nan": (load_inference_spec, {"svi": {"lr": float("nan")}}, "svi.lr = nan", "expected a number > 0"),
    "shuffle 1": (load_inference_spec, {"svi": {"shuffle": 1}}, "svi.shuffle = 1", "expected true or false"),
    "num_particles 0": (load_inference_spec, {"svi": {"num_particles": 0}}, "svi.num_particles", ">= 1"),
    "chains 0": (load_inference_spec, {"mcmc": {"chains": 0}}, "mcmc.chains = 0", "expected an integer >= 1"),
    "num_samples -5": (load_inference_spec, {"nuts": {"num_samples": -5}}, "nuts.num_samples = -5", ">= 1"),
    "target_accept 1": (load_inference_spec, {"mcmc": {"target_accept": 1.0}}, "mcmc.target_accept = 1.0",
                        "expected a number in (0, 1)"),
    "max_tree_depth 100": (load_inference_spec, {"mcmc": {"max_tree_depth": 100}}, "mcmc.max_tree_depth = 100",
                           "(and <= 30)"),
    "seed 2**40": (load_inference_spec, {"inference": {"seed": 2**40}}, "inference.seed", "(and <= 4294967295)"),
    "guide init_scale 0": (load_inference_spec, {"guide": {"family": "meanfield", "init_scale": 0}},
                           "guide.init_scale = 0", "expected a number > 0"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_spec_settings_out_of_range(case):
    loader, doc, key, expected = SPEC_CASES[case]
    with pytest.raises(SpecError) as e:
        loader(doc)
    msg = str(e.value)
    assert msg.startswith("<dict>: " + key)
    assert expected in msg


# ---------------------------------------------------------------- memory
@pytest.fixture
def little_memory(monkeypatch):
    """Pretend the machine has 1 GiB available."""
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1 * GiB)


HUGE = {"model": {"layers": [{"linear": [1, 1_000_000_000]}, "tanh", {"linear": [1_000_000_000, 1]}]},
        "likelihood": "gaussian"}


def test_spec_with_a_billion_wide_layer_is_refused_before_it_is_built(little_memory):
    with pytest.raises(SpecError) as e:
        load_model_spec(HUGE)
    msg = str(e.value)
    assert msg.startswith("<dict>: model.layers[0].linear = [1, 1000000000]: expected a network that fits in memory")
    assert "3,000,000,001 in all" in msg and "33.5 GiB for the network" in msg and "only 1.0 GiB is available" in msg
    assert "set model.check_memory = false" in msg and "--set model.check_memory=false" in msg


def test_spec_memory_check_can_be_switched_off(little_memory):
    spec = load_model_spec(HUGE, ["model.check_memory=false"])
    assert spec.check_memory is False
    net = pb.BNN.from_spec(spec)  # Bayesian weights are not allocated by building the network
    assert net.num_weights == 3_000_000_001 and net.check_memory is False


def test_bnn_too_large_is_refused_and_the_switch_is_named(little_memory):
    layers = [pb.Linear(1, 100_000_000), "tanh", pb.Linear(100_000_000, 1)]
    with pytest.raises(InsufficientMemoryError) as e:
        pb.BNN(layers, pb.Gaussian())
    assert isinstance(e.value, ValueError) and isinstance(e.value, MemoryError)
    assert "check_memory=False to BNN(...)" in str(e.value) and "only 1.0 GiB is available" in str(e.value)
    assert pb.BNN(layers, pb.Gaussian(), check_memory=False).num_weights == 300_000_001


def test_deterministic_layer_too_large_is_refused_before_allocation(little_memory):
    with pytest.raises(InsufficientMemoryError, match="pass check_memory=False to Linear"):
        pb.Linear(1000, 1_000_000, bayesian=False)


def test_fit_svi_refuses_a_fit_that_cannot_fit(monkeypatch):
    net = pb.BNN([pb.Linear(2, 1000), "tanh", pb.Linear(1000, 1)], pb.Gaussian())
    guide = pb.guides.MeanField(net)
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 100_000)
    with pytest.raises(InsufficientMemoryError) as e:
        pb.fit_svi(net, guide, X(), Y(), epochs=1, num_particles=8, progress=False)
    msg = str(e.value)
    assert "for an SVI fit on cpu" in msg and "guide parameters" in msg and "optimizer state" in msg
    assert "only 97.7 KiB is available" in msg and "check_memory=False" in msg
    assert not list(guide.parameters())
    post = pb.fit_svi(net, guide, X(), Y(), epochs=1, progress=False, check_memory=False)
    assert len(post.history) == 1


def test_fit_svi_follows_the_model_switch(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1000)
    net = pb.BNN([pb.Linear(2, 1)], pb.Gaussian(), check_memory=False)
    assert len(pb.fit_svi(net, pb.guides.MeanField(net), X(), Y(), epochs=1, progress=False).history) == 1


def test_fit_nuts_refuses_a_run_that_cannot_fit(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 10 * 1024**2)
    net = pb.BNN([pb.Linear(2, 100), "tanh", pb.Linear(100, 1)], pb.Gaussian())
    with pytest.raises(InsufficientMemoryError) as e:
        fit_nuts(net, X(), Y(), num_samples=10_000, chains=4, progress=False)
    msg = str(e.value)
    assert "for NUTS sampling on cpu" in msg and "stored draws" in msg and "NUTS trajectory buffer" in msg


def test_estimates_count_what_they_say():
    d = 1000
    est = estimate_svi(d, n_data=500, batch_size=100, activations_per_example=50, num_particles=4,
                       guide="meanfield", optimizer="adam", dtype=torch.float32)
    assert est.parts["guide parameters"] == 2 * d * 4
    assert est.parts["optimizer state"] == 2 * 2 * d * 4
    assert est.parts["activations per step"] == 2 * 4 * 100 * 50 * 4
    nuts = estimate_nuts(d, n_data=500, chains=4, num_samples=200, max_tree_depth=10, dtype=torch.float64)
    assert nuts.parts["stored draws (and their constrained copy)"] == 2 * 4 * 200 * d * 8
    assert nuts.parts["NUTS trajectory buffer (worst case)"] == 2**9 * 3 * 4 * d * 8
    assert est.total == sum(est.parts.values()) and "for an SVI fit on cpu" in est.describe()


def test_available_memory_reads_the_machine():
    avail = memory.available_memory("cpu")
    assert avail is None or avail > 0


def test_seeded_draws_torch_manual_seeds_stream_and_restores_the_callers():
    """``seeded`` seeds the CPU generator exactly as ``torch.manual_seed`` does (and the CUDA ones
    where present), without queuing seeds for absent accelerators, and restores the caller's state."""
    import random

    from pyrobnn.utils.rng import seeded

    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(1)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    with seeded(7):
        got = torch.rand(5)
        random.random()
        np.random.rand()
    assert torch.equal(got, expected)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
