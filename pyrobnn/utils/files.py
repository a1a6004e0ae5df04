"""Writing files so that a reader never sees half of one.

Every file pyrobnn writes goes to a temporary name beside its target and is renamed into place
(:func:`atomic_write`, :func:`atomic_torch_save`); a directory is assembled under a temporary
name and renamed onto its target (:func:`replace_dir`).  Temporary files and directories are
created private and given the usual permissions before they are renamed (:func:`usual_mode`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = ["usual_mode", "atomic_write", "replace_dir", "atomic_torch_save"]


def usual_mode(path, directory: bool = False) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would (0666 / 0777 less the
    umask): temporary files and directories are created private (0600 / 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def atomic_write(path, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_dir(src, dst) -> None:
    """Rename the finished directory ``src`` onto ``dst`` (same file system), replacing an
    existing ``dst``: the old one is moved aside first and removed after, so ``dst`` is never
    half-written."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_torch_save(obj, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temporary name, then rename)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
