"""A Kernel that reuses SBUF and PSUM tiles from one operation to the next.

A program's SBUF capacity is the sum of all the tiles it declares (192 KiB per partition), and every
library call declares its own tiles, so a whole transformer layer written as a sequence of library
calls would run out after a few of them. A compiler reuses on-chip memory once an operation is done
with it; PooledKernel does the same: tiles taken inside `operation()` go back to a pool when it ends,
and a later request is served by the smallest free tile of the same buffer and dtype that is at least
as large (as a view of it). The daemon tracks dependencies per region, so reuse only orders the
operations that share a tile, as the hardware would.

Tiles have one dtype for life, so a pool full of bfloat16 tiles cannot serve a float32 request:
`sbuf_free_bytes`, which library.matmul sizes its resident operands by, keeps RESERVE_BYTES back for
the other operations of the program.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from neurontools import dtypes
from neurontools.kernels.builder import DTypeLike, Kernel, Tensor, View, dtype_of

RESERVE_BYTES = 32 * 1024  # per partition: the float32 tiles of attention scores and norm statistics


class PooledKernel(Kernel):
    def __init__(self) -> None:
        super().__init__()
        self._free: list[Tensor] = []
        self._held: list[Tensor] | None = None

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        """Tiles taken inside the block return to the pool at its end."""
        if self._held is not None:
            raise RuntimeError("operations do not nest")
        self._held = []
        try:
            yield
        finally:
            self._free.extend(self._held)
            self._held = None

    @property
    def sbuf_free_bytes(self) -> int:
        return max(0, Kernel.sbuf_free_bytes.fget(self) - RESERVE_BYTES)

    def sbuf_fits(self, requests: Sequence[tuple[int, int, DTypeLike]]) -> bool:
        """As Kernel.sbuf_fits, counting the free tiles of the pool that would serve requests (the same
        choice sbuf() makes, largest request first), new tiles from the SBUF left."""
        free = [t for t in self._free if t.space == "sbuf"]
        left = self.sbuf_free_bytes
        for p, f, dtype in sorted(requests, key=lambda r: -r[1] * dtypes.itemsize(dtype_of(r[2]))):
            code = dtype_of(dtype)
            fits = [t for t in free if t.dtype == code and t.shape[0] >= p and t.shape[1] >= f]
            if fits:
                free.remove(min(fits, key=lambda t: (t.shape[1], t.shape[0])))
            else:
                left -= f * dtypes.itemsize(code)
                if left < 0:
                    return False
        return True

    def sbuf(self, shape: Sequence[int], dtype: DTypeLike, name: str | None = None) -> View:  # type: ignore[override]
        code = dtype_of(dtype)
        tile = self._reuse("sbuf", shape, code) or Kernel.sbuf(self, shape, code, name)
        return self._hold(tile, shape)

    def psum(self, shape: Sequence[int], name: str | None = None) -> View:  # type: ignore[override]
        tile = self._reuse("psum", shape, dtype_of("float32")) or Kernel.psum(self, shape, name)
        return self._hold(tile, shape)

    def _reuse(self, space: str, shape: Sequence[int], dtype: int) -> Tensor | None:
        p, f = shape
        fits = [t for t in self._free if t.space == space and t.dtype == dtype and t.shape[0] >= p and t.shape[1] >= f]
        if not fits:
            return None
        tile = min(fits, key=lambda t: (t.shape[1], t.shape[0]))
        self._free.remove(tile)
        return tile

    def _hold(self, tile: Tensor, shape: Sequence[int]) -> View:
        if self._held is not None:
            self._held.append(tile)
        return tile[0:shape[0], 0:shape[1]]
