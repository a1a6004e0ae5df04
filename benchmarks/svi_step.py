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
benchmarks/results/svi_whole_fit.json.  With ``--epochs`` of 10 or more each peer is also timed
on one-epoch fits (interleaved with the others), which splits its time into a cost per step,
(t_E − t_1) / (steps_E − steps_1), and a fixed cost per fit, t_1 − steps_1 · (cost per step)
(with fewer epochs the difference is too small for the split to stand out of the noise of a
shared machine).

``--breakdown`` times the parts of the tiny fit one by one (medians of many calls; the fixed
costs of a fit once each, the parts of a step next to the hand-written step's): where the time
of ``fit_svi`` goes beyond the hand-written loop's, in µs; results in
benchmarks/results/svi_fit_breakdown.json.
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


def warm_up():
    """The first optimiser of a process imports torch._dynamo (torch.optim's own one-time cost, many
    seconds): pay it once, untimed, before any peer is timed."""
    xw, yw = make_data([1, 20, 1], n=256)
    pyrobnn_fit([1, 20, 1], xw, yw, 1)
    bbb_fit([1, 20, 1], xw, yw, 1)


def whole_fit(args):
    warm_up()
    peers = {"pyrobnn": pyrobnn_fit, "bbb": bbb_fit, "bbb_flat": functools.partial(bbb_fit, flat=True)}
    split = args.epochs >= 10
    results = {"command": "python benchmarks/svi_step.py --whole-fit " + " ".join(argv_of(args)),
               "threads": torch.get_num_threads(), "load_average_before": load_average()}
    for name, (sizes, n) in WHOLE_FIT.items():
        x, y = make_data(sizes, n=n)
        wall = {k: [] for k in peers}
        cpu = {k: [] for k in peers}
        wall1 = {k: [] for k in peers}
        for _ in range(args.repeats):
            for k, fn in peers.items():  # interleaved, so the machine's load hits every peer alike
                t0, c0 = time.perf_counter(), time.process_time()
                fn(sizes, x, y, args.epochs)
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
                if split:  # a one-epoch fit: splits the time into fixed and per-step costs
                    t0 = time.perf_counter()
                    fn(sizes, x, y, 1)
                    wall1[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in wall.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        per_epoch = -(-n // 128)
        steps = args.epochs * per_epoch
        results[name] = {"sizes": sizes, "n": n, "epochs": args.epochs, "steps": steps, "median_s": med,
                         "median_cpu_s": med_cpu, "all_s": wall, "all_cpu_s": cpu,
                         "ratio_to_bbb": med["pyrobnn"] / med["bbb"], "ratio_to_bbb_flat": med["pyrobnn"] / med["bbb_flat"],
                         "cpu_ratio_to_bbb_flat": med_cpu["pyrobnn"] / med_cpu["bbb_flat"]}
        if split:
            med1 = {k: statistics.median(v) for k, v in wall1.items()}
            step_us = {k: (med[k] - med1[k]) / (steps - per_epoch) * 1e6 for k in peers}
            fixed_us = {k: med1[k] * 1e6 - per_epoch * step_us[k] for k in peers}
            results[name].update(one_epoch_median_s=med1, all_one_epoch_s=wall1, per_step_us=step_us,
                                 fixed_us=fixed_us, per_step_ratio_to_bbb_flat=step_us["pyrobnn"] / step_us["bbb_flat"])
        results[name]["load_average_after"] = load_average()
        print(f"{'-'.join(map(str, sizes))}, N={n}, batch 128, {steps} steps (median of {args.repeats}, "
              f"threads={torch.get_num_threads()}, load {results[name]['load_average_after']})")
        print(f"  {'peer':<10}{'wall s':>9}{'CPU s':>9}{'x bbb_flat':>12}{'CPU x':>8}"
              + (f"{'us/step':>9}{'fixed us':>10}" if split else ""))
        for k in peers:
            cols = f"{step_us[k]:>9.1f}{fixed_us[k]:>10.0f}" if split else ""
            print(f"  {k:<10}{med[k]:>9.3f}{med_cpu[k]:>9.3f}{med[k] / med['bbb_flat']:>12.3f}"
                  f"{med_cpu[k] / med_cpu['bbb_flat']:>8.3f}{cols}")
    out = Path(args.out if args.out != DEFAULT_OUT else Path(DEFAULT_OUT).with_name("svi_whole_fit.json"))
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
    print(f"written {out}")


def per_call_us(*fns, calls=2000, repeats=7, warmup=200) -> list[float]:
    """For each of ``fns``: the median over ``repeats`` of the mean time of ``calls`` calls, in µs
    (the functions take turns within each repeat, so the machine's load hits them alike)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            t.append((time.perf_counter() - t0) / calls * 1e6)
    return [statistics.median(t) for t in times]


def breakdown(args):
    """Where a tiny fit's time goes, part by part, next to the hand-written flat BBB loop's parts.
    Uses fit_svi's own helpers (pyrobnn.infer.svi's place and _Snapshot, the arguments module) so
    that each fixed cost is the one the fit pays."""
    from pyro import poutine
    from tqdm.auto import tqdm

    from pyrobnn.infer import arguments, svi
    from pyrobnn.infer.interrupt import StopOnInterrupt
    from pyrobnn.infer.posterior import GuidePosterior
    from pyrobnn.infer.torch_elbo import supports
    from pyrobnn.model.memory import estimate_svi
    from pyrobnn.model.priors import standard_normal_log_prob_sum
    from pyrobnn.utils.rng import seeded

    warm_up()
    sizes, n = WHOLE_FIT["tiny"]
    x, y = make_data(sizes, n=n)
    xb, yb, fixed_calls = x[:128], y[:128], 200

    def new_net():
        return pb.BNN(layers_for(sizes), likelihood_for(sizes), prior=pb.priors.Normal(0.0, 1.0))

    net = new_net()
    guide = pb.guides.MeanField(net)
    params = []

    def setup():
        with poutine.block():
            guide.setup(xb, yb, n_data=n)

    def scopes():
        with seeded(0), StopOnInterrupt(True):
            pass

    setup()
    params = [p for p in list(net.parameters()) + list(guide.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    sums = torch.zeros(3)
    fixed = {
        "BNN(...)": lambda: new_net(),
        "MeanField(net)": lambda: pb.guides.MeanField(net),
        "argument checks: prepare_data": lambda: arguments.prepare_data(net, xb, yb),
        "memory estimate": lambda: estimate_svi(**net.memory_facts(x.shape[1:]), n_data=n, batch_size=128,
                                                num_particles=1, guide="meanfield", optimizer="adam",
                                                data_bytes=arguments.data_bytes(x, y, torch.float32),
                                                dtype=torch.float32, device=torch.device("cpu")),
        "RNG scope + interrupt handler": scopes,
        "place (model and data on the device)": lambda: svi.place(net, x, y, "auto", None),
        "guide setup (Pyro trace of the model)": setup,
        "guide.to(device)": lambda: guide.to(device=torch.device("cpu")),
        "optimizer": lambda: torch.optim.Adam(params, lr=1e-3),
        "estimator choice (supports)": lambda: supports(net, guide),
        "progress bar (disabled)": lambda: tqdm(range(3), disable=True, total=3, mininterval=0.5),
        "posterior": lambda: GuidePosterior(model=net, method="svi", guide=guide, history=[], info={},
                                            example_args=((xb[:1], yb[:1]), {"n_data": n})),
        "per epoch: permutation + split": lambda: torch.randperm(n).split(128),
        "per epoch: window snapshot + finiteness read": lambda: (svi._Snapshot(net, guide, opt, 0, 0, sums),
                                                                  svi._all_finite([sums] + params)),
        "hand-written: HandBBBFlat + Adam": lambda: torch.optim.Adam(HandBBBFlat(sizes).parameters(), lr=1e-3),
        "hand-written per epoch: permutation": lambda: torch.randperm(n),
    }
    fixed_us = dict(zip(fixed, per_call_us(*fixed.values(), calls=fixed_calls, repeats=5, warmup=20)))

    # the parts of one step, each next to the hand-written flat step's counterpart
    from pyrobnn.infer.torch_elbo import TorchEstimator

    net = new_net()  # fresh ones: the set-up timed above replaced the guide's parameters
    guide = pb.guides.MeanField(net)
    setup()
    params = [p for p in list(net.parameters()) + list(guide.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    est = TorchEstimator("trace")
    kw = {"n_data": n}
    est.terms(net, guide, (xb, yb), kw)
    plan = est._plan
    m = HandBBBFlat(sizes)
    opt_flat = torch.optim.Adam(m.parameters(), lr=1e-3)
    est.terms(net, guide, (xb, yb), kw).loss.backward()  # gradients for the optimizers' steps
    m.loss(xb, yb, n, True).backward()
    perm = torch.randperm(n)
    batches = perm.split(128)
    site = plan.sites[0]
    loc, sd = guide.loc_scale(site)
    eps = torch.randn_like(loc)
    w = loc + eps * sd
    prior = net.site_prior(site)
    out = plan.network(xb, {site: w})
    sigma = F.softplus(m.rho)
    wf = m.mu + sigma * eps
    h = mlp(xb, [piece.view(shape) for piece, shape in zip(torch.split(wf, m.splits), m.shapes)])

    def pb_fb():
        est.terms(net, guide, (xb, yb), kw).loss.backward()

    def flat_fb():
        m.loss(xb, yb, n, True).backward()

    acc = torch.zeros(3).unbind()
    one = torch.ones(())

    def pb_sums():
        for a, v in zip(acc, (one.detach(), one.detach(), one.detach())):
            a += v

    def flat_sum():
        acc[0].add_(one.detach())

    eb_net = pb.BNN(layers_for(sizes), likelihood_for(sizes), prior=pb.priors.AdaptiveNormal())
    eb_guide = pb.guides.MeanField(eb_net)
    eb_guide.setup(xb, yb, n_data=n)
    pairs = {
        "minibatch (gather of 128 rows)": (lambda: (x.index_select(0, batches[3]), y.index_select(0, batches[3])),
                                           lambda: (x[perm[384:512]], y[perm[384:512]])),
        "guide (loc, scale) vs softplus": (lambda: guide.loc_scale(site), lambda: F.softplus(m.rho)),
        "draw w = loc + eps * scale": (lambda: loc + torch.randn_like(loc) * sd,
                                       lambda: m.mu + sigma * torch.randn_like(m.mu)),
        "log q(w)": (lambda: standard_normal_log_prob_sum(eps, sd), lambda: (-0.5 * eps**2 - torch.log(sigma)).sum()),
        "log p(w)": (lambda: prior.log_prob(w), lambda: (-0.5 * wf**2).sum()),
        "network": (lambda: plan.network(xb, {site: w}),
                    lambda: mlp(xb, [p.view(s) for p, s in zip(torch.split(wf, m.splits), m.shapes)])),
        "log-likelihood": (lambda: plan.likelihood.log_prob_sum(out, {}, yb), lambda: log_likelihood(h, yb, True)),
        "estimator forward (all of the above but the minibatch)": (
            lambda: est.terms(net, guide, (xb, yb), kw), lambda: m.loss(xb, yb, n, True)),
        "estimator forward + backward": (pb_fb, flat_fb),
        "optimizer step (Adam)": (opt.step, opt_flat.step),
        "gradients cleared": (lambda: [setattr(p, "grad", None) for p in params],
                              lambda: opt_flat.zero_grad(set_to_none=True)),
        "running sums (3 in place) vs 1": (pb_sums, flat_sum),
        "KL weight (Blundell, per step before; listed per epoch now)": (
            lambda: pb.infer.kl_weight("blundell", 3, 79), lambda: None),
        "empirical-Bayes update (adaptive prior only; not in the timed fit)": (
            lambda: eb_net.update_priors(eb_guide.loc_scale), lambda: None),
    }
    step_us = {}
    for k, (a, b) in pairs.items():
        step_us[k] = dict(zip(("pyrobnn", "bbb_flat"), per_call_us(a, b)))
    fwd = step_us["estimator forward (all of the above but the minibatch)"]
    fb = step_us.pop("estimator forward + backward")
    step_us["backward (forward + backward − forward)"] = {k: fb[k] - fwd[k] for k in fb}

    print(f"fixed costs of one tiny fit (µs, median per call; threads={torch.get_num_threads()})")
    for k, v in fixed_us.items():
        print(f"  {k:<52}{v:>9.1f}")
    print("per-step parts (µs)")
    print(f"  {'part':<66}{'pyrobnn':>9}{'bbb_flat':>10}{'gap':>8}")
    for k, v in step_us.items():
        print(f"  {k:<66}{v['pyrobnn']:>9.1f}{v['bbb_flat']:>10.1f}{v['pyrobnn'] - v['bbb_flat']:>8.1f}")
    results = {"command": "python benchmarks/svi_step.py --breakdown" + (f" --threads {args.threads}" if args.threads else ""),
               "threads": torch.get_num_threads(), "load_average_before": load_average(),
               "net": {"sizes": sizes, "n": n, "batch": 128}, "fixed_us": fixed_us, "per_step_us": step_us,
               "load_average_after": load_average()}
    out = Path(args.out if args.out != DEFAULT_OUT else Path(DEFAULT_OUT).with_name("svi_fit_breakdown.json"))
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2)))
    print(f"written {out}")


def argv_of(args) -> list[str]:
    return ([f"--epochs {args.epochs}", f"--repeats {args.repeats}"] + ([f"--threads {args.threads}"] if args.threads else [])
            + ([f"--out {args.out}"] if args.out != DEFAULT_OUT else []))


DEFAULT_OUT = str(Path(__file__).parent / "results" / "svi_step.json")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--whole-fit", action="store_true", help="time whole fits against a hand-written loop")
    ap.add_argument("--breakdown", action="store_true", help="time the parts of a tiny fit against the hand-written loop's")
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
    if args.breakdown:
        return breakdown(args)
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
