"""The bad-input corpus of the command line (tests/corpus/cli.toml): every case ends with its
exit status, one line on stderr naming the field, argument or file, and nothing written."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from pyrobnn.cli import main

CORPUS = Path(__file__).parent / "corpus" / "cli.toml"
CASES = tomllib.loads(CORPUS.read_text(encoding="utf-8"))["case"]


def prepare(case: dict, workdir: Path, run_dir: Path) -> None:
    """Lay out a case's FILES in ``workdir`` and, for RUN = true, a copy of ``run_dir`` as ./run."""
    for name, text in case.get("files", {}).items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    if case.get("run"):
        shutil.copytree(run_dir, workdir / "run")


def run_case(case: dict, workdir: Path) -> tuple[int, str]:
    """Run one corpus case's command in ``workdir`` (prepared); returns (exit status, stderr)."""
    old = os.getcwd()
    os.chdir(workdir)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([*case["argv"], *(["--quiet"] if case["argv"][0] == "fit" else [])])
            except SystemExit as exc:  # argparse
                code = exc.code
    finally:
        os.chdir(old)
    return code, err.getvalue()


def _listing(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "run"
    assert main(["fit", "--set", "svi.epochs=2", "--set", "data.n_train=20", "--set", "data.n_test=10",
                 "--set", "data.n_heldout=10",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, tmp_path, finished_run, monkeypatch):
    if "cuda" in " ".join(case["argv"]) and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("PYROBNN_DATA", str(tmp_path / "no-data"))
    prepare(case, tmp_path, finished_run)
    before = _listing(tmp_path)
    code, err = run_case(case, tmp_path)
    assert code == case.get("code", 2), err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in case["needles"]:
        assert needle in lines[0], (needle, lines[0])
    assert _listing(tmp_path) == before
