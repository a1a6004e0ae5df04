"""Stopping a fit cleanly on Ctrl-C.

While :class:`StopOnInterrupt` is active, the first SIGINT only records the request; the fit
loop checks it between two steps, saves its checkpoint there (so the parameters are those of a
completed step, never half-updated) and raises :class:`FitInterrupted`.  A second SIGINT
interrupts at once, as usual.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

__all__ = ["FitInterrupted", "StopOnInterrupt"]


class FitInterrupted(KeyboardInterrupt):
    """A fit (SVI or MCMC) was stopped by an interrupt (Ctrl-C) between two steps/iterations.

    ``checkpoint`` is the file holding the whole state after the last completed step (``None``
    when the fit had no ``checkpoint``), ``where`` says which one; calling the fit again with
    ``checkpoint=that, resume=True`` continues to the same result as a run that was never
    interrupted."""

    def __init__(self, where: str, checkpoint: Path | None):
        self.where, self.checkpoint = where, checkpoint
        saved = f"; the state is saved to {str(checkpoint)!r}" if checkpoint is not None else \
            "; nothing was saved (pass checkpoint= to save the state)"
        super().__init__(f"interrupted after {where}{saved}")


class StopOnInterrupt:
    """While active (in the main thread, ``enabled``), the first SIGINT only sets ``requested``,
    so training stops at the next step boundary with consistent parameters; a second SIGINT
    interrupts at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C stops at once

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
