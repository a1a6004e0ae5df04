"""Applications built on fitted posteriors: weight pruning (:mod:`.pruning`), pool-based active
learning (:mod:`.active`) and evaluation under dataset shift and OOD detection (:mod:`.shift`)."""

from .pruning import prune, signal_to_noise

__all__ = ["prune", "signal_to_noise"]
