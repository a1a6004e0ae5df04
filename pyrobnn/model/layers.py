"""Layers of a Bayesian network.

A Bayesian layer (:class:`Linear`, :class:`Conv2d`) owns no tensors of its own: it declares
the shapes of its weights (:meth:`BayesianLayer.param_shapes`) and computes its output from
weights handed to it.  The weights may carry leading sample dimensions — ``(S, out, in)`` for
S posterior draws or vectorised ELBO particles — and then all S networks run as one batched
matmul (or one grouped convolution), never a Python loop.

With ``bayesian=False`` the same classes are ordinary deterministic layers with
``nn.Parameter`` weights (so "only the last layer is Bayesian" is one argument).
Activations and :class:`Flatten` act on trailing feature dimensions and so pass sample
dimensions through untouched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.config import Configurable
from ..utils.validation import check_bool, check_int
from .memory import check_fits, estimate_model

__all__ = ["MAX_SIZE", "BayesianLayer", "Linear", "Conv2d", "Flatten", "Activation", "ACTIVATIONS", "make_activation"]


#: largest width, channel count or kernel size a layer accepts (torch indexes with 32-bit ints in places)
MAX_SIZE = 2**31 - 1


def _size(name: str, value) -> int:
    return check_int(name, value, 1, maximum=MAX_SIZE, expected=f">= 1 (an integer <= {MAX_SIZE})")


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum``, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
        return tuple(check_int(f"{name}[{i}]", v, minimum, maximum=MAX_SIZE) for i, v in enumerate(value))
    v = check_int(name, value, minimum, maximum=MAX_SIZE)
    return (v, v)


class BayesianLayer(Configurable, nn.Module):
    """Base of layers whose weights may be random.  Subclasses define ``param_shapes``,
    ``functional(x, weight, bias)`` and ``fan_in``."""

    def __init__(self, bayesian: bool = True):
        super().__init__()
        self.bayesian = check_bool(f"{type(self).__name__} bayesian", bayesian)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fan_in(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def init_values(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Initial weights, as PyTorch initialises the deterministic layer
        (uniform in ±1/√fan_in for weight and bias)."""
        bound = 1.0 / math.sqrt(self.fan_in)
        return {
            k: (torch.rand(shape, generator=generator) * 2 - 1) * bound for k, shape in self.param_shapes().items()
        }

    @property
    def num_params(self) -> int:
        """Number of weights and biases."""
        return sum(math.prod(shape) for shape in self.param_shapes().values())

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:  # pragma: no cover - abstract
        """Shape of one example's output for one example's input ``shape``; ValueError if the
        layer cannot take that input."""
        raise NotImplementedError

    def _make_deterministic(self, check_memory: bool = True):
        if check_memory:  # refuse before allocating a layer that cannot fit
            check_fits(estimate_model(0, num_parameters=self.num_params, what=f"the deterministic {self!r}"),
                       hint=f"pass check_memory=False to {type(self).__name__}")
        for k, v in self.init_values().items():
            self.register_parameter(k, nn.Parameter(v))

    def forward(self, x, weight=None, bias=None):
        if not self.bayesian:
            weight, bias = self.weight, getattr(self, "bias", None)
        return self.functional(x, weight, bias)


class Linear(BayesianLayer):
    """Fully connected layer y = x Wᵀ + b.

    ``weight`` is ``(out, in)`` or ``(*S, out, in)``; ``x`` is ``(N, in)`` (shared by all
    draws) or ``(*S, N, in)`` (one input per draw).  Output ``(*S, N, out)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bayesian: bool = True,
                 check_memory: bool = True):
        super().__init__(bayesian)
        self.in_features = _size("Linear in_features", in_features)
        self.out_features = _size("Linear out_features", out_features)
        self.has_bias = check_bool("Linear bias", bias)
        if not self.bayesian:
            self._make_deterministic(check_bool("Linear check_memory", check_memory))

    @property
    def fan_in(self):
        return self.in_features

    def param_shapes(self):
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.has_bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def functional(self, x, weight, bias):
        if weight.dim() == 2:
            return F.linear(x, weight, bias)
        lead = weight.shape[:-2]
        s = math.prod(lead)
        w = weight.reshape(s, self.out_features, self.in_features)
        if x.dim() == 2:
            # one GEMM for all draws: (N, in) @ (in, S*out)
            y = (x @ w.reshape(s * self.out_features, self.in_features).T).view(x.shape[0], s, self.out_features)
            y = y.transpose(0, 1)
            if bias is not None:
                y = y + bias.reshape(s, 1, self.out_features)
        else:
            xs = x.reshape(s, x.shape[-2], self.in_features)
            if bias is not None:
                y = torch.baddbmm(bias.reshape(s, 1, self.out_features), xs, w.transpose(1, 2))
            else:
                y = torch.bmm(xs, w.transpose(1, 2))
        return y.reshape(*lead, y.shape[-2], self.out_features)

    def output_shape(self, shape):
        if len(shape) != 1 or shape[0] != self.in_features:
            flat = ' (put "flatten" before it)' if len(shape) > 1 and math.prod(shape) == self.in_features else ""
            raise ValueError(f"expected inputs of shape ({self.in_features},) per example, got {tuple(shape)}{flat}")
        return (self.out_features,)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.has_bias}, bayesian={self.bayesian}"


class Conv2d(BayesianLayer):
    """2-D convolution.  ``weight`` is ``(out, in, kh, kw)`` or ``(*S, out, in, kh, kw)``;
    ``x`` is ``(N, C, H, W)`` or ``(*S, N, C, H, W)``.  S draws run as one grouped
    convolution with ``groups = S``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 bayesian: bool = True, check_memory: bool = True):
        super().__init__(bayesian)
        self.in_channels = _size("Conv2d in_channels", in_channels)
        self.out_channels = _size("Conv2d out_channels", out_channels)
        self.kernel_size = _pair("Conv2d kernel_size", kernel_size, 1)
        stride_pair, padding_pair = _pair("Conv2d stride", stride, 1), _pair("Conv2d padding", padding, 0)
        # kept as given (an int stays an int) for F.conv2d and repr
        self.stride = stride_pair if isinstance(stride, (tuple, list)) else stride_pair[0]
        self.padding = padding_pair if isinstance(padding, (tuple, list)) else padding_pair[0]
        self._stride2, self._padding2 = stride_pair, padding_pair
        self.has_bias = check_bool("Conv2d bias", bias)
        if not self.bayesian:
            self._make_deterministic(check_bool("Conv2d check_memory", check_memory))

    @property
    def fan_in(self):
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def param_shapes(self):
        shapes = {"weight": (self.out_channels, self.in_channels, *self.kernel_size)}
        if self.has_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def functional(self, x, weight, bias):
        if weight.dim() == 4:
            if x.dim() == 4:
                return F.conv2d(x, weight, bias, self.stride, self.padding)
            lead = x.shape[:-4]
            y = F.conv2d(x.reshape(-1, *x.shape[-3:]), weight, bias, self.stride, self.padding)
            return y.reshape(*lead, x.shape[-4], *y.shape[1:])
        lead = weight.shape[:-4]
        s = math.prod(lead)
        c = self.in_channels
        if x.dim() == 4:
            n = x.shape[0]
            xg = x.repeat(1, s, 1, 1)
        else:
            n = x.shape[-4]
            xg = x.reshape(s, n, c, *x.shape[-2:]).transpose(0, 1).reshape(n, s * c, *x.shape[-2:])
        wg = weight.reshape(s * self.out_channels, c, *self.kernel_size)
        bg = None if bias is None else bias.reshape(s * self.out_channels)
        y = F.conv2d(xg, wg, bg, self.stride, self.padding, groups=s)
        y = y.view(n, s, self.out_channels, *y.shape[-2:]).transpose(0, 1)
        return y.reshape(*lead, n, self.out_channels, *y.shape[-2:])

    def output_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"expected images of shape (channels={self.in_channels}, height, width) per example, "
                             f"got {tuple(shape)}")
        if shape[0] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel{'s' if self.in_channels > 1 else ''}, "
                             f"got images of shape {tuple(shape)}")
        out = []
        for d, k, st, p in zip(shape[1:], self.kernel_size, self._stride2, self._padding2):
            if d + 2 * p < k:
                raise ValueError(f"kernel_size {self.kernel_size} is larger than the padded input "
                                 f"{tuple(shape)} (padding {self.padding})")
            out.append((d + 2 * p - k) // st + 1)
        return (self.out_channels, *out)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.has_bias}, bayesian={self.bayesian}")


class Flatten(Configurable, nn.Module):
    """Flatten the trailing ``ndims`` feature dimensions (default 3: channels, height, width),
    leaving sample and data dimensions alone."""

    def __init__(self, ndims: int = 3):
        super().__init__()
        self.ndims = check_int("Flatten ndims", ndims, 1, maximum=64)

    def forward(self, x):
        return x.flatten(-self.ndims)

    def output_shape(self, shape):
        """One example's shape after flattening its trailing ``ndims`` dimensions."""
        if len(shape) < self.ndims:
            raise ValueError(f"expected inputs with at least {self.ndims} dimensions per example, got {tuple(shape)}")
        keep = tuple(shape[:len(shape) - self.ndims])
        return (*keep, math.prod(shape[len(shape) - self.ndims:]))


ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
}


class Activation(Configurable, nn.Module):
    """An elementwise activation by name: one of ``ACTIVATIONS``."""

    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, x):
        return self.fn(x)

    def output_shape(self, shape):
        """Elementwise: the shape is unchanged."""
        return tuple(shape)

    def extra_repr(self):
        return self.name


def make_activation(name: str) -> Activation:
    """Activation module from its name (``"relu"``, ``"tanh"``, ``"elu"``, ``"sigmoid"``, ``"softplus"``)."""
    return Activation(name)
