"""In-daemon load, the service side: checking load specs, starting, observing and stopping loads.

Timing-only loads run on the discrete-event engine (load_engine.py): no thread and no RPC per
execution, counters advanced in bulk. Compute-mode loads really compute, so they go through the
executor's workers like Execute calls, minus the RPC (their rate is what numpy allows). A load
belongs to its session: the session's end stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.errors import InvalidArgument, NotFound, PermissionDenied
from neurontools.daemon.runtime.execution import Executor, IncorrectInput
from neurontools.daemon.runtime.load_engine import Load, LoadEngine, Step, Work, device_time_ns, modeled_rate
from neurontools.daemon.runtime.sessions import LoadedModel, RuntimeState, Session

# How often the engine accounts the load on its own (snapshots, faults and calls settle it too):
# it bounds how late a load notices its end and how stale a core's in-flight count can be.
TICK_S = 0.05
MAX_RATE_PER_SECOND = 10_000_000.0
MAX_DURATION_NS = 366 * 86_400 * 1_000_000_000
MAX_WAIT_NS = 600 * 1_000_000_000
MAX_STEPS = 100_000         # per request
MAX_HOST_NS = 600 * 1_000_000_000
FINISHED_KEPT_PER_SESSION = 64
COMPUTE_RETRY_S = 0.001  # a compute-mode closed-loop slot that failed to queue tries again after this


class LoadService:
    def __init__(self, state: RuntimeState, executor: Executor, max_in_flight: int, engine: LoadEngine | None = None
                 ) -> None:
        self.state = state
        self.executor = executor
        self.max_in_flight = max_in_flight
        self.engine = engine or LoadEngine(state, max_in_flight)
        self._loads: dict[int, Load] = {}
        self._next_id = 1
        self._tasks: dict[int, list[asyncio.Task]] = {}  # compute-mode loads' drivers
        self._ticker: asyncio.Task | None = None
        self._changed: asyncio.Event | None = None

    # -- the API ---------------------------------------------------------------------------------

    def start(self, session: Session, spec: pb.LoadSpec) -> Load:
        if spec.steps:
            steps = self._check_steps(session, spec)
            model = steps[0].model
        else:
            model = self._check(session, spec)
            parts_io = self._bind(session, model, spec.bindings, "spec.bindings", spec.timing_only)
            steps = ()
        self.settle()
        work = steps[0].work if steps else Work(model) if spec.timing_only else None
        load = Load(self._next_id, session, model, spec, work,
                    self.engine.settled_ns if spec.timing_only else time.monotonic_ns(), steps)
        if load.work is not None and device_time_ns(load) <= 0:
            raise InvalidArgument(f"spec.model_id: model {model.model_id} has 0 ns of modeled device time; a "
                                  "load needs executions that take time on the device")
        self._next_id += 1
        self._loads[load.load_id] = load
        if load.work is not None:
            self.engine.start(load)
        else:
            self._tasks[load.load_id] = self._drive(load, parts_io)
        self._ensure_ticker()
        return load

    def get(self, session: Session, load_id: int) -> Load:
        load = self._loads.get(load_id)
        if load is None:
            raise NotFound(f"no load {load_id}: it was never started, or it ended with its session")
        if load.session is not session:
            raise PermissionDenied(f"load {load_id} belongs to another session")
        return load

    async def wait(self, load: Load, wait_ns: int) -> None:
        if wait_ns > MAX_WAIT_NS:
            raise InvalidArgument(f"wait_ns {wait_ns} is above the maximum of {MAX_WAIT_NS} (600 s); poll instead")
        deadline = time.monotonic() + wait_ns / 1e9
        while not load.finished and time.monotonic() < deadline:
            self._ensure_ticker()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed_event().wait(), min(TICK_S, deadline - time.monotonic()))
            self.settle()

    def stop(self, load: Load, reason: str) -> None:
        self.settle()
        if load.work is not None:
            self.engine.stop(load, reason, self.engine.settled_ns)
        elif not load.finished:
            load.stop_reason = load.stop_reason or reason
            load.state = pb.LOAD_DRAINING
            _finish_compute_if_idle(load)

    def of_session(self, session: Session) -> list[Load]:
        return [load for load in self._loads.values() if load.session is session]

    def end_session(self, session: Session, reason: str) -> None:
        """The session ended: its loads stop at once and are forgotten."""
        for load in self.of_session(session):
            self.stop(load, reason)
            for task in self._tasks.pop(load.load_id, []):
                task.cancel()  # executions not yet started are abandoned (not counted), like a dead caller's
            del self._loads[load.load_id]

    async def finish_answered(self, model: LoadedModel) -> None:
        """Executions already answered (ANSWER_AHEAD_NS) end within microseconds: wait for them."""
        self.settle()
        end = self.engine.answered_until(model)
        if end is not None:
            await asyncio.sleep(max(0, end - time.monotonic_ns()) / 1e9)
            self.engine.settle(max(end, time.monotonic_ns()))

    def active_on(self, model: LoadedModel) -> Load | None:
        return next((load for load in self._loads.values() if not load.finished and (
            load.model is model or any(step.model is model for step in load.steps))), None)

    def settle(self) -> int:
        """Accounts in-daemon load up to now; returns the instant it is accounted to."""
        self.engine.settle()
        self._forget_old()
        return self.engine.settled_ns

    def stop_all(self, reason: str) -> None:
        for load in list(self._loads.values()):
            self.stop(load, reason)
        for tasks in self._tasks.values():
            for task in tasks:
                task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()

    def progress(self, load: Load) -> pb.LoadProgress:
        now = self.engine.settled_ns if load.work is not None else time.monotonic_ns()
        end = load.ended_ns if load.ended_ns is not None else now
        message = pb.LoadProgress(
            load_id=load.load_id, model_id=load.model.model_id, state=load.state, spec=load.spec,
            submitted=load.submitted, in_flight=_in_flight(load),
            discarded=load.discarded, started_monotonic_ns=load.started_ns, elapsed_ns=max(0, end - load.started_ns),
            device_time_ns=device_time_ns(load), modeled_rate_per_second=modeled_rate(load),
            last_error=load.last_error, stop_reason=load.stop_reason)
        load.stats.fill(message.stats)
        if load.requests is not None:
            load.requests.fill(message.requests)
        return message

    # -- checking a spec -------------------------------------------------------------------------

    def _check(self, session: Session, spec: pb.LoadSpec) -> LoadedModel:
        model = self._model(session, spec.model_id, "spec.model_id")
        self._check_pattern(spec)
        return model

    def _model(self, session: Session, model_id: int, field: str) -> LoadedModel:
        model = self.state.models.get(model_id)
        if model is None or model.session_id != session.session_id:
            loaded = ", ".join(str(m) for m in session.models) or "none"
            raise InvalidArgument(f"{field}: no model {model_id} is loaded in this session on its "
                                  f"cores {_cores_text(session.core_ids)} (its models: {loaded})")
        return model

    def _check_steps(self, session: Session, spec: pb.LoadSpec) -> tuple[Step, ...]:
        """A request load's steps: timing-only, each a model of the session with its inputs bound."""
        if not spec.timing_only:
            raise InvalidArgument("spec.steps: a request of several steps runs timing-only (set timing_only); "
                                  "in compute mode the host works between steps, so call Execute per step")
        order = list(spec.step_order) or range(len(spec.steps))
        if len(order) > MAX_STEPS:
            raise InvalidArgument(f"a request of {len(order)} steps is too long; a request has at most {MAX_STEPS}")
        self._check_pattern(spec)
        steps = []
        works: dict[int, Work] = {}
        for index, step in enumerate(spec.steps):
            field = f"spec.steps[{index}]"
            model = self._model(session, step.model_id, f"{field}.model_id")
            if step.host_ns > MAX_HOST_NS:
                raise InvalidArgument(f"{field}.host_ns {step.host_ns} is above the limit of {MAX_HOST_NS} (600 s)")
            self._bind(session, model, step.bindings, f"{field}.bindings", True)
            if model.model_id not in works:
                works[model.model_id] = Work(model)
            steps.append(Step(works[model.model_id], model, step.host_ns, step.ends_item))
        bad = next((i for i in order if i >= len(steps)), None)
        if bad is not None:
            raise InvalidArgument(f"spec.step_order names step {bad}; there are {len(steps)} steps (0 to "
                                  f"{len(steps) - 1})")
        return tuple(steps[i] for i in order)

    def _check_pattern(self, spec: pb.LoadSpec) -> None:
        closed, rate = spec.in_flight_per_core, spec.rate_per_second
        if closed and rate:
            raise InvalidArgument("spec: give in_flight_per_core (closed loop) or rate_per_second (open loop), "
                                  "not both")
        if not closed and not rate:
            raise InvalidArgument("spec: give in_flight_per_core >= 1 (closed loop) or rate_per_second > 0 "
                                  "(open loop)")
        if closed > self.max_in_flight:
            raise InvalidArgument(f"spec.in_flight_per_core is {closed}; the runtime queue holds at most "
                                  f"{self.max_in_flight} executions per core")
        if not closed:
            if not math.isfinite(rate) or rate <= 0:
                raise InvalidArgument(f"spec.rate_per_second is {rate}; it must be a number > 0")
            if rate > MAX_RATE_PER_SECOND:
                raise InvalidArgument(f"spec.rate_per_second is {rate:g}; the limit is {MAX_RATE_PER_SECOND:g} "
                                      "per load (use a closed loop to saturate the cores)")
        if spec.arrivals not in (pb.ARRIVALS_UNSPECIFIED, pb.CONSTANT, pb.POISSON):
            raise InvalidArgument(f"spec.arrivals {spec.arrivals} is unknown; use CONSTANT or POISSON")
        if closed and spec.arrivals != pb.ARRIVALS_UNSPECIFIED:
            raise InvalidArgument("spec.arrivals applies to an open loop (rate_per_second) only")
        if spec.duration_ns > MAX_DURATION_NS:
            raise InvalidArgument(f"spec.duration_ns {spec.duration_ns} is above the limit of {MAX_DURATION_NS} "
                                  "(366 days); give 0 to run until stopped")

    def _bind(self, session: Session, model: LoadedModel, bindings, field: str, timing_only: bool) -> list:
        try:
            return self.executor.bind(session, model, bindings, arrays=not timing_only)
        except IncorrectInput as exc:
            raise InvalidArgument(f"{field}: {exc}") from None

    # -- compute mode: through the executor, without RPCs ----------------------------------------

    def _drive(self, load: Load, parts_io: list) -> list[asyncio.Task]:
        if load.closed_loop:
            return [asyncio.create_task(self._closed_slot(load, parts_io))
                    for _ in range(load.spec.in_flight_per_core)]
        return [asyncio.create_task(self._open_arrivals(load, parts_io))]

    async def _closed_slot(self, load: Load, parts_io: list) -> None:
        while load.may_submit(time.monotonic_ns()):
            response = await self._one(load, parts_io, time.monotonic_ns())
            if response.status == pb.FAILED_TO_QUEUE:
                await asyncio.sleep(COMPUTE_RETRY_S)
        self._end_submissions(load)

    async def _open_arrivals(self, load: Load, parts_io: list) -> None:
        running: set[asyncio.Task] = set()
        at = load.started_ns
        try:
            while True:
                await asyncio.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
                if not load.may_submit(at):
                    break
                load.arrivals += 1
                task = asyncio.create_task(self._one(load, parts_io, at))
                running.add(task)
                task.add_done_callback(running.discard)
                at = load.next_arrival_ns(at)
            self._end_submissions(load)
        finally:
            for task in running:
                task.cancel()

    async def _one(self, load: Load, parts_io: list, arrived: int) -> pb.ExecuteResponse:
        load.submitted += 1
        load.in_flight += 1
        try:
            response = await self.executor.run_bound(load.session, load.model, parts_io, arrived)
        finally:
            load.in_flight -= 1
        # The session's statistics were counted by the executor; the load keeps its own.
        load.stats.record(response.status, response.error_kind, response.total_latency_ns,
                          response.device_latency_ns if response.status not in (pb.TIMED_OUT, pb.FAILED_TO_QUEUE,
                                                                                 pb.INCORRECT_INPUT) else None)
        if response.status != pb.COMPLETED:
            load.last_error = response.message
        _finish_compute_if_idle(load)
        self._changed_event().set()
        return response

    def _end_submissions(self, load: Load) -> None:
        if load.state == pb.LOAD_RUNNING:
            load.state = pb.LOAD_DRAINING
        _finish_compute_if_idle(load)

    # -- housekeeping ------------------------------------------------------------------------------

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while any(not load.finished for load in self._loads.values()):
            await asyncio.sleep(TICK_S)
            self.settle()
            event = self._changed_event()
            event.set()
            event.clear()

    def _forget_old(self) -> None:
        """Finished loads stay visible to their session, up to a limit."""
        finished: dict[int, list[int]] = {}
        for load in self._loads.values():
            if load.finished:
                finished.setdefault(load.session.session_id, []).append(load.load_id)
        for ids in finished.values():
            for load_id in ids[:-FINISHED_KEPT_PER_SESSION]:
                del self._loads[load_id]
                self._tasks.pop(load_id, None)


def _finish_compute_if_idle(load: Load) -> None:
    if load.state == pb.LOAD_DRAINING and load.in_flight == 0:
        load.state = pb.LOAD_STOPPED if load.stop_reason else pb.LOAD_FINISHED
        load.ended_ns = time.monotonic_ns()


def _in_flight(load: Load) -> int:
    if load.steps:
        return len(load.pending)
    return len(load.active) if load.work is not None else load.in_flight


def _cores_text(cores: list[int]) -> str:
    return f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0])
