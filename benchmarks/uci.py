"""UCI regression benchmark: mean-field SVI (or the Laplace approximation) against the published
VI, PBP and MC-dropout numbers.

Protocol of Hernández-Lobato & Adams (2015): one hidden layer of 50 ReLU units (100 for
protein), the standard train/test splits shipped in ``data/uci``, inputs and targets
standardised with training statistics, test log-likelihood and RMSE reported in original
units as mean ± standard error over splits.  pyrobnn: MeanField guide, Normal(0, 1) prior,
learned Gaussian noise, Trace_ELBO, Adam; the same settings for every data set (chosen once,
not per split).  The published columns are from REFERENCE section 6.

    python benchmarks/uci.py --data ../shared/data/uci [--datasets boston concrete ...] [--splits 20]
    python benchmarks/uci.py --method laplace [--laplace-subset all] [--laplace-structure kron]
    python benchmarks/uci.py --method laplace --ensemble 5

``--method laplace``: the same network and prior, a MAP fit with the same optimiser and steps,
then :func:`pyrobnn.fit_laplace` (K-FAC GGN of the whole network by default, prior precision
tuned by the marginal likelihood, linearised predictive); the table then also shows pyrobnn's
SVI on the same splits from benchmarks/results/uci.json.

``--ensemble K``: K fits per split from K initialisations (member k: torch seed and fit seed
split + 1000·k, so member 0 is the single fit), evaluated as their equally weighted mixture
(:class:`pyrobnn.Ensemble`), as deep ensembles (Lakshminarayanan et al. 2017, K = 5) are; each
member's own test log-likelihood is kept too.  Written to ``uci_<method>_ensemble<K>.json`` and
``.md``, next to the published deep-ensemble numbers.

Writes benchmarks/results/uci.json (``uci_laplace.json`` and the markdown table ``uci_laplace.md``
for Laplace; atomically) and prints the table; ``--report-only`` rebuilds the tables from the
results file without running anything.  Per split, ``seconds`` is the fit (for Laplace the MAP
fit, ``map_seconds``, plus the GGN and δ, ``laplace_seconds``) and ``predict_seconds`` the test
metrics.  Nearly all of a Laplace split's time is the MAP fit (K-FAC GGN and δ take
hundredths of a second, the 1000-draw linearised predictive tenths), and in the MAP fit, as in
SVI's, most of a step is Pyro's tracing of the model and the guide rather than the arithmetic of
the small network: both go through fit_svi with the same steps, so their times compare.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

import pyrobnn as pb
from pyrobnn.infer.predictive import predictive_log_likelihood
from pyrobnn.utils.files import atomic_write

DATASETS = {
    "boston": "bostonHousing", "concrete": "concrete", "energy": "energy", "kin8nm": "kin8nm",
    "naval": "naval-propulsion-plant", "power": "power-plant", "protein": "protein-tertiary-structure",
    "wine": "wine-quality-red", "yacht": "yacht",
}
# (VI, PBP, dropout): test log-likelihood mean, s.e.; RMSE means (REFERENCE section 6)
PUBLISHED_LL = {
    "boston": ((-2.90, .07), (-2.57, .09), (-2.46, .06)),
    "concrete": ((-3.39, .02), (-3.16, .02), (-3.04, .02)),
    "energy": ((-2.39, .03), (-2.04, .02), (-1.99, .02)),
    "kin8nm": ((0.90, .01), (0.90, .01), (0.95, .01)),
    "naval": ((3.73, .12), (3.73, .01), (3.80, .01)),
    "power": ((-2.89, .01), (-2.84, .01), (-2.80, .01)),
    "protein": ((-2.99, .01), (-2.97, .00), (-2.89, .00)),
    "wine": ((-0.98, .01), (-0.97, .01), (-0.93, .01)),
    "yacht": ((-3.43, .16), (-1.63, .02), (-1.55, .03)),
}
PUBLISHED_RMSE = {
    "boston": (4.32, 3.01, 2.97), "concrete": (7.19, 5.67, 5.23), "energy": (2.65, 1.80, 1.66),
    "kin8nm": (0.10, 0.10, 0.10), "naval": (0.01, 0.01, 0.01), "power": (4.33, 4.12, 4.02),
    "protein": (4.84, 4.73, 4.36), "wine": (0.65, 0.64, 0.62), "yacht": (6.89, 1.02, 1.11),
}
# deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, table 1; 5 networks, 20 splits):
# test log-likelihood mean, RMSE mean
DEEP_ENSEMBLES = {"boston": (-2.41, 3.28), "concrete": (-3.06, 6.03), "energy": (-1.38, 2.09),
                  "wine": (-0.94, 0.64), "yacht": (-1.18, 1.58)}


def default_data_root() -> Path:
    env = os.environ.get("PYROBNN_DATA")
    if env:
        return Path(env) / "uci"
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uci"


def _fit_one(ds, seed, epochs, args):
    """One fit of the benchmark's network on ``ds``; ``seed`` sets the initialisation (torch's
    global generator, which this script owns) and the fit's own seed."""
    hidden = int(ds.meta.get("n_hidden", 50))
    torch.manual_seed(seed)
    net = pb.BNN([pb.Linear(ds.x_train.shape[1], hidden), "relu", pb.Linear(hidden, 1)],
                 pb.Gaussian(scale=args.noise_init, learned=True, noise_prior_scale=1.0),
                 prior=pb.priors.Normal(0.0, 1.0))
    guide = pb.guides.MeanField(net, init_scale=args.init_scale)
    if args.method == "laplace":
        return pb.fit_laplace(net, ds.x_train, ds.y_train, subset=args.laplace_subset,
                              structure=args.laplace_structure, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=seed, progress=False, device="cpu")
    return pb.fit_svi(net, guide, ds.x_train, ds.y_train, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                      num_particles=args.particles, seed=seed, progress=False, device="cpu")


def run_split(root, name, split, args):
    ds = pb.data.uci(root, DATASETS[name], split=split)
    steps_per_epoch = math.ceil(ds.n_train / args.batch_size)
    epochs = max(1, round(args.steps / steps_per_epoch))
    t0 = time.perf_counter()
    members = [_fit_one(ds, split + 1000 * k, epochs, args) for k in range(args.ensemble)]
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    post = members[0] if args.ensemble == 1 else pb.Ensemble(members)
    if args.ensemble == 1:
        lpd = post.log_predictive_density(ds.x_test, ds.y_test, num_samples=args.samples)
    else:  # one pass over every member's draws gives the mixture's density and each member's
        draws_ll = post.log_likelihood(ds.x_test, ds.y_test, num_samples=args.samples)  # (members, draws, N)
        lpd = predictive_log_likelihood(draws_ll.reshape(-1, draws_ll.shape[-1]))
        own = [predictive_log_likelihood(m) for m in draws_ll]
    ll = float(ds.log_lik_to_original(lpd).mean())
    pred = post.predict(ds.x_test, num_samples=args.samples)
    rmse = float(ds.scale_to_original(((pred.mean - ds.y_test) ** 2).mean().sqrt()))
    out = {"split": split, "test_ll": ll, "test_rmse": rmse, "epochs": epochs, "seconds": seconds,
           "predict_seconds": time.perf_counter() - t0}
    if args.ensemble > 1:  # each member alone, from the same draws
        out["member_test_ll"] = [float(ds.log_lik_to_original(m).mean()) for m in own]
    if args.method == "laplace":  # seconds = map_seconds (the MAP fits) + laplace_seconds (GGN and δ)
        out.update(prior_precision=[m.prior_precision for m in members] if args.ensemble > 1
                   else members[0].prior_precision,
                   map_seconds=sum(m.info["map_seconds"] for m in members),
                   laplace_seconds=sum(m.info["laplace_seconds"] for m in members))
    return out


def mean_se(values):
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return m, se


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_root(), help="the uci/ folder")
    ap.add_argument("--datasets", nargs="+", default=["boston", "concrete", "energy", "wine", "yacht"],
                    choices=sorted(DATASETS))
    ap.add_argument("--splits", type=int, default=20, help="number of splits to run (at most those shipped)")
    ap.add_argument("--steps", type=int, default=3000, help="gradient steps per split (rounded to whole epochs)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--init-scale", type=float, default=1e-3)
    ap.add_argument("--noise-init", type=float, default=0.5, help="median of the noise prior (standardised units)")
    ap.add_argument("--particles", type=int, default=1)
    ap.add_argument("--samples", type=int, default=1000, help="posterior draws for the test metrics")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small nets run best on one)")
    ap.add_argument("--method", choices=("svi", "laplace"), default="svi")
    ap.add_argument("--laplace-subset", choices=("all", "last_layer"), default="all")
    ap.add_argument("--laplace-structure", choices=("diag", "kron", "full"), default="kron")
    ap.add_argument("--ensemble", type=int, default=1, metavar="K",
                    help="fits per split from K initialisations, evaluated as their mixture (default 1: one fit)")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: print (and for laplace write) the tables of the results in --out")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/uci.json "
                                                           "(uci_laplace.json for --method laplace)")
    args = ap.parse_args(argv)
    if args.ensemble < 1:
        ap.error(f"--ensemble must be a positive number of fits, got {args.ensemble}")
    if args.out is None:
        stem = "uci" if args.method == "svi" else "uci_laplace"
        if args.ensemble > 1:
            stem = f"uci_{args.method}_ensemble{args.ensemble}"
        args.out = Path(__file__).parent / "results" / f"{stem}.json"
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        ap.error(f"--data {args.data} is not a directory (expected the uci/ folder of the shared data)")

    results = {}
    if args.out.exists():
        results = json.loads(args.out.read_text()).get("datasets", {})
    for name in args.datasets:
        if args.report_only:
            if name not in results:
                ap.error(f"--report-only: {args.out} has no results for {name}")
            continue
        n_splits = min(args.splits, pb.data.uci_n_splits(args.data / DATASETS[name]))
        runs = []
        for split in range(n_splits):
            r = run_split(args.data, name, split, args)
            runs.append(r)
            parts = f", MAP {r['map_seconds']:.1f} s + Laplace {r['laplace_seconds']:.2f} s" if "map_seconds" in r else ""
            print(f"{name:<9} split {split:>2}: test LL {r['test_ll']:7.3f}  RMSE {r['test_rmse']:7.3f}  "
                  f"({r['epochs']} epochs, fit {r['seconds']:.1f} s{parts}; metrics {r['predict_seconds']:.2f} s)",
                  flush=True)
        ll, ll_se = mean_se([r["test_ll"] for r in runs])
        rmse, rmse_se = mean_se([r["test_rmse"] for r in runs])
        results[name] = {"test_ll": ll, "test_ll_se": ll_se, "test_rmse": rmse, "test_rmse_se": rmse_se,
                         "splits": runs}
        payload = {"settings": {k: str(v) for k, v in vars(args).items()}, "datasets": results}
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2)))

    if args.ensemble > 1:
        _ensemble_table(args, results)
    elif args.method == "laplace":
        _laplace_table(args, results)
    print("\nTest log-likelihood (original units), mean ± s.e. over splits; higher is better")
    print(f"{'dataset':<10}{'pyrobnn ' + args.method.upper():>16}{'VI':>14}{'PBP':>14}{'dropout':>14}  beats VI")
    for name in args.datasets:
        r = results[name]
        (vi, vis), (pbp, pbps), (do, dos) = PUBLISHED_LL[name]
        print(f"{name:<10}{r['test_ll']:>9.2f} ± {r['test_ll_se']:.2f}{vi:>8.2f} ± {vis:.2f}{pbp:>8.2f} ± {pbps:.2f}"
              f"{do:>8.2f} ± {dos:.2f}  {'yes' if r['test_ll'] > vi else 'NO'}")
    print("\nTest RMSE (original units), mean ± s.e.; lower is better")
    print(f"{'dataset':<10}{'pyrobnn ' + args.method.upper():>16}{'VI':>8}{'PBP':>8}{'dropout':>9}")
    for name in args.datasets:
        r = results[name]
        vi, pbp, do = PUBLISHED_RMSE[name]
        print(f"{name:<10}{r['test_rmse']:>9.2f} ± {r['test_rmse_se']:.2f}{vi:>8.2f}{pbp:>8.2f}{do:>9.2f}")
    if not args.report_only:
        print(f"\nwritten {args.out}")


def _command(args) -> str:
    """The command line that runs these settings (defaults left out)."""
    return (f"python benchmarks/uci.py --data {args.data} --method {args.method} --splits {args.splits} "
            f"--datasets {' '.join(args.datasets)}" + (f" --ensemble {args.ensemble}" if args.ensemble > 1 else "")
            + (f" --laplace-subset {args.laplace_subset}" if args.laplace_subset != "all" else "")
            + (f" --laplace-structure {args.laplace_structure}" if args.laplace_structure != "kron" else ""))


def _ensemble_table(args, results):
    """The mixture of K fits next to its first member alone (the single fit), the mean member, and
    the published deep ensembles and MC dropout: printed, and written next to ``--out`` (``.md``)."""

    def cell(values, digits=2):
        m, se = mean_se(values)
        return f"{m:.{digits}f} ± {se:.{digits}f}"

    what = {"laplace": f"MAP + Laplace ({args.laplace_subset} layers, {args.laplace_structure} GGN, linearised "
                       "predictive)", "svi": "mean-field SVI"}[args.method]
    md = [f"# UCI regression: ensembles of {args.ensemble} fits ({what})", "",
          "Command (from the repository root; one torch thread):", "", f"    {_command(args)}", "",
          f"Each split: {args.ensemble} fits of the same network from {args.ensemble} initialisations (member k seeded "
          "split + 1000·k; member 0 is the single fit of the other tables), each "
          f"{args.steps} Adam steps (lr {args.lr}, batch {args.batch_size}), evaluated as their equally weighted "
          f"mixture (`pyrobnn.Ensemble`) from {args.samples} draws per member. Test log-likelihood and RMSE in "
          "original units, mean ± standard error over splits. 'first member' is member 0 alone, 'mean member' the "
          "average over members of each one's own test log-likelihood (same draws). Deep ensembles: "
          "Lakshminarayanan, Pritzel & Blundell (2017), 5 networks with a learned heteroscedastic variance, "
          "adversarial training; MC dropout: Gal & Ghahramani (2016).", "",
          "| dataset | splits | ensemble LL | first member LL | mean member LL | deep ensembles LL | dropout LL "
          "| ensemble − deep ensembles (in s.e.) | ensemble RMSE | deep ensembles RMSE | dropout RMSE "
          "| s/split (all fits) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print(f"\nEnsembles of {args.ensemble} fits: test LL (original units), mean ± s.e. over splits")
    above = 0
    for name in args.datasets:
        runs = results[name]["splits"]
        ens = [r["test_ll"] for r in runs]
        first = [r["member_test_ll"][0] for r in runs]
        mean_member = [statistics.fmean(r["member_test_ll"]) for r in runs]
        de_ll, de_rmse = DEEP_ENSEMBLES.get(name, (float("nan"), float("nan")))
        m_ens, se_ens = mean_se(ens)
        ok = m_ens >= de_ll
        above += ok
        do_ll = PUBLISHED_LL[name][2][0]
        t = statistics.fmean(r["seconds"] for r in runs)
        print(f"{name:<10}{len(runs):>4}  ensemble {cell(ens, 3)}  first member {cell(first)}  "
              f"deep ensembles {de_ll:.2f}  {'at or above' if ok else 'below'}")
        md.append(f"| {name} | {len(runs)} | {cell(ens, 3)} | {cell(first)} | {cell(mean_member)} | {de_ll:.2f} | "
                  f"{do_ll:.2f} | {m_ens - de_ll:+.3f} ({(m_ens - de_ll) / se_ens:+.1f}) | "
                  f"{cell([r['test_rmse'] for r in runs])} | {de_rmse:.2f} | "
                  f"{PUBLISHED_RMSE[name][2]:.2f} | {t:.1f} |")
    md += ["", f"At or above the deep-ensemble test log-likelihood (mean over splits) on {above} of "
               f"{len(args.datasets)} data sets; a difference within about 2 s.e. is a tie, not a win."]
    path = args.out.with_suffix(".md")
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(md) + "\n"))
    print(f"written {path}")


def _laplace_table(args, results):
    """Laplace next to pyrobnn's SVI on the same splits (from benchmarks/results/uci.json) and the
    published columns: printed, and written as a markdown table next to ``--out`` (``.md``)."""
    svi_file = Path(__file__).parent / "results" / "uci.json"
    svi = json.loads(svi_file.read_text())["datasets"] if svi_file.exists() else {}

    def cell(runs, key):
        m, se = mean_se([r[key] for r in runs])
        return f"{m:.2f} ± {se:.2f}" if runs else "—"

    print("\nLaplace (K-FAC GGN, linearised predictive) and SVI on the same splits: test LL, fit seconds")
    print(f"{'dataset':<10}{'splits':>7}{'Laplace LL':>16}{'SVI LL':>16}{'Laplace s':>11}{'SVI s':>8}")
    md = [f"# UCI regression: the Laplace approximation ({args.laplace_subset} layers, "
          f"{args.laplace_structure} GGN, linearised predictive)", "",
          "Command (from the repository root; one torch thread, `nice -n 10`, on a 2-core machine shared with "
          "other work):", "", f"    {_command(args)}", "",
          f"{args.steps} Adam steps (lr {args.lr}, batch {args.batch_size}, rounded to whole epochs) for the MAP fit, "
          "as for the SVI column; then the GGN at the MAP over the training data, the prior precision by the "
          f"marginal likelihood (δ per split in the .json), and {args.samples} draws of the linearised predictive for the test metrics. "
          "Test log-likelihood and RMSE in original units, mean ± standard error over splits; SVI: pyrobnn's "
          "mean-field SVI on the same splits (benchmarks/results/uci.json); VI, PBP, MC dropout: the published "
          "20-split means (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016). Seconds: the fit of one split "
          "as measured (the SVI column's from its own run), so they compare only as far as the machine's load "
          "was alike.", "",
          "| dataset | splits | Laplace LL | SVI LL | VI | PBP | dropout | Laplace RMSE | SVI RMSE | VI | PBP | dropout "
          "| Laplace s/split (MAP + GGN, δ; test metrics) | SVI s/split |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.datasets:
        runs = results[name]["splits"]
        done = {r["split"] for r in runs}
        same = [r for r in svi.get(name, {}).get("splits", []) if r["split"] in done]
        t = statistics.fmean(r["seconds"] for r in runs)
        st = statistics.fmean(r["seconds"] for r in same) if same else float("nan")
        print(f"{name:<10}{len(runs):>7}{cell(runs, 'test_ll'):>16}{cell(same, 'test_ll'):>16}{t:>11.1f}{st:>8.1f}")
        (vi, vis), (pbp, pbps), (do, dos) = PUBLISHED_LL[name]
        tm = statistics.fmean(r["map_seconds"] for r in runs)
        tl = statistics.fmean(r["laplace_seconds"] for r in runs)
        tp = statistics.fmean(r["predict_seconds"] for r in runs) if "predict_seconds" in runs[0] else float("nan")
        md.append(f"| {name} | {len(runs)} | {cell(runs, 'test_ll')} | {cell(same, 'test_ll')} | {vi:.2f} ± {vis:.2f} "
                  f"| {pbp:.2f} ± {pbps:.2f} | {do:.2f} ± {dos:.2f} | {cell(runs, 'test_rmse')} | "
                  f"{cell(same, 'test_rmse')} | " + " | ".join(f"{v:.2f}" for v in PUBLISHED_RMSE[name]) +
                  f" | {t:.1f} ({tm:.1f} + {tl:.2f}; {tp:.2f}) | {st:.1f} |")
    path = args.out.with_suffix(".md")
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(md) + "\n"))
    print(f"written {path}")


if __name__ == "__main__":
    main()
