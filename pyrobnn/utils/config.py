"""Objects that remember how they were made.

A class that derives from :class:`Configurable` records the arguments of its constructor
(after defaults are filled in) as ``obj.config()``: ``{"class": "Normal", "args": {"loc": 0.0,
"scale": 1.0}}``.  Layers, priors, likelihoods and guides are configurable, so a network and its
guide can be written as plain data (JSON) and rebuilt from it by :func:`build` — a saved run
needs neither the spec files nor pickled code to be loaded again.  Arguments named in a class's
``_config_skip`` (e.g. a guide's ``model``) are not recorded.
"""

from __future__ import annotations

import functools
import inspect
import math

__all__ = ["Configurable", "build", "ConfigError"]


class ConfigError(ValueError):
    """A configuration cannot be recorded as plain data, or cannot be rebuilt."""


def _plain(value, where: str):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"float": repr(value)}
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a 0-d tensor or numpy scalar
        return _plain(value.item(), where)
    raise ConfigError(f"{where} = {value!r} ({type(value).__name__}) cannot be recorded as plain data")


def _unplain(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


class Configurable:
    """Mixin: record the constructor's arguments of the most derived class as ``config()``."""

    _config_skip: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_config_args" not in self.__dict__:  # the outermost constructor: the object's own class
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                params = list(signature.parameters.values())
                record = {}
                for p in params[1:]:
                    if p.name in type(self)._config_skip:
                        continue
                    if p.kind is inspect.Parameter.VAR_KEYWORD:
                        record.update(bound.arguments.get(p.name, {}))
                    elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                        record[p.name] = bound.arguments.get(p.name)
                object.__setattr__(self, "_config_args", record)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def config(self) -> dict:
        """``{"class": <class name>, "args": {...}}``, plain data (JSON-serialisable); raises
        :class:`ConfigError` naming the argument if one is not plain data."""
        name = type(self).__name__
        args = self.__dict__.get("_config_args", {})
        return {"class": name, "args": {k: _plain(v, f"{name}.{k}") for k, v in args.items()}}


def build(config: dict, classes: dict[str, type], what: str = "object", **extra):
    """Rebuild an object from its :meth:`Configurable.config` with the class looked up in
    ``classes`` (name → class); ``extra`` are further arguments (e.g. the model of a guide)."""
    if not isinstance(config, dict) or not isinstance(config.get("class"), str) or \
            not isinstance(config.get("args", {}), dict):
        raise ConfigError(f"{what} configuration {config!r} is not of the form {{'class': ..., 'args': {{...}}}}")
    cls = classes.get(config["class"])
    if cls is None:
        raise ConfigError(f"{what} class {config['class']!r} is unknown; expected one of {sorted(classes)}")
    args = {k: _unplain(v) for k, v in config.get("args", {}).items()}
    try:
        return cls(**extra, **args)
    except TypeError as exc:
        raise ConfigError(f"{what} {config['class']} cannot be rebuilt from {args!r}: {exc}") from None
