"""Elementwise instructions of the Vector and GpSimd engines: tensor_scalar, tensor_tensor, memset,
tensor_copy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.limits import PSUM, SBUF
from neurontools.daemon.isa.operands import Context, View
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, is_int, read_fp32, read_view, store_fp32
from neurontools.daemon.isa.alu import (BITVEC_MODE, EXACT_INT, FLOAT, INT32, INTEGER_EXACT, alu_name, binary_op,
                                        load_operand, require_integers, save_result)


# tensor_scalar: dst = (src op0 operand0) op1 operand1, operands constants or [P, 1] tiles; reverse
# puts the operand on the left. Both ops arithmetic (FP32) or both bitvec (integer bit patterns).

@dataclass(frozen=True, kw_only=True)
class _TensorScalar(Instruction):
    dst: View
    src: View
    ops: tuple[tuple[Callable[..., np.ndarray], float | View, bool], ...]  # (op, operand, reverse)
    mode: str
    engine: int


def _validate_tensor_scalar(ctx: Context, msg: pb.TensorScalar) -> _TensorScalar:
    engine = ctx.engine(msg.engine, (pb.VECTOR, pb.SCALAR, pb.GPSIMD))
    src = ctx.engine_view(msg.src, "src", engine)
    dst = ctx.engine_view(msg.dst, "dst", engine)
    ctx.same_shape(dst, src)
    steps = [(msg.op0, msg.operand0, msg.reverse0, "op0")]
    if msg.op1 != pb.ALU_OP_UNSPECIFIED:
        steps.append((msg.op1, msg.operand1, msg.reverse1, "op1"))
    ops, classes, reads = [], set(), [src]
    for alu, operand, reverse, role in steps:
        fn, bitvec = binary_op(ctx, alu, role)
        classes.add(bitvec)
        value: float | View
        if operand.tile.name:
            value = ctx.engine_view(operand.tile, f"operand{role[-1]}", engine)
            ctx.per_partition(value, src, "tensor_scalar operand rule")
            reads.append(value)
            if bitvec:
                require_integers(ctx, alu, (value,))
        elif bitvec:
            if not (operand.value.is_integer() and 0 <= operand.value < 2**32):
                raise ctx.fail(f"operand{role[-1]} {operand.value:g} of bitvec op {alu_name(alu)} must be an "
                               "integer in [0, 2^32) (bitvec operand rule)")
            value = operand.value
        else:
            if not math.isfinite(operand.value):
                raise ctx.fail(f"operand{role[-1]} {operand.value} is not finite")
            value = operand.value
        if bitvec:
            require_integers(ctx, alu, (src, dst))
        ops.append((fn, value, reverse))
    if len(classes) > 1:
        raise ctx.fail(f"op0 {alu_name(msg.op0)} and op1 {alu_name(msg.op1)} mix an arithmetic and a "
                       "bitvec op; both must be of the same class (tensor_scalar class rule)")
    mode = BITVEC_MODE if classes == {True} else FLOAT
    return _TensorScalar(reads=tuple(reads), writes=(dst,), flops=len(ops) * dst.size, dst=dst, src=src,
                         ops=tuple(ops), mode=mode, engine=engine)


def _execute_tensor_scalar(op: _TensorScalar, env: Env) -> None:
    x = load_operand(env, op.src, op.mode)
    for fn, operand, reverse in op.ops:
        if isinstance(operand, View):
            value = load_operand(env, operand, op.mode)
        else:
            value = np.uint64(operand) if op.mode == BITVEC_MODE else np.float32(operand)
        x = fn(value, x) if reverse else fn(x, value)
    save_result(env, op.dst, x, op.mode)


def _cost_tensor_scalar(op: _TensorScalar) -> cost_model.InstructionCost:
    tensors = len(op.reads) + 1
    if op.engine == pb.SCALAR:
        return cost_model.scalar_cost(op.src.free, tensors)
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.src.free, tensors)
    return cost_model.vector_cost(op.src.free, tensors)  # one tensor read: N cycles (ref §3.5)


# tensor_tensor: dst = a op b elementwise on the Vector or GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _TensorTensor(Instruction):
    dst: View
    a: View
    b: View
    alu: Callable[[np.ndarray, np.ndarray], np.ndarray]
    mode: str
    engine: int
    power: bool


def _validate_tensor_tensor(ctx: Context, msg: pb.TensorTensor) -> _TensorTensor:
    alu, bitvec = binary_op(ctx, msg.op, "op")
    views = (msg.a, msg.b, msg.dst)
    if msg.engine == pb.ENGINE_UNSPECIFIED:
        # As NKI picks: power runs on GpSimd; so does all-int32 arithmetic in SBUF (exact integers).
        a, b, dst = (ctx.view(ref, role) for ref, role in zip(views, ("a", "b", "dst")))
        gpsimd = msg.op == pb.POWER or (
            not bitvec and all(v.dtype in INT32 and v.space == SBUF for v in (a, b, dst)))
        engine = pb.GPSIMD if gpsimd else pb.VECTOR
    else:
        engine = ctx.engine(msg.engine, (pb.VECTOR, pb.GPSIMD))
    if msg.op == pb.POWER and engine != pb.GPSIMD:
        raise ctx.fail("op POWER runs on the GpSimd engine only (tensor_tensor power rule): use engine GPSIMD")
    a = ctx.engine_view(msg.a, "a", engine)
    b = ctx.engine_view(msg.b, "b", engine)
    dst = ctx.engine_view(msg.dst, "dst", engine)
    ctx.same_shape(a, b)
    ctx.same_shape(dst, a)
    if a.space == PSUM and b.space == PSUM:
        raise ctx.fail(f"{a} and {b} are both in PSUM; the Vector engine reads at most one tensor_tensor "
                       "input from PSUM (PSUM read-port rule): copy one to SBUF first")
    if bitvec:
        require_integers(ctx, msg.op, (a, b, dst))
        mode = BITVEC_MODE
    elif engine == pb.GPSIMD and msg.op in INTEGER_EXACT and all(v.dtype in INT32 for v in (a, b, dst)):
        mode = EXACT_INT
    else:
        mode = FLOAT
    return _TensorTensor(reads=(a, b), writes=(dst,), flops=dst.size, dst=dst, a=a, b=b, alu=alu, mode=mode,
                         engine=engine, power=msg.op == pb.POWER)


def _execute_tensor_tensor(op: _TensorTensor, env: Env) -> None:
    save_result(env, op.dst, op.alu(load_operand(env, op.a, op.mode), load_operand(env, op.b, op.mode)), op.mode)


def _cost_tensor_tensor(op: _TensorTensor) -> cost_model.InstructionCost:
    if op.engine == pb.GPSIMD:
        per_element = 2 * cost_model.GPSIMD_TRANSCENDENTAL_CYCLES if op.power else 2
        return cost_model.gpsimd_cost(per_element * op.a.free, tensors=3)
    return cost_model.vector_cost(2 * op.a.free, tensors=3)  # two tensor reads: 2N cycles (ref §3.5)


# memset: dst = value, on the Vector or GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _Memset(Instruction):
    dst: View
    value: float
    engine: int


def _validate_memset(ctx: Context, msg: pb.Memset) -> _Memset:
    engine = ctx.engine(msg.engine, (pb.VECTOR, pb.GPSIMD))
    dst = ctx.engine_view(msg.dst, "dst", engine)
    if is_int(dst) and not math.isfinite(msg.value):
        raise ctx.fail(f"value {msg.value} cannot be stored in {dst} ({dtypes.NAMES[dst.dtype]})")
    return _Memset(reads=(), writes=(dst,), flops=0, dst=dst, value=msg.value, engine=engine)


def _execute_memset(op: _Memset, env: Env) -> None:
    store_fp32(env[op.dst.name][op.dst.index], np.array(op.value), op.dst.dtype)


def _cost_memset(op: _Memset) -> cost_model.InstructionCost:
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.dst.free, tensors=1)
    # NKI: zeroing a 16-bit float tile writes two elements per cycle.
    halved = op.value == 0 and op.dst.dtype in (pb.BFLOAT16, pb.FLOAT16)
    return cost_model.vector_cost(op.dst.free / 2 if halved else op.dst.free, tensors=1)


# tensor_copy: dst = src on the Vector or GpSimd engine: bit-exact for equal dtypes, else through FP32.

@dataclass(frozen=True, kw_only=True)
class _TensorCopy(Instruction):
    dst: View
    src: View
    engine: int


def _validate_tensor_copy(ctx: Context, msg: pb.TensorCopy) -> _TensorCopy:
    if msg.engine == pb.SCALAR:
        raise ctx.fail("the Scalar engine of NeuronCore-v2 copies with activation(COPY), not tensor_copy "
                       "(engine selection rule)")
    engine = ctx.engine(msg.engine, (pb.VECTOR, pb.GPSIMD))
    src = ctx.engine_view(msg.src, "src", engine)
    dst = ctx.engine_view(msg.dst, "dst", engine)
    ctx.same_shape(dst, src)
    return _TensorCopy(reads=(src,), writes=(dst,), flops=0, dst=dst, src=src, engine=engine)


def _execute_tensor_copy(op: _TensorCopy, env: Env) -> None:
    out = env[op.dst.name][op.dst.index]
    if op.src.dtype == op.dst.dtype:
        out[...] = read_view(env, op.src)
    else:
        store_fp32(out, read_fp32(env, op.src), op.dst.dtype)


def _cost_tensor_copy(op: _TensorCopy) -> cost_model.InstructionCost:
    # max(MIN_II, N) cycles on either engine (NKI ISA docs).
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.src.free, tensors=2)
    return cost_model.vector_cost(op.src.free, tensors=2)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("tensor_tensor", _validate_tensor_tensor, _execute_tensor_tensor, _cost_tensor_tensor),
    Opcode("tensor_scalar", _validate_tensor_scalar, _execute_tensor_scalar, _cost_tensor_scalar),
    Opcode("memset", _validate_memset, _execute_memset, _cost_memset),
    Opcode("tensor_copy", _validate_tensor_copy, _execute_tensor_copy, _cost_tensor_copy),
)
