"""Inference: hand-written guides, SVI with KL reweighting, MCMC, the Laplace approximation, and the
common posterior; ensembles of fits."""

from . import guides
from .elbo import ElboTerms, elbo_terms, make_elbo
from .ensemble import Ensemble
from .guides import ARD, Delta, MeanField, SiteGuide, WeightNoise
from .mcmc import NUTSConfig, fit_hmc, fit_nuts
from .kl_schedule import SCHEDULES, blundell_pi, kl_weight
from .laplace import LaplacePosterior, LaplaceSettings, fit_laplace
from .posterior import GuidePosterior, Posterior, SamplePosterior
from .predictive import Prediction
from .svi import NonFiniteLossError, fit_svi
from .svi_config import SVIConfig

__all__ = [
    "guides", "SiteGuide", "MeanField", "ARD", "Delta", "WeightNoise", "fit_svi", "SVIConfig", "fit_nuts", "fit_hmc", "NUTSConfig",
    "fit_laplace", "LaplacePosterior", "LaplaceSettings", "NonFiniteLossError",
    "Posterior", "GuidePosterior", "SamplePosterior", "Prediction", "Ensemble", "elbo_terms", "ElboTerms", "make_elbo", "kl_weight", "blundell_pi", "SCHEDULES",
]
