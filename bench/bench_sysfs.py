"""What keeping the driver's sysfs tree costs neurond: one refresh of an inf2.48xlarge tree.

The tree (`neurond --sysfs-root`) is refreshed by a worker thread every period (default 1 s). This
times `SysfsTree.refresh()` of an inf2.48xlarge (12 devices, 24 cores, ~1,700 files) in CPU time of
the refreshing thread, interleaved call by call with its reference: one `SnapshotBuilder.build()` of
the same daemon (the snapshot every neuron-monitor or neuron-top tick costs, and the first step of a
refresh). Two states:
  idle     nothing changed since the previous refresh: every file is checked (stat), none rewritten;
  changed  every core's memory changed before the refresh (24 sessions each allocate or free a
           tensor between refreshes): the memory counters of every core are rewritten.
The share of one core a refresh per second takes is refresh CPU time / 1 s. Rewriting a file costs
what the filesystem makes open and rename cost, so the tree is measured on the temporary directory's
filesystem and on /dev/shm (tmpfs, what /run is on most hosts).

    .venv/bin/python bench/bench_sysfs.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import common

from neurontools.client import Session
from neurontools.daemon.server.embedded import running_daemon

BUDGET_SHARE_OF_A_CORE = 0.05  # a refresh per second may take at most 5% of one core


def measure(parent: str, count: int) -> tuple[int, dict, dict]:
    """(files, idle samples, changed samples) of a tree kept under `parent`."""
    with tempfile.TemporaryDirectory(prefix="nt-bench-sysfs-", dir=parent) as tmp:
        with running_daemon("inf2.48xlarge", sysfs_root=f"{tmp}/sysfs", sysfs_period=3600.0) as daemon:
            server = daemon.server
            tree = server.sysfs.tree
            files = sum(len(names) for _, _, names in os.walk(f"{tmp}/sysfs/devices"))
            sessions = [Session(daemon.address, visible_cores=str(core)).open() for core in range(24)]
            held: list = [None] * len(sessions)

            def change_every_core() -> None:
                for i, session in enumerate(sessions):
                    if held[i] is None:
                        held[i] = session.allocate((256, 256), "float32", core_id=session.core_ids[0])
                    else:
                        held[i].free()
                        held[i] = None

            idle = common.time_interleaved(
                {"snapshot": lambda: server.snapshots.build([]), "refresh": tree.refresh},
                count, warmup=5, clock=time.thread_time_ns)
            changed: dict[str, list[int]] = {"snapshot": [], "refresh": []}
            for _ in range(count // 4):
                change_every_core()
                for name, call in (("snapshot", lambda: server.snapshots.build([])), ("refresh", tree.refresh)):
                    started = time.thread_time_ns()
                    call()
                    changed[name].append(time.thread_time_ns() - started)
            for session in sessions:
                session.close()
    return files, idle, changed


def _filesystem(path: str) -> str:
    best, kind = "", "?"
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            point, fstype = line.split()[1:3]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, kind = point, fstype
    return kind


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    count = 20 if args.quick else 200
    load_before = os.getloadavg()[0]
    parents = [tempfile.gettempdir()] + (["/dev/shm"] if os.path.isdir("/dev/shm") else [])
    rows, worst = [], 0.0
    for parent in parents:
        files, idle, changed = measure(parent, count)
        for state, samples in (("idle", idle), ("changed", changed)):
            snapshot_ms = statistics.median(samples["snapshot"]) / 1e6
            refresh_ms = statistics.median(samples["refresh"]) / 1e6
            worst = max(worst, refresh_ms / 1000)
            rows.append((f"{parent} ({_filesystem(parent)}), {state}", f"{snapshot_ms:.3f}", f"{refresh_ms:.3f}",
                         f"{refresh_ms / snapshot_ms:.1f}", f"{refresh_ms / 1000:.1%}"))
    print(f"inf2.48xlarge tree: {files} files; CPU time of one call, median of {count} (idle) and "
          f"{count // 4} (changed) calls")
    common.print_table(("tree on, state", "snapshot ms (reference)", "refresh ms", "x snapshot",
                        "share of a core at 1 s"), rows)
    print(common.machine_note(load_before))
    ok = worst <= BUDGET_SHARE_OF_A_CORE
    common.print_result("sysfs refresh of inf2.48xlarge: " + ", ".join(f"{r[0]} {r[2]} ms" for r in rows)
                        + f"; worst {worst:.1%} of a core at the 1 s default "
                        f"[{common.verdict(ok)}, budget {BUDGET_SHARE_OF_A_CORE:.0%}]")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
