"""Checkpoints of the torch sampler: argument checks, the run's fingerprint and the file."""

from __future__ import annotations

from pathlib import Path

from ...utils.files import atomic_torch_save
from ...utils.validation import check_int
from ..checkpoint import fingerprint_differences, read_checkpoint, tensor_digest
from .adaptation import adaptation_schedule

def _check_checkpoint_args(checkpoint, checkpoint_every, resume, callback, backend) -> None:
    """Errors naming the argument for ``checkpoint``, ``checkpoint_every``, ``resume`` and
    ``callback`` of :func:`fit_nuts`."""
    check_int("checkpoint_every", checkpoint_every)
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path>, the file to resume from")
    if checkpoint is not None and (not isinstance(checkpoint, (str, Path)) or Path(checkpoint).is_dir()):
        raise ValueError(f"checkpoint must be the path of a file (it need not exist yet), got {checkpoint!r}")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be a function of one argument (the iteration's record) or None, "
                         f"got {callback!r}")
    given = [name for name, v in (("checkpoint", checkpoint), ("callback", callback)) if v is not None]
    if given and backend != "torch":
        raise ValueError(f"{' and '.join(given)}= need{'s' if len(given) == 1 else ''} backend='torch': Pyro's "
                         f"own kernel (backend='pyro') cannot be checkpointed or resumed")


def _fingerprint(model, x, y, potential, z0, settings, seed, hypers) -> dict:
    """What a checkpoint must agree with to be resumed: the settings and seed, the model's
    architecture, sites and buffers (prior and likelihood hyperparameters), the data and the
    initial state (plain values; tensors as SHA-256 digests)."""
    return {**settings, "seed": seed, "model": repr(model),
            "sites": ", ".join(f"{s.name}{tuple(s.shape)}" for s in potential.sites),
            "model buffers": tensor_digest(*model.state_dict().values()),
            "hyperpriors": ", ".join(f"{h.name}={h.dist!r}" for h in hypers),
            "x shape": tuple(x.shape), "x dtype": str(x.dtype), "y shape": tuple(y.shape), "y dtype": str(y.dtype),
            "x values": tensor_digest(x), "y values": tensor_digest(y), "initial state": tensor_digest(z0)}


class _Checkpointer:
    """The torch sampler's checkpoint file: the run's fingerprint (settings, seed, shapes and
    digests of the model, data and initial state) and the loop state of every chain started —
    one entry for vectorised chains; with ``chain_method="sequential"`` the finished chains'
    final states, then the running chain's.  A loop state is everything the sampling loop
    needs to continue exactly: iteration, phase-space state, step size, inverse mass matrix,
    the adapter's dual averaging, Welford sums and window, the generator's state, the draws
    and statistics recorded so far and the timing counters.  Written atomically
    (:func:`~pyrobnn.utils.files.atomic_torch_save`) after every ``every`` iterations,
    after the last iteration of every warm-up adaptation window and at the end of each chain."""

    KIND = "pyrobnn.mcmc"
    VERSION = 1

    def __init__(self, path, every: int, fingerprint: dict, warmup: int):
        self.path, self.every, self.fingerprint = Path(path), every, fingerprint
        self.window_ends = {last for _, last in adaptation_schedule(warmup)}
        self.chains: list[dict] = []

    def load(self) -> bool:
        """Read the file if there is one (returns whether there was); a file that is not a
        sampler checkpoint, or one written by a run with other settings or data, is refused
        with a ``ValueError`` naming the file and what differs."""
        if not self.path.exists():
            return False
        ck = read_checkpoint(self.path, self.KIND)
        if ck.get("version") != self.VERSION or not isinstance(ck.get("fingerprint"), dict) \
                or not isinstance(ck.get("chains"), list) or not all(isinstance(c, dict) for c in ck["chains"]):
            raise ValueError(f"checkpoint file {self.path} is not a version-{self.VERSION} sampler checkpoint "
                             f"(format version {ck.get('version')!r}, or entries missing). Remove it to start afresh.")
        diffs = fingerprint_differences(ck["fingerprint"], self.fingerprint)
        if diffs:
            raise ValueError(f"checkpoint file {self.path} was written by a different run and cannot be resumed: "
                             + "; ".join(diffs) + ". Resume with the same model, data, settings and seed, or give "
                             "another checkpoint path (resume=False starts afresh and overwrites it).")
        self.chains = ck["chains"]
        return True

    @classmethod
    def recorded_seed(cls, path) -> int | None:
        """The seed a checkpoint file's run used (None if it recorded none)."""
        ck = read_checkpoint(Path(path), cls.KIND)
        seed = ck.get("fingerprint", {}).get("seed") if isinstance(ck, dict) else None
        return seed if isinstance(seed, int) else None

    def saved(self, slot: int) -> dict | None:
        return self.chains[slot] if slot < len(self.chains) else None

    def due(self, it: int, total: int) -> bool:
        """Whether to write after (0-based) iteration ``it`` of ``total``."""
        return (it + 1) % self.every == 0 or it in self.window_ends or it + 1 == total

    def write(self, slot: int, loop: dict) -> None:
        self.chains[slot:] = [loop]
        atomic_torch_save({"kind": self.KIND, "version": self.VERSION, "fingerprint": self.fingerprint,
                           "chains": self.chains}, self.path)
