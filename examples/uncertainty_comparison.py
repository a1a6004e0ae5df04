"""Calibration, dataset shift and out-of-distribution detection of five methods on the 8x8 digits.

Methods, all with a 64-100-10 ReLU network (the architecture of ``models/digits_classifier.toml``):
MAP (``Delta`` guide), mean-field Bayes by Backprop (``MeanField`` guide), the ARD guide, MC dropout
(the same architecture in plain PyTorch, dropout before the output layer, weight decay 1e-4, 100
stochastic passes at test time; Gal & Ghahramani 2016) and a deep ensemble of five MAP nets
(Lakshminarayanan et al. 2017, without adversarial training).  Adam, lr 0.01, batches of 128,
initial posterior σ 1e-3, 100 predictive draws.

Each method's setting is chosen on validation, never on the test images: 20% of the training images
are held out (stratified, split seeds 0 and 1), every candidate of a small grid is fitted on the other
80% and the lowest mean validation NLL wins — prior N(0, s²) with s ∈ {0.3, 1, 3, 10} or the library's
empirical-Bayes prior ("adaptive": the ARD prior under the ARD guide, Graves' shared adaptive
Gaussian otherwise) × {100, 300, 600} epochs for MAP, BBB and ARD; dropout rate {0.1, 0.25, 0.5} ×
the same epochs for MC dropout; the ensemble's members take MAP's setting.  No tempering: every
Bayesian fit maximises the plain ELBO.  The chosen settings are then refitted on all training
images with several seeds (1437 training / 360 test images) and evaluated:

* in distribution: accuracy, NLL, Brier, ECE, MCE (``pyrobnn.diagnostics.calibration``);
* under shift: the test images rotated by 0–180° and with additive Gaussian noise of σ = 0–1 on
  the [0, 1] grey scale, clipped to [0, 1] (``pyrobnn.apps.shift``, after Ovadia et al. 2019);
* OOD detection (far OOD): uniform-noise images, natural-image patches and inverted digits, scored
  by predictive entropy and mutual information (AUROC and AUPR, OOD positive).

The validation table (NLL, accuracy, mean confidence against accuracy, ECE, and whether the loss
was still falling at the end) and validation reliability diagrams go with the results
(``*_selection.png``).  Pixels are grey level / 16 on [0, 1] (not standardised per pixel).

    OMP_NUM_THREADS=1 nice -n 10 python examples/uncertainty_comparison.py             # full run (3 seeds)
    OMP_NUM_THREADS=1 nice -n 10 python examples/uncertainty_comparison.py --holdout   # near OOD: digits 5-9
    python examples/uncertainty_comparison.py --quick                                  # smoke test
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from examples._common import Clock, finish, fmt, markdown_table, output_name, parse_args, save_figure  # noqa: E402
from pyrobnn import data as pbdata  # noqa: E402
from pyrobnn.data.tabular import split_indices  # noqa: E402
from pyrobnn import BNN, Categorical, Linear, fit_svi, guides, priors  # noqa: E402
from pyrobnn.apps.shift import ShiftSettings, ood_detection, plot_shift, shift_evaluation, uncertainty_scores  # noqa: E402
from pyrobnn.diagnostics.calibration import classification_calibration  # noqa: E402
from pyrobnn.diagnostics.compare import mean_and_se  # noqa: E402
from pyrobnn.infer.predictive import summarize_draws  # noqa: E402
from pyrobnn.utils.rng import seeded  # noqa: E402

METHODS = ("map", "bbb", "ard", "mc_dropout", "ensemble")
#: the setting of the earlier fixed-setting runs, drawn for comparison in the selection figure
REFERENCE = {"prior": 1.0, "epochs": 100}
COMMAND = "Command: `OMP_NUM_THREADS=1 nice -n 10 python examples/uncertainty_comparison.py{flags}`"


def _extra(p):
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--weight-decay", type=float, default=1e-4, help="MC dropout's weight decay")
    p.add_argument("--holdout", action="store_true",
                   help="near-OOD instead: train on digits 0-4 (5-class nets), score the test digits 5-9")


def mean_se_text(values):
    """"mean ± standard error" of per-seed values (s.e. n/a for one seed)."""
    mean, se = mean_and_se(values)
    return f"{fmt(mean, 3)} ± {fmt(se, 3)}"


def calibration(probs, y):
    """(the calibration numbers with the mean top-class confidence — below the accuracy:
    under-confident —, the reliability diagram data)."""
    cal = classification_calibration(probs, y)
    rel = cal.pop("reliability")
    cal["mean_confidence"] = float(probs.max(-1).values.mean())
    return cal, rel


def from_prob_draws(prob_draws):
    return summarize_draws("multiclass", torch.distributions.Categorical(probs=prob_draws))


# 10 joined the scales after a first run chose 3, the widest of (0.3, 1, 3), for MAP and BBB
PRIOR_SCALES = (0.3, 1.0, 3.0, 10.0, "adaptive")
EPOCH_GRID = (100, 300, 600)
DROPOUT_GRID = (0.1, 0.25, 0.5)
VALIDATION_FRACTION = 0.2
VALIDATION_SPLITS = (0, 1)


def make_prior(kind, prior):
    """N(0, prior²) for a number; "adaptive": the library's empirical-Bayes prior — the ARD prior
    (one variance per weight, Basov eq. 5) under the ARD guide, otherwise one N(0, σ̂²) for all
    weights with σ̂² set to its optimum given the posterior before every step (Graves 2011, §4)."""
    if prior == "adaptive":
        return priors.ARD() if kind == "ard" else priors.AdaptiveNormal(0.0, 1.0, fit_loc=False)
    return priors.Normal(0.0, float(prior))


def fit_pyrobnn(kind, x, y, setting, seed, k=10, history=None):
    """MAP, BBB or ARD on the 64-100-k ReLU network with ``setting = {"prior", "epochs"}``;
    Adam lr 0.01, batches of 128, initial posterior σ 1e-3, 100 predictive draws (1 for MAP).
    ``history``: a list that receives the per-epoch loss (the negative ELBO for BBB/ARD)."""
    with seeded(seed):
        net = BNN([Linear(64, 100), "relu", Linear(100, k)], Categorical(k), make_prior(kind, setting["prior"]))
    guide = {"map": lambda: guides.Delta(net), "bbb": lambda: guides.MeanField(net, init_scale=1e-3),
             "ard": lambda: guides.ARD(net, init_scale=1e-3)}[kind]()
    post = fit_svi(net, guide, x, y, epochs=setting["epochs"], batch_size=128, lr=0.01, seed=seed, progress=False)
    if history is not None:
        history.extend(float(h["loss"]) for h in post.history)
    draws = 1 if kind == "map" else 100
    return lambda xx: post.predict(xx, num_samples=draws, seed=seed)


def fit_dropout(x, y, setting, seed, weight_decay, passes=100, k=10):
    """MC dropout: a 64-100-k ReLU net with dropout ``setting["p"]`` on the hidden units, trained
    for ``setting["epochs"]`` epochs with Adam and weight decay; prediction averages ``passes``
    stochastic forward passes."""
    with seeded(seed):
        net = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Dropout(setting["p"]), nn.Linear(100, k))
        opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=weight_decay)
        for _ in range(setting["epochs"]):
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


def fit_ensemble(x, y, setting, seed, members=5, k=10):
    preds = [fit_pyrobnn("map", x, y, setting, seed * 1000 + m, k) for m in range(members)]
    return lambda xx: from_prob_draws(torch.cat([p(xx).prob_draws.reshape(-1, xx.shape[0], k) for p in preds]))


def fitters(chosen, weight_decay, k):
    """``method -> fit(x, y, seed)`` with each method's chosen setting; the ensemble's members
    are MAP nets with MAP's setting."""
    fits = {m: (lambda x, y, s, m=m: fit_pyrobnn(m, x, y, chosen[m], s, k)) for m in ("map", "bbb", "ard")}
    fits["mc_dropout"] = lambda x, y, s: fit_dropout(x, y, chosen["mc_dropout"], s, weight_decay, k=k)
    fits["ensemble"] = lambda x, y, s: fit_ensemble(x, y, chosen["map"], s, k=k)
    return fits


def grid(quick):
    """The candidate settings of every selected method (the ensemble takes MAP's)."""
    scales, epochs = ((1.0, "adaptive"), (3,)) if quick else (PRIOR_SCALES, EPOCH_GRID)
    out = {m: [{"prior": s, "epochs": e} for s in scales for e in epochs] for m in ("map", "bbb", "ard")}
    out["mc_dropout"] = [{"p": p, "epochs": e} for p in ((0.25,) if quick else DROPOUT_GRID) for e in epochs]
    return out


def _elbo_tail_change(loss):
    """Relative change of the mean per-epoch loss over the last tenth of the epochs against the
    tenth before: about 0 when the fit has converged, negative while it is still falling."""
    n = max(1, len(loss) // 10)
    if len(loss) < 2 * n:
        return float("nan")
    last, prev = float(np.mean(loss[-n:])), float(np.mean(loss[-2 * n:-n]))
    return (last - prev) / abs(prev)


def select_settings(x, y, k, weight_decay, quick=False):
    """Each method's setting chosen WITHOUT the test images: for every candidate of :func:`grid`,
    fit on 80% of the training images and score the other 20% (a stratified split, seeded;
    repeated for the split seeds ``VALIDATION_SPLITS``); the candidate with the lowest mean
    validation NLL wins.  Also records, per candidate, the validation accuracy, ECE, mean
    top-class confidence (below the accuracy: under-confident) and the relative change of the
    loss over the last tenth of the epochs (still falling: under-trained), and the first split's
    reliability diagram."""
    labels = y.cpu().numpy()
    cands = grid(quick)
    records = {m: [dict(setting=c, val=[]) for c in cands[m]] for m in cands}
    for split in VALIDATION_SPLITS[:1] if quick else VALIDATION_SPLITS:
        tr, va = (torch.as_tensor(i, device=x.device) for i in
                  split_indices(len(labels), VALIDATION_FRACTION, split, stratify=labels))
        for m in cands:
            for rec in records[m]:
                c, loss = rec["setting"], []
                if m == "mc_dropout":
                    predict = fit_dropout(x[tr], y[tr], c, split, weight_decay, k=k)
                else:
                    predict = fit_pyrobnn(m, x[tr], y[tr], c, split, k, history=loss)
                cal, rel = calibration(predict(x[va]).probs, y[va])
                cal["elbo_tail_change"] = _elbo_tail_change(loss) if loss else float("nan")
                rec["val"].append(cal)
                if split == VALIDATION_SPLITS[0]:
                    rec["reliability"] = rel
                    if loss and c["epochs"] == max(q["epochs"] for q in cands[m]):
                        rec["loss_history"] = loss
    out = {}
    for m, recs in records.items():
        for rec in recs:
            rec["mean"] = {key: float(np.mean([v[key] for v in rec["val"]])) for key in rec["val"][0]}
        best = min(recs, key=lambda r: r["mean"]["nll"])
        out[m] = {"chosen": best["setting"], "candidates": recs}
        print(f"selected {m:10s} {best['setting']} (validation NLL {best['mean']['nll']:.4f})", flush=True)
    return out


def setting_text(c):
    if "p" in c:
        return f"dropout {c['p']:g}, {c['epochs']} epochs"
    prior = "adaptive prior" if c["prior"] == "adaptive" else f"N(0, {c['prior']:g}²)"
    return f"{prior}, {c['epochs']} epochs"


def selection_text(sel, n_splits):
    """Markdown: the validation table of every candidate and the chosen settings."""
    rows = []
    for m, s in sel.items():
        for r in s["candidates"]:
            v = r["mean"]
            rows.append([m, setting_text(r["setting"]) + (" **(chosen)**" if r["setting"] == s["chosen"] else ""),
                         fmt(v["nll"], 4), fmt(v["accuracy"], 3), fmt(v["mean_confidence"], 3), fmt(v["ece"], 3),
                         fmt(v["elbo_tail_change"], 3)])
    return "\n".join([
        f"## Settings chosen on validation (mean over {n_splits} stratified 80/20 split(s) of the training images)",
        "", "Lowest validation NLL wins; the test images are not used.  'last-tenth loss change': relative change "
        "of the mean per-epoch loss (negative ELBO for BBB/ARD) over the last tenth of the epochs (negative: "
        "still falling).  Mean confidence below accuracy: under-confident.", "",
        markdown_table(["method", "setting", "val NLL", "val accuracy", "mean confidence", "val ECE",
                        "last-tenth loss change"], rows), ""])


def selection_figure(sel, reference):
    """Validation reliability diagrams (accuracy against confidence per bin, first split) of
    MAP, BBB and ARD at the ``reference`` setting and at the chosen one, and the loss curves of
    BBB and ARD at the longest candidate."""
    from pyrobnn.diagnostics.plots import plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, m in zip(axes, ("map", "bbb", "ard")):
        for label, setting, style in (("reference", reference, "s--"), ("chosen", sel[m]["chosen"], "o-")):
            rec = next((r for r in sel[m]["candidates"] if r["setting"] == setting), None)
            if rec is None:
                continue
            rel = rec["reliability"]
            ok = np.asarray(rel["count"]) > 0
            conf, acc = np.asarray(rel["confidence"], float)[ok], np.asarray(rel["accuracy"], float)[ok]
            line, = ax.plot(conf, acc, style[1:], lw=1, label=f"{label}: {setting_text(setting)} "
                                                           f"(ECE {rec['val'][0]['ece']:.3f})")
            # marker area ∝ images in the bin: the sparse low-confidence bins weigh little in the ECE
            ax.scatter(conf, acc, s=4 + 200 * np.asarray(rel["count"])[ok] / np.sum(rel["count"]), marker=style[0],
                       color=line.get_color())
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(title=f"{m}: validation reliability (marker area ∝ count)", xlabel="confidence of the predicted class",
               ylabel="accuracy")
        ax.legend(fontsize=7)
    ax = axes[3]
    for m in ("bbb", "ard"):
        for r in sel[m]["candidates"]:
            if "loss_history" in r and r["setting"]["prior"] in (1.0, sel[m]["chosen"]["prior"]):
                ax.plot(np.arange(1, len(r["loss_history"]) + 1), r["loss_history"], lw=1,
                        label=f"{m}: {setting_text(r['setting'])}")
    ax.set(yscale="log", xlabel="epoch", ylabel="negative ELBO (per epoch)", title="Loss curves (first split)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def holdout_main(args, d, seeds, clock):
    """Near OOD: 5-class nets on the digits 0-4; in-distribution = test digits 0-4, OOD = 5-9.
    The settings are chosen on validation parts of the 0-4 training images."""
    tr, te = d.y_train < 5, d.y_test < 5
    x, y, xin, yin, xout = d.x_train[tr], d.y_train[tr], d.x_test[te], d.y_test[te], d.x_test[~te]
    t = Clock()
    sel = select_settings(x, y, 5, args.weight_decay, args.quick)
    sel_seconds = t.seconds
    chosen = {m: sel[m]["chosen"] for m in sel}
    fit = fitters(chosen, args.weight_decay, 5)
    res = {m: [] for m in METHODS}
    for s in range(seeds):
        for m in METHODS:
            predict = fit[m](x, y, s)
            pin = predict(xin)
            sc_in, sc_out = uncertainty_scores(pin), uncertainty_scores(predict(xout))
            cal, _ = calibration(pin.probs, yin)
            res[m].append({"in_distribution": cal, "ood": {k: ood_detection(sc_in[k], sc_out[k]) for k in sc_in}})
            print(f"seed {s} {m:10s} acc {cal['accuracy']:.4f} AUROC entropy {res[m][-1]['ood']['entropy']['auroc']:.3f} "
                  f"MI {res[m][-1]['ood']['mutual_information']['auroc']:.3f}", flush=True)

    def ms(m, get):
        return mean_se_text([get(r) for r in res[m]])

    rows = [[m, ms(m, lambda r: r["in_distribution"]["accuracy"]), ms(m, lambda r: r["in_distribution"]["ece"])]
            + [ms(m, lambda r, k=k, q=q: r["ood"][k][q]) for k in ("entropy", "mutual_information") for q in ("auroc", "aupr")]
            for m in METHODS]
    text = f"# Near OOD on the 8x8 digits: trained on 0-4, scored on test digits 5-9 ({seeds} seed(s); mean ± s.e.)" \
           f"\n\n{COMMAND.format(flags=' --holdout')}\n\n" + markdown_table(
               ["method", "setting", "accuracy (0-4)", "ECE (0-4)", "AUROC entropy", "AUPR entropy", "AUROC MI",
                "AUPR MI"], [[r[0], setting_text(chosen["map" if r[0] == "ensemble" else r[0]])] + r[1:] for r in rows]) \
        + "\n\n" + selection_text(sel, 1 if args.quick else len(VALIDATION_SPLITS)) \
        + f"\nSelection: {sel_seconds:.0f} s; whole run: {clock.seconds:.0f} s (2 shared CPU cores).\n"
    from pyrobnn.diagnostics.plots import plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, k in enumerate(("entropy", "mutual_information")):
        ax.bar(np.arange(len(METHODS)) + 0.4 * i, [np.mean([r["ood"][k]["auroc"] for r in res[m]]) for m in METHODS],
               width=0.4, label=k)
    ax.set_xticks(np.arange(len(METHODS)) + 0.2, METHODS)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("AUROC (digits 5-9 as OOD)")
    ax.legend(fontsize=8)
    save_figure(selection_figure(sel, REFERENCE), output_name("uncertainty_comparison_holdout_selection", args.quick, "png"))
    finish("uncertainty_comparison_holdout", args.quick, clock, text,
           {"per_seed": res, "selection": sel, "chosen": chosen, "settings": vars(args)}, fig)


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
    # pixels on [0, 1] (grey level / 16), not standardised per pixel: a rotated digit puts ink on
    # border pixels that are blank in every training image, which per-pixel standardisation would
    # blow up by their near-zero training standard deviation
    raw = pbdata.sklearn_dataset("digits", standardize=False)
    d = pbdata.make_dataset("digits", "multiclass", raw.x_train.numpy() / 16, raw.y_train.numpy(),
                            raw.x_test.numpy() / 16, raw.y_test.numpy(), num_classes=10)
    settings = ShiftSettings(angles=(0, 15, 30, 45, 60, 90, 135, 180), noise_sigmas=(0, 0.125, 0.25, 0.5, 1.0),
                             height=8, width=8)
    if args.holdout:
        return holdout_main(args, d, seeds, clock)
    t = Clock()
    sel = select_settings(d.x_train, d.y_train, 10, args.weight_decay, args.quick)
    sel_seconds = t.seconds
    chosen = {m: sel[m]["chosen"] for m in sel}
    fit = fitters(chosen, args.weight_decay, 10)
    ood = ood_sets(d.x_test, d.x_test.shape[0], 0)
    per_seed = {m: [] for m in METHODS}
    for s in range(seeds):
        for m in METHODS:
            t = Clock()
            predict = fit[m](d.x_train, d.y_train, s)
            pred = predict(d.x_test)
            cal, _ = calibration(pred.probs, d.y_test)
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

    def ms(m, get):
        return mean_se_text([get(r) for r in per_seed[m]])

    def mean_of(m, get):
        return float(np.mean([get(r) for r in per_seed[m]]))

    rows = [[m, setting_text(chosen["map" if m == "ensemble" else m])]
            + [ms(m, lambda r, k=k: r["in_distribution"][k]) for k in ("accuracy", "mean_confidence", "nll", "brier",
                                                                        "ece", "mce")]
            for m in METHODS]
    text = [f"# Uncertainty comparison on the 8x8 digits ({seeds} seed(s); mean ± s.e. over seeds)", "",
            COMMAND.format(flags=""), "", "## In distribution (360 test images)", "",
            markdown_table(["method", "setting (chosen on validation)", "accuracy", "mean confidence", "NLL", "Brier",
                            "ECE", "MCE"], rows),
            ""]
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
    levels = [(kind, q["intensity"]) for kind in ("rotation", "noise") for q in per_seed["map"][0]["shift"][kind]]

    def ece_at(kind, v):
        return lambda r: next(q["ece"] for q in r["shift"][kind] if q["intensity"] == v)

    rows = [[m] + [ms(m, ece_at(kind, v)) for kind, v in levels] for m in METHODS]
    heads = ["method"] + [f"{'rot' if kind == 'rotation' else 'noise'} {v:g}" for kind, v in levels]
    text += ["### ECE at every shift intensity", "", markdown_table(heads, rows), ""]
    checks = [("in distribution", lambda r: r["in_distribution"]["ece"])] + \
        [(f"{kind} {v:g}", ece_at(kind, v)) for kind, v in levels if v != 0]
    rows = []
    for name, get in checks:
        e = {m: mean_of(m, get) for m in ("map", "bbb", "ard")}
        best = min(("bbb", "ard"), key=e.get)
        rows.append([name, fmt(e["map"], 3), fmt(e["bbb"], 3), fmt(e["ard"], 3),
                     "yes" if e[best] < e["map"] else "no"])
    text += ["## Bar: BBB or ARD has a lower mean ECE than MAP", "",
             markdown_table(["condition", "MAP ECE", "BBB ECE", "ARD ECE", "met"], rows), ""]
    rows = []
    for m in METHODS:
        row = [m]
        for name in ood:
            for score in ("entropy", "mutual_information"):
                row.append(ms(m, lambda r, n=name, sc=score: r["ood"][n][sc]["auroc"]))
        rows.append(row)
    heads = ["method"] + [f"{n}: AUROC of {'entropy' if s == 'entropy' else 'MI'}" for n in ood
                          for s in ("entropy", "mutual_information")]
    stem = "uncertainty_comparison"
    text += ["## OOD detection (OOD positive)", "", markdown_table(heads, rows), ""]
    text += [selection_text(sel, 1 if args.quick else len(VALIDATION_SPLITS)),
             f"Selection: {sel_seconds:.0f} s; whole run: {clock.seconds:.0f} s (2 shared CPU cores).", ""]
    save_figure(selection_figure(sel, REFERENCE), output_name(f"{stem}_selection", args.quick, "png"))
    averaged = {}
    for m in METHODS:
        averaged[m] = {kind: [{k: float(np.mean([r["shift"][kind][i][k] for r in per_seed[m]]))
                               for k in per_seed[m][0]["shift"][kind][i]}
                              for i in range(len(per_seed[m][0]["shift"][kind]))] for kind in ("rotation", "noise")}
    from pyrobnn.diagnostics.plots import plt

    fig = plt.figure()  # finish() saves a figure: the shift plot is written by plot_shift, this one is its copy
    plt.close(fig)
    path = plot_shift(averaged, Path(__file__).resolve().parent / "results" /
                      f"{stem}_shift{'_quick' if args.quick else ''}.png",
                      title=f"Digits under shift (mean over {seeds} seed(s))")
    import matplotlib.image as mpimg

    fig, ax = plt.subplots(figsize=(13, 7.2))
    ax.imshow(mpimg.imread(path))
    ax.axis("off")
    finish(stem, args.quick, clock, "\n".join(text),
           {"per_seed": per_seed, "selection": sel, "chosen": chosen, "settings": vars(args)}, fig)


if __name__ == "__main__":
    main()
