"""Collective instructions (ref §4.6), each rank's checked on its own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.limits import HBM
from neurontools.daemon.isa.operands import Context, View, overlap
from neurontools.daemon.isa.instruction import Env, Instruction, Opcode, as_float32, is_int, store_fp32
from neurontools.daemon.isa.alu import alu_name, alu_names


# -- collectives (ref §4.6) -------------------------------------------------------------------------
# all_reduce, all_gather, reduce_scatter, send_recv and permute move HBM tensors between the subgraphs of
# one model. Here each rank's instruction is checked on its own; collectives/planning.py matches the ranks'
# instructions, checks the group rules and times them over the links, and collectives/rendezvous.py
# meets the ranks at run time and moves the data. They run on dedicated hardware: no FLOPs.

_REDUCTIONS: dict[int, np.ufunc] = {pb.ADD: np.add, pb.MAXIMUM: np.maximum, pb.MINIMUM: np.minimum}


@dataclass(frozen=True, kw_only=True)
class CollectiveOp(Instruction):
    """One rank's collective instruction, validated on its own. Fields a kind does not use are unset."""

    kind: str                      # the Instruction field: "all_reduce", "all_gather", ...
    index: int                     # its instruction index in the program
    dst: View | None              # None: a send_recv that only sends
    src: View | None              # None: a send_recv that only receives
    op: int = 0                    # pb.AluOp of a reduction
    axis: int = 0                  # all_gather, reduce_scatter
    shift: int = 0                 # permute
    group: tuple[int, ...] = ()    # NeuronCores in rank order; () = every subgraph of the model
    send_to: int | None = None
    recv_from: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} (instruction {self.index})"

    @property
    def reduce(self) -> np.ufunc:
        """The reduction, applied elementwise to FP32 arrays."""
        return _REDUCTIONS[self.op]

    def source(self, env: Env) -> np.ndarray:
        return env[self.src.name][self.src.index]

    def reduction_input(self, env: Env) -> np.ndarray:
        return as_float32(self.source(env))

    def deliver(self, env: Env, values: np.ndarray) -> None:
        """Writes values of dst's storage dtype, as they are (data movement)."""
        env[self.dst.name][self.dst.index] = values

    def deliver_reduced(self, env: Env, values: np.ndarray) -> None:
        """Writes FP32 results, rounded to dst's dtype (nearest even)."""
        store_fp32(env[self.dst.name][self.dst.index], values, self.dst.dtype)


def _collective_operand(ctx: Context, ref: pb.Ref, role: str) -> View:
    view = ctx.view(ref, role)
    if view.space != HBM:
        fix = ("store the tile to an OUTPUT parameter with dma_copy first" if role == "src"
               else "name an OUTPUT parameter and load it into the tile with dma_copy after")
        raise ctx.fail(f"{view}: collectives move HBM tensors (parameters and constants), not on-chip tiles "
                       f"(collective memory rule): {fix}")
    if role == "dst" and view.kind != "output parameter":
        raise ctx.fail(f"{view}: a collective writes its result into an OUTPUT parameter ({view.kind}s are "
                       "read-only)")
    return view


def _collective_pair(ctx: Context, dst_ref: pb.Ref, src_ref: pb.Ref) -> tuple[View, View]:
    dst, src = _collective_operand(ctx, dst_ref, "dst"), _collective_operand(ctx, src_ref, "src")
    if dst.dtype != src.dtype:
        raise ctx.fail(f"{dst} is {dtypes.NAMES[dst.dtype]} and {src} is {dtypes.NAMES[src.dtype]}; collectives "
                       "do not cast (collective dtype rule): cast with dma_copy first")
    return dst, src


def _reduction(ctx: Context, op: int, src: View) -> int:
    if op not in _REDUCTIONS:
        raise ctx.fail(f"op {alu_name(op)} cannot reduce across ranks; use one of: {alu_names(_REDUCTIONS)}")
    if is_int(src):
        raise ctx.fail(f"{src} is {dtypes.NAMES[src.dtype]}; collective reductions accumulate in FP32 and take "
                       "float tensors (collective dtype rule)")
    return op


def _group(ctx: Context, group: pb.ReplicaGroup) -> tuple[int, ...]:
    cores = tuple(group.core_ids)
    repeated = next((c for c in cores if cores.count(c) > 1), None)
    if repeated is not None:
        raise ctx.fail(f"group lists NeuronCore {repeated} twice; a rank is one NeuronCore")
    return cores


def _blocks(ctx: Context, whole: View, block: View, axis: int) -> None:
    """`whole` must be `block` repeated along `axis` (the count is the group's size, checked per model)."""
    if axis >= len(block.shape):
        raise ctx.fail(f"axis {axis}: {block} has {len(block.shape)} dimensions")
    others = [d for d in range(len(block.shape)) if d != axis]
    if (len(whole.shape) != len(block.shape) or any(whole.shape[d] != block.shape[d] for d in others)
            or whole.shape[axis] % block.shape[axis]):
        raise ctx.fail(f"{whole} must be {block} repeated along axis {axis}, once per rank "
                       f"(collective shape rule)")


def _validate_all_reduce(ctx: Context, msg: pb.AllReduce) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    ctx.same_shape(dst, src)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="all_reduce", index=ctx.index, dst=dst, src=src,
                        op=_reduction(ctx, msg.op, src), group=_group(ctx, msg.group))


def _validate_all_gather(ctx: Context, msg: pb.AllGather) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    _blocks(ctx, dst, src, msg.axis)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="all_gather", index=ctx.index, dst=dst, src=src,
                        axis=msg.axis, group=_group(ctx, msg.group))


def _validate_reduce_scatter(ctx: Context, msg: pb.ReduceScatter) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    _blocks(ctx, src, dst, msg.axis)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="reduce_scatter", index=ctx.index, dst=dst,
                        src=src, op=_reduction(ctx, msg.op, src), axis=msg.axis, group=_group(ctx, msg.group))


def _validate_permute(ctx: Context, msg: pb.Permute) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    ctx.same_shape(dst, src)
    if msg.shift == 0:
        raise ctx.fail("shift 0 moves nothing; rank r sends to rank (r + shift) mod R")
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="permute", index=ctx.index, dst=dst, src=src,
                        shift=msg.shift, group=_group(ctx, msg.group))


def _validate_send_recv(ctx: Context, msg: pb.SendRecv) -> CollectiveOp:
    sends, receives = msg.HasField("send_to"), msg.HasField("recv_from")
    if not (sends or receives):
        raise ctx.fail("neither send_to nor recv_from is set; a send_recv sends, receives or both")
    for present, ref, role, field in ((sends, msg.src, "src", "send_to"), (receives, msg.dst, "dst", "recv_from")):
        if present != bool(ref.name):
            raise ctx.fail(f"{role} and {field} go together: give both or neither")
    src = _collective_operand(ctx, msg.src, "src") if sends else None
    dst = _collective_operand(ctx, msg.dst, "dst") if receives else None
    if src is not None and dst is not None and overlap(src, dst):
        raise ctx.fail(f"{dst} overlaps {src}; an exchange receives into a buffer of its own (send_recv "
                       "buffer rule)")
    return CollectiveOp(reads=(src,) if src else (), writes=(dst,) if dst else (), flops=0, kind="send_recv",
                        index=ctx.index, dst=dst, src=src, send_to=msg.send_to if sends else None,
                        recv_from=msg.recv_from if receives else None)


# The instructions of this family (instruction.Opcode: validate, execute, cost).
OPCODES = (
    Opcode("all_reduce", _validate_all_reduce),
    Opcode("all_gather", _validate_all_gather),
    Opcode("reduce_scatter", _validate_reduce_scatter),
    Opcode("send_recv", _validate_send_recv),
    Opcode("permute", _validate_permute),
)
