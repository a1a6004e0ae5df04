"""``pyrobnn recommend``: fit a recommender from a spec and write a report; predict from a run.

* ``pyrobnn recommend fit SPEC --out DIR [--set model.K=10]`` — loads the data, splits it
  (in-matrix and cold-start hold-outs), fits the spec's method and its baselines, and writes
  ``DIR/model/`` (factors and networks), ``DIR/spec.json`` and the report (``index.html``,
  ``metrics.json``, figures).
* ``pyrobnn recommend predict DIR --users 0,3 [--top 10] [--out FILE.csv]`` — the top items
  of each user by ``u_iᵀv_j`` (with the score's posterior sd for the full posterior).
"""

from __future__ import annotations

import csv
import io
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ...utils.files import atomic_write, replace_dir

__all__ = ["add_parser", "cmd_fit", "cmd_predict"]


def add_parser(subparsers) -> None:
    """Register ``recommend fit`` and ``recommend predict`` on the top-level subparsers."""
    rec = subparsers.add_parser("recommend", help="BDCMF recommender: fit from a spec, predict top items",
                                description="Bayesian deep collaborative matrix factorisation (ratings, social "
                                            "graph, item content).")
    sub = rec.add_subparsers(dest="recommend_command", metavar="ACTION", parser_class=type(rec))
    sub.required = True
    f = sub.add_parser("fit", help="fit a recommender spec and write a report",
                       description="Fit the spec's method (and its baselines) and write DIR/model, the report "
                                   "(index.html, metrics.json, figures) and DIR/spec.json.")
    f.add_argument("spec", help="recommender spec (TOML)")
    f.add_argument("--out", required=True, help="run directory (replaced atomically)")
    f.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a spec field, e.g. --set model.K=10 (repeatable)")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress bars; print only the report path")
    f.set_defaults(func=cmd_fit)
    p = sub.add_parser("predict", help="top items of some users from a fitted run")
    p.add_argument("run_dir", help="run directory written by 'pyrobnn recommend fit'")
    p.add_argument("--users", required=True, help="comma-separated user ids, e.g. 0,3,7")
    p.add_argument("--top", type=int, default=10, help="items per user (default 10)")
    p.add_argument("--out", help="CSV file (default: print to stdout)")
    p.set_defaults(func=cmd_predict)


def cmd_fit(args) -> int:
    # the fitting stack (pyro, matplotlib) is loaded when a command runs, not when the parser is built
    import torch

    from ...data.recsys import split_ratings
    from .harness import evaluate, fit_bdcmf
    from .report import write_json, write_report
    from .spec import load_recommend_spec

    spec = load_recommend_spec(args.spec, args.set)
    data = spec.load_data()
    d = spec.data
    split = split_ratings(data, d.get("test_fraction", 0.2), d.get("cold_fraction", 0.1), d.get("split_seed", 0))
    progress = not args.quiet and sys.stderr.isatty()
    results, main_fit = {}, None
    for method in [spec.settings.method] + [b for b in spec.baselines if b != spec.settings.method]:
        s = spec.settings if method == spec.settings.method else replace(spec.settings, method=method,
                                                                        estimator="point")
        fit = fit_bdcmf(split.train, s, progress=progress)
        name = f"{method} ({s.estimator})"
        results[name] = evaluate(fit, split, spec.ks)
        results[name]["fit_seconds"] = fit.history[-1]["fit_seconds"]
        main_fit = main_fit or fit
        if not args.quiet:
            print(f"{name}: " + ", ".join(f"{part} recall@{k} {results[name][part][f'recall@{k}']:.4f}"
                                          for part in ("in_matrix", "cold_start") if part in results[name]
                                          for k in spec.ks[:1]), file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    main_fit.save(tmp / "model")
    torch.save(split.warm_items, tmp / "model" / "warm_items.pt")
    write_json(tmp / "spec.json", spec.to_dict())
    write_report(tmp, results, notes=f"spec {spec.origin}; {data.n_users} users, {data.n_items} items, "
                                     f"{data.ratings.shape[0]} ratings; training items {split.train.n_items}, "
                                     f"cold-start items {split.cold_items.numel()}")
    replace_dir(tmp, out)
    print(f"report: {out / 'index.html'}")
    return 0


def cmd_predict(args) -> int:
    import torch

    from .fit import load_fit

    if not (Path(args.run_dir) / "model" / "settings.json").is_file():
        raise FileNotFoundError(f"{args.run_dir}: no model/settings.json; expected a run directory written by "
                                "'pyrobnn recommend fit'")
    fit = load_fit(Path(args.run_dir) / "model")
    warm = torch.load(Path(args.run_dir) / "model" / "warm_items.pt", weights_only=True)
    try:
        users = [int(u) for u in args.users.split(",")]
    except ValueError:
        raise ValueError(f"--users must be comma-separated integer ids, got {args.users!r}") from None
    top = max(1, min(int(args.top), fit.n_items))
    scores = fit.scores(users)
    std = fit.score_std(users) if fit.u_scale is not None else None
    best = scores.topk(top, dim=1)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["user", "rank", "item", "score"] + (["score_sd"] if std is not None else []))
    for r, user in enumerate(users):
        for rank, (j, sc) in enumerate(zip(best.indices[r].tolist(), best.values[r].tolist()), 1):
            row = [user, rank, int(warm[j]), f"{sc:.6g}"]
            if std is not None:
                row.append(f"{float(std[r, j]):.6g}")
            w.writerow(row)
    if args.out:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(buf.getvalue()))
    else:
        sys.stdout.write(buf.getvalue())
    return 0
