"""Export a :class:`~pyrobnn.infer.posterior.Posterior` as an ArviZ 1.x ``xarray.DataTree``.

The tree follows the InferenceData schema (Kumar, Carroll, Hartikainen & Martin, "ArviZ a
unified library for exploratory analysis of Bayesian models in Python", JOSS 2019; schema at
python.arviz.org), so ArviZ alone — without pyrobnn — can reopen and analyse it:

======================  ===================================================================
group                   contents
======================  ===================================================================
posterior               one variable per weight tensor (``layers.0.weight`` with dims
                        ``layers.0.out``, ``layers.0.in``; ``layers.0.bias``; ...) and the
                        likelihood's own latents (``noise``); dims (chain, draw, ...)
posterior_predictive    ``obs``: one y draw per posterior draw at the in-sample inputs
log_likelihood          ``obs``: pointwise log p(y_n | x_n, w), (chain, draw, obs_id)
observed_data           ``obs``: the in-sample targets
constant_data           ``x``: the in-sample inputs
sample_stats            MCMC: ``diverging``, ``acceptance_rate``, ``step_size``,
                        ``tree_depth``, ``energy`` ...; SVI: ``log_q`` and ``log_p``
                        (see below)
predictions             at the evaluation inputs: ``obs`` draws, the per-draw function
                        values (regression: ``mu`` = E[y | x, w]; classification:
                        ``prob`` = p(y | x, w)), which carry the function-space
                        convergence diagnostics, the predictive summary (regression:
                        ``mean``, ``aleatoric_var``, ``epistemic_var``, ``total_var``,
                        ``quantiles``; classification: ``probs``, ``label``, ``entropy``,
                        ``expected_entropy``, ``mutual_information``) and the pointwise
                        log predictive density ``lpd``
predictions_constant_data  ``x``: the evaluation inputs
predictions_observed_data  ``obs``: the evaluation targets (when given)
svi                     SVI history per epoch: ``loss`` (negative ELBO), ``nll``, ``kl``,
                        ``seconds``
prior, prior_predictive optional draws from the prior (``prior_samples > 0``)
======================  ===================================================================

Which data are "in-sample".  PSIS-LOO, LOO-PIT and posterior predictive checks are defined
on the data the posterior was conditioned on (Vehtari, Gelman & Gabry, "Practical Bayesian
model evaluation using leave-one-out cross-validation and WAIC", Statistics and Computing
2017).  When the training data are given (``train=(x, y)`` or ``dataset=``), they fill the
in-sample groups and ``(x, y)`` — typically the test split — fill the ``predictions`` groups;
otherwise ``(x, y)`` fill both, and the root attribute ``in_sample`` says so ("train" or
"evaluation").

Variational posteriors.  For an SVI posterior ``sample_stats`` holds, per draw w_s ~ q,
``log_q`` = log q(w_s) and, when the training data are given, ``log_p`` = log p(w_s) +
Σ_n log p(y_n | x_n, w_s) (the unnormalised log posterior).  ArviZ's
``loo_approximate_posterior(tree, log_p, log_q)`` then corrects PSIS-LOO for the fact that
the draws come from q rather than from the posterior (Magnusson, Andersen, Jonasson &
Vehtari, "Bayesian leave-one-out cross-validation for large data", ICML 2019, eq. 6).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import warnings
import weakref
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..infer.evaluation import CHUNK_VALUES, PREDICTIVE_QUANTILES, Evaluation, auto_chunk_draws
from ..utils.files import replace_dir, usual_mode

__all__ = ["to_datatree", "save_datatree", "load_datatree", "weight_dims", "auto_chunk_draws", "MCMC_STAT_NAMES",
           "MAX_INPUT_VALUES", "CHUNK_VALUES"]

#: Pyro/pyrobnn sampler statistic names → ArviZ's ``sample_stats`` names.
MCMC_STAT_NAMES = {
    "accept_prob": "acceptance_rate",
    "num_steps": "n_steps",
    "divergent": "diverging",
}

# --------------------------------------------------------------------------- utilities
def _np(t) -> np.ndarray:
    if torch.is_tensor(t):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _as_tensor(a, name: str) -> torch.Tensor:
    if a is None:
        return None
    if torch.is_tensor(a):
        return a
    try:
        return torch.as_tensor(np.asarray(a))
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"{name} must be a tensor or array, got {type(a).__name__}") from exc


def weight_dims(model, name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Named dimensions of weight tensor ``name`` (e.g. ``"layers.0.weight"``).

    Linear: weight (``layers.i.out``, ``layers.i.in``), bias (``layers.i.out``); Conv2d:
    weight (``layers.i.out``, ``layers.i.in``, ``layers.i.kh``, ``layers.i.kw``); anything
    else ``<name>_dim_k``.  Weight and bias of one layer share the ``out`` dimension."""
    prefix, _, pname = name.rpartition(".")
    if len(shape) == 2 and pname == "weight":
        return (f"{prefix}.out", f"{prefix}.in")
    if len(shape) == 4 and pname == "weight":
        return (f"{prefix}.out", f"{prefix}.in", f"{prefix}.kh", f"{prefix}.kw")
    if len(shape) == 1 and pname == "bias":
        return (f"{prefix}.out",)
    return tuple(f"{name}_dim_{k}" for k in range(len(shape)))


def _spec_text(spec) -> str | None:
    """TOML text of a spec given as text, a path, or a parsed spec with ``source_text``."""
    if spec is None:
        return None
    text = getattr(spec, "source_text", None)
    if text:
        return str(text)
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if len(str(spec)) < 4096 and "\n" not in str(spec) and p.is_file():
            return p.read_text()
        return str(spec)
    if isinstance(spec, dict):
        return json.dumps(spec, default=str, indent=1)
    return repr(spec)


def _plain(v, depth: int = 0):
    """A JSON-friendly copy of ``v``: small tensors/arrays as lists, large ones as a shape note."""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if torch.is_tensor(v) or isinstance(v, np.ndarray):
        arr = _np(v)
        return arr.tolist() if arr.size <= 16 else f"array of shape {tuple(arr.shape)}"
    if isinstance(v, dict) and depth < 4:
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and depth < 4:
        return [_plain(x, depth + 1) for x in v] if len(v) <= 64 else f"list of {len(v)} items"
    return str(v)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "pyro-ppl", "arviz", "xarray", "pyrobnn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


# --------------------------------------------------------------------------- groups
def _posterior_dataset(model, draws: dict[str, torch.Tensor]) -> xr.Dataset:
    chain, draw = next(iter(draws.values())).shape[:2]
    data_vars, coords = {}, {"chain": np.arange(chain), "draw": np.arange(draw)}
    weight_sites = set(getattr(model, "site_sizes", {}))
    if weight_sites and hasattr(model, "unpack"):
        unpacked = model.unpack({s: draws[s] for s in weight_sites})
        for name, v in unpacked.items():
            dims = weight_dims(model, name, tuple(v.shape[2:]))
            data_vars[name] = (("chain", "draw", *dims), _np(v))
    for site, v in draws.items():
        if site in weight_sites:
            continue
        dims = tuple(f"{site}_dim_{k}" for k in range(v.dim() - 2))
        data_vars[site] = (("chain", "draw", *dims), _np(v))
    return xr.Dataset(data_vars, coords=coords)


def _sample_stats_dataset(posterior, log_q, log_p, draw_rows=None) -> xr.Dataset | None:
    """``sample_stats``: the sampler's statistics at the exported draws (``draw_rows``: their
    indices among the stored draws of each chain) and the variational ``log_q``/``log_p``."""
    data_vars = {}
    for name, v in (posterior.sample_stats or {}).items():
        arr = _np(v)
        if arr.ndim < 2:
            continue
        if draw_rows is not None and arr.shape[1] > int(draw_rows.max(initial=0)):
            arr = arr[:, draw_rows]
        key = MCMC_STAT_NAMES.get(name, name)
        if name == "potential_energy":
            key, arr = "lp", -arr
        if key == "diverging":
            arr = arr.astype(bool)
        data_vars[key] = (("chain", "draw", *(f"{key}_dim_{k}" for k in range(arr.ndim - 2))), arr)
    for key, v in (("log_q", log_q), ("log_p", log_p)):
        if v is not None:
            data_vars[key] = (("chain", "draw"), _np(v))
    if not data_vars:
        return None
    shp = next(iter(data_vars.values()))[1].shape
    return xr.Dataset(data_vars, coords={"chain": np.arange(shp[0]), "draw": np.arange(shp[1])})


def _history_dataset(history: list[dict]) -> xr.Dataset | None:
    if not history:
        return None
    keys = [k for k in history[0] if k != "epoch" and isinstance(history[0][k], (int, float))]
    epochs = np.array([int(h.get("epoch", i + 1)) for i, h in enumerate(history)])
    data = {k: ("epoch", np.array([float(h.get(k, np.nan)) for h in history])) for k in keys}
    ds = xr.Dataset(data, coords={"epoch": epochs})
    if "loss" in ds:
        ds["loss"].attrs["long_name"] = "negative ELBO (per epoch, mean over minibatches)"
    return ds


def _observed(task: str, y: torch.Tensor) -> np.ndarray:
    arr = _np(y)
    if task in ("binary", "multiclass"):
        return arr.astype(np.int64)
    return arr


#: inputs with more values than this are left out of ``constant_data`` (images: the file
#: would be dominated by them; ArviZ does not need them).
MAX_INPUT_VALUES = 1_000_000
#: per-draw function values (``mu``/``prob`` in ``predictions``) are stored up to this many
MAX_FUNCTION_VALUES = 5_000_000


def _x_dataset(x: torch.Tensor, dim: str) -> xr.Dataset:
    coords = {dim: np.arange(x.shape[0])}
    if x.numel() > MAX_INPUT_VALUES:
        ds = xr.Dataset(coords=coords)
        ds.attrs["note"] = (f"inputs of shape {tuple(x.shape)} not stored (more than {MAX_INPUT_VALUES} values)")
        return ds
    arr = _np(x)
    dims = (dim, *(f"x_dim_{k}" for k in range(arr.ndim - 1)))
    return xr.Dataset({"x": (dims, arr)}, coords=coords)


def _predictions_summary(task, summary, ds: xr.Dataset, per_draw_values: int, keep_draws: bool) -> xr.Dataset:
    """The predictive summary (regression: ``mean``, ``aleatoric_var``, ``epistemic_var``,
    ``total_var``, ``quantiles``; classification: ``probs``, ``label``, ``entropy``,
    ``expected_entropy``, ``mutual_information``) and the pointwise log predictive density
    ``lpd`` added to ``ds`` (the ``predictions`` group, whose per-draw arrays are written
    chunk by chunk)."""
    dim = "pred_id"
    pred, lpd = summary.prediction, summary.lpd
    dv, coords = {}, {}
    if task == "regression":
        dv["mean"] = ((dim,), _np(pred.mean))
        dv["aleatoric_var"] = ((dim,), _np(pred.aleatoric_var))
        dv["epistemic_var"] = ((dim,), _np(pred.epistemic_var))
        dv["total_var"] = ((dim,), _np(pred.total_var))
        # central 50% and 90% intervals of the predictive of y (Prediction.interval)
        dv["quantiles"] = ((dim, "quantile"), _np(summary.quantiles).T)
        coords["quantile"] = np.array(PREDICTIVE_QUANTILES)
    else:
        probs = _np(pred.probs)
        dv["probs"] = ((dim, "class"), probs)
        dv["label"] = ((dim,), probs.argmax(-1).astype(np.int64))
        dv["entropy"] = ((dim,), _np(pred.entropy))
        dv["expected_entropy"] = ((dim,), _np(pred.expected_entropy))
        dv["mutual_information"] = ((dim,), _np(pred.mutual_information))
        coords["class"] = np.arange(probs.shape[-1])
    if lpd is not None:
        dv["lpd"] = ((dim,), _np(lpd))
    ds = ds.assign_coords(coords).assign(dv)
    if not keep_draws:
        ds.attrs["note"] = (f"per-draw function values not stored ({per_draw_values} values, more than "
                            f"{MAX_FUNCTION_VALUES}): no function-space diagnostics")
    if "quantiles" in ds:
        ds["quantiles"].attrs["long_name"] = ("quantiles of the predictive of y; (0.05, 0.95) and (0.25, 0.75) "
                                              "bound the central 90% and 50% intervals")
    if "lpd" in ds:
        ds["lpd"].attrs["long_name"] = "log posterior predictive density log (1/S) sum_s p(y_n | x_n, w_s)"
    return ds


# --------------------------------------------------------------------------- chunked export
class _MemorySink:
    """Per-draw arrays collected in memory, chunk by chunk (an export of one chunk)."""

    def __init__(self, chain, draw):
        self.chain, self.draw = chain, draw
        self.parts: dict[tuple[str, str], tuple[tuple, list]] = {}

    def rows(self, group, name, dims, start, arr, attrs=None):
        self.parts.setdefault((group, name), (tuple(dims), [], attrs or {}))[1].append(arr)

    def merge(self, groups):
        for (group, name), (dims, arrs, attrs) in self.parts.items():
            arr = arrs[0] if len(arrs) == 1 else np.concatenate(arrs)
            ds = groups[group]
            ds[name] = (("chain", "draw", *dims), arr.reshape(self.chain, self.draw, *arr.shape[1:]))
            ds[name].attrs.update(attrs)
        return groups

    def abort(self):
        self.parts.clear()


class _NetCDFSink:
    """Per-draw arrays written chunk by chunk into a netCDF4 file (h5netcdf): rows of the flat
    (chain·draw) axis go to their (chain, draw) slices; the rest of the tree is added by
    :meth:`finish`.  The file is built under a temporary name and renamed into place."""

    def __init__(self, path: Path, chain, draw):
        self.path, self.chain, self.draw = Path(path), chain, draw
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        xr.Dataset().to_netcdf(self.tmp, mode="w", engine="h5netcdf")
        self.file = None
        self.created: dict[str, set] = {}
        self.vars: dict[tuple[str, str], object] = {}

    def open_groups(self, coords: dict[str, dict]):
        """Create every group with its coordinates (before any per-draw rows)."""
        for group, c in coords.items():
            xr.Dataset(coords=c).to_netcdf(self.tmp, mode="a", group=group, engine="h5netcdf")
            self.created[group] = set(c)

    def rows(self, group, name, dims, start, arr, attrs=None):
        import h5netcdf

        if self.file is None:
            self.file = h5netcdf.File(self.tmp, "a")
        key = (group, name)
        if key not in self.vars:
            g = self.file[group]
            for d, n in zip(dims, arr.shape[1:]):
                if d not in g.dimensions:
                    g.dimensions[d] = n
            shape = (self.chain, self.draw, *arr.shape[1:])
            chunks = (1, max(1, min(self.draw, arr.shape[0])), *arr.shape[1:])
            v = g.create_variable(name, ("chain", "draw", *dims), dtype=arr.dtype, chunks=chunks)
            assert tuple(v.shape) == shape
            for k, val in (attrs or {}).items():
                v.attrs[k] = val
            self.vars[key] = v
        v = self.vars[key]
        # the rows start .. start + k of the flat axis, split at chain boundaries
        k, pos = arr.shape[0], 0
        while pos < k:
            c, d = divmod(start + pos, self.draw)
            n = min(k - pos, self.draw - d)
            v[c, d:d + n] = arr[pos:pos + n]
            pos += n

    def finish(self, groups, attrs, group_attrs, attributed):
        """Add the groups' other variables and the attributes, rename the file into place and
        return the tree opened from it lazily."""
        if self.file is not None:
            self.file.close()
            self.file = None
        for group, ds in groups.items():
            if group in self.created:  # these coordinates are already there
                ds = ds.drop_vars([c for c in ds.coords if c in self.created[group]])
            ds.to_netcdf(self.tmp, mode="a", group=group, engine="h5netcdf")
        import h5netcdf

        with h5netcdf.File(self.tmp, "a") as f:
            for k, val in attrs.items():
                f.attrs[k] = val
            for name in attributed:
                if name in f.groups:
                    for k, val in group_attrs.items():
                        f[name].attrs[k] = val
        usual_mode(self.tmp)
        os.replace(self.tmp, self.path)
        return xr.open_datatree(self.path, engine="h5netcdf")

    def abort(self):
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.tmp.exists():
            self.tmp.unlink()


def _draw_groups(ev, sink, include_weights):
    """Every group that depends on the draws, from the chunks of the evaluation ``ev`` in
    order: per-draw arrays go to ``sink``; returns (groups of small variables, log_q, log_p)."""
    model, task, chain, draw = ev.model, ev.task, ev.chain, ev.draw
    coords = {"chain": np.arange(chain), "draw": np.arange(draw)}
    groups: dict[str, xr.Dataset] = {"posterior": xr.Dataset(coords=coords)}
    xs, ys = (ev.x_train, ev.y_train) if ev.in_sample == "train" else (ev.x, ev.y)
    if ev.in_sample is not None:
        oc = {**coords, "obs_id": np.arange(xs.shape[0])}
        groups["posterior_predictive"] = xr.Dataset(coords=oc)
        groups["log_likelihood"] = xr.Dataset(coords=oc)
        groups["observed_data"] = xr.Dataset({"obs": (("obs_id",), _observed(task, ys))},
                                             coords={"obs_id": np.arange(xs.shape[0])})
        groups["constant_data"] = _x_dataset(xs, "obs_id")
    per_draw_values = 0
    if ev.x is not None:
        pc = {**coords, "pred_id": np.arange(ev.x.shape[0])}
        groups["predictions"] = xr.Dataset(coords=pc)
    if isinstance(sink, _NetCDFSink):
        sink.open_groups({g: dict(ds.coords) for g, ds in groups.items()
                          if g in ("posterior", "posterior_predictive", "log_likelihood", "predictions")})

    keep_draws = None
    weight_sites = set(getattr(model, "site_sizes", {}))
    log_q_parts, log_p_parts = [], []
    for c in ev.chunks():
        if include_weights:
            _posterior_rows(sink, model, c.draws, c.start, weight_sites)
        if c.train is not None:
            _, ll_s, yd = c.train
            sink.rows("posterior_predictive", "obs", ("obs_id",), c.start, _np(yd))
            sink.rows("log_likelihood", "obs", ("obs_id",), c.start, _np(ll_s[0]))
        if c.evaluation is not None:
            pred, _, yd = c.evaluation
            sink.rows("predictions", "obs", ("pred_id",), c.start, _np(yd),
                      {"long_name": "posterior predictive draws of y"})
            per = pred.mean_draws if task == "regression" else pred.prob_draws
            if keep_draws is None:
                per_draw_values = per.numel() // per.shape[0] * chain * draw
                keep_draws = per_draw_values <= MAX_FUNCTION_VALUES
            if keep_draws and task == "regression":
                sink.rows("predictions", "mu", ("pred_id",), c.start, _np(per), {"long_name": _MU_NAME})
            elif keep_draws:
                sink.rows("predictions", "prob", ("pred_id", "class"), c.start, _np(per), {"long_name": _PROB_NAME})
        # a density missing for any chunk drops it for all (a guide or prior without one)
        log_q_parts = None if log_q_parts is None or c.log_q is None else log_q_parts + [c.log_q]
        log_p_parts = None if log_p_parts is None or c.log_p is None else log_p_parts + [c.log_p]
    if ev.x is not None:
        groups["predictions"] = _predictions_summary(task, ev.summary(), groups["predictions"], per_draw_values,
                                                     keep_draws)
        groups["predictions_constant_data"] = _x_dataset(ev.x, "pred_id")
        if ev.y is not None:
            groups["predictions_observed_data"] = xr.Dataset(
                {"obs": (("pred_id",), _observed(task, ev.y))}, coords={"pred_id": np.arange(ev.x.shape[0])})
    log_q = torch.cat(log_q_parts) if log_q_parts else None
    log_p = torch.cat(log_p_parts) if log_p_parts and log_q is not None else None
    if log_q is not None and not torch.isfinite(log_q).all():
        log_q = log_p = None
    if log_q is not None:
        log_q = log_q.reshape(chain, draw)
    if log_p is not None:
        log_p = log_p.reshape(chain, draw) if torch.isfinite(log_p).all() else None
    return groups, log_q, log_p


def _posterior_rows(sink, model, dc, start, weight_sites):
    """One chunk of the ``posterior`` group: weights by layer name, then other latent sites."""
    if weight_sites and hasattr(model, "unpack"):
        for name, v in model.unpack({s: dc[s] for s in weight_sites}).items():
            dims = weight_dims(model, name, tuple(v.shape[2:]))
            sink.rows("posterior", name, dims, start, _np(v[0]))
    for site, v in dc.items():
        if site in weight_sites:
            continue
        dims = tuple(f"{site}_dim_{k}" for k in range(v.dim() - 2))
        sink.rows("posterior", site, dims, start, _np(v[0]))


_MU_NAME = "predictive mean E[y | x, w] of each posterior draw (the network's output)"
_PROB_NAME = "class probabilities p(y | x, w) of each posterior draw"


def to_datatree(
    posterior,
    x=None,
    y=None,
    *,
    train: tuple | None = None,
    dataset=None,
    num_samples: int | None = None,
    prior_samples: int = 0,
    seed: int = 0,
    model_spec=None,
    inference_spec=None,
    include_weights: bool = True,
    batch_size: int = 4096,
    thin: int | None = None,
    max_draws: int | None = None,
    chunk_draws: int | None = None,
    store=None,
) -> xr.DataTree:
    """An InferenceData-schema ``xarray.DataTree`` of ``posterior`` (see the module docstring).

    Args:
        posterior: a :class:`~pyrobnn.infer.posterior.Posterior` (SVI or MCMC), whose
            :meth:`~pyrobnn.infer.posterior.Posterior.evaluation` makes the draws with the
            arguments below; or an :class:`~pyrobnn.infer.evaluation.Evaluation` made already,
            which is only converted (then ``x``, ``y``, ``train``, ``num_samples``, ``seed``,
            ``thin``, ``max_draws`` and ``chunk_draws`` must not be given).  The export itself
            draws nothing.
        x, y: evaluation inputs and targets (typically the test split); ``y`` may be None.
        train: ``(x_train, y_train)``, the data the posterior was fitted to; fills the
            in-sample groups (``log_likelihood`` for PSIS-LOO, ``posterior_predictive``,
            ``observed_data``) and, for SVI, ``sample_stats.log_p``.
        dataset: a :class:`~pyrobnn.data.Dataset`; supplies ``x, y`` (its test split, or its
            training split when it has none) and ``train`` when those are not given, and
            records its name, sizes and target standardisation in the root attributes.
        num_samples: SVI: number of guide draws (default 500); MCMC: the stored draws are
            thinned evenly to about this many in total (default: keep them all).
        prior_samples: draws from the prior for the ``prior``/``prior_predictive`` groups (0:
            none; skipped with a note for an improper prior).
        seed: seed of the guide draws and of the predictive y draws.
        model_spec, inference_spec: TOML text, a path, or a parsed spec (its ``source_text``
            is stored); default: ``posterior.info["model_spec"]`` / ``["inference_spec"]``.
        include_weights: False leaves the weights out of ``posterior`` (large networks).
        batch_size: evaluation inputs per vectorised predictive pass.
        thin: keep every ``thin``-th draw of each chain (SVI: of the ``num_samples`` guide draws).
        max_draws: keep at most this many draws in all, evenly spaced within each chain
            (after ``thin``); see :func:`pyrobnn.infer.posterior.draw_index`.
        chunk_draws: posterior draws generated and evaluated at once (rounded up to a multiple
            of 16; default :func:`auto_chunk_draws`).  The tree's values do not depend on it:
            per-draw arrays are bitwise the same, means over draws agree to float rounding.
        store: a ``.nc`` path: the tree is written there group by group and chunk by chunk and
            returned opened from it lazily (variables are read when used).  Without a store, an
            export of one chunk is built in memory; one of several chunks is streamed into a
            temporary file that is removed when the returned tree is garbage-collected.

    Memory.  With k = ``chunk_draws``, W weights, B = ``batch_size``, H the widest layer,
    N the larger of the training and evaluation sizes and K the classes (1 for regression),
    a streamed export holds about ``4·k·W + 3·k·B·H + 4·k·N·K`` values of the model's dtype
    at once (draws with their log-density temporaries; activations of one batch of inputs;
    the chunk's per-draw probabilities, log-likelihoods and y draws) plus O(N·K) running
    sums — independent of the number of draws S — except for regression, whose predictive
    quantiles need the per-draw means and noise of all S draws at the evaluation points and
    20 y draws per draw (about 22·S·N values), and for the optional ``prior`` group (drawn
    at once).  ``benchmarks/export_memory.py`` measures it.
    """
    evaluation = None
    if isinstance(posterior, Evaluation):  # draws already made: only convert them
        evaluation, posterior = posterior, posterior.posterior
        given = [name for name, v in (("x", x), ("y", y), ("train", train), ("num_samples", num_samples),
                                      ("thin", thin), ("max_draws", max_draws), ("chunk_draws", chunk_draws))
                 if v is not None]
        if given or seed != 0:
            raise ValueError(f"{', '.join(given + (['seed'] if seed != 0 else []))}: given with an Evaluation, "
                             f"which already fixes the inputs and draws; pass them to Posterior.evaluation instead")
    model = posterior.model
    if not hasattr(model, "likelihood"):
        raise TypeError(f"posterior.model must be a pyrobnn BNN, got {type(model).__name__}")
    task = model.likelihood.task
    if dataset is not None and evaluation is None:
        if x is None:
            if dataset.x_test is not None:
                x, y = dataset.x_test, dataset.y_test
            else:
                x, y = dataset.x_train, dataset.y_train
        if train is None and dataset.x_test is not None:
            train = (dataset.x_train, dataset.y_train)
    x, y = _as_tensor(x, "x"), _as_tensor(y, "y")
    if x is not None and y is not None and x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}; expected equal")
    if train is not None:
        if not (isinstance(train, (tuple, list)) and len(train) == 2):
            raise TypeError("train must be a pair (x_train, y_train)")
        x_tr, y_tr = _as_tensor(train[0], "train[0]"), _as_tensor(train[1], "train[1]")
        if x_tr.shape[0] != y_tr.shape[0]:
            raise ValueError(f"train: x has {x_tr.shape[0]} rows but y has {y_tr.shape[0]}; expected equal")
    else:
        x_tr = y_tr = None
    if evaluation is not None:
        x_tr = evaluation.x_train
    if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
        raise ValueError(f"num_samples must be a positive integer or None, got {num_samples!r}")

    # every draw is made by the posterior's evaluation; here it is only converted
    ev = evaluation if evaluation is not None else posterior.evaluation(
        x, y, train=train, num_samples=num_samples, seed=seed, thin=thin, max_draws=max_draws,
        chunk_draws=chunk_draws, batch_size=batch_size)
    chain, draw = ev.chain, ev.draw
    streamed = store is not None or len(ev.bounds) > 1
    tmp_dir = None
    if streamed and store is None:
        tmp_dir = tempfile.mkdtemp(prefix="pyrobnn-export-")
        store = Path(tmp_dir) / "posterior.nc"
    if store is not None:
        store = Path(store)
        if store.suffix.lower() != ".nc":
            raise ValueError(f"store must be a path ending in .nc, got {str(store)!r}")
    sink = _NetCDFSink(store, chain, draw) if streamed else _MemorySink(chain, draw)
    try:
        groups, log_q, log_p = _draw_groups(ev, sink, include_weights)
    except BaseException:
        sink.abort()
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    in_sample = ev.in_sample
    x, seed = ev.x, ev.seed
    stats = _sample_stats_dataset(posterior, log_q, log_p, draw_rows=ev.kept_rows())
    if stats is not None:
        groups["sample_stats"] = stats

    hist = _history_dataset(posterior.history)
    if hist is not None:
        groups["svi"] = hist

    notes = []
    if prior_samples and prior_samples > 0:
        probe = ev.x if ev.x is not None else ev.x_train
        if probe is None:
            notes.append("prior group skipped: no inputs were given")
        else:
            prior_groups, note = _prior_groups(ev, probe, int(prior_samples))
            groups.update(prior_groups)
            if note:
                notes.append(note)

    # root attributes: provenance and how to read the tree
    info = dict(posterior.info or {})
    ms = _spec_text(model_spec) or _spec_text(info.pop("model_spec", None))
    ins = _spec_text(inference_spec) or _spec_text(info.pop("inference_spec", None))
    info.pop("model_spec", None)
    info.pop("inference_spec", None)
    versions = _versions()
    attrs = {
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "creation_library": "pyrobnn",
        "creation_library_version": versions["pyrobnn"],
        "inference_library": "pyro",
        "inference_library_version": versions["pyro-ppl"],
        "torch_version": versions["torch"],
        "arviz_version": versions["arviz"],
        "xarray_version": versions["xarray"],
        "method": str(posterior.method),
        "task": task,
        "seed": int(seed),
        "num_chains": int(chain),
        "num_draws": int(draw),
        "num_weights": int(getattr(model, "num_weights", 0)),
        "model_repr": repr(model),
        "fit_info": json.dumps(_plain(info), default=str),
        "in_sample": in_sample or "none",
    }
    if ms:
        attrs["model_spec"] = ms
    if ins:
        attrs["inference_spec"] = ins
    if x_tr is not None:
        attrs["n_train"] = int(x_tr.shape[0])
    if x is not None:
        attrs["n_eval"] = int(x.shape[0])
    if task != "regression":
        attrs["num_classes"] = int(groups["predictions"].sizes["class"]) if "predictions" in groups else 0
    if dataset is not None:
        attrs["dataset"] = str(getattr(dataset, "name", ""))
        for key in ("x_mean", "x_std", "y_mean", "y_std"):
            v = getattr(dataset, key, None)
            if v is not None and torch.as_tensor(v).numel() == 1:
                attrs[key] = float(torch.as_tensor(v))
    if notes:
        attrs["notes"] = "; ".join(notes)
    for k in ("seconds", "seconds_total", "fit_seconds"):
        if k in info and isinstance(info[k], (int, float)):
            attrs["fit_seconds"] = float(info[k])
    if "fit_seconds" not in attrs and posterior.history:
        attrs["fit_seconds"] = float(sum(h.get("seconds", 0.0) for h in posterior.history))

    group_attrs = {"created_at": attrs["created_at"], "inference_library": "pyro", "creation_library": "pyrobnn"}
    if streamed:
        tree = sink.finish(groups, attrs, group_attrs, _ATTRIBUTED_GROUPS)
        if tmp_dir is not None:
            weakref.finalize(tree, shutil.rmtree, tmp_dir, True)
        return tree
    groups = sink.merge(groups)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(attrs)
    for name in _ATTRIBUTED_GROUPS:
        if name in tree.children:
            tree[name].attrs.update(group_attrs)
    return tree


_ATTRIBUTED_GROUPS = ("posterior", "sample_stats", "posterior_predictive", "log_likelihood", "predictions", "prior")


@torch.no_grad()
def _prior_groups(ev, x, n):
    try:
        draws, yd = ev.prior_predictive(x, n)
    except ValueError as exc:
        return {}, f"prior group skipped: {exc}"
    out = {"prior": _posterior_dataset(ev.model, draws)}
    dim = "obs_id"
    out["prior_predictive"] = xr.Dataset({"obs": (("chain", "draw", dim), _np(yd).reshape(1, n, -1))},
                                         coords={"chain": [0], "draw": np.arange(n), dim: np.arange(x.shape[0])})
    return out, None


# --------------------------------------------------------------------------- files
def save_datatree(tree: xr.DataTree, path) -> Path:
    """Write ``tree`` to ``path`` atomically: ``.nc`` (netCDF4 via h5netcdf) or ``.zarr``.

    The file is written under a temporary name beside ``path`` and renamed into place, so a
    reader never sees a half-written file.  In a ``.nc`` file, variables with dims
    (chain, draw, ...) larger than :data:`SLAB_VALUES` values are copied a slab of draws at a
    time, so a tree opened lazily (e.g. the one :func:`to_datatree` streams) is saved without
    loading them whole.  Reopen with ``xarray.open_datatree(path)`` (or
    ``arviz.from_netcdf`` / ``arviz.from_zarr``); pyrobnn is not needed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".nc", ".zarr"):
        raise ValueError(f"path must end in .nc or .zarr, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        if suffix == ".nc" and _large_draw_vars(tree):
            _copy_in_slabs(tree, target)
            os.replace(target, path)
        elif suffix == ".nc":
            tree.to_netcdf(target, engine="h5netcdf")
            os.replace(target, path)
        else:
            with warnings.catch_warnings():  # zarr 3: consolidated metadata is not in the v3 spec
                warnings.simplefilter("ignore", category=UserWarning)
                tree.to_zarr(target, mode="w")
            replace_dir(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


#: per-draw variables above this many values are saved slab by slab (see save_datatree)
SLAB_VALUES = 10_000_000


def _draw_vars(ds: xr.Dataset):
    return [n for n, v in ds.data_vars.items() if v.dims[:2] == ("chain", "draw") and v.size > SLAB_VALUES]


def _large_draw_vars(tree) -> bool:
    return any(_draw_vars(node.to_dataset()) for node in tree.subtree)


def _copy_in_slabs(tree, target: Path) -> None:
    """Write ``tree`` to ``target`` (netCDF4): per-draw variables above :data:`SLAB_VALUES`
    values a slab of draws at a time (each slab read from its source alone), the rest with
    xarray."""
    groups, big = {}, {}
    for node in tree.subtree:
        if node is tree:
            continue
        ds = node.to_dataset()
        name = node.path.lstrip("/")
        big[name] = _draw_vars(ds)
        groups[name] = ds.drop_vars(big[name])
    chain = draw = None
    for name, names in big.items():
        for n in names:
            chain, draw = (int(s) for s in tree[name][n].shape[:2])
    sink = _NetCDFSink(target, chain, draw)
    try:
        sink.open_groups({g: {c: groups[g][c].values for c in groups[g].coords if c in groups[g].dims}
                          for g, names in big.items() if names})
        for g, names in big.items():
            for n in names:
                da = tree[g][n]
                per_draw = max(1, int(da.size // (chain * draw)))
                step = max(1, SLAB_VALUES // per_draw)
                for c in range(chain):
                    for d0 in range(0, draw, step):
                        part = np.asarray(da.isel(chain=c, draw=slice(d0, d0 + step)).values)
                        sink.rows(g, n, da.dims[2:], c * draw + d0, part, dict(da.attrs))
        sink.finish(groups, dict(tree.attrs), {}, ()).close()
    except BaseException:
        sink.abort()
        raise


def load_datatree(path) -> xr.DataTree:
    """Open a tree written by :func:`save_datatree` and load it into memory (the file is
    closed afterwards, so it can be replaced)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    engine = "zarr" if path.suffix.lower() == ".zarr" else "h5netcdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        with xr.open_datatree(path, engine=engine) as tree:
            return tree.load().copy()
