"""Compiling the leapfrog step: trace once to an ATen graph (``make_fx``) and compile it with
TorchInductor, small matrix products and tanh rewritten first so that a small network's whole
step, gradient included, becomes one fused C++ kernel.  Falls back to eager PyTorch with a
logged and warned reason when compilation fails."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable

import pyro
import torch

from .integrator import _leapfrog_fn, _value_and_grad_eager, _value_and_grad_functional

log = logging.getLogger(__name__)

#: matrix products with at most this many multiply-adds are written as broadcast-multiply-sum
#: before compiling, so that TorchInductor fuses them into its own loops instead of calling a
#: BLAS routine whose fixed cost dominates tiny products (about 2x per leapfrog step for a
#: 1-10-1 net on 50 points); larger products keep the BLAS call
SMALL_MATMUL_FLOPS = 8192


def _small(a, b):
    return math.prod(a.shape) * b.shape[-1] <= SMALL_MATMUL_FLOPS


def _mm(a, b):
    return (a.unsqueeze(-1) * b.unsqueeze(0)).sum(-2) if _small(a, b) else NotImplemented


def _bmm(a, b):
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2) if _small(a, b) else NotImplemented


def _baddbmm(c, a, b, beta=1, alpha=1):
    if beta != 1 or alpha != 1 or not _small(a, b):
        return NotImplemented
    return c + (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def _addmm(c, a, b, beta=1, alpha=1):
    if beta != 1 or alpha != 1 or not _small(a, b):
        return NotImplemented
    return c + (a.unsqueeze(-1) * b.unsqueeze(0)).sum(-2)


def _tanh(x):
    """tanh(x) = 1 − 2 / (e^{2x} + 1) on the CPU.  Inductor's CPU code calls SLEEF's tanh,
    which costs 4–10 ns per element depending on the magnitude of x and made tanh more than
    half of a leapfrog step of a small tanh net; the vectorised exp is about twice as fast per
    step.  Exact at ±∞ (e^{2x} → ∞ or 0), absolute error within a few float32 ulps of 1
    elsewhere (tested against torch.tanh).  The gradient keeps ATen's (1 − tanh²) form."""
    if x.device.type != "cpu":
        return NotImplemented
    return 1 - 2 / (torch.exp(2 * x) + 1)


_MATMUL_DECOMPOSITIONS = {}


def _decompositions():
    """ATen rewrites applied while tracing the leapfrog step (small matrix products, tanh)."""
    if not _MATMUL_DECOMPOSITIONS:
        aten = torch.ops.aten
        _MATMUL_DECOMPOSITIONS.update({aten.mm.default: _mm, aten.bmm.default: _bmm,
                                       aten.baddbmm.default: _baddbmm, aten.addmm.default: _addmm,
                                       aten.tanh.default: _tanh})
    return _MATMUL_DECOMPOSITIONS


def _lift_constants(gm) -> list:
    """Turn the tensors a traced graph captured (data, prior buffers) into leading inputs, so
    that the compiler neither folds nor copies them; returns their values."""
    graph = gm.graph
    first = next(n for n in graph.nodes if n.op == "placeholder")
    consts, targets = [], set()
    for node in list(graph.nodes):
        if node.op == "get_attr":
            with graph.inserting_before(first):
                ph = graph.placeholder(f"_constant_{len(consts)}")
            consts.append(getattr(gm, node.target))
            targets.add(node.target)
            node.replace_all_uses_with(ph)
            graph.erase_node(node)
    # the module keeps no copy: Inductor's FX-graph cache key hashes a module's tensor attributes by
    # value, and other data of the same shape must not make the graph look new
    for target in targets:
        delattr(gm, target)
    graph.lint()
    gm.recompile()
    return consts


class _NoCudaRuntimeLine(logging.Filter):
    """Drops the one line ``torch.utils.cpp_extension`` logs on import when PyTorch was built for
    CUDA but the machine has no CUDA runtime ("No CUDA runtime is found, using CUDA_HOME=...").
    TorchInductor imports that module to compile CPU kernels too, where CUDA plays no part, so
    the line tells a CPU user nothing they can act on.  Every other record of that logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


def _quiet_cpp_extension_import() -> None:
    """Install :class:`_NoCudaRuntimeLine` on the ``torch.utils.cpp_extension`` logger (once)
    before TorchInductor is imported."""
    log = logging.getLogger("torch.utils.cpp_extension")
    if not any(isinstance(f, _NoCudaRuntimeLine) for f in log.filters):
        log.addFilter(_NoCudaRuntimeLine())


def _compile_direct(fn: Callable, example_args: tuple) -> Callable:
    """Compile straight to Inductor's generated code, skipping the AOT-autograd and dispatch
    wrappers around it (about a quarter of the cost of one small leapfrog step).  Relies on
    Inductor internals; the result is checked against the traced graph once.

    Inductor's FX-graph cache (on disk, shared by processes) serves a graph it compiled before:
    the data and prior buffers are inputs, not constants, so a second fit of the same network on
    data of the same shape skips code generation and the C++ compiler (for a 1-5-1 net 3.6 s in
    all instead of 5.1 s with only the compiler's output reused, ``benchmarks/nuts_compile.py``).  The cache needs what AOT autograd would give it: a tracing context whose
    fake-tensor mode has a shape environment, and fake example inputs of that mode (static
    shapes); without them it bypasses itself ("No shape env")."""
    _quiet_cpp_extension_import()
    # private Inductor/FX entry points, pinned by tests/test_mcmc.py::test_compiled_potential_matches_eager
    # (the direct path is taken and a second compile of the same graph is a cache hit)
    from torch._guards import TracingContext, tracing
    from torch._inductor.compile_fx import compile_fx_inner
    from torch._inductor.decomposition import select_decomp_table
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    with pyro.validation_enabled(False):
        gm = make_fx(fn, decomposition_table={**select_decomp_table(), **_decompositions()})(*example_args)
    consts = _lift_constants(gm)
    fake_mode = FakeTensorMode(shape_env=ShapeEnv(), static_shapes=True)
    fake = [fake_mode.from_tensor(t, static_shapes=True) for t in [*consts, *example_args]]
    for node, f in zip((n for n in gm.graph.nodes if n.op == "placeholder"), fake, strict=True):
        node.meta["val"] = f
    with tracing(TracingContext(fake_mode)):
        call = compile_fx_inner(gm, fake).current_callable

    def run(*args):
        return call([*consts, *args])

    out, ref = run(*example_args), gm(*consts, *example_args)
    # rounding, not a miscompile: an output that is a sum of terms as large as the potential
    # (e.g. a gradient that cancels to 0 at the all-zero example) differs by float32 rounding of
    # those terms, so the absolute tolerance scales with the largest output
    scale = max([1.0] + [float(b.abs().max()) for b in ref if b.numel()])
    if len(out) != len(ref) or not all(a.shape == b.shape and torch.allclose(a, b, rtol=1e-3, atol=1e-5 * scale)
                                       for a, b in zip(out, ref)):
        raise RuntimeError("the directly compiled step disagrees with its traced graph")
    return run


def _compile(fn: Callable, example_args: tuple) -> Callable:
    """Trace ``fn`` to an ATen graph once (``make_fx``, small matrix products decomposed) and
    compile it with TorchInductor.  Shapes are fixed to those of ``example_args``."""
    _quiet_cpp_extension_import()
    import torch._inductor
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        return _compile_direct(fn, example_args)
    except Exception as e:  # noqa: BLE001 - Inductor internals differ in this torch version: use the public entry point
        log.info("compiling through compile_fx_inner failed (%s: %s); using torch._inductor.compile",
                 type(e).__name__, e)
    with pyro.validation_enabled(False):
        gm = make_fx(fn, decomposition_table=_decompositions())(*example_args)
    compiled = torch._inductor.compile(gm, list(example_args))
    compiled(*example_args)  # build now, so that the first sampling step is not slower
    return compiled


def _make_kernels(potential, chains, like, jit, what="leapfrog"):
    """Returns (fn, eager value_and_grad, compiled?, compile seconds, fallback reason), where fn
    is the leapfrog step (``what="leapfrog"``) or the value and gradient (``"value_and_grad"``)
    for ``chains`` rows, compiled when ``jit``."""
    eager_vg = _value_and_grad_eager(potential)
    eager = _leapfrog_fn(eager_vg) if what == "leapfrog" else eager_vg
    if not jit:
        return eager, eager_vg, False, 0.0, None
    t0 = time.perf_counter()
    d = potential.dim

    def example(*shape, value=0.0):  # distinct tensors: aliased example inputs would be compiled as aliases
        return torch.full((chains, *shape), value, dtype=like.dtype, device=like.device)

    try:
        vg = _value_and_grad_functional(potential)
        if what == "leapfrog":
            fn = _compile(_leapfrog_fn(vg), (example(3, d), example(1, value=1e-3), example(d, value=1.0)))
        else:
            fn = _compile(vg, (example(d),))
        return fn, eager_vg, True, time.perf_counter() - t0, None
    except Exception as e:  # no C++ compiler, an op inductor cannot lower, ...
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        warnings.warn(f"fit_nuts: compiling the potential failed ({reason}); running eager PyTorch", RuntimeWarning,
                      stacklevel=3)
        return eager, eager_vg, False, time.perf_counter() - t0, reason
