"""Every ```python block of README.md runs as written, each in a fresh namespace in a temporary
directory, with ``PYROBNN_QUICK=1``, which the snippets read to choose small sizes (the same
code, fewer epochs and draws).  The quick start runs in the default suite, the others with
``--runslow``."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_python_snippets():
    assert len(BLOCKS) >= 2 and all("PYROBNN_QUICK" in b for b in BLOCKS if "fit_" in b)


# the quick start (the first snippet) runs in the default suite; the others — NUTS compiles its
# sampler first, the applications fit several models — run with --runslow
@pytest.mark.parametrize("index", [i if i == 0 else pytest.param(i, marks=pytest.mark.slow)
                                   for i, b in enumerate(BLOCKS)])
def test_readme_snippet_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYROBNN_QUICK", "1")
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip(), "every snippet prints what it found"
