r"""Choice of hyperparameters on a validation split carved out of the training ratings.

Xiao et al. (2019) choose λ_v and λ_q by validation.  :func:`select_by_validation` holds out
``val_fraction`` of the *training* pairs and, with ``cold_fraction > 0``, that fraction of the
training items whole (:func:`pyrobnn.data.split_ratings` under a private seed), fits each
candidate on the rest and scores it by validation recall@``k`` (:func:`.metrics.ranking_metrics`):
``"in_matrix"`` on the held-out pairs (the remaining training pairs excluded from the ranking),
``"cold_start"`` on the held-out items, scored from their content alone.  The test pairs and the
cold-start items of the caller's split are never seen.

The search is coordinate-wise over ``stages``, a list of ``(parameter, values)``: stage by
stage, every value is tried with the other parameters at their best so far, and the best value
is kept (ties go to the earlier value).  For ``[("lambda_v", [1, 10, 100]), ("lambda_q", [0, 1,
10])]`` that is 3 + 3 fits, one of them shared, instead of the 9 of the full grid.  Each
criterion of ``criteria`` gets its own search (a model for in-matrix recommendation and one for
cold start may differ: a weak tie λ_v of v to the content code suits the first, a strong one
the second); a candidate is fitted once whatever the number of searches that try it.  The
chosen settings are then refitted on all training ratings by the caller.
"""

from __future__ import annotations

from dataclasses import replace

from ...data.recsys import RecsysData, split_ratings
from ...utils.validation import check_int, check_number, check_probability
from .harness import fit_bdcmf
from .metrics import ranking_metrics
from .settings import BDCMFSettings

__all__ = ["select_by_validation", "CRITERIA"]

CRITERIA = ("in_matrix", "cold_start")


def select_by_validation(train: RecsysData, base: BDCMFSettings, stages, val_fraction: float = 0.1, k: int = 100,
                         seed: int = 0, fit=fit_bdcmf, cold_fraction: float = 0.0,
                         criteria=("in_matrix",)) -> tuple[dict, list[dict]]:
    """Coordinate search of ``stages`` (module docstring) from ``base`` by validation recall@``k``.

    Returns ``({criterion: best settings}, trials)``; each trial is ``{"settings": {...changed
    values...}, "in_matrix": metrics, "cold_start": metrics (with cold items and content),
    "fit": the fit}`` in the order tried.  ``fit(data, settings)`` fits one candidate (default
    :func:`.harness.fit_bdcmf`).
    """
    check_probability("val_fraction", val_fraction, open_ends=True)
    check_number("cold_fraction", cold_fraction, 0.0, 1.0, hi_open=True)
    check_int("k", k)
    criteria = tuple(criteria)
    for c in criteria:
        if c not in CRITERIA:
            raise ValueError(f"criteria: expected some of {list(CRITERIA)}, got {c!r}")
    if "cold_start" in criteria and (cold_fraction == 0.0 or train.content is None):
        raise ValueError("criteria: 'cold_start' needs cold_fraction > 0 and item content")
    stages = [(str(p), list(values)) for p, values in stages]
    for param, values in stages:
        if not hasattr(base, param):
            raise ValueError(f"stages: {param!r} is not a setting of BDCMFSettings")
        if not values:
            raise ValueError(f"stages: no values for {param!r}")
    split = split_ratings(train, val_fraction, cold_fraction, seed)
    sub = split.train
    trials: list[dict] = []
    done: dict = {}

    def score(cand: dict, criterion: str) -> float:
        settings = replace(base, **cand)
        key = tuple(getattr(settings, p) for p, _ in stages)  # the same candidate is fitted once
        if key not in done:
            f = fit(sub, settings)
            t = {"settings": cand, "in_matrix": ranking_metrics(f.u, f.v, split.test.to(f.u.device), sub.ratings, (k,)),
                 "fit": f}
            if f.encoder is not None and split.cold_items.numel():
                mu, _ = f.content_codes(split.cold_content)
                t["cold_start"] = ranking_metrics(f.u, mu, split.cold_test.to(f.u.device), None, (k,))
            done[key] = t
            trials.append(t)
        if criterion not in done[key]:
            raise ValueError(f"criteria: method {settings.method!r} cannot be scored on {criterion!r}")
        return done[key][criterion][f"recall@{k}"]

    best = {}
    for criterion in criteria:
        chosen: dict = {}
        for param, values in stages:
            scores = [score({**chosen, param: value}, criterion) for value in values]
            chosen[param] = values[max(range(len(values)), key=lambda i: (scores[i], -i))]
        best[criterion] = replace(base, **chosen)
    return best, trials
