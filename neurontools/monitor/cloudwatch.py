"""`neuron-monitor-cloudwatch`: neuron-monitor's reports as CloudWatch metrics.

`neuron-monitor | neuron-monitor-cloudwatch --namespace NS --region R` writes one CloudWatch
Embedded Metric Format (EMF) document per line, to stdout or `--output FILE`, for the CloudWatch
agent (or any log shipper) to ingest: no credentials are needed here. With `--put-metric-data` it
sends the same metrics with PutMetricData through boto3 instead.

AWS's `neuron-monitor-cloudwatch.py` does not publish its metric names or dimensions, so these are
ours (documented in docs/exporters.md): one document per instance, Neuron device, runtime and
NeuronCore of a runtime, each with the dimensions that identify it (InstanceId, InstanceType,
NeuronDevice, RuntimeTag, NeuronCore). Counts are per report period, as neuron-monitor reports
them: CloudWatch's Sum statistic adds them up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import FrameType
from typing import IO, Any

from neurontools.monitor.prometheus import CORE_MEMORY_CATEGORIES, ECC_EVENTS, VCPU_STATES, numeric_items
from neurontools.monitor.report import CoreCounters, NeuronHardwareInfo, Report, RuntimeData
from neurontools.monitor.report_stream import UnreadableLine, parse_report_line

log = logging.getLogger("neuron-monitor-cloudwatch")

DEFAULT_NAMESPACE = "NeuronMonitor"
MAX_METRICS_PER_DIRECTIVE = 100  # EMF: a MetricDirective holds at most 100 MetricDefinitions
MAX_DIMENSION_VALUE_CHARS = 1024  # CloudWatch: a dimension value has 1-1024 ASCII characters, no controls
MAX_METRIC_DATA_PER_CALL = 1000  # PutMetricData: at most 1000 metrics per request
# CloudWatch namespaces: 1-255 of these characters, and "AWS/" is AWS's own.
_NAMESPACE = re.compile(r"[0-9A-Za-z.\-_/#: ]{1,255}")

LATENCY_PERCENTILES = ("p0", "p1", "p25", "p50", "p75", "p99", "p100")


def camel(snake: str) -> str:
    """`completed_with_num_err` -> `CompletedWithNumErr`: report keys as CloudWatch-style names."""
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


@dataclass
class MetricDocument:
    """The metrics of one thing (the instance, a device, a runtime, a core of a runtime)."""

    dimensions: dict[str, str]
    metrics: list[tuple[str, str, float]] = field(default_factory=list)  # (name, unit, value)

    def __post_init__(self) -> None:
        self.dimensions = {name: dimension_value(value) for name, value in self.dimensions.items()}

    def add(self, name: str, unit: str, value: float) -> None:
        self.metrics.append((name, unit, value))

    def emf(self, namespace: str, timestamp_ms: int) -> dict[str, Any]:
        """This document in Embedded Metric Format: metadata under `_aws`, values at the top level.
        More than 100 metrics take several directives over the same dimensions, as EMF requires."""
        definitions = [{"Name": name, "Unit": unit} for name, unit, _ in self.metrics]
        return {
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": namespace, "Dimensions": [list(self.dimensions)],
                     "Metrics": definitions[start:start + MAX_METRICS_PER_DIRECTIVE]}
                    for start in range(0, len(definitions), MAX_METRICS_PER_DIRECTIVE)],
            },
            **self.dimensions,
            **{name: value for name, _, value in self.metrics},
        }

    def metric_data(self, timestamp: datetime) -> list[dict[str, Any]]:
        """This document as PutMetricData MetricData entries."""
        dimensions = [{"Name": name, "Value": value} for name, value in self.dimensions.items()]
        return [{"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Value": value, "Unit": unit}
                for name, unit, value in self.metrics]


def dimension_value(text: str) -> str:
    """`text` as CloudWatch accepts a dimension value: non-ASCII and control characters escaped
    (`\\u6a21`, `\\n`), then cut to 1,024 characters. A NEURON_PROCESS_TAG may be anything."""
    value = text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return value[:MAX_DIMENSION_VALUE_CHARS]


def _dimensions(**values: str) -> dict[str, str]:
    # CloudWatch refuses empty dimension values (an instance without metadata has no InstanceId).
    return {name: value for name, value in values.items() if value.strip()}


def metric_documents(report: Report) -> list[MetricDocument]:
    """The report as metric documents; groups and runtimes that carry an error are left out."""
    instance = _dimensions(InstanceId=report.instance_info.instance_id,
                           InstanceType=report.instance_info.instance_type)
    host = MetricDocument(dict(instance))
    host.add("NeuronRuntimeCount", "Count", len(report.neuron_runtime_data))
    system = report.system_data
    if system.memory_info is not None and not system.memory_info.error:
        memory = system.memory_info
        host.add("HostMemoryTotal", "Bytes", memory.memory_total_bytes)
        host.add("HostMemoryUsed", "Bytes", memory.memory_used_bytes)
        host.add("HostSwapTotal", "Bytes", memory.swap_total_bytes)
        host.add("HostSwapUsed", "Bytes", memory.swap_used_bytes)
    if system.vcpu_usage is not None and not system.vcpu_usage.error:
        vcpu = system.vcpu_usage
        host.add("VcpuCount", "Count", len(vcpu.usage_data))
        for usage_type, states in VCPU_STATES.items():
            host.add(f"Vcpu{camel(usage_type)}", "Percent",
                     min(sum(getattr(vcpu.average_usage, state) for state in states), 100.0))
        host.add("ContextSwitches", "Count", vcpu.context_switch_count)
    documents = [host]
    if system.neuron_hw_counters is not None and not system.neuron_hw_counters.error:
        for device in system.neuron_hw_counters.neuron_devices or ():
            document = MetricDocument({**instance, "NeuronDevice": str(device.neuron_device_index)})
            for event in ECC_EVENTS:
                document.add(camel(event), "Count", getattr(device, event))
            documents.append(document)
    for runtime in report.neuron_runtime_data:
        if not runtime.error:
            documents.extend(_runtime_documents(runtime, instance, report.neuron_hardware_info))
    return [document for document in documents if document.metrics]


def _runtime_documents(runtime: RuntimeData, instance: dict[str, str],
                       hardware: NeuronHardwareInfo) -> Iterator[MetricDocument]:
    groups = runtime.report
    document = MetricDocument({**instance, **_dimensions(RuntimeTag=runtime.neuron_runtime_tag)})
    stats = groups.execution_stats
    if stats is not None and not stats.error:
        for status, count in numeric_items(stats.execution_summary):
            document.add(f"Executions{camel(status)}", "Count", count)
        for kind, count in numeric_items(stats.error_summary):
            document.add(f"ExecutionErrors{camel(kind)}", "Count", count)
        # Both clocks, each by name: total latency includes queueing, device latency does not.
        for prefix, latency in (("ExecutionLatency", stats.latency_stats.total_latency),
                                ("DeviceLatency", stats.latency_stats.device_latency)):
            if latency is not None:
                for percentile in LATENCY_PERCENTILES:
                    document.add(f"{prefix}{percentile.upper()}", "Seconds", getattr(latency, percentile))
    memory = groups.memory_used
    if memory is not None and not memory.error:
        document.add("RuntimeHostMemoryUsed", "Bytes", memory.neuron_runtime_used_bytes.host)
        document.add("RuntimeDeviceMemoryUsed", "Bytes", memory.neuron_runtime_used_bytes.neuron_device)
        document.add("LoadedModels", "Count", len(memory.loaded_models))
    cpu = groups.neuron_runtime_vcpu_usage
    if cpu is not None and not cpu.error:
        document.add("RuntimeVcpuUser", "Percent", cpu.vcpu_usage.user)
        document.add("RuntimeVcpuSystem", "Percent", cpu.vcpu_usage.system)
    yield document
    yield from _core_documents(runtime, document.dimensions, hardware)


def _core_documents(runtime: RuntimeData, runtime_dimensions: dict[str, str],
                    hardware: NeuronHardwareInfo) -> Iterator[MetricDocument]:
    """One document per core the runtime holds memory on or used in the period.

    A report lists every core of the instance under every runtime, mostly at 0; CloudWatch bills
    each metric, so the cores where a runtime has nothing are left out.
    """
    groups = runtime.report
    counters: dict[str, CoreCounters] = {}
    if groups.neuroncore_counters is not None and not groups.neuroncore_counters.error:
        counters = groups.neuroncore_counters.neuroncores_in_use
    core_memory = {}
    if groups.memory_used is not None and not groups.memory_used.error:
        core_memory = groups.memory_used.neuron_runtime_used_bytes.usage_breakdown.neuroncore_memory_usage
    busy = {core for core, counter in counters.items() if counter.neuroncore_utilization > 0 or counter.flops}
    holding = {core for core, usage in core_memory.items() if any(value for _, value in numeric_items(usage))}
    for core in sorted(busy | holding, key=_core_order):
        dimensions = dict(runtime_dimensions)
        if core.isdigit() and hardware.neuroncore_per_device_count > 0:
            # The CloudWatch agent's rule: a core's device is its index over the cores per device.
            dimensions["NeuronDevice"] = str(int(core) // hardware.neuroncore_per_device_count)
        dimensions["NeuronCore"] = core
        document = MetricDocument(dimensions)
        if core in counters:
            document.add("NeuronCoreUtilization", "Percent", counters[core].neuroncore_utilization)
            if counters[core].flops is not None:
                document.add("NeuronCoreFlops", "Count/Second", counters[core].flops)
        if core in core_memory:
            for category in CORE_MEMORY_CATEGORIES:
                document.add(f"NeuronCoreMemory{camel(category)}", "Bytes", getattr(core_memory[core], category))
        yield document


def _core_order(core: str) -> tuple[int, str]:
    return (int(core), core) if core.isdigit() else (sys.maxsize, core)


def emf_lines(report: Report, *, namespace: str, timestamp_ms: int) -> list[str]:
    """One compact JSON line per metric document of the report."""
    return [json.dumps(document.emf(namespace, timestamp_ms), separators=(",", ":"))
            for document in metric_documents(report)]


def put_metric_data(client: Any, namespace: str, documents: Iterable[MetricDocument], timestamp: datetime) -> int:
    """Send the documents' metrics with PutMetricData, as few requests as the API allows; returns
    the number of requests."""
    data = [entry for document in documents for entry in document.metric_data(timestamp)]
    requests = 0
    for start in range(0, len(data), MAX_METRIC_DATA_PER_CALL):
        client.put_metric_data(Namespace=namespace, MetricData=data[start:start + MAX_METRIC_DATA_PER_CALL])
        requests += 1
    return requests


def cloudwatch_client(region: str | None) -> Any:
    """A boto3 CloudWatch client; SystemExit with a clear message when boto3 or a region is missing."""
    try:
        import boto3  # optional: only PutMetricData needs it
        from botocore.exceptions import NoRegionError
    except ImportError:
        raise SystemExit("neuron-monitor-cloudwatch: --put-metric-data needs boto3, which is not installed "
                         "(pip install boto3); without it, write EMF lines for the CloudWatch agent") from None
    try:
        return boto3.client("cloudwatch", region_name=region)
    except NoRegionError:
        raise SystemExit("neuron-monitor-cloudwatch: no AWS region: give --region (or set AWS_REGION)") from None


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-monitor-cloudwatch",
        description="Turn neuron-monitor's reports (read from stdin) into CloudWatch metrics: "
                    "Embedded Metric Format lines, or PutMetricData calls.",
        epilog="Example: neuron-monitor | neuron-monitor-cloudwatch --namespace neuron_monitor_test --region us-west-2",
    )
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                        help=f"CloudWatch namespace of the metrics (default: {DEFAULT_NAMESPACE})")
    parser.add_argument("--region", help="AWS region for PutMetricData (EMF lines do not need one)")
    parser.add_argument("--output", metavar="FILE",
                        help="append the EMF lines to FILE instead of writing them to stdout")
    parser.add_argument("--put-metric-data", action="store_true",
                        help="send the metrics with PutMetricData through boto3 (needs boto3 and credentials); "
                             "EMF lines are then written only with --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not _NAMESPACE.fullmatch(args.namespace) or args.namespace.startswith("AWS/"):
        parser.error(f"--namespace {args.namespace!r}: 1-255 letters, digits or . - _ / # : and spaces, "
                     "not starting with AWS/")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    client = cloudwatch_client(args.region) if args.put_metric_data else None
    signal.signal(signal.SIGTERM, _stop)
    with contextlib.ExitStack() as stack:
        output: IO[str] | None = None if args.put_metric_data else sys.stdout
        if args.output:
            try:
                output = stack.enter_context(open(args.output, "a", encoding="utf-8"))
            except OSError as exc:
                print(f"neuron-monitor-cloudwatch: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
                return 1
        try:
            convert(sys.stdin.buffer, output, client, args.namespace)
        except BrokenPipeError:
            # Whoever read stdout is gone; point it at /dev/null so that the exit flush cannot fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except KeyboardInterrupt:
            pass
    return 0


def convert(lines: Iterable[bytes], output: IO[str] | None, client: Any, namespace: str) -> None:
    """Each report line to EMF lines on output, and to PutMetricData calls through client; lines
    that are not reports are logged and skipped."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            report, notes = parse_report_line(raw)
        except UnreadableLine as exc:
            log.warning("%s", exc)
            continue
        for note in notes:
            log.warning("%s", note)
        now = time.time()
        if output is not None:
            for text in emf_lines(report, namespace=namespace, timestamp_ms=int(now * 1000)):
                output.write(text + "\n")
            output.flush()  # the agent tails the file: a report's lines should reach it together
        if client is not None:
            try:
                put_metric_data(client, namespace, metric_documents(report),
                                datetime.fromtimestamp(now, tz=timezone.utc))
            except Exception as exc:  # botocore raises many kinds (credentials, throttling, network): keep going
                log.warning("PutMetricData failed: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
