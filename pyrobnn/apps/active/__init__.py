"""Pool-based active learning with Bayesian networks: acquisition functions (BALD, max-entropy,
variation ratio, mean STD, random), batch choice (top-k or stochastic), the loop, and the
``pyrobnn active-learning`` command."""

from .acquisition import ACQUISITIONS, bald, max_entropy, mean_std, random_scores, score, select_batch, variation_ratio
from .loop import (
    ActiveLearningSettings,
    active_learning_run,
    initial_labelled,
    plot_learning_curves,
    run_active_learning,
    summarize,
)

__all__ = ["ACQUISITIONS", "bald", "max_entropy", "variation_ratio", "mean_std", "random_scores", "score",
           "select_batch", "ActiveLearningSettings", "run_active_learning", "active_learning_run",
           "initial_labelled", "summarize", "plot_learning_curves"]
