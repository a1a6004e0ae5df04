"""The report and the comparison page open in a real browser (headless Chromium): every image
loads and the page logs no error.  Slow (it fits, reports and starts the browser twice) and
skipped where ``/usr/bin/chromium`` is absent (Debian package ``chromium``; CI installs none)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import pyrobnn as pb

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium at /usr/bin/chromium "
                                                          "(apt-get install chromium)")]

#: runs first in the page: records script errors, failed resources and console.error calls
_PROBE = """<script>
window.__problems = [];
window.addEventListener("error", e => window.__problems.push(e.message || ("failed to load " +
  (e.target && (e.target.src || e.target.href)))), true);
const _err = console.error; console.error = (...a) => { window.__problems.push(a.join(" ")); _err(...a); };
window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.body.setAttribute("data-check", JSON.stringify({
    images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
    problems: window.__problems}));
});
</script>"""


def _chromium(*args, user_dir):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--enable-logging=stderr", "--v=0", f"--user-data-dir={user_dir}", *args],
                          capture_output=True, text=True, timeout=120)


def _check_page(index: Path, tmp_path: Path, shot: Path) -> dict:
    probe = index.with_name("browser_check.html")
    probe.write_text(index.read_text(encoding="utf-8").replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    res = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), user_dir=tmp_path / "u1")
    m = re.search(r'data-check="([^"]*)"', res.stdout)
    assert m, f"the page did not finish loading:\n{res.stderr[-2000:]}"
    check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    _chromium(f"--screenshot={shot}", "--window-size=1200,3000", index.as_uri(), user_dir=tmp_path / "u2")
    probe.unlink()
    return {**check, "console": console}


def _tree(seed):
    d = pb.data.toy_curve(40, 40, n_heldout=20, standardize_x=True)
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(0.06))
    torch.manual_seed(seed)
    post = pb.fit_svi(net, pb.guides.MeanField(net, init_scale=1e-3), d.x_train, d.y_train, epochs=200, lr=0.01,
                      progress=False, seed=seed)
    return post.to_datatree(dataset=d, num_samples=100, seed=seed)


def test_report_and_compare_pages_load_in_chromium(tmp_path):
    a, b = _tree(0), _tree(1)
    pages = {"report": pb.report(a, tmp_path / "report", write_tree=False),
             "compare": pb.compare({"a": a, "b": b}, tmp_path / "compare").path}
    for name, index in pages.items():
        check = _check_page(index, tmp_path, tmp_path / f"{name}.png")
        assert check["images"] >= (4 if name == "report" else 1), (name, check)
        assert check["broken"] == [] and check["problems"] == [] and check["console"] == [], (name, check)
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_sees_a_missing_image_and_a_script_error(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><img src="missing.png">'
                    "<script>undefinedFunction()</script></body></html>", encoding="utf-8")
    check = _check_page(page, tmp_path, tmp_path / "shot.png")
    assert len(check["broken"]) == 1 and len(check["problems"]) >= 2, check
