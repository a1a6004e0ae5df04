"""Compile time of the NUTS step: a first fit on a machine, a new network, and a later fit of the
same network.

Every measurement is a fresh Python process that fits NUTS (4 chains, a few iterations) to a
1-H-1 tanh net on N points and prints ``info["seconds_compile"]`` (tracing, code generation, the
C++ compiler, loading and the self-check of the compiled step):

- ``cold``: an empty TorchInductor cache directory (a new machine: this also pays Inductor's
  one-time checks of the CPU's vector instructions);
- ``miss``: a new graph in a warm directory (other data shape, so nothing of it is cached);
- ``hit``: the same graph again in that directory, with other data of the same shape (the
  FX-graph cache serves the compiled step, skipping code generation and the C++ compiler).

``--root`` imports pyrobnn from another checkout, to measure an older version with the same
script (where the compiled step bypassed the FX-graph cache, ``hit`` redoes code generation and
only the C++ compiler's output, kept by the hash of its source, is reused).

    python benchmarks/nuts_compile.py [--repeats 3] [--hidden 5] [--n 40] [--root PATH]

Prints medians over ``--repeats`` and the ratios to ``cold``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, torch
import pyrobnn as pb
hidden, n, shift = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
x = torch.linspace(-1, 1, n).unsqueeze(-1)
y = torch.sin(3 * x + shift).squeeze(-1)
net = pb.BNN([pb.Linear(1, hidden), "tanh", pb.Linear(hidden, 1)], pb.Gaussian(0.1))
post = pb.fit_nuts(net, x, y, num_samples=5, warmup=5, chains=4, max_tree_depth=4, progress=False, seed=0)
print(json.dumps({"compiled": post.info["compiled"], "seconds_compile": post.info["seconds_compile"]}))
"""

ROOT = Path(__file__).resolve().parents[1]


def _fit(root: Path, cache: str, hidden: int, n: int, shift: float) -> float:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", CHILD, str(hidden), str(n), str(shift)], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if not out["compiled"]:
        raise SystemExit("the step was not compiled (no C++ compiler?): nothing to measure")
    return out["seconds_compile"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=5)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout to import pyrobnn from (default: this one)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    times = {"cold": [], "miss": [], "hit": []}
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            times["cold"].append(_fit(root, cache, args.hidden, args.n, 0.0))
            times["miss"].append(_fit(root, cache, args.hidden, args.n + 1 + r, 0.0))  # a shape not compiled before
            times["hit"].append(_fit(root, cache, args.hidden, args.n, 0.5))  # the first graph, other data
        print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    base = statistics.median(times["cold"])
    print(f"\npyrobnn from {root}\nNUTS step compile time, 1-{args.hidden}-1 tanh on {args.n} points, 4 chains; "
          f"median of {args.repeats} (seconds, and × cold)")
    for k, v in times.items():
        m = statistics.median(v)
        print(f"  {k:<9} {m:6.2f} s  {m / base:5.2f}×")


if __name__ == "__main__":
    main()
