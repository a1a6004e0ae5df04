"""Applications built on fitted posteriors: weight pruning (and more to come in this namespace)."""

from .pruning import prune, signal_to_noise

__all__ = ["prune", "signal_to_noise"]
