"""The ``pyrobnn bandit`` command: play agents on the Mushroom or wheel bandit and write
``metrics.json``, the cumulative-regret plots and an HTML page into ``--out``.

``pyrobnn.cli`` registers it with :func:`add_parser`; errors are raised as ``ValueError`` /
``FileNotFoundError`` / ``SpecError`` naming the option, and the command line prints them on
one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "cmd_bandit", "DEFAULT_STEPS", "DEFAULT_AGENTS"]

DEFAULT_STEPS = {"mushroom": 50_000, "wheel": 2000}
DEFAULT_AGENTS = "ts,greedy,egreedy1,egreedy5,uniform,linfullpost"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bandit`` subcommand to ``subparsers`` (an argparse sub-parser action)."""
    b = subparsers.add_parser(
        "bandit", help="Thompson-sampling contextual bandits: Mushroom or the wheel, against baselines",
        description="Play BNN Thompson sampling and baselines on the same stream of contexts and rewards "
                    "(common random numbers) and write metrics.json (cumulative and normalised regret, Uniform "
                    "= 100, steps per second), regret.png, regret_log.png and index.html into --out.  Networks "
                    "come from models/bandit_<env>.toml, guide, SVI and [bandit] settings from "
                    "inference/bandit_<env>.toml.")
    b.add_argument("environment", choices=("mushroom", "wheel"), help="the bandit")
    b.add_argument("--delta", type=float, help="the wheel's exploration parameter δ in (0, 1) (default 0.5)")
    b.add_argument("--steps", type=int, help="steps per seed (default: mushroom 50000, wheel 2000)")
    b.add_argument("--agents", default=DEFAULT_AGENTS,
                   help="comma-separated agents: ts, greedy, egreedy1, egreedy5, uniform, linfullpost, neurallinear "
                        f"(default {DEFAULT_AGENTS})")
    b.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..K-1 (default 1)")
    b.add_argument("--out", required=True, help="output directory")
    b.add_argument("--model", help="model spec of the agents' network (default models/bandit_<env>.toml)")
    b.add_argument("--inference", help="inference spec (default inference/bandit_<env>.toml)")
    b.add_argument("--data", help="the Mushroom file or its folder (default $PYROBNN_DATA/mushroom/mushroom.csv)")
    b.add_argument("--checkpoint-every", type=int, default=1000,
                   help="steps between checkpoints in OUT/checkpoints (default 1000)")
    b.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/checkpoints")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars; print only the page's path")
    b.set_defaults(func=cmd_bandit)
    return b


def _named(option: str, exc: Exception) -> ValueError:
    text = str(exc)
    return ValueError(text if text.startswith(option) else f"{option}: {text}")


def cmd_bandit(args) -> int:
    """Handler of ``pyrobnn bandit``."""
    from ...spec import load_inference_spec, load_model_spec
    from .environments import MushroomBandit, WheelBandit
    from .report import write_report
    from .runner import check_agents, run_bandit

    env_name = args.environment
    for option, value in (("--steps", args.steps), ("--seeds", args.seeds), ("--checkpoint-every", args.checkpoint_every)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value}")
    if env_name == "mushroom" and args.delta is not None:
        raise ValueError("--delta is a setting of the wheel bandit; the mushroom bandit has none")
    if env_name == "wheel" and args.data is not None:
        raise ValueError("--data is the Mushroom file; the wheel bandit draws its contexts itself")
    try:
        agents = check_agents(args.agents)
    except ValueError as exc:
        raise _named("--agents", exc) from None
    if env_name == "wheel":
        try:
            env = WheelBandit(0.5 if args.delta is None else args.delta)
        except ValueError as exc:
            raise _named("--delta", exc) from None
    else:
        env = MushroomBandit(args.data)
    mspec = load_model_spec(args.model or f"bandit_{env_name}")
    ispec = load_inference_spec(args.inference or f"bandit_{env_name}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    steps = args.steps or DEFAULT_STEPS[env_name]
    run = run_bandit(env, agents, steps=steps, seeds=args.seeds, model_spec=mspec, inference_spec=ispec,
                     checkpoint_dir=out / "checkpoints", checkpoint_every=args.checkpoint_every, resume=args.resume,
                     progress=None if not args.quiet else False)
    metrics = write_report(run, out)
    if not args.quiet:
        for name, m in metrics["agents"].items():
            print(f"{name:>13}: cumulative regret {m['cumulative_regret']:.1f}, normalised {m['normalised_regret']:.2f}"
                  f" (Uniform = 100), {m['steps_per_second']:.0f} steps/s", file=sys.stderr)
    print(f"report: {out / 'index.html'}")
    return 0
