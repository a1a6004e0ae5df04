"""BDCMF on planted data: recall@M of BDCMF (both estimators) and baselines, factor recovery,
the λ_v / λ_q sweep, and epoch time / peak memory against the number of observed ratings.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bdcmf.py --seeds 3 --jobs 3 --no-scaling --out benchmarks/results/bdcmf

For each seed the hyperparameters are chosen on a validation split of that seed's *training*
ratings (:func:`pyrobnn.apps.bdcmf.tuning.select_by_validation`, recall@100, coordinate search
of :data:`STAGES`, on 10% of the training pairs and 10% of the training items held out whole):
BDCMF's λ_v then λ_q, once for in-matrix and once for cold-start recall; PMF's λ_v then λ_u; CTR
(BDCMF without the graph) takes BDCMF's λ_v of each; the content-only model has no collaborative
parameter and keeps the defaults.  A method's cold-start column comes from its cold-start choice
(refitted when it differs); the full posterior starts from the in-matrix point fit.  The chosen settings are refitted on all training ratings and scored on the test
pairs and the cold items, which the choice never sees.  The λ_v / λ_q sweep is seed 0's search.
Writes ``results.json``, ``results.md`` and the report (``index.html`` with the recall curves and
sweep figures) into ``--out``.  Every number is measured in this run; times are wall-clock on
whatever machine runs it (report them with its load).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyrobnn.apps.bdcmf import BDCMFSettings, evaluate, fit_full, fit_point, procrustes_correlation  # noqa: E402
from pyrobnn.apps.bdcmf.report import write_json, write_report  # noqa: E402
from pyrobnn.apps.bdcmf.tuning import select_by_validation  # noqa: E402
from pyrobnn.data import recsys_synthetic, split_ratings  # noqa: E402


def fit(train, s, start=None):
    args = (train.ratings, train.n_users, train.n_items, s, train.social, train.content)
    t0 = time.perf_counter()
    f = fit_full(*args, start=start) if s.estimator == "full" else fit_point(*args)
    return f, time.perf_counter() - t0


def mean_se(values):
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")


STAGES = {  # coordinate search on the validation split (pyrobnn.apps.bdcmf.tuning)
    "bdcmf": [("lambda_v", [0.1, 1.0, 10.0, 100.0]), ("lambda_q", [0.0, 0.1, 1.0, 10.0])],
    "pmf": [("lambda_v", [0.1, 1.0, 10.0, 100.0]), ("lambda_u", [0.1, 1.0, 10.0])],
}


def tune(args, seed, base, split):
    """Hyperparameters chosen on a validation split of the training ratings (pairs and whole
    items): BDCMF's for in-matrix and for cold-start recommendation, PMF's for in-matrix; CTR
    (BDCMF without the graph) takes BDCMF's λ_v of each."""
    if args.no_tuning:
        return {m: {c: replace(base, method=m) for c in ("in_matrix", "cold_start")} for m in STAGES}, {}
    chosen, tables = {}, {}
    for method, stages in STAGES.items():
        criteria = ("in_matrix", "cold_start") if method == "bdcmf" else ("in_matrix",)
        best, trials = select_by_validation(split.train, replace(base, method=method), stages,
                                            val_fraction=args.val_fraction, k=args.ks[1], seed=seed,
                                            fit=lambda d, s: fit(d, s)[0], cold_fraction=args.val_cold_fraction,
                                            criteria=criteria)
        chosen[method] = best
        tables[method] = [{key: t[key] for key in ("settings", "in_matrix", "cold_start") if key in t} for t in trials]
        for c, b in best.items():
            print(f"seed {seed} tuned {method} for {c}: " + ", ".join(f"{p}={getattr(b, p)}" for p, _ in stages),
                  flush=True)
    chosen["ctr"] = {c: replace(b, method="ctr", lambda_q=base.lambda_q) for c, b in chosen["bdcmf"].items()}
    return chosen, tables


def one_seed(args, seed, base):
    torch.set_num_threads(1)
    data = recsys_synthetic(args.users, args.items, args.words, args.K, seed=seed, density=args.density,
                            social_density=args.social_density, doc_length=args.doc_length)
    split = split_ratings(data, 0.2, 0.1, seed)
    train = split.train
    truth_u = data.truth["u"]
    truth_v = data.truth["v"][split.warm_items]
    t_tune = time.perf_counter()
    chosen, tables = tune(args, seed, base, split)
    t_tune = time.perf_counter() - t_tune
    bd = chosen["bdcmf"]["in_matrix"]
    out = {}
    point = None
    for name, s in [("bdcmf point", bd), ("bdcmf full cavi", replace(bd, estimator="full", full_updates="cavi")),
                    ("bdcmf full svi", replace(bd, estimator="full", full_updates="svi")),
                    ("pmf", chosen["pmf"]["in_matrix"]), ("ctr", chosen["ctr"]["in_matrix"]),
                    ("content", replace(base, method="content"))]:
        f, secs = fit(train, s, start=point if name.startswith("bdcmf full") else None)
        if name == "bdcmf point":
            point = f
            secs_point = secs
        res = evaluate(f, split, args.ks)
        res["fit_seconds"] = secs + (secs_point if name.startswith("bdcmf full") else 0.0)
        res["settings"] = {p: getattr(s, p) for p in ("lambda_u", "lambda_v", "lambda_q")}
        cold = chosen.get(s.method, {}).get("cold_start")
        if s.estimator == "point" and cold is not None and cold != s:  # cold start by the model chosen for it
            f_cold, secs_cold = fit(train, cold)
            res["cold_start"] = evaluate(f_cold, split, args.ks)["cold_start"]
            res["cold_start_settings"] = {p: getattr(cold, p) for p in ("lambda_u", "lambda_v", "lambda_q")}
            res["fit_seconds_cold_start"] = secs_cold
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(f.u.shape[0], generator=gen)
        res["procrustes_u"] = procrustes_correlation(f.u, truth_u)
        res["procrustes_v"] = procrustes_correlation(f.v, truth_v)
        res["procrustes_u_null"] = procrustes_correlation(f.u[perm], truth_u)
        out[name] = res
        print(f"seed {seed} {name}: {secs:.0f}s " + " ".join(
            f"{p}@{k}={res[p][f'recall@{k}']:.3f}" for p in ("in_matrix", "cold_start") if p in res
            for k in args.ks) + f" corr_u={res['procrustes_u']:.3f} (null {res['procrustes_u_null']:.3f})",
            flush=True)
    oracle = {"in_matrix": evaluate_factors(truth_u, truth_v, split, args.ks)}
    return out, oracle, {"tuning": tables, "tuning_seconds": t_tune}


def evaluate_factors(u, v, split, ks):
    from pyrobnn.apps.bdcmf import ranking_metrics

    return ranking_metrics(u, v, split.test, split.train.ratings, ks)


def sweeps_from_tuning(tables, base):
    """The paper's λ_v and λ_q sweeps, read off one seed's BDCMF validation search (the in-matrix
    one): recall on the validation pairs (in-matrix) and on the validation items (cold start), of
    fits to the rest of the training ratings.  λ_v at ``base.lambda_q``; λ_q at the chosen λ_v."""
    trials = tables["bdcmf"]
    stage1 = [t for t in trials if "lambda_q" not in t["settings"]]
    best_v = max(stage1, key=lambda t: list(t["in_matrix"].values())[1])["settings"]["lambda_v"]
    row = lambda t, value: {"value": value, **{p: t[p] for p in ("in_matrix", "cold_start") if p in t}}  # noqa: E731
    lam_v = [row(t, t["settings"]["lambda_v"]) for t in stage1]
    lam_q = [row(t, t["settings"]["lambda_q"]) for t in trials
             if "lambda_q" in t["settings"] and t["settings"]["lambda_v"] == best_v]
    lam_q += [row(t, base.lambda_q) for t in stage1 if t["settings"]["lambda_v"] == best_v]
    return {"lambda_v": sorted(lam_v, key=lambda r: r["value"]), "lambda_q": sorted(lam_q, key=lambda r: r["value"])}


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM, kB); unlike getrusage's ru_maxrss it is not
    inherited from the parent process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def scaling_one(args, base):
    """One size in this process: one EM epoch's time and the process's peak resident memory
    (the data is read from ``args.data``, written by the parent, so generating it costs nothing here)."""
    data = torch.load(args.data, weights_only=False)
    s = replace(base, epochs=1, pretrain_steps=0)
    rss0 = peak_rss_kb()
    f, secs = fit(data, s)
    h = f.history[0]
    peak = peak_rss_kb()
    print(json.dumps({"n_ratings": int(data.ratings.shape[0]), "n_edges": int(data.social.shape[0]),
                      "epoch_seconds": h["estep_s"] + h["mstep_s"], "estep_seconds": h["estep_s"],
                      "mstep_seconds": h["mstep_s"], "peak_rss_mb": peak / 1024, "rss_before_fit_mb": rss0 / 1024}))


def run_scaling(args):
    scaling = []
    for density in args.scaling_densities:
        data = recsys_synthetic(args.users, args.items, args.words, args.K, seed=0, density=density,
                                social_density=args.social_density, doc_length=args.doc_length)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(data, Path(tmp) / "data.pt")
            cmd = [sys.executable, __file__, "--scaling-one", "--data", str(Path(tmp) / "data.pt"), "--K",
                   str(args.K), "--m-steps", str(args.m_steps), "--hidden", str(args.hidden)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        scaling.append({"density": density, **json.loads(line)})
        print("scaling", scaling[-1], flush=True)
    return scaling


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("--words", type=int, default=8000)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--social-density", type=float, default=0.005)
    p.add_argument("--doc-length", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--m-steps", type=int, default=10)
    p.add_argument("--pretrain-steps", type=int, default=100)
    p.add_argument("--full-steps", type=int, default=100)
    p.add_argument("--hidden", type=int, default=50)
    p.add_argument("--ks", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the training ratings held out to choose the hyperparameters")
    p.add_argument("--val-cold-fraction", type=float, default=0.1,
                   help="fraction of the training items held out whole to choose the cold-start hyperparameters")
    p.add_argument("--no-tuning", action="store_true", help="use the default hyperparameters (no validation search)")
    p.add_argument("--no-scaling", action="store_true", help="skip the epoch time / memory measurements")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes (one thread each)")
    p.add_argument("--scaling-densities", type=float, nargs="*", default=[0.0025, 0.005, 0.01])
    p.add_argument("--scaling-one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--only-scaling", action="store_true", help="run only the epoch time / memory measurements")
    p.add_argument("--out", default="benchmarks/results/bdcmf")
    args = p.parse_args()
    torch.set_num_threads(1)
    base = BDCMFSettings(K=args.K, epochs=args.epochs, m_steps=args.m_steps, pretrain_steps=args.pretrain_steps,
                         full_steps=args.full_steps, hidden=args.hidden)
    if args.scaling_one:
        scaling_one(args, base)
        return
    if args.only_scaling:  # the scaling measurements alone, into scaling.json
        scaling = run_scaling(args)
        write_json(Path(args.out) / "scaling.json", {"args": vars(args), "scaling": scaling,
                                                     "command": " ".join(sys.argv)})
        return
    t_start = time.perf_counter()
    jobs = [(args, seed, replace(base, seed=seed)) for seed in range(args.seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(min(args.jobs, args.seeds)) as pool:
            runs = pool.starmap(one_seed, jobs)
    else:
        runs = [one_seed(*job) for job in jobs]
    per_seed, oracles, extras = (list(x) for x in zip(*runs))
    summary = {}
    for name in per_seed[0]:
        entry = {}
        for part in ("in_matrix", "cold_start"):
            if part not in per_seed[0][name]:
                continue
            for k in args.ks:
                m, se = mean_se([r[name][part][f"recall@{k}"] for r in per_seed])
                entry[f"{part} recall@{k}"] = (m, se)
        for key in ("procrustes_u", "procrustes_v", "procrustes_u_null", "fit_seconds"):
            entry[key] = mean_se([r[name][key] for r in per_seed])
        summary[name] = entry
    oracle_in = {k: mean_se([o["in_matrix"][f"recall@{k}"] for o in oracles]) for k in args.ks}
    sweeps = sweeps_from_tuning(extras[0]["tuning"], base) if extras[0]["tuning"] else {}
    scaling = [] if args.no_scaling else run_scaling(args)
    n_cold = int(round(0.1 * args.items))
    out = Path(args.out)
    results = {"args": vars(args), "per_seed": per_seed, "summary": summary, "oracle_in_matrix": oracle_in,
               "sweeps": sweeps, "scaling": scaling, "total_seconds": time.perf_counter() - t_start,
               "tuning": [e["tuning"] for e in extras], "tuning_seconds": [e["tuning_seconds"] for e in extras],
               "random_recall_in_matrix": {k: k / (args.items - n_cold) for k in args.ks},
               "random_recall_cold_start": {k: min(1.0, k / n_cold) for k in args.ks}}
    write_json(out / "results.json", results)
    mean_results = {}
    for name in per_seed[0]:
        mean_results[name] = {}
        for part in ("in_matrix", "cold_start"):
            if part in per_seed[0][name]:
                mean_results[name][part] = {"users": per_seed[0][name][part]["users"]}
                for k in args.ks:
                    m, se = summary[name][f"{part} recall@{k}"]
                    mean_results[name][part][f"recall@{k}"], mean_results[name][part][f"recall@{k}_se"] = m, se
    write_report(out, mean_results, sweeps, notes=f"mean ± s.e. over {args.seeds} seeds; command: "
                                                   f"{' '.join(sys.argv)}", title="BDCMF on planted data")
    lines = ["| method | " + " | ".join(f"{p} R@{k}" for p in ("in", "cold") for k in args.ks) +
             " | Procrustes corr u (null) | fit s |", "|---" * (2 * len(args.ks) + 3) + "|"]
    for name, e in summary.items():
        cells = []
        for part in ("in_matrix", "cold_start"):
            for k in args.ks:
                v = e.get(f"{part} recall@{k}")
                cells.append(f"{v[0]:.4f} ± {v[1]:.4f}" if v else "–")
        cells.append(f"{e['procrustes_u'][0]:.3f} ({e['procrustes_u_null'][0]:.3f})")
        cells.append(f"{e['fit_seconds'][0]:.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("oracle (planted u, v) in-matrix: " + ", ".join(f"R@{k} {m:.4f}" for k, (m, _) in oracle_in.items()))
    lines.append("random ranking: in-matrix " + ", ".join(f"R@{k} {v:.4f}" for k, v in
                                                          results["random_recall_in_matrix"].items())
                 + "; cold start " + ", ".join(f"R@{k} {v:.4f}" for k, v in
                                               results["random_recall_cold_start"].items()))
    for seed, res in enumerate(per_seed):
        lines.append(f"hyperparameters chosen on the validation split, seed {seed}: " + "; ".join(
            f"{name} " + ", ".join(f"{k}={v:g}" for k, v in res[name]["settings"].items())
            + ("" if "cold_start_settings" not in res[name] else " (cold start: " + ", ".join(
                f"{k}={v:g}" for k, v in res[name]["cold_start_settings"].items()) + ")")
            for name in ("bdcmf point", "ctr", "pmf", "content")))
    lines.append(f"tuning time per seed: {', '.join(f'{t:.0f}s' for t in results['tuning_seconds'])}")
    for param, rows in sweeps.items():
        lines.append(f"sweep {param} (seed 0, validation recall: in_matrix on the validation pairs, "
                     f"cold_start on the validation items): " + "; ".join(
            f"{r['value']}: " + ", ".join(f"{p} R@{args.ks[1]} {r[p][f'recall@{args.ks[1]}']:.4f}"
                                          for p in ("in_matrix", "cold_start") if p in r) for r in rows))
    for sc in scaling:
        lines.append(f"scaling: {sc['n_ratings']} ratings: epoch {sc['epoch_seconds']:.2f}s (E-step "
                     f"{sc['estep_seconds']:.2f}s, M-step {sc['mstep_seconds']:.2f}s), peak RSS {sc['peak_rss_mb']:.0f} MB")
    lines.append(f"total {results['total_seconds']:.0f}s; command: OMP_NUM_THREADS=1 nice -n 10 python "
                 + " ".join(sys.argv))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
