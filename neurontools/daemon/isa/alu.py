"""ALU operations of the elementwise engines (ref §3.4 nki-aluop table) and the numeric modes
they run in."""

from __future__ import annotations

from typing import Callable

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.operands import Context, View
from neurontools.daemon.isa.instruction import (Env, as_bits, as_float32, is_int, read_view, store_bits,
                                                store_fp32)


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """Comparisons and logical ops give 1.0 or 0.0 in the FP32 datapath."""
    return lambda a, b: fn(a, b).astype(np.float32)


# Arithmetic ops: FP32 math (or exact int64 math on GpSimd for int32 tiles).
ARITHMETIC: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    pb.ADD: np.add, pb.SUBTRACT: np.subtract, pb.MULTIPLY: np.multiply,
    pb.MAXIMUM: np.maximum, pb.MINIMUM: np.minimum, pb.DIVIDE: np.divide, pb.POWER: np.power,
    pb.IS_EQUAL: _compare(np.equal), pb.NOT_EQUAL: _compare(np.not_equal),
    pb.IS_GT: _compare(np.greater), pb.IS_GE: _compare(np.greater_equal),
    pb.IS_LT: _compare(np.less), pb.IS_LE: _compare(np.less_equal),
    pb.LOGICAL_AND: _compare(lambda a, b: (a != 0) & (b != 0)),
    pb.LOGICAL_OR: _compare(lambda a, b: (a != 0) | (b != 0)),
    pb.LOGICAL_XOR: _compare(lambda a, b: (a != 0) ^ (b != 0)),
    pb.ABS_MAX: lambda a, b: np.maximum(np.abs(a), np.abs(b)),
    pb.ABS_MIN: lambda a, b: np.minimum(np.abs(a), np.abs(b)),
}
# Bitvec ops: integer tiles only, on bit patterns; shift amounts past 63 shift everything out.
BITVEC: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    pb.BITWISE_AND: np.bitwise_and, pb.BITWISE_OR: np.bitwise_or, pb.BITWISE_XOR: np.bitwise_xor,
    pb.LEFT_SHIFT: lambda a, b: np.where(b < 64, np.left_shift(a, np.minimum(b, 63)), 0),
    pb.RIGHT_SHIFT: lambda a, b: np.where(b < 64, np.right_shift(a, np.minimum(b, 63)), 0),
}
COMPARISONS = (pb.IS_EQUAL, pb.NOT_EQUAL, pb.IS_GT, pb.IS_GE, pb.IS_LT, pb.IS_LE)
# Exact on GpSimd's integer datapath (the rest go through FP32 there too).
INTEGER_EXACT = (pb.ADD, pb.SUBTRACT, pb.MULTIPLY, pb.MAXIMUM, pb.MINIMUM, pb.ABS_MAX, pb.ABS_MIN,
                  *COMPARISONS)
INT32 = (pb.INT32, pb.UINT32)


def alu_name(op: int) -> str:
    return pb.AluOp.Name(op) if op in pb.AluOp.values() else str(op)


def alu_names(ops) -> str:
    return ", ".join(alu_name(o) for o in ops)


def binary_op(ctx: Context, op: int, role: str) -> tuple[Callable[..., np.ndarray], bool]:
    """An elementwise ALU op and whether it is bitvec."""
    if op in ARITHMETIC:
        return ARITHMETIC[op], False
    if op in BITVEC:
        return BITVEC[op], True
    raise ctx.fail(f"{role} {alu_name(op)} is not an elementwise op; use one of: "
                   + alu_names((*ARITHMETIC, *BITVEC)))


def require_integers(ctx: Context, op: int, views: tuple[View, ...]) -> None:
    for view in views:
        if not is_int(view):
            raise ctx.fail(f"{view} is {dtypes.NAMES[view.dtype]}; bitvec op {alu_name(op)} works on integer "
                           "tiles only (bitvec dtype rule)")


# Numeric modes of an elementwise instruction: how operands are read and results written.
FLOAT, EXACT_INT, BITVEC_MODE = "float", "int", "bits"


def load_operand(env: Env, view: View, mode: str) -> np.ndarray:
    values = read_view(env, view)
    if mode == FLOAT:
        return as_float32(values)
    return as_bits(values) if mode == BITVEC_MODE else values.astype(np.int64)


def save_result(env: Env, view: View, values: np.ndarray, mode: str) -> None:
    if mode == FLOAT:
        store_fp32(env[view.name][view.index], values, view.dtype)
    else:
        store_bits(env[view.name][view.index], values)
