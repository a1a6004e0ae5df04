"""Bayesian Deep Collaborative Matrix Factorisation (Xiao, Liang, Shen & Meng, AAAI 2019).

A recommender from implicit ratings, a social graph and item content: the Pyro model
(:mod:`.model`), the exact sparse Gaussian terms (:mod:`.als`), the variational-EM point
estimator (:mod:`.point`), the full mean-field posterior by SVI (:mod:`.full`), baselines in the
same harness (PMF, CTR-style, content-only: :data:`METHODS`), ranking metrics (:mod:`.metrics`),
the choice of hyperparameters on a validation split of the training ratings (:mod:`.tuning`)
and the ``pyrobnn recommend`` command (:mod:`.cli`).
"""

from .fit import BDCMFFit, load_fit
from .full import fit_full
from .harness import evaluate, fit_bdcmf
from .metrics import procrustes_correlation, random_recall, ranking_metrics
from .point import fit_point
from .settings import ESTIMATORS, METHODS, BDCMFSettings
from .tuning import select_by_validation

__all__ = ["BDCMFFit", "BDCMFSettings", "ESTIMATORS", "METHODS", "evaluate", "fit_bdcmf", "fit_full", "fit_point",
           "load_fit", "procrustes_correlation", "random_recall", "ranking_metrics", "select_by_validation"]
