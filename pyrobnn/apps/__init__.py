"""Applications built on fitted posteriors: weight pruning, contextual bandits (:mod:`.bandits`)."""

from .pruning import prune, signal_to_noise

__all__ = ["prune", "signal_to_noise"]
