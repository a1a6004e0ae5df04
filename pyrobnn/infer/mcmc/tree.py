"""The NUTS tree and static HMC for C chains in lock step, as plain functions of the state.

The NUTS transition is the multinomial variant with the generalised no-U-turn criterion
(Hoffman & Gelman 2014, Algorithms 3 and 6; Betancourt 2017, arXiv:1701.02434, A.3-A.4).
From (z, r ~ N(0, M)) the trajectory doubles in a random direction: at depth j a sub-tree of
2^j leapfrog steps is integrated from the end of the trajectory on that side.  A sub-tree is
*invalid* when one of its states diverged (H − H_0 > 1000) or one of its binary sub-trees
turned: a (sub)trajectory with momentum sum ρ and end momenta r⁻, r⁺ turns when

    ρ · M⁻¹ r⁻ ≤ 0   or   ρ · M⁻¹ r⁺ ≤ 0.

An invalid sub-tree ends the doubling without being used.  A valid one is merged: inside it a
state is drawn with probability ∝ exp(−H_k), and it replaces the proposal with probability
min(1, W_new / W_old), W = Σ exp(−H) (biased progressive sampling); the doubling then stops
if the whole trajectory turns, or at ``max_tree_depth``.  (Stan's additional checks across
sub-tree boundaries are not made, as in Pyro and NumPyro.)

Lock step: a doubling is integrated for all C chains together, and the checks of all
2^j − 1 binary sub-trees, the first step at which a sequential NUTS would have stopped, the
multinomial choice and the acceptance statistic α = mean_k min(1, exp(H_0 − H_k)) are then
computed for the 2^j states at once (:func:`terminations`).  Steps a chain would not have
taken are computed but never used or counted; when every chain has stopped, a doubling ends
early (checked at 8, 16, 32, ... steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import _LOG_STEP_TARGET, MAX_ENERGY_ERROR

@dataclass
class _State:
    """The chains' current point: packed position and gradient, potential, step size and mass."""

    zg: torch.Tensor  # (C, 3, D) packed [position, (unused) momentum, gradient]
    u: torch.Tensor  # (C,) potential energy at the position
    step_size: torch.Tensor  # (C,)
    inv_mass: torch.Tensor  # (C, D) diagonal inverse mass matrix

    @property
    def z(self):
        return self.zg[:, 0]

    def state_dict(self) -> dict:
        return {"zg": self.zg, "u": self.u.clone(), "step_size": self.step_size, "inv_mass": self.inv_mass}

    @classmethod
    def from_state_dict(cls, saved: dict, like) -> "_State":
        return cls(*(saved[k].to(like.device) for k in ("zg", "u", "step_size", "inv_mass")))


_BLOCKS: dict = {}


def _binary_blocks(size, device):
    """First and last index of every binary sub-tree (2, 4, ..., ``size`` states) of a
    trajectory of ``size`` = 2^m states, and the (B, 2) index of their two ends."""
    key = (size, str(device))
    if key not in _BLOCKS:
        first = [a for b in (2 ** i for i in range(1, size.bit_length())) for a in range(0, size, b)]
        last = [a + b - 1 for b in (2 ** i for i in range(1, size.bit_length())) for a in range(0, size, b)]
        f = torch.tensor(first, device=device)
        t = torch.tensor(last, device=device)
        _BLOCKS[key] = (f, t, torch.stack([f, t], 1))
    return _BLOCKS[key]


def kinetic(r, inv_mass):
    """K(r) = ½ rᵀ M⁻¹ r per chain, for a diagonal inverse mass matrix (C, D)."""
    return 0.5 * (r * r * inv_mass).sum(-1)


def with_momentum(sampler, state):
    """Packed (C, 3, D) phase-space state with a fresh momentum r ~ N(0, M) (M = diag(1/M⁻¹))."""
    zg = state.zg
    r = torch.randn(zg[:, 1].shape, generator=sampler.gen, dtype=zg.dtype, device=zg.device)
    r = r * state.inv_mass.rsqrt()
    return torch.stack([zg[:, 0], r, zg[:, 2]], 1), r


def turning(ends, rho, inv_mass):
    """Generalised no-U-turn criterion (Betancourt 2017, section A.4.2): a (sub)trajectory
    with momentum sum ρ and end momenta p⁻, p⁺ (``ends``: (..., 2, C, D)) turns if
    ρ·M⁻¹p⁻ ≤ 0 or ρ·M⁻¹p⁺ ≤ 0."""
    dots = ((rho * inv_mass).unsqueeze(-3) * ends).sum(-1)
    return (dots <= 0).any(-2)


def terminations(R, H, H0, inv_mass):
    """(P, C) masks for P = 2^m steps: ``stop`` — a sequential NUTS would stop building
    the sub-tree at step k: state k diverged, or a binary sub-tree ending at k turned;
    ``div`` — state k diverged.  All P − 1 binary sub-trees are checked at once; their
    momentum sums come from a float64 cumulative sum."""
    P = R.shape[0]
    div = ~(H - H0 <= MAX_ENERGY_ERROR)  # catches NaN
    if P == 1:
        return div, div
    first, last, ends = _binary_blocks(P, R.device)
    csum = torch.cat([torch.zeros_like(R[:1], dtype=torch.float64), R.double().cumsum(0)])
    rho = (csum[last + 1] - csum[first]).to(R.dtype)  # (B, C, D)
    turn = turning(R[ends], rho, inv_mass)  # (B, C)
    stop = div.to(torch.int32).index_add_(0, last, turn.to(torch.int32)) > 0
    return stop, div


def integrate_subtree(sampler, x, step, inv_mass, size, active, h0):
    """The states (P, C, 3, D) and potentials (P, C) of a sub-tree of ``size`` leapfrog
    steps from the packed edge state ``x`` with signed steps ``step`` (C, 1).  P < size when
    every chain that is still ``active`` has already stopped (checked at 8, 16, ... steps).
    The states are collected in a list and stacked once (an indexed write per step costs
    about as much as the bookkeeping of a whole doubling)."""
    xs, us = [], []
    check_at = 8
    for k in range(size):
        x, u = sampler.step(x, step, inv_mass)
        xs.append(x)
        us.append(u)
        if k + 1 == check_at and k + 1 < size:
            check_at *= 2
            R = torch.stack(xs)[:, :, 1]
            stop, _ = terminations(R, torch.stack(us) + kinetic(R, inv_mass), h0, inv_mass)
            if bool((stop.any(0) | ~active).all()):
                break
    return torch.stack(xs), torch.stack(us)


def find_step_size(sampler, state, lo=1e-10, hi=1e10):
    """Hoffman & Gelman (2014), Algorithm 4, per chain: double or halve the step size until
    the one-step acceptance probability exp(H_0 − H_1) crosses 0.8 (Stan's and Pyro's
    threshold); sets ``state.step_size``."""
    eps = state.step_size.clone()
    inv_mass = state.inv_mass

    def log_accept(eps):
        zrg, r = with_momentum(sampler, state)
        h0 = state.u + kinetic(r, inv_mass)
        new, u1 = sampler.step(zrg, eps[:, None], inv_mass)
        return h0 - (u1 + kinetic(new[:, 1], inv_mass))

    direction = torch.where(log_accept(eps) > _LOG_STEP_TARGET, 2.0, 0.5).to(eps)
    done = torch.zeros_like(eps, dtype=torch.bool)
    for _ in range(80):
        new = torch.where(done, eps, eps * direction)
        going = torch.where(log_accept(new) > _LOG_STEP_TARGET, 2.0, 0.5).to(eps)
        eps = new
        done = done | (going != direction) | (eps <= lo) | (eps >= hi)
        if bool(done.all()):
            break
    state.step_size = eps.clamp(lo, hi)


def hmc_transition(sampler, state, num_steps=None, trajectory_length=2 * math.pi) -> dict:
    """Static HMC (Neal 2011, section 5.3.2): L leapfrog steps (``num_steps``, or
    ⌈trajectory_length / ε⌉ per chain), then a Metropolis test accepting the end point with
    probability min(1, exp(H_0 − H_L)).  Chains with fewer steps stop where they are."""
    if num_steps is not None:
        steps = torch.full_like(state.u, num_steps, dtype=torch.long)
    else:
        steps = torch.ceil(trajectory_length / state.step_size).long().clamp_min(1)
    out = hmc_move(sampler, state, steps)
    out.pop("proposal")
    return out


def hmc_move(sampler, state, steps) -> dict:
    """``steps`` (C,) leapfrog steps of every chain from a fresh momentum, then the Metropolis
    test; updates ``state``.  Besides the statistics, returns ``proposal``: the start position,
    the end point (position, momentum) before the test and the acceptance probability."""
    inv_mass = state.inv_mass
    z0 = state.z
    x, r = with_momentum(sampler, state)
    h0 = state.u + kinetic(r, inv_mass)
    n_max = int(steps.max())
    step = state.step_size[:, None]
    u = state.u
    for k in range(n_max):
        x1, u1 = sampler.step(x, step, inv_mass)
        live = k < steps
        if bool(live.all()):
            x, u = x1, u1
        else:  # chains with fewer steps stop where they are
            x, u = torch.where(live[:, None, None], x1, x), torch.where(live, u1, u)
    h1 = u + kinetic(x[:, 1], inv_mass)
    delta = h1 - h0
    accept_prob = torch.exp(-delta).clamp(max=1.0).nan_to_num(0.0)
    accept = sampler.rand(state.u.shape, state.u) < accept_prob
    state.zg = torch.where(accept[:, None, None], x, state.zg)
    state.u = torch.where(accept, u, state.u)
    energy = torch.where(accept, h1, h0)
    return {"accept_prob": accept_prob, "diverging": ~(delta <= MAX_ENERGY_ERROR), "num_steps": steps,
            "energy": energy, "proposal": (z0, x[:, 0], x[:, 1], accept_prob)}


def nuts_transition(sampler, state, max_tree_depth=10) -> dict:
    """One multinomial NUTS transition of every chain (see the module docstring); updates
    ``state`` and returns the statistics of the transition."""
    inv_mass = state.inv_mass
    c = state.u.shape[0]
    dev = state.u.device
    x0, r0 = with_momentum(sampler, state)
    h0 = state.u + kinetic(r0, inv_mass)
    left = right = x0  # packed edge states (C, 3, D)
    prop = state.zg
    prop_uh = torch.stack([state.u, h0], -1)  # potential and energy of the proposal
    log_w = -h0
    rho = r0
    active = torch.ones(c, dtype=torch.bool, device=dev)
    depth = torch.zeros(c, dtype=torch.long, device=dev)
    n_steps = torch.zeros(c, dtype=torch.long, device=dev)
    sum_acc = torch.zeros_like(h0)
    diverging = torch.zeros_like(active)
    idx = torch.arange(c, device=dev)
    # per doubling: direction, multinomial choice inside the sub-tree, biased transition
    uniforms = sampler.rand((max_tree_depth, 3, c), h0)
    for j in range(max_tree_depth):
        forward = uniforms[j, 0] < 0.5
        fwd = forward[:, None, None]
        x = torch.where(fwd, right, left)
        step = torch.where(forward, state.step_size, -state.step_size)[:, None]
        size = 1 << j
        X, U = integrate_subtree(sampler, x, step, inv_mass, size, active, h0)
        P = X.shape[0]
        R = X[:, :, 1]
        H = U + kinetic(R, inv_mass)
        stop, div = terminations(R, H, h0, inv_mass)
        stopped = stop.any(0)
        # steps a sequential NUTS takes: up to and including the first stop
        first = torch.where(stopped, stop.to(torch.uint8).argmax(0), P - 1)
        taken = (torch.arange(P, device=dev)[:, None] <= first) & active
        acc = torch.exp(h0 - H).clamp(max=1.0).nan_to_num(0.0)
        sum_acc = sum_acc + (acc * taken).sum(0)
        n_steps = n_steps + taken.sum(0)
        diverging = diverging | (div & taken).any(0)
        valid = active & ~stopped if P == size else torch.zeros_like(active)
        # multinomial choice inside the sub-tree: P(k) ∝ exp(-H_k), by inverting the CDF
        logits = (-H).nan_to_num(nan=-math.inf)
        log_w_sub = torch.logsumexp(logits, 0)
        cdf = torch.exp(logits - log_w_sub).cumsum(0)
        pick = (cdf < uniforms[j, 1] * cdf[-1]).sum(0).clamp(max=P - 1)
        # biased progressive sampling: move to the sub-tree with probability min(1, W_new / W_old)
        take = valid & (torch.log(uniforms[j, 2]) < log_w_sub - log_w)
        prop = torch.where(take[:, None, None], X[pick, idx], prop)
        prop_uh = torch.where(take[:, None], torch.stack([U[pick, idx], H[pick, idx]], -1), prop_uh)
        # grow the trees whose sub-tree was valid, and check the whole trajectory for a U-turn
        edge = X[-1]
        vf = valid & forward
        right = torch.where(vf[:, None, None], edge, right)
        left = torch.where((valid & ~forward)[:, None, None], edge, left)
        log_w = torch.where(valid, torch.logaddexp(log_w, log_w_sub), log_w)
        rho = torch.where(valid[:, None], rho + R.sum(0), rho)
        depth = depth + valid
        ends = torch.stack([left[:, 1], right[:, 1]])
        active = valid & ~turning(ends, rho, inv_mass)
        if not bool(active.any()):
            break
    state.zg, state.u = prop, prop_uh[:, 0]
    return {"accept_prob": sum_acc / n_steps.clamp_min(1), "diverging": diverging, "tree_depth": depth,
            "num_steps": n_steps, "energy": prop_uh[:, 1]}


class _BatchedHMC:
    """The sampler's moving parts for C chains in lock step: the (compiled) leapfrog step, the
    random generator and a count of leapfrog calls (each advances every chain by one step);
    ``transition`` runs :func:`nuts_transition` or :func:`hmc_transition` on a state."""

    def __init__(self, leapfrog, generator, kernel="nuts", max_tree_depth=10, num_steps=None,
                 trajectory_length=2 * math.pi):
        self.leapfrog, self.gen = leapfrog, generator
        self.kernel, self.max_tree_depth = kernel, max_tree_depth
        self.calls = 0
        self.num_steps, self.trajectory_length = num_steps, trajectory_length
        self.chees = None  # the ChEES trajectory-length adapter (kernel "chees")

    def rand(self, shape, like):
        return torch.rand(shape, generator=self.gen, dtype=like.dtype, device=like.device)

    def step(self, x, step, inv_mass):
        """One leapfrog step of every chain (counted)."""
        self.calls += 1
        return self.leapfrog(x, step, inv_mass)

    def find_step_size(self, state):
        find_step_size(self, state)

    def transition(self, state) -> dict:
        if self.kernel == "chees":
            return self.chees.transition(self, state)
        if self.kernel == "hmc":
            return hmc_transition(self, state, self.num_steps, self.trajectory_length)
        return nuts_transition(self, state, self.max_tree_depth)
