"""Warm-up adaptation (Stan's windowed scheme, as Pyro's ``WarmupAdapter``).

Step size — dual averaging (Nesterov 2009; Hoffman & Gelman 2014, section 3.2.1) of
x = log ε towards the target acceptance δ: after iteration t with acceptance statistic α_t,

    H̄_t = (1 − 1/(t + t0)) H̄_{t−1} + (δ − α_t)/(t + t0),
    x_t = μ − √t/γ · H̄_t,        x̄_t = t^{−κ} x_t + (1 − t^{−κ}) x̄_{t−1},

with μ = log(10 ε_0), γ = 0.05, t0 = 10, κ = 0.75; ε = exp(x_t) while adapting and
exp(x̄_t) at the end of warm-up.

Mass matrix — the diagonal inverse mass matrix is the per-coordinate sample variance of the
draws in each slow window (Welford's running sums), regularised towards 10⁻³ as in Stan:
M⁻¹ = n/(n+5) σ̂² + 10⁻³ · 5/(n+5).
"""

from __future__ import annotations

import torch

def adaptation_schedule(warmup: int) -> list[tuple[int, int]]:
    """Stan's warmup windows (first, last iteration): an initial buffer of 75 iterations
    (step size only), mass-matrix windows of 25, 50, 100, ... and a final buffer of 50;
    shrunk to 15% / 75% / 10% when ``warmup`` < 150 and one window when < 20
    (the schedule of Pyro's ``WarmupAdapter``)."""
    if warmup < 1:
        return []
    if warmup < 20:
        return [(0, warmup - 1)]
    start, end, init = 75, 50, 25
    if start + end + init > warmup:
        start, end = int(0.15 * warmup), int(0.1 * warmup)
        init = warmup - start - end
    windows = [(0, start - 1)]
    end_start = warmup - end
    size, first = init, start
    while first < end_start:
        cur_first, cur_size = first, size
        if 3 * cur_size <= end_start - cur_first:
            size = 2 * cur_size
        else:
            cur_size = end_start - cur_first
        first = cur_first + cur_size
        windows.append((cur_first, first - 1))
    windows.append((end_start, warmup - 1))
    return windows


class _Adapter:
    """Per-chain step-size dual averaging and diagonal mass-matrix estimation, vectorised over
    chains (every chain has its own step size and mass matrix)."""

    def __init__(self, warmup, chains, dim, target, adapt_step, adapt_mass, like, gamma=0.05, t0=10.0,
                 kappa=0.75):
        self.windows = adaptation_schedule(warmup) if (adapt_step or adapt_mass) else []
        self.adapt_step, self.adapt_mass, self.target = adapt_step, adapt_mass, target
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.window = 0
        self._reset_welford(chains, dim, like)
        self.reset_dual_averaging(torch.ones(chains, dtype=like.dtype, device=like.device))

    def _reset_welford(self, chains, dim, like):
        self.n = 0
        self.mean = like.new_zeros(chains, dim)
        self.m2 = like.new_zeros(chains, dim)

    def reset_dual_averaging(self, step_size):
        self.mu = torch.log(10 * step_size)
        self.g_avg = torch.zeros_like(step_size)
        self.x_avg = torch.zeros_like(step_size)
        self.t = 0

    def dual_averaging(self, accept_prob):
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.g_avg = (1 - w) * self.g_avg + w * (self.target - accept_prob)
        x = self.mu - (self.t**0.5) / self.gamma * self.g_avg
        wt = self.t ** (-self.kappa)
        self.x_avg = (1 - wt) * self.x_avg + wt * x
        return torch.exp(x)

    def welford(self, z):
        self.n += 1
        delta = z - self.mean
        self.mean = self.mean + delta / self.n
        self.m2 = self.m2 + delta * (z - self.mean)

    _STATE = ("window", "n", "mean", "m2", "mu", "g_avg", "x_avg", "t")

    def state_dict(self) -> dict:
        """Dual averaging, Welford sums and window position (tensors and ints)."""
        return {k: getattr(self, k) for k in self._STATE}

    def load_state_dict(self, saved: dict, like) -> None:
        for k in self._STATE:
            v = saved[k]
            setattr(self, k, v.to(like.device) if torch.is_tensor(v) else int(v))

    def variance(self):
        """Regularised per-chain variance (Stan): n/(n+5) var + 1e-3 · 5/(n+5)."""
        n = self.n
        var = self.m2 / (n - 1)
        return (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))

    def step(self, t, z, accept_prob, state):
        """Called after warmup iteration ``t``; updates ``state.step_size`` / ``state.inv_mass``.
        Returns True when the mass matrix changed (the caller re-initialises the step size)."""
        if self.window >= len(self.windows):
            return False
        _, last = self.windows[self.window]
        nwin = len(self.windows)
        mass_phase = self.adapt_mass and 0 < self.window < nwin - 1
        if self.adapt_step:
            state.step_size = self.dual_averaging(accept_prob)
        if mass_phase:
            self.welford(z)
        changed = False
        if t == last:
            if self.window == nwin - 1:
                if self.adapt_step:
                    state.step_size = torch.exp(self.x_avg)
            elif mass_phase:
                if self.n >= 2:
                    state.inv_mass = self.variance()
                    changed = True
                self._reset_welford(*z.shape, z)
            self.window += 1
        return changed
