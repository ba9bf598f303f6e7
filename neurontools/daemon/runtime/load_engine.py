"""Timing-only in-daemon load as a discrete-event simulation, accounted in bulk.

A timing-only execution's work is known in advance: its modeled device time and every counter it
adds (program.estimate, the model's collective link bytes). So the daemon runs no thread and no
per-execution code for it: executions are events on a monotonic clock, and `settle(now)` advances
every counter for all executions that completed by `now`.

Scheduling (what a real NeuronCore's queue does): an execution occupies all cores of its model from
its start to its end (the slowest subgraph's time); each core serves its queue in arrival order; a
core's queue holds `max_in_flight` executions (queued or running), beyond that a submission fails to
queue. The outcome of an execution is decided when it starts, from the faults in force then, exactly
as the per-call executor decides it (execution.py): a hung core holds the execution until
NEURON_RT_EXEC_TIMEOUT, an uncorrected HBM error fails the core's next execution, a NaN fault makes
outputs non-finite, a link down fails a collective model's executions.

Bulk step: a closed-loop load alone on its cores, in steady state and with a constant outcome over
a window, completes one execution every D ns, each with latency N*D. `_advance_steady` adds m such
executions at once (counters times m), the state shifted by m*D. Everything else (warm-up, faults
starting or ending, a stop, the count or deadline, shared cores, open loops) runs event by event.
Both paths produce identical counters (tests/test_load_engine.py proves it with an injected clock).

Request loads (spec.steps): a request is several executions in order, each step queued after its
host time (a _RESUME event) once the previous one completed; a step that does not complete cleanly
ends its request. They run event by event (tests/test_request_loads.py).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.isa.program import RunResult
from neurontools.daemon.runtime.sessions import LoadedModel, RuntimeState, Session
from neurontools.daemon.device.telemetry import ERROR_KIND_OF_STATUS, STATUS_FIELD, ExecutionTelemetry
from neurontools.latency_histogram import LatencyHistogram

# Events processed by one settle at most: a daemon asked for more than it can simulate falls behind
# (its counters lag) rather than stop answering calls.
MAX_EVENTS_PER_SETTLE = 200_000
POISSON_BATCH = 1024
_SEVERITY = {pb.COMPLETED: 0, pb.COMPLETED_WITH_NUM_ERR: 1, pb.TIMED_OUT: 2, pb.COMPLETED_WITH_ERR: 3}
_COMPLETE, _ARRIVAL, _DEADLINE, _RESUME = 0, 1, 2, 3
NEVER = 1 << 62
# A timing-only Execute call whose execution ends this soon is answered at once: a thread wake-up to
# answer it on time costs about as much. A caller is never more than this ahead of the modeled timeline
# (its next call queues behind the execution it was answered for).
ANSWER_AHEAD_NS = 100_000


@dataclass(frozen=True)
class PartWork:
    core: int
    device_time_ns: int
    result: RunResult       # what one timing-only run of the subgraph adds to its core's counters
    first_output: str | None  # the output a NaN fault is reported in


@dataclass(frozen=True)
class Outcome:
    """What one execution does, decided at its start."""

    status: int
    message: str
    durations: tuple[int, ...]               # per part: how long it holds its core
    results: tuple[RunResult | None, ...]    # per part: engine counters, None when it did not run
    device_ns: int | None                    # recorded in the device-latency histogram
    link_bytes: bool                         # the collectives moved their bytes
    duration_ns: int                         # the execution's span: its slowest part

    @property
    def error_kind(self) -> int:
        return ERROR_KIND_OF_STATUS.get(self.status, 0)


class Work:
    """What one execution of a model does: its parts, its collectives, its clean outcome."""

    def __init__(self, model: LoadedModel) -> None:
        self.parts = tuple(PartWork(sg.core_id, sg.program.estimate.device_time_ns, sg.program.estimate,
                                    next((n for n, p in sg.program.parameters.items() if p.kind == pb.OUTPUT), None))
                           for sg in model.subgraphs)
        self.cores = tuple(p.core for p in self.parts)
        plan = model.collectives
        self.collective_ns = plan.device_time_ns if plan is not None else None
        self.link_bytes: dict[int, tuple[int, int]] = {}
        self.events = [(event.description, tuple(event.link_bytes)) for event in plan.events] if plan else []
        if plan is not None:
            for event in plan.events:
                for link, (a, b) in event.link_bytes.items():
                    old = self.link_bytes.get(link, (0, 0))
                    self.link_bytes[link] = (old[0] + a, old[1] + b)
        self.links = tuple(self.link_bytes)
        self.device_time_ns = max(p.device_time_ns for p in self.parts)
        self._clean: dict[int, Outcome] = {}

    def clean(self, timeout_ns: int) -> Outcome:
        outcome = self._clean.get(timeout_ns)
        if outcome is None:
            outcome = self._clean[timeout_ns] = self.outcome(_NO_FAULTS, 0, timeout_ns, lambda core: False)
        return outcome

    def outcome(self, faults: "FaultView", at_ns: int, timeout_ns: int,
                take_uncorrected: Callable[[int], bool]) -> Outcome:
        """The outcome of an execution starting at `at_ns` (the rules of execution.Executor._run_part)."""
        parts: list[tuple[int, str, int, RunResult | None]] = []
        collective_failure: tuple[int, str, int] | None = None
        for part in self.parts:
            needed = self.collective_ns if self.collective_ns is not None else part.device_time_ns
            hang = faults.in_force(faults.hangs, part.core, at_ns)
            if hang is not None:
                message = f"{hang.description} (injected fault)"
                parts.append((pb.TIMED_OUT, f"{message}: no completion within NEURON_RT_EXEC_TIMEOUT "
                                            f"({timeout_ns / 1e9:g} s)", timeout_ns, None))
                collective_failure = collective_failure or (pb.TIMED_OUT, message, timeout_ns)
                continue
            if take_uncorrected(part.core):
                message = f"uncorrectable HBM ECC error on neuron device {faults.device_of(part.core)} (injected fault)"
                parts.append((pb.COMPLETED_WITH_ERR, message, 0, None))
                collective_failure = collective_failure or (pb.COMPLETED_WITH_ERR, message, 0)
                continue
            if needed > timeout_ns:
                parts.append((pb.TIMED_OUT, f"execution needs {needed / 1e9:.3f} s of device time, more than "
                                            f"NEURON_RT_EXEC_TIMEOUT ({timeout_ns / 1e9:g} s)", timeout_ns, None))
                continue
            numerical = faults.in_force(faults.numerical, part.core, at_ns)
            if numerical is not None and part.first_output is not None:
                parts.append((pb.COMPLETED_WITH_NUM_ERR, f"output {part.first_output!r} contains NaN: "
                                                         f"{numerical.description} (injected fault)",
                              part.device_time_ns, part.result))
            else:
                parts.append((pb.COMPLETED, "", part.device_time_ns, part.result))
        if self.collective_ns is not None:
            down = next(((f, description) for description, links in self.events for f in
                         (faults.in_force(faults.links_down, link, at_ns) for link in links) if f is not None), None)
            if collective_failure is not None:
                status, message, held = collective_failure
                parts = [p if p[0] == status and p[3] is None else (status, message, held, None) for p in parts]
            elif down is not None:
                # The ranks run until their collective fails: the cores are held for the modeled time
                # (a zero-time failure would let a closed loop spin without end).
                parts = [(pb.COMPLETED_WITH_ERR, f"{down[0].description}: {down[1]} routes through it", p[2], None)
                         for p in parts]
        status, message = pb.COMPLETED, ""
        for part_status, part_message, _, _ in parts:
            if _SEVERITY[part_status] > _SEVERITY[status]:
                status, message = part_status, part_message
        results = tuple(p[3] for p in parts)
        ran = [r for r in results if r is not None]
        device_ns = max(r.device_time_ns for r in ran) if ran and status != pb.TIMED_OUT else None
        durations = tuple(p[2] for p in parts)
        return Outcome(status, message, durations, results, device_ns,
                       bool(self.link_bytes) and status in (pb.COMPLETED, pb.COMPLETED_WITH_NUM_ERR),
                       max(durations))


class FaultView:
    """The lasting faults in force, with their ends on the engine's monotonic clock."""

    def __init__(self, lasting: list[pb.Fault], unix_minus_monotonic_ns: int, device_of: Callable[[int], int]):
        self.hangs: dict[int, list[tuple[pb.Fault, int]]] = {}
        self.numerical: dict[int, list[tuple[pb.Fault, int]]] = {}
        self.links_down: dict[int, list[tuple[pb.Fault, int]]] = {}
        self.device_of = device_of
        for fault in lasting:
            ends = fault.expires_unix_ns - unix_minus_monotonic_ns if fault.expires_unix_ns else NEVER
            if fault.kind == pb.CORE_HANG:
                self.hangs.setdefault(fault.core_id, []).append((fault, ends))
            elif fault.kind == pb.NUMERICAL_ERROR:
                self.numerical.setdefault(fault.core_id, []).append((fault, ends))
            elif fault.kind == pb.LINK_DOWN:
                self.links_down.setdefault(fault.link_id, []).append((fault, ends))

    @staticmethod
    def in_force(table: dict, key: int, at_ns: int) -> pb.Fault | None:
        for fault, ends in table.get(key, ()):
            if at_ns < ends:
                return fault
        return None

    def next_change(self, work: Work, after_ns: int) -> int:
        """The first time after `after_ns` when a fault on the work's cores or links ends."""
        ends = [end for table, keys in ((self.hangs, work.cores), (self.numerical, work.cores),
                                        (self.links_down, work.links))
                for key in keys for _, end in table.get(key, ()) if end > after_ns]
        return min(ends, default=NEVER)


_NO_FAULTS = FaultView([], 0, lambda core: core // 2)


@dataclass(frozen=True)
class Step:
    """One step of a request load: an execution of a model, after some host time."""

    work: Work
    model: LoadedModel
    host_ns: int
    ends_item: bool


class Request:
    """One request of a request load in progress: which step it is at, and its clocks."""

    __slots__ = ("arrived_ns", "index", "modeled_ns", "item_ns", "item_modeled_ns", "items", "abandoned")

    def __init__(self, arrived_ns: int) -> None:
        self.arrived_ns = arrived_ns
        self.index = 0            # the step it is at
        self.modeled_ns = 0       # host and device time of the steps so far
        self.item_ns = arrived_ns  # when its latest item ended (or it arrived) ...
        self.item_modeled_ns = 0   # ... and its modeled time then
        self.items = 0
        self.abandoned = False


class RequestTelemetry:
    """A request load's requests: by the status that ended them, latency histograms."""

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.abandoned = 0
        self.histograms = {name: LatencyHistogram() for name in (
            "latency", "modeled_latency", "first_item_latency", "modeled_first_item_latency", "item_latency",
            "modeled_item_latency")}

    def ended(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    @property
    def failed(self) -> int:
        return sum(self.by_status.values()) - self.by_status.get(pb.COMPLETED, 0)

    def fill(self, message: pb.RequestStats) -> None:
        for status, count in self.by_status.items():
            setattr(message.requests, STATUS_FIELD[status], count)
        message.abandoned = self.abandoned
        for name, histogram in self.histograms.items():
            histogram.fill(getattr(message, name))


class Execution:
    __slots__ = ("load", "work", "model", "request", "arrived_ns", "started_ns", "ends_ns", "outcome")

    def __init__(self, load: "Load | Call", work: Work, model: LoadedModel, arrived_ns: int,
                 request: Request | None = None) -> None:
        self.load = load
        self.work = work
        self.model = model
        self.request = request
        self.arrived_ns = arrived_ns
        self.started_ns: int | None = None
        self.ends_ns = NEVER
        self.outcome: Outcome | None = None


class Load:
    """One running (or ended) load: its spec, its progress, its executions in the daemon."""

    def __init__(self, load_id: int, session: Session, model: LoadedModel, spec: pb.LoadSpec, work: Work | None,
                 started_ns: int, steps: tuple[Step, ...] = ()) -> None:
        self.load_id = load_id
        self.session = session
        self.model = model  # a request load: its first step's
        self.spec = spec
        # None for compute-mode loads (loads.py drives them through the executor); a request load: its
        # first step's work
        self.work = work
        self.steps = steps  # a request load's steps (spec.steps)
        self.cores = tuple(sorted({c for step in steps for c in step.work.cores})) if steps else (
            work.cores if work is not None else ())
        self.requests = RequestTelemetry() if steps else None
        self.pending: set[Request] = set()  # a request load's requests in progress
        self.closed_loop = spec.in_flight_per_core > 0
        self.started_ns = started_ns
        self.deadline_ns = started_ns + spec.duration_ns if spec.duration_ns else None
        self.state = pb.LOAD_RUNNING
        self.submitted = 0
        self.discarded = 0
        self.stats = ExecutionTelemetry()
        self.active: deque[Execution] = deque()  # queued or running, in arrival order
        self.blocked = 0                          # closed-loop slots waiting for a place in a queue
        self.in_flight = 0                        # compute-mode loads count here
        self.last_error = ""
        self.stop_reason = ""
        self.ended_ns: int | None = None
        self.arrivals = 0
        self._gaps: np.ndarray | None = None
        self._rng = np.random.default_rng(spec.seed) if spec.arrivals == pb.POISSON else None

    @property
    def finished(self) -> bool:
        return self.state in (pb.LOAD_FINISHED, pb.LOAD_STOPPED)

    def may_submit(self, at_ns: int) -> bool:
        return (self.state == pb.LOAD_RUNNING and (not self.spec.count or self.submitted < self.spec.count)
                and (self.deadline_ns is None or at_ns < self.deadline_ns))

    def next_arrival_ns(self, previous_ns: int) -> int:
        """When the open loop's next arrival comes (after `arrivals` of them, the last at `previous_ns`)."""
        if self._rng is None:  # evenly spaced from the start: no drift from rounding
            return self.started_ns + int(self.arrivals * 1e9 / self.spec.rate_per_second)
        return previous_ns + self._next_gap_ns()

    def _next_gap_ns(self) -> int:
        if self._gaps is None or self.arrivals % POISSON_BATCH == 0:
            self._gaps = np.maximum(1, np.rint(self._rng.exponential(1e9 / self.spec.rate_per_second,
                                                                     POISSON_BATCH))).astype(np.int64)
        return int(self._gaps[self.arrivals % POISSON_BATCH])

    def record(self, status: int, kind: int, total_ns: int, device_ns: int | None, message: str, times: int = 1
               ) -> None:
        """Counts executions in the load's and its session's statistics."""
        self.stats.record(status, kind, total_ns, device_ns, times)
        self.session.stats.record(status, kind, total_ns, device_ns, times)
        if status != pb.COMPLETED and message:
            self.last_error = message


class Call:
    """One Execute call's timing-only execution: queued with the loads' executions, answered at its end."""

    closed_loop = False
    blocked = 0
    deadline_ns = None
    spec = pb.LoadSpec()
    state = pb.LOAD_RUNNING
    finished = False
    steps = ()

    def __init__(self, session: Session, model: LoadedModel, work: Work,
                 answer: Callable[[Outcome, int, int], None]) -> None:
        self.session = session
        self.model = model
        self.work = work
        self.cores = work.cores
        self.answer: Callable[[Outcome, int, int], None] | None = answer  # (outcome, arrived, completed)
        self.active: deque[Execution] = deque()

    def may_submit(self, at_ns: int) -> bool:
        return False

    def record(self, status: int, kind: int, total_ns: int, device_ns: int | None, message: str, times: int = 1
               ) -> None:
        self.session.stats.record(status, kind, total_ns, device_ns, times)


class LoadEngine:
    """Every timing-only load of the daemon on one simulated clock."""

    def __init__(self, state: RuntimeState, max_in_flight: int, *, clock: Callable[[], int] = time.monotonic_ns,
                 unix_minus_monotonic_ns: int | None = None, bulk: bool = True) -> None:
        self.state = state
        self.telemetry = state.telemetry
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.unix_minus_monotonic_ns = (time.time_ns() - time.monotonic_ns() if unix_minus_monotonic_ns is None
                                        else unix_minus_monotonic_ns)
        self.bulk = bulk
        self.loads: list[Load] = []  # active (not finished) timing-only loads
        cores = state.machine.core_count
        self._queues: list[deque[Execution]] = [deque() for _ in range(cores)]
        self._running: list[Execution | None] = [None] * cores
        self._blocked: list[deque[Load]] = [deque() for _ in range(cores)]
        self._events: list[tuple[int, int, int, object]] = []
        self._seq = itertools.count()
        self.settled_ns = clock()
        self.lagging = False  # the last settle hit MAX_EVENTS_PER_SETTLE
        self.steps = 0        # events and bulk steps processed: what the load costs the daemon
        self._alarm: Alarm | None = None
        self._view = _NO_FAULTS
        # Per-core counters of the executions completed in this settle, by (work, outcome): added once
        # per pair when the settle ends (a clean outcome is one cached object per work), not per part
        # of every execution.
        self._unaccounted: dict[tuple[int, int], list] = {}

    # -- the load's life -------------------------------------------------------------------------

    def start(self, load: Load) -> None:
        """Adds a load (settle first: it starts at `load.started_ns`, the engine's present)."""
        self.loads.append(load)
        self._view = self._fault_view()
        with self.telemetry.lock:
            if load.closed_loop:
                for _ in range(load.spec.in_flight_per_core):
                    if load.may_submit(load.started_ns):
                        self._submit(load, load.started_ns)
                self._check_drained(load, load.started_ns)
            else:
                self._push(load.started_ns, _ARRIVAL, load)
            if load.deadline_ns is not None:
                self._push(load.deadline_ns, _DEADLINE, load)

    def stop(self, load: Load, reason: str, at_ns: int) -> None:
        """No more submissions; executions not started are discarded; running ones complete."""
        if load.finished or load.state == pb.LOAD_DRAINING and load.stop_reason:
            return
        with self.telemetry.lock:
            self._stop(load, reason, at_ns)

    def _stop(self, load: Load, reason: str, at_ns: int) -> None:
        load.stop_reason = reason
        load.state = pb.LOAD_DRAINING
        for core in load.cores:
            self.telemetry.cores[core].steady = None
        freed: set[int] = set()
        for execution in [e for e in load.active if e.started_ns is None]:
            load.active.remove(execution)
            load.discarded += 1
            execution.model.running -= 1
            for core in execution.work.cores:
                self._queues[core].remove(execution)
                self.telemetry.cores[core].in_flight -= 1
                freed.add(core)
        # A request not running a step now goes no further; one that is ends with its step.
        running = {e.request for e in load.active}
        for request in [r for r in load.pending if r not in running]:
            self._abandon(load, request)
        for core in sorted(freed):
            self._try_start(core, at_ns)
        self._check_drained(load, at_ns)

    # -- advancing the clock -----------------------------------------------------------------------

    def settle(self, now_ns: int | None = None) -> None:
        """Accounts everything that happened up to `now_ns` (default: the clock)."""
        now = self.clock() if now_ns is None else now_ns
        if now <= self.settled_ns or not (self.loads or self._events):
            self.settled_ns = max(self.settled_ns, now)
            return
        budget = MAX_EVENTS_PER_SETTLE
        with self.telemetry.lock:
            if self.bulk:
                for load in list(self.loads):
                    self._advance_steady(load, now)
            events = self._events
            while events and events[0][0] <= now:
                if not budget:
                    now = events[0][0] - 1
                    break
                budget -= 1
                self.steps += 1
                at, _, kind, subject = heapq.heappop(events)
                if kind == _COMPLETE:
                    if subject.ends_ns != at or subject.outcome is None:
                        continue  # moved by a bulk step
                    self._complete(subject, at)
                    if self.bulk:
                        self._advance_steady(subject.load, now)
                elif kind == _ARRIVAL:
                    self._arrive(subject, at)
                elif kind == _RESUME:
                    load, request = subject
                    if not request.abandoned:
                        self._queue_step(load, request, at)
                else:
                    if subject.state == pb.LOAD_RUNNING:
                        subject.state = pb.LOAD_DRAINING
                    self._check_drained(subject, at)
            self._account_cores()
            self.lagging = budget == 0
            self.settled_ns = now
            self.loads = [load for load in self.loads if not load.finished]

    def close(self) -> None:
        """The daemon stops: the alarm thread ends."""
        if self._alarm is not None:
            self._alarm.stop()

    def faults_changed(self) -> None:
        """A fault was injected or cleared (after settling up to that moment)."""
        self._view = self._fault_view()
        with self.telemetry.lock:
            for core in self.telemetry.cores:
                core.steady = None  # the schedule may change from the next start on

    def _fault_view(self) -> FaultView:
        return FaultView(self.state.faults.active(), self.unix_minus_monotonic_ns, self.state.machine.device_of_core)

    def _push(self, at_ns: int, kind: int, subject) -> None:
        heapq.heappush(self._events, (at_ns, next(self._seq), kind, subject))

    # -- one event at a time -------------------------------------------------------------------------

    def _submit(self, load: Load, at_ns: int) -> bool:
        load.submitted += 1
        if load.steps:
            request = Request(at_ns)
            load.pending.add(request)
            self._next_step(load, request, at_ns)
            return True
        return self._queue(load, load.work, load.model, at_ns)

    def _queue(self, load: Load, work: Work, model: LoadedModel, at_ns: int, request: Request | None = None) -> bool:
        """Queues an execution of the load, or counts it failed to queue."""
        telemetry = self.telemetry.cores
        full = next((c for c in work.cores if telemetry[c].in_flight >= self.max_in_flight), None)
        if full is not None:
            load.record(pb.FAILED_TO_QUEUE, pb.RUNTIME, 0, None,
                        f"NeuronCore {full} already has {self.max_in_flight} executions in flight")
            if request is not None:
                self._end_request(load, request, pb.FAILED_TO_QUEUE, at_ns, resubmit=False)
            if load.closed_loop:
                load.blocked += 1
                for core in load.cores:
                    self._blocked[core].append(load)
            return False
        self._enqueue(load, work, model, at_ns, request)
        return True

    def _enqueue(self, load: "Load | Call", work: Work, model: LoadedModel, at_ns: int,
                 request: Request | None = None) -> Execution:
        execution = Execution(load, work, model, at_ns, request)
        cores = work.cores
        telemetry = self.telemetry.cores
        for core in cores:
            telemetry[core].in_flight += 1
            self._queues[core].append(execution)
        model.running += 1
        load.active.append(execution)
        self._try_start(cores[0], at_ns)
        return execution

    # -- requests of several steps -------------------------------------------------------------------

    def _next_step(self, load: Load, request: Request, at_ns: int) -> None:
        """The request's next step: queued after its host time."""
        host_ns = load.steps[request.index].host_ns
        request.modeled_ns += host_ns
        if host_ns:
            self._push(at_ns + host_ns, _RESUME, (load, request))
        else:
            self._queue_step(load, request, at_ns)

    def _queue_step(self, load: Load, request: Request, at_ns: int) -> None:
        step = load.steps[request.index]
        self._queue(load, step.work, step.model, at_ns, request)

    def _step_done(self, load: Load, request: Request, outcome: Outcome, at_ns: int) -> None:
        """A request's step completed: its next step, or the request's end."""
        request.modeled_ns += outcome.duration_ns
        if outcome.status != pb.COMPLETED:
            self._end_request(load, request, outcome.status, at_ns)
            return
        if load.stop_reason:
            self._abandon(load, request)
            return
        stats = load.requests.histograms
        if load.steps[request.index].ends_item:
            latency, modeled = at_ns - request.item_ns, request.modeled_ns - request.item_modeled_ns
            if request.items == 0:
                stats["first_item_latency"].record(latency)
                stats["modeled_first_item_latency"].record(modeled)
            else:
                stats["item_latency"].record(latency)
                stats["modeled_item_latency"].record(modeled)
            request.items += 1
            request.item_ns, request.item_modeled_ns = at_ns, request.modeled_ns
        request.index += 1
        if request.index < len(load.steps):
            self._next_step(load, request, at_ns)
            return
        stats["latency"].record(at_ns - request.arrived_ns)
        stats["modeled_latency"].record(request.modeled_ns)
        self._end_request(load, request, pb.COMPLETED, at_ns)

    def _end_request(self, load: Load, request: Request, status: int, at_ns: int, *, resubmit: bool = True) -> None:
        load.requests.ended(status)
        load.pending.discard(request)
        limit = load.spec.max_failed_requests
        if status != pb.COMPLETED and limit and not load.stop_reason and load.requests.failed >= limit:
            self._stop(load, f"{limit} failed requests (max_failed_requests)", at_ns)
        if resubmit and load.closed_loop and load.may_submit(at_ns):
            self._submit(load, at_ns)

    def _abandon(self, load: Load, request: Request) -> None:
        request.abandoned = True
        load.requests.abandoned += 1
        load.pending.discard(request)

    # -- Execute calls (timing-only) ---------------------------------------------------------------

    def submit_call(self, call: Call) -> str | None:
        """Queues a call's execution now; the reason when the queue is full (the caller answers it)."""
        now = self.clock()
        self.settle(now)
        with self.telemetry.lock:
            full = next((c for c in call.work.cores if self.telemetry.cores[c].in_flight >= self.max_in_flight), None)
            if full is not None:
                return (f"NeuronCore {full} already has {self.max_in_flight} executions in flight; wait for some "
                        "to complete before submitting more")
            self._enqueue(call, call.work, call.model, max(now, self.settled_ns))
        return None

    def answered_until(self, model: LoadedModel) -> int | None:
        """The modeled end of the model's executions whose callers were answered ahead of it, if any."""
        ends = [e.ends_ns for core in {sg.core_id for sg in model.subgraphs}
                for e in (self._running[core],) if e is not None and e.model is model
                and isinstance(e.load, Call) and e.load.answer is None]
        return max(ends, default=None)

    def withdraw(self, call: Call) -> None:
        """The caller left: an execution not started yet is dropped (not counted); a running one completes."""
        with self.telemetry.lock:
            for execution in [e for e in call.active if e.started_ns is None]:
                call.active.remove(execution)
                call.model.running -= 1
                for core in call.work.cores:
                    self._queues[core].remove(execution)
                    self.telemetry.cores[core].in_flight -= 1
                for core in call.work.cores:
                    self._try_start(core, self.settled_ns)

    def _wake_at(self, at_ns: int) -> None:
        """Settles when a call's execution ends, so its caller is answered then."""
        if self._alarm is None:
            try:
                self._alarm = Alarm(asyncio.get_running_loop(), self._wake)
            except RuntimeError:
                return  # no event loop (tests settle by hand)
        self._alarm.at(at_ns)

    def _settle_later(self, at_ns: int) -> None:
        try:
            asyncio.get_running_loop().call_at(at_ns / 1e9, self._wake, at_ns)
        except RuntimeError:
            pass  # no event loop (tests settle by hand)

    def _wake(self, at_ns: int) -> None:
        self.settle(max(self.clock(), at_ns))  # a timer may fire within the clock's resolution before

    def _try_start(self, core: int, at_ns: int) -> None:
        queue = self._queues[core]
        if not queue or self._running[core] is not None:
            return
        execution = queue[0]
        load = execution.load
        cores = execution.work.cores
        if any(self._running[c] is not None or self._queues[c][0] is not execution for c in cores):
            return
        outcome = self._outcome_at(execution, at_ns, self.state.faults.take_uncorrected)
        execution.started_ns = at_ns
        execution.outcome = outcome
        execution.ends_ns = at_ns + outcome.duration_ns
        for c, held in zip(cores, outcome.durations):
            self._queues[c].popleft()
            self._running[c] = execution
            telemetry = self.telemetry.cores[c]
            telemetry.busy_since = at_ns
            telemetry.busy_until = at_ns + held
            telemetry.steady = None
        self._push(execution.ends_ns, _COMPLETE, execution)
        if isinstance(load, Call):
            if execution.ends_ns - self.clock() <= ANSWER_AHEAD_NS:
                # Waking up for it would cost more than the wait: answer now; its counters are
                # accounted at its modeled end like every execution's (a loop timer settles then).
                load.answer(outcome, execution.arrived_ns, execution.ends_ns)
                load.answer = None
                self._settle_later(execution.ends_ns)
            else:
                self._wake_at(execution.ends_ns)

    def _outcome_at(self, execution: Execution, at_ns: int, take_uncorrected: Callable[[int], bool]) -> Outcome:
        work, timeout = execution.work, execution.load.session.exec_timeout_ns
        view = self._view
        if (view.hangs or view.numerical or view.links_down or (work.collective_ns or 0) > timeout
                or any(self.state.faults.uncorrected_pending(c) for c in work.cores)):
            return work.outcome(view, at_ns, timeout, take_uncorrected)
        return work.clean(timeout)

    def _complete(self, execution: Execution, at_ns: int) -> None:
        load = execution.load
        outcome = execution.outcome
        self._account(execution, at_ns - execution.arrived_ns, 1)
        execution.outcome = None
        if isinstance(load, Call) and load.answer is not None:
            load.answer(outcome, execution.arrived_ns, at_ns)
        if load.active[0] is execution:
            load.active.popleft()
        else:  # a request load's executions may run on different cores
            load.active.remove(execution)
        cores = execution.work.cores
        for core in cores:
            self._running[core] = None
            telemetry = self.telemetry.cores[core]
            telemetry.in_flight -= 1
            telemetry.busy_since = telemetry.busy_until = telemetry.steady = None
        execution.model.running -= 1
        # A freed place goes first to a closed-loop slot that found the queue full, then to the
        # slot of the execution that completed.
        retry = self._take_blocked(cores, at_ns)
        if retry is not None:
            self._submit(retry, at_ns)
        if execution.request is not None:
            self._step_done(load, execution.request, outcome, at_ns)
        elif load.closed_loop and load.may_submit(at_ns):
            self._submit(load, at_ns)
        for core in cores:
            self._try_start(core, at_ns)
        self._check_drained(load, at_ns)

    def _take_blocked(self, cores: tuple[int, ...], at_ns: int) -> Load | None:
        """The closed-loop slot that has waited longest for a place on these cores (it retries now)."""
        for core in cores:
            blocked = self._blocked[core]
            while blocked:
                load = blocked.popleft()
                if not load.blocked:
                    continue
                load.blocked -= 1
                if load.may_submit(at_ns):
                    for other in load.cores:
                        if other != core:
                            try:
                                self._blocked[other].remove(load)
                            except ValueError:
                                pass
                    return load
        return None

    def _arrive(self, load: Load, at_ns: int) -> None:
        if not load.may_submit(at_ns):
            if load.state == pb.LOAD_RUNNING:
                load.state = pb.LOAD_DRAINING
            self._check_drained(load, at_ns)
            return
        self._submit(load, at_ns)
        load.arrivals += 1
        self._push(load.next_arrival_ns(at_ns), _ARRIVAL, load)

    def _check_drained(self, load: Load, at_ns: int) -> None:
        if load.state == pb.LOAD_RUNNING and not load.may_submit(at_ns) and (
                load.spec.count and load.submitted >= load.spec.count):
            load.state = pb.LOAD_DRAINING
        if load.state == pb.LOAD_DRAINING and not load.active and not load.pending:
            load.state = pb.LOAD_STOPPED if load.stop_reason else pb.LOAD_FINISHED
            load.ended_ns = at_ns
            load.blocked = 0

    def _account(self, execution: Execution, total_ns: int, times: int) -> None:
        """Every counter of `times` executions with this outcome and total latency: the load's and the
        model's now, the cores' and links' when the settle ends (_account_cores)."""
        load, outcome, work = execution.load, execution.outcome, execution.work
        pending = self._unaccounted.setdefault((id(work), id(outcome)), [work, outcome, 0])
        pending[2] += times
        load.record(outcome.status, outcome.error_kind, total_ns, outcome.device_ns, outcome.message, times)
        execution.model.executions += times

    def _account_cores(self) -> None:
        """The cores' and links' counters of the executions completed since the last call (the
        caller holds the telemetry lock)."""
        telemetry = self.telemetry
        for work, outcome, times in self._unaccounted.values():
            for part, held, result in zip(work.parts, outcome.durations, outcome.results):
                telemetry.account_part(part.core, held, result, times)
            if outcome.link_bytes:
                telemetry.add_link_bytes(work.link_bytes, times)
        self._unaccounted.clear()

    # -- in bulk ------------------------------------------------------------------------------------

    def _advance_steady(self, load: Load, now_ns: int) -> None:
        """Completes, in one step, the executions of a closed loop in steady state up to `now_ns`."""
        if not load.closed_loop or load.state != pb.LOAD_RUNNING or load.blocked or not load.active or load.steps:
            return  # a request load runs event by event
        n = load.spec.in_flight_per_core
        head = load.active[0]
        outcome = head.outcome
        if outcome is None or len(load.active) != n or outcome.duration_ns <= 0:
            return
        cores = load.work.cores
        period = outcome.duration_ns
        ends = head.ends_ns
        if ends > now_ns or head.arrived_ns != ends - n * period:
            return
        # Alone on its cores: nothing else queued there, no other load waiting for a place.
        for core in cores:
            if self.telemetry.cores[core].in_flight != n or self._blocked[core] or self.state.faults.uncorrected_pending(core):
                return
        for index, execution in enumerate(itertools.islice(load.active, 1, None), 1):
            if execution.arrived_ns != ends - (n - index) * period:
                return
        # The outcome of the next starts must be the head's, over the whole window.
        following = self._outcome_at(head, ends, lambda core: False)
        if following is not outcome and following != outcome:
            return
        window_end = min(now_ns, self._view.next_change(load.work, ends) - 1)
        if load.deadline_ns is not None:
            window_end = min(window_end, load.deadline_ns - 1)
        if window_end < ends:
            return
        completions = (window_end - ends) // period + 1
        if load.spec.count:
            completions = min(completions, load.spec.count - load.submitted)
        if completions < 1:
            return
        self.steps += 1
        self._account(head, n * period, completions)
        shift = completions * period
        for execution in load.active:
            execution.arrived_ns += shift
        head.started_ns += shift
        head.ends_ns += shift
        load.submitted += completions
        # Until the next step, occupied time follows the steady schedule: the executions in flight and
        # those the count still allows start every period, up to the next change (fault, deadline).
        starts = n - 1 + (load.spec.count - load.submitted if load.spec.count else 1 << 40)
        until = min(head.started_ns + starts * period, self._view.next_change(load.work, head.started_ns),
                    NEVER if load.deadline_ns is None else load.deadline_ns)
        for core, held in zip(cores, outcome.durations):
            telemetry = self.telemetry.cores[core]
            telemetry.busy_since = head.started_ns
            telemetry.busy_until = head.started_ns + held
            telemetry.steady = (period, held, until + held if until == head.started_ns + starts * period else until)
        self._push(head.ends_ns, _COMPLETE, head)


class Alarm:
    """Calls `wake(at_ns)` on the event loop at monotonic times, precisely.

    The loop's own timers wait in epoll, whose timeout is whole milliseconds: a 1.7 ms execution
    would be answered up to a millisecond late. One thread waits on a condition (ns resolution) for
    the earliest time and hands it to the loop; it is the only thread hop of a timing-only call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[int], None]) -> None:
        self._loop = loop
        self._wake = wake
        self._times: list[int] = []
        self._changed = threading.Condition()
        self._stopped = False
        threading.Thread(target=self._run, name="neurond-alarm", daemon=True).start()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def at(self, at_ns: int) -> None:
        with self._changed:
            heapq.heappush(self._times, at_ns)
            if self._times[0] == at_ns:
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (not self._times or self._times[0] > time.monotonic_ns()):
                    self._changed.wait(None if not self._times else (self._times[0] - time.monotonic_ns()) / 1e9)
                if self._stopped:
                    return
                due = heapq.heappop(self._times)
                while self._times and self._times[0] <= due:
                    heapq.heappop(self._times)  # one settle answers every call due by then
            try:
                self._loop.call_soon_threadsafe(self._wake, due)
            except RuntimeError:
                return  # the loop is closed: the daemon has stopped


def device_time_ns(load: Load) -> int:
    """Modeled device time of one execution (its slowest subgraph); of a request load, of one request
    (its steps')."""
    if load.steps:
        return sum(step.work.device_time_ns for step in load.steps)
    if load.work is not None:
        return load.work.device_time_ns
    return max(sg.program.estimate.device_time_ns for sg in load.model.subgraphs)  # a compute-mode load


def modeled_rate(load: Load) -> float:
    """Executions (a request load: requests) per second the load would sustain on real hardware: as
    many as the cores can serve, and a closed loop's requests, each waiting for its host time too."""
    work_ns = device_time_ns(load)
    capacity = 1e9 / max(1, work_ns)
    if load.closed_loop:
        cycle_ns = work_ns + sum(step.host_ns for step in load.steps)
        return min(capacity, load.spec.in_flight_per_core * 1e9 / cycle_ns) if cycle_ns else capacity
    return min(capacity, load.spec.rate_per_second)
