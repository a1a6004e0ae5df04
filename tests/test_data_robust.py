"""The tabular loaders never return a silently wrong dataset: every bad file gives a DataError
naming the file, the column (or array key), the row and the value."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrobnn.data import DataError, csv_dataset, make_dataset, mushroom, npz_dataset, uci
from pyrobnn.data.csvtable import cell_kind
from pyrobnn.data.paths import DATA_ROOT_ENV

N = 30


def _csv(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _table(x_cell, y_cell, bad_row: int = 4, n: int = N, sep: str = ",") -> str:
    """A header x,y and ``n`` rows; data row ``bad_row`` (1-based) gets the given cells."""
    rows = []
    for r in range(1, n + 1):
        x = x_cell if r == bad_row and x_cell is not None else str(r)
        y = y_cell if r == bad_row and y_cell is not None else f"{0.5 * r}"
        rows.append(f"{x}{sep}{y}")
    return f"x{sep}y\n" + "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------- CSV: one bad cell
BAD_CELLS = [
    # (x cell, y cell, delimiter, column, value written in the message)
    ("?", None, ",", "x", "'?'"),
    ("n/a", None, ",", "x", "'n/a'"),
    ("1,5", None, ";", "x", "'1,5'"),
    ("1_000", None, ",", "x", "'1_000'"),
    ("nan", None, ",", "x", "'nan'"),
    ("-Infinity", None, ",", "x", "'-Infinity'"),
    ("1e39", None, ",", "x", "'1e39'"),
    (None, "?", ",", "y", "'?'"),
    (None, "NaN", ",", "y", "'NaN'"),
    (None, "inf", ",", "y", "'inf'"),
    (None, "-1e300", ",", "y", "'-1e300'"),
]


@pytest.mark.parametrize("x_cell, y_cell, sep, column, shown", BAD_CELLS)
def test_csv_bad_cell_names_file_column_row_value(tmp_path, x_cell, y_cell, sep, column, shown):
    path = _csv(tmp_path, _table(x_cell, y_cell, bad_row=4, sep=sep))
    with pytest.raises(DataError) as info:
        csv_dataset(path, "y", delimiter=sep)
    msg = str(info.value)
    assert msg.startswith(f"{path}: column {column!r}, data row 4 (line 5): {shown} ")
    assert info.value.column == column and info.value.row == 4 and info.value.line == 5
    assert info.value.path == str(path)
    if column == "x" and x_cell in ("?", "n/a", "1,5", "1_000"):
        assert "categorical=['x']" in msg and "29 of 30 cells" in msg


def test_csv_empty_cells_are_errors_everywhere(tmp_path):
    for x_cell, y_cell, column in (("", None, "x"), (None, "", "y")):
        path = _csv(tmp_path, _table(x_cell, y_cell, bad_row=7))
        with pytest.raises(DataError, match=rf"column '{column}', data row 7 \(line 8\): the cell is empty"):
            csv_dataset(path, "y")
    text = "c,y\n" + "\n".join(("" if i == 2 else "abc"[i % 3]) + f",{i}.5" for i in range(10))
    with pytest.raises(DataError, match=r"column 'c', data row 3 \(line 4\): the cell is empty"):
        csv_dataset(_csv(tmp_path, text, "cat.csv"), "y")
    # a row of empty fields is a row of empty cells, not a blank line
    with pytest.raises(DataError, match=r"column 'y', data row 2 \(line 4\): the cell is empty"):
        csv_dataset(_csv(tmp_path, "x,y\n1,2.5\n\n,\n3,4.5\n", "blank.csv"), "y")


def test_csv_bad_cell_line_counts_quoted_newlines_and_blank_lines(tmp_path):
    text = 'x,name,y\n1,"two\nlines",0.5\n\n2,b,?\n' + "".join(f"{i},b,{i}.5\n" for i in range(3, 9))
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=r"column 'y', data row 2 \(line 5\): '\?' is not a number"):
        csv_dataset(path, "y")


def test_csv_categorical_argument_one_hot_encodes_a_numeric_looking_column(tmp_path):
    path = _csv(tmp_path, _table("?", None, bad_row=4))
    ds = csv_dataset(path, "y", categorical=["x"], test_fraction=0.0, standardize=False)
    assert ds.meta["categories"]["x"][-1] == "?" and ds.x_train.shape == (N, N)
    assert ds.feature_names[-1] == "x=?"
    with pytest.raises(DataError, match=r"categorical=\['z'\]: 'z' is not a column of .*d\.csv; expected one of"):
        csv_dataset(path, "y", categorical=["z"])
    with pytest.raises(DataError, match=r"categorical=\['y'\] names the target column 'y'"):
        csv_dataset(path, "y", categorical=["y"])


def test_csv_mostly_text_column_stays_categorical(tmp_path):
    # the Mushroom rule: '?' is a category of a text column, not an error
    text = "c,y\n" + "\n".join(f"{'?' if i % 4 == 0 else 'ab'[i % 2]},{i}.5" for i in range(12))
    ds = csv_dataset(_csv(tmp_path, text), "y", test_fraction=0.0)
    assert ds.meta["categories"] == {"c": ["?", "a", "b"]}


# ----------------------------------------------------------------------------- CSV: targets and task
def test_csv_huge_regression_target_is_kept_as_a_float(tmp_path):
    text = "x,y\n" + "\n".join(f"{i},{'1e30' if i == 3 else i}" for i in range(N))
    ds = csv_dataset(_csv(tmp_path, text), "y", test_fraction=0.0)
    assert ds.task == "regression"
    y = ds.y_to_original(ds.y_train.double())
    assert y[3].item() == pytest.approx(1e30, rel=1e-6)
    raw = csv_dataset(_csv(tmp_path, text), "y", test_fraction=0.0, standardize=False)
    assert raw.y_train[3].item() == pytest.approx(1e30, rel=1e-6)


def test_csv_regression_target_beyond_float32_is_an_error(tmp_path):
    text = "x,y\n" + "\n".join(f"{i},{'1e39' if i == 5 else i}" for i in range(N))
    with pytest.raises(DataError, match=r"column 'y', data row 6 \(line 7\): '1e39' overflows float32"):
        csv_dataset(_csv(tmp_path, text), "y")


@pytest.mark.parametrize("cells, task, expected", [
    ([str(i % 3) for i in range(N)], None, ("multiclass", [0, 1, 2])),
    ([f"{i % 3}.0" for i in range(N)], None, ("regression", None)),
    ([f"{i % 2}e0" for i in range(N)], None, ("regression", None)),
    ([f"{i % 3}.0" for i in range(N)], "multiclass", ("multiclass", [0, 1, 2])),
    ([str(i) for i in range(N)], None, ("regression", None)),  # > 20 distinct integers
    ([str(i % 3) for i in range(N)], "regression", ("regression", None)),
    (["ab"[i % 2] for i in range(N)], None, ("binary", ["a", "b"])),
    ([str(2**62 + i % 2) for i in range(N)], None, ("binary", [2**62, 2**62 + 1])),
])
def test_csv_task_rule(tmp_path, cells, task, expected):
    text = "x,y\n" + "\n".join(f"{i},{c}" for i, c in enumerate(cells))
    ds = csv_dataset(_csv(tmp_path, text), "y", task=task, test_fraction=0.0)
    assert (ds.task, ds.meta.get("classes")) == expected


@pytest.mark.parametrize("cell, task, pattern", [
    ("2.5", "multiclass", r"2\.5 is not a whole number; expected integer class labels for task='multiclass'"),
    ("1e17", "multiclass", r"1e\+17 is beyond 2\*\*53 and cannot be represented exactly"),
    ("1e30", "binary", r"1e\+30 is beyond 2\*\*53"),
    ("?", None, r"'\?' is not a number; .*a target column is numeric when more than half"),
    ("?", "multiclass", r"'\?' is not a number"),
    ("abc", "regression", r"'abc' is not a number; .*task='regression' needs a numeric target"),
])
def test_csv_bad_label_names_row_and_value(tmp_path, cell, task, pattern):
    # 40 integer labels and one bad cell: never a 41-class label or a one-hot surprise
    text = "x,y\n" + "\n".join(f"{i},{cell if i == 8 else i % 40}" for i in range(45))
    with pytest.raises(DataError, match=r"d\.csv: column 'y', data row 9 \(line 10\): " + pattern):
        csv_dataset(_csv(tmp_path, text), "y", task=task)


def test_csv_multi_target_bad_cell(tmp_path):
    text = "x,a,b\n" + "\n".join(f"{i},{i}.5,{'x' if i == 2 else i}" for i in range(10))
    with pytest.raises(DataError, match=r"column 'b', data row 3 \(line 4\): 'x' is not a number"):
        csv_dataset(_csv(tmp_path, text), ["a", "b"])


# ----------------------------------------------------------------------------- CSV: file structure
@pytest.mark.parametrize("content, pattern", [
    (b"", r"the file is empty"),
    (b"x,y\n", r"header but no data rows"),
    (b"x,,y\n1,2,3\n", r"line 1: header field 2 is empty"),
    (b"x,y,x\n1,2,3\n", r"line 1: column name 'x' appears twice"),
    (b"x,y\n1,2\n\xff\xfe,3\n", r"byte \d+ is not UTF-8"),
    (b"x,y\n1,2\n3,4,5\n", r"line 3: data row 2 has 3 fields but the header has 2"),
])
def test_csv_structure_errors(tmp_path, content, pattern):
    path = tmp_path / "s.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + pattern):
        csv_dataset(path, "y")


def test_csv_bom_and_argument_errors(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,y\n".encode() + "".join(f"{i},{i}.5\n" for i in range(6)).encode())
    assert csv_dataset(path, "y", test_fraction=0.0).feature_names == ["x"]
    for kwargs, pattern in (({"delimiter": ";;"}, r"delimiter=';;' is not valid"),
                            ({"delimiter": '"'}, r"delimiter='\"' is not valid"),
                            ({"task": "ordinal"}, r"task='ordinal' is not valid"),
                            ({"test_fraction": "0.2"}, r"test_fraction='0.2' is not valid"),
                            ({"seed": -1}, r"seed=-1 is not valid"),
                            ({"target": []}, r"target=\[\] names no column"),
                            ({"target": ["x", "x"]}, r"names a column twice")):
        args = {"target": "y", **kwargs}
        with pytest.raises(DataError, match=pattern):
            csv_dataset(path, **args)
    with pytest.raises(DataError, match=r"cannot split 6 rows .*stratified"):
        csv_dataset(_csv(tmp_path, "x,y\n1,a\n2,a\n3,a\n4,a\n5,a\n6,b\n", "strat.csv"), "y", test_fraction=0.5)


def test_cell_kinds():
    assert [cell_kind(c) for c in ("", "12", "-3", "1.", ".5", "1e-3", "+2E5", "nan", "-Inf")] == \
        ["empty", "int", "int", "float", "float", "float", "float", "nonfinite", "nonfinite"]
    assert {cell_kind(c) for c in ("1,5", "1_0", "١٢", "0x1f", "1e", "e5", "--1", "?")} == {"text"}


def test_mushroom_csv_unchanged_and_empty_cell_error(tmp_path):
    root = Path(os.environ.get(DATA_ROOT_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")
    path = root / "mushroom" / "mushroom.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    ds = csv_dataset(path, "class", test_fraction=0.0, standardize=False)
    assert ds.task == "binary" and ds.x_train.shape == (8124, 117) and "stalk-root=?" in ds.feature_names
    assert torch.all(ds.x_train.sum(1) == 22)
    bad = _csv(tmp_path, "class,odor\ne,none\np,\n", "m.csv")
    with pytest.raises(DataError, match=r"m\.csv: column 'odor', data row 2 \(line 3\): the cell is empty"):
        mushroom(bad)


# ----------------------------------------------------------------------------- NPZ
def _npz(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "a.npz"
    np.savez(path, **arrays)
    return path


X, Y = np.arange(40.0).reshape(20, 2), np.arange(20.0)


@pytest.mark.parametrize("arrays, pattern", [
    ({"x": X.astype(complex), "y": Y}, r"array 'x': holds complex128 values"),
    ({"x": X.astype(str), "y": Y}, r"array 'x': holds <U32 values"),
    ({"x": np.zeros(20), "y": Y}, r"array 'x': has shape \(20,\); expected at least 2 dimensions"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, r"array 'x': has shape \(0, 2\), no rows"),
    ({"x": np.zeros((20, 0)), "y": Y}, r"array 'x': has shape \(20, 0\), no features"),
    ({"x": X, "y": np.zeros((20, 2, 2))}, r"array 'y': has shape \(20, 2, 2\); expected \(N,\)"),
    ({"x": X, "y": Y[:5]}, r"array 'y': has 5 rows but 'x' has 20"),
    ({"x": np.where(X == 13, np.nan, X), "y": Y}, r"array 'x' at index \(6, 1\): nan is not a finite number"),
    ({"x": X, "y": np.where(Y == 7, -np.inf, Y)}, r"array 'y' at index \(7,\): -inf is not a finite number"),
    ({"x": np.where(X == 5, 1e39, X), "y": Y}, r"array 'x' at index \(2, 1\): 1e\+39 overflows float32"),
    ({"x": X, "y": np.where(Y == 3, 4e38, Y)}, r"array 'y' at index \(3,\): 4e\+38 overflows float32"),
    ({"x": X, "y": Y, "x_test": X}, r"array 'x_test': is in the archive but 'y_test' is not"),
    ({"x": X, "y": Y, "x_test": X[:, :1], "y_test": Y}, r"array 'x_test': has shape \(20, 1\); expected \(N, 2\)"),
    ({"x": X, "y": Y, "x_test": X, "y_test": np.where(Y == 2, np.nan, Y)},
     r"array 'y_test' at index \(2,\): nan is not a finite number"),
    ({"x": X, "y": Y, "feature_names": np.array(["a"])}, r"array 'feature_names': has shape \(1,\)"),
    ({"x": X, "y": Y.astype("datetime64[s]")}, r"array 'y': holds datetime64\[s\] values"),
])
def test_npz_bad_arrays_name_file_and_key(tmp_path, arrays, pattern):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(DataError, match=re.escape(str(path)) + ": " + pattern):
        npz_dataset(path)


def test_npz_labels_and_unreadable_files(tmp_path):
    path = _npz(tmp_path, x=X, y=Y + 0.5)
    with pytest.raises(DataError, match=r"array 'y' at index \(0,\): 0\.5 is not a whole number"):
        npz_dataset(path, task="multiclass")
    ds = npz_dataset(_npz(tmp_path, x=X, y=Y % 3), task="multiclass", test_fraction=0.0)
    assert ds.meta["classes"] == [0, 1, 2]
    obj = tmp_path / "obj.npz"
    np.savez(obj, x=np.array([{"a": 1}] * 20, dtype=object), y=Y)
    with pytest.raises(DataError, match=re.escape(str(obj)) + r": array 'x': cannot be read"):
        npz_dataset(obj)
    for name, content in (("text.npz", b"hello"), ("trunc.npz", _npz(tmp_path, x=X, y=Y).read_bytes()[:100])):
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(DataError, match=re.escape(str(bad)) + r": cannot be read|array"):
            npz_dataset(bad)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, X)
    with pytest.raises(DataError, match=r"holds a single \.npy array"):
        npz_dataset(single)


# ----------------------------------------------------------------------------- safety net and UCI
def test_make_dataset_rejects_values_float32_cannot_hold():
    with pytest.raises(DataError, match=r"array 'toy: y_train' at index \(1,\): 1e\+300 overflows float32"):
        make_dataset("toy", "regression", np.zeros((2, 1)), np.array([0.0, 1e300]))
    with pytest.raises(DataError, match=r"'toy: x_test' at index \(0, 0\): nan is not a finite number"):
        make_dataset("toy", "regression", np.zeros((2, 1)), np.zeros(2), np.full((1, 1), np.nan), np.zeros(1))


def test_uci_bad_files(tmp_path):
    folder = tmp_path / "u"
    folder.mkdir()
    (folder / "data.txt").write_text("1 2 3\n4 ? 6\n7 8 9\n")
    for name, text in (("index_features.txt", "0\n1\n"), ("index_target.txt", "2\n"), ("n_splits.txt", "1\n"),
                       ("index_train_0.txt", "0\n1\n"), ("index_test_0.txt", "2\n")):
        (folder / name).write_text(text)
    with pytest.raises(DataError, match=re.escape(str(folder / "data.txt")) + r": cannot be read as"):
        uci(folder)
    (folder / "data.txt").write_text("1 2 3\n4 nan 6\n7 8 9\n")
    with pytest.raises(DataError, match=r"data\.txt: at index \(1, 1\): nan is not a finite number"):
        uci(folder)
    (folder / "data.txt").write_text("1 2 3\n4 5 6\n7 8 9\n")
    (folder / "index_train_0.txt").write_text("0\n1.5\n")
    with pytest.raises(DataError, match=r"index_train_0\.txt: at index \(1,\): 1\.5 is not an integer index"):
        uci(folder)
