"""Data-parallel SVI on ``torch.distributed`` (processes started by ``torchrun``).

Every rank holds the whole data set and the same model, guide and optimiser; each step is
split by rows.  With W ranks and per-rank batch B, step i takes the global minibatch D_i of
G = W·B rows from one permutation that every rank draws from the same seeded generator, and
rank r evaluates its shard D_i^r (``torch.tensor_split`` of D_i, so shards differ by at most
one row).  Because every rank holds the same parameters and the same random generator state,
every rank draws the *same* weight sample w ~ q, and

    rank r:  ℓ_r = −(N/|D_i|) Σ_{n ∈ D_i^r} log p(y_n | x_n, w)   (+ π_i · KL[q || p] on rank 0 only)

    Σ_r ∇ℓ_r = ∇[ π_i KL[q || p] − (N/|D_i|) Σ_{n ∈ D_i} log p(y_n | x_n, w) ] = ∇F_i,

the gradient of the minibatch ELBO of a single process with batch G on the same rows
(:mod:`pyrobnn.infer.elbo`).  The KL is counted once, the likelihood is scaled by the global
data size N over the global batch size, and one ``all_reduce`` (sum) per step carries every
gradient and the step's statistics (loss, NLL, KL, and whether any rank was interrupted) in one
flat buffer, so all ranks take the same optimiser step and stop at the same step.  Checkpoints
are read and written by rank 0 only; their state is broadcast to the other ranks, so a run
resumes on any number of ranks.

The process group is the one the caller initialised, or one :func:`join` creates from
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``): backend
``nccl`` for CUDA data, ``gloo`` on the CPU, with a timeout after which a rank that waits for
a dead peer raises instead of hanging.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .checkpoint import tensor_digest

__all__ = ["PeerLost", "Group", "launched", "join", "leave", "shard", "GradientReducer", "broadcast_object", "all_gather_object",
           "check_same_data", "DEFAULT_TIMEOUT_S"]

#: seconds a collective waits for the other ranks before raising (a dead or stuck peer)
DEFAULT_TIMEOUT_S = 300.0

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class PeerLost(RuntimeError):
    """A collective failed: another rank exited, was killed, or did not answer within the
    process group's timeout."""


def _collective(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, a collective; its failure becomes one :class:`PeerLost` naming this
    rank and the operation instead of the backend's trace."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:  # torch.distributed.DistBackendError and gloo/nccl errors
        first = " ".join(str(exc).split())[:300]
        raise PeerLost(f"rank {dist.get_rank()} lost contact with the other ranks during {what}: another rank "
                       f"exited, was killed or did not answer within the timeout (see its log); a run with a "
                       f"checkpoint continues from it with resume ({first})") from None


@dataclass(frozen=True)
class Group:
    """This process's place in the default process group."""

    rank: int
    world_size: int
    backend: str
    created: bool  # the group was initialised by :func:`join` (and :func:`leave` destroys it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank that reads and writes files and shows progress."""
        return self.rank == 0


def launched() -> bool:
    """True in a process started by ``torchrun`` (or any launcher setting its environment) with
    more than one process in the job."""
    return all(k in os.environ for k in _ENV) and int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """The default process group: the caller's if already initialised, else one initialised here
    from torchrun's environment — ``nccl`` for a CUDA ``device`` (each rank on the GPU
    ``LOCAL_RANK``), ``gloo`` otherwise — whose collectives raise after ``timeout_s`` seconds."""
    if not dist.is_available():
        raise RuntimeError("distributed=True needs a PyTorch build with torch.distributed")
    if dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()), False)
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(f"distributed=True needs an initialised torch.distributed process group or the environment "
                         f"torchrun sets (missing: {', '.join(missing)}); start the script with "
                         f"'torchrun --nproc-per-node N script.py' or call torch.distributed.init_process_group first")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda" and device.index is None:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=_dt.timedelta(seconds=float(timeout_s)))
    return Group(dist.get_rank(), dist.get_world_size(), backend, True)


def leave(group: Group) -> None:
    """Destroy the process group if :func:`join` created it."""
    if group.created and dist.is_initialized():
        dist.destroy_process_group()


def shard(rows: torch.Tensor, group: Group) -> tuple[torch.Tensor, float]:
    """This rank's share of a global minibatch ``rows`` and its fraction of the rows.

    A rank whose share is empty (a last minibatch with fewer rows than ranks) gets the first row
    with fraction 0: it still draws the step's weight sample (keeping its generator in step with
    the others) but adds nothing to the likelihood."""
    mine = torch.tensor_split(rows, group.world_size)[group.rank]
    if mine.numel() == 0:
        return rows[:1], 0.0
    return mine, mine.numel() / rows.numel()


class GradientReducer:
    """Sums the gradients of ``params`` and a vector of step statistics over all ranks in one
    ``all_reduce`` of one flat buffer (fewer, larger messages than one call per tensor)."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = params
        self.sizes = [p.numel() for p in params]

    def __call__(self, stats: torch.Tensor) -> torch.Tensor:
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                 for p in self.params]
        flat = torch.cat(parts + [stats.to(dtype=parts[0].dtype if parts else stats.dtype)])
        _collective("the gradient all_reduce", dist.all_reduce, flat, op=dist.ReduceOp.SUM)
        for p, g in zip(self.params, torch.split(flat[:-stats.numel()], self.sizes)):
            if p.grad is None:
                p.grad = g.view_as(p).clone()
            else:
                p.grad.copy_(g.view_as(p))
        return flat[-stats.numel():].to(stats.dtype)


def broadcast_object(obj, group: Group):
    """Rank 0's ``obj`` on every rank (pickled by ``torch.distributed``; use it for plain data
    and tensors only — every rank runs the same trusted program)."""
    box = [obj if group.is_main else None]
    _collective("a broadcast from rank 0", dist.broadcast_object_list, box, src=0)
    return box[0]


def all_gather_object(obj, group: Group) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    out = [None] * group.world_size
    _collective("a gather of every rank's results", dist.all_gather_object, out, obj)
    return out


def broadcast_state(modules, group: Group) -> None:
    """Copy rank 0's parameters and buffers of ``modules`` to every rank, in place."""
    with torch.no_grad():
        for m in modules:
            for t in list(m.parameters()) + list(m.buffers()):
                _collective("the broadcast of rank 0's parameters", dist.broadcast, t.data, src=0)


def shared_seed(seed: int | None, group: Group) -> int:
    """``seed``, or (for ``None``) a fresh seed drawn by rank 0 from the operating system and
    sent to every rank, so all ranks draw the same weight samples; the callers' generators
    are not touched."""
    return int(broadcast_object(secrets.randbits(62) if seed is None else int(seed), group))


def check_same_data(x: torch.Tensor, y: torch.Tensor, group: Group) -> None:
    """Raise ``ValueError`` unless every rank holds the same (x, y): each rank shards the one
    global permutation of the rows, so the data must be the same everywhere."""
    digests = [None] * group.world_size
    _collective("the check that all ranks hold the same data", dist.all_gather_object, digests,
                tensor_digest(x, y))
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise ValueError(f"distributed SVI needs the same x and y on every rank (each rank takes its shard of every "
                         f"minibatch); rank(s) {differ} hold other data than rank 0")
