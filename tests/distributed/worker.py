"""One rank of a data-parallel SVI fit, started by tests/test_distributed.py (not a test itself).

Usage: RANK=r WORLD_SIZE=w MASTER_ADDR=... MASTER_PORT=... python worker.py OUT BATCH EPOCHS [--die-at-epoch E]

Every rank fits the same small network on the same data with ``distributed=True`` and writes
its guide's state and history to ``OUT.rank<r>.pt``.
"""

import argparse
import os
import sys

import torch

torch.set_num_threads(1)

import pyrobnn as pb  # noqa: E402


def problem():
    """The network, guide and data every equivalence run uses (float64, so rounding is small)."""
    d = pb.data.toy_curve(n_train=50, seed=3)
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.1),
                 prior=pb.priors.Normal(0.0, 1.0))
    x, y = d.x_train.double(), d.y_train.double()
    return net, pb.guides.MeanField(net, init_scale=0.05), x, y


def nuts_problem_fit(distributed: bool) -> dict:
    """Five NUTS chains of a tiny net (ranks hold blocks of 3 and 2): draws and statistics."""
    d = pb.data.toy_curve(n_train=10, seed=5)
    net = pb.BNN([pb.Linear(1, 3), "tanh", pb.Linear(3, 1)], pb.Gaussian(scale=0.2),
                 prior=pb.priors.Normal(0.0, 1.0))
    post = pb.fit_nuts(net, d.x_train, d.y_train, chains=5, warmup=15, num_samples=10, jit=False, seed=3,
                       progress=False, chain_method="sequential" if not distributed else None,
                       distributed=distributed, max_tree_depth=4)
    return {"samples": dict(post.samples), "stats": dict(post.sample_stats)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("batch", type=int)
    p.add_argument("epochs", type=int)
    p.add_argument("--die-at-epoch", type=int, default=0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    rank = int(os.environ["RANK"])
    if not a.checkpoint:  # the caller's own process group (else fit_svi creates one from the environment)
        torch.distributed.init_process_group("gloo")
    net, guide, x, y = problem()

    def callback(rec):
        if a.die_at_epoch and rec["epoch"] == a.die_at_epoch and rank == 1:
            os._exit(9)  # a rank that dies without a word, as after kill -9

    post = pb.fit_svi(net, guide, x, y, epochs=a.epochs, batch_size=a.batch, lr=0.01, seed=7, progress=False,
                      distributed=True, callback=callback, checkpoint=a.checkpoint, resume=a.resume,
                      checkpoint_every=1)
    x_new = torch.linspace(-1.0, 1.5, 11, dtype=torch.float64).unsqueeze(-1)  # 11 rows: blocks of 6 and 5
    pred = post.predict(x_new, num_samples=16, seed=3, distributed=not a.checkpoint)
    nuts = nuts_problem_fit(distributed=not a.checkpoint) if not a.checkpoint else None
    torch.save({"nuts": nuts, "guide": {k: v.detach().clone() for k, v in guide.state_dict().items()},
                "history": [(h["loss"], h["nll"], h["kl"]) for h in post.history], "info": post.info,
                "pred_mean": pred.mean, "pred_epistemic": pred.epistemic_var, "pred_draws": pred.mean_draws},
               f"{a.out}.rank{rank}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
