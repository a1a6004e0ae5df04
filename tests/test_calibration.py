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


# --------------------------------------------------------------------------- shift and OOD
def test_ood_auroc_aupr_by_hand():
    from pyrobnn.apps.shift import ood_detection

    # OOD 0.25 beats two of three in-distribution scores, 0.4 beats all three: AUROC = 5/6
    # ranking 0.4(+) 0.3(-) 0.25(+) 0.2 0.1: precision 1 at recall 1/2, 2/3 at recall 1 → AP = 5/6
    r = ood_detection([0.1, 0.2, 0.3], [0.25, 0.4])
    assert r["auroc"] == pytest.approx(5 / 6) and r["aupr"] == pytest.approx(5 / 6)
    assert ood_detection([0.1, 0.2], [0.2])["auroc"] == pytest.approx(0.75)  # a tie counts one half
    with pytest.raises(ValueError, match="scores of both sets"):
        ood_detection([], [1.0])


def test_rotation_and_noise_transforms():
    import torch

    from pyrobnn.apps.shift import ShiftSettings, add_noise, rotate, shifted

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 16, generator=g)
    img = x.reshape(3, 4, 4)
    assert torch.allclose(rotate(x, 0, 4, 4), x, atol=1e-6)
    assert torch.allclose(rotate(x, 90, 4, 4).reshape(3, 4, 4), torch.rot90(img, 1, (-2, -1)), atol=1e-6)
    assert torch.allclose(rotate(x, 180, 4, 4).reshape(3, 4, 4), img.flip(-1).flip(-2), atol=1e-6)
    # standardised inputs: rotate the pixels, standardise again
    mean, std = torch.full((16,), 0.5), torch.full((16,), 2.0)
    xs = (x - mean) / std
    assert torch.allclose(rotate(xs, 90, 4, 4, mean, std), (rotate(x, 90, 4, 4) - mean) / std, atol=1e-6)
    n = add_noise(torch.zeros(20000), 2.0, torch.Generator().manual_seed(1))
    assert abs(float(n.std()) - 2.0) < 4 * 2.0 / math.sqrt(2 * 20000)
    assert torch.equal(add_noise(x, 0.0, g), x)
    with pytest.raises(ValueError, match="expected height·width = 5·5 = 25"):
        rotate(x, 10, 5, 5)
    with pytest.raises(ValueError, match="kind must be"):
        shifted(x, "blur", 1.0, ShiftSettings(height=4, width=4))


def test_shift_evaluation_records_every_intensity(tmp_path):
    import torch

    from pyrobnn.apps.shift import ShiftSettings, plot_shift, shift_evaluation
    from pyrobnn.infer.predictive import summarize_draws

    w = torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(2))

    def predict(x):
        return summarize_draws("multiclass", torch.distributions.Categorical(logits=torch.einsum("nd,sdk->snk", x, w)))

    x = torch.rand(40, 16, generator=torch.Generator().manual_seed(3))
    y = predict(x).probs.argmax(-1)  # the unshifted inputs are classified perfectly
    st = ShiftSettings(angles=(0.0, 90.0), noise_sigmas=(0.0, 1.0), height=4, width=4)
    res = shift_evaluation(predict, x, y, st)
    assert [r["intensity"] for r in res["rotation"]] == [0.0, 90.0]
    assert res["rotation"][0]["accuracy"] == 1.0 and res["noise"][0]["accuracy"] == 1.0
    assert res["noise"][1]["accuracy"] < 1.0
    assert res["rotation"][1]["mean_mutual_information"] >= 0
    assert plot_shift({"toy": res}, tmp_path / "shift.png").stat().st_size > 0
