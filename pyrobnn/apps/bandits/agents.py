"""Contextual-bandit agents, one interface: ``act(context) -> action`` and
``update(context, action, reward)``, plus ``state_dict``/``load_state_dict`` for checkpoints.

Randomness: an agent's decision at step ``t`` draws from a private ``torch.Generator`` seeded
with a seed made from the agent's seed and ``t`` (and a training at step ``t`` runs under
:func:`pyrobnn.utils.rng.seeded` with such a seed), so everything an agent does is a function of its seed, its
parameters and its buffer — a run resumed from a checkpoint takes the same actions as one never
stopped — and the caller's global random streams are never touched.  (Seeding the global
generators at every step would cost milliseconds: ``torch.manual_seed`` also seeds CUDA.)

* :class:`NetworkAgent` — a :class:`~pyrobnn.BNN` on the input context ⊕ one-hot(action),
  one output: the predicted reward (Blundell et al. 2015, section 5.3).  With
  ``thompson=True`` (BNN Thompson sampling) each decision draws *one* weight vector w ~ q from
  the current guide, w = μ + σ ∘ ε with the guide's per-site ``loc_scale`` (any pyrobnn guide:
  MeanField, ARD, WeightNoise), and takes argmax_a f_w(x ⊕ e_a); otherwise (ε-greedy on a point estimate,
  the Delta guide) it takes argmax_a of the guide's median, or with probability ε a uniformly
  random action.  The network is trained by SVI — the guide and prior come from the specs — every ``train_every`` interactions for ``svi.epochs`` passes over the last
  ``buffer_size`` interactions, with the ELBO of exactly those data (n_data = buffer length) and
  one optimiser kept across trainings (see :class:`NetworkAgent`).
  All A actions are scored in one batched forward pass of A rows, without a Pyro trace.
* :class:`UniformAgent` — a uniformly random action.
* :class:`LinFullPostAgent` — Thompson sampling with exact Bayesian linear regression per
  action on context ⊕ 1 (Riquelme et al. 2018), :class:`.linear.BayesianLinearRegression`.
* :class:`NeuralLinearAgent` — the last hidden layer of a point-estimate network (trained as
  the ε-greedy agents' is) as features z(x ⊕ e_a) of one Bayesian linear regression, Thompson
  sampling on it (Riquelme et al. 2018); the regression is recomputed on the buffer with the new
  features after every training and updated by one observation in between.
"""

from __future__ import annotations

import hashlib
import math
import time

import torch

from ...infer.elbo import elbo_terms, make_elbo
from ...infer.kl_schedule import kl_weight
from ...infer.svi import OPTIMIZERS, NonFiniteLossError, SVIConfig
from ...utils.rng import seeded
from ...utils.validation import ArgumentTypeError, check_int, check_probability
from .linear import BayesianLinearRegression

__all__ = ["Agent", "UniformAgent", "NetworkAgent", "LinFullPostAgent", "NeuralLinearAgent", "step_seed"]


def step_seed(seed: int, *parts) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (e.g. the step and a purpose), stable
    across processes and platforms."""
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _argmax_ties_random(values: torch.Tensor, generator: torch.Generator) -> int:
    """The index of the largest value, ties broken uniformly at random."""
    best = (values == values.max()).nonzero().view(-1)
    if best.numel() == 1:
        return int(best)
    return int(best[torch.randint(best.numel(), (), generator=generator)])


class Agent:
    """Base class: ``act``, ``update``, ``state_dict``/``load_state_dict``; ``t`` counts updates."""

    def __init__(self, num_actions: int, seed: int = 0):
        self.num_actions = check_int("num_actions", num_actions)
        self.seed = int(seed)
        self.t = 0

    def act(self, context: torch.Tensor) -> int:
        return self._act(context, _generator(step_seed(self.seed, self.t, "act")))

    def _act(self, context: torch.Tensor, generator: torch.Generator) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, context: torch.Tensor, action: int, reward: float) -> None:
        self._update(context, int(action), float(reward))
        self.t += 1

    def _update(self, context, action, reward) -> None:
        """Learn from one interaction; an agent that learns nothing (Uniform) keeps this default."""

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])


class UniformAgent(Agent):
    """A uniformly random action at every step."""

    def _act(self, context, generator):
        return int(torch.randint(self.num_actions, (), generator=generator))


class _Buffer:
    """The last ``size`` (input, reward) pairs, in a ring."""

    def __init__(self, size: int, dim: int, device=None):
        self.x = torch.zeros(size, dim, device=device)
        self.y = torch.zeros(size, device=device)
        self.count = 0

    def add(self, x, y):
        i = self.count % self.x.shape[0]
        self.x[i] = x
        self.y[i] = y
        self.count += 1

    def data(self):
        n = min(self.count, self.x.shape[0])
        return self.x[:n], self.y[:n]

    def state_dict(self):
        return {"x": self.x.clone(), "y": self.y.clone(), "count": self.count}

    def load_state_dict(self, state):
        self.x, self.y = state["x"].to(self.x.device).clone(), state["y"].to(self.y.device).clone()
        self.count = int(state["count"])


class NetworkAgent(Agent):
    """Thompson sampling (``thompson=True``) or ε-greedy (``epsilon``) with a BNN on context ⊕
    one-hot(action); see the module docstring.  ``svi`` are the SVI settings of the inference
    spec (:class:`pyrobnn.SVIConfig`: optimiser, learning rate, batch size, epochs per
    training, ELBO, KL schedule, particles, empirical Bayes); ``device`` where the network, the
    guide and the buffer live.

    Training is online SVI: the agent keeps *one* optimiser for its whole life, so Adam's
    moment estimates carry over from one training to the next (:func:`pyrobnn.fit_svi`
    starts a fresh optimiser at every call, whose first bias-corrected Adam steps move every
    parameter by about ``lr`` whatever its gradient — on a network retrained every few steps
    that is noise added to the posterior at every training).  Each step minimises the minibatch
    ELBO of :func:`pyrobnn.infer.elbo.elbo_terms` with n_data = the buffer's length, i.e.
    (N/B)·NLL(batch) + w_i·KL[q || p] (Blundell et al. 2015, eq. 8–9), and adaptive priors take
    their empirical-Bayes optimum before every step, as in :func:`pyrobnn.fit_svi`."""

    def __init__(self, model, guide, num_actions: int, context_dim: int, *, thompson: bool, epsilon: float = 0.0,
                 buffer_size: int = 4096, train_every: int = 64, svi=None, device=None, seed: int = 0):
        super().__init__(num_actions, seed)
        self.model, self.guide = model, guide
        self.thompson = bool(thompson)
        self.epsilon = check_probability("epsilon", epsilon)
        self.train_every = check_int("train_every", train_every)
        self.context_dim = check_int("context_dim", context_dim)
        self.svi = svi if svi is not None else SVIConfig()
        if not isinstance(self.svi, SVIConfig):
            raise ArgumentTypeError(f"svi must be a pyrobnn.SVIConfig or None, got {type(self.svi).__name__}")
        self.device = torch.device("cpu") if device is None else torch.device(device)
        dim = self.context_dim + self.num_actions
        self.buffer = _Buffer(check_int("buffer_size", buffer_size), dim, self.device)
        self.eye = torch.eye(self.num_actions, device=self.device)
        self.seconds_training = 0.0
        self.trainings = 0
        x, y = torch.zeros(1, dim), torch.zeros(1)
        model.check_data(x, y, ("context ⊕ one-hot(action)", "reward"))
        with seeded(step_seed(self.seed, "setup") % 2**32):
            guide.setup(x, y, n_data=1)
        model.to(self.device)
        guide.to(self.device)
        params = [p for p in list(model.parameters()) + list(guide.parameters()) if p.requires_grad]
        self.optimizer = OPTIMIZERS[self.svi.optimizer][0](params, lr=self.svi.learning_rate,
                                                           **(self.svi.optimizer_kwargs or {}))
        self.elbo = make_elbo(self.svi.elbo, self.svi.num_particles, self.svi.vectorize_particles,
                              self.svi.max_plate_nesting)
        self._eb = self.svi.empirical_bayes and getattr(model, "has_adaptive_prior", False)

    def inputs(self, context: torch.Tensor) -> torch.Tensor:
        """The A network inputs context ⊕ e_a, one row per action."""
        c = torch.as_tensor(context).to(self.eye).reshape(1, -1).expand(self.num_actions, -1)
        return torch.cat([c, self.eye], -1)

    @torch.no_grad()
    def weights(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One weight draw w = μ + σ ∘ ε per weight site, ``(1, D)`` (``generator=None``: the
        guide's median, w = μ)."""
        out = {}
        for site in self.model.weight_sites:
            loc, scale = self.guide.loc_scale(site)
            if generator is not None:
                eps = torch.randn(loc.shape, generator=generator).to(device=loc.device, dtype=loc.dtype)
                loc = loc + scale * eps
            out[site] = loc.detach().unsqueeze(0)
        return out

    @torch.no_grad()
    def values(self, context: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each action's predicted reward, (A,), under one posterior draw made with
        ``generator`` (Thompson sampling) or under the guide's median (``None``)."""
        return self.model.network(self.inputs(context), self.weights(generator))[0, :, 0]

    def _act(self, context, generator):
        if self.epsilon > 0 and float(torch.rand((), generator=generator)) < self.epsilon:
            return int(torch.randint(self.num_actions, (), generator=generator))
        return _argmax_ties_random(self.values(context, generator if self.thompson else None).cpu(), generator)

    def _update(self, context, action, reward):
        self.buffer.add(self.inputs(context)[action], reward)
        if (self.t + 1) % self.train_every == 0:
            self.train()

    def train(self) -> None:
        """``svi.epochs`` passes of minibatch SVI over the buffer (seeded by the step)."""
        t0 = time.perf_counter()
        x, y = self.buffer.data()
        n = x.shape[0]
        bsz = min(self.svi.batch_size, n)
        m = math.ceil(n / bsz)
        order = _generator(step_seed(self.seed, self.t, "order"))
        with seeded(step_seed(self.seed, self.t, "train") % 2**32):
            for _ in range(self.svi.epochs):
                perm = torch.randperm(n, generator=order).to(self.device) if self.svi.shuffle else torch.arange(n)
                for i in range(m):
                    idx = perm[i * bsz:(i + 1) * bsz]
                    if self._eb:
                        self.model.update_priors(self.guide.loc_scale)
                    w = kl_weight(self.svi.kl, i + 1, m, self.trainings, self.svi.anneal_epochs)
                    terms = elbo_terms(self.elbo, self.model, self.guide, (x[idx], y[idx]), {"n_data": n}, kl_weight=w)
                    if not torch.isfinite(terms.loss):
                        raise NonFiniteLossError(f"non-finite loss in the training at step {self.t + 1} (NLL "
                                                 f"{float(terms.nll):.4g}, KL {float(terms.kl):.4g}); lower svi.lr or "
                                                 f"the guide's init_scale")
                    self.optimizer.zero_grad(set_to_none=True)
                    terms.loss.backward()
                    self.optimizer.step()
        self.seconds_training += time.perf_counter() - t0
        self.trainings += 1

    def state_dict(self):
        return {"t": self.t, "model": self.model.state_dict(), "guide": self.guide.state_dict(),
                "optimizer": self.optimizer.state_dict(), "buffer": self.buffer.state_dict(),
                "seconds_training": self.seconds_training, "trainings": self.trainings}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.seconds_training = float(state["seconds_training"])
        self.trainings = int(state["trainings"])


class LinFullPostAgent(Agent):
    """Thompson sampling with one Normal-inverse-gamma linear regression per action on
    context ⊕ 1 (Riquelme et al. 2018's LinFullPost)."""

    def __init__(self, num_actions: int, context_dim: int, lambda_prior: float = 0.25, a0: float = 6.0,
                 b0: float = 6.0, seed: int = 0):
        super().__init__(num_actions, seed)
        dim = check_int("context_dim", context_dim) + 1
        self.models = [BayesianLinearRegression(dim, lambda_prior, a0, b0) for _ in range(self.num_actions)]

    @staticmethod
    def features(context):
        c = torch.as_tensor(context, dtype=torch.float64).reshape(-1)
        return torch.cat([c, c.new_ones(1)])

    def _act(self, context, generator):
        z = self.features(context)
        return _argmax_ties_random(torch.stack([m.sample(generator) @ z for m in self.models]), generator)

    def _update(self, context, action, reward):
        self.models[action].add(self.features(context), torch.tensor(reward))

    def state_dict(self):
        return {"t": self.t, "models": [m.state_dict() for m in self.models]}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        for m, s in zip(self.models, state["models"]):
            m.load_state_dict(s)


class NeuralLinearAgent(NetworkAgent):
    """Bayesian linear regression on the last hidden layer of a point-estimate network
    (Riquelme et al. 2018's NeuralLinear), adapted to the context ⊕ one-hot(action) input: one
    regression on z(x ⊕ e_a) ⊕ 1 rather than one per action."""

    def __init__(self, model, guide, num_actions: int, context_dim: int, *, lambda_prior: float = 0.25,
                 a0: float = 6.0, b0: float = 6.0, **kwargs):
        super().__init__(model, guide, num_actions, context_dim, thompson=False, **kwargs)
        last = model.layers[-1]
        if not hasattr(last, "in_features") or model.weight_keys[-1][0] is None:
            raise ValueError("NeuralLinear needs a network that ends in a Bayesian linear layer (its input is the "
                             "feature)")
        self.regression = BayesianLinearRegression(int(last.in_features) + 1, lambda_prior, a0, b0)

    @torch.no_grad()
    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The last layer's input for each row of ``inputs`` under the point estimate, ⊕ 1."""
        taps: dict = {}
        self.model.network(inputs.to(self.device), self.weights(), taps)
        z = taps[len(self.model.layers) - 1][0].reshape(inputs.shape[0], -1).to(device="cpu", dtype=torch.float64)
        return torch.cat([z, z.new_ones(z.shape[0], 1)], -1)

    def _act(self, context, generator):
        return _argmax_ties_random(self.features(self.inputs(context)) @ self.regression.sample(generator), generator)

    def _update(self, context, action, reward):
        row = self.inputs(context)[action]
        self.buffer.add(row, reward)
        if (self.t + 1) % self.train_every == 0:
            self.train()
            self.regression.reset()
            x, y = self.buffer.data()
            self.regression.add(self.features(x), y)
        else:
            self.regression.add(self.features(row.unsqueeze(0)), torch.tensor(reward))

    def state_dict(self):
        return {**super().state_dict(), "regression": self.regression.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.regression.load_state_dict(state["regression"])
