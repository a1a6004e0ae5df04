"""Fuzz the data loaders and the spec loader with many generated cases per property.

Every property of ``tests/test_fuzz.py`` (CSV files, NPZ archives, spec dicts, spec TOML
texts, ``--set`` overrides) is run ``--examples`` times with Hypothesis' generation phase
only (no shrinking), and the outcomes are counted: cases that loaded, cases that raised the
library's own error type for that property, and any other exception, with the first case
that raised it.  Exit status 1 if any other exception occurred.

    python benchmarks/fuzz.py --examples 10000
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyrobnn


def _properties():
    spec = importlib.util.spec_from_file_location("pyrobnn_fuzz_cases", ROOT / "tests" / "test_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PROPERTIES


def run_property(name, strategy, runner, allowed, examples: int, random_seed: int):
    """Run ``runner`` on ``examples`` generated cases; returns (counts, first case per other exception, seconds)."""
    counts: collections.Counter = collections.Counter()
    first: dict[str, tuple[str, str]] = {}
    folder = tempfile.mkdtemp(prefix=f"fuzz_{name}_")

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def body(case):
        counts["run"] += 1
        try:
            runner(case, folder)
        except allowed as e:
            counts[type(e).__name__] += 1
        except Exception as e:  # counted and reported below: the point of the benchmark
            key = f"{type(e).__module__}.{type(e).__name__}"
            counts[key] += 1
            first.setdefault(key, (repr(case)[:600], f"{e}"[:400]))
        else:
            counts["ok"] += 1

    start = time.perf_counter()
    body()
    return counts, first, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="cases per property (default 10000)")
    parser.add_argument("--only", nargs="*", help="run only these properties")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    properties = _properties()
    names = args.only or list(properties)
    header = f"{'property':<14} {'cases':>7} {'ok':>7} {'lib error':>18} {'other':>7} {'seconds':>8}"
    lines = [f"fuzz: {args.examples} cases per property (hypothesis generation only), seed {args.seed}", header,
             "-" * len(header)]
    print(lines[0]); print(header); print(lines[2]); sys.stdout.flush()
    others = []
    for name in names:
        strategy, runner, allowed, _ = properties[name]
        counts, first, seconds = run_property(name, strategy, runner, allowed, args.examples, args.seed)
        n_other = sum(v for k, v in counts.items() if k not in ("run", "ok", allowed.__name__))
        lib = f"{allowed.__name__} {counts[allowed.__name__]}"
        line = f"{name:<14} {counts['run']:>7} {counts['ok']:>7} {lib:>18} {n_other:>7} {seconds:>8.1f}"
        print(line); sys.stdout.flush()
        lines.append(line)
        for key, (case, message) in first.items():
            others.append(f"{name}: {key} x{counts[key]}\n  first case: {case}\n  message: {message}")
    if others:
        print("\nother exceptions:")
        print("\n".join(others))
    else:
        print("\nno exception other than the library's own error types")
    return 1 if others else 0


if __name__ == "__main__":
    sys.exit(main())
