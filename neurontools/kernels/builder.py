"""Write NeuronCore-v2 kernels in Python: declare tensors and tiles, call instructions, get a pb.Program.

    k = Kernel()
    x = k.input("x", (128, 512), "bfloat16")
    y = k.output("y", (128, 512), "bfloat16")
    t = k.sbuf((128, 512), "bfloat16")
    k.load(t, x)
    k.activation(t, t, "gelu")
    k.store(y, t)
    program = k.program()

Tensors and tiles slice like numpy arrays with unit steps (`t[0:64, 256:512]`); the builder tracks
SBUF and PSUM capacity as tiles are allocated and fails at once, naming the tile and the budget. Every
other rule is checked by the daemon when the program is loaded (neurontools.daemon.isa).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.limits import PARTITIONS, PSUM_BANK_BYTES, PSUM_BANKS, SBUF_PARTITION_BYTES
from neurontools.daemon.isa.operands import psum_banks_needed

DTypeLike = Union[str, int, np.dtype, type]


class KernelError(ValueError):
    """A kernel cannot be built as written (capacity, names, slicing)."""


def dtype_of(dtype: DTypeLike) -> int:
    """A pb.DType from a name ("bfloat16"), a pb.DType value or a numpy dtype."""
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        return dtype
    if isinstance(dtype, str):
        return dtypes.from_name(dtype)
    return dtypes.from_numpy(np.dtype(dtype))


def _enum(enum, value: str | int, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return enum.Value(value.upper())
    except ValueError:
        names = ", ".join(name.lower() for name in enum.keys()[1:])
        raise KernelError(f"unknown {what} {value!r}; use one of: {names}") from None


def _engine(engine: str | int | None) -> int:
    return pb.ENGINE_UNSPECIFIED if engine is None else _enum(pb.Engine, engine, "engine")


@dataclass(frozen=True)
class Tensor:
    """A declared name: an HBM parameter or constant, or an SBUF/PSUM tile."""

    name: str
    shape: tuple[int, ...]
    dtype: int
    space: str  # "hbm", "sbuf" or "psum"

    @property
    def whole(self) -> "View":
        return View(self, tuple((0, size) for size in self.shape))

    def __getitem__(self, key) -> "View":
        return self.whole[key]

    def ref(self) -> pb.Ref:
        return pb.Ref(name=self.name)

    def pattern(self, *slices: slice, free_shape: Sequence[int] = ()) -> "Pattern":
        """An access pattern: a start, stop and step per dimension (python slices), for HBM tensors and
        tiles; a tile's free dimension can be read as `free_shape` (up to 4 dimensions, C order), the
        slices then indexing [P, *free_shape]. E.g. the stride-2 taps of a convolution over a tile
        [C, H * W]: tile.pattern(slice(0, C), slice(kh, kh + 2 * rows, 2), slice(kw, kw + 2 * cols, 2),
        free_shape=(H, W)) is [C, rows * cols]."""
        if free_shape and math.prod(free_shape) > self.shape[1]:
            raise KernelError(f"{self.name}: free_shape {list(free_shape)} exceeds the free size {self.shape[1]}")
        indexed = (self.shape[0], *free_shape) if free_shape else self.shape
        if len(slices) > len(indexed):
            raise KernelError(f"{self.name}: {len(slices)} slices for a pattern of rank {len(indexed)}")
        dims = []
        for dim, size in enumerate(indexed):
            item = slices[dim] if dim < len(slices) else slice(None)
            if not isinstance(item, slice):
                raise KernelError(f"{self.name}: pattern dimension {dim} must be a slice, got {item!r}")
            start, stop, step = item.indices(size)
            if step < 1 or stop <= start:
                raise KernelError(f"{self.name}: pattern dimension {dim} [{start}:{stop}:{step}] must be a "
                                  "non-empty range with a positive step")
            dims.append((start, stop, step))
        return Pattern(self, tuple(dims), tuple(free_shape))


@dataclass(frozen=True)
class Pattern:
    """An access pattern over a Tensor (Tensor.pattern): engines see a tile's as [P, free elements]."""

    tensor: Tensor
    dims: tuple[tuple[int, int, int], ...]
    free_shape: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        counts = tuple(len(range(*dim)) for dim in self.dims)
        return (counts[0], math.prod(counts[1:])) if self.free_shape else counts

    @property
    def dtype(self) -> int:
        return self.tensor.dtype

    def ref(self) -> pb.Ref:
        return pb.Ref(name=self.tensor.name, free_shape=list(self.free_shape),
                      slices=[pb.Slice(start=a, stop=b, step=c if c != 1 else 0) for a, b, c in self.dims])


@dataclass(frozen=True)
class View:
    """A rectangular window of a Tensor: one [start, stop) per dimension."""

    tensor: Tensor
    bounds: tuple[tuple[int, int], ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.bounds)

    @property
    def dtype(self) -> int:
        return self.tensor.dtype

    def __getitem__(self, key) -> "View":
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) > len(self.bounds):
            raise KernelError(f"{self.tensor.name}: {len(keys)} indices for a view of rank {len(self.bounds)}")
        bounds = list(self.bounds)
        for dim, item in enumerate(keys):
            start, stop = bounds[dim]
            size = stop - start
            if isinstance(item, slice):
                if item.step not in (None, 1):
                    raise KernelError(f"{self.tensor.name}: step {item.step} in dimension {dim}; views are "
                                      "contiguous ranges (step 1)")
                lo, hi, _ = item.indices(size)
            elif isinstance(item, (int, np.integer)):
                lo = int(item) + size if item < 0 else int(item)
                hi = lo + 1
                if not 0 <= lo < size:
                    raise KernelError(f"{self.tensor.name}: index {item} out of range for dimension {dim} "
                                      f"of size {size}")
            else:
                raise KernelError(f"{self.tensor.name}: index {item!r} must be an int or a slice")
            if hi <= lo:
                raise KernelError(f"{self.tensor.name}: empty range [{lo}:{hi}] in dimension {dim}")
            bounds[dim] = (start + lo, start + hi)
        return View(self.tensor, tuple(bounds))

    def pattern(self, *slices: slice, free_shape: Sequence[int] = ()) -> "Pattern":
        """Tensor.pattern within this view, which must start at the tensor's origin (a pooled tile)."""
        if any(start for start, _ in self.bounds):
            raise KernelError(f"{self.tensor.name}: access patterns are taken from a view at the origin")
        limit = self.shape if not free_shape else (self.shape[0], *free_shape)
        if free_shape and math.prod(free_shape) > self.shape[1]:
            raise KernelError(f"{self.tensor.name}: free_shape {list(free_shape)} exceeds the view's free "
                              f"size {self.shape[1]}")
        for dim, item in enumerate(slices):
            stop = item.indices(limit[dim])[1] if dim < len(limit) else None
            if stop is None or (item.stop is not None and item.stop > limit[dim]):
                raise KernelError(f"{self.tensor.name}: pattern slice {item} leaves the view {list(self.shape)}")
        slices = tuple(slices) + tuple(slice(0, size) for size in limit[len(slices):])
        return self.tensor.pattern(*slices, free_shape=free_shape)

    def ref(self) -> pb.Ref:
        # Trailing whole dimensions need no slice.
        last = max((d + 1 for d, (bound, size) in enumerate(zip(self.bounds, self.tensor.shape))
                    if bound != (0, size)), default=0)
        return pb.Ref(name=self.tensor.name,
                      slices=[pb.Slice(start=a, stop=b) for a, b in self.bounds[:last]])


Operand = Union[Tensor, View, Pattern]
ScalarLike = Union[float, Operand]


def _ref(operand: Operand) -> pb.Ref:
    return operand.ref()


def _scalar(value: ScalarLike) -> pb.ScalarOperand:
    if isinstance(value, (Tensor, View)):
        return pb.ScalarOperand(tile=value.ref())
    return pb.ScalarOperand(value=float(value))


def _pattern(pattern: Sequence[tuple[int, int]]) -> list[pb.AccessPattern]:
    return [pb.AccessPattern(step=step, num=num) for step, num in pattern]


class Kernel:
    """Builds one program for one NeuronCore-v2."""

    def __init__(self) -> None:
        self._program = pb.Program()
        self._names: dict[str, Tensor] = {}
        self._sbuf: dict[str, int] = {}   # tile -> bytes per partition
        self._psum: dict[str, int] = {}
        self._counter = 0

    # -- declarations ------------------------------------------------------------------------------

    def input(self, name: str, shape: Sequence[int], dtype: DTypeLike) -> Tensor:
        return self._parameter(name, shape, dtype, pb.INPUT)

    def output(self, name: str, shape: Sequence[int], dtype: DTypeLike) -> Tensor:
        return self._parameter(name, shape, dtype, pb.OUTPUT)

    def constant(self, name: str, data: np.ndarray | None = None, *, shape: Sequence[int] | None = None,
                 dtype: DTypeLike | None = None) -> Tensor:
        """Weights kept in HBM with the model: from `data` (cast to `dtype`), or shape and dtype alone
        (allocated, reading as zeros: for timing-only models)."""
        if data is not None:
            array = np.asarray(data)
            code = dtype_of(dtype if dtype is not None else array.dtype)
            stored = dtypes.cast_to(array, code) if array.dtype != dtypes.storage_dtype(code) else array
            tensor = self._declare(name, tuple(array.shape), code, "hbm")
            self._program.constants.add(name=name, shape=array.shape, dtype=code,
                                        data=np.ascontiguousarray(stored).tobytes())
            return tensor
        if shape is None or dtype is None:
            raise KernelError(f"constant {name!r}: give data, or shape and dtype")
        tensor = self._declare(name, tuple(shape), dtype_of(dtype), "hbm")
        self._program.constants.add(name=name, shape=tensor.shape, dtype=tensor.dtype)
        return tensor

    def sbuf(self, shape: Sequence[int], dtype: DTypeLike, name: str | None = None) -> Tensor:
        """An SBUF tile [P, F]; fails when the kernel's SBUF tiles would exceed 192 KiB per partition."""
        tile = self._tile(shape, dtype_of(dtype), name, "sbuf")
        need = tile.shape[1] * dtypes.itemsize(tile.dtype)
        used = sum(self._sbuf.values())
        if used + need > SBUF_PARTITION_BYTES:
            largest = sorted(self._sbuf.items(), key=lambda item: -item[1])[:3]
            listing = ", ".join(f"{n} {b / 1024:g} KiB" for n, b in largest)
            raise KernelError(
                f"SBUF tile {tile.name!r} {list(tile.shape)} {dtypes.NAMES[tile.dtype]} needs "
                f"{need / 1024:g} KiB per partition but only {(SBUF_PARTITION_BYTES - used) / 1024:g} of "
                f"{SBUF_PARTITION_BYTES // 1024} KiB are left ({listing}{', ...' if len(self._sbuf) > 3 else ''}): "
                "reuse tiles or use smaller ones")
        self._sbuf[tile.name] = need
        return self._add_tile(tile, pb.SBUF)

    def psum(self, shape: Sequence[int], name: str | None = None) -> Tensor:
        """A float32 PSUM tile [P, F <= 512]; fails when the PSUM tiles would need more than 8 banks."""
        tile = self._tile(shape, pb.FLOAT32, name, "psum")
        need = tile.shape[1] * 4
        if need > PSUM_BANK_BYTES:
            raise KernelError(f"PSUM tile {tile.name!r} {list(tile.shape)} needs {need} bytes per partition; "
                              f"a PSUM tile fits one {PSUM_BANK_BYTES // 1024} KiB bank (F <= 512)")
        banks = psum_banks_needed([*self._psum.values(), need])
        if banks > PSUM_BANKS:
            raise KernelError(
                f"PSUM tile {tile.name!r} {list(tile.shape)} would make the PSUM tiles need {banks} banks; a "
                f"NeuronCore-v2 has {PSUM_BANKS} banks of {PSUM_BANK_BYTES // 1024} KiB per partition "
                f"({len(self._psum)} tiles already): reuse PSUM tiles")
        self._psum[tile.name] = need
        return self._add_tile(tile, pb.PSUM)

    @property
    def sbuf_free_bytes(self) -> int:
        """SBUF bytes per partition not yet taken by tiles."""
        return SBUF_PARTITION_BYTES - sum(self._sbuf.values())

    def sbuf_fits(self, requests: Sequence[tuple[int, int, DTypeLike]]) -> bool:
        """Whether SBUF tiles of these (partitions, free size, dtype) could all be allocated now."""
        return sum(f * dtypes.itemsize(dtype_of(dtype)) for _, f, dtype in requests) <= self.sbuf_free_bytes

    @property
    def psum_banks_used(self) -> int:
        return psum_banks_needed(list(self._psum.values()))

    def _parameter(self, name: str, shape: Sequence[int], dtype: DTypeLike, kind: int) -> Tensor:
        tensor = self._declare(name, tuple(shape), dtype_of(dtype), "hbm")
        self._program.parameters.add(name=name, kind=kind, shape=tensor.shape, dtype=tensor.dtype)
        return tensor

    def _tile(self, shape: Sequence[int], dtype: int, name: str | None, prefix: str) -> Tensor:
        shape = tuple(shape)
        if len(shape) != 2 or not 1 <= shape[0] <= PARTITIONS or shape[1] < 1:
            raise KernelError(f"tile shape {list(shape)} must be [P, F] with 1 <= P <= {PARTITIONS}, F >= 1")
        if name is None:
            while f"{prefix}{self._counter}" in self._names:
                self._counter += 1
            name = f"{prefix}{self._counter}"
        return Tensor(name, shape, dtype, prefix)

    def _add_tile(self, tile: Tensor, buffer: int) -> Tensor:
        self._declare(tile.name, tile.shape, tile.dtype, tile.space)
        self._program.tiles.add(name=tile.name, buffer=buffer, shape=tile.shape, dtype=tile.dtype)
        return tile

    def _declare(self, name: str, shape: tuple[int, ...], dtype: int, space: str) -> Tensor:
        if name in self._names:
            raise KernelError(f"{name!r} is already declared; inputs, outputs, constants and tiles share one "
                              "namespace")
        if not shape or min(shape) < 1:
            raise KernelError(f"{name!r}: shape {list(shape)} needs every dimension >= 1")
        tensor = self._names[name] = Tensor(name, shape, dtype, space)
        return tensor

    # -- instructions ------------------------------------------------------------------------------

    def _emit(self, **op) -> None:
        self._program.instructions.add(**op)

    def dma_copy(self, dst: Operand, src: Operand) -> None:
        self._emit(dma_copy=pb.DmaCopy(dst=_ref(dst), src=_ref(src)))

    def load(self, tile: Operand, src: Operand) -> None:
        """HBM -> SBUF."""
        self.dma_copy(tile, src)

    def store(self, dst: Operand, tile: Operand) -> None:
        """SBUF -> HBM."""
        self.dma_copy(dst, tile)

    def matmul(self, dst: Operand, stationary: Operand, moving: Operand, *, accumulate: bool = False) -> None:
        """dst[M, N] (=|+=) stationary[K, M].T @ moving[K, N] on the Tensor engine."""
        self._emit(matmul=pb.Matmul(dst=_ref(dst), stationary=_ref(stationary), moving=_ref(moving),
                                    accumulate=accumulate))

    def transpose(self, dst: Operand, src: Operand, *, engine: str | int | None = None) -> None:
        """dst[F, P] = src[P, F]: Tensor engine into PSUM (default) or Vector engine (<= 32 x 32)."""
        self._emit(transpose=pb.Transpose(dst=_ref(dst), src=_ref(src), engine=_engine(engine)))

    def activation(self, dst: Operand, src: Operand, function: str | int = "copy", *,
                   scale: ScalarLike = 1.0, bias: Operand | None = None, alpha: float = 0.0,
                   reduce: Operand | None = None) -> None:
        """dst = function(src * scale + bias) on the Scalar engine; scale is a number or a [P, 1] float32
        tile, bias a [P, 1] tile; `reduce` ([P, 1]) receives each partition's sum of the results."""
        msg = pb.Activation(dst=_ref(dst), src=_ref(src),
                            function=_enum(pb.ActivationFunction, function, "activation function"),
                            alpha=alpha)
        if isinstance(scale, (Tensor, View)):
            msg.scale_tile.CopyFrom(scale.ref())
        else:
            msg.scale = scale
        if bias is not None:
            msg.bias.CopyFrom(_ref(bias))
        if reduce is not None:
            msg.reduce_dst.CopyFrom(_ref(reduce))
        self._emit(activation=msg)

    def tensor_scalar(self, dst: Operand, src: Operand, op0: str | int, operand0: ScalarLike,
                      op1: str | int | None = None, operand1: ScalarLike = 0.0, *, reverse0: bool = False,
                      reverse1: bool = False, engine: str | int | None = None) -> None:
        """dst = (src op0 operand0) op1 operand1; operands are numbers or [P, 1] tiles."""
        self._emit(tensor_scalar=pb.TensorScalar(
            dst=_ref(dst), src=_ref(src), op0=_enum(pb.AluOp, op0, "ALU op"), operand0=_scalar(operand0),
            reverse0=reverse0, op1=pb.ALU_OP_UNSPECIFIED if op1 is None else _enum(pb.AluOp, op1, "ALU op"),
            operand1=_scalar(operand1), reverse1=reverse1, engine=_engine(engine)))

    def tensor_tensor(self, dst: Operand, a: Operand, b: Operand, op: str | int, *,
                      engine: str | int | None = None) -> None:
        self._emit(tensor_tensor=pb.TensorTensor(dst=_ref(dst), a=_ref(a), b=_ref(b),
                                                 op=_enum(pb.AluOp, op, "ALU op"), engine=_engine(engine)))

    def tensor_reduce(self, dst: Operand, src: Operand, op: str | int, *, free_shape: Sequence[int] = (),
                      axes: int = 0, negate: bool = False) -> None:
        """dst = op over the last `axes` of src's free axis read as free_shape (default: all of it)."""
        self._emit(tensor_reduce=pb.TensorReduce(dst=_ref(dst), src=_ref(src), op=_enum(pb.AluOp, op, "ALU op"),
                                                 free_shape=free_shape, axes=axes, negate=negate))

    def bn_stats(self, dst: Operand, src: Operand) -> None:
        self._emit(bn_stats=pb.BnStats(dst=_ref(dst), src=_ref(src)))

    def bn_aggr(self, dst: Operand, src: Operand) -> None:
        self._emit(bn_aggr=pb.BnAggr(dst=_ref(dst), src=_ref(src)))

    def iota(self, dst: Operand, pattern: Sequence[tuple[int, int]] = (), *, offset: int = 0,
             channel_multiplier: int = 0) -> None:
        """dst[p, i...] = offset + p * channel_multiplier + sum(step * i) for pattern [(step, num), ...]."""
        self._emit(iota=pb.Iota(dst=_ref(dst), pattern=_pattern(pattern), offset=offset,
                                channel_multiplier=channel_multiplier))

    def affine_select(self, dst: Operand, on_true: Operand, on_false_value: float, *,
                      pattern: Sequence[tuple[int, int]] = (), offset: int = 0, channel_multiplier: int = 0,
                      cmp: str | int = "is_ge") -> None:
        """dst = on_true where (affine value, as in iota) cmp 0, else on_false_value."""
        self._emit(affine_select=pb.AffineSelect(
            dst=_ref(dst), on_true=_ref(on_true), on_false_value=on_false_value, pattern=_pattern(pattern),
            offset=offset, channel_multiplier=channel_multiplier, cmp_op=_enum(pb.AluOp, cmp, "comparison")))

    def partition_reduce(self, dst: Operand, src: Operand, op: str | int) -> None:
        """dst[1, F] = op over the partitions of src (GpSimd)."""
        self._emit(tensor_partition_reduce=pb.TensorPartitionReduce(dst=_ref(dst), src=_ref(src),
                                                                    op=_enum(pb.AluOp, op, "ALU op")))

    def custom(self, name: str, outputs: Sequence[Operand], inputs: Sequence[Operand], **attributes: float) -> None:
        """A custom operator registered in the daemon, by name."""
        self._emit(custom_op=pb.CustomOp(name=name, outputs=[_ref(o) for o in outputs],
                                         inputs=[_ref(i) for i in inputs], attributes=attributes))

    def memset(self, dst: Operand, value: float, *, engine: str | int | None = None) -> None:
        self._emit(memset=pb.Memset(dst=_ref(dst), value=value, engine=_engine(engine)))

    def tensor_copy(self, dst: Operand, src: Operand, *, engine: str | int | None = None) -> None:
        self._emit(tensor_copy=pb.TensorCopy(dst=_ref(dst), src=_ref(src), engine=_engine(engine)))

    # -- result ------------------------------------------------------------------------------------

    @property
    def instruction_count(self) -> int:
        return len(self._program.instructions)

    def program(self) -> pb.Program:
        """The kernel as the wire format (a copy: the kernel may keep growing)."""
        program = pb.Program()
        program.CopyFrom(self._program)
        return program

