"""The ``pyrobnn`` command line.

::

    pyrobnn fit [MODEL.toml] [INFERENCE.toml] [--out DIR] [--set key=value ...] [--force | --resume]
                [--wait] [--device DEVICE] [--quiet]
    pyrobnn predict RUN_DIR --x FILE.csv|.npy|.npz --out FILE.csv|.npy|.npz
    pyrobnn report RUN_DIR|FILE.nc [--out DIR]
    pyrobnn compare DIR DIR ... [--out DIR]

``fit`` builds the model and the data from a model spec, fits it as the inference spec says
(SVI or NUTS/HMC), exports the posterior evaluated on the test split, and writes the report
into the run directory, together with the posterior in the library's format (``posterior.json``,
``model.pt``, ``guide.pt`` or ``samples.pt``: ``pyrobnn.load(run_dir)`` reads it), the specs
(``model.toml``, ``inference.toml``) and the data's statistics (``data.pt``).  With no
spec it runs the built-in default, toy regression with a mean-field guide.  The run directory
is written under a temporary name and renamed into place when complete, with ``manifest.json``
holding the SHA-256 digest of every file, which ``predict``, ``report`` and ``compare`` verify.

A fit holds an advisory lock on its run directory (``.<name>.lock`` beside it): a second fit to
the same ``--out`` fails at once naming the holder's process id, or waits with ``--wait``.
Until it is complete, a fit keeps its checkpoint in ``.<name>.partial`` beside the run
directory (SVI: every ``svi.checkpoint_every`` epochs; NUTS/HMC: every ``nuts.checkpoint_every``
iterations and after each warm-up window; both on Ctrl-C, after the current step);
``--resume`` continues it to the same result as an uninterrupted fit.  ``--force`` replaces
only a directory that is a pyrobnn run (it has a valid manifest), never anything else.

Bad arguments, malformed specs and missing files end with exit status 2 and one line on
stderr; a fit that fails (e.g. a non-finite loss) ends with status 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .apps.bandits import cli as bandit_cli
from .infer.checkpoint import load_torch_file
from .infer.svi import resolve_device
from .utils.files import atomic_write, usual_mode
from .utils.lock import LockHeld, PathLock
from .utils.manifest import (
    MANIFEST,
    IntegrityError,
    is_run_dir,
    read_manifest,
    verify_manifest,
    write_manifest,
    writing_run,
)

__all__ = ["main", "DEFAULT_MODEL", "DEFAULT_INFERENCE"]

#: The built-in default model spec (the same as ``models/toy_regression.toml``), used when
#: that file cannot be found.
DEFAULT_MODEL = {
    "model": {"name": "toy_regression", "description": "Blundell et al. (2015) toy curve, a small tanh net",
              "site_layout": "packed",
              "layers": [{"linear": [1, 20]}, "tanh", {"linear": [20, 1]}]},
    "prior": {"family": "normal", "loc": 0.0, "scale": 1.0},
    "likelihood": {"family": "gaussian", "noise": "fixed", "scale": 0.06},
    "data": {"source": "toy", "n_train": 100, "n_test": 200, "n_heldout": 200, "noise": 0.02, "seed": 0,
             "standardize_x": True},
}
#: The built-in default inference spec (``inference/svi_meanfield.toml``).
DEFAULT_INFERENCE = {
    "inference": {"name": "svi_meanfield", "method": "svi", "seed": 0, "device": "auto"},
    "guide": {"family": "meanfield", "init_scale": 0.001},
    "svi": {"epochs": 2000, "batch_size": 128, "optimizer": "adam", "lr": 0.01, "kl": "uniform", "elbo": "trace",
            "num_particles": 1, "checkpoint_every": 500},
}

_MODEL_TABLES = ("model", "prior", "likelihood", "data")
_INFERENCE_TABLES = ("inference", "guide", "svi", "nuts", "hmc", "mcmc", "laplace")


class UsageError(Exception):
    """A problem with the command's arguments or inputs: exit status 2, one line."""


class Interrupted(Exception):
    """The user interrupted a fit; its checkpoint is saved: exit status 130, one line."""


class ReportFailed(Exception):
    """The fit finished and its run was saved, but writing the report failed: exit status 1, one
    line naming the run and the command that rewrites the report."""


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


def _check_out(out: Path, force: bool, resume: bool = False) -> None:
    """Refuse an ``--out`` that cannot or must not be written: a link, a file, a non-empty
    directory without ``--force``, and with ``--force`` anything but a pyrobnn run directory."""
    if out.is_symlink():
        raise UsageError(f"--out {str(out)!r} is a symbolic link; pass the real path of the directory "
                         f"(pyrobnn never writes or deletes through links)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not force:
            hint = " (a finished run: nothing to resume)" if resume and is_run_dir(out) else ""
            raise UsageError(f"run directory {str(out)!r} already exists{hint}; pass --force to replace it or "
                             f"choose another --out")
        if not is_run_dir(out):
            raise UsageError(f"--force: {str(out)!r} is not a pyrobnn run directory (it has no valid "
                             f"{MANIFEST}); pyrobnn replaces only run directories it wrote. Choose another --out "
                             f"or remove that directory yourself")
        _no_links_inside(out)


def _no_links_inside(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            if (Path(dirpath) / name).is_symlink():
                raise UsageError(f"--force: {str(Path(dirpath) / name)!r} inside the run directory is a symbolic "
                                 f"link; pyrobnn will not replace a directory holding links. Remove it yourself")


def _prepare_parent(out: Path, need_bytes: int) -> None:
    """Create ``--out``'s parent and check, before any fitting, that it is writable and that its
    file system has room for the run (``need_bytes``, an estimate)."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {str(out)!r}: cannot write in {str(parent)!r} ({exc.strerror or exc})") from None
    free = shutil.disk_usage(parent).free
    if free < need_bytes:
        raise UsageError(f"--out {str(out)!r}: the file system of {str(parent)!r} has {_size(free)} free; the run "
                         f"needs about {_size(need_bytes)}. Free some space or choose another --out")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _run_bytes(net, data, ispec) -> int:
    """An upper estimate of a run directory's size: the exported draws of every weight and the
    pointwise groups (float64), MCMC samples, checkpoints, figures and a 50% margin."""
    weights = int(getattr(net, "num_weights", 0))
    n_points = data.n_train + data.n_test
    if ispec.method == "svi":
        draws, stored = min(500, max(100, int(5e6 // max(n_points, 1)))), 0
    else:
        draws = ispec.mcmc.chains * ispec.mcmc.num_samples
        stored = draws * weights * 4
    exported = draws * weights * 8 + 3 * min(draws * n_points * max(1, data.num_classes or 1), 5e6) * 8
    return int(1.5 * (exported + stored + 8 * weights * 4 + 20e6))


def _leftovers(out: Path) -> list[Path]:
    """Temporary entries that an interrupted write of ``out`` leaves beside it (``.<name>.XXXXXXXX.tmp``
    directories and ``.old`` directories of a replace)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.[A-Za-z0-9_]{{8}}\.(tmp|old)$")
    if not out.parent.is_dir():
        return []
    return [p for p in out.parent.iterdir() if pattern.match(p.name)]


def _remove_leftovers(out: Path, quiet: bool) -> None:
    """Remove what an earlier, killed write of ``out`` left (called with ``out``'s lock held, so
    no live process owns them)."""
    for p in _leftovers(out):
        if p.is_symlink() or p.is_file():
            p.unlink()
        else:
            shutil.rmtree(p)
        _say(quiet, f"pyrobnn: removed {str(p)!r}, left by an interrupted run")


def _partial_dir(out: Path) -> Path:
    """Where an unfinished fit of ``out`` keeps its checkpoint until the run is complete."""
    return out.parent / f".{out.name}.partial"


def _lock(out: Path, wait: bool, quiet: bool) -> PathLock:
    lock = PathLock(out, wait=False)
    try:
        return lock.acquire()
    except LockHeld as exc:
        if not wait:
            raise UsageError(f"--out {str(out)!r} is being written by another pyrobnn process (PID "
                             f"{exc.pid if exc.pid is not None else 'unknown'}); wait for it with --wait or "
                             f"choose another --out") from None
        _say(quiet, f"pyrobnn: waiting for process {exc.pid} to finish writing {str(out)!r}")
    return PathLock(out, wait=True).acquire()


def _start_partial(out: Path, mspec, ispec, args) -> tuple[Path, bool]:
    """The checkpoint directory of this fit, and whether the fit resumes from it.

    An unfinished fit's directory is resumed only with ``--resume`` and the same specs;
    ``--force`` discards it; otherwise the user is told it exists."""
    partial = _partial_dir(out)
    ident = {"model": hashlib.sha256(mspec.source_text.encode()).hexdigest(),
             "inference": hashlib.sha256(ispec.source_text.encode()).hexdigest()}
    if partial.is_symlink():
        raise UsageError(f"{str(partial)!r} is a symbolic link; remove it (pyrobnn never writes through links)")
    if partial.is_dir() and not (partial / "checkpoint.pt").exists():
        shutil.rmtree(partial)  # killed before its first checkpoint: nothing to resume
    if partial.exists():
        if args.resume:
            try:
                saved = json.loads((partial / "fit.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"--resume: {str(partial / 'fit.json')!r} cannot be read ({exc}); pass --force "
                                 f"to start the fit over") from None
            differ = [k for k in ("model", "inference") if saved.get(k) != ident[k]]
            if differ:
                raise UsageError(f"--resume: the unfinished fit of {str(out)!r} used another "
                                 f"{' and '.join(differ)} spec (after --set overrides); resume with the same specs, "
                                 f"or pass --force instead of --resume to start over")
            return partial, (partial / "checkpoint.pt").is_file()
        if not args.force:
            raise UsageError(f"an unfinished fit of {str(out)!r} was interrupted ({str(partial)!r} holds its "
                             f"checkpoint); pass --resume to continue it, or --force to start over")
        shutil.rmtree(partial)
    partial.mkdir()
    usual_mode(partial, directory=True)
    atomic_write(partial / "fit.json", lambda tmp: Path(tmp).write_text(json.dumps(ident), encoding="utf-8"))
    return partial, False


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
    from . import spec as S
    from .infer.distributed import launched

    mspec, ispec = _specs(args.model, args.inference, args.set or [])
    if args.device:
        ispec = S.load_inference_spec(ispec, [f"inference.device={args.device}"])
    if launched():  # started by torchrun with several processes: data-parallel SVI, or NUTS/HMC chains across ranks
        if ispec.method not in ("svi", "nuts", "hmc") or S.mcmc_kwargs(ispec).get("backend", "torch") != "torch" \
                or S.mcmc_kwargs(ispec).get("kernel") == "chees":
            raise UsageError(f"torchrun with several processes runs SVI, or NUTS/HMC chains of the torch backend; "
                             f"this spec ({ispec.method.upper()}) runs in one process (start 'pyrobnn fit' without "
                             f"torchrun)")
        if int(os.environ["RANK"]) != 0:
            return _fit_rank(ispec, mspec)
    out = Path(args.out) if args.out else _new_run_dir(mspec, ispec)
    if args.resume and args.force:
        raise UsageError("--resume continues an unfinished fit and --force starts over: pass one of them")
    if not (args.resume and is_run_dir(out)):  # a finished run is reported under the lock below
        _check_out(out, args.force, args.resume)

    resolve_device(ispec.device)  # e.g. CUDA asked for where there is none: before anything is built
    data = S.build_data(mspec)
    net = S.build_model(mspec)
    _prepare_parent(out, _run_bytes(net, data, ispec))
    with _lock(out, args.wait, args.quiet):
        if args.resume and _finished(out, mspec, ispec):  # finished by the process we waited for
            return 0
        _check_out(out, args.force, args.resume)  # again: another process may have written it meanwhile
        _remove_leftovers(out, args.quiet)
        partial, resuming = _start_partial(out, mspec, ispec, args)
        try:
            return _fit_locked(args, mspec, ispec, data, net, out, partial, resuming)
        finally:
            if partial.is_dir() and not (partial / "checkpoint.pt").exists():
                shutil.rmtree(partial)  # failed before its first checkpoint: nothing to resume


def _fit_rank(ispec, mspec) -> int:
    """A rank other than 0 of a torchrun job: the same fit on the same data, no files, no output
    (rank 0 checks the run directory, holds its lock, writes checkpoints and the report)."""
    from . import spec as S
    from .infer.mcmc import fit_nuts
    from .infer.svi import fit_svi

    data, net = S.build_data(mspec), S.build_model(mspec)
    if ispec.method == "svi":
        fit_svi(net, S.build_guide(ispec, net), data.x_train, data.y_train, progress=False, distributed=True,
                **S.svi_kwargs(ispec))
    else:
        kw = S.mcmc_kwargs(ispec)
        kw.pop("checkpoint_every")
        fit_nuts(net, data.x_train, data.y_train, progress=False, distributed=True, **{**kw, "chain_method": None})
    return 0


def _fit_locked(args, mspec, ispec, data, net, out: Path, partial: Path, resuming: bool) -> int:
    import torch

    from . import spec as S
    from .diagnostics import report, save_datatree, to_datatree
    from .infer.interrupt import FitInterrupted
    from .infer.saving import write_posterior_files
    from .infer.svi import fit_svi

    _say(args.quiet, f"pyrobnn fit: {mspec.name} ({net.num_weights} weights) on {data.name} "
                     f"({data.n_train} training / {data.n_test} test points), {ispec.method.upper()}"
                     + (f"; resuming from {str(partial / 'checkpoint.pt')!r}" if resuming else ""))
    t0 = time.perf_counter()
    ckpt = partial / "checkpoint.pt"
    try:
        if ispec.method == "svi":
            from .infer.distributed import launched

            post = fit_svi(net, S.build_guide(ispec, net), data.x_train, data.y_train, progress=not args.quiet,
                           checkpoint=ckpt, resume=resuming, distributed=launched(), **S.svi_kwargs(ispec))
        elif ispec.method == "laplace":
            from .infer.laplace import fit_laplace

            post = fit_laplace(net, data.x_train, data.y_train, progress=not args.quiet, **S.laplace_kwargs(ispec))
        else:
            from .infer.mcmc import fit_nuts

            from .infer.distributed import launched

            kw = S.mcmc_kwargs(ispec)
            if launched():  # chains across the ranks, gathered on every rank (no checkpoint)
                kw.pop("checkpoint_every")
                kw.update(distributed=True, chain_method=None)
            elif kw.get("backend", "torch") == "torch":  # Pyro's own kernel cannot be checkpointed
                kw.update(checkpoint=ckpt, resume=resuming)
            else:
                kw.pop("checkpoint_every")
            post = fit_nuts(net, data.x_train, data.y_train, progress=not args.quiet, **kw)
    except FitInterrupted as exc:
        again = _command_line(args, resume=True)
        if exc.checkpoint is None:
            raise Interrupted(f"stopped after {exc.where}; nothing could be saved (this sampler cannot be "
                              f"checkpointed)") from None
        raise Interrupted(f"stopped after {exc.where}; the last good state is saved in {str(exc.checkpoint)!r}."
                          f" Continue with: {again}") from None
    fit_seconds = time.perf_counter() - t0
    post.info = dict(post.info or {})
    post.info["fit_seconds"] = fit_seconds
    _say(args.quiet, f"pyrobnn fit: fitted in {fit_seconds:.1f} s; writing the report")

    with writing_run(out) as tmp:  # a private temporary directory, installed in one rename with its manifest
        # the posterior in the library's format (pyrobnn.load reads it), then the run's own files
        write_posterior_files(post, tmp)
        (tmp / "model.toml").write_text(mspec.source_text, encoding="utf-8")
        (tmp / "inference.toml").write_text(ispec.source_text, encoding="utf-8")
        torch.save(_data_stats(data), tmp / "data.pt")
        run = {"method": post.method, "model": mspec.name, "inference": ispec.name, "dataset": data.name,
               "n_train": data.n_train, "n_test": data.n_test, "fit_seconds": fit_seconds,
               "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
               "command": "pyrobnn " + " ".join(sys.argv[1:]) if sys.argv and "pyrobnn" in sys.argv[0] else None,
               "history_last": post.history[-1] if post.history else None}
        (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str), encoding="utf-8")
        # the export streams into the run's private directory, so a killed run leaves nothing elsewhere
        export = tmp / ".export.nc"
        tree = to_datatree(post, dataset=data, model_spec=mspec, inference_spec=ispec, seed=ispec.seed,
                           num_samples=_export_draws(post, data), store=export)
        try:
            report(tree, tmp)
        except Exception as exc:  # noqa: BLE001 - the fit is kept whatever broke in the report; raised below
            failed = exc
            save_datatree(tree, tmp / "posterior.nc")  # what `pyrobnn report` reads
        else:
            failed = None
        tree.close()
        if failed is None:
            _say_verdict(args.quiet, tmp / "metrics.json")
        export.unlink()
    shutil.rmtree(partial)
    if failed is not None:
        raise ReportFailed(f"the fit is saved in {str(out)!r}, but its report failed ({type(failed).__name__}: "
                           f"{_one_line(failed)}); write it again with: pyrobnn report {shlex.quote(str(out))}") \
            from failed
    print(f"report: {out / 'index.html'}")
    return 0


def _say_verdict(quiet: bool, metrics_json: Path) -> None:
    """The report's verdict, in a few lines on stderr."""
    verdict = json.loads(metrics_json.read_text(encoding="utf-8")).get("verdict") or {}
    if verdict:
        _say(quiet, f"pyrobnn fit: {verdict['headline']}")
        for line in verdict["lines"]:
            _say(quiet, f"  [{line['status']}] {line['text']}")


def _finished(out: Path, mspec, ispec) -> bool:
    """``--resume`` of a fit that is already complete (e.g. killed after installing the run but
    before removing its checkpoint): True, after checking that the run used the same specs and
    removing the stale checkpoint."""
    if out.is_symlink() or not is_run_dir(out):
        return False
    try:
        verify_manifest(out, ["model.toml", "inference.toml"])
    except IntegrityError as exc:
        raise UsageError(str(exc)) from None
    same = ((out / "model.toml").read_text(encoding="utf-8") == mspec.source_text
            and (out / "inference.toml").read_text(encoding="utf-8") == ispec.source_text)
    if not same:
        raise UsageError(f"--resume: {str(out)!r} is a finished run of other specs; pass --force to replace it or "
                         f"choose another --out")
    partial = _partial_dir(out)
    if partial.is_dir() and not partial.is_symlink():
        shutil.rmtree(partial)
    print(f"report: {out / 'index.html'} (the run was already complete)")
    return True


def _command_line(args, resume: bool) -> str:
    """The ``pyrobnn fit`` command line of ``args`` (with ``--resume``), quoted for a shell."""
    parts = ["pyrobnn", "fit"] + [a for a in (args.model, args.inference) if a]
    for item in args.set or []:
        parts += ["--set", item]
    if args.out:
        parts += ["--out", args.out]
    if args.device:
        parts += ["--device", args.device]
    if args.quiet:
        parts.append("--quiet")
    if resume:
        parts.append("--resume")
    return shlex.join(parts)


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
    """The posterior saved by ``pyrobnn fit`` in ``run_dir`` (:func:`pyrobnn.load`) and the data's
    standardisation statistics: ``(posterior, data_stats)``.  Every file read is verified
    against the run's manifest first."""
    from .infer.saving import load_posterior

    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"{str(run)!r} is not a directory; expected a run directory written by 'pyrobnn fit'")
    for name in ("posterior.json", "data.pt"):
        if not (run / name).is_file():
            raise UsageError(f"{str(run)!r} is not a run directory written by 'pyrobnn fit' (no {name})")
    try:
        verify_manifest(run, ["data.pt"])
        return load_posterior(run), load_torch_file(run / "data.pt", "run file")
    except IntegrityError as exc:
        raise UsageError(str(exc)) from None


def cmd_predict(args) -> int:
    import numpy as np
    import torch

    post, stats = load_run(args.run_dir)
    x = _read_x(Path(args.x))
    if x.dtype.kind not in "biuf":
        raise UsageError(f"--x {args.x!r}: expected numbers, got an array of {x.dtype}")
    if x.shape[0] == 0:
        raise UsageError(f"--x {args.x!r}: holds no rows")
    finite = np.isfinite(x.reshape(x.shape[0], -1)).all(1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise UsageError(f"--x {args.x!r}: {len(rows)} row{'s hold' if len(rows) > 1 else ' holds'} NaN or inf "
                         f"(first: row {rows[0] + 1} of the data); predictions need finite inputs")
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
    _verify_if_run(src)
    out = Path(args.out) if args.out else (src if src.is_dir() and src.suffix != ".zarr" else src.parent)
    if out.is_symlink():
        raise UsageError(f"--out {str(out)!r} is a symbolic link; pass the real path of the directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out, wait=False, quiet=True):
        run = is_run_dir(out)
        if run:
            _remove_run_leftovers(out)
        tree = load_tree(src)
        index = report(tree, out)
        if run:  # the report's files were replaced: record their new digests
            write_manifest(out)
    print(f"report: {index}")
    return 0


def _verify_if_run(path: Path) -> None:
    """Check the posterior file that ``report``/``compare`` will read against the manifest of its run
    directory, if it lies in one."""
    run = path if path.is_dir() else path.parent
    if (run / MANIFEST).exists():
        names = [n for n in ("posterior.nc", "posterior.zarr") if (run / n).exists()] if path.is_dir() else [path.name]
        try:
            verify_manifest(run, names)
        except IntegrityError as exc:
            raise UsageError(str(exc)) from None


def _remove_run_leftovers(run: Path) -> None:
    """Temporary files an interrupted report left inside ``run`` (atomic writes: ``.<file>.XXXXXXXX.tmp``,
    replaced stores: ``.<name>.XXXXXXXX.old``); none is listed in the manifest."""
    pattern = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.(tmp|old)$")
    listed = read_manifest(run)["files"]
    for p in run.iterdir():
        if pattern.match(p.name) and p.name not in listed and not p.is_symlink():
            shutil.rmtree(p) if p.is_dir() else p.unlink()


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
        _verify_if_run(p)
        trees[name] = load_tree(p)
        names.append(name)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if args.reference is not None and args.reference not in trees:
        raise UsageError(f"--reference {args.reference!r}: not one of the runs {', '.join(trees)}")
    res = compare(trees, out, reference=args.reference)
    if not args.quiet:
        print("\n".join(res.verdict))
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
    f.add_argument("--force", action="store_true",
                   help="replace an existing run directory (only one written by pyrobnn) and discard an unfinished "
                        "fit's checkpoint")
    f.add_argument("--resume", action="store_true",
                   help="continue the unfinished fit of --out from its last checkpoint (same specs); the result "
                        "equals an uninterrupted fit's")
    f.add_argument("--wait", action="store_true",
                   help="if another pyrobnn process is writing --out, wait for it instead of failing at once")
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
                       description="Several runs compared in function space, in one HTML page: a verdict "
                                   "sentence per run, predictive bands with the training and held-out points, "
                                   "held-out metrics with standard errors (in distribution and away from the data), "
                                   "the held-out ELPD difference, epistemic variance ratios and cost per effective "
                                   "draw, against a reference run (the first NUTS/HMC run unless --reference).")
    c.add_argument("runs", nargs="+", help="run directories (or .nc files), at least two")
    c.add_argument("--reference", help="name of the run the others are measured against (its directory name)")
    c.add_argument("--out", help="output directory (default: runs/compare-<timestamp>)")
    c.add_argument("-q", "--quiet", action="store_true", help="print only the report path")
    c.set_defaults(func=cmd_compare)
    # the applications' commands (each built in its own package)
    from .apps.active.cli import add_parser as add_active_learning
    from .apps.bdcmf.cli import add_parser as add_recommend

    bandit_cli.add_parser(sub)
    add_active_learning(sub)
    add_recommend(sub)
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
    except Interrupted as exc:
        print(f"{prog}: interrupted: {exc}", file=sys.stderr)
        return 130
    except ReportFailed as exc:
        if os.environ.get("PYROBNN_DEBUG"):
            raise
        print(f"{prog}: failed: {exc} (set PYROBNN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
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
