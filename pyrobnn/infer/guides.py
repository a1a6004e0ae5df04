"""Hand-written variational families.

Every guide is a :class:`~pyro.nn.PyroModule` that finds the model's latent sites by tracing
the model once (on its first call, or :meth:`SiteGuide.setup`), so it works on any Pyro model
whose latent sites are global — a :class:`~pyrobnn.BNN` with any site layout or a user's own
PyroModule with one site per tensor.  Constrained sites (a learned noise scale) are handled in
unconstrained space through :func:`torch.distributions.biject_to`.

* :class:`MeanField` — Bayes by Backprop (Blundell et al. 2015, section 3.2):
  w = μ + σ ∘ ε, σ = softplus(ρ).
* :class:`ARD` — Basov's γ-parameterisation, eq. (6): σ = softplus(ρ), μ = γ ∘ σ, so that with
  the ARD prior at its empirical-Bayes optimum KL = ½ Σ ln(1 + γ²).
* :class:`Delta` — a point estimate (MAP; maximum likelihood with the Flat prior).
* :class:`WeightNoise` — Graves (2011): Gaussian with a fixed σ, only μ is learned.

Besides sampling inside Pyro, each guide offers :meth:`SiteGuide.loc_scale` (per-site
location and scale, used by empirical-Bayes prior updates and pruning) and
:meth:`SiteGuide.sample_posterior` (S draws at once, outside Pyro).
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import biject_to
from torch.distributions.transforms import IndependentTransform, identity_transform

from ..model.priors import standard_normal_log_prob
from ..utils.config import Configurable
from ..utils.traces import latent_nodes
from ..utils.validation import check_choice, check_positive

__all__ = ["SiteGuide", "MeanField", "ARD", "Delta", "WeightNoise", "softplus_inverse", "init_to_model",
           "make_autoguide", "name_autoguide", "laplace_autoguide", "empty_laplace_autoguide", "GUIDES", "AUTOGUIDES"]


def softplus_inverse(x: torch.Tensor) -> torch.Tensor:
    """ρ with softplus(ρ) = x (x > 0), stable for small and large x."""
    return x + torch.log(-torch.expm1(-x))


def _positive(name: str, value) -> float:
    return check_positive(name, value)


def _is_identity(t) -> bool:
    while isinstance(t, IndependentTransform):
        t = t.base_transform
    return t is identity_transform


def init_to_model(site):
    """Initial value of a site: the model's own (a BNN offers its layers' initialisation through
    ``infer={"init_fn": ...}``), else the prior median.  Usable as ``init_loc_fn`` of Pyro's
    autoguides: ``AutoNormal(net, init_loc_fn=init_to_model)``."""
    init_fn = site["infer"].get("init_fn")
    if init_fn is not None:
        return init_fn()
    return init_to_median(site)




class ReparamNormal(dist.Normal):
    """A Normal that remembers the noise of its last ``rsample``: at that value,
    log q(w) = −½ ε² − log σ − ½ log 2π, which skips recomputing (w − μ)/σ.  Value and
    gradient equal Normal's (the quadratic term is −½ε² either way, with zero total
    derivative), only cheaper on large networks."""

    def rsample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        value = self.loc + eps * self.scale
        self._last = (value, eps)
        return value

    def log_prob(self, value):
        last = getattr(self, "_last", None)
        if last is not None and last[0] is value:
            eps = last[1]
            return standard_normal_log_prob(eps, self.scale)
        return super().log_prob(value)


@dataclass
class _Site:
    name: str
    key: str  # attribute-safe name
    shape: torch.Size  # unconstrained shape
    event_dim: int  # event dims of the unconstrained Normal
    transform: object
    frames: tuple  # (name, size, dim) of the site's vectorised plates
    value_shape: tuple = ()  # shape of the site's value in the model (constrained space)


class SiteGuide(Configurable, PyroModule):
    """Base class: discovers the model's latent sites and samples each from
    :meth:`site_distribution`.  Subclasses implement ``_init_site`` and ``site_distribution``
    and ``loc_scale``.  ``config()`` records the constructor's arguments but the model."""

    _config_skip = ("model",)

    def __init__(self, model):
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be a Pyro model (a callable such as a pyrobnn BNN), got "
                            f"{type(model).__name__}")
        self.__dict__["model"] = model  # not a submodule: its parameters are the model's own
        self._sites: list[_Site] | None = None

    # ------------------------------------------------------------------ setup
    @property
    def is_setup(self) -> bool:
        return self._sites is not None

    def setup(self, *args, **kwargs) -> "SiteGuide":
        """Trace the model once with these arguments and create the parameters."""
        with poutine.block(), InitMessenger(init_to_model):
            trace = poutine.trace(self.model).get_trace(*args, **kwargs)
        sites = []
        for name, site in latent_nodes(trace):
            frames = []
            for f in site["cond_indep_stack"]:
                full = getattr(f, "full_size", None) or f.size
                if f.size != full:
                    raise ValueError(
                        f"site {name!r} lies inside the subsampled plate {f.name!r}: these guides cover global "
                        f"latent variables only (local latents need an amortised guide)")
                if f.vectorized:
                    frames.append((f.name, full, f.dim))
            fn = site["fn"]
            transform = biject_to(fn.support)
            value = site["value"].detach()
            u = transform.inv(value)
            event_dim = fn.event_dim + transform.domain.event_dim - transform.codomain.event_dim
            if _is_identity(transform):
                transform = identity_transform
            s = _Site(name, name.replace(".", "__"), u.shape, event_dim, transform, tuple(frames), tuple(value.shape))
            self._init_site(s, u)
            sites.append(s)
        if not sites:
            raise ValueError("the model has no latent sample sites to put a guide on")
        self._sites = sites
        return self

    def check_model(self, model, name: str = "guide") -> None:
        """Raise ValueError if this guide (called ``name`` in the message) cannot be used with
        ``model``: its latent sites and their shapes — those it was set up for, or before set-up
        those of the network it was built for — must be the model's.  Models that do not list
        their sites (``latent_site_shapes``) are not checked."""
        want = model.latent_site_shapes() if hasattr(model, "latent_site_shapes") else None
        if want is None:
            return
        if self._sites is not None:
            have = {s.name: tuple(s.value_shape) for s in self._sites}
            when = "was set up for"
        elif hasattr(self.model, "latent_site_shapes"):
            have = self.model.latent_site_shapes()
            when = "was built for a network with"
        else:
            return
        want = {k: tuple(v) for k, v in want.items()}
        if have != want:
            def show(d):
                return ", ".join(f"{k} {v}" for k, v in d.items())
            raise ValueError(
                f"{name} ({type(self).__name__}) {when} the sites {{{show(have)}}} but the model has "
                f"{{{show(want)}}}: the guide belongs to another network; build it with this model, e.g. "
                f"pyrobnn.guides.{type(self).__name__}(model)")

    def _init_site(self, site: _Site, value: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _param(self, name, value):
        setattr(self, name, nn.Parameter(value.detach().clone()))

    @property
    def site_names(self) -> list[str]:
        self._require_setup()
        return [s.name for s in self._sites]

    def _site(self, name) -> _Site:
        self._require_setup()
        for s in self._sites:
            if s.name == name:
                return s
        raise KeyError(f"the guide has no site {name!r}; sites: {self.site_names}")

    def _require_setup(self):
        if self._sites is None:
            raise RuntimeError(f"{type(self).__name__} is not set up yet: call it once with the model's "
                               f"arguments, or call .setup(x, y)")

    # ------------------------------------------------------------------ sampling
    def site_distribution(self, site: _Site):  # pragma: no cover - abstract
        raise NotImplementedError

    def _constrained(self, site: _Site, base):
        d = base.to_event(site.event_dim) if site.event_dim else base
        if site.transform is identity_transform:
            return d
        return dist.TransformedDistribution(d, site.transform)

    def forward(self, *args, **kwargs):
        if self._sites is None:
            self.setup(*args, **kwargs)
        out = {}
        for s in self._sites:
            if s.frames:
                with ExitStack() as stack:
                    for name, size, dim in s.frames:
                        stack.enter_context(pyro.plate(name, size, dim=dim))
                    out[s.name] = pyro.sample(s.name, self.site_distribution(s))
            else:
                out[s.name] = pyro.sample(s.name, self.site_distribution(s))
        return out

    def loc_scale(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """Location and scale of site ``name`` in unconstrained space (scale 0 for a point mass)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample_posterior(self, num_samples: int) -> dict[str, torch.Tensor]:
        """``num_samples`` joint draws of every site, ``(S, *shape)``, in one pass per site."""
        self._require_setup()
        return {s.name: self.site_distribution(s).sample((int(num_samples),)) for s in self._sites}

    @torch.no_grad()
    def median(self) -> dict[str, torch.Tensor]:
        """The posterior median of every site (constrained space)."""
        self._require_setup()
        out = {}
        for s in self._sites:
            loc, _ = self.loc_scale(s.name)
            out[s.name] = loc if s.transform is identity_transform else s.transform(loc)
        return out


class MeanField(SiteGuide):
    """Diagonal Gaussian guide, Bayes by Backprop: σ = softplus(ρ) (Blundell et al. 2015).

    ``init_scale`` is the initial σ of every weight; locations start at the model's initial
    values (PyTorch's layer initialisation for a BNN)."""

    def __init__(self, model, init_scale: float = 0.01):
        super().__init__(model)
        self.init_scale = _positive("init_scale", init_scale)

    def _init_site(self, site, value):
        self._param(f"{site.key}_loc", value)
        self._param(f"{site.key}_rho", softplus_inverse(torch.full_like(value, self.init_scale)))

    def loc_scale(self, name):
        key = self._site(name).key
        return getattr(self, f"{key}_loc"), F.softplus(getattr(self, f"{key}_rho"))

    def site_distribution(self, site):
        loc = getattr(self, f"{site.key}_loc")
        scale = F.softplus(getattr(self, f"{site.key}_rho"))
        return self._constrained(site, ReparamNormal(loc, scale))


class ARD(SiteGuide):
    """Basov's γ-parameterised Gaussian guide, eq. (6): σ = softplus(ρ), μ = γ ∘ σ.

    Irrelevant weights can send both μ and σ to 0 without the 0/0 of μ/σ; with the
    :class:`~pyrobnn.priors.ARD` prior at δ² = σ² + μ² the KL is ½ Σ ln(1 + γ²)."""

    def __init__(self, model, init_scale: float = 0.01):
        super().__init__(model)
        self.init_scale = _positive("init_scale", init_scale)

    def _init_site(self, site, value):
        sigma = torch.full_like(value, self.init_scale)
        self._param(f"{site.key}_gamma", value / sigma)
        self._param(f"{site.key}_rho", softplus_inverse(sigma))

    def loc_scale(self, name):
        key = self._site(name).key
        sigma = F.softplus(getattr(self, f"{key}_rho"))
        return getattr(self, f"{key}_gamma") * sigma, sigma

    def site_distribution(self, site):
        sigma = F.softplus(getattr(self, f"{site.key}_rho"))
        loc = getattr(self, f"{site.key}_gamma") * sigma
        return self._constrained(site, ReparamNormal(loc, sigma))


class Delta(SiteGuide):
    """Point estimate: MAP under the model's prior, maximum likelihood under the Flat prior
    (Graves 2011's "Delta" posterior)."""

    def _init_site(self, site, value):
        self._param(f"{site.key}_value", value)

    def loc_scale(self, name):
        v = getattr(self, f"{self._site(name).key}_value")
        return v, torch.zeros_like(v)

    def site_distribution(self, site):
        v = getattr(self, f"{site.key}_value")
        if site.transform is not identity_transform:
            v = site.transform(v)
        return dist.Delta(v, event_dim=site.event_dim)

    @torch.no_grad()
    def sample_posterior(self, num_samples):
        self._require_setup()
        med = self.median()
        return {k: v.expand(int(num_samples), *v.shape).clone() for k, v in med.items()}


class WeightNoise(SiteGuide):
    """Graves (2011) weight noise: a Gaussian with learned μ and a fixed σ for every weight."""

    def __init__(self, model, sigma: float = 0.075):
        super().__init__(model)
        self.sigma = _positive("sigma", sigma)

    def _init_site(self, site, value):
        self._param(f"{site.key}_loc", value)

    def loc_scale(self, name):
        loc = getattr(self, f"{self._site(name).key}_loc")
        return loc, torch.full_like(loc, self.sigma)

    def site_distribution(self, site):
        loc = getattr(self, f"{site.key}_loc")
        return self._constrained(site, ReparamNormal(loc, torch.full_like(loc, self.sigma)))


GUIDES = {"meanfield": MeanField, "ard": ARD, "delta": Delta, "weight_noise": WeightNoise}

_AUTOGUIDE_IDS = itertools.count(1)

#: Pyro autoguides that :func:`make_autoguide` builds, and the arguments each takes
AUTOGUIDES = {
    "AutoNormal": ("init_scale",),
    "AutoLowRankMultivariateNormal": ("init_scale", "rank"),
    "AutoMultivariateNormal": ("init_scale",),
    "AutoIAFNormal": ("hidden_dim", "num_transforms"),
    "AutoLaplaceApproximation": (),
}


def make_autoguide(kind: str, model, init_scale: float = 0.01, rank: int | None = None,
                   hidden_dim: int | list | None = None, num_transforms: int = 1):
    """One of Pyro's autoguides (``kind``: the class name, a key of :data:`AUTOGUIDES`) on
    ``model``, started at the model's own initial values (a BNN's layer initialisation) rather
    than Pyro's default.  ``init_scale`` is the initial posterior standard deviation (AutoNormal,
    AutoLowRankMultivariateNormal, AutoMultivariateNormal), ``rank`` that of the low-rank factor
    (default √D), ``hidden_dim`` and ``num_transforms`` the autoregressive networks of
    AutoIAFNormal (default: one of width 3D + 1).  AutoLaplaceApproximation is a point estimate
    while SVI runs; :func:`~pyrobnn.fit_svi` replaces it at the end by the Gaussian
    ``N(ŵ, H⁻¹)`` with H the Hessian of the negative log joint at the MAP ŵ over the full data
    (Pyro's ``laplace_approximation``).

    What the site layout changes.  A :class:`~pyrobnn.BNN` packs all its weights into one
    sample site ``"weights"`` of D values (``site_layout="packed"``).  AutoNormal is diagonal,
    so it is mean-field whatever the layout.  The other autoguides are Pyro's
    ``AutoContinuous`` guides: they flatten *all* latent sites into one vector, so they are
    joint over every weight of the network under any layout — a full-rank guide is full-rank
    over all D weights, never block-diagonal per layer.  Its cost grows with D, not with a
    layer's size: AutoMultivariateNormal keeps a D×D Cholesky factor (D(D+1)/2 parameters; each
    step an O(D²) matrix–vector product and its log-determinant), AutoLaplaceApproximation
    computes a dense D×D Hessian (D backward passes) and inverts it (O(D³)), AutoIAFNormal's
    default autoregressive network has about 3D² weights per transform, and
    AutoLowRankMultivariateNormal D·(rank + 2).  A block-diagonal guide — one full-rank block
    per layer — needs sites per layer: build the network with ``site_layout="layer"`` and
    combine per-site guides (Pyro's ``AutoGuideList`` with ``poutine.block``); with the packed
    site there is only one block.

    Pyro keeps an autoguide's parameters in its global param store under the guide's name (the
    class name by default), so two autoguides in one process would share them; each gets its own
    name here.  That name is Pyro's private ``_pyro_name`` (no public way to set it exists);
    ``tests/test_svi.py`` pins that two guides made here keep separate parameters."""
    from pyro.infer import autoguide

    check_choice("kind", kind, AUTOGUIDES)
    if kind == "AutoNormal":
        guide = autoguide.AutoNormal(model, init_loc_fn=init_to_model, init_scale=init_scale)
    elif kind == "AutoLowRankMultivariateNormal":
        guide = autoguide.AutoLowRankMultivariateNormal(model, init_loc_fn=init_to_model, init_scale=init_scale,
                                                        rank=rank)
    elif kind == "AutoMultivariateNormal":
        guide = autoguide.AutoMultivariateNormal(model, init_loc_fn=init_to_model, init_scale=init_scale)
    elif kind == "AutoIAFNormal":
        # (AutoIAFNormal starts at its flow's initialisation: it takes no initial values)
        guide = autoguide.AutoIAFNormal(model, hidden_dim=hidden_dim, num_transforms=num_transforms)
    else:
        guide = autoguide.AutoLaplaceApproximation(model, init_loc_fn=init_to_model)
    name_autoguide(guide)
    args = {"init_scale": init_scale, "rank": rank, "hidden_dim": hidden_dim, "num_transforms": num_transforms}
    guide.autoguide_config = {"class": kind, "args": {k: args[k] for k in AUTOGUIDES[kind]}}
    return guide


def laplace_autoguide(guide, *args, **kwargs):
    """The Gaussian ``N(ŵ, H⁻¹)`` of a fitted ``AutoLaplaceApproximation`` (Pyro's
    ``laplace_approximation``, H the Hessian of −log p(w, D) at its point estimate ŵ for the
    model called with ``args``/``kwargs``: the full data), named as :func:`make_autoguide` names
    its guides.  ValueError naming the cause when H is not positive definite at ŵ (not a local
    maximum: train longer or use a stronger prior)."""
    try:
        out = guide.laplace_approximation(*args, **kwargs)
    except torch.linalg.LinAlgError as exc:
        raise ValueError(f"the Laplace approximation needs a positive-definite Hessian of the negative log joint at "
                         f"the point estimate, which is not one here (not a local maximum: train longer, lower the "
                         f"learning rate or use a stronger prior): {exc}") from None
    for name in ("loc", "scale", "scale_tril"):  # row-major, as a reloaded guide has them: the same draws bit for bit
        setattr(out, name, getattr(out, name).contiguous())
    name_autoguide(out)
    out.autoguide_config = {"class": "AutoMultivariateNormal", "args": {"laplace": True}}
    return out


def empty_laplace_autoguide(model, *args, **kwargs):
    """An ``AutoMultivariateNormal`` shaped as :func:`laplace_autoguide` makes one (buffers
    ``loc``, ``scale``, ``scale_tril``), to be filled from a saved ``state_dict``."""
    from pyro.infer.autoguide import AutoMultivariateNormal

    guide = AutoMultivariateNormal(model)
    guide._setup_prototype(*args, **kwargs)  # Pyro's own laplace_approximation sets the guide up this way
    d = guide.latent_dim
    ref = guide.loc
    for name in ("loc", "scale", "scale_tril"):
        delattr(guide, name)
    guide.register_buffer("loc", torch.zeros(d, dtype=ref.dtype, device=ref.device))
    guide.register_buffer("scale", torch.ones(d, dtype=ref.dtype, device=ref.device))
    guide.register_buffer("scale_tril", torch.eye(d, dtype=ref.dtype, device=ref.device))
    name_autoguide(guide)
    guide.autoguide_config = {"class": "AutoMultivariateNormal", "args": {"laplace": True}}
    return guide


def name_autoguide(guide) -> None:
    """Give an autoguide a name of its own in Pyro's param store (see :func:`make_autoguide`)."""
    guide._pyro_name = f"{type(guide).__name__}_{next(_AUTOGUIDE_IDS)}"
