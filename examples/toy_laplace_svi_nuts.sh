#!/usr/bin/env bash
# The shipped toy spec fitted three ways from the command line — mean-field SVI, NUTS and the
# Laplace approximation (inference/laplace.toml: K-FAC GGN of the whole network around a MAP fit,
# prior precision by the marginal likelihood, linearised predictive) — and compared.  Runs land in
# runs/toy_laplace_svi_nuts/; the comparison page and a table of held-out log-likelihood, coverage
# and fit time (examples/toy_laplace_svi_nuts.py) go to examples/results/toy_laplace_svi_nuts/.
# Run from the repository root: bash examples/toy_laplace_svi_nuts.sh
set -euo pipefail
PYROBNN=${PYROBNN:-.venv/bin/pyrobnn}
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=runs/toy_laplace_svi_nuts
OUT=examples/results/toy_laplace_svi_nuts
mkdir -p "$RUNS"
"$PYROBNN" fit models/toy_regression.toml inference/svi_meanfield.toml --out "$RUNS/svi" --force --quiet
"$PYROBNN" fit models/toy_regression.toml inference/nuts.toml --out "$RUNS/nuts" --force --quiet
"$PYROBNN" fit models/toy_regression.toml inference/laplace.toml --out "$RUNS/laplace" --force --quiet
"$PYROBNN" compare "$RUNS/svi" "$RUNS/nuts" "$RUNS/laplace" --out "$RUNS/compare"
tmp=$(mktemp -d "${OUT%/*}/.toy_laplace_svi_nuts.XXXXXX")
cp "$RUNS/compare/index.html" "$tmp/compare.html"
cp "$RUNS/compare/compare.json" "$RUNS/compare/bands.png" "$tmp/"
for m in svi nuts laplace; do
    cp "$RUNS/$m/metrics.json" "$tmp/${m}_metrics.json"
    cp "$RUNS/$m/predictive_band.png" "$tmp/${m}_band.png"
done
"$PYTHON" examples/toy_laplace_svi_nuts.py svi="$tmp/svi_metrics.json" nuts="$tmp/nuts_metrics.json" \
    laplace="$tmp/laplace_metrics.json" > "$tmp/summary.md"
rm -rf "$OUT" && mv "$tmp" "$OUT"
cat "$OUT/summary.md"
