"""The real neuron-top's screen as data: one Report and the selected tab in, an Overview out.

Mapping (reference neuron-tools.md section 2.6): per-core bars from each application's
`neuroncore_counters`; vCPU rows from `system_data.vcpu_usage` and `neuron_runtime_vcpu_usage`;
memory summaries from `memory_used`. On the 'all' tab a core's value is the sum over applications
(each reports every core, and only the owner's value is non-zero), capped at 100%.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurontools import __version__
from neurontools.monitor.report import Report, RuntimeData
from neurontools.top import tabs as tab_bar
from neurontools.top.memory_tree import MemoryNode, memory_tree

# NeuronCore generation by instance family, for reports from tools that predate `neuroncore_version`.
_CORE_VERSION_BY_FAMILY = {"inf1": "v1", "inf2": "v2", "trn1": "v2", "trn1n": "v2", "trn2": "v3", "trn2n": "v3"}


@dataclass(frozen=True)
class CoreLoad:
    core_id: int  # global index
    device: int
    local: int  # index within the device: the NC<n> column
    utilization: float  # percent
    flops: float | None  # FLOP/s; None when no application reports FLOPS


@dataclass(frozen=True)
class HostMemory:
    total: int
    tensors: int
    constants: int
    dma_buffers: int
    application_memory: int


@dataclass(frozen=True)
class DeviceMemory:
    total: int
    tensors: int
    constants: int
    model_code: int
    runtime_memory: int
    model_shared_scratchpad: int


@dataclass(frozen=True)
class Overview:
    title: str
    core_version: str | None  # "v2"; None when unknown ("NeuronCore Utilization", as old builds)
    device_count: int
    cores_per_device: int
    cores: tuple[CoreLoad, ...]
    system_vcpu: tuple[float, float] | None  # user, system percent
    runtime_vcpu: tuple[float, float] | None
    host_memory: HostMemory
    device_memory: DeviceMemory
    memory_tree: tuple[MemoryNode, ...]
    tabs: tuple[tab_bar.AppTab, ...]
    selected_tab: tab_bar.AppTab

    @property
    def utilization_title(self) -> str:
        return f"NeuronCore {self.core_version} Utilization" if self.core_version else "NeuronCore Utilization"

    @property
    def average_utilization(self) -> float:
        return sum(c.utilization for c in self.cores) / len(self.cores) if self.cores else 0.0

    @property
    def total_flops(self) -> float | None:
        values = [c.flops for c in self.cores if c.flops is not None]
        return sum(values) if values else None

    @property
    def average_flops(self) -> float | None:
        total = self.total_flops
        return None if total is None else total / len(self.cores)


def title_of(report: Report) -> str:
    info = report.instance_info
    return f"neuron-top {__version__} running on {info.instance_id} ({info.instance_type})"


def core_version_of(report: Report) -> str | None:
    hardware = report.neuron_hardware_info
    if hardware.neuroncore_version:
        version = hardware.neuroncore_version
        return f"{version}d" if version == "v3" and (hardware.logical_neuroncore_config or 1) > 1 else version
    return _CORE_VERSION_BY_FAMILY.get(report.instance_info.instance_type.partition(".")[0])


def core_layout(report: Report) -> tuple[int, int]:
    """(devices, cores per device); from the reported cores when the hardware group is empty."""
    hardware = report.neuron_hardware_info
    if hardware.neuron_device_count and hardware.neuroncore_per_device_count:
        return hardware.neuron_device_count, hardware.neuroncore_per_device_count
    seen = [int(key) for r in report.neuron_runtime_data if r.report.neuroncore_counters
            for key in r.report.neuroncore_counters.neuroncores_in_use if key.isdigit()]
    return (1, max(seen) + 1) if seen else (0, 0)


def core_loads(report: Report, runtimes: list[RuntimeData]) -> tuple[CoreLoad, ...]:
    devices, per_device = core_layout(report)
    utilization = [0.0] * (devices * per_device)
    flops: list[float | None] = [None] * len(utilization)
    for runtime in runtimes:
        counters = runtime.report.neuroncore_counters
        if counters is None:
            continue
        for key, core in counters.neuroncores_in_use.items():
            if not key.isdigit() or int(key) >= len(utilization):
                continue
            index = int(key)
            utilization[index] = min(100.0, utilization[index] + core.neuroncore_utilization)
            # the real tool shows effective FLOPs (release notes); older reports only have flops
            value = core.effective_flops if core.effective_flops is not None else core.flops
            if value is not None:
                flops[index] = (flops[index] or 0.0) + value
    return tuple(CoreLoad(i, i // per_device, i % per_device, utilization[i], flops[i])
                 for i in range(len(utilization)))


def _runtime_vcpu(runtimes: list[RuntimeData]) -> tuple[float, float] | None:
    """User and system percent of all vCPUs' time, summed over processes. The group measures the
    process, so a process with several runtimes is counted once."""
    by_pid = {r.pid: r.report.neuron_runtime_vcpu_usage for r in runtimes if r.report.neuron_runtime_vcpu_usage}
    if not by_pid:
        return None
    return sum(g.vcpu_usage.user for g in by_pid.values()), sum(g.vcpu_usage.system for g in by_pid.values())


def _memory(runtimes: list[RuntimeData]) -> tuple[HostMemory, DeviceMemory]:
    host = dict.fromkeys(("total", "tensors", "constants", "dma_buffers", "application_memory"), 0)
    device = dict.fromkeys(("total", "tensors", "constants", "model_code", "runtime_memory",
                            "model_shared_scratchpad"), 0)
    for runtime in runtimes:
        memory = runtime.report.memory_used
        if memory is None:
            continue
        used = memory.neuron_runtime_used_bytes
        host["total"] += used.host
        device["total"] += used.neuron_device
        breakdown = used.usage_breakdown
        for name in ("tensors", "constants", "dma_buffers", "application_memory"):
            host[name] += getattr(breakdown.host, name)
        for core in breakdown.neuroncore_memory_usage.values():
            for name in ("tensors", "constants", "model_code", "runtime_memory", "model_shared_scratchpad"):
                device[name] += getattr(core, name)
    return HostMemory(**host), DeviceMemory(**device)


def overview(report: Report, tab_key: str = tab_bar.ALL) -> Overview:
    tabs = tab_bar.tabs_of(report)
    selected = tab_bar.resolve(tabs, tab_key)
    runtimes = tab_bar.runtimes_of(report, selected.key)
    devices, per_device = core_layout(report)
    vcpu = report.system_data.vcpu_usage
    host, device = _memory(runtimes)
    return Overview(
        title=title_of(report),
        core_version=core_version_of(report),
        device_count=devices,
        cores_per_device=per_device,
        cores=core_loads(report, runtimes),
        system_vcpu=(vcpu.average_usage.user, vcpu.average_usage.system) if vcpu else None,
        runtime_vcpu=_runtime_vcpu(runtimes),
        host_memory=host,
        device_memory=device,
        memory_tree=memory_tree(runtimes, per_device),
        tabs=tabs,
        selected_tab=selected,
    )
