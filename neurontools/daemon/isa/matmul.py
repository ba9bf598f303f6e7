"""The Tensor engine: matmul and transpose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.limits import (ENGINE_NAMES, MATMUL_MAX_MOVING_FREE, MATMUL_MAX_STATIONARY_FREE,
                                           PSUM, SBUF, TENSOR_TRANSPOSE_MAX, VECTOR_TRANSPOSE_MAX)
from neurontools.daemon.isa.operands import Context, View, fmt_shape
from neurontools.daemon.isa.instruction import (Env, Instruction, Opcode, as_float32, read_fp32, read_view,
                                                store_fp32)


MATMUL_DTYPES = (pb.FLOAT32, pb.TFLOAT32, pb.BFLOAT16, pb.FLOAT16, pb.FLOAT8_E4M3, pb.FLOAT8_E5M2)
FP32_PATH = (pb.FLOAT32, pb.TFLOAT32)


# matmul: dst[M, N] (=|+=) stationary[K, M].T @ moving[K, N], FP32 accumulation in PSUM.

@dataclass(frozen=True, kw_only=True)
class Matmul(Instruction):
    dst: View
    stationary: View
    moving: View
    accumulate: bool
    fp32: bool


def _tensor_engine_dtype(ctx: Context, view: View) -> None:
    if view.dtype not in MATMUL_DTYPES:
        raise ctx.fail(f"{view} is {dtypes.NAMES[view.dtype]}; the Tensor engine multiplies float8, "
                       "bfloat16, float16, tfloat32 or float32 (matmul dtype rule)")


def _validate_matmul(ctx: Context, msg: pb.Matmul) -> Matmul:
    sbuf = (SBUF,)
    stationary = ctx.engine_view(msg.stationary, "stationary", pb.TENSOR, sbuf)
    moving = ctx.engine_view(msg.moving, "moving", pb.TENSOR, sbuf)
    dst = ctx.engine_view(msg.dst, "dst", pb.TENSOR, (PSUM,))
    (k, m), (k2, n) = stationary.shape, moving.shape
    if k != k2:
        raise ctx.fail(f"{stationary} contracts K={k} partitions but {moving} has K={k2}; both must put the "
                       "same contraction dimension on the partitions (matmul layout rule)")
    if m > MATMUL_MAX_STATIONARY_FREE:
        raise ctx.fail(f"{stationary} has M={m}; the Tensor engine takes at most {MATMUL_MAX_STATIONARY_FREE} "
                       "stationary columns (stationary free size <= 128): split M")
    if n > MATMUL_MAX_MOVING_FREE:
        raise ctx.fail(f"{moving} has N={n}; the Tensor engine takes at most {MATMUL_MAX_MOVING_FREE} moving "
                       "columns (moving free size <= 512): split N")
    if dst.shape != (m, n):
        raise ctx.fail(f"{dst} must be [M, N] = {fmt_shape((m, n))} for {stationary} and {moving} "
                       "(matmul shape rule)")
    for view in (stationary, moving):
        _tensor_engine_dtype(ctx, view)
    if (stationary.dtype in FP32_PATH) != (moving.dtype in FP32_PATH):
        raise ctx.fail(f"{stationary} is {dtypes.NAMES[stationary.dtype]} and {moving} is "
                       f"{dtypes.NAMES[moving.dtype]}; float32/tfloat32 inputs pair only with float32/tfloat32 "
                       "(matmul dtype rule): cast one side")
    # The accumulating read of dst happens near memory in PSUM: for scheduling it is a write only.
    return Matmul(reads=(stationary, moving), writes=(dst,), flops=2 * m * n * k, dst=dst,
                   stationary=stationary, moving=moving, accumulate=msg.accumulate,
                   fp32=pb.FLOAT32 in (stationary.dtype, moving.dtype))


def matmul_operand(values: np.ndarray, dtype: int) -> np.ndarray:
    # tfloat32 storage may hold full float32 bits (copied in unrounded): the PE array sees 10 mantissa bits.
    return dtypes.round_tfloat32(values) if dtype == pb.TFLOAT32 else as_float32(values)


def execute_matmul(op: Matmul, env: Env) -> None:
    stationary = matmul_operand(read_view(env, op.stationary), op.stationary.dtype)
    moving = matmul_operand(read_view(env, op.moving), op.moving.dtype)
    out = env[op.dst.name][op.dst.index]
    if op.accumulate:
        out += stationary.T @ moving
    else:
        np.matmul(stationary.T, moving, out=out)


def _cost_matmul(op: Matmul) -> cost_model.InstructionCost:
    return cost_model.matmul_cost(op.moving.free, op.fp32, op.moving.innermost_stride_bytes)


# transpose: dst[F, P] = src[P, F]; the Tensor engine does it as a matmul with the identity into PSUM,
# the Vector engine moves 32 x 32 blocks.

@dataclass(frozen=True, kw_only=True)
class _Transpose(Instruction):
    dst: View
    src: View
    engine: int


def _validate_transpose(ctx: Context, msg: pb.Transpose) -> _Transpose:
    engine = ctx.engine(msg.engine, (pb.TENSOR, pb.VECTOR))
    if engine == pb.TENSOR:
        src = ctx.engine_view(msg.src, "src", pb.TENSOR, (SBUF,))
        dst = ctx.engine_view(msg.dst, "dst", pb.TENSOR, (PSUM,))
        _tensor_engine_dtype(ctx, src)
        limit = TENSOR_TRANSPOSE_MAX
    else:
        src = ctx.engine_view(msg.src, "src", pb.VECTOR)
        dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
        limit = VECTOR_TRANSPOSE_MAX
    if max(src.shape) > limit:
        raise ctx.fail(f"{src} is larger than {limit} x {limit}; the {ENGINE_NAMES[engine]} engine transposes "
                       f"at most {limit} x {limit} (transpose size rule)"
                       + (": use the Tensor engine" if engine == pb.VECTOR else ""))
    if dst.shape != src.shape[::-1]:
        raise ctx.fail(f"{dst} must be {fmt_shape(src.shape[::-1])}, the transpose of {src} "
                       "(transpose shape rule)")
    # Data movement, not arithmetic a user asked for: no FLOPs (also on the Tensor engine).
    return _Transpose(reads=(src,), writes=(dst,), flops=0, dst=dst, src=src, engine=engine)


def _execute_transpose(op: _Transpose, env: Env) -> None:
    out = env[op.dst.name][op.dst.index]
    if op.engine == pb.TENSOR:
        x = matmul_operand(read_view(env, op.src), op.src.dtype)
        # x.T @ I: exact for finite data; Inf/NaN spread over their row, as on NC-v2 (ref §3.4).
        # (Copying a strided tile view to contiguous first makes the transposed write ~4x faster in numpy.)
        out[...] = np.ascontiguousarray(x).T if np.isfinite(x).all() else x.T @ np.eye(x.shape[0], dtype=np.float32)
    elif op.src.dtype == op.dst.dtype:
        out[...] = read_view(env, op.src).T
    else:
        store_fp32(out, read_fp32(env, op.src).T, op.dst.dtype)


def _cost_transpose(op: _Transpose) -> cost_model.InstructionCost:
    if op.engine == pb.TENSOR:
        # The data is the stationary operand; the moving operand is the P x P identity: N = P.
        return cost_model.matmul_cost(op.src.partitions, op.src.dtype == pb.FLOAT32)
    return cost_model.vector_cost(op.src.free, tensors=2)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("matmul", _validate_matmul, execute_matmul, _cost_matmul),
    Opcode("transpose", _validate_transpose, _execute_transpose, _cost_transpose),
)
