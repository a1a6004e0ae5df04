"""Table of a toy comparison: held-out negative log-likelihood per point (with its standard
error), the coverage of the central 50 % and 90 % predictive intervals, the width of the 90 %
interval inside and outside the training range, and the fit time, read from each run's
metrics.json (as `pyrobnn fit` writes it).

    python examples/toy_laplace_svi_nuts.py svi=RUN/metrics.json nuts=RUN/metrics.json laplace=RUN/metrics.json
"""

import json
import sys
from pathlib import Path


def main(args: list[str]) -> None:
    rows = []
    for arg in args:
        method, _, path = arg.partition("=")
        if not path:
            raise SystemExit(f"expected METHOD=PATH/metrics.json, got {arg!r}")
        m = json.loads(Path(path).read_text())
        p = m["predictive"]
        rows.append((method, p["nll"], p["nll_se"], p["coverage_50"], p["coverage_90"], p["width_90_in_range"],
                     p["width_90_out_of_range"], m["fit_seconds"]))
    print("| method | held-out NLL (± s.e.) | coverage 50 % | coverage 90 % | 90 % width in range | "
          "out of range | fit seconds |")
    print("|---|---|---|---|---|---|---|")
    for method, nll, se, c50, c90, win, wout, sec in rows:
        print(f"| {method} | {nll:.3f} ± {se:.3f} | {c50:.2f} | {c90:.2f} | {win:.3f} | {wout:.3f} | {sec:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
