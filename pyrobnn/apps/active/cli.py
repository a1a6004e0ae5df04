"""``pyrobnn active-learning SPEC --out DIR``: run the loops of an active-learning spec and write
``metrics.json`` (settings, every round of every loop, the summary), ``accuracy_vs_labels.png``
and ``spec.toml`` (the settings used) into DIR, assembled under a temporary name and renamed into
place.

A spec is a TOML file whose ``[active_learning]`` table holds the fields of
:class:`~pyrobnn.apps.active.ActiveLearningSettings`, e.g.::

    [active_learning]
    model = "digits_classifier"
    inference = "svi_meanfield"
    acquisitions = ["bald", "random"]
    max_labels = 200
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ...spec import parse_override, to_toml
from ...spec.load import read_toml
from ...utils.files import atomic_write, replace_dir, usual_mode
from .loop import ActiveLearningSettings, plot_learning_curves, run_active_learning

__all__ = ["add_parser", "cmd_active_learning", "load_settings"]


def load_settings(path, overrides=()) -> ActiveLearningSettings:
    """The settings of an active-learning spec file with ``key=value`` overrides (the key with
    or without the ``active_learning.`` prefix)."""
    data, _ = read_toml(path)
    extra = sorted(set(data) - {"active_learning"})
    if extra:
        raise ValueError(f"{path}: unknown table(s) {extra}; an active-learning spec has one table [active_learning]")
    table = dict(data.get("active_learning", {}))
    for text in overrides:
        tokens, value = parse_override(text, "--set")
        if tokens and tokens[0] == "active_learning":
            tokens = tokens[1:]
        if len(tokens) != 1:
            raise ValueError(f"--set {text!r}: expected a field of [active_learning], e.g. max_labels=100")
        table[tokens[0]] = value
    return ActiveLearningSettings.from_mapping(table)


def _write_text(path: Path, text: str) -> None:
    def write(tmp):
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)


def cmd_active_learning(args) -> int:
    from ...diagnostics.metrics import to_json

    settings = load_settings(args.spec, args.set or [])
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise ValueError(f"--out {str(out)!r} exists and is not empty; pass --force to replace it")
    spec_text = to_toml({"active_learning": {k: v for k, v in settings.to_dict().items() if v is not None}})
    res = run_active_learning(settings, progress=not args.quiet and sys.stderr.isatty())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    _write_text(tmp / "metrics.json", to_json(res))
    _write_text(tmp / "spec.toml", spec_text)
    plot_learning_curves(res["summary"], tmp / "accuracy_vs_labels.png",
                         title=f"Active learning on {res['data']} ({settings.inference})")
    usual_mode(tmp, directory=True)
    replace_dir(tmp, out)
    if not args.quiet:
        for a, d in res["summary"]["by_acquisition"].items():
            print(f"{a:16s} final accuracy {d['accuracy_mean'][-1]:.4f} ± {d['accuracy_std'][-1]:.4f} "
                  f"at {d['labels'][-1]} labels; reaches random's final at {d.get('labels_to_random_final')} labels; "
                  f"{d['fit_seconds_per_round'] + d['score_seconds_per_round']:.2f} s/round")
    print(f"results: {out}")
    return 0


def add_parser(subparsers):
    """Register ``active-learning`` on the ``pyrobnn`` command's subparsers."""
    a = subparsers.add_parser("active-learning", help="pool-based active learning (BALD and others)",
                              description="Run the active-learning loops of SPEC (a TOML file with an "
                                          "[active_learning] table) and write metrics.json, "
                                          "accuracy_vs_labels.png and spec.toml into --out.")
    a.add_argument("spec", help="active-learning spec (TOML)")
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field of [active_learning], e.g. --set max_labels=100 (repeatable)")
    a.add_argument("--force", action="store_true", help="replace a non-empty --out")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar; print only the output path")
    a.set_defaults(func=cmd_active_learning)
    return a
