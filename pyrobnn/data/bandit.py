"""The UCI Mushroom data as a contextual bandit (Blundell et al. 2015, section 5.3).

Each mushroom is a context; the agent eats or passes.  The file is UCI's Agaricus-Lepiota
table with a ``class`` column (edible/poisonous, or e/p) and 22 categorical attributes.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from .csvtable import read_table
from .errors import DataError
from .paths import DATA_ROOT_ENV, resolve_path

_EDIBLE = {"edible": True, "e": True, "poisonous": False, "p": False}


def mushroom(path: str | os.PathLike | None = None, return_names: bool = False):
    """Load the Mushroom data as bandit contexts.

    ``path`` is ``mushroom.csv`` or the folder holding it; ``None`` means
    ``$PYROBNN_DATA/mushroom/mushroom.csv``.  Every attribute column is one-hot encoded with
    its distinct values in sorted order (``?``, UCI's mark of a missing value, is a category of
    its own; an empty cell is an error).

    Returns:
        ``(contexts, edible)``: float32 ``(8124, F)`` one-hot contexts (F = 117 for the UCI
        file) and a bool ``(8124,)`` tensor, True for edible.  With ``return_names`` a third
        element lists the ``"<attribute>=<value>"`` name of each context column.

    Raises:
        FileNotFoundError: the file is missing (message names the paths looked at).
        DataError: the file is not a valid CSV table (see :mod:`.csvtable`), has an empty cell,
            no ``class`` column, or class values other than edible/poisonous/e/p (naming the row).
    """
    how = ("Expected the UCI Mushroom (Agaricus-Lepiota) table as CSV with a header row and a 'class' column; "
           f"pass path=<mushroom.csv> or set ${DATA_ROOT_ENV} to a folder holding mushroom/mushroom.csv.")
    found = resolve_path(path, "mushroom/mushroom.csv", "Mushroom file", how)
    if found.is_dir():
        found = found / "mushroom.csv"
        if not found.is_file():
            raise FileNotFoundError(f"Mushroom file not found: {found}. {how}")
    table = read_table(found)
    if "class" not in table.header:
        raise DataError(str(found), f"no 'class' column; expected one of its columns {table.header} to be 'class'")
    labels = table.labels("class")
    bad = [i for i, v in enumerate(labels.tolist()) if v not in _EDIBLE]
    if bad:
        values = sorted({str(labels[i]) for i in bad})
        raise DataError(table.where("class", bad[0]), f"class values {values[:5]} not understood (this row holds "
                                                      f"{str(labels[bad[0]])!r}); expected one of {sorted(_EDIBLE)}",
                        str(labels[bad[0]]))
    edible = torch.as_tensor(np.array([_EDIBLE[v] for v in labels], dtype=bool))
    blocks, names = [], []
    for attr in table.header:
        if attr == "class":
            continue
        values, block = table.one_hot(attr)
        blocks.append(block.astype(np.float32))
        names.extend(f"{attr}={v}" for v in values)
    if not blocks:
        raise DataError(str(found), "no attribute columns besides 'class'; expected the 22 Mushroom attributes")
    contexts: Tensor = torch.as_tensor(np.concatenate(blocks, axis=1))
    return (contexts, edible, names) if return_names else (contexts, edible)
