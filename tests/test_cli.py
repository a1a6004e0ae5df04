"""Tests of the ``pyrobnn`` command line (pyrobnn.cli)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from pyrobnn import data as pb_data
from pyrobnn.cli import DEFAULT_INFERENCE, DEFAULT_MODEL, main

SMALL_DATA = ["--set", "data.n_train=30", "--set", "data.n_test=40", "--set", "data.n_heldout=20"]
FAST_SVI = ["--set", "svi.epochs=3", *SMALL_DATA]
# a NUTS run of a few seconds: a 1-5-1 net, wide noise, short chains and shallow trees
FAST_NUTS = ["--set", 'model.layers=[{linear=[1,5]},"tanh",{linear=[5,1]}]', "--set", "likelihood.scale=0.3",
             "--set", "nuts.num_samples=30", "--set", "nuts.warmup=30", "--set", "nuts.chains=2",
             "--set", "nuts.max_tree_depth=4", "--set", "nuts.jit=false", *SMALL_DATA]


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory away from the source checkout (the built-in default must work
    from anywhere)."""
    d = tmp_path_factory.mktemp("cli")
    old = os.getcwd()
    os.chdir(d)
    yield d
    os.chdir(old)


@pytest.fixture(scope="module")
def svi_run(workdir):
    """`pyrobnn fit --set svi.epochs=3` (and a smaller data set) with the built-in default specs,
    no --out."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["fit", *FAST_SVI, "--quiet"])
    assert code == 0
    line = buf.getvalue().strip().splitlines()[-1]
    assert line.startswith("report: ")
    index = Path(line.removeprefix("report: "))
    return index.parent


# =========================================================================== help and errors
@pytest.mark.parametrize("argv", [["--help"], ["fit", "--help"], ["predict", "--help"], ["report", "--help"],
                                  ["compare", "--help"]])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: pyrobnn" in capsys.readouterr().out


def test_console_script_help():
    exe = shutil.which("pyrobnn") or str(Path(sys.executable).parent / "pyrobnn")
    if not Path(exe).exists():
        pytest.skip("the pyrobnn console script is not installed")
    # -X importtime lists every module the command imports: the help needs the parser only, not the
    # plotting and diagnostics stack (about a second of every call)
    res = subprocess.run([sys.executable, "-X", "importtime", exe, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and "fit" in res.stdout and "compare" in res.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported  # the listing works
    assert not imported & {"matplotlib", "arviz", "arviz_plots", "pyrobnn.diagnostics"}, sorted(imported)


@pytest.mark.parametrize("argv", [["fit", "--bogus"], ["frobnicate"], ["predict", "somewhere"],
                                  ["predict", "r", "--x", "x.csv", "--out", "p.csv", "--num-samples", "0"],
                                  ["compare"]])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err


def test_no_command_prints_help_and_returns_2(capsys):
    code, out, _ = _run([], capsys)
    assert code == 2 and "usage: pyrobnn" in out


@pytest.mark.parametrize("argv, needle", [
    (["fit", "--set", "prior.scale=-1"], "prior.scale"),
    (["fit", "no_such_model_spec.toml"], "no_such_model_spec.toml"),
    (["fit", "--set", "bogus.key=1"], "unknown table 'bogus'"),
    (["fit", "--set", "svi.epochs"], "expected key=value"),
    (["fit", "--set", "svi.epochz=3"], "svi.epochz"),
    (["report", "no/such/dir"], "no such file or directory"),
    (["compare", "no/such/a", "no/such/b"], "no such file or directory"),
    (["predict", ".", "--x", "x.csv", "--out", "p.csv"], "not a run directory"),
    pytest.param(["fit", "--device", "cuda"], "cuda",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is available")),
])
def test_user_errors_exit_2_with_one_line(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "fit":
        argv = [*argv, "--out", str(tmp_path / "run"), "--quiet"]
    code, _, err = _run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_builtin_default_matches_spec_files():
    from pyrobnn.spec import load_inference_spec, load_model_spec

    assert load_model_spec(DEFAULT_MODEL) == load_model_spec("toy_regression")
    assert load_inference_spec(DEFAULT_INFERENCE) == load_inference_spec("svi_meanfield")


# =========================================================================== fit / report / predict
def test_fit_writes_a_report(svi_run, workdir):
    assert svi_run.parent.resolve() == (workdir / "runs").resolve()
    assert svi_run.name.startswith("toy_regression-svi_meanfield-")
    files = {p.name for p in svi_run.iterdir()}
    assert {"index.html", "metrics.json", "posterior.nc", "predictive_band.png", "svi_history.png", "ppc.png",
            "model.toml", "inference.toml", "model.pt", "guide.pt", "data.pt", "run.json"} <= files
    assert not [f for f in files if f.startswith(".")]
    assert not [p for p in svi_run.parent.iterdir() if p.name.startswith(".")]  # temp dir renamed away
    # the usual permissions of the user's umask, not the private ones of temporary files
    mask = os.umask(0)
    os.umask(mask)
    assert svi_run.stat().st_mode & 0o777 == 0o777 & ~mask
    for name in ("index.html", "metrics.json", "posterior.nc", "predictive_band.png", "model.pt"):
        assert (svi_run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    m = json.loads((svi_run / "metrics.json").read_text())
    n_eval = pb_data.toy_curve(n_train=30, n_test=40, n_heldout=20).n_test  # the grid away from the data + 20
    assert m["method"] == "svi" and m["n_train"] == 30 and m["n_eval"] == n_eval and n_eval > 20
    tree = xr.open_datatree(svi_run / "posterior.nc")
    assert tree["svi"].sizes["epoch"] == 3
    assert "epochs = 3" in tree.attrs["inference_spec"]
    tree.close()


def test_fit_refuses_to_overwrite(svi_run, capsys):
    before = (svi_run / "index.html").stat().st_mtime_ns
    code, _, err = _run(["fit", *FAST_SVI, "--out", str(svi_run), "--quiet"], capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert (svi_run / "index.html").stat().st_mtime_ns == before


def test_fit_force_replaces_a_run_but_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    argv = ["fit", "--set", "svi.epochs=1", "--set", "data.n_test=20", "--set", "data.n_heldout=10", "--out", str(out),
            "--force", "--quiet"]
    code, _, err = _run(argv, capsys)  # not a pyrobnn run: refused, untouched
    assert code == 2 and "not a pyrobnn run directory" in err and str(out) in err
    assert sorted(p.name for p in out.iterdir()) == ["stale.txt"]
    (out / "stale.txt").unlink()
    code, stdout, _ = _run(argv, capsys)  # an empty directory may be written
    assert code == 0 and stdout.strip() == f"report: {out / 'index.html'}"
    (out / "stale.txt").write_text("a note the user added to the run")
    code, stdout, _ = _run(argv, capsys)  # a run (recognised by its manifest) is replaced
    assert code == 0 and stdout.strip() == f"report: {out / 'index.html'}"
    assert not (out / "stale.txt").exists() and (out / "index.html").exists() and (out / "manifest.json").exists()


def test_a_failing_report_keeps_the_fit(tmp_path, capsys, monkeypatch):
    """A report that breaks after the fit (e.g. a diagnostic ArviZ refuses) must not lose the
    fit: the run is installed with its posterior, the command says so and how to write the
    report again (exit 1), and `pyrobnn report` then writes it."""
    import pyrobnn.diagnostics as D

    real = D.report

    def broken(tree, out_dir, **kw):
        raise ValueError("All tail values are the same")

    monkeypatch.setattr(D, "report", broken)
    out = tmp_path / "run"
    code, stdout, err = _run(["fit", "--set", "svi.epochs=1", "--set", "data.n_test=20", "--set", "data.n_heldout=10",
                              "--out", str(out), "--quiet"], capsys)
    assert code == 1 and stdout == ""
    assert f"the fit is saved in {str(out)!r}" in err and "All tail values are the same" in err
    assert f"pyrobnn report {out}" in err
    files = {p.name for p in out.iterdir()}
    assert {"posterior.nc", "model.pt", "guide.pt", "manifest.json", "run.json"} <= files and "index.html" not in files
    assert not (tmp_path / ".run.partial").exists()  # the checkpoint went with the finished fit
    monkeypatch.setattr(D, "report", real)
    code, stdout, _ = _run(["report", str(out)], capsys)
    assert code == 0 and (out / "index.html").exists()


def test_report_command_rewrites_the_report(svi_run, capsys):
    (svi_run / "ppc.png").unlink()
    code, stdout, _ = _run(["report", str(svi_run)], capsys)
    assert code == 0 and stdout.strip() == f"report: {svi_run / 'index.html'}"
    assert (svi_run / "ppc.png").exists()
    # from a .nc file into another directory
    code, _, _ = _run(["report", str(svi_run / "posterior.nc"), "--out", str(svi_run.parent / "rep2")], capsys)
    assert code == 0 and (svi_run.parent / "rep2" / "index.html").exists()


def test_predict_matches_the_exported_predictions(svi_run, capsys):
    tree = xr.open_datatree(svi_run / "posterior.nc")
    # the tree holds the model's inputs; the command line takes them in the data's original units
    x = tree["predictions_constant_data"]["x"].values * tree.attrs.get("x_std", 1.0) + tree.attrs.get("x_mean", 0.0)
    mean = tree["predictions"]["mean"].values
    q = tree["predictions"]["quantiles"]
    tree.close()
    x_csv = svi_run.parent / "x.csv"
    np.savetxt(x_csv, x, delimiter=",", header="x", comments="")
    out = svi_run.parent / "pred.csv"
    code, stdout, _ = _run(["predict", str(svi_run), "--x", str(x_csv), "--out", str(out)], capsys)
    assert code == 0 and stdout.startswith("predictions:")
    pred = np.genfromtxt(out, delimiter=",", names=True)
    assert pred.dtype.names == ("mean", "std", "aleatoric_std", "epistemic_std", "lower_90", "upper_90")
    # same seed and number of draws as the export: the same guide draws, hence the same means
    np.testing.assert_allclose(pred["mean"], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pred["lower_90"], q.sel(quantile=0.05).values, rtol=1e-3, atol=1e-4)
    assert np.all(pred["std"] >= pred["epistemic_std"] - 1e-6)
    npy_in, npy_out = svi_run.parent / "x.npy", svi_run.parent / "pred.npy"
    np.save(npy_in, x[:5])
    assert main(["predict", str(svi_run), "--x", str(npy_in), "--out", str(npy_out)]) == 0
    assert np.load(npy_out).shape == (5, 6)
    code, _, err = _run(["predict", str(svi_run), "--x", str(npy_in), "--out", str(svi_run.parent / "p.txt")],
                        capsys)
    assert code == 2 and ".csv, .npy or .npz" in err
    bad = svi_run.parent / "bad.npy"
    np.save(bad, np.zeros((3, 4)))
    code, _, err = _run(["predict", str(svi_run), "--x", str(bad), "--out", str(out)], capsys)
    assert code == 2 and "expects (1,)" in err


def test_nuts_fit_and_compare(svi_run, workdir, capsys):
    pytest.importorskip("pyrobnn.infer.mcmc")
    nuts_dir = workdir / "nuts_run"
    code, _, err = _run(["fit", "toy_regression", "nuts", *FAST_NUTS, "--out", str(nuts_dir), "--quiet"], capsys)
    assert code == 0, err
    files = {p.name for p in nuts_dir.iterdir()}
    assert {"index.html", "trace.png", "rank.png", "samples.pt", "posterior.nc"} <= files
    assert "guide.pt" not in files and "svi_history.png" not in files
    m = json.loads((nuts_dir / "metrics.json").read_text())
    assert m["method"] == "nuts" and "rhat_max" in m["diagnostics"] and "f_rhat_max" in m["diagnostics"]
    assert "function_convergence.png" in files
    # every stored draw is exported (thinning would lower the ESS the report shows)
    tree = xr.open_datatree(nuts_dir / "posterior.nc")
    assert tree["posterior"].sizes["chain"] == 2 and tree["posterior"].sizes["draw"] == 30
    assert tree["predictions"]["mu"].shape == (2, 30, int(tree.attrs["n_eval"]))
    # predict from stored draws
    x_csv = workdir / "x_nuts.csv"
    np.savetxt(x_csv, np.linspace(0, 0.5, 7)[:, None], delimiter=",")
    assert main(["predict", str(nuts_dir), "--x", str(x_csv), "--out", str(workdir / "p_nuts.npz")]) == 0
    with np.load(workdir / "p_nuts.npz") as z:
        assert z["mean"].shape == (7,)
    capsys.readouterr()
    # compare the SVI run with the NUTS run: the same training data, so PSIS-LOO ELPDs compare
    out = workdir / "cmp"
    code, stdout, _ = _run(["compare", str(svi_run), str(nuts_dir), "--out", str(out)], capsys)
    assert code == 0 and stdout.strip().endswith(f"report: {out / 'index.html'}")
    html = (out / "index.html").read_text()
    assert "Held-out predictive performance" in html and "nuts_run" in html
    assert stdout.startswith(f"{svi_run.name}'s held-out log predictive density in distribution")
    payload = json.loads((out / "compare.json").read_text())
    assert set(payload["fits"]) == {svi_run.name, "nuts_run"}
    assert set(payload["elpd"]) == {svi_run.name, "nuts_run"} and "elpd_diff" in html
    assert "largest function-space R-hat" in html and "Epistemic variance relative to nuts_run" in html


def test_export_draws_keeps_every_mcmc_draw_within_the_size_bound():
    from types import SimpleNamespace as NS

    from pyrobnn.cli import _export_draws

    toy, big = NS(n_train=100, n_test=200), NS(n_train=60000, n_test=10000)
    assert _export_draws(NS(samples={"weights": 0}, num_stored=2000), toy) is None  # all 2000
    assert _export_draws(NS(samples={"weights": 0}, num_stored=40000), toy) == 16666
    assert _export_draws(NS(samples=None), toy) == 500  # SVI: independent guide draws
    assert _export_draws(NS(samples={"weights": 0}, num_stored=2000), big) == 100
    assert _export_draws(NS(samples=None), big) == 100


def test_a_reloaded_svi_run_can_be_pruned(svi_run):
    from pyrobnn.apps.pruning import prune
    from pyrobnn.cli import load_run

    post, _ = load_run(svi_run)
    pruned, masks = prune(post, 0.5)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert kept == total - total // 2
    assert pruned.predict(torch.zeros(3, 1), num_samples=2).mean.shape == (3,)


@pytest.mark.slow
@pytest.mark.parametrize("model,overrides", [("breast_cancer.toml", []),
                                             ("toy_regression.toml", ["--set", "guide.init_scale=1e-3"])])
def test_shipped_ard_example_converges(tmp_path, capsys, model, overrides):
    """inference/svi_ard.toml with the model it names (breast cancer, about a minute on one core)
    and as the README runs it on the toy curve: the fit converges by the report's own
    diagnostics — no warning, the verdict says converged."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "ard"
    code, _, err = _run(["fit", str(root / "models" / model), str(root / "inference" / "svi_ard.toml"), *overrides,
                         "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["warnings"] == [] and m["verdict"]["converged"], (m["warnings"], m["verdict"])
    assert not m["diagnostics"]["elbo_still_falling"]
