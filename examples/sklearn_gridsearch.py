"""A grid search over the prior scale and the hidden width of a BNNRegressor inside a scikit-learn
Pipeline with StandardScaler, on the Boston housing data (UCI split 0 of Hernández-Lobato & Adams
2015, raw units), scored by R² (scikit-learn's default for regressors) with 3-fold
cross-validation, then tested on the split's test set: R², RMSE and the
test log-likelihood of the predictive N(mean, std²).

    python examples/sklearn_gridsearch.py [--data ../shared/data/uci]

Writes examples/results/sklearn_gridsearch.json and .md (atomically) and prints the table.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import pyrobnn as pb
from pyrobnn.sklearn import BNNRegressor
from pyrobnn.utils.files import atomic_write

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "uci")
    ap.add_argument("--epochs", type=int, default=100)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ds = pb.data.uci(args.data, "bostonHousing", split=0, standardize=False)
    x, y = ds.x_train.numpy(), ds.y_train.numpy()
    xt, yt = ds.x_test.numpy(), ds.y_test.numpy()

    # --- the code shown in the README
    pipe = make_pipeline(StandardScaler(), BNNRegressor(epochs=args.epochs, batch_size=32, random_state=0))
    grid = GridSearchCV(pipe, {"bnnregressor__prior_scale": [0.3, 1.0, 3.0],
                               "bnnregressor__hidden_sizes": [(10,), (50,)]}, cv=3)
    t0 = time.perf_counter()
    grid.fit(x, y)
    seconds = time.perf_counter() - t0
    mean, std = grid.best_estimator_.predict(xt, return_std=True)  # a Pipeline passes return_std to the last step
    # ---

    rmse = float(np.sqrt(np.mean((mean - yt) ** 2)))
    ll = float(np.mean(-0.5 * np.log(2 * np.pi * std**2) - 0.5 * ((yt - mean) / std) ** 2))
    cv = [{"prior_scale": p["bnnregressor__prior_scale"], "hidden_sizes": list(p["bnnregressor__hidden_sizes"]),
           "mean_cv_r2": float(m), "std_cv_r2": float(s)}
          for p, m, s in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"],
                             grid.cv_results_["std_test_score"])]
    best = {k.removeprefix("bnnregressor__"): (list(v) if isinstance(v, tuple) else v) for k, v in grid.best_params_.items()}
    out = {"best_params": best, "test_r2": float(grid.score(xt, yt)), "test_rmse": rmse,
           "test_ll_gaussian": ll, "search_seconds": seconds, "cv": cv, "epochs": args.epochs,
           "n_train": int(len(y)), "n_test": int(len(yt))}
    lines = ["| prior_scale | hidden_sizes | mean CV R² (± sd) |", "|---|---|---|"]
    lines += [f"| {c['prior_scale']} | {tuple(c['hidden_sizes'])} | {c['mean_cv_r2']:.3f} ± {c['std_cv_r2']:.3f} |"
              for c in cv]
    lines += ["", f"best: {best}; test R² {out['test_r2']:.3f}, RMSE {rmse:.2f}, test log-likelihood "
                  f"{ll:.2f} per point (Gaussian predictive); search {seconds:.0f} s (18 fits + refit, 2 shared cores)"]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    atomic_write(RESULTS / "sklearn_gridsearch.json", lambda t: Path(t).write_text(json.dumps(out, indent=2)))
    atomic_write(RESULTS / "sklearn_gridsearch.md", lambda t: Path(t).write_text(text))
    print(text)


if __name__ == "__main__":
    main()
