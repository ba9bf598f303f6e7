"""dma_copy: moves data between HBM and SBUF."""

from __future__ import annotations

import math
from dataclasses import dataclass

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.limits import HBM, PSUM
from neurontools.daemon.isa.operands import Context, View
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, as_float32, read_view


# dma_copy: dst = src, cast through float32 when the dtypes differ.
# Shape rule: the views have the same shape, or -- when at least one side is a tile -- the same number of
# elements, moved in C order (a reshape). HBM-to-HBM copies must match shapes exactly.

@dataclass(frozen=True, kw_only=True)
class _DmaCopy(Instruction):
    dst: View
    src: View
    nbytes: int
    descriptors: int


def _validate_dma_copy(ctx: Context, msg: pb.DmaCopy) -> _DmaCopy:
    dst, src = ctx.view(msg.dst, "dst"), ctx.view(msg.src, "src")
    for view in (dst, src):
        if view.space == PSUM:
            raise ctx.fail(f"{view}: DMA engines move data between HBM and SBUF and cannot access PSUM "
                           "(DMA memory access rule): copy it to an SBUF tile with tensor_copy first")
    if dst.kind == "input parameter":
        raise ctx.fail(f"{dst}: writing into an INPUT parameter is not allowed (inputs are read-only): "
                       "declare it OUTPUT")
    if dst.kind == "constant":
        raise ctx.fail(f"{dst}: writing into a constant is not allowed (constants are read-only)")
    if dst.shape != src.shape:
        if dst.space == HBM and src.space == HBM:
            raise ctx.fail(f"{dst} and {src} must have the same shape (HBM-to-HBM copy shape rule)")
        if dst.size != src.size:
            raise ctx.fail(f"{dst} has {dst.size} elements and {src} has {src.size}; a copy moves the same "
                           "number of elements (DMA shape rule)")
    # One descriptor per contiguous piece that is contiguous on both sides.
    size, a, b = dst.size, dst.run_length, src.run_length
    descriptors = size // a + size // b - size // math.lcm(a, b)
    nbytes = size * max(dst.np_dtype.itemsize, src.np_dtype.itemsize)
    return _DmaCopy(reads=(src,), writes=(dst,), flops=0, dst=dst, src=src, nbytes=nbytes,
                    descriptors=descriptors)


def _execute_dma_copy(op: _DmaCopy, env: Env) -> None:
    values = read_view(env, op.src)
    if op.src.dtype != op.dst.dtype:
        values = dtypes.cast_to(as_float32(values), op.dst.dtype)
    target = op.dst.array(env)
    target[...] = values.reshape(target.shape)


def _cost_dma_copy(op: _DmaCopy) -> cost_model.InstructionCost:
    # A store (SBUF -> HBM) and a later load of what it stored are what fusion removes (cost_model.Schedule).
    # A strided store does not fill its bounding box, so it leaves nothing a later load could fuse with.
    moves = ("store" if op.dst.space == HBM and op.src.space != HBM and not op.dst.pattern else
             "load" if op.src.space == HBM and op.dst.space != HBM else "")
    return cost_model.dma_cost(op.nbytes, op.descriptors, HBM in (op.dst.space, op.src.space), moves=moves)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("dma_copy", _validate_dma_copy, _execute_dma_copy, _cost_dma_copy),
)
