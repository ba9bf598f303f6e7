"""The Scalar engine's activation functions in numpy: float32 in, float32 out, inputs never modified.

The hardware evaluates these with piecewise polynomials and documents valid input ranges (ref §3.4:
log on [2^-64, 2^64], sin on [-pi, pi], ...); out-of-range inputs give "invalid output" there. Here every
function is evaluated accurately over its whole domain with IEEE semantics (log(-1) is NaN, 1/0 is inf),
and sin is a plain sine: the hardware's missing range reduction is not reproduced.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.polynomial import chebyshev

from neurontools._proto import neurond_pb2 as pb

# numpy has no erf. erf(x) = x * g(x^2) where g is an entire function; g is interpolated on t = x^2 in
# [0, 36] (|x| <= 6) at 33 Chebyshev points of math.erf, computed once at import. The max absolute error
# of the float64 result is about 1e-13 (tests check < 1e-10 against math.erf on a dense grid); beyond
# |x| = 6 the result is erf(+-6) = +-(1 - 2e-17). The float32 rounding that follows dominates (6e-8).
_ERF_LIMIT = 6.0
_ERF_DEGREE = 32


def _erf_over_x_of_square(u: np.ndarray) -> np.ndarray:
    """g(t) = erf(sqrt(t)) / sqrt(t) at t = (u + 1) * 18, u in (-1, 1) (Chebyshev points are interior)."""
    roots = [math.sqrt((v + 1.0) * _ERF_LIMIT**2 / 2) for v in np.atleast_1d(u)]
    return np.array([math.erf(r) / r for r in roots])


_ERF_COEFFICIENTS = chebyshev.chebinterpolate(_erf_over_x_of_square, _ERF_DEGREE)


def erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64 (NaN stays NaN, +-inf gives +-1)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -_ERF_LIMIT, _ERF_LIMIT)
    return x * chebyshev.chebval(x * x * (2 / _ERF_LIMIT**2) - 1.0, _ERF_COEFFICIENTS)


def _erf(x: np.ndarray) -> np.ndarray:
    return erf64(x).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + erf64(x64 * (1 / math.sqrt(2.0))))).astype(np.float32)


_GELU_TANH_SCALE = np.float32(math.sqrt(2.0 / math.pi))
_GELU_TANH_CUBIC = np.float32(0.044715)


def _gelu_apprx_tanh(x: np.ndarray) -> np.ndarray:
    inner = _GELU_TANH_SCALE * (x + _GELU_TANH_CUBIC * x * x * x)
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow, full relative accuracy in both tails.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, np.float32(1.0) / (np.float32(1.0) + e), e / (np.float32(1.0) + e))


_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_dx(x: np.ndarray) -> np.ndarray:
    """d/dx x*Phi(x) = Phi(x) + x*phi(x), in float64."""
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + erf64(x64 * (1 / math.sqrt(2.0))))
    return (cdf + x64 * np.exp(-0.5 * x64 * x64) * _INV_SQRT_2PI).astype(np.float32)


_GELU_SIGMOID_SCALE = np.float32(1.702)


def _gelu_apprx_sigmoid(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(_GELU_SIGMOID_SCALE * x)


def _gelu_apprx_sigmoid_dx(x: np.ndarray) -> np.ndarray:
    s = _sigmoid(_GELU_SIGMOID_SCALE * x)
    return s + _GELU_SIGMOID_SCALE * x * s * (np.float32(1.0) - s)


def _silu_dx(x: np.ndarray) -> np.ndarray:
    s = _sigmoid(x)
    return s * (np.float32(1.0) + x * (np.float32(1.0) - s))


_TWO_OVER_SQRT_PI = np.float32(2 / math.sqrt(math.pi))


def _erf_dx(x: np.ndarray) -> np.ndarray:
    return _TWO_OVER_SQRT_PI * np.exp(-(x * x))


def prelu(x: np.ndarray, alpha: float = 0.0) -> np.ndarray:
    """x for x >= 0, alpha * x below: the one function with a parameter (Activation.alpha)."""
    return np.where(x >= 0, x, np.float32(alpha) * x)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.float32(0.0), x)


FUNCTIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    pb.COPY: lambda x: x,
    pb.RELU: lambda x: np.maximum(x, np.float32(0.0)),
    pb.GELU: _gelu,
    pb.GELU_APPRX_TANH: _gelu_apprx_tanh,
    pb.SIGMOID: _sigmoid,
    pb.SILU: lambda x: x * _sigmoid(x),
    pb.TANH: np.tanh,
    pb.EXP: np.exp,
    pb.LOG: np.log,
    pb.SQRT: np.sqrt,
    pb.RSQRT: lambda x: np.float32(1.0) / np.sqrt(x),
    pb.SQUARE: lambda x: x * x,
    pb.RECIPROCAL: lambda x: np.float32(1.0) / x,
    pb.ABS: np.abs,
    pb.SIGN: np.sign,
    pb.ERF: _erf,
    pb.SOFTPLUS: _softplus,
    pb.MISH: lambda x: x * np.tanh(_softplus(x)),
    pb.SIN: np.sin,
    pb.ARCTAN: np.arctan,
    pb.PRELU: prelu,
    pb.GELU_DX: _gelu_dx,
    pb.GELU_APPRX_SIGMOID: _gelu_apprx_sigmoid,
    pb.GELU_APPRX_SIGMOID_DX: _gelu_apprx_sigmoid_dx,
    pb.SILU_DX: _silu_dx,
    pb.ERF_DX: _erf_dx,
}
