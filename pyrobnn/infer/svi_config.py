"""The settings of an SVI fit (:class:`SVIConfig`) and its constants: optimizers, ELBO
estimators, KL schedules.

:func:`pyrobnn.fit_svi` takes these settings as keyword arguments, whose defaults are
:data:`SVI_DEFAULTS`'s, or all at once as ``config=SVIConfig(...)``; the spec schema's
``[svi]`` table derives its fields' defaults from them, and a fitted posterior records them in
``info["config"]``.  Arguments that say where and how a run happens rather than what it
computes (device, dtype, seed, progress, checkpoint path, resume, callback, interrupt
handling, distributed) are not settings and stay arguments of :func:`~pyrobnn.fit_svi`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial

import torch

from ..utils.validation import ArgumentTypeError, check_bool, check_choice, check_int, check_positive
from .elbo import ELBOS
from .kl_schedule import SCHEDULES
from .torch_elbo import LOCAL_ESTIMATORS

__all__ = ["SVIConfig", "SVI_DEFAULTS", "OPTIMIZERS"]

#: optimizer name → (torch class, default learning rate)
OPTIMIZERS = {
    "adam": (torch.optim.Adam, 1e-3),
    "adadelta": (torch.optim.Adadelta, 1.0),
    "sgd": (torch.optim.SGD, 1e-2),
}


@dataclass(frozen=True)
class SVIConfig:
    """The settings of one SVI fit — the single place they are defined.

    ``epochs`` passes over the data in minibatches of ``batch_size``; ``optimizer`` "adam",
    "adadelta" (Graves 2011) or "sgd" with learning rate ``lr`` (None: 1e-3, 1.0 and 1e-2
    respectively) and further ``optimizer_kwargs``; ``kl`` the minibatch KL weighting
    ("uniform", "blundell" or "anneal" over ``anneal_epochs``, see
    :mod:`pyrobnn.infer.kl_schedule`); ``elbo`` the estimator ("trace", "meanfield",
    "local_reparam", "flipout", see :mod:`pyrobnn.infer.elbo`) with ``num_particles`` draws per
    step, run as one batched pass when ``vectorize_particles``; ``empirical_bayes`` sets adaptive
    priors to their optimum given the guide before every step; ``shuffle`` draws a fresh order
    of the rows every epoch; ``checkpoint_every`` epochs between checkpoints (when a checkpoint
    path is given); ``check_finite_every`` steps between reads of the loss's finiteness;
    ``max_plate_nesting`` as in Pyro's ELBOs.

    Each field is checked on construction (``ValueError``/``TypeError`` naming it)."""

    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None
    optimizer_kwargs: dict | None = None
    kl: str = "uniform"
    anneal_epochs: int = 10
    elbo: str = "trace"
    num_particles: int = 1
    vectorize_particles: bool = True
    empirical_bayes: bool = True
    shuffle: bool = True
    checkpoint_every: int = 10
    check_finite_every: int = 100
    max_plate_nesting: int = 1

    def __post_init__(self):
        put = partial(object.__setattr__, self)
        for name in ("epochs", "batch_size", "num_particles", "checkpoint_every", "check_finite_every",
                     "anneal_epochs", "max_plate_nesting"):
            put(name, check_int(name, getattr(self, name)))
        check_choice("kl", self.kl, SCHEDULES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("elbo", self.elbo, ELBOS)
        if self.elbo in LOCAL_ESTIMATORS and self.num_particles != 1:
            raise ValueError(f"elbo={self.elbo!r} gives every example its own noise already; it takes "
                             f"num_particles=1, got {self.num_particles}")
        if self.lr is not None:
            put("lr", check_positive("lr", self.lr))
        if self.optimizer_kwargs is not None and not isinstance(self.optimizer_kwargs, dict):
            raise ArgumentTypeError(f"optimizer_kwargs must be a dict or None, got "
                                    f"{type(self.optimizer_kwargs).__name__}")
        for name in ("vectorize_particles", "empirical_bayes", "shuffle"):
            check_bool(name, getattr(self, name))

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default when it is None."""
        return OPTIMIZERS[self.optimizer][1] if self.lr is None else self.lr

    def kwargs(self) -> dict:
        """The settings as keyword arguments of :func:`pyrobnn.fit_svi`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def record(self) -> dict:
        """The settings as plain data, for a run's metadata."""
        out = self.kwargs()
        if out["optimizer_kwargs"] is not None:
            out["optimizer_kwargs"] = dict(out["optimizer_kwargs"])
        return out


#: the defaults of every SVI setting
SVI_DEFAULTS = SVIConfig()
