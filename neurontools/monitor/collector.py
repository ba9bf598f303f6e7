"""Snapshots in, reports out: the one place a neuron-monitor report is computed (DESIGN principle 1).

neurond's counters are cumulative (principle 2). The pure functions below turn two snapshots into
one metric group's values for the period between them: utilization, FLOP/s, execution and error
counts, latency percentiles, ECC events. `Collector` keeps what lies between ticks: when each group
is next due, the snapshot each group (and each runtime) is measured from, and the last value of
every group, so that each line is a complete report.

Reports are assembled with `model_construct`: the values come from our own arithmetic, and fully
validating a 24-core, 50-runtime report every second would cost more than computing it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import NeuronError
from neurontools.latency_histogram import filled_difference, percentiles
from neurontools.monitor.config import MonitorConfig, RuntimeSelector
from neurontools.monitor.report import (
    CoreCounters, DeviceMemoryBreakdown, ErrorSummary, ExecutionStats, ExecutionSummary, HostMemoryBreakdown,
    InstanceInfo, LatencyPercentiles, LatencyStats, LoadedModel, MemoryInfo, MemoryUsed, NeuronCoreCounters,
    DeviceTotals, NeurondTotals, RuntimeExecutionTotals,
    NeuronCoreMemoryBreakdown, NeuronDeviceCounters, NeuronHardwareInfo, NeuronHwCounters, Report,
    RuntimeData, RuntimeMemoryBreakdown, RuntimeMemoryUsage, RuntimeReport, Subgraph, SubgraphMemoryBreakdown,
    SubgraphMemoryUsage, SystemData, VcpuUsage)
from neurontools.monitor.system_metrics import (CpuSample, ProcessCpuSample, SystemReader, memory_info,
                                                runtime_vcpu_usage, vcpu_usage)

log = logging.getLogger("neuron-monitor")

PERCENTILES = {"p0": 0.0, "p1": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99, "p100": 1.0}
EXECUTION_OUTCOMES = ("completed", "completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input",
                      "failed_to_queue")
ERROR_KINDS = ("generic", "numerical", "transient", "model", "runtime", "hardware")
ECC_COUNTERS = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_uncorrected", "sram_ecc_corrected")
DUE_SLACK_SECONDS = 0.002  # a group due this soon is collected now rather than by another wake-up

# A core the runtime does not own: the same immutable object in every report.
_IDLE_CORE = CoreCounters.model_construct(neuroncore_utilization=0.0, flops=0, effective_flops=0)


class IndexedSnapshot:
    """A snapshot and the lookups every group needs, built once per snapshot."""

    __slots__ = ("snapshot", "sessions", "cores", "models")

    def __init__(self, snapshot: pb.Snapshot) -> None:
        self.snapshot = snapshot
        self.sessions = {session.session_id: session for session in snapshot.sessions}
        self.cores = {core.core_id: core for core in snapshot.cores}
        self.models: dict[int, list[pb.ModelInfo]] = {}
        for model in snapshot.models:
            self.models.setdefault(model.session_id, []).append(model)

    @property
    def monotonic_ns(self) -> int:
        return self.snapshot.monotonic_ns


# --- one metric group from two snapshots -------------------------------------------------------


def neuroncore_counters(newer: IndexedSnapshot, older: IndexedSnapshot, session: pb.SessionInfo) -> NeuronCoreCounters:
    """Every core of the machine; those the runtime owns with 100 x busy time / period and FLOP/s.

    `flops` and `effective_flops` carry the same number: the FLOPs the core executed in the period
    (2 per multiply-accumulate) per second. The daemon counts only the operations a kernel asks for,
    so there is no second, padded or hardware-cycle count to tell them apart.
    """
    elapsed_ns = newer.monotonic_ns - older.monotonic_ns
    owned = set(session.core_ids)
    in_use: dict[str, CoreCounters] = {}
    for core in newer.snapshot.cores:
        key = str(core.core_id)
        if core.core_id not in owned or elapsed_ns <= 0:
            in_use[key] = _IDLE_CORE
            continue
        before = older.cores.get(core.core_id)
        occupied_ns = core.occupied_ns - (before.occupied_ns if before is not None else 0)
        flops = core.flops - (before.flops if before is not None else 0)
        rate = max(0, round(flops * 1e9 / elapsed_ns))
        in_use[key] = CoreCounters.model_construct(
            neuroncore_utilization=min(100.0, max(0.0, 100.0 * occupied_ns / elapsed_ns)),
            flops=rate, effective_flops=rate)
    return NeuronCoreCounters.model_construct(period=elapsed_ns / 1e9, neuroncores_in_use=in_use, error="")


def latency_percentiles(newer: pb.Histogram, older: pb.Histogram | None) -> LatencyPercentiles | None:
    """Seconds at p0 ... p100 of the executions recorded between two cumulative histograms."""
    if newer.count == (older.count if older is not None else 0):
        return None  # nothing ran
    first, counts = filled_difference(newer, older)
    values = percentiles(counts, tuple(PERCENTILES.values()), first)
    if values is None:
        return None
    return LatencyPercentiles.model_construct(**{key: ns / 1e9 for key, ns in zip(PERCENTILES, values)})


def execution_stats(newer: pb.SessionInfo, older: pb.SessionInfo | None, period: float) -> ExecutionStats:
    """Executions by outcome and errors by kind in the period; `older` None means since the session opened."""
    new, old = newer.stats, (older.stats if older is not None else None)

    def counts(fields: Iterable[str], current, previous) -> dict[str, int]:
        return {name: getattr(current, name) - (getattr(previous, name) if previous is not None else 0)
                for name in fields}

    return ExecutionStats.model_construct(
        period=period,
        error_summary=ErrorSummary.model_construct(
            **counts(ERROR_KINDS, new.errors, old.errors if old is not None else None)),
        execution_summary=ExecutionSummary.model_construct(
            **counts(EXECUTION_OUTCOMES, new.executions, old.executions if old is not None else None)),
        latency_stats=LatencyStats.model_construct(
            total_latency=latency_percentiles(new.total_latency, old.total_latency if old is not None else None),
            device_latency=latency_percentiles(new.device_latency, old.device_latency if old is not None else None)),
        error="")


def _used(usages: Iterable[pb.MemoryUsage]) -> dict[int, int]:
    return {usage.category: usage.used_bytes for usage in usages}


def _host_breakdown(used: dict[int, int]) -> HostMemoryBreakdown:
    return HostMemoryBreakdown.model_construct(
        application_memory=used.get(pb.APPLICATION_MEMORY, 0), constants=used.get(pb.CONSTANTS, 0),
        dma_buffers=used.get(pb.DMA_BUFFERS, 0), tensors=used.get(pb.TENSORS, 0))


def _subgraph(subgraph: pb.Subgraph, neuroncore_version: str) -> Subgraph:
    device, host = _used(subgraph.device_memory), _used(subgraph.host_memory)
    return Subgraph.model_construct(
        memory_used_bytes=SubgraphMemoryUsage.model_construct(
            host=sum(host.values()), neuron_device=sum(device.values()),
            usage_breakdown=SubgraphMemoryBreakdown.model_construct(
                host=_host_breakdown(host),
                neuron_device=DeviceMemoryBreakdown.model_construct(
                    constants=device.get(pb.CONSTANTS, 0), model_code=device.get(pb.MODEL_CODE, 0),
                    runtime_memory=device.get(pb.RUNTIME_MEMORY, 0), tensors=device.get(pb.TENSORS, 0)))),
        neuroncore_index=subgraph.core_id, neuron_device_index=subgraph.device_index,
        # Runtime 2.30 names the physical NeuronCore-v2 (reference §3.7 (d)); other generations differ.
        v2=f"nc_v2.{subgraph.core_id}" if neuroncore_version == "v2" else None)


def memory_used(snapshot: IndexedSnapshot, session: pb.SessionInfo, period: float) -> MemoryUsed:
    """Host and device memory of one runtime now (a gauge), and its loaded models.

    Totals count every category; the breakdowns only the tool's five (device) and four (host)
    categories, as in the real captures (the rest, e.g. DMA rings, shows only in the totals).
    """
    host = _used(session.host_memory)
    per_core: dict[str, NeuronCoreMemoryBreakdown] = {}
    device_total = 0
    for core in session.core_memory:  # the cores the runtime holds, allocated on or not
        used = _used(core.memory)
        device_total += sum(used.values())
        per_core[str(core.core_id)] = NeuronCoreMemoryBreakdown.model_construct(
            constants=used.get(pb.CONSTANTS, 0), model_code=used.get(pb.MODEL_CODE, 0),
            model_shared_scratchpad=used.get(pb.MODEL_SHARED_SCRATCHPAD, 0),
            runtime_memory=used.get(pb.RUNTIME_MEMORY, 0), tensors=used.get(pb.TENSORS, 0))
    version = snapshot.snapshot.topology.hardware.neuroncore_version
    models = sorted(snapshot.models.get(session.session_id, ()), key=lambda model: model.model_id)
    return MemoryUsed.model_construct(
        period=period,
        neuron_runtime_used_bytes=RuntimeMemoryUsage.model_construct(
            host=sum(host.values()), neuron_device=device_total,
            usage_breakdown=RuntimeMemoryBreakdown.model_construct(host=_host_breakdown(host),
                                                                   neuroncore_memory_usage=per_core)),
        loaded_models=[LoadedModel.model_construct(
            name=model.name, uuid=model.uuid, model_id=model.model_id, is_running=model.is_running,
            subgraphs={sg.name: _subgraph(sg, version) for sg in model.subgraphs}) for model in models],
        error="")


def memory_inputs(snapshot: IndexedSnapshot, session: pb.SessionInfo) -> tuple:
    """Everything memory_used reads but whether each model is running, cheap to compare (protobuf
    equality runs in C)."""
    models = snapshot.models.get(session.session_id, ())
    return (session.host_memory, session.core_memory, [(model.model_id, model.subgraphs) for model in models])


def with_running_flags(models: list[LoadedModel], snapshot: IndexedSnapshot,
                       session: pb.SessionInfo) -> list[LoadedModel]:
    """The loaded models of the same memory_inputs with `is_running` as the snapshot has it. A busy
    model starts and stops running with every execution while its memory stays put: only the flag
    is new, and each model keeps its subgraph objects."""
    running = {model.model_id: model.is_running for model in snapshot.models.get(session.session_id, ())}
    if all(model.is_running == running[model.model_id] for model in models):
        return models
    return [model if model.is_running == running[model.model_id]
            else model.model_copy(update={"is_running": running[model.model_id]}) for model in models]


def neuron_hw_counters(newer: IndexedSnapshot, older: IndexedSnapshot) -> NeuronHwCounters:
    """ECC events per device in the period (per period, like every count: the Prometheus companion
    adds each report's values to a counter)."""
    previous = {device.device_index: device for device in older.snapshot.devices}
    devices = []
    for device in newer.snapshot.devices:
        before = previous.get(device.device_index)
        devices.append(NeuronDeviceCounters.model_construct(
            neuron_device_index=device.device_index,
            **{name: getattr(device, name) - (getattr(before, name) if before is not None else 0)
               for name in ECC_COUNTERS}))
    return NeuronHwCounters.model_construct(period=(newer.monotonic_ns - older.monotonic_ns) / 1e9,
                                            neuron_devices=devices or None, error="")


def neurond_totals(snapshot: pb.Snapshot, period: float) -> NeurondTotals:
    """Running totals per tag: the live sessions' counters plus those of the sessions that closed."""
    statuses = [f.name for f in pb.ExecutionCounts.DESCRIPTOR.fields]
    kinds = [f.name for f in pb.ErrorCounts.DESCRIPTOR.fields]
    totals: dict[str, tuple[dict[str, int], dict[str, int]]] = {}

    def add(tag: str, executions: pb.ExecutionCounts, errors: pb.ErrorCounts) -> None:
        by_status, by_kind = totals.setdefault(tag, (dict.fromkeys(statuses, 0), dict.fromkeys(kinds, 0)))
        for name in statuses:
            by_status[name] += getattr(executions, name)
        for name in kinds:
            by_kind[name] += getattr(errors, name)

    for ended in snapshot.ended_session_totals:
        add(ended.tag, ended.executions, ended.errors)
    for session in snapshot.sessions:
        add(session.tag or str(session.pid), session.stats.executions, session.stats.errors)
    return NeurondTotals.model_construct(
        period=period, error="",
        neuron_devices=[DeviceTotals.model_construct(neuron_device_index=d.device_index, resets=d.resets)
                        for d in snapshot.devices],
        neuron_runtimes=[RuntimeExecutionTotals.model_construct(neuron_runtime_tag=tag, execution_summary=s,
                                                                error_summary=e)
                         for tag, (s, e) in sorted(totals.items())])


def instance_info(topology: pb.Topology) -> InstanceInfo:
    instance = topology.instance
    return InstanceInfo.model_construct(
        instance_name=instance.instance_name, instance_id=instance.instance_id,
        instance_type=instance.instance_type, instance_availability_zone=instance.availability_zone,
        instance_availability_zone_id=instance.availability_zone_id, instance_region=instance.region,
        ami_id=instance.ami_id, subnet_id=instance.subnet_id, error="")


def hardware_info(topology: pb.Topology) -> NeuronHardwareInfo:
    hardware = topology.hardware
    return NeuronHardwareInfo.model_construct(
        neuron_device_type=hardware.neuron_device_type, neuron_device_version=hardware.neuron_device_version,
        neuroncore_version=hardware.neuroncore_version, neuron_device_count=len(topology.devices),
        neuron_device_memory_size=hardware.neuron_device_memory_size,
        neuroncore_per_device_count=hardware.neuroncore_per_device_count,
        logical_neuroncore_config=hardware.logical_neuroncore_config, error="")


def unreachable_instance_info(error: str) -> InstanceInfo:
    return InstanceInfo.model_construct(
        instance_name="", instance_id="", instance_type="", instance_availability_zone="",
        instance_availability_zone_id="", instance_region="", ami_id="", subnet_id="", error=error)


def unreachable_hardware_info(error: str) -> NeuronHardwareInfo:
    """What the real tool reports without a driver: nothing known, and why."""
    return NeuronHardwareInfo.model_construct(
        neuron_device_type="", neuron_device_version="", neuroncore_version="", neuron_device_count=0,
        neuron_device_memory_size=0, neuroncore_per_device_count=0, logical_neuroncore_config=0, error=error)


# --- state between ticks -----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupKey:
    """A scheduled metric group: a system group (selector None) or a runtime group of one selector."""

    selector: int | None
    name: str

    @property
    def uses_daemon(self) -> bool:
        return self.selector is not None or self.name in ("neuron_hw_counters", "neurond_totals", "")


def _next_due(due: float, period: float, now: float) -> float:
    """The first slot of the group's grid after `now`.

    Grids start together at the first tick, so a 1 s and a 2 s group stay in step (one line per
    second, as the real tool writes) however late each wake-up is; slots missed by a slow tick are
    skipped, never caught up on.
    """
    if due == -math.inf:
        return now + period
    return due + period * max(1, math.floor((now - due) / period) + 1)


# Instance and hardware info when no configured group asks neurond anything.
_INFO = GroupKey(None, "")


@dataclass
class _Runtime:
    """One monitored application: its baselines per group and the last value of each group."""

    pid: int
    tag: str
    selector: int
    groups: tuple[str, ...]
    baselines: dict[str, IndexedSnapshot]
    cpu_baseline: ProcessCpuSample | None = None
    memory_inputs: tuple | None = None  # what the last memory_used was built from
    values: dict[str, object] = field(default_factory=dict)

    def data(self) -> RuntimeData:
        return RuntimeData.model_construct(pid=self.pid, neuron_runtime_tag=self.tag, error="",
                                           report=RuntimeReport.model_construct(**self.values))


class Collector:
    """Collects the groups due at each tick (one snapshot at most) and returns the complete report.

    `snapshots` returns a fresh pb.Snapshot or raises NeuronError (daemon unreachable, timeout).
    `clock` (seconds, monotonic) drives the schedule only; periods are measured on the daemon's
    clock for daemon groups and on the local monotonic clock for host groups.
    """

    def __init__(self, config: MonitorConfig, snapshots: Callable[[], pb.Snapshot],
                 system: SystemReader | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._selectors: tuple[RuntimeSelector, ...] = config.runtimes
        self._take_snapshot = snapshots
        self._system = system if system is not None else SystemReader()
        self._clock = clock
        self._periods: dict[GroupKey, float] = {}
        for index, selector in enumerate(config.runtimes):
            for name, period in selector.groups.items():
                self._periods[GroupKey(index, name)] = period
        for name, period in config.system.items():
            self._periods[GroupKey(None, name)] = period
        if not any(key.uses_daemon for key in self._periods):
            self._periods[_INFO] = config.period
        self._due = dict.fromkeys(self._periods, -math.inf)
        self._started_ns = time.monotonic_ns()
        # neurond side
        self._last: IndexedSnapshot | None = None  # the latest snapshot: baseline of runtimes seen next
        self._daemon_error: str | None = None
        self._runtimes: dict[int, _Runtime] = {}
        self._unmonitored: set[int] = set()  # sessions no tag_filter matched
        self._vanished: list[RuntimeData] = []  # reported once, then gone
        self._hw_baseline: IndexedSnapshot | None = None
        self._hw_collected_ns = self._started_ns  # local clock: the period while neurond is away
        self._hw: NeuronHwCounters | None = None
        self._totals: NeurondTotals | None = None
        self._totals_at_ns = self._started_ns
        self._instance = unreachable_instance_info("no snapshot taken yet")
        self._hardware = unreachable_hardware_info("no snapshot taken yet")
        # host side
        self._cpu_baseline: CpuSample | None = None
        self._vcpu: VcpuUsage | None = None
        self._memory: MemoryInfo | None = None
        self._memory_at_ns = self._started_ns

    def next_due(self) -> float:
        """When (on `clock`) the next group is due."""
        return min(self._due.values())

    def collect(self) -> Report:
        now = self._clock()
        due = {key for key, at in self._due.items() if at <= now + DUE_SLACK_SECONDS}
        self._collect_host(due)  # first: quick and steady, so its periods do not wobble with the daemon's
        if any(key.uses_daemon for key in due):
            self._collect_daemon(due)
        for key in due:
            self._due[key] = _next_due(self._due[key], self._periods[key], now)
        log.debug("collected %s", ", ".join(sorted(key.name or "info" for key in due)))
        return self._report()

    # -- neurond --------------------------------------------------------------------------------

    def _collect_daemon(self, due: set[GroupKey]) -> None:
        try:
            current = IndexedSnapshot(self._take_snapshot())
            last = self._last
            if last is None or current.snapshot.daemon_start_unix_ns != last.snapshot.daemon_start_unix_ns:
                # First contact, or a restarted daemon whose counters began again at zero: measure
                # the first period right away from a fresh baseline, as the real tool's first line.
                self._forget_daemon()
                self._last = self._hw_baseline = current
                current = IndexedSnapshot(self._take_snapshot())
        except NeuronError as error:
            self._daemon_unreachable(str(error), due)
            return
        if self._daemon_error is not None:
            log.info("neurond reachable again")
            self._daemon_error = None
        topology = current.snapshot.topology
        self._instance, self._hardware = instance_info(topology), hardware_info(topology)
        if GroupKey(None, "neuron_hw_counters") in due:
            assert self._hw_baseline is not None
            self._hw = neuron_hw_counters(current, self._hw_baseline)
            self._hw_baseline = current
            self._hw_collected_ns = time.monotonic_ns()
        if GroupKey(None, "neurond_totals") in due:
            self._totals = neurond_totals(current.snapshot, self._totals_period())
        self._update_runtimes(current, due)
        self._last = current

    def _totals_period(self) -> float:
        now_ns = time.monotonic_ns()
        period, self._totals_at_ns = (now_ns - self._totals_at_ns) / 1e9, now_ns
        return period

    def _forget_daemon(self) -> None:
        self._last = self._hw_baseline = None
        self._runtimes = {}
        self._unmonitored = set()
        self._vanished = []

    def _daemon_unreachable(self, error: str, due: set[GroupKey]) -> None:
        if self._daemon_error is None:
            log.warning("%s", error)
        self._daemon_error = error
        self._forget_daemon()
        if self._instance.error:  # never reached: the identity is unknown too
            self._instance = unreachable_instance_info(error)
        self._hardware = unreachable_hardware_info(error)
        if GroupKey(None, "neuron_hw_counters") in due:
            now_ns = time.monotonic_ns()
            self._hw = NeuronHwCounters.model_construct(period=(now_ns - self._hw_collected_ns) / 1e9,
                                                        neuron_devices=None, error=error)
            self._hw_collected_ns = now_ns
        if GroupKey(None, "neurond_totals") in due:
            self._totals = NeurondTotals.model_construct(period=self._totals_period(),
                                                                  neuron_runtimes=[], neuron_devices=[],
                                                                  error=error)

    def _update_runtimes(self, current: IndexedSnapshot, due: set[GroupKey]) -> None:
        runtimes: dict[int, _Runtime] = {}
        updates: list[tuple[_Runtime, pb.SessionInfo, tuple[str, ...]]] = []
        # /proc/<pid>/stat is read once per process and tick, however many runtimes the process
        # opened: first the baselines of new runtimes, then the readings every runtime is measured
        # by (so no baseline comes after the reading it is measured to).
        baselines: dict[int, ProcessCpuSample] = {}
        for session in current.snapshot.sessions:
            runtime = self._runtimes.get(session.session_id)
            if runtime is None:
                if session.session_id in self._unmonitored:
                    continue
                runtime = self._start_runtime(session)
                if runtime is None:
                    self._unmonitored.add(session.session_id)
                    continue
                groups = runtime.groups  # a new runtime gets every group at once: complete entries
                if "neuron_runtime_vcpu_usage" in groups:
                    runtime.cpu_baseline = self._process_cpu(runtime.pid, baselines)
            else:
                groups = tuple(name for name in runtime.groups if GroupKey(runtime.selector, name) in due)
            updates.append((runtime, session, groups))
            runtimes[session.session_id] = runtime
        readings: dict[int, ProcessCpuSample] = {}
        for runtime, session, groups in updates:
            for name in groups:
                runtime.values[name] = self._runtime_group(name, runtime, session, current, readings)
        for session_id, runtime in self._runtimes.items():
            if session_id not in runtimes:
                self._runtime_ended(runtime)
        self._runtimes = runtimes
        self._unmonitored &= current.sessions.keys()

    def _process_cpu(self, pid: int, read: dict[int, ProcessCpuSample]) -> ProcessCpuSample:
        """The process's CPU times, from `read` if this tick already read them for that purpose."""
        sample = read.get(pid)
        if sample is None:
            sample = read[pid] = self._system.process_cpu(pid)
        return sample

    def _start_runtime(self, session: pb.SessionInfo) -> _Runtime | None:
        tag = session.tag or str(session.pid)
        for index, selector in enumerate(self._selectors):
            if selector.matches(tag):  # the first entry whose tag_filter matches decides
                assert self._last is not None
                return _Runtime(pid=session.pid, tag=tag, selector=index,
                                groups=tuple(selector.groups),
                                baselines=dict.fromkeys(selector.groups, self._last))
        return None

    def _runtime_group(self, name: str, runtime: _Runtime, session: pb.SessionInfo, current: IndexedSnapshot,
                       readings: dict[int, ProcessCpuSample]) -> object:
        if name == "neuron_runtime_vcpu_usage":
            assert runtime.cpu_baseline is not None  # taken when the runtime was first seen
            sample = self._process_cpu(runtime.pid, readings)
            value = runtime_vcpu_usage(sample, runtime.cpu_baseline, self._system.cpu_count)
            runtime.cpu_baseline = sample
            return value
        baseline = runtime.baselines[name]
        runtime.baselines[name] = current
        if name == "neuroncore_counters":
            return neuroncore_counters(current, baseline, session)
        period = (current.monotonic_ns - baseline.monotonic_ns) / 1e9
        if name == "execution_stats":
            return execution_stats(session, baseline.sessions.get(session.session_id), period)
        # Memory is a gauge that rarely changes: rebuilding its ~10 objects per runtime every tick
        # would cost more than the rest of the tick, so unchanged inputs reuse the last objects.
        inputs = memory_inputs(current, session)
        previous = runtime.values.get("memory_used")
        runtime.memory_inputs, unchanged = inputs, inputs == runtime.memory_inputs
        if previous is None or not unchanged:
            return memory_used(current, session, period)
        assert isinstance(previous, MemoryUsed)
        return MemoryUsed.model_construct(period=period, neuron_runtime_used_bytes=previous.neuron_runtime_used_bytes,
                                          loaded_models=with_running_flags(previous.loaded_models, current, session),
                                          error="")

    def _runtime_ended(self, runtime: _Runtime) -> None:
        """A runtime gone from the daemon: if its process died, say so once (as the Go tool's failed
        read of /proc/<pid>/stat would); a process that only closed its runtime just leaves."""
        self._system.forget(runtime.pid)
        if self._system.process_exists(runtime.pid):
            return
        self._vanished.append(RuntimeData.model_construct(
            pid=runtime.pid, neuron_runtime_tag=runtime.tag,
            error=f"open /proc/{runtime.pid}/stat: no such file or directory",
            report=RuntimeReport.model_construct()))

    # -- host -----------------------------------------------------------------------------------

    def _collect_host(self, due: set[GroupKey]) -> None:
        if GroupKey(None, "vcpu_usage") in due:
            if self._cpu_baseline is None:
                self._cpu_baseline = self._system.cpu()
            sample = self._system.cpu()
            self._vcpu = vcpu_usage(sample, self._cpu_baseline)
            self._cpu_baseline = sample
        if GroupKey(None, "memory_info") in due:
            now_ns = time.monotonic_ns()
            self._memory = memory_info(self._system.memory(), (now_ns - self._memory_at_ns) / 1e9)
            self._memory_at_ns = now_ns

    # -- the line -------------------------------------------------------------------------------

    def _report(self) -> Report:
        runtime_data = [runtime.data() for runtime in self._runtimes.values()]
        runtime_data.extend(self._vanished)
        self._vanished = []
        system = {name: value for name, value in (("memory_info", self._memory), ("neuron_hw_counters", self._hw),
                                                  ("neurond_totals", self._totals),
                                                  ("vcpu_usage", self._vcpu)) if value is not None}
        return Report.model_construct(neuron_runtime_data=runtime_data,
                                      system_data=SystemData.model_construct(**system),
                                      instance_info=self._instance, neuron_hardware_info=self._hardware)
