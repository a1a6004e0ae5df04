"""The Laplace approximation: a Gaussian around a MAP fit, :func:`fit_laplace`.

After a MAP fit ŵ (SVI with a :class:`~pyrobnn.guides.Delta` guide under the model's prior),
the posterior of the weights θ (all of them, or only the last Bayesian layer's with the others
fixed at ŵ: ``subset``) is approximated by (MacKay 1992; Daxberger et al. 2021, "Laplace Redux")

    q(θ) = N(θ̂, P⁻¹),   P = GGN + δ I,   GGN = Σ_n J_nᵀ Λ_n J_n

with J_n = ∂f(x_n; θ)/∂θ the network output's Jacobian at θ̂ and Λ_n = −∂² log p(y_n | f)/∂f²
the likelihood's Hessian in output space (Gaussian: 1/σ²; Bernoulli: p(1−p); categorical:
diag(p) − ppᵀ).  The generalised Gauss–Newton matrix (GGN) is the Hessian of −log p(D | θ)
without the term in the network's second derivatives, so it is positive semi-definite.  It is
kept in one of three ``structure``\\ s:

* ``"diag"`` — its diagonal, Σ_n Σ_c (L_nᵀ J_n)²_c with Λ_n = L_n L_nᵀ (per-example Jacobians
  from ``torch.func.jacrev``; any layer type);
* ``"kron"`` — K-FAC per Linear layer (Martens & Grosse 2015; Ritter et al. 2018): with a_n
  the layer's input (and a 1 for the bias) and g_nc = ∂(L_nᵀ f_n)_c/∂s_n the backpropagated
  output-space factor at its pre-activation s_n, the block Σ_n Σ_c (g_nc g_ncᵀ) ⊗ (a_n a_nᵀ) is
  approximated by G ⊗ A with G = Σ_n Σ_c g_nc g_ncᵀ and A = (1/N) Σ_n a_n a_nᵀ; P's block
  (G ⊗ A + δI) is inverted exactly in the factors' eigenbases;
* ``"full"`` — the dense GGN (P×P; small networks and last layers).

The prior of the approximation is N(0, δ⁻¹ I).  Its precision δ is fixed (``prior_precision``)
or, by default, chosen to maximise the Laplace approximation of the marginal likelihood
(MacKay 1992; Immer et al. 2021, eq. 4 with the GGN)

    log p(D | δ) ≈ log p(D | θ̂) − ½ δ ‖θ̂‖² + ½ P log δ − ½ Σ_i log(e_i + δ),

e_i the eigenvalues of the GGN (its diagonal for ``"diag"``, λ_G ⊗ λ_A for ``"kron"``); the
optimum solves MacKay's fixed-point condition δ ‖θ̂‖² = γ = Σ_i e_i / (e_i + δ) (the effective
number of parameters), found here by bisection on log δ — the left side minus the right is
increasing in δ, so the root is unique.  A learned Gaussian noise scale is kept at its MAP.

The result is a :class:`LaplacePosterior`: the same interface as SVI's and NUTS's posteriors
(draws, predictive, DataTree export, report, save/load).  Predictions average the likelihood
over draws θ_s of q (Monte Carlo).  With ``predictive="glm"`` (default) the network is
linearised at θ̂ for them, f_lin(x, θ_s) = f(x, θ̂) + J(x)(θ_s − θ̂) (one Jacobian–vector
product per draw, ``torch.func.jvp``): the GGN is the exact Hessian of that linearised model, so
its posterior is the one q approximates (Immer, Korzepa & Bauer 2021, "Improving predictions of
Bayesian neural nets via local linearization"); ``"nn"`` runs the network itself on θ_s, which
for the full network under-fits, as they show.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from ..model.likelihoods import Bernoulli, Categorical, Gaussian
from ..utils.rng import seeded
from ..utils.validation import check_choice, check_int, check_number
from .arguments import check_seed, prepare_data
from .guides import Delta
from .posterior import Posterior, chunk_bounds, draw_index
from .svi import OPTIMIZERS, fit_svi

__all__ = ["fit_laplace", "LaplacePosterior", "LaplaceSettings", "SUBSETS", "STRUCTURES", "PREDICTIVES", "ggn",
           "log_marginal_likelihood", "tune_prior_precision"]

SUBSETS = ("all", "last_layer")
STRUCTURES = ("diag", "kron", "full")
PREDICTIVES = ("glm", "nn")
#: elements of the per-batch Jacobian (batch × outputs × parameters) computed at once
_JACOBIAN_BUDGET = 1 << 24


@dataclass(frozen=True)
class LaplaceSettings:
    """Settings of :func:`fit_laplace` (and of the ``[laplace]`` table of an inference spec):
    ``subset`` "all" | "last_layer", ``structure`` "diag" | "kron" | "full",
    ``prior_precision`` δ (None: tuned by the marginal likelihood), ``predictive`` "glm"
    (the network linearised at θ̂) | "nn" (the network itself), and the MAP fit's ``epochs``,
    ``batch_size``, ``optimizer`` and ``lr`` (None: the optimizer's default)."""

    subset: str = "all"
    structure: str = "kron"
    prior_precision: float | None = None
    predictive: str = "glm"
    epochs: int = 200
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = 0.01

    def __post_init__(self):
        check_choice("subset", self.subset, SUBSETS)
        check_choice("structure", self.structure, STRUCTURES)
        check_choice("predictive", self.predictive, PREDICTIVES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.prior_precision is not None:
            check_number("prior_precision", self.prior_precision, lo=0, lo_open=True)
        if self.lr is not None:
            check_number("lr", self.lr, lo=0, lo_open=True)
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)


# ============================================================================ the curvature
@dataclass
class _Layout:
    """Where the approximated weights lie in the flat vector of all weight sites (in the order of
    ``model.weight_sites``): ``index`` (P,) positions, layer by layer, each layer's part in the
    row-major order of W̃ = [W | b] (out, in + 1); ``blocks`` [(layer, out, columns of W̃, has bias)]."""

    index: torch.Tensor
    blocks: list
    site_offsets: dict


def _site_offsets(model) -> dict:
    """Start of each weight site in the flat vector of all weight sites."""
    offsets, total = {}, 0
    for site in model.weight_sites:
        offsets[site] = total
        total += model.site_sizes[site]
    return offsets


def _layout(model, subset: str) -> _Layout:
    offsets = _site_offsets(model)
    layers = model.bayesian_layers if subset == "all" else model.bayesian_layers[-1:]
    index, blocks = [], []
    for i in layers:
        segs = {s.name.rsplit(".", 1)[1]: s for s in model.segments if s.layer == i}
        w = segs["weight"]
        out = w.shape[0]
        wi = (offsets[w.site] + w.start + torch.arange(w.numel)).reshape(out, -1)
        if "bias" in segs:
            b = segs["bias"]
            wi = torch.cat([wi, (offsets[b.site] + b.start + torch.arange(b.numel)).reshape(out, 1)], 1)
        index.append(wi.reshape(-1))
        blocks.append((i, out, wi.shape[1], "bias" in segs))
    return _Layout(torch.cat(index), blocks, offsets)


def _check_kron(model, lay: _Layout) -> None:
    for (layer, *_rest) in lay.blocks:
        if not hasattr(model.layers[layer], "in_features"):
            raise ValueError(f"structure 'kron' needs Linear layers; layer {layer} is "
                             f"{type(model.layers[layer]).__name__} (use structure 'diag' or 'full')")


def _split_sites(model, flat: torch.Tensor, offsets) -> dict:
    return {s: flat[..., o:o + model.site_sizes[s]] for s, o in offsets.items()}


def _loss_sqrt(likelihood, out: torch.Tensor, latents: dict) -> torch.Tensor:
    """L (B, k, k) with L Lᵀ = Λ, the Hessian of −log p(y | f) in f (it does not depend on y)."""
    b, k = out.shape
    if isinstance(likelihood, Gaussian):
        if likelihood.heteroscedastic:
            raise ValueError("the Laplace approximation needs a likelihood whose Hessian in the network output is "
                             "positive semi-definite: Gaussian with fixed or learned noise, Bernoulli or Categorical; "
                             "the heteroscedastic Gaussian is not supported")
        scale = latents["noise"] if likelihood.learned else likelihood.scale
        return (1 / torch.as_tensor(scale, dtype=out.dtype, device=out.device)).expand(b, 1, 1)
    if isinstance(likelihood, Bernoulli):
        p = torch.sigmoid(out)
        return (p * (1 - p)).sqrt().reshape(b, 1, 1)
    if isinstance(likelihood, Categorical):
        p = torch.softmax(out, -1)
        sp = p.sqrt()
        return torch.diag_embed(sp) - p.unsqueeze(-1) * sp.unsqueeze(-2)  # diag(√p) − p √pᵀ
    raise ValueError(f"the Laplace approximation supports the Gaussian, Bernoulli and Categorical likelihoods, "
                     f"not {type(likelihood).__name__}")


@torch.no_grad()
def ggn(model, x: torch.Tensor, mean: dict, *, subset: str = "all", structure: str = "kron",
        batch_size: int = 256) -> dict:
    """The GGN of −log p(y | x, θ) at the weights ``mean`` ({site: (D_site,)}, plus the
    likelihood's latents such as ``"noise"``) over the inputs ``x`` (it does not depend on y),
    restricted to ``subset`` and kept in ``structure`` (see the module docstring).  Returns
    ``{"diag": (P,)}``, ``{"full": (P, P)}`` or ``{"kron": [(G, A), ...]}`` (one pair per
    Bayesian layer, in the order of :func:`_layout`'s index), and ``"index"`` (P,)."""
    lay = _layout(model, subset)
    flat = torch.cat([mean[s].reshape(-1) for s in model.weight_sites])
    latents = {k: mean[k] for k in model.likelihood.latent_shapes()}
    n = x.shape[0]
    out = {"index": lay.index}
    if structure == "kron":
        _check_kron(model, lay)
        facs = [[0.0, 0.0] for _ in lay.blocks]
        for a, b in chunk_bounds(n, batch_size):
            with torch.enable_grad():
                # weights that require grad put the layer outputs in the graph (their own gradients are not used)
                values = {s: v.detach().requires_grad_() for s, v in _split_sites(model, flat, lay.site_offsets).items()}
                taps: dict = {}
                f = model.network(x[a:b], values, taps)
                sqrt = _loss_sqrt(model.likelihood, f.detach(), latents)
                outs = [taps[layer][1] for (layer, *_r) in lay.blocks]
                for c in range(f.shape[-1]):
                    grads = torch.autograd.grad((sqrt[:, :, c] * f).sum(), outs, retain_graph=True)
                    for j, g in enumerate(grads):
                        facs[j][0] = facs[j][0] + g.T @ g
            for j, (layer, _o, _in1, has_bias) in enumerate(lay.blocks):
                act = taps[layer][0].detach()
                if has_bias:
                    act = torch.cat([act, torch.ones_like(act[:, :1])], 1)
                facs[j][1] = facs[j][1] + act.T @ act
        out["kron"] = [(g, aa / n) for g, aa in facs]
        return out

    idx = lay.index.to(flat.device)
    p = idx.numel()

    def network_of(theta, xb):
        full = flat.index_put((idx,), theta)
        return model.network(xb, _split_sites(model, full, lay.site_offsets))

    k = model.likelihood.num_outputs()
    step = max(1, _JACOBIAN_BUDGET // (k * p))
    acc = torch.zeros(p, p, dtype=flat.dtype, device=flat.device) if structure == "full" else \
        torch.zeros(p, dtype=flat.dtype, device=flat.device)
    theta = flat[idx]
    for a, b in chunk_bounds(n, min(step, batch_size * 64)):
        xb = x[a:b]
        with torch.enable_grad():
            jac = torch.func.jacrev(network_of)(theta, xb)  # (B, k, P)
        sqrt = _loss_sqrt(model.likelihood, model.network(xb, _split_sites(model, flat, lay.site_offsets)), latents)
        jt = torch.einsum("bkc,bkp->bcp", sqrt, jac).reshape(-1, p)  # rows L_nᵀ J_n
        acc += jt.T @ jt if structure == "full" else jt.square().sum(0)
    out[structure] = acc
    return out


# ============================================================================ marginal likelihood
def _spectrum(curv: dict, structure: str) -> tuple[torch.Tensor, dict]:
    """The GGN approximation's eigenvalues (P,) and the eigen-decomposition to sample with."""
    if structure == "diag":
        d = curv["diag"].clamp(min=0)
        return d, {"diag": d}
    if structure == "full":
        lam, q = torch.linalg.eigh(curv["full"])
        lam = lam.clamp(min=0)
        return lam, {"eigvals": lam, "eigvecs": q}
    eig, parts = [], {}
    for j, (g, a) in enumerate(curv["kron"]):
        lg, qg = torch.linalg.eigh(g)
        la, qa = torch.linalg.eigh(a)
        lg, la = lg.clamp(min=0), la.clamp(min=0)
        eig.append(torch.outer(lg, la).reshape(-1))
        parts.update({f"kron.{j}.eigvals_g": lg, f"kron.{j}.eigvecs_g": qg, f"kron.{j}.eigvals_a": la,
                      f"kron.{j}.eigvecs_a": qa})
    return torch.cat(eig), parts


def log_marginal_likelihood(log_lik: float, sq_norm: float, eigvals: torch.Tensor, prior_precision) -> torch.Tensor:
    """Laplace's log p(D | δ) ≈ log p(D | θ̂) − ½ δ ‖θ̂‖² + ½ P log δ − ½ Σ log(e_i + δ) (module
    docstring) for δ = ``prior_precision`` (a number or a tensor of them)."""
    d = torch.as_tensor(prior_precision, dtype=torch.float64)
    e = eigvals.to(torch.float64).cpu()
    p = e.numel()
    logdet = torch.log(e.unsqueeze(-1) + d.reshape(1, -1)).sum(0).reshape(d.shape)
    return log_lik - 0.5 * d * sq_norm + 0.5 * p * torch.log(d) - 0.5 * logdet


def tune_prior_precision(sq_norm: float, eigvals: torch.Tensor, lo: float = 1e-8, hi: float = 1e8) -> float:
    """δ maximising :func:`log_marginal_likelihood`: the root of MacKay's condition
    δ ‖θ̂‖² = Σ_i e_i / (e_i + δ), by bisection on log δ within [lo, hi] (the bound when the
    root lies outside)."""
    e = eigvals.to(torch.float64).cpu()

    def excess(log_d):  # increasing in δ
        d = math.exp(log_d)
        return d * sq_norm - float((e / (e + d)).sum())

    a, b = math.log(lo), math.log(hi)
    if excess(a) >= 0:
        return lo
    if excess(b) <= 0:
        return hi
    for _ in range(200):
        m = 0.5 * (a + b)
        if excess(m) > 0:
            b = m
        else:
            a = m
        if b - a < 1e-12:
            break
    return math.exp(0.5 * (a + b))


# ============================================================================ the posterior
@dataclass(kw_only=True)
class LaplacePosterior(Posterior):
    """A Gaussian posterior N(θ̂, P⁻¹) over the weights ``index`` of the flat weight vector
    (all weight sites in the model's order); the other weights and the likelihood's latents stay
    at ``mean``.  ``curvature``: the eigen-decomposition P is sampled with (see
    :func:`fit_laplace`); ``prior_precision`` δ; ``history``: the MAP fit's."""

    method: str = "laplace"
    mean: dict
    index: torch.Tensor
    structure: str
    subset: str
    curvature: dict
    prior_precision: float
    predictive: str = "glm"
    blocks: list = field(default_factory=list)  # kron: [(out, in + 1)] per layer
    history: list = field(default_factory=list)

    @torch.no_grad()
    def predictive_distribution(self, x: torch.Tensor, draws: dict[str, torch.Tensor]):
        """Per-draw distribution of y: the network (``predictive="nn"``) or its linearisation at
        θ̂ (``"glm"``, see the module docstring) evaluated at the draws."""
        if self.predictive == "nn":
            return super().predictive_distribution(x, draws)
        model = self.model
        flat = self.flatten(draws)
        x = x.to(device=model.device, dtype=model.dtype)
        sites = model.weight_sites
        theta = torch.cat([flat[s].to(model.device) for s in sites], -1)  # (S, D)
        mean = self._flat_mean()
        offsets = _site_offsets(model)

        def f(th):
            return model.network(x, _split_sites(model, th, offsets))

        f0 = f(mean)
        lin = torch.func.vmap(lambda v: torch.func.jvp(f, (mean,), (v,))[1])(theta - mean)
        latents = {k: flat[k].to(model.device).reshape(-1, 1) for k in model.likelihood.latent_shapes()}
        return model.likelihood.distribution(f0 + lin, latents)

    def _flat_mean(self) -> torch.Tensor:
        return torch.cat([self.mean[s].reshape(-1) for s in self.model.weight_sites])

    def _perturbation(self, n: int) -> torch.Tensor:
        """n draws of θ − θ̂ ~ N(0, P⁻¹), (n, P), from torch's (seeded) generator."""
        d = self.prior_precision
        c = self.curvature
        dev, dt = self.model.device, self.model.dtype
        if self.structure == "diag":
            return torch.randn(n, c["diag"].numel(), device=dev, dtype=dt) / (c["diag"] + d).sqrt()
        if self.structure == "full":
            lam, q = c["eigvals"], c["eigvecs"]
            return (torch.randn(n, lam.numel(), device=dev, dtype=dt) / (lam + d).sqrt()) @ q.T
        parts = []
        for j, (o, i1) in enumerate(self.blocks):
            lg, qg, la, qa = (c[f"kron.{j}.{k}"] for k in ("eigvals_g", "eigvecs_g", "eigvals_a", "eigvecs_a"))
            z = torch.randn(n, o, i1, device=dev, dtype=dt) / (torch.outer(lg, la) + d).sqrt()
            parts.append((qg @ z @ qa.T).reshape(n, -1))  # (Q_G ⊗ Q_A) vec(Z), row-major
        return torch.cat(parts, 1)

    def _all_draws(self, num_samples, seed) -> dict[str, torch.Tensor]:
        n = 1000 if num_samples is None else int(num_samples)
        if n < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
        flat = self._flat_mean()
        with seeded(seed), torch.no_grad():
            draws = flat.expand(n, -1).clone()
            draws[:, self.index.to(flat.device)] += self._perturbation(n)
        out, start = {}, 0
        for s in self.model.weight_sites:
            size = self.model.site_sizes[s]
            out[s] = draws[:, start:start + size].unsqueeze(0)
            start += size
        for k in self.model.likelihood.latent_shapes():
            v = self.mean[k]
            out[k] = v.expand(1, n, *v.shape).clone()
        return out

    def draw_chunks(self, num_samples: int | None = None, seed: int | None = None, *, chunk_draws: int | None = None,
                    thin: int | None = None, max_draws: int | None = None):
        """:meth:`Posterior.draw_chunks`: the draws are made at once and handed out in chunks."""
        full = self.draws(num_samples, seed=seed, thin=thin, max_draws=max_draws)
        total = next(iter(full.values())).shape[1]
        for a, b in chunk_bounds(total, chunk_draws):
            yield a, {k: v[:, a:b] for k, v in full.items()}

    def draw_shape(self, num_samples: int | None = None, *, thin: int | None = None,
                   max_draws: int | None = None) -> tuple[int, int]:
        n = 1000 if num_samples is None else int(num_samples)
        return 1, draw_index(n, 1, thin=thin, max_draws=max_draws).numel()

    # ------------------------------------------------------------------ saving
    def state(self) -> tuple[dict, dict]:
        """(plain description, tensors) from which :meth:`from_state` rebuilds this posterior."""
        meta = {"structure": self.structure, "subset": self.subset, "prior_precision": self.prior_precision,
                "predictive": self.predictive, "blocks": [list(b) for b in self.blocks]}
        tensors = {"index": self.index, **{f"mean.{k}": v for k, v in self.mean.items()},
                   **{f"curvature.{k}": v for k, v in self.curvature.items()}}
        return meta, tensors

    @classmethod
    def from_state(cls, model, meta: dict, tensors: dict, *, info=None, history=()) -> "LaplacePosterior":
        dev = model.device
        mean = {k[5:]: v.to(dev) for k, v in tensors.items() if k.startswith("mean.")}
        curv = {k[10:]: v.to(dev) for k, v in tensors.items() if k.startswith("curvature.")}
        return cls(model=model, mean=mean, index=tensors["index"], structure=meta["structure"], subset=meta["subset"],
                   curvature=curv, prior_precision=float(meta["prior_precision"]),
                   predictive=meta.get("predictive", "glm"),
                   blocks=[tuple(b) for b in meta.get("blocks", [])], info=dict(info or {}), history=list(history))


# ============================================================================ fitting
def fit_laplace(model, x, y, settings: LaplaceSettings | None = None, *, device="auto", dtype: torch.dtype | None = None,
                seed: int | None = 0, progress: bool = True, handle_interrupt: bool = True,
                **options) -> LaplacePosterior:
    """Laplace approximation of the posterior of ``model`` given (x, y): a MAP fit by
    :func:`~pyrobnn.fit_svi` with a :class:`~pyrobnn.guides.Delta` guide (``epochs``,
    ``batch_size``, ``optimizer``, ``lr``; the model's prior), then the GGN at the MAP over the
    full data (``subset``, ``structure``) and the prior precision δ (``prior_precision``, or
    tuned by the marginal likelihood); predictions from ``predictive`` "glm" or "nn"; see the
    module docstring for the equations.  The settings are a :class:`LaplaceSettings`
    (``settings``, default ``LaplaceSettings()``) with any of its fields given by name in
    ``options``, e.g. ``fit_laplace(net, x, y, subset="last_layer", structure="full")``.
    Returns a :class:`LaplacePosterior`; ``info`` records the settings, δ, the log marginal
    likelihood at δ and the times."""
    names = {f.name for f in dataclasses.fields(LaplaceSettings)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"fit_laplace got unknown settings {unknown}; the settings are {sorted(names)}")
    if settings is not None and not isinstance(settings, LaplaceSettings):
        raise TypeError(f"settings must be a LaplaceSettings or None, got {type(settings).__name__}")
    settings = dataclasses.replace(settings or LaplaceSettings(), **options)
    subset, structure, predictive = settings.subset, settings.structure, settings.predictive
    prior_precision = settings.prior_precision
    seed = check_seed(seed)
    x, y = prepare_data(model, x, y)
    if structure == "kron":  # fail before the MAP fit
        _check_kron(model, _layout(model, subset))
    _loss_sqrt(model.likelihood, torch.zeros(1, model.likelihood.num_outputs()), {"noise": torch.ones(())})
    t0 = time.perf_counter()
    map_fit = fit_svi(model, Delta(model), x, y, epochs=settings.epochs, batch_size=settings.batch_size,
                      optimizer=settings.optimizer, lr=settings.lr, device=device, dtype=dtype, seed=seed,
                      progress=progress, handle_interrupt=handle_interrupt)
    t_map = time.perf_counter() - t0
    mean = {k: v.detach() for k, v in map_fit.guide.median().items()}
    x = x.to(device=model.device, dtype=model.dtype)
    y = y.to(model.device)
    y = y if model.likelihood.task == "multiclass" else y.to(model.dtype)
    with torch.no_grad():
        curv = ggn(model, x, mean, subset=subset, structure=structure)
        eig, parts = _spectrum(curv, structure)
        one = {k: v.unsqueeze(0) for k, v in mean.items()}
        log_lik = float(model.predictive_distribution(x, one).log_prob(y).sum())
    index = curv["index"]
    flat = torch.cat([mean[s].reshape(-1) for s in model.weight_sites])
    sq_norm = float(flat[index.to(flat.device)].square().sum())
    delta = tune_prior_precision(sq_norm, eig) if prior_precision is None else float(prior_precision)
    lml = float(log_marginal_likelihood(log_lik, sq_norm, eig, delta))
    lay = _layout(model, subset)
    info = {**map_fit.info, "laplace": dataclasses.asdict(settings), "prior_precision": delta,
            "prior_precision_tuned": prior_precision is None, "log_marginal_likelihood": lml,
            "log_likelihood_at_map": log_lik, "num_laplace_weights": int(index.numel()),
            "map_seconds": t_map, "laplace_seconds": time.perf_counter() - t0 - t_map}
    info.pop("guide", None)
    return LaplacePosterior(model=model, mean=mean, index=index, structure=structure, subset=subset, curvature=parts,
                            prior_precision=delta, predictive=predictive,
                            blocks=[(o, i1) for (_l, o, i1, *_r) in lay.blocks], history=list(map_fit.history),
                            info=info)
