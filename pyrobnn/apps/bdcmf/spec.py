"""The TOML spec of ``pyrobnn recommend fit``.

.. code-block:: toml

    [data]                     # either files ...
    ratings = "ratings.csv"    # user,item pairs
    social = "friends.csv"     # user,friend edges (optional)
    content = "items.csv"      # .npz / .npy counts, or a CSV item,text
    # ... or planted data: synthetic = { n_users = 500, n_items = 1000, n_words = 1000, K = 5, seed = 0 }
    test_fraction = 0.2        # held-out pairs of warm items (in-matrix recall)
    cold_fraction = 0.1        # items held out entirely (cold-start recall)
    split_seed = 0

    [model]                    # any field of BDCMFSettings
    method = "bdcmf"
    estimator = "point"

    [evaluate]
    ks = [50, 100, 200]
    baselines = ["pmf", "ctr", "content"]   # fitted with the same settings, for the report

Keys are checked (unknown keys are errors naming the key and the known ones); ``--set
model.K=10`` overrides a field.  The settings come from :class:`.settings.BDCMFSettings`, so the
spec, the fitting functions and the run's ``settings.json`` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...data.recsys import RecsysData, recsys, recsys_synthetic
from ...spec import SpecError, parse_override
from ...spec.load import read_toml
from .settings import METHODS, BDCMFSettings

__all__ = ["RecommendSpec", "load_recommend_spec"]

_DATA_KEYS = {"ratings", "social", "content", "synthetic", "test_fraction", "cold_fraction", "split_seed",
              "n_users", "n_items", "max_words"}
_EVAL_KEYS = {"ks", "baselines"}


@dataclass
class RecommendSpec:
    """A parsed spec: ``data`` (the [data] table), ``settings``, ``ks``, ``baselines``, ``origin``."""

    data: dict
    settings: BDCMFSettings
    ks: tuple = (50, 100, 200)
    baselines: list = field(default_factory=list)
    origin: str = "<dict>"

    def load_data(self) -> RecsysData:
        d, origin = self.data, self.origin
        base = Path(origin).parent if origin != "<dict>" else Path(".")
        if "synthetic" in d:
            if not isinstance(d["synthetic"], dict):
                raise SpecError(origin, "data.synthetic", "a table of recsys_synthetic arguments", d["synthetic"])
            try:
                return recsys_synthetic(**d["synthetic"])
            except TypeError as exc:
                raise SpecError(origin, "data.synthetic", f"arguments of recsys_synthetic ({exc})") from None
        if "ratings" not in d:
            raise SpecError(origin, "data", "a 'ratings' file or a 'synthetic' table")

        def path(key):
            p = d.get(key)
            if p is None:
                return None
            p = Path(p)
            return p if p.is_absolute() or p.exists() else base / p

        return recsys(path("ratings"), path("social"), path("content"), n_users=d.get("n_users"),
                      n_items=d.get("n_items"), max_words=d.get("max_words"))

    def to_dict(self) -> dict:
        return {"data": self.data, "model": self.settings.to_dict(),
                "evaluate": {"ks": list(self.ks), "baselines": list(self.baselines)}}


def _check_keys(table, known, origin, where):
    if not isinstance(table, dict):
        raise SpecError(origin, where, "a table", table)
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SpecError(origin, f"{where}.{unknown[0]}", f"one of the keys {sorted(known)}")


def load_recommend_spec(source, overrides=()) -> RecommendSpec:
    """Read a spec (TOML path or dict) and apply ``overrides`` (``"model.K=10"``)."""
    if isinstance(source, dict):
        doc, origin = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}, "<dict>"
    else:
        doc, _ = read_toml(source)
        origin = str(source)
    for text in overrides:
        tokens, value = parse_override(text, origin)
        if len(tokens) != 2 or not all(isinstance(t, str) for t in tokens):
            raise SpecError(origin, ".".join(map(str, tokens)), "an override of the form section.key=value")
        doc.setdefault(tokens[0], {})[tokens[1]] = value
    _check_keys(doc, {"data", "model", "evaluate"}, origin, "(top level)")
    data = doc.get("data", {})
    _check_keys(data, _DATA_KEYS, origin, "data")
    model = doc.get("model", {})
    _check_keys(model, BDCMFSettings.__dataclass_fields__, origin, "model")
    try:
        settings = BDCMFSettings(**model)
    except (ValueError, TypeError) as exc:
        raise SpecError(origin, "model", str(exc)) from None
    ev = doc.get("evaluate", {})
    _check_keys(ev, _EVAL_KEYS, origin, "evaluate")
    ks = ev.get("ks", [50, 100, 200])
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0
                                                     for k in ks):
        raise SpecError(origin, "evaluate.ks", "a non-empty list of positive integers", ks)
    baselines = ev.get("baselines", [])
    if not isinstance(baselines, list) or any(b not in METHODS for b in baselines):
        raise SpecError(origin, "evaluate.baselines", f"a list of methods from {sorted(METHODS)}", baselines)
    return RecommendSpec(data, settings, tuple(ks), baselines, origin)
