"""Prior hyperparameters during sampling: frozen at given values (:func:`_apply_frozen`) or
sampled with the weights under a hyperprior (:func:`hyperprior`, :func:`_resolve_hyperpriors`),
as in Neal's (1996) hierarchical BNNs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import biject_to

#: hyperparameters that can be given hyperpriors (of the priors whose ``given_hyperparameters`` list them)
HYPER_PARAMETERS = ("loc", "scale")


#: hyperprior families by name (specs use these names): their parameters, in order
HYPERPRIOR_FAMILIES = {
    "half_cauchy": ("scale",),
    "half_normal": ("scale",),
    "log_normal": ("loc", "scale"),
    "gamma": ("concentration", "rate"),
    "inverse_gamma": ("concentration", "rate"),
    "normal": ("loc", "scale"),
}


def hyperprior(family: str, **params):
    """A hyperprior by name, e.g. ``hyperprior("half_cauchy", scale=1.0)``: one of
    :data:`HYPERPRIOR_FAMILIES`, as a Pyro distribution (every parameter but ``loc`` must be
    positive)."""
    import pyro.distributions as dist

    if family not in HYPERPRIOR_FAMILIES:
        raise ValueError(f"unknown hyperprior family {family!r}; expected one of {sorted(HYPERPRIOR_FAMILIES)}")
    need = HYPERPRIOR_FAMILIES[family]
    if set(params) != set(need):
        raise ValueError(f"hyperprior {family!r} takes {list(need)}, got {sorted(params)}")
    for k, v in params.items():
        v = float(v)
        if not math.isfinite(v) or (k != "loc" and not v > 0):
            raise ValueError(f"hyperprior {family!r}: {k} must be a {'finite' if k == 'loc' else 'positive'} "
                             f"number, got {params[k]!r}")
    cls = {"half_cauchy": dist.HalfCauchy, "half_normal": dist.HalfNormal, "log_normal": dist.LogNormal,
           "gamma": dist.Gamma, "inverse_gamma": dist.InverseGamma, "normal": dist.Normal}[family]
    return cls(*(torch.tensor(float(params[k])) for k in need))


@dataclass(frozen=True)
class _Hyper:
    """A prior hyperparameter sampled with the weights: site ``name``, the prior instance it
    belongs to, which hyperparameter (``"loc"`` or ``"scale"``) and its hyperprior."""

    name: str
    prior: object
    param: str
    dist: object


def _on(dist, like):
    """``dist`` with its parameters on ``like``'s device and dtype (standard families)."""
    try:
        params = {k: torch.as_tensor(getattr(dist, k)).to(like) for k in dist.arg_constraints}
        return type(dist)(**params, validate_args=False)
    except Exception:  # noqa: BLE001 - an unusual distribution is used as given
        return dist


def _prior_layers(model, prior) -> list[int]:
    return [i for i in model.bayesian_layers if model.prior_of(i) is prior]


def _resolve_hyperpriors(model, hyperpriors, like) -> list[_Hyper]:
    """``hyperpriors`` as :func:`fit_nuts` takes it → one :class:`_Hyper` per (prior instance,
    hyperparameter); errors name the key."""
    if not isinstance(hyperpriors, dict):
        raise ValueError(f"hyperpriors must be a dict or None, got {type(hyperpriors).__name__}")
    if not hasattr(model, "prior_modules"):
        raise ValueError("hyperpriors= needs a pyrobnn BNN (a model with priors)")
    wanted = []  # (prior, param, dist, label)
    for key, val in hyperpriors.items():
        if isinstance(key, int) and not isinstance(key, bool):
            if not isinstance(val, dict):
                raise ValueError(f"hyperpriors[{key}] must be a dict {{hyperparameter: distribution}}, got {val!r}")
            wanted += [(model.prior_of(key), k, v, f"hyperpriors[{key}][{k!r}]") for k, v in val.items()]
        else:
            adaptive = [p for p in model.prior_modules if p.adaptive and p.given_hyperparameters]
            if not adaptive:
                raise ValueError(f"hyperpriors[{key!r}]: the model has no adaptive Normal or Laplace prior; use "
                                 f"{{layer: {{{key!r}: ...}}}} to give any layer's Normal or Laplace prior one")
            wanted += [(p, key, val, f"hyperpriors[{key!r}]") for p in adaptive]
    out: list[_Hyper] = []
    seen: dict[tuple[int, str], str] = {}
    every = model.bayesian_layers
    for prior, param, dist, label in wanted:
        if not prior.given_hyperparameters:
            raise ValueError(f"{label}: hyperpriors are supported for Normal and Laplace priors (and their adaptive "
                             f"variants), not {type(prior).__name__}")
        if param not in prior.given_hyperparameters:
            raise ValueError(f"{label}: unknown hyperparameter {param!r}; expected one of "
                             f"{list(prior.given_hyperparameters)}")
        if not isinstance(dist, torch.distributions.Distribution) or dist.batch_shape or dist.event_shape:
            raise ValueError(f"{label} must be a scalar torch/Pyro distribution (e.g. "
                             f"pyro.distributions.HalfCauchy(1.0)), got {dist!r}")
        if param == "scale" and not _positive_support(dist):
            raise ValueError(f"{label}: a scale needs a hyperprior on (0, ∞), got {type(dist).__name__} with "
                             f"support {dist.support}")
        key = (id(prior), param)
        layers = _prior_layers(model, prior)
        if key in seen:
            raise ValueError(f"{label}: {type(prior).__name__}.{param} already has a hyperprior ({seen[key]}); "
                             f"layers {layers} share one prior instance, so one hyperprior covers them all — for "
                             f"one per layer give each layer its own prior (BNN.set_prior(prior, per_layer=True))")
        seen[key] = label
        where = "" if layers == every else "layers." + "+".join(map(str, layers)) + "."
        out.append(_Hyper(f"hyper.{where}{param}", prior, param, _on(dist, like)))
    return out


def _positive_support(dist) -> bool:
    t = biject_to(dist.support)
    probe = t(torch.tensor([-30.0, 0.0, 30.0]))
    return bool((probe > 0).all())


def _apply_frozen(model, frozen) -> set:
    """Set hyperparameters of the model's priors before sampling.  ``frozen`` maps a buffer
    name (``"loc"``, ``"scale"``, ``"variance"``, ...) to a value for every adaptive prior that
    has that buffer, or a Bayesian layer index to such a dict for that layer's prior.  Returns
    the (id(prior), hyperparameter) pairs it set."""
    if not isinstance(frozen, dict):
        raise ValueError(f"frozen must be a dict of hyperparameter values or None, got {type(frozen).__name__}")
    if not hasattr(model, "prior_modules"):
        raise ValueError("frozen= needs a pyrobnn BNN (a model with priors)")
    targets = []
    for key, val in frozen.items():
        if isinstance(key, int):
            if not isinstance(val, dict):
                raise ValueError(f"frozen[{key}] must be a dict of hyperparameter values, got {val!r}")
            targets += [(model.prior_of(key), k, v, f"frozen[{key}][{k!r}]") for k, v in val.items()]
        else:
            adaptive = [p for p in model.prior_modules if p.adaptive]
            priors = [p for p in adaptive if key in dict(p.named_buffers())]
            if not priors:
                have = sorted({n for p in adaptive for n, _ in p.named_buffers()})
                raise ValueError(f"frozen[{key!r}]: no adaptive prior of this model has a hyperparameter {key!r}; "
                                 f"the adaptive priors have {have} (use {{layer: {{...}}}} to set any layer's prior)")
            targets += [(p, key, val, f"frozen[{key!r}]") for p in priors]
    for prior, name, val, label in targets:
        bufs = dict(prior.named_buffers())
        if name not in bufs:
            raise ValueError(f"{label}: {type(prior).__name__} has no hyperparameter {name!r}; it has {sorted(bufs)}")
        buf = bufs[name]
        new = torch.as_tensor(val, dtype=buf.dtype, device=buf.device)
        if buf.numel() and new.shape != buf.shape:
            new = new.expand(buf.shape)
        with torch.no_grad():
            if new.shape == buf.shape:
                buf.copy_(new)
            else:
                setattr(prior, name, new.clone())
    return {(id(prior), name) for prior, name, _, _ in targets}
