"""Resident memory of a fully allocated inf2.48xlarge, against the 150 MiB budget (design principle 5).

Allocates all 384 GiB of 12 devices (2 x 16 GiB HBM stacks each) in 1 GiB regions without data, then
writes 64 MiB (1 MiB into each of 64 regions), and prints the process's resident set size after each
step next to the budget. Its verdict also needs the allocator to be right: every device full, the
ledger's session total equal to what was allocated, written bytes reading back as written and bytes
never written as zeros, and every byte back once the regions are freed.

    .venv/bin/python bench/bench_daemon_memory.py
"""

from __future__ import annotations

import os
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
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, int, int]] = [("imports only", rss(), 0)]
    wrong: list[str] = []

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
    allocated = len(regions) * GiB
    if any(memory.free_bytes for memory in devices) or ledger.used(("session", 1)) != allocated:
        wrong.append(f"after allocating {allocated} bytes: free {[m.free_bytes for m in devices]}, "
                     f"the ledger's session total {ledger.used(('session', 1))}")
    rows.append((f"{format_bytes(sum(m.used_bytes for m in devices))} allocated, no data", rss(), 0))

    chunk = b"\xa5" * WRITE_BYTES
    written_regions = regions[:: len(regions) // WRITTEN_REGIONS][:WRITTEN_REGIONS]
    for region in written_regions:
        region.write(0, chunk)
    written = format_bytes(WRITTEN_REGIONS * WRITE_BYTES)
    rows.append((f"+ {written} written ({WRITTEN_REGIONS} regions)", rss(), sum(m.materialized_bytes for m in devices)))
    if any(r.read(0, WRITE_BYTES) != chunk or r.read(WRITE_BYTES, 4096) != bytes(4096) for r in written_regions):
        wrong.append("a written region does not read back as written, or its unwritten bytes are not zero")
    if regions[1].read(0, 4096) != bytes(4096):
        wrong.append("a region never written does not read as zeros")
    for memory, region in ((devices[r.device_index], r) for r in regions):
        memory.free(region)
    if any(memory.used_bytes for memory in devices) or ledger.used(("session", 1)):
        wrong.append("bytes still in use after every region was freed")

    print(f"{len(regions)} regions of 1 GiB on {DEVICES} devices, "
          f"{allocate_s / len(regions) * 1e6:.1f} us per allocate (with ledger accounting)")  # fmt: skip
    print(f"{'step':<36} {'resident':>10} {'budget':>10} {'ratio':>6} {'materialized':>13}")
    for step, resident, materialized in rows:
        print(
            f"{step:<36} {format_bytes(resident):>10} {format_bytes(BUDGET_BYTES):>10} "
            f"{resident / BUDGET_BYTES:>6.2f} {format_bytes(materialized):>13}"
        )
    print("materialized = bytes of regions holding a buffer; pages never written stay unbacked (calloc)")
    import common  # noqa: PLC0415 (only now: it imports grpc, which the "imports only" row must not count)

    print("checked: devices full, the ledger's total, written bytes read back, unwritten ones zero, all freed: "
          + ("ok" if not wrong else "WRONG"))
    for problem in wrong:
        print(f"WRONG: {problem}")
    full = rows[1][1]
    common.print_result(f"{'WRONG: ' if wrong else ''}allocator alone {format_bytes(full)} with "
                        f"{format_bytes(allocated)} allocated without data = {full / BUDGET_BYTES:.2f} x the "
                        f"{format_bytes(BUDGET_BYTES)} budget: {common.verdict(full <= BUDGET_BYTES)}; "
                        f"{allocate_s / len(regions) * 1e6:.1f} us per allocate")
    print(common.machine_note(load_before))


if __name__ == "__main__":
    main()
