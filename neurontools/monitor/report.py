"""The neuron-monitor report: one pydantic model per JSON object, in the real tool's shape.

These models *are* the published schema (`docs/neuron-monitor-schema.json` is generated from them).
Field names, nesting, types and declaration order follow what the real neuron-monitor emits; the
declaration order is the order `report_json` writes struct-typed objects in.

Reading is tolerant, like the real consumers: unknown keys are kept (and written back), every metric
group is optional, and `null` is accepted where the real tool emits it. Field presence follows one
rule that `report_json` relies on:

* a field without a default is always emitted (as `null` when its type allows `None` and it is None);
* a field whose default is None is optional: absent in some tool versions, omitted when None.

Units are the real tool's: bytes, seconds, percent (0-100), FLOP/s, counts per sampling period.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

# `X | Omitted = None` marks an optional field: None means absent, never written as null, so the
# schema does not offer null for it.
Omitted = SkipJsonSchema[None]

GroupPeriod = Annotated[float, Field(description="Actual captured interval of this group, seconds (ns resolution).")]
GroupError = Annotated[str, Field(description='Error collecting this group; "" when none.')]
Percent = Annotated[float, Field(description="Percent of time during the period (0-100).")]
Count = Annotated[int, Field(description="Events during the sampling period (not a running total).")]


def _drop_omitted_defaults(schema: dict[str, Any]) -> None:
    # An omitted field has no value; "default": null would contradict its (non-null) type.
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


def _null_as(empty: Any) -> BeforeValidator:
    # Go encodes a nil map or slice as null; readers treat it as empty.
    return BeforeValidator(lambda value: empty if value is None else value)


class ReportObject(BaseModel):
    """Base of every object in a report: keeps unknown keys, immutable once built."""

    model_config = ConfigDict(
        extra="allow", frozen=True, allow_inf_nan=False, protected_namespaces=(),
        json_schema_extra=_drop_omitted_defaults,
    )

    # The Go tool holds some objects in maps (keys written sorted) and others in structs
    # (keys written in declaration order); report_json reads this flag.
    encoded_as_map: ClassVar[bool] = False


# --- execution_stats ---------------------------------------------------------------------------


class ErrorSummary(ReportObject):
    """Failed executions by error kind, counted over the period."""

    generic: int | Omitted = Field(None, description="Generic execution errors (absent from the 2026 inf2 capture).")
    numerical: Count = Field(description="Numerical (NaN) errors.")
    transient: Count = Field(description="Recoverable errors, e.g. corrected ECC.")
    model: Count = Field(description="Model-related errors.")
    runtime: Count = Field(description="Neuron Runtime errors.")
    hardware: Count = Field(description="Hardware errors, e.g. uncorrectable ECC.")


class ExecutionSummary(ReportObject):
    """Executions by outcome, counted over the period."""

    completed: Count
    completed_with_err: Count = Field(description="Completed with an error other than a numerical one.")
    completed_with_num_err: Count = Field(description="Completed with a numerical error.")
    timed_out: Count = Field(description="Exceeded the runtime timeout.")
    incorrect_input: Count = Field(description="Failed to start because of bad input.")
    failed_to_queue: Count = Field(description="Rejected: could not be queued.")


class LatencyPercentiles(ReportObject):
    """Latency percentiles over the period's executions, seconds."""

    encoded_as_map: ClassVar[bool] = True

    p0: float
    p1: float
    p25: float
    p50: float
    p75: float
    p99: float
    p100: float


class LatencyStats(ReportObject):
    total_latency: LatencyPercentiles | None = Field(
        description="As measured by the runtime, queueing included; null when nothing executed in the period.")
    device_latency: LatencyPercentiles | None = Field(
        description="Execution time on the device only; null when nothing executed in the period.")


class ExecutionStats(ReportObject):
    """Metric group `execution_stats`."""

    period: GroupPeriod
    error_summary: ErrorSummary
    execution_summary: ExecutionSummary
    latency_stats: LatencyStats
    error: GroupError


# --- memory_used -------------------------------------------------------------------------------


class HostMemoryBreakdown(ReportObject):
    """Host DRAM by category, bytes."""

    application_memory: int = Field(description="Host memory used by the application outside the other categories.")
    constants: int = Field(description="Constants (weights, for inference).")
    dma_buffers: int = Field(description="Host memory for DMA transfers.")
    tensors: int


class NeuronCoreMemoryBreakdown(ReportObject):
    """Device memory of one NeuronCore by category, bytes."""

    constants: int
    model_code: int = Field(description="Models' executable code.")
    model_shared_scratchpad: int = Field(description="Scratchpad shared by the models.")
    runtime_memory: int = Field(description="Used by the Neuron Runtime itself.")
    tensors: int


class RuntimeMemoryBreakdown(ReportObject):
    host: HostMemoryBreakdown
    neuroncore_memory_usage: dict[str, NeuronCoreMemoryBreakdown] = Field(
        description="Keyed by global NeuronCore index; only cores this runtime allocated on.")


class RuntimeMemoryUsage(ReportObject):
    host: int = Field(description="Total host DRAM used by the runtime, bytes.")
    neuron_device: int = Field(description="Total device memory used by the runtime, bytes.")
    usage_breakdown: RuntimeMemoryBreakdown


class DeviceMemoryBreakdown(ReportObject):
    """Device memory of one subgraph by category, bytes."""

    constants: int
    model_code: int
    runtime_memory: int
    tensors: int


class SubgraphMemoryBreakdown(ReportObject):
    host: HostMemoryBreakdown
    neuron_device: DeviceMemoryBreakdown


class SubgraphMemoryUsage(ReportObject):
    """Memory allocated when the subgraph was loaded, bytes."""

    host: int
    neuron_device: int
    usage_breakdown: SubgraphMemoryBreakdown


class Subgraph(ReportObject):
    memory_used_bytes: SubgraphMemoryUsage
    neuroncore_index: int = Field(description="Global NeuronCore index the subgraph is loaded on.")
    neuron_device_index: int
    v2: str | Omitted = Field(None, description='Physical NeuronCore-v2 id, e.g. "nc_v2.0" (runtime 2.30+).')


class LoadedModel(ReportObject):
    name: str = Field(description="NEFF name or path.")
    uuid: str = Field(description="32 hex characters.")
    model_id: int = Field(description="Runtime-assigned id: 10001, 10002, ...")
    is_running: bool = Field(description="True while the model is started.")
    subgraphs: dict[str, Subgraph] = Field(description='Keyed by subgraph name: "sg_00", ...')


class MemoryUsed(ReportObject):
    """Metric group `memory_used`."""

    period: GroupPeriod
    neuron_runtime_used_bytes: RuntimeMemoryUsage
    loaded_models: list[LoadedModel]
    error: GroupError


# --- neuron_runtime_vcpu_usage -----------------------------------------------------------------


class RuntimeCpuUsage(ReportObject):
    user: Percent = Field(description="Percent of the period this application spent in user code.")
    system: Percent = Field(description="Percent of the period this application spent in kernel code.")


class NeuronRuntimeVcpuUsage(ReportObject):
    """Metric group `neuron_runtime_vcpu_usage`."""

    period: GroupPeriod
    vcpu_usage: RuntimeCpuUsage
    error: GroupError


# --- neuroncore_counters -----------------------------------------------------------------------


class PhysicalCoreCounters(ReportObject):
    neuroncore_utilization: Percent


class CoreCounters(ReportObject):
    """Counters of one NeuronCore over the period."""

    neuroncore_utilization: Percent
    flops: int | Omitted = Field(None, description="Floating point operations per second during the period.")
    effective_flops: int | Omitted = Field(None, description="Undocumented by AWS; present in 2024 and 2026 captures.")
    v3d: dict[str, PhysicalCoreCounters] | Omitted = Field(
        None, description='trn2 logical cores only: per physical core, keyed "nc_v3.<n>".')


class NeuronCoreCounters(ReportObject):
    """Metric group `neuroncore_counters`."""

    period: GroupPeriod
    neuroncores_in_use: dict[str, CoreCounters] = Field(
        description="Keyed by global NeuronCore index; every core visible on the instance.")
    error: GroupError


# --- one Neuron application --------------------------------------------------------------------


class RuntimeReport(ReportObject):
    """The configured runtime metric groups of one application."""

    encoded_as_map: ClassVar[bool] = True

    execution_stats: ExecutionStats | Omitted = None
    memory_used: MemoryUsed | Omitted = None
    neuron_runtime_vcpu_usage: NeuronRuntimeVcpuUsage | Omitted = None
    neuroncore_counters: NeuronCoreCounters | Omitted = None


class RuntimeData(ReportObject):
    """One Neuron application (a process using Neuron Runtime 2.x)."""

    pid: int = Field(description="Host process id.")
    address: str | Omitted = Field(None, description="Documented, but absent from every real capture since 2023.")
    neuron_runtime_tag: str = Field(description="NEURON_PROCESS_TAG, or the process id as a string.")
    error: str = Field(description='Error talking to this application; "" when none.')
    report: Annotated[RuntimeReport, _null_as({})]


# --- system_data -------------------------------------------------------------------------------


class MemoryInfo(ReportObject):
    """Metric group `memory_info`: host RAM and swap, bytes."""

    period: GroupPeriod
    memory_total_bytes: int
    memory_used_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    error: GroupError


class NeuronDeviceCounters(ReportObject):
    """ECC events of one Neuron device over the period."""

    neuron_device_index: int
    mem_ecc_corrected: Count
    mem_ecc_uncorrected: Count
    sram_ecc_uncorrected: Count
    sram_ecc_corrected: Count


class NeuronHwCounters(ReportObject):
    """Metric group `neuron_hw_counters`."""

    period: GroupPeriod
    neuron_devices: list[NeuronDeviceCounters] | None = Field(description="null when no device is visible.")
    error: GroupError


class CpuUsage(ReportObject):
    """Share of the period a vCPU (or all vCPUs on average) spent in each state, percent."""

    user: Percent
    nice: Percent
    system: Percent
    idle: Percent
    io_wait: Percent
    irq: Percent
    soft_irq: Percent


class VcpuUsage(ReportObject):
    """Metric group `vcpu_usage`."""

    period: GroupPeriod
    average_usage: CpuUsage
    usage_data: dict[str, CpuUsage] = Field(description="Keyed by vCPU index.")
    context_switch_count: Count
    error: GroupError


class RuntimeExecutionTotals(ReportObject):
    """Executions of the runtimes with one tag since neurond started, ended runtimes included."""

    neuron_runtime_tag: str
    execution_summary: dict[str, int] = Field(
        description="Running totals by outcome, the keys of execution_stats.execution_summary.")
    error_summary: dict[str, int] = Field(
        description="Running totals by error kind, the keys of execution_stats.error_summary.")


class DeviceTotals(ReportObject):
    """Running totals of one Neuron device since neurond started."""

    neuron_device_index: int
    resets: int = Field(description="Device resets.")


class NeurondTotals(ReportObject):
    """Metric group `neurond_totals` (neurontools only, not in the real tool; opt-in): the daemon's
    cumulative counters. Executions: an execution in the last period of a runtime that has ended,
    which execution_stats never reports, is still counted. Devices: resets, which no real group has."""

    period: GroupPeriod
    neuron_runtimes: list[RuntimeExecutionTotals]
    neuron_devices: list[DeviceTotals]
    error: GroupError


class SystemData(ReportObject):
    """The configured system metric groups."""

    encoded_as_map: ClassVar[bool] = True

    memory_info: MemoryInfo | Omitted = None
    neuron_hw_counters: NeuronHwCounters | Omitted = None
    neurond_totals: NeurondTotals | Omitted = None
    vcpu_usage: VcpuUsage | Omitted = None


# --- always present ----------------------------------------------------------------------------


class InstanceInfo(ReportObject):
    """EC2 identity from instance metadata; unavailable values are ""."""

    instance_name: str = Field(description='The Name tag (needs aws-cli); usually "".')
    instance_id: str
    instance_type: str
    instance_availability_zone: str
    instance_availability_zone_id: str
    instance_region: str
    ami_id: str
    subnet_id: str
    ultraserver_id: str | Omitted = Field(None, description="UltraServer instances only.")
    error: str = Field(description='Error reading a required field; "" when none.')


class NeuronHardwareInfo(ReportObject):
    """The instance's Neuron hardware. Older tools emit only the device and core counts and error."""

    neuron_device_type: str | Omitted = Field(None, description='"inferentia2", "trainium", "trainium2", ...')
    neuron_device_version: str | Omitted = Field(None, description='"v3" on inf2.')
    neuroncore_version: str | Omitted = Field(None, description='"v2" on inf2.')
    neuron_device_count: int
    neuron_device_memory_size: int | Omitted = Field(None, description="Memory of each device, bytes.")
    neuroncore_per_device_count: int
    logical_neuroncore_config: int | Omitted = Field(None, description="Logical NeuronCore size (LNC); 1 on inf2.")
    error: str = Field(description='Error reading the hardware, usually a missing driver; "" when none.')


class K8sPodInfo(ReportObject):
    pod_name: str
    namespace: str
    container_name: list[str]


class NeuronK8sInfo(ReportObject):
    """Kubernetes owners of cores and devices (disabled by default)."""

    period: GroupPeriod
    neuroncores_k8s_info: dict[str, K8sPodInfo] = Field(description="Keyed by global NeuronCore index.")
    neurondevices_k8s_info: dict[str, K8sPodInfo] = Field(description="Keyed by Neuron device index.")
    error: GroupError


class Report(ReportObject):
    """One neuron-monitor report: a single line of its NDJSON output."""

    neuron_runtime_data: Annotated[list[RuntimeData], _null_as([])] = Field(
        description="One entry per monitored Neuron application; [] when none runs.")
    system_data: Annotated[SystemData, _null_as({})]
    instance_info: InstanceInfo
    neuron_hardware_info: NeuronHardwareInfo
    neuron_k8s_info: NeuronK8sInfo | Omitted = None
