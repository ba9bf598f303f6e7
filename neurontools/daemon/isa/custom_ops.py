"""Custom operators of the GpSimd engine: a named registry of Python functions inside the daemon.

On a real NeuronCore-v2, custom operators are C++ programs on the GpSimd engine's 8 processors. Here
a custom operator is a function registered in this module under a name; a program names the operator
(CustomOp.name) and never carries code. Each operator declares its operands, attributes, output
shapes, numpy computation (float32 in, float32 out) and cost in GpSimd cycles.

Operators see whole [P, F] tile views; each GpSimd processor serves 16 partitions, so an operator that
works row by row runs on all 8 processors at once and its cost is per row (ref §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

Shape = tuple[int, ...]


class CustomOpError(ValueError):
    """Operands or attributes an operator cannot take; the message names the rule."""


@dataclass(frozen=True)
class CustomOperator:
    name: str
    summary: str
    inputs: tuple[str, ...]                 # operand roles, in CustomOp.inputs order
    outputs: tuple[str, ...]                # in CustomOp.outputs order
    attributes: Mapping[str, float]         # allowed attributes and their defaults
    # Input shapes and attributes -> the output shapes; raises CustomOpError.
    output_shapes: Callable[[Sequence[Shape], Mapping[str, float]], list[Shape]]
    # float32 inputs and attributes -> float32 outputs of the declared shapes.
    compute: Callable[[Sequence[np.ndarray], Mapping[str, float]], list[np.ndarray]]
    # Input shapes -> GpSimd cycles beyond the instruction's fixed start-up cost.
    cycles: Callable[[Sequence[Shape]], int]
    # Input shapes -> arithmetic operations counted as FLOPs.
    flops: Callable[[Sequence[Shape]], int]


REGISTRY: dict[str, CustomOperator] = {}


def register(op: CustomOperator) -> CustomOperator:
    if op.name in REGISTRY:
        raise ValueError(f"custom operator {op.name!r} is already registered")
    REGISTRY[op.name] = op
    return op


def registered() -> list[str]:
    return sorted(REGISTRY)


# -- topk8: the 8 largest values of each partition and their positions ------------------------------
# The GpSimd counterpart of the Vector engine's max8 + nc_find_index8 (ref §3.4): same limits, 8 to
# 16384 elements per partition in, exactly 8 out. Ties keep the lower position first.

TOPK = 8
TOPK_MAX_FREE = 16384


def _topk8_shapes(shapes: Sequence[Shape], attributes: Mapping[str, float]) -> list[Shape]:
    partitions, free = shapes[0]
    if not TOPK <= free <= TOPK_MAX_FREE:
        raise CustomOpError(f"topk8 takes {TOPK} to {TOPK_MAX_FREE} elements per partition, not {free}")
    return [(partitions, TOPK), (partitions, TOPK)]


def _topk8(inputs: Sequence[np.ndarray], attributes: Mapping[str, float]) -> list[np.ndarray]:
    (x,) = inputs
    order = np.argsort(-x, axis=1, kind="stable")[:, :TOPK]  # NaN sorts last
    return [np.take_along_axis(x, order, axis=1), order.astype(np.float32)]


register(CustomOperator(
    name="topk8", summary="values [P, 8] and positions [P, 8] of the 8 largest elements of each partition",
    inputs=("src",), outputs=("values", "indices"), attributes={},
    output_shapes=_topk8_shapes, compute=_topk8,
    # One pass per selected value: 8 passes over the row at one element per cycle per lane.
    cycles=lambda shapes: TOPK * shapes[0][1],
    flops=lambda shapes: TOPK * shapes[0][0] * shapes[0][1],
))


# -- rmsnorm: y = x / sqrt(mean(x^2) + eps) * weight, row by row ------------------------------------

def _rmsnorm_shapes(shapes: Sequence[Shape], attributes: Mapping[str, float]) -> list[Shape]:
    x, weight = shapes
    if weight not in ((1, x[1]), x):
        raise CustomOpError(f"rmsnorm weight must be [1, {x[1]}] (one row for every partition) or "
                            f"{list(x)} like x, not {list(weight)}")
    if not attributes["eps"] > 0:
        raise CustomOpError(f"rmsnorm eps must be > 0, not {attributes['eps']}")
    return [x]


def _rmsnorm(inputs: Sequence[np.ndarray], attributes: Mapping[str, float]) -> list[np.ndarray]:
    x, weight = inputs
    mean_square = np.mean(x * x, axis=1, keepdims=True, dtype=np.float32)
    scale = np.float32(1.0) / np.sqrt(mean_square + np.float32(attributes["eps"]))
    return [x * scale * weight]


register(CustomOperator(
    name="rmsnorm", summary="x / sqrt(mean(x^2) + eps) * weight over each partition's free axis",
    inputs=("x", "weight"), outputs=("y",), attributes={"eps": 1e-6},
    output_shapes=_rmsnorm_shapes, compute=_rmsnorm,
    # Three passes over the row (square-sum, scale, weight); rsqrt is per row, not per element.
    cycles=lambda shapes: 3 * shapes[0][1],
    flops=lambda shapes: 4 * shapes[0][0] * shapes[0][1],
))
