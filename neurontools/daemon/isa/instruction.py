"""What every instruction kind shares: the validated-instruction base, its opcode entry (validate,
execute, cost) and the numeric helpers of the FP32 engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.operands import Context, View


# Each kind: a dataclass for the validated instruction, validate(ctx, message) -> it,
# execute(it, env) computing with numpy on the arrays named in env, cost(it) -> InstructionCost.

Env = dict[str | int, np.ndarray]  # arrays by name; int keys hold fused matmul results during a run


@dataclass(frozen=True, kw_only=True)
class Instruction:
    reads: tuple[View, ...]
    writes: tuple[View, ...]
    flops: int


def as_float32(values: np.ndarray) -> np.ndarray:
    """The engines compute in FP32; float32 arrays (float tiles in a run, tfloat32) are used as they are."""
    return values if values.dtype == np.float32 else values.astype(np.float32)


def store_fp32(dst: np.ndarray, values: np.ndarray, dtype: int) -> None:
    """Writes FP32 results into `dst` of `dtype`: round to nearest even, integers saturate."""
    dst[...] = values if dtype == pb.FLOAT32 else dtypes.cast_to(values, dtype)


def as_bits(values: np.ndarray) -> np.ndarray:
    """Integers as their unsigned bit patterns, widened: bitvec ops see bits (logical right shift)."""
    return values.view(np.dtype(f"u{values.dtype.itemsize}")).astype(np.uint64)


def store_bits(dst: np.ndarray, values: np.ndarray) -> None:
    """Writes bit patterns (or exact integers) into an integer `dst`, wrapping to its width."""
    dst[...] = values.astype(dst.dtype)


def read_view(env: Env, view: View) -> np.ndarray:
    """The operand's values in the view's shape (a tile read through free_shape flattened to [P, F])."""
    if view.free_shape:
        return view.array(env).reshape(view.shape)
    return env[view.name][view.index]


def read_fp32(env: Env, view: View) -> np.ndarray:
    return as_float32(read_view(env, view))


def is_int(view: View) -> bool:
    return not dtypes.is_float(view.dtype)


@dataclass(frozen=True)
class Opcode:
    label: str
    validate: Callable[[Context, Any], Instruction]
    # None for collectives: they run at a rendezvous of the ranks and are timed for the whole model.
    execute: Callable[[Any, Env], None] | None = None
    cost: Callable[[Any], cost_model.InstructionCost] | None = None
