"""How much memory a network and a fit need, and the check that refuses what cannot fit.

Every estimate is a :class:`MemoryEstimate`: bytes per item (weights, guide parameters,
optimizer state, activations, stored draws, ...) and their total.  The estimates count the
large arrays only — those whose size grows with the number of weights, data points, particles,
chains or draws — with the copies the implementation keeps (a value and its gradient, Adam's
two moments, NUTS's trajectory buffer); Python objects, CUDA context and allocator slack come
on top, so the estimate is a lower bound of what a process needs.

:func:`check_fits` compares an estimate with :func:`available_memory` (``MemAvailable`` of
``/proc/meminfo`` for the CPU, ``torch.cuda.mem_get_info`` for a GPU) and raises
:class:`InsufficientMemoryError` *before* anything large is allocated.  Every caller offers a
switch to skip the check (``check_memory=False`` in Python, ``model.check_memory = false`` in a
model spec); the message says which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "InsufficientMemoryError", "MemoryEstimate", "available_memory", "check_fits", "format_bytes",
    "estimate_model", "estimate_svi", "estimate_nuts", "GUIDE_VECTORS", "OPTIMIZER_STATES", "OVERRIDE_HINT",
]

#: how to skip the check, for messages (callers add their own first)
OVERRIDE_HINT = ("pass check_memory=False (Python), or set model.check_memory = false in the model spec "
                 "(command line: --set model.check_memory=false)")

#: weight-sized parameter vectors of each guide family (auto_lowrank adds ``rank`` more)
GUIDE_VECTORS = {"meanfield": 2, "ard": 2, "delta": 1, "weight_noise": 1, "auto_normal": 2, "auto_lowrank": 2}
#: optimizer state vectors per parameter
OPTIMIZER_STATES = {"adam": 2, "adadelta": 2, "sgd": 0}


class InsufficientMemoryError(ValueError, MemoryError):
    """A fit or a network would need more memory than is available.  A ``ValueError`` (the
    settings are what is wrong) and a ``MemoryError``; ``estimate`` and ``available`` are kept."""

    def __init__(self, message: str, estimate: "MemoryEstimate | None" = None, available: int | None = None):
        super().__init__(message)
        self.estimate, self.available = estimate, available


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a network or a fit needs, per item (``parts``) and in total, on ``device``."""

    what: str
    device: str = "cpu"
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        """``"12.0 GiB for an SVI fit on cpu (guide parameters 4.0 GiB, ...)"``, largest items first."""
        items = sorted(((k, v) for k, v in self.parts.items() if v > 0), key=lambda kv: -kv[1])
        listing = ", ".join(f"{k} {format_bytes(v)}" for k, v in items)
        return f"{format_bytes(self.total)} for {self.what} on {self.device}" + (f" ({listing})" if listing else "")

    def __str__(self) -> str:
        return self.describe()


def _device(device) -> torch.device:
    return torch.device("cpu") if device is None or device == "auto" else torch.device(device)


def available_memory(device="cpu") -> int | None:
    """Bytes that can still be allocated on ``device``: free GPU memory for CUDA
    (``torch.cuda.mem_get_info``), ``MemAvailable`` of ``/proc/meminfo`` for the CPU (the
    physical memory, ``SC_PHYS_PAGES × SC_PAGE_SIZE``, where that file is missing); ``None``
    where it cannot be told (other devices)."""
    dev = _device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type != "cpu":
        return None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():  # Linux
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(estimate: MemoryEstimate, available: int | None = None, hint: str = OVERRIDE_HINT) -> None:
    """Raise :class:`InsufficientMemoryError` if ``estimate.total`` exceeds ``available`` bytes
    (default: :func:`available_memory` of the estimate's device; nothing is checked when that is
    unknown).  The message states the need, its largest items, what is available and ``hint``
    (how to skip the check)."""
    if available is None:
        available = available_memory(estimate.device)
    if available is None or estimate.total <= available:
        return
    raise InsufficientMemoryError(
        f"not enough memory: {estimate.describe()}, but only {format_bytes(available)} is available on "
        f"{estimate.device}. Use a smaller network or fewer particles/chains/draws, or, to try anyway, {hint}.",
        estimate, available)


def _bytes(dtype) -> int:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    return torch.empty((), dtype=dtype).element_size()


def estimate_model(num_weights: int, num_parameters: int = 0, per_weight_hyperparameters: int = 0, dtype=None,
                   device="cpu", what: str = "the network") -> MemoryEstimate:
    """The least any fit of a network needs: its ``num_weights`` random weights three times (a
    value, its gradient and one more vector of that size — a momentum, an optimizer moment or
    a prior's temporaries), its ``num_parameters`` deterministic parameters twice (value and
    gradient) and the prior's ``per_weight_hyperparameters`` (ARD)."""
    b = _bytes(dtype)
    return MemoryEstimate(what, str(_device(device)), {
        "weights (value, gradient, one working copy)": 3 * num_weights * b,
        "deterministic parameters and gradients": 2 * num_parameters * b,
        "per-weight prior hyperparameters": per_weight_hyperparameters * b,
    })


def estimate_svi(num_weights: int, *, n_data: int, batch_size: int, activations_per_example: int = 0,
                 num_parameters: int = 0, per_weight_hyperparameters: int = 0, num_particles: int = 1,
                 guide: str = "meanfield", rank: int = 0, optimizer: str = "adam", data_bytes: int = 0,
                 export_draws: int = 0, dtype=None, device="cpu") -> MemoryEstimate:
    """Memory of an SVI fit (:func:`pyrobnn.fit_svi`): the guide's parameters, their gradients
    and the optimizer's state; per step ``num_particles`` weight draws (value, noise and
    log-density temporaries) and the activations of a minibatch of ``min(batch_size, n_data)``
    examples for every particle (forward values and their gradients); the data (``data_bytes``,
    as placed on the device); optionally ``export_draws`` posterior draws kept for prediction or
    export (0: the fit alone)."""
    b = _bytes(dtype)
    vectors = GUIDE_VECTORS.get(guide, 2) + (int(rank) if guide == "auto_lowrank" else 0)
    states = OPTIMIZER_STATES.get(optimizer, 2)
    batch = min(int(batch_size), int(n_data))
    guide_numel = vectors * num_weights
    return MemoryEstimate("an SVI fit", str(_device(device)), {
        "guide parameters": guide_numel * b,
        "gradients": (guide_numel + num_parameters) * b,
        "optimizer state": states * (guide_numel + num_parameters) * b,
        "deterministic parameters": num_parameters * b,
        "per-weight prior hyperparameters": per_weight_hyperparameters * b,
        "weight draws per step": 3 * num_particles * num_weights * b,
        "activations per step": 2 * num_particles * batch * activations_per_example * b,
        "data": int(data_bytes),
        "exported draws": export_draws * num_weights * b,
    })


def estimate_nuts(num_weights: int, *, n_data: int, chains: int, num_samples: int, max_tree_depth: int = 10,
                  kernel: str = "nuts", activations_per_example: int = 0, num_parameters: int = 0,
                  per_weight_hyperparameters: int = 0, data_bytes: int = 0, trajectory_buffer: bool = True,
                  dtype=None, device="cpu") -> MemoryEstimate:
    """Memory of NUTS/HMC (:func:`pyrobnn.infer.mcmc.fit_nuts`), full batch: the stored draws,
    ``chains × num_samples × num_weights`` (and their copy in constrained space); per chain
    the state (position, momentum, gradient) and the warmup's mass-matrix statistics; for NUTS
    with ``trajectory_buffer`` (the torch backend) the buffer of the last doubling of a tree
    of depth ``max_tree_depth`` — 2^(depth−1) states of (position, momentum, gradient) per
    chain, the worst case, reached when trajectories are long; the activations of all
    ``n_data`` examples for every chain; the data."""
    b = _bytes(dtype)
    depth = int(max_tree_depth)
    states = (2 ** (depth - 1) if kernel == "nuts" and trajectory_buffer else 0) * 3 * chains * num_weights
    return MemoryEstimate(f"{kernel.upper()} sampling", str(_device(device)), {
        "stored draws (and their constrained copy)": 2 * chains * num_samples * num_weights * b,
        "chain states and adaptation": 7 * chains * num_weights * b,
        "NUTS trajectory buffer (worst case)": states * b,
        "activations per gradient": 2 * chains * int(n_data) * activations_per_example * b,
        "deterministic parameters": num_parameters * b,
        "per-weight prior hyperparameters": per_weight_hyperparameters * b,
        "data": int(data_bytes),
    })

