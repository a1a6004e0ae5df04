"""Predictive uncertainty under dataset shift and out-of-distribution (OOD) detection.

Shift (Ovadia, Fertig, Ren, Nado, Sculley, Nowozin, Dillon, Lakshminarayanan & Snoek, "Can you
trust your model's uncertainty? Evaluating predictive uncertainty under dataset shift", NeurIPS
2019, section 4): the test images are rotated by an angle θ (bilinear interpolation, zeros
outside the image) or corrupted by additive Gaussian noise of standard deviation σ (in pixel
units), and accuracy, NLL, Brier, ECE, the mean predictive entropy and the mean mutual
information are measured at each intensity (:func:`shift_evaluation`, :func:`plot_shift`).

OOD detection: a score s(x) that should be larger on inputs unlike the training data — the
predictive entropy H[p̄(y | x)] (total uncertainty) or the mutual information I[y; w | x]
(epistemic part, Houlsby et al. 2011) — separates in-distribution from OOD inputs; the area
under the ROC curve and the average precision (area under the precision–recall curve) with OOD
as the positive class measure how well (:func:`ood_detection`, scikit-learn's
``roc_auc_score`` and ``average_precision_score``).

Images are rows of flattened pixels (N, H·W) or (N, C, H, W), possibly standardised per pixel
with ``mean`` and ``std`` (a loader's ``x_mean`` / ``x_std``): the transform undoes the
standardisation, acts on pixels and standardises again.  Work follows the tensors' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..diagnostics.calibration import classification_calibration
from ..utils.validation import check_int, check_number

__all__ = ["ShiftSettings", "rotate", "add_noise", "shifted", "ood_detection", "uncertainty_scores",
           "shift_evaluation", "plot_shift"]


@dataclass(frozen=True)
class ShiftSettings:
    """Intensities of :func:`shift_evaluation`: rotation angles in degrees, noise standard
    deviations in pixel units, the image side (``height`` × ``width``, one channel when inputs
    are flat rows) and the posterior draws used per evaluation."""

    angles: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 150.0, 180.0)
    noise_sigmas: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    height: int = 28
    width: int = 28
    num_samples: int = 100
    seed: int = 0

    def __post_init__(self):
        for name in ("angles", "noise_sigmas"):
            v = tuple(float(check_number(f"{name}[]", a)) for a in getattr(self, name))
            object.__setattr__(self, name, v)
        for s in self.noise_sigmas:
            check_number("noise_sigmas[]", s, lo=0.0)
        for name in ("height", "width", "num_samples"):
            check_int(name, getattr(self, name))
        check_int("seed", self.seed, minimum=0)


def _as_images(x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, tuple]:
    shape = tuple(x.shape)
    if x.ndim == 2:
        if x.shape[1] != height * width:
            raise ValueError(f"x has {x.shape[1]} features per row; expected height·width = {height}·{width} = "
                             f"{height * width} pixels")
        return x.reshape(-1, 1, height, width), shape
    if x.ndim == 4:
        return x, shape
    raise ValueError(f"x must be (N, height·width) or (N, C, H, W) images, got shape {shape}")


def _pixels(x, mean, std):
    return x if mean is None else x * std.to(x) + mean.to(x)


def _standard(x, mean, std):
    return x if mean is None else (x - mean.to(x)) / std.to(x)


def rotate(x: torch.Tensor, degrees: float, height: int = 28, width: int = 28, mean=None, std=None) -> torch.Tensor:
    """The images ``x`` rotated anticlockwise (as displayed, row 0 at the top; 90° is
    ``torch.rot90(img, 1, (-2, -1))``) by ``degrees`` about their centre (bilinear, zeros outside), in ``x``'s layout; ``mean``/``std``: per-pixel standardisation of ``x``."""
    img, shape = _as_images(x, height, width)
    th = math.radians(float(degrees))
    c, s = math.cos(th), math.sin(th)
    # affine_grid maps output (x right, y down) coordinates to input coordinates: the inverse
    # rotation, so that the image turns anticlockwise as displayed (row 0 at the top)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=img.dtype, device=img.device)
    theta = theta.expand(img.shape[0], 2, 3)
    pix = _pixels(img.reshape(shape), mean, std).reshape(img.shape)
    grid = torch.nn.functional.affine_grid(theta, list(img.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(pix, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _standard(out.reshape(shape), mean, std)


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None, mean=None, std=None,
              clip: tuple[float, float] | None = None) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``sigma`` in pixel units (clipped to
    ``clip`` = (lo, hi) pixel values when given); ``mean``/``std`` as in :func:`rotate`."""
    check_number("sigma", sigma, lo=0.0)
    pix = _pixels(x, mean, std)
    eps = torch.randn(pix.shape, generator=generator, dtype=pix.dtype, device=pix.device)
    out = pix + float(sigma) * eps
    if clip is not None:
        out = out.clamp(*clip)
    return _standard(out, mean, std)


def shifted(x, kind: str, intensity: float, settings: ShiftSettings, mean=None, std=None, clip=None):
    """``x`` under the shift ``kind`` ("rotation" in degrees, "noise" in pixel standard
    deviations) of the given intensity."""
    if kind == "rotation":
        return rotate(x, intensity, settings.height, settings.width, mean, std)
    if kind == "noise":
        g = torch.Generator(device=x.device).manual_seed(settings.seed)
        return add_noise(x, intensity, g, mean, std, clip)
    raise ValueError(f"kind must be 'rotation' or 'noise', got {kind!r}")


def uncertainty_scores(pred) -> dict[str, np.ndarray]:
    """Predictive entropy and mutual information of a classification
    :class:`~pyrobnn.infer.Prediction` as numpy arrays."""
    if pred.entropy is None:
        raise ValueError("uncertainty scores need a classification prediction (entropy and mutual information)")
    return {"entropy": pred.entropy.detach().cpu().numpy(),
            "mutual_information": pred.mutual_information.detach().cpu().numpy()}


def ood_detection(score_in, score_out) -> dict:
    """How well a score separates OOD inputs (positive class) from in-distribution ones:
    ``auroc`` (probability that a random OOD input scores higher than a random in-distribution
    one, ties counting one half) and ``aupr`` (average precision, OOD positive)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    a = np.asarray(score_in.detach().cpu() if hasattr(score_in, "detach") else score_in, dtype=float).ravel()
    b = np.asarray(score_out.detach().cpu() if hasattr(score_out, "detach") else score_out, dtype=float).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"ood_detection needs scores of both sets, got {a.size} in-distribution and {b.size} OOD")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("ood_detection: scores must be finite")
    y = np.r_[np.zeros(a.size), np.ones(b.size)]
    s = np.r_[a, b]
    return {"auroc": float(roc_auc_score(y, s)), "aupr": float(average_precision_score(y, s)),
            "n_in": int(a.size), "n_out": int(b.size)}


def shift_evaluation(predict, x: torch.Tensor, y, settings: ShiftSettings | None = None, mean=None, std=None,
                     clip=None) -> dict:
    """Metrics at every shift intensity.  ``predict(x)`` returns a classification
    :class:`~pyrobnn.infer.Prediction` (e.g. ``lambda x: post.predict(x, num_samples=100)``).
    Returns ``{"rotation": [...], "noise": [...]}``, one record per intensity with
    ``intensity``, ``accuracy``, ``nll``, ``brier``, ``ece``, ``mce``, ``mean_entropy`` and
    ``mean_mutual_information``."""
    settings = settings or ShiftSettings()
    out = {}
    for kind, levels in (("rotation", settings.angles), ("noise", settings.noise_sigmas)):
        recs = []
        for v in levels:
            pred = predict(shifted(x, kind, v, settings, mean, std, clip))
            m = classification_calibration(pred.probs, y)
            sc = uncertainty_scores(pred)
            recs.append({"intensity": v, **{k: m[k] for k in ("accuracy", "nll", "brier", "ece", "mce")},
                         "mean_entropy": float(sc["entropy"].mean()),
                         "mean_mutual_information": float(sc["mutual_information"].mean())})
        out[kind] = recs
    return out


def plot_shift(results: dict, path, title: str = "Dataset shift"):
    """Accuracy, ECE and mean predictive entropy against shift intensity, one line per method;
    ``results`` maps a method name to :func:`shift_evaluation`'s output (a row of panels per
    shift kind)."""
    from ..diagnostics.plots import plt, save_figure

    kinds = [k for k in ("rotation", "noise") if any(k in r for r in results.values())]
    if not kinds:
        raise ValueError("plot_shift: no rotation or noise results to plot")
    metrics = (("accuracy", "accuracy"), ("ece", "ECE"), ("mean_entropy", "mean predictive entropy (nats)"))
    fig, axes = plt.subplots(len(kinds), 3, figsize=(13, 3.6 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        for col, (key, label) in enumerate(metrics):
            ax = axes[row, col]
            for name, r in results.items():
                recs = r.get(kind, [])
                ax.plot([q["intensity"] for q in recs], [q[key] for q in recs], "o-", ms=3, label=name)
            ax.set_xlabel("rotation (degrees)" if kind == "rotation" else "noise σ (pixel units)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
