"""Playing agents against a bandit: common random numbers, per-step records, checkpoints.

:func:`run_bandit` draws one :class:`~.environments.Stream` per seed and plays every agent
against it, so all agents of a seed see the same contexts and the same reward noise.  It
records each agent's actions, realised rewards and expected regret per step, and the seconds
the online loop took (acting, updating and training; checkpoint writing excluded).

With ``checkpoint_dir`` the state of the (seed, agent) being played — step, actions so far,
the agent's parameters and buffer — is written atomically every ``checkpoint_every`` steps and
when it finishes; ``resume=True`` continues from there.  Agents draw their randomness from
seeds derived from the step (:mod:`.agents`), so a run that was killed and resumed takes the
same actions and ends with the same result as one that never stopped.  A checkpoint written
with other settings, specs or data is refused (:func:`pyrobnn.infer.checkpoint.fingerprint_differences`).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...infer.checkpoint import CheckpointError, fingerprint_differences, read_checkpoint, tensor_digest
from ...infer.svi import resolve_device
from ...spec import GuideSpec, build_guide, build_model, load_inference_spec, load_model_spec
from ...utils.files import atomic_torch_save
from ...utils.rng import seeded
from ...utils.validation import check_int
from .agents import LinFullPostAgent, NetworkAgent, NeuralLinearAgent, UniformAgent, step_seed
from .environments import Stream

__all__ = ["AGENTS", "EPSILONS", "BanditRun", "AgentRecord", "make_agent", "run_bandit", "check_agents",
           "checkpointed_run"]

#: agent name → what it is
AGENTS = {
    "ts": "BNN Thompson sampling (the inference spec's guide, one posterior draw per decision)",
    "greedy": "greedy on a point estimate (Delta guide, ε = 0)",
    "egreedy1": "ε-greedy, ε = 0.01 (Delta guide)",
    "egreedy5": "ε-greedy, ε = 0.05 (Delta guide)",
    "uniform": "uniformly random actions",
    "linfullpost": "exact Bayesian linear regression per action (Normal-inverse-gamma), Thompson sampling",
    "neurallinear": "Bayesian linear regression on a point-estimate network's last hidden layer",
}
EPSILONS = {"greedy": 0.0, "egreedy1": 0.01, "egreedy5": 0.05}


def check_agents(agents) -> tuple[str, ...]:
    """Agent names as a tuple; ValueError naming ``agents`` for an unknown or repeated one."""
    if isinstance(agents, str):
        agents = [a.strip() for a in agents.split(",") if a.strip()]
    agents = tuple(agents)
    if not agents:
        raise ValueError(f"agents must name at least one agent of {', '.join(AGENTS)}")
    for a in agents:
        if a not in AGENTS:
            raise ValueError(f"agents: unknown agent {a!r}; expected names from {', '.join(AGENTS)}")
    if len(set(agents)) != len(agents):
        raise ValueError(f"agents: {list(agents)} names an agent twice")
    return agents


def make_agent(name: str, env, model_spec, inference_spec, seed: int):
    """A fresh agent ``name`` (see :data:`AGENTS`) for ``env``; networks are built from the
    model spec, guides (Thompson sampling: the inference spec's; the others: Delta) and SVI
    settings from the inference spec, whose ``[bandit]`` table gives buffer and training
    schedule and the linear agents' prior."""
    check_agents([name])
    b = inference_spec.bandit
    with seeded(step_seed(seed, "build")):
        if name == "uniform":
            return UniformAgent(env.num_actions, seed)
        if name == "linfullpost":
            return LinFullPostAgent(env.num_actions, env.context_dim, b.lambda_prior, b.a0, b.b0, seed=seed)
        net = build_model(model_spec)
        first = next((layer for layer in net.layers if hasattr(layer, "in_features")), None)
        want = env.context_dim + env.num_actions
        if first is not None and first.in_features != want:
            raise ValueError(f"the model spec {model_spec.name!r} takes {first.in_features} inputs but the {env.name} "
                             f"bandit's network input, context ⊕ one-hot(action), has {env.context_dim} + "
                             f"{env.num_actions} = {want}: set model.layers[0] to {{ linear = [{want}, ...] }}")
        ispec = inference_spec if name == "ts" else replace(inference_spec, guide=GuideSpec("delta", None))
        guide = build_guide(ispec, net)
        common = dict(buffer_size=b.buffer_size, train_every=b.train_every, svi=inference_spec.svi,
                      device=resolve_device(inference_spec.device), seed=seed)
        if name == "neurallinear":
            return NeuralLinearAgent(net, guide, env.num_actions, env.context_dim, lambda_prior=b.lambda_prior,
                                     a0=b.a0, b0=b.b0, **common)
        return NetworkAgent(net, guide, env.num_actions, env.context_dim, thompson=name == "ts",
                            epsilon=EPSILONS.get(name, 0.0), **common)


@dataclass
class AgentRecord:
    """One agent on one seed: ``actions`` (T,), realised ``rewards`` (T,), expected ``regret``
    (T,), ``seconds`` of the online loop and of SVI training within it."""

    actions: np.ndarray
    rewards: np.ndarray
    regret: np.ndarray
    seconds: float
    seconds_training: float = 0.0

    @property
    def cumulative_regret(self) -> float:
        return float(self.regret.sum())

    @property
    def steps_per_second(self) -> float:
        return len(self.actions) / self.seconds if self.seconds > 0 else math.inf


@dataclass
class BanditRun:
    """The records of every agent on every seed (``records[agent][i]`` for seed ``seeds[i]``),
    the uniform policy's expected regret per seed, and the run's settings."""

    records: dict[str, list[AgentRecord]]
    uniform_regret: list[float]
    seeds: list[int]
    settings: dict = field(default_factory=dict)


def _fingerprint(env, name, seed, steps, mspec, ispec, stream: Stream) -> dict:
    return {"environment": repr(sorted(env.settings().items())), "agent": name, "seed": seed, "steps": steps,
            "model_spec": mspec.source_text if mspec is not None else "", "inference_spec": ispec.source_text,
            "stream": tensor_digest(stream.contexts, stream.rewards)}


def _play(agent, stream: Stream, *, path: Path | None, every: int, resume: bool, fingerprint: dict, callback,
          bar) -> AgentRecord:
    steps = stream.steps
    actions = torch.zeros(steps, dtype=torch.long)
    start, seconds = 0, 0.0
    if path is not None and resume and path.exists():
        ck = read_checkpoint(path, "bandit")
        diff = fingerprint_differences(ck["fingerprint"], fingerprint)
        if diff:
            raise CheckpointError(f"checkpoint {str(path)!r} was written by another run: " + "; ".join(diff)
                                  + ". Remove it or start over without resuming.")
        start, seconds = int(ck["t"]), float(ck["seconds"])
        actions[:start] = ck["actions"][:start]
        agent.load_state_dict(ck["agent"])
        bar.update(start)

    def save(t):
        atomic_torch_save({"kind": "bandit", "fingerprint": fingerprint, "t": t, "seconds": seconds,
                           "actions": actions[:t].clone(), "agent": agent.state_dict()}, path)

    t0 = time.perf_counter()
    for t in range(start, steps):
        a = agent.act(stream.contexts[t])
        agent.update(stream.contexts[t], a, float(stream.rewards[t, a]))
        actions[t] = a
        bar.update(1)
        if path is not None and ((t + 1) % every == 0 or t + 1 == steps):
            seconds += time.perf_counter() - t0
            save(t + 1)
            t0 = time.perf_counter()
        if callback is not None:
            callback(t + 1)
    seconds += time.perf_counter() - t0
    rewards = stream.rewards.gather(1, actions.view(-1, 1)).squeeze(1)
    return AgentRecord(actions.numpy(), rewards.double().numpy(), stream.regret(actions).double().numpy(), seconds,
                       float(getattr(agent, "seconds_training", 0.0)))


def run_bandit(env, agents, *, steps: int, seeds=1, model_spec=None, inference_spec=None, checkpoint_dir=None,
               checkpoint_every: int = 1000, resume: bool = False, progress: bool | None = None,
               callback=None) -> BanditRun:
    """Play ``agents`` (names of :data:`AGENTS`) against ``env`` for ``steps`` steps on each
    seed (``seeds``: a count, seeds 0..K−1, or a list of seeds).  ``model_spec`` and
    ``inference_spec`` (anything :func:`pyrobnn.spec.load_model_spec` /
    :func:`~pyrobnn.spec.load_inference_spec` accept) are needed by the network agents.
    ``callback(agent, seed, t)`` is called after every step.  Checkpoints: see the module
    docstring.  Progress bars only when stderr is a terminal (``progress=None``)."""
    steps = check_int("steps", steps)
    seeds = list(range(check_int("seeds", seeds))) if isinstance(seeds, int) and not isinstance(seeds, bool) \
        else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a positive count or a non-empty list of seeds")
    agents = check_agents(agents)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every)
    needs_net = any(a not in ("uniform", "linfullpost") for a in agents)
    mspec = load_model_spec(model_spec) if model_spec is not None else None
    ispec = load_inference_spec(inference_spec if inference_spec is not None else {})
    if needs_net and mspec is None:
        raise ValueError("model_spec is needed for the network agents (ts, greedy, egreedy*, neurallinear)")
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckdir is not None:
        ckdir.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    records: dict[str, list[AgentRecord]] = {a: [] for a in agents}
    uniform = []
    for seed in seeds:
        stream = env.stream(steps, seed)
        uniform.append(float(stream.uniform_regret().double().sum()))
        for name in agents:
            agent = make_agent(name, env, mspec, ispec, step_seed(seed, name))
            fp = _fingerprint(env, name, seed, steps, mspec, ispec, stream)
            path = ckdir / f"seed{seed}-{name}.pt" if ckdir is not None else None
            cb = (lambda t, _n=name, _s=seed: callback(_n, _s, t)) if callback is not None else None
            with tqdm(total=steps, desc=f"{name} seed {seed}", unit="step", disable=not show, dynamic_ncols=True) as bar:
                records[name].append(_play(agent, stream, path=path, every=checkpoint_every, resume=resume,
                                           fingerprint=fp, callback=cb, bar=bar))
    settings = {"environment": env.settings(), "steps": steps, "seeds": seeds, "agents": list(agents),
                "checkpoint_every": checkpoint_every, "bandit": asdict(ispec.bandit),
                "model_spec": mspec.name if mspec else None, "inference_spec": ispec.name,
                "guide": asdict(ispec.guide), "svi": ispec.svi.record()}
    return BanditRun(records, uniform, seeds, settings)


def checkpointed_run(env, agents, *, steps: int, seeds, checkpoint_dir) -> BanditRun:
    """What the checkpoints of a :func:`run_bandit` run hold, without playing further: every
    (seed, agent) cut at the first step that all of them have reached (the whole run when all
    finished; then ``settings["partial"]`` is False).  Steps per second are those of the part
    each pair played.  For a run stopped before its end, e.g. for lack of time."""
    agents = check_agents(agents)
    seeds = [int(s) for s in seeds]
    folder = Path(checkpoint_dir)
    cks = {(s, a): read_checkpoint(folder / f"seed{s}-{a}.pt", "bandit") for s in seeds for a in agents}
    t = min(int(ck["t"]) for ck in cks.values())
    if t < 1:
        raise ValueError(f"the checkpoints in {str(folder)!r} hold no finished step of some (seed, agent) pair")
    records: dict[str, list[AgentRecord]] = {a: [] for a in agents}
    uniform = []
    for s in seeds:
        stream = env.stream(steps, s)
        cut = Stream(stream.contexts[:t], stream.rewards[:t], stream.expected[:t])
        uniform.append(float(cut.uniform_regret().double().sum()))
        for a in agents:
            ck = cks[(s, a)]
            share = t / int(ck["t"])
            actions = ck["actions"][:t]
            rewards = cut.rewards.gather(1, actions.view(-1, 1)).squeeze(1)
            records[a].append(AgentRecord(actions.numpy(), rewards.double().numpy(),
                                          cut.regret(actions).double().numpy(), float(ck["seconds"]) * share,
                                          float(ck["agent"].get("seconds_training", 0.0)) * share))
    return BanditRun(records, uniform, seeds, {"environment": env.settings(), "steps": t, "planned_steps": steps,
                                               "seeds": seeds, "agents": list(agents), "partial": t < steps})
