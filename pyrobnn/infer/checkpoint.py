"""Atomic training checkpoints.

An SVI checkpoint holds the model's and the guide's state, the optimiser's state, every random
number generator that training draws from, the epoch and the history, so that a run killed
and resumed with the same seed ends with the same parameters as an uninterrupted one (the
NUTS/HMC sampler's checkpoint is assembled in :mod:`pyrobnn.infer.mcmc` from the helpers here).
Files are written to a temporary name and renamed into place
(:func:`pyrobnn.utils.files.atomic_torch_save`), and read with
``torch.load(weights_only=True)``; a run records a *fingerprint* of its settings and data
(:func:`tensor_digest`) so that resuming another run's checkpoint is refused
(:func:`fingerprint_differences`).
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import numpy as np
import torch

from ..utils.files import atomic_torch_save

__all__ = ["rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint", "load_torch_file", "read_checkpoint",
           "CheckpointError", "apply_checkpoint", "tensor_digest", "fingerprint_differences"]


def read_checkpoint(path, kind: str | None = None) -> dict:
    """Load the checkpoint at ``path`` (:func:`load_torch_file`); with ``kind`` the file must be a
    dict whose ``"kind"`` entry equals it.  Raises :class:`CheckpointError` naming the file."""
    ck = load_torch_file(path, "checkpoint file")
    if kind is not None and not (isinstance(ck, dict) and ck.get("kind") == kind):
        found = ck.get("kind") if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(f"checkpoint file {str(path)!r} is not a {kind} checkpoint (found {found!r}). Remove "
                              f"it or give another checkpoint path.")
    return ck


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (hex) of the tensors' dtypes, shapes and values, e.g. to tell whether a checkpoint
    was written for the same data.  Tensors on a GPU are copied to the CPU to be hashed."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint_differences(saved: dict, current: dict) -> list[str]:
    """One line per entry of two run fingerprints (flat dicts of plain values) that differs:
    ``"name: <saved> in the checkpoint, <current> in this call"`` (digests shortened)."""

    def show(v):
        if isinstance(v, str) and len(v) == 64 and all(ch in "0123456789abcdef" for ch in v):
            return f"sha256 {v[:12]}…"
        return "(absent)" if v is _MISSING else repr(v)

    out = []
    for key in list(saved) + [k for k in current if k not in saved]:
        a, b = saved.get(key, _MISSING), current.get(key, _MISSING)
        if a != b:
            out.append(f"{key}: {show(a)} in the checkpoint, {show(b)} in this call")
    return out


_MISSING = object()


def rng_state(shuffle_generator: torch.Generator | None = None) -> dict:
    """Every RNG state training uses, as tensors and plain types (weights_only-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.random.get_rng_state(),
        "python": repr(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if shuffle_generator is not None:
        state["shuffle"] = shuffle_generator.get_state()
    return state


def set_rng_state(state: dict, shuffle_generator: torch.Generator | None = None) -> None:
    import ast

    torch.random.set_rng_state(state["torch"])
    py = ast.literal_eval(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if shuffle_generator is not None and "shuffle" in state:
        shuffle_generator.set_state(state["shuffle"])


class CheckpointError(ValueError):
    """A checkpoint file cannot be read: truncated, corrupted, not a checkpoint, or holding code."""


def load_torch_file(path, what: str = "file"):
    """``torch.load(path, weights_only=True)`` on the CPU, with one clear error for a file that is
    not a plain-tensor file: truncated or corrupted, or a pickle that holds code.  The latter is
    never loaded: such a file can run arbitrary code when unpickled, and pyrobnn never writes
    one."""
    import pickle

    path = Path(path)
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle that names forbidden objects: a damaged file
            raise CheckpointError(f"{what} {str(path)!r} cannot be read: it is truncated, corrupted or not a file "
                                  f"written by torch.save") from None
        which = f" (it refers to {found.group(1)})"
        raise CheckpointError(
            f"{what} {str(path)!r} holds Python objects other than tensors and plain values{which}; "
            "pyrobnn never writes such files and will not unpickle it, because unpickling can run code stored "
            "in the file. If you made this file yourself and trust its source, convert it to plain tensors "
            "(a state_dict) and save that.") from None
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, BadZipFile, ... for a bad file
        raise CheckpointError(f"{what} {str(path)!r} cannot be read: it is truncated, corrupted or not a file "
                              f"written by torch.save ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") \
            from None


def save_checkpoint(path, *, model, guide, optimizer, epoch: int, history: list, shuffle_generator=None,
                    batch: int = 0, perm: torch.Tensor | None = None, sums: torch.Tensor | None = None) -> None:
    """Write a training checkpoint atomically.  ``epoch`` epochs are complete; ``batch`` > 0
    minibatches of the next one are too, with ``perm`` its order and ``sums`` its running sums
    (a checkpoint taken between two steps, e.g. on an interrupt)."""
    state = {
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(shuffle_generator),
        "epoch": int(epoch),
        "history": history,
        "batch": int(batch),
    }
    if batch:
        state["perm"] = None if perm is None else perm.detach().cpu()
        state["sums"] = sums.detach().cpu()
    atomic_torch_save(state, path)


def load_checkpoint(path, *, model, guide, optimizer, shuffle_generator=None) -> dict:
    """Restore state from ``path``; returns ``{"epoch", "history", "batch", "perm", "sums"}``
    (epochs completed, history, minibatches completed in the next epoch with its order and
    running sums)."""
    return apply_checkpoint(read_checkpoint(path), path, model=model, guide=guide, optimizer=optimizer,
                            shuffle_generator=shuffle_generator)


def apply_checkpoint(ck, path, *, model, guide, optimizer, shuffle_generator=None) -> dict:
    """Restore the state of an SVI checkpoint ``ck`` already read from ``path`` (e.g. read by one
    process and sent to others); returns what :func:`load_checkpoint` returns."""
    if not isinstance(ck, dict) or not {"model", "guide", "optimizer", "rng", "epoch", "history"} <= set(ck):
        raise CheckpointError(f"checkpoint {str(path)!r} is not an SVI checkpoint written by pyrobnn (it lacks "
                              f"the model, guide, optimizer, generator or epoch entries)")
    try:
        model.load_state_dict(ck["model"])
        guide.load_state_dict(ck["guide"])
        optimizer.load_state_dict(ck["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} was written for another model or guide "
                              f"({str(exc).splitlines()[0][:300]}); start without resume or use the same model "
                              f"and guide") from None
    set_rng_state(ck["rng"], shuffle_generator)
    return {"epoch": ck["epoch"], "history": list(ck["history"]), "batch": int(ck.get("batch", 0)),
            "perm": ck.get("perm"), "sums": ck.get("sums")}
