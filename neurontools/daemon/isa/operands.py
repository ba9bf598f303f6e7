"""The operands of a program: its declarations (parameters, constants, tiles), validated views of
them, and the per-instruction validation context that resolves references and words errors."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa import cost_model
from neurontools.daemon.isa.limits import (ENGINE_MAX_FREE, ENGINE_NAMES, ENGINE_SPACES, HBM, HBM_MAX_RANK,
                                           PARTITIONS, PSUM, PSUM_BANKS, PSUM_BANK_BYTES, SBUF,
                                           SBUF_PARTITION_BYTES)


MAX_FREE_DIMS = 4  # an access pattern has up to 4 free dimensions (ref §2.3)


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


@dataclass(frozen=True)
class TileSpec:
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


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class View:
    """A validated Ref: a rectangular region of a parameter, constant or tile."""

    role: str                 # the operand's role in its instruction: "dst", "src", "stationary", ...
    name: str
    space: str                # HBM, SBUF or PSUM
    kind: str                 # "input parameter", "constant", "SBUF tile", ...
    declared: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]  # the box the view covers, in the declared shape's coordinates
    dtype: int
    np_dtype: np.dtype
    # An access pattern (Ref steps or free_shape): (start, stop, step) per dimension of the declared shape,
    # or of [P, *free_shape] for a tile read through free_shape; () for a plain window (bounds).
    pattern: tuple[tuple[int, int, int], ...] = ()
    free_shape: tuple[int, ...] = ()
    # Derived once (compile speed): the view's shape, element count, numpy index, region.
    shape: tuple[int, ...] = dataclasses.field(init=False)
    size: int = dataclasses.field(init=False)
    index: tuple[slice, ...] = dataclasses.field(init=False)
    region: cost_model.Region = dataclasses.field(init=False)
    read_only: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if self.pattern:
            counts = tuple(len(range(*dim)) for dim in self.pattern)
            # Engines see a tile view as [P, F]: its free dimensions flattened.
            shape = (counts[0], math.prod(counts[1:])) if self.free_shape else counts
            index = tuple(slice(*dim) for dim in self.pattern)
        else:
            shape = tuple(stop - start for start, stop in self.bounds)
            index = tuple(slice(start, stop) for start, stop in self.bounds)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "size", math.prod(shape))
        object.__setattr__(self, "index", index)
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
        if self.pattern:
            dims = self.pattern if self.space == HBM else self.pattern[1:]
            sizes = self.declared if self.space == HBM else (self.free_shape or self.declared[1:])
        elif self.space != HBM:
            return self.free
        else:
            dims, sizes = tuple((start, stop, 1) for start, stop in self.bounds), self.declared
        run = 1
        for (start, stop, step), size in zip(reversed(dims), reversed(sizes)):
            count = len(range(start, stop, step))
            if step != 1 and count > 1:  # its elements are not adjacent: each is a run of its own
                break
            run *= count
            if count != size:
                break
        return run

    @property
    def innermost_stride_bytes(self) -> int:
        """Bytes between consecutive elements of the view's innermost dimension (ref §2.3's 16 B rule)."""
        step = self.pattern[-1][2] if self.pattern else 1
        return step * self.np_dtype.itemsize

    def array(self, env: dict) -> np.ndarray:
        """The numpy view of this operand in a run's arrays (N-D for a tile read through free_shape)."""
        base = env[self.name]
        if self.free_shape:  # the leading elements of each partition, as free_shape (a view, no copy)
            base = base[:, :math.prod(self.free_shape)].reshape(base.shape[0], *self.free_shape)
        return base[self.index]

    def __str__(self) -> str:
        text = f'{self.role} {self.kind} "{self.name}" {fmt_shape(self.declared)}'
        if self.pattern:
            window = ", ".join(f"{start}:{stop}" + (f":{step}" if step != 1 else "")
                               for start, stop, step in self.pattern)
            reshaped = f" as {fmt_shape((self.declared[0], *self.free_shape))}" if self.free_shape else ""
            return text + f"{reshaped} view [{window}] = {fmt_shape(self.shape)}"
        if self.shape != self.declared:
            window = ", ".join(
                ":" if (start, stop) == (0, size) else f"{start}:{stop}"
                for (start, stop), size in zip(self.bounds, self.declared))
            text += f" view [{window}] = {fmt_shape(self.shape)}"
        return text


class Declarations:
    """Parameters, constants and tiles: one namespace, validated shapes, dtypes and on-chip capacity."""

    def __init__(self, program: pb.Program) -> None:
        self.parameters: dict[str, ParameterSpec] = {}
        self.constants: list[ParameterSpec] = []
        self.constant_data: dict[str, bytes] = {}
        self.tiles: dict[str, TileSpec] = {}
        self._all: dict[str, ParameterSpec | TileSpec] = {}
        self.views: dict[tuple, View] = {}  # validated operands, see Context.view
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
                        f"{fmt_shape(spec.shape)} needs {spec.nbytes}")
                self.constant_data[spec.name] = const.data
            self.constants.append(spec)
        for i, tile in enumerate(program.tiles):
            self._add_tile(f'tile {i} "{tile.name}"', tile)
        self._check_capacity()

    def lookup(self, name: str) -> ParameterSpec | TileSpec | None:
        return self._all.get(name)

    def names(self) -> list[str]:
        return list(self._all)

    def _declare(self, where: str, name: str, decl: ParameterSpec | TileSpec) -> None:
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
                f"{where}: shape {fmt_shape(shape)} is invalid; HBM tensors have rank 1 to {HBM_MAX_RANK} "
                "and every dimension >= 1")
        np_dtype = self._dtype(where, dtype)
        spec = ParameterSpec(name, kind, shape, dtype, np_dtype, math.prod(shape) * np_dtype.itemsize)
        self._declare(where, name, spec)
        return spec

    def _add_tile(self, where: str, tile: pb.Tile) -> None:
        shape = tuple(tile.shape)
        if tile.buffer not in (pb.SBUF, pb.PSUM):
            raise ProgramError(f"{where}: buffer must be SBUF or PSUM")
        buffer = SBUF if tile.buffer == pb.SBUF else PSUM
        if len(shape) != 2 or min(shape) < 1:
            raise ProgramError(
                f"{where}: {buffer} tile shape {fmt_shape(shape)} is invalid; a tile is [P, F] "
                "(partitions, free size), both >= 1")
        if shape[0] > PARTITIONS:
            raise ProgramError(
                f"{where}: {buffer} tile {fmt_shape(shape)} has {shape[0]} partitions; on-chip memory has "
                f"{PARTITIONS} (partition dimension <= {PARTITIONS}): split it into tiles of at most "
                f"{PARTITIONS} partitions")
        np_dtype = self._dtype(where, tile.dtype)
        spec = TileSpec(tile.name, tile.buffer, shape, tile.dtype, np_dtype)
        if tile.buffer == pb.PSUM:
            if tile.dtype != pb.FLOAT32:
                raise ProgramError(
                    f"{where}: PSUM tile {fmt_shape(shape)} is {dtypes.NAMES[tile.dtype]}; PSUM holds float32 "
                    "only (the Tensor engine accumulates in FP32): declare it float32")
            if spec.bytes_per_partition > PSUM_BANK_BYTES:
                raise ProgramError(
                    f"{where}: PSUM tile {fmt_shape(shape)} needs {spec.bytes_per_partition} bytes per "
                    f"partition; a PSUM tile must fit one {PSUM_BANK_BYTES // 1024} KiB bank "
                    f"(F <= {PSUM_BANK_BYTES // 4} float32): split the free dimension")
        self._declare(where, tile.name, spec)
        self.tiles[spec.name] = spec

    def _check_capacity(self) -> None:
        sbuf = sorted((t for t in self.tiles.values() if t.buffer == pb.SBUF),
                      key=lambda t: -t.bytes_per_partition)
        used = sum(t.bytes_per_partition for t in sbuf)
        if used > SBUF_PARTITION_BYTES:
            largest = ", ".join(f'"{t.name}" {fmt_kib(t.bytes_per_partition)}' for t in sbuf[:4])
            raise ProgramError(
                f"SBUF capacity: the SBUF tiles need {fmt_kib(used)} per partition ({largest}"
                f"{', ...' if len(sbuf) > 4 else ''}); a NeuronCore-v2 has {fmt_kib(SBUF_PARTITION_BYTES)} "
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


def fmt_kib(nbytes: int) -> str:
    return f"{nbytes / 1024:g} KiB"


class Context:
    """Validation of one instruction: resolves Refs and raises errors prefixed with where they are."""

    def __init__(self, decls: Declarations, index: int, label: str) -> None:
        self.decls = decls
        self.index = index
        self.label = label

    def fail(self, message: str) -> ProgramError:
        return ProgramError(f"instruction {self.index} ({self.label}): {message}")

    def view(self, ref: pb.Ref, role: str) -> View:
        # Loop bodies repeat the same operands: views are immutable, so each distinct one is built once.
        key = (role, ref.SerializeToString())  # the encoding is canonical, and fast to get
        view = self.decls.views.get(key)
        if view is None:
            view = self.decls.views[key] = self._new_view(ref, role)
        return view

    def _new_view(self, ref: pb.Ref, role: str) -> View:
        if not ref.name:
            raise self.fail(f"{role}: operand missing (empty name)")
        decl = self.decls.lookup(ref.name)
        if decl is None:
            known = self.decls.names()
            listing = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise self.fail(f'{role} refers to "{ref.name}", which is not declared '
                            f"(declared: {listing or 'nothing'})")
        if isinstance(decl, TileSpec):
            space = SBUF if decl.buffer == pb.SBUF else PSUM
            kind = f"{space} tile"
        else:
            space = HBM
            kind = {pb.INPUT: "input parameter", pb.OUTPUT: "output parameter"}.get(decl.kind, "constant")
        shape = decl.shape
        free_shape = tuple(ref.free_shape)
        indexed = shape
        if free_shape:
            where = f'{role} {kind} "{ref.name}" {fmt_shape(shape)}'
            if space == HBM:
                raise self.fail(f"{where}: free_shape is for tiles; slice an HBM tensor's own dimensions "
                                "(access pattern rule)")
            if len(free_shape) > MAX_FREE_DIMS or min(free_shape) < 1 or math.prod(free_shape) > shape[1]:
                raise self.fail(f"{where}: free_shape {fmt_shape(free_shape)} must be 1 to {MAX_FREE_DIMS} "
                                f"dimensions >= 1 whose product is at most the free size {shape[1]} (access "
                                "pattern rule: up to 4 free dimensions)")
            indexed = (shape[0], *free_shape)
        if len(ref.slices) > len(indexed):
            raise self.fail(f'{role} {kind} "{ref.name}" {fmt_shape(indexed)} has rank {len(indexed)} but '
                            f"{len(ref.slices)} slices were given")
        dims = []
        for dim, size in enumerate(indexed):
            if dim < len(ref.slices):
                piece = ref.slices[dim]
                start, stop, step = piece.start, piece.stop or size, piece.step or 1
                if stop > size or start >= stop:
                    problem = "is empty" if start >= stop and stop <= size else "is out of range"
                    raise self.fail(
                        f'{role} {kind} "{ref.name}" {fmt_shape(indexed)}: slice [{piece.start}:{piece.stop}] '
                        f"of dimension {dim} {problem} (dimension {dim} has {size} elements; "
                        "slices are [start, stop) with stop 0 meaning the end)")
                if step > 1 and dim == 0 and space != HBM:
                    raise self.fail(
                        f'{role} {kind} "{ref.name}": step {step} on the partition dimension; engines and DMA '
                        "address partitions contiguously (no stride along the partition dimension): put the "
                        "strided axis in the free dimension")
                dims.append((start, stop, step))
            else:
                dims.append((0, size, 1))
        last = [start + (len(range(start, stop, step)) - 1) * step for start, stop, step in dims]
        if free_shape:  # the box in [P, F] coordinates: from the first to the last element's free offset
            first_offset = int(np.ravel_multi_index([d[0] for d in dims[1:]], free_shape))
            last_offset = int(np.ravel_multi_index(last[1:], free_shape))
            bounds = ((dims[0][0], last[0] + 1), (first_offset, last_offset + 1))
        else:
            bounds = tuple((start, end + 1) for (start, _, _), end in zip(dims, last))
        pattern = tuple(dims) if free_shape or any(step != 1 for _, _, step in dims) else ()
        return View(role, ref.name, space, kind, shape, bounds, decl.dtype, decl.np_dtype, pattern, free_shape)

    def engine_view(self, ref: pb.Ref, role: str, engine: int, spaces: tuple[str, ...] | None = None) -> View:
        """A tile operand of a compute engine: in an allowed memory, at a legal partition window."""
        view = self.view(ref, role)
        name = ENGINE_NAMES[engine]
        spaces = spaces or ENGINE_SPACES[engine]
        if view.space not in spaces:
            writes = role in ("dst", "reduce_dst") or role.startswith("output ")
            reads = "writes" if writes else "reads"
            allowed = " or ".join(spaces)
            if view.space == HBM:
                fix = ("write an SBUF tile and store it with dma_copy" if writes
                       else "load it into an SBUF tile with dma_copy first")
            elif view.space == PSUM and engine == pb.GPSIMD:
                fix = "the GpSimd engine cannot access PSUM: use the Vector engine or an SBUF tile"
            elif view.space == PSUM:
                fix = "copy it to SBUF with tensor_copy first"
            else:
                fix = "write a PSUM tile instead"
            raise self.fail(f"{view}: the {name} engine {reads} {allowed} only ({name} engine memory "
                            f"access rule): {fix}")
        if view.pattern and (role in ("dst", "reduce_dst") or role.startswith("output ")):
            raise self.fail(f"{view}: an engine writes a window of a tile, not an access pattern (engine "
                            "destination rule): write a plain window and read it back through the pattern")
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

    def same_shape(self, first: View, second: View) -> None:
        if first.shape != second.shape:
            raise self.fail(f"{first} and {second} must have the same shape (elementwise shape rule)")

    def per_partition(self, view: View, data: View, rule: str) -> None:
        """`view` must hold one value per partition of `data`: [P, 1]."""
        if view.shape != (data.partitions, 1):
            raise self.fail(f"{view} must be [P, 1] = {fmt_shape((data.partitions, 1))}, one value per "
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


def overlap(a: View, b: View) -> bool:
    return a.name == b.name and all(s1 < e2 and s2 < e1 for (s1, e1), (s2, e2) in zip(a.bounds, b.bounds))
