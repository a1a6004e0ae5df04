"""CPU time of the compiled leapfrog step of pyrobnn's NUTS, one step per call or k steps
unrolled into one compiled graph, for a number of chains (1-10-1 tanh BNN, 50 points of the toy
curve, float32, one thread).

This measures where a leapfrog step's time goes: if the cost per call were mostly the fixed
cost of calling the compiled code, unrolling k steps into one graph would divide it by about k;
if it grows with the number of chains, it is the arithmetic.  Reports microseconds of process
CPU time per step (not wall time: the machine may be shared) after a warm-up of 20 calls.

Usage: python benchmarks/nuts_leapfrog.py [--chains 1,4,32] [--unroll 1,8] [--steps 4000]
"""

from __future__ import annotations

import argparse
import time

import pyro
import torch

import pyrobnn as pb
from pyrobnn.infer.mcmc import PotentialEnergy, _compile, _initial_values, _layout
from pyrobnn.infer.mcmc.integrator import _leapfrog_fn, _value_and_grad_functional


def unrolled(leapfrog, k):
    """k leapfrog steps in one function: the k states (k, C, 3, D) and potentials (k, C)."""
    def run(state, step, inv_mass):
        xs, us = [], []
        for _ in range(k):
            state, u = leapfrog(state, step, inv_mass)
            xs.append(state)
            us.append(u)
        return torch.stack(xs), torch.stack(us)

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chains", default="1,4,32")
    ap.add_argument("--unroll", default="1,8")
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = pb.data.toy_curve(n_train=50)
    net = pb.BNN([pb.Linear(1, 10), "tanh", pb.Linear(10, 1)], pb.Gaussian(0.1), prior=pb.priors.Normal(0.0, 1.0))
    x, y = data.x_train, data.y_train
    for chains in (int(c) for c in args.chains.split(",")):
        sites, fns = _layout(_initial_values(net, x, y, chains, "model", 0)[0])
        pot = PotentialEnergy(net, x, y, sites, fns)
        leapfrog = _leapfrog_fn(_value_and_grad_functional(pot))
        d = pot.dim
        for k in (int(u) for u in args.unroll.split(",")):
            example = (torch.zeros(chains, 3, d), torch.full((chains, 1), 1e-3), torch.ones(chains, d))
            t0 = time.perf_counter()
            with pyro.validation_enabled(False):
                fn = _compile(unrolled(leapfrog, k), example)
            compile_s = time.perf_counter() - t0
            state = torch.randn(chains, 3, d, generator=torch.Generator().manual_seed(0)) * 0.3
            for _ in range(20):
                fn(state, example[1], example[2])
            n = max(1, args.steps // k)
            t0 = time.process_time()
            for _ in range(n):
                fn(state, example[1], example[2])
            us = 1e6 * (time.process_time() - t0) / (n * k)
            print(f"chains {chains:>4}  unroll {k:>2}: compile {compile_s:5.1f} s, {us:7.2f} µs CPU per step "
                  f"({us / chains:.2f} per chain-step)", flush=True)


if __name__ == "__main__":
    main()
