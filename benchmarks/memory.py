"""Peak memory of a 784-400-400-10 Bayes-by-Backprop fit on the 60 000 Fashion-MNIST images.

Each peer runs in its own subprocess (so peaks don't mix) for ``--epochs`` epochs of batch 128
and reports its peak resident set size (``ru_maxrss``); the baseline subprocess only imports
torch and loads the data, so the difference is what training adds.

    python benchmarks/memory.py [--epochs 1] [--root /usr/share/datasets/fashion-mnist] [--synthetic]

Peers: pyrobnn (BNN + MeanField + fit_svi with its defaults, including the copy of the parameters
and optimizer state that its windowed finiteness check keeps) and the two hand-written BBB loops
of benchmarks/svi_step.py (``bbb_fit``: one (mu, rho) pair per tensor, or one flat pair), all with
a Normal(0, 1) prior and initial σ 1e-3.  ``--synthetic`` uses random data of the same shapes
where the data set is not installed (peak memory depends on the shapes only).
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(peer: str, epochs: int, root: str, synthetic: bool) -> dict:
    import torch

    import pyrobnn as pb

    sys.path.insert(0, str(HERE))
    if synthetic:  # the shapes and dtypes of Fashion-MNIST's training set; peak memory does not depend on values
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(60000, 784, generator=g), torch.randint(0, 10, (60000,), generator=g)
    else:
        d = pb.data.fashion_mnist(root, flatten=True)
        x, y = d.x_train, d.y_train
    t0 = time.perf_counter()
    if peer == "pyrobnn":
        net = pb.BNN([pb.Linear(784, 400), "relu", pb.Linear(400, 400), "relu", pb.Linear(400, 10)],
                     pb.Categorical(10), prior=pb.priors.Normal(0.0, 1.0))  # the prior BBB uses
        pb.fit_svi(net, pb.guides.MeanField(net, init_scale=1e-3), x, y, epochs=epochs, batch_size=128,
                   progress=False, device="cpu")
    elif peer in ("bbb", "bbb_flat"):
        from svi_step import bbb_fit

        bbb_fit([784, 400, 400, 10], x, y, epochs, flat=peer == "bbb_flat", init_scale=1e-3)
    return {"peer": peer, "peak_rss_mib": peak_rss_mib(), "seconds": time.perf_counter() - t0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--synthetic", action="store_true",
                    help="random data of Fashion-MNIST's shapes (60 000 x 784 float32, 10 classes) where the data set "
                         "is not installed")
    ap.add_argument("--child", choices=["baseline", "pyrobnn", "bbb", "bbb_flat"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.root, args.synthetic)))
        return
    rows = []
    for peer in ("baseline", "pyrobnn", "bbb", "bbb_flat"):
        out = subprocess.run([sys.executable, __file__, "--child", peer, "--epochs", str(args.epochs),
                              "--root", args.root] + (["--synthetic"] if args.synthetic else []),
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]["peak_rss_mib"]
    added = {r["peer"]: r["peak_rss_mib"] - base for r in rows}
    data = "random data of Fashion-MNIST's shapes" if args.synthetic else "Fashion-MNIST"
    print(f"784-400-400-10, {data} 60 000 x 784, batch 128, {args.epochs} epoch(s)")
    print(f"{'peer':<10}{'peak RSS MiB':>14}{'over baseline':>15}{'seconds':>10}")
    for r in rows:
        print(f"{r['peer']:<10}{r['peak_rss_mib']:>14.0f}{r['peak_rss_mib'] - base:>15.0f}{r['seconds']:>10.1f}")
    from pyrobnn.utils.files import atomic_write

    for peer in ("bbb", "bbb_flat"):
        print(f"pyrobnn adds {added['pyrobnn'] / added[peer]:.2f}x what {peer} adds")
    result = {"command": "python benchmarks/memory.py" + f" --epochs {args.epochs}" +
              (" --synthetic" if args.synthetic else ""), "data": data, "rows": rows,
              "added_over_baseline_mib": added,
              "ratio_added": {peer: added["pyrobnn"] / added[peer] for peer in ("bbb", "bbb_flat")},
              "load_average": [round(v, 2) for v in os.getloadavg()]}
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
