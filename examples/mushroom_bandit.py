"""Blundell et al. (2015), section 5.3: Thompson sampling with a BNN on the UCI Mushroom bandit,
against ε-greedy agents (ε = 0, 1 %, 5 %) on the same network with a point estimate, Uniform and
LinFullPost; cumulative regret over the steps and normalised regret (Uniform = 100) next to the
published rerun of Wen et al. (2020).

Specs: models/bandit_mushroom.toml (119-100-100-1 ReLU, Blundell's scale-mixture prior) and
inference/bandit_mushroom.toml (mean-field guide, SVI on the last 4096 interactions).

Seeds can run as separate processes sharing one checkpoint folder, then be assembled::

    python examples/mushroom_bandit.py --seeds 0 --no-report &     # one process per seed
    python examples/mushroom_bandit.py --seeds 1 --no-report &
    python examples/mushroom_bandit.py --seeds 0 1                 # finished pairs load from checkpoints
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, Clock, fmt, machine, markdown_table, output_name, parse_args, write_json, write_text  # noqa: E402,E501

from pyrobnn.apps.bandits import MushroomBandit, run_bandit  # noqa: E402
from pyrobnn.apps.bandits.report import bandit_metrics, plot_regret, write_report  # noqa: E402

#: normalised cumulative regret (Uniform = 100) on Mushroom, the rerun reported by Wen et al. (2020)
PUBLISHED = {"bootstrapped / ensemble": 13, "dropout": 15, "linfullpost": 97}


def extra(p):
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--agents", default="ts,greedy,egreedy1,egreedy5,uniform,linfullpost")
    p.add_argument("--checkpoints", default=str(REPO / "runs" / "mushroom_bandit_checkpoints"))
    p.add_argument("--no-report", action="store_true", help="only play (and checkpoint) the given seeds")
    p.add_argument("--partial", action="store_true",
                   help="report from the checkpoints as they are, every agent cut at the first step that all "
                        "(seed, agent) pairs have reached (for runs stopped before the end)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the inference spec, e.g. bandit.train_every=128")


def main():
    args = parse_args(__doc__.splitlines()[0], extra)
    clock = Clock()
    steps = 2000 if args.quick else args.steps
    from pyrobnn.spec import load_inference_spec

    ispec = load_inference_spec(REPO / "inference" / "bandit_mushroom.toml", args.set)
    if args.partial:
        run = _partial(args, steps)
        steps = run.settings["steps"]
    else:
        run = run_bandit(MushroomBandit(), args.agents.split(","), steps=steps, seeds=args.seeds,
                         model_spec=REPO / "models" / "bandit_mushroom.toml", inference_spec=ispec,
                         checkpoint_dir=Path(args.checkpoints) / ("quick" if args.quick else "full"), resume=True,
                         checkpoint_every=1000)
    if args.no_report:
        return
    stem = "mushroom_bandit"
    metrics = bandit_metrics(run)
    write_report(run, RESULTS / f"{stem}{'_quick' if args.quick else ''}_report")
    rows = [(name, fmt(m["cumulative_regret"], 0), fmt(m["cumulative_regret_se"], 0), fmt(m["normalised_regret"]),
             fmt(m["normalised_regret_se"]), fmt(m["steps_per_second"], 0), f"{100 * m['training_share']:.0f}%")
            for name, m in metrics["agents"].items()]
    best_eg = min((m["cumulative_regret"], n) for n, m in metrics["agents"].items() if n in ("greedy", "egreedy1",
                                                                                            "egreedy5"))
    ts = metrics["agents"].get("ts", {}).get("cumulative_regret")
    ratio = ts / best_eg[0] if ts is not None and best_eg[0] > 0 else float("nan")
    cut = (f" (the run was stopped before its {run.settings['planned_steps']} steps: every agent is cut at the "
           f"step all had reached; steps/s over what each played)") if run.settings.get("partial") else ""
    text = (f"Mushroom bandit, {steps} steps{cut}, seeds {args.seeds}; expected regret against the oracle; normalised: "
            f"Uniform = 100 (its expected regret on the same stream).\n\n"
            + markdown_table(["agent", "cumulative regret", "± s.e.", "normalised", "± s.e.", "steps/s",
                              "time in SVI"], rows)
            + f"\n\nBNN-TS / best ε-greedy ({best_eg[1]}): {ratio:.3f} (bar: ≤ 0.2).\n"
            + "Published normalised regret (Wen et al. 2020 rerun): "
            + ", ".join(f"{k} ≈ {v}" for k, v in PUBLISHED.items()) + ".\n"
            + f"Inference overrides: {args.set or 'none'}.\n")
    plot_regret(run, output_name(stem, args.quick, "png"), log=True,
                title=f"Mushroom bandit: cumulative regret (mean over seeds {args.seeds}, band ± 1 s.e.)")
    write_text(output_name(stem, args.quick, "md"), text)
    write_json(output_name(stem, args.quick, "json"),
               {"metrics": metrics, "ts_over_best_egreedy": ratio, "published": PUBLISHED, "overrides": args.set,
                "command": " ".join(sys.argv), "wall_seconds": clock.seconds, "machine": machine()})
    print(text)
    print(f"wall time: {clock}")


def _partial(args, steps):
    """The run as far as its checkpoints go: every (seed, agent) cut at the common step."""
    from pyrobnn.apps.bandits.runner import checkpointed_run

    folder = Path(args.checkpoints) / ("quick" if args.quick else "full")
    return checkpointed_run(MushroomBandit(), args.agents.split(","), steps=steps, seeds=args.seeds,
                            checkpoint_dir=folder)


if __name__ == "__main__":
    main()
