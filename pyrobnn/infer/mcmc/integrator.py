"""The leapfrog (velocity-Verlet) integrator and the gradient of the potential.

With a diagonal inverse mass matrix M⁻¹ and step size ε, one step maps (z, r) to

    r_½ = r − ε/2 ∇U(z),   z' = z + ε M⁻¹ r_½,   r' = r_½ − ε/2 ∇U(z'),

which is volume preserving and reversible (Neal 2011, eq. 5.18-5.20).  The phase-space state
of C chains is packed as one (C, 3, D) tensor [z, r, ∇U(z)], so that a step is one function of
tensors that can be compiled as a whole.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

def _value_and_grad_eager(potential: Callable) -> Callable:
    def vg(z):
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            u = potential(z)
            (g,) = torch.autograd.grad(u.sum(), z)
        return u.detach(), g

    return vg


def _value_and_grad_functional(potential: Callable) -> Callable:
    from torch.func import grad_and_value

    def summed(z):
        u = potential(z)
        return u.sum(), u.detach()

    gv = grad_and_value(summed, has_aux=True)

    def vg(z):
        g, (_, u) = gv(z)
        return u, g

    return vg


def _leapfrog_fn(value_and_grad: Callable) -> Callable:
    """One velocity-Verlet step (Neal 2011, "MCMC using Hamiltonian dynamics", eq. 5.18-5.20)
    for every chain.  The phase-space state is packed as ``(C, 3, D)``: position z, momentum r
    and the gradient g of the potential at z; ``step`` (C, 1) carries each chain's signed step
    size and ``inv_mass`` (C, D) its diagonal inverse mass matrix.  Returns the new packed
    state and the potential energy (C,)."""

    def leapfrog(state, step, inv_mass):
        z, r, g = state.unbind(1)
        r = r - (0.5 * step) * g
        z = z + step * (inv_mass * r)
        u, g = value_and_grad(z)
        r = r - (0.5 * step) * g
        return torch.stack([z, r, g], 1), u

    return leapfrog
