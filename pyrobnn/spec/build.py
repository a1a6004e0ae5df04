"""From validated specs to objects: networks, priors, likelihoods, guides, data sets, and the
keyword arguments of :func:`pyrobnn.fit_svi` and :func:`pyrobnn.infer.mcmc.fit_nuts`.

Every builder takes a parsed spec; :func:`build_model`, :func:`build_guide` and
:func:`build_data` also take anything :func:`load_model_spec` / :func:`load_inference_spec`
accept (a path, a name, a dict).
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

import torch

from .. import data as pbdata
from ..data.paths import data_root
from ..infer.guides import GUIDES, make_autoguide
from ..infer.mcmc import hyperprior
from ..model import BNN, Bernoulli, Categorical, Conv2d, Gaussian, Linear, priors
from .datasets import DataFacts
from .fields import Context
from .load import load_inference_spec, load_model_spec
from .schema import InferenceSpec, LayerSpec, LikelihoodSpec, ModelSpec, PriorSpec, check_data_fits

__all__ = [
    "load_model_spec", "load_inference_spec", "load_model", "build_model", "build_layer", "build_prior", "build_likelihood",
    "build_guide", "build_data", "svi_kwargs", "mcmc_kwargs", "PRIOR_CLASSES",
]

PRIOR_CLASSES = {
    "normal": priors.Normal,
    "laplace": priors.Laplace,
    "scale_mixture": priors.ScaleMixture,
    "flat": priors.Flat,
    "ard": priors.ARD,
    "adaptive_normal": priors.AdaptiveNormal,
    "adaptive_laplace": priors.AdaptiveLaplace,
}
"""Prior family name → class in :mod:`pyrobnn.priors`."""

def build_prior(spec: PriorSpec) -> priors.Prior:
    """The prior object of one family and its hyperparameters (``layers``/``overrides`` are
    applied by :func:`build_model`)."""
    return PRIOR_CLASSES[spec.family](**spec.params)


def build_likelihood(spec: LikelihoodSpec):
    """:class:`~pyrobnn.Gaussian`, :class:`~pyrobnn.Bernoulli` or :class:`~pyrobnn.Categorical`."""
    if spec.family == "gaussian":
        return Gaussian(scale=spec.scale, learned=spec.noise == "learned",
                        heteroscedastic=spec.noise == "heteroscedastic", noise_prior_scale=spec.noise_prior_scale)
    if spec.family == "bernoulli":
        return Bernoulli()
    return Categorical(spec.num_classes)


def build_layer(spec: LayerSpec, check_memory: bool = True):
    """A :class:`~pyrobnn.Linear` / :class:`~pyrobnn.Conv2d` module, or an activation name /
    ``"flatten"`` as :class:`~pyrobnn.BNN` accepts them."""
    if spec.kind == "linear":
        return Linear(*spec.size, bias=spec.bias, bayesian=spec.bayesian, check_memory=check_memory)
    if spec.kind == "conv2d":
        return Conv2d(*spec.size, stride=spec.stride, padding=spec.padding, bias=spec.bias, bayesian=spec.bayesian,
                      check_memory=check_memory)
    return spec.activation if spec.kind == "activation" else "flatten"


def build_model(spec) -> BNN:
    """The :class:`~pyrobnn.BNN` of a model spec, with its priors set (the network-wide prior,
    then each ``[[prior.override]]`` in order) and ``net.spec = spec``."""
    if not isinstance(spec, ModelSpec):
        spec = load_model_spec(spec)
    net = BNN([build_layer(layer, spec.check_memory) for layer in spec.layers], build_likelihood(spec.likelihood),
              build_prior(spec.prior), site_layout=spec.site_layout, check_memory=spec.check_memory)
    if spec.prior.per_layer:
        net.set_prior(build_prior(spec.prior), per_layer=True)
    for override in spec.prior.overrides:
        net.set_prior(build_prior(override), layers=override.layers, per_layer=override.per_layer)
    net.spec = spec
    return net


def load_model(spec, overrides=()) -> BNN:
    """The :class:`~pyrobnn.BNN` of a model spec given as anything :func:`load_model_spec` accepts
    (a TOML path, a bare name, a dict, a parsed ``ModelSpec``), with ``key.path=value``
    ``overrides`` applied before validation: ``build_model(load_model_spec(spec, overrides))``."""
    return build_model(load_model_spec(spec, overrides))


def build_guide(spec, net):
    """The guide of an inference spec for the model ``net``.

    meanfield, ard, delta and weight_noise are :mod:`pyrobnn.guides`; auto_normal and
    auto_lowrank are Pyro's ``AutoNormal`` / ``AutoLowRankMultivariateNormal``, started at the
    model's own initial values (a BNN's layer initialisation) rather than Pyro's default.
    """
    if not isinstance(spec, InferenceSpec):
        spec = load_inference_spec(spec)
    g = spec.guide
    if g.family == "delta":
        return GUIDES["delta"](net)
    if g.family == "weight_noise":
        return GUIDES["weight_noise"](net, sigma=g.init_scale)
    if g.family in GUIDES:
        return GUIDES[g.family](net, init_scale=g.init_scale)
    kind = "AutoNormal" if g.family == "auto_normal" else "AutoLowRankMultivariateNormal"
    return make_autoguide(kind, net, init_scale=g.init_scale, rank=None if kind == "AutoNormal" else g.rank)


def _uci_root(root, name):
    """``data.root`` as given if it exists (relative to the current directory), else under
    ``$PYROBNN_DATA`` (as given, then the default ``uci`` folder when ``name`` is set)."""
    if root is None:
        return None
    p = Path(root).expanduser()
    if p.exists():
        return p
    env = data_root()
    if env is not None and not p.is_absolute():
        for c in (env / p, env / "uci") if name else (env / p,):
            if c.exists():
                return c
    return p  # the loader reports what it looked at and how to get the data


def build_data(spec) -> pbdata.Dataset:
    """Load the data set of a model spec's ``[data]`` table with :func:`pyrobnn.data.load`.

    Relative paths are read from the current directory; a UCI ``root`` that is not there is
    looked for under ``$PYROBNN_DATA``.  The loaded data are checked against the model (task,
    classes, input width), which matters for sources not known in advance (csv, npz).

    Raises:
        SpecError: no ``[data]`` table, the loader rejected an argument, or the data do not fit
            the model.
        DataError: the data files' content is malformed (it names the file, column, row, value).
        FileNotFoundError: the data files are missing.
    """
    if not isinstance(spec, ModelSpec):
        spec = load_model_spec(spec)
    ctx = Context(spec.path or "<dict>")
    if spec.data is None:
        ctx.fail("data", "missing; expected a [data] table with source = ... to load the data from")
    kwargs = dict(spec.data.options)
    if spec.data.source == "uci":
        kwargs["root"] = _uci_root(kwargs.get("root"), kwargs.get("name"))
    try:
        ds = pbdata.load(spec.data.source, **kwargs)
    except pbdata.DataError as e:
        if e.path is not None:
            raise  # a file's content is at fault: the message names the file, column, row and value
        ctx.fail("data", f'expected arguments the "{spec.data.source}" loader accepts: {e}',
                 {"source": spec.data.source, **spec.data.options})
    except (ValueError, TypeError) as e:
        ctx.fail("data", f'expected arguments the "{spec.data.source}" loader accepts: {e}',
                 {"source": spec.data.source, **spec.data.options})
    facts = DataFacts(f'the loaded dataset "{ds.name}"', ds.task, ds.num_classes, tuple(ds.input_shape))
    check_data_fits(spec, facts, ctx)
    return ds


def svi_kwargs(spec) -> dict:
    """Keyword arguments for ``pyrobnn.fit_svi(net, guide, x, y, **kw)`` (``progress``,
    ``checkpoint`` and ``callback`` are left to the caller)."""
    if not isinstance(spec, InferenceSpec):
        spec = load_inference_spec(spec)
    return {**spec.svi.kwargs(), "device": spec.device,
            "dtype": None if spec.dtype is None else getattr(torch, spec.dtype), "seed": spec.seed}


def laplace_kwargs(spec) -> dict:
    """Keyword arguments for ``pyrobnn.fit_laplace(net, x, y, **kw)`` (``progress`` is left to the
    caller): the ``[laplace]`` settings, seed, device and dtype."""
    if not isinstance(spec, InferenceSpec):
        spec = load_inference_spec(spec)
    return {**dataclasses.asdict(spec.laplace), "seed": spec.seed, "device": spec.device,
            "dtype": None if spec.dtype is None else getattr(torch, spec.dtype)}


def mcmc_kwargs(spec) -> dict:
    """Keyword arguments for ``pyrobnn.infer.mcmc.fit_nuts(net, x, y, **kw)`` (``progress``,
    ``checkpoint`` and ``callback`` are left to the caller): ``kernel`` is "hmc" for ``method = "hmc"`` and "nuts" otherwise;
    optional settings (``step_size``, ``num_steps``, ``init``, ``backend``, ``chain_method``,
    ``frozen``, ``hyperpriors`` as Pyro distributions) appear only when the spec sets them, so
    ``fit_nuts``'s defaults apply otherwise."""
    if not isinstance(spec, InferenceSpec):
        spec = load_inference_spec(spec)
    m = spec.mcmc
    kw = {"num_samples": m.num_samples, "warmup": m.warmup, "chains": m.chains, "target_accept": m.target_accept,
          "max_tree_depth": m.max_tree_depth, "jit": m.jit, "seed": spec.seed,
          "checkpoint_every": m.checkpoint_every,
          "kernel": "hmc" if spec.method == "hmc" else "nuts",
          "device": spec.device, "dtype": None if spec.dtype is None else getattr(torch, spec.dtype)}
    for name in ("step_size", "num_steps", "init", "backend", "chain_method"):
        if getattr(m, name) is not None:
            kw[name] = getattr(m, name)
    if m.frozen:
        kw["frozen"] = {k: dict(v) if isinstance(v, dict) else v for k, v in m.frozen.items()}
    if m.hyperpriors:
        kw["hyperpriors"] = {k: _hyperprior(v) if isinstance(k, str) else
                             {n: _hyperprior(d) for n, d in v.items()} for k, v in m.hyperpriors.items()}
    return kw


def _hyperprior(d: dict):
    return hyperprior(d["family"], **{k: v for k, v in d.items() if k != "family"})
