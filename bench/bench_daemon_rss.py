"""Resident memory of a neurond process (inf2.48xlarge) with its HBM allocated without data, against
the 150 MiB budget.

The daemon is the real `neurond` in its own process; its resident set size (psutil, on the child's
pid) is read idle after start, after a client session holding all 24 cores has allocated tensors
until every core's HBM is full (1 GiB tensors until the daemon answers RESOURCE_EXHAUSTED, then
halving down to 1 MiB; the runtime memory every session reserves per core is what stays out of
reach), after writing 64 MiB (1 MiB into each of 64 tensors), and after the session closed. The
sequence runs twice: on a default daemon, and on one started with NUMPY_MADVISE_HUGEPAGE=0, which
shows what transparent huge pages add to written tensors. bench_daemon_memory.py measures the
allocator alone, in-process; this measures the whole daemon.

    .venv/bin/python bench/bench_daemon_rss.py [--quick]
"""

from __future__ import annotations

import os

import common
import psutil

from neurontools.client import Device, OutOfResources, Session, Tensor
from neurontools.daemon.device.hbm_allocator import format_bytes

INSTANCE_TYPE = "inf2.48xlarge"
MiB, GiB = 1 << 20, 1 << 30
BUDGET_BYTES = 150 * MiB
WRITTEN_TENSORS, WRITE_BYTES = 64, MiB
SMALLEST_TENSOR = MiB
BUDGETED_STEP = 1  # allocated, no data
NO_HUGEPAGES = {"NUMPY_MADVISE_HUGEPAGE": "0"}


def fill_core(session: Session, core: int) -> list[Tensor]:
    """Tensors on `core` until it is full: the largest size that still fits, 1 GiB down to 1 MiB."""
    tensors = []
    size = GiB
    while size >= SMALLEST_TENSOR:
        try:
            tensors.append(session.allocate((size,), "uint8", core_id=core))
        except OutOfResources:
            size //= 2
    return tensors


def hbm_used(device: Device) -> tuple[int, int]:
    snapshot = device.snapshot()
    return sum(d.memory_used_bytes for d in snapshot.devices), sum(d.memory_total_bytes for d in snapshot.devices)


def measure(env: dict[str, str]) -> tuple[list[tuple[str, int, str]], int, list[str]]:
    """(step, daemon RSS, HBM used) after each step, the bytes of tensors allocated, and what the
    correctness checks found: HBM full once allocated and empty once closed, written bytes read back as
    written, unwritten bytes as zeros (RSS saved by losing data would be no saving)."""
    steps: list[tuple[str, int, str]] = []
    wrong: list[str] = []
    with common.neurond_process(INSTANCE_TYPE, env=env) as daemon, Device(daemon.address) as device:
        process = psutil.Process(daemon.pid)

        def record(step: str) -> None:
            used, total = hbm_used(device)
            steps.append((step, process.memory_info().rss, f"{format_bytes(used)} of {format_bytes(total)}"))

        record("idle after start")
        with Session(daemon.address, visible_cores=f"0-{len(device.snapshot().cores) - 1}",
                     tag="bench-rss") as session:
            tensors = [t for core in session.core_ids for t in fill_core(session, core)]
            allocated = sum(t.nbytes for t in tensors)
            record(f"{len(tensors)} tensors, {format_bytes(allocated)}, no data")
            used, total = hbm_used(device)
            if used != total:
                wrong.append(f"HBM not full after allocating until RESOURCE_EXHAUSTED: {used} of {total} bytes used")
            chunk = b"\xa5" * WRITE_BYTES
            written = tensors[:: len(tensors) // WRITTEN_TENSORS][:WRITTEN_TENSORS]
            for tensor in written:
                tensor.write(chunk)
            record(f"+ {format_bytes(WRITTEN_TENSORS * WRITE_BYTES)} written ({WRITTEN_TENSORS} tensors)")
            for tensor in written:
                if tensor.read_bytes(0, WRITE_BYTES) != chunk:
                    wrong.append(f"tensor {tensor.tensor_id} does not read back what was written")
                if tensor.nbytes > WRITE_BYTES and tensor.read_bytes(WRITE_BYTES, 4096) != bytes(4096):
                    wrong.append(f"tensor {tensor.tensor_id}: bytes never written do not read as zeros")
        record("session closed")
        if hbm_used(device)[0] != 0:
            wrong.append("HBM still in use after the session closed")
    return steps, allocated, wrong


def main() -> int:
    common.parse_args(__doc__.splitlines()[0])  # --quick is accepted; this run is short either way
    load_before = os.getloadavg()[0]
    steps, allocated, wrong = measure({})
    no_hugepages, _, wrong_no_hugepages = measure(NO_HUGEPAGES)
    wrong += wrong_no_hugepages
    report(steps, no_hugepages, allocated, wrong)
    print(common.machine_note(load_before))
    return 0


def report(steps: list[tuple[str, int, str]], no_hugepages: list[tuple[str, int, str]], allocated: int,
           wrong: list[str]) -> None:
    print(f"resident set size of the neurond process ({INSTANCE_TYPE}, separate process) against the budget; "
          f"the budget applies to the step with HBM allocated and no data")
    rows = []
    for index, ((step, rss, hbm), (_, rss_no_hugepages, _)) in enumerate(zip(steps, no_hugepages)):
        budgeted = index == BUDGETED_STEP
        rows.append((step, format_bytes(rss), format_bytes(rss_no_hugepages), format_bytes(BUDGET_BYTES),
                     f"{rss / BUDGET_BYTES:.2f}", common.verdict(rss <= BUDGET_BYTES) if budgeted else "-", hbm))
    common.print_table(("step", "daemon RSS", "NUMPY_MADVISE_HUGEPAGE=0", "budget", "x budget", "verdict",
                        "HBM used (snapshot)"), rows)
    print("numpy asks the kernel for transparent huge pages on large buffers, so a small write into a "
          "1 GiB tensor makes a 2 MiB page resident; the middle column is a daemon started without that")
    print("checked: HBM full when allocated and empty when closed, written bytes read back, unwritten ones zero: "
          + ("ok" if not wrong else "WRONG"))
    for problem in wrong:
        print(f"WRONG: {problem}")
    full = steps[BUDGETED_STEP][1]
    common.print_result(f"{'WRONG: ' if wrong else ''}daemon RSS idle {format_bytes(steps[0][1])}, {format_bytes(full)} with "
                        f"{format_bytes(allocated)} allocated without data = {full / BUDGET_BYTES:.2f} x the "
                        f"{format_bytes(BUDGET_BYTES)} budget: {common.verdict(full <= BUDGET_BYTES)}")


if __name__ == "__main__":
    raise SystemExit(main())
