"""Data-parallel SVI (``fit_svi(distributed=True)``) against a single process.

Two processes on loopback (gloo, each started with torchrun's environment variables) fit a
small net with per-rank batch B; a single in-process fit with batch 2B on the same global order
of rows must end with the same guide parameters and the same loss/NLL/KL trace to float64
rounding — which also shows the KL is counted once (counting it on both ranks would double the
KL column and change every step).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pyrobnn as pb
from pyrobnn.infer import distributed as D

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed" / "worker.py"
sys.path.insert(0, str(WORKER.parent))
from worker import problem  # noqa: E402

ROOT = HERE.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int, *args, timeout: float = 120.0, extra_env=None):
    """Start ``world`` worker ranks with torchrun's environment; wait for all; their results."""
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1",
               **(extra_env or {})}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + timeout
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"a rank did not finish within {timeout} s (a hang)") from None
        outs.append((p.returncode, err))
    return outs


def _single(batch: int, epochs: int, with_post: bool = False):
    net, guide, x, y = problem()
    post = pb.fit_svi(net, guide, x, y, epochs=epochs, batch_size=batch, lr=0.01, seed=7, progress=False)
    out = guide.state_dict(), [(h["loss"], h["nll"], h["kl"]) for h in post.history]
    return (*out, post) if with_post else out


def _check_equal_to_single_process(out, batch, epochs):
    ranks = [torch.load(f"{out}.rank{r}.pt", weights_only=True) for r in range(2)]
    ref_state, ref_hist, post = _single(2 * batch, epochs, with_post=True)
    ref_pred = post.predict(torch.linspace(-1.0, 1.5, 11, dtype=torch.float64).unsqueeze(-1), num_samples=16, seed=3)
    for r in ranks:  # every rank ends with the single process's parameters
        # and predicts, each on its block of rows with the same draws, what one process predicts
        torch.testing.assert_close(r["pred_mean"], ref_pred.mean, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(r["pred_epistemic"], ref_pred.epistemic_var, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(r["pred_draws"], ref_pred.mean_draws, rtol=1e-9, atol=1e-10)
        assert r["guide"].keys() == ref_state.keys()
        for k, v in ref_state.items():
            torch.testing.assert_close(r["guide"][k], v, rtol=1e-10, atol=1e-12)
        # the ELBO trace matches, term by term: the KL is counted once
        torch.testing.assert_close(torch.tensor(r["history"]), torch.tensor(ref_hist), rtol=1e-10, atol=1e-10)
        assert r["info"]["world_size"] == 2 and r["info"]["batch_size"] == 2 * batch
    # NUTS chains across the ranks: bit for bit the single process's sequential chains
    from worker import nuts_problem_fit

    ref = nuts_problem_fit(distributed=False)
    for r in ranks:
        for group in ("samples", "stats"):
            assert r["nuts"][group].keys() == ref[group].keys()
            for k, v in ref[group].items():
                assert torch.equal(r["nuts"][group][k], v), (group, k)
    # and the ranks agree bitwise with each other (one all_reduce result, one optimiser step)
    for k in ranks[0]["guide"]:
        assert torch.equal(ranks[0]["guide"][k], ranks[1]["guide"][k])


@pytest.mark.parametrize("batch", [7, pytest.param(8, marks=pytest.mark.slow)])
def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path, batch):
    """Two interpreters started with torchrun's environment (gloo on loopback).  Per-rank batch 7:
    the last global minibatch of the 50 rows (50 = 3·14 + 8) splits 4 + 4; batch 8: 50 = 3·16 + 2
    splits 1 + 1."""
    outs = _launch(2, tmp_path / "run", batch, 3)
    assert all(rc == 0 for rc, _ in outs), [err[-2000:] for _, err in outs]
    _check_equal_to_single_process(tmp_path / "run", batch, 3)


def test_shard_splits_rows_and_handles_a_short_batch():
    g0, g2 = D.Group(0, 3, "gloo", False), D.Group(2, 3, "gloo", False)
    rows = torch.arange(10, 17)
    assert D.shard(rows, g0)[0].tolist() == [10, 11, 12] and D.shard(rows, g0)[1] == pytest.approx(3 / 7)
    assert D.shard(rows, g2)[0].tolist() == [15, 16]
    short = torch.tensor([4, 5])  # fewer rows than ranks: rank 2 draws the weights but adds no likelihood
    mine, share = D.shard(short, g2)
    assert mine.tolist() == [4] and share == 0.0


def test_distributed_without_a_process_group_names_what_is_missing(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    net, guide, x, y = problem()
    with pytest.raises(ValueError, match="torchrun"):
        pb.fit_svi(net, guide, x, y, epochs=1, progress=False, distributed=True)
    assert not D.launched()


@pytest.mark.slow
def test_a_killed_rank_makes_the_other_exit_with_an_error_not_hang(tmp_path):
    t0 = time.monotonic()
    outs = _launch(2, tmp_path / "run", 8, 50, "--die-at-epoch", 2, timeout=90.0)
    assert outs[1][0] == 9
    rc, err = outs[0]
    assert rc != 0 and "PeerLost: rank 0 lost contact with the other ranks" in err, err[-2000:]
    assert time.monotonic() - t0 < 90.0


@pytest.mark.slow
def test_resume_on_another_number_of_ranks(tmp_path):
    """A checkpoint written by a 2-rank run (rank 0 writes it) resumes in one process; with the
    same global batch the result equals an uninterrupted single-process fit."""
    ck = tmp_path / "ck.pt"
    outs = _launch(2, tmp_path / "run", 8, 2, "--checkpoint", ck)
    assert all(rc == 0 for rc, _ in outs), [e[-2000:] for _, e in outs]
    net, guide, x, y = problem()
    pb.fit_svi(net, guide, x, y, epochs=4, batch_size=16, lr=0.01, seed=7, progress=False, checkpoint=ck,
               resume=True)
    ref_state, _ = _single(16, 4)
    for k, v in ref_state.items():
        torch.testing.assert_close(guide.state_dict()[k], v, rtol=1e-10, atol=1e-12)


def _torchrun(args, cwd, timeout=300.0):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "pyrobnn", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_torchrun_pyrobnn_fit_writes_one_run_with_the_final_elbo(tmp_path):
    import json

    r = _torchrun(["fit", "--set", "svi.epochs=3", "--out", "run", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("report:") == 1  # rank 0 alone speaks
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert isinstance(metrics["final_elbo"], float) and metrics["final_elbo"] == metrics["diagnostics"]["final_elbo"]
    info = json.loads((tmp_path / "run" / "posterior.json").read_text())
    assert '"world_size": 2' in json.dumps(info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftovers beside it


@pytest.mark.slow
def test_torchrun_nuts_runs_chains_across_ranks_and_pyro_backend_is_refused(tmp_path):
    import json

    r = _torchrun(["fit", "toy_regression", "nuts", "--set", "nuts.warmup=20", "--set", "nuts.num_samples=10",
                   "--set", "nuts.jit=false", "--out", "run", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((tmp_path / "run" / "posterior.json").read_text())
    assert '"world_size": 2' in json.dumps(info) and '"chains": 4' in json.dumps(info)
    r = _torchrun(["fit", "toy_regression", "nuts", "--set", "nuts.backend=pyro", "--out", "run2"], tmp_path,
                  timeout=120)
    assert r.returncode != 0 and "runs in one process" in r.stderr
    assert not (tmp_path / "run2").exists()
