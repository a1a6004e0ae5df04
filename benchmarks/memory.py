"""Peak memory of a 784-400-400-10 Bayes-by-Backprop fit on the 60 000 Fashion-MNIST images.

Each peer runs in its own subprocess (so peaks don't mix) for ``--epochs`` epochs of batch 128
and reports its peak resident set size (``ru_maxrss``); the baseline subprocess only imports
torch and loads the data, so the difference is what training adds.

    python benchmarks/memory.py [--epochs 1] [--root /usr/share/datasets/fashion-mnist]

Peers: pyrobnn (BNN + MeanField + fit_svi) and the plain-PyTorch BBB of benchmarks/svi_step.py,
both with a Normal(0, 1) prior and initial σ 1e-3.
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(peer: str, epochs: int, root: str) -> dict:
    import torch

    import pyrobnn as pb

    sys.path.insert(0, str(HERE))
    d = pb.data.fashion_mnist(root, flatten=True)
    x, y = d.x_train, d.y_train
    t0 = time.perf_counter()
    if peer == "pyrobnn":
        net = pb.BNN([pb.Linear(784, 400), "relu", pb.Linear(400, 400), "relu", pb.Linear(400, 10)],
                     pb.Categorical(10), prior=pb.priors.Normal(0.0, 1.0))  # the prior BBB uses
        pb.fit_svi(net, pb.guides.MeanField(net, init_scale=1e-3), x, y, epochs=epochs, batch_size=128,
                   progress=False, device="cpu")
    elif peer == "bbb":
        from svi_step import HandBBB

        m = HandBBB([784, 400, 400, 10], init_scale=1e-3)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], 128):
                idx = perm[i:i + 128]
                loss = m.loss(x[idx], y[idx], x.shape[0], regression=False)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return {"peer": peer, "peak_rss_mib": peak_rss_mib(), "seconds": time.perf_counter() - t0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--child", choices=["baseline", "pyrobnn", "bbb"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.root)))
        return
    rows = []
    for peer in ("baseline", "pyrobnn", "bbb"):
        out = subprocess.run([sys.executable, __file__, "--child", peer, "--epochs", str(args.epochs),
                              "--root", args.root], check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]["peak_rss_mib"]
    print(f"784-400-400-10, Fashion-MNIST 60 000 x 784, batch 128, {args.epochs} epoch(s)")
    print(f"{'peer':<10}{'peak RSS MiB':>14}{'over baseline':>15}{'seconds':>10}")
    for r in rows:
        print(f"{r['peer']:<10}{r['peak_rss_mib']:>14.0f}{r['peak_rss_mib'] - base:>15.0f}{r['seconds']:>10.1f}")
    from pyrobnn.utils.files import atomic_write

    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2)))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
