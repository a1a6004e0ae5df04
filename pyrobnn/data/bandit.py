"""The UCI Mushroom data as a contextual bandit (Blundell et al. 2015, section 5.3).

Each mushroom is a context; the agent eats or passes.  The file is UCI's Agaricus-Lepiota
table with a ``class`` column (edible/poisonous, or e/p) and 22 categorical attributes.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import torch
from torch import Tensor

from .paths import DATA_ROOT_ENV, resolve_path

_EDIBLE = {"edible": True, "e": True, "poisonous": False, "p": False}


def mushroom(path: str | os.PathLike | None = None, return_names: bool = False):
    """Load the Mushroom data as bandit contexts.

    ``path`` is ``mushroom.csv`` or the folder holding it; ``None`` means
    ``$PYROBNN_DATA/mushroom/mushroom.csv``.  Every attribute column is one-hot encoded with
    its distinct values in sorted order (``?``, a missing value, is a category of its own).

    Returns:
        ``(contexts, edible)``: float32 ``(8124, F)`` one-hot contexts (F = 117 for the UCI
        file) and a bool ``(8124,)`` tensor, True for edible.  With ``return_names`` a third
        element lists the ``"<attribute>=<value>"`` name of each context column.

    Raises:
        FileNotFoundError: the file is missing (message names the paths looked at).
        ValueError: no ``class`` column, or class values other than edible/poisonous/e/p.
    """
    how = ("Expected the UCI Mushroom (Agaricus-Lepiota) table as CSV with a header row and a 'class' column; "
           f"pass path=<mushroom.csv> or set ${DATA_ROOT_ENV} to a folder holding mushroom/mushroom.csv.")
    found = resolve_path(path, "mushroom/mushroom.csv", "Mushroom file", how)
    if found.is_dir():
        found = found / "mushroom.csv"
        if not found.is_file():
            raise FileNotFoundError(f"Mushroom file not found: {found}. {how}")
    with open(found, newline="") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
    header, rows = rows[0], np.array(rows[1:])
    if "class" not in header:
        raise ValueError(f"{found} has no 'class' column; expected one of its columns {header} to be 'class'")
    j = header.index("class")
    labels = rows[:, j]
    bad = sorted(set(labels.tolist()) - set(_EDIBLE))
    if bad:
        raise ValueError(f"{found}: class values {bad[:5]} not understood; expected one of {sorted(_EDIBLE)}")
    edible = torch.as_tensor(np.array([_EDIBLE[v] for v in labels], dtype=bool))
    blocks, names = [], []
    for k, attr in enumerate(header):
        if k == j:
            continue
        values, codes = np.unique(rows[:, k], return_inverse=True)
        blocks.append(np.eye(len(values), dtype=np.float32)[codes])
        names.extend(f"{attr}={v}" for v in values)
    contexts: Tensor = torch.as_tensor(np.concatenate(blocks, axis=1))
    return (contexts, edible, names) if return_names else (contexts, edible)
