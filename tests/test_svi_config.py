"""SVIConfig: the one definition of the SVI settings that fit_svi, the spec schema's [svi] table,
the bandit agents and the run metadata derive from."""

import dataclasses
import inspect

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer.svi_config import SVI_DEFAULTS, SVIConfig
from pyrobnn.spec import load_inference_spec, svi_kwargs
from pyrobnn.spec.errors import SpecError
from pyrobnn.spec.schema import SVI_CALL_ONLY, SVI_FIELDS, InferenceSpec

FAST = dict(epochs=2, batch_size=8, lr=0.01, kl="blundell")


def tiny():
    d = pb.data.toy_curve(n_train=24, n_test=0)
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(0.3))
    return net, d.x_train, d.y_train


def test_fit_svi_and_the_spec_derive_their_defaults_from_the_config():
    params = inspect.signature(pb.fit_svi).parameters
    names = [f.name for f in dataclasses.fields(SVIConfig)]
    for name in names:
        assert params[name].default == getattr(SVI_DEFAULTS, name), name
    table = {f.name: f.default for f in SVI_FIELDS}
    assert set(table) == set(names) - set(SVI_CALL_ONLY)
    for name, default in table.items():
        assert default == getattr(SVI_DEFAULTS, name), name
    assert InferenceSpec(name="x").svi == SVI_DEFAULTS
    kw = svi_kwargs({"svi": {"epochs": 3, "kl": "anneal"}})  # a spec's keyword arguments: all the settings
    assert {k: kw[k] for k in names} == SVIConfig(epochs=3, kl="anneal").kwargs()


@pytest.mark.parametrize("kwargs, name", [
    (dict(epochs=0), "epochs"), (dict(batch_size=1.5), "batch_size"), (dict(optimizer="rmsprop"), "optimizer"),
    (dict(lr=-1.0), "lr"), (dict(optimizer_kwargs=[1]), "optimizer_kwargs"), (dict(kl="linear"), "kl"),
    (dict(anneal_epochs=0), "anneal_epochs"), (dict(elbo="tracegraph"), "elbo"), (dict(num_particles=0), "num_particles"),
    (dict(elbo="flipout", num_particles=2), "num_particles"), (dict(vectorize_particles=1), "vectorize_particles"),
    (dict(empirical_bayes="yes"), "empirical_bayes"), (dict(shuffle=None), "shuffle"),
    (dict(checkpoint_every=0), "checkpoint_every"), (dict(check_finite_every=-2), "check_finite_every"),
    (dict(max_plate_nesting=0), "max_plate_nesting"),
])
def test_config_errors_name_the_field(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        SVIConfig(**kwargs)


def test_config_argument_gives_the_same_fit_and_is_recorded():
    net, x, y = tiny()
    guide = pb.guides.MeanField(net)
    a = pb.fit_svi(net, guide, x, y, seed=3, progress=False, **FAST)
    net2, _, _ = tiny()
    net2.load_state_dict(net.state_dict())
    guide2 = pb.guides.MeanField(net2)
    b = pb.fit_svi(net2, guide2, x, y, config=SVIConfig(**FAST), seed=3, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    for (ka, va), (kb, vb) in zip(sorted(guide.state_dict().items()), sorted(guide2.state_dict().items())):
        assert ka == kb and torch.equal(va, vb), ka
    assert b.info["config"] == a.info["config"] == SVIConfig(**FAST).record()
    assert b.info["config"]["kl"] == "blundell" and b.info["config"]["lr"] == 0.01
    with pytest.raises(ValueError, match="epochs given both"):
        pb.fit_svi(net, guide, x, y, config=SVIConfig(**FAST), epochs=7, progress=False)
    with pytest.raises(TypeError, match="config must be a SVIConfig"):
        pb.fit_svi(net, guide, x, y, config={"epochs": 3}, progress=False)


def test_spec_refuses_settings_that_do_not_go_together():
    with pytest.raises(SpecError, match="svi.*num_particles=1"):
        load_inference_spec({"svi": {"elbo": "local_reparam", "num_particles": 4}})
