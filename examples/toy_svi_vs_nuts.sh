#!/usr/bin/env bash
# The shipped toy spec fitted twice from the command line — mean-field SVI (the built-in default)
# and NUTS — and compared.  Runs land in runs/toy_svi_vs_nuts/; the comparison page, its figures
# and the NUTS run's convergence figure and metrics are copied to examples/results/toy_svi_vs_nuts/.
# Run from the repository root: bash examples/toy_svi_vs_nuts.sh   (about 1.5 min on 2 cores)
set -euo pipefail
PYROBNN=${PYROBNN:-.venv/bin/pyrobnn}
RUNS=runs/toy_svi_vs_nuts
OUT=examples/results/toy_svi_vs_nuts
mkdir -p "$RUNS"
"$PYROBNN" fit models/toy_regression.toml inference/svi_meanfield.toml --out "$RUNS/svi" --force --quiet
"$PYROBNN" fit models/toy_regression.toml inference/nuts.toml --out "$RUNS/nuts" --force --quiet
"$PYROBNN" compare "$RUNS/svi" "$RUNS/nuts" --out "$RUNS/compare"
tmp=$(mktemp -d "${OUT%/*}/.toy_svi_vs_nuts.XXXXXX")
cp "$RUNS/compare/index.html" "$RUNS/compare/compare.json" "$RUNS/compare/bands.png" "$tmp/"
cp "$RUNS/nuts/function_convergence.png" "$tmp/"
cp "$RUNS/nuts/metrics.json" "$tmp/nuts_metrics.json"
cp "$RUNS/svi/metrics.json" "$tmp/svi_metrics.json"
rm -rf "$OUT" && mv "$tmp" "$OUT"
echo "results: $OUT (full reports: $RUNS/svi/index.html, $RUNS/nuts/index.html)"
