"""Riquelme, Tucker & Snoek (2018): the wheel bandit, δ ∈ {0.5, 0.7, 0.9, 0.95, 0.99}, 2000 contexts;
normalised cumulative regret (Uniform = 100) of BNN Thompson sampling and the baselines next to
NeuralLinear's published 0.95 / 1.60 / 4.65 / 9.56 / 49.63.

Specs: models/bandit_wheel.toml (7-100-100-1 ReLU) and inference/bandit_wheel.toml.  Each δ's
(seed, agent) pairs are checkpointed, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, Clock, fmt, machine, markdown_table, output_name, parse_args, write_json, write_text  # noqa: E402,E501

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyrobnn.apps.bandits import WheelBandit, run_bandit  # noqa: E402
from pyrobnn.apps.bandits.report import bandit_metrics, write_report  # noqa: E402

#: NeuralLinear's normalised cumulative regret (Uniform = 100), Riquelme et al. (2018), table 3
PUBLISHED_NEURALLINEAR = {0.5: 0.95, 0.7: 1.60, 0.9: 4.65, 0.95: 9.56, 0.99: 49.63}


def extra(p):
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--deltas", type=float, nargs="+", default=list(PUBLISHED_NEURALLINEAR))
    p.add_argument("--agents", default="ts,greedy,egreedy1,egreedy5,uniform,linfullpost,neurallinear")
    p.add_argument("--checkpoints", default=str(REPO / "runs" / "wheel_bandit_checkpoints"))
    p.add_argument("--no-report", action="store_true", help="only play (and checkpoint) the given seeds")
    p.add_argument("--partial", action="store_true",
                   help="report from the checkpoints as they are (each δ cut at the step all its (seed, agent) "
                        "pairs have reached; a δ with a pair not started is left out)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the inference spec, e.g. bandit.train_every=50")


def main():
    args = parse_args(__doc__.splitlines()[0], extra)
    clock = Clock()
    steps = 200 if args.quick else args.steps
    deltas = [0.5, 0.95] if args.quick else args.deltas
    from pyrobnn.spec import load_inference_spec

    ispec = load_inference_spec(REPO / "inference" / "bandit_wheel.toml", args.set)
    stem = "wheel_bandit"
    per_delta = {}
    cuts = {}
    for delta in deltas:
        folder = Path(args.checkpoints) / ("quick" if args.quick else "full") / f"delta{delta}"
        if args.partial:
            from pyrobnn.apps.bandits.runner import checkpointed_run

            try:
                run = checkpointed_run(WheelBandit(delta), args.agents.split(","), steps=steps, seeds=args.seeds,
                                       checkpoint_dir=folder)
            except FileNotFoundError as exc:
                print(f"δ = {delta}: left out ({exc})")
                continue
            cuts[delta] = run.settings["steps"]
        else:
            run = run_bandit(WheelBandit(delta), args.agents.split(","), steps=steps, seeds=args.seeds,
                             model_spec=REPO / "models" / "bandit_wheel.toml", inference_spec=ispec,
                             checkpoint_dir=folder, resume=True, checkpoint_every=500)
        if not args.no_report:
            per_delta[delta] = bandit_metrics(run)
            write_report(run, RESULTS / f"{stem}{'_quick' if args.quick else ''}_report" / f"delta{delta}")
    if args.no_report:
        return
    deltas = [d for d in deltas if d in per_delta]
    agents = list(next(iter(per_delta.values()))["agents"])
    rows = []
    for name in agents:
        cells = [name]
        for delta in deltas:
            m = per_delta[delta]["agents"][name]
            cells.append(f"{fmt(m['normalised_regret'])} ± {fmt(m['normalised_regret_se'])}")
        rows.append(cells)
    rows.append(["NeuralLinear (published)"] + [fmt(PUBLISHED_NEURALLINEAR.get(d)) for d in deltas])
    speed = [(name, fmt(np.mean([per_delta[d]["agents"][name]["steps_per_second"] for d in deltas]), 0),
              f"{100 * np.mean([per_delta[d]['agents'][name]['training_share'] for d in deltas]):.0f}%")
             for name in agents]
    text = (f"Wheel bandit, {steps} contexts, seeds {args.seeds}; normalised cumulative regret (Uniform = 100: the "
            f"uniform policy's expected regret on the same stream), mean ± s.e. over seeds.\n\n"
            + markdown_table(["agent"] + [f"δ = {d}" for d in deltas], rows)
            + "\n\nSpeed of the online loop (mean over δ):\n\n"
            + markdown_table(["agent", "steps/s", "time in SVI"], speed)
            + f"\n\nInference overrides: {args.set or 'none'}.\n"
            + ("".join(f"δ = {d}: stopped before the end, every agent cut at step {t} of {steps}.\n"
                       for d, t in cuts.items() if t < steps)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in agents:
        ax.errorbar(deltas, [per_delta[d]["agents"][name]["normalised_regret"] for d in deltas],
                    yerr=[per_delta[d]["agents"][name]["normalised_regret_se"] for d in deltas], marker="o",
                    label=name, capsize=3)
    ax.plot(deltas, [PUBLISHED_NEURALLINEAR.get(d, np.nan) for d in deltas], "k--", marker="x",
            label="NeuralLinear (published)")
    ax.set_yscale("log")
    ax.set_xlabel("δ")
    ax.set_ylabel("normalised cumulative regret (Uniform = 100)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    from _common import save_figure

    save_figure(fig, output_name(stem, args.quick, "png"))
    write_text(output_name(stem, args.quick, "md"), text)
    write_json(output_name(stem, args.quick, "json"),
               {"metrics": {str(d): m for d, m in per_delta.items()}, "steps_reached": {str(d): t for d, t in cuts.items()},
                "published_neurallinear": PUBLISHED_NEURALLINEAR,
                "overrides": args.set, "command": " ".join(sys.argv), "wall_seconds": clock.seconds,
                "machine": machine()})
    print(text)
    print(f"wall time: {clock}")


if __name__ == "__main__":
    main()
