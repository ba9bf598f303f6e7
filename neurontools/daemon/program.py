"""Programs for one NeuronCore-v2: validation at load time, the compiled form, and execution.

compile_program() checks a pb.Program against the hardware and format rules (names, shapes, on-chip
capacity, what each engine may touch, instruction limits) and raises ProgramError naming the rule, the
instruction, the operand and its shape. The result runs on numpy engines (FP32 math, dtype-faithful
storage via ml_dtypes) and carries the cost model's estimate, computed once: timing depends only on
shapes. Each instruction kind is one entry of _OPCODES with its own validate, execute and cost functions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon import cost_model
from neurontools.daemon.activation_functions import FUNCTIONS

# -- hardware and format limits of one NeuronCore-v2 (ref §2.3 on-chip memory, §3.2 tile rules) ----
PARTITIONS = 128                      # SBUF and PSUM partitions; tile P <= 128 (TC#1)
SBUF_PARTITION_BYTES = 192 * 1024     # SBUF: 128 partitions x 192 KiB
PSUM_BANK_BYTES = 2 * 1024            # PSUM: 8 banks x 2 KiB per partition; a tile fits one bank (TC#2)
PSUM_BANKS = 8
MATMUL_MAX_STATIONARY_FREE = 128      # M <= 128 (gemm_stationary_fmax, TC#3)
MATMUL_MAX_MOVING_FREE = 512          # N <= 512 (gemm_moving_fmax, TC#3)
ENGINE_MAX_FREE = 64 * 1024           # Vector/Scalar free size per instruction (ref §3.2)
HBM_MAX_RANK = 4

_MATMUL_DTYPES = (pb.FLOAT32, pb.TFLOAT32, pb.BFLOAT16, pb.FLOAT16, pb.FLOAT8_E4M3, pb.FLOAT8_E5M2)
_FP32_PATH = (pb.FLOAT32, pb.TFLOAT32)

_HBM, _SBUF, _PSUM = "HBM", "SBUF", "PSUM"
_ENGINE_NAMES = {pb.TENSOR: "Tensor", pb.VECTOR: "Vector", pb.SCALAR: "Scalar", pb.DMA: "DMA"}


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
    flops: int                          # 2*M*N*K per matmul; 1 per output element of activation and
                                        # tensor_tensor, 1 per input element of tensor_reduce; DMA 0
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

    def __post_init__(self) -> None:
        shape = tuple(stop - start for start, stop in self.bounds)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "size", math.prod(shape))
        object.__setattr__(self, "index", tuple(slice(start, stop) for start, stop in self.bounds))
        object.__setattr__(self, "region", (self.name, tuple(v for bound in self.bounds for v in bound)))

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
        # First-fit decreasing into 2 KiB banks: a PSUM tile may share a bank but never straddle two.
        psum = sorted((t for t in self.tiles.values() if t.buffer == pb.PSUM),
                      key=lambda t: -t.bytes_per_partition)
        banks: list[int] = []  # free bytes left in each bank
        for tile in psum:
            need = tile.bytes_per_partition
            fit = next((i for i, left in enumerate(banks) if left >= need), None)
            if fit is None:
                banks.append(PSUM_BANK_BYTES - need)
            else:
                banks[fit] -= need
        if len(banks) > PSUM_BANKS:
            largest = ", ".join(f'"{t.name}" {t.bytes_per_partition} B' for t in psum[:4])
            raise ProgramError(
                f"PSUM capacity: the PSUM tiles need {len(banks)} banks of 2 KiB per partition ({largest}"
                f"{', ...' if len(psum) > 4 else ''}); a NeuronCore-v2 has {PSUM_BANKS} banks (16 KiB per "
                "partition) and a tile cannot straddle two banks: reuse PSUM tiles across accumulation groups")


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
        key = (role, ref.name, *((piece.start, piece.stop) for piece in ref.slices))
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

    def engine_view(self, ref: pb.Ref, role: str, engine: int, spaces: tuple[str, ...]) -> _View:
        """A tile operand of a compute engine: in an allowed memory, at a legal partition window."""
        view = self.view(ref, role)
        name = _ENGINE_NAMES[engine]
        if view.space not in spaces:
            reads = "reads" if role != "dst" else "writes"
            allowed = " or ".join(spaces)
            if view.space == _HBM:
                fix = ("write an SBUF tile and store it with dma_copy" if role == "dst"
                       else "load it into an SBUF tile with dma_copy first")
            elif view.space == _PSUM:
                fix = "copy it to SBUF with activation(COPY) or tensor_tensor first"
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


# -- instructions -----------------------------------------------------------------------------------
# Each kind: a dataclass for the validated instruction, validate(ctx, message) -> it,
# execute(it, env) computing with numpy on the arrays named in env, cost(it) -> InstructionCost.

Env = dict[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class _Instruction:
    reads: tuple[_View, ...]
    writes: tuple[_View, ...]
    flops: int


def _as_float32(values: np.ndarray) -> np.ndarray:
    """The engines compute in FP32; float32 storage (also tfloat32) is used without a copy."""
    return values if values.dtype == np.float32 else values.astype(np.float32)


def _store(dst: np.ndarray, values: np.ndarray, dtype: int) -> None:
    """Writes FP32 results into `dst` of `dtype`: round to nearest even, integers saturate."""
    dst[...] = values if dtype == pb.FLOAT32 else dtypes.cast_to(values, dtype)


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
                           "(DMA memory access rule): copy it to an SBUF tile with activation(COPY) first")
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
    values = env[op.src.name][op.src.index]
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
        if view.dtype not in _MATMUL_DTYPES:
            raise ctx.fail(f"{view} is {dtypes.NAMES[view.dtype]}; the Tensor engine multiplies float8, "
                           "bfloat16, float16, tfloat32 or float32 (matmul dtype rule)")
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
    stationary = _matmul_operand(env[op.stationary.name][op.stationary.index], op.stationary.dtype)
    moving = _matmul_operand(env[op.moving.name][op.moving.index], op.moving.dtype)
    out = env[op.dst.name][op.dst.index]
    if op.accumulate:
        out += stationary.T @ moving
    else:
        np.matmul(stationary.T, moving, out=out)


def _cost_matmul(op: _Matmul) -> cost_model.InstructionCost:
    return cost_model.matmul_cost(op.moving.free, op.fp32)


# activation: dst = f(src * scale + bias) on the Scalar engine; bias is a [P, 1] tile view or absent.

@dataclass(frozen=True, kw_only=True)
class _Activation(_Instruction):
    dst: _View
    src: _View
    function: Callable[[np.ndarray], np.ndarray]
    scale: float
    bias: _View | None


def _validate_activation(ctx: _Context, msg: pb.Activation) -> _Activation:
    onchip = (_SBUF, _PSUM)
    src = ctx.engine_view(msg.src, "src", pb.SCALAR, onchip)
    dst = ctx.engine_view(msg.dst, "dst", pb.SCALAR, onchip)
    ctx.same_shape(dst, src)
    if msg.function not in FUNCTIONS:
        raise ctx.fail(f"function {msg.function} is not an activation function; use one of: "
                       + ", ".join(pb.ActivationFunction.Name(f) for f in FUNCTIONS))
    if not math.isfinite(msg.scale):
        raise ctx.fail(f"scale {msg.scale} is not finite")
    bias = None
    reads = (src,)
    if msg.bias.name:
        bias = ctx.engine_view(msg.bias, "bias", pb.SCALAR, onchip)
        if bias.shape != (src.partitions, 1):
            raise ctx.fail(f"{bias} must be [P, 1] = {_fmt_shape((src.partitions, 1))}, one value per partition "
                           f"of {src} (activation bias rule)")
        reads = (src, bias)
    return _Activation(reads=reads, writes=(dst,), flops=src.size, dst=dst, src=src,
                       function=FUNCTIONS[msg.function], scale=msg.scale or 1.0, bias=bias)


def _execute_activation(op: _Activation, env: Env) -> None:
    x = _as_float32(env[op.src.name][op.src.index])
    if op.scale != 1.0:
        x = x * np.float32(op.scale)
    if op.bias is not None:
        x = x + _as_float32(env[op.bias.name][op.bias.index])
    _store(env[op.dst.name][op.dst.index], op.function(x), op.dst.dtype)


def _cost_activation(op: _Activation) -> cost_model.InstructionCost:
    return cost_model.scalar_cost(op.src.free)


# tensor_reduce: dst[P, 1] = op over the free axis of src[P, F] on the Vector engine.

_REDUCERS: dict[int, Callable[..., np.ndarray]] = {
    pb.ADD: np.sum, pb.MULTIPLY: np.prod, pb.MAXIMUM: np.max, pb.MINIMUM: np.min,
}


@dataclass(frozen=True, kw_only=True)
class _TensorReduce(_Instruction):
    dst: _View
    src: _View
    reduce: Callable[..., np.ndarray]


def _validate_tensor_reduce(ctx: _Context, msg: pb.TensorReduce) -> _TensorReduce:
    onchip = (_SBUF, _PSUM)
    src = ctx.engine_view(msg.src, "src", pb.VECTOR, onchip)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR, onchip)
    if dst.shape != (src.partitions, 1):
        raise ctx.fail(f"{dst} must be [P, 1] = {_fmt_shape((src.partitions, 1))} for {src} (a reduction "
                       "runs along the free axis; the partition axis cannot be reduced)")
    if msg.op not in _REDUCERS:
        raise ctx.fail(f"op {_alu_name(msg.op)} cannot reduce; use ADD, MULTIPLY, MAXIMUM or MINIMUM")
    return _TensorReduce(reads=(src,), writes=(dst,), flops=src.size, dst=dst, src=src,
                         reduce=_REDUCERS[msg.op])


def _execute_tensor_reduce(op: _TensorReduce, env: Env) -> None:
    x = _as_float32(env[op.src.name][op.src.index])
    _store(env[op.dst.name][op.dst.index], op.reduce(x, axis=1, keepdims=True), op.dst.dtype)


def _cost_tensor_reduce(op: _TensorReduce) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.src.free, inputs=1)


# tensor_tensor: dst = a op b elementwise on the Vector engine.

_ALU: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    pb.ADD: np.add, pb.SUBTRACT: np.subtract, pb.MULTIPLY: np.multiply,
    pb.MAXIMUM: np.maximum, pb.MINIMUM: np.minimum, pb.DIVIDE: np.divide,
}


def _alu_name(op: int) -> str:
    return pb.AluOp.Name(op) if op in pb.AluOp.values() else str(op)


@dataclass(frozen=True, kw_only=True)
class _TensorTensor(_Instruction):
    dst: _View
    a: _View
    b: _View
    alu: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _validate_tensor_tensor(ctx: _Context, msg: pb.TensorTensor) -> _TensorTensor:
    onchip = (_SBUF, _PSUM)
    a = ctx.engine_view(msg.a, "a", pb.VECTOR, onchip)
    b = ctx.engine_view(msg.b, "b", pb.VECTOR, onchip)
    dst = ctx.engine_view(msg.dst, "dst", pb.VECTOR, onchip)
    ctx.same_shape(a, b)
    ctx.same_shape(dst, a)
    if a.space == _PSUM and b.space == _PSUM:
        raise ctx.fail(f"{a} and {b} are both in PSUM; the Vector engine reads at most one tensor_tensor "
                       "input from PSUM (PSUM read-port rule): copy one to SBUF first")
    if msg.op not in _ALU:
        raise ctx.fail(f"op {_alu_name(msg.op)} is not an elementwise op; use one of: "
                       + ", ".join(pb.AluOp.Name(o) for o in _ALU))
    return _TensorTensor(reads=(a, b), writes=(dst,), flops=dst.size, dst=dst, a=a, b=b, alu=_ALU[msg.op])


def _execute_tensor_tensor(op: _TensorTensor, env: Env) -> None:
    a = _as_float32(env[op.a.name][op.a.index])
    b = _as_float32(env[op.b.name][op.b.index])
    _store(env[op.dst.name][op.dst.index], op.alu(a, b), op.dst.dtype)


def _cost_tensor_tensor(op: _TensorTensor) -> cost_model.InstructionCost:
    return cost_model.vector_cost(op.a.free, inputs=2)


@dataclass(frozen=True)
class _Opcode:
    label: str
    validate: Callable[[_Context, Any], _Instruction]
    execute: Callable[[Any, Env], None]
    cost: Callable[[Any], cost_model.InstructionCost]


# Keyed by the field name of the Instruction oneof.
_OPCODES: dict[str, _Opcode] = {
    op.label: op for op in (
        _Opcode("dma_copy", _validate_dma_copy, _execute_dma_copy, _cost_dma_copy),
        _Opcode("matmul", _validate_matmul, _execute_matmul, _cost_matmul),
        _Opcode("activation", _validate_activation, _execute_activation, _cost_activation),
        _Opcode("tensor_reduce", _validate_tensor_reduce, _execute_tensor_reduce, _cost_tensor_reduce),
        _Opcode("tensor_tensor", _validate_tensor_tensor, _execute_tensor_tensor, _cost_tensor_tensor),
    )
}


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


class CompiledProgram:
    """A validated program: its HBM interface, executable steps and modeled timing."""

    def __init__(self, decls: _Declarations, steps: list[tuple[_Opcode, _Instruction]], code_bytes: int,
                 estimate: RunResult) -> None:
        self.parameters: dict[str, ParameterSpec] = decls.parameters
        self.constants: list[ParameterSpec] = decls.constants
        self.constant_data: dict[str, bytes] = decls.constant_data
        self.instruction_count = len(steps)
        self.code_bytes = code_bytes
        self.estimate = estimate
        self._tiles = list(decls.tiles.values())
        self._steps = [(opcode.execute, op) for opcode, op in steps]
        self._float_outputs = [spec.name for spec in self.parameters.values()
                               if spec.kind == pb.OUTPUT and dtypes.is_float(spec.dtype)]

    def __repr__(self) -> str:
        return (f"<CompiledProgram {len(self.parameters)} parameters, {len(self.constants)} constants, "
                f"{self.instruction_count} instructions, {self.estimate.device_time_ns} ns>")

    def run(self, hbm: dict[str, np.ndarray | None], *, timing_only: bool) -> RunResult:
        """Executes the program on `hbm` (every parameter and constant by name; None reads as zeros),
        writing OUTPUT arrays in place. With timing_only, nothing is computed or written."""
        nonfinite: list[str] = []
        if not timing_only:
            env = self._bind(hbm)
            with np.errstate(all="ignore"):  # NaN/Inf are data here, reported via nonfinite_outputs
                for execute, op in self._steps:
                    execute(op, env)
                nonfinite = [name for name in self._float_outputs if not np.isfinite(env[name]).all()]
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
        for tile in self._tiles:
            env[tile.name] = np.zeros(tile.shape, tile.np_dtype)
        return env


def compile_program(program: pb.Program) -> CompiledProgram:
    """Validates `program` for one NeuronCore-v2 and models its timing; raises ProgramError."""
    decls = _Declarations(program)
    schedule = cost_model.Schedule()
    steps: list[tuple[_Opcode, _Instruction]] = []
    flops = 0
    for index, instruction in enumerate(program.instructions):
        field = instruction.WhichOneof("op")
        opcode = _OPCODES.get(field or "")
        if opcode is None:
            raise ProgramError(f"instruction {index}: no operation set; use one of: {', '.join(_OPCODES)}")
        op = opcode.validate(_Context(decls, index, opcode.label), getattr(instruction, field))
        schedule.issue(opcode.cost(op), [v.region for v in op.reads], [v.region for v in op.writes])
        flops += op.flops
        steps.append((opcode, op))
    estimate = RunResult(
        device_time_ns=round(schedule.makespan_ns),
        engine_busy_ns={engine: round(ns) for engine, ns in schedule.busy_ns.items()},
        engine_instructions=dict(schedule.instructions),
        flops=flops,
        nonfinite_outputs=[],
    )
    return CompiledProgram(decls, steps, _code_bytes(program), estimate)
