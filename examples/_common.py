"""Shared plumbing of the example scripts: command line, threads, timing, atomic output files.

Nothing here is mathematics; the scripts call pyrobnn for that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pyrobnn.utils.files import atomic_write  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(description: str, extra=None) -> argparse.Namespace:
    """``--quick`` (a smoke test of under two minutes) and ``--threads`` (default 1: small networks
    run fastest single-threaded, and the machine is shared)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny run to check that everything works (< 2 min)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    return args


def output_name(stem: str, quick: bool, suffix: str) -> Path:
    """``results/<stem>.<suffix>``, or ``results/<stem>_quick.<suffix>`` for a smoke test, so a
    quick run never overwrites the outputs of a full one."""
    return RESULTS / f"{stem}{'_quick' if quick else ''}.{suffix}"


def write_text(path: Path, text: str) -> Path:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)
    return path


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    plt.close(fig)
    return path


def markdown_table(headers, rows) -> str:
    """A GitHub-flavoured Markdown table (cells are str()-ed as given)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


class Clock:
    """Wall time since construction, for the ``wall time`` line every script prints."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def __str__(self) -> str:
        s = self.seconds
        return f"{s:.0f} s ({s / 60:.1f} min)"


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def finish(stem: str, quick: bool, clock, text: str, payload: dict, fig, figure_stem: str | None = None) -> None:
    """Every script's ending: its table (``.md``), its numbers with the wall time, ``--quick``
    and the machine (``.json``) and its figure (``.png``) into ``results/``, then the table and
    the wall time on stdout."""
    write_text(output_name(stem, quick, "md"), text)
    write_json(output_name(stem, quick, "json"),
               {**payload, "wall_seconds": clock.seconds, "quick": quick, "machine": machine()})
    save_figure(fig, output_name(figure_stem or stem, quick, "png"))
    print()
    print(text)
    print(f"wall time: {clock}")
