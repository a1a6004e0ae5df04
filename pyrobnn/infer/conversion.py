"""How a posterior becomes an ArviZ ``DataTree`` although inference never imports diagnostics.

The export lives in :mod:`pyrobnn.diagnostics.export`, a layer above inference (it pulls in
xarray and matplotlib).  :meth:`~pyrobnn.Posterior.to_datatree` calls
:data:`datatree_converter`, which ``import pyrobnn`` installs with a function that loads the
export on its first call.
"""

from __future__ import annotations

from ..utils.hooks import Hook

__all__ = ["datatree_converter"]

datatree_converter = Hook(
    "Posterior.to_datatree", "a DataTree converter",
    "`import pyrobnn` installs pyrobnn.diagnostics.to_datatree as the converter; or call "
    "pyrobnn.diagnostics.to_datatree(posterior, x, y, ...) directly.")
"""Called as ``datatree_converter(posterior, x, y, **kwargs)``; installed by ``pyrobnn/__init__.py``."""
