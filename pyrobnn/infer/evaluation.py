"""A posterior evaluated at inputs, chunk of draws by chunk of draws.

:meth:`Posterior.evaluation` makes every draw an export or a report needs, once, seeded and in
chunks: the posterior draws (:meth:`Posterior.draw_chunks`), the predictive at the training and
evaluation inputs with the pointwise log-likelihood and posterior-predictive draws of y, and
for a guide the variational and joint log densities of each draw (for the PSIS correction of
an approximate posterior).  :func:`pyrobnn.diagnostics.to_datatree` only converts what
:meth:`Evaluation.chunks` yields into an ArviZ ``DataTree``; it draws nothing itself.

Seeds: ``seed`` draws the guide's weights; ``seed + 1`` and ``seed + 2`` the y draws at the
training and evaluation inputs; ``seed + 3`` and ``seed + 4`` the prior draws and their y draws
(:meth:`Evaluation.prior_predictive`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine

from ..utils.rng import seeded
from ..utils.traces import latent_nodes
from .predictive import DrawSummary, Prediction

__all__ = ["Evaluation", "EvaluatedChunk", "EvaluationSummary", "auto_chunk_draws", "CHUNK_VALUES",
           "PREDICTIVE_QUANTILES", "latent_densities", "log_density"]

#: quantiles of the predictive of y a summary holds (regression): central 90% and 50% intervals
PREDICTIVE_QUANTILES = (0.05, 0.25, 0.75, 0.95)

#: values of the model's dtype one chunk of draws may hold (about 200 MB in float32)
CHUNK_VALUES = 50_000_000

#: guide draws of an SVI posterior when no number is given
DEFAULT_GUIDE_DRAWS = 500


def auto_chunk_draws(model, batch_size: int = 4096, num_points: int | None = None, num_classes: int = 1) -> int:
    """Draws per chunk so that one chunk holds about :data:`CHUNK_VALUES` values: its weight
    draws with their log-density temporaries (4·W per draw), the activations of one batch of
    min(``batch_size``, ``num_points``) inputs through the widest layer H (3·B·H) and the
    per-draw outputs at ``num_points`` inputs (4·N·K); at least 16."""
    w = int(getattr(model, "num_weights", 0) or 0)
    widest = 1
    sizes = getattr(model, "site_sizes", {})
    if sizes and hasattr(model, "unpack"):
        shapes = model.unpack({s: torch.zeros(0, n) for s, n in sizes.items()})
        widest = max([int(v.shape[1]) for v in shapes.values() if v.dim() > 1] + [1])
    b = int(batch_size) if num_points is None else min(int(batch_size), int(num_points))
    per_draw = 4 * w + 3 * b * widest + 4 * int(num_points or 0) * int(num_classes)
    return max(16, CHUNK_VALUES // max(per_draw, 1))


def latent_densities(fn_owner, *args, **kwargs) -> dict:
    """Distribution of every latent sample site of a model or guide, from one trace."""
    with torch.no_grad(), poutine.block():
        tr = poutine.trace(poutine.block(fn_owner, hide=["obs"])).get_trace(*args, **kwargs)
    return {name: site["fn"] for name, site in latent_nodes(tr)}


def log_density(fns: dict, draws: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Σ_sites log fn(draw) for flat draws (S, *shape) → (S,); None if a site is missing."""
    total = None
    for name, fn in fns.items():
        if name not in draws:
            return None
        v = draws[name]
        lp = fn.log_prob(v)
        lp = lp.reshape(v.shape[0], -1).sum(-1) if lp.dim() > 1 else lp.reshape(v.shape[0])
        total = lp if total is None else total + lp
    return total


@dataclass
class EvaluatedChunk:
    """Draws ``start .. start + k`` of an :class:`Evaluation` and what they give.

    ``draws``: {site: (1, k, *shape)}.  ``train`` / ``evaluation``: at the training and the
    evaluation inputs, ``(prediction, log_lik, y_draws)`` — the :class:`Prediction` of these
    draws, the pointwise log-likelihood (1, k, N) (None without targets) and one y draw per
    posterior draw (k, N) — or None without such inputs.  ``log_q`` / ``log_p``: (k,) the
    guide's log density of each draw and the log joint (prior + likelihood of the training
    data), for a guide whose densities exist (else None)."""

    start: int
    draws: dict
    train: tuple[Prediction, torch.Tensor | None, torch.Tensor] | None
    evaluation: tuple[Prediction, torch.Tensor | None, torch.Tensor] | None
    log_q: torch.Tensor | None
    log_p: torch.Tensor | None


@dataclass
class EvaluationSummary:
    """The predictive at the evaluation inputs over every draw: the :class:`Prediction` (means,
    variance split, class probabilities, entropies), the pointwise log predictive density
    ``lpd`` (None without targets) and, for regression, the :data:`PREDICTIVE_QUANTILES` of y,
    (len(quantiles), N), from 20 y draws per posterior draw (:meth:`Prediction.quantiles`, seed 0)."""

    prediction: Prediction
    lpd: torch.Tensor | None
    quantiles: torch.Tensor | None


class Evaluation:
    """The draws of a posterior and the predictive they give at inputs (see the module
    docstring); made by :meth:`Posterior.evaluation`.

    ``x, y``: evaluation inputs and targets (``y`` may be None); ``train``: ``(x_train,
    y_train)``, the data the posterior was fitted to (None: none); ``num_samples``, ``seed``,
    ``thin``, ``max_draws``: as :meth:`Posterior.draws`; ``chunk_draws``: draws per chunk
    (None: :func:`auto_chunk_draws`); ``batch_size``: inputs per vectorised predictive pass.
    ``chain`` and ``draw`` give the shape of the draws; :meth:`chunks` yields them in order."""

    def __init__(self, posterior, x=None, y=None, *, train=None, num_samples=None, seed: int = 0, thin=None,
                 max_draws=None, chunk_draws=None, batch_size: int = 4096):
        model = posterior.model
        self.posterior, self.model, self.task = posterior, model, model.likelihood.task
        self.seed, self.batch_size, self.thin, self.max_draws = int(seed), batch_size, thin, max_draws
        dev = model.device

        def place(t):
            return None if t is None else t.to(device=dev, dtype=model.dtype if torch.is_floating_point(t) else t.dtype)

        def checked(x, y):  # once here, not at every chunk's predictive pass
            return model.prepare_data(x, y) if hasattr(model, "prepare_data") and x is not None else (x, y)

        x, y = checked(x, y)
        self.x, self.y = place(x), (None if y is None else y.to(dev))
        if train is not None:
            xt, yt = checked(*train)
            self.x_train, self.y_train = place(xt), yt.to(dev)
        else:
            self.x_train = self.y_train = None
        self.num = num_samples if posterior.samples is not None else \
            (DEFAULT_GUIDE_DRAWS if num_samples is None else num_samples)
        self.chain, self.draw = posterior.draw_shape(self.num, thin=thin, max_draws=max_draws)
        if chunk_draws is None:
            n_pts = max([0] + [int(t.shape[0]) for t in (self.x, self.x_train) if t is not None])
            chunk_draws = auto_chunk_draws(model, batch_size, n_pts,
                                           int(getattr(model.likelihood, "num_classes", 1) or 1))
        self.chunk_draws = chunk_draws
        self._summary = None
        from .posterior import chunk_bounds

        self.bounds = chunk_bounds(self.chain * self.draw, chunk_draws)

    @property
    def in_sample(self) -> str | None:
        """Which inputs fill the in-sample groups: "train", "evaluation" (no training data but
        evaluation targets) or None."""
        if self.x_train is not None:
            return "train"
        return "evaluation" if self.y is not None else None

    def kept_rows(self):
        """MCMC: the stored draw index of each exported draw, per chain (None: a guide)."""
        return self.posterior.kept_draw_rows(self.num, self.thin, self.max_draws)

    @torch.no_grad()
    def chunks(self):
        """Yield an :class:`EvaluatedChunk` per chunk of draws, in order."""
        post, model, task = self.posterior, self.model, self.task
        dev = model.device
        xs, ys = (self.x_train, self.y_train) if self.x_train is not None else \
            ((self.x, self.y) if self.y is not None else (None, None))
        fns_q = fns_p = None
        if post.samples is None and post.guide is not None:
            probe = self.x_train if self.x_train is not None else self.x
            if probe is not None:
                try:
                    fns_q = latent_densities(post.guide, probe[:1], None)
                    fns_p = latent_densities(model, probe[:1], None) if self.x_train is not None else None
                except (NotImplementedError, ValueError, RuntimeError, KeyError):
                    fns_q = fns_p = None  # a guide without densities: no PSIS correction
        g_in = torch.Generator(device=dev).manual_seed(self.seed + 1)
        g_ev = torch.Generator(device=dev).manual_seed(self.seed + 2)
        summary = DrawSummary(task) if self.x is not None else None
        self._summary = None
        for start, dc in post.draw_chunks(self.num, seed=self.seed, chunk_draws=self.chunk_draws, thin=self.thin,
                                          max_draws=self.max_draws):
            train = evaluation = None
            if xs is not None:
                pred, ll = post._evaluate(xs, ys, dc, self.batch_size)
                train = (pred, ll, self._y_draws(pred, g_in))
            if self.x is not None:
                pred, ll = post._evaluate(self.x, self.y, dc, self.batch_size)
                evaluation = (pred, ll, self._y_draws(pred, g_ev))
                summary.add(pred)
                if ll is not None:
                    summary.add_log_lik(ll[0])
            lq = lp = None
            if fns_q is not None:
                flat = post.flatten(dc)
                try:
                    lq = log_density(fns_q, flat)
                    lp = log_density(fns_p, flat) if fns_p is not None else None
                except (NotImplementedError, ValueError, RuntimeError, KeyError):
                    lq = lp = None  # a guide or prior without a density (e.g. Delta, Flat)
                if lp is not None and train is not None and train[1] is not None:
                    lp = lp + train[1].reshape(train[1].shape[1], -1).sum(-1)
                else:
                    lp = None
            yield EvaluatedChunk(start, dc, train, evaluation, lq, lp)
        self._summary = summary

    def summary(self) -> EvaluationSummary:
        """The predictive at the evaluation inputs over all draws, once :meth:`chunks` has been
        read to the end (``ValueError`` before, or without evaluation inputs)."""
        if self.x is None:
            raise ValueError("this evaluation has no evaluation inputs x")
        if self._summary is None:
            raise ValueError("read Evaluation.chunks() to the end first: the summary is built from its chunks")
        pred = self._summary.result()
        quantiles = pred.quantiles(PREDICTIVE_QUANTILES) if self.task == "regression" else None
        return EvaluationSummary(pred, self._summary.lpd(), quantiles)

    def _y_draws(self, pred: Prediction, generator) -> torch.Tensor:
        yd = pred.sample_y(generator=generator)
        return yd.long() if self.task == "binary" else yd

    @torch.no_grad()
    def prior_predictive(self, x, n: int):
        """``n`` draws from the prior and one y draw each at ``x``: ``(draws {site: (1, n, ...)},
        y (n, N))``; ``ValueError`` saying why when the prior cannot be sampled or is improper."""
        model = self.model
        x = x.to(device=model.device, dtype=model.dtype)
        fns = latent_densities(model, x[:1], None)
        try:
            with seeded(self.seed + 3):
                draws = {name: fn.sample((n,)).unsqueeze(0) for name, fn in fns.items()}
        except (NotImplementedError, ValueError, RuntimeError) as exc:
            raise ValueError(f"the prior cannot be sampled ({exc})") from None
        if not all(torch.isfinite(v).all() for v in draws.values()):
            raise ValueError("the prior is improper")
        pred = self.posterior.predict(x, draws=draws, batch_size=self.batch_size)
        g = torch.Generator(device=pred.mean.device).manual_seed(self.seed + 4)
        return draws, self._y_draws(pred, g)
