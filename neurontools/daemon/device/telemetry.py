"""Cumulative, monotonic counters (DESIGN principle 2): nothing here is ever reset or read-and-cleared.

Execution workers update them from their threads; snapshots read them under the same lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from neurontools._proto import neurond_pb2 as pb
from neurontools.latency_histogram import LatencyHistogram

ENGINES = (pb.TENSOR, pb.VECTOR, pb.SCALAR, pb.GPSIMD, pb.DMA)

# Which error_summary kind an execution outcome counts under (docs/api.md explains the mapping).
ERROR_KIND_OF_STATUS = {
    pb.COMPLETED_WITH_ERR: pb.HARDWARE,
    pb.COMPLETED_WITH_NUM_ERR: pb.NUMERICAL,
    pb.TIMED_OUT: pb.TRANSIENT,
    pb.INCORRECT_INPUT: pb.MODEL,
    pb.FAILED_TO_QUEUE: pb.RUNTIME,
}

STATUS_FIELD = {
    pb.COMPLETED: "completed",
    pb.COMPLETED_WITH_ERR: "completed_with_err",
    pb.COMPLETED_WITH_NUM_ERR: "completed_with_num_err",
    pb.TIMED_OUT: "timed_out",
    pb.INCORRECT_INPUT: "incorrect_input",
    pb.FAILED_TO_QUEUE: "failed_to_queue",
}
_ERROR_FIELD = {pb.GENERIC: "generic", pb.NUMERICAL: "numerical", pb.TRANSIENT: "transient",
                pb.MODEL: "model", pb.RUNTIME: "runtime", pb.HARDWARE: "hardware"}


@dataclass
class ExecutionTelemetry:
    """Executions of one session: counts by status and kind, latency histograms."""

    by_status: dict[int, int] = field(default_factory=dict)
    by_error: dict[int, int] = field(default_factory=dict)
    total_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    device_latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def record(self, status: int, error_kind: int, total_ns: int, device_ns: int | None, times: int = 1) -> None:
        """One execution, or `times` identical ones at once (bulk accounting: the same counts)."""
        self.by_status[status] = self.by_status.get(status, 0) + times
        if error_kind:
            self.by_error[error_kind] = self.by_error.get(error_kind, 0) + times
        self.total_latency.record(total_ns, times)
        if device_ns is not None:
            self.device_latency.record(device_ns, times)

    def fill(self, message: pb.ExecutionStats) -> None:
        for status, count in self.by_status.items():
            setattr(message.executions, STATUS_FIELD[status], count)
        for kind, count in self.by_error.items():
            setattr(message.errors, _ERROR_FIELD[kind], count)
        self.total_latency.fill(message.total_latency)
        self.device_latency.fill(message.device_latency)


class CoreTelemetry:
    """Counters of one NeuronCore. `occupied_ns` includes the running execution up to now."""

    def __init__(self, core_id: int, device_index: int) -> None:
        self.core_id = core_id
        self.device_index = device_index
        self.occupied_ns = 0
        self.busy_since: int | None = None  # monotonic ns when the current execution started
        # When an in-daemon load's execution holds the core, the end of its modeled interval: the
        # occupied time counts up to it and no further until the load engine accounts the execution.
        self.busy_until: int | None = None
        # While a closed loop runs steadily on the core: (period, hold, until) -- an execution starts
        # every period and holds the core `hold` ns, up to `until`; occupied time counts them between
        # the engine's accounting steps, exactly as the next step will account them.
        self.steady: tuple[int, int, int] | None = None
        self.device_time_ns = 0
        self.flops = 0
        self.executions = 0
        self.in_flight = 0
        self.engine_busy_ns = dict.fromkeys(ENGINES, 0)
        self.engine_instructions = dict.fromkeys(ENGINES, 0)
        self.model_loads = 0
        # Execution outcomes of closed sessions that held this core (status -> count); live sessions
        # carry their own, so together they count every execution for the driver's per-core files.
        self.closed_session_outcomes: dict[int, int] = {}

    def occupied_until(self, now_ns: int) -> int:
        if self.busy_since is None:
            return self.occupied_ns
        if self.steady is not None:
            period, hold, until = self.steady
            elapsed = min(now_ns, until) - self.busy_since
            if elapsed <= 0:
                return self.occupied_ns
            periods, rest = divmod(elapsed, period)
            return self.occupied_ns + periods * hold + min(hold, rest)
        end = now_ns if self.busy_until is None else min(now_ns, self.busy_until)
        return self.occupied_ns + max(0, end - self.busy_since)


@dataclass
class DeviceTelemetry:
    ecc: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("mem_ecc_corrected", "mem_ecc_uncorrected", "sram_ecc_corrected", "sram_ecc_uncorrected"), 0))
    resets: int = 0


class Telemetry:
    """All counters of the machine behind one lock."""

    def __init__(self, cores: list[tuple[int, int]], device_count: int, link_count: int) -> None:
        self.lock = threading.Lock()
        self.cores = [CoreTelemetry(core, device) for core, device in cores]
        self.devices = [DeviceTelemetry() for _ in range(device_count)]
        self.link_bytes = [[0, 0] for _ in range(link_count)]  # a->b, b->a
        self.sessions_opened = 0
        self.sessions_closed = 0
        self.ended_sessions: dict[str, ExecutionTelemetry] = {}  # closed sessions' counts, by tag

    def end_session(self, tag: str, stats: ExecutionTelemetry) -> None:
        """Fold a closing session's execution counts into its tag's totals (caller holds the lock)."""
        total = self.ended_sessions.setdefault(tag, ExecutionTelemetry())
        for status, count in stats.by_status.items():
            total.by_status[status] = total.by_status.get(status, 0) + count
        for kind, count in stats.by_error.items():
            total.by_error[kind] = total.by_error.get(kind, 0) + count

    def fill_ended(self, snap: pb.Snapshot) -> None:
        for tag, stats in self.ended_sessions.items():
            message = snap.ended_session_totals.add(tag=tag)
            for status, count in stats.by_status.items():
                setattr(message.executions, STATUS_FIELD[status], count)
            for kind, count in stats.by_error.items():
                setattr(message.errors, _ERROR_FIELD[kind], count)

    def retire_session(self, core_ids: list[int], stats: ExecutionTelemetry) -> None:
        """Keep a closing session's outcome counts on each of its cores (caller holds the lock)."""
        for core_id in core_ids:
            outcomes = self.cores[core_id].closed_session_outcomes
            for status, count in stats.by_status.items():
                outcomes[status] = outcomes.get(status, 0) + count

    def start_busy(self, core_id: int) -> int:
        now = time.monotonic_ns()
        with self.lock:
            self.cores[core_id].busy_since = now
            self.cores[core_id].busy_until = self.cores[core_id].steady = None
        return now

    def end_busy(self, core_id: int, started_ns: int, result) -> None:
        """Close an occupied interval; `result` (a program RunResult or None) adds engine counters."""
        now = time.monotonic_ns()
        with self.lock:
            self.cores[core_id].busy_since = None
            self.account_part(core_id, now - started_ns, result)

    def account_part(self, core_id: int, occupied_ns: int, result, times: int = 1) -> None:
        """`times` executions' parts on a core, each occupying it `occupied_ns`, with their engine
        counters (`result`, a RunResult or None). The caller holds the lock."""
        core = self.cores[core_id]
        core.occupied_ns += occupied_ns * times
        core.executions += times
        if result is not None:
            core.device_time_ns += result.device_time_ns * times
            core.flops += result.flops * times
            for engine, busy in result.engine_busy_ns.items():
                core.engine_busy_ns[engine] = core.engine_busy_ns.get(engine, 0) + busy * times
            for engine, count in result.engine_instructions.items():
                core.engine_instructions[engine] = core.engine_instructions.get(engine, 0) + count * times

    def add_link_bytes(self, link_bytes: dict[int, tuple[int, int]], times: int = 1) -> None:
        """Bytes of `times` executions' collectives on each link. The caller holds the lock."""
        for link, (a_to_b, b_to_a) in link_bytes.items():
            counters = self.link_bytes[link]
            counters[0] += a_to_b * times
            counters[1] += b_to_a * times
