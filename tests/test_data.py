"""Tests for pyrobnn.data: every loader, the Dataset helpers and every error message."""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrobnn.data import (
    DATA_ROOT_ENV,
    FASHION_MNIST_CLASSES,
    Dataset,
    csv_dataset,
    fashion_mnist,
    infer_task,
    load,
    make_dataset,
    mushroom,
    npz_dataset,
    read_idx,
    sklearn_dataset,
    standardize,
    toy_curve,
    toy_function,
    uci,
    uci_n_splits,
)

# CI keeps the shared data next to the checkout, at ../shared/data; $PYROBNN_DATA overrides.
SHARED = Path(os.environ.get(DATA_ROOT_ENV) or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_shared = pytest.mark.skipif(not (SHARED / "uci").is_dir(), reason=f"shared data not found at {SHARED}")
FMNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(
    not any((FMNIST_ROOT / f"train-labels-idx1-ubyte{s}").is_file() for s in ("", ".gz")),
    reason="Debian package dataset-fashion-mnist not installed",
)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED / "uci").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)


def _close(a, b, tol=1e-5):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return torch.allclose(a, b, atol=tol, rtol=tol)


# ----------------------------------------------------------------------------- toy curve
def test_toy_curve_matches_blundell_formula_with_same_rng_draws():
    ds = toy_curve(n_train=50, n_test=30, noise=0.02, seed=7)
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 0.5, 50)
    eps = rng.normal(0.0, 0.02, 50)
    y = x + 0.3 * np.sin(2 * np.pi * (x + eps)) + 0.3 * np.sin(4 * np.pi * (x + eps)) + eps
    xt = np.linspace(-0.2, 1.2, 30)
    et = rng.normal(0.0, 0.02, 30)
    yt = xt + 0.3 * np.sin(2 * np.pi * (xt + et)) + 0.3 * np.sin(4 * np.pi * (xt + et)) + et
    assert ds.task == "regression" and ds.name == "toy_curve"
    assert ds.x_train.shape == (50, 1) and ds.y_train.shape == (50,) and ds.x_train.dtype == torch.float32
    assert ds.x_test.shape == (30, 1) and ds.y_test.shape == (30,)
    assert _close(ds.x_train[:, 0], x) and _close(ds.y_train, y)
    assert _close(ds.x_test[:, 0], xt) and _close(ds.y_test, yt)
    assert ds.x_mean is None and ds.y_std is None
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 0.5
    assert ds.x_test[0, 0] == pytest.approx(-0.2) and ds.x_test[-1, 0] == pytest.approx(1.2)


def test_toy_curve_noise_free_shape_and_reproducibility():
    ds = toy_curve(n_train=200, noise=0.0, seed=1)
    x = ds.x_train[:, 0].double()
    expected = x + 0.3 * torch.sin(2 * math.pi * x) + 0.3 * torch.sin(4 * math.pi * x)
    assert _close(ds.y_train, expected)
    # the noise-free curve on [0, 0.5] rises from 0 and stays within (-0.1, 1.0)
    assert toy_function(0.0) == pytest.approx(0.0)
    assert -0.1 < float(ds.y_train.min()) and float(ds.y_train.max()) < 1.0
    assert torch.equal(toy_curve(seed=3).y_train, toy_curve(seed=3).y_train)
    assert not torch.equal(toy_curve(seed=3).y_train, toy_curve(seed=4).y_train)
    assert _close(toy_function(torch.linspace(0, 1, 11)), toy_function(np.linspace(0, 1, 11)))
    assert toy_curve(n_test=0).x_test is None


@pytest.mark.parametrize(
    "kwargs, arg",
    [({"n_train": 0}, "n_train"), ({"n_test": -1}, "n_test"), ({"noise": -0.1}, "noise"),
     ({"x_range": (1.0, 0.0)}, "x_range"), ({"test_range": (0.0, 0.0)}, "test_range")],
)
def test_toy_curve_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        toy_curve(**kwargs)


# ----------------------------------------------------------------------------- Dataset + standardisation
def test_standardize_uses_train_stats_and_constant_columns_get_unit_std():
    train = np.array([[1.0, 5.0, 0.998], [3.0, 5.0, 0.998], [5.0, 5.0, 0.998]])
    test = np.array([[7.0, 6.0, 0.998]])
    tr, (te, none), mean, std = standardize(train, test, None)
    assert none is None
    np.testing.assert_allclose(mean, [3.0, 5.0, 0.998])
    np.testing.assert_allclose(std, [np.sqrt(8 / 3), 1.0, 1.0])
    np.testing.assert_allclose(tr.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(te[0], [4 / np.sqrt(8 / 3), 1.0, 0.0], atol=1e-12)
    assert np.all(np.isfinite(tr))


def test_dataset_unit_conversions_match_gaussian_in_original_units():
    rng = np.random.default_rng(0)
    y = rng.normal(30.0, 8.0, size=40)
    ds = make_dataset("d", "regression", rng.normal(size=(40, 3)), y, standardize_x=True, standardize_y=True)
    assert _close(ds.y_to_original(ds.y_train), y, tol=1e-4)
    assert float(ds.y_std) == pytest.approx(y.std(), rel=1e-6)
    assert _close(ds.scale_to_original(torch.tensor(0.5)), 0.5 * y.std(), tol=1e-4)
    # log N(z | m, s) - log y_std == log N(y | m*y_std + y_mean, s*y_std)
    z, m, s = ds.y_train[:5], torch.zeros(5), torch.full((5,), 0.7)
    ll_std = torch.distributions.Normal(m, s).log_prob(z)
    ll_orig = torch.distributions.Normal(ds.y_to_original(m), ds.scale_to_original(s)).log_prob(ds.y_to_original(z))
    assert _close(ds.log_lik_to_original(ll_std), ll_orig, tol=1e-4)
    # no standardisation: helpers are the identity
    plain = make_dataset("p", "regression", np.zeros((3, 1)), np.arange(3.0))
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(plain.y_to_original(t), t) and torch.equal(plain.scale_to_original(t), t)
    assert torch.equal(plain.log_lik_to_original(t), t)


def test_dataset_multi_target_log_lik_sums_log_std():
    y = np.stack([np.arange(10.0), 3 * np.arange(10.0)], axis=1)
    ds = make_dataset("m", "regression", np.ones((10, 2)), y, standardize_y=True)
    assert ds.y_train.shape == (10, 2) and ds.y_std.shape == (2,)
    assert _close(ds.y_to_original(ds.y_train), y)
    ll = torch.zeros(4)
    assert _close(ds.log_lik_to_original(ll), -torch.log(ds.y_std).sum().expand(4))
    assert _close(ds.log_lik_to_original(torch.zeros(4, 2), per_target=True), -torch.log(ds.y_std).expand(4, 2))


def test_dataset_to_keeps_integer_labels_and_properties():
    ds = sklearn_dataset("iris")
    d64 = ds.to("cpu", torch.float64)
    assert d64.x_train.dtype == torch.float64 and d64.x_std.dtype == torch.float64
    assert d64.y_train.dtype == torch.int64 and d64.y_test.dtype == torch.int64
    assert ds.x_train.dtype == torch.float32  # original untouched
    assert ds.input_shape == (4,) and ds.n_train == 120 and ds.n_test == 30
    assert "iris" in repr(ds) and "(120, 4)" in repr(ds)
    assert sklearn_dataset("breast_cancer").to(dtype=torch.float64).y_train.dtype == torch.float64


def test_dataset_bad_task_and_bad_labels():
    with pytest.raises(ValueError, match="task='ordinal'"):
        Dataset("d", "ordinal", torch.zeros(2, 1), torch.zeros(2))
    with pytest.raises(ValueError, match="x_train has 3 rows"):
        Dataset("d", "regression", torch.zeros(3, 1), torch.zeros(2))
    with pytest.raises(ValueError, match="y_train must hold integer class codes"):
        make_dataset("d", "binary", np.zeros((2, 1)), np.array([0, 2]))


# ----------------------------------------------------------------------------- UCI
def _write_uci(folder: Path, data: np.ndarray, train, test, n_splits_file=True):
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", data)
    np.savetxt(folder / "index_features.txt", np.arange(data.shape[1] - 1), fmt="%d")
    np.savetxt(folder / "index_target.txt", [data.shape[1] - 1], fmt="%d")
    for k, (tr, te) in enumerate(zip(train, test)):
        np.savetxt(folder / f"index_train_{k}.txt", tr, fmt="%d")
        np.savetxt(folder / f"index_test_{k}.txt", te, fmt="%d")
    if n_splits_file:
        (folder / "n_splits.txt").write_text(f"{len(train)}\n")
    (folder / "n_hidden.txt").write_text("50\n")
    (folder / "n_epochs.txt").write_text("40\n")


def test_uci_synthetic_folder_exact_values(tmp_path):
    data = np.array([[1.0, 7.0, 10.0], [2.0, 7.0, 20.0], [3.0, 7.0, 30.0], [4.0, 7.0, 40.0], [5.0, 7.0, 50.0]])
    _write_uci(tmp_path / "toyuci", data, [[0, 1, 2], [2, 3, 4]], [[3, 4], [0, 1]], n_splits_file=False)
    ds = uci(tmp_path / "toyuci", split=1)
    assert ds.name == "toyuci" and ds.meta["n_splits"] == 2 and ds.meta["n_hidden"] == 50
    assert uci_n_splits(tmp_path / "toyuci") == 2  # counted from index_train_<k>.txt files
    np.testing.assert_allclose(ds.x_mean.numpy(), [4.0, 7.0])
    np.testing.assert_allclose(ds.x_std.numpy(), [np.sqrt(2 / 3), 1.0], rtol=1e-6)  # constant column -> 1
    np.testing.assert_allclose(ds.y_mean.numpy(), 40.0)
    np.testing.assert_allclose(ds.x_test[:, 1].numpy(), 0.0)  # rows 0, 1 (0-based)
    np.testing.assert_allclose(ds.y_to_original(ds.y_test).numpy(), [10.0, 20.0], rtol=1e-6)
    raw = uci(tmp_path / "toyuci", split=0, standardize=False)
    np.testing.assert_array_equal(raw.y_test.numpy(), [40.0, 50.0])
    assert raw.x_mean is None and raw.y_mean is None


def test_uci_index_errors(tmp_path):
    data = np.arange(12.0).reshape(4, 3)
    _write_uci(tmp_path / "bad", data, [[1, 2, 4]], [[0]])  # 1-based-looking index 4 is out of range
    with pytest.raises(ValueError, match=r"index_train_0\.txt.*0-based"):
        uci(tmp_path / "bad")
    _write_uci(tmp_path / "overlap", data, [[0, 1, 2]], [[2, 3]])
    with pytest.raises(ValueError, match="both the train and test"):
        uci(tmp_path / "overlap")


@needs_shared
def test_uci_boston_split0(shared_data):
    folder = shared_data / "uci" / "bostonHousing"
    raw = np.loadtxt(folder / "data.txt")
    train = np.loadtxt(folder / "index_train_0.txt", dtype=int)
    test = np.loadtxt(folder / "index_test_0.txt", dtype=int)
    assert raw.shape == (506, 14) and len(train) + len(test) == 506
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(506))  # 0-based, covers every row

    ds = uci(folder)
    assert ds.name == "bostonHousing" and ds.task == "regression"
    assert ds.x_train.shape == (len(train), 13) and ds.y_train.shape == (len(train),)
    assert ds.x_test.shape == (len(test), 13) and ds.y_test.shape == (len(test),)
    assert ds.meta["n_splits"] == 20 and ds.meta["n_hidden"] == 50 and ds.meta["split"] == 0
    np.testing.assert_array_equal(ds.meta["test_index"], test)
    assert ds.x_train.mean(0).abs().max() < 1e-5
    assert (ds.x_train.std(0, unbiased=False) - 1).abs().max() < 1e-5
    assert abs(float(ds.y_train.mean())) < 1e-5 and abs(float(ds.y_train.std(unbiased=False)) - 1) < 1e-5
    # statistics come from the training rows only, and y_to_original inverts them
    assert float(ds.y_mean) == pytest.approx(raw[train, 13].mean(), rel=1e-6)
    np.testing.assert_allclose(ds.y_to_original(ds.y_test).numpy(), raw[test, 13], rtol=1e-5)
    np.testing.assert_allclose((ds.x_test * ds.x_std + ds.x_mean).numpy(), raw[test, :13], rtol=1e-4, atol=1e-4)
    assert float(ds.scale_to_original(torch.tensor(1.0))) == pytest.approx(raw[train, 13].std(), rel=1e-5)


@needs_shared
def test_uci_name_forms_env_and_split_range(shared_data, monkeypatch):
    a = uci(shared_data / "uci", "bostonHousing", split=19)
    monkeypatch.setenv(DATA_ROOT_ENV, str(shared_data))
    b = uci(name="bostonHousing", split=19)
    assert torch.equal(a.x_train, b.x_train) and a.meta["split"] == 19
    assert not torch.equal(a.x_train, uci(name="bostonHousing", split=0).x_train)
    with pytest.raises(ValueError, match=r"split=20 is out of range.*0 <= split < 20"):
        uci(name="bostonHousing", split=20)
    with pytest.raises(ValueError, match="split=-1"):
        uci(name="bostonHousing", split=-1)
    assert uci_n_splits(shared_data / "uci" / "protein-tertiary-structure") == 5
    assert uci_n_splits(shared_data / "uci" / "yacht") == 20


@needs_shared
def test_uci_constant_columns_do_not_produce_nan(shared_data):
    ds = uci(shared_data / "uci" / "naval-propulsion-plant")
    assert torch.isfinite(ds.x_train).all() and torch.isfinite(ds.x_test).all()
    assert ds.x_std[8] == 1.0 and ds.x_std[11] == 1.0  # the two constant features


def test_uci_missing_paths(tmp_path, no_env):
    missing = tmp_path / "nowhere" / "bostonHousing"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + r".*data\.txt, index_features\.txt"):
        uci(missing)
    with pytest.raises(FileNotFoundError, match=DATA_ROOT_ENV):
        uci(name="bostonHousing")
    (tmp_path / "uci").mkdir()
    _write_uci(tmp_path / "uci" / "yachtlike", np.arange(12.0).reshape(4, 3), [[0, 1]], [[2, 3]])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "uci" / "data.txt")) + ".*yachtlike"):
        uci(tmp_path / "uci")  # the folder of all datasets without name=: lists what is there
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "uci" / "boston" / "data.txt"))):
        uci(tmp_path / "uci", "boston")
    (tmp_path / "uci" / "yachtlike" / "index_test_0.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "uci" / "yachtlike" / "index_test_0.txt"))):
        uci(tmp_path / "uci", "yachtlike")


# ----------------------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize(
    "name, task, n, d, k",
    [("breast_cancer", "binary", 569, 30, 2), ("digits", "multiclass", 1797, 64, 10),
     ("iris", "multiclass", 150, 4, 3), ("wine", "multiclass", 178, 13, 3), ("diabetes", "regression", 442, 10, None)],
)
def test_sklearn_shapes_types_and_standardisation(name, task, n, d, k):
    ds = sklearn_dataset(name, test_fraction=0.2, seed=0)
    n_test = math.ceil(0.2 * n)
    assert ds.task == task and ds.num_classes == k
    assert ds.x_train.shape == (n - n_test, d) and ds.x_test.shape == (n_test, d)
    assert ds.y_train.shape == (n - n_test,) and len(ds.feature_names) == d
    assert torch.isfinite(ds.x_train).all() and ds.x_train.mean(0).abs().max() < 1e-4
    expected = {"binary": torch.float32, "multiclass": torch.int64, "regression": torch.float32}[task]
    assert ds.y_train.dtype == expected
    if task == "regression":
        assert abs(float(ds.y_train.mean())) < 1e-4 and ds.y_mean is not None
    else:
        assert ds.y_mean is None and len(ds.meta["classes"]) == k
        assert set(ds.y_train.long().tolist()) == set(range(k))


@pytest.mark.parametrize("name", ["breast_cancer", "digits", "wine"])
def test_sklearn_split_is_stratified(name):
    ds = sklearn_dataset(name, test_fraction=0.25, seed=3)
    k = ds.num_classes
    tr = torch.bincount(ds.y_train.long(), minlength=k).double()
    te = torch.bincount(ds.y_test.long(), minlength=k).double()
    expected_te = (tr + te) * ds.n_test / (ds.n_train + ds.n_test)
    assert (te - expected_te).abs().max() <= 1.0  # every class within one example of its share


def test_sklearn_diabetes_roundtrip_and_options():
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(scaled=False)
    ds = sklearn_dataset("diabetes", seed=1)
    np.testing.assert_allclose(ds.y_to_original(ds.y_test).numpy(), raw.target[ds.meta["test_index"]], rtol=1e-5)
    plain = sklearn_dataset("digits", standardize=False, test_fraction=0.0)
    assert plain.x_test is None and plain.n_train == 1797 and plain.x_mean is None
    assert float(plain.x_train.max()) == 16.0
    assert torch.equal(sklearn_dataset("iris", seed=5).y_test, sklearn_dataset("iris", seed=5).y_test)


def test_sklearn_bad_arguments():
    with pytest.raises(ValueError, match=r"name='mnist'.*breast_cancer.*wine"):
        sklearn_dataset("mnist")
    with pytest.raises(ValueError, match=r"test_fraction=1\.5"):
        sklearn_dataset("iris", test_fraction=1.5)


# ----------------------------------------------------------------------------- CSV
def _write_csv(path: Path, header, rows, delimiter=","):
    path.write_text("\n".join(delimiter.join(map(str, r)) for r in [header, *rows]) + "\n")


def test_csv_roundtrip_categorical_feature_and_string_target(tmp_path):
    rng = np.random.default_rng(0)
    colors = np.array(["red", "green", "blue"])[rng.integers(0, 3, 60)]
    size = rng.normal(size=60).round(3)
    label = np.array(["cat", "dog", "bird"])[np.arange(60) % 3]
    path = tmp_path / "pets.csv"
    _write_csv(path, ["size", "color", "label"], zip(size, colors, label))
    ds = csv_dataset(path, target="label", seed=2)
    assert ds.name == "pets" and ds.task == "multiclass" and ds.num_classes == 3
    assert ds.meta["classes"] == ["bird", "cat", "dog"]
    assert ds.feature_names == ["size", "color=blue", "color=green", "color=red"]
    assert ds.meta["categories"] == {"color": ["blue", "green", "red"]}
    assert ds.x_train.shape == (48, 4) and ds.x_test.shape == (12, 4) and ds.y_train.dtype == torch.int64
    idx = ds.meta["test_index"]
    x = (ds.x_test * ds.x_std + ds.x_mean).numpy()
    np.testing.assert_allclose(x[:, 0], size[idx], atol=1e-5)
    decoded = np.array(["blue", "green", "red"])[x[:, 1:].round().argmax(1)]
    np.testing.assert_array_equal(decoded, colors[idx])
    np.testing.assert_allclose(x[:, 1:].sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.array(ds.meta["classes"])[ds.y_test.numpy()], label[idx])
    assert torch.bincount(ds.y_test).tolist() == [4, 4, 4]  # stratified


def test_csv_task_inference_and_regression(tmp_path):
    path = tmp_path / "r.tsv"
    rows = [(i, i % 2, "yes" if i % 3 else "no", 0.5 * i + 0.25) for i in range(30)]
    _write_csv(path, ["a", "b", "ok", "t"], rows, delimiter="\t")
    reg = csv_dataset(path, "t", delimiter="\t", standardize=False, test_fraction=0.0)
    assert reg.task == "regression" and reg.y_train.dtype == torch.float32
    np.testing.assert_allclose(reg.y_train.numpy(), [r[3] for r in rows])
    assert reg.feature_names == ["a", "b", "ok=no", "ok=yes"]
    binary = csv_dataset(path, "ok", delimiter="\t")
    assert binary.task == "binary" and binary.y_train.dtype == torch.float32 and binary.meta["classes"] == ["no", "yes"]
    ints = csv_dataset(path, "b", delimiter="\t")
    assert ints.task == "binary" and ints.meta["classes"] == [0, 1]
    multi = csv_dataset(path, ["a", "t"], delimiter="\t")
    assert multi.y_train.shape == (24, 2) and multi.y_std.shape == (2,)
    assert infer_task(np.arange(100)) == "regression" and infer_task(np.array([1, 2, 3])) == "multiclass"
    assert infer_task(np.array([0.0, 1.0, 2.0])) == "regression" and infer_task(np.array([True, False])) == "binary"


def test_csv_errors(tmp_path, no_env):
    path = tmp_path / "d.csv"
    _write_csv(path, ["x", "y"], [(1, "a"), (2, "b"), (3, "c")])
    with pytest.raises(ValueError, match=r"target='nope'.*\['x', 'y'\]"):
        csv_dataset(path, target="nope")
    with pytest.raises(ValueError, match="task='binary'.*3 distinct labels"):
        csv_dataset(path, target="y", task="binary", test_fraction=0.0)
    with pytest.raises(ValueError, match="task='regression' needs a numeric target"):
        csv_dataset(path, target="y", task="regression")
    with pytest.raises(ValueError, match="task='ordinal'"):
        csv_dataset(path, target="y", task="ordinal")
    missing = tmp_path / "missing.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        csv_dataset(missing, target="y")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("x,y\n1,2\n3\n")
    with pytest.raises(ValueError, match="data row 2 has 1 fields"):
        csv_dataset(ragged, target="y")


# ----------------------------------------------------------------------------- NPZ
def test_npz_roundtrip_split_and_explicit_test(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2, 3)), rng.normal(size=50)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    ds = npz_dataset(tmp_path / "a.npz", standardize=False, test_fraction=0.3)
    assert ds.task == "regression" and ds.input_shape == (2, 3) and ds.n_test == 15
    np.testing.assert_allclose(ds.x_test.numpy(), x[ds.meta["test_index"]], rtol=1e-6)
    np.testing.assert_allclose(ds.y_train.numpy(), y[ds.meta["train_index"]], rtol=1e-6)

    labels = np.array(["b", "a", "c"] * 10)
    np.savez(tmp_path / "b.npz", inputs=x[:30, 0], labels=labels, x_test=x[30:, 0], y_test=np.array(["c", "a"] * 10),
             feature_names=np.array(["f0", "f1", "f2"]))
    ds = npz_dataset(tmp_path / "b.npz", x_key="inputs", y_key="labels")
    assert ds.task == "multiclass" and ds.meta["classes"] == ["a", "b", "c"] and ds.feature_names == ["f0", "f1", "f2"]
    assert ds.n_train == 30 and ds.n_test == 20
    assert ds.y_test[:2].tolist() == [2, 0]
    np.testing.assert_allclose((ds.x_test * ds.x_std + ds.x_mean).numpy(), x[30:, 0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"x_key='x'.*\['feature_names', 'inputs'"):
        npz_dataset(tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "c.npz"))):
        npz_dataset(tmp_path / "c.npz")


# ----------------------------------------------------------------------------- IDX / Fashion-MNIST
def _idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype("uint8"): 0x08, np.dtype("int16"): 0x0B, np.dtype("float32"): 0x0D}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_idx(path: Path, arr: np.ndarray) -> None:
    data = _idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_reproduces_arrays(tmp_path, suffix):
    rng = np.random.default_rng(0)
    arrays = {
        "img": rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8),
        "lab": rng.integers(0, 10, size=5).astype(np.uint8),
        "i16": rng.integers(-300, 300, size=(4, 3)).astype(np.int16),
        "f32": rng.normal(size=(2, 3, 4)).astype(np.float32),
    }
    for key, arr in arrays.items():
        _write_idx(tmp_path / f"{key}{suffix}", arr)
        out = read_idx(tmp_path / f"{key}{suffix}")
        assert out.dtype == arr.dtype and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)
    np.testing.assert_array_equal(read_idx(tmp_path / f"img{suffix}", max_items=2), arrays["img"][:2])
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(_idx_bytes(arrays["img"])[:100])
    with pytest.raises(ValueError, match="truncated IDX data"):
        read_idx(tmp_path / "short")


def _fake_fashion(root: Path, n_train=12, n_test=6):
    rng = np.random.default_rng(1)
    root.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)).astype(np.uint8),  # plain
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for name, arr in arrays.items():
        _write_idx(root / name, arr)
    return arrays


def test_fashion_mnist_on_synthetic_idx(tmp_path):
    arrays = _fake_fashion(tmp_path / "fm")
    ds = fashion_mnist(tmp_path / "fm")
    assert ds.task == "multiclass" and ds.num_classes == 10 and ds.meta["classes"] == FASHION_MNIST_CLASSES
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (6, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_allclose(ds.x_train[:, 0].numpy() * 255, arrays["train-images-idx3-ubyte.gz"], atol=1e-3)
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    flat = fashion_mnist(tmp_path / "fm", flatten=True, n_train=5, n_test=0, normalize=False)
    assert flat.x_train.shape == (5, 784) and flat.x_test is None
    np.testing.assert_array_equal(flat.x_train.numpy(), arrays["train-images-idx3-ubyte.gz"][:5].reshape(5, 784))


def test_fashion_mnist_errors(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing)) + r".*apt-get install dataset-fashion-mnist"):
        fashion_mnist(missing)
    _fake_fashion(tmp_path / "fm")
    with pytest.raises(ValueError, match=r"n_train=0 .*1 <= n_train <= 60000"):
        fashion_mnist(tmp_path / "fm", n_train=0)
    with pytest.raises(ValueError, match="n_train=20 exceeds the 12 examples"):
        fashion_mnist(tmp_path / "fm", n_train=20)
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz"))):
        fashion_mnist(tmp_path / "fm")


@needs_fmnist
def test_fashion_mnist_real_files():
    ds = fashion_mnist(n_train=200, n_test=100)
    assert ds.x_train.shape == (200, 1, 28, 28) and ds.x_test.shape == (100, 1, 28, 28)
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0 and float(ds.x_train.max()) > 0.9
    assert set(ds.y_train.tolist()) <= set(range(10))
    name = "train-labels-idx1-ubyte"
    labels = read_idx(FMNIST_ROOT / (name if (FMNIST_ROOT / name).is_file() else name + ".gz"))
    assert labels.shape == (60000,) and np.bincount(labels).tolist() == [6000] * 10


# ----------------------------------------------------------------------------- Mushroom
@needs_shared
def test_mushroom_contexts(shared_data, monkeypatch):
    contexts, edible, names = mushroom(shared_data / "mushroom" / "mushroom.csv", return_names=True)
    assert contexts.shape == (8124, 117) and contexts.dtype == torch.float32
    assert edible.dtype == torch.bool and int(edible.sum()) == 4208
    assert torch.all(contexts.sum(1) == 22)  # exactly one category per attribute
    assert int(contexts[:, names.index("stalk-root=?")].sum()) == 2480
    c2, e2 = mushroom(shared_data / "mushroom")  # the folder works too
    assert torch.equal(c2, contexts) and torch.equal(e2, edible)
    monkeypatch.setenv(DATA_ROOT_ENV, str(shared_data))
    assert torch.equal(mushroom()[1], edible)


def test_mushroom_errors(tmp_path, no_env):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "m.csv"))):
        mushroom(tmp_path / "m.csv")
    with pytest.raises(FileNotFoundError, match=DATA_ROOT_ENV):
        mushroom()
    (tmp_path / "m.csv").write_text("class,odor\nedible,none\nmaybe,foul\n")
    with pytest.raises(ValueError, match=r"class values \['maybe'\]"):
        mushroom(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("label,odor\ne,none\n")
    with pytest.raises(ValueError, match="no 'class' column"):
        mushroom(tmp_path / "n.csv")


# ----------------------------------------------------------------------------- load()
def test_load_dispatch(tmp_path):
    assert torch.equal(load("toy", seed=2).y_train, toy_curve(seed=2).y_train)
    assert load("sklearn", name="wine").name == "wine"
    _fake_fashion(tmp_path / "fm")
    assert load("fashion-mnist", root=tmp_path / "fm").n_train == 12
    np.savez(tmp_path / "z.npz", x=np.ones((10, 2)), y=np.arange(10.0))
    assert load("npz", path=tmp_path / "z.npz").task == "regression"
    with pytest.raises(ValueError, match=r"source='imagenet'.*'csv'.*'uci'"):
        load("imagenet")


def test_toy_heldout_points_replace_the_grid_inside_the_training_range():
    plain, held = toy_curve(n_train=50, n_test=70, seed=4), toy_curve(n_train=50, n_test=70, seed=4, n_heldout=30)
    assert torch.equal(plain.x_train, held.x_train) and torch.equal(plain.y_train, held.y_train)
    xp, xh = plain.x_test[:, 0], held.x_test[:, 0]
    away = (xp < 0) | (xp > 0.5)
    inside = (xh >= 0) & (xh <= 0.5)
    assert int(inside.sum()) == 30 and torch.equal(xh[~inside], xp[away])  # the grid away from the data is kept
    assert torch.all(xh[1:] >= xh[:-1])  # sorted by x
    # the held-out points are drawn like the training data: fresh uniform x, the curve plus noise
    assert not set(xh[inside].tolist()) & set(xp.tolist())
    resid = held.y_test[inside] - toy_function(xh[inside])
    assert resid.abs().max() < 0.5
    with pytest.raises(ValueError, match="n_heldout"):
        toy_curve(n_heldout=-1)
