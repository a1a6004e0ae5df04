"""The :class:`BNN` container: layers + priors + likelihood, as one Pyro model."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Sequence

import pyro
import torch
from pyro.nn import PyroModule
from torch import nn

from ..utils.config import ConfigError, Configurable, build
from ..utils.hooks import Hook
from ..utils.validation import as_tensor, check_bool, check_choice, count_nonfinite
from . import layers as _layers
from . import likelihoods as _likelihoods
from . import priors as _priors
from .layers import Activation, BayesianLayer, Flatten
from .likelihoods import Likelihood
from .memory import OVERRIDE_HINT, check_fits, estimate_model
from .priors import Normal, Prior
from .sites import LAYOUTS, PriorPart, Segment, SitePrior

__all__ = ["BNN", "spec_loader"]

spec_loader = Hook(
    "BNN.from_spec", "a spec loader",
    "`import pyrobnn` installs pyrobnn.load_model as the loader; or call pyrobnn.spec.build_model("
    "pyrobnn.spec.load_model_spec(spec, overrides)) directly.")
"""Called as ``spec_loader(spec, overrides)`` by :meth:`BNN.from_spec`; spec building sits above the
model, so ``pyrobnn/__init__.py`` installs :func:`pyrobnn.load_model` here."""


def _subclasses(module, base) -> dict[str, type]:
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj.__module__ == module.__name__}


_LAYER_CLASSES = {**_subclasses(_layers, Configurable)}
_LIKELIHOOD_CLASSES = _subclasses(_likelihoods, Configurable)
_PRIOR_CLASSES = _subclasses(_priors, Configurable)


def _as_module(layer) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    if isinstance(layer, str):
        if layer == "flatten":
            return Flatten()
        return Activation(layer)
    raise TypeError(f"a layer must be an nn.Module or an activation name, got {type(layer).__name__}")



class BNN(PyroModule):
    """A Bayesian neural network as a Pyro model.

    ``BNN(layers, likelihood, prior)`` — ``layers`` is a sequence of :class:`~pyrobnn.Linear`,
    :class:`~pyrobnn.Conv2d` (Bayesian unless ``bayesian=False``), activation names
    (``"relu"``, ``"tanh"``, ``"elu"``, ``"sigmoid"``, ``"softplus"``), ``"flatten"``, or any
    deterministic ``nn.Module``.  Calling the model, ``net(x, y=None, n_data=None)``, samples
    the weight sites, runs the network and observes ``y`` under the likelihood inside
    ``pyro.plate("data", size=n_data)`` (``n_data`` is the full data-set size when ``x`` is a
    minibatch).

    ``site_layout`` chooses how weights map to sample sites: ``"packed"`` (default, one flat
    site ``"weights"`` — the fastest under Pyro), ``"layer"`` (``"layers.<i>"``) or
    ``"tensor"`` (``"layers.<i>.weight"``, ``"layers.<i>.bias"``).  Whatever the layout,
    :meth:`unpack` names weights by layer.

    ``check_memory`` (default True): refuse, before anything weight-sized is allocated, a
    network whose weights cannot fit in the available memory (the least any fit needs, see
    :func:`pyrobnn.model.memory.estimate_model`); the fits check their own, larger, need
    unless given ``check_memory=False`` and follow this setting by default.
    """

    def __init__(self, layers: Sequence, likelihood: Likelihood, prior: Prior | None = None,
                 site_layout: str = "packed", check_memory: bool = True):
        super().__init__()
        check_choice("site_layout", site_layout, LAYOUTS)
        if not isinstance(likelihood, Likelihood):
            raise TypeError(f"likelihood must be a pyrobnn Likelihood, got {type(likelihood).__name__}")
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(f"prior must be a pyrobnn prior, got {type(prior).__name__}")
        if isinstance(layers, (str, nn.Module)) or not isinstance(layers, Iterable):
            raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
        self.check_memory = check_bool("check_memory", check_memory)
        self.layers = nn.ModuleList([_as_module(layer) for layer in layers])
        # the names of each Bayesian layer's weight and bias in unpack's output ((None, None) for the others)
        self._weight_keys = [(f"layers.{i}.weight", f"layers.{i}.bias") if isinstance(layer, BayesianLayer)
                             and layer.bayesian else (None, None) for i, layer in enumerate(self.layers)]
        # what network() runs per layer: a Bayesian layer's functional form with the names of its weights,
        # another layer as a module (looked up once: network() runs at every SVI step)
        self._calls = tuple((i, layer.functional if w is not None else layer, w, b)
                            for i, (layer, (w, b)) in enumerate(zip(self.layers, self._weight_keys)))
        self.likelihood = likelihood
        self.site_layout = site_layout
        self.register_buffer("_anchor", torch.zeros(()))  # follows .to(device, dtype)
        self.segments: list[Segment] = []
        self.site_sizes: dict[str, int] = {}
        self._build_segments()
        if not self.segments:
            raise ValueError("a BNN needs at least one Bayesian layer (Linear/Conv2d with bayesian=True)")
        if self.check_memory:  # before a per-weight prior allocates its hyperparameters
            per_weight = self.num_weights if prior is not None and prior.per_weight else 0
            check_fits(estimate_model(self.num_weights, self._num_parameters(), per_weight),
                       hint=OVERRIDE_HINT.replace("check_memory=False", "check_memory=False to BNN(...)"))
        self.prior_modules = nn.ModuleList()
        self._segment_prior: list[Prior] = [None] * len(self.segments)
        self.set_prior(Normal(0.0, 1.0) if prior is None else prior)
        self.spec = None  # the parsed spec this network was built from, if any

    # ------------------------------------------------------------------ structure
    def _build_segments(self):
        offsets: dict[str, int] = {}
        for i, layer in enumerate(self.layers):
            if not (isinstance(layer, BayesianLayer) and layer.bayesian):
                continue
            for pname, shape in layer.param_shapes().items():
                site = {"packed": "weights", "layer": f"layers.{i}", "tensor": f"layers.{i}.{pname}"}[self.site_layout]
                start = offsets.get(site, 0)
                n = 1
                for d in shape:
                    n *= d
                self.segments.append(Segment(f"layers.{i}.{pname}", i, site, start, start + n, tuple(shape)))
                offsets[site] = start + n
        self.site_sizes = offsets
        self._site_segments = {site: [g for g in self.segments if g.site == site] for site in offsets}
        self._split_sizes = {site: [g.numel for g in segs] for site, segs in self._site_segments.items()}
        self._init_infer = {site: {"init_fn": self._make_init_fn(site)} for site in offsets}

    @property
    def bayesian_layers(self) -> list[int]:
        """Indices of the Bayesian layers."""
        return sorted({s.layer for s in self.segments})

    @property
    def num_weights(self) -> int:
        return sum(self.site_sizes.values())

    @property
    def weight_sites(self) -> list[str]:
        return list(self.site_sizes)

    def latent_site_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every latent sample site (what a guide for this network must cover)."""
        return {**{site: (n,) for site, n in self.site_sizes.items()}, **dict(self.likelihood.latent_shapes())}

    def _num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ shapes and memory
    def layer_shapes(self, input_shape: Sequence[int]) -> list[tuple[int, ...] | None]:
        """Output shape of one example after each layer, for one example of ``input_shape``
        (``None`` from the first module whose output shape cannot be told, e.g. a user's own).
        ValueError naming the layer if a layer cannot take its input."""
        shape: tuple[int, ...] | None = tuple(int(d) for d in input_shape)
        out: list[tuple[int, ...] | None] = []
        for i, layer in enumerate(self.layers):
            if shape is not None and hasattr(layer, "output_shape"):
                try:
                    shape = tuple(layer.output_shape(shape))
                except ValueError as e:
                    raise ValueError(f"layers.{i} ({layer!r}) {e}") from None
            else:
                shape = None
            out.append(shape)
        return out

    def memory_facts(self, input_shape: Sequence[int] | None = None) -> dict[str, int]:
        """Sizes that memory estimates need (:mod:`pyrobnn.model.memory`): ``num_weights``,
        ``num_parameters`` (deterministic), ``per_weight_hyperparameters`` (prior buffers) and
        ``activations_per_example`` (inputs and every layer's output for one example of
        ``input_shape``; layers of unknown output count as wide as the widest known one)."""
        acts = 0
        if input_shape is not None:
            shapes = [tuple(input_shape), *self.layer_shapes(input_shape)]
            sizes = [math.prod(s) for s in shapes if s is not None]
            acts = sum(sizes) + max(sizes, default=0) * sum(s is None for s in shapes)
        hyper = sum(b.numel() for p in self.prior_modules for b in p.buffers() if b.dim() > 0)
        return {"num_weights": self.num_weights, "num_parameters": self._num_parameters(),
                "per_weight_hyperparameters": hyper, "activations_per_example": acts}

    @property
    def latent_sites(self) -> list[str]:
        """Every latent sample site of the model: weight sites, then the likelihood's."""
        return self.weight_sites + list(self.likelihood.latent_shapes())

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    # ------------------------------------------------------------------ priors
    def set_prior(self, prior: Prior, layers: Iterable[int] | None = None, per_layer: bool = False) -> "BNN":
        """Set ``prior`` on the Bayesian layers ``layers`` (all by default).

        One prior instance shares its hyperparameters across all the weights it covers
        (e.g. an adaptive prior fitted per network); with ``per_layer=True`` each layer gets
        its own copy.  Site names and shapes do not change, so an existing guide keeps working.
        """
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a pyrobnn prior, got {type(prior).__name__}")
        bayes = self.bayesian_layers
        chosen = bayes if layers is None else [int(i) for i in layers]
        for i in chosen:
            if i not in bayes:
                raise ValueError(f"layer {i} is not a Bayesian layer; Bayesian layers are {bayes}")
        ref = self._anchor
        for i in chosen:
            p = copy.deepcopy(prior) if per_layer else prior
            p.to(device=ref.device, dtype=ref.dtype)
            for k, seg in enumerate(self.segments):
                if seg.layer == i:
                    self._segment_prior[k] = p
        self._rebuild_priors()
        return self

    def _rebuild_priors(self):
        distinct: list[Prior] = []
        for p in self._segment_prior:
            if not any(p is q for q in distinct):
                distinct.append(p)
        self.prior_modules = nn.ModuleList(distinct)
        # offsets of each segment inside its prior's per-weight hyperparameters
        used = {id(p): 0 for p in distinct}
        self._prior_offsets = []
        for seg, p in zip(self.segments, self._segment_prior):
            self._prior_offsets.append(used[id(p)])
            used[id(p)] += seg.numel
        for p in distinct:
            if p.per_weight:
                p.bind(used[id(p)])
        # one SitePrior per site, adjacent segments with the same prior merged into one part
        self._site_dists = {}
        for site, size in self.site_sizes.items():
            parts: list[PriorPart] = []
            for seg, p, off in zip(self.segments, self._segment_prior, self._prior_offsets):
                if seg.site != site:
                    continue
                last = parts[-1] if parts else None
                if last is not None and last.prior is p and last.stop == seg.start and last.prior_stop == off:
                    parts[-1] = PriorPart(p, last.start, seg.stop, last.prior_start, off + seg.numel)
                else:
                    parts.append(PriorPart(p, seg.start, seg.stop, off, off + seg.numel))
            self._site_dists[site] = SitePrior(tuple(parts), size)

    def prior_of(self, layer: int) -> Prior:
        """The prior instance on Bayesian layer ``layer``."""
        for seg, p in zip(self.segments, self._segment_prior):
            if seg.layer == layer:
                return p
        raise ValueError(f"layer {layer} is not a Bayesian layer; Bayesian layers are {self.bayesian_layers}")

    def site_prior(self, site: str) -> SitePrior:
        return self._site_dists[site]

    @property
    def has_adaptive_prior(self) -> bool:
        return any(p.adaptive for p in self.prior_modules)

    @torch.no_grad()
    def update_priors(self, loc_scale: Callable[[str], tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Empirical-Bayes step: set every adaptive prior's hyperparameters to their closed-form
        optimum given the posterior, whose per-site (loc, scale) ``loc_scale(site)`` returns
        (scale 0 for a point estimate).  Graves (2011) section 4; Basov eq. (5)."""
        cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for p in self.prior_modules:
            if not p.adaptive:
                continue
            locs, scales = [], []
            for seg, q in zip(self.segments, self._segment_prior):
                if q is not p:
                    continue
                if seg.site not in cache:
                    loc, scale = loc_scale(seg.site)
                    cache[seg.site] = (loc.detach(), scale.detach())
                loc, scale = cache[seg.site]
                locs.append(loc[seg.start:seg.stop])
                scales.append(scale[seg.start:seg.stop])
            loc = locs[0] if len(locs) == 1 else torch.cat(locs)
            scale = scales[0] if len(scales) == 1 else torch.cat(scales)
            p.update(loc, scale)

    # ------------------------------------------------------------------ initial values
    def _make_init_fn(self, site):
        # a bound method in a partial, not a closure, so that a network can be pickled
        return functools.partial(self._site_init_values, site)

    def _site_init_values(self, site: str) -> torch.Tensor:
        vals = []
        for seg in self.segments:
            if seg.site == site:
                layer = self.layers[seg.layer]
                name = seg.name.rsplit(".", 1)[1]
                vals.append(layer.init_values()[name].reshape(-1))
        return torch.cat(vals).to(device=self.device, dtype=self.dtype)

    def init_values(self) -> dict[str, torch.Tensor]:
        """A fresh initial value for every weight site (PyTorch's default layer init)."""
        return {site: spec["init_fn"]() for site, spec in self._init_infer.items()}

    # ------------------------------------------------------------------ forward
    def unpack(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Flat site values ``(*S, D)`` → weights by layer name, ``(*S, *shape)``."""
        out = {}
        for site, segs in self._site_segments.items():
            v = values[site]
            # one split per site: its backward is a single concatenation, where per-tensor
            # slicing would zero-fill a full-size gradient for every tensor
            pieces = torch.split(v, self._split_sizes[site], dim=-1) if len(segs) > 1 else (v,)
            lead = v.shape[:-1]
            for seg, piece in zip(segs, pieces):
                out[seg.name] = piece.reshape(*lead, *seg.shape)
        return out

    @property
    def weight_keys(self) -> list[tuple[str | None, str | None]]:
        """Per layer, the names of its weight and bias in :meth:`unpack`'s output ((None, None)
        for a layer without sampled weights: an activation, a deterministic layer)."""
        return self._weight_keys

    def network(self, x: torch.Tensor, values: dict[str, torch.Tensor], taps: dict | None = None) -> torch.Tensor:
        """Network output for flat weight values with leading sample dims ``(*S, D)``:
        returns ``(*S, N, k)`` (``(N, k)`` without sample dims).  ``taps``, a dict, receives
        ``{i: (input, output)}`` of every Bayesian layer ``i`` (curvature approximations such as
        K-FAC read them, and features are read there).  A Bayesian layer runs as its
        ``functional(x, weight, bias)`` — what its ``forward`` calls — without the module call
        and its hooks: this runs at every SVI step, where the call costs a tenth of a tiny
        network's time."""
        weights = self.unpack(values)
        h = x
        for i, run, wkey, bkey in self._calls:
            if wkey is not None:
                out = run(h, weights[wkey], weights.get(bkey))
                if taps is not None:
                    taps[i] = (h, out)
                h = out
            else:
                h = run(h)
        return h

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_data: int | None = None):
        values = {}
        for site, size in self.site_sizes.items():
            v = pyro.sample(site, self._site_dists[site], infer=self._init_infer[site])
            # inside plates (e.g. vectorised ELBO particles) the value is (*P, 1, D): the
            # trailing 1 is the slot of the data plate
            values[site] = v if v.dim() == 1 else v.squeeze(-2)
        latents = self.likelihood.sample_latents()
        out = self.network(x, values)
        return self.likelihood(out, y, n_data, latents)

    def predictive_distribution(self, x: torch.Tensor, draws: dict[str, torch.Tensor]):
        """Distribution of y for every draw: ``draws`` maps each latent site to ``(S, *shape)``;
        the result has batch shape (S, N).  Used by every predictive path."""
        out = self.network(x, {s: draws[s] for s in self.site_sizes})
        latents = {k: draws[k].reshape(-1, 1) for k in self.likelihood.latent_shapes()}
        return self.likelihood.distribution(out, latents)

    def check_data(self, x: torch.Tensor, y: torch.Tensor | None = None, names: tuple[str, str] = ("x", "y")) -> None:
        """Raise ValueError naming the argument (``names``: how the caller calls x and y) if
        (x, y) do not fit this network: x must have at least one row and, per row, the shape
        the first layer takes (the layers must chain up to as many outputs as the likelihood
        reads); y as many rows, and values the likelihood can observe; neither NaN nor inf.
        TypeError for what is not a tensor or a numeric numpy array."""
        xn, yn = names
        x = as_tensor(xn, x)
        y = None if y is None else as_tensor(yn, y)
        if x.dim() < 2:
            first = next((layer for layer in self.layers if hasattr(layer, "output_shape")), None)
            hint = f" (one column: {xn}.unsqueeze(-1))" if getattr(first, "in_features", None) == 1 else ""
            raise ValueError(f"{xn} must have one row per example, shape (N, ...), got shape {tuple(x.shape)}{hint}")
        if x.shape[0] == 0:
            raise ValueError(f"{xn} has no rows (shape {tuple(x.shape)}): expected at least one example")
        if torch.is_complex(x) or x.dtype == torch.bool:
            raise ValueError(f"{xn} must hold real numbers, got dtype {x.dtype}")
        try:
            shapes = self.layer_shapes(x.shape[1:])
        except ValueError as e:
            raise ValueError(f"{xn} of shape {tuple(x.shape)} does not fit the network: {e}") from None
        out, k = shapes[-1], self.likelihood.num_outputs()
        if out is not None and out != (k,):
            lik = type(self.likelihood).__name__
            raise ValueError(f"the network's output has shape {out} per example but the {lik} "
                             f"likelihood reads {k} output{'s' if k > 1 else ''} per example: the last layer must "
                             f"have {k} output{'s' if k > 1 else ''}")
        for name, t in ((xn, x), (yn, y)):
            bad = count_nonfinite(t) if t is not None else 0
            if bad:
                raise ValueError(f"{name} has {bad} non-finite value{'s' if bad > 1 else ''} (NaN or inf)")
        if y is not None:
            if y.dim() == 0 or y.shape[0] != x.shape[0]:
                rows = "no rows (a scalar)" if y.dim() == 0 else f"{y.shape[0]}"
                raise ValueError(f"{xn} has {x.shape[0]} rows but {yn} has {rows}")
            self.likelihood.check_targets(y, yn)

    def prepare_data(self, x, y=None, names: tuple[str, str] = ("x", "y")):
        """``(x, y)`` checked by :meth:`check_data` and ready for the model: numpy arrays become
        tensors (sharing memory), targets take the form the likelihood observes (integer or bool
        0/1 labels become floats for a Bernoulli likelihood, integer class labels int64).  The
        caller's tensors are never changed; converted ones are new."""
        x = as_tensor(names[0], x)
        y = None if y is None else as_tensor(names[1], y)
        self.check_data(x, y, names)
        if y is not None:
            y = self.likelihood.observed_form(y, x.dtype if torch.is_floating_point(x) else None)
        return x, y

    # ------------------------------------------------------------------ plain-data description
    def config(self) -> dict:
        """The network as plain data (JSON-serialisable), from which :meth:`from_config` builds an
        identical network (load its ``state_dict`` for the same parameter values): every layer's,
        the likelihood's and each prior's class and constructor arguments, which layers share
        each prior instance, the site layout.  Raises :class:`~pyrobnn.utils.config.ConfigError`
        naming the layer for a layer that is not a pyrobnn layer (a user's own ``nn.Module``)."""
        layers = []
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Configurable):
                raise ConfigError(f"layer {i} ({type(layer).__name__}) is not a pyrobnn layer, so this network cannot "
                                  f"be described as plain data; use pyrobnn's Linear, Conv2d, Flatten and activations")
            layers.append(layer.config())
        groups = []
        for prior in self.prior_modules:
            covered = sorted({seg.layer for seg, q in zip(self.segments, self._segment_prior) if q is prior})
            groups.append({"prior": prior.config(), "layers": covered})
        return {"class": "BNN", "layers": layers, "likelihood": self.likelihood.config(), "priors": groups,
                "site_layout": self.site_layout, "check_memory": self.check_memory}

    @classmethod
    def from_config(cls, config: dict) -> "BNN":
        """The network described by :meth:`config` (fresh parameters)."""
        if not isinstance(config, dict) or config.get("class") != "BNN" or not config.get("priors"):
            raise ConfigError(f"expected the configuration of a BNN (from BNN.config()), got {config!r:.200}")
        layers = [build(c, _LAYER_CLASSES, "layer") for c in config["layers"]]
        likelihood = build(config["likelihood"], _LIKELIHOOD_CLASSES, "likelihood")
        groups = config["priors"]
        net = cls(layers, likelihood, build(groups[0]["prior"], _PRIOR_CLASSES, "prior"),
                  site_layout=config.get("site_layout", "packed"), check_memory=config.get("check_memory", True))
        for group in groups[1:]:  # each further shared prior instance, on its own layers
            net.set_prior(build(group["prior"], _PRIOR_CLASSES, "prior"), layers=group["layers"])
        return net

    # ------------------------------------------------------------------ specs
    @classmethod
    def from_spec(cls, spec, overrides: Sequence[str] = ()) -> "BNN":
        """Build a network from a model spec: a TOML path, a bare name, a dict, or a parsed
        ``ModelSpec``, with ``key.path=value`` overrides; the same as :func:`pyrobnn.load_model`
        (reached through :data:`spec_loader`, which ``import pyrobnn`` installs)."""
        return spec_loader(spec, overrides)
