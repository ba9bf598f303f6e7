"""One simulated host of a fleet: its neurond, its `neuron-monitor | neuron-monitor-prometheus`, its load.

The daemon runs with the host's identity (instance id, hostname, AZ); the host's cores are kept
busy by an in-daemon closed loop of a small timing-only kernel per core (docs/api.md "In-daemon
load"), so a busy host costs its daemon little CPU. The session holding the loads lives in this
process: the loads end when the fleet stops or the daemon dies.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, NeuronError, Session
from neurontools.fleet.spec import HostSpec
from neurontools.kernels.builder import Kernel
from neurontools.lab.monitor_pipeline import start_monitor_pipeline, stop_process
from neurontools.lab.prometheus_server import free_port
from neurontools.workloads.daemon_process import DaemonProcess

IN_FLIGHT_PER_CORE = 1
WORKLOAD_START_TIMEOUT_S = 300.0  # building and loading a large preset's programs
STALE_AFTER_SECONDS = 15.0  # neuron-monitor-prometheus's default


def busy_kernel() -> pb.Program:
    """A small kernel (one matmul into PSUM and back), run timing-only: tens of microseconds modeled."""
    k = Kernel()
    x, y = k.input("x", (128, 128), "bfloat16"), k.output("y", (128, 128), "float32")
    a, w = k.sbuf((128, 128), "bfloat16"), k.sbuf((128, 128), "bfloat16")
    p, o = k.psum((128, 128)), k.sbuf((128, 128), "float32")
    k.load(a, x)
    k.memset(w, 0.0)
    k.matmul(p, w, a)
    k.tensor_copy(o, p)
    k.store(y, o)
    return k.program()


class FleetDaemon(DaemonProcess):
    """DaemonProcess with the host's identity flags."""

    def __init__(self, spec: HostSpec, log_path: Path) -> None:
        super().__init__(spec.instance_type, log_path=log_path)
        self.spec = spec

    def start(self) -> "FleetDaemon":
        log = open(self.log_path, "ab")
        with log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "neurontools.daemon.server.cli", *self.spec.daemon_flags(),
                 "--address", self.address, "--log-level", "warning"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self._wait_ready()
        return self


class Host:
    def __init__(self, spec: HostSpec, directory: Path, *, monitor_period: float = 5.0, busy: bool = True,
                 stale_after: float = STALE_AFTER_SECONDS, workloads: list[str] | None = None) -> None:
        """`workloads`: neuron-workload specs the host serves instead of the busy kernel (--workload)."""
        self.stale_after = stale_after
        self.workloads = workloads or []
        self.workload: subprocess.Popen | None = None
        self.spec = spec
        self.directory = directory
        self.monitor_period = monitor_period
        self.busy = busy
        self.daemon = FleetDaemon(spec, directory / "neurond.log")
        self.port: int | None = None
        self.monitor: subprocess.Popen | None = None
        self.exporter: subprocess.Popen | None = None
        self.session: Session | None = None
        self.loads: list = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Host":
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.daemon.process is not None:  # started before (a host brought back): a fresh socket directory
            self.daemon = FleetDaemon(self.spec, self.directory / "neurond.log")
        self.daemon.start()
        self.start_exporter()
        if self.busy or self.workloads:
            self.start_load()
        return self

    def start_exporter(self) -> None:
        self.port = self.port or free_port()
        self.monitor, self.exporter = start_monitor_pipeline(self.directory, self.daemon.address, self.port,
                                                     self.monitor_period, self.stale_after)

    def start_load(self) -> None:
        """The host's workloads, else a closed loop on every core of the host."""
        if self.workloads:
            self._start_workloads()
            return
        if self.session is not None:
            return
        cores = self.session_cores()
        self.session = Session(self.daemon.address, visible_cores=f"0-{cores - 1}", tag="neuron-fleet").open()
        program = busy_kernel()
        for core in range(cores):
            model = self.session.load_model(f"fleet-busy-nc{core}", {core: program})
            tensors = {"x": self.session.allocate((128, 128), "bfloat16", core_id=core),
                       "y": self.session.allocate((128, 128), core_id=core)}
            self.loads.append(model.start_load(tensors, in_flight_per_core=IN_FLIGHT_PER_CORE))

    def _start_workloads(self) -> None:
        """neuron-workload serving the host's specs until stopped, as an application on the host would."""
        if self.workload is not None and self.workload.poll() is None:
            return
        with open(self.directory / "neuron-workload.log", "ab") as log, \
                open(self.directory / "neuron-workload.json", "wb") as summary:
            self.workload = subprocess.Popen(
                [sys.executable, "-m", "neurontools.workloads.cli", "--address", self.daemon.address,
                 "--duration", "0", "--progress-interval", "3600", *self.workloads],
                stdin=subprocess.DEVNULL, stdout=summary, stderr=log, start_new_session=True)
        self._wait_serving()

    def _wait_serving(self, timeout: float = WORKLOAD_START_TIMEOUT_S) -> None:
        """Until the workloads have completed an execution: a host is up once it serves (a scenario's
        clock starts after every host is), or RuntimeError with the workload's own words."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.workload.poll() is not None:
                tail = (self.directory / "neuron-workload.log").read_text().strip().splitlines()[-3:]
                raise RuntimeError(f"{self.spec.name}: neuron-workload exited with status "
                                   f"{self.workload.returncode}: {' / '.join(tail)}")
            with Device(self.daemon.address) as device:  # its own sessions: a replaced workload's may linger
                if any(s.stats.executions.completed for s in device.snapshot().sessions if s.pid == self.workload.pid):
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{self.spec.name}: its workloads did not serve within {timeout:g} s "
                           f"(see {self.directory / 'neuron-workload.log'})")

    def session_cores(self) -> int:
        from neurontools.daemon.device import topology as topo
        return topo.lookup(self.spec.instance_type).core_count

    # -- what the status line shows ---------------------------------------------------------------

    def status(self) -> dict:
        """up: the daemon and both exporter processes are alive; busy cores and errors from its loads."""
        processes = {"neurond": self.daemon.process, "neuron-monitor": self.monitor,
                     "exporter": self.exporter}
        if self.workloads:
            processes["neuron-workload"] = self.workload
        dead = [name for name, p in processes.items() if p is None or p.poll() is not None]
        busy = errors = 0
        if not dead and self.workloads:
            busy, errors = self._workload_status()
        elif not dead and self.session is not None:
            try:
                for load in self.loads:
                    progress = load.progress()
                    busy += progress.state == pb.LOAD_RUNNING
                    counts = progress.stats.executions
                    errors += counts.completed_with_err + counts.completed_with_num_err + counts.timed_out \
                        + counts.failed_to_queue
            except NeuronError:
                dead.append("neurond (not answering)")
        return {"host": self.spec.name, "up": not dead, "dead": dead, "busy": busy,
                "cores": self.session_cores(), "errors": errors}

    def _workload_status(self) -> tuple[int, int]:
        """(cores the workloads' sessions hold, their executions in an error status)."""
        try:
            with Device(self.daemon.address) as device:
                snapshot = device.snapshot()
        except NeuronError:
            return 0, 0
        busy = sum(1 for core in snapshot.cores if core.owner_session_id)
        errors = sum(s.stats.executions.completed_with_err + s.stats.executions.completed_with_num_err
                     + s.stats.executions.timed_out + s.stats.executions.failed_to_queue for s in snapshot.sessions)
        return busy, errors

    # -- rolling restarts and stops ---------------------------------------------------------------

    def pids(self) -> list[int]:
        return [p.pid for p in (self.daemon.process, self.monitor, self.exporter, self.workload) if p is not None]

    def stop_load(self) -> None:
        if self.workload is not None:
            stop_process(self.workload)
            self.workload = None
        if self.session is not None:
            try:
                self.session.close()
            except NeuronError:
                pass
            self.session, self.loads = None, []

    def set_workloads(self, specs: list[str]) -> None:
        """A deployment: the host's load stops and these neuron-workload specs serve from then on."""
        self.stop_load()
        self.workloads = list(specs)
        self.start_load()

    def stop(self) -> None:
        self.stop_load()
        for process in (self.monitor, self.exporter):
            if process is not None:
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
                stop_process(process)
        self.daemon.stop()

    def restart_daemon(self) -> None:
        """A daemon restart as on a real host: the daemon goes, its exporter keeps serving (stale
        reports), the daemon comes back, the load starts again."""
        self.stop_load()
        self.daemon.stop()
        self.daemon = FleetDaemon(self.spec, self.directory / "neurond.log")
        self.daemon.start()
        # neuron-monitor follows one address; the new daemon has a new socket directory.
        for process in (self.monitor, self.exporter):
            if process is not None:
                stop_process(process)
        self.start_exporter()
        if self.busy or self.workloads:
            self.start_load()
