"""Affine index patterns on the GpSimd engine: iota and affine_select."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.operands import Context, View
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, read_fp32, store_fp32
from neurontools.daemon.isa.alu import ARITHMETIC, COMPARISONS, alu_name, alu_names


# iota and affine_select: an affine index offset + p * channel_multiplier + sum(step_k * i_k), computed
# in int32 on the GpSimd engine (p counts the partitions of dst from 0).

def _pattern(ctx: Context, pattern, free: int, what: str) -> tuple[tuple[int, int], ...]:
    steps = tuple((entry.step, entry.num) for entry in pattern) or ((1, free),)
    if math.prod(num for _, num in steps) != free or min(num for _, num in steps) < 1:
        raise ctx.fail(f"pattern {[list(s) for s in steps]} covers {math.prod(n for _, n in steps)} positions; "
                       f"{what} has {free} elements per partition (the nums of the pattern multiply to it)")
    return steps


def _affine_values(partitions: int, steps: tuple[tuple[int, int], ...], offset: int,
                   channel_multiplier: int) -> np.ndarray:
    free = np.zeros(1, np.int64)
    for step, num in steps:
        free = (free[:, None] + np.arange(num, dtype=np.int64) * step).reshape(-1)
    values = offset + np.arange(partitions, dtype=np.int64)[:, None] * channel_multiplier + free
    return values.astype(np.int32)  # int32 arithmetic wraps


@dataclass(frozen=True, kw_only=True)
class _Iota(Instruction):
    dst: View
    steps: tuple[tuple[int, int], ...]
    offset: int
    channel_multiplier: int


def _validate_iota(ctx: Context, msg: pb.Iota) -> _Iota:
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    steps = _pattern(ctx, msg.pattern, dst.free, str(dst))
    return _Iota(reads=(), writes=(dst,), flops=0, dst=dst, steps=steps, offset=msg.offset,
                 channel_multiplier=msg.channel_multiplier)


def _execute_iota(op: _Iota, env: Env) -> None:
    values = _affine_values(op.dst.partitions, op.steps, op.offset, op.channel_multiplier)
    # The engine casts the int32 results to dst's dtype (float64 holds int32 exactly: one rounding).
    store_fp32(env[op.dst.name][op.dst.index], values.astype(np.float64), op.dst.dtype)


def _cost_iota(op: _Iota) -> cost_model.InstructionCost:
    return cost_model.gpsimd_cost(cost_model.GPSIMD_SETUP_CYCLES + op.dst.free, tensors=1)


@dataclass(frozen=True, kw_only=True)
class _AffineSelect(Instruction):
    dst: View
    on_true: View
    on_false: float
    steps: tuple[tuple[int, int], ...]
    offset: int
    channel_multiplier: int
    compare: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _validate_affine_select(ctx: Context, msg: pb.AffineSelect) -> _AffineSelect:
    on_true = ctx.engine_view(msg.on_true, "on_true", pb.GPSIMD)
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    ctx.same_shape(dst, on_true)
    if msg.cmp_op not in COMPARISONS:
        raise ctx.fail(f"cmp_op {alu_name(msg.cmp_op)} is not a comparison; use one of: {alu_names(COMPARISONS)}")
    steps = _pattern(ctx, msg.pattern, dst.free, str(dst))
    return _AffineSelect(reads=(on_true,), writes=(dst,), flops=0, dst=dst, on_true=on_true,
                         on_false=msg.on_false_value, steps=steps, offset=msg.offset,
                         channel_multiplier=msg.channel_multiplier, compare=ARITHMETIC[msg.cmp_op])


def _execute_affine_select(op: _AffineSelect, env: Env) -> None:
    values = _affine_values(op.dst.partitions, op.steps, op.offset, op.channel_multiplier)
    keep = op.compare(values, 0) != 0
    store_fp32(env[op.dst.name][op.dst.index], np.where(keep, read_fp32(env, op.on_true), np.float32(op.on_false)),
           op.dst.dtype)


def _cost_affine_select(op: _AffineSelect) -> cost_model.InstructionCost:
    return cost_model.gpsimd_cost(cost_model.GPSIMD_SETUP_CYCLES + op.dst.free, tensors=2)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("iota", _validate_iota, _execute_iota, _cost_iota),
    Opcode("affine_select", _validate_affine_select, _execute_affine_select, _cost_affine_select),
)
