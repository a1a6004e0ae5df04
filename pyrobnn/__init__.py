"""pyrobnn — Bayesian neural networks on Pyro.

Networks are Pyro models whose weights carry priors (:mod:`pyrobnn.priors`); hand-written
guides (:mod:`pyrobnn.guides`) are fitted by SVI (:func:`fit_svi`) or the model is sampled by
NUTS (:func:`fit_nuts`); either result is a :class:`Posterior` that predicts, exports an
ArviZ ``DataTree`` and makes reports.
"""

from . import data
from .infer import GuidePosterior, Posterior, Prediction, SamplePosterior, fit_hmc, fit_nuts, fit_svi, guides
from .infer.saving import load_posterior as load
from .model import BNN, Bernoulli, Categorical, Conv2d, Flatten, Gaussian, Linear, likelihoods, priors

__version__ = "0.1.0"



def __getattr__(name):
    # reports pull in matplotlib and xarray: load them on first use, not on ``import pyrobnn``
    if name in ("report", "compare", "to_datatree"):
        from . import diagnostics

        return getattr(diagnostics, name)
    raise AttributeError(f"module 'pyrobnn' has no attribute {name!r}")


__all__ = [
    "report", "compare", "to_datatree", "BNN", "Linear", "Conv2d", "Flatten", "Gaussian", "Bernoulli", "Categorical", "priors", "likelihoods",
    "guides", "fit_svi", "fit_nuts", "fit_hmc", "Posterior", "GuidePosterior", "SamplePosterior", "Prediction", "load",
    "data", "__version__",
]
