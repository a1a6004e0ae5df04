"""The pool-based active-learning loop (Gal, Islam & Ghahramani, "Deep Bayesian active learning
with image data", ICML 2017, section 4).

Start from a small labelled set, balanced over the classes; each round fit the model on the
labelled set (SVI with the inference spec's guide), measure test accuracy, NLL, ECE and Brier,
score every unlabelled pool point with an acquisition function from S posterior draws
(:mod:`pyrobnn.apps.active.acquisition`, one batched predictive pass over draws and points),
and label the chosen batch.  The fit restarts from the model's initialisation every round, or
continues the previous round's guide (``warm_start``).  The whole loop runs for several
acquisition functions and seeds; :func:`summarize` turns the runs into learning curves (mean and
standard deviation over seeds) and the label counts the curves need to reach a target accuracy.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from ...infer.laplace import fit_laplace
from ...infer.svi import fit_svi
from ...spec import (build_data, build_guide, build_model, laplace_kwargs, load_inference_spec, load_model_spec,
                     svi_kwargs)
from ...utils.rng import seeded
from ...utils.validation import check_bool, check_int, check_number
from .acquisition import ACQUISITIONS, BATCH_MODES, score, select_batch

__all__ = ["ActiveLearningSettings", "run_active_learning", "active_learning_run", "initial_labelled",
           "summarize", "plot_learning_curves"]


@dataclass(frozen=True)
class ActiveLearningSettings:
    """Settings of :func:`run_active_learning`; the ``[active_learning]`` table of a spec and the
    ``settings`` record of ``metrics.json`` are this dataclass's fields.

    ``model`` / ``inference``: spec names or paths (``model_set`` / ``inference_set``:
    ``key.path=value`` overrides of them); ``acquisitions``: names in :data:`ACQUISITIONS`;
    ``seeds``: one loop per seed and acquisition; ``initial_labels`` points balanced over the
    classes, then ``per_round`` per round up to ``max_labels``; ``batch_mode`` "topk" or
    "power" (stochastic batch, exponent ``beta``); ``warm_start``: continue the previous
    round's guide (or, for a Laplace approximation, network) instead of refitting from the
    initialisation; ``steps_per_round``: optimisation steps of each fit — SVI's, or the MAP fit's
    of a Laplace approximation — (epochs follow from the labelled-set size and the spec's batch
    size);
    ``num_samples``: posterior draws for scoring and evaluation; ``full_data_reference``: also
    fit once per seed on the whole pool (the "full-data accuracy"); ``pool_size`` /
    ``test_size``: use only the first points of the pool / test split (after a seeded shuffle).
    """

    model: str = "digits_classifier"
    inference: str = "svi_meanfield"
    model_set: tuple[str, ...] = ()
    inference_set: tuple[str, ...] = ()
    acquisitions: tuple[str, ...] = ("bald", "max_entropy", "variation_ratio", "mean_std", "random")
    seeds: tuple[int, ...] = (0, 1, 2)
    initial_labels: int = 20
    per_round: int = 10
    max_labels: int = 500
    batch_mode: str = "topk"
    beta: float = 1.0
    warm_start: bool = False
    steps_per_round: int = 500
    num_samples: int = 50
    full_data_reference: bool = True
    pool_size: int | None = None
    test_size: int | None = None

    def __post_init__(self):
        for name in ("model", "inference"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"active_learning.{name} must be a spec name or path, got {getattr(self, name)!r}")
        for name in ("model_set", "inference_set", "acquisitions", "seeds"):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
                raise ValueError(f"active_learning.{name} must be a list, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        for s in self.model_set + self.inference_set:
            if not isinstance(s, str) or "=" not in s:
                raise ValueError(f"active_learning.model_set / inference_set entries must be 'key.path=value' "
                                 f"strings, got {s!r}")
        if not self.acquisitions:
            raise ValueError("active_learning.acquisitions must name at least one acquisition function")
        for a in self.acquisitions:
            if a not in ACQUISITIONS:
                raise ValueError(f"active_learning.acquisitions: {a!r} is unknown; expected some of {sorted(ACQUISITIONS)}")
        if not self.seeds:
            raise ValueError("active_learning.seeds must hold at least one seed")
        for s in self.seeds:
            check_int("active_learning.seeds[]", s, minimum=0)
        for name in ("initial_labels", "per_round", "max_labels", "steps_per_round", "num_samples"):
            check_int(f"active_learning.{name}", getattr(self, name))
        for name in ("pool_size", "test_size"):
            if getattr(self, name) is not None:
                check_int(f"active_learning.{name}", getattr(self, name))
        if self.max_labels < self.initial_labels:
            raise ValueError(f"active_learning.max_labels ({self.max_labels}) must be >= initial_labels "
                             f"({self.initial_labels})")
        if self.batch_mode not in BATCH_MODES:
            raise ValueError(f"active_learning.batch_mode must be one of {list(BATCH_MODES)}, got {self.batch_mode!r}")
        check_number("active_learning.beta", self.beta, lo=0.0, lo_open=True)
        check_bool("active_learning.warm_start", self.warm_start)
        check_bool("active_learning.full_data_reference", self.full_data_reference)

    @classmethod
    def from_mapping(cls, table) -> "ActiveLearningSettings":
        """From a spec's ``[active_learning]`` table; unknown keys are an error naming them."""
        if not isinstance(table, dict):
            raise ValueError(f"the [active_learning] table must be a table of settings, got {table!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"active_learning: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**table)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def label_counts(self) -> list[int]:
        """Labelled-set sizes at which the model is fitted and evaluated."""
        n = list(range(self.initial_labels, self.max_labels, self.per_round))
        return n + [self.max_labels] if not n or n[-1] != self.max_labels else n


def initial_labelled(y: torch.Tensor, n: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` pool indices balanced over the classes (round robin over a random order within each
    class; a class with too few points gives way to the others)."""
    y = y.cpu()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"pool labels must lie in 0..{num_classes - 1}, got range {int(y.min())}..{int(y.max())}")
    if n > y.numel():
        raise ValueError(f"initial_labels ({n}) exceeds the pool size ({y.numel()})")
    per_class = [(y == c).nonzero().squeeze(-1) for c in range(num_classes)]
    per_class = [idx[torch.randperm(idx.numel(), generator=generator)] for idx in per_class]
    out, depth = [], 0
    while len(out) < n:
        for idx in per_class:
            if depth < idx.numel() and len(out) < n:
                out.append(int(idx[depth]))
        depth += 1
    return torch.tensor(out, dtype=torch.long)


def _subset(x, y, n, generator):
    if n is None or n >= x.shape[0]:
        return x, y
    idx = torch.randperm(x.shape[0], generator=generator)[:n]
    return x[idx], y[idx]


def _fit(mspec, ispec, settings, x, y, net_guide, seed):
    """A fit on the labelled points by the inference spec's method: SVI, or a Laplace
    approximation (its MAP fit taking ``steps_per_round`` steps)."""
    laplace = ispec.method == "laplace"
    kw = laplace_kwargs(ispec) if laplace else svi_kwargs(ispec)
    # even minibatches: 130 points with the spec's 128 would leave a minibatch of 2 whose gradient,
    # scaled by N/B = 65, upsets the fit every epoch
    steps_per_epoch = math.ceil(x.shape[0] / kw["batch_size"])
    kw.update(batch_size=math.ceil(x.shape[0] / steps_per_epoch),
              epochs=max(1, math.ceil(settings.steps_per_round / steps_per_epoch)), seed=seed, progress=False,
              handle_interrupt=False)
    if net_guide is None:
        with seeded(seed):  # the layers' initialisation draws from torch's generator
            net = build_model(mspec)
            guide = None if laplace else build_guide(ispec, net)
    else:
        net, guide = net_guide
    post = fit_laplace(net, x, y, **kw) if laplace else fit_svi(net, guide, x, y, **kw)
    return post, (net, guide)


def _evaluate(post, x, y, settings, seed) -> dict:
    # imported here: the diagnostics package brings matplotlib, which the command line's parser
    # (it imports this module for the active-learning settings) should not pay for on every call
    from ...diagnostics.calibration import classification_calibration

    pred = post.predict(x, num_samples=settings.num_samples, seed=seed)
    m = classification_calibration(pred.probs, y)
    return {k: m[k] for k in ("accuracy", "nll", "brier", "ece")}


def active_learning_run(acquisition: str, seed: int, settings: ActiveLearningSettings, mspec, ispec, data,
                        on_round=None) -> list[dict]:
    """One loop: a list of per-round records ``{"labels", "accuracy", "nll", "brier", "ece",
    "fit_seconds", "score_seconds", "acquired"}`` (``acquired``: the pool indices labelled
    after the round)."""
    g = torch.Generator().manual_seed(int(seed))
    x_pool, y_pool = _subset(data.x_train, data.y_train, settings.pool_size, g)
    x_test, y_test = _subset(data.x_test, data.y_test, settings.test_size, g)
    if settings.max_labels > x_pool.shape[0]:
        raise ValueError(f"active_learning.max_labels ({settings.max_labels}) exceeds the pool size "
                         f"({x_pool.shape[0]})")
    labelled = torch.zeros(x_pool.shape[0], dtype=torch.bool)
    labelled[initial_labelled(y_pool, settings.initial_labels, data.num_classes, g)] = True
    rounds, net_guide = [], None
    for r, n in enumerate(settings.label_counts()):
        if int(labelled.sum()) != n:  # the invariant of the loop: never relabel a point
            raise RuntimeError(f"round {r}: {int(labelled.sum())} labelled points, expected {n}")
        fit_seed = int(seed) * 100_003 + r
        t0 = time.perf_counter()
        post, fitted = _fit(mspec, ispec, settings, x_pool[labelled], y_pool[labelled], net_guide, fit_seed)
        net_guide = fitted if settings.warm_start else None
        t1 = time.perf_counter()
        rec = {"labels": n, **_evaluate(post, x_test, y_test, settings, fit_seed), "fit_seconds": t1 - t0}
        if n < settings.max_labels:
            k = min(settings.per_round, settings.max_labels - n)
            t2 = time.perf_counter()
            free = (~labelled).nonzero().squeeze(-1)
            pred = post.predict(x_pool[free], num_samples=settings.num_samples, seed=fit_seed)
            draws = pred.prob_draws.reshape(-1, *pred.prob_draws.shape[-2:])
            gd = torch.Generator(device=draws.device).manual_seed(fit_seed)
            s = score(acquisition, draws, gd)
            pick = free[select_batch(s.cpu(), torch.zeros(free.numel(), dtype=torch.bool), k, settings.batch_mode,
                                     settings.beta, torch.Generator().manual_seed(fit_seed))]
            labelled[pick] = True
            rec.update(score_seconds=time.perf_counter() - t2, acquired=pick.tolist())
        rounds.append(rec)
        if on_round is not None:
            on_round()
    return rounds


def _full_data(settings, mspec, ispec, data, seed) -> dict:
    g = torch.Generator().manual_seed(int(seed))
    x_pool, y_pool = _subset(data.x_train, data.y_train, settings.pool_size, g)
    x_test, y_test = _subset(data.x_test, data.y_test, settings.test_size, g)
    post, _ = _fit(mspec, ispec, settings, x_pool, y_pool, None, int(seed) * 100_003 + 99_999)
    return {"labels": int(x_pool.shape[0]), **_evaluate(post, x_test, y_test, settings, int(seed))}


def run_active_learning(settings: ActiveLearningSettings | None = None, data=None, progress: bool = False) -> dict:
    """Every (acquisition, seed) loop of ``settings`` and their :func:`summarize`.  ``data``
    replaces the model spec's data (a :class:`~pyrobnn.data.Dataset` of a classification task)."""
    settings = settings or ActiveLearningSettings()
    mspec = load_model_spec(settings.model, list(settings.model_set))
    ispec = load_inference_spec(settings.inference, list(settings.inference_set))
    if ispec.method not in ("svi", "laplace"):
        raise ValueError(f"active learning fits by SVI or a Laplace approximation; the inference spec "
                         f"{settings.inference!r} is {ispec.method!r}")
    data = build_data(mspec) if data is None else data
    if data.task == "regression" or data.x_test is None:
        raise ValueError("active learning needs a classification data set with a test split")
    total = len(settings.acquisitions) * len(settings.seeds) * len(settings.label_counts())
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="active learning", unit="round", disable=not progress)
    runs: dict = {a: {} for a in settings.acquisitions}
    try:
        for a in settings.acquisitions:
            for s in settings.seeds:
                runs[a][int(s)] = active_learning_run(a, s, settings, mspec, ispec, data, on_round=bar.update)
        full = ({int(s): _full_data(settings, mspec, ispec, data, s) for s in settings.seeds}
                if settings.full_data_reference else {})
    finally:
        bar.close()
    return {"settings": settings.to_dict(), "data": data.name, "runs": runs, "full_data": full,
            "summary": summarize(runs, full, settings.label_counts())}


def _first_reaching(labels, curve, target) -> int | None:
    hit = np.nonzero(np.asarray(curve) >= target - 1e-12)[0]
    return int(labels[hit[0]]) if hit.size else None


def summarize(runs: dict, full_data: dict, labels) -> dict:
    """Learning curves and label counts.  Per acquisition: ``labels``, ``accuracy_mean`` and
    ``accuracy_std`` over seeds (also NLL and ECE means), the mean seconds per round of fitting
    and of scoring the pool, ``labels_to_random_final`` (fewest labels at which the mean curve
    reaches random acquisition's final mean accuracy) with its ratio to random's final label
    count, and ``labels_to_90pct_full`` (fewest labels reaching 90% of the full-data
    accuracy)."""
    labels = np.asarray(labels)
    out: dict = {}
    for a, per_seed in runs.items():
        recs = list(per_seed.values())
        acc = np.array([[r["accuracy"] for r in rs] for rs in recs])
        out[a] = {"labels": labels.tolist(), "accuracy_mean": acc.mean(0).tolist(),
                  "accuracy_std": acc.std(0).tolist(),
                  "nll_mean": np.mean([[r["nll"] for r in rs] for rs in recs], 0).tolist(),
                  "ece_mean": np.mean([[r["ece"] for r in rs] for rs in recs], 0).tolist(),
                  "fit_seconds_per_round": float(np.mean([r["fit_seconds"] for rs in recs for r in rs])),
                  "score_seconds_per_round": float(np.mean([r["score_seconds"] for rs in recs for r in rs
                                                           if "score_seconds" in r] or [float("nan")]))}
    if "random" in out:
        target = out["random"]["accuracy_mean"][-1]
        for a, d in out.items():
            n = _first_reaching(labels, d["accuracy_mean"], target)
            d["labels_to_random_final"] = n
            d["fraction_of_random_labels"] = None if n is None else n / int(labels[-1])
    full_acc = None
    if full_data:
        full_acc = float(np.mean([f["accuracy"] for f in full_data.values()]))
        for d in out.values():
            d["labels_to_90pct_full"] = _first_reaching(labels, d["accuracy_mean"], 0.9 * full_acc)
    return {"by_acquisition": out, "full_data_accuracy": full_acc}


def plot_learning_curves(summary: dict, path, title: str = "Active learning"):
    """Test accuracy against the number of labels per acquisition function: the mean over seeds
    with a band of ± one standard deviation; the full-data accuracy (and 90% of it) dashed."""
    from ...diagnostics.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for a, d in summary["by_acquisition"].items():
        n, m, sd = (np.asarray(d[k]) for k in ("labels", "accuracy_mean", "accuracy_std"))
        (line,) = ax.plot(n, m, lw=1.8, label=a)
        ax.fill_between(n, m - sd, m + sd, color=line.get_color(), alpha=0.15, lw=0)
    full = summary.get("full_data_accuracy")
    if full is not None:
        ax.axhline(full, color="black", ls="--", lw=1, label=f"full pool ({full:.3f})")
        ax.axhline(0.9 * full, color="gray", ls=":", lw=1, label="90% of full pool")
    ax.set_xlabel("labelled points")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title} (mean ± 1 s.d. over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)
