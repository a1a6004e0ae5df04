"""Calibration measures against hand computations."""

import math

import numpy as np
import pytest

from pyrobnn.diagnostics import metrics
from pyrobnn.diagnostics.calibration import (
    brier_score,
    calibration_section,
    classification_calibration,
    classification_nll,
    expected_calibration_error,
    interval_coverage,
    maximum_calibration_error,
    regression_calibration_curve,
    reliability_diagram,
)


def test_one_implementation_reexported_by_metrics():
    assert metrics.expected_calibration_error is expected_calibration_error
    assert metrics.reliability_diagram is reliability_diagram
    assert metrics.brier_score is brier_score


def test_classification_numbers_by_hand():
    # confidences 0.9 (right), 0.6 (wrong), 0.55 (right), 0.8 (right) with 2 bins (0, .5], (.5, 1]
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]])
    y = np.array([0, 0, 0, 1])
    rel = reliability_diagram(probs, y, n_bins=2)
    assert rel["count"] == [0, 4]
    assert rel["accuracy"][1] == pytest.approx(0.75)
    assert rel["confidence"][1] == pytest.approx((0.9 + 0.6 + 0.55 + 0.8) / 4)
    # 4 bins of width .25: (.5,.75] holds .6 (wrong), .55 (right); (.75, 1] holds .9, .8 (both right)
    gap_mid, gap_top = abs(0.5 - 0.575), abs(1.0 - 0.85)
    assert expected_calibration_error(probs, y, n_bins=4) == pytest.approx(0.5 * gap_mid + 0.5 * gap_top)
    assert maximum_calibration_error(probs, y, n_bins=4) == pytest.approx(max(gap_mid, gap_top))
    nll = -(math.log(0.9) + math.log(0.4) + math.log(0.55) + math.log(0.8)) / 4
    assert classification_nll(probs, y) == pytest.approx(nll)
    brier = ((0.1**2 * 2) + (0.6**2 * 2) + (0.45**2 * 2) + (0.2**2 * 2)) / 4
    assert brier_score(probs, y) == pytest.approx(brier)
    allm = classification_calibration(probs, y, n_bins=4)
    assert allm["accuracy"] == pytest.approx(0.75) and allm["nll"] == pytest.approx(nll)
    assert allm["ece"] == pytest.approx(0.5 * gap_mid + 0.5 * gap_top) and allm["mce"] == pytest.approx(gap_top)
    # binary P(y=1) form gives the same confidences
    assert classification_nll(probs[:, 1], y) == pytest.approx(nll)
    assert classification_nll([[1.0, 0.0]], [1]) == pytest.approx(-math.log(1e-12))


def test_classification_bad_inputs():
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        expected_calibration_error([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="n_bins"):
        maximum_calibration_error([[0.5, 0.5]], [0], n_bins=0)
    with pytest.raises(ValueError, match="probs must be"):
        brier_score([[0.5, 0.5]], [0, 1])
    with pytest.raises(ValueError, match="integer class labels"):
        classification_nll([[0.5, 0.5]], [0.5])


def test_regression_coverage_and_curve_by_hand():
    # draws 0..99 for each of 4 targets: the empirical CDF at y is (#draws ≤ y) / 100
    draws = np.tile(np.arange(100.0)[:, None], (1, 4))
    y = np.array([10.5, 49.5, 80.5, 200.0])
    cov = interval_coverage(y, draws, levels=[0.5, 0.9])
    # 50% interval: np.quantile at .25/.75 of 0..99 = 24.75, 74.25 → only 49.5 inside
    # 90% interval: [4.95, 94.05] holds 10.5, 49.5 and 80.5 but not 200
    assert cov["coverage"] == pytest.approx([0.25, 0.75])
    assert cov["width"] == pytest.approx([74.25 - 24.75, 94.05 - 4.95])
    curve = regression_calibration_curve(y, draws, n_levels=3)  # p = .25, .5, .75
    # PIT = 0.11, 0.50, 0.81, 1.0 → fraction ≤ p: 1/4, 2/4, 2/4
    assert curve["expected"] == pytest.approx([0.25, 0.5, 0.75])
    assert curve["observed"] == pytest.approx([0.25, 0.5, 0.5])
    assert curve["calibration_error"] == pytest.approx((0 + 0 + 0.25**2) / 3)
    with pytest.raises(ValueError, match="y_draws must be"):
        interval_coverage(y, draws[:, :3])
    with pytest.raises(ValueError, match="levels must be"):
        interval_coverage(y, draws, levels=[1.2])


def test_calibrated_gaussian_covers_its_levels():
    # y and its draws from the same N(0,1) per point: coverage ≈ level within 4 binomial s.e.
    rng = np.random.default_rng(0)
    n = 2000
    mu = rng.normal(size=n)
    y = mu + rng.normal(size=n)
    draws = mu + rng.normal(size=(400, n))
    cov = interval_coverage(y, draws, levels=[0.5, 0.9])
    for lv, c in zip(cov["levels"], cov["coverage"]):
        assert abs(c - lv) < 4 * math.sqrt(lv * (1 - lv) / n)
    # over-confident draws (scale 0.5) under-cover
    narrow = interval_coverage(y, mu + 0.5 * rng.normal(size=(400, n)), levels=[0.9])["coverage"][0]
    assert narrow < 0.9 - 4 * math.sqrt(0.09 / n)


def test_calibration_section_writes_figures(tmp_path):
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]])
    sec = calibration_section(tmp_path, [0, 0, 0, 1], probs=probs, n_bins=4)
    assert sec["metrics"]["mce"] == pytest.approx(0.15)
    assert all(p.exists() and p.stat().st_size > 0 for p in sec["figures"])
    draws = np.random.default_rng(1).normal(size=(50, 30))
    sec = calibration_section(tmp_path, np.zeros(30), y_draws=draws)
    assert len(sec["metrics"]["intervals"]["coverage"]) == 4 and sec["figures"][0].exists()
    with pytest.raises(ValueError, match="exactly one of"):
        calibration_section(tmp_path, [0], probs=[[1.0, 0.0]], y_draws=np.zeros((2, 1)))
