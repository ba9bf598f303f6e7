"""Programs for one NeuronCore-v2: validation at load time, the compiled form, and execution.

compile_program() checks a pb.Program against the hardware and format rules (names, shapes, on-chip
capacity, what each engine may touch, instruction limits) and raises ProgramError naming the rule, the
instruction, the operand and its shape. The result runs on numpy engines (FP32 math, dtype-faithful
storage via ml_dtypes) and carries the cost model's estimate, computed once: timing depends only on
shapes. Each instruction kind is one entry of _OPCODES with its own validate, execute and cost functions.
The instruction set follows the NKI ISA of NeuronCore-v2 (ref §3.4); docs/timing-model.md lists each
instruction's rules, numerics and cost.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Generator, Protocol

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon import cost_model, custom_ops
from neurontools.daemon.activation_functions import FUNCTIONS

# -- hardware and format limits of one NeuronCore-v2 (ref §2.3 on-chip memory, §3.2 tile rules) ----
PARTITIONS = 128                      # SBUF and PSUM partitions; tile P <= 128 (TC#1)
SBUF_PARTITION_BYTES = 192 * 1024     # SBUF: 128 partitions x 192 KiB
PSUM_BANK_BYTES = 2 * 1024            # PSUM: 8 banks x 2 KiB per partition; a tile fits one bank (TC#2)
PSUM_BANKS = 8
MATMUL_MAX_STATIONARY_FREE = 128      # M <= 128 (gemm_stationary_fmax, TC#3)
MATMUL_MAX_MOVING_FREE = 512          # N <= 512 (gemm_moving_fmax, TC#3)
ENGINE_MAX_FREE = 64 * 1024           # Vector/Scalar free size per instruction (ref §3.2)
TENSOR_TRANSPOSE_MAX = 128            # nc_transpose on the Tensor engine: up to 128 x 128 (ref §3.4)
VECTOR_TRANSPOSE_MAX = 32             # ... on the Vector engine: up to 32 x 32
BN_STATS_MAX_FREE = 512               # bn_stats_fmax (ref §3.2)
BN_STATS_WIDTH = 6                    # bn_stats output per partition: (count, mean, var*count) x even/odd
HBM_MAX_RANK = 4

_MATMUL_DTYPES = (pb.FLOAT32, pb.TFLOAT32, pb.BFLOAT16, pb.FLOAT16, pb.FLOAT8_E4M3, pb.FLOAT8_E5M2)
_FP32_PATH = (pb.FLOAT32, pb.TFLOAT32)

_HBM, _SBUF, _PSUM = "HBM", "SBUF", "PSUM"
_ENGINE_NAMES = {pb.TENSOR: "Tensor", pb.VECTOR: "Vector", pb.SCALAR: "Scalar", pb.GPSIMD: "GpSimd",
                 pb.DMA: "DMA"}
# What each compute engine reads and writes; the Tensor engine's rule is per operand (SBUF in, PSUM out).
_ENGINE_SPACES = {pb.VECTOR: (_SBUF, _PSUM), pb.SCALAR: (_SBUF, _PSUM), pb.GPSIMD: (_SBUF,)}


class ProgramError(ValueError):
    """A program breaks a hardware or format rule. The message names the rule, the instruction index and
    opcode, the operand and its shape, e.g.
    'instruction 3 (matmul): moving SBUF tile "x" [8, 1024] has N=1024; the Tensor engine takes at most 512
    moving columns (moving free size <= 512): split N'."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    kind: int            # pb.INPUT or pb.OUTPUT; 0 for constants
    shape: tuple[int, ...]
    dtype: int           # pb.DType
    np_dtype: np.dtype   # storage dtype
    nbytes: int


@dataclass
class RunResult:
    device_time_ns: int                 # modeled makespan of the program on one NeuronCore-v2
    engine_busy_ns: dict[int, int]      # pb.Engine -> modeled busy ns (TENSOR, VECTOR, SCALAR, GPSIMD, DMA)
    engine_instructions: dict[int, int]  # pb.Engine -> instruction count
    flops: int                          # arithmetic done, per instruction kind (docs/timing-model.md)
    nonfinite_outputs: list[str]        # OUTPUT parameters containing NaN/Inf after the run


@dataclass(frozen=True)
class _TileSpec:
    name: str
    buffer: int
    shape: tuple[int, int]
    dtype: int
    np_dtype: np.dtype

    @property
    def bytes_per_partition(self) -> int:
        return self.shape[1] * self.np_dtype.itemsize

    @property
    def run_dtype(self) -> np.dtype:
        """How a run holds the tile: float tiles as float32 holding values of their dtype (exactly
        representable), so engines read them without conversion; integer tiles as stored."""
        return np.dtype(np.float32) if dtypes.is_float(self.dtype) else self.np_dtype


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class _View:
    """A validated Ref: a rectangular region of a parameter, constant or tile."""

    role: str                 # the operand's role in its instruction: "dst", "src", "stationary", ...
    name: str
    space: str                # _HBM, _SBUF or _PSUM
    kind: str                 # "input parameter", "constant", "SBUF tile", ...
    declared: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]
    dtype: int
    np_dtype: np.dtype
    # Derived from bounds once (compile speed): the view's shape, element count, numpy index, region.
    shape: tuple[int, ...] = dataclasses.field(init=False)
    size: int = dataclasses.field(init=False)
    index: tuple[slice, ...] = dataclasses.field(init=False)
    region: cost_model.Region = dataclasses.field(init=False)
    read_only: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        shape = tuple(stop - start for start, stop in self.bounds)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "size", math.prod(shape))
        object.__setattr__(self, "index", tuple(slice(start, stop) for start, stop in self.bounds))
        object.__setattr__(self, "region", (self.name, tuple(v for bound in self.bounds for v in bound)))
        # Inputs and constants are never written, so reading them orders nothing (compile speed).
        object.__setattr__(self, "read_only", self.kind in ("input parameter", "constant"))

    @property
    def partitions(self) -> int:
        return self.shape[0]

    @property
    def free(self) -> int:
        """Elements per partition (tiles are [P, F])."""
        return self.shape[1]

    @property
    def run_length(self) -> int:
        """Elements in each contiguous run of the view in C order (a tile partition is its own run)."""
        if self.space != _HBM:
            return self.free
        run = 1
        for (start, stop), size in zip(reversed(self.bounds), reversed(self.declared)):
            run *= stop - start
            if stop - start != size:
                break
        return run

    def __str__(self) -> str:
        text = f'{self.role} {self.kind} "{self.name}" {_fmt_shape(self.declared)}'
        if self.shape != self.declared:
            window = ", ".join(
                ":" if (start, stop) == (0, size) else f"{start}:{stop}"
                for (start, stop), size in zip(self.bounds, self.declared))
            text += f" view [{window}] = {_fmt_shape(self.shape)}"
        return text


class _Declarations:
    """Parameters, constants and tiles: one namespace, validated shapes, dtypes and on-chip capacity."""

    def __init__(self, program: pb.Program) -> None:
        self.parameters: dict[str, ParameterSpec] = {}
        self.constants: list[ParameterSpec] = []
        self.constant_data: dict[str, bytes] = {}
        self.tiles: dict[str, _TileSpec] = {}
        self._all: dict[str, ParameterSpec | _TileSpec] = {}
        self.views: dict[tuple, _View] = {}  # validated operands, see _Context.view
        for i, param in enumerate(program.parameters):
            where = f'parameter {i} "{param.name}"'
            if param.kind not in (pb.INPUT, pb.OUTPUT):
                raise ProgramError(f"{where}: kind must be INPUT or OUTPUT")
            spec = self._hbm_spec(where, param.name, param.kind, param.shape, param.dtype)
            self.parameters[spec.name] = spec
        for i, const in enumerate(program.constants):
            where = f'constant {i} "{const.name}"'
            spec = self._hbm_spec(where, const.name, 0, const.shape, const.dtype)
            if const.data and const.tensor_id:
                raise ProgramError(f"{where}: has both data and tensor_id; give the bytes one way only")
            if const.data:
                if len(const.data) != spec.nbytes:
                    raise ProgramError(
                        f"{where}: data holds {len(const.data)} bytes but {dtypes.NAMES[spec.dtype]}"
                        f"{_fmt_shape(spec.shape)} needs {spec.nbytes}")
                self.constant_data[spec.name] = const.data
            self.constants.append(spec)
        for i, tile in enumerate(program.tiles):
            self._add_tile(f'tile {i} "{tile.name}"', tile)
        self._check_capacity()

    def lookup(self, name: str) -> ParameterSpec | _TileSpec | None:
        return self._all.get(name)

    def names(self) -> list[str]:
        return list(self._all)

    def _declare(self, where: str, name: str, decl: ParameterSpec | _TileSpec) -> None:
        if not name:
            raise ProgramError(f"{where}: empty name; every parameter, constant and tile needs a name")
        if name in self._all:
            raise ProgramError(
                f"{where}: name already declared; parameters, constants and tiles share one namespace")
        self._all[name] = decl

    @staticmethod
    def _dtype(where: str, dtype: int) -> np.dtype:
        try:
            return dtypes.storage_dtype(dtype)
        except dtypes.UnknownDType as exc:
            raise ProgramError(f"{where}: dtype must be set: {exc}") from None

    def _hbm_spec(self, where: str, name: str, kind: int, shape, dtype: int) -> ParameterSpec:
        shape = tuple(shape)
        if not 1 <= len(shape) <= HBM_MAX_RANK or min(shape) < 1:
            raise ProgramError(
                f"{where}: shape {_fmt_shape(shape)} is invalid; HBM tensors have rank 1 to {HBM_MAX_RANK} "
                "and every dimension >= 1")
        np_dtype = self._dtype(where, dtype)
        spec = ParameterSpec(name, kind, shape, dtype, np_dtype, math.prod(shape) * np_dtype.itemsize)
        self._declare(where, name, spec)
        return spec

    def _add_tile(self, where: str, tile: pb.Tile) -> None:
        shape = tuple(tile.shape)
        if tile.buffer not in (pb.SBUF, pb.PSUM):
            raise ProgramError(f"{where}: buffer must be SBUF or PSUM")
        buffer = _SBUF if tile.buffer == pb.SBUF else _PSUM
        if len(shape) != 2 or min(shape) < 1:
            raise ProgramError(
                f"{where}: {buffer} tile shape {_fmt_shape(shape)} is invalid; a tile is [P, F] "
                "(partitions, free size), both >= 1")
        if shape[0] > PARTITIONS:
            raise ProgramError(
                f"{where}: {buffer} tile {_fmt_shape(shape)} has {shape[0]} partitions; on-chip memory has "
                f"{PARTITIONS} (partition dimension <= {PARTITIONS}): split it into tiles of at most "
                f"{PARTITIONS} partitions")
        np_dtype = self._dtype(where, tile.dtype)
        spec = _TileSpec(tile.name, tile.buffer, shape, tile.dtype, np_dtype)
        if tile.buffer == pb.PSUM:
            if tile.dtype != pb.FLOAT32:
                raise ProgramError(
                    f"{where}: PSUM tile {_fmt_shape(shape)} is {dtypes.NAMES[tile.dtype]}; PSUM holds float32 "
                    "only (the Tensor engine accumulates in FP32): declare it float32")
            if spec.bytes_per_partition > PSUM_BANK_BYTES:
                raise ProgramError(
                    f"{where}: PSUM tile {_fmt_shape(shape)} needs {spec.bytes_per_partition} bytes per "
                    f"partition; a PSUM tile must fit one {PSUM_BANK_BYTES // 1024} KiB bank "
                    f"(F <= {PSUM_BANK_BYTES // 4} float32): split the free dimension")
        self._declare(where, tile.name, spec)
        self.tiles[spec.name] = spec

    def _check_capacity(self) -> None:
        sbuf = sorted((t for t in self.tiles.values() if t.buffer == pb.SBUF),
                      key=lambda t: -t.bytes_per_partition)
        used = sum(t.bytes_per_partition for t in sbuf)
        if used > SBUF_PARTITION_BYTES:
            largest = ", ".join(f'"{t.name}" {_fmt_kib(t.bytes_per_partition)}' for t in sbuf[:4])
            raise ProgramError(
                f"SBUF capacity: the SBUF tiles need {_fmt_kib(used)} per partition ({largest}"
                f"{', ...' if len(sbuf) > 4 else ''}); a NeuronCore-v2 has {_fmt_kib(SBUF_PARTITION_BYTES)} "
                f"per partition ({PARTITIONS} x 192 KiB = 24 MiB): reuse tiles or shrink their free dimension")
        psum = sorted((t for t in self.tiles.values() if t.buffer == pb.PSUM),
                      key=lambda t: -t.bytes_per_partition)
        banks = psum_banks_needed([t.bytes_per_partition for t in psum])
        if banks > PSUM_BANKS:
            largest = ", ".join(f'"{t.name}" {t.bytes_per_partition} B' for t in psum[:4])
            raise ProgramError(
                f"PSUM capacity: the PSUM tiles need {banks} banks of 2 KiB per partition ({largest}"
                f"{', ...' if len(psum) > 4 else ''}); a NeuronCore-v2 has {PSUM_BANKS} banks (16 KiB per "
                "partition) and a tile cannot straddle two banks: reuse PSUM tiles across accumulation groups")


def psum_banks_needed(bytes_per_partition: list[int]) -> int:
    """PSUM banks that tiles of these sizes occupy: first-fit decreasing into 2 KiB banks (a tile may
    share a bank but never straddle two). The kernel builder tracks capacity with the same rule."""
    banks: list[int] = []  # free bytes left in each bank
    for need in sorted(bytes_per_partition, reverse=True):
        fit = next((i for i, left in enumerate(banks) if left >= need), None)
        if fit is None:
            banks.append(PSUM_BANK_BYTES - need)
        else:
            banks[fit] -= need
    return len(banks)


def _fmt_kib(nbytes: int) -> str:
    return f"{nbytes / 1024:g} KiB"


class _Context:
    """Validation of one instruction: resolves Refs and raises errors prefixed with where they are."""

    def __init__(self, decls: _Declarations, index: int, label: str) -> None:
        self.decls = decls
        self.index = index
        self.label = label

    def fail(self, message: str) -> ProgramError:
        return ProgramError(f"instruction {self.index} ({self.label}): {message}")

    def view(self, ref: pb.Ref, role: str) -> _View:
        # Loop bodies repeat the same operands: views are immutable, so each distinct one is built once.
        key = (role, ref.SerializeToString())  # the encoding is canonical, and fast to get
        view = self.decls.views.get(key)
        if view is None:
            view = self.decls.views[key] = self._new_view(ref, role)
        return view

    def _new_view(self, ref: pb.Ref, role: str) -> _View:
        if not ref.name:
            raise self.fail(f"{role}: operand missing (empty name)")
        decl = self.decls.lookup(ref.name)
        if decl is None:
            known = self.decls.names()
            listing = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise self.fail(f'{role} refers to "{ref.name}", which is not declared '
                            f"(declared: {listing or 'nothing'})")
        if isinstance(decl, _TileSpec):
            space = _SBUF if decl.buffer == pb.SBUF else _PSUM
            kind = f"{space} tile"
        else:
            space = _HBM
            kind = {pb.INPUT: "input parameter", pb.OUTPUT: "output parameter"}.get(decl.kind, "constant")
        shape = decl.shape
        if len(ref.slices) > len(shape):
            raise self.fail(f'{role} {kind} "{ref.name}" {_fmt_shape(shape)} has rank {len(shape)} but '
                            f"{len(ref.slices)} slices were given")
        bounds = []
        for dim, size in enumerate(shape):
            if dim < len(ref.slices):
                piece = ref.slices[dim]
                start, stop = piece.start, piece.stop or size
                if stop > size or start >= stop:
                    problem = "is empty" if start >= stop and stop <= size else "is out of range"
                    raise self.fail(
                        f'{role} {kind} "{ref.name}" {_fmt_shape(shape)}: slice [{piece.start}:{piece.stop}] '
                        f"of dimension {dim} {problem} (dimension {dim} has {size} elements; "
                        "slices are [start, stop) with stop 0 meaning the end)")
                bounds.append((start, stop))
            else:
                bounds.append((0, size))
        return _View(role, ref.name, space, kind, shape, tuple(bounds), decl.dtype, decl.np_dtype)

    def engine_view(self, ref: pb.Ref, role: str, engine: int, spaces: tuple[str, ...] | None = None) -> _View:
        """A tile operand of a compute engine: in an allowed memory, at a legal partition window."""
        view = self.view(ref, role)
        name = _ENGINE_NAMES[engine]
        spaces = spaces or _ENGINE_SPACES[engine]
        if view.space not in spaces:
            writes = role in ("dst", "reduce_dst") or role.startswith("output ")
            reads = "writes" if writes else "reads"
            allowed = " or ".join(spaces)
            if view.space == _HBM:
                fix = ("write an SBUF tile and store it with dma_copy" if writes
                       else "load it into an SBUF tile with dma_copy first")
            elif view.space == _PSUM and engine == pb.GPSIMD:
                fix = "the GpSimd engine cannot access PSUM: use the Vector engine or an SBUF tile"
            elif view.space == _PSUM:
                fix = "copy it to SBUF with tensor_copy first"
            else:
                fix = "write a PSUM tile instead"
            raise self.fail(f"{view}: the {name} engine {reads} {allowed} only ({name} engine memory "
                            f"access rule): {fix}")
        start, stop = view.bounds[0]
        count = stop - start
        allowed_starts = (0,) if count > 64 else (0, 64) if count > 32 else (0, 32, 64, 96)
        if start not in allowed_starts:
            group = "more than 64" if count > 64 else "33 to 64" if count > 32 else "1 to 32"
            raise self.fail(
                f"{view} starts at partition {start}; an engine access covering {group} partitions must start "
                f"at partition {' or '.join(str(s) for s in allowed_starts)} (partition start rule)")
        if view.free > ENGINE_MAX_FREE:
            raise self.fail(f"{view} has {view.free} elements per partition; the {name} engine processes at "
                            f"most {ENGINE_MAX_FREE} per instruction (free size limit): split the free dimension")
        return view

    def same_shape(self, first: _View, second: _View) -> None:
        if first.shape != second.shape:
            raise self.fail(f"{first} and {second} must have the same shape (elementwise shape rule)")

    def per_partition(self, view: _View, data: _View, rule: str) -> None:
        """`view` must hold one value per partition of `data`: [P, 1]."""
        if view.shape != (data.partitions, 1):
            raise self.fail(f"{view} must be [P, 1] = {_fmt_shape((data.partitions, 1))}, one value per "
                            f"partition of {data} ({rule})")

    def engine(self, requested: int, allowed: tuple[int, ...]) -> int:
        """The engine the instruction runs on: `requested`, or allowed[0] when unspecified."""
        if requested == pb.ENGINE_UNSPECIFIED:
            return allowed[0]
        if requested not in allowed:
            name = pb.Engine.Name(requested) if requested in pb.Engine.values() else str(requested)
            raise self.fail(f"engine {name} cannot run {self.label}; use "
                            + " or ".join(pb.Engine.Name(e) for e in allowed) + " (engine selection rule)")
        return requested


# -- instructions -----------------------------------------------------------------------------------
# Each kind: a dataclass for the validated instruction, validate(ctx, message) -> it,
# execute(it, env) computing with numpy on the arrays named in env, cost(it) -> InstructionCost.

Env = dict[str | int, np.ndarray]  # arrays by name; int keys hold fused matmul results during a run


@dataclass(frozen=True, kw_only=True)
class _Instruction:
    reads: tuple[_View, ...]
    writes: tuple[_View, ...]
    flops: int


def _as_float32(values: np.ndarray) -> np.ndarray:
    """The engines compute in FP32; float32 arrays (float tiles in a run, tfloat32) are used as they are."""
    return values if values.dtype == np.float32 else values.astype(np.float32)


def _store(dst: np.ndarray, values: np.ndarray, dtype: int) -> None:
    """Writes FP32 results into `dst` of `dtype`: round to nearest even, integers saturate."""
    dst[...] = values if dtype == pb.FLOAT32 else dtypes.cast_to(values, dtype)


def _bits(values: np.ndarray) -> np.ndarray:
    """Integers as their unsigned bit patterns, widened: bitvec ops see bits (logical right shift)."""
    return values.view(np.dtype(f"u{values.dtype.itemsize}")).astype(np.uint64)


def _store_bits(dst: np.ndarray, values: np.ndarray) -> None:
    """Writes bit patterns (or exact integers) into an integer `dst`, wrapping to its width."""
    dst[...] = values.astype(dst.dtype)


def _read(env: Env, view: _View) -> np.ndarray:
    return env[view.name][view.index]


def _fp32(env: Env, view: _View) -> np.ndarray:
    return _as_float32(env[view.name][view.index])


def _is_int(view: _View) -> bool:
    return not dtypes.is_float(view.dtype)


# -- ALU operations (ref §3.4 nki-aluop table) ------------------------------------------------------

def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """Comparisons and logical ops give 1.0 or 0.0 in the FP32 datapath."""
    return lambda a, b: fn(a, b).astype(np.float32)


# Arithmetic ops: FP32 math (or exact int64 math on GpSimd for int32 tiles).
_ARITHMETIC: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
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
_BITVEC: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    pb.BITWISE_AND: np.bitwise_and, pb.BITWISE_OR: np.bitwise_or, pb.BITWISE_XOR: np.bitwise_xor,
    pb.LEFT_SHIFT: lambda a, b: np.where(b < 64, np.left_shift(a, np.minimum(b, 63)), 0),
    pb.RIGHT_SHIFT: lambda a, b: np.where(b < 64, np.right_shift(a, np.minimum(b, 63)), 0),
}
_COMPARISONS = (pb.IS_EQUAL, pb.NOT_EQUAL, pb.IS_GT, pb.IS_GE, pb.IS_LT, pb.IS_LE)
# Exact on GpSimd's integer datapath (the rest go through FP32 there too).
_INTEGER_EXACT = (pb.ADD, pb.SUBTRACT, pb.MULTIPLY, pb.MAXIMUM, pb.MINIMUM, pb.ABS_MAX, pb.ABS_MIN,
                  *_COMPARISONS)
_INT32 = (pb.INT32, pb.UINT32)


def _alu_name(op: int) -> str:
    return pb.AluOp.Name(op) if op in pb.AluOp.values() else str(op)


def _names(ops) -> str:
    return ", ".join(_alu_name(o) for o in ops)


def _binary_op(ctx: _Context, op: int, role: str) -> tuple[Callable[..., np.ndarray], bool]:
    """An elementwise ALU op and whether it is bitvec."""
    if op in _ARITHMETIC:
        return _ARITHMETIC[op], False
    if op in _BITVEC:
        return _BITVEC[op], True
    raise ctx.fail(f"{role} {_alu_name(op)} is not an elementwise op; use one of: "
                   + _names((*_ARITHMETIC, *_BITVEC)))


def _require_integers(ctx: _Context, op: int, views: tuple[_View, ...]) -> None:
    for view in views:
        if not _is_int(view):
            raise ctx.fail(f"{view} is {dtypes.NAMES[view.dtype]}; bitvec op {_alu_name(op)} works on integer "
                           "tiles only (bitvec dtype rule)")


# Numeric modes of an elementwise instruction: how operands are read and results written.
_FLOAT, _EXACT_INT, _BITVEC_MODE = "float", "int", "bits"


def _load(env: Env, view: _View, mode: str) -> np.ndarray:
    values = env[view.name][view.index]
    if mode == _FLOAT:
        return _as_float32(values)
    return _bits(values) if mode == _BITVEC_MODE else values.astype(np.int64)


def _save(env: Env, view: _View, values: np.ndarray, mode: str) -> None:
    if mode == _FLOAT:
        _store(env[view.name][view.index], values, view.dtype)
    else:
        _store_bits(env[view.name][view.index], values)


# dma_copy: dst = src, cast through float32 when the dtypes differ.
# Shape rule: the views have the same shape, or -- when at least one side is a tile -- the same number of
# elements, moved in C order (a reshape). HBM-to-HBM copies must match shapes exactly.

@dataclass(frozen=True, kw_only=True)
class _DmaCopy(_Instruction):
    dst: _View
    src: _View
    nbytes: int
    descriptors: int


def _validate_dma_copy(ctx: _Context, msg: pb.DmaCopy) -> _DmaCopy:
    dst, src = ctx.view(msg.dst, "dst"), ctx.view(msg.src, "src")
    for view in (dst, src):
        if view.space == _PSUM:
            raise ctx.fail(f"{view}: DMA engines move data between HBM and SBUF and cannot access PSUM "
                           "(DMA memory access rule): copy it to an SBUF tile with tensor_copy first")
    if dst.kind == "input parameter":
        raise ctx.fail(f"{dst}: writing into an INPUT parameter is not allowed (inputs are read-only): "
                       "declare it OUTPUT")
    if dst.kind == "constant":
        raise ctx.fail(f"{dst}: writing into a constant is not allowed (constants are read-only)")
    if dst.shape != src.shape:
        if dst.space == _HBM and src.space == _HBM:
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
    values = _read(env, op.src)
    if op.src.dtype != op.dst.dtype:
        values = dtypes.cast_to(_as_float32(values), op.dst.dtype)
    env[op.dst.name][op.dst.index] = values.reshape(op.dst.shape)


def _cost_dma_copy(op: _DmaCopy) -> cost_model.InstructionCost:
    return cost_model.dma_cost(op.nbytes, op.descriptors, _HBM in (op.dst.space, op.src.space))


# matmul: dst[M, N] (=|+=) stationary[K, M].T @ moving[K, N], FP32 accumulation in PSUM.

@dataclass(frozen=True, kw_only=True)
class _Matmul(_Instruction):
    dst: _View
    stationary: _View
    moving: _View
    accumulate: bool
    fp32: bool


def _tensor_engine_dtype(ctx: _Context, view: _View) -> None:
    if view.dtype not in _MATMUL_DTYPES:
        raise ctx.fail(f"{view} is {dtypes.NAMES[view.dtype]}; the Tensor engine multiplies float8, "
                       "bfloat16, float16, tfloat32 or float32 (matmul dtype rule)")


def _validate_matmul(ctx: _Context, msg: pb.Matmul) -> _Matmul:
    sbuf = (_SBUF,)
    stationary = ctx.engine_view(msg.stationary, "stationary", pb.TENSOR, sbuf)
    moving = ctx.engine_view(msg.moving, "moving", pb.TENSOR, sbuf)
    dst = ctx.engine_view(msg.dst, "dst", pb.TENSOR, (_PSUM,))
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
        raise ctx.fail(f"{dst} must be [M, N] = {_fmt_shape((m, n))} for {stationary} and {moving} "
                       "(matmul shape rule)")
    for view in (stationary, moving):
        _tensor_engine_dtype(ctx, view)
    if (stationary.dtype in _FP32_PATH) != (moving.dtype in _FP32_PATH):
        raise ctx.fail(f"{stationary} is {dtypes.NAMES[stationary.dtype]} and {moving} is "
                       f"{dtypes.NAMES[moving.dtype]}; float32/tfloat32 inputs pair only with float32/tfloat32 "
                       "(matmul dtype rule): cast one side")
    # The accumulating read of dst happens near memory in PSUM: for scheduling it is a write only.
    return _Matmul(reads=(stationary, moving), writes=(dst,), flops=2 * m * n * k, dst=dst,
                   stationary=stationary, moving=moving, accumulate=msg.accumulate,
                   fp32=pb.FLOAT32 in (stationary.dtype, moving.dtype))


def _matmul_operand(values: np.ndarray, dtype: int) -> np.ndarray:
    # tfloat32 storage may hold full float32 bits (copied in unrounded): the PE array sees 10 mantissa bits.
    return dtypes.round_tfloat32(values) if dtype == pb.TFLOAT32 else _as_float32(values)


def _execute_matmul(op: _Matmul, env: Env) -> None:
    stationary = _matmul_operand(_read(env, op.stationary), op.stationary.dtype)
    moving = _matmul_operand(_read(env, op.moving), op.moving.dtype)
    out = env[op.dst.name][op.dst.index]
    if op.accumulate:
        out += stationary.T @ moving
    else:
        np.matmul(stationary.T, moving, out=out)


def _cost_matmul(op: _Matmul) -> cost_model.InstructionCost:
    return cost_model.matmul_cost(op.moving.free, op.fp32)


# transpose: dst[F, P] = src[P, F]; the Tensor engine does it as a matmul with the identity into PSUM,
# the Vector engine moves 32 x 32 blocks.

@dataclass(frozen=True, kw_only=True)
class _Transpose(_Instruction):
    dst: _View
    src: _View
    engine: int


def _validate_transpose(ctx: _Context, msg: pb.Transpose) -> _Transpose:
    engine = ctx.engine(msg.engine, (pb.TENSOR, pb.VECTOR))
    if engine == pb.TENSOR:
        src = ctx.engine_view(msg.src, "src", pb.TENSOR, (_SBUF,))
        dst = ctx.engine_view(msg.dst, "dst", pb.TENSOR, (_PSUM,))
        _tensor_engine_dtype(ctx, src)
        limit = TENSOR_TRANSPOSE_MAX
    else:
        src = ctx.engine_view(msg.src, "src", pb.VECTOR)
        dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
        limit = VECTOR_TRANSPOSE_MAX
    if max(src.shape) > limit:
        raise ctx.fail(f"{src} is larger than {limit} x {limit}; the {_ENGINE_NAMES[engine]} engine transposes "
                       f"at most {limit} x {limit} (transpose size rule)"
                       + (": use the Tensor engine" if engine == pb.VECTOR else ""))
    if dst.shape != src.shape[::-1]:
        raise ctx.fail(f"{dst} must be {_fmt_shape(src.shape[::-1])}, the transpose of {src} "
                       "(transpose shape rule)")
    # Data movement, not arithmetic a user asked for: no FLOPs (also on the Tensor engine).
    return _Transpose(reads=(src,), writes=(dst,), flops=0, dst=dst, src=src, engine=engine)


def _execute_transpose(op: _Transpose, env: Env) -> None:
    out = env[op.dst.name][op.dst.index]
    if op.engine == pb.TENSOR:
        x = _matmul_operand(_read(env, op.src), op.src.dtype)
        # x.T @ I: exact for finite data; Inf/NaN spread over their row, as on NC-v2 (ref §3.4).
        out[...] = x.T if np.isfinite(x).all() else x.T @ np.eye(x.shape[0], dtype=np.float32)
    elif op.src.dtype == op.dst.dtype:
        out[...] = _read(env, op.src).T
    else:
        _store(out, _fp32(env, op.src).T, op.dst.dtype)


def _cost_transpose(op: _Transpose) -> cost_model.InstructionCost:
    if op.engine == pb.TENSOR:
        # The data is the stationary operand; the moving operand is the P x P identity: N = P.
        return cost_model.matmul_cost(op.src.partitions, op.src.dtype == pb.FLOAT32)
    return cost_model.vector_cost(op.src.free, tensors=2)


# activation: dst = f(src * scale + bias) on the Scalar engine; scale is a constant or a [P, 1] float32
# tile, bias a [P, 1] tile; reduce_dst optionally receives the per-partition sum of the results.

@dataclass(frozen=True, kw_only=True)
class _Activation(_Instruction):
    dst: _View
    src: _View
    function: Callable[[np.ndarray], np.ndarray]
    scale: float
    scale_tile: _View | None
    bias: _View | None
    reduce_dst: _View | None


def _validate_activation(ctx: _Context, msg: pb.Activation) -> _Activation:
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
    x = _fp32(env, op.src)
    if op.scale_tile is not None:
        x = x * _fp32(env, op.scale_tile)
    elif op.scale != 1.0:
        x = x * np.float32(op.scale)
    if op.bias is not None:
        x = x + _fp32(env, op.bias)
    y = op.function(x)
    if op.reduce_dst is not None:  # the accumulators sum FP32 results, before dst's rounding
        _store(env[op.reduce_dst.name][op.reduce_dst.index], y.sum(axis=1, keepdims=True), op.reduce_dst.dtype)
    _store(env[op.dst.name][op.dst.index], y, op.dst.dtype)


def _cost_activation(op: _Activation) -> cost_model.InstructionCost:
    return cost_model.scalar_cost(op.src.free, tensors=len(op.reads) + len(op.writes),
                                  accumulate=op.reduce_dst is not None)


# tensor_scalar: dst = (src op0 operand0) op1 operand1, operands constants or [P, 1] tiles; reverse
# puts the operand on the left. Both ops arithmetic (FP32) or both bitvec (integer bit patterns).

@dataclass(frozen=True, kw_only=True)
class _TensorScalar(_Instruction):
    dst: _View
    src: _View
    ops: tuple[tuple[Callable[..., np.ndarray], float | _View, bool], ...]  # (op, operand, reverse)
    mode: str
    engine: int


def _validate_tensor_scalar(ctx: _Context, msg: pb.TensorScalar) -> _TensorScalar:
    engine = ctx.engine(msg.engine, (pb.VECTOR, pb.SCALAR, pb.GPSIMD))
    src = ctx.engine_view(msg.src, "src", engine)
    dst = ctx.engine_view(msg.dst, "dst", engine)
    ctx.same_shape(dst, src)
    steps = [(msg.op0, msg.operand0, msg.reverse0, "op0")]
    if msg.op1 != pb.ALU_OP_UNSPECIFIED:
        steps.append((msg.op1, msg.operand1, msg.reverse1, "op1"))
    ops, classes, reads = [], set(), [src]
    for alu, operand, reverse, role in steps:
        fn, bitvec = _binary_op(ctx, alu, role)
        classes.add(bitvec)
        value: float | _View
        if operand.tile.name:
            value = ctx.engine_view(operand.tile, f"operand{role[-1]}", engine)
            ctx.per_partition(value, src, "tensor_scalar operand rule")
            reads.append(value)
            if bitvec:
                _require_integers(ctx, alu, (value,))
        elif bitvec:
            if not (operand.value.is_integer() and 0 <= operand.value < 2**32):
                raise ctx.fail(f"operand{role[-1]} {operand.value:g} of bitvec op {_alu_name(alu)} must be an "
                               "integer in [0, 2^32) (bitvec operand rule)")
            value = operand.value
        else:
            if not math.isfinite(operand.value):
                raise ctx.fail(f"operand{role[-1]} {operand.value} is not finite")
            value = operand.value
        if bitvec:
            _require_integers(ctx, alu, (src, dst))
        ops.append((fn, value, reverse))
    if len(classes) > 1:
        raise ctx.fail(f"op0 {_alu_name(msg.op0)} and op1 {_alu_name(msg.op1)} mix an arithmetic and a "
                       "bitvec op; both must be of the same class (tensor_scalar class rule)")
    mode = _BITVEC_MODE if classes == {True} else _FLOAT
    return _TensorScalar(reads=tuple(reads), writes=(dst,), flops=len(ops) * dst.size, dst=dst, src=src,
                         ops=tuple(ops), mode=mode, engine=engine)


def _execute_tensor_scalar(op: _TensorScalar, env: Env) -> None:
    x = _load(env, op.src, op.mode)
    for fn, operand, reverse in op.ops:
        if isinstance(operand, _View):
            value = _load(env, operand, op.mode)
        else:
            value = np.uint64(operand) if op.mode == _BITVEC_MODE else np.float32(operand)
        x = fn(value, x) if reverse else fn(x, value)
    _save(env, op.dst, x, op.mode)


def _cost_tensor_scalar(op: _TensorScalar) -> cost_model.InstructionCost:
    tensors = len(op.reads) + 1
    if op.engine == pb.SCALAR:
        return cost_model.scalar_cost(op.src.free, tensors)
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.src.free, tensors)
    return cost_model.vector_cost(op.src.free, tensors)  # one tensor read: N cycles (ref §3.5)


# tensor_tensor: dst = a op b elementwise on the Vector or GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _TensorTensor(_Instruction):
    dst: _View
    a: _View
    b: _View
    alu: Callable[[np.ndarray, np.ndarray], np.ndarray]
    mode: str
    engine: int
    power: bool


def _validate_tensor_tensor(ctx: _Context, msg: pb.TensorTensor) -> _TensorTensor:
    alu, bitvec = _binary_op(ctx, msg.op, "op")
    views = (msg.a, msg.b, msg.dst)
    if msg.engine == pb.ENGINE_UNSPECIFIED:
        # As NKI picks: power runs on GpSimd; so does all-int32 arithmetic in SBUF (exact integers).
        a, b, dst = (ctx.view(ref, role) for ref, role in zip(views, ("a", "b", "dst")))
        gpsimd = msg.op == pb.POWER or (
            not bitvec and all(v.dtype in _INT32 and v.space == _SBUF for v in (a, b, dst)))
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
    if a.space == _PSUM and b.space == _PSUM:
        raise ctx.fail(f"{a} and {b} are both in PSUM; the Vector engine reads at most one tensor_tensor "
                       "input from PSUM (PSUM read-port rule): copy one to SBUF first")
    if bitvec:
        _require_integers(ctx, msg.op, (a, b, dst))
        mode = _BITVEC_MODE
    elif engine == pb.GPSIMD and msg.op in _INTEGER_EXACT and all(v.dtype in _INT32 for v in (a, b, dst)):
        mode = _EXACT_INT
    else:
        mode = _FLOAT
    return _TensorTensor(reads=(a, b), writes=(dst,), flops=dst.size, dst=dst, a=a, b=b, alu=alu, mode=mode,
                         engine=engine, power=msg.op == pb.POWER)


def _execute_tensor_tensor(op: _TensorTensor, env: Env) -> None:
    _save(env, op.dst, op.alu(_load(env, op.a, op.mode), _load(env, op.b, op.mode)), op.mode)


def _cost_tensor_tensor(op: _TensorTensor) -> cost_model.InstructionCost:
    if op.engine == pb.GPSIMD:
        per_element = 2 * cost_model.GPSIMD_TRANSCENDENTAL_CYCLES if op.power else 2
        return cost_model.gpsimd_cost(per_element * op.a.free, tensors=3)
    return cost_model.vector_cost(2 * op.a.free, tensors=3)  # two tensor reads: 2N cycles (ref §3.5)


# tensor_reduce: dst = op over the trailing free axes of src on the Vector engine.

_REDUCERS: dict[int, tuple[np.ufunc, str]] = {
    pb.ADD: (np.add, _FLOAT), pb.MULTIPLY: (np.multiply, _FLOAT),
    pb.MAXIMUM: (np.maximum, _FLOAT), pb.MINIMUM: (np.minimum, _FLOAT),
    pb.LOGICAL_AND: (np.logical_and, "logical"), pb.LOGICAL_OR: (np.logical_or, "logical"),
    pb.LOGICAL_XOR: (np.logical_xor, "logical"),
    pb.BITWISE_AND: (np.bitwise_and, _BITVEC_MODE), pb.BITWISE_OR: (np.bitwise_or, _BITVEC_MODE),
    pb.BITWISE_XOR: (np.bitwise_xor, _BITVEC_MODE),
}


@dataclass(frozen=True, kw_only=True)
class _TensorReduce(_Instruction):
    dst: _View
    src: _View
    reducer: np.ufunc
    mode: str
    free_shape: tuple[int, ...]
    axes: tuple[int, ...]
    negate: bool


def _validate_tensor_reduce(ctx: _Context, msg: pb.TensorReduce) -> _TensorReduce:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if msg.op not in _REDUCERS:
        raise ctx.fail(f"op {_alu_name(msg.op)} cannot reduce; use one of: {_names(_REDUCERS)}")
    free_shape = tuple(msg.free_shape) or (src.free,)
    if math.prod(free_shape) != src.free or min(free_shape) < 1:
        raise ctx.fail(f"free_shape {_fmt_shape(free_shape)} does not split the {src.free} elements per "
                       f"partition of {src} (tensor_reduce free_shape rule)")
    if msg.axes > len(free_shape):
        raise ctx.fail(f"axes {msg.axes}: free_shape {_fmt_shape(free_shape)} has {len(free_shape)} axes "
                       "(tensor_reduce axes rule)")
    count = msg.axes or len(free_shape)
    kept = free_shape[:len(free_shape) - count]
    expected = (src.partitions, math.prod(kept))
    if dst.shape != expected:
        axes = "1" if not kept else " * ".join(f"F{i + 1}" for i in range(len(kept)))
        raise ctx.fail(f"{dst} must be [P, {axes}] = {_fmt_shape(expected)} for {src} (a reduction runs along "
                       "the trailing free axes; the partition axis cannot be reduced)")
    reducer, mode = _REDUCERS[msg.op]
    if mode == _BITVEC_MODE:
        _require_integers(ctx, msg.op, (src, dst))
    if msg.negate and mode != _FLOAT:
        raise ctx.fail(f"negate applies to arithmetic reductions, not {_alu_name(msg.op)} (tensor_reduce negate rule)")
    axes = tuple(range(1 + len(kept), 1 + len(free_shape)))
    return _TensorReduce(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src, reducer=reducer,
                         mode=mode, free_shape=free_shape, axes=axes, negate=msg.negate)


def _execute_tensor_reduce(op: _TensorReduce, env: Env) -> None:
    x = _load(env, op.src, _BITVEC_MODE if op.mode == _BITVEC_MODE else _FLOAT)
    x = x.reshape(op.src.partitions, *op.free_shape)
    if op.mode == "logical":
        x = x != 0
    result = op.reducer.reduce(x, axis=op.axes).reshape(op.dst.shape)
    if op.mode == _BITVEC_MODE:
        _store_bits(env[op.dst.name][op.dst.index], result)
        return
    result = result.astype(np.float32)
    _store(env[op.dst.name][op.dst.index], -result if op.negate else result, op.dst.dtype)


def _cost_tensor_reduce(op: _TensorReduce) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


# bn_stats: per-partition statistics of up to 512 elements, laid out as NKI defines them: for the
# elements at even and at odd free positions, (count, mean, variance * count). bn_aggr combines any
# number of such (count, mean, variance * count) triples into (mean, variance). Vector engine, FP32.

@dataclass(frozen=True, kw_only=True)
class _BnStats(_Instruction):
    dst: _View
    src: _View


def _validate_bn_stats(ctx: _Context, msg: pb.BnStats) -> _BnStats:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if src.free > BN_STATS_MAX_FREE:
        raise ctx.fail(f"{src} has {src.free} elements per partition; bn_stats takes at most {BN_STATS_MAX_FREE} "
                       "(bn_stats_fmax): run one bn_stats per 512-element slice and aggregate them with bn_aggr")
    if dst.shape != (src.partitions, BN_STATS_WIDTH):
        raise ctx.fail(f"{dst} must be [P, 6] = {_fmt_shape((src.partitions, BN_STATS_WIDTH))} for {src} "
                       "(bn_stats layout: count, mean, variance * count of the even, then the odd elements)")
    return _BnStats(reads=(src,), writes=(dst,), flops=2 * src.size, dst=dst, src=src)


def _execute_bn_stats(op: _BnStats, env: Env) -> None:
    x = _fp32(env, op.src)
    stats = np.zeros(op.dst.shape, np.float32)
    for half, part in enumerate((x[:, 0::2], x[:, 1::2])):
        count = part.shape[1]
        if count:  # a single element has no odd half: its triple stays (0, 0, 0)
            mean = part.mean(axis=1, dtype=np.float32)
            stats[:, 3 * half] = count
            stats[:, 3 * half + 1] = mean
            stats[:, 3 * half + 2] = np.square(part - mean[:, None]).sum(axis=1)
    _store(env[op.dst.name][op.dst.index], stats, op.dst.dtype)


def _cost_bn_stats(op: _BnStats) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


@dataclass(frozen=True, kw_only=True)
class _BnAggr(_Instruction):
    dst: _View
    src: _View


def _validate_bn_aggr(ctx: _Context, msg: pb.BnAggr) -> _BnAggr:
    src = ctx.engine_view(msg.src, "src", pb.VECTOR)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR)
    if src.free % 3:
        raise ctx.fail(f"{src} has {src.free} elements per partition; bn_aggr reads (count, mean, variance * "
                       "count) triples, so a multiple of 3 (bn_aggr layout rule)")
    if dst.shape != (src.partitions, 2):
        raise ctx.fail(f"{dst} must be [P, 2] = {_fmt_shape((src.partitions, 2))}: mean and variance per "
                       f"partition of {src} (bn_aggr layout rule)")
    return _BnAggr(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src)


def _execute_bn_aggr(op: _BnAggr, env: Env) -> None:
    triples = _fp32(env, op.src).reshape(op.src.partitions, -1, 3)
    count, mean, m2 = triples[:, :, 0], triples[:, :, 1], triples[:, :, 2]
    total = count.sum(axis=1)
    grand = (count * mean).sum(axis=1) / total
    # Chan et al.: the within-group sums of squares plus the spread of the group means.
    variance = (m2.sum(axis=1) + (count * np.square(mean - grand[:, None])).sum(axis=1)) / total
    _store(env[op.dst.name][op.dst.index], np.stack([grand, variance], axis=1), op.dst.dtype)


def _cost_bn_aggr(op: _BnAggr) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, tensors=2)


# iota and affine_select: an affine index offset + p * channel_multiplier + sum(step_k * i_k), computed
# in int32 on the GpSimd engine (p counts the partitions of dst from 0).

def _pattern(ctx: _Context, pattern, free: int, what: str) -> tuple[tuple[int, int], ...]:
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
class _Iota(_Instruction):
    dst: _View
    steps: tuple[tuple[int, int], ...]
    offset: int
    channel_multiplier: int


def _validate_iota(ctx: _Context, msg: pb.Iota) -> _Iota:
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    steps = _pattern(ctx, msg.pattern, dst.free, str(dst))
    return _Iota(reads=(), writes=(dst,), flops=0, dst=dst, steps=steps, offset=msg.offset,
                 channel_multiplier=msg.channel_multiplier)


def _execute_iota(op: _Iota, env: Env) -> None:
    values = _affine_values(op.dst.partitions, op.steps, op.offset, op.channel_multiplier)
    # The engine casts the int32 results to dst's dtype (float64 holds int32 exactly: one rounding).
    _store(env[op.dst.name][op.dst.index], values.astype(np.float64), op.dst.dtype)


def _cost_iota(op: _Iota) -> cost_model.InstructionCost:
    return cost_model.gpsimd_cost(cost_model.GPSIMD_SETUP_CYCLES + op.dst.free, tensors=1)


@dataclass(frozen=True, kw_only=True)
class _AffineSelect(_Instruction):
    dst: _View
    on_true: _View
    on_false: float
    steps: tuple[tuple[int, int], ...]
    offset: int
    channel_multiplier: int
    compare: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _validate_affine_select(ctx: _Context, msg: pb.AffineSelect) -> _AffineSelect:
    on_true = ctx.engine_view(msg.on_true, "on_true", pb.GPSIMD)
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    ctx.same_shape(dst, on_true)
    if msg.cmp_op not in _COMPARISONS:
        raise ctx.fail(f"cmp_op {_alu_name(msg.cmp_op)} is not a comparison; use one of: {_names(_COMPARISONS)}")
    steps = _pattern(ctx, msg.pattern, dst.free, str(dst))
    return _AffineSelect(reads=(on_true,), writes=(dst,), flops=0, dst=dst, on_true=on_true,
                         on_false=msg.on_false_value, steps=steps, offset=msg.offset,
                         channel_multiplier=msg.channel_multiplier, compare=_ARITHMETIC[msg.cmp_op])


def _execute_affine_select(op: _AffineSelect, env: Env) -> None:
    values = _affine_values(op.dst.partitions, op.steps, op.offset, op.channel_multiplier)
    keep = op.compare(values, 0) != 0
    _store(env[op.dst.name][op.dst.index], np.where(keep, _fp32(env, op.on_true), np.float32(op.on_false)),
           op.dst.dtype)


def _cost_affine_select(op: _AffineSelect) -> cost_model.InstructionCost:
    return cost_model.gpsimd_cost(cost_model.GPSIMD_SETUP_CYCLES + op.dst.free, tensors=2)


# tensor_partition_reduce: dst[1, F] = op over the partitions of src on the GpSimd engine.

_PARTITION_REDUCERS: dict[int, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    pb.ADD: (lambda x: x.sum(axis=0, keepdims=True), _FLOAT),
    pb.AVERAGE: (lambda x: x.mean(axis=0, keepdims=True, dtype=np.float32), _FLOAT),
    pb.MAXIMUM: (lambda x: x.max(axis=0, keepdims=True), _FLOAT),
    pb.BITWISE_OR: (lambda x: np.bitwise_or.reduce(x, axis=0, keepdims=True), _BITVEC_MODE),
    pb.BITWISE_AND: (lambda x: np.bitwise_and.reduce(x, axis=0, keepdims=True), _BITVEC_MODE),
}


@dataclass(frozen=True, kw_only=True)
class _PartitionReduce(_Instruction):
    dst: _View
    src: _View
    reduce: Callable[[np.ndarray], np.ndarray]
    mode: str


def _validate_partition_reduce(ctx: _Context, msg: pb.TensorPartitionReduce) -> _PartitionReduce:
    src = ctx.engine_view(msg.src, "src", pb.GPSIMD)
    dst = ctx.engine_view(msg.dst, "dst", pb.GPSIMD)
    if msg.op not in _PARTITION_REDUCERS:
        raise ctx.fail(f"op {_alu_name(msg.op)} cannot reduce across partitions; use one of: "
                       f"{_names(_PARTITION_REDUCERS)}")
    if dst.shape != (1, src.free):
        raise ctx.fail(f"{dst} must be [1, F] = {_fmt_shape((1, src.free))} for {src} (partition reduce "
                       "shape rule)")
    reduce, mode = _PARTITION_REDUCERS[msg.op]
    if mode == _BITVEC_MODE:
        _require_integers(ctx, msg.op, (src, dst))
    return _PartitionReduce(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src, reduce=reduce,
                            mode=mode)


def _execute_partition_reduce(op: _PartitionReduce, env: Env) -> None:
    _save(env, op.dst, op.reduce(_load(env, op.src, op.mode)), op.mode)


def _cost_partition_reduce(op: _PartitionReduce) -> cost_model.InstructionCost:
    # Our choice: one pass over each processor's 16 partitions, one pass combining the 8 partial rows.
    return cost_model.gpsimd_cost(2 * op.src.free, tensors=2)


# custom_op: a registered operator of neurontools.daemon.custom_ops, run on the GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _CustomOp(_Instruction):
    operator: custom_ops.CustomOperator
    inputs: tuple[_View, ...]
    outputs: tuple[_View, ...]
    attributes: dict[str, float]


def _validate_custom_op(ctx: _Context, msg: pb.CustomOp) -> _CustomOp:
    operator = custom_ops.REGISTRY.get(msg.name)
    if operator is None:
        raise ctx.fail(f'no custom operator "{msg.name}" is registered in this daemon; registered: '
                       + ", ".join(custom_ops.registered()))
    where = f'custom operator "{operator.name}"'
    for kind, refs, roles in (("inputs", msg.inputs, operator.inputs), ("outputs", msg.outputs, operator.outputs)):
        if len(refs) != len(roles):
            raise ctx.fail(f"{where} takes {len(roles)} {kind} ({', '.join(roles)}), not {len(refs)}")
    unknown = sorted(set(msg.attributes) - set(operator.attributes))
    if unknown:
        raise ctx.fail(f'{where} has no attribute "{unknown[0]}"; its attributes: '
                       + (", ".join(operator.attributes) or "none"))
    attributes = {**operator.attributes, **msg.attributes}
    inputs = tuple(ctx.engine_view(r, f"input {role}", pb.GPSIMD) for r, role in zip(msg.inputs, operator.inputs))
    outputs = tuple(ctx.engine_view(r, f"output {role}", pb.GPSIMD) for r, role in zip(msg.outputs, operator.outputs))
    try:
        expected = operator.output_shapes([v.shape for v in inputs], attributes)
    except custom_ops.CustomOpError as exc:
        raise ctx.fail(f"{where}: {exc}") from None
    for view, shape in zip(outputs, expected):
        if view.shape != tuple(shape):
            raise ctx.fail(f"{view} must be {_fmt_shape(tuple(shape))} ({where} output shape)")
    return _CustomOp(reads=inputs, writes=outputs, flops=operator.flops([v.shape for v in inputs]),
                     operator=operator, inputs=inputs, outputs=outputs, attributes=attributes)


def _execute_custom_op(op: _CustomOp, env: Env) -> None:
    results = op.operator.compute([_fp32(env, v) for v in op.inputs], op.attributes)
    for view, values in zip(op.outputs, results):
        _store(env[view.name][view.index], values, view.dtype)


def _cost_custom_op(op: _CustomOp) -> cost_model.InstructionCost:
    cycles = cost_model.GPSIMD_SETUP_CYCLES + op.operator.cycles([v.shape for v in op.inputs])
    return cost_model.gpsimd_cost(cycles, tensors=len(op.inputs) + len(op.outputs))


# memset: dst = value, on the Vector or GpSimd engine.

@dataclass(frozen=True, kw_only=True)
class _Memset(_Instruction):
    dst: _View
    value: float
    engine: int


def _validate_memset(ctx: _Context, msg: pb.Memset) -> _Memset:
    engine = ctx.engine(msg.engine, (pb.VECTOR, pb.GPSIMD))
    dst = ctx.engine_view(msg.dst, "dst", engine)
    if _is_int(dst) and not math.isfinite(msg.value):
        raise ctx.fail(f"value {msg.value} cannot be stored in {dst} ({dtypes.NAMES[dst.dtype]})")
    return _Memset(reads=(), writes=(dst,), flops=0, dst=dst, value=msg.value, engine=engine)


def _execute_memset(op: _Memset, env: Env) -> None:
    _store(env[op.dst.name][op.dst.index], np.array(op.value), op.dst.dtype)


def _cost_memset(op: _Memset) -> cost_model.InstructionCost:
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.dst.free, tensors=1)
    # NKI: zeroing a 16-bit float tile writes two elements per cycle.
    halved = op.value == 0 and op.dst.dtype in (pb.BFLOAT16, pb.FLOAT16)
    return cost_model.vector_cost(op.dst.free / 2 if halved else op.dst.free, tensors=1)


# tensor_copy: dst = src on the Vector or GpSimd engine: bit-exact for equal dtypes, else through FP32.

@dataclass(frozen=True, kw_only=True)
class _TensorCopy(_Instruction):
    dst: _View
    src: _View
    engine: int


def _validate_tensor_copy(ctx: _Context, msg: pb.TensorCopy) -> _TensorCopy:
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
        out[...] = _read(env, op.src)
    else:
        _store(out, _fp32(env, op.src), op.dst.dtype)


def _cost_tensor_copy(op: _TensorCopy) -> cost_model.InstructionCost:
    # max(MIN_II, N) cycles on either engine (NKI ISA docs).
    if op.engine == pb.GPSIMD:
        return cost_model.gpsimd_cost(op.src.free, tensors=2)
    return cost_model.vector_cost(op.src.free, tensors=2)


# -- collectives (ref §4.6) -------------------------------------------------------------------------
# all_reduce, all_gather, reduce_scatter, send_recv and permute move HBM tensors between the subgraphs of
# one model. Here each rank's instruction is checked on its own; collectives.py matches the ranks'
# instructions, checks the group rules and times them over the links, and collective_rendezvous.py
# meets the ranks at run time and moves the data. They run on dedicated hardware: no FLOPs.

_REDUCTIONS: dict[int, np.ufunc] = {pb.ADD: np.add, pb.MAXIMUM: np.maximum, pb.MINIMUM: np.minimum}


@dataclass(frozen=True, kw_only=True)
class CollectiveOp(_Instruction):
    """One rank's collective instruction, validated on its own. Fields a kind does not use are unset."""

    kind: str                      # the Instruction field: "all_reduce", "all_gather", ...
    index: int                     # its instruction index in the program
    dst: _View | None              # None: a send_recv that only sends
    src: _View | None              # None: a send_recv that only receives
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
        return _as_float32(self.source(env))

    def deliver(self, env: Env, values: np.ndarray) -> None:
        """Writes values of dst's storage dtype, as they are (data movement)."""
        env[self.dst.name][self.dst.index] = values

    def deliver_reduced(self, env: Env, values: np.ndarray) -> None:
        """Writes FP32 results, rounded to dst's dtype (nearest even)."""
        _store(env[self.dst.name][self.dst.index], values, self.dst.dtype)


def _collective_operand(ctx: _Context, ref: pb.Ref, role: str) -> _View:
    view = ctx.view(ref, role)
    if view.space != _HBM:
        fix = ("store the tile to an OUTPUT parameter with dma_copy first" if role == "src"
               else "name an OUTPUT parameter and load it into the tile with dma_copy after")
        raise ctx.fail(f"{view}: collectives move HBM tensors (parameters and constants), not on-chip tiles "
                       f"(collective memory rule): {fix}")
    if role == "dst" and view.kind != "output parameter":
        raise ctx.fail(f"{view}: a collective writes its result into an OUTPUT parameter ({view.kind}s are "
                       "read-only)")
    return view


def _collective_pair(ctx: _Context, dst_ref: pb.Ref, src_ref: pb.Ref) -> tuple[_View, _View]:
    dst, src = _collective_operand(ctx, dst_ref, "dst"), _collective_operand(ctx, src_ref, "src")
    if dst.dtype != src.dtype:
        raise ctx.fail(f"{dst} is {dtypes.NAMES[dst.dtype]} and {src} is {dtypes.NAMES[src.dtype]}; collectives "
                       "do not cast (collective dtype rule): cast with dma_copy first")
    return dst, src


def _reduction(ctx: _Context, op: int, src: _View) -> int:
    if op not in _REDUCTIONS:
        raise ctx.fail(f"op {_alu_name(op)} cannot reduce across ranks; use one of: {_names(_REDUCTIONS)}")
    if _is_int(src):
        raise ctx.fail(f"{src} is {dtypes.NAMES[src.dtype]}; collective reductions accumulate in FP32 and take "
                       "float tensors (collective dtype rule)")
    return op


def _group(ctx: _Context, group: pb.ReplicaGroup) -> tuple[int, ...]:
    cores = tuple(group.core_ids)
    repeated = next((c for c in cores if cores.count(c) > 1), None)
    if repeated is not None:
        raise ctx.fail(f"group lists NeuronCore {repeated} twice; a rank is one NeuronCore")
    return cores


def _blocks(ctx: _Context, whole: _View, block: _View, axis: int) -> None:
    """`whole` must be `block` repeated along `axis` (the count is the group's size, checked per model)."""
    if axis >= len(block.shape):
        raise ctx.fail(f"axis {axis}: {block} has {len(block.shape)} dimensions")
    others = [d for d in range(len(block.shape)) if d != axis]
    if (len(whole.shape) != len(block.shape) or any(whole.shape[d] != block.shape[d] for d in others)
            or whole.shape[axis] % block.shape[axis]):
        raise ctx.fail(f"{whole} must be {block} repeated along axis {axis}, once per rank "
                       f"(collective shape rule)")


def _validate_all_reduce(ctx: _Context, msg: pb.AllReduce) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    ctx.same_shape(dst, src)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="all_reduce", index=ctx.index, dst=dst, src=src,
                        op=_reduction(ctx, msg.op, src), group=_group(ctx, msg.group))


def _validate_all_gather(ctx: _Context, msg: pb.AllGather) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    _blocks(ctx, dst, src, msg.axis)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="all_gather", index=ctx.index, dst=dst, src=src,
                        axis=msg.axis, group=_group(ctx, msg.group))


def _validate_reduce_scatter(ctx: _Context, msg: pb.ReduceScatter) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    _blocks(ctx, src, dst, msg.axis)
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="reduce_scatter", index=ctx.index, dst=dst,
                        src=src, op=_reduction(ctx, msg.op, src), axis=msg.axis, group=_group(ctx, msg.group))


def _validate_permute(ctx: _Context, msg: pb.Permute) -> CollectiveOp:
    dst, src = _collective_pair(ctx, msg.dst, msg.src)
    ctx.same_shape(dst, src)
    if msg.shift == 0:
        raise ctx.fail("shift 0 moves nothing; rank r sends to rank (r + shift) mod R")
    return CollectiveOp(reads=(src,), writes=(dst,), flops=0, kind="permute", index=ctx.index, dst=dst, src=src,
                        shift=msg.shift, group=_group(ctx, msg.group))


def _validate_send_recv(ctx: _Context, msg: pb.SendRecv) -> CollectiveOp:
    sends, receives = msg.HasField("send_to"), msg.HasField("recv_from")
    if not (sends or receives):
        raise ctx.fail("neither send_to nor recv_from is set; a send_recv sends, receives or both")
    for present, ref, role, field in ((sends, msg.src, "src", "send_to"), (receives, msg.dst, "dst", "recv_from")):
        if present != bool(ref.name):
            raise ctx.fail(f"{role} and {field} go together: give both or neither")
    src = _collective_operand(ctx, msg.src, "src") if sends else None
    dst = _collective_operand(ctx, msg.dst, "dst") if receives else None
    if src is not None and dst is not None and _overlap(src, dst):
        raise ctx.fail(f"{dst} overlaps {src}; an exchange receives into a buffer of its own (send_recv "
                       "buffer rule)")
    return CollectiveOp(reads=(src,) if src else (), writes=(dst,) if dst else (), flops=0, kind="send_recv",
                        index=ctx.index, dst=dst, src=src, send_to=msg.send_to if sends else None,
                        recv_from=msg.recv_from if receives else None)


@dataclass(frozen=True)
class _Opcode:
    label: str
    validate: Callable[[_Context, Any], _Instruction]
    # None for collectives: they run at a rendezvous of the ranks and are timed for the whole model.
    execute: Callable[[Any, Env], None] | None = None
    cost: Callable[[Any], cost_model.InstructionCost] | None = None


# Keyed by the field name of the Instruction oneof.
_OPCODES: dict[str, _Opcode] = {
    op.label: op for op in (
        _Opcode("dma_copy", _validate_dma_copy, _execute_dma_copy, _cost_dma_copy),
        _Opcode("matmul", _validate_matmul, _execute_matmul, _cost_matmul),
        _Opcode("activation", _validate_activation, _execute_activation, _cost_activation),
        _Opcode("tensor_reduce", _validate_tensor_reduce, _execute_tensor_reduce, _cost_tensor_reduce),
        _Opcode("tensor_tensor", _validate_tensor_tensor, _execute_tensor_tensor, _cost_tensor_tensor),
        _Opcode("transpose", _validate_transpose, _execute_transpose, _cost_transpose),
        _Opcode("tensor_scalar", _validate_tensor_scalar, _execute_tensor_scalar, _cost_tensor_scalar),
        _Opcode("bn_stats", _validate_bn_stats, _execute_bn_stats, _cost_bn_stats),
        _Opcode("bn_aggr", _validate_bn_aggr, _execute_bn_aggr, _cost_bn_aggr),
        _Opcode("iota", _validate_iota, _execute_iota, _cost_iota),
        _Opcode("affine_select", _validate_affine_select, _execute_affine_select, _cost_affine_select),
        _Opcode("tensor_partition_reduce", _validate_partition_reduce, _execute_partition_reduce,
                _cost_partition_reduce),
        _Opcode("custom_op", _validate_custom_op, _execute_custom_op, _cost_custom_op),
        _Opcode("memset", _validate_memset, _execute_memset, _cost_memset),
        _Opcode("tensor_copy", _validate_tensor_copy, _execute_tensor_copy, _cost_tensor_copy),
        _Opcode("all_reduce", _validate_all_reduce),
        _Opcode("all_gather", _validate_all_gather),
        _Opcode("reduce_scatter", _validate_reduce_scatter),
        _Opcode("send_recv", _validate_send_recv),
        _Opcode("permute", _validate_permute),
    )
}


# -- fused execution of matmuls ---------------------------------------------------------------------
# A tiled matmul issues thousands of small matmuls; numpy is fast only on large products. Execution
# (not the cost model, which still sees every instruction) therefore fuses them, keeping FP32
# accumulation:
#  - an accumulation group -- consecutive matmuls into one PSUM view, all but the first accumulating --
#    is one product: dst (=|+=) sum_i S_i.T @ M_i = S.T @ M, the S_i and the M_i stacked along K;
#  - groups that multiply the same moving operands (one panel of B against several blocks of A.T) are
#    computed together at the first group's place, their stationary operands side by side, when nothing
#    in between writes any of their operands; each result reaches its PSUM view at its group's own place.
# The numbers are the same up to the order of the FP32 additions.

_BATCH_MAX_WRITES = 256  # writes tracked while a batch stays open (bounds the compile-time work)


@dataclass(frozen=True)
class _MatmulGroup:
    first: _Matmul
    runs: tuple[tuple[_Matmul, ...], ...]  # matmuls sharing K and operand dtypes, in program order

    @property
    def signature(self) -> tuple:
        """Equal for groups that multiply the same moving operands in the same layout."""
        return tuple((run[0].stationary.partitions, run[0].stationary.dtype, run[0].moving.dtype,
                      tuple(op.moving for op in run)) for run in self.runs)

    @property
    def operands(self) -> list[_View]:
        return [view for run in self.runs for op in run for view in (op.stationary, op.moving)]


def _matmul_group(ops: list[_Matmul]) -> _MatmulGroup:
    runs: dict[tuple, list[_Matmul]] = {}
    for op in ops:
        runs.setdefault((op.stationary.partitions, op.stationary.dtype, op.moving.dtype), []).append(op)
    return _MatmulGroup(ops[0], tuple(tuple(run) for run in runs.values()))


@dataclass(frozen=True)
class _Batch:
    key: int  # a run keeps the batch's results in env[key] until the last group has taken its rows
    groups: tuple[_MatmulGroup, ...]
    # Per K run: when every chunk's stationary operands of the groups lie side by side in one tile, the
    # views covering them (the batch's stationary operand without concatenating); else None.
    side_by_side: tuple[tuple[_View, ...] | None, ...]


def _side_by_side(views: list[_View]) -> _View | None:
    """One view covering `views` if they are adjacent column ranges of the same partitions of one tile."""
    first = views[0]
    for before, after in zip(views, views[1:]):
        if (after.name != first.name or after.bounds[0] != first.bounds[0]
                or after.bounds[1][0] != before.bounds[1][1]):
            return None
    return dataclasses.replace(first, bounds=(first.bounds[0], (first.bounds[1][0], views[-1].bounds[1][1])))


def _new_batch(key: int, groups: tuple[_MatmulGroup, ...]) -> _Batch:
    side_by_side = []
    for r, run in enumerate(groups[0].runs):
        views = [_side_by_side([group.runs[r][i].stationary for group in groups]) for i in range(len(run))]
        side_by_side.append(tuple(views) if all(views) else None)
    return _Batch(key, groups, tuple(side_by_side))


@dataclass(frozen=True)
class _WriteBack:
    batch: _Batch
    group: _MatmulGroup
    rows: tuple[int, int]
    last: bool


def _stacked(env: Env, views: list[_View]) -> np.ndarray:
    """[K, X] views stacked to [K * g, X] with row p * g + i = views[i][p] (the same order for both
    operands of a group keeps the contraction aligned). Equally spaced column blocks of one tile are a
    reshape -- a view without copying when the blocks tile it exactly."""
    first = views[0]
    if len(views) == 1:
        return _read(env, first)
    k, width = first.shape
    array = env[first.name]
    (p0, p1), (c0, _) = first.bounds
    step = views[1].bounds[1][0] - c0
    end = c0 + step * len(views)
    if (step >= width and end <= array.shape[1]
            and all(v.name == first.name and v.bounds[0] == (p0, p1) and v.bounds[1][0] == c0 + i * step
                    for i, v in enumerate(views))):
        blocks = array[p0:p1, c0:end].reshape(k, len(views), step)
        return blocks[:, :, :width].reshape(k * len(views), width)
    return np.stack([_read(env, v) for v in views], axis=1).reshape(k * len(views), width)


def _stationary(env: Env, run: tuple[_Matmul, ...]) -> np.ndarray:
    return _matmul_operand(_stacked(env, [op.stationary for op in run]), run[0].stationary.dtype)


def _moving(env: Env, run: tuple[_Matmul, ...]) -> np.ndarray:
    return _matmul_operand(_stacked(env, [op.moving for op in run]), run[0].moving.dtype)


def _write_result(first: _Matmul, env: Env, values: np.ndarray) -> None:
    out = env[first.dst.name][first.dst.index]
    if first.accumulate:
        out += values
    else:
        out[...] = values


def _execute_matmul_group(group: _MatmulGroup, env: Env) -> None:
    total = None
    for run in group.runs:
        part = _stationary(env, run).T @ _moving(env, run)
        total = part if total is None else np.add(total, part, out=total)
    _write_result(group.first, env, total)


def _execute_batch(batch: _Batch, env: Env) -> None:
    total = None
    for r, run in enumerate(batch.groups[0].runs):
        combined = batch.side_by_side[r]
        if combined is not None:
            stationary = _matmul_operand(_stacked(env, list(combined)), run[0].stationary.dtype)
        else:
            stationary = np.concatenate([_stationary(env, group.runs[r]) for group in batch.groups], axis=1)
        part = stationary.T @ _moving(env, run)
        total = part if total is None else np.add(total, part, out=total)
    env[batch.key] = total


def _execute_write_back(step: _WriteBack, env: Env) -> None:
    _write_result(step.group.first, env, env[step.batch.key][step.rows[0]:step.rows[1]])
    if step.last:
        del env[step.batch.key]


def _overlap(a: _View, b: _View) -> bool:
    return a.name == b.name and all(s1 < e2 and s2 < e1 for (s1, e1), (s2, e2) in zip(a.bounds, b.bounds))


def _batches(items: list) -> list[list[int]]:
    """Indices of the groups in `items` computed together (see above): consecutive groups with one
    signature, while no instruction in between writes the moving operands or a later group's operands."""
    batches: list[list[int]] = []
    current: list[int] | None = None
    signature: tuple = ()
    moving: list[_View] = []
    written: list[_View] = []
    for index, item in enumerate(items):
        if isinstance(item, _MatmulGroup):
            if (current is not None and item.signature == signature
                    and not any(_overlap(v, w) for v in item.operands for w in written)):
                current.append(index)
            else:
                current, signature, written = [index], item.signature, []
                moving = [op.moving for run in item.runs for op in run]
                batches.append(current)
        elif current is not None:
            for view in item[1].writes:
                if any(_overlap(view, m) for m in moving) or len(written) >= _BATCH_MAX_WRITES:
                    current = None
                    break
                written.append(view)
    return [batch for batch in batches if len(batch) > 1]


def _code_bytes(program: pb.Program) -> int:
    """Encoded size of the program without constant data: weights are accounted as constants, not code."""
    def varint_len(value: int) -> int:
        return max(1, (value.bit_length() + 6) // 7)

    total = program.ByteSize()
    for const in program.constants:
        if const.data:
            full = const.ByteSize()
            stripped = full - 1 - varint_len(len(const.data)) - len(const.data)
            total -= varint_len(full) + full - varint_len(stripped) - stripped
    return total


class Rendezvous(Protocol):
    """Where a rank's collectives meet the other ranks of its execution (collective_rendezvous.py)."""

    def meet(self, op: CollectiveOp, env: Env | None) -> None:
        """Returns once the collective is done on this rank (dst written unless env is None: timing only)."""


# What a run executes: stretches of steps, each followed by the collective that ends it (None at the end).
_Segment = tuple[list[tuple[Callable[[Any, Env], None], Any]], CollectiveOp | None]

# A program's schedule, replayed: yields (collective, when this core is ready for it) and is sent
# (start, finish) for it; returns the estimate.
Timeline = Generator[tuple[CollectiveOp, float], tuple[float, float], RunResult]


class CompiledProgram:
    """A validated program: its HBM interface, executable steps and modeled timing.

    A program with collectives is one rank of a model: its `estimate` counts them as free until the model's
    collectives are planned (collectives.py), which gives it the estimate of a rank among its peers."""

    def __init__(self, decls: _Declarations, steps: list[tuple[_Opcode, _Instruction]], code_bytes: int) -> None:
        self.parameters: dict[str, ParameterSpec] = decls.parameters
        self.constants: list[ParameterSpec] = decls.constants
        self.constant_data: dict[str, bytes] = decls.constant_data
        self.instruction_count = len(steps)
        self.code_bytes = code_bytes
        self.collectives: tuple[CollectiveOp, ...] = tuple(op for opcode, op in steps if opcode.execute is None)
        # Kept only to replay the schedule with the collectives' times.
        self._timed_steps = steps if self.collectives else []
        self.estimate = _alone(_timeline(steps))
        self._tiles = [(tile.name, tile.shape, tile.run_dtype) for tile in decls.tiles.values()]
        self._segments = _segments(steps)
        self._float_outputs = [spec.name for spec in self.parameters.values()
                               if spec.kind == pb.OUTPUT and dtypes.is_float(spec.dtype)]

    def __repr__(self) -> str:
        return (f"<CompiledProgram {len(self.parameters)} parameters, {len(self.constants)} constants, "
                f"{self.instruction_count} instructions, {self.estimate.device_time_ns} ns>")

    def timeline(self) -> Timeline:
        """The schedule replayed, pausing at each collective for the time the ranks agree on."""
        return _timeline(self._timed_steps)

    def with_estimate(self, estimate: RunResult) -> "CompiledProgram":
        """The same program timed as a rank among its peers (collectives.py)."""
        timed = copy.copy(self)
        timed.estimate = estimate
        return timed

    def run(self, hbm: dict[str, np.ndarray | None], *, timing_only: bool,
            rendezvous: Rendezvous | None = None) -> RunResult:
        """Executes the program on `hbm` (every parameter and constant by name; None reads as zeros),
        writing OUTPUT arrays in place. With timing_only, nothing is computed or written. A program with
        collectives meets the other ranks of its execution through `rendezvous`, in both modes."""
        if self.collectives and rendezvous is None:
            raise ValueError("a program with collectives runs as a rank of a model's execution")
        nonfinite: list[str] = []
        if not timing_only:
            env = self._bind(hbm)
            with np.errstate(all="ignore"):  # NaN/Inf are data here, reported via nonfinite_outputs
                for steps, collective in self._segments:
                    for execute, op in steps:
                        execute(op, env)
                    if collective is not None:
                        rendezvous.meet(collective, env)
                nonfinite = [name for name in self._float_outputs if not np.isfinite(env[name]).all()]
        else:
            for collective in self.collectives:
                rendezvous.meet(collective, None)
        return dataclasses.replace(self.estimate, engine_busy_ns=dict(self.estimate.engine_busy_ns),
                                   engine_instructions=dict(self.estimate.engine_instructions),
                                   nonfinite_outputs=nonfinite)

    def _bind(self, hbm: dict[str, np.ndarray | None]) -> Env:
        env: Env = {}
        for spec in (*self.parameters.values(), *self.constants):
            if spec.name not in hbm:
                raise ValueError(f"no array bound for {spec.name!r}")
            array = hbm[spec.name]
            if array is None:
                if spec.kind == pb.OUTPUT:
                    raise ValueError(f"output {spec.name!r} needs a writable array")
                array = np.broadcast_to(np.zeros((), spec.np_dtype), spec.shape)  # zeros, no memory
            elif array.shape != spec.shape or array.dtype != spec.np_dtype:
                raise ValueError(f"{spec.name!r} is bound to {array.dtype}{list(array.shape)}; the program "
                                 f"declares {spec.np_dtype}{list(spec.shape)}")
            env[spec.name] = array
        # On-chip memory is private to the run; it starts zeroed (hardware would hold stale data).
        for name, shape, run_dtype in self._tiles:
            env[name] = np.zeros(shape, run_dtype)
        return env


def _segments(steps: list[tuple[_Opcode, _Instruction]]) -> list[_Segment]:
    """The steps between collectives, each stretch made executable on its own."""
    segments: list[_Segment] = []
    stretch: list[tuple[_Opcode, _Instruction]] = []
    for opcode, op in steps:
        if opcode.execute is None:
            segments.append((_executable(stretch), op))
            stretch = []
        else:
            stretch.append((opcode, op))
    segments.append((_executable(stretch), None))
    return segments


def _executable(steps: list[tuple[_Opcode, _Instruction]]) -> list[tuple[Callable[[Any, Env], None], Any]]:
    """The steps a run executes: the instructions, with matmuls fused (see "fused execution")."""
    matmul = _OPCODES["matmul"]
    items: list = []  # (execute, op) pairs and _MatmulGroups
    i = 0
    while i < len(steps):
        opcode, op = steps[i]
        j = i + 1
        if opcode is matmul:
            while (j < len(steps) and steps[j][0] is matmul and steps[j][1].accumulate
                   and steps[j][1].dst == op.dst):
                j += 1
            items.append(_matmul_group([m for _, m in steps[i:j]]))
        else:
            items.append((opcode.execute, op))
        i = j
    placed: dict[int, list[tuple[Callable[[Any, Env], None], Any]]] = {}
    for key, members in enumerate(_batches(items)):
        batch = _new_batch(key, tuple(items[m] for m in members))
        placed[members[0]] = [(_execute_batch, batch)]
        row = 0
        for m, group in zip(members, batch.groups):
            rows = (row, row + group.first.dst.partitions)
            placed.setdefault(m, []).append((_execute_write_back, _WriteBack(batch, group, rows, m == members[-1])))
            row = rows[1]
    out: list[tuple[Callable[[Any, Env], None], Any]] = []
    for index, item in enumerate(items):
        if index in placed:
            out.extend(placed[index])
        elif isinstance(item, _MatmulGroup):
            single = len(item.runs) == 1 and len(item.runs[0]) == 1
            out.append((_execute_matmul, item.first) if single else (_execute_matmul_group, item))
        else:
            out.append(item)
    return out


def _timeline(steps: list[tuple[_Opcode, _Instruction]]) -> Timeline:
    schedule = cost_model.Schedule()
    flops = 0
    for opcode, op in steps:
        reads = [v.region for v in op.reads if not v.read_only]
        writes = [v.region for v in op.writes]
        if opcode.cost is None:
            _, finish = yield op, schedule.collective_ready(reads, writes)
            schedule.issue_collective(finish, reads, writes)
        else:
            schedule.issue(opcode.cost(op), reads, writes)
        flops += op.flops
    return RunResult(
        device_time_ns=round(schedule.makespan_ns),
        engine_busy_ns={engine: round(ns) for engine, ns in schedule.busy_ns.items()},
        engine_instructions=dict(schedule.instructions),
        flops=flops,
        nonfinite_outputs=[],
    )


def _alone(timeline: Timeline) -> RunResult:
    """A timeline run with every collective finishing as soon as this core is ready for it."""
    try:
        _, ready = next(timeline)
        while True:
            _, ready = timeline.send((ready, ready))
    except StopIteration as done:
        return done.value


def compile_program(program: pb.Program) -> CompiledProgram:
    """Validates `program` for one NeuronCore-v2 and models its timing; raises ProgramError."""
    decls = _Declarations(program)
    steps: list[tuple[_Opcode, _Instruction]] = []
    for index, instruction in enumerate(program.instructions):
        field = instruction.WhichOneof("op")
        opcode = _OPCODES.get(field or "")
        if opcode is None:
            raise ProgramError(f"instruction {index}: no operation set; use one of: {', '.join(_OPCODES)}")
        steps.append((opcode, opcode.validate(_Context(decls, index, opcode.label), getattr(instruction, field))))
    return CompiledProgram(decls, steps, _code_bytes(program))
