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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from neurontools.client import Device, NeuronError, Session
from neurontools.workloads.memory_plan import DoesNotFit, category_name
from neurontools.workloads.workload import RequestRecord, Workload


@dataclass
class WorkloadRun:
    """A workload's state in the runner."""

    workload: Workload
    tag: str
    rate: float | None = None               # requests per second over all replicas; None: back to back
    limit: int | None = None                # requests per replica; None: until stopped
    records: list[RequestRecord] = field(default_factory=list)
    error: str | None = None
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
    def __init__(self, address: str, *, on_error: Callable[[str, str], None] | None = None) -> None:
        self.address = address
        self.runs: dict[str, WorkloadRun] = {}
        self._on_error = on_error
        self._loading = threading.Lock()

    def add(self, workload: Workload, *, tag: str | None = None, rate: float | None = None,
            limit: int | None = None, name: str | None = None) -> str:
        """Register a workload under `name` (default: the workload's name, made unique). `limit` stops
        each replica after that many requests."""
        name = name or workload.name
        base, n = name, 2
        while name in self.runs:
            name, n = f"{base}#{n}", n + 1
        self.runs[name] = WorkloadRun(workload, tag or name, rate, limit)
        return name

    def start(self, name: str, *, serve: bool = True) -> None:
        """Load the workload and serve requests; with serve=False it waits, loaded, for serve()."""
        run = self.runs[name]
        if run.running:
            return
        run.stop_event.clear()
        run.loaded.clear()
        run.error = None
        if serve:
            run.serving.set()
        run.thread = threading.Thread(target=self._serve, args=(name, run), name=f"workload-{name}", daemon=True)
        run.thread.start()

    def serve(self, name: str) -> None:
        self.runs[name].serving.set()

    def stop(self, name: str, timeout: float | None = None) -> None:
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
        for run in self.runs.values():
            run.stop_event.set()
            run.serving.set()
        for name in self.runs:
            self.stop(name, timeout)

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
                session = Session(self.address, visible_cores=_core_list(workload.cores), tag=run.tag,
                                  exec_timeout=120).open()
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
                threads = [threading.Thread(target=self._loop, args=(run, replica, len(replicas), i),
                                            name=f"{name}-r{i}", daemon=True) for i, replica in enumerate(replicas)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            finally:
                for replica in replicas:
                    replica.close()
                session.close()
            run.stopped = time.monotonic()
        except (DoesNotFit, NeuronError, ValueError) as exc:
            self._fail(name, run, str(exc))
        finally:
            run.loaded.set()

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
            except NeuronError as exc:
                if not run.stop_event.is_set():
                    self._fail(run.workload.name, run, f"request failed: {exc}")
                    run.stop_event.set()
                break
            with run.lock:
                run.records.append(record)
            served += 1

    def _fail(self, name: str, run: WorkloadRun, message: str) -> None:
        run.error = message
        if self._on_error is not None:
            self._on_error(name, message)


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
