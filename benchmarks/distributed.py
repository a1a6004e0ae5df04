"""Data-parallel SVI: steps per second with 1, 2 and 4 CPU processes (gloo on loopback).

Strong scaling at a fixed global batch (``--batch``, split over the ranks): every process
count runs the *same* optimisation (``fit_svi(distributed=True)`` equals the single process
with the global batch on the same rows, tests/test_distributed.py), so the time to reach any
fixed ELBO scales exactly as the time per step, and the efficiency below is that of both.

Nets: ``large`` — 784-400-400-10 classifier on Fashion-MNIST-shaped data (28×28 inputs, 10
classes; the images when ``--fashion-mnist DIR`` holds them, else random inputs of the same
shape, which cost the same per step); ``uci`` — 8-50-1 regression on UCI concrete split 0.

Each configuration starts its processes with torchrun's environment variables, runs
``--warmup`` + ``--steps`` steps, and rank 0 times the steps after the warm-up (the epochs'
own clocks, so process start-up and the process group's set-up are excluded).  Medians over
``--repeats``.  Usage::

    python benchmarks/distributed.py [--procs 1,2,4] [--net large,uci] [--steps 60] [--repeats 3]

Writes benchmarks/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(net_name: str, batch: int, steps_per_epoch: int, epochs: int, out: str, fmnist: str | None) -> None:
    import torch

    torch.set_num_threads(1)
    import pyrobnn as pb

    world = int(os.environ.get("WORLD_SIZE", "1"))
    n = batch * steps_per_epoch
    if net_name == "large":
        if fmnist:
            d = pb.data.fashion_mnist(fmnist, flatten=True, n_train=n, n_test=0)
            x, y = d.x_train, d.y_train
        else:
            g = torch.Generator().manual_seed(0)
            x, y = torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)
        net = pb.BNN([pb.Linear(784, 400), "relu", pb.Linear(400, 400), "relu", pb.Linear(400, 10)],
                     pb.Categorical(10), prior=pb.priors.Normal(0.0, 1.0))
    else:
        d = pb.data.uci(Path(os.environ.get("PYROBNN_DATA", ROOT.parent / "shared" / "data")) / "uci", "concrete", split=0)
        reps = -(-n // d.x_train.shape[0])
        x, y = d.x_train.repeat(reps, 1)[:n], d.y_train.repeat(reps, *[1] * (d.y_train.dim() - 1))[:n]
        net = pb.BNN([pb.Linear(8, 50), "relu", pb.Linear(50, 1)], pb.Gaussian(scale=0.5),
                     prior=pb.priors.Normal(0.0, 1.0))
    post = pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=epochs, batch_size=batch // world, seed=0,
                      progress=False, shuffle=True, distributed=world > 1, check_memory=False)
    if int(os.environ.get("RANK", "0")) == 0:
        timed = post.history[1:]  # the first epoch is the warm-up
        secs = sum(h["seconds"] for h in timed)
        Path(out).write_text(json.dumps({"steps_per_s": steps_per_epoch * len(timed) / secs,
                                         "final_loss": post.history[-1]["loss"]}))


def run(procs: int, net: str, batch: int, steps: int, warmup: int, fmnist: str | None) -> dict:
    out = Path(f"/tmp/pyrobnn-dist-bench-{os.getpid()}.json")
    port = _port()
    epochs = 1 + steps // warmup
    cmd = [sys.executable, __file__, "--worker", net, str(batch), str(warmup), str(epochs), str(out),
           fmnist or ""]
    ps = []
    for r in range(procs):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(procs),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        ps.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for p in ps:
        _, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"a rank failed: {err[-2000:]}")
    res = json.loads(out.read_text())
    out.unlink()
    return res


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        a = sys.argv[2:]
        worker(a[0], int(a[1]), int(a[2]), int(a[3]), a[4], a[5] or None)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", default="1,2,4")
    p.add_argument("--net", default="large,uci")
    p.add_argument("--batch", type=int, default=128, help="global minibatch (default 128)")
    p.add_argument("--steps", type=int, default=60, help="timed steps (default 60)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first; also the steps per epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fashion-mnist", default=None, help="folder with the Fashion-MNIST IDX files (optional)")
    p.add_argument("--out", default=str(HERE / "results" / "distributed.json"))
    a = p.parse_args()
    procs = [int(v) for v in a.procs.split(",")]
    rows = []
    for net in a.net.split(","):
        base = None
        for n in procs:
            rates = [run(n, net, a.batch, a.steps, a.warmup, a.fashion_mnist)["steps_per_s"] for _ in range(a.repeats)]
            med = statistics.median(rates)
            base = base or med if n == procs[0] else base
            row = {"net": net, "processes": n, "global_batch": a.batch, "steps_per_s_median": med,
                   "steps_per_s_runs": rates, "speedup_vs_1": med / base, "efficiency": med / base / n}
            rows.append(row)
            print(f"{net:6s} {n} proc  {med:8.2f} steps/s  speed-up {row['speedup_vs_1']:.2f}×  "
                  f"efficiency {row['efficiency']:.0%}", flush=True)
    result = {"command": "python " + " ".join(sys.argv), "cpu_count": os.cpu_count(),
              "created": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}
    from pyrobnn.utils.files import atomic_write

    atomic_write(Path(a.out), lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2), encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
