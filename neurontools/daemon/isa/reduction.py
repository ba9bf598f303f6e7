"""Reductions: tensor_reduce (free axes), bn_stats and bn_aggr (normalization statistics),
tensor_partition_reduce (across partitions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.limits import BN_STATS_MAX_FREE, BN_STATS_WIDTH
from neurontools.daemon.isa.operands import Context, View, fmt_shape
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, read_fp32, store_bits, store_fp32
from neurontools.daemon.isa.alu import (BITVEC_MODE, FLOAT, alu_name, alu_names, load_operand, require_integers,
                                        save_result)


# tensor_reduce: dst = op over the trailing free axes of src on the Vector engine.

_REDUCERS: dict[int, tuple[np.ufunc, str]] = {
    pb.ADD: (np.add, FLOAT), pb.MULTIPLY: (np.multiply, FLOAT),
    pb.MAXIMUM: (np.maximum, FLOAT), pb.MINIMUM: (np.minimum, FLOAT),
    pb.LOGICAL_AND: (np.logical_and, "logical"), pb.LOGICAL_OR: (np.logical_or, "logical"),
    pb.LOGICAL_XOR: (np.logical_xor, "logical"),
    pb.BITWISE_AND: (np.bitwise_and, BITVEC_MODE), pb.BITWISE_OR: (np.bitwise_or, BITVEC_MODE),
    pb.BITWISE_XOR: (np.bitwise_xor, BITVEC_MODE),
}


@dataclass(frozen=True, kw_only=True)
class _TensorReduce(Instruction):
    dst: View
    src: View
    reducer: np.ufunc
    mode: str
    free_shape: tuple[int, ...]
    axes: tuple[int, ...]
    negate: bool


def _validate_tensor_reduce(ctx: Context, msg: pb.TensorReduce) -> _TensorReduce:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if msg.op not in _REDUCERS:
        raise ctx.fail(f"op {alu_name(msg.op)} cannot reduce; use one of: {alu_names(_REDUCERS)}")
    free_shape = tuple(msg.free_shape) or (src.free,)
    if math.prod(free_shape) != src.free or min(free_shape) < 1:
        raise ctx.fail(f"free_shape {fmt_shape(free_shape)} does not split the {src.free} elements per "
                       f"partition of {src} (tensor_reduce free_shape rule)")
    if msg.axes > len(free_shape):
        raise ctx.fail(f"axes {msg.axes}: free_shape {fmt_shape(free_shape)} has {len(free_shape)} axes "
                       "(tensor_reduce axes rule)")
    count = msg.axes or len(free_shape)
    kept = free_shape[:len(free_shape) - count]
    expected = (src.partitions, math.prod(kept))
    if dst.shape != expected:
        axes = "1" if not kept else " * ".join(f"F{i + 1}" for i in range(len(kept)))
        raise ctx.fail(f"{dst} must be [P, {axes}] = {fmt_shape(expected)} for {src} (a reduction runs along "
                       "the trailing free axes; the partition axis cannot be reduced)")
    reducer, mode = _REDUCERS[msg.op]
    if mode == BITVEC_MODE:
        require_integers(ctx, msg.op, (src, dst))
    if msg.negate and mode != FLOAT:
        raise ctx.fail(f"negate applies to arithmetic reductions, not {alu_name(msg.op)} (tensor_reduce negate rule)")
    axes = tuple(range(1 + len(kept), 1 + len(free_shape)))
    return _TensorReduce(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src, reducer=reducer,
                         mode=mode, free_shape=free_shape, axes=axes, negate=msg.negate)


def _execute_tensor_reduce(op: _TensorReduce, env: Env) -> None:
    x = load_operand(env, op.src, BITVEC_MODE if op.mode == BITVEC_MODE else FLOAT)
    x = x.reshape(op.src.partitions, *op.free_shape)
    if op.mode == "logical":
        x = x != 0
    result = op.reducer.reduce(x, axis=op.axes).reshape(op.dst.shape)
    if op.mode == BITVEC_MODE:
        store_bits(env[op.dst.name][op.dst.index], result)
        return
    result = result.astype(np.float32)
    store_fp32(env[op.dst.name][op.dst.index], -result if op.negate else result, op.dst.dtype)


def _cost_tensor_reduce(op: _TensorReduce) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


# bn_stats: per-partition statistics of up to 512 elements, laid out as NKI defines them: for the
# elements at even and at odd free positions, (count, mean, variance * count). bn_aggr combines any
# number of such (count, mean, variance * count) triples into (mean, variance). Vector engine, FP32.

@dataclass(frozen=True, kw_only=True)
class _BnStats(Instruction):
    dst: View
    src: View


def _validate_bn_stats(ctx: Context, msg: pb.BnStats) -> _BnStats:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if src.free > BN_STATS_MAX_FREE:
        raise ctx.fail(f"{src} has {src.free} elements per partition; bn_stats takes at most {BN_STATS_MAX_FREE} "
                       "(bn_stats_fmax): run one bn_stats per 512-element slice and aggregate them with bn_aggr")
    if dst.shape != (src.partitions, BN_STATS_WIDTH):
        raise ctx.fail(f"{dst} must be [P, 6] = {fmt_shape((src.partitions, BN_STATS_WIDTH))} for {src} "
                       "(bn_stats layout: count, mean, variance * count of the even, then the odd elements)")
    return _BnStats(reads=(src,), writes=(dst,), flops=2 * src.size, dst=dst, src=src)


def _execute_bn_stats(op: _BnStats, env: Env) -> None:
    x = read_fp32(env, op.src)
    stats = np.zeros(op.dst.shape, np.float32)
    for half, part in enumerate((x[:, 0::2], x[:, 1::2])):
        count = part.shape[1]
        if count:  # a single element has no odd half: its triple stays (0, 0, 0)
            mean = part.mean(axis=1, dtype=np.float32)
            stats[:, 3 * half] = count
            stats[:, 3 * half + 1] = mean
            stats[:, 3 * half + 2] = np.square(part - mean[:, None]).sum(axis=1)
    store_fp32(env[op.dst.name][op.dst.index], stats, op.dst.dtype)


def _cost_bn_stats(op: _BnStats) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


@dataclass(frozen=True, kw_only=True)
class _BnAggr(Instruction):
    dst: View
    src: View


def _validate_bn_aggr(ctx: Context, msg: pb.BnAggr) -> _BnAggr:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if src.free % 3:
        raise ctx.fail(f"{src} has {src.free} elements per partition; bn_aggr reads (count, mean, variance * "
                       "count) triples, so a multiple of 3 (bn_aggr layout rule)")
    if dst.shape != (src.partitions, 2):
        raise ctx.fail(f"{dst} must be [P, 2] = {fmt_shape((src.partitions, 2))}: mean and variance per "
                       f"partition of {src} (bn_aggr layout rule)")
    return _BnAggr(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src)


def _execute_bn_aggr(op: _BnAggr, env: Env) -> None:
    triples = read_fp32(env, op.src).reshape(op.src.partitions, -1, 3)
    count, mean, m2 = triples[:, :, 0], triples[:, :, 1], triples[:, :, 2]
    total = count.sum(axis=1)
    grand = (count * mean).sum(axis=1) / total
    # Chan et al.: the within-group sums of squares plus the spread of the group means.
    variance = (m2.sum(axis=1) + (count * np.square(mean - grand[:, None])).sum(axis=1)) / total
    store_fp32(env[op.dst.name][op.dst.index], np.stack([grand, variance], axis=1), op.dst.dtype)


def _cost_bn_aggr(op: _BnAggr) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


# tensor_partition_reduce: dst[1, F] = op over the partitions of src on the GpSimd engine.

_PARTITION_REDUCERS: dict[int, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    pb.ADD: (lambda x: x.sum(axis=0, keepdims=True), FLOAT),
    pb.AVERAGE: (lambda x: x.mean(axis=0, keepdims=True, dtype=np.float32), FLOAT),
    pb.MAXIMUM: (lambda x: x.max(axis=0, keepdims=True), FLOAT),
    pb.BITWISE_OR: (lambda x: np.bitwise_or.reduce(x, axis=0, keepdims=True), BITVEC_MODE),
    pb.BITWISE_AND: (lambda x: np.bitwise_and.reduce(x, axis=0, keepdims=True), BITVEC_MODE),
}


@dataclass(frozen=True, kw_only=True)
class _PartitionReduce(Instruction):
    dst: View
    src: View
    reduce: Callable[[np.ndarray], np.ndarray]
    mode: str


def _validate_partition_reduce(ctx: Context, msg: pb.TensorPartitionReduce) -> _PartitionReduce:
    src = ctx.engine_view(msg.src, "src", pb.GPSIMD)
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    if msg.op not in _PARTITION_REDUCERS:
        raise ctx.fail(f"op {alu_name(msg.op)} cannot reduce across partitions; use one of: "
                       f"{alu_names(_PARTITION_REDUCERS)}")
    if dst.shape != (1, src.free):
        raise ctx.fail(f"{dst} must be [1, F] = {fmt_shape((1, src.free))} for {src} (partition reduce "
                       "shape rule)")
    reduce, mode = _PARTITION_REDUCERS[msg.op]
    if mode == BITVEC_MODE:
        require_integers(ctx, msg.op, (src, dst))
    return _PartitionReduce(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src, reduce=reduce,
                            mode=mode)


def _execute_partition_reduce(op: _PartitionReduce, env: Env) -> None:
    save_result(env, op.dst, op.reduce(load_operand(env, op.src, op.mode)), op.mode)


def _cost_partition_reduce(op: _PartitionReduce) -> cost_model.InstructionCost:
    # Our choice: one pass over each processor's 16 partitions, one pass combining the 8 partial rows.
    return cost_model.gpsimd_cost(2 * op.src.free, tensors=2)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("tensor_reduce", _validate_tensor_reduce, _execute_tensor_reduce, _cost_tensor_reduce),
    Opcode("bn_stats", _validate_bn_stats, _execute_bn_stats, _cost_bn_stats),
    Opcode("bn_aggr", _validate_bn_aggr, _execute_bn_aggr, _cost_bn_aggr),
    Opcode("tensor_partition_reduce", _validate_partition_reduce, _execute_partition_reduce,
           _cost_partition_reduce),
)
