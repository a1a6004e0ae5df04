"""Where data files are looked for.

Loaders never download anything: every dataset is read from a local path.  A path
is used as given when it is absolute or exists relative to the current directory;
otherwise, and when no path is given at all, it is looked up under the folder named
by the environment variable ``PYROBNN_DATA`` (:data:`DATA_ROOT_ENV`).  Nothing else
is searched.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "PYROBNN_DATA"
"""Environment variable naming the default data root (holding ``uci/`` and ``mushroom/``)."""


def data_root() -> Path | None:
    """Return the data root named by ``$PYROBNN_DATA``, or ``None`` if the variable is unset or empty."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value).expanduser() if value else None


def candidate_paths(path: str | os.PathLike | None, default: str) -> list[Path]:
    """List the locations that :func:`resolve_path` tries, in order.

    ``path`` given: itself, then (if relative) the same relative path under ``$PYROBNN_DATA``.
    ``path`` is ``None``: ``$PYROBNN_DATA/<default>`` (empty list if the variable is unset).
    """
    root = data_root()
    if path is None:
        return [root / default] if root is not None else []
    p = Path(path).expanduser()
    out = [p]
    if not p.is_absolute() and root is not None:
        out.append(root / p)
    return out


def resolve_path(path: str | os.PathLike | None, default: str, what: str, how_to_get: str) -> Path:
    """Return the first existing location among :func:`candidate_paths`.

    Raises:
        FileNotFoundError: naming every path looked at, ``what`` was expected there and
            ``how_to_get`` (how to obtain the data).
    """
    candidates = candidate_paths(path, default)
    for c in candidates:
        if c.exists():
            return c
    if candidates:
        looked = ", ".join(str(c) for c in candidates)
        msg = f"{what} not found; looked at: {looked}. {how_to_get}"
    else:
        msg = (
            f"{what} not found: no path was given and ${DATA_ROOT_ENV} is not set "
            f"(it would be looked for at ${DATA_ROOT_ENV}/{default}). {how_to_get}"
        )
    raise FileNotFoundError(msg)
