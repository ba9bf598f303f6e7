"""Executing loaded models: one worker thread per NeuronCore for compute mode, bounded in-flight queues,
pacing; timing-only executions are the load engine's events (load_engine.py), with no thread at all.

Two clocks (DESIGN principle 3): the device latency is the cost model's time; the core is
occupied in wall-clock time for max(modeled time, real numpy time), so a fast kernel is paced
to the real chip's speed and a slow numpy kernel is never hidden. Total latency is wall time
from the request's arrival to its completion, queueing included.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from neurontools import dtypes
from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.collectives.rendezvous import CollectiveFailure, ExecutionCollectives
from neurontools.daemon.runtime.load_engine import Call, LoadEngine, Outcome, Work
from neurontools.daemon.isa.program import RunResult
from neurontools.daemon.runtime.sessions import (LoadedModel, LoadedSubgraph, RuntimeState, Session,
                                              host_memory_errors)
from neurontools.daemon.device.telemetry import ERROR_KIND_OF_STATUS

log = logging.getLogger("neurond.execution")

DEFAULT_MAX_IN_FLIGHT = 16  # per core; beyond it an execution fails to queue


@dataclass(eq=False)
class _Part:
    """One subgraph of an execution, run by its core's worker."""

    job: "_Job"
    subgraph: LoadedSubgraph
    hbm: dict[str, np.ndarray | None]
    outputs: list[str]


@dataclass(eq=False)
class _Job:
    session: Session
    model: LoadedModel
    arrived_ns: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    pending: int
    collectives: ExecutionCollectives | None  # where the parts meet, for a model with collectives
    cancelled: bool = False
    results: list[tuple[int, str, RunResult | None]] = field(default_factory=list)  # parts that ran

    def abandon(self, why: str) -> None:
        """Parts that will not run release the parts waiting for them at a collective."""
        self.fail_collectives(None, why)

    def fail_collectives(self, status: int | None, why: str) -> None:
        if self.collectives is not None:
            self.collectives.abort(status, why)


class IncorrectInput(Exception):
    """Bindings that do not fit the model: counted as incorrect_input, like the runtime does."""


class Executor:
    """Compute-mode executions run on the cores' worker threads; timing-only ones are events of the load
    engine (load_engine.py): no thread hop, and one queue per core shared with in-daemon loads."""

    def __init__(self, state: RuntimeState, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 engine: LoadEngine | None = None) -> None:
        self.state = state
        self.max_in_flight = max_in_flight
        self.engine = engine or LoadEngine(state, max_in_flight)
        self._queues = [queue.SimpleQueue() for _ in range(state.machine.core_count)]
        self._threads = [threading.Thread(target=self._work, args=(core,), name=f"nc{core}", daemon=True)
                         for core in range(state.machine.core_count)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for q in self._queues:
            q.put(None)
        self.engine.close()

    async def execute(self, session: Session, model: LoadedModel, request: pb.ExecuteRequest) -> pb.ExecuteResponse:
        arrived = time.monotonic_ns()
        try:
            parts_io = self.bind(session, model, request.bindings, arrays=not request.timing_only)
        except IncorrectInput as exc:
            return self._finish_early(session, arrived, pb.INCORRECT_INPUT, str(exc))
        if request.timing_only:
            return await self._run_timing_only(session, model, arrived)
        return await self.run_bound(session, model, parts_io, arrived)

    async def _run_timing_only(self, session: Session, model: LoadedModel, arrived: int) -> pb.ExecuteResponse:
        if model.work is None:
            model.work = Work(model)  # what an execution does, prepared once per model
        future = asyncio.get_running_loop().create_future()

        def answer(outcome: Outcome, arrived_ns: int, completed_ns: int) -> None:
            if not future.done():
                future.set_result(_response(outcome, completed_ns - arrived_ns))

        call = Call(session, model, model.work, answer)
        full = self.engine.submit_call(call)
        if full is not None:
            return self._finish_early(session, arrived, pb.FAILED_TO_QUEUE, full)
        try:
            return await future
        except asyncio.CancelledError:
            self.engine.withdraw(call)
            raise

    async def run_bound(self, session: Session, model: LoadedModel, parts_io: list[tuple[dict, list[str]]],
                        arrived: int) -> pb.ExecuteResponse:
        """One compute-mode execution of bindings already checked by bind() (in-daemon load binds once)."""
        telemetry = self.state.telemetry
        with telemetry.lock:
            busy = [sg.core_id for sg in model.subgraphs
                    if telemetry.cores[sg.core_id].in_flight >= self.max_in_flight]
            if not busy:
                for sg in model.subgraphs:
                    telemetry.cores[sg.core_id].in_flight += 1
        if busy:
            return self._finish_early(session, arrived, pb.FAILED_TO_QUEUE,
                                      f"NeuronCore {busy[0]} already has {self.max_in_flight} executions in "
                                      "flight; wait for some to complete before submitting more")
        loop = asyncio.get_running_loop()
        collectives = None
        if model.collectives is not None:
            collectives = ExecutionCollectives(model.collectives, self.state.faults, self.state.telemetry)
        job = _Job(session, model, arrived, loop, loop.create_future(), len(model.subgraphs),
                   collectives)
        model.running += 1
        for sg, (hbm, outputs) in zip(model.subgraphs, parts_io):
            self._queues[sg.core_id].put(_Part(job, sg, hbm, outputs))
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancelled = True  # parts not yet started are skipped
            job.abandon("the execution was abandoned by its caller")
            raise

    # -- binding --------------------------------------------------------------------------------

    def bind(self, session: Session, model: LoadedModel, bindings, *, arrays: bool = True) -> list[tuple[dict, list[str]]]:
        """Per subgraph: the arrays of its parameters and constants, and its output names."""
        by_core: dict[int, dict[str, int]] = {sg.core_id: {} for sg in model.subgraphs}
        single = model.subgraphs[0].core_id if len(model.subgraphs) == 1 else None
        for binding in bindings:
            core = single if single is not None and binding.core_id in (0, single) else binding.core_id
            if core not in by_core:
                raise IncorrectInput(f"model {model.model_id} has no subgraph on NeuronCore {binding.core_id} "
                                     f"(its cores: {', '.join(str(c) for c in by_core)})")
            if binding.name in by_core[core]:
                raise IncorrectInput(f"parameter {binding.name!r} is bound twice")
            by_core[core][binding.name] = binding.tensor_id
        out = []
        for sg in model.subgraphs:
            out.append(self._bind_subgraph(session, model, sg, by_core[sg.core_id], arrays))
        return out

    def _bind_subgraph(self, session: Session, model: LoadedModel, sg: LoadedSubgraph,
                       names: dict[str, int], arrays: bool) -> tuple[dict, list[str]]:
        """Checks the bindings; with `arrays`, the numpy views the run needs (timing-only runs read and
        write no data, so they check only and materialize nothing)."""
        params = sg.program.parameters
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise IncorrectInput(f"model {model.model_id} has no parameter {unknown[0]!r} on NeuronCore "
                                 f"{sg.core_id} (parameters: {', '.join(params)})")
        missing = [name for name in params if name not in names]
        if missing:
            raise IncorrectInput(f"parameter {missing[0]!r} of model {model.model_id} is not bound to a tensor")
        hbm: dict[str, np.ndarray | None] = {}
        outputs = []
        # Outputs first: they materialize their bytes, so an in-place input sees the same buffer.
        for name, spec in sorted(params.items(), key=lambda item: item[1].kind != pb.OUTPUT):
            tensor = self.state.tensor(session, names[name])
            if tensor.shape != spec.shape or tensor.dtype != spec.dtype:
                raise IncorrectInput(
                    f"parameter {name!r} expects {dtypes.NAMES[spec.dtype]}{list(spec.shape)} but tensor "
                    f"{tensor.tensor_id} is {dtypes.NAMES.get(tensor.dtype)}{list(tensor.shape)}")
            if tensor.placement == pb.DEVICE and tensor.device_index != sg.device_index:
                raise IncorrectInput(
                    f"tensor {tensor.tensor_id} is in the HBM of neuron device {tensor.device_index} but "
                    f"subgraph {sg.name} runs on NeuronCore {sg.core_id} (device {sg.device_index}); "
                    "allocate it on that device or on the host")
            writable = spec.kind == pb.OUTPUT
            if arrays:
                with host_memory_errors():
                    hbm[name] = tensor.region.array(spec.np_dtype, spec.shape, for_write=writable)
            if writable:
                outputs.append(name)
        if not arrays:
            return hbm, outputs
        for spec in sg.program.constants:
            hbm[spec.name] = sg.constants[spec.name].array(spec.np_dtype, spec.shape, for_write=False)
        return hbm, outputs

    def _finish_early(self, session: Session, arrived: int, status: int, message: str) -> pb.ExecuteResponse:
        total = time.monotonic_ns() - arrived
        kind = ERROR_KIND_OF_STATUS[status]
        session.stats.record(status, kind, total, None)
        return pb.ExecuteResponse(status=status, total_latency_ns=total, message=message, error_kind=kind)

    # -- workers --------------------------------------------------------------------------------

    def _work(self, core: int) -> None:
        q = self._queues[core]
        while (part := q.get()) is not None:
            try:
                outcome = self._run_part(core, part)
            except Exception as exc:  # a daemon bug must fail one execution, not the worker
                log.exception("execution on NeuronCore %d failed", core)
                outcome = (pb.COMPLETED_WITH_ERR, f"internal error in neurond: {exc}", None)
                if part.job.collectives is not None:
                    part.job.collectives.abort(pb.COMPLETED_WITH_ERR,
                                               f"NeuronCore {core} failed: internal error in neurond: {exc}")
            with self.state.telemetry.lock:
                self.state.telemetry.cores[core].in_flight -= 1
            part.job.loop.call_soon_threadsafe(self._part_done, part.job, outcome)

    def _run_part(self, core: int, part: _Part) -> tuple[int, str, RunResult | None] | None:
        """The outcome of one subgraph, or None when it was skipped (caller gone, session closed)."""
        job = part.job
        if job.cancelled or job.session.closed_reason is not None:
            job.abandon("the execution was abandoned (its caller left or its session closed)")
            return None
        telemetry = self.state.telemetry
        program = part.subgraph.program
        modeled = program.estimate.device_time_ns
        timeout = job.session.exec_timeout_ns
        # Ranks that meet at collectives wait for each other: they time out together, on the slowest.
        needed = job.model.collectives.device_time_ns if job.collectives is not None else modeled
        faults = self.state.faults
        started = telemetry.start_busy(core)
        result: RunResult | None = None
        try:
            hang = faults.core_hang(core)
            if hang is not None:
                _sleep_until(started + timeout)  # the hung core holds everything until the runtime gives up
                job.fail_collectives(pb.TIMED_OUT, f"{hang.description} (injected fault)")
                return (pb.TIMED_OUT, f"{hang.description} (injected fault): no completion within "
                        f"NEURON_RT_EXEC_TIMEOUT ({timeout / 1e9:g} s)", None)
            if faults.take_uncorrected(core):
                device = self.state.machine.device_of_core(core)
                message = f"uncorrectable HBM ECC error on neuron device {device} (injected fault)"
                job.fail_collectives(pb.COMPLETED_WITH_ERR, message)
                return (pb.COMPLETED_WITH_ERR, message, None)
            if needed > timeout:
                # A hung or too-long kernel holds the core until the runtime gives up on it.
                _sleep_until(started + timeout)
                return (pb.TIMED_OUT, f"execution needs {needed / 1e9:.3f} s of device time, more than "
                        f"NEURON_RT_EXEC_TIMEOUT ({timeout / 1e9:g} s)", None)
            rendezvous = None if job.collectives is None else job.collectives.rank(core, started + timeout, timeout)
            try:
                result = program.run(part.hbm, timing_only=False, rendezvous=rendezvous)
            except CollectiveFailure as failure:
                return None if failure.status is None else (failure.status, failure.message, None)
            _sleep_until(started + max(modeled, time.monotonic_ns() - started))
            numerical = faults.core_numerical(core)
            if numerical is not None and part.outputs:
                _poison(part)
                return (pb.COMPLETED_WITH_NUM_ERR, f"output {part.outputs[0]!r} contains NaN: "
                        f"{numerical.description} (injected fault)", result)
            if result.nonfinite_outputs:
                return (pb.COMPLETED_WITH_NUM_ERR, f"output {result.nonfinite_outputs[0]!r} contains NaN or Inf",
                        result)
            return (pb.COMPLETED, "", result)
        finally:
            telemetry.end_busy(core, started, result)

    def _part_done(self, job: _Job, outcome: tuple[int, str, RunResult | None] | None) -> None:
        if outcome is not None:
            job.results.append(outcome)
        job.pending -= 1
        if job.pending:
            return
        job.model.running -= 1
        if not job.results:
            return  # nobody is waiting and nothing ran: not an execution
        job.model.executions += 1
        response = _combine(job)
        kind = ERROR_KIND_OF_STATUS.get(response.status, 0)
        response.error_kind = kind
        device_ns = response.device_latency_ns if response.status != pb.TIMED_OUT else None
        job.session.stats.record(response.status, kind, response.total_latency_ns, device_ns)
        if not job.future.done():
            job.future.set_result(response)


def _poison(part: _Part) -> None:
    """What a numerical fault leaves in the outputs: NaN where a float can hold it."""
    for name in part.outputs:
        array = part.hbm[name]
        if array is not None and array.dtype.kind not in "iub":  # float16/32 and the ml_dtypes floats
            array.reshape(-1)[0] = np.nan


# Which outcome wins when subgraphs disagree: the most severe.
_SEVERITY = {pb.COMPLETED: 0, pb.COMPLETED_WITH_NUM_ERR: 1, pb.TIMED_OUT: 2, pb.COMPLETED_WITH_ERR: 3}


def _add_results(response: pb.ExecuteResponse, results: list) -> None:
    """The execution's device latency (its slowest subgraph), FLOPs and engine busy time, summed over cores."""
    if not results:
        return
    response.device_latency_ns = max(r.device_time_ns for r in results)
    response.flops = sum(r.flops for r in results)
    busy: dict[int, int] = {}
    for r in results:
        for engine, ns in r.engine_busy_ns.items():
            busy[engine] = busy.get(engine, 0) + ns
    response.engines.extend(pb.EngineTime(engine=e, busy_ns=ns) for e, ns in sorted(busy.items()))


def _combine(job: _Job) -> pb.ExecuteResponse:
    status, message, _ = max(job.results, key=lambda r: _SEVERITY[r[0]])
    results = [r for _, _, r in job.results if r is not None]
    response = pb.ExecuteResponse(status=status, message=message,
                                  total_latency_ns=time.monotonic_ns() - job.arrived_ns)
    _add_results(response, results)
    return response


def _response(outcome: Outcome, total_ns: int) -> pb.ExecuteResponse:
    results = [r for r in outcome.results if r is not None]
    response = pb.ExecuteResponse(status=outcome.status, message=outcome.message, total_latency_ns=total_ns,
                                  error_kind=outcome.error_kind)
    _add_results(response, results)
    return response


def _sleep_until(deadline_ns: int) -> None:
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)
