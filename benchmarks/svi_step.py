"""Time one SVI step against its peers, measured in the same process.

Peers, on the same net and minibatch (batch 128):
  pyrobnn       — BNN (packed weight site) + MeanField guide + Pyro's Trace_ELBO through elbo_terms
  pyrobnn_torch — the same step through the plain-PyTorch estimator of the same numbers
                  (pyrobnn.infer.torch_elbo), which is what fit_svi runs for a BNN with MeanField
  bbb           — plain-PyTorch Bayes by Backprop (Blundell et al. 2015), same Monte-Carlo KL, one
                  (mu, rho) pair per weight tensor
  bbb_flat      — the same with all weights in one flat (mu, rho) pair, as pyrobnn packs them (the
                  most efficient hand-written form: one softplus, one draw, two optimiser tensors)
  autonormal    — an idiomatic PyroModule (PyroSample per tensor) + Pyro's AutoNormal + pyro.infer.SVI
  torch         — a deterministic PyTorch net (lower bound)
and 8 ELBO particles, vectorised against sequential.

Prints medians over ``--repeats`` runs of ``--steps`` steps each and the ratios to the
hand-written BBB.  Usage: python benchmarks/svi_step.py [--steps 300] [--repeats 5] [--net small|large|both]
Results are also written to benchmarks/results/svi_step.json.

``--whole-fit`` times whole fits instead: ``pyrobnn.fit_svi`` (mean-field guide, "trace"
ELBO, default settings: finiteness checked, epoch history recorded) against the two hand-written
Bayes-by-Backprop loops doing the same work — a fresh permutation per epoch, minibatch indexing,
one step per minibatch, the epoch's mean loss recorded — with the same shapes, batch (128),
number of steps and loss value (the negative ELBO with its normalising constants), on ``tiny``
(1-20-1, N = 10 000) and ``large`` (784-400-400-10, N = 2048); peers interleaved, wall-clock and
CPU-time medians, the machine's load average recorded:
python benchmarks/svi_step.py --whole-fit [--epochs 3] [--repeats 5] [--threads 1]; results in
benchmarks/results/svi_whole_fit.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample

import pyrobnn as pb
from pyrobnn.utils.files import atomic_write
from pyrobnn.infer.elbo import elbo_terms, make_elbo
from pyrobnn.infer.torch_elbo import TorchEstimator

NETS = {"small": [8, 50, 50, 1], "large": [784, 400, 400, 10]}


def make_data(sizes, n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, sizes[0], generator=g)
    if sizes[-1] == 1:
        y = torch.randn(n, generator=g)
    else:
        y = torch.randint(0, sizes[-1], (n,), generator=g)
    return x, y


def likelihood_for(sizes):
    return pb.Gaussian(scale=1.0) if sizes[-1] == 1 else pb.Categorical(sizes[-1])


def layers_for(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(pb.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append("relu")
    return layers


# ---------------------------------------------------------------- peers
def pyrobnn_step(sizes, x, y, particles=1, vectorize=True, plain_torch=False):
    """One step of pyrobnn's SVI: through Pyro's Trace_ELBO, or (``plain_torch``) through the
    plain-PyTorch estimator of the same numbers that fit_svi takes for a BNN with MeanField."""
    net = pb.BNN(layers_for(sizes), likelihood_for(sizes), prior=pb.priors.Normal(0.0, 1.0))
    guide = pb.guides.MeanField(net)
    n = 60000
    guide.setup(x, y, n_data=n)
    opt = torch.optim.Adam(guide.parameters(), lr=1e-3)
    elbo = TorchEstimator("trace") if plain_torch else make_elbo("trace", particles, vectorize, max_plate_nesting=1)

    def step():
        with pyro.validation_enabled(False):
            terms = elbo_terms(elbo, net, guide, (x, y), {"n_data": n})
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        opt.step()

    return step


def log_likelihood(h, y, regression):
    """Σ_n log p(y_n | h_n): N(y; h, 1) (its constant as a Python number) or softmax(h)[y]."""
    if regression:
        return -0.5 * ((y - h[:, 0]) ** 2).sum() - h.shape[0] * LOG_SQRT_2PI
    return -F.cross_entropy(h, y, reduction="sum")


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mlp(x, ws):
    """The ReLU network with weights and biases ``ws`` = [W1, b1, W2, b2, ...]."""
    h = x
    for i in range(0, len(ws), 2):
        h = F.linear(h, ws[i], ws[i + 1])
        if i < len(ws) - 2:
            h = torch.relu(h)
    return h


class HandBBB(torch.nn.Module):
    """Plain-PyTorch Bayes by Backprop: one (mu, rho) pair per tensor, w = mu + softplus(rho) * eps,
    loss = log q(w) - log p(w) - (N/B) log p(y | x, w)  (Blundell et al. 2015, eq. 2): with the
    N(0, 1) prior the normalising constants of log q and log p cancel, so the value is the
    negative ELBO pyrobnn reports."""

    def __init__(self, sizes, init_scale=0.01):
        super().__init__()
        self.mus, self.rhos = torch.nn.ParameterList(), torch.nn.ParameterList()
        rho0 = float(torch.log(torch.expm1(torch.tensor(init_scale))))
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1 / a**0.5
            for shape in ((b, a), (b,)):
                self.mus.append(torch.nn.Parameter((torch.rand(shape) * 2 - 1) * bound))
                self.rhos.append(torch.nn.Parameter(torch.full(shape, rho0)))

    def loss(self, x, y, n, regression):
        log_q = log_p = 0.0
        ws = []
        for mu, rho in zip(self.mus, self.rhos):
            sigma = F.softplus(rho)
            eps = torch.randn_like(mu)
            w = mu + sigma * eps
            log_q = log_q + (-0.5 * eps**2 - torch.log(sigma)).sum()
            log_p = log_p + (-0.5 * w**2).sum()
            ws.append(w)
        return log_q - log_p - log_likelihood(mlp(x, ws), y, regression) * n / x.shape[0]


class HandBBBFlat(HandBBB):
    """:class:`HandBBB` with every weight in one flat (mu, rho) pair, as pyrobnn packs them: one
    softplus, one draw, one log q and one log p per step, and two tensors for the optimiser; the
    layers' weights are views of the flat sample."""

    def __init__(self, sizes, init_scale=0.01):
        super().__init__(sizes, init_scale)
        self.shapes = [tuple(m.shape) for m in self.mus]
        self.mu = torch.nn.Parameter(torch.cat([m.detach().reshape(-1) for m in self.mus]))
        self.rho = torch.nn.Parameter(torch.cat([r.detach().reshape(-1) for r in self.rhos]))
        self.splits = [m.numel() for m in self.mus]
        del self.mus, self.rhos

    def loss(self, x, y, n, regression):
        sigma = F.softplus(self.rho)
        eps = torch.randn_like(self.mu)
        w = self.mu + sigma * eps
        log_q = (-0.5 * eps**2 - torch.log(sigma)).sum()
        log_p = (-0.5 * w**2).sum()
        ws = [piece.view(shape) for piece, shape in zip(torch.split(w, self.splits), self.shapes)]
        return log_q - log_p - log_likelihood(mlp(x, ws), y, regression) * n / x.shape[0]


def bbb_step(sizes, x, y, flat=False):
    m = (HandBBBFlat if flat else HandBBB)(sizes)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    regression = sizes[-1] == 1

    def step():
        loss = m.loss(x, y, 60000, regression)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


class PyroMLP(PyroModule):
    """An idiomatic Pyro BNN: PyroSample priors on every tensor."""

    def __init__(self, sizes):
        super().__init__()
        self.sizes = sizes
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            lin = PyroModule[torch.nn.Linear](a, b)
            lin.weight = PyroSample(dist.Normal(0.0, 1.0).expand([b, a]).to_event(2))
            lin.bias = PyroSample(dist.Normal(0.0, 1.0).expand([b]).to_event(1))
            layers.append(lin)
        self.layers = PyroModule[torch.nn.ModuleList](layers)

    def forward(self, x, y=None, n_data=None):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        with pyro.plate("data", size=n_data or x.shape[0], subsample=torch.arange(x.shape[0])):
            if self.sizes[-1] == 1:
                return pyro.sample("obs", dist.Normal(h[:, 0], 1.0), obs=y)
            return pyro.sample("obs", dist.Categorical(logits=h), obs=y)


def autonormal_step(sizes, x, y):
    pyro.clear_param_store()
    model = PyroMLP(sizes)
    guide = AutoNormal(model, init_scale=0.01)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())

    def step():
        with pyro.validation_enabled(False):
            svi.step(x, y, 60000)

    return step


def torch_step(sizes, x, y):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    regression = sizes[-1] == 1

    def step():
        out = net(x)
        loss = F.mse_loss(out[:, 0], y) if regression else F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_step(step, steps, warmup=20):
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1e3  # ms


WHOLE_FIT = {"tiny": ([1, 20, 1], 10_000), "large": ([784, 400, 400, 10], 2048)}


def bbb_fit(sizes, x, y, epochs, batch=128, flat=False, init_scale=0.01):
    """The hand-written peer of a whole fit: Adam on :class:`HandBBB` (``flat``:
    :class:`HandBBBFlat`), a fresh permutation per epoch, one step per minibatch, and the epoch's
    mean loss recorded (summed on the device, read once per epoch), as fit_svi's history does.
    Returns the epoch losses."""
    m = (HandBBBFlat if flat else HandBBB)(sizes, init_scale=init_scale)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    n, regression = x.shape[0], sizes[-1] == 1
    history = []
    for _ in range(epochs):
        perm = torch.randperm(n)
        total = torch.zeros(())
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss = m.loss(x[idx], y[idx], n, regression)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        history.append(total.item() / -(-n // batch))
    return history


def pyrobnn_fit(sizes, x, y, epochs, batch=128):
    net = pb.BNN(layers_for(sizes), likelihood_for(sizes), prior=pb.priors.Normal(0.0, 1.0))
    pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=epochs, batch_size=batch, lr=1e-3, progress=False,
               check_memory=False)


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (other processes competing for the cores)."""
    return [round(v, 2) for v in os.getloadavg()]


def whole_fit(args):
    # the first optimiser of a process imports torch._dynamo (torch.optim's own one-time cost, many
    # seconds): pay it once, untimed, before any peer is timed
    xw, yw = make_data([1, 20, 1], n=256)
    pyrobnn_fit([1, 20, 1], xw, yw, 1)
    bbb_fit([1, 20, 1], xw, yw, 1)
    peers = {"pyrobnn": pyrobnn_fit, "bbb": bbb_fit, "bbb_flat": functools.partial(bbb_fit, flat=True)}
    results = {"command": "python benchmarks/svi_step.py --whole-fit " + " ".join(argv_of(args)),
               "threads": torch.get_num_threads(), "load_average_before": load_average()}
    for name, (sizes, n) in WHOLE_FIT.items():
        x, y = make_data(sizes, n=n)
        wall = {k: [] for k in peers}
        cpu = {k: [] for k in peers}
        for _ in range(args.repeats):
            for k, fn in peers.items():  # interleaved, so the machine's load hits every peer alike
                t0, c0 = time.perf_counter(), time.process_time()
                fn(sizes, x, y, args.epochs)
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
        med = {k: statistics.median(v) for k, v in wall.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        steps = args.epochs * -(-n // 128)
        results[name] = {"sizes": sizes, "n": n, "epochs": args.epochs, "steps": steps, "median_s": med,
                         "median_cpu_s": med_cpu, "all_s": wall, "all_cpu_s": cpu,
                         "ratio_to_bbb": med["pyrobnn"] / med["bbb"], "ratio_to_bbb_flat": med["pyrobnn"] / med["bbb_flat"],
                         "cpu_ratio_to_bbb_flat": med_cpu["pyrobnn"] / med_cpu["bbb_flat"],
                         "load_average_after": load_average()}
        print(f"{'-'.join(map(str, sizes))}, N={n}, batch 128, {steps} steps (median of {args.repeats}, "
              f"threads={torch.get_num_threads()}, load {results[name]['load_average_after']})")
        print(f"  {'peer':<10}{'wall s':>9}{'CPU s':>9}{'x bbb_flat':>12}{'CPU x':>8}")
        for k in peers:
            print(f"  {k:<10}{med[k]:>9.3f}{med_cpu[k]:>9.3f}{med[k] / med['bbb_flat']:>12.3f}"
                  f"{med_cpu[k] / med_cpu['bbb_flat']:>8.3f}")
    out = Path(args.out if args.out != DEFAULT_OUT else Path(DEFAULT_OUT).with_name("svi_whole_fit.json"))
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
    print(f"written {out}")


def argv_of(args) -> list[str]:
    return [f"--epochs {args.epochs}", f"--repeats {args.repeats}"] + ([f"--threads {args.threads}"] if args.threads else [])


DEFAULT_OUT = str(Path(__file__).parent / "results" / "svi_step.json")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--whole-fit", action="store_true", help="time whole fits against a hand-written loop")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of each whole fit (default 3)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--net", choices=["small", "large", "both"], default="both")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.whole_fit:
        return whole_fit(args)
    results = {}
    nets = ["small", "large"] if args.net == "both" else [args.net]
    for name in nets:
        sizes = NETS[name]
        x, y = make_data(sizes, n=128)
        peers = {
            "pyrobnn": pyrobnn_step(sizes, x, y),
            "pyrobnn_torch": pyrobnn_step(sizes, x, y, plain_torch=True),
            "bbb": bbb_step(sizes, x, y),
            "bbb_flat": bbb_step(sizes, x, y, flat=True),
            "autonormal": autonormal_step(sizes, x, y),
            "torch": torch_step(sizes, x, y),
            "pyrobnn_8vec": pyrobnn_step(sizes, x, y, particles=8, vectorize=True),
            "pyrobnn_8seq": pyrobnn_step(sizes, x, y, particles=8, vectorize=False),
        }
        times = {k: [] for k in peers}
        for _ in range(args.repeats):
            for k, step in peers.items():  # interleaved, so drift hits every peer alike
                steps = args.steps if not k.endswith(("8vec", "8seq")) else max(20, args.steps // 4)
                times[k].append(time_step(step, steps))
        med = {k: statistics.median(v) for k, v in times.items()}
        results[name] = {"sizes": sizes, "median_ms": med, "all_ms": times,
                         "ratio_to_bbb": {k: med[k] / med["bbb"] for k in med},
                         "ratio_to_bbb_flat": {k: med[k] / med["bbb_flat"] for k in med},
                         "load_average_after": load_average()}
        print(f"\n{'-'.join(map(str, sizes))} net, batch 128, median of {args.repeats} x {args.steps} steps "
              f"(threads={torch.get_num_threads()})")
        print(f"{'peer':<14}{'ms/step':>10}{'x BBB':>8}{'x flat':>8}")
        for k in peers:
            print(f"{k:<14}{med[k]:>10.3f}{med[k] / med['bbb']:>8.2f}{med[k] / med['bbb_flat']:>8.2f}")
        print(f"8 particles: vectorised / sequential = {med['pyrobnn_8vec'] / med['pyrobnn_8seq']:.2f}")
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
