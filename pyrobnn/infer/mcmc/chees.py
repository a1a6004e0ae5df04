"""ChEES-HMC: HMC with a trajectory length shared by all chains and adapted during warm-up to
maximise the Change in the Estimator of the Expected Square (Hoffman, Radul & Sountsov 2021,
"An Adaptive MCMC Scheme for Setting Trajectory Lengths in Hamiltonian Monte Carlo", AISTATS).

Every iteration draws one jitter u ~ U(0, 1) for all chains and runs HMC with
L_c = ⌈u T / ε_c⌉ leapfrog steps on chain c (at most 2^``max_tree_depth``), so the chains move
in lock step with straight-line code — no tree, no per-chain termination.  With the chains'
positions θ_c before and proposals θ'_c after the trajectory, in the coordinates preconditioned
by the diagonal inverse mass matrix M⁻¹ (x = θ / √M⁻¹), the criterion is

    ChEES(T) = ¼ E[(‖θ' − E θ'‖² − ‖θ − E θ‖²)²],

and its gradient with respect to log T is estimated per chain (means over the chains) by

    g_c = t_c (‖θ'_c − θ̄'‖² − ‖θ_c − θ̄‖²) ((θ'_c − θ̄') · p'_c),    t_c = L_c ε_c ≈ u T,

(p'_c the end momentum: the velocity of x is √M⁻¹ p, so (x' − x̄') · ẋ' = (θ' − θ̄') · p'),
averaged with the acceptance probabilities α_c as weights:
ĝ = Σ α_c g_c / Σ α_c.  During warm-up log T takes an Adam step up this gradient after every
iteration (learning rate 0.05, β = (0.9, 0.999); the moments restart when the mass matrix
changes, which changes the gradient's scale); after warm-up T is fixed.  Step sizes and
mass matrices are adapted per chain as for NUTS (:mod:`.adaptation`).
"""

from __future__ import annotations

import math

import torch

from .tree import hmc_move


class ChEES:
    """The shared trajectory length T and its Adam state; ``transition`` runs one ChEES-HMC
    iteration of every chain, ``adapt`` takes the Adam step after a warm-up iteration."""

    def __init__(self, trajectory_length: float, max_steps: int, lr=0.05, betas=(0.9, 0.999), eps=1e-8):
        self.log_t = math.log(trajectory_length)
        self.max_steps, self.lr, self.betas, self.eps = max_steps, lr, betas, eps
        self.m = self.v = 0.0
        self.n = 0
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
        self._last = (z0, z1, p1, alpha, state.inv_mass, steps * state.step_size)
        return out

    def gradient(self) -> float:
        """ĝ of the last transition (see the module docstring)."""
        z0, z1, p1, alpha, inv_mass, t = self._last
        c0, c1 = z0 - z0.mean(0), z1 - z1.mean(0)
        diff = (c1 * c1 / inv_mass).sum(-1) - (c0 * c0 / inv_mass).sum(-1)
        g = t * diff * (c1 * p1).sum(-1)
        ok = torch.isfinite(g) & (alpha > 0)
        w = torch.where(ok, alpha, torch.zeros_like(alpha))
        if float(w.sum()) <= 0:
            return 0.0
        return float((w * torch.where(ok, g, torch.zeros_like(g))).sum() / w.sum())

    def adapt(self) -> None:
        """One Adam ascent step of log T on the last transition's gradient."""
        g = self.gradient()
        b1, b2 = self.betas
        self.n += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat, v_hat = self.m / (1 - b1 ** self.n), self.v / (1 - b2 ** self.n)
        self.log_t += self.lr * m_hat / (math.sqrt(v_hat) + self.eps)

    def restart(self) -> None:
        """Forget Adam's moments (after a new mass matrix)."""
        self.m = self.v = 0.0
        self.n = 0

    def state_dict(self) -> dict:
        return {"log_t": self.log_t, "m": self.m, "v": self.v, "n": self.n}

    def load_state_dict(self, saved: dict) -> None:
        self.log_t, self.m, self.v, self.n = (float(saved["log_t"]), float(saved["m"]), float(saved["v"]),
                                              int(saved["n"]))
