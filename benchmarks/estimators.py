"""The three minibatch ELBO estimators of a mean-field guide, side by side: the plain one (one
weight sample per minibatch, Pyro's ``Trace_ELBO``), local reparameterisation and Flipout
(:mod:`pyrobnn.infer.local_reparam`).

For each net (8-50-50-1 regression, 784-400-400-10 classifier; batch 128, random data of those
shapes, a guide with σ = ``--init-scale``), prints

* the mean and Monte-Carlo standard error of the NLL term over ``--draws`` draws (the three must
  agree: same expectation),
* the total variance of the guide's gradient over the draws, Σ_params Var[∂NLL/∂θ], and its
  ratio to the plain estimator's,
* the median time of one training step (forward, backward, Adam), over ``--repeats`` runs of
  ``--steps`` steps, and its ratio to the plain estimator's.

Usage: python benchmarks/estimators.py [--draws 200] [--steps 100] [--repeats 3]
Writes benchmarks/results/estimators.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

import pyrobnn as pb
from pyrobnn.infer.elbo import elbo_terms, make_elbo
from pyrobnn.utils.files import atomic_write

NETS = {"small": [8, 50, 50, 1], "large": [784, 400, 400, 10]}
KINDS = ("trace", "local_reparam", "flipout")


def build(sizes, init_scale, n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, sizes[0], generator=g)
    y = torch.randn(n, generator=g) if sizes[-1] == 1 else torch.randint(0, sizes[-1], (n,), generator=g)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(pb.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append("relu")
    lik = pb.Gaussian(scale=1.0) if sizes[-1] == 1 else pb.Categorical(sizes[-1])
    net = pb.BNN(layers, lik, prior=pb.priors.Normal(0.0, 1.0))
    guide = pb.guides.MeanField(net, init_scale=init_scale)
    guide.setup(x, y, n_data=60000)
    return net, guide, x, y


def moments(kind, net, guide, x, y, draws):
    est = make_elbo(kind)
    nll, grads = [], []
    for _ in range(draws):
        t = elbo_terms(est, net, guide, (x, y), {"n_data": 60000})
        guide.zero_grad(set_to_none=True)
        t.nll.backward()
        nll.append(float(t.nll))
        grads.append(torch.cat([p.grad.reshape(-1) for p in guide.parameters()]))
    g = torch.stack(grads)
    return statistics.fmean(nll), statistics.stdev(nll) / math.sqrt(draws), float(g.var(0).sum())


def step_ms(kind, net, guide, x, y, steps):
    est = make_elbo(kind)
    opt = torch.optim.Adam(guide.parameters(), lr=1e-3)

    def step():
        t = elbo_terms(est, net, guide, (x, y), {"n_data": 60000})
        opt.zero_grad(set_to_none=True)
        t.loss.backward()
        opt.step()

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--init-scale", type=float, default=0.05)
    ap.add_argument("--net", choices=["small", "large", "both"], default="both")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "estimators.json"))
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    results = {"command": "python benchmarks/estimators.py " + " ".join(argv or []), "threads": torch.get_num_threads(),
               "nets": {}}
    for name in (["small", "large"] if a.net == "both" else [a.net]):
        sizes = NETS[name]
        net, guide, x, y = build(sizes, a.init_scale)
        rows = {k: dict(zip(("nll_mean", "nll_se", "grad_var"), moments(k, net, guide, x, y, a.draws))) for k in KINDS}
        times = {k: [] for k in KINDS}
        for _ in range(a.repeats):
            for k in KINDS:  # interleaved, so drift hits every estimator alike
                times[k].append(step_ms(k, *build(sizes, a.init_scale), a.steps))
        for k in KINDS:
            rows[k]["step_ms_median"] = statistics.median(times[k])
            rows[k]["step_ms_runs"] = times[k]
            rows[k]["grad_var_ratio"] = rows[k]["grad_var"] / rows["trace"]["grad_var"]
            rows[k]["step_time_ratio"] = rows[k]["step_ms_median"] / rows["trace"]["step_ms_median"]
        results["nets"][name] = {"sizes": sizes, "rows": rows}
        print(f"\n{'-'.join(map(str, sizes))}, batch 128, σ0 = {a.init_scale}, {a.draws} draws, "
              f"median of {a.repeats} x {a.steps} steps (threads={torch.get_num_threads()})")
        print(f"{'estimator':<15}{'NLL mean':>14}{'± s.e.':>10}{'grad var':>12}{'x plain':>9}{'ms/step':>9}{'x plain':>9}")
        for k, r in rows.items():
            print(f"{k:<15}{r['nll_mean']:>14.1f}{r['nll_se']:>10.1f}{r['grad_var']:>12.4g}{r['grad_var_ratio']:>9.3f}"
                  f"{r['step_ms_median']:>9.2f}{r['step_time_ratio']:>9.2f}")
    out = Path(a.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2), encoding="utf-8"))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
