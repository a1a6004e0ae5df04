"""Integrity manifests of run directories.

A run directory written by pyrobnn holds ``manifest.json``::

    {"format": "pyrobnn-run", "format_version": 1, "pyrobnn_version": "0.1.0",
     "created_at": "...", "files": {"model.pt": {"sha256": "…", "bytes": 1234}, ...}}

listing every other file of the directory with its SHA-256 digest and size.
:func:`verify_manifest` recomputes them and raises :class:`IntegrityError` naming the first
file that is missing, changed or not a regular file, so a run whose bytes were flipped on disk
is refused instead of loading and predicting silently wrong.  The manifest also marks a
directory as a pyrobnn run (:func:`is_run_dir`), which is what ``--force`` may replace.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .files import atomic_write, replace_dir, usual_mode

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "IntegrityError", "sha256_file", "write_manifest",
           "read_manifest", "read_format_json", "verify_manifest", "is_run_dir", "writing_run"]

MANIFEST = "manifest.json"
FORMAT = "pyrobnn-run"
FORMAT_VERSION = 1


class IntegrityError(ValueError):
    """A run directory's files do not match its manifest (or it has none, or a newer format)."""


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pyrobnn")
    except Exception:  # noqa: BLE001 - running from a source tree that was never installed
        return "unknown"


def _files(root: Path) -> list[Path]:
    """Every entry below ``root`` except the manifest, sorted; refuses symbolic links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                raise IntegrityError(f"{str(p)!r} is a symbolic link; a run directory holds regular files only")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.parent == root and name == MANIFEST:
                continue
            out.append(p)
    return out


def write_manifest(run_dir, extra: dict | None = None) -> Path:
    """Write ``run_dir/manifest.json`` (atomically) for every file now in ``run_dir``."""
    root = Path(run_dir)
    files = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in _files(root)}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "pyrobnn_version": _version(),
           "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **(extra or {}), "files": files}
    target = root / MANIFEST
    text = json.dumps(doc, indent=1, sort_keys=False) + "\n"
    atomic_write(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return target


def read_format_json(path, fmt: str, max_version: int, what: str) -> dict:
    """The JSON document at ``path`` if it is a dict with ``"format": fmt`` and an integer
    ``"format_version"`` of at most ``max_version``; :class:`IntegrityError` naming the file
    otherwise (``what`` says what the file should be)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{str(path)!r} is not valid JSON ({exc}); it is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise IntegrityError(f"{str(path)!r} is not {what} (expected \"format\": \"{fmt}\")")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise IntegrityError(f"{str(path)!r} has format_version {version!r}; this pyrobnn reads up to {max_version} "
                             f"(it was written by pyrobnn {doc.get('pyrobnn_version', 'of another version')}; "
                             f"upgrade)")
    return doc


def read_manifest(run_dir) -> dict:
    """The parsed manifest of ``run_dir``; :class:`IntegrityError` if it is missing or malformed
    or written by a newer format version than this pyrobnn reads."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file() or path.is_symlink():
        raise IntegrityError(f"{str(Path(run_dir))!r} has no {MANIFEST}: it is not a run directory written by "
                             f"pyrobnn, or it was written by a version before manifests")
    doc = read_format_json(path, FORMAT, FORMAT_VERSION, "a pyrobnn run manifest")
    if not isinstance(doc.get("files"), dict):
        raise IntegrityError(f"{str(path)!r} is not a pyrobnn run manifest (it has no \"files\" table)")
    return doc


@contextmanager
def writing_run(target):
    """``with writing_run(path) as tmp:`` — write a run's files into the private temporary
    directory ``tmp`` beside ``path``; on leaving the block its manifest is written and it is
    renamed onto ``path`` (replacing an existing one, never half-written); on an error it is
    removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    usual_mode(tmp, directory=True)
    try:
        yield tmp
        write_manifest(tmp)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_manifest(run_dir, names=None) -> dict:
    """Check ``run_dir`` against its manifest and return it.

    Every file the manifest lists (or only ``names``) must exist as a regular file with the
    recorded size and SHA-256 digest; a mismatch raises :class:`IntegrityError` naming the
    file.  Files not in the manifest are allowed (a user's notes) but are never loaded."""
    root = Path(run_dir)
    doc = read_manifest(root)
    listed = doc["files"]
    for name in (listed if names is None else names):
        entry = listed.get(name)
        p = root / name
        if entry is None:
            raise IntegrityError(f"{str(p)!r} is not listed in {str(root / MANIFEST)!r}; the run directory is "
                                 f"incomplete or was changed by hand")
        if p.is_symlink() or not p.is_file():
            raise IntegrityError(f"{str(p)!r} is missing or not a regular file, but {MANIFEST} lists it")
        if p.stat().st_size != entry.get("bytes") or sha256_file(p) != entry.get("sha256"):
            raise IntegrityError(f"{str(p)!r} does not match its SHA-256 digest in {MANIFEST}: the file was changed "
                                 f"or corrupted after the run was written; restore it or fit the run again")
    return doc


def is_run_dir(path) -> bool:
    """True if ``path`` is a real directory (not a link) with a readable pyrobnn manifest."""
    p = Path(path)
    if p.is_symlink() or not p.is_dir():
        return False
    try:
        read_manifest(p)
    except IntegrityError:
        return False
    return True
