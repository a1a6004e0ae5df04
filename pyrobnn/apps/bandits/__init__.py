"""Contextual bandits with BNN Thompson sampling (Blundell et al. 2015, section 5.3; Riquelme,
Tucker & Snoek 2018).

* :mod:`.environments` — :class:`MushroomBandit`, :class:`WheelBandit`: seeded streams of
  contexts and rewards, and the oracle's expected rewards for regret;
* :mod:`.agents` — Thompson sampling with a BNN, ε-greedy, Uniform, LinFullPost, NeuralLinear;
* :mod:`.linear` — exact Bayesian linear regression with a Normal-inverse-gamma prior;
* :mod:`.runner` — :func:`run_bandit`: several agents on the same stream, checkpointed;
* :mod:`.report` — ``metrics.json``, the cumulative-regret plot and the HTML page.
"""

from .agents import Agent, LinFullPostAgent, NetworkAgent, NeuralLinearAgent, UniformAgent
from .environments import ENVIRONMENTS, MushroomBandit, Stream, WheelBandit
from .linear import BayesianLinearRegression
from .runner import AGENTS, AgentRecord, BanditRun, make_agent, run_bandit

__all__ = [
    "MushroomBandit", "WheelBandit", "Stream", "ENVIRONMENTS",
    "Agent", "UniformAgent", "NetworkAgent", "LinFullPostAgent", "NeuralLinearAgent", "BayesianLinearRegression",
    "AGENTS", "AgentRecord", "BanditRun", "make_agent", "run_bandit",
    "bandit_metrics", "plot_regret", "write_report",
]


def __getattr__(name):
    # the report pulls in matplotlib: load it on first use, not with the command line
    if name in ("bandit_metrics", "plot_regret", "write_report"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
