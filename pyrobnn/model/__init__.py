"""Bayesian networks as Pyro models: layers, priors, likelihoods and the :class:`BNN` container."""

from . import likelihoods, priors
from .bnn import BNN
from .layers import Activation, BayesianLayer, Conv2d, Flatten, Linear
from .likelihoods import Bernoulli, Categorical, Gaussian, Likelihood
from .sites import LAYOUTS, Segment, SitePrior

__all__ = [
    "BNN", "Linear", "Conv2d", "Flatten", "Activation", "BayesianLayer",
    "Likelihood", "Gaussian", "Bernoulli", "Categorical", "priors", "likelihoods",
    "Segment", "SitePrior", "LAYOUTS",
]
