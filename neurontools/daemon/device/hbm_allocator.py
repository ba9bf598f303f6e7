"""HBM and host memory allocation: placed regions whose bytes exist only once written.

An allocation is real placement (offset, alignment, fragmentation, out-of-memory) and is charged to a
MemoryLedger, but it costs the daemon nothing until data is written into it (design principle 5): a fully
allocated 384 GiB inf2.48xlarge stays a few hundred small Python objects.
"""

from __future__ import annotations

import itertools
import math
import threading
from bisect import bisect_left, insort
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psutil

from neurontools.daemon.device.memory_ledger import MemoryLedger

# A region's buffer is written sparsely (a chunk here and there of a multi-GiB tensor): with
# transparent huge pages each small write would make a whole 2 MiB page resident.
np._core.multiarray._set_madvise_hugepage(False)

# One id space for every region of the daemon, device or host, so an id alone names a region.
# next() on itertools.count is atomic under the GIL.
_region_ids = itertools.count(1)

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int) -> str:
    """Human units for messages: "512 B", "4.0 KiB", "1.5 MiB", "40.0 GiB"."""
    if abs(n) < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in _UNITS[:-1]:
        # Move up a unit rather than print "1024.0 KiB".
        if abs(round(value, 1)) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"


class OutOfMemory(Exception):
    """An allocation that does not fit. All sizes in bytes.

    `largest_possible`, when given, is the largest block the memory could ever hold (one HBM stack):
    a request above it can never succeed however much is freed, and the message says so."""

    def __init__(
        self, where: str, needed: int, free: int, largest_free: int, *, largest_possible: int | None = None
    ) -> None:
        self.where = where
        self.needed = needed
        self.free = free
        self.largest_free = largest_free
        self.largest_possible = largest_possible
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"needs {format_bytes(self.needed)} on {self.where}, {format_bytes(self.free)} free"
        if self.largest_possible is not None and self.needed > self.largest_possible:
            return (
                f"{text}, but one allocation cannot span HBM stacks and a stack holds "
                f"{format_bytes(self.largest_possible)} (split it)"
            )
        if self.free >= self.needed:
            largest = format_bytes(self.largest_free)
            if largest == format_bytes(self.needed):  # "needs 4.0 GiB ... largest 4.0 GiB" would read as a bug
                largest = f"{self.largest_free} bytes, short of the {self.needed} needed"
            return f"{text} but the largest free block is {largest} (fragmented)"
        return text


class _RegionOwner:
    """What device and host memory share: the lock, the ledger, and the bookkeeping of regions' bytes."""

    def __init__(self, where: str, ledger: MemoryLedger) -> None:
        self._where = where
        self._ledger = ledger
        self._lock = threading.Lock()
        self._materialized = 0

    @property
    def materialized_bytes(self) -> int:
        """Bytes of regions that hold a buffer. An upper bound on what the daemon really has resident:
        a buffer comes from calloc, so pages never written stay unbacked."""
        with self._lock:
            return self._materialized

    def _materialize(self, region: Region) -> np.ndarray:
        with self._lock:
            region._check_live()
            if region._buf is None:
                try:
                    region._buf = np.zeros(region.size, dtype=np.uint8)
                except MemoryError as exc:
                    available = psutil.virtual_memory().available
                    raise OutOfMemory(
                        f"the daemon's host (holding region {region.region_id}'s data)", region.size, available, available
                    ) from exc
                self._materialized += region.size
            return region._buf

    def _dematerialize(self, region: Region) -> None:
        with self._lock:
            if region._buf is not None:
                region._buf = None
                self._materialized -= region.size

    def _release(self, region: Region) -> None:
        """The owner-independent part of free(); call with the lock held."""
        if region._owner is not self:
            raise ValueError(
                f"region {region.region_id} belongs to {region._owner._where}, not {self._where}"
            )
        if region._freed:
            raise ValueError(f"double free of region {region.region_id} on {self._where}")
        # The ledger first: it checks before changing anything, so a bug it reports leaves the region intact.
        self._ledger.sub(region._scopes, region.category, region.size)
        region._freed = True
        if region._buf is not None:
            region._buf = None
            self._materialized -= region.size


class Region:
    """One placed allocation. Bytes are materialized lazily: only when first written."""

    __slots__ = (
        "region_id", "device_index", "stack", "offset", "size", "reserved", "category",
        "session_id", "core_id", "model_id", "_owner", "_scopes", "_buf", "_freed",
    )  # fmt: skip

    def __init__(
        self,
        owner: _RegionOwner,
        *,
        device_index: int | None,
        stack: int,
        offset: int,
        size: int,
        reserved: int,
        category: int,
        session_id: int,
        core_id: int,
        model_id: int | None,
        scopes: tuple[Hashable, ...],
    ) -> None:
        self.region_id = next(_region_ids)
        self.device_index = device_index
        self.stack = stack
        self.offset = offset
        self.size = size
        self.reserved = reserved
        self.category = category
        self.session_id = session_id
        self.core_id = core_id
        self.model_id = model_id
        self._owner = owner
        self._scopes = scopes  # the ledger scopes charged at allocation, released again by free()
        self._buf: np.ndarray | None = None
        self._freed = False

    def __repr__(self) -> str:
        return (
            f"Region(id={self.region_id}, device={self.device_index}, stack={self.stack}, "
            f"offset={self.offset}, size={self.size}, category={self.category})"
        )

    @property
    def materialized(self) -> bool:
        return self._buf is not None

    def _check_live(self) -> None:
        if self._freed:
            raise ValueError(f"region {self.region_id} was freed")

    def _check_range(self, what: str, offset: int, length: int) -> None:
        self._check_live()
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(
                f"{what} of {length} bytes at offset {offset} is outside region {self.region_id} "
                f"of size {self.size} bytes"
            )

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset`; zeros where never written (without materializing)."""
        self._check_range("read", offset, length)
        buf = self._buf
        if buf is None:
            return bytes(length)
        return buf[offset : offset + length].tobytes()

    def write(self, offset: int, data: bytes | memoryview) -> None:
        """Copy `data` in at `offset`, materializing the region on its first non-empty write."""
        view = memoryview(data).cast("B")  # byte length, whatever the source's item format
        self._check_range("write", offset, len(view))
        if not view:
            return
        buf = self._owner._materialize(self)
        buf[offset : offset + len(view)] = np.frombuffer(view, dtype=np.uint8)

    def array(self, np_dtype: npt.DTypeLike, shape: int | Iterable[int], *, for_write: bool) -> np.ndarray | None:
        """A numpy view of the region's bytes as `np_dtype` with `shape` (which must cover it exactly).

        for_write=True materializes and returns a writable view; for_write=False returns None when the
        region was never written (callers treat it as zeros) and a read-only view otherwise."""
        dtype = np.dtype(np_dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != self.size:
            raise ValueError(
                f"an array of shape {shape} and dtype {dtype} is {nbytes} bytes, "
                f"region {self.region_id} is {self.size} bytes"
            )
        self._check_live()
        if for_write:
            buf = self._owner._materialize(self)
        else:
            buf = self._buf
            if buf is None:
                return None
        view = buf.view(dtype).reshape(shape)
        if not for_write:
            view.flags.writeable = False
        return view

    def copy_from(self, other: Region) -> None:
        """Make this region's bytes equal to `other`'s (same size). Copying never-written data leaves
        this region unmaterialized — and releases its buffer if it had one, since it now reads as zeros."""
        if other.size != self.size:
            raise ValueError(
                f"cannot copy region {other.region_id} ({other.size} bytes) into "
                f"region {self.region_id} ({self.size} bytes): sizes differ"
            )
        self._check_live()
        other._check_live()
        if other is self:
            return
        src = other._buf
        if src is None:
            self._owner._dematerialize(self)
        else:
            self._owner._materialize(self)[:] = src


@dataclass(frozen=True)
class StackStats:
    size_bytes: int
    used_bytes: int
    free_bytes: int
    largest_free_bytes: int
    free_blocks: int  # separate free extents: 1 on an empty or fully coalesced stack
    allocations: int


class _Stack:
    """The free extents of one HBM stack, indexed twice: by offset, to find the neighbours to coalesce
    with, and by (size, offset), to find the best fit with a bisect."""

    __slots__ = ("size", "free", "allocations", "_offsets", "_size_at", "_by_size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.allocations = 0
        self._offsets = [0]
        self._size_at = {0: size}
        self._by_size = [(size, 0)]

    def stats(self) -> StackStats:
        return StackStats(
            size_bytes=self.size,
            used_bytes=self.size - self.free,
            free_bytes=self.free,
            largest_free_bytes=self.largest_free(),
            free_blocks=len(self._offsets),
            allocations=self.allocations,
        )

    def largest_free(self) -> int:
        return self._by_size[-1][0] if self._by_size else 0

    def take(self, nbytes: int) -> int | None:
        """Place `nbytes` (> 0, aligned) and return its offset, or None when no extent is large enough.

        Best fit — the smallest extent that fits, lowest offset on ties — leaves the large extents whole
        for the large allocations that come later (the next model's weights, a KV cache), which is what
        decides whether a workload fits; first fit would chip away at the big extent at the front."""
        i = bisect_left(self._by_size, (nbytes, -1))
        if i == len(self._by_size):
            return None
        size, offset = self._by_size[i]
        self._remove(offset, size)
        if size > nbytes:
            self._insert(offset + nbytes, size - nbytes)
        self.free -= nbytes
        return offset

    def give_back(self, offset: int, nbytes: int) -> None:
        """Return a placed extent, merged with free neighbours so free space never stays split."""
        self.free += nbytes
        i = bisect_left(self._offsets, offset)
        if i < len(self._offsets) and self._offsets[i] == offset + nbytes:
            nbytes += self._remove(offset + nbytes, self._size_at[offset + nbytes])
        if i > 0:
            before = self._offsets[i - 1]
            before_size = self._size_at[before]
            if before + before_size == offset:
                self._remove(before, before_size)
                offset, nbytes = before, before_size + nbytes
        self._insert(offset, nbytes)

    def _insert(self, offset: int, size: int) -> None:
        insort(self._offsets, offset)
        self._size_at[offset] = size
        insort(self._by_size, (size, offset))

    def _remove(self, offset: int, size: int) -> int:
        del self._offsets[bisect_left(self._offsets, offset)]
        del self._size_at[offset]
        del self._by_size[bisect_left(self._by_size, (size, offset))]
        return size


class DeviceMemory(_RegionOwner):
    """The HBM of one neuron device: several stacks (2 x 16 GiB on Inferentia2), each a placement allocator."""

    def __init__(self, device_index: int, stack_sizes: list[int], ledger: MemoryLedger, alignment: int = 512) -> None:
        if alignment <= 0:
            raise ValueError(f"alignment must be positive, got {alignment}")
        if not stack_sizes:
            raise ValueError("a device needs at least one HBM stack")
        for size in stack_sizes:
            if size <= 0 or size % alignment:
                raise ValueError(f"HBM stack size {size} must be a positive multiple of the alignment {alignment}")
        super().__init__(f"neuron device {device_index}", ledger)
        self.device_index = device_index
        self.alignment = alignment
        self._stacks = [_Stack(size) for size in stack_sizes]

    def allocate(
        self,
        size: int,
        category: int,
        *,
        session_id: int,
        core_id: int,
        model_id: int | None = None,
        preferred_stack: int | None = None,
        scopes: Iterable[Hashable] = (),
    ) -> Region:
        """Place `size` bytes, on `preferred_stack` if it fits there, else on the first other stack that
        has room. Charges ("device", index) and `scopes` in the ledger. Raises OutOfMemory."""
        if size < 0:
            raise ValueError(f"allocation size must be >= 0, got {size}")
        count = len(self._stacks)
        if preferred_stack is not None and not 0 <= preferred_stack < count:
            raise ValueError(f"{self._where} has HBM stacks 0..{count - 1}, not {preferred_stack}")
        first = preferred_stack or 0
        order = [first, *(i for i in range(count) if i != first)]
        reserved = -(-size // self.alignment) * self.alignment
        charged = (("device", self.device_index), *scopes)
        with self._lock:
            for index in order:
                # A zero-byte region occupies no extent; it still exists, with an id, on the preferred stack.
                offset = self._stacks[index].take(reserved) if reserved else 0
                if offset is not None:
                    break
            else:
                raise OutOfMemory(
                    self._where,
                    reserved,
                    sum(stack.free for stack in self._stacks),
                    max(stack.largest_free() for stack in self._stacks),
                    largest_possible=max(stack.size for stack in self._stacks),
                )
            self._stacks[index].allocations += 1
            self._ledger.add(charged, category, size)
            return Region(
                self, device_index=self.device_index, stack=index, offset=offset, size=size, reserved=reserved,
                category=category, session_id=session_id, core_id=core_id, model_id=model_id, scopes=charged,
            )  # fmt: skip

    def free(self, region: Region) -> None:
        """Release a region; its extent merges with free neighbours. Double free raises ValueError."""
        with self._lock:
            self._release(region)
            stack = self._stacks[region.stack]
            if region.reserved:
                stack.give_back(region.offset, region.reserved)
            stack.allocations -= 1

    @property
    def total_bytes(self) -> int:
        return sum(stack.size for stack in self._stacks)

    @property
    def used_bytes(self) -> int:
        """Bytes placed, alignment padding included."""
        with self._lock:
            return sum(stack.size - stack.free for stack in self._stacks)

    @property
    def free_bytes(self) -> int:
        with self._lock:
            return sum(stack.free for stack in self._stacks)

    def stack_stats(self) -> list[StackStats]:
        with self._lock:
            return [stack.stats() for stack in self._stacks]


class HostMemory(_RegionOwner):
    """Host DRAM used by runtime sessions (instance host memory), same Region type, no placement."""

    def __init__(self, total_bytes: int, ledger: MemoryLedger) -> None:
        if total_bytes < 0:
            raise ValueError(f"host memory size must be >= 0, got {total_bytes}")
        super().__init__("host", ledger)
        self._total = total_bytes
        self._used = 0

    def allocate(
        self,
        size: int,
        category: int,
        *,
        session_id: int,
        core_id: int,
        model_id: int | None = None,
        scopes: Iterable[Hashable] = (),
    ) -> Region:
        """Reserve `size` bytes of host memory, charged to ("host",) and `scopes`. Raises OutOfMemory."""
        if size < 0:
            raise ValueError(f"allocation size must be >= 0, got {size}")
        charged = (("host",), *scopes)
        with self._lock:
            free = self._total - self._used
            if size > free:
                raise OutOfMemory(self._where, size, free, free)
            self._used += size
            self._ledger.add(charged, category, size)
            return Region(
                self, device_index=None, stack=0, offset=0, size=size, reserved=size,
                category=category, session_id=session_id, core_id=core_id, model_id=model_id, scopes=charged,
            )  # fmt: skip

    def free(self, region: Region) -> None:
        """Release a region. Double free raises ValueError."""
        with self._lock:
            self._release(region)
            self._used -= region.reserved

    @property
    def total_bytes(self) -> int:
        return self._total

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return self._used
