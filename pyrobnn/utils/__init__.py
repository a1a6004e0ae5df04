"""Utilities at the bottom of the package: they import nothing from pyrobnn's other layers, so
every layer (data, model, spec, infer, diagnostics, cli) may use them: argument validation, advisory
path locks, run-directory manifests."""
