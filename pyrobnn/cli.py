"""The ``pyrobnn`` command line.

::

    pyrobnn fit [MODEL.toml] [INFERENCE.toml] [--out DIR] [--set key=value ...] [--force]
                [--device DEVICE] [--quiet]
    pyrobnn predict RUN_DIR --x FILE.csv|.npy|.npz --out FILE.csv|.npy|.npz
    pyrobnn report RUN_DIR|FILE.nc [--out DIR]
    pyrobnn compare DIR DIR ... [--out DIR]

``fit`` builds the model and the data from a model spec, fits it as the inference spec says
(SVI or NUTS/HMC), exports the posterior evaluated on the test split, and writes the report
into the run directory, together with what ``predict`` needs (``model.toml``,
``inference.toml``, ``model.pt``, ``guide.pt`` or ``samples.pt``, ``data.pt``).  With no
spec it runs the built-in default, toy regression with a mean-field guide.  The run directory
is written under a temporary name and renamed into place when complete.

Bad arguments, malformed specs and missing files end with exit status 2 and one line on
stderr; a fit that fails (e.g. a non-finite loss) ends with status 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "DEFAULT_MODEL", "DEFAULT_INFERENCE"]

#: The built-in default model spec (the same as ``models/toy_regression.toml``), used when
#: that file cannot be found.
DEFAULT_MODEL = {
    "model": {"name": "toy_regression", "description": "Blundell et al. (2015) toy curve, a small tanh net",
              "site_layout": "packed",
              "layers": [{"linear": [1, 20]}, "tanh", {"linear": [20, 1]}]},
    "prior": {"family": "normal", "loc": 0.0, "scale": 1.0},
    "likelihood": {"family": "gaussian", "noise": "fixed", "scale": 0.06},
    "data": {"source": "toy", "n_train": 100, "n_test": 200, "noise": 0.02, "seed": 0, "standardize_x": True},
}
#: The built-in default inference spec (``inference/svi_meanfield.toml``).
DEFAULT_INFERENCE = {
    "inference": {"name": "svi_meanfield", "method": "svi", "seed": 0, "device": "auto"},
    "guide": {"family": "meanfield", "init_scale": 0.001},
    "svi": {"epochs": 2000, "batch_size": 128, "optimizer": "adam", "lr": 0.01, "kl": "uniform", "elbo": "trace",
            "num_particles": 1, "checkpoint_every": 500},
}

_MODEL_TABLES = ("model", "prior", "likelihood", "data")
_INFERENCE_TABLES = ("inference", "guide", "svi", "nuts", "hmc", "mcmc")


class UsageError(Exception):
    """A problem with the command's arguments or inputs: exit status 2, one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2 (argparse prints usage first; keep it short)
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- utilities
def _specs(model_arg, inference_arg, overrides):
    """Load the two specs, routing each ``--set`` to the spec that owns its table."""
    from .spec import load_inference_spec, load_model_spec

    m_over, i_over = [], []
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected key=value, e.g. svi.epochs=10")
        table = item.split("=", 1)[0].strip().split(".", 1)[0].split("[", 1)[0]
        if table in _MODEL_TABLES:
            m_over.append(item)
        elif table in _INFERENCE_TABLES:
            i_over.append(item)
        else:
            raise UsageError(f"--set {item!r}: unknown table {table!r}; expected one of "
                             f"{', '.join(_MODEL_TABLES + _INFERENCE_TABLES)}")

    def load(arg, default_name, default_dict, loader):
        if arg is not None:
            return loader(arg, m_over if loader is load_model_spec else i_over)
        try:
            return loader(default_name, m_over if loader is load_model_spec else i_over)
        except FileNotFoundError:  # installed without the source checkout: the built-in copy
            return loader(default_dict, m_over if loader is load_model_spec else i_over)

    mspec = load(model_arg, "toy_regression", DEFAULT_MODEL, load_model_spec)
    ispec = load(inference_arg, "svi_meanfield", DEFAULT_INFERENCE, load_inference_spec)
    return mspec, ispec


def _say(quiet, *msg):
    if not quiet:
        print(*msg, file=sys.stderr)


def _new_run_dir(mspec, ispec) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{mspec.name}-{ispec.name}-{stamp}"
    p, k = base, 1
    while p.exists():
        k += 1
        p = Path(f"{base}-{k}")
    return p


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"run directory {str(out)!r} already exists; pass --force to overwrite it or choose "
                         f"another --out")



def _data_stats(ds) -> dict:
    out = {}
    for key in ("x_mean", "x_std", "y_mean", "y_std"):
        v = getattr(ds, key, None)
        if v is not None:
            out[key] = v.detach().cpu() if hasattr(v, "detach") else __import__("torch").as_tensor(v)
    out["task"] = ds.task
    out["input_shape"] = list(ds.input_shape)
    return out


# --------------------------------------------------------------------------- fit
def cmd_fit(args) -> int:
    import torch

    from . import spec as S
    from .diagnostics import report, to_datatree
    from .infer.checkpoint import replace_dir, usual_mode
    from .infer.svi import fit_svi

    mspec, ispec = _specs(args.model, args.inference, args.set or [])
    if args.device:
        ispec = S.load_inference_spec(ispec, [f"inference.device={args.device}"])
    out = Path(args.out) if args.out else _new_run_dir(mspec, ispec)
    _check_out(out, args.force)

    data = S.build_data(mspec)
    net = S.build_model(mspec)
    _say(args.quiet, f"pyrobnn fit: {mspec.name} ({net.num_weights} weights) on {data.name} "
                     f"({data.n_train} training / {data.n_test} test points), {ispec.method.upper()}")
    t0 = time.perf_counter()
    guide = None
    if ispec.method == "svi":
        guide = S.build_guide(ispec, net)
        post = fit_svi(net, guide, data.x_train, data.y_train, progress=not args.quiet, **S.svi_kwargs(ispec))
    else:
        try:
            from .infer.mcmc import fit_nuts
        except ImportError as exc:
            raise UsageError(f"method {ispec.method!r} needs pyrobnn.infer.mcmc, which is not available ({exc})") \
                from None
        post = fit_nuts(net, data.x_train, data.y_train, progress=not args.quiet, **S.mcmc_kwargs(ispec))
    fit_seconds = time.perf_counter() - t0
    post.info = dict(post.info or {})
    post.info["fit_seconds"] = fit_seconds
    _say(args.quiet, f"pyrobnn fit: fitted in {fit_seconds:.1f} s; writing the report")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    usual_mode(tmp, directory=True)
    try:
        # what `predict` needs to rebuild the posterior
        (tmp / "model.toml").write_text(mspec.source_text, encoding="utf-8")
        (tmp / "inference.toml").write_text(ispec.source_text, encoding="utf-8")
        # files are written into the private temporary directory, installed in one rename below
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp / "model.pt")
        if guide is not None:
            torch.save({k: v.detach().cpu() for k, v in guide.state_dict().items()}, tmp / "guide.pt")
        if post.samples is not None:
            torch.save({"samples": {k: v.detach().cpu() for k, v in post.samples.items()},
                         "sample_stats": {k: torch.as_tensor(v).detach().cpu() for k, v in post.sample_stats.items()}},
                        tmp / "samples.pt")
        torch.save(_data_stats(data), tmp / "data.pt")
        run = {"method": post.method, "model": mspec.name, "inference": ispec.name, "dataset": data.name,
               "n_train": data.n_train, "n_test": data.n_test, "fit_seconds": fit_seconds,
               "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
               "command": "pyrobnn " + " ".join(sys.argv[1:]) if sys.argv and "pyrobnn" in sys.argv[0] else None,
               "history_last": post.history[-1] if post.history else None}
        (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str), encoding="utf-8")
        tree = to_datatree(post, dataset=data, model_spec=mspec, inference_spec=ispec, seed=ispec.seed,
                           num_samples=_export_draws(post, data))
        report(tree, tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"report: {out / 'index.html'}")
    return 0


def _export_draws(post, data) -> int | None:
    """Posterior draws to export, so that the pointwise groups (about three arrays of draws ×
    points) stay near 5·10⁶ values each.  MCMC: every stored draw within that bound (thinning
    would cost effective sample size in the convergence diagnostics); SVI: up to 500
    independent guide draws."""
    n = data.n_train + data.n_test
    size_cap = max(100, int(5e6 // max(n, 1)))
    if post.samples is not None:
        return None if post.num_stored <= size_cap else size_cap
    return min(500, size_cap)


# --------------------------------------------------------------------------- predict
def _read_x(path: Path):
    import numpy as np

    if not path.exists():
        raise UsageError(f"--x {str(path)!r}: no such file")
    suf = path.suffix.lower()
    try:
        if suf == ".npy":
            return np.load(path, allow_pickle=False)
        if suf == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "x" if "x" in z.files else z.files[0]
                return z[key]
        if suf in (".csv", ".txt"):
            with open(path, encoding="utf-8") as f:
                first = f.readline()
            try:
                [float(v) for v in first.strip().split(",") if v.strip()]
                skip = 0
            except ValueError:
                skip = 1  # a header row
            return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--x {str(path)!r}: cannot read it ({exc})") from None
    raise UsageError(f"--x {str(path)!r}: expected a .csv, .npy or .npz file")


def load_run(run_dir):
    """Rebuild the :class:`~pyrobnn.infer.posterior.Posterior` saved by ``pyrobnn fit`` in
    ``run_dir``; returns ``(posterior, data_stats)``."""
    import torch

    from . import spec as S
    from .infer.posterior import Posterior

    run = Path(run_dir)
    for name in ("model.toml", "inference.toml", "model.pt", "data.pt"):
        if not (run / name).is_file():
            raise UsageError(f"{str(run)!r} is not a run directory written by 'pyrobnn fit' (no {name})")
    mspec = S.load_model_spec(run / "model.toml")
    ispec = S.load_inference_spec(run / "inference.toml")
    net = S.build_model(mspec)
    stats = torch.load(run / "data.pt", weights_only=True)
    net.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    if (run / "samples.pt").is_file():
        saved = torch.load(run / "samples.pt", weights_only=True)
        post = Posterior(model=net, method=ispec.method, samples=saved["samples"],
                         sample_stats=saved.get("sample_stats", {}))
        return post, stats
    if not (run / "guide.pt").is_file():
        raise UsageError(f"{str(run)!r} holds neither guide.pt nor samples.pt")
    guide = S.build_guide(ispec, net)
    shape = tuple(stats.get("input_shape", ()))
    x0 = torch.zeros((1, *shape), dtype=net.dtype)
    y0 = torch.zeros(1, dtype=torch.long if stats.get("task") == "multiclass" else net.dtype)
    from pyro import poutine

    with poutine.block():  # create the guide's parameters, then fill them
        if hasattr(guide, "setup"):
            guide.setup(x0, y0)
        else:
            guide(x0, y0)
    guide.load_state_dict(torch.load(run / "guide.pt", weights_only=True))
    return Posterior(model=net, method="svi", guide=guide, example_args=((x0, y0), {})), stats


def cmd_predict(args) -> int:
    import numpy as np
    import torch

    post, stats = load_run(args.run_dir)
    x = _read_x(Path(args.x))
    shape = tuple(stats.get("input_shape", ()))
    if x.ndim == 1 and len(shape) == 1 and shape[0] == 1:
        x = x[:, None]
    if tuple(x.shape[1:]) != shape:
        if x.ndim == 2 and int(np.prod(shape)) == x.shape[1]:
            x = x.reshape(x.shape[0], *shape)
        else:
            raise UsageError(f"--x {args.x!r}: inputs have shape {tuple(x.shape[1:])} per row; the model expects "
                             f"{shape}")
    xt = torch.as_tensor(x, dtype=torch.float32)
    if "x_mean" in stats:
        xt = (xt - stats["x_mean"].to(xt)) / stats["x_std"].to(xt)
    pred = post.predict(xt.to(post.model.dtype), num_samples=args.num_samples, seed=args.seed)
    cols: dict[str, np.ndarray] = {}
    if pred.task == "regression":
        lo, hi = pred.interval(0.9)
        shift = stats["y_mean"].item() if "y_mean" in stats and stats["y_mean"].numel() == 1 else 0.0
        scale = stats["y_std"].item() if "y_std" in stats and stats["y_std"].numel() == 1 else 1.0
        cols["mean"] = pred.mean.cpu().numpy() * scale + shift
        cols["std"] = pred.std.cpu().numpy() * scale
        cols["aleatoric_std"] = pred.aleatoric_var.sqrt().cpu().numpy() * scale
        cols["epistemic_std"] = pred.epistemic_var.sqrt().cpu().numpy() * scale
        cols["lower_90"] = lo.cpu().numpy() * scale + shift
        cols["upper_90"] = hi.cpu().numpy() * scale + shift
    else:
        probs = pred.probs.cpu().numpy()
        cols["label"] = probs.argmax(-1).astype(float)
        for k in range(probs.shape[1]):
            cols[f"p_{k}"] = probs[:, k]
        cols["entropy"] = pred.entropy.cpu().numpy()
        cols["mutual_information"] = pred.mutual_information.cpu().numpy()
    _write_table(Path(args.out), cols)
    print(f"predictions: {args.out} ({x.shape[0]} rows; columns {', '.join(cols)})")
    return 0


def _write_table(path: Path, cols: dict) -> None:
    import numpy as np

    from .infer.checkpoint import atomic_write

    suf = path.suffix.lower()
    mat = np.stack([np.asarray(v, dtype=float) for v in cols.values()], axis=1)
    if suf == ".csv":
        def write(tmp):
            np.savetxt(tmp, mat, delimiter=",", header=",".join(cols), comments="", fmt="%.8g")
    elif suf == ".npy":
        def write(tmp):
            with open(tmp, "wb") as f:
                np.save(f, mat)
    elif suf == ".npz":
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in cols.items()})
    else:
        raise UsageError(f"--out {str(path)!r}: expected a .csv, .npy or .npz file name")
    atomic_write(path, write)


# --------------------------------------------------------------------------- report / compare
def cmd_report(args) -> int:
    from .diagnostics import report
    from .diagnostics.report import load_tree

    src = Path(args.path)
    if not src.exists():
        raise UsageError(f"{str(src)!r}: no such file or directory")
    tree = load_tree(src)
    out = Path(args.out) if args.out else (src if src.is_dir() and src.suffix != ".zarr" else src.parent)
    index = report(tree, out)
    print(f"report: {index}")
    return 0


def cmd_compare(args) -> int:
    from .diagnostics import compare
    from .diagnostics.report import load_tree

    if len(args.runs) < 2:
        raise UsageError("compare needs at least two run directories")
    trees, names = {}, []
    for r in args.runs:
        p = Path(r)
        if not p.exists():
            raise UsageError(f"{r!r}: no such file or directory")
        name = p.name if p.is_dir() else p.stem
        if name in trees or name == "":
            name = f"{name or 'fit'}-{len(trees) + 1}"
        trees[name] = load_tree(p)
        names.append(name)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    res = compare(trees, out)
    if not args.quiet:
        print(res.metrics.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"report: {res.path}")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyrobnn", description="Bayesian neural networks on Pyro: fit, predict, report, compare.")
    p.add_argument("--version", action="version", version=f"pyrobnn {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    f = sub.add_parser("fit", help="fit a model spec with an inference spec and write a report",
                       description="Fit MODEL (a model spec: TOML path or name in models/) with INFERENCE (an "
                                   "inference spec: TOML path or name in inference/), evaluate on the test split "
                                   "and write the report.  Without specs: toy regression, mean-field SVI.")
    f.add_argument("model", nargs="?", help="model spec (default: toy_regression)")
    f.add_argument("inference", nargs="?", help="inference spec (default: svi_meanfield)")
    f.add_argument("--out", help="run directory (default: runs/<model>-<inference>-<timestamp>)")
    f.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set svi.epochs=10 --set prior.scale=0.5 (repeatable)")
    f.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    f.add_argument("--device", help="cpu, cuda, cuda:<index> or auto (overrides inference.device)")
    f.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or messages; print only the report path")
    f.set_defaults(func=cmd_fit)

    pr = sub.add_parser("predict", help="predict with a fitted run",
                        description="Posterior predictive of a run written by 'pyrobnn fit' at new inputs, in "
                                    "the data's original units.  Regression columns: mean, std, aleatoric_std, "
                                    "epistemic_std, lower_90, upper_90; classification: label, p_<k>, entropy, "
                                    "mutual_information.")
    pr.add_argument("run_dir", help="run directory written by 'pyrobnn fit'")
    pr.add_argument("--x", required=True, help="inputs: .csv (one row per point), .npy or .npz (array 'x')")
    pr.add_argument("--out", required=True, help="output file: .csv, .npy (columns as above) or .npz")
    pr.add_argument("--num-samples", type=_positive_int, default=500, help="posterior draws (default 500)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the posterior draws (default 0)")
    pr.set_defaults(func=cmd_predict)

    r = sub.add_parser("report", help="(re)write the HTML report of a run or a .nc file",
                       description="Write index.html, figures and metrics.json for a run directory or a "
                                   "posterior .nc file.")
    r.add_argument("path", help="run directory (holding posterior.nc) or a .nc/.zarr file")
    r.add_argument("--out", help="output directory (default: the run directory / the file's directory)")
    r.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare several runs side by side",
                       description="ELPD table (PSIS-LOO), held-out metrics, weight marginals and predictive "
                                   "bands of several runs in one HTML page.")
    c.add_argument("runs", nargs="+", help="run directories (or .nc files), at least two")
    c.add_argument("--out", help="output directory (default: runs/compare-<timestamp>)")
    c.add_argument("-q", "--quiet", action="store_true", help="print only the report path")
    c.set_defaults(func=cmd_compare)
    return p


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("pyrobnn")
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv=None) -> int:
    """Entry point of the ``pyrobnn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    prog = f"pyrobnn {args.command}"
    try:
        from .spec import SpecError
    except ImportError:  # pragma: no cover - the spec layer ships with the package
        SpecError = ValueError  # noqa: N806
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except SpecError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else repr(exc)
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:  # NonFiniteLossError
        print(f"{prog}: failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:  # an argument the library rejected, e.g. device="cuda" without CUDA
        if os.environ.get("PYROBNN_DEBUG"):
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; PYROBNN_DEBUG=1 shows the traceback
        if os.environ.get("PYROBNN_DEBUG"):
            raise
        print(f"{prog}: failed: {type(exc).__name__}: {_one_line(exc)} (set PYROBNN_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
