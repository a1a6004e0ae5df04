"""One posterior interface for SVI and MCMC.

:class:`Posterior` is the interface: the model, draws, the predictive, export and saving.  Two
types implement it: :class:`GuidePosterior` draws afresh from a fitted guide (SVI), and
:class:`SamplePosterior` holds stored draws (MCMC).  Draws always come in the ArviZ layout
``(chain, draw, *site_shape)`` — guide draws are one chain — so prediction, export and reports
do not care which inference made them.  ``save(path)`` writes either kind in one versioned,
verified format (:mod:`pyrobnn.infer.saving`) and ``pyrobnn.load(path)`` reads it back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from pyro import poutine

from ..utils.rng import seeded
from ..utils.validation import check_bool
from .conversion import datatree_converter
from .predictive import Prediction, predictive_log_likelihood, summarize_draws

__all__ = ["Posterior", "GuidePosterior", "SamplePosterior", "draw_index", "chunk_bounds"]


@dataclass(kw_only=True)
class Posterior(ABC):
    """The result of a fit: :func:`~pyrobnn.fit_svi` gives a :class:`GuidePosterior`,
    :func:`~pyrobnn.fit_nuts` a :class:`SamplePosterior`; both have this interface.

    Attributes: ``model`` (the BNN), ``method`` ("svi", "nuts", "hmc", ...), ``info`` (seed,
    settings, timings).  The attributes of the other kind read as empty: ``guide`` (None for
    stored draws), ``samples`` (None for a guide), ``sample_stats`` ({}), ``history`` (()).
    """

    model: object
    method: str
    info: dict = field(default_factory=dict)

    guide = None
    samples = None
    sample_stats = MappingProxyType({})  # read-only: the kinds without stored draws have none
    history = ()
    example_args = ((), {})

    # ------------------------------------------------------------------ draws
    @property
    def num_stored(self) -> int:
        """Stored draws (chains × draws); 0 for a guide."""
        return 0

    def draws(self, num_samples: int | None = None, seed: int | None = None, *, thin: int | None = None,
              max_draws: int | None = None) -> dict[str, torch.Tensor]:
        """Posterior draws of every latent site, ``(chain, draw, *shape)``.

        MCMC: the stored draws (thinned evenly across each chain to about ``num_samples`` in
        total if given).  SVI: ``num_samples`` fresh draws from the guide (default 1000) as
        one chain; ``seed`` makes them reproducible.  ``thin`` and ``max_draws`` then keep
        every ``thin``-th draw of each chain and at most ``max_draws`` in all, evenly spaced
        within each chain (:meth:`draw_index`); the kept draws are a subset of the unthinned
        ones with the same seed."""
        out = self._all_draws(num_samples, seed)
        if thin is None and max_draws is None:
            return out
        c, d = next(iter(out.values())).shape[:2]
        idx = draw_index(d, c, thin=thin, max_draws=max_draws)
        return {k: v[:, idx.to(v.device)] for k, v in out.items()}

    @abstractmethod
    def _all_draws(self, num_samples, seed) -> dict[str, torch.Tensor]:
        """Every draw of this posterior kind, before thinning (see :meth:`draws`)."""

    @abstractmethod
    def draw_chunks(self, num_samples: int | None = None, seed: int | None = None, *, chunk_draws: int | None = None,
                    thin: int | None = None, max_draws: int | None = None):
        """The draws of :meth:`draws` (same arguments, same values) as a sequence of chunks of the
        flattened (chain·draw) axis, in chain-major order: yields ``(start, chunk)`` with
        ``chunk`` mapping each site to ``(1, k, *shape)``, the rows ``start .. start + k``.

        ``chunk_draws`` (None: all draws in one chunk) is rounded up to a multiple of 16 and a last
        chunk of fewer than 16 draws joins the one before, so that every chunk of a random
        stream consumed row by row starts where it started in the one-chunk stream: the chunks
        concatenate bitwise to :meth:`draws`.  SVI with a :class:`~pyrobnn.infer.guides.SiteGuide`
        on CPU: each chunk is drawn from the guide as it is needed, one RNG cursor per site, so
        at most ``max(chunk_draws, 31)`` draws of the guide exist at once; other guides on
        CPU are called draw by draw; on other devices the guide's draws are made at once on
        that device (its generator is not chunk-invariant) and handed out in chunks.  MCMC:
        slices of the stored draws."""

    @abstractmethod
    def draw_shape(self, num_samples: int | None = None, *, thin: int | None = None,
                   max_draws: int | None = None) -> tuple[int, int]:
        """(chains, draws per chain) of :meth:`draws` with these arguments, without drawing."""

    @staticmethod
    def flatten(draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(chain, draw, *shape) → (chain·draw, *shape)."""
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in draws.items()}

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predictive_distribution(self, x: torch.Tensor, draws: dict[str, torch.Tensor]):
        flat = self.flatten(draws)
        x = x.to(device=self.model.device, dtype=self.model.dtype)
        flat = {k: v.to(device=self.model.device) for k, v in flat.items()}
        return self.model.predictive_distribution(x, flat)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor | None, draws: dict,
                 batch_size: int = 4096) -> tuple[Prediction, torch.Tensor | None]:
        """One vectorised predictive pass per batch of ``batch_size`` inputs that gives both the
        :class:`Prediction` at ``x`` and, when ``y`` is given, the pointwise log-likelihood
        log p(y_n | x_n, w) for every draw, (chain, draw, N) (else None)."""
        if hasattr(self.model, "prepare_data"):  # x must fit the network, y the likelihood (ValueError naming them)
            x, y = self.model.prepare_data(x, y)
        return self._evaluate(x, y, draws, batch_size)

    @torch.no_grad()
    def _evaluate(self, x, y, draws, batch_size):
        """:meth:`evaluate` on inputs already checked (an Evaluation checks its inputs once)."""
        task = self.model.likelihood.task
        c, s = next(iter(draws.values())).shape[:2]
        if y is not None:
            y = y.to(self.model.device)
            y = y if task == "multiclass" else y.to(self.model.dtype)
        parts, lls = [], []
        for start in range(0, x.shape[0], batch_size):
            d = self.predictive_distribution(x[start:start + batch_size], draws)
            parts.append(summarize_draws(task, d))
            if y is not None:
                lls.append(d.log_prob(y[start:start + batch_size]).reshape(c, s, -1))
        pred = parts[0] if len(parts) == 1 else _concat_predictions(parts)
        return pred, (torch.cat(lls, -1) if y is not None else None)

    def predict(self, x: torch.Tensor, num_samples: int = 200, draws: dict | None = None,
                batch_size: int = 4096, seed: int | None = 0, distributed: bool = False) -> Prediction:
        """Posterior predictive at ``x`` from ``num_samples`` draws, all draws in one vectorised
        pass per batch of ``batch_size`` inputs.  Returns a :class:`Prediction` (means,
        variance split, class probabilities and entropies).

        ``distributed=True`` (every rank of a ``torch.distributed`` job calling it with the same
        ``x`` and seed) splits the rows of ``x`` into one contiguous block per rank, evaluates
        each block on its rank with the same draws, and gathers the blocks in order: every rank
        returns the prediction a single process would make."""
        check_bool("distributed", distributed)
        if distributed and seed is None and draws is None:
            raise ValueError("distributed=True needs an integer seed (or draws): every rank must use the same draws")
        draws = self.draws(num_samples, seed=seed) if draws is None else draws
        if not distributed:
            return self.evaluate(x, None, draws, batch_size)[0]
        from . import distributed as D

        group = D.join(self.model.device)
        try:
            mine = torch.tensor_split(torch.as_tensor(x), group.world_size)[group.rank]
            local = self.evaluate(mine, None, draws, batch_size)[0] if mine.shape[0] else None
            parts = [p for p in D.all_gather_object(local, group) if p is not None]
        finally:
            D.leave(group)
        return parts[0] if len(parts) == 1 else _concat_predictions(parts)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, draws: dict | None = None,
                       num_samples: int = 200, seed: int | None = 0, batch_size: int = 4096) -> torch.Tensor:
        """Pointwise log p(y_n | x_n, w) for every draw: (chain, draw, N)."""
        draws = self.draws(num_samples, seed=seed) if draws is None else draws
        return self.evaluate(x, y, draws, batch_size)[1]

    def log_predictive_density(self, x, y, **kw) -> torch.Tensor:
        """Pointwise log posterior-predictive density of (x, y): (N,)."""
        ll = self.log_likelihood(x, y, **kw)
        return predictive_log_likelihood(ll.reshape(-1, ll.shape[-1]))

    # ------------------------------------------------------------------ export
    def to_datatree(self, x=None, y=None, **kwargs):
        """An ArviZ 1.x ``xarray.DataTree`` in the InferenceData schema; see
        :func:`pyrobnn.diagnostics.to_datatree` (the export sits above inference and is reached
        through :data:`pyrobnn.infer.conversion.datatree_converter`, installed by ``import pyrobnn``)."""
        return datatree_converter(self, x, y, **kwargs)

    def evaluation(self, x=None, y=None, *, train=None, num_samples: int | None = None, seed: int = 0,
                   thin: int | None = None, max_draws: int | None = None, chunk_draws: int | None = None,
                   batch_size: int = 4096):
        """This posterior's draws and the predictive they give at ``x`` (and at the training data
        ``train``), made once, seeded and chunk by chunk: an
        :class:`~pyrobnn.infer.evaluation.Evaluation`, which
        :func:`pyrobnn.diagnostics.to_datatree` converts.  Nothing is drawn until its
        ``chunks()`` are read."""
        from .evaluation import Evaluation

        return Evaluation(self, x, y, train=train, num_samples=num_samples, seed=seed, thin=thin,
                          max_draws=max_draws, chunk_draws=chunk_draws, batch_size=batch_size)

    def kept_draw_rows(self, num_samples: int | None = None, thin: int | None = None,
                       max_draws: int | None = None):
        """Stored posteriors: the index of each kept draw among the stored draws of its chain
        (one chain's, as a numpy array: every chain keeps the same ones); None for a guide."""
        return None

    # ------------------------------------------------------------------ saving
    def save(self, path, *, overwrite: bool = False):
        """Write this posterior to the directory ``path`` (see :mod:`pyrobnn.infer.saving`): the
        network as plain data and its parameters, the guide or the stored draws, ``info``, and a
        manifest of SHA-256 digests; ``pyrobnn.load(path)`` gives it back, predicting the same
        numbers bit for bit.  Written under a temporary name and renamed into place; an existing
        ``path`` is replaced only with ``overwrite=True`` and only if it is a saved run."""
        from .saving import save_posterior

        return save_posterior(self, path, overwrite=overwrite)


@dataclass(kw_only=True)
class GuidePosterior(Posterior):
    """A posterior approximated by a fitted guide (SVI): draws are made afresh from ``guide``.

    ``history``: per-epoch dicts (loss, nll, kl, seconds); ``example_args``: (args, kwargs) the
    guide can be called with, for guides without ``sample_posterior`` (Pyro's autoguides)."""

    guide: object
    method: str = "svi"
    history: list = field(default_factory=list)
    example_args: tuple = ((), {})

    def _all_draws(self, num_samples, seed) -> dict[str, torch.Tensor]:
        n = _num_guide_draws(num_samples)
        with seeded(seed):
            flat = self._guide_draws(n)
        return {k: v.unsqueeze(0) for k, v in flat.items()}

    def draw_chunks(self, num_samples: int | None = None, seed: int | None = None, *, chunk_draws: int | None = None,
                    thin: int | None = None, max_draws: int | None = None):
        """:meth:`Posterior.draw_chunks` for a guide: drawn chunk by chunk (see there)."""
        n = _num_guide_draws(num_samples)
        idx = draw_index(n, 1, thin=thin, max_draws=max_draws)
        total = idx.numel()
        bounds = chunk_bounds(total, chunk_draws)
        if len(chunk_bounds(n, chunk_draws)) == 1:  # one chunk: exactly the draws() call
            yield 0, self.draws(num_samples, seed=seed, thin=thin, max_draws=max_draws)
            return
        rows = self._guide_rows(n, seed, chunk_draws)
        buf, have, start = [], 0, 0  # generated rows kept until the next output chunk is complete
        gen_start = 0
        pending = list(bounds)
        for block in rows:
            k = next(iter(block.values())).shape[0]
            sel = idx[(idx >= gen_start) & (idx < gen_start + k)] - gen_start
            gen_start += k
            if sel.numel():
                buf.append({s: v[sel.to(v.device)] for s, v in block.items()})
                have += sel.numel()
            while pending and have >= pending[0][1] - pending[0][0]:
                a, b = pending.pop(0)
                merged = {s: torch.cat([p[s] for p in buf]) for s in buf[0]}
                out = {s: v[:b - a].unsqueeze(0) for s, v in merged.items()}
                rest = {s: v[b - a:] for s, v in merged.items()}
                buf = [rest] if next(iter(rest.values())).shape[0] else []
                have -= b - a
                yield start, out
                start = b

    def draw_shape(self, num_samples: int | None = None, *, thin: int | None = None,
                   max_draws: int | None = None) -> tuple[int, int]:
        """(chains, draws per chain) of :meth:`draws` with these arguments, without drawing."""
        return 1, draw_index(_num_guide_draws(num_samples), 1, thin=thin, max_draws=max_draws).numel()

    @torch.no_grad()
    def _guide_rows(self, n: int, seed, chunk_draws):
        """The ``n`` guide draws of :meth:`draws` generated block by block (flat, (k, *shape))."""
        from .guides import Delta, SiteGuide

        guide = self.guide
        bounds = chunk_bounds(n, chunk_draws)
        standard = isinstance(guide, SiteGuide) and type(guide).sample_posterior is SiteGuide.sample_posterior
        on_cpu = all(p.device.type == "cpu" for p in guide.parameters()) and self.model.device.type == "cpu"
        if isinstance(guide, Delta):  # no randomness: every block is the median
            for a, b in bounds:
                yield guide.sample_posterior(b - a)
            return
        if standard and on_cpu:
            yield from _site_cursor_rows(guide, bounds, seed)
            return
        if not hasattr(guide, "sample_posterior") and on_cpu:
            args, kwargs = self.example_args
            with seeded(seed), poutine.block():
                for a, b in bounds:
                    samples = [guide(*args, **kwargs) for _ in range(b - a)]
                    yield {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
            return
        with seeded(seed):
            full = self._guide_draws(n)
        for a, b in bounds:
            yield {k: v[a:b] for k, v in full.items()}

    @torch.no_grad()
    def _guide_draws(self, n: int) -> dict[str, torch.Tensor]:
        if hasattr(self.guide, "sample_posterior"):
            return self.guide.sample_posterior(n)
        # any other Pyro guide (e.g. an autoguide): call it n times on a one-row batch
        args, kwargs = self.example_args
        with poutine.block():
            samples = [self.guide(*args, **kwargs) for _ in range(n)]
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


@dataclass(kw_only=True)
class SamplePosterior(Posterior):
    """A posterior represented by stored draws (MCMC): ``samples`` {site: (chain, draw, *shape)}
    and ``sample_stats`` {name: (chain, draw)}."""

    samples: dict
    sample_stats: dict = field(default_factory=dict)

    @property
    def num_stored(self) -> int:
        v = next(iter(self.samples.values()))
        return v.shape[0] * v.shape[1]

    def _all_draws(self, num_samples, seed) -> dict[str, torch.Tensor]:
        if num_samples is None or num_samples >= self.num_stored:
            out = self.samples
        else:
            v = next(iter(self.samples.values()))
            per_chain = max(1, int(num_samples) // v.shape[0])
            idx = torch.linspace(0, v.shape[1] - 1, per_chain).round().long()
            out = {k: s[:, idx.to(s.device)] for k, s in self.samples.items()}
        return out

    def draw_chunks(self, num_samples: int | None = None, seed: int | None = None, *, chunk_draws: int | None = None,
                    thin: int | None = None, max_draws: int | None = None):
        """:meth:`Posterior.draw_chunks` for stored draws: slices of them."""
        flat, chains, per_chain = self._stored_rows(num_samples, thin, max_draws)
        total = chains * per_chain
        for a, b in chunk_bounds(total, chunk_draws):
            yield a, {k: _rows(v, flat[a:b]).unsqueeze(0) for k, v in self.samples.items()}

    def draw_shape(self, num_samples: int | None = None, *, thin: int | None = None,
                   max_draws: int | None = None) -> tuple[int, int]:
        """(chains, draws per chain) of :meth:`draws` with these arguments, without drawing."""
        _, chains, per_chain = self._stored_rows(num_samples, thin, max_draws)
        return chains, per_chain

    def kept_draw_rows(self, num_samples: int | None = None, thin: int | None = None,
                       max_draws: int | None = None):
        flat, chains, per_chain = self._stored_rows(num_samples, thin, max_draws)
        stored = next(iter(self.samples.values())).shape[1]
        return (flat % stored).reshape(chains, per_chain)[0].numpy()

    def _stored_rows(self, num_samples, thin, max_draws):
        """Flat (chain·stored draw) row numbers of the kept MCMC draws, chain-major."""
        v = next(iter(self.samples.values()))
        chains, stored = v.shape[:2]
        if num_samples is None or num_samples >= self.num_stored:
            keep = torch.arange(stored)
        else:
            per_chain = max(1, int(num_samples) // chains)
            keep = torch.linspace(0, stored - 1, per_chain).round().long()
        if thin is not None or max_draws is not None:
            keep = keep[draw_index(keep.numel(), chains, thin=thin, max_draws=max_draws)]
        flat = (torch.arange(chains).unsqueeze(1) * stored + keep.unsqueeze(0)).reshape(-1)
        return flat, chains, keep.numel()


def _concat_predictions(parts: list[Prediction]) -> Prediction:
    out = {}
    for name in Prediction.__dataclass_fields__:
        vals = [getattr(p, name) for p in parts]
        if name == "task":
            out[name] = vals[0]
        elif name == "extra":
            out[name] = {}
        elif vals[0] is None:
            out[name] = None
        else:
            dim = 1 if name in ("mean_draws", "noise_draws", "prob_draws") else 0
            out[name] = torch.cat(vals, dim)
    return Prediction(**out)


def _rows(v: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Rows ``flat`` of ``v`` (chain, draw, ...) numbered chain-major: (len(flat), ...)."""
    flat = flat.to(v.device)
    return v[flat // v.shape[1], flat % v.shape[1]]


def _num_guide_draws(num_samples) -> int:
    n = 1000 if num_samples is None else int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    return n


def draw_index(num_draws: int, num_chains: int = 1, *, thin: int | None = None,
               max_draws: int | None = None) -> torch.Tensor:
    """Indices of the draws kept in each of ``num_chains`` chains of ``num_draws``: every
    ``thin``-th draw (0, thin, 2·thin, ...), then, when more than ``max_draws`` remain in all
    chains together, ``max_draws // num_chains`` of them (at least one) evenly spaced from the
    first to the last."""
    if thin is not None and (isinstance(thin, bool) or not isinstance(thin, int) or thin < 1):
        raise ValueError(f"thin must be a positive integer or None, got {thin!r}")
    if max_draws is not None and (isinstance(max_draws, bool) or not isinstance(max_draws, int) or max_draws < 1):
        raise ValueError(f"max_draws must be a positive integer or None, got {max_draws!r}")
    idx = torch.arange(0, num_draws, thin or 1)
    if max_draws is not None and idx.numel() * num_chains > max_draws:
        per_chain = max(1, max_draws // num_chains)
        idx = idx[torch.linspace(0, idx.numel() - 1, per_chain).round().long()]
    return idx


#: chunks of a random stream start at multiples of this many rows (see Posterior.draw_chunks)
CHUNK_ALIGN = 16


def chunk_bounds(total: int, chunk_draws: int | None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(total)``: chunks of ``chunk_draws`` rounded up
    to a multiple of 16, a last chunk of fewer than 16 joined to the one before (None: one
    chunk)."""
    if chunk_draws is not None and (isinstance(chunk_draws, bool) or not isinstance(chunk_draws, int)
                                    or chunk_draws < 1):
        raise ValueError(f"chunk_draws must be a positive integer or None, got {chunk_draws!r}")
    if chunk_draws is None or total <= chunk_draws:
        return [(0, total)]
    k = -(-chunk_draws // CHUNK_ALIGN) * CHUNK_ALIGN
    starts = list(range(0, total, k))
    if len(starts) > 1 and total - starts[-1] < CHUNK_ALIGN:
        starts.pop()
    return [(a, starts[i + 1] if i + 1 < len(starts) else total) for i, a in enumerate(starts)]


def _site_cursor_rows(guide, bounds, seed):
    """Blocks of ``guide.sample_posterior(n)`` drawn block by block.  The one-call version draws
    every site in turn from torch's CPU generator, each with one ``normal_`` call on
    ``(n, *shape)``; that call's values are the same whether made once or block by block in
    order when every block but the last covers a multiple of 16 values (its Box-Muller pairs
    stay aligned), so each site keeps a generator state of its own ("cursor"), started where
    the one-call version starts it.  The caller's generator state is restored."""
    sites = guide._sites
    dists = [guide.site_distribution(s) for s in sites]
    saved = torch.random.get_rng_state()
    try:
        if seed is not None:
            torch.default_generator.manual_seed(int(seed))
        cursors = []
        for i, d in enumerate(dists):
            cursors.append(torch.random.get_rng_state())
            if i + 1 < len(dists):  # advance past this site's draws to find where the next one starts
                for a, b in bounds:
                    d.sample((b - a,))
        for a, b in bounds:
            block = {}
            for i, (s, d) in enumerate(zip(sites, dists)):
                torch.random.set_rng_state(cursors[i])
                block[s.name] = d.sample((b - a,))
                cursors[i] = torch.random.get_rng_state()
            torch.random.set_rng_state(saved)
            yield block
    finally:
        torch.random.set_rng_state(saved)
