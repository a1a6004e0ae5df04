"""A fit is never lost and a run never loads silently wrong: manifests, locks, resume, interrupts,
leftovers, ``--force`` and bad output paths (pyrobnn.cli, pyrobnn.utils, fit_svi's checkpoints)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import xarray as xr

import pyrobnn.infer.svi as svi_module
from pyrobnn.cli import main
from pyrobnn.utils.lock import LockHeld, PathLock
from pyrobnn.utils.manifest import IntegrityError, read_manifest, verify_manifest, write_manifest

# 30 points in minibatches of 8: four steps an epoch, so interrupts can fall inside an epoch
SMALL = ["--set", "data.n_train=30", "--set", "data.n_test=20", "--set", "data.n_heldout=10", "--set", "svi.batch_size=8"]


def _fit(out, *extra, epochs=4, every=2):
    return ["fit", *SMALL, "--set", f"svi.epochs={epochs}", "--set", f"svi.checkpoint_every={every}",
            "--out", str(out), "--quiet", *extra]


class _Payload:
    """Stands for an object whose unpickling would run code."""


def _run(argv, capsys):
    code = main(argv)
    res = capsys.readouterr()
    return code, res.out, res.err


def _listing(root: Path) -> dict:
    """Every path below ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _guide_state(run: Path) -> dict:
    return torch.load(run / "guide.pt", weights_only=True)


def _assert_same_fit(a: Path, b: Path) -> None:
    ga, gb = _guide_state(a), _guide_state(b)
    assert ga.keys() == gb.keys()
    for k in ga:
        assert torch.equal(ga[k], gb[k]), k
    pa = xr.open_datatree(a / "posterior.nc", engine="h5netcdf")
    pb = xr.open_datatree(b / "posterior.nc", engine="h5netcdf")
    for var in pa["posterior"].data_vars:
        assert (pa["posterior"][var].values == pb["posterior"][var].values).all(), var


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted fit of 4 epochs (16 steps), checkpoints every 2 epochs."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_fit(out)) == 0
    return out


# =========================================================================== manifest
def test_manifest_lists_every_file_with_its_digest(reference):
    doc = verify_manifest(reference)
    assert doc["format"] == "pyrobnn-run" and doc["format_version"] == 1
    files = {p.name for p in reference.iterdir() if p.name != "manifest.json"}
    assert set(doc["files"]) == files
    assert all(len(e["sha256"]) == 64 for e in doc["files"].values())


@pytest.mark.parametrize("name", ["posterior.json", "model.pt", "guide.pt", "data.pt"])
def test_a_flipped_byte_is_refused_naming_the_file(reference, tmp_path, capsys, name):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    data = bytearray((run / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (run / name).write_bytes(bytes(data))
    (tmp_path / "x.csv").write_text("x\n0.1\n0.5\n")
    before = _listing(tmp_path)
    code, _, err = _run(["predict", str(run), "--x", str(tmp_path / "x.csv"), "--out", str(tmp_path / "p.csv")],
                        capsys)
    assert code == 2 and name in err and "SHA-256" in err and len(err.strip().splitlines()) == 1
    assert _listing(tmp_path) == before  # no prediction file, nothing changed


def test_a_newer_format_and_a_missing_manifest_are_refused(reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    doc = json.loads((run / "manifest.json").read_text())
    doc["format_version"] = 99
    (run / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="format_version 99"):
        read_manifest(run)
    (run / "manifest.json").unlink()
    code, _, err = _run(["predict", str(run), "--x", "x.csv", "--out", str(tmp_path / "p.csv")], capsys)
    assert code == 2 and "manifest.json" in err


def test_a_file_holding_code_is_refused_without_advising_weights_only_false(reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    torch.save({"state": _Payload()}, run / "data.pt")  # a pickled class, not plain tensors
    write_manifest(run)  # a consistent manifest: the integrity check passes, the safe loader must refuse
    (tmp_path / "x.csv").write_text("x\n0.1\n")
    code, _, err = _run(["predict", str(run), "--x", str(tmp_path / "x.csv"), "--out", str(tmp_path / "p.csv")],
                        capsys)
    assert code == 2 and "data.pt" in err and "run code" in err and "_Payload" in err
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1


def test_report_verifies_then_rewrites_the_manifest(reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / ".index.html.abcd1234.tmp").write_text("left by a killed report")
    code, _, _ = _run(["report", str(run)], capsys)
    assert code == 0 and not (run / ".index.html.abcd1234.tmp").exists()
    verify_manifest(run)  # the new report's files are recorded
    with open(run / "posterior.nc", "r+b") as f:
        f.seek(2000)
        byte = f.read(1)
        f.seek(2000)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, _, err = _run(["report", str(run)], capsys)
    assert code == 2 and "posterior.nc" in err


# =========================================================================== locks
def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    with PathLock(out):
        before = _listing(tmp_path)
        t0 = time.perf_counter()
        code, _, err = _run(_fit(out), capsys)
        assert time.perf_counter() - t0 < 30
        assert code == 2 and f"PID {os.getpid()}" in err and "--wait" in err
        assert _listing(tmp_path) == before


def test_wait_takes_the_lock_when_the_holder_is_done(tmp_path, capsys):
    out = tmp_path / "run"
    lock = PathLock(out).acquire()
    timer = threading.Timer(0.3, lock.release)
    timer.start()
    code, stdout, _ = _run(_fit(out, "--wait", epochs=1), capsys)
    timer.join()
    assert code == 0 and (out / "index.html").exists()
    assert not (tmp_path / ".run.lock").exists()


def test_a_lock_file_left_by_a_killed_process_does_not_block(tmp_path):
    import pyrobnn.utils.lock as lock_module

    # the module alone (it imports nothing from pyrobnn), so the child starts without torch
    script = ("import importlib.util, sys, time; spec = importlib.util.spec_from_file_location('lock', sys.argv[2]); "
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
              "m.PathLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run"), lock_module.__file__],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as e:
            PathLock(tmp_path / "run").acquire()
        assert e.value.pid == p.pid
    finally:
        p.kill()
        p.wait()
    assert (tmp_path / ".run.lock").exists()  # the file stays, the kernel released the lock
    with PathLock(tmp_path / "run"):
        pass


# =========================================================================== output paths
def test_output_path_checks_come_before_the_fit(tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("not a directory")
    before = _listing(tmp_path)
    code, _, err = _run(_fit(tmp_path / "afile" / "run"), capsys)
    assert code == 2 and "cannot write in" in err and "afile" in err
    called = []
    monkeypatch.setattr(svi_module, "_train", lambda *a, **k: called.append(1))
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    code, _, err = _run(_fit(tmp_path / "run"), capsys)
    assert code == 2 and "1000 bytes free" in err and "needs about" in err
    assert not called and _listing(tmp_path) == before


def test_links_are_never_written_through(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    (tmp_path / "link").symlink_to(target)
    code, _, err = _run(_fit(tmp_path / "link", "--force"), capsys)
    assert code == 2 and "symbolic link" in err
    assert (target / "keep.txt").read_text() == "precious"


def test_force_refuses_a_run_holding_a_link(reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (tmp_path / "precious").mkdir()
    (run / "notes").symlink_to(tmp_path / "precious")
    code, _, err = _run(_fit(run, "--force"), capsys)
    assert code == 2 and "symbolic link" in err and (run / "notes").is_symlink()


def test_leftovers_of_a_killed_write_are_removed_and_only_those(tmp_path, capsys):
    out = tmp_path / "run"
    mine = [tmp_path / ".run.abcdEF12.tmp", tmp_path / ".run.zz_99xyz.old"]
    others = [tmp_path / ".run.x.abcdefgh.tmp", tmp_path / ".other.abcdefgh.tmp", tmp_path / "run.abcdefgh.tmp"]
    for p in mine + others:
        p.mkdir()
        (p / "f").write_text("x")
    code, _, _ = _run(_fit(out, epochs=1), capsys)
    assert code == 0
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)


# =========================================================================== interrupts and resume
def _interrupt_at_step(monkeypatch, k: int) -> None:
    """Send SIGINT to this process during the k-th SVI step (as a user's Ctrl-C)."""
    calls = {"n": 0}
    real = svi_module.elbo_terms

    def terms(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(svi_module, "elbo_terms", terms)


@pytest.mark.parametrize("k", [6, 8])  # inside epoch 2; its last step (an epoch boundary)
def test_ctrl_c_saves_and_resume_gives_the_uninterrupted_result(reference, tmp_path, capsys, monkeypatch, k):
    out = tmp_path / "run"
    _interrupt_at_step(monkeypatch, k)
    code, _, err = _run(_fit(out), capsys)
    assert code == 130 and "--resume" in err and "checkpoint.pt" in err and f"step {k}" in err
    assert not out.exists() and (tmp_path / ".run.partial" / "checkpoint.pt").exists()
    monkeypatch.undo()
    code, _, err = _run(_fit(out), capsys)  # neither --resume nor --force: the user is told
    assert code == 2 and "--resume" in err and "--force" in err
    code, _, err = _run(_fit(out, "--set", "svi.lr=0.5", "--resume"), capsys)  # other specs: refused
    assert code == 2 and "inference spec" in err
    code, stdout, _ = _run(_fit(out, "--resume"), capsys)
    assert code == 0 and stdout.startswith("report:")
    assert not (tmp_path / ".run.partial").exists()
    _assert_same_fit(reference, out)


# a NUTS run of a few seconds: a 1-5-1 net, short chains, shallow trees, eager PyTorch
NUTS = ["toy_regression", "nuts", "--set", 'model.layers=[{linear=[1,5]},"tanh",{linear=[5,1]}]', "--set",
        "likelihood.scale=0.3", "--set", "nuts.num_samples=20", "--set", "nuts.warmup=30", "--set", "nuts.chains=2",
        "--set", "nuts.max_tree_depth=4", "--set", "nuts.jit=false", "--set", "nuts.checkpoint_every=5",
        "--set", "data.n_train=20", "--set", "data.n_test=10", "--set", "data.n_heldout=10"]


def _interrupt_at_iteration(monkeypatch, k: int) -> None:
    """Send SIGINT to this process during the k-th NUTS iteration (as a user's Ctrl-C)."""
    from pyrobnn.infer import mcmc

    calls = {"n": 0}
    real = mcmc._BatchedHMC.transition

    def transition(self, state):
        calls["n"] += 1
        if calls["n"] == k:
            signal.raise_signal(signal.SIGINT)
        return real(self, state)

    monkeypatch.setattr(mcmc._BatchedHMC, "transition", transition)


def test_fit_nuts_interrupt_writes_its_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
    import pyrobnn as pb
    from pyrobnn.infer.interrupt import FitInterrupted

    x = torch.linspace(-1, 1, 20).unsqueeze(-1)
    y = torch.sin(3 * x).squeeze(-1)
    kw = dict(num_samples=10, warmup=15, chains=2, max_tree_depth=3, jit=False, progress=False, seed=1,
              checkpoint=tmp_path / "nuts.ckpt", checkpoint_every=100)

    def fit(**extra):
        net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(scale=0.3))
        return pb.fit_nuts(net, x, y, **kw, **extra)

    ref = fit()
    (tmp_path / "nuts.ckpt").unlink()
    _interrupt_at_iteration(monkeypatch, 19)  # sampling, far from any scheduled checkpoint
    with pytest.raises(FitInterrupted) as e:
        fit()
    assert "iteration 19 of 25" in str(e.value) and e.value.checkpoint == tmp_path / "nuts.ckpt"
    monkeypatch.undo()
    resumed = fit(resume=True)
    assert resumed.info["resumed_at"] == [19]
    for k in ref.samples:
        assert torch.equal(ref.samples[k], resumed.samples[k]), k


@pytest.mark.slow
def test_ctrl_c_during_nuts_saves_and_resume_gives_the_same_draws(tmp_path, capsys, monkeypatch):
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert main(["fit", *NUTS, "--out", str(ref), "--quiet"]) == 0
    _interrupt_at_iteration(monkeypatch, 33)  # inside sampling, between two checkpoints
    code, _, err = _run(["fit", *NUTS, "--out", str(out), "--quiet"], capsys)
    assert code == 130 and "iteration 33 of 50" in err and "--resume" in err
    monkeypatch.undo()
    code, _, err = _run(["fit", *NUTS, "--out", str(out), "--quiet", "--resume"], capsys)
    assert code == 0, err
    a = torch.load(ref / "samples.pt", weights_only=True)
    b = torch.load(out / "samples.pt", weights_only=True)
    for group in ("samples", "sample_stats"):
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), (group, k)


def test_resume_of_a_finished_run_reports_it(reference, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (tmp_path / ".run.partial").mkdir()  # killed after installing the run, before removing the checkpoint
    (tmp_path / ".run.partial" / "checkpoint.pt").write_bytes(b"stale")
    code, stdout, _ = _run(_fit(run, "--resume"), capsys)
    assert code == 0 and "already complete" in stdout and not (tmp_path / ".run.partial").exists()


def test_fit_svi_interrupt_keeps_the_callers_rng_and_resumes_exactly(tmp_path, monkeypatch):
    import pyrobnn as pb

    torch.manual_seed(123)
    x = torch.linspace(-1, 1, 40).unsqueeze(-1)
    y = torch.sin(3 * x).squeeze(-1)

    def fit(**kw):
        net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.1))
        guide = pb.guides.MeanField(net)
        post = pb.fit_svi(net, guide, x, y, epochs=3, batch_size=16, progress=False, seed=7, **kw)
        return {k: v.detach().clone() for k, v in guide.state_dict().items()}, post

    ref, _ = fit()
    state = torch.random.get_rng_state()
    ck = tmp_path / "ck.pt"
    _interrupt_at_step(monkeypatch, 5)  # epoch 2, second of three minibatches
    with pytest.raises(svi_module.FitInterrupted) as e:
        fit(checkpoint=ck)
    assert e.value.checkpoint == ck and "step 5" in str(e.value)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is untouched
    monkeypatch.undo()
    resumed, post = fit(checkpoint=ck, resume=True)
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)
    assert [h["epoch"] for h in post.history] == [1, 2, 3]


def test_a_poisoned_minibatch_stops_with_the_last_good_parameters_saved(tmp_path):
    import pyrobnn as pb

    x = torch.linspace(-1, 1, 64).unsqueeze(-1)
    y = torch.sin(3 * x).squeeze(-1)
    y[37] = 1e30  # finite, but its squared error overflows float32: the minibatch holding it is poisoned
    net = pb.BNN([pb.Linear(1, 8), "tanh", pb.Linear(8, 1)], pb.Gaussian(scale=0.1))
    guide = pb.guides.MeanField(net)
    seen = []
    ck = tmp_path / "ck.pt"
    with pytest.raises(svi_module.NonFiniteLossError) as e:
        pb.fit_svi(net, guide, x, y, epochs=2, batch_size=16, progress=False, checkpoint=ck,
                   callback=lambda rec: seen.append(rec))
    msg = str(e.value)
    assert "non-finite loss" in msg and "37" in msg and str(ck) in msg and "last finite step" in msg
    saved = torch.load(ck, weights_only=True)
    for k, v in guide.state_dict().items():
        assert torch.isfinite(v).all() and torch.equal(saved["guide"][k], v), k


def test_a_checkpoint_for_another_model_or_a_truncated_one_is_refused(tmp_path):
    import pyrobnn as pb
    from pyrobnn.infer.checkpoint import CheckpointError

    x = torch.linspace(-1, 1, 20).unsqueeze(-1)
    y = x.squeeze(-1)
    ck = tmp_path / "ck.pt"

    def fit(width, **kw):
        net = pb.BNN([pb.Linear(1, width), "tanh", pb.Linear(width, 1)], pb.Gaussian(scale=0.1))
        pb.fit_svi(net, pb.guides.MeanField(net), x, y, epochs=1, progress=False, checkpoint=ck, **kw)

    fit(4)
    with pytest.raises(CheckpointError, match="another model or guide"):
        fit(5, resume=True)
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        fit(4, resume=True)


def _kill_and_resume(tmp_path, capsys, delay: float, epochs: int = 120) -> None:
    out = tmp_path / "run"
    argv = _fit(out, epochs=epochs, every=5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "pyrobnn.cli", *argv], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = tmp_path / ".run.partial" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ck.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()  # killed, not finished
    assert ck.exists()
    ref = tmp_path / "ref"
    assert main(_fit(ref, epochs=epochs, every=5)) == 0
    code = main(_fit(out, "--resume", epochs=epochs, every=5))
    err = capsys.readouterr().err
    assert code == 0, err
    _assert_same_fit(ref, out)


def test_kill_9_then_resume_equals_an_uninterrupted_fit(tmp_path, capsys):
    _kill_and_resume(tmp_path, capsys, delay=0.1, epochs=40)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_kill_9_at_random_points_then_resume(tmp_path, capsys, seed):
    _kill_and_resume(tmp_path, capsys, delay=random.Random(seed).uniform(0.0, 2.5))
