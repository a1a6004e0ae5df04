"""The wide limit of a one-hidden-layer network's prior (Neal 1996), on pyrobnn's own prior.

For ReLU and erf hidden units, draws f(x) at three inputs from the prior of
``pyrobnn.diagnostics.prior.wide_network`` (N(0, 1) first layer, N(0, 1/H) output layer) at widths
1 … 1024, and compares the prior covariance with the arc-cosine / arcsine GP kernel and the excess
kurtosis with its prediction 3H(m₄ − m₂²)/(1 + H m₂)².  Also draws functions from the prior of a
50-unit network over [−3, 3].

    python examples/wide_limit.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from examples._common import RESULTS, Clock, fmt, markdown_table, parse_args, write_json, write_text  # noqa: E402
from pyrobnn.diagnostics.prior import plot_prior_draws, plot_wide_limit, wide_limit_check, wide_network  # noqa: E402


def main():
    args = parse_args(__doc__.splitlines()[0])
    clock = Clock()
    x = torch.tensor([[-1.0], [0.3], [2.0]])
    widths = (1, 4, 16) if args.quick else (1, 4, 16, 64, 256, 1024)
    draws = 5000 if args.quick else 50_000
    q = "_quick" if args.quick else ""
    text = [f"# Wide limit of a one-hidden-layer prior ({draws} prior draws per width; inputs x = −1, 0.3, 2)", ""]
    payload = {}
    for act in ("relu", "erf"):
        r = wide_limit_check(x, widths, act, num_draws=draws, seed=0)
        payload[act] = r
        plot_wide_limit(r, RESULTS / f"wide_limit_{act}{q}.png")
        rows = [[w["width"], fmt(w["max_abs_error"], 4), fmt(float(np.max(w["cov_se"])), 4), fmt(1 / w["width"], 4),
                 fmt(w["max_z"], 2), f"{fmt(w['kurtosis'], 3)} ± {fmt(w['kurtosis_se'], 3)}",
                 fmt(w["kurtosis_expected"], 3)] for w in r["widths"]]
        text += [f"## {act}", "", markdown_table(
            ["H", "max abs(Cov − K_GP)", "MC s.e. (max)", "σ_v²/H", "max z vs K + σ_v²/H", "excess kurtosis",
             "predicted"], rows), ""]
    plot_prior_draws(wide_network(1, 50), torch.linspace(-3, 3, 200), RESULTS / f"prior_draws{q}.png",
                     title="Functions from the prior of a 1-50-1 ReLU network")
    text.append(f"wall time: {clock}")
    write_text(RESULTS / f"wide_limit{q}.md", "\n".join(text) + "\n")
    write_json(RESULTS / f"wide_limit{q}.json", payload)
    print("\n".join(text))


if __name__ == "__main__":
    main()
