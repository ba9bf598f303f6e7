"""What the Neuron driver's sysfs files would hold, computed from the daemon's own counters.

One data model (DESIGN principle 1): every value comes from a snapshot (SnapshotBuilder) plus the
few per-core and per-host-scope counters the snapshot does not carry (the memory ledger's host
scopes, model loads, outcomes of closed sessions). This module only computes values; writing them
as files, write-to-clear and refreshing are sysfs/tree.py's. docs/sysfs.md lists every file, where
its value comes from, and which files of the real driver are absent and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.runtime.sessions import RuntimeState
from neurontools.daemon.runtime.snapshot import SnapshotBuilder

# /sys/module/neuron/version. SYNTHESIZED: the reference's real capture ran driver 2.26; the
# patch digits are ours (aws-neuronx-dkms versions have four parts).
DRIVER_VERSION = "2.26.5.0"

DEVICE_MEMORY_CATEGORIES = (
    pb.COLLECTIVES, pb.CONSTANTS, pb.DMA_RINGS, pb.DRIVER_MEMORY, pb.MODEL_CODE, pb.MODEL_SHARED_SCRATCHPAD,
    pb.NONSHARED_SCRATCHPAD, pb.NOTIFICATIONS, pb.RUNTIME_MEMORY, pb.TENSORS, pb.UNCATEGORIZED)
HOST_MEMORY_CATEGORIES = (
    pb.APPLICATION_MEMORY, pb.CONSTANTS, pb.DMA_BUFFERS, pb.DMA_RINGS, pb.DRIVER_MEMORY, pb.NOTIFICATIONS,
    pb.TENSORS, pb.UNCATEGORIZED)

# Per-core stats/status/<name>: the driver's names (neuron_sysfs_metrics.c; the reference calls the
# driver source authoritative over the user guide's older infer_* names) for the outcomes our
# runtime produces. The driver's other status counters count runtime API failures we do not model
# per core; they are absent (docs/sysfs.md).
STATUS_FILES = {
    "success": pb.COMPLETED,
    "execute_completed_with_error": pb.COMPLETED_WITH_ERR,
    "execute_completed_with_num_error": pb.COMPLETED_WITH_NUM_ERR,
    "timeout": pb.TIMED_OUT,
    "exec_bad_input": pb.INCORRECT_INPUT,
    "execute_failed_to_queue": pb.FAILED_TO_QUEUE,
}
_EXECUTION_FIELD = {
    pb.COMPLETED: "completed", pb.COMPLETED_WITH_ERR: "completed_with_err",
    pb.COMPLETED_WITH_NUM_ERR: "completed_with_num_err", pb.TIMED_OUT: "timed_out",
    pb.INCORRECT_INPUT: "incorrect_input", pb.FAILED_TO_QUEUE: "failed_to_queue",
}

# Power model (stats/power/utilization), percent of the device's maximum power. The reference's real
# inf2.xlarge averaged 0.56 % idle and 18.86 % under a torch-neuronx load (neuron-tools.md §6.4); we
# interpolate linearly in the device's occupied fraction. MODELED, not measured: docs/sysfs.md.
IDLE_POWER_PERCENT = 0.56
BUSY_POWER_PERCENT = 18.86
POWER_WINDOW_SECONDS = 60  # "The interface updates these statistics every minute"


def category_name(category: int) -> str:
    return pb.MemoryCategory.Name(category).lower()


@dataclass
class Counter:
    """One counter directory of the driver: a cumulative `total`, and for memory counters the
    current usage as `total` with its `peak`. `present` is derived by the tree from changes."""

    total: int
    peak: int | None = None  # memory counters only

    @property
    def is_memory(self) -> bool:
        return self.peak is not None


@dataclass
class NodeValues:
    """Every file of the tree relative to devices/virtual/neuron_device: plain text files and counters."""

    texts: dict[str, str] = field(default_factory=dict)
    counters: dict[str, Counter] = field(default_factory=dict)


class PowerModel:
    """Per device: samples of modeled power taken at each refresh, published once per window as
    the driver does: `<status>,<epoch seconds>,<min>,<max>,<avg>`."""

    def __init__(self, device_count: int, window_seconds: int = POWER_WINDOW_SECONDS) -> None:
        self.window = window_seconds
        self.samples: list[list[float]] = [[] for _ in range(device_count)]
        self.window_start: int | None = None
        self.published: list[str] | None = None
        self.last_occupied: dict[int, int] = {}
        self.last_monotonic_ns: int | None = None

    def sample(self, snap: pb.Snapshot, now_unix_s: float) -> list[str]:
        devices = len(self.samples)
        window = int(now_unix_s // self.window) * self.window
        if self.window_start is None:
            self.window_start = window
        elif window != self.window_start:
            # The window closed: publish its statistics (a window without samples has no data).
            self.published = [_power_line(s, window) for s in self.samples]
            self.samples = [[] for _ in range(devices)]
            self.window_start = window
        if self.last_monotonic_ns is not None and snap.monotonic_ns > self.last_monotonic_ns:
            elapsed = snap.monotonic_ns - self.last_monotonic_ns
            busy = [0] * devices
            cores = [0] * devices
            for core in snap.cores:
                busy[core.device_index] += core.occupied_ns - self.last_occupied.get(core.core_id, 0)
                cores[core.device_index] += 1
            for device in range(devices):
                utilization = min(1.0, busy[device] / (elapsed * max(1, cores[device])))
                self.samples[device].append(
                    IDLE_POWER_PERCENT + (BUSY_POWER_PERCENT - IDLE_POWER_PERCENT) * utilization)
        self.last_monotonic_ns = snap.monotonic_ns
        self.last_occupied = {core.core_id: core.occupied_ns for core in snap.cores}
        if self.published is None:
            return [f"POWER_STATUS_NO_DATA,{window},0.00,0.00,0.00"] * devices
        return self.published


def _power_line(samples: list[float], timestamp: int) -> str:
    if not samples:
        return f"POWER_STATUS_NO_DATA,{timestamp},0.00,0.00,0.00"
    average = math.fsum(samples) / len(samples)
    return f"POWER_STATUS_VALID,{timestamp},{min(samples):.2f},{max(samples):.2f},{average:.2f}"


class NodeReader:
    """Reads the daemon's state into NodeValues (one consistent read per call)."""

    def __init__(self, state: RuntimeState, snapshots: SnapshotBuilder, power: PowerModel) -> None:
        self.state = state
        self.snapshots = snapshots
        self.power = power

    def read(self, now_unix_s: float) -> NodeValues:
        state = self.state
        # Under the state lock no session can close between the snapshot (live sessions' outcomes)
        # and the retired outcomes read below, so an execution is never counted twice or lost.
        with state.lock:
            snap = self.snapshots.build([])
            with state.telemetry.lock:
                retired = [dict(core.closed_session_outcomes) for core in state.telemetry.cores]
                model_loads = [core.model_loads for core in state.telemetry.cores]
        outcomes = retired
        for session in snap.sessions:
            for core_id in session.core_ids:
                for status, name in _EXECUTION_FIELD.items():
                    count = getattr(session.stats.executions, name)
                    if count:
                        outcomes[core_id][status] = outcomes[core_id].get(status, 0) + count
        values = NodeValues()
        topology = snap.topology
        hardware = topology.hardware
        power_lines = self.power.sample(snap, now_unix_s)
        ledger = state.ledger
        for device, counters in zip(topology.devices, snap.devices):
            d = f"neuron{device.index}"
            texts = values.texts
            texts[f"{d}/core_count"] = str(len(device.core_ids))
            texts[f"{d}/connected_devices"] = ", ".join(map(str, device.connected_to))
            texts[f"{d}/info/serial_number"] = device.serial_number
            texts[f"{d}/info/architecture/arch_type"] = hardware.device_arch
            texts[f"{d}/info/architecture/device_name"] = hardware.device_name
            texts[f"{d}/info/architecture/instance_type"] = hardware.platform_name
            texts[f"{d}/stats/power/utilization"] = power_lines[device.index]
            hw = f"{d}/stats/hardware"
            values.counters[f"{hw}/mem_ecc_uncorrected"] = Counter(counters.mem_ecc_uncorrected)
            values.counters[f"{hw}/sram_ecc_uncorrected"] = Counter(counters.sram_ecc_uncorrected)
            host = ledger.categories(("host_device", device.index))
            for category in HOST_MEMORY_CATEGORIES:
                used, peak = host.get(category, (0, 0))
                values.counters[f"{d}/stats/memory_usage/host_mem/{category_name(category)}"] = Counter(used, peak)
            for local, core_id in enumerate(device.core_ids):
                self._core(values, f"{d}/neuron_core{local}", snap.cores[core_id], hardware.core_arch,
                           outcomes[core_id], model_loads[core_id], counters.resets)
        return values

    def _core(self, values: NodeValues, c: str, core: pb.CoreCounters, arch: str, outcomes: dict[int, int],
              model_loads: int, device_resets: int) -> None:
        ledger = self.state.ledger
        values.texts[f"{c}/info/architecture/arch_type"] = arch
        counters = values.counters
        for name, status in STATUS_FILES.items():
            counters[f"{c}/stats/status/{name}"] = Counter(outcomes.get(status, 0))
        memory = {m.category: m for m in core.memory}
        device_mem = f"{c}/stats/memory_usage/device_mem"
        for category in DEVICE_MEMORY_CATEGORIES:
            usage = memory.get(category)
            counters[f"{device_mem}/{category_name(category)}"] = Counter(
                usage.used_bytes if usage else 0, usage.peak_bytes if usage else 0)
        scope = ("core", core.core_id)
        counters[device_mem] = Counter(ledger.used(scope), ledger.peak(scope))
        host_scope = ("host_core", core.core_id)
        counters[f"{c}/stats/memory_usage/host_mem"] = Counter(ledger.used(host_scope), ledger.peak(host_scope))
        other = f"{c}/stats/other_info"
        counters[f"{other}/flop_count"] = Counter(core.flops)
        counters[f"{other}/inference_count"] = Counter(outcomes.get(pb.COMPLETED, 0))
        counters[f"{other}/model_load_count"] = Counter(model_loads)
        counters[f"{other}/nc_time_in_use"] = Counter(core.device_time_ns // 1000)  # microseconds
        counters[f"{other}/reset_req_count"] = Counter(device_resets)
        counters[f"{other}/reset_fail_count"] = Counter(0)  # a software device reset never fails
