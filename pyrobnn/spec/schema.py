"""The typed specs and their validation.

A *model spec* has the tables ``[model]`` (name, site layout, layers), ``[prior]`` (a family,
its hyperparameters and optional ``[[prior.override]]`` entries for some layers),
``[likelihood]`` and ``[data]``; an *inference spec* has ``[inference]`` (method, seed,
device), ``[guide]``, ``[svi]``, ``[mcmc]`` (also spelled ``[nuts]`` or ``[hmc]``) and ``[laplace]``.
Every table is described by a tuple of :class:`~pyrobnn.spec.fields.Field` below;
:func:`validate_model` and :func:`validate_inference` read a parsed TOML document through
them and return frozen dataclasses, or raise :class:`~pyrobnn.spec.errors.SpecError`.

Beyond types and ranges, a model spec is checked for consistency before anything is built:
consecutive layers must chain (widths, channels, image sizes where the data's input shape
is known), the likelihood must suit the data's task, the last layer must give as many
outputs as the likelihood reads, and prior overrides must name Bayesian layers.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data import LOADERS, SKLEARN_DATASETS
from ..infer.elbo import ELBOS
from ..infer.kl_schedule import SCHEDULES
from ..infer.laplace import PREDICTIVES, STRUCTURES, SUBSETS, LaplaceSettings
from ..infer.arguments import MAX_SEED
from ..infer.mcmc import BACKENDS, CHAIN_METHODS, HYPER_PARAMETERS, HYPERPRIOR_FAMILIES, MAX_TREE_DEPTH
from ..infer.mcmc import NUTS_DEFAULTS as _NUTS
from ..infer.svi_config import OPTIMIZERS, SVIConfig
from ..infer.svi_config import SVI_DEFAULTS as _SVI
from ..model.layers import ACTIVATIONS, MAX_SIZE, Conv2d, Linear
from ..model.memory import InsufficientMemoryError, check_fits, estimate_model
from ..model.sites import LAYOUTS
from .datasets import TASK_LIKELIHOOD, DataFacts, data_facts
from .errors import did_you_mean
from .fields import (
    Context,
    Field,
    check_keys,
    check_table,
    choice,
    flag,
    integer,
    join,
    number,
    read_table,
    text,
)

__all__ = [
    "LayerSpec", "PriorSpec", "LikelihoodSpec", "DataSpec", "ModelSpec",
    "GuideSpec", "MCMCSpec", "BanditSpec", "InferenceSpec",
    "validate_model", "validate_inference", "check_data_fits",
    "PRIOR_FAMILIES", "LIKELIHOOD_FAMILIES", "GUIDE_FAMILIES", "METHODS", "MCMC_TABLES",
]

# ============================================================================ field tables

MODEL_FIELDS = (
    text("name", None, doc="defaults to the file name"),
    text("description", ""),
    choice("site_layout", LAYOUTS, "packed", doc="packed: one site for all weights; layer; tensor"),
    flag("check_memory", True, doc="refuse a network (and fits) that cannot fit in the available memory"),
    Field("layers", "any", doc='a list of layers: activation names, "flatten" and tables such as '
                               "{ linear = [in, out] } or { conv2d = [in, out, kernel] }"),
)

LAYER_KINDS: dict[str, tuple[int, str, tuple[Field, ...]]] = {
    # kind: (number of sizes, what they are, options)
    "linear": (2, "[in_features, out_features]", (flag("bias", True), flag("bayesian", True))),
    "conv2d": (3, "[in_channels, out_channels, kernel_size]",
               (flag("bias", True), flag("bayesian", True), integer("stride", 1, lo=1, hi=MAX_SIZE),
                integer("padding", 0, lo=0, hi=MAX_SIZE))),
}

_LOC = number("loc", 0.0)
_SCALE = number("scale", 1.0, lo=0)
_FIT = (flag("fit_loc", True), flag("fit_scale", True))
PRIOR_FAMILIES: dict[str, tuple[Field, ...]] = {
    "normal": (_LOC, _SCALE),
    "laplace": (_LOC, _SCALE),
    "scale_mixture": (number("pi", 0.5, lo=0, hi=1), number("sigma1", 1.0, lo=0),
                      number("sigma2", math.exp(-6), lo=0)),
    "flat": (),
    "ard": (number("init_scale", 1.0, lo=0),),
    "adaptive_normal": (_LOC, _SCALE, *_FIT),
    "adaptive_laplace": (_LOC, _SCALE, *_FIT),
}
"""Prior family → its hyperparameters (see :mod:`pyrobnn.model.priors`)."""

NOISE_MODES = ("fixed", "learned", "heteroscedastic")
LIKELIHOOD_FAMILIES: dict[str, tuple[Field, ...]] = {
    "gaussian": (choice("noise", NOISE_MODES, "fixed"), number("scale", 1.0, lo=0),
                 number("noise_prior_scale", 1.0, lo=0)),
    "bernoulli": (),
    "categorical": (integer("num_classes", None, lo=2, hi=MAX_SIZE),),
}
"""Likelihood family → its keys (see :mod:`pyrobnn.model.likelihoods`)."""

DATA_HINTS: dict[str, Field] = {f.name: f for f in (
    text("name"), text("root"), text("path"), text("task"),
    integer("n_train", lo=1), integer("n_test", lo=0), integer("seed", lo=0, hi=MAX_SEED), integer("split", lo=0),
    number("test_fraction", lo=0, hi=1, lo_open=False), number("noise", lo=0, lo_open=False),
    flag("flatten"), flag("standardize"), flag("normalize"),
)}
"""Types of the loader arguments that several loaders share; others go to the loader as given."""

METHODS = ("svi", "nuts", "hmc", "laplace")
INFERENCE_FIELDS = (
    text("name", None, doc="defaults to the file name"),
    text("description", ""),
    choice("method", METHODS, "svi"),
    integer("seed", 0, lo=0, hi=MAX_SEED),
    text("device", "auto", doc='"auto", "cpu", "cuda" or "cuda:<index>"'),
    choice("dtype", ("float32", "float64"), None, doc="default: follow the data"),
)

_INIT_SCALE = number("init_scale", 0.01, lo=0, doc="initial posterior standard deviation")
GUIDE_FAMILIES: dict[str, tuple[Field, ...]] = {
    "meanfield": (_INIT_SCALE,),
    "ard": (_INIT_SCALE,),
    "delta": (),
    "weight_noise": (number("init_scale", 0.075, lo=0, doc="the fixed weight-noise sigma"),),
    "auto_normal": (_INIT_SCALE,),
    "auto_lowrank": (_INIT_SCALE, integer("rank", None, lo=1, doc="default: Pyro's sqrt(D)")),
}
"""Guide family → its keys (see :mod:`pyrobnn.infer.guides`; ``auto_*`` are Pyro autoguides)."""

SVI_FIELDS = (
    integer("epochs", _SVI.epochs, lo=1),
    integer("batch_size", _SVI.batch_size, lo=1),
    choice("optimizer", tuple(OPTIMIZERS), _SVI.optimizer),
    number("lr", _SVI.lr, lo=0, doc="default: the optimizer's"),
    choice("kl", SCHEDULES, _SVI.kl),
    integer("anneal_epochs", _SVI.anneal_epochs, lo=1),
    choice("elbo", ELBOS, _SVI.elbo),
    integer("num_particles", _SVI.num_particles, lo=1),
    flag("vectorize_particles", _SVI.vectorize_particles),
    flag("empirical_bayes", _SVI.empirical_bayes),
    integer("checkpoint_every", _SVI.checkpoint_every, lo=1),
    flag("shuffle", _SVI.shuffle),
    integer("check_finite_every", _SVI.check_finite_every, lo=1, doc="steps between reads of the loss's finiteness flag"),
)
"""The ``[svi]`` table: the fields of :class:`pyrobnn.infer.svi_config.SVIConfig` (its defaults), but for
``optimizer_kwargs`` and ``max_plate_nesting``, which only a call of ``fit_svi`` sets."""
SVI_CALL_ONLY = ("optimizer_kwargs", "max_plate_nesting")

_LAPLACE = LaplaceSettings()
LAPLACE_FIELDS = (
    choice("subset", SUBSETS, _LAPLACE.subset),
    choice("structure", STRUCTURES, _LAPLACE.structure),
    number("prior_precision", _LAPLACE.prior_precision, lo=0, doc="default: tuned by the marginal likelihood"),
    choice("predictive", PREDICTIVES, _LAPLACE.predictive),
    integer("epochs", _LAPLACE.epochs, lo=1, doc="of the MAP fit"),
    integer("batch_size", _LAPLACE.batch_size, lo=1),
    choice("optimizer", tuple(OPTIMIZERS), _LAPLACE.optimizer),
    number("lr", _LAPLACE.lr, lo=0),
)
"""The ``[laplace]`` table: the fields of :class:`pyrobnn.infer.laplace.LaplaceSettings`, its defaults."""

@dataclass(frozen=True)
class BanditSpec:
    """Settings of the contextual-bandit agents (:mod:`pyrobnn.apps.bandits`, see
    :data:`BANDIT_FIELDS`): a network agent keeps the last ``buffer_size`` interactions and is
    trained every ``train_every`` of them by ``svi.epochs`` passes of :func:`pyrobnn.fit_svi`;
    the linear agents' Normal-inverse-gamma prior has ``lambda_prior``, ``a0``, ``b0``."""

    buffer_size: int = 4096
    train_every: int = 64
    lambda_prior: float = 0.25
    a0: float = 6.0
    b0: float = 6.0


_BANDIT = BanditSpec()
BANDIT_FIELDS = (
    integer("buffer_size", _BANDIT.buffer_size, lo=1, doc="the most recent interactions an agent's network is trained on"),
    integer("train_every", _BANDIT.train_every, lo=1, doc="interactions between two trainings (svi.epochs passes over the buffer)"),
    number("lambda_prior", _BANDIT.lambda_prior, lo=0, doc="precision scale λ of the linear agents' prior β | σ² ~ N(0, σ²/λ I)"),
    number("a0", _BANDIT.a0, lo=0, doc="shape of the linear agents' inverse-gamma prior on σ²"),
    number("b0", _BANDIT.b0, lo=0, doc="scale of the linear agents' inverse-gamma prior on σ²"),
)

MCMC_TABLES = ("mcmc", "nuts", "hmc")
"""Names under which the MCMC settings may be written (one per file)."""
MCMC_FIELDS = (
    integer("num_samples", _NUTS.num_samples, lo=1),
    integer("warmup", _NUTS.warmup, lo=0),
    integer("chains", _NUTS.chains, lo=1),
    number("target_accept", _NUTS.target_accept, lo=0, hi=1),
    integer("max_tree_depth", _NUTS.max_tree_depth, lo=1, hi=MAX_TREE_DEPTH),
    flag("jit", _NUTS.jit),
    number("step_size", _NUTS.step_size, lo=0,
           doc="initial step size (adapted during warmup); default: found by doubling"),
    integer("num_steps", _NUTS.num_steps, lo=1,
            doc="leapfrog steps per HMC trajectory; default: a trajectory length of 2π"),
    choice("init", ("model", "median"), None, doc="start at the network's initial weights or the prior median"),
    choice("backend", BACKENDS, None, doc="default: torch for a BNN"),
    choice("chain_method", CHAIN_METHODS, None),
    integer("checkpoint_every", _NUTS.checkpoint_every, lo=1,
            doc="iterations between checkpoints of a command-line fit (torch backend; also after every warm-up window)"),
)

# ============================================================================ dataclasses


@dataclass(frozen=True)
class LayerSpec:
    """One entry of ``model.layers``.

    ``kind`` is "linear", "conv2d", "activation" or "flatten"; ``size`` is
    ``(in_features, out_features)`` or ``(in_channels, out_channels, kernel_size)``.
    """

    kind: str
    size: tuple[int, ...] = ()
    activation: str | None = None
    bias: bool = True
    bayesian: bool = True
    stride: int = 1
    padding: int = 0

    @property
    def has_weights(self) -> bool:
        return self.kind in LAYER_KINDS

    @property
    def is_bayesian(self) -> bool:
        return self.has_weights and self.bayesian

    def describe(self) -> str:
        if self.kind == "activation":
            return f'the activation "{self.activation}"'
        if self.kind == "flatten":
            return '"flatten"'
        return f"a{'' if self.bayesian else ' deterministic'} {self.kind} layer {list(self.size)}"


@dataclass(frozen=True)
class PriorSpec:
    """A prior family and its hyperparameters (``params``, defaults filled in).

    ``per_layer``: adaptive hyperparameters fitted per layer rather than per network.
    ``layers``: the layer indices an override applies to (``None`` for the network-wide
    prior); ``overrides``: further priors on some layers, applied in order (later wins).
    """

    family: str
    params: dict[str, Any] = field(default_factory=dict)
    per_layer: bool = False
    layers: tuple[int, ...] | None = None
    overrides: tuple["PriorSpec", ...] = ()


@dataclass(frozen=True)
class LikelihoodSpec:
    """``family`` gaussian | bernoulli | categorical; for gaussian ``noise`` (fixed | learned |
    heteroscedastic), ``scale`` and ``noise_prior_scale``; for categorical ``num_classes``."""

    family: str
    noise: str | None = None
    scale: float | None = None
    noise_prior_scale: float | None = None
    num_classes: int | None = None

    @property
    def task(self) -> str:
        return {v: k for k, v in TASK_LIKELIHOOD.items()}[self.family]

    @property
    def num_outputs(self) -> int:
        """Network outputs this likelihood reads."""
        if self.family == "categorical":
            return int(self.num_classes)
        return 2 if self.family == "gaussian" and self.noise == "heteroscedastic" else 1

    def describe(self) -> str:
        if self.family == "gaussian":
            extra = " (mean and scale)" if self.noise == "heteroscedastic" else ""
            return f"a gaussian likelihood with {self.noise} noise{extra}"
        if self.family == "bernoulli":
            return "a bernoulli likelihood (one logit)"
        return f"a categorical likelihood over {self.num_classes} classes (one logit per class)"


@dataclass(frozen=True)
class DataSpec:
    """A data source of :func:`pyrobnn.data.load` and the keyword arguments for its loader."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def facts(self) -> DataFacts:
        """Task, classes and input shape, as far as known without loading."""
        return data_facts(self.source, self.options)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec.  ``path`` is the file it was read from (``None`` for a dict),
    ``source_text`` its TOML text (with overrides applied, rendered), ``overrides`` the
    ``key.path=value`` strings applied."""

    name: str
    layers: tuple[LayerSpec, ...]
    prior: PriorSpec
    likelihood: LikelihoodSpec
    data: DataSpec | None = None
    description: str = ""
    site_layout: str = "packed"
    check_memory: bool = True
    path: str | None = field(default=None, compare=False)
    source_text: str = field(default="", compare=False, repr=False)
    overrides: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class GuideSpec:
    """``family`` meanfield | ard | delta | weight_noise | auto_normal | auto_lowrank;
    ``init_scale`` (the fixed σ for weight_noise) and ``rank`` (auto_lowrank)."""

    family: str = "meanfield"
    init_scale: float | None = 0.01
    rank: int | None = None


@dataclass(frozen=True)
class MCMCSpec:
    """NUTS/HMC settings (arguments of :func:`pyrobnn.infer.mcmc.fit_nuts`, defaults from
    :class:`pyrobnn.infer.mcmc.NUTSConfig`; ``None``: its default).  ``frozen`` sets
    empirical-Bayes hyperparameters, which stay fixed while sampling: ``{"scale": 0.5}`` for every prior with that hyperparameter, or
    ``{4: {"scale": 0.1}}`` for the prior of layer 4.  ``hyperpriors`` samples them instead,
    in the same two forms with ``{"family": ..., <parameters>}`` tables as values."""

    num_samples: int = _NUTS.num_samples
    warmup: int = _NUTS.warmup
    chains: int = _NUTS.chains
    target_accept: float = _NUTS.target_accept
    max_tree_depth: int = _NUTS.max_tree_depth
    jit: bool = _NUTS.jit
    step_size: float | None = _NUTS.step_size
    num_steps: int | None = _NUTS.num_steps
    init: str | None = None
    backend: str | None = None
    chain_method: str | None = None
    checkpoint_every: int = _NUTS.checkpoint_every
    frozen: dict[str | int, Any] = field(default_factory=dict)
    hyperpriors: dict[str | int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceSpec:
    """A validated inference spec: ``method`` svi | nuts | hmc | laplace, ``seed``, ``device``,
    ``dtype``, and the ``guide``, ``svi``, ``mcmc`` and ``laplace`` settings (all present, defaults
    filled in, whatever the method).  ``path``/``source_text``/``overrides`` as in
    :class:`ModelSpec`."""

    name: str
    method: str = "svi"
    seed: int = 0
    device: str = "auto"
    dtype: str | None = None
    description: str = ""
    guide: GuideSpec = GuideSpec()
    svi: SVIConfig = SVIConfig()
    mcmc: MCMCSpec = MCMCSpec()
    laplace: LaplaceSettings = LaplaceSettings()
    bandit: BanditSpec = BanditSpec()
    path: str | None = field(default=None, compare=False)
    source_text: str = field(default="", compare=False, repr=False)
    overrides: tuple[str, ...] = field(default=(), compare=False)


# ============================================================================ model validation

_SHORTHAND = "a table, or a family name as a string"


def _family_table(ctx: Context, key: str, raw: Any, what: str) -> Mapping:
    """``"laplace"`` is short for ``{ family = "laplace" }``."""
    if isinstance(raw, str):
        return {"family": raw}
    return check_table(ctx, key, raw, f"{what}: {_SHORTHAND}")


def _read_family(ctx: Context, prefix: str, raw: Mapping, families: Mapping[str, tuple[Field, ...]], what: str,
                 default: Any, common: tuple[Field, ...] = (), extra: tuple[str, ...] = (),
                 missing_note: str = "") -> dict[str, Any]:
    """Read a table whose keys depend on its ``family``: the common fields, then the family's."""
    fam_field = choice("family", tuple(families), default)
    fam = fam_field.check(ctx, join(prefix, "family"), raw["family"]) if "family" in raw else default
    if fam is None:
        ctx.fail(join(prefix, "family"), f"missing; expected {fam_field.expected}{missing_note}")
    fields = (fam_field, *common, *families[fam])
    own = {f.name for f in fields}
    owners: dict[str, list[str]] = {}
    for other, ofields in families.items():
        for f in ofields:
            if f.name not in own:
                owners.setdefault(f.name, []).append(f'"{other}"')
    others = {k: f'not a key of the "{fam}" {what} (it belongs to {", ".join(v)})' for k, v in owners.items()}
    return read_table(ctx, prefix, raw, fields, f'[{prefix}] with family "{fam}"', others, extra)


def _read_layer(ctx: Context, key: str, item: Any) -> LayerSpec:
    names = sorted(ACTIVATIONS)
    if isinstance(item, str):
        if item in ACTIVATIONS:
            return LayerSpec("activation", activation=item)
        if item == "flatten":
            return LayerSpec("flatten")
        ctx.fail(key, f'expected an activation ({", ".join(names)}), "flatten" or a layer table such as '
                      f"{{ linear = [in, out] }}{did_you_mean(item, names + ['flatten'])}", item)
    if not isinstance(item, Mapping):
        ctx.fail(key, "expected an activation name or a layer table such as { linear = [in, out] }", item)
    kinds = [k for k in item if k in LAYER_KINDS]
    if len(kinds) != 1:
        guess = next((g for g in (did_you_mean(k, LAYER_KINDS) for k in item) if g), "") if not kinds else ""
        ctx.fail(key, f"expected a layer table with exactly one of {', '.join(LAYER_KINDS)}{guess}", item)
    kind = kinds[0]
    n, what, options = LAYER_KINDS[kind]
    size = item[kind]
    if not (isinstance(size, (list, tuple)) and len(size) == n
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE for v in size)):
        ctx.fail(join(key, kind), f"expected {what}: {n} integers >= 1 (and <= {MAX_SIZE})", size)
    opts = read_table(ctx, key, item, options, f"a {kind} layer", extra=(kind,))
    return LayerSpec(kind, tuple(size), **opts)


def _read_layers(ctx: Context, raw: Any) -> tuple[LayerSpec, ...]:
    if not isinstance(raw, (list, tuple)) or not raw:
        ctx.fail("model.layers", 'expected a non-empty list of layers, e.g. [{ linear = [1, 50] }, "tanh", '
                                 "{ linear = [50, 1] }]", raw)
    layers = tuple(_read_layer(ctx, join("model.layers", i), item) for i, item in enumerate(raw))
    if not any(layer.is_bayesian for layer in layers):
        ctx.fail("model.layers", "expected at least one Bayesian layer (linear or conv2d without "
                                 "bayesian = false)", raw)
    return layers


def _layer_key(i: int, layer: LayerSpec) -> str:
    key = join("model.layers", i)
    return join(key, layer.kind) if layer.has_weights else key


def _layer_value(layer: LayerSpec):
    if layer.has_weights:
        return list(layer.size)
    return layer.activation or "flatten"


def _propagate_shapes(ctx: Context, layers: tuple[LayerSpec, ...], facts: DataFacts):
    """Walk the layers with the shape of one example, failing where consecutive layers do not
    chain.  Returns the output shape (``None`` where unknown; entries may be ``None``)."""
    shape = facts.input_shape
    src = facts.label  # where ``shape`` comes from
    for i, layer in enumerate(layers):
        key, value = _layer_key(i, layer), _layer_value(layer)
        if layer.kind == "linear":
            if shape is not None:
                if len(shape) != 1:
                    ctx.fail(key, f'expected a flat input, but {src} has shape {_shape(shape)}: put "flatten" '
                                  "before it", value)
                if shape[0] is not None and shape[0] != layer.size[0]:
                    ctx.fail(key, f"expected in_features = {shape[0]} to match {src}", value)
            shape = (layer.size[1],)
        elif layer.kind == "conv2d":
            c_in, c_out, k = layer.size
            if shape is not None:
                if len(shape) != 3:
                    ctx.fail(key, f"expected an image input (channels, height, width), but {src} has shape "
                                  f"{_shape(shape)}", value)
                if shape[0] is not None and shape[0] != c_in:
                    ctx.fail(key, f"expected in_channels = {shape[0]} to match {src}", value)
                hw = []
                for d in shape[1:]:
                    if d is None:
                        hw.append(None)
                        continue
                    out = (d + 2 * layer.padding - k) // layer.stride + 1
                    if out < 1:
                        ctx.fail(key, f"expected kernel_size <= {d + 2 * layer.padding} for the "
                                      f"{_shape(shape)} output of {src}", value)
                    hw.append(out)
                shape = (c_out, *hw)
            else:
                shape = (c_out, None, None)
        elif layer.kind == "flatten":
            if shape is not None:
                if len(shape) != 3:
                    ctx.fail(key, f'expected an image (channels, height, width) before "flatten", but {src} '
                                  f"has shape {_shape(shape)}", value)
                shape = (math.prod(shape),) if None not in shape else (None,)
        else:
            continue
        src = f"the output of {join('model.layers', i)}"
    return shape


def _shape(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_task(ctx: Context, family: str, facts: DataFacts) -> None:
    if facts.task is not None and family != TASK_LIKELIHOOD[facts.task]:
        ctx.fail("likelihood.family", f'expected "{TASK_LIKELIHOOD[facts.task]}" for {facts.task} data '
                                      f"({facts.label} is a {facts.task} task)", family)


def _check_classes(ctx: Context, k: int | None, facts: DataFacts) -> None:
    if k is not None and facts.num_classes is not None and k != facts.num_classes:
        ctx.fail("likelihood.num_classes", f"expected {facts.num_classes} ({facts.label} has "
                                           f"{facts.num_classes} classes)", k)


def check_data_fits(spec: ModelSpec, facts: DataFacts, ctx: Context | None = None) -> None:
    """Check that data with these ``facts`` suits the model spec: the likelihood fits the task,
    the number of classes agrees, the first layer takes the input and the layers chain.
    Used once data is loaded, for sources whose content is not known in advance."""
    ctx = ctx or Context(spec.path or "<dict>")
    _check_task(ctx, spec.likelihood.family, facts)
    if spec.likelihood.family == "categorical":
        _check_classes(ctx, spec.likelihood.num_classes, facts)
    _check_outputs(ctx, spec.layers, _propagate_shapes(ctx, spec.layers, facts), spec.likelihood)


def _read_likelihood(ctx: Context, raw: Any, facts: DataFacts, out_shape) -> LikelihoodSpec:
    raw = _family_table(ctx, "likelihood", raw, "the likelihood")
    default = TASK_LIKELIHOOD.get(facts.task)
    values = _read_family(ctx, "likelihood", raw, LIKELIHOOD_FAMILIES, "likelihood", default,
                          missing_note=" (it can be left out only when [data] names a source of known task)")
    fam = values["family"]
    _check_task(ctx, fam, facts)
    if fam == "categorical":
        k = values.get("num_classes")
        _check_classes(ctx, k, facts)
        if k is None:
            k = facts.num_classes
        if k is None and out_shape is not None and len(out_shape) == 1 and (out_shape[0] or 0) >= 2:
            k = out_shape[0]
        if k is None:
            ctx.fail("likelihood.num_classes", "missing; expected an integer >= 2 (the number of classes is "
                                               "not known from the data source or the last layer)")
        values["num_classes"] = k
    values.pop("family")
    return LikelihoodSpec(fam, **values)


def _check_outputs(ctx: Context, layers, out_shape, lik: LikelihoodSpec) -> None:
    """The network's output must be flat with as many units as the likelihood reads."""
    if out_shape is None:
        return
    last = max(i for i, layer in enumerate(layers) if layer.has_weights)
    key, value = _layer_key(last, layers[last]), _layer_value(layers[last])
    k = lik.num_outputs
    if len(out_shape) != 1:
        ctx.fail(key, f'expected the network to end in a flat output of width {k} for {lik.describe()}; it ends '
                      f'with shape {_shape(out_shape)} (add "flatten" and a linear layer)', value)
    if out_shape[0] is not None and out_shape[0] != k:
        what = "out_features" if layers[last].kind == "linear" else "an output width"
        ctx.fail(key, f"expected {what} = {k} for {lik.describe()}", value)


def _read_prior(ctx: Context, prefix: str, raw: Any, layers: tuple[LayerSpec, ...], top: bool) -> PriorSpec:
    raw = _family_table(ctx, prefix, raw, "the prior")
    common = (flag("per_layer", False),)
    if not top:
        common += (Field("layers", "any", None),)
    values = _read_family(ctx, prefix, raw, PRIOR_FAMILIES, "prior", "normal" if top else None, common,
                          extra=("override",) if top else ())
    fam = values.pop("family")
    per_layer = values.pop("per_layer")
    chosen = _read_prior_layers(ctx, join(prefix, "layers"), values.pop("layers"), layers) if not top else None
    if fam == "scale_mixture" and not values["sigma2"] < values["sigma1"]:
        ctx.fail(join(prefix, "sigma2"), f"expected a number < {prefix}.sigma1 = {values['sigma1']!r} "
                                         "(the narrow component of the mixture)", values["sigma2"])
    overrides = ()
    if top and "override" in raw:
        entries = raw["override"]
        if isinstance(entries, Mapping):
            entries = [entries]
        if not isinstance(entries, (list, tuple)):
            ctx.fail(join(prefix, "override"), "expected [[prior.override]] tables with layers = [...] and a "
                                               "family", entries)
        overrides = tuple(_read_prior(ctx, join(join(prefix, "override"), i), e, layers, top=False)
                          for i, e in enumerate(entries))
    return PriorSpec(fam, values, per_layer, chosen, overrides)


def _read_prior_layers(ctx: Context, key: str, raw: Any, layers: tuple[LayerSpec, ...]) -> tuple[int, ...]:
    bayes = [i for i, layer in enumerate(layers) if layer.is_bayesian]
    expected = f"a non-empty list of indices into model.layers of Bayesian layers ({', '.join(map(str, bayes))})"
    if raw is None:
        ctx.fail(key, f"missing; expected {expected}")
    integers = all(isinstance(i, int) and not isinstance(i, bool) for i in raw) if isinstance(raw, (list, tuple)) else 0
    if not integers or not raw:
        ctx.fail(key, f"expected {expected}", raw)
    out = []
    for i in raw:
        j = i + len(layers) if i < 0 else i
        if not 0 <= j < len(layers):
            ctx.fail(key, f"expected {expected}; index {i} is out of range for {len(layers)} layers", raw)
        if not layers[j].is_bayesian:
            ctx.fail(key, f"expected {expected}; model.layers[{j}] is {layers[j].describe()}", raw)
        out.append(j)
    return tuple(dict.fromkeys(out))


def _read_data(ctx: Context, raw: Any) -> DataSpec:
    raw = check_table(ctx, "data", raw, "source = ... and the loader's arguments")
    sources = tuple(sorted(LOADERS))
    src = raw.get("source")
    if isinstance(src, str):
        src = src.replace("-", "_")
    source = choice("source", sources).check(ctx, "data.source", src) if "source" in raw else None
    if source is None:
        ctx.fail("data.source", f"missing; expected {choice('source', sources).expected}")
    params = inspect.signature(LOADERS[source]).parameters.values()
    allowed = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    options = {k: v for k, v in raw.items() if k != "source"}
    check_keys(ctx, "data", options, ["source", *allowed], f'[data] with source "{source}"')
    for p in params:
        if p.name in allowed and p.default is p.empty and p.name not in options:
            ctx.fail(join("data", p.name), f'missing; the "{source}" loader needs it')
    for k, v in options.items():
        if k in DATA_HINTS:
            DATA_HINTS[k].check(ctx, join("data", k), v)
    if source == "sklearn":
        choice("name", tuple(SKLEARN_DATASETS)).check(ctx, "data.name", options["name"])
    return DataSpec(source, options)


def validate_model(raw: Mapping, ctx: Context | None = None, default_name: str = "model") -> ModelSpec:
    """Check a parsed model spec and return it as a :class:`ModelSpec` (provenance fields empty)."""
    ctx = ctx or Context()
    check_keys(ctx, "", raw, ("model", "prior", "likelihood", "data"), "a model spec")
    if "model" not in raw:
        ctx.fail("model", "missing; expected a [model] table with layers = [...]")
    m = read_table(ctx, "model", check_table(ctx, "model", raw["model"], "name, site_layout, layers"),
                   MODEL_FIELDS, "[model]")
    layers = _read_layers(ctx, m["layers"])
    data = _read_data(ctx, raw["data"]) if "data" in raw else None
    facts = data.facts if data is not None else DataFacts("the data")
    out_shape = _propagate_shapes(ctx, layers, facts)
    likelihood = _read_likelihood(ctx, raw.get("likelihood", {}), facts, out_shape)
    _check_outputs(ctx, layers, out_shape, likelihood)
    prior = _read_prior(ctx, "prior", raw.get("prior", {}), layers, top=True)
    if m["check_memory"]:
        _check_model_memory(ctx, layers, prior)
    return ModelSpec(name=m["name"] or default_name, layers=layers, prior=prior, likelihood=likelihood, data=data,
                     description=m["description"], site_layout=m["site_layout"], check_memory=m["check_memory"])


def _check_model_memory(ctx: Context, layers: tuple[LayerSpec, ...], prior: PriorSpec) -> None:
    """SpecError naming the largest layer if the network cannot fit in the available memory
    (:func:`pyrobnn.model.memory.estimate_model`, the least any fit needs), before anything is built."""
    counts = {}
    for i, layer in enumerate(layers):
        if layer.kind == "linear":  # Bayesian layer objects allocate nothing: they only count
            counts[i] = Linear(*layer.size, bias=layer.bias).num_params
        elif layer.kind == "conv2d":
            counts[i] = Conv2d(*layer.size, bias=layer.bias).num_params
    weights = sum(n for i, n in counts.items() if layers[i].bayesian)
    per_weight = weights if "ard" in {prior.family, *(o.family for o in prior.overrides)} else 0
    est = estimate_model(weights, sum(n for i, n in counts.items() if not layers[i].bayesian), per_weight)
    try:
        check_fits(est, hint='set model.check_memory = false (command line: --set model.check_memory=false)')
    except InsufficientMemoryError as e:
        big = max(counts, key=counts.get)
        ctx.fail(_layer_key(big, layers[big]), f"expected a network that fits in memory ({counts[big]:,} weights in "
                                                f"this layer, {weights:,} in all): {e}", _layer_value(layers[big]))


# ============================================================================ inference validation

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def mcmc_table_name(raw: Mapping, ctx: Context | None = None) -> str:
    """Which of ``[mcmc]``, ``[nuts]``, ``[hmc]`` a document uses (``"mcmc"`` if none)."""
    present = [k for k in MCMC_TABLES if k in raw]
    if len(present) > 1:
        (ctx or Context()).fail(present[1], f"expected only one of [mcmc], [nuts], [hmc] (they hold the same "
                                            f"settings; [{present[0]}] is already given)", raw[present[1]])
    return present[0] if present else "mcmc"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read_frozen(ctx: Context, key: str, raw: Any) -> dict[str | int, Any]:
    """``{name: value}`` for every prior with that hyperparameter, ``{"<layer>": {name: value}}``
    for one layer's prior (the layer index becomes an int)."""
    raw = check_table(ctx, key, raw, "hyperparameter = value, or a table of them per layer index")
    out: dict[str | int, Any] = {}
    for k, v in raw.items():
        if isinstance(v, Mapping):
            if not re.fullmatch(r"\d+", str(k)):
                ctx.fail(join(key, k), "expected a number (the value held fixed), or a table of them under a "
                                       "layer index", v)
            for name, value in v.items():
                if not _is_number(value):
                    ctx.fail(join(join(key, k), name), "expected a number (the value held fixed)", value)
            out[int(k)] = dict(v)
        elif _is_number(v):
            out[k] = v
        else:
            ctx.fail(join(key, k), "expected a number (the value held fixed), or a table of them under a layer "
                                   "index", v)
    return out


_HYPER_EXPECTED = ('expected a table { family = "half_cauchy", scale = 1.0 } (families: '
                   + ", ".join(f"{f}({', '.join(p)})" for f, p in HYPERPRIOR_FAMILIES.items()) + ")")
#: the parameters of each hyperprior family as fields: loc any real number, the others > 0
HYPERPRIOR_FIELDS = {f: tuple(number(p) if p == "loc" else number(p, lo=0) for p in ps)
                     for f, ps in HYPERPRIOR_FAMILIES.items()}
_HYPER_PARAM = choice("hyperparameter", HYPER_PARAMETERS)


def _read_hyperprior(ctx: Context, key: str, raw: Any) -> dict:
    if not isinstance(raw, Mapping):
        ctx.fail(key, _HYPER_EXPECTED, raw)
    return _read_family(ctx, key, raw, HYPERPRIOR_FIELDS, "hyperprior", None)


def _read_hyperpriors(ctx: Context, key: str, raw: Any) -> dict[str | int, Any]:
    """``{name: {family, ...}}`` for every adaptive prior, ``{"<layer>": {name: {family, ...}}}``
    for one layer's prior (the layer index becomes an int)."""
    raw = check_table(ctx, key, raw, "hyperparameter = { family = ..., ... }, or a table of them per layer index")
    out: dict[str | int, Any] = {}
    for k, v in raw.items():
        if re.fullmatch(r"\d+", str(k)):
            v = check_table(ctx, join(key, k), v, "hyperparameter = { family = ..., ... } for this layer's prior")
            layer = {}
            for name, d in v.items():
                if name not in HYPER_PARAMETERS:
                    ctx.fail(join(join(key, k), name), f"expected {_HYPER_PARAM.expected}", d)
                layer[name] = _read_hyperprior(ctx, join(join(key, k), name), d)
            out[int(k)] = layer
        elif k in HYPER_PARAMETERS:
            out[k] = _read_hyperprior(ctx, join(key, k), v)
        else:
            hint = did_you_mean(str(k), list(HYPER_PARAMETERS))
            ctx.fail(join(key, k), f"expected {_HYPER_PARAM.expected}, or a layer index{hint}", v)
    return out


def validate_inference(raw: Mapping, ctx: Context | None = None, default_name: str = "inference") -> InferenceSpec:
    """Check a parsed inference spec and return it as an :class:`InferenceSpec`."""
    ctx = ctx or Context()
    mname = mcmc_table_name(raw, ctx)
    tables = ("inference", "guide", "svi") + ((mname,) if mname in raw else MCMC_TABLES) + ("laplace", "bandit")
    check_keys(ctx, "", raw, tables, "an inference spec",
               others={k: f"[{k}] and [{mname}] hold the same settings; expected only one of them"
                       for k in MCMC_TABLES if k != mname})
    inf = read_table(ctx, "inference", check_table(ctx, "inference", raw.get("inference", {}), "method, seed, device"),
                     INFERENCE_FIELDS, "[inference]")
    if not _DEVICE.match(inf["device"]):
        ctx.fail("inference.device", 'expected "auto", "cpu", "cuda", "cuda:<index>" or "mps"', inf["device"])
    g = _read_family(ctx, "guide", _family_table(ctx, "guide", raw.get("guide", {}), "the guide"), GUIDE_FAMILIES,
                     "guide", "meanfield")
    guide = GuideSpec(g["family"], g.get("init_scale"), g.get("rank"))
    svi_table = read_table(ctx, "svi", check_table(ctx, "svi", raw.get("svi", {}), "fit_svi settings"), SVI_FIELDS,
                           "[svi]")
    try:  # settings that are valid one by one but not together (e.g. a local estimator with particles)
        svi = SVIConfig(**svi_table)
    except ValueError as e:
        ctx.fail("svi", str(e))
    mraw = check_table(ctx, mname, raw.get(mname, {}), "NUTS/HMC settings")
    mc = read_table(ctx, mname, mraw, MCMC_FIELDS, f"[{mname}]", extra=("frozen", "hyperpriors"))
    frozen = _read_frozen(ctx, join(mname, "frozen"), mraw["frozen"]) if "frozen" in mraw else {}
    hyper = _read_hyperpriors(ctx, join(mname, "hyperpriors"), mraw["hyperpriors"]) if "hyperpriors" in mraw else {}
    laplace = LaplaceSettings(**read_table(ctx, "laplace", check_table(ctx, "laplace", raw.get("laplace", {}),
                                                                      "fit_laplace settings"),
                                           LAPLACE_FIELDS, "[laplace]"))
    bandit = BanditSpec(**read_table(ctx, "bandit", check_table(ctx, "bandit", raw.get("bandit", {}), "bandit settings"),
                                     BANDIT_FIELDS, "[bandit]"))
    return InferenceSpec(name=inf["name"] or default_name, method=inf["method"], seed=inf["seed"],
                         device=inf["device"], dtype=inf["dtype"], description=inf["description"],
                         guide=guide, svi=svi, mcmc=MCMCSpec(**mc, frozen=frozen, hyperpriors=hyper), laplace=laplace,
                         bandit=bandit)
