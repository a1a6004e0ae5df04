"""What a run writes to its log: no CUDA_HOME line from TorchInductor's import on a machine
without CUDA, no progress bars when stderr is not a terminal."""

import io
import logging

import torch

import pyrobnn as pb
from pyrobnn.infer.mcmc.compile import _NoCudaRuntimeLine, _quiet_cpp_extension_import


def test_cuda_home_line_is_dropped_and_nothing_else():
    _quiet_cpp_extension_import()
    _quiet_cpp_extension_import()  # installed once
    log = logging.getLogger("torch.utils.cpp_extension")
    assert sum(isinstance(f, _NoCudaRuntimeLine) for f in log.filters) == 1
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log.addHandler(handler)
    try:
        log.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        log.warning("Error building extension 'x'")
    finally:
        log.removeHandler(handler)
    assert "CUDA_HOME" not in stream.getvalue() and "Error building extension 'x'" in stream.getvalue()


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    d = pb.data.toy_curve(16, 0)
    net = pb.BNN([pb.Linear(1, 4), "tanh", pb.Linear(4, 1)], pb.Gaussian(0.1))
    torch.manual_seed(0)
    pb.fit_svi(net, pb.guides.MeanField(net), d.x_train, d.y_train, epochs=3, progress=True, seed=0)
    assert "epoch" not in capsys.readouterr().err  # pytest's captured stderr is not a terminal
