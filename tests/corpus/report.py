"""Print the command-line bad-input corpus as a table: case, exit status, first line of stderr,
and whether anything under the working directory was created or changed.

    python tests/corpus/report.py            # with the pyrobnn importable from the current directory
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from test_corpus import CASES, _listing, main, prepare, run_case  # noqa: E402


def table() -> list[tuple[str, int, str, bool]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "finished" / "run"
        main(["fit", "--set", "svi.epochs=2", "--set", "data.n_train=20", "--set", "data.n_test=10",
              "--set", "data.n_heldout=10", "--out", str(run),
              "--quiet"])
        for i, case in enumerate(CASES):
            work = Path(tmp) / f"case{i}"
            work.mkdir()
            prepare(case, work, run)
            before = _listing(work)
            code, err = run_case(case, work)
            lines = err.strip().splitlines()
            rows.append((case["id"], code, lines[-1] if lines else "", _listing(work) != before))
    return rows


if __name__ == "__main__":
    for cid, code, line, changed in table():
        print(f"| {cid} | {code} | {'files changed; ' if changed else ''}{line[:160].replace('|', '/')} |")
