"""Contextual-bandit environments: the UCI Mushroom bandit and Riquelme's wheel.

An environment draws a whole *stream* for one seed at once — the contexts, the reward every
action would pay at each step, and every action's expected reward — so that several agents
can be played against exactly the same contexts and the same reward noise (common random
numbers).  Regret is measured against the oracle that knows the expected rewards:

    regret_t = max_a E[r_t(a) | x_t] − E[r_t(a_t) | x_t],

the expected ("pseudo") regret, which has no reward noise in it; the realised rewards are
recorded too.

* :class:`MushroomBandit` (Blundell et al. 2015, section 5.3): a context is a mushroom drawn
  uniformly with replacement from the 8124 of the UCI table; eating an edible one pays +5,
  eating a poisonous one +5 or −35 with probability ½ each (expected −15), passing pays 0.
  The oracle eats exactly the edible ones.
* :class:`WheelBandit` (Riquelme, Tucker & Snoek 2018, section 5): contexts uniform in the unit
  disk, 5 actions; action 4 pays N(1.2, 0.01²) and actions 0–3 pay N(1.0, 0.01²), except that
  when ‖x‖ > δ the action of x's quadrant ((+,+) → 0, (+,−) → 1, (−,+) → 2, (−,−) → 3) pays
  N(50, 0.01²).  The larger δ, the rarer the contexts where exploring pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...data.bandit import mushroom
from ...utils.validation import check_int, check_number

__all__ = ["Stream", "MushroomBandit", "WheelBandit", "ENVIRONMENTS"]


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


@dataclass(frozen=True)
class Stream:
    """One seed's interactions: ``contexts`` (T, d), ``rewards`` (T, A) — what each action
    would pay at step t — and ``expected`` (T, A), each action's expected reward."""

    contexts: torch.Tensor
    rewards: torch.Tensor
    expected: torch.Tensor

    @property
    def steps(self) -> int:
        return int(self.contexts.shape[0])

    def oracle_actions(self) -> torch.Tensor:
        """The oracle's action at every step: the highest expected reward."""
        return self.expected.argmax(-1)

    def regret(self, actions: torch.Tensor) -> torch.Tensor:
        """Per-step expected regret of ``actions`` (T,) against the oracle."""
        chosen = self.expected.gather(-1, actions.long().view(-1, 1)).squeeze(-1)
        return self.expected.max(-1).values - chosen

    def uniform_regret(self) -> torch.Tensor:
        """Per-step expected regret of the uniform policy (the mean over actions)."""
        return self.expected.max(-1).values - self.expected.mean(-1)


class MushroomBandit:
    """UCI Mushroom as a two-action bandit (action 0 = eat, 1 = pass); rewards as in
    Blundell et al. (2015), section 5.3.  ``path``: the Mushroom file or folder (see
    :func:`pyrobnn.data.mushroom`); or give the ``contexts`` and ``edible`` tensors directly."""

    name = "mushroom"
    num_actions = 2
    action_names = ("eat", "pass")
    EDIBLE, POISON_GOOD, POISON_BAD = 5.0, 5.0, -35.0

    def __init__(self, path=None, contexts: torch.Tensor | None = None, edible: torch.Tensor | None = None):
        if contexts is None:
            contexts, edible = mushroom(path)
        elif edible is None or len(edible) != len(contexts):
            raise ValueError("edible must be given with contexts, one bool per row")
        self.contexts = torch.as_tensor(contexts, dtype=torch.float32)
        self.edible = torch.as_tensor(edible, dtype=torch.bool)
        self.context_dim = int(self.contexts.shape[1])

    def settings(self) -> dict:
        return {"environment": self.name, "num_contexts": int(self.contexts.shape[0])}

    def stream(self, steps: int, seed: int) -> Stream:
        steps = check_int("steps", steps)
        g = _generator(seed)
        idx = torch.randint(len(self.contexts), (steps,), generator=g)
        edible = self.edible[idx]
        lucky = torch.rand(steps, generator=g) < 0.5
        eat = torch.where(edible, torch.full((steps,), self.EDIBLE),
                          torch.where(lucky, torch.full((steps,), self.POISON_GOOD), torch.full((steps,), self.POISON_BAD)))
        eat_mean = torch.where(edible, torch.full((steps,), self.EDIBLE),
                               torch.full((steps,), 0.5 * (self.POISON_GOOD + self.POISON_BAD)))
        zeros = torch.zeros(steps)
        return Stream(self.contexts[idx], torch.stack([eat, zeros], -1), torch.stack([eat_mean, zeros], -1))


class WheelBandit:
    """Riquelme et al.'s (2018) wheel bandit with exploration parameter ``delta`` in (0, 1)."""

    name = "wheel"
    num_actions = 5
    context_dim = 2

    def __init__(self, delta: float = 0.5, mean_small: float = 1.0, mean_safe: float = 1.2, mean_large: float = 50.0,
                 std: float = 0.01):
        self.delta = check_number("delta", delta, lo=0, hi=1, lo_open=True, hi_open=True)
        self.mean_small = check_number("mean_small", mean_small)
        self.mean_safe = check_number("mean_safe", mean_safe)
        self.mean_large = check_number("mean_large", mean_large)
        self.std = check_number("std", std, lo=0)

    def settings(self) -> dict:
        return {"environment": self.name, "delta": self.delta, "mean_small": self.mean_small,
                "mean_safe": self.mean_safe, "mean_large": self.mean_large, "std": self.std}

    def expected_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """Each action's expected reward at contexts ``x`` (T, 2): (T, 5)."""
        t = x.shape[0]
        mean = torch.full((t, 5), self.mean_small, dtype=x.dtype)
        mean[:, 4] = self.mean_safe
        far = x.norm(dim=-1) > self.delta
        quadrant = torch.where(x[:, 0] > 0, torch.where(x[:, 1] > 0, 0, 1), torch.where(x[:, 1] > 0, 2, 3))
        mean[far, quadrant[far]] = self.mean_large
        return mean

    def stream(self, steps: int, seed: int) -> Stream:
        steps = check_int("steps", steps)
        g = _generator(seed)
        radius = torch.rand(steps, generator=g).sqrt()  # uniform in the disk: P(r <= s) = s²
        angle = 2 * math.pi * torch.rand(steps, generator=g)
        x = torch.stack([radius * angle.cos(), radius * angle.sin()], -1)
        mean = self.expected_rewards(x)
        rewards = mean + self.std * torch.randn(steps, 5, generator=g)
        return Stream(x, rewards, mean)


ENVIRONMENTS = {"mushroom": MushroomBandit, "wheel": WheelBandit}
