"""Property tests: the CSV and NPZ loaders and the spec loader either succeed or raise the
library's own error (:class:`pyrobnn.data.DataError`, :class:`pyrobnn.spec.SpecError`) on any input.

The strategies and the case runners are shared with ``benchmarks/fuzz.py``, which runs many
more cases per property and counts the outcomes.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import tempfile
import tomllib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyrobnn.data import DataError, csv_dataset, npz_dataset
from pyrobnn.spec import SpecError, load_inference_spec, load_model_spec
from pyrobnn.spec.schema import GUIDE_FAMILIES, LIKELIHOOD_FAMILIES, METHODS, PRIOR_FAMILIES

ROOT = Path(__file__).resolve().parents[1]
TASK_VALUES = (None, "regression", "binary", "multiclass", "ordinal", 3)

# ============================================================================ CSV
_TOKENS = ["", "?", "n/a", "NA", "nan", "NaN", "inf", "-Infinity", "1,5", "1_000", "1e400", "-1e39", "1e-400",
           "3.4028235e38", "9" * 25, "0x1f", "٣", "１", "TRUE", " 7 ", '"', "'", "a\nb", "\x00", "é", "🙂",
           "1e", ".", "-", "+5", "00012", "1.", ".5", "2**60"]
_DELIMITERS = [",", ";", "\t", "|", " ", ":"]


def _cell(kind: str):
    if kind == "int":
        return st.one_of(st.integers(-30, 30), st.integers(-(2**70), 2**70)).map(str)
    if kind == "float":
        return st.tuples(st.one_of(st.floats(-1e6, 1e6), st.floats()),
                         st.sampled_from([repr, "{:.3g}".format, "{:e}".format])).map(lambda t: t[1](t[0]))
    if kind == "category":
        return st.sampled_from(["a", "b", "c", "red", "green", "?"])
    return st.one_of(st.sampled_from(_TOKENS), st.text(max_size=6))


@st.composite
def csv_cases(draw):
    """A CSV file (bytes) and the keyword arguments of ``csv_dataset``."""
    clean = draw(st.booleans())  # half the cases are well-formed tables, so loads also succeed
    n_cols = draw(st.integers(2 if clean else 1, 5))
    if clean:
        names = draw(st.lists(st.sampled_from(["x", "y", "z", "t", "label", "w", "größe"]), min_size=n_cols,
                              max_size=n_cols, unique=True))
    else:
        names = draw(st.lists(st.one_of(st.sampled_from(["x", "y", "z", "t", "label", "x"]), st.text(max_size=4)),
                              min_size=n_cols, max_size=n_cols))
    kinds = draw(st.lists(st.sampled_from(["int", "float", "category"] if clean else
                                          ["int", "float", "category", "junk"]), min_size=n_cols, max_size=n_cols))
    n_rows = draw(st.integers(6 if clean else 0, 25))
    rows = [[draw(_cell(k)) for k in kinds] for _ in range(n_rows)]
    for _ in range(0 if clean else draw(st.integers(0, 3))):  # corrupt a few cells
        if rows:
            r, c = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_cols - 1))
            rows[r][c] = draw(_cell("junk"))
    delimiter = draw(st.sampled_from(_DELIMITERS))
    buf = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(names)
    for r in rows:
        if draw(st.integers(0, 15)) == 0:
            buf.write("\n")  # a blank line
        writer.writerow(r[: draw(st.integers(0, n_cols))] if not clean and draw(st.integers(0, 20)) == 0 else r)
    text = buf.getvalue()
    mode = draw(st.integers(0, 9)) if not clean else 9
    if mode == 0:
        text = draw(st.text(max_size=200))  # anything at all
    elif mode == 1 and text:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    data = text.encode("utf-8", "surrogatepass")
    if not clean and draw(st.integers(0, 19)) == 0:
        data = draw(st.binary(max_size=100)) + data
    if draw(st.integers(0, 19)) == 0:
        data = b"\xef\xbb\xbf" + data
    if clean:
        target = draw(st.sampled_from(names))
    else:
        target = draw(st.one_of(st.sampled_from(names), st.lists(st.sampled_from(names), max_size=3),
                                st.text(max_size=3)))
    kwargs = {
        "target": target,
        "task": None if clean and draw(st.booleans()) else draw(st.sampled_from(TASK_VALUES)),
        "delimiter": delimiter if clean or draw(st.integers(0, 9)) else
        draw(st.sampled_from(_DELIMITERS + ["", ",,", '"'])),
        "test_fraction": draw(st.sampled_from([0.0, 0.0, 0.2, 0.5, 0.99])),
        "standardize": draw(st.booleans()),
    }
    if draw(st.booleans()):
        kwargs["categorical"] = draw(st.one_of(st.lists(st.sampled_from(names), max_size=2), st.sampled_from(names)))
    return data, kwargs


def _write_and_load(case, folder: str, name: str, loader) -> None:
    data, kwargs = case
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    loader(path, **kwargs)


def run_csv(case, folder: str) -> None:
    """Write the case's file and load it with :func:`csv_dataset`."""
    _write_and_load(case, folder, "fuzz.csv", csv_dataset)


# ============================================================================ NPZ
_DTYPES = st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(max_len=3), hnp.byte_string_dtypes(max_len=3),
                    st.sampled_from([np.dtype("float64"), np.dtype("float32"), np.dtype("int64"), np.dtype("uint8"),
                                     np.dtype("bool")]))


def _array(shape):
    return _DTYPES.flatmap(lambda dt: hnp.arrays(dt, shape))


@st.composite
def npz_cases(draw):
    """An NPZ archive (bytes) and the keyword arguments of ``npz_dataset``."""
    n = draw(st.integers(0, 12))
    if draw(st.booleans()):  # a well-formed archive, so loads also succeed
        n = draw(st.integers(4, 12))
        x = draw(hnp.arrays(st.sampled_from(["float64", "float32", "int16", "uint8", "bool"]),
                            (n, draw(st.integers(1, 3)))))
        if x.dtype.kind == "f":
            x = np.nan_to_num(x.astype(np.float64), posinf=1.0, neginf=-1.0).clip(-1e30, 1e30)
        y = draw(st.one_of(hnp.arrays("float64", (n,), elements=st.floats(-1e6, 1e6)),
                           hnp.arrays("int64", (n,), elements=st.integers(0, 3)),
                           hnp.arrays("<U1", (n,), elements=st.sampled_from("ab"))))
        buf = io.BytesIO()
        np.savez(buf, x=x, y=y)
        return buf.getvalue(), {"task": None, "test_fraction": draw(st.sampled_from([0.0, 0.25])),
                                "standardize": draw(st.booleans())}
    arrays = {}
    arrays["x"] = draw(_array(st.just((n, draw(st.integers(0, 3)))) | hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                        min_side=0, max_side=4)))
    arrays["y"] = draw(_array(st.just((n,)) | hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
    if draw(st.booleans()):
        m = draw(st.integers(0, 5))
        arrays["x_test"] = draw(_array(st.just((m, *arrays["x"].shape[1:]))))
        if draw(st.integers(0, 5)):
            arrays["y_test"] = draw(_array(st.just((m, *arrays["y"].shape[1:]))))
    if draw(st.integers(0, 4)) == 0:
        arrays["feature_names"] = draw(_array(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4)))
    if draw(st.integers(0, 9)) == 0:
        arrays[draw(st.sampled_from(["x", "y", "extra"]))] = np.array([{"a": 1}, None], dtype=object)
    for k in list(arrays):
        if draw(st.integers(0, 14)) == 0:
            arrays[draw(st.text(min_size=1, max_size=4))] = arrays.pop(k)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    mode = draw(st.integers(0, 14))
    if mode == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif mode == 1:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    elif mode == 2:
        data = draw(st.binary(max_size=200))
    elif mode == 3:
        b = io.BytesIO()
        np.save(b, next(iter(arrays.values())), allow_pickle=True)
        data = b.getvalue()
    kwargs = {"task": draw(st.sampled_from(TASK_VALUES)), "test_fraction": draw(st.sampled_from([0.0, 0.2, 0.5])),
              "standardize": draw(st.booleans())}
    if draw(st.integers(0, 9)) == 0:
        kwargs["x_key"] = draw(st.sampled_from(["y", "nope", "", "x_test"]))
    return data, kwargs


def run_npz(case, folder: str) -> None:
    """Write the case's archive and load it with :func:`npz_dataset`."""
    _write_and_load(case, folder, "fuzz.npz", npz_dataset)


# ============================================================================ specs
def _spec_files(kind: str) -> list[Path]:
    return sorted((ROOT / ("models" if kind == "model" else "inference")).glob("*.toml"))


SPEC_TEXTS = {kind: [p.read_text(encoding="utf-8") for p in _spec_files(kind)] for kind in ("model", "inference")}
SPEC_DICTS = {kind: [tomllib.loads(t) for t in texts] for kind, texts in SPEC_TEXTS.items()}


def _keys(obj, out: set) -> set:
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _keys(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _keys(v, out)
    return out


KEYS = sorted(_keys(SPEC_DICTS, set()) | {"mcmc", "hmc", "override", "layers", "frozen", "hyperpriors",
                                          "num_classes", "noise", "rank", "stride", "padding", "bayesian"})
WORDS = sorted({*PRIOR_FAMILIES, *LIKELIHOOD_FAMILIES, *GUIDE_FAMILIES, *METHODS, "relu", "tanh", "flatten",
                "toy", "sklearn", "uci", "csv", "npz", "fashion_mnist", "digits", "iris", "packed", "layer",
                "tensor", "auto", "cpu", "cuda", "cuda:7", "float32", "float64", "blundell", "uniform", "adam",
                "meanfield", "trace", "learned", "fixed"})
_SCALARS = st.one_of(
    st.integers(-3, 130), st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.sampled_from(WORDS),
    st.text(max_size=5), st.sampled_from([10**400, -0.0, 1e308, 5e-324])
)
VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)), max_leaves=6)
PY_ODDITIES = st.sampled_from([lambda: None, lambda: (1, 2), lambda: {1, 2}, lambda: b"x", object,
                                lambda: {1: "a"}, lambda: float("nan"), lambda: [None]]).map(lambda make: make())
"""Python values no TOML file can hold (made fresh for every case: the cases edit them in place)."""


@st.composite
def mutated_spec(draw, kind: str, python_values: bool = True):
    """A real spec document with a few random edits (delete, set, add, replace a table)."""
    doc = copy.deepcopy(draw(st.sampled_from(SPEC_DICTS[kind])))
    values = st.one_of(VALUES, PY_ODDITIES) if python_values else VALUES
    for _ in range(draw(st.integers(0, 4))):
        node = doc
        for _ in range(draw(st.integers(0, 3))):  # walk down a random path
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            children = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
            if not children:
                break
            node = draw(st.sampled_from(children))[1]
        action = draw(st.sampled_from(["delete", "set", "add"]))
        if isinstance(node, dict):
            if action == "delete" and node:
                del node[draw(st.sampled_from(sorted(node, key=str)))]
            elif action == "set" and node:
                node[draw(st.sampled_from(sorted(node, key=str)))] = draw(values)
            else:
                node[draw(st.sampled_from(KEYS))] = draw(values)
        elif isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            if action == "delete":
                del node[i]
            else:
                node[i] = draw(values)
    return doc


def _line_edits(text: str, draw) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        action = draw(st.sampled_from(["delete", "duplicate", "insert", "truncate", "garble"]))
        if not lines:
            lines = [""]
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "insert":
            key = draw(st.sampled_from(KEYS))
            val = draw(st.sampled_from(['1', '-1', '0', '1e400', 'nan', 'inf', '"x"', '[1, 20]', 'true', '{a=1}',
                                        '"relu"', '[]', '{}', '1979-05-27', '"' + draw(st.sampled_from(WORDS)) + '"']))
            lines.insert(i, draw(st.sampled_from([f"{key} = {val}", f"[{key}]", f"[[{key}]]", f"[prior.{key}]"])))
        elif action == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            lines[i] = lines[i] + draw(st.text(max_size=4))
    return "\n".join(lines)


@st.composite
def spec_texts(draw):
    """``(kind, text)``: a spec file's text with random line edits, or any text at all."""
    kind = draw(st.sampled_from(["model", "inference"]))
    if draw(st.integers(0, 9)) == 0:
        return kind, draw(st.text(max_size=80))
    return kind, _line_edits(draw(st.sampled_from(SPEC_TEXTS[kind])), draw)


_OVERRIDE_VALUES = st.one_of(
    st.sampled_from(["5", "0", "-1", "1e-3", "1e400", "nan", "-inf", "true", "[1,20]", "[1, 20, 3]", "[]", "{}",
                     '{family="laplace"}', '{family="scale_mixture", pi=0.25}', '"x"', "[", "{", "=", "'", "0x10",
                     "1979-05-27", "[[1]]", '{ a = { b = 1 } }']),
    st.sampled_from(WORDS), st.text(max_size=8))


def _leaves(obj, prefix: str = "") -> list[tuple[str, object]]:
    """Every ``(key.path, value)`` of a parsed spec, in override syntax (``model.layers[0].linear``)."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for k, v in items:
        path = f"{prefix}[{k}]" if isinstance(k, int) else (f"{prefix}.{k}" if prefix else k)
        out.append((path, v))
        if isinstance(v, (dict, list)):
            out += _leaves(v, path)
    return out


def _similar(value):
    """TOML text of a value like ``value`` (same type, other magnitude)."""
    if isinstance(value, bool):
        return st.sampled_from(["true", "false"])
    if isinstance(value, int):
        return st.integers(-2, 2 * abs(value) + 2).map(str)
    if isinstance(value, float):
        return st.floats(-2.0, 2.0 * abs(value) + 2.0).map(repr)
    if isinstance(value, str):
        return st.sampled_from(WORDS).map(lambda w: f'"{w}"')
    return _OVERRIDE_VALUES


@st.composite
def override_cases(draw):
    """``(kind, source text, overrides)``: a real spec file and ``key.path=value`` strings, either on
    the file's own keys with values of the same type, or random."""
    kind = draw(st.sampled_from(["model", "inference"]))
    i = draw(st.integers(0, len(SPEC_TEXTS[kind]) - 1))
    leaves = _leaves(SPEC_DICTS[kind][i])
    overrides = []
    for _ in range(draw(st.integers(1, 3))):
        style = draw(st.integers(0, 9))
        if style == 0:
            overrides.append(draw(st.text(max_size=20)))
        elif style < 5:
            parts = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
            key = ".".join(p + (f"[{draw(st.integers(-3, 4))}]" if draw(st.integers(0, 4)) == 0 else "")
                           for p in parts)
            overrides.append(f"{key}={draw(_OVERRIDE_VALUES)}")
        else:
            key, value = draw(st.sampled_from(leaves))
            overrides.append(f"{key}={draw(_similar(value))}")
    return kind, SPEC_TEXTS[kind][i], overrides


def _loader(kind: str):
    return load_model_spec if kind == "model" else load_inference_spec


def run_spec_dict(case, folder: str) -> None:
    """Validate a (mutated) spec dict."""
    kind, doc = case
    _loader(kind)(doc)


def run_spec_text(case, folder: str) -> None:
    """Write a spec text to a file and load it."""
    kind, text = case
    path = os.path.join(folder, f"fuzz_{kind}.toml")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    _loader(kind)(path)


def run_overrides(case, folder: str) -> None:
    """Load a real spec file with random overrides."""
    kind, text, overrides = case
    path = os.path.join(folder, f"fuzz_{kind}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    _loader(kind)(path, overrides)


spec_dicts = st.sampled_from(["model", "inference"]).flatmap(lambda k: st.tuples(st.just(k), mutated_spec(k)))

PROPERTIES = {
    # name: (strategy, runner, the library's error type for it, examples in the default test run)
    "csv": (csv_cases(), run_csv, DataError, 80),
    "npz": (npz_cases(), run_npz, DataError, 80),
    "spec_dict": (spec_dicts, run_spec_dict, SpecError, 80),
    "spec_toml": (spec_texts(), run_spec_text, SpecError, 60),
    "spec_override": (override_cases(), run_overrides, SpecError, 60),
}
"""Every fuzzed property: inputs, how to run one, and the one exception type it may raise."""


def _property_test(name: str):
    strategy, runner, allowed, examples = PROPERTIES[name]

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(case=strategy)
    def test(case):
        with tempfile.TemporaryDirectory() as folder:
            try:
                runner(case, folder)
            except allowed as e:
                assert str(e), f"{type(e).__name__} without a message"

    test.__name__ = f"test_fuzz_{name}"
    return test


test_fuzz_csv = _property_test("csv")
test_fuzz_npz = _property_test("npz")
test_fuzz_spec_dict = _property_test("spec_dict")
test_fuzz_spec_toml = _property_test("spec_toml")
test_fuzz_spec_override = _property_test("spec_override")


def test_strategies_reach_both_outcomes():
    """The generated cases are not all rejected: each property also produces loads that succeed."""
    examples = {
        "csv": (b"x,y\n1,a\n2,b\n3,a\n4,b\n", {"target": "y", "test_fraction": 0.0}),
        "npz": None,
        "spec_dict": ("model", tomllib.loads((ROOT / "models" / "toy_regression.toml").read_text())),
        "spec_toml": ("inference", SPEC_TEXTS["inference"][0]),
        "spec_override": ("model", (ROOT / "models" / "toy_regression.toml").read_text(), ["prior.scale=0.5"]),
    }
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((4, 2)), y=np.arange(4.0))
    examples["npz"] = (buf.getvalue(), {"test_fraction": 0.0})
    with tempfile.TemporaryDirectory() as folder:
        for name, case in examples.items():
            PROPERTIES[name][1](case, folder)  # must not raise
