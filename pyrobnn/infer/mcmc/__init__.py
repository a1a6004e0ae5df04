"""Hamiltonian Monte Carlo on a BNN: :func:`fit_nuts` and :func:`fit_hmc`.

The sampler runs on the *same* Pyro model as SVI, full batch (``n_data=None``), and returns a
:class:`~pyrobnn.infer.posterior.Posterior` whose draws are in the ArviZ layout
``(chain, draw, *site_shape)``.

Three backends share the model, the initial values, the seeds and the output:

* ``backend="torch"`` (default for a :class:`~pyrobnn.BNN`): NUTS and HMC written in plain
  PyTorch that advance *all chains at once* on a ``(chains, D)`` tensor.  The potential
  energy is built from the network's own functions (the site priors' ``log_prob`` and
  :meth:`~pyrobnn.BNN.predictive_distribution`), differentiated with ``torch.func`` and, with
  ``jit=True``, traced once to an ATen graph (``make_fx``) and compiled by TorchInductor, one
  leapfrog step per call (small matrix products are rewritten as broadcast-multiply-sum first,
  so that a small network's whole step, gradient included, becomes one fused C++ kernel).
  Pyro's NUTS spends most of its time in per-step Python (a site dictionary, a recursive
  tree, autograd bookkeeping); here a leapfrog step is one compiled call for every chain, and
  the tree bookkeeping is vectorised over the 2^j states of each doubling.  On a 1-10-1 tanh
  net with 50 points (benchmarks/nuts.py) a leapfrog step costs about 25 µs for one chain and
  35 µs for four, against 400-700 µs in Pyro's kernel and about 3 µs per chain in NumPyro,
  whose whole trajectory is one XLA program.
* ``backend="native"`` (opt-in; MLPs of Linear layers with tanh / relu / sigmoid, Normal priors,
  a fixed-noise Gaussian or a Bernoulli likelihood, CPU): the potential energy with its
  gradient in closed form and the whole NUTS transition written in C (``native_nuts.c``),
  compiled with the system C compiler at first use (about a second, cached on disk), one
  call per transition for all chains, each chain its own tree, in float64.  It runs the torch
  backend's driver (adaptation, checkpoints, callbacks); on the 1-10-1 toy a leapfrog step
  costs about 1.4-2 µs, half of NumPyro's measured in the same run, and the function-space
  ESS per second is 1.35x (1 chain) and 1.76x (4 chains) NumPyro's
  (benchmarks/results/nuts_native.txt).  On larger nets its float64 loops lose their edge: a
  1-50-50-1 step costs about what NumPyro's does, an 8-50-1 step on 927 rows 1.6x NumPyro's
  float32 one (nuts_native_deep.txt, nuts_native_concrete.txt).
* ``backend="pyro"``: Pyro's own :class:`pyro.infer.NUTS` / :class:`pyro.infer.HMC`, the
  reference implementation.  For a BNN it is handed the same (compiled) potential on one
  packed unconstrained vector, so it skips tracing the model at every step; any other Pyro
  model runs through Pyro's model interface (``jit_compile``).

The NUTS transition is the multinomial variant with the generalised no-U-turn criterion
(Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15, Algorithms 3 and 6; Betancourt
2017, "A Conceptual Introduction to Hamiltonian Monte Carlo", arXiv:1701.02434, sections
A.3-A.4): the trajectory doubles in a random direction; every sub-tree is checked for a
U-turn and for divergence (energy error > 1000), an invalid new sub-tree ends the doubling
without being used, a valid one replaces the proposal with probability
min(1, W_new / W_old) (biased progressive sampling), and within a sub-tree the proposal is a
state drawn with probability proportional to exp(-H).  (Stan's additional U-turn checks across
sub-tree boundaries are not made, as in Pyro and NumPyro.)  Warmup follows Stan's windowed
adaptation (as Pyro's ``WarmupAdapter`` does): dual averaging of the log step size towards
``target_accept`` (Hoffman & Gelman 2014, section 3.2, γ = 0.05, t0 = 10, κ = 0.75) and a
diagonal inverse mass matrix estimated in doubling windows (75 / 25.. / 50 iterations) and
regularised towards 1e-3 as in Stan; the step size is re-initialised by the doubling
heuristic (Hoffman & Gelman 2014, Algorithm 4) after every mass-matrix update.

The package, one concept per module:

* :mod:`.config` — :class:`NUTSConfig`, the settings of a run (fit_nuts's keyword defaults, the
  spec schema's ``[mcmc]`` defaults and ``info["config"]`` derive from it), and the limits;
* :mod:`.potential` — packing the latent sites into one unconstrained vector and the potential
  energy U(z) = −log p(T(z), D) − log|det ∂T/∂z| for a batch of chains;
* :mod:`.hyperpriors` — frozen or sampled prior hyperparameters;
* :mod:`.integrator` — the leapfrog step on the packed (C, 3, D) phase-space state;
* :mod:`.compile` — tracing and compiling the leapfrog step (TorchInductor);
* :mod:`.adaptation` — Stan's warm-up windows, step-size dual averaging, mass-matrix estimation;
* :mod:`.tree` — the NUTS tree and static HMC as plain functions of the state;
* :mod:`.chains` — the torch backend's driver (warm-up, sampling, callbacks, interruption);
* :mod:`.native` — the native backend: eligibility, compiling and loading ``native_nuts.c``,
  its sampler for the driver;
* :mod:`.checkpoint` — the sampler's checkpoint file and the run's fingerprint;
* :mod:`.pyro_backend` — Pyro's own kernels as the reference;
* :mod:`.fit` — :func:`fit_nuts` and :func:`fit_hmc`.

Empirical-Bayes (adaptive) priors are *frozen* by default: their hyperparameters are buffers
and keep the values they have when sampling starts (set them with ``frozen=``); MCMC samples
the weights given those hyperparameters.  Alternatively ``hyperpriors=`` gives the location or
scale of Normal and Laplace priors a hyperprior, and the hyperparameters are sampled with the
weights (a hierarchical BNN, as in Neal 1996): each becomes a latent site ``hyper.scale`` (or
``hyper.layers.<i>.scale`` for one layer's prior) of the posterior.
"""

from .adaptation import _Adapter, adaptation_schedule
from .chains import _run_torch, _run_torch_chains
from .compile import _compile, _make_kernels, _tanh
from .config import BACKENDS, CHAIN_METHODS, KERNELS, MAX_ENERGY_ERROR, MAX_TREE_DEPTH, NUTS_DEFAULTS, NUTSConfig
from .fit import fit_hmc, fit_nuts
from .hyperpriors import HYPER_PARAMETERS, HYPERPRIOR_FAMILIES, _resolve_hyperpriors, hyperprior
from .potential import PotentialEnergy, _build_potential, _initial_values, _layout
from .tree import _BatchedHMC, _State

__all__ = ["fit_nuts", "fit_hmc", "NUTSConfig", "NUTS_DEFAULTS", "KERNELS", "BACKENDS", "CHAIN_METHODS", "MAX_TREE_DEPTH", "adaptation_schedule",
           "PotentialEnergy", "HYPER_PARAMETERS", "HYPERPRIOR_FAMILIES", "hyperprior"]
