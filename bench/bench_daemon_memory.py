"""Resident memory of a fully allocated inf2.48xlarge, against the 150 MiB budget (design principle 5).

Allocates all 384 GiB of 12 devices (2 x 16 GiB HBM stacks each) in 1 GiB regions without data, then
writes 64 MiB (1 MiB into each of 64 regions), and prints the process's resident set size after each
step next to the budget.

    .venv/bin/python bench/bench_daemon_memory.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout

from neurontools._proto import neurond_pb2 as pb  # noqa: E402
from neurontools.daemon.device.hbm_allocator import DeviceMemory, Region, format_bytes  # noqa: E402
from neurontools.daemon.device.memory_ledger import MemoryLedger  # noqa: E402

GiB, MiB = 1 << 30, 1 << 20
DEVICES, STACKS, STACK_BYTES = 12, 2, 16 * GiB
BUDGET_BYTES = 150 * MiB
WRITTEN_REGIONS, WRITE_BYTES = 64, MiB


def rss() -> int:
    return psutil.Process().memory_info().rss


def main() -> None:
    rows: list[tuple[str, int, int]] = [("imports only", rss(), 0)]

    ledger = MemoryLedger()
    devices = [DeviceMemory(d, [STACK_BYTES] * STACKS, ledger) for d in range(DEVICES)]
    regions: list[Region] = []
    started = time.perf_counter()
    for memory in devices:
        for i in range(STACKS * STACK_BYTES // GiB):
            core = memory.device_index * STACKS + i % STACKS
            regions.append(memory.allocate(
                GiB, pb.TENSORS, session_id=1, core_id=core, preferred_stack=i % STACKS,
                scopes=[("core", core), ("session", 1), ("session_core", 1, core)],
            ))  # fmt: skip
    allocate_s = time.perf_counter() - started
    assert all(memory.free_bytes == 0 for memory in devices)
    rows.append((f"{format_bytes(sum(m.used_bytes for m in devices))} allocated, no data", rss(), 0))

    chunk = b"\xa5" * WRITE_BYTES
    for region in regions[:: len(regions) // WRITTEN_REGIONS][:WRITTEN_REGIONS]:
        region.write(0, chunk)
    written = format_bytes(WRITTEN_REGIONS * WRITE_BYTES)
    rows.append((f"+ {written} written ({WRITTEN_REGIONS} regions)", rss(), sum(m.materialized_bytes for m in devices)))

    print(f"{len(regions)} regions of 1 GiB on {DEVICES} devices, "
          f"{allocate_s / len(regions) * 1e6:.1f} us per allocate (with ledger accounting)")  # fmt: skip
    print(f"{'step':<36} {'resident':>10} {'budget':>10} {'ratio':>6} {'materialized':>13}")
    for step, resident, materialized in rows:
        print(
            f"{step:<36} {format_bytes(resident):>10} {format_bytes(BUDGET_BYTES):>10} "
            f"{resident / BUDGET_BYTES:>6.2f} {format_bytes(materialized):>13}"
        )
    print("materialized = bytes of regions holding a buffer; pages never written stay unbacked (calloc)")


if __name__ == "__main__":
    main()
