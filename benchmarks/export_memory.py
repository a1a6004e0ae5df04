"""Peak memory of exporting and reporting a 784-400-400-10 classifier BNN (the path of ``pyrobnn fit``).

Each variant runs in its own subprocess: build the net (Fashion-MNIST shapes, random data:
``--n-train`` training and ``--n-test`` test points, 10 classes), set up a MeanField guide
and take ``--steps`` SVI steps, record the peak RSS (``VmHWM``) as the baseline, then run
``to_datatree(post, x_test, y_test, train=(x_train, y_train), num_samples=S)`` and
``report(tree, dir)`` as ``cmd_fit`` does, and report the peak RSS over that baseline.

    python benchmarks/export_memory.py [--draws 500] [--n-test 10000] [--n-train 2000]
                                       [--variants chunked,one_chunk]

Variants: ``chunked`` (the default export: chunks of draws streamed into a netCDF store),
``one_chunk`` (``chunk_draws`` = all draws: the whole export in memory, as before chunking).
Writes benchmarks/results/export_memory.txt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(variant: str, draws: int, n_train: int, n_test: int, steps: int) -> dict:
    import torch

    import pyrobnn as pb
    from pyrobnn.diagnostics import report, to_datatree

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    x_tr, y_tr = torch.rand(n_train, 784, generator=g), torch.randint(0, 10, (n_train,), generator=g)
    x_te, y_te = torch.rand(n_test, 784, generator=g), torch.randint(0, 10, (n_test,), generator=g)
    net = pb.BNN([pb.Linear(784, 400), "relu", pb.Linear(400, 400), "relu", pb.Linear(400, 10)],
                 pb.Categorical(10), prior=pb.priors.Normal(0.0, 1.0))
    guide = pb.guides.MeanField(net, init_scale=1e-3)
    post = pb.fit_svi(net, guide, x_tr[:128 * steps], y_tr[:128 * steps], epochs=1, batch_size=128,
                      progress=False, device="cpu")
    import h5netcdf  # noqa: F401 - the file layer's imports belong to the baseline
    import matplotlib.pyplot  # noqa: F401
    base = hwm_mib()
    t0 = time.perf_counter()
    chunk = None if variant == "chunked" else draws
    with tempfile.TemporaryDirectory() as tmp:
        tree = to_datatree(post, x_te, y_te, train=(x_tr, y_tr), num_samples=draws, seed=0, chunk_draws=chunk)
        t_export = time.perf_counter() - t0
        peak_export = hwm_mib()
        report(tree, Path(tmp) / "report")
        size = (Path(tmp) / "report" / "posterior.nc").stat().st_size / 2**20
        metrics = json.loads((Path(tmp) / "report" / "metrics.json").read_text())
    return {"variant": variant, "weights": net.num_weights, "draws": draws, "base_mib": base,
            "export_over_base_mib": peak_export - base, "peak_over_base_mib": hwm_mib() - base,
            "export_s": t_export, "total_s": time.perf_counter() - t0, "nc_mib": size,
            "accuracy": metrics["predictive"].get("accuracy")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--variants", default="chunked,one_chunk")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "export_memory.txt")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.draws, args.n_train, args.n_test, args.steps)))
        return
    lines = [f"784-400-400-10 classifier, {args.draws} SVI draws, {args.n_train} training / {args.n_test} test "
             f"points (random data), to_datatree + report; peak RSS (VmHWM) over the fitted process",
             f"{'variant':<11}{'base MiB':>10}{'export +MiB':>13}{'report +MiB':>13}{'export s':>10}"
             f"{'total s':>9}{'.nc MiB':>9}"]
    for v in args.variants.split(","):
        proc = subprocess.run([sys.executable, __file__, "--child", v, "--draws", str(args.draws), "--n-train",
                               str(args.n_train), "--n-test", str(args.n_test), "--steps", str(args.steps)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
            lines.append(f"{v:<11} failed with exit status {proc.returncode}: {tail[0]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        lines.append(f"{v:<11}{r['base_mib']:>10.0f}{r['export_over_base_mib']:>13.0f}{r['peak_over_base_mib']:>13.0f}"
                     f"{r['export_s']:>10.1f}{r['total_s']:>9.1f}{r['nc_mib']:>9.0f}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
