"""The Prometheus face of neuron-monitor: AWS's companion metric families, served from the latest report.

`PrometheusMapping` is a custom collector, as the Prometheus exporter guidelines ask: each report is
turned into samples once, when it arrives, and every scrape serves the samples of the latest
report, formatted on the first scrape that needs them and kept until the next report. A series
exists only while the latest report has it, so the series of a runtime that is gone disappear with
it. `PrometheusExporter` serves a mapping over HTTP(S).

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

import functools
import hashlib
import logging
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Literal
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from neurontools.monitor.report import (
    ExecutionStats,
    NeurondTotals,
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
Encoder = Callable[[Any], bytes]  # prometheus_client's generate_latest of either format
OPENMETRICS_EOF = b"# EOF\n"
OPENMETRICS_1_0_0 = "application/openmetrics-text; version=1.0.0"
GZIP_LEVEL = 1  # prometheus_client uses 9: for 3,600 series, 7 times the time for output a third smaller
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
    # Ours: the daemon's running totals (metric group neurond_totals), which keep the
    # executions of a runtime's last period that execution_status_total never sees.
    _runtime_family("neurond_execution_status_total", "counter",
                    "Executions since neurond started, by outcome, ended runtimes included", "status_type"),
    _runtime_family("neurond_execution_errors_total", "counter",
                    "Execution errors since neurond started, by kind, ended runtimes included", "error_type"),
    Family("neuron_device_resets_total", "counter", "Resets of each Neuron device since neurond started",
           ("neuron_device_index",)),
    Family("neuron_monitor_group_success", "gauge",
           "Whether the latest report has this metric group without error (1) or with one (0); "
           "group neuron_runtime is the runtime entry itself", ("group", "runtime_tag"), instance_labels=False),
)

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

    def series(self, family: Family) -> Iterator[tuple[dict[str, str], float, float | None]]:
        """(labels, value, created) of each sample of a family, instance labels first."""
        instance = self.instance if family.instance_labels else {}
        for labels in self.info.get(family.name, ()):
            yield {**instance, **labels}, 1.0, None
        names = (*instance, *family.labels)
        for label_values, (value, created) in self.by_family.get(family.name, {}).items():
            yield dict(zip(names, (*instance.values(), *label_values))), value, created


class _Snapshot:
    """What scrapes read: the samples of the latest report, and their families and expositions,
    each built on the first scrape that needs it and kept until the next report. Two scrapes may
    both build one: they build the same thing, so no lock is needed."""

    def __init__(self, samples: _Samples, *, received_at: float, stale_after: float,
                 daemon_reachable: bool, created_series: bool) -> None:
        self.samples = samples
        self.received_at = received_at  # on the mapping's clock
        self.stale_after = stale_after
        self.daemon_reachable = daemon_reachable
        self.created_series = created_series
        self._rendered: dict[str, bytes] = {}

    @functools.cached_property
    def families(self) -> tuple[Metric, ...]:
        out = []
        for family in NEURON_FAMILIES:
            metric = family.metric(())
            for labels, value, created in self.samples.series(family):
                name = metric.name + {"counter": "_total", "info": "_info"}.get(family.kind, "")
                metric.samples.append(Sample(name, labels, value))
                if family.kind == "counter" and self.created_series:
                    metric.samples.append(Sample(metric.name + "_created", labels, created))
            if metric.samples:
                out.append(metric)
        return tuple(out)

    def render(self, encoder: Encoder, content_type: str, series_lines: SeriesLines) -> tuple[bytes, SeriesLines]:
        """The families formatted for this content type, and the series lines to keep."""
        text = self._rendered.get(content_type)
        if text is None:
            if content_type.startswith(("text/plain", OPENMETRICS_1_0_0)):
                text, series_lines = render_exposition(
                    self.samples, openmetrics=content_type.startswith(OPENMETRICS_1_0_0),
                    created_series=self.created_series, previous=series_lines)
            else:  # a format this module does not write itself
                text = without_eof(encoder(_Collected(self.families)))
            self._rendered[content_type] = text
        return text, series_lines


@dataclass(frozen=True)
class SeriesLines:
    """The sample lines of each series, kept from one report to the next: the series of a node
    change far less often than their values, and many values do not change at all."""

    instance: tuple[tuple[str, str], ...] = ()
    # (family, label values) -> (value, created, sample line, created line)
    lines: dict[tuple[str, tuple[str, ...]], tuple[float, float | None, str, str]] = field(default_factory=dict)


def render_exposition(samples: _Samples, *, openmetrics: bool, created_series: bool,
                      previous: SeriesLines = SeriesLines()) -> tuple[bytes, SeriesLines]:
    """The families of a report as prometheus_client's encoders write them (Prometheus text
    format 0.0.4, or OpenMetrics 1.0.0 without `# EOF`), several times faster: a series' line is
    written once and reused while its value stays the same, its label text while the series lasts.
    Returns the text and the lines of this report's series, for the next report."""
    out: list[str] = []
    instance_items = tuple(samples.instance.items())
    known = previous.lines if previous.instance == instance_items else {}
    lines: dict[tuple[str, tuple[str, ...]], tuple[float, float | None, str, str]] = {}
    for family in NEURON_FAMILIES:
        values = samples.by_family.get(family.name, {})
        infos = samples.info.get(family.name, ())
        if not values and not infos:
            continue
        base = family.name.removesuffix("_total") if family.kind == "counter" else family.name.removesuffix("_info")
        if openmetrics:
            out.append(f"# HELP {base} {_escape_help(family.help, openmetrics=True)}\n# TYPE {base} {family.kind}\n")
        else:
            kind = "gauge" if family.kind == "info" else family.kind
            out.append(f"# HELP {family.name} {_escape_help(family.help, openmetrics=False)}\n"
                       f"# TYPE {family.name} {kind}\n")
        instance = samples.instance if family.instance_labels else {}
        for labels in infos:
            out.append(f"{family.name}{_label_text({**instance, **labels})} 1.0\n")
        names = (*instance, *family.labels)
        counter = family.kind == "counter" and created_series
        created_lines = []
        for label_values, (value, created) in values.items():
            key = (family.name, label_values)
            entry = known.get(key)
            if entry is None or entry[0] != value or entry[1] != created:
                if entry is None:
                    label_text = _label_text(dict(zip(names, (*instance.values(), *label_values))))
                else:  # the sample line starts with the name and label text: keep them
                    label_text = entry[2][len(family.name):entry[2].rindex(" ")]
                created_line = f"{base}_created{label_text} {floatToGoString(created)}\n" if counter else ""
                entry = (value, created, f"{family.name}{label_text} {floatToGoString(value)}", created_line)
            lines[key] = entry
            out.append(entry[2] + "\n")
            if counter:
                (out if openmetrics else created_lines).append(entry[3])
        if created_lines:  # the text format has no _created: prometheus_client writes them as a gauge
            out.append(f"# HELP {base}_created {_escape_help(family.help, openmetrics=False)}\n"
                       f"# TYPE {base}_created gauge\n")
            out.extend(created_lines)
    return "".join(out).encode(), SeriesLines(instance_items, lines)


def _label_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in sorted(labels.items())) + "}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _escape_help(text: str, *, openmetrics: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r'\"') if openmetrics else text


@dataclass(frozen=True)
class _Collected:
    """Metrics already built, as the collector the encoders take."""

    metrics: Iterable[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def without_eof(exposition: bytes) -> bytes:
    """An exposition without OpenMetrics' closing line, so that parts can be joined."""
    return exposition.removesuffix(OPENMETRICS_EOF)


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
        self._totals_created: dict[tuple[str, str], float] = {}  # (family, tag): first seen
        self._logged_errors: set[str] = set()
        self._series_lines = SeriesLines()  # written by scrapes: the last one to finish wins

    # --- producer side ------------------------------------------------------------------------

    def update(self, report: Report) -> None:
        """Take a new report: add its per-period counts to the counters and turn it into samples."""
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
                samples,
                received_at=self._clock(),
                stale_after=max(self._stale_after, STALE_PERIODS * longest_period(report)),
                daemon_reachable=report.neuron_hardware_info.error == "",
                created_series=self._created_series,
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
                    for key, core in sorted(group.neuroncores_in_use.items()):  # as Go writes a map
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
            elif isinstance(group, NeurondTotals):
                _map_execution_totals(group, samples, self._totals_created, now)
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
        snapshot, fresh = self._latest()
        if fresh:
            yield from snapshot.families
        yield from self._self_metrics(snapshot, fresh, started)

    def exposition(self, encoder: Encoder, content_type: str, *, started: float) -> bytes:
        """What `collect()` yields, formatted by an encoder of prometheus_client, without the
        OpenMetrics `# EOF` line. The report's families are formatted once per report and format;
        only the self-metrics are formatted on every scrape. started: `time.perf_counter()` when
        the scrape began."""
        return b"".join(self.exposition_parts(encoder, content_type, started=started))

    def exposition_parts(self, encoder: Encoder, content_type: str, *, started: float) -> tuple[bytes, bytes]:
        """`exposition()` in its two parts: the report's families (the same bytes object on every
        scrape until the next report, so that what is derived from it can be cached by identity)
        and the self-metrics, formatted anew on each call."""
        snapshot, fresh = self._latest()
        report_part = b""
        if fresh:
            report_part, self._series_lines = snapshot.render(encoder, content_type, self._series_lines)
        return report_part, without_eof(encoder(_Collected(self._self_metrics(snapshot, fresh, started))))

    def _latest(self) -> tuple[_Snapshot | None, bool]:
        snapshot = self._snapshot
        fresh = snapshot is not None and self._clock() - snapshot.received_at <= snapshot.stale_after
        return snapshot, fresh

    def _self_metrics(self, snapshot: _Snapshot | None, fresh: bool, started: float) -> Iterator[Metric]:
        up = _SELF["neuron_monitor_up"].metric(())
        up.add_metric((), float(fresh and snapshot is not None and snapshot.daemon_reachable))
        yield up
        if snapshot is not None:
            age = _SELF["neuron_monitor_report_age_seconds"].metric(())
            age.add_metric((), self._clock() - snapshot.received_at)
            yield age
        for name, value in (("neuron_monitor_reports_total", self._reports),
                            ("neuron_monitor_rejected_lines_total", self._rejected_lines)):
            counter = _SELF[name].metric(())
            counter.add_metric((), value, created=self._started if self._created_series else None)
            yield counter
        duration = _SELF["neuron_monitor_scrape_duration_seconds"].metric(())
        # Encoders format each family as it is yielded, so this covers formatting the ones before.
        duration.add_metric((), time.perf_counter() - started)
        yield duration


def _count_executions(
    stats: ExecutionStats, tag: str, totals: dict[tuple[str, str, str], _CounterSeries], now: float
) -> None:
    for family, summary in (("execution_errors_total", stats.error_summary),
                            ("execution_status_total", stats.execution_summary)):
        for label, count in numeric_items(summary):
            totals.setdefault((family, tag, label), _CounterSeries(0.0, now)).value += count


def _map_execution_totals(group: NeurondTotals, samples: _Samples, created: dict[tuple[str, str], float],
                          now: float) -> None:
    """The daemon's running totals as they are: already cumulative, nothing to add up."""
    for runtime in group.neuron_runtimes:
        tag = runtime.neuron_runtime_tag
        for family, counts in (("neurond_execution_status_total", runtime.execution_summary),
                               ("neurond_execution_errors_total", runtime.error_summary)):
            for label, count in counts.items():
                samples.add(family, (tag, label), float(count), created.setdefault((family, tag), now))
    for device in group.neuron_devices:
        index = str(device.neuron_device_index)
        samples.add("neuron_device_resets_total", (index,), float(device.resets),
                    created.setdefault(("neuron_device_resets_total", index), now))


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
        for key, core in sorted(used.usage_breakdown.neuroncore_memory_usage.items()):  # as Go writes a map
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


def client_registry() -> CollectorRegistry:
    """prometheus_client's own collectors (python_gc_*, python_info, process_*), in the order the
    companion's default registry lists them."""
    registry = CollectorRegistry()
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    ProcessCollector(registry=registry)
    return registry


def metrics_registry(mapping: PrometheusMapping, *, client_metrics: bool = True) -> CollectorRegistry:
    """A registry with the mapping, after prometheus_client's own collectors when client_metrics."""
    registry = client_registry() if client_metrics else CollectorRegistry()
    registry.register(mapping)
    return registry


# --- serving ---------------------------------------------------------------------------------


class MetricsApp:
    """The WSGI application behind /metrics (any path, like prometheus_client's).

    It answers as prometheus_client's own app does (content negotiation, gzip, `name[]`), but
    joins the parts itself so that the report's families, formatted once per report, are not
    formatted again on every scrape.
    """

    def __init__(self, mapping: PrometheusMapping, *, client_metrics: bool = True) -> None:
        self._mapping = mapping
        self._client = client_registry() if client_metrics else None
        self._registry = metrics_registry(mapping, client_metrics=client_metrics)
        # content type -> (the report part, its deflate blocks): compressed once per report, as it
        # is formatted once per report. Scrape threads may race to fill it; they compute the same.
        self._deflated_report_parts: dict[str, tuple[bytes, bytes]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method != "GET":
            start_response("405 Method Not Allowed", [("Allow", "OPTIONS,GET")])
            return [f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        eof = OPENMETRICS_EOF if content_type.startswith("application/openmetrics-text") else b""
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        if names:  # rare: neither formatting nor compression is cached
            parts = [without_eof(encoder(self._registry.restricted_registry(names))) + eof]
        else:
            client_part = without_eof(encoder(self._client)) if self._client is not None else b""
            report_part, self_part = self._mapping.exposition_parts(encoder, content_type, started=started)
            parts = [client_part, report_part, self_part + eof]
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            headers.append(("Content-Encoding", "gzip"))
            deflated = [deflate_blocks(part) for part in parts] if names else [
                deflate_blocks(parts[0]), self._deflated_report(content_type, parts[1]), deflate_blocks(parts[2])]
            body = gzip_member(parts, deflated)
        else:
            body = b"".join(parts)
        start_response("200 OK", headers)
        return [body]

    def _deflated_report(self, content_type: str, report_part: bytes) -> bytes:
        """The report's part as deflate blocks, compressed on the first gzip scrape after a report."""
        cached = self._deflated_report_parts.get(content_type)
        if cached is None or cached[0] is not report_part:  # the same bytes object until the next report
            cached = self._deflated_report_parts[content_type] = (report_part, deflate_blocks(report_part))
        return cached[1]


# One gzip member (RFC 1952) whose deflate stream is joined from blocks compressed apart: every
# decoder reads it (unlike several members, which some HTTP clients stop after the first of).
_GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 4, 255))  # deflate, no name, no mtime, fastest, OS unknown


def deflate_blocks(data: bytes) -> bytes:
    """data as raw deflate blocks from a fresh compressor (so nothing refers to bytes before them),
    ending on a byte boundary and not final: such pieces can be joined, and cached."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_member(parts: list[bytes], deflated: list[bytes]) -> bytes:
    """One gzip member holding the parts joined, from each part's `deflate_blocks`."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    size = sum(map(len, parts))
    final_block = b"\x03\x00"  # an empty fixed-Huffman block marked final: ends the deflate stream
    return b"".join((_GZIP_HEADER, *deflated, final_block, struct.pack("<II", crc, size & 0xFFFFFFFF)))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hanging scrape must not keep the process alive


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class PrometheusExporter:
    """A PrometheusMapping served over HTTP, or HTTPS with a key and certificate.

    What `neuron-monitor-prometheus` runs, and what `neuron-monitor --prometheus-port` can run in
    process: create it (the server starts in a daemon thread), call `update(report)` for every
    report, `close()` at the end.
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
        picked up by `reload_tls_if_changed()`. Raises OSError when the port cannot be bound or the
        certificate or key cannot be loaded (ssl.SSLError is an OSError)."""
        if (certfile is None) != (keyfile is None):
            raise ValueError("HTTPS needs both a certificate file and a key file")
        self.mapping = PrometheusMapping(created_series=not lean, stale_after=stale_after)
        server_class = _ThreadingServer6 if ":" in address else _ThreadingServer
        self._server = make_server(address, port, MetricsApp(self.mapping, client_metrics=not lean),
                                   server_class, handler_class=_QuietHandler)
        self._tls: tuple[str, str] | None = None
        self._tls_digests: tuple[str, ...] = ()
        if certfile is not None and keyfile is not None:
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(certfile=certfile, keyfile=keyfile)
            except OSError:
                self._server.server_close()
                raise
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._tls = (certfile, keyfile)
            self._tls_digests = self._digests()
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def https(self) -> bool:
        return self._tls is not None

    def update(self, report: Report) -> None:
        self.mapping.update(report)

    def reject_line(self) -> None:
        self.mapping.reject_line()

    def reload_tls_if_changed(self) -> bool:
        """Load the certificate and key again if either file changed (as AWS's script does on
        every report); True when it did."""
        if self._tls is None:
            return False
        digests = self._digests()
        if digests == self._tls_digests:
            return False
        certfile, keyfile = self._tls
        self._server.socket.context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        self._tls_digests = digests
        return True

    def _digests(self) -> tuple[str, ...]:
        return tuple(_file_digest(path) for path in self._tls) if self._tls else ()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> PrometheusExporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
