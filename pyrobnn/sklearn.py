"""scikit-learn estimators: :class:`BNNRegressor` and :class:`BNNClassifier`.

A Bayesian multilayer perceptron behind scikit-learn's estimator interface, so it drops into
``Pipeline``, ``GridSearchCV`` and ``cross_val_score``::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from pyrobnn.sklearn import BNNRegressor

    model = make_pipeline(StandardScaler(), BNNRegressor(hidden_sizes=(50,), epochs=200))
    model.fit(X, y)
    mean, std = model.predict(X_test, return_std=True)   # as GaussianProcessRegressor

The constructor's arguments are the fields of a model and an inference spec (hidden sizes,
activation, prior family and scale, guide family, method ``"svi"``, ``"nuts"`` or ``"laplace"``
with ``laplace_subset`` and ``laplace_structure``, epochs, ..., ``random_state`` —
scikit-learn's name for the seed —, device).  ``fit`` builds a fresh :class:`~pyrobnn.BNN`
``in → hidden… → out`` and fits it with :func:`~pyrobnn.fit_svi`, :func:`~pyrobnn.fit_nuts` or
:func:`~pyrobnn.fit_laplace` (``epochs``, ``batch_size`` and ``lr`` are then its MAP fit's); the
result is kept as ``posterior_`` (a :class:`~pyrobnn.Posterior`: ``posterior_.save(path)``,
``posterior_.to_datatree(...)``) and ``datatree_`` is its ArviZ ``DataTree`` with the training
data (made on first access).

Predictions are the posterior predictive of ``num_predictive_samples`` draws, drawn with a seed
derived from ``random_state``, so repeated calls give the same numbers.  With ``standardize``
(default) the inputs — and a regressor's targets — are standardised with the training
statistics inside the estimator, and predictions are mapped back to the targets' units; the
network, its prior and ``datatree_`` live in the standardised units.

Seeds: ``random_state`` (None, an int or a ``numpy.random.RandomState``) gives one integer
seed per fit, and every random draw happens inside :func:`pyrobnn.utils.rng.seeded`, so the
caller's global generators (torch's, NumPy's, Python's) are left as they were; ``None`` takes
fresh entropy from the operating system rather than from NumPy's global generator.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .infer import fit_laplace, fit_nuts, fit_svi
from .infer.guides import GUIDES, make_autoguide
from .model import BNN, Categorical, Gaussian, Linear, priors
from .utils.rng import seeded
from .utils.validation import check_choice

__all__ = ["BNNRegressor", "BNNClassifier", "METHODS", "PRIORS", "GUIDE_NAMES"]

METHODS = ("svi", "nuts", "laplace")
#: prior name → class taking ``(loc=0, scale=prior_scale)``
PRIORS = {"normal": priors.Normal, "laplace": priors.Laplace}
_AUTOGUIDES = {"auto_normal": "AutoNormal", "auto_lowrank": "AutoLowRankMultivariateNormal"}
GUIDE_NAMES = tuple(GUIDES) + tuple(_AUTOGUIDES)
_MAX_SEED = 2**31 - 1


def _seed_of(random_state) -> int:
    """One integer seed from scikit-learn's ``random_state`` without touching global generators."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] % _MAX_SEED)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(_MAX_SEED))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, a numpy RandomState or None, got "
                             f"{random_state!r}")
        return int(random_state) % _MAX_SEED
    raise ValueError(f"random_state must be None, an integer or a numpy.random.RandomState, got "
                     f"{type(random_state).__name__}")


class _BNNEstimator(BaseEstimator):
    """What the regressor and the classifier share: building the network, fitting, predicting."""

    def __init__(self, hidden_sizes=(32,), activation="tanh", prior="normal", prior_scale=1.0, guide="meanfield",
                 init_scale=0.01, method="svi", epochs=200, batch_size=128, lr=0.01, num_particles=1,
                 num_samples=200, warmup=200, chains=1, laplace_subset="last_layer", laplace_structure="kron",
                 num_predictive_samples=100, standardize=True, random_state=None, device="cpu", dtype="float64"):
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.prior = prior
        self.prior_scale = prior_scale
        self.guide = guide
        self.init_scale = init_scale
        self.method = method
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_particles = num_particles
        self.num_samples = num_samples
        self.warmup = warmup
        self.chains = chains
        self.laplace_subset = laplace_subset
        self.laplace_structure = laplace_structure
        self.num_predictive_samples = num_predictive_samples
        self.standardize = standardize
        self.random_state = random_state
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ building
    def _check_settings(self):
        check_choice("method", self.method, METHODS)
        check_choice("prior", self.prior, PRIORS)
        check_choice("guide", self.guide, GUIDE_NAMES)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        sizes = (self.hidden_sizes,) if isinstance(self.hidden_sizes, (int, np.integer)) else self.hidden_sizes
        try:
            sizes = tuple(int(h) for h in sizes)
        except (TypeError, ValueError):
            raise ValueError(f"hidden_sizes must be a sequence of positive integers, got {self.hidden_sizes!r}") from None
        if any(h < 1 for h in sizes):
            raise ValueError(f"hidden_sizes must be a sequence of positive integers, got {self.hidden_sizes!r}")
        return sizes

    def _network(self, n_in: int, likelihood) -> BNN:
        sizes = self._check_settings()
        layers, width = [], n_in
        for h in sizes:
            layers += [Linear(width, h), self.activation]
            width = h
        layers.append(Linear(width, likelihood.num_outputs()))
        return BNN(layers, likelihood, PRIORS[self.prior](0.0, self.prior_scale))

    def _make_guide(self, net):
        if self.guide in _AUTOGUIDES:
            return make_autoguide(_AUTOGUIDES[self.guide], net, init_scale=self.init_scale)
        cls = GUIDES[self.guide]
        return cls(net) if self.guide == "delta" else cls(net, self.init_scale)

    def _fit_posterior(self, x: torch.Tensor, y: torch.Tensor, net: BNN, seed: int):
        dtype = getattr(torch, self.dtype)
        common = dict(device=self.device, dtype=dtype, seed=seed, progress=False)
        if self.method == "svi":
            return fit_svi(net, self._make_guide(net), x, y, epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr, num_particles=self.num_particles, handle_interrupt=False, **common)
        if self.method == "nuts":
            return fit_nuts(net, x, y, num_samples=self.num_samples, warmup=self.warmup, chains=self.chains,
                            handle_interrupt=False, **common)
        return fit_laplace(net, x, y, subset=self.laplace_subset, structure=self.laplace_structure,
                           epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, handle_interrupt=False, **common)

    def _inputs(self, X) -> torch.Tensor:
        """Checked inputs of a fitted estimator, standardised with the training statistics."""
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._scaled(X)

    def _scaled(self, X: np.ndarray) -> torch.Tensor:
        return torch.tensor((X - self._x_loc) / self._x_scale, dtype=getattr(torch, self.dtype))

    def _fit(self, X, y, likelihood_of, **y_checks):
        """Shared fit: ``likelihood_of(y)`` gives the likelihood and the targets as a tensor;
        ``y_checks`` are further arguments of scikit-learn's ``validate_data`` for y."""
        self._check_settings()
        X, y = validate_data(self, X, y, dtype=np.float64, **y_checks)
        seed = _seed_of(self.random_state)
        self._x_loc = X.mean(0) if self.standardize else np.zeros(X.shape[1])
        scale = X.std(0) if self.standardize else np.ones(X.shape[1])
        self._x_scale = np.where(scale > 0, scale, 1.0)
        x = self._scaled(X)
        likelihood, yt = likelihood_of(y)
        with seeded(seed):
            net = self._network(x.shape[1], likelihood)
            self.posterior_ = self._fit_posterior(x, yt, net, seed)
        self._predict_seed = seed
        self._train = (x, yt)
        self.__dict__.pop("_datatree", None)
        return self

    def _prediction(self, X):
        check_is_fitted(self, "posterior_")
        x = self._inputs(X)
        return self.posterior_.predict(x, num_samples=self.num_predictive_samples, seed=self._predict_seed)

    @property
    def datatree_(self):
        """The fitted posterior as an ArviZ ``DataTree`` with the (standardised) training data."""
        check_is_fitted(self, "posterior_")
        if "_datatree" not in self.__dict__:
            x, y = self._train
            self.__dict__["_datatree"] = self.posterior_.to_datatree(
                x, y, num_samples=self.num_predictive_samples, seed=self._predict_seed)
        return self.__dict__["_datatree"]

    def sample_y(self, X, n_samples: int = 1, random_state=0):
        """Draws of y from the posterior predictive at ``X``, ``(n_samples_X, n_samples)`` (as
        ``GaussianProcessRegressor.sample_y``): each column comes from one posterior draw of the
        weights and one draw of the likelihood's noise."""
        check_is_fitted(self, "posterior_")
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        seed = _seed_of(random_state)
        x = self._inputs(X)
        with seeded(seed):
            draws = self.posterior_.draws(int(n_samples), seed=seed)
            draws = {k: v.reshape(1, -1, *v.shape[2:])[:, :int(n_samples)] for k, v in draws.items()}
            y = self.posterior_.predictive_distribution(x, draws).sample()  # (n_samples, N)
        return self._target_values(y.T.cpu().numpy())



class BNNRegressor(RegressorMixin, _BNNEstimator):
    """Bayesian-neural-network regression with a Gaussian likelihood whose noise scale is learned
    (a latent site with a LogNormal prior), in scikit-learn's estimator interface (see
    :mod:`pyrobnn.sklearn`).  ``predict(X, return_std=True)`` returns the predictive mean and the
    total predictive standard deviation (noise and weight uncertainty)."""

    def fit(self, X, y):
        """Fit the posterior to (X, y); returns self."""
        def likelihood_of(y):
            y = np.asarray(y, dtype=np.float64)
            loc, scale = (y.mean(), y.std()) if self.standardize else (0.0, 1.0)
            self._y_loc, self._y_scale = float(loc), float(scale) if scale > 0 else 1.0
            yt = torch.tensor((y - self._y_loc) / self._y_scale, dtype=getattr(torch, self.dtype))
            return Gaussian(learned=True, scale=0.5 if self.standardize else 1.0), yt

        return self._fit(X, y, likelihood_of, y_numeric=True)

    def predict(self, X, return_std: bool = False):
        """Posterior predictive mean at ``X`` (and the predictive standard deviation)."""
        pred = self._prediction(X)
        mean = pred.mean.cpu().numpy() * self._y_scale + self._y_loc
        if not return_std:
            return mean
        return mean, pred.std.cpu().numpy() * self._y_scale

    def _target_values(self, y):
        return y * self._y_scale + self._y_loc


class BNNClassifier(ClassifierMixin, _BNNEstimator):
    """Bayesian-neural-network classification (a categorical likelihood over the classes seen in
    ``fit``) in scikit-learn's estimator interface (see :mod:`pyrobnn.sklearn`).
    ``predict_proba`` is the posterior predictive probability of each class, ``predict`` its
    most probable class."""

    def fit(self, X, y):
        """Fit the posterior to (X, y); returns self."""
        def likelihood_of(y):
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError(f"BNNClassifier needs samples of at least 2 classes in the data; got 1 class "
                                 f"({self.classes_[0]!r})")
            return Categorical(len(self.classes_)), torch.as_tensor(codes.reshape(-1), dtype=torch.long)

        return self._fit(X, y, likelihood_of)

    def predict_proba(self, X):
        """Posterior predictive class probabilities, ``(n_samples, n_classes)``, in the order of
        ``classes_``."""
        return self._prediction(X).probs.cpu().numpy()

    def predict(self, X):
        """The class of highest posterior predictive probability."""
        probs = self.predict_proba(X)
        return self.classes_[np.argmax(probs, axis=1)]

    def _target_values(self, y):
        return self.classes_[y.astype(int)]
