"""Utilities at the bottom of the package: they import nothing from pyrobnn's other layers, so
every layer (data, model, infer, spec, diagnostics, apps, cli) may use them: atomic file writing
(:mod:`~pyrobnn.utils.files`), scoped random generators (:mod:`~pyrobnn.utils.rng`), reading Pyro
traces (:mod:`~pyrobnn.utils.traces`), hooks that higher layers install
(:mod:`~pyrobnn.utils.hooks`), argument validation, advisory path locks, run-directory
manifests."""
