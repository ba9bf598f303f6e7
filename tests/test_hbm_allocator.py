"""HBM and host allocation: placement, fragmentation, out-of-memory messages, lazy bytes, accounting."""

from __future__ import annotations

import threading

import ml_dtypes
import numpy as np
import psutil
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import hbm_allocator
from neurontools.daemon.device.hbm_allocator import DeviceMemory, HostMemory, OutOfMemory, Region, format_bytes
from neurontools.daemon.device.memory_ledger import MemoryLedger

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def small_device(stacks: list[int] | None = None, index: int = 0) -> DeviceMemory:
    return DeviceMemory(index, stacks or [64 * KiB, 64 * KiB], MemoryLedger(), alignment=512)


def alloc(memory: DeviceMemory, size: int, **kwargs) -> Region:
    return memory.allocate(size, pb.TENSORS, session_id=1, core_id=0, **kwargs)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (512, "512 B"), (4 * KiB, "4.0 KiB"), (3 * MiB // 2, "1.5 MiB"), (40 * GiB, "40.0 GiB"),
     (MiB - 1, "1.0 MiB"), (3 * (1 << 40), "3.0 TiB")],
)  # fmt: skip
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


# --- placement -------------------------------------------------------------------------------------


def test_offsets_and_reserved_sizes_are_aligned() -> None:
    memory = small_device()
    a = alloc(memory, 100)
    b = alloc(memory, 1000)
    c = alloc(memory, 512)

    assert (a.offset, a.size, a.reserved) == (0, 100, 512)
    assert (b.offset, b.size, b.reserved) == (512, 1000, 1024)
    assert (c.offset, c.reserved) == (1536, 512)
    assert memory.used_bytes == 2048
    assert memory.free_bytes == memory.total_bytes - 2048 == 128 * KiB - 2048
    assert len({a.region_id, b.region_id, c.region_id}) == 3


def test_best_fit_takes_the_smallest_hole_that_fits_lowest_offset_on_ties() -> None:
    memory = small_device([16 * KiB])
    regions = [alloc(memory, size) for size in (2048, 512, 1024, 512, 1024, 512)]
    for index in (0, 2, 4):  # holes: 2 KiB at 0, 1 KiB at 2560, 1 KiB at 4096, then the tail at 5632
        memory.free(regions[index])
    assert memory.stack_stats()[0].free_blocks == 4

    assert alloc(memory, 700).offset == 2560  # smallest fitting hole, the lower of two equal ones
    assert alloc(memory, 1024).offset == 4096
    assert alloc(memory, 1500).offset == 0  # the 2 KiB hole, not the large tail; 512 B stay free at 1536
    assert alloc(memory, 600).offset == 5632  # too big for that remainder
    assert alloc(memory, 400).offset == 1536


def test_fragmentation_is_reported_and_freeing_everything_coalesces_to_one_extent() -> None:
    memory = small_device([8 * KiB])
    regions = [alloc(memory, KiB) for _ in range(8)]
    for region in regions[::2]:
        memory.free(region)

    (stats,) = memory.stack_stats()
    assert (stats.used_bytes, stats.free_bytes, stats.largest_free_bytes, stats.free_blocks, stats.allocations) == (
        4 * KiB, 4 * KiB, KiB, 4, 4,
    )  # fmt: skip
    with pytest.raises(OutOfMemory, match=r"4\.0 KiB free but the largest free block is 1\.0 KiB \(fragmented\)"):
        alloc(memory, 2 * KiB)

    for region in regions[1::2]:
        memory.free(region)
    (stats,) = memory.stack_stats()
    assert (stats.free_blocks, stats.largest_free_bytes, stats.allocations, stats.used_bytes) == (1, 8 * KiB, 0, 0)
    assert alloc(memory, 8 * KiB).offset == 0


def test_freeing_merges_with_both_neighbours() -> None:
    memory = small_device([4 * KiB])
    a, b, c, d = (alloc(memory, KiB) for _ in range(4))
    memory.free(a)
    memory.free(c)
    assert memory.stack_stats()[0].free_blocks == 2
    memory.free(b)  # joins the hole before and the hole after
    assert memory.stack_stats()[0].free_blocks == 1
    assert memory.stack_stats()[0].largest_free_bytes == 3 * KiB
    memory.free(d)


def test_preferred_stack_first_then_fallback_to_another() -> None:
    memory = small_device([4 * KiB, 4 * KiB])
    assert alloc(memory, KiB).stack == 0
    assert alloc(memory, KiB, preferred_stack=1).stack == 1
    assert alloc(memory, 3 * KiB, preferred_stack=1).stack == 1  # stack 1 now full
    spilled = alloc(memory, KiB, preferred_stack=1)
    assert (spilled.stack, spilled.offset) == (0, KiB)

    with pytest.raises(ValueError, match="stacks 0..1, not 2"):
        alloc(memory, KiB, preferred_stack=2)


def test_zero_byte_region_exists_without_occupying_space() -> None:
    memory = small_device()
    empty = alloc(memory, 0, preferred_stack=1)
    other = alloc(memory, 0)

    assert empty.region_id != other.region_id
    assert (empty.stack, empty.size, empty.reserved) == (1, 0, 0)
    assert empty.read(0, 0) == b""
    assert memory.used_bytes == 0
    assert memory.stack_stats()[1].allocations == 1
    memory.free(empty)
    memory.free(other)
    assert [s.allocations for s in memory.stack_stats()] == [0, 0]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of the alignment"):
        DeviceMemory(0, [1000], MemoryLedger())
    with pytest.raises(ValueError, match=">= 0"):
        alloc(small_device(), -1)


# --- out of memory ---------------------------------------------------------------------------------


def test_out_of_memory_names_device_needed_and_free() -> None:
    memory = DeviceMemory(3, [64 * GiB], MemoryLedger())
    alloc(memory, 64 * GiB - 25 * GiB // 2)

    with pytest.raises(OutOfMemory) as caught:
        alloc(memory, 40 * GiB)
    assert str(caught.value) == "needs 40.0 GiB on neuron device 3, 12.5 GiB free"
    assert (caught.value.where, caught.value.needed, caught.value.free, caught.value.largest_free) == (
        "neuron device 3", 40 * GiB, 25 * GiB // 2, 25 * GiB // 2,
    )  # fmt: skip


def test_out_of_memory_says_when_fragmentation_is_the_cause() -> None:
    memory = DeviceMemory(3, [64 * GiB], MemoryLedger())
    blocks = [alloc(memory, GiB) for _ in range(64)]
    for index in [*range(0, 10), *range(11, 21), *range(22, 32), *range(33, 43), 44]:
        memory.free(blocks[index])

    with pytest.raises(OutOfMemory) as caught:
        alloc(memory, 40 * GiB)
    assert str(caught.value) == (
        "needs 40.0 GiB on neuron device 3, 41.0 GiB free but the largest free block is 10.0 GiB (fragmented)"
    )
    assert caught.value.largest_free == 10 * GiB


def test_out_of_memory_explains_that_an_allocation_cannot_span_stacks() -> None:
    memory = DeviceMemory(3, [16 * GiB, 16 * GiB], MemoryLedger())
    with pytest.raises(OutOfMemory) as caught:
        alloc(memory, 20 * GiB)
    assert str(caught.value).startswith("needs 20.0 GiB on neuron device 3, 32.0 GiB free")
    assert "cannot span HBM stacks and a stack holds 16.0 GiB" in str(caught.value)


def test_out_of_memory_leaves_state_and_accounting_untouched() -> None:
    memory = small_device([4 * KiB])
    alloc(memory, 3 * KiB)
    before = memory.stack_stats()
    with pytest.raises(OutOfMemory):
        alloc(memory, 2 * KiB)
    assert memory.stack_stats() == before
    assert memory._ledger.used(("device", 0)) == 3 * KiB


# --- accounting ------------------------------------------------------------------------------------


def test_allocation_charges_the_device_and_the_callers_scopes_and_free_releases_them() -> None:
    ledger = MemoryLedger()
    memory = DeviceMemory(2, [64 * KiB, 64 * KiB], ledger)
    scopes = [("core", 5), ("session", 9), ("session_core", 9, 5)]
    tensor = memory.allocate(1000, pb.TENSORS, session_id=9, core_id=5, scopes=iter(scopes))
    weights = memory.allocate(3000, pb.CONSTANTS, session_id=9, core_id=5, model_id=10001, scopes=scopes)

    for scope in [("device", 2), *scopes]:
        assert ledger.categories(scope) == {pb.TENSORS: (1000, 1000), pb.CONSTANTS: (3000, 3000)}
    assert memory.used_bytes == 1024 + 3072  # placement counts the aligned size, the ledger the requested one
    assert weights.model_id == 10001 and tensor.model_id is None

    memory.free(tensor)
    memory.free(weights)
    for scope in [("device", 2), *scopes]:
        assert ledger.used(scope) == 0
        assert ledger.peak(scope) == 4000


def test_double_free_and_foreign_free_are_errors() -> None:
    first, second = small_device(index=0), small_device(index=1)
    region = alloc(first, 100)
    with pytest.raises(ValueError, match="belongs to neuron device 0, not neuron device 1"):
        second.free(region)
    first.free(region)
    with pytest.raises(ValueError, match=f"double free of region {region.region_id}"):
        first.free(region)
    assert first.used_bytes == 0


# --- lazy bytes ------------------------------------------------------------------------------------


def test_a_fully_allocated_device_materializes_nothing_until_written() -> None:
    rss_before = psutil.Process().memory_info().rss
    memory = DeviceMemory(0, [16 * GiB, 16 * GiB], MemoryLedger())
    regions = [alloc(memory, GiB, preferred_stack=i % 2) for i in range(32)]
    assert memory.free_bytes == 0

    assert regions[7].read(GiB - 8, 8) == bytes(8)
    assert regions[7].array(np.float32, GiB // 4, for_write=False) is None
    assert memory.materialized_bytes == 0
    assert not any(region.materialized for region in regions)

    regions[3].write(1000, b"\x01\x02\x03")
    assert memory.materialized_bytes == GiB
    assert [region.region_id for region in regions if region.materialized] == [regions[3].region_id]
    assert regions[3].read(999, 5) == b"\x00\x01\x02\x03\x00"
    # Only the pages written are resident: the buffer comes from calloc.
    assert psutil.Process().memory_info().rss - rss_before < 64 * MiB

    memory.free(regions[3])
    assert memory.materialized_bytes == 0


def test_write_accepts_any_contiguous_buffer_and_an_empty_write_materializes_nothing() -> None:
    memory = small_device()
    region = alloc(memory, 16)
    region.write(16, b"")
    assert not region.materialized
    region.write(0, memoryview(np.arange(4, dtype=np.uint32)))
    assert region.read(0, 16) == np.arange(4, dtype=np.uint32).tobytes()


@pytest.mark.parametrize(("offset", "length"), [(-1, 4), (0, 17), (10, 7), (16, 1), (0, -1)])
def test_read_and_write_outside_the_region_are_rejected(offset: int, length: int) -> None:
    region = alloc(small_device(), 16)
    with pytest.raises(ValueError, match=f"read of {length} bytes at offset {offset} is outside .* size 16 bytes"):
        region.read(offset, length)
    if length >= 0:
        with pytest.raises(ValueError, match=f"write of {length} bytes at offset {offset} is outside"):
            region.write(offset, bytes(length))
    assert not region.materialized


def test_a_freed_region_cannot_be_used() -> None:
    memory = small_device()
    region = alloc(memory, 16)
    memory.free(region)
    for use in (lambda: region.read(0, 1), lambda: region.write(0, b"x"),
                lambda: region.array(np.uint8, 16, for_write=True)):  # fmt: skip
        with pytest.raises(ValueError, match="was freed"):
            use()


def test_array_views_share_the_region_bytes() -> None:
    region = alloc(small_device(), 24)
    assert region.array(np.float32, (2, 3), for_write=False) is None

    writable = region.array(np.float32, (2, 3), for_write=True)
    assert writable.shape == (2, 3) and writable.flags.writeable and not writable.any()
    writable[1, 2] = 1.5
    assert region.read(20, 4) == np.float32(1.5).tobytes()

    readonly = region.array(ml_dtypes.bfloat16, 12, for_write=False)
    assert readonly.dtype == ml_dtypes.bfloat16 and not readonly.flags.writeable
    with pytest.raises(ValueError):
        readonly[0] = 1
    with pytest.raises(ValueError, match=r"shape \(5,\) and dtype float32 is 20 bytes, region \d+ is 24 bytes"):
        region.array(np.float32, 5, for_write=True)


def test_copy_from_keeps_never_written_data_unmaterialized() -> None:
    ledger = MemoryLedger()
    device = DeviceMemory(0, [64 * KiB], ledger)
    host = HostMemory(64 * KiB, ledger)
    source = alloc(device, 8)
    target = host.allocate(8, pb.TENSORS, session_id=1, core_id=0)

    target.copy_from(source)
    assert not target.materialized

    source.write(0, b"abcdefgh")
    target.copy_from(source)
    assert target.read(0, 8) == b"abcdefgh"
    assert host.materialized_bytes == 8

    source.copy_from(alloc(device, 8))  # never written: the copy reads as zeros and holds no buffer
    assert not source.materialized and source.read(0, 8) == bytes(8)
    assert device.materialized_bytes == 0
    with pytest.raises(ValueError, match="sizes differ"):
        target.copy_from(alloc(device, 9))


def test_running_out_of_daemon_memory_while_materializing_is_an_out_of_memory_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    region = alloc(small_device(), 4096)

    def no_memory(*args: object, **kwargs: object) -> np.ndarray:
        raise MemoryError

    monkeypatch.setattr(hbm_allocator.np, "zeros", no_memory)
    with pytest.raises(OutOfMemory, match=rf"needs 4\.0 KiB on the daemon's host \(holding region {region.region_id}"):
        region.write(0, b"x")
    assert not region.materialized


# --- host memory -----------------------------------------------------------------------------------


def test_host_memory_accounts_without_placement() -> None:
    ledger = MemoryLedger()
    host = HostMemory(4 * KiB, ledger)
    region = host.allocate(3 * KiB, pb.DMA_BUFFERS, session_id=12, core_id=0, scopes=[("host_session", 12)])

    assert (region.device_index, region.stack, region.offset, region.reserved) == (None, 0, 0, 3 * KiB)
    assert host.used_bytes == 3 * KiB and host.total_bytes == 4 * KiB
    assert ledger.used(("host",), pb.DMA_BUFFERS) == ledger.used(("host_session", 12)) == 3 * KiB
    with pytest.raises(OutOfMemory) as caught:
        host.allocate(2 * KiB, pb.TENSORS, session_id=12, core_id=0)
    assert str(caught.value) == "needs 2.0 KiB on host, 1.0 KiB free"
    assert caught.value.where == "host"

    host.free(region)
    assert host.used_bytes == 0 and ledger.used(("host",)) == 0
    with pytest.raises(ValueError, match="double free"):
        host.free(region)


# --- concurrency and random sequences --------------------------------------------------------------


def test_concurrent_allocate_and_free_end_fully_coalesced() -> None:
    memory = small_device([256 * KiB, 256 * KiB])

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine: list[Region] = []
        for _ in range(500):
            if mine and rng.random() < 0.5:
                memory.free(mine.pop(int(rng.integers(len(mine)))))
            else:
                mine.append(alloc(memory, int(rng.integers(1, 4 * KiB)), preferred_stack=seed % 2))
        for region in mine:
            memory.free(region)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [(s.free_blocks, s.used_bytes, s.allocations) for s in memory.stack_stats()] == [(1, 0, 0), (1, 0, 0)]
    assert memory._ledger.used(("device", 0)) == 0


ALIGN = 512
STACKS = [16 * KiB, 8 * KiB]


def _free_gaps(regions: list[Region], stack_size: int) -> list[tuple[int, int]]:
    """The maximal free extents left between `regions` (all on one stack), as (offset, size)."""
    gaps, cursor = [], 0
    for region in sorted(regions, key=lambda r: r.offset):
        if region.offset > cursor:
            gaps.append((cursor, region.offset - cursor))
        cursor = region.offset + region.reserved
    if cursor < stack_size:
        gaps.append((cursor, stack_size - cursor))
    return gaps


class AllocatorMachine(RuleBasedStateMachine):
    """Random allocate/free sequences checked against a reference model of best-fit placement."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = MemoryLedger()
        self.memory = DeviceMemory(5, STACKS, self.ledger, alignment=ALIGN)
        self.live: list[Region] = []

    def placed(self, stack: int) -> list[Region]:
        return [r for r in self.live if r.stack == stack and r.reserved]

    def expected_place(self, reserved: int, preferred: int | None) -> tuple[int, int] | None:
        first = preferred or 0
        for stack in [first, *(s for s in range(len(STACKS)) if s != first)]:
            fits = [(size, offset) for offset, size in _free_gaps(self.placed(stack), STACKS[stack]) if size >= reserved]
            if fits:
                return stack, min(fits)[1]
        return None

    @rule(
        size=st.integers(0, 6 * KiB),
        preferred=st.none() | st.sampled_from([0, 1]),
        category=st.sampled_from([pb.TENSORS, pb.CONSTANTS, pb.MODEL_CODE]),
    )
    def allocate(self, size: int, preferred: int | None, category: int) -> None:
        reserved = -(-size // ALIGN) * ALIGN
        expected = (preferred or 0, 0) if size == 0 else self.expected_place(reserved, preferred)
        if expected is None:
            with pytest.raises(OutOfMemory) as caught:
                self.memory.allocate(size, category, session_id=1, core_id=0, preferred_stack=preferred)
            assert caught.value.largest_free < reserved
            return
        region = self.memory.allocate(size, category, session_id=1, core_id=0, preferred_stack=preferred)
        assert (region.stack, region.offset, region.reserved) == (*expected, reserved)
        self.live.append(region)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        self.memory.free(self.live.pop(data.draw(st.integers(0, len(self.live) - 1))))

    @invariant()
    def regions_never_overlap_and_space_is_conserved(self) -> None:
        stats = self.memory.stack_stats()
        for stack, size in enumerate(STACKS):
            placed = sorted(self.placed(stack), key=lambda r: r.offset)
            for a, b in zip(placed, placed[1:]):
                assert a.offset + a.reserved <= b.offset
            assert all(r.offset % ALIGN == 0 and r.offset + r.reserved <= size for r in placed)
            gaps = _free_gaps(placed, size)
            assert stats[stack].used_bytes == sum(r.reserved for r in placed)
            assert stats[stack].used_bytes + stats[stack].free_bytes == size
            assert stats[stack].free_blocks == len(gaps)  # fully coalesced: one extent per gap
            assert stats[stack].largest_free_bytes == max((g[1] for g in gaps), default=0)
            assert stats[stack].allocations == sum(1 for r in self.live if r.stack == stack)
        assert self.memory.used_bytes + self.memory.free_bytes == self.memory.total_bytes
        assert self.ledger.used(("device", 5)) == sum(r.size for r in self.live)

    def teardown(self) -> None:
        for region in self.live:
            self.memory.free(region)
        assert [(s.free_blocks, s.largest_free_bytes, s.allocations) for s in self.memory.stack_stats()] == [
            (1, size, 0) for size in STACKS
        ]
        assert self.ledger.used(("device", 5)) == 0


AllocatorMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_random_allocate_free_sequences = AllocatorMachine.TestCase
