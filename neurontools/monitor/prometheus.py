"""The Prometheus face of neuron-monitor: AWS's companion metric families, served from the latest report.

`PrometheusMapping` is a custom collector, as the Prometheus exporter guidelines ask: each report is
turned into immutable metric families once, when it arrives, and every scrape yields the families
of the latest report. A series exists only while the latest report has it, so the series of a
runtime that is gone disappear with it, and a scrape costs no more than formatting.

Names, types, help texts, labels and values are those of AWS's `neuron-monitor-prometheus.py`
(reference: neuron-tools.md §4.1), including its quirks: the six instance labels on every series,
`memory_location="None"` on the per-core memory families, counters fed by `inc()`-ing every
report's per-period counts. Where that script keeps a value that no longer holds (a gauge of a group
that now reports an error, or of a runtime that is gone), this mapping drops the series instead.

Additions, never renames: `neuroncore_device_info` and `neuron_device_memory_size_bytes` (so that
per-device utilization and HBM use can be computed in PromQL), and the exporter's own health:
`neuron_monitor_up`, `neuron_monitor_report_age_seconds`, `neuron_monitor_group_success`,
`neuron_monitor_reports_total`, `neuron_monitor_rejected_lines_total` and
`neuron_monitor_scrape_duration_seconds`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from neurontools.monitor.report import (
    ExecutionStats,
    InstanceInfo,
    MemoryInfo,
    MemoryUsed,
    NeuronCoreCounters,
    NeuronHardwareInfo,
    NeuronHwCounters,
    NeuronRuntimeVcpuUsage,
    Report,
    ReportObject,
    VcpuUsage,
)

log = logging.getLogger(__name__)

CORE_MEMORY_CATEGORIES = ("constants", "model_code", "model_shared_scratchpad", "runtime_memory", "tensors")
ECC_EVENTS = ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected")
# How the companion folds the seven vCPU states into user and system time.
VCPU_STATES = {"user": ("user", "nice"), "system": ("system", "io_wait", "irq", "soft_irq")}
# A report is stale once it is older than this many of its own longest group period.
STALE_PERIODS = 3

Kind = Literal["gauge", "counter", "info"]
MetricGroup = (ExecutionStats | MemoryUsed | NeuronRuntimeVcpuUsage | NeuronCoreCounters
               | MemoryInfo | NeuronHwCounters | VcpuUsage)


@dataclass(frozen=True)
class Family:
    """One metric family: its exposed name, type, HELP text and labels besides the instance labels."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    instance_labels: bool = True

    def metric(self, label_names: tuple[str, ...]) -> Metric:
        """An empty family with these label names, of the prometheus_client class for its kind."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name.removesuffix("_total"), self.help, labels=label_names)
        if self.kind == "info":
            return InfoMetricFamily(self.name.removesuffix("_info"), self.help, labels=label_names)
        return GaugeMetricFamily(self.name, self.help, labels=label_names)


def _runtime_family(name: str, kind: Kind, help: str, *labels: str) -> Family:
    return Family(name, kind, help, ("runtime_tag", *labels))


# In the order the companion creates them for a report with a runtime (its exposition order).
NEURON_FAMILIES: tuple[Family, ...] = (
    _runtime_family("execution_errors_total", "counter", "Execution errors total", "error_type"),
    _runtime_family("execution_status_total", "counter", "Execution status total", "status_type"),
    _runtime_family("execution_latency_seconds", "gauge", "Execution latency in seconds", "percentile"),
    _runtime_family("neuron_runtime_memory_used_bytes", "gauge", "Runtime memory used bytes", "memory_location"),
    *(
        _runtime_family(f"neuroncore_memory_usage_{category}", "gauge",
                        f"NeuronCore memory utilization for {category}", "memory_location", "neuroncore")
        for category in CORE_MEMORY_CATEGORIES
    ),
    _runtime_family("neuron_runtime_vcpu_usage_ratio", "gauge", "Runtime vCPU utilization ratio", "usage_type"),
    _runtime_family("neuroncore_utilization_ratio", "gauge", "NeuronCore utilization ratio", "neuroncore"),
    *(
        Family(f"system_{area}_{stat}", "gauge", f"System {area} {stat} bytes")
        for area in ("memory", "swap")
        for stat in ("total_bytes", "used_bytes")
    ),
    Family("hardware_ecc_events_total", "counter", "Hardware ecc events total", ("event_type", "neuron_device_index")),
    Family("system_vcpu_count", "gauge", "System vCPU count"),
    Family("system_vcpu_usage_ratio", "gauge", "System CPU utilization ratio", ("usage_type",)),
    Family("instance_info", "info", "EC2 instance information"),
    Family("neuron_hardware_info", "info", "Neuron Hardware Information",
           ("neuron_device_count", "neuron_device_memory_size", "neuroncore_per_device_count")),
    # Ours: joins that PromQL cannot compute from labels.
    Family("neuroncore_device_info", "info", "Neuron device of each NeuronCore of the instance (join on neuroncore)",
           ("neuroncore", "neuron_device_index")),
    Family("neuron_device_memory_size_bytes", "gauge", "Memory of each Neuron device in bytes",
           ("neuron_device_index",)),
    Family("neuron_monitor_group_success", "gauge",
           "Whether the latest report has this metric group without error (1) or with one (0); "
           'group "neuron_runtime" is the runtime entry itself', ("group", "runtime_tag"), instance_labels=False),
)
_FAMILY = {family.name: family for family in NEURON_FAMILIES}

SELF_FAMILIES: tuple[Family, ...] = (
    Family("neuron_monitor_up", "gauge",
           "1 when the latest neuron-monitor report is fresh and neurond was reachable for it "
           "(neuron_hardware_info without error), else 0", instance_labels=False),
    Family("neuron_monitor_report_age_seconds", "gauge", "Seconds since the latest neuron-monitor report arrived",
           instance_labels=False),
    Family("neuron_monitor_reports_total", "counter", "Reports read from neuron-monitor", instance_labels=False),
    Family("neuron_monitor_rejected_lines_total", "counter",
           "Input lines that were not a readable neuron-monitor report", instance_labels=False),
    Family("neuron_monitor_scrape_duration_seconds", "gauge",
           "Time this exporter took to produce the metrics of this scrape", instance_labels=False),
)
_SELF = {family.name: family for family in SELF_FAMILIES}

# What the families above expose: counters as <name>_total and <name>_created.
EXPOSED_METRIC_NAMES: frozenset[str] = frozenset(
    name
    for family in NEURON_FAMILIES + SELF_FAMILIES
    for name in (
        (family.name, family.name.removesuffix("_total") + "_created") if family.kind == "counter" else (family.name,)
    )
)


def instance_labels(info: InstanceInfo) -> dict[str, str]:
    """The companion's labels for the instance: on every one of its series, and on instance_info."""
    labels = {
        "instance_name": info.instance_name,
        "instance_id": info.instance_id,
        "instance_type": info.instance_type,
        "availability_zone": info.instance_availability_zone,
        "region": info.instance_region,
        "subnet_id": info.subnet_id,
    }
    if info.ultraserver_id is not None:
        labels["ultraserver_id"] = info.ultraserver_id
    return labels


def numeric_items(obj: ReportObject, *, sort: bool = False) -> list[tuple[str, float]]:
    """The numeric fields of a report object, unknown ones included, in the report's JSON order.

    The companion iterates the JSON keys: struct fields in declaration order, map keys sorted.
    """
    items = [(name, value) for name, value in obj if _is_number(value)]  # declared, then unknown
    return sorted(items) if sort else items


def groups(container: ReportObject) -> list[tuple[str, MetricGroup]]:
    """The metric groups a runtime report or system_data has, in the report's order.

    Unknown keys (another tool version's groups) are left out, as the companion has no handler for them.
    """
    return [(name, group) for name in type(container).model_fields
            if (group := getattr(container, name)) is not None]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def core_label(key: str) -> str:
    """The companion writes int(key): "00" becomes "0"; a key that is not a number stays as it is."""
    try:
        return str(int(key))
    except ValueError:
        return key


def longest_period(report: Report) -> float:
    periods = [group.period for runtime in report.neuron_runtime_data for _, group in groups(runtime.report)]
    periods += [group.period for _, group in groups(report.system_data)]
    return max(periods, default=0.0)


@dataclass
class _CounterSeries:
    value: float
    created: float


@dataclass
class _Samples:
    """The samples of one report, by family. A second sample with the same labels replaces the
    first, as setting the same prometheus_client child twice would."""

    instance: dict[str, str]
    by_family: dict[str, dict[tuple[str, ...], tuple[float, float | None]]] = field(default_factory=dict)
    # Info families carry their own labels as a dict: which labels there are depends on the report.
    info: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def add(self, family: str, labels: tuple[str, ...], value: float, created: float | None = None) -> None:
        self.by_family.setdefault(family, {})[labels] = (value, created)

    def add_info(self, family: str, labels: dict[str, str]) -> None:
        self.info.setdefault(family, []).append(labels)

    def families(self, *, created_series: bool) -> tuple[Metric, ...]:
        out: list[Metric] = []
        for family in NEURON_FAMILIES:
            instance = self.instance if family.instance_labels else {}
            metric = family.metric(tuple(instance))
            for labels in self.info.get(family.name, ()):
                metric.add_metric(tuple(instance.values()), labels)
            if family.kind != "info":
                metric = family.metric((*instance, *family.labels))
            for labels, (value, created) in self.by_family.get(family.name, {}).items():
                label_values = (*instance.values(), *labels)
                if family.kind == "counter":
                    metric.add_metric(label_values, value, created=created if created_series else None)
                else:
                    metric.add_metric(label_values, value)
            if metric.samples:
                out.append(metric)
        return tuple(out)


@dataclass(frozen=True)
class _Snapshot:
    """What scrapes read: replaced whole, never changed, so no lock is needed to read it."""

    families: tuple[Metric, ...]
    received_at: float  # on the mapping's clock
    stale_after: float
    daemon_reachable: bool


class PrometheusMapping:
    """A custom collector over the latest neuron-monitor report.

    `update(report)` is called once per report by a single producer (the stdin reader, or
    neuron-monitor itself); `collect()` may run concurrently from any number of scrapes.
    """

    def __init__(
        self,
        *,
        created_series: bool = True,
        stale_after: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """created_series: emit the `*_created` twins of counters, as the companion does.
        stale_after: seconds after which the latest report no longer counts (at least
        STALE_PERIODS of its longest group period); its Neuron series are then withheld and
        neuron_monitor_up is 0. `math.inf` serves the last report forever, as the companion does.
        """
        self._created_series = created_series
        self._stale_after = stale_after
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = wall_clock()
        self._lock = threading.Lock()  # serializes producers; scrapes never take it
        self._snapshot: _Snapshot | None = None
        self._reports = 0
        self._rejected_lines = 0
        # Running totals: per runtime tag (dropped with the runtime), and per (device, event).
        self._runtime_counters: dict[str, dict[tuple[str, str, str], _CounterSeries]] = {}
        self._ecc_counters: dict[tuple[str, str], _CounterSeries] = {}
        self._logged_errors: set[str] = set()

    # --- producer side ------------------------------------------------------------------------

    def update(self, report: Report) -> None:
        """Take a new report: add its per-period counts to the counters and build its families."""
        with self._lock:
            now = self._wall_clock()
            samples = _Samples(instance_labels(report.instance_info))
            errors: list[str] = []
            self._map_runtimes(report, samples, errors, now)
            self._map_system(report, samples, errors, now)
            self._map_identity(report, samples, errors)
            self._log_new(errors)
            self._reports += 1
            self._snapshot = _Snapshot(
                families=samples.families(created_series=self._created_series),
                received_at=self._clock(),
                stale_after=max(self._stale_after, STALE_PERIODS * longest_period(report)),
                daemon_reachable=report.neuron_hardware_info.error == "",
            )

    def reject_line(self) -> None:
        """Count an input line that could not be read as a report."""
        with self._lock:
            self._rejected_lines += 1

    def _map_runtimes(self, report: Report, samples: _Samples, errors: list[str], now: float) -> None:
        counters: dict[str, dict[tuple[str, str, str], _CounterSeries]] = {}
        for runtime in report.neuron_runtime_data:
            tag = runtime.neuron_runtime_tag
            # Two runtimes may share a tag: their counts add up in the same series, as in the companion.
            totals = counters.setdefault(tag, self._runtime_counters.get(tag, {}))
            samples.add("neuron_monitor_group_success", ("neuron_runtime", tag), float(runtime.error == ""))
            if runtime.error:
                errors.append(f"Runtime {tag} error: {runtime.error}")
            for group_name, group in groups(runtime.report):
                samples.add("neuron_monitor_group_success", (group_name, tag), float(group.error == ""))
                if runtime.error:
                    continue
                if group.error:
                    errors.append(f"Error getting {group_name} for runtime tag {tag}: {group.error}")
                elif isinstance(group, ExecutionStats):
                    _count_executions(group, tag, totals, now)
                    _map_latency(group, tag, samples)
                elif isinstance(group, MemoryUsed):
                    _map_runtime_memory(group, tag, samples)
                elif isinstance(group, NeuronRuntimeVcpuUsage):
                    for usage_type in ("user", "system"):
                        value = getattr(group.vcpu_usage, usage_type) / 100.0
                        samples.add("neuron_runtime_vcpu_usage_ratio", (tag, usage_type), value)
                elif isinstance(group, NeuronCoreCounters):
                    for key, core in group.neuroncores_in_use.items():
                        samples.add("neuroncore_utilization_ratio", (tag, core_label(key)),
                                    core.neuroncore_utilization / 100.0)
            for (kind, _, label), series in totals.items():
                samples.add(kind, (tag, label), series.value, series.created)
        self._runtime_counters = counters

    def _map_system(self, report: Report, samples: _Samples, errors: list[str], now: float) -> None:
        for group_name, group in groups(report.system_data):
            samples.add("neuron_monitor_group_success", (group_name, ""), float(group.error == ""))
            if group.error:
                errors.append(f"Error getting {group_name}: {group.error}")
            elif isinstance(group, MemoryInfo):
                for area in ("memory", "swap"):
                    for stat in ("total_bytes", "used_bytes"):
                        samples.add(f"system_{area}_{stat}", (), getattr(group, f"{area}_{stat}"))
            elif isinstance(group, NeuronHwCounters):
                for device in group.neuron_devices or ():
                    for event in ECC_EVENTS:
                        key = (event, str(device.neuron_device_index))
                        series = self._ecc_counters.setdefault(key, _CounterSeries(0.0, now))
                        series.value += getattr(device, event)
            elif isinstance(group, VcpuUsage):
                samples.add("system_vcpu_count", (), len(group.usage_data))
                for usage_type, states in VCPU_STATES.items():
                    total = sum(getattr(group.average_usage, state) for state in states)
                    samples.add("system_vcpu_usage_ratio", (usage_type,), min(total, 100.0) / 100.0)
        # ECC totals outlive a report whose hardware group failed: what was counted still happened.
        if report.system_data.neuron_hw_counters is not None:
            for key, series in self._ecc_counters.items():
                samples.add("hardware_ecc_events_total", key, series.value, series.created)

    def _map_identity(self, report: Report, samples: _Samples, errors: list[str]) -> None:
        hardware = report.neuron_hardware_info
        for group_name, group in (("instance_info", report.instance_info), ("neuron_hardware_info", hardware)):
            samples.add("neuron_monitor_group_success", (group_name, ""), float(group.error == ""))
            if group.error:
                errors.append(f"Error getting {group_name}: {group.error}")
        samples.add_info("instance_info", {})
        samples.add_info("neuron_hardware_info", _hardware_labels(hardware))
        if hardware.error:
            return
        per_device = hardware.neuroncore_per_device_count
        if per_device > 0:
            for core in range(hardware.neuron_device_count * per_device):
                samples.add_info("neuroncore_device_info",
                                 {"neuroncore": str(core), "neuron_device_index": str(core // per_device)})
        if hardware.neuron_device_memory_size:
            for device in range(hardware.neuron_device_count):
                samples.add("neuron_device_memory_size_bytes", (str(device),), hardware.neuron_device_memory_size)

    def _log_new(self, errors: list[str]) -> None:
        # The companion prints every error of every report; one line per new error is enough.
        for message in errors:
            if message not in self._logged_errors:
                log.warning("%s", message)
        self._logged_errors = set(errors)

    # --- scrape side --------------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Every family this collector may expose, so that `?name[]=...` restricted scrapes work."""
        for family in NEURON_FAMILIES + SELF_FAMILIES:
            yield family.metric(())

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snapshot = self._snapshot
        age = None if snapshot is None else self._clock() - snapshot.received_at
        fresh = snapshot is not None and age is not None and age <= snapshot.stale_after
        if fresh:
            yield from snapshot.families
        up = self._self_metric("neuron_monitor_up")
        up.add_metric((), float(fresh and snapshot.daemon_reachable))
        yield up
        if age is not None:
            age_metric = self._self_metric("neuron_monitor_report_age_seconds")
            age_metric.add_metric((), age)
            yield age_metric
        for name, value in (("neuron_monitor_reports_total", self._reports),
                            ("neuron_monitor_rejected_lines_total", self._rejected_lines)):
            counter = self._self_metric(name)
            counter.add_metric((), value, created=self._started if self._created_series else None)
            yield counter
        duration = self._self_metric("neuron_monitor_scrape_duration_seconds")
        # Scrapes format each family as it is yielded, so this covers formatting too.
        duration.add_metric((), time.perf_counter() - started)
        yield duration

    @staticmethod
    def _self_metric(name: str) -> Metric:
        return _SELF[name].metric(())


def _count_executions(
    stats: ExecutionStats, tag: str, totals: dict[tuple[str, str, str], _CounterSeries], now: float
) -> None:
    for family, summary in (("execution_errors_total", stats.error_summary),
                            ("execution_status_total", stats.execution_summary)):
        for label, count in numeric_items(summary):
            totals.setdefault((family, tag, label), _CounterSeries(0.0, now)).value += count


def _map_latency(stats: ExecutionStats, tag: str, samples: _Samples) -> None:
    # total_latency only, as the companion; null (nothing executed in the period) leaves no series.
    latency = stats.latency_stats.total_latency
    if latency is not None:
        for percentile, value in numeric_items(latency, sort=True):
            samples.add("execution_latency_seconds", (tag, percentile), value)


def _map_runtime_memory(memory: MemoryUsed, tag: str, samples: _Samples) -> None:
    used = memory.neuron_runtime_used_bytes
    for location in ("host", "neuron_device"):
        samples.add("neuron_runtime_memory_used_bytes", (tag, location), getattr(used, location))
    for category in CORE_MEMORY_CATEGORIES:
        for key, core in used.usage_breakdown.neuroncore_memory_usage.items():
            # "None": the companion's memory_location label is left over from the loop above, set to None.
            samples.add(f"neuroncore_memory_usage_{category}", (tag, "None", core_label(key)),
                        getattr(core, category))


def _hardware_labels(hardware: NeuronHardwareInfo) -> dict[str, str]:
    labels = {"neuron_device_count": str(hardware.neuron_device_count),
              "neuroncore_per_device_count": str(hardware.neuroncore_per_device_count)}
    # The newest companion adds the device memory size; reports of older tools do not have it.
    if hardware.neuron_device_memory_size is not None:
        labels["neuron_device_memory_size"] = str(hardware.neuron_device_memory_size)
    return labels


def metrics_registry(mapping: PrometheusMapping, *, client_metrics: bool = True) -> CollectorRegistry:
    """A registry of its own for the mapping; client_metrics adds prometheus_client's python_gc_*,
    python_info and process_* collectors, in the order the companion's default registry lists them."""
    registry = CollectorRegistry()
    if client_metrics:
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)
        ProcessCollector(registry=registry)
    registry.register(mapping)
    return registry


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PrometheusExporter:
    """A PrometheusMapping served over HTTP, or HTTPS with a key and certificate.

    What `neuron-monitor-prometheus` runs, and what `neuron-monitor --prometheus-port` can run in
    process: create it, call `update(report)` for every report, `close()` at the end.
    """

    def __init__(
        self,
        port: int,
        *,
        address: str = "0.0.0.0",
        lean: bool = False,
        stale_after: float = 15.0,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        """port 0 picks a free port (see `.port`). lean leaves out prometheus_client's own series
        and the `*_created` series. certfile and keyfile go together; a change to either file is
        picked up by `reload_tls_if_changed()`."""
        if (certfile is None) != (keyfile is None):
            raise ValueError("HTTPS needs both a certificate file and a key file")
        self.mapping = PrometheusMapping(created_series=not lean, stale_after=stale_after)
        self.registry = metrics_registry(self.mapping, client_metrics=not lean)
        self._tls_files = (certfile, keyfile) if certfile and keyfile else None
        self._tls_digests = self._digests()
        self._server, self._thread = start_http_server(
            port, addr=address, registry=self.registry, certfile=certfile, keyfile=keyfile)

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def https(self) -> bool:
        return self._tls_files is not None

    def update(self, report: Report) -> None:
        self.mapping.update(report)

    def reject_line(self) -> None:
        self.mapping.reject_line()

    def reload_tls_if_changed(self) -> bool:
        """Load the certificate and key again if either file changed; True when it did."""
        if self._tls_files is None:
            return False
        digests = self._digests()
        if digests == self._tls_digests:
            return False
        certfile, keyfile = self._tls_files
        self._server.socket.context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        self._tls_digests = digests
        return True

    def _digests(self) -> tuple[str, ...]:
        return tuple(_file_digest(path) for path in self._tls_files) if self._tls_files else ()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> PrometheusExporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

