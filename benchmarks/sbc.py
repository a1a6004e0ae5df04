"""Simulation-based calibration (Talts et al. 2018) of pyrobnn's NUTS on Bayesian linear
regression (a one-layer BNN: 2 inputs and a bias, Normal(0, 1) prior, Gaussian noise 0.5,
10 fixed inputs, float64): ``--replications`` data sets drawn from the prior predictive, one
NUTS chain each (``--warmup`` + ``--samples`` draws, every ``--thin``-th kept: L = samples/thin − 1
draws), the rank of the true parameter among them, binned into 10 bins and tested for uniformity
with Pearson's χ² (9 degrees of freedom) at family-wise level 0.01 (Bonferroni over the 3
parameters).  The model, the simulation and the test are those of tests/test_mcmc_sbc.py.

Usage: python benchmarks/sbc.py [--replications 200] [--warmup 60] [--samples 100] [--thin 1]
Writes benchmarks/results/sbc.json atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyrobnn

from pyrobnn.utils.files import atomic_write  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--thin", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sbc.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))  # the model, simulation and test live with the slow test
    import test_mcmc_sbc as cases
    t0 = time.perf_counter()

    def summary(ranks, num_draws):
        res = cases.uniformity(ranks, num_draws)
        return {"settings": vars(args), "parameters": ["weight 0", "weight 1", "bias"],
                "replications_done": int(ranks.shape[0]), "counts": res["counts"].tolist(),
                "chi2": res["chi2"].tolist(), "p_value": res["p_value"].tolist(), "df": res["df"],
                "num_draws": num_draws, "level": res["level"], "level_per_parameter": res["level_per_parameter"],
                "calibrated": bool((res["p_value"] > res["level_per_parameter"]).all()),
                "seconds": time.perf_counter() - t0, "ranks": ranks.tolist()}

    def save(out):
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(out, indent=1)))

    def progress(ranks, num_draws):  # the partial result is saved as it grows
        if len(ranks) % 10 == 0:
            save(summary(ranks, num_draws))
            print(f"  {len(ranks)} replications, {time.perf_counter() - t0:.0f} s", flush=True)

    ranks, num_draws = cases.nuts_sbc_ranks(args.replications, args.warmup, args.samples, args.thin, args.seed,
                                            progress)
    out = summary(ranks, num_draws)
    res = cases.uniformity(ranks, num_draws)
    calibrated = out["calibrated"]
    print(f"SBC: {args.replications} replications, L = {num_draws} draws, {res['df'] + 1} bins")
    for j, name in enumerate(out["parameters"]):
        print(f"  {name}: counts {out['counts'][j]}  chi2 {out['chi2'][j]:.2f}  p {out['p_value'][j]:.3f}")
    print(f"uniform at family-wise level {res['level']} (per parameter {res['level_per_parameter']:.4f}): "
          f"{calibrated}")
    save(out)
    print(f"written {args.out}")
    return out


if __name__ == "__main__":
    main()
