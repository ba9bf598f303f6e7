"""Per-application figures beyond the real tool: the process view and the execution-stats view.

Everything here is read from one Report's `neuron_runtime_data`; counts in a report are per
sampling period, so rates are count / period of their group.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurontools.monitor.report import ExecutionStats, LatencyPercentiles, Report, RuntimeData
from neurontools.top.tabs import runtime_key

ERROR_KINDS = ("generic", "numerical", "transient", "model", "runtime", "hardware")
FAILED_OUTCOMES = ("completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input",
                   "failed_to_queue")


@dataclass(frozen=True)
class Latency:
    p50: float  # seconds
    p99: float


@dataclass(frozen=True)
class ExecutionFigures:
    completed_per_second: float
    failed_per_second: float
    errors_per_second: dict[str, float]  # by error kind (ERROR_KINDS)
    total_latency: Latency | None  # None when nothing executed in the period
    device_latency: Latency | None
    error: str  # the group's own collection error


@dataclass(frozen=True)
class Application:
    key: str  # the tab key
    pid: int
    tag: str
    error: str  # neuron-monitor's error talking to the application
    cores: tuple[int, ...]  # global cores it uses (memory allocated or busy)
    utilization: float  # mean percent over its cores
    device_bytes: int
    host_bytes: int
    vcpu: tuple[float, float] | None  # user, system percent
    models: int
    running_models: int
    executions: ExecutionFigures | None


def _latency(percentiles: LatencyPercentiles | None) -> Latency | None:
    return None if percentiles is None else Latency(percentiles.p50, percentiles.p99)


def _per_second(count: int, period: float) -> float:
    return count / period if period > 0 else 0.0


def execution_figures(stats: ExecutionStats) -> ExecutionFigures:
    summary, errors, period = stats.execution_summary, stats.error_summary, stats.period
    return ExecutionFigures(
        completed_per_second=_per_second(summary.completed, period),
        failed_per_second=_per_second(sum(getattr(summary, name) for name in FAILED_OUTCOMES), period),
        errors_per_second={kind: _per_second(getattr(errors, kind) or 0, period) for kind in ERROR_KINDS},
        total_latency=_latency(stats.latency_stats.total_latency),
        device_latency=_latency(stats.latency_stats.device_latency),
        error=stats.error,
    )


def _cores(runtime: RuntimeData) -> tuple[int, ...]:
    used: set[int] = set()
    memory = runtime.report.memory_used
    if memory is not None:
        for key, usage in memory.neuron_runtime_used_bytes.usage_breakdown.neuroncore_memory_usage.items():
            if key.isdigit() and (usage.tensors or usage.constants or usage.model_code or usage.runtime_memory
                                  or usage.model_shared_scratchpad):
                used.add(int(key))
    counters = runtime.report.neuroncore_counters
    if counters is not None:
        used.update(int(key) for key, core in counters.neuroncores_in_use.items()
                    if key.isdigit() and core.neuroncore_utilization > 0)
    return tuple(sorted(used))


def application(runtime: RuntimeData) -> Application:
    report = runtime.report
    cores = _cores(runtime)
    counters = report.neuroncore_counters
    busy = [counters.neuroncores_in_use[str(c)].neuroncore_utilization
            for c in cores if counters and str(c) in counters.neuroncores_in_use]
    memory = report.memory_used
    vcpu = report.neuron_runtime_vcpu_usage
    return Application(
        key=runtime_key(runtime),
        pid=runtime.pid,
        tag=runtime.neuron_runtime_tag,
        error=runtime.error,
        cores=cores,
        utilization=sum(busy) / len(busy) if busy else 0.0,
        device_bytes=memory.neuron_runtime_used_bytes.neuron_device if memory else 0,
        host_bytes=memory.neuron_runtime_used_bytes.host if memory else 0,
        vcpu=(vcpu.vcpu_usage.user, vcpu.vcpu_usage.system) if vcpu else None,
        models=len(memory.loaded_models) if memory else 0,
        running_models=sum(m.is_running for m in memory.loaded_models) if memory else 0,
        executions=execution_figures(report.execution_stats) if report.execution_stats else None,
    )


def applications(report: Report) -> tuple[Application, ...]:
    return tuple(application(runtime) for runtime in report.neuron_runtime_data)
