"""Minibatch weighting of the complexity (KL) term.

Blundell et al. (2015), eq. (9): with M minibatches per epoch, minibatch i (1-based) minimises
F_i = π_i KL[q || p] − E_q[log p(D_i | w)] with Σ_i π_i = 1.  Because pyrobnn scales the
likelihood by N/B (the data plate), F_i is expressed per *full data set*: the KL is multiplied
by ``M π_i``, which is 1 for the uniform schedule.

* ``"uniform"``  — π_i = 1/M.
* ``"blundell"`` — π_i = 2^(M−i) / (2^M − 1): early minibatches of each epoch are dominated
  by the prior, later ones by the data.
* ``"anneal"``   — uniform weights times a linear warm-up min(1, (epoch + 1) / anneal_epochs).

Note on ``"blundell"``: the weights M π_i halve from one minibatch to the next, so with many
minibatches all but the first ~log2(M) steps of an epoch see almost no KL.  With an adaptive
optimiser such as Adam (which rescales the small KL gradients away) the fit then comes close
to a maximum-likelihood fit; the schedule was designed for plain SGD.
"""

from __future__ import annotations

import math

SCHEDULES = ("uniform", "blundell", "anneal")


def blundell_pi(i: int, num_batches: int) -> float:
    """π_i = 2^(M−i) / (2^M − 1) for minibatch i = 1..M, computed without overflow."""
    m = int(num_batches)
    if not 1 <= i <= m:
        raise ValueError(f"minibatch index must lie in 1..{m}, got {i}")
    # 2^(M-i) / (2^M - 1) = 2^(-i) / (1 - 2^(-M))
    return math.ldexp(1.0, -i) / -math.expm1(-m * math.log(2.0))


def kl_weight(schedule: str, i: int, num_batches: int, epoch: int = 0, anneal_epochs: int = 1) -> float:
    """Factor on the KL of minibatch ``i`` (1-based) of ``num_batches`` in epoch ``epoch`` (0-based)."""
    if schedule == "uniform":
        return 1.0
    if schedule == "blundell":
        return num_batches * blundell_pi(i, num_batches)
    if schedule == "anneal":
        if int(anneal_epochs) < 1:
            raise ValueError(f"anneal_epochs must be >= 1, got {anneal_epochs!r}")
        return min(1.0, (epoch + 1) / int(anneal_epochs))
    raise ValueError(f"unknown KL schedule {schedule!r}; expected one of {SCHEDULES}")
