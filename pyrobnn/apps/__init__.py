"""Applications built on fitted posteriors: weight pruning (:mod:`.pruning`), Thompson-sampling
contextual bandits (:mod:`.bandits`), pool-based active learning (:mod:`.active`), evaluation
under dataset shift and OOD detection (:mod:`.shift`) and the BDCMF recommender (:mod:`.bdcmf`)."""

from .pruning import prune, signal_to_noise

__all__ = ["prune", "signal_to_noise"]
