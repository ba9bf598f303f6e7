"""Run workloads against a daemon: each in its own runtime session, each replica in its own thread.

    runner = WorkloadRunner(address)
    runner.add(EncoderWorkload(...), rate=50)
    runner.start("bert-base")           # loads (after checking the memory plan), then serves requests
    ...
    runner.stop("bert-base")            # finishes the request in flight, closes the session
    summary = runner.summary()

Workloads are started and stopped by name at any time, so a scenario timeline can drive them. A
workload's thread loads its models (a failure, such as a model that does not fit, is kept in
`error` and reported in the summary), then each replica issues requests back to back or at `rate`
requests per second (shared by the replicas), until stopped.

Timing-only workloads run as request loads inside the daemon (StartLoad with the request's steps):
no RPC per execution, so what the monitoring tools show is the modeled workload at the hardware's
rates, not the speed of the client and the RPCs. `per_call=True` (and compute mode, where the host
works between steps) keeps one Execute call per execution from a thread per replica.

Like a serving application, a workload counts a failed request (an execution that timed out, hit a
hardware or numerical error...) and goes on serving; `max_errors` stops it after that many failed
requests (default: never). Only a lost session (the daemon gone, the device reset) ends it. An
execution waits at most NEURON_RT_EXEC_TIMEOUT (the runtime's setting, read by the client session;
the daemon's default is 30 s), and `stop(timeout)` does not wait longer than asked for a request
stuck on a hung core, so a run keeps to its duration.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from neurontools.client import AccessDenied, DaemonUnavailable, Device, ExecutionError, NeuronError, Session
from neurontools.workloads.memory_plan import DoesNotFit, category_name
from neurontools.workloads.workload import RequestRecord, Workload


LOAD_POLL_SECONDS = 0.25  # how often a workload run in the daemon reads its loads' progress


@dataclass
class WorkloadRun:
    """A workload's state in the runner."""

    workload: Workload
    tag: str
    rate: float | None = None               # requests per second over all replicas; None: back to back
    limit: int | None = None                # requests per replica; None: until stopped
    max_errors: int | None = None           # failed requests after which the workload stops; None: never
    records: list[RequestRecord] = field(default_factory=list)  # per call: each request served
    loads: list = field(default_factory=list)  # in the daemon: each replica's latest LoadProgress
    items_per_request: int = 0                 # ... and the shape of its requests
    steps_per_request: int = 0
    host_seconds_per_request: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)        # failed requests by execution status
    last_failure: str | None = None
    executions: dict[str, int] = field(default_factory=dict)    # by status, the daemon's count at close
    error: str | None = None                # why the workload stopped by itself (load failure, max_errors...)
    loaded: threading.Event = field(default_factory=threading.Event)
    stop_event: threading.Event = field(default_factory=threading.Event)
    serving: threading.Event = field(default_factory=threading.Event)  # set: serve once loaded
    memory: dict[str, int] = field(default_factory=dict)  # HBM by category once loaded, from the daemon
    verification: tuple[float, float] | None = None       # compute mode: (max |error|, max |numpy|)
    load_seconds: float = 0.0
    started: float | None = None
    stopped: float | None = None
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class WorkloadRunner:
    def __init__(self, address: str, *, on_error: Callable[[str, str], None] | None = None,
                 before_unload: Callable[[int], None] | None = None, per_call: bool = False) -> None:
        """`before_unload(session_id)` runs once a workload has served, while its models are still loaded
        (neuron-workload --profile). `per_call`: one Execute call per execution, even timing-only."""
        self.address = address
        self.per_call = per_call
        self.runs: dict[str, WorkloadRun] = {}
        self._on_error = on_error
        self._before_unload = before_unload
        self._loading = threading.Lock()

    def add(self, workload: Workload, *, tag: str | None = None, rate: float | None = None,
            limit: int | None = None, name: str | None = None, max_errors: int | None = None) -> str:
        """Register a workload under `name` (default: the workload's name, made unique). `limit` stops
        each replica after that many requests; `max_errors` stops the workload after that many failed
        requests (None: it serves on, counting them)."""
        name = name or workload.name
        base, n = name, 2
        while name in self.runs:
            name, n = f"{base}#{n}", n + 1
        if max_errors is not None and max_errors < 1:
            raise ValueError(f"max_errors must be at least 1 (got {max_errors}); leave it out to never stop on errors")
        self.runs[name] = WorkloadRun(workload, tag or name, rate, limit, max_errors)
        return name

    def start(self, name: str, *, serve: bool = True) -> None:
        """Load the workload and serve requests; with serve=False it waits, loaded, for serve()."""
        run = self.runs[name]
        if run.running:
            return
        run.stop_event.clear()
        run.loaded.clear()
        run.error = None
        run.loads = []
        run.failed.clear()
        run.last_failure = None
        if serve:
            run.serving.set()
        run.thread = threading.Thread(target=self._serve, args=(name, run), name=f"workload-{name}", daemon=True)
        run.thread.start()

    def serve(self, name: str) -> None:
        self.runs[name].serving.set()

    def stop(self, name: str, timeout: float | None = None) -> None:
        """Stop serving; waits for the request in flight at most `timeout` seconds (None: until it ends).
        A request stuck on a hung core ends at NEURON_RT_EXEC_TIMEOUT, then the session closes."""
        run = self.runs[name]
        run.stop_event.set()
        run.serving.set()
        if run.thread is not None:
            run.thread.join(timeout)

    def wait(self, name: str, timeout: float | None = None) -> bool:
        """Wait for a workload to end by itself (its request limit reached, or a failure); True if it did."""
        run = self.runs[name]
        if run.thread is not None:
            run.thread.join(timeout)
        return not run.running

    def start_all(self, *, serve: bool = True) -> None:
        for name in self.runs:
            self.start(name, serve=serve)

    def serve_all(self) -> None:
        for name in self.runs:
            self.serve(name)

    def stop_all(self, timeout: float | None = None) -> None:
        """Stop every workload, waiting at most `timeout` seconds in all."""
        for run in self.runs.values():
            run.stop_event.set()
            run.serving.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for name in self.runs:
            self.stop(name, None if deadline is None else max(0.0, deadline - time.monotonic()))

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """True once every started workload has loaded or failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in self.runs.values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if run.thread is not None and not run.loaded.wait(remaining):
                return False
        return True

    # -- one workload --------------------------------------------------------------------------------

    def _serve(self, name: str, run: WorkloadRun) -> None:
        workload = run.workload
        try:
            # One workload loads at a time, so each checks its plan against what the others hold.
            with self._loading:
                loading = time.monotonic()
                with Device(self.address) as device:
                    model = workload.describe()["model"]
                    workload.memory_plan().check(device.snapshot(), name if name == model else f"{name} ({model})")
                # exec_timeout: NEURON_RT_EXEC_TIMEOUT if set, else the daemon's default (30 s).
                session = Session(self.address, visible_cores=_core_list(workload.cores), tag=run.tag).open()
                try:
                    replicas = [workload.replica(group) for group in workload.groups]
                    for replica in replicas:
                        replica.load(session)
                    if workload.compute:
                        run.verification = replicas[0].verify()
                    with Device(self.address) as device:
                        run.memory = _session_memory(device.snapshot(), session.session_id)
                except BaseException:
                    session.close()
                    raise
                run.load_seconds = time.monotonic() - loading
            run.loaded.set()
            run.serving.wait()
            run.started = time.monotonic()
            try:
                if not workload.compute and not self.per_call:
                    self._serve_in_daemon(name, run, session, replicas)
                    return
                threads = [threading.Thread(target=self._loop, args=(run, replica, len(replicas), i),
                                            name=f"{name}-r{i}", daemon=True) for i, replica in enumerate(replicas)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            finally:
                run.stopped = time.monotonic()
                if self._before_unload is not None:
                    self._before_unload(session.session_id)
                for replica in replicas:
                    replica.close()
                run.executions = self._executions(session.session_id)
                session.close()
        except (DoesNotFit, NeuronError, ValueError) as exc:
            self._fail(name, run, str(exc))
        finally:
            run.loaded.set()

    def _serve_in_daemon(self, name: str, run: WorkloadRun, session: Session, replicas: list) -> None:
        """Each replica's requests as a request load: back to back (one in flight) or at its share of
        the rate; polled for progress, max_errors and the end, stopped with the workload."""
        rate = run.rate / len(replicas) if run.rate else 0.0
        steps = [replica.request_steps() for replica in replicas]
        run.items_per_request, run.steps_per_request = replicas[0].items_per_request, len(steps[0])
        run.host_seconds_per_request = sum(step.host_seconds for step in steps[0])
        loads = [session.start_requests(replica_steps, in_flight=0 if rate else 1, rate=rate, count=run.limit or 0,
                                        max_failed=run.max_errors or 0) for replica_steps in steps]
        try:
            while True:
                progress = [load.progress() for load in loads]
                failures = self._count_load_failures(run, progress)
                if run.max_errors is not None and failures >= run.max_errors:
                    self._fail(name, run, f"stopped after {failures} failed requests (max_errors); "
                                          f"last: {run.last_failure}")
                    break
                if all(load.finished for load in loads) or run.stop_event.wait(LOAD_POLL_SECONDS):
                    break
        except (AccessDenied, DaemonUnavailable) as exc:  # the session is gone: nothing more to serve
            if not run.stop_event.is_set():
                self._fail(name, run, f"session lost: {exc}")
            return
        for load in loads:
            if not load.finished:
                load.stop()
        self._count_load_failures(run, [load.last for load in loads])

    @staticmethod
    def _count_load_failures(run: WorkloadRun, progress: list) -> int:
        """Keeps the loads' progress and their failed requests by status; returns how many failed."""
        failed: dict[str, int] = {}
        for load in progress:
            for status, count in load.requests.requests.ListFields():
                if status.name != "completed":
                    failed[status.name] = failed.get(status.name, 0) + count
        with run.lock:
            run.loads = progress
            run.failed = failed
            run.last_failure = next((p.last_error for p in progress if p.last_error), run.last_failure)
        return sum(failed.values())

    def _loop(self, run: WorkloadRun, replica, replicas: int, index: int) -> None:
        interval = replicas / run.rate if run.rate else 0.0
        due = time.monotonic() + interval * index / replicas  # spread the replicas' arrivals
        served = 0
        while not run.stop_event.is_set() and (run.limit is None or served < run.limit):
            if interval:
                if run.stop_event.wait(max(0.0, due - time.monotonic())):
                    break
                due = max(due + interval, time.monotonic() - interval)  # no burst after a slow request
            try:
                record = replica.request()
            except (AccessDenied, DaemonUnavailable) as exc:  # the session is gone: nothing more to serve
                if not run.stop_event.is_set():
                    self._fail(run.workload.name, run, f"session lost: {exc}")
                    run.stop_event.set()
                break
            except NeuronError as exc:
                served += 1
                if self._count_failure(run, exc):
                    break
                continue
            with run.lock:
                run.records.append(record)
            served += 1

    def _count_failure(self, run: WorkloadRun, exc: NeuronError) -> bool:
        """Count a failed request; True when the workload's max_errors is reached."""
        status = exc.result.status if isinstance(exc, ExecutionError) else type(exc).__name__
        with run.lock:
            run.failed[status] = run.failed.get(status, 0) + 1
            run.last_failure = str(exc)
            failures = sum(run.failed.values())
        if run.max_errors is None or failures < run.max_errors or run.stop_event.is_set():
            return False
        self._fail(run.workload.name, run, f"stopped after {failures} failed requests (max_errors); last: {exc}")
        run.stop_event.set()
        return True

    def _executions(self, session_id: int) -> dict[str, int]:
        """The daemon's count of the session's executions by status, read just before it closes."""
        try:
            with Device(self.address) as device:
                snapshot = device.snapshot()
        except NeuronError:
            return {}
        for session in snapshot.sessions:
            if session.session_id == session_id:
                counts = session.stats.executions
                return {f.name: getattr(counts, f.name) for f in counts.DESCRIPTOR.fields}
        return {}

    def _fail(self, name: str, run: WorkloadRun, message: str) -> None:
        run.error = message
        if self._on_error is not None:
            self._on_error(name, message)


def exit_now_if_requests_are_stuck(status: int) -> None:
    """End the process at once if a workload thread still waits on a request (a hung core).

    Python joins the executors' threads at exit, each waiting up to NEURON_RT_EXEC_TIMEOUT per queued
    execution; a command that is done should leave as a stopped serving process does: the connection
    drops and the daemon ends the session."""
    if any(t.name.startswith("workload-") and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _core_list(cores: list[int]) -> str:
    return ",".join(str(c) for c in cores)


def _session_memory(snapshot, session_id: int) -> dict[str, int]:
    """HBM the session holds, by category, as the daemon accounts it."""
    total: dict[str, int] = {}
    for session in snapshot.sessions:
        if session.session_id == session_id:
            for core in session.core_memory:
                for usage in core.memory:
                    name = category_name(usage.category)
                    total[name] = total.get(name, 0) + usage.used_bytes
    return total
