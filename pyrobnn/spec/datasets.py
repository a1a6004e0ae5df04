"""What a data source holds, known without loading it: task, classes and input shape.

A model spec is checked against these facts (likelihood against task, last layer against
the number of classes, first layer against the input width) before anything is read from
disk.  Sources whose content is not known in advance (``csv``, ``npz``, an unlisted UCI
folder) give ``None`` for what is unknown, and are checked once loaded
(:func:`pyrobnn.spec.build.build_data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..data import SKLEARN_DATASETS

__all__ = ["DataFacts", "data_facts", "TASK_LIKELIHOOD"]

TASK_LIKELIHOOD = {"regression": "gaussian", "binary": "bernoulli", "multiclass": "categorical"}
"""The likelihood family that fits each task."""

_SKLEARN_CLASSES = {"breast_cancer": 2, "digits": 10, "iris": 3, "wine": 3}
_SKLEARN_FEATURES = {"breast_cancer": 30, "digits": 64, "iris": 4, "wine": 13, "diabetes": 10}
# input features of the UCI regression sets in the splits of Hernández-Lobato & Adams (2015)
_UCI_FEATURES = {
    "bostonHousing": 13, "concrete": 8, "energy": 8, "kin8nm": 8, "naval-propulsion-plant": 16,
    "power-plant": 4, "protein-tertiary-structure": 9, "wine-quality-red": 11, "yacht": 6,
}


@dataclass(frozen=True)
class DataFacts:
    """``task`` ("regression", "binary", "multiclass" or ``None``), ``num_classes``,
    ``input_shape`` (one example, e.g. ``(13,)`` or ``(1, 28, 28)``) and a ``label`` for messages."""

    label: str
    task: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None


def data_facts(source: str, options: Mapping) -> DataFacts:
    """The facts of ``pyrobnn.data.load(source, **options)``, as far as they are known."""
    if source == "toy":
        return DataFacts("the toy data", "regression", None, (1,))
    if source == "sklearn":
        name = options.get("name")
        task = SKLEARN_DATASETS.get(name)
        return DataFacts(f'the sklearn dataset "{name}"', task, _SKLEARN_CLASSES.get(name),
                         (_SKLEARN_FEATURES[name],) if name in _SKLEARN_FEATURES else None)
    if source == "uci":
        name = options.get("name")
        label = f'the UCI dataset "{name}"' if name else "the UCI data"
        return DataFacts(label, "regression", None, (_UCI_FEATURES[name],) if name in _UCI_FEATURES else None)
    if source == "fashion_mnist":
        shape = (784,) if options.get("flatten", False) else (1, 28, 28)
        return DataFacts("Fashion-MNIST", "multiclass", 10, shape)
    task = options.get("task")
    return DataFacts(f"the {source} data", task if isinstance(task, str) else None)
