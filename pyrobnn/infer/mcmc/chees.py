"""ChEES-HMC: HMC with a trajectory length shared by all chains and adapted during warm-up to
maximise the Change in the Estimator of the Expected Square (Hoffman, Radul & Sountsov 2021,
"An Adaptive MCMC Scheme for Setting Trajectory Lengths in Hamiltonian Monte Carlo", AISTATS).

Every iteration draws one jitter u ~ U(0, 1) for all chains and runs HMC with
L_c = ⌈u T / ε_c⌉ leapfrog steps on chain c (at most 2^``max_tree_depth``), so the chains move
in lock step with straight-line code — no tree, no per-chain termination.  With the chains'
positions θ_c before and proposals θ'_c after the trajectory, in the coordinates preconditioned
by the diagonal inverse mass matrix M⁻¹ (x = θ / √M⁻¹), the criterion is

    ChEES(T) = ¼ E[(‖θ' − E θ'‖² − ‖θ − E θ‖²)²],

and its gradient with respect to log T is estimated per chain by

    g_c = t_c (‖θ'_c − θ̄'‖² − ‖θ_c − θ̄‖²) ((θ'_c − θ̄') · p'_c),    t_c = L_c ε_c ≈ u T,

(p'_c the end momentum: the velocity of x is √M⁻¹ p, so (x' − x̄') · ẋ' = (θ' − θ̄') · p'), where
θ̄ is the mean of the chains' positions and θ̄' the mean of the proposals weighted by their
acceptance probabilities α_c (a proposal that would be rejected says little about the
dynamics), and averaged with the same weights: ĝ = Σ α_c g_c / Σ α_c.

During warm-up log T moves after every iteration by a normalised step, as in the reference
implementation of the method's authors (TensorFlow Probability's
``GradientBasedTrajectoryLengthAdaptation``): ``rate · ĝ / √(v + 1e-20)``, clipped to ±0.35,
with v an exponential moving average of ĝ² (weight 0.05, bias-corrected) and rate 0.025.  A
normalised step without momentum follows the sign of each iteration's gradient; Adam's slow
second moment (β₂ = 0.999) let one outlying gradient of the early warm-up freeze T for hundreds
of iterations.  T is kept at most 2^``max_tree_depth`` step sizes.  The sampling phase uses the
iterate average of log T over the warm-up (weight n^(-1/2) for iteration n), which smooths the
noise of the last steps.  The moving average restarts when the mass matrix changes, which
changes the gradient's scale.  Step sizes and mass matrices are adapted per chain as for NUTS
(:mod:`.adaptation`).
"""

from __future__ import annotations

import math

import torch

from .tree import hmc_move


class ChEES:
    """The shared trajectory length T and its adaptation state; ``transition`` runs one ChEES-HMC
    iteration of every chain, ``adapt`` takes the step after a warm-up iteration and
    ``finish_warmup`` switches to the averaged T."""

    def __init__(self, trajectory_length: float, max_steps: int, rate: float = 0.025, sq_rate: float = 0.05,
                 clip: float = 0.35):
        self.log_t = math.log(trajectory_length)
        self.max_steps, self.rate, self.sq_rate, self.clip = max_steps, rate, sq_rate, clip
        self.sq = 0.0  # moving average of the squared gradient
        self.n_sq = 0  # its number of updates since the last restart (bias correction)
        self.n = 0  # warm-up iterations adapted (iterate averaging)
        self.log_t_avg = self.log_t
        self._last = None

    @property
    def trajectory_length(self) -> float:
        return math.exp(self.log_t)

    def transition(self, sampler, state) -> dict:
        u = sampler.rand((), state.u)
        t = u * self.trajectory_length
        steps = torch.ceil(t / state.step_size).long().clamp(1, self.max_steps)
        out = hmc_move(sampler, state, steps)
        z0, z1, p1, alpha = out.pop("proposal")
        self._last = (z0, z1, p1, alpha, state.inv_mass, steps * state.step_size, state.step_size)
        return out

    def gradient(self) -> float:
        """ĝ of the last transition (see the module docstring)."""
        z0, z1, p1, alpha, inv_mass, t, _ = self._last
        finite = torch.isfinite(z1).all(-1) & torch.isfinite(p1).all(-1)
        a = torch.where(finite & (alpha > 1e-4), alpha, torch.zeros_like(alpha))
        if float(a.sum()) <= 0:
            return 0.0
        z1 = torch.where(finite.unsqueeze(-1), z1, torch.zeros_like(z1))
        p1 = torch.where(finite.unsqueeze(-1), p1, torch.zeros_like(p1))
        c0 = z0 - z0.mean(0)
        c1 = z1 - (a.unsqueeze(-1) * z1).sum(0) / a.sum()
        diff = (c1 * c1 / inv_mass).sum(-1) - (c0 * c0 / inv_mass).sum(-1)
        g = t * diff * (c1 * p1).sum(-1)
        g = torch.where(torch.isfinite(g), g, torch.zeros_like(g))
        return float((a * g).sum() / a.sum())

    def adapt(self) -> None:
        """One normalised step of log T along the last transition's gradient, then the iterate
        average."""
        g = self.gradient()
        self.n_sq += 1
        self.sq = (1 - self.sq_rate) * self.sq + self.sq_rate * g * g
        sq_hat = self.sq / (1 - (1 - self.sq_rate) ** self.n_sq)
        step = max(-self.clip, min(self.clip, self.rate * g / math.sqrt(sq_hat + 1e-20)))
        longest = math.log(self.max_steps * float(self._last[-1].mean()))  # the step budget at the mean step size
        self.log_t = min(self.log_t + step, longest)
        self.n += 1
        w = self.n ** -0.5
        self.log_t_avg = w * self.log_t + (1 - w) * self.log_t_avg

    def restart(self) -> None:
        """Forget the moving average of the squared gradient (after a new mass matrix)."""
        self.sq = 0.0
        self.n_sq = 0

    def finish_warmup(self) -> None:
        """Sample with the iterate-averaged trajectory length."""
        self.log_t = self.log_t_avg

    def state_dict(self) -> dict:
        return {"log_t": self.log_t, "sq": self.sq, "n_sq": self.n_sq, "n": self.n, "log_t_avg": self.log_t_avg}

    def load_state_dict(self, saved: dict) -> None:
        self.log_t, self.sq, self.log_t_avg = float(saved["log_t"]), float(saved["sq"]), float(saved["log_t_avg"])
        self.n_sq, self.n = int(saved["n_sq"]), int(saved["n"])
