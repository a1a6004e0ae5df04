"""pyrobnn — Bayesian neural networks on Pyro.

Networks are Pyro models whose weights carry priors (:mod:`pyrobnn.priors`); hand-written
guides (:mod:`pyrobnn.guides`) are fitted by SVI (:func:`fit_svi`), the model is sampled by
NUTS (:func:`fit_nuts`) or approximated by a Gaussian around its MAP (:func:`fit_laplace`); each
result is a :class:`Posterior` that predicts, exports an ArviZ ``DataTree`` and makes reports;
an :class:`Ensemble` mixes several fits of one network.

Layers
------
Each subpackage is a layer, and a layer imports only the layers below it (an arrow ``A ← B``
reads "B may import A"), at module level and inside functions alike::

    utils                       files, RNG scoping, trace reading, validation, locks, manifests, hooks
      ← data, model             loaders | layers, priors, likelihoods, BNN   (neither imports the other)
      ← infer                   guides, ELBO, SVI, MCMC, Laplace, Posterior (evaluation, saving), checkpoints
      ← spec, diagnostics       specs → models, guides, data | ArviZ export, metrics, reports
                                (neither imports the other)
      ← apps, sklearn           pruning and other applications | scikit-learn estimators
                                (neither imports the other)
      ← cli, pyrobnn/__init__   the command line | this module, which composes the layers
      ← __main__                ``python -m pyrobnn`` / ``torchrun -m pyrobnn``: runs the command line

``spec`` sits above ``infer`` because it builds guides and reads inference's lists of allowed
names (KL schedules, optimisers, samplers); ``infer`` never reads a spec.  ``diagnostics``,
``apps`` and ``sklearn`` use only public names of ``infer`` (a module's ``__all__`` or ``pyrobnn.infer``'s exports).
Where a lower layer offers a convenience that a higher one carries out, the lower layer
declares a :class:`~pyrobnn.utils.hooks.Hook` and this module installs it:
``BNN.from_spec`` calls :func:`load_model` (spec building), ``Posterior.to_datatree`` calls
:func:`pyrobnn.diagnostics.to_datatree` (imported on first use).  ``tests/test_layers.py``
enforces the picture.
"""

from . import data, spec
from .infer import (Ensemble, GuidePosterior, LaplacePosterior, NUTSConfig, Posterior, Prediction, SamplePosterior,
                    SVIConfig, fit_hmc, fit_laplace, fit_nuts, fit_svi, guides)
from .infer.conversion import datatree_converter
from .infer.saving import load_posterior as load
from .model import BNN, Bernoulli, Categorical, Conv2d, Flatten, Gaussian, Linear, likelihoods, priors
from .model.bnn import spec_loader
from .spec import load_model

__version__ = "0.1.0"


def _to_datatree(posterior, x=None, y=None, **kwargs):
    # reports pull in matplotlib and xarray: load them when a posterior is first exported
    from .diagnostics import to_datatree

    return to_datatree(posterior, x, y, **kwargs)


spec_loader.install(load_model)
datatree_converter.install(_to_datatree)


def __getattr__(name):
    # reports pull in matplotlib and xarray: load them on first use, not on ``import pyrobnn``
    if name in ("report", "compare", "to_datatree"):
        from . import diagnostics

        return getattr(diagnostics, name)
    raise AttributeError(f"module 'pyrobnn' has no attribute {name!r}")


__all__ = [
    "report", "compare", "to_datatree", "BNN", "Linear", "Conv2d", "Flatten", "Gaussian", "Bernoulli", "Categorical", "priors", "likelihoods",
    "guides", "fit_svi", "SVIConfig", "fit_nuts", "NUTSConfig", "fit_hmc", "fit_laplace", "Posterior", "GuidePosterior", "SamplePosterior",
    "LaplacePosterior", "Prediction", "Ensemble", "load",
    "data", "spec", "load_model", "__version__",
]
