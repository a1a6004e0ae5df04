"""Calibration, dataset shift and out-of-distribution detection of five methods on the 8x8 digits.

Methods, all with the 64-100-10 ReLU network of ``models/digits_classifier.toml`` (prior N(0, 1)):
mean-field Bayes by Backprop (``MeanField`` guide), the ARD guide, MAP (``Delta`` guide), MC dropout
(the same architecture in plain PyTorch, dropout before the output layer, weight decay, 100
stochastic passes at test time; Gal & Ghahramani 2016) and a deep ensemble of five MAP nets
(Lakshminarayanan et al. 2017, without adversarial training).  Each is fitted with several seeds on
scikit-learn's digits (1437 training / 360 test images) and evaluated:

* in distribution: accuracy, NLL, Brier, ECE, MCE (``pyrobnn.diagnostics.calibration``);
* under shift: the test images rotated by 0–180° and with additive Gaussian noise of σ = 0–1 on
  the [0, 1] grey scale, clipped to [0, 1] (``pyrobnn.apps.shift``, after Ovadia et al. 2019);
* OOD detection (far OOD): uniform-noise images, natural-image patches and inverted digits, scored
  by predictive entropy and mutual information (AUROC and AUPR, OOD positive).

Pixels are grey level / 16 on [0, 1] (not standardised per pixel).

    nice -n 10 python examples/uncertainty_comparison.py --epochs 100             # full run (3 seeds)
    nice -n 10 python examples/uncertainty_comparison.py --epochs 100 --holdout   # near OOD: digits 5-9
    python examples/uncertainty_comparison.py --quick                # smoke test
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from examples._common import Clock, finish, fmt, markdown_table, parse_args  # noqa: E402
from pyrobnn import data as pbdata  # noqa: E402
from pyrobnn import BNN, Categorical, Linear, fit_svi, guides, priors  # noqa: E402
from pyrobnn.apps.shift import ShiftSettings, ood_detection, plot_shift, shift_evaluation, uncertainty_scores  # noqa: E402
from pyrobnn.diagnostics.calibration import classification_calibration  # noqa: E402
from pyrobnn.infer.predictive import summarize_draws  # noqa: E402
from pyrobnn.spec import load_model  # noqa: E402
from pyrobnn.utils.rng import seeded  # noqa: E402

METHODS = ("map", "bbb", "ard", "mc_dropout", "ensemble")


def _extra(p):
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--holdout", action="store_true",
                   help="near-OOD instead: train on digits 0-4 (5-class nets), score the test digits 5-9")


def from_prob_draws(prob_draws):
    return summarize_draws("multiclass", torch.distributions.Categorical(probs=prob_draws))


def fit_pyrobnn(kind, x, y, epochs, seed, k=10):
    with seeded(seed):
        # the spec's network (64-100-10 ReLU, N(0, 1) prior), or the same with k outputs
        net = load_model("digits_classifier") if k == 10 else \
            BNN([Linear(64, 100), "relu", Linear(100, k)], Categorical(k), priors.Normal(0.0, 1.0))
    guide = {"map": lambda: guides.Delta(net), "bbb": lambda: guides.MeanField(net, init_scale=1e-3),
             "ard": lambda: guides.ARD(net, init_scale=1e-3)}[kind]()
    post = fit_svi(net, guide, x, y, epochs=epochs, batch_size=128, lr=0.01, seed=seed, progress=False)
    draws = 1 if kind == "map" else 100
    return lambda xx: post.predict(xx, num_samples=draws, seed=seed)


def fit_dropout(x, y, epochs, seed, p, weight_decay, passes=100, k=10):
    """MC dropout: a 64-100-10 ReLU net with dropout on the hidden units, trained with Adam and
    weight decay; prediction averages ``passes`` stochastic forward passes."""
    with seeded(seed):
        net = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Dropout(p), nn.Linear(100, k))
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=weight_decay)
        for _ in range(epochs):
            for idx in torch.randperm(x.shape[0]).split(128):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()

    @torch.no_grad()
    def predict(xx):
        net.train()  # dropout stays on at test time
        with seeded(seed + 1):
            return from_prob_draws(torch.stack([net(xx).softmax(-1) for _ in range(passes)]))

    return predict


def fit_ensemble(x, y, epochs, seed, members=5, k=10):
    preds = [fit_pyrobnn("map", x, y, epochs, seed * 1000 + m, k) for m in range(members)]
    return lambda xx: from_prob_draws(torch.cat([p(xx).prob_draws.reshape(-1, xx.shape[0], k) for p in preds]))


def holdout_main(args, d, seeds, epochs, clock):
    """Near OOD: 5-class nets on the digits 0-4; in-distribution = test digits 0-4, OOD = 5-9."""
    tr, te = d.y_train < 5, d.y_test < 5
    x, y, xin, yin, xout = d.x_train[tr], d.y_train[tr], d.x_test[te], d.y_test[te], d.x_test[~te]
    fit = {"map": lambda s: fit_pyrobnn("map", x, y, epochs, s, 5), "bbb": lambda s: fit_pyrobnn("bbb", x, y, epochs, s, 5),
           "ard": lambda s: fit_pyrobnn("ard", x, y, epochs, s, 5),
           "mc_dropout": lambda s: fit_dropout(x, y, epochs, s, args.dropout, args.weight_decay, k=5),
           "ensemble": lambda s: fit_ensemble(x, y, epochs, s, k=5)}
    res = {m: [] for m in METHODS}
    for s in range(seeds):
        for m in METHODS:
            predict = fit[m](s)
            pin = predict(xin)
            sc_in, sc_out = uncertainty_scores(pin), uncertainty_scores(predict(xout))
            cal = classification_calibration(pin.probs, yin)
            cal.pop("reliability")
            res[m].append({"in_distribution": cal, "ood": {k: ood_detection(sc_in[k], sc_out[k]) for k in sc_in}})
            print(f"seed {s} {m:10s} acc {cal['accuracy']:.4f} AUROC entropy {res[m][-1]['ood']['entropy']['auroc']:.3f} "
                  f"MI {res[m][-1]['ood']['mutual_information']['auroc']:.3f}", flush=True)

    def ms(m, get):
        v = np.asarray([get(r) for r in res[m]], dtype=float)
        se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        return f"{fmt(float(v.mean()), 3)} ± {fmt(float(se), 3)}"

    rows = [[m, ms(m, lambda r: r["in_distribution"]["accuracy"]), ms(m, lambda r: r["in_distribution"]["ece"])]
            + [ms(m, lambda r, k=k, q=q: r["ood"][k][q]) for k in ("entropy", "mutual_information") for q in ("auroc", "aupr")]
            for m in METHODS]
    text = f"# Near OOD on the 8x8 digits: trained on 0-4, scored on test digits 5-9 ({seeds} seed(s), {epochs} " \
           f"epochs; mean ± s.e.)\n\n" + markdown_table(
               ["method", "accuracy (0-4)", "ECE (0-4)", "AUROC entropy", "AUPR entropy", "AUROC MI", "AUPR MI"], rows)
    from pyrobnn.diagnostics.plots import plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, k in enumerate(("entropy", "mutual_information")):
        ax.bar(np.arange(len(METHODS)) + 0.4 * i, [np.mean([r["ood"][k]["auroc"] for r in res[m]]) for m in METHODS],
               width=0.4, label=k)
    ax.set_xticks(np.arange(len(METHODS)) + 0.2, METHODS)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUROC (digits 5-9 as OOD)")
    ax.legend(fontsize=8)
    finish("uncertainty_comparison_holdout", args.quick, clock, text, {"per_seed": res, "settings": vars(args)}, fig)


def ood_sets(x_test, n, seed):
    """Far-OOD inputs on the digits' [0, 1] pixel scale: uniform noise, natural-image patches
    (random 32x32 grey crops of scikit-learn's two sample photographs, shrunk to 8x8) and the
    test digits with inverted grey levels."""
    from sklearn.datasets import load_sample_images

    g = torch.Generator().manual_seed(seed)
    sets = {"uniform noise": torch.rand(n, 64, generator=g)}
    photos = [torch.tensor(np.asarray(im), dtype=torch.float32).mean(-1) / 255 for im in load_sample_images().images]
    crops = []
    for i in range(n):
        im = photos[i % len(photos)]
        r = int(torch.randint(0, im.shape[0] - 32, (1,), generator=g))
        c = int(torch.randint(0, im.shape[1] - 32, (1,), generator=g))
        crops.append(im[r:r + 32, c:c + 32])
    sets["photo patches"] = nn.functional.interpolate(torch.stack(crops)[:, None], size=(8, 8),
                                                      mode="area").reshape(n, 64)
    sets["inverted digits"] = 1.0 - x_test
    return sets


def main():
    args = parse_args(__doc__.splitlines()[0], _extra)
    clock = Clock()
    seeds = 1 if args.quick else args.seeds
    epochs = 5 if args.quick else args.epochs
    # pixels on [0, 1] (grey level / 16), not standardised per pixel: a rotated digit puts ink on
    # border pixels that are blank in every training image, which per-pixel standardisation would
    # blow up by their near-zero training standard deviation
    raw = pbdata.sklearn_dataset("digits", standardize=False)
    d = pbdata.make_dataset("digits", "multiclass", raw.x_train.numpy() / 16, raw.y_train.numpy(),
                            raw.x_test.numpy() / 16, raw.y_test.numpy(), num_classes=10)
    settings = ShiftSettings(angles=(0, 15, 30, 45, 60, 90, 135, 180), noise_sigmas=(0, 0.125, 0.25, 0.5, 1.0),
                             height=8, width=8)
    if args.holdout:
        return holdout_main(args, d, seeds, epochs, clock)
    ood = ood_sets(d.x_test, d.x_test.shape[0], 0)
    per_seed = {m: [] for m in METHODS}
    for s in range(seeds):
        fitters = {"map": lambda: fit_pyrobnn("map", d.x_train, d.y_train, epochs, s),
                   "bbb": lambda: fit_pyrobnn("bbb", d.x_train, d.y_train, epochs, s),
                   "ard": lambda: fit_pyrobnn("ard", d.x_train, d.y_train, epochs, s),
                   "mc_dropout": lambda: fit_dropout(d.x_train, d.y_train, epochs, s, args.dropout, args.weight_decay),
                   "ensemble": lambda: fit_ensemble(d.x_train, d.y_train, epochs, s)}
        for m in METHODS:
            t = Clock()
            predict = fitters[m]()
            pred = predict(d.x_test)
            cal = classification_calibration(pred.probs, d.y_test)
            cal.pop("reliability")
            sc_in = uncertainty_scores(pred)
            rec = {"in_distribution": cal, "shift": shift_evaluation(predict, d.x_test, d.y_test, settings,
                                                                      clip=(0.0, 1.0)), "ood": {}}
            for name, xo in ood.items():
                sc_out = uncertainty_scores(predict(xo))
                rec["ood"][name] = {k: ood_detection(sc_in[k], sc_out[k]) for k in sc_in}
            rec["seconds"] = t.seconds
            per_seed[m].append(rec)
            print(f"seed {s} {m:10s} acc {cal['accuracy']:.4f} nll {cal['nll']:.3f} ece {cal['ece']:.3f} "
                  f"({t.seconds:.0f} s)", flush=True)

    def mean_se(vals):
        v = np.asarray(vals, dtype=float)
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")

    def ms(m, get):
        mu, se = mean_se([get(r) for r in per_seed[m]])
        return f"{fmt(mu, 3)} ± {fmt(se, 3)}"

    rows = [[m] + [ms(m, lambda r, k=k: r["in_distribution"][k]) for k in ("accuracy", "nll", "brier", "ece", "mce")]
            for m in METHODS]
    text = [f"# Uncertainty comparison on the 8x8 digits ({seeds} seed(s), {epochs} epochs; mean ± s.e. over seeds)",
            "", "## In distribution (360 test images)", "",
            markdown_table(["method", "accuracy", "NLL", "Brier", "ECE", "MCE"], rows), ""]
    shift_keys = [("rotation", 45.0), ("rotation", 90.0), ("noise", 0.25), ("noise", 0.5)]
    rows = []
    for m in METHODS:
        row = [m]
        for kind, v in shift_keys:
            def at(r, kind=kind, v=v, key="accuracy"):
                return next(q[key] for q in r["shift"][kind] if q["intensity"] == v)
            row += [ms(m, at), ms(m, lambda r, at=at: at(r, key="ece"))]
        rows.append(row)
    heads = ["method"] + [f"{k} {v:g}: {what}" for k, v in shift_keys for what in ("acc", "ECE")]
    text += ["## Under shift (rotation in degrees; noise σ on the [0, 1] grey scale, clipped)", "", markdown_table(heads, rows), ""]
    rows = []
    for m in METHODS:
        row = [m]
        for name in ood:
            for score in ("entropy", "mutual_information"):
                row.append(ms(m, lambda r, n=name, sc=score: r["ood"][n][sc]["auroc"]))
        rows.append(row)
    heads = ["method"] + [f"{n}: AUROC of {'entropy' if s == 'entropy' else 'MI'}" for n in ood
                          for s in ("entropy", "mutual_information")]
    text += ["## OOD detection (OOD positive)", "", markdown_table(heads, rows), ""]
    averaged = {}
    for m in METHODS:
        averaged[m] = {kind: [{k: float(np.mean([r["shift"][kind][i][k] for r in per_seed[m]]))
                               for k in per_seed[m][0]["shift"][kind][i]}
                              for i in range(len(per_seed[m][0]["shift"][kind]))] for kind in ("rotation", "noise")}
    from pyrobnn.diagnostics.plots import plt

    fig = plt.figure()  # finish() saves a figure: the shift plot is written by plot_shift, this one is its copy
    plt.close(fig)
    stem = "uncertainty_comparison"
    path = plot_shift(averaged, Path(__file__).resolve().parent / "results" /
                      f"{stem}_shift{'_quick' if args.quick else ''}.png",
                      title=f"Digits under shift (mean over {seeds} seed(s))")
    import matplotlib.image as mpimg

    fig, ax = plt.subplots(figsize=(13, 7.2))
    ax.imshow(mpimg.imread(path))
    ax.axis("off")
    finish(stem, args.quick, clock, "\n".join(text), {"per_seed": per_seed, "settings": vars(args)}, fig)


if __name__ == "__main__":
    main()
