"""An advisory lock on a path that is about to be written, so two processes never write it at once.

:class:`PathLock` takes ``fcntl.flock`` on a small lock file beside the target
(``<parent>/.<name>.lock``) holding the owner's process id.  The lock is released when the
owner leaves the ``with`` block, and by the kernel if the owner dies (``kill -9`` included), so a
stale lock file never blocks a later run.  The file is removed on release; a waiter that locked
a file that was removed meanwhile takes the lock again on the new one (checked by inode).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

__all__ = ["PathLock", "LockHeld"]


class LockHeld(RuntimeError):
    """Another live process holds the lock on ``path``; ``pid`` is its process id (or None)."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = Path(path), pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{str(self.path)!r} is being written by {holder} (lock file {self.lock_file})")

    @property
    def lock_file(self) -> Path:
        return lock_path(self.path)


def lock_path(path) -> Path:
    """The lock file that guards ``path``: ``<parent>/.<name>.lock``."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


class PathLock:
    """``with PathLock(path, wait=False):`` — hold the advisory lock on ``path``.

    ``wait=False`` raises :class:`LockHeld` at once (naming the holder's process id) when another
    process holds it; ``wait=True`` blocks until it is free (``timeout`` seconds at most, then
    :class:`LockHeld`).  The parent directory must exist."""

    def __init__(self, path, wait: bool = False, timeout: float | None = None, poll: float = 0.2):
        self.path = Path(path)
        self.file = lock_path(self.path)
        self.wait, self.timeout, self.poll = wait, timeout, poll
        self._fd: int | None = None

    def _holder(self) -> int | None:
        try:
            text = self.file.read_text(encoding="ascii").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def acquire(self) -> "PathLock":
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not self.wait or (deadline is not None and time.monotonic() >= deadline):
                    raise LockHeld(self.path, self._holder()) from None
                time.sleep(self.poll)
                continue
            # the previous owner may have removed the file between our open and our lock
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            self._fd = fd
            return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass  # removed by hand while held: nothing left to clean up
        finally:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "PathLock":
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
