"""Reading specs: TOML files (parsed with :mod:`tomllib`, never evaluated), dicts and overrides.

:func:`load_model_spec` and :func:`load_inference_spec` accept a path, a bare name (looked up
as ``models/<name>.toml`` / ``inference/<name>.toml`` in the current directory, then in the
source checkout holding this package), a dict, or an already parsed spec; apply overrides;
validate (:mod:`pyrobnn.spec.schema`); and record where the spec came from.

An override is a ``key.path=value`` string, e.g. ``svi.epochs=5``, ``guide.init_scale=1e-3``,
``prior.family=laplace`` or ``model.layers[0].linear=[1,20]``.  The value is read as a TOML
value (a number, boolean, string, array or inline table) and, if it is not one, taken as a
bare string.  Setting a whole table replaces it: ``prior={family="scale_mixture", pi=0.25}``;
``prior=laplace`` is short for ``prior={family="laplace"}`` (likewise for ``likelihood`` and
``guide``), which is how to change family when the old family's keys do not fit the new one.
Overrides are applied before validation, so their values are checked like any other.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import SpecError, show_value
from .fields import Context, join
from .render import dumps
from .schema import MCMC_TABLES, InferenceSpec, ModelSpec, mcmc_table_name, validate_inference, validate_model

__all__ = ["load_model_spec", "load_inference_spec", "read_toml", "find_spec_file", "parse_override",
           "parse_value", "apply_overrides"]

SPEC_FOLDERS = {"model": "models", "inference": "inference"}
"""Folder that holds each kind of spec, relative to the project root."""

_CHECKOUT = Path(__file__).resolve().parents[2]
_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)((?:\[-?\d+\])*)")


def find_spec_file(source: str | os.PathLike, kind: str) -> Path:
    """The spec file ``source`` names: the path itself, or for a bare name such as
    ``"toy_regression"`` the file ``<folder>/<name>.toml`` under the current directory or the
    source checkout (``folder`` is ``models`` or ``inference``).

    Raises:
        FileNotFoundError: naming every path looked at.
    """
    p = Path(source).expanduser()
    if p.is_file():
        return p
    candidates = [p]
    if p.suffix == "" and len(p.parts) == 1:
        name = f"{p.name}.toml"
        candidates += [Path(SPEC_FOLDERS[kind]) / name, _CHECKOUT / SPEC_FOLDERS[kind] / name]
    for c in candidates[1:]:
        if c.is_file():
            return c
    looked = ", ".join(str(c.resolve()) if not c.is_absolute() else str(c) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(f"{kind} spec file not found: {str(source)!r}; looked at: {looked}")


def read_toml(path: str | os.PathLike, origin: str | None = None) -> tuple[dict, str]:
    """Parse a TOML file; returns ``(data, text)``.

    Raises:
        FileNotFoundError: the file does not exist (naming it).
        SpecError: the text is not valid TOML (naming the file, line and column).
    """
    origin = str(path) if origin is None else origin
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"spec file not found: {origin}") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise SpecError(origin, "", f"expected a UTF-8 TOML file ({type(e).__name__}: {e})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        raise SpecError(origin, "", f"invalid TOML: {e}") from None


def parse_value(text: str) -> Any:
    """A TOML value (``5``, ``1e-3``, ``true``, ``[1, 20]``, ``"a"``, ``{ a = 1 }``) or, if the
    text is not one, the text itself as a string."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return doc["v"] if list(doc) == ["v"] else text


def parse_override(text: str, origin: str = "<override>") -> tuple[list[str | int], Any]:
    """``"model.layers[0].linear=[1,20]"`` → ``(["model", "layers", 0, "linear"], [1, 20])``."""
    if not isinstance(text, str) or "=" not in text:
        raise SpecError(origin, "", f"override {text!r}: expected key.path=value, e.g. svi.epochs=5")
    key, _, value = text.partition("=")
    tokens: list[str | int] = []
    for seg in key.strip().split("."):
        m = _SEGMENT.fullmatch(seg.strip())
        if m is None:
            raise SpecError(origin, key.strip(), f"override {text!r}: expected a key path such as svi.epochs or "
                                                 "model.layers[0].linear")
        tokens.append(m.group(1))
        tokens += [int(i) for i in re.findall(r"-?\d+", m.group(2))]
    return tokens, parse_value(value.strip())


def _path(tokens) -> str:
    out = ""
    for t in tokens:
        out = join(out, t)
    return out


def _set(data: dict, tokens: list, value: Any, origin: str, text: str) -> None:
    cur: Any = data
    for i, tok in enumerate(tokens):
        where = _path(tokens[:i]) or "(top level)"
        last = i == len(tokens) - 1
        if isinstance(tok, int):
            if not isinstance(cur, list):
                raise SpecError(origin, where, f"override {text!r}: expected a list to index with [{tok}]", cur)
            if not -len(cur) <= tok < len(cur):
                raise SpecError(origin, where, f"override {text!r}: index {tok} is out of range for a list of "
                                               f"{len(cur)}", cur)
        elif not isinstance(cur, dict):
            raise SpecError(origin, where, f"override {text!r}: expected a table to set {tok!r} in", cur)
        elif not last and tok not in cur:
            cur[tok] = {}
        if last:
            cur[tok] = value
        else:
            cur = cur[tok]


def apply_overrides(data: dict, overrides: Sequence[str] | Mapping[str, Any], ctx: Context,
                    aliases: Callable[[dict, Context], dict[str, str]] | None = None) -> list[str]:
    """Apply overrides to ``data`` in place, recording each key path in ``ctx.overridden``.

    ``overrides`` is a sequence of ``key.path=value`` strings or a mapping ``{key.path: value}``
    (values taken as given).  ``aliases(data)`` maps first key names to the name the document
    uses (e.g. ``mcmc`` → ``nuts``).  Returns the overrides as strings.
    """
    items = []
    if isinstance(overrides, Mapping):
        for k, v in overrides.items():
            tokens, _ = parse_override(f"{k}=0", ctx.origin)
            items.append((tokens, v, f"{k}={show_value(v)}"))
    elif isinstance(overrides, str):
        raise TypeError("overrides must be a sequence of 'key.path=value' strings, not one string")
    else:
        for text in overrides:
            tokens, v = parse_override(text, ctx.origin)
            items.append((tokens, v, text))
    applied = []
    for tokens, v, text in items:
        names = aliases(data, ctx) if aliases else {}
        tokens[0] = names.get(tokens[0], tokens[0])
        _set(data, tokens, v, ctx.origin, text)
        ctx.overridden[_path(tokens)] = text
        applied.append(text)
    return applied


def _mcmc_aliases(data: dict, ctx: Context) -> dict[str, str]:
    name = mcmc_table_name(data, ctx)
    return {k: name for k in MCMC_TABLES}


def _load(source, overrides, cls, validate, kind: str, aliases=None):
    path = text = None
    previous: tuple[str, ...] = ()
    if isinstance(source, cls):
        if not overrides:
            return source
        origin, path, previous, default_name = source.path or "<dict>", source.path, source.overrides, source.name
        data = tomllib.loads(source.source_text)
    elif isinstance(source, Mapping):
        origin, default_name = "<dict>", kind
        data = copy.deepcopy(dict(source))
    elif isinstance(source, (str, os.PathLike)):
        p = find_spec_file(source, kind)
        origin = str(source) if Path(source).expanduser() == p else str(p)
        path, default_name = origin, p.stem
        data, text = read_toml(p, origin)
    else:
        raise TypeError(f"a {kind} spec must be a path, a dict or a {cls.__name__}, got {type(source).__name__}")
    ctx = Context(origin)
    applied = apply_overrides(data, overrides, ctx, aliases)
    spec = validate(data, ctx, default_name)
    if text is None or applied:
        all_overrides = previous + tuple(applied)
        header = f"# {origin} with overrides: {', '.join(all_overrides)}\n" if all_overrides else ""
        table = data.setdefault(kind, {})
        if isinstance(table, dict) and "name" not in table:  # the name taken from the file name
            data[kind] = {"name": spec.name, **table}
        try:
            text = header + dumps(data)
        except TypeError as e:
            raise SpecError(origin, "", f"expected plain data (tables, arrays, strings, numbers, booleans): {e}") \
                from None
    else:
        all_overrides = previous
    return replace(spec, path=path, source_text=text, overrides=all_overrides)


def load_model_spec(source: str | os.PathLike | Mapping | ModelSpec,
                    overrides: Sequence[str] | Mapping[str, Any] = ()) -> ModelSpec:
    """Read and validate a model spec.

    ``source`` is a TOML path, a bare name (``"toy_regression"`` → ``models/toy_regression.toml``),
    a dict of the same structure, or a :class:`ModelSpec` (returned as is without overrides).
    ``overrides`` are ``key.path=value`` strings applied before validation.

    Raises:
        FileNotFoundError: the file does not exist.
        SpecError: the spec is malformed (the message names the file, key, value and what was expected).
    """
    return _load(source, overrides, ModelSpec, validate_model, "model")


def load_inference_spec(source: str | os.PathLike | Mapping | InferenceSpec,
                        overrides: Sequence[str] | Mapping[str, Any] = ()) -> InferenceSpec:
    """Read and validate an inference spec; arguments as :func:`load_model_spec`
    (bare names are looked up in ``inference/``).  ``nuts.x=...``, ``hmc.x=...`` and
    ``mcmc.x=...`` overrides all set the file's MCMC table, whichever of the names it uses."""
    return _load(source, overrides, InferenceSpec, validate_inference, "inference", _mcmc_aliases)
