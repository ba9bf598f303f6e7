"""activation on the Scalar engine."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.operands import Context, View
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, read_fp32, store_fp32
from neurontools.daemon.isa.activation_functions import FUNCTIONS


# activation: dst = f(src * scale + bias) on the Scalar engine; scale is a constant or a [P, 1] float32
# tile, bias a [P, 1] tile; reduce_dst optionally receives the per-partition sum of the results.

@dataclass(frozen=True, kw_only=True)
class _Activation(Instruction):
    dst: View
    src: View
    function: Callable[[np.ndarray], np.ndarray]
    scale: float
    scale_tile: View | None
    bias: View | None
    reduce_dst: View | None


def _validate_activation(ctx: Context, msg: pb.Activation) -> _Activation:
    src = ctx.engine_view(msg.src, "src", pb.SCALAR)
    dst = ctx.engine_view(msg.dst, "dst", pb.SCALAR)
    ctx.same_shape(dst, src)
    if msg.function not in FUNCTIONS:
        raise ctx.fail(f"function {msg.function} is not an activation function; use one of: "
                       + ", ".join(pb.ActivationFunction.Name(f) for f in FUNCTIONS))
    if not math.isfinite(msg.scale):
        raise ctx.fail(f"scale {msg.scale} is not finite")
    function = FUNCTIONS[msg.function]
    if msg.function == pb.PRELU:
        if not math.isfinite(msg.alpha):
            raise ctx.fail(f"alpha {msg.alpha} is not finite")
        function = functools.partial(function, alpha=msg.alpha)
    elif msg.alpha:
        raise ctx.fail(f"alpha {msg.alpha:g} is set but only PRELU takes alpha (activation alpha rule)")
    reads, writes = [src], [dst]
    bias = scale_tile = reduce_dst = None
    if msg.bias.name:
        bias = ctx.engine_view(msg.bias, "bias", pb.SCALAR)
        ctx.per_partition(bias, src, "activation bias rule")
        reads.append(bias)
    if msg.scale_tile.name:
        scale_tile = ctx.engine_view(msg.scale_tile, "scale_tile", pb.SCALAR)
        ctx.per_partition(scale_tile, src, "activation scale rule")
        if scale_tile.dtype != pb.FLOAT32:
            raise ctx.fail(f"{scale_tile} is {dtypes.NAMES[scale_tile.dtype]}; a scale tile is float32 "
                           "(activation scale rule)")
        if msg.scale not in (0.0, 1.0):
            raise ctx.fail(f"scale {msg.scale:g} and {scale_tile} are both given; use one "
                           "(activation scale rule)")
        reads.append(scale_tile)
    if msg.reduce_dst.name:
        reduce_dst = ctx.engine_view(msg.reduce_dst, "reduce_dst", pb.SCALAR)
        ctx.per_partition(reduce_dst, src, "activation reduce rule")
        writes.append(reduce_dst)
    # A plain copy (COPY, no scale, no bias) moves data: no FLOPs. Otherwise one per element, one more
    # per element for the add-reduce.
    plain_copy = msg.function == pb.COPY and msg.scale in (0.0, 1.0) and not (bias or scale_tile)
    flops = 0 if plain_copy else src.size * (2 if reduce_dst else 1)
    return _Activation(reads=tuple(reads), writes=tuple(writes), flops=flops, dst=dst, src=src,
                       function=function, scale=msg.scale or 1.0, scale_tile=scale_tile, bias=bias,
                       reduce_dst=reduce_dst)


def _execute_activation(op: _Activation, env: Env) -> None:
    x = read_fp32(env, op.src)
    if op.scale_tile is not None:
        x = x * read_fp32(env, op.scale_tile)
    elif op.scale != 1.0:
        x = x * np.float32(op.scale)
    if op.bias is not None:
        x = x + read_fp32(env, op.bias)
    y = op.function(x)
    if op.reduce_dst is not None:  # the accumulators sum FP32 results, before dst's rounding
        store_fp32(env[op.reduce_dst.name][op.reduce_dst.index], y.sum(axis=1, keepdims=True), op.reduce_dst.dtype)
    store_fp32(env[op.dst.name][op.dst.index], y, op.dst.dtype)


def _cost_activation(op: _Activation) -> cost_model.InstructionCost:
    return cost_model.scalar_cost(op.src.free, tensors=len(op.reads) + len(op.writes),
                                  accumulate=op.reduce_dst is not None)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("activation", _validate_activation, _execute_activation, _cost_activation),
)
