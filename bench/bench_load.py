"""In-daemon load at hardware rates: a busy inf2.48xlarge for under one CPU, and a fleet of 16 on this machine.

Each neurond is the real daemon in its own process. Every one of its 24 NeuronCores runs a closed-loop
load (2 executions in flight per core, timing-only) of a kernel with a given modeled device time.
The reference for each figure is what the modeled time implies on real hardware, computed in the
same run: 24 cores / device time executions per second, and 100 % utilization per core. Per-core
utilization is read from the real neuron-monitor (1 s period) attached to the daemon. neurond's CPU
is its user+system time over the window. The fleet row starts 16 daemons (16 simulated
inf2.48xlarge hosts), all 24 cores of each under load, and reports their total CPU and each RSS.

    .venv/bin/python bench/bench_load.py [--quick]
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import common
import psutil

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, Session
from neurontools.daemon.isa.program import compile_program
from neurontools.kernels.builder import Kernel

CORES = 24
IN_FLIGHT = 2
FLEET = 16
NEURON_MONITOR = os.path.join(os.path.dirname(sys.executable), "neuron-monitor")


def kernel(reps: int) -> pb.Program:
    """A kernel whose modeled time grows with `reps` matmuls accumulating into one PSUM tile."""
    k = Kernel()
    x, y = k.input("x", (128, 512), "bfloat16"), k.output("y", (128, 512), "float32")
    a, w = k.sbuf((128, 512), "bfloat16"), k.sbuf((128, 128), "bfloat16")
    p, o = k.psum((128, 512)), k.sbuf((128, 512), "float32")
    k.load(a, x)
    k.memset(w, 0.0)
    for i in range(reps):
        k.matmul(p, w, a, accumulate=i > 0)
    k.tensor_copy(o, p)
    k.store(y, o)
    return k.program()


def kernel_of(target_ns: int) -> tuple[pb.Program, int]:
    """The kernel whose modeled time is closest to `target_ns` (from the cost model), and that time."""
    base = compile_program(kernel(1)).estimate.device_time_ns
    per = (compile_program(kernel(101)).estimate.device_time_ns - base) / 100
    reps = max(1, round(1 + (target_ns - base) / per))
    program = kernel(reps)
    return program, compile_program(program).estimate.device_time_ns


def load_all_cores(address: str, program: pb.Program, stack: contextlib.ExitStack) -> Session:
    session = stack.enter_context(Session(address, visible_cores=f"0-{CORES - 1}", tag="bench-load"))
    for core in range(CORES):
        model = session.load_model(f"bench-load-nc{core}", {core: program})
        tensors = {"x": session.allocate((128, 512), "bfloat16", core_id=core),
                   "y": session.allocate((128, 512), core_id=core)}
        model.start_load(tensors, in_flight_per_core=IN_FLIGHT)
    return session


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def monitor_utilization(address: str, seconds: float) -> dict[int, float]:
    """Per-core neuroncore_utilization from the real neuron-monitor's last report."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"period": "1s", "neuron_runtimes": [{"tag_filter": ".*", "metrics": [
            {"type": "neuroncore_counters"}]}]}, config)
    monitor = subprocess.Popen([NEURON_MONITOR, "--address", address, "-c", config.name], stdout=subprocess.PIPE,
                               text=True)
    reports = []
    try:
        deadline = time.monotonic() + seconds
        for line in monitor.stdout:
            reports.append(json.loads(line))
            if time.monotonic() > deadline and len(reports) >= 3:
                break
    finally:
        monitor.terminate()
        monitor.wait(10)
        os.unlink(config.name)
    utilization = {}
    for runtime in reports[-1]["neuron_runtime_data"]:
        for core, counters in runtime["report"]["neuroncore_counters"]["neuroncores_in_use"].items():
            utilization[int(core)] = counters["neuroncore_utilization"]
    return utilization


def one_host(target_ns: int, seconds: float) -> dict:
    program, device_ns = kernel_of(target_ns)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(common.neurond_process("inf2.48xlarge"))
        daemon = psutil.Process(server.pid)
        load_all_cores(server.address, program, stack)
        device = stack.enter_context(Device(server.address))
        time.sleep(0.5)
        before, cpu0 = device.snapshot(), cpu_seconds(daemon)
        utilization = monitor_utilization(server.address, seconds)
        after, cpu1 = device.snapshot(), cpu_seconds(daemon)
    wall = (after.monotonic_ns - before.monotonic_ns) / 1e9
    executions = sum(a.executions - b.executions for a, b in zip(after.cores, before.cores))
    return {"device_ns": device_ns, "modeled": CORES * 1e9 / device_ns, "rate": executions / wall,
            "cpu": (cpu1 - cpu0) / wall, "utilization": utilization}


def fleet(target_ns: int, seconds: float, hosts: int) -> dict:
    program, device_ns = kernel_of(target_ns)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(common.neurond_process("inf2.48xlarge")) for _ in range(hosts)]
        for server in servers:
            load_all_cores(server.address, program, stack)
        daemons = [psutil.Process(s.pid) for s in servers]
        devices = [stack.enter_context(Device(s.address)) for s in servers]
        time.sleep(1.0)
        before = [d.snapshot() for d in devices]
        cpu0, t0 = sum(cpu_seconds(p) for p in daemons), time.monotonic()
        time.sleep(seconds)
        after = [d.snapshot() for d in devices]
        cpu1, t1 = sum(cpu_seconds(p) for p in daemons), time.monotonic()
        rss = [p.memory_info().rss for p in daemons]
    # Each host's rate over its own two snapshots (the 16 are taken one after another).
    rate = sum(sum(a.executions - b.executions for a, b in zip(snap_a.cores, snap_b.cores))
               / ((snap_a.monotonic_ns - snap_b.monotonic_ns) / 1e9) for snap_a, snap_b in zip(after, before))
    return {"device_ns": device_ns, "modeled": hosts * CORES * 1e9 / device_ns, "rate": rate,
            "cpu": (cpu1 - cpu0) / (t1 - t0), "rss": rss}


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0])
    seconds = 3.0 if args.quick else 6.0
    load_before = os.getloadavg()[0]
    hosts = {label: one_host(target, seconds) for label, target in (("1 ms", 1_000_000), ("10 us", 10_000))}
    many = fleet(1_000_000, seconds, FLEET)
    print(f"inf2.48xlarge neurond, all {CORES} cores under closed-loop in-daemon load ({IN_FLIGHT} in flight per "
          f"core, timing-only), {seconds:g} s window; reference = the rate the modeled device time implies")
    rows = []
    for label, h in hosts.items():
        util = list(h["utilization"].values())
        rows.append((f"kernel ~{label} (modeled {h['device_ns'] / 1e3:,.1f} us)", f"{h['modeled']:,.0f}",
                     f"{h['rate']:,.0f}", f"{h['rate'] / h['modeled']:.3f}", f"{h['cpu']:.3f}",
                     f"{min(util):.1f}-{max(util):.1f} %" if util else "n/a", "100.0 %"))
    common.print_table(("load", "modeled exec/s", "sustained exec/s", "ratio", "neurond CPUs",
                        "neuron-monitor util per core", "modeled util"), rows)
    print(f"\nfleet: {FLEET} neurond processes (16 simulated inf2.48xlarge hosts), all {CORES} cores of each under "
          f"load, kernel modeled {many['device_ns'] / 1e3:,.1f} us")
    common.print_table(("fleet", "modeled exec/s", "sustained exec/s", "ratio", "total neurond CPUs",
                        "RSS per daemon MiB (min-max)"),
                       [(f"{FLEET} hosts", f"{many['modeled']:,.0f}", f"{many['rate']:,.0f}",
                         f"{many['rate'] / many['modeled']:.3f}", f"{many['cpu']:.3f}",
                         f"{min(many['rss']) / 2**20:.0f}-{max(many['rss']) / 2**20:.0f}")])
    print(common.machine_note(load_before))
    ms, us = hosts["1 ms"], hosts["10 us"]
    util = list(ms["utilization"].values())
    ok_ms = ms["rate"] >= 0.95 * ms["modeled"] and ms["cpu"] < 1.0 and all(abs(u - 100.0) <= 5 for u in util)
    common.print_result(f"24 cores x 1 ms: {ms['rate']:,.0f}/s of {ms['modeled']:,.0f}/s modeled "
                        f"({ms['rate'] / ms['modeled']:.1%}), neurond {ms['cpu']:.3f} CPUs, neuron-monitor util "
                        f"{min(util):.1f}-{max(util):.1f} % [{common.verdict(ok_ms)}]")
    common.print_result(f"24 cores x 10 us: {us['rate']:,.0f}/s of {us['modeled']:,.0f}/s modeled, neurond "
                        f"{us['cpu']:.3f} CPUs (1 ms kernel: {ms['cpu']:.3f}) "
                        f"[{common.verdict(us['rate'] >= 0.95 * us['modeled'] and us['cpu'] < 1.0)}]")
    common.print_result(f"{FLEET} hosts x 24 busy cores: {many['cpu']:.3f} CPUs total, RSS "
                        f"{min(many['rss']) / 2**20:.0f}-{max(many['rss']) / 2**20:.0f} MiB each "
                        f"[{common.verdict(many['cpu'] < 1.5)}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
