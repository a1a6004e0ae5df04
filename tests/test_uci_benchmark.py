"""benchmarks/uci.py's Laplace table (``--report-only``): the means and standard errors it writes
are those of the per-split results, and its SVI column takes exactly the same splits from the
committed SVI results."""

import importlib.util
import json
import math
import statistics
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("uci_benchmark", ROOT / "benchmarks" / "uci.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_laplace_report_table_matches_the_split_results(tmp_path):
    uci = _load_benchmark()
    splits = [{"split": s, "test_ll": ll, "test_rmse": rmse, "epochs": 200, "seconds": sec, "predict_seconds": 0.1,
               "prior_precision": 1.0, "map_seconds": sec - 0.5, "laplace_seconds": 0.5}
              for s, ll, rmse, sec in [(0, -2.5, 3.0, 8.0), (2, -2.0, 2.5, 9.0), (5, -3.1, 4.0, 10.0)]]
    out = tmp_path / "laplace.json"
    out.write_text(json.dumps({"settings": {}, "datasets": {"boston": {"splits": splits, "test_ll": -2.53,
                                                                     "test_ll_se": 0.32, "test_rmse": 3.17,
                                                                     "test_rmse_se": 0.44}}}))
    uci.main(["--data", str(tmp_path), "--method", "laplace", "--datasets", "boston", "--report-only", "--out",
              str(out), "--threads", str(torch.get_num_threads())])
    row = next(r for r in (tmp_path / "laplace.md").read_text().splitlines() if r.startswith("| boston"))
    cells = [c.strip() for c in row.strip("|").split("|")]

    lls = [-2.5, -2.0, -3.1]
    se = statistics.stdev(lls) / math.sqrt(3)
    assert cells[1] == "3"
    assert cells[2] == f"{statistics.fmean(lls):.2f} ± {se:.2f}"
    svi = [r for r in json.loads((ROOT / "benchmarks" / "results" / "uci.json").read_text())["datasets"]["boston"]
           ["splits"] if r["split"] in (0, 2, 5)]
    assert len(svi) == 3
    svi_ll = [r["test_ll"] for r in svi]
    assert cells[3] == f"{statistics.fmean(svi_ll):.2f} ± {statistics.stdev(svi_ll) / math.sqrt(3):.2f}"
    assert cells[4:7] == [f"{m:.2f} ± {s:.2f}" for m, s in uci.PUBLISHED_LL["boston"]]
    assert cells[12] == "9.0 (8.5 + 0.50; 0.10)"
