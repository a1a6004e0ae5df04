"""The potential energy of a BNN on one packed unconstrained vector.

Every latent site of the model (the weights, and any sampled hyperparameter) is packed into one
vector z ∈ R^D, constrained sites through :func:`torch.distributions.biject_to` (w = T(z)).
The potential is the negative log joint in these coordinates,

    U(z) = −log p(T(z)) − log p(D | T(z)) − log |det ∂T/∂z|,

evaluated for a batch of chains z ∈ R^{C×D} at once (one row per chain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import InitMessenger, init_to_median
from torch.distributions import biject_to

from ...model.sites import SitePrior
from ...utils.rng import seeded
from ...utils.traces import latent_nodes
from ..guides import _is_identity, init_to_model

@dataclass(frozen=True)
class _Site:
    name: str
    shape: torch.Size  # constrained value shape
    ushape: torch.Size  # unconstrained shape
    start: int
    stop: int
    transform: object  # unconstrained → constrained
    identity: bool


def _layout(trace) -> tuple[list[_Site], dict]:
    sites, fns, start = [], {}, 0
    for name, node in latent_nodes(trace):
        fn = node["fn"]
        if fn.has_enumerate_support:
            raise ValueError(f"site {name!r} is discrete; NUTS/HMC need continuous latent sites")
        t = biject_to(fn.support)
        value = node["value"].detach()
        u = t.inv(value)
        n = u.numel()
        sites.append(_Site(name, value.shape, u.shape, start, start + n, t, _is_identity(t)))
        fns[name] = fn
        start += n
    if not sites:
        raise ValueError("the model has no latent sample sites to sample")
    return sites, fns


class PotentialEnergy:
    """U(z) = −log p(w(z), D) − log|det ∂w/∂z| for a batch of unconstrained vectors ``z``
    of shape (C, D): one row per chain, every latent site of the model packed into one
    vector (constrained sites through :func:`torch.distributions.biject_to`).

    The density is the model's own: each latent site's prior ``log_prob`` and the likelihood
    from :meth:`~pyrobnn.BNN.predictive_distribution`, summed over the data (full batch)."""

    def __init__(self, model, x, y, sites: list[_Site], fns: dict, hypers: tuple = ()):
        self.model, self.x, self.y = model, x, y
        self.sites, self.fns = sites, fns
        self.dim = sites[-1].stop
        self.hypers = tuple(hypers)
        hyper_priors = {id(h.prior) for h in self.hypers}
        #: weight sites one of whose priors has a sampled hyperparameter
        self._hyper_sites = {name for name, fn in fns.items() if isinstance(fn, SitePrior)
                             and any(id(part.prior) in hyper_priors for part in fn.parts)}
        covered = {id(part.prior) for name in self._hyper_sites for part in fns[name].parts}
        missing = [h.name for h in self.hypers if id(h.prior) not in covered]
        if missing:  # never sample a hyperparameter that no weight site's density uses
            raise ValueError(f"no weight site of the model uses the prior of {missing}")

    def constrain(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """(*S, D) unconstrained → {site: (*S, *shape)} constrained values."""
        batch = z.shape[:-1]
        out = {}
        for s in self.sites:
            u = z[..., s.start:s.stop].reshape(*batch, *s.ushape)
            out[s.name] = (u if s.identity else s.transform(u)).reshape(*batch, *s.shape)
        return out

    def unconstrain(self, values: dict[str, torch.Tensor], batch=()) -> torch.Tensor:
        parts = []
        for s in self.sites:
            v = values[s.name]
            u = v if s.identity else s.transform.inv(v)
            parts.append(u.reshape(*batch, -1))
        return torch.cat(parts, -1)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        c = z.shape[0]
        values, jac = {}, {}
        for s in self.sites:
            u = z[:, s.start:s.stop].reshape(c, *s.ushape)
            if s.identity:
                values[s.name] = u.reshape(c, *s.shape)
            else:
                values[s.name] = v = s.transform(u)
                jac[s.name] = s.transform.log_abs_det_jacobian(u, v).reshape(c, -1).sum(-1)
        # sampled hyperparameters, (C, 1) per chain, by prior
        bound: dict[int, dict[str, torch.Tensor]] = {}
        for h in self.hypers:
            bound.setdefault(id(h.prior), {})[h.param] = values[h.name].reshape(c, 1)
        lp = None
        for s in self.sites:
            v = values[s.name]
            if s.name in self._hyper_sites:
                term = self.fns[s.name].log_prob(v.reshape(c, -1), bound)
            else:
                term = self.fns[s.name].log_prob(v).reshape(c, -1).sum(-1)
            if s.name in jac:
                term = term + jac[s.name]
            lp = term if lp is None else lp + term
        like = self.model.predictive_distribution(self.x, values).log_prob(self.y)
        return lp + like.reshape(c, -1).sum(-1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return -self.log_density(z)


def _initial_values(model, x, y, chains, init, seed):
    """One trace of the model per chain under the init strategy: the model's own initial
    values (``init="model"``), Pyro's prior median (``"median"``) or given values."""
    if isinstance(init, dict) or init == "model":
        strategy = init_to_model
    elif init == "median":
        strategy = init_to_median
    else:
        raise ValueError(f"init must be 'model', 'median' or a dict of site values, got {init!r}")
    traces = []
    with seeded(0 if seed is None else seed):  # the caller's CPU and CUDA generators are left as they were
        for _ in range(chains):
            with poutine.block(), InitMessenger(strategy):
                traces.append(poutine.trace(model).get_trace(x, y))
    return traces


def _given_init(potential, init, chains, like):
    rows = []
    for s in potential.sites:
        if s.name not in init:
            names = [t.name for t in potential.sites]
            raise ValueError(f"init is missing site {s.name!r}; expected values for {names}")
        v = torch.as_tensor(init[s.name], dtype=like.dtype, device=like.device)
        if v.shape == s.shape:
            v = v.expand(chains, *s.shape)
        if v.shape != (chains, *s.shape):
            raise ValueError(f"init[{s.name!r}] must have shape {tuple(s.shape)} or {(chains, *s.shape)}, "
                             f"got {tuple(v.shape)}")
        rows.append((s, v))
    return potential.unconstrain({s.name: v for s, v in rows}, batch=(chains,))


def _build_potential(model, x, y, chains, init, seed, hypers, like):
    """The potential energy of the model's latent sites plus the sampled hyperparameters
    ``hypers`` (appended to the packed vector, each started at its prior's current value), and
    the initial unconstrained values (chains, D)."""
    traces = _initial_values(model, x, y, chains, init, seed)
    sites, fns = _layout(traces[0])
    start = sites[-1].stop
    hyper_init = {}
    for h in hypers:
        t = biject_to(h.dist.support)
        value = getattr(h.prior, h.param).detach().to(like).reshape(())
        if not bool(torch.isfinite(h.dist.log_prob(value))):
            raise ValueError(f"{h.name}: the prior's current {h.param} {float(value):.4g} lies outside the support "
                             f"of its hyperprior {h.dist}; set it with frozen= first")
        sites.append(_Site(h.name, value.shape, t.inv(value).shape, start, start + 1, t, _is_identity(t)))
        fns[h.name] = h.dist
        hyper_init[h.name] = value
        start += 1
    potential = PotentialEnergy(model, x, y, sites, fns, hypers)
    if isinstance(init, dict):
        z0 = _given_init(potential, {**hyper_init, **init}, chains, like)
    else:
        z0 = torch.stack([potential.unconstrain({s.name: tr.nodes[s.name]["value"].detach()
                                                 if s.name in tr.nodes else hyper_init[s.name] for s in sites})
                          for tr in traces]).to(like)
    return potential, z0
