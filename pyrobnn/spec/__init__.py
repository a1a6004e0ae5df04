"""Declarative specs: models and inference as TOML files, validated into typed dataclasses.

A model spec (``models/*.toml``) gives the layers, prior, likelihood and data; an inference
spec (``inference/*.toml``) the method (SVI with a guide and KL schedule, NUTS/HMC, or Laplace) and
its settings.  Files are parsed with :mod:`tomllib`, never evaluated; ``key.path=value``
overrides are applied before validation; every malformed spec raises :class:`SpecError`
naming the file, the key, the value and what was expected.

>>> spec = load_model_spec("models/toy_regression.toml", ["prior.scale=0.5"])  # doctest: +SKIP
>>> net = build_model(spec)                                                    # doctest: +SKIP
"""

from .build import (
    PRIOR_CLASSES,
    build_data,
    build_guide,
    build_layer,
    build_likelihood,
    build_model,
    build_prior,
    laplace_kwargs,
    load_model,
    mcmc_kwargs,
    svi_kwargs,
)
from .errors import SpecError
from .load import apply_overrides, load_inference_spec, load_model_spec, parse_override, parse_value
from .render import dumps as to_toml
from .schema import (
    DataSpec,
    GuideSpec,
    InferenceSpec,
    LayerSpec,
    LikelihoodSpec,
    MCMCSpec,
    ModelSpec,
    PriorSpec,
)

__all__ = [
    "SpecError", "ModelSpec", "InferenceSpec", "LayerSpec", "PriorSpec", "LikelihoodSpec", "DataSpec",
    "GuideSpec", "MCMCSpec",
    "load_model_spec", "load_inference_spec", "parse_override", "parse_value", "apply_overrides", "to_toml",
    "load_model", "build_model", "build_layer", "build_prior", "build_likelihood", "build_guide", "build_data",
    "svi_kwargs", "mcmc_kwargs", "laplace_kwargs", "PRIOR_CLASSES",
]
