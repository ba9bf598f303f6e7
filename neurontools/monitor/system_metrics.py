"""The host side of a report, from psutil: vcpu_usage, memory_info and each runtime's process CPU.

Reading (SystemReader, the only code here that touches /proc) is kept apart from the arithmetic
(pure functions of two samples), so tests can feed hand-made samples. Percentages are rounded to
two decimals as the real tool's are (every real capture shows values like 16.67, 86.21).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import psutil

from neurontools.monitor.report import (CpuUsage, MemoryInfo, NeuronRuntimeVcpuUsage, RuntimeCpuUsage,
                                        VcpuUsage)

CPU_STATES = ("user", "nice", "system", "idle", "io_wait", "irq", "soft_irq")


class CpuTimes(NamedTuple):
    """Seconds a vCPU (or all of them together) spent in each state; `total` is the whole."""

    user: float
    nice: float
    system: float
    idle: float
    io_wait: float
    irq: float
    soft_irq: float
    total: float


@dataclass(frozen=True, slots=True)
class CpuSample:
    at_ns: int                        # local monotonic clock
    average: CpuTimes                 # all vCPUs (the kernel's aggregate "cpu" line)
    per_cpu: tuple[CpuTimes, ...]
    context_switches: int             # since boot


@dataclass(frozen=True, slots=True)
class MemoryReading:
    total: int
    used: int
    swap_total: int
    swap_used: int


@dataclass(frozen=True, slots=True)
class ProcessCpuSample:
    at_ns: int
    user: float = 0.0    # seconds since the process started
    system: float = 0.0
    error: str = ""      # why the process could not be read, worded as the Go tool words it


def cpu_times(times: Any) -> CpuTimes:
    """psutil's cpu_times namedtuple (fields vary by platform) in our states. Steal time counts in the total (the vCPU did not have it);
    guest time is already inside user and nice on Linux, so it is left out of the total."""
    io_wait = getattr(times, "iowait", 0.0)
    irq = getattr(times, "irq", 0.0)
    soft_irq = getattr(times, "softirq", 0.0)
    steal = getattr(times, "steal", 0.0)
    total = times.user + times.nice + times.system + times.idle + io_wait + irq + soft_irq + steal
    return CpuTimes(times.user, times.nice, times.system, times.idle, io_wait, irq, soft_irq, total)


def _usage(newer: CpuTimes, older: CpuTimes) -> CpuUsage:
    elapsed = newer.total - older.total
    if elapsed <= 0:  # no clock tick in the period: the real tool writes zeros, idle included
        return CpuUsage.model_construct(**dict.fromkeys(CPU_STATES, 0.0))
    scale = 100.0 / elapsed
    return CpuUsage.model_construct(**{state: round(max(0.0, (newer[i] - older[i]) * scale), 2)
                                       for i, state in enumerate(CPU_STATES)})


def vcpu_usage(newer: CpuSample, older: CpuSample) -> VcpuUsage:
    """Metric group vcpu_usage: share of the period each vCPU spent in each state, and context switches."""
    return VcpuUsage.model_construct(
        period=(newer.at_ns - older.at_ns) / 1e9,
        average_usage=_usage(newer.average, older.average),
        usage_data={str(index): _usage(new, old)
                    for index, (new, old) in enumerate(zip(newer.per_cpu, older.per_cpu))},
        context_switch_count=max(0, newer.context_switches - older.context_switches),
        error="")


def memory_info(reading: MemoryReading, period: float) -> MemoryInfo:
    return MemoryInfo.model_construct(
        period=period, memory_total_bytes=reading.total, memory_used_bytes=reading.used,
        swap_total_bytes=reading.swap_total, swap_used_bytes=reading.swap_used, error="")


def runtime_vcpu_usage(newer: ProcessCpuSample, older: ProcessCpuSample, cpu_count: int) -> NeuronRuntimeVcpuUsage:
    """Metric group neuron_runtime_vcpu_usage: the process's CPU time as a share of all vCPUs' time.

    Normalised by the vCPU count, as the real tool is: its inf1.xlarge capture shows exactly one
    10 ms clock tick in a 62.5 ms period on 4 vCPUs as 4%.
    """
    period = (newer.at_ns - older.at_ns) / 1e9
    if newer.error or older.error or period <= 0:
        user = system = 0.0
    else:
        scale = 100.0 / (period * cpu_count)
        user = round(max(0.0, (newer.user - older.user) * scale), 2)
        system = round(max(0.0, (newer.system - older.system) * scale), 2)
    return NeuronRuntimeVcpuUsage.model_construct(
        period=period, vcpu_usage=RuntimeCpuUsage.model_construct(user=user, system=system),
        error=newer.error or older.error)


class SystemReader:
    """Reads the host through psutil; one instance per monitor (it caches process handles)."""

    def __init__(self) -> None:
        self.cpu_count = psutil.cpu_count() or 1
        self._processes: dict[int, psutil.Process] = {}

    def cpu(self) -> CpuSample:
        return CpuSample(at_ns=time.monotonic_ns(), average=cpu_times(psutil.cpu_times()),
                         per_cpu=tuple(cpu_times(t) for t in psutil.cpu_times(percpu=True)),
                         context_switches=psutil.cpu_stats().ctx_switches)

    def memory(self) -> MemoryReading:
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        # "used" as total minus available: what free(1) and the kernel call unavailable memory.
        return MemoryReading(total=memory.total, used=memory.total - memory.available,
                             swap_total=swap.total, swap_used=swap.used)

    def process_cpu(self, pid: int) -> ProcessCpuSample:
        try:
            process = self._processes.get(pid)
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            # Also what a container shows for a runtime on the host (reference §3.1).
            self._processes.pop(pid, None)
            return ProcessCpuSample(time.monotonic_ns(), error=f"open /proc/{pid}/stat: no such file or directory")
        except psutil.AccessDenied:
            return ProcessCpuSample(time.monotonic_ns(), error=f"open /proc/{pid}/stat: permission denied")
        return ProcessCpuSample(time.monotonic_ns(), user=times.user, system=times.system)

    def forget(self, pid: int) -> None:
        self._processes.pop(pid, None)

    def process_exists(self, pid: int) -> bool:
        return psutil.pid_exists(pid)
