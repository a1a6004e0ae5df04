"""Checkpointed NUTS/HMC on the torch backend: a run stopped after any iteration (inside a
warm-up window, at a window's end, at the warm-up/sampling boundary, inside sampling, after
the last draw) or killed outright resumes to draws and statistics bitwise equal to an
uninterrupted run's; a checkpoint of another run, or a damaged file, is refused with an error
naming what differs or the file."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import pyrobnn as pb
from pyrobnn.utils.files import atomic_torch_save
from pyrobnn.infer.mcmc import adaptation_schedule, fit_nuts

WARMUP, SAMPLES = 30, 20
TOTAL = WARMUP + SAMPLES
KW = dict(num_samples=SAMPLES, warmup=WARMUP, chains=2, max_tree_depth=3, progress=False, jit=False, seed=3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny net samples several times faster on one thread (and the runs compared must use
    the same number of threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def net():
    return pb.BNN([pb.Linear(1, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(0.3))


def data(n=20):
    d = pb.data.toy_curve(n_train=n, n_test=0)
    return d.x_train, d.y_train


class Stop(Exception):
    """Raised from the callback to interrupt a run after a chosen iteration."""


def stop_after(k, chain=None):
    def callback(rec):
        if rec["iteration"] == k and rec["chain"] == chain:
            raise Stop(k)

    return callback


def saved_iterations(path):
    """Iterations completed by each chain in the checkpoint (read as any user would)."""
    ck = torch.load(path, weights_only=True)
    return [c["iteration"] for c in ck["chains"]]


def assert_bitwise_equal(a, b):
    assert a.samples.keys() == b.samples.keys()
    for k in a.samples:
        assert torch.equal(a.samples[k], b.samples[k]), k
    assert a.sample_stats.keys() == b.sample_stats.keys()
    for k in a.sample_stats:
        assert a.sample_stats[k].dtype == b.sample_stats[k].dtype, k
        assert torch.equal(a.sample_stats[k], b.sample_stats[k]), k
    for k in ("step_size_adapted", "inverse_mass_matrix"):
        assert torch.equal(a.info[k], b.info[k]), k
    for k in ("leapfrog_calls_warmup", "leapfrog_calls_sampling"):
        assert a.info[k] == b.info[k], k


@pytest.fixture(scope="module")
def reference():
    return fit_nuts(net(), *data(), **KW)


def test_schedule_of_the_test_run():
    # the stops below are chosen against these windows: [0, 3], [4, 26], [27, 29]
    assert adaptation_schedule(WARMUP) == [(0, 3), (4, 26), (27, 29)]


def test_stopped_after_any_iteration_resumes_bitwise(reference, tmp_path):
    """One run stopped seven times (checkpoint after every iteration), each stop resumed:
    inside the first window (2), at its end (4), inside the mass-matrix window (10), at its end,
    where the mass matrix and step size are reset (27), at the warm-up/sampling boundary (30),
    inside sampling (41) and after the last draw (50)."""
    ck = tmp_path / "run.ckpt"
    for k in (2, 4, 10, 27, 30, 41, TOTAL):
        with pytest.raises(Stop):
            fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=1, resume=True, callback=stop_after(k), **KW)
        assert saved_iterations(ck) == [k]
    post = fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=1, resume=True, **KW)
    assert post.info["resumed_at"] == [TOTAL]
    assert_bitwise_equal(post, reference)


def test_resume_repeats_the_iterations_after_the_last_checkpoint(reference, tmp_path):
    """checkpoint_every=7 and the window ends (4, 27, 30): a stop after 10 resumes from 7, after
    33 from 30; the repeated iterations give the same draws."""
    ck = tmp_path / "run.ckpt"
    seen = []
    for k, last in ((10, 7), (33, 30)):
        with pytest.raises(Stop):
            fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=7, resume=True,
                     callback=lambda r, k=k: (seen.append((r["iteration"], r["checkpoint_written"])),
                                              stop_after(k)(r)), **KW)
        assert saved_iterations(ck) == [last]
    written = sorted({i for i, w in seen if w})
    assert written == [4, 7, 14, 21, 27, 28, 30]  # every 7th and the window ends, up to the last stop
    post = fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=7, resume=True, **KW)
    assert post.info["resumed_at"] == [30]
    assert_bitwise_equal(post, reference)
    assert saved_iterations(ck) == [TOTAL]  # and a checkpoint at the end


def test_sequential_chains_resume_bitwise(tmp_path):
    """chain_method="sequential": the file holds the finished chains and the running one; stops
    inside chain 0's sampling and chain 1's warm-up resume to the uninterrupted result (HMC,
    for speed)."""
    kw = {**KW, "chain_method": "sequential", "kernel": "hmc", "num_steps": 4}
    ref = fit_nuts(net(), *data(), **kw)
    ck = tmp_path / "seq.ckpt"
    for chain, k, saved in ((0, 35, [35]), (1, 12, [TOTAL, 10])):  # chain 1 resumes from its iteration 10
        with pytest.raises(Stop):
            fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=5, resume=True, callback=stop_after(k, chain),
                     **kw)
        assert saved_iterations(ck) == saved
    post = fit_nuts(net(), *data(), checkpoint=ck, resume=True, **kw)
    assert post.info["resumed_at"] == [TOTAL, 10]
    assert_bitwise_equal(post, ref)


def test_without_resume_a_checkpoint_is_overwritten(reference, tmp_path):
    ck = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=1, callback=stop_after(3), **KW)
    post = fit_nuts(net(), *data(), checkpoint=ck, **KW)  # resume=False: starts afresh
    assert post.info["resumed_at"] is None
    assert_bitwise_equal(post, reference)
    assert saved_iterations(ck) == [TOTAL]
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary files left


@pytest.fixture
def early_checkpoint(tmp_path):
    """A checkpoint after one iteration of the test run."""
    ck = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=1, callback=stop_after(1), **KW)
    return ck


@pytest.mark.parametrize("change, named", [
    (dict(seed=4), "seed: 3 in the checkpoint, 4 in this call"),
    (dict(num_samples=21), "num_samples: 20 in the checkpoint, 21 in this call"),
    (dict(target_accept=0.9), "target_accept: 0.8 in the checkpoint, 0.9 in this call"),
    (dict(chain_method="sequential"), "chain_method: 'vectorized' in the checkpoint, 'sequential' in this call"),
    (dict(y_shift=0.1), "y values: sha256"),
    (dict(n=21), "x shape: (20, 1) in the checkpoint, (21, 1) in this call"),
    (dict(noise=0.5), "model buffers: sha256"),
])
def test_resume_of_another_run_is_refused(early_checkpoint, change, named):
    change = dict(change)
    x, y = data(change.pop("n", 20))
    y = y + change.pop("y_shift", 0.0)
    model = pb.BNN([pb.Linear(1, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(change.pop("noise", 0.3)))
    before = early_checkpoint.read_bytes()
    with pytest.raises(ValueError, match="was written by a different run") as e:
        fit_nuts(model, x, y, checkpoint=early_checkpoint, resume=True, **{**KW, **change})
    assert named in str(e.value) and str(early_checkpoint) in str(e.value)
    if named.startswith("y values"):  # only what differs is named
        assert "x values:" not in str(e.value) and "seed:" not in str(e.value)
    assert early_checkpoint.read_bytes() == before  # a refused resume leaves the file alone


def test_damaged_checkpoint_is_refused_naming_the_file(early_checkpoint, tmp_path):
    whole = early_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole[: len(whole) // 2])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match="cannot be read") as e:
            fit_nuts(net(), *data(), checkpoint=bad, resume=True, **KW)
        assert str(bad) in str(e.value)
    other = tmp_path / "other.ckpt"
    atomic_torch_save({"epoch": 3, "history": []}, other)  # e.g. an SVI-style file
    with pytest.raises(ValueError, match="is not a pyrobnn.mcmc checkpoint") as e:
        fit_nuts(net(), *data(), checkpoint=other, resume=True, **KW)
    assert str(other) in str(e.value)
    # a sampler checkpoint with a chain's state torn out
    ck = torch.load(early_checkpoint, weights_only=True)
    del ck["chains"][0]["generator"]
    torn = tmp_path / "torn.ckpt"
    atomic_torch_save(ck, torn)
    with pytest.raises(ValueError, match="incomplete or inconsistent sampler state") as e:
        fit_nuts(net(), *data(), checkpoint=torn, resume=True, **KW)
    assert str(torn) in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(resume=True), "resume=True needs checkpoint"),
    (dict(checkpoint="c.ckpt", checkpoint_every=0), "checkpoint_every must be a positive integer"),
    (dict(checkpoint="c.ckpt", resume="yes"), "resume must be True or False"),
    (dict(callback=3), "callback must be a function"),
    (dict(checkpoint="c.ckpt", backend="pyro"), "checkpoint= needs backend='torch'"),
    (dict(callback=print, backend="pyro"), "callback= needs backend='torch'"),
])
def test_checkpoint_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_nuts(net(), *data(), **{**KW, **kwargs})


def test_checkpoint_path_that_is_a_directory(tmp_path):
    with pytest.raises(ValueError, match="checkpoint must be the path of a file"):
        fit_nuts(net(), *data(), checkpoint=tmp_path, **KW)


# ---------------------------------------------------------------------- slow
KILL_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
import pyrobnn as pb
from pyrobnn.infer.mcmc import fit_nuts
d = pb.data.toy_curve(n_train=20, n_test=0)
net = pb.BNN([pb.Linear(1, 5), "tanh", pb.Linear(5, 1)], pb.Gaussian(0.3))
fit_nuts(net, d.x_train, d.y_train, checkpoint={ckpt!r}, checkpoint_every=5, **{kw!r})
"""


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_killed_process_resumes_bitwise(tmp_path, jit):
    """A process sampling with checkpoints is killed (SIGKILL) at a random moment after its
    first checkpoint; the run resumed here equals an uninterrupted run bit for bit.  With
    ``jit=True`` the killed process compiles its step without Inductor's caches, so the two
    processes' compiled steps are built independently."""
    kw = {**KW, "warmup": 150, "num_samples": 150, "max_tree_depth": 5, "jit": jit}
    ck = tmp_path / "killed.ckpt"
    script = tmp_path / "run.py"
    root = str(Path(pb.__file__).resolve().parent.parent)
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(root=root, threads=torch.get_num_threads(), ckpt=str(ck),
                                                         kw=kw)))
    env = {**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"} if jit else None
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 300
        while not ck.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.01)
        time.sleep(random.Random(20240611).uniform(0.0, 1.0))
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = saved_iterations(ck)[0]
    assert 0 < done < kw["warmup"] + kw["num_samples"]
    post = fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=5, resume=True, **kw)
    assert post.info["resumed_at"] == [done] and post.info["compiled"] == jit
    assert_bitwise_equal(post, fit_nuts(net(), *data(), **kw))


@pytest.mark.slow
def test_compiled_run_resumes_bitwise(tmp_path):
    """jit=True: the step compiled again on resume gives the same draws as the one compiled
    for the uninterrupted run."""
    kw = {**KW, "jit": True}
    ref = fit_nuts(net(), *data(), **kw)
    ck = tmp_path / "jit.ckpt"
    with pytest.raises(Stop):
        fit_nuts(net(), *data(), checkpoint=ck, checkpoint_every=1, callback=stop_after(35), **kw)
    post = fit_nuts(net(), *data(), checkpoint=ck, resume=True, **kw)
    assert post.info["compiled"] and post.info["resumed_at"] == [35]
    assert_bitwise_equal(post, ref)
