"""Saving and loading posteriors: one versioned, verified format for every method.

``posterior.save(path)`` writes a directory; :func:`load_posterior` (``pyrobnn.load``) reads it
back without the spec files, the data or any pickled code::

    posterior.json   format name and version, the kind ("guide", "samples" or "laplace"), the method,
                     the network as plain data (BNN.config()), the guide's class and arguments,
                     the example inputs' shapes, the SVI history, the plain part of ``info``
    model.pt         the network's state_dict (deterministic parameters, prior and noise buffers)
    guide.pt         the guide's state_dict                                      (kind "guide")
    samples.pt       {"samples": {site: (chain, draw, ...)}, "sample_stats": {...}} (kind "samples")
    laplace.pt       the MAP, the approximated weights' index, the curvature's eigen-decomposition
                     (kind "laplace"; its structure, subset and prior precision in posterior.json)
    info.pt          the tensors of ``info`` (adapted step sizes, inverse mass matrices, ...)
    manifest.json    the SHA-256 digest and size of every file (pyrobnn.utils.manifest)

Tensors are read with ``torch.load(weights_only=True)`` after the manifest is verified, so a
changed or truncated file is refused naming it.  A reloaded posterior predicts the same numbers,
bit for bit, as the one that was saved (same seed, same device).  The command line writes its
run directories in this format and adds its own files (specs, data statistics, report).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal

from ..utils.config import ConfigError, build
from ..utils.files import atomic_write
from ..utils.manifest import IntegrityError, is_run_dir, read_format_json, verify_manifest, writing_run
from .checkpoint import load_torch_file
from .guides import AUTOGUIDES, GUIDES, SiteGuide, empty_laplace_autoguide, make_autoguide
from .laplace import LaplacePosterior
from .posterior import GuidePosterior, Posterior, SamplePosterior

__all__ = ["save_posterior", "load_posterior", "write_posterior_files", "POSTERIOR_FORMAT",
           "POSTERIOR_FORMAT_VERSION"]

POSTERIOR_FORMAT = "pyrobnn-posterior"
POSTERIOR_FORMAT_VERSION = 1

_GUIDE_CLASSES = {cls.__name__: cls for cls in GUIDES.values()}


# ---------------------------------------------------------------------------- writing
def save_posterior(posterior: Posterior, path, *, overwrite: bool = False) -> Path:
    """Write ``posterior`` to the directory ``path`` (see the module docstring) and return it.

    The directory is written under a temporary name beside ``path`` and renamed into place, so
    ``path`` is never half-written.  An existing ``path`` is replaced only with
    ``overwrite=True`` and only if it is a directory pyrobnn wrote (it has a valid manifest)."""
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be a pyrobnn Posterior, got {type(posterior).__name__}")
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"path {str(path)!r} is a symbolic link; pass the real path")
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace a saved posterior")
        if not is_run_dir(path):
            raise ValueError(f"path {str(path)!r} exists and is not a directory written by pyrobnn (no valid "
                             f"manifest.json); it is never replaced")
    with writing_run(path) as tmp:
        write_posterior_files(posterior, tmp)
    return path


def write_posterior_files(posterior: Posterior, folder) -> None:
    """Write the posterior's files (not the manifest) into the existing directory ``folder``."""
    folder = Path(folder)
    model = posterior.model
    if not hasattr(model, "config"):
        raise ConfigError(f"the model ({type(model).__name__}) cannot be saved: only a pyrobnn BNN can be described "
                          f"as plain data")
    info, tensors = _split_info(posterior.info or {})
    doc = {"format": POSTERIOR_FORMAT, "format_version": POSTERIOR_FORMAT_VERSION, "method": posterior.method,
           "model": model.config(), "dtype": str(model.dtype).removeprefix("torch."), "info": info}
    _save(model.state_dict(), folder / "model.pt")
    if isinstance(posterior, GuidePosterior):
        doc.update(kind="guide", guide=_guide_config(posterior.guide), example=_example(posterior),
                   history=_plain(list(posterior.history)))
        _save(posterior.guide.state_dict(), folder / "guide.pt")
    elif isinstance(posterior, LaplacePosterior):
        meta, tensors_ = posterior.state()
        doc.update(kind="laplace", laplace=meta, history=_plain(list(posterior.history)))
        _save(tensors_, folder / "laplace.pt")
    elif isinstance(posterior, SamplePosterior):
        doc["kind"] = "samples"
        _save({"samples": posterior.samples, "sample_stats": {k: torch.as_tensor(v) for k, v in
                                                                posterior.sample_stats.items()}},
              folder / "samples.pt")
    else:
        raise TypeError(f"cannot save a {type(posterior).__name__}: expected a GuidePosterior, a SamplePosterior or a "
                        f"LaplacePosterior")
    if tensors:
        _save(tensors, folder / "info.pt")
    text = json.dumps(doc, indent=1, allow_nan=False)
    atomic_write(folder / "posterior.json", lambda t: Path(t).write_text(text + "\n", encoding="utf-8"))


def _save(obj, path: Path) -> None:
    torch.save(_cpu(obj), path)


def _cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


def _guide_config(guide) -> dict:
    if isinstance(guide, SiteGuide):
        return guide.config()
    made = getattr(guide, "autoguide_config", None)  # recorded by make_autoguide / laplace_autoguide
    if made is not None:
        return made
    if isinstance(guide, AutoLowRankMultivariateNormal):
        return {"class": "AutoLowRankMultivariateNormal", "args": {"rank": int(guide.rank)}}
    if isinstance(guide, AutoNormal):
        return {"class": "AutoNormal", "args": {}}
    raise ConfigError(f"a {type(guide).__name__} guide cannot be saved; saved guides are pyrobnn's "
                      f"{sorted(_GUIDE_CLASSES)} and Pyro's {sorted(AUTOGUIDES)} made by "
                      f"pyrobnn.infer.guides.make_autoguide")


def _example(posterior: GuidePosterior) -> dict:
    """Shapes and dtypes of the inputs the guide was set up with (the values are not kept)."""
    args, kwargs = posterior.example_args
    if not args:
        raise ValueError("this GuidePosterior has no example_args, so its guide cannot be set up again when "
                         "loaded; fit_svi records them (example_args=((x[:1], y[:1]), {'n_data': n}))")
    return {"args": [{"shape": list(a.shape), "dtype": str(a.dtype).removeprefix("torch.")} if torch.is_tensor(a)
                     else None for a in args],
            "kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, bool, str))}}


def _split_info(info: dict, path: tuple = ()) -> tuple[dict, dict]:
    """(plain part, {JSON list of keys: tensor}) of ``info``; other objects become their text."""
    plain, tensors = {}, {}
    for k, v in info.items():
        key = (*path, str(k))
        if torch.is_tensor(v):
            tensors[json.dumps(key)] = v
        elif isinstance(v, dict):
            p, t = _split_info(v, key)
            plain[str(k)] = p
            tensors.update(t)
        else:
            plain[str(k)] = _plain(v)
    return plain, tensors


def _plain(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else repr(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    text = getattr(v, "source_text", None)  # a parsed spec keeps its TOML text
    return text if isinstance(text, str) and text else str(v)


# ---------------------------------------------------------------------------- reading
def load_posterior(path) -> Posterior:
    """The posterior saved in ``path`` by :meth:`Posterior.save` (or ``pyrobnn fit``), on the CPU
    (``posterior.model.to(device)`` moves the network; a guide follows with ``.to(device)``).

    Every file read is first checked against the manifest; a missing, changed or truncated
    file, a newer format version or a file holding pickled objects raises ``ValueError`` naming
    it."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no saved posterior at {str(path)!r} (expected a directory)")
    doc = _read_doc(path)
    kind = doc.get("kind")
    files = ["posterior.json", "model.pt", {"guide": "guide.pt", "samples": "samples.pt", "laplace": "laplace.pt"}[kind]]
    if (path / "info.pt").exists():
        files.append("info.pt")
    verify_manifest(path, files)
    try:
        model = _build_model(doc)
    except ConfigError as exc:
        raise IntegrityError(f"{str(path / 'posterior.json')!r}: the network cannot be rebuilt ({exc})") from None
    model.load_state_dict(load_torch_file(path / "model.pt", "saved file"))
    info = doc.get("info", {})
    if "info.pt" in files:
        for key, value in load_torch_file(path / "info.pt", "saved file").items():
            _set_path(info, json.loads(key), value)
    if kind == "laplace":
        return LaplacePosterior.from_state(model, doc["laplace"], load_torch_file(path / "laplace.pt", "saved file"),
                                           info=info, history=doc.get("history", []))
    if kind == "samples":
        saved = load_torch_file(path / "samples.pt", "saved file")
        return SamplePosterior(model=model, method=doc["method"], samples=saved["samples"],
                               sample_stats=saved.get("sample_stats", {}), info=info)
    example = _example_args(doc["example"], model.dtype)
    guide = _build_guide(doc["guide"], model, example)
    guide.load_state_dict(load_torch_file(path / "guide.pt", "saved file"))
    return GuidePosterior(model=model, method=doc["method"], guide=guide, history=list(doc.get("history", [])),
                          info=info, example_args=example)


def _read_doc(path: Path) -> dict:
    f = path / "posterior.json"
    if not f.is_file():
        raise IntegrityError(f"{str(path)!r} holds no posterior.json: it is not a posterior saved by pyrobnn "
                             f"(Posterior.save or pyrobnn fit)")
    verify_manifest(path, ["posterior.json"])
    doc = read_format_json(f, POSTERIOR_FORMAT, POSTERIOR_FORMAT_VERSION, "a saved pyrobnn posterior")
    if doc.get("kind") not in ("guide", "samples", "laplace"):
        raise IntegrityError(f"{str(f)!r} is not a saved pyrobnn posterior (expected \"kind\": \"guide\", "
                             f"\"samples\" or \"laplace\", got {doc.get('kind')!r})")
    return doc


def _build_model(doc: dict):
    from ..model import BNN

    model = BNN.from_config(doc["model"])
    dtype = getattr(torch, str(doc.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype {doc.get('dtype')!r} is not a floating torch dtype")
    return model.to(dtype)


def _example_args(example: dict, float_dtype) -> tuple:
    args = []
    for a in example.get("args", []):
        if a is None:
            args.append(None)
            continue
        dtype = getattr(torch, a["dtype"])
        args.append(torch.zeros(a["shape"], dtype=float_dtype if dtype.is_floating_point else dtype))
    return tuple(args), dict(example.get("kwargs", {}))


def _build_guide(config: dict, model, example: tuple):
    from pyro import poutine

    args, kwargs = example
    name = config.get("class") if isinstance(config, dict) else None
    if name == "AutoMultivariateNormal" and config.get("args", {}).get("laplace"):
        return empty_laplace_autoguide(model, *args, **kwargs)  # set up already: its buffers are filled by the caller
    if name in AUTOGUIDES:
        guide = make_autoguide(name, model, **config.get("args", {}))
    else:
        guide = build(config, _GUIDE_CLASSES, "guide", model=model)
    with poutine.block():  # create the guide's parameters, then fill them from the saved state
        if hasattr(guide, "setup"):
            guide.setup(*args, **kwargs)
        else:
            guide(*args, **kwargs)
    return guide


def _set_path(d: dict, parts: list, value) -> None:
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value
