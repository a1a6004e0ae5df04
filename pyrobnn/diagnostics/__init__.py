"""Diagnostics: ArviZ export, predictive metrics, HTML reports and comparisons.

* :func:`to_datatree` / :func:`save_datatree` / :func:`load_datatree` — a posterior as an
  InferenceData-schema ``xarray.DataTree`` that ArviZ reads without pyrobnn
  (:mod:`pyrobnn.diagnostics.export`);
* :mod:`pyrobnn.diagnostics.metrics` — RMSE, NLL, coverage, calibration, Brier, AUC, and
  ArviZ's R-hat / ESS / PSIS-LOO turned into sentences (:func:`diagnose`), with R-hat and
  ESS of the predictions themselves (:func:`function_space_convergence`);
* :mod:`pyrobnn.diagnostics.calibration` — reliability diagram, ECE, MCE, Brier, NLL;
  central-interval coverage and the calibration curve of regression; figures of both;
* :func:`report` — one HTML page with figures, ``metrics.json`` and the ``.nc`` file;
* :func:`compare` — several fits side by side.
"""

from .calibration import (
    calibration_section,
    classification_calibration,
    classification_nll,
    interval_coverage,
    maximum_calibration_error,
    regression_calibration,
    regression_calibration_curve,
)
from .compare import Comparison, compare
from .export import load_datatree, save_datatree, to_datatree
from .metrics import (
    Diagnostics,
    accuracy,
    brier_score,
    coverage,
    diagnose,
    expected_calibration_error,
    function_space_convergence,
    loo,
    mean_nll,
    predictive_metrics,
    reliability_diagram,
    rmse,
    roc_auc,
    vi_pareto_k,
)
from .report import load_tree, report

__all__ = [
    "to_datatree", "save_datatree", "load_datatree", "load_tree", "report", "compare", "Comparison",
    "rmse", "mean_nll", "coverage", "reliability_diagram", "expected_calibration_error", "brier_score", "accuracy",
    "roc_auc", "predictive_metrics", "loo", "vi_pareto_k", "diagnose", "Diagnostics",
    "function_space_convergence",
    "maximum_calibration_error", "classification_nll", "classification_calibration", "interval_coverage",
    "regression_calibration_curve", "regression_calibration", "calibration_section",
]
