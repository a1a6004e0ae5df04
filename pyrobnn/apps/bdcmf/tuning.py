r"""Choice of hyperparameters on a validation split carved out of the training ratings.

Xiao et al. (2019) choose λ_v and λ_q by validation.  :func:`select_by_validation` holds out
``val_fraction`` of the *training* pairs (:func:`pyrobnn.data.split_ratings` with no cold items,
under a private seed), fits each candidate on the rest and scores it by validation recall@``k``
(:func:`.metrics.ranking_metrics`, the remaining training pairs excluded from the ranking).  The
test pairs and the cold-start items of the caller's split are never seen.

The search is coordinate-wise over ``stages``, a list of ``(parameter, values)``: stage by
stage, every value is tried with the other parameters at their best so far, and the best value
is kept (ties go to the earlier value).  For ``[("lambda_v", [1, 10, 100]), ("lambda_q", [0, 1,
10])]`` that is 3 + 3 fits, one of them shared, instead of the 9 of the full grid.  The chosen
settings are then refitted on all training ratings by the caller.
"""

from __future__ import annotations

from dataclasses import replace

from ...data.recsys import RecsysData, split_ratings
from ...utils.validation import check_int, check_probability
from .harness import fit_bdcmf
from .metrics import ranking_metrics
from .settings import BDCMFSettings

__all__ = ["select_by_validation"]


def select_by_validation(train: RecsysData, base: BDCMFSettings, stages, val_fraction: float = 0.1, k: int = 100,
                         seed: int = 0, fit=fit_bdcmf) -> tuple[BDCMFSettings, list[dict]]:
    """Coordinate search of ``stages`` (module docstring) from ``base`` by validation recall@``k``.

    Returns ``(best settings, trials)``; each trial is ``{"settings": {...changed values...},
    "validation": ranking metrics, "fit": the fit}`` in the order tried.  ``fit(data, settings)``
    fits one candidate (default :func:`.harness.fit_bdcmf`).
    """
    check_probability("val_fraction", val_fraction, open_ends=True)
    check_int("k", k)
    stages = [(str(p), list(values)) for p, values in stages]
    for param, values in stages:
        if not hasattr(base, param):
            raise ValueError(f"stages: {param!r} is not a setting of BDCMFSettings")
        if not values:
            raise ValueError(f"stages: no values for {param!r}")
    split = split_ratings(train, val_fraction, 0.0, seed)
    sub, val = split.train, split.test
    chosen: dict = {}
    trials: list[dict] = []
    done: dict = {}
    for param, values in stages:
        scores = []
        for value in values:
            cand = {**chosen, param: value}
            settings = replace(base, **cand)
            key = tuple(getattr(settings, p) for p, _ in stages)  # the same candidate is fitted once
            if key not in done:
                f = fit(sub, settings)
                res = ranking_metrics(f.u, f.v, val.to(f.u.device), sub.ratings, (k,))
                done[key] = res[f"recall@{k}"]
                trials.append({"settings": cand, "validation": res, "fit": f})
            scores.append(done[key])
        chosen[param] = values[max(range(len(values)), key=lambda i: (scores[i], -i))]
    return replace(base, **chosen), trials
