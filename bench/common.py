"""Shared pieces of the benchmarks: servers in their own processes, timing loops, percentiles, tables.

The server under test always runs as a separate process (the real `neurond` command, or the bare
echo server below), so the client that measures and the server that answers never share a GIL.

    python bench/common.py echo-server unix:///tmp/echo.sock   # the bare gRPC reference server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout

from neurontools.addresses import temporary_socket_directory  # noqa: E402  (after the path set-up)

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
ECHO_SERVICE, ECHO_METHOD = "bench.Echo", "Echo"


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter runs (smoke test)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


# -------------------------------------------------------------------------------------------------
# Servers in child processes
# -------------------------------------------------------------------------------------------------

@dataclass
class Server:
    address: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def _child_server(command: Sequence[str], address: str, log_path: Path,
                  env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Start `command`, wait until `address` answers a health check, always stop it afterwards."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   env={**os.environ, **(env or {})})
    try:
        _wait_serving(process, address)
        yield Server(address, process)
    except Exception:
        # The server's log goes with its temporary directory: show it while it still exists.
        log_tail = log_path.read_text(errors="replace")[-4000:].strip()
        if log_tail:
            print(f"--- log of {' '.join(process.args)}:\n{log_tail}\n---", file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_serving(process: subprocess.Popen, address: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S

    def still_starting() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(process.args)} exited with {process.returncode} (its log is above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(process.args)} did not serve {address} within "
                               f"{STARTUP_TIMEOUT_S:.0f} s")

    # Short reconnect backoff: the first attempts fail until the server binds its socket, and the
    # default backoff (1 s, growing) would add seconds to every start.
    options = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20),
               ("grpc.max_reconnect_backoff_ms", 100)]
    with grpc.insecure_channel(address, options) as channel:
        connected = grpc.channel_ready_future(channel)
        try:
            while True:
                try:
                    connected.result(timeout=0.2)
                    break
                except grpc.FutureTimeoutError:
                    still_starting()
        finally:
            connected.cancel()  # its polling thread must not outlive the channel
        check = health_pb2_grpc.HealthStub(channel).Check
        # The socket is bound a moment before the daemon declares itself SERVING.
        while check(health_pb2.HealthCheckRequest(), timeout=5).status != health_pb2.HealthCheckResponse.SERVING:
            still_starting()
            time.sleep(0.05)


@contextlib.contextmanager
def _socket_directory(prefix: str) -> Iterator[str]:
    """A temporary directory whose socket paths fit the kernel's limit whatever $TMPDIR is."""
    tmp = temporary_socket_directory(prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def neurond_process(instance_type: str = "inf2.48xlarge", env: Mapping[str, str] | None = None,
                    topology_file: Path | None = None) -> Iterator[Server]:
    """The real neurond CLI in its own process on a temporary Unix socket; `env` adds variables,
    `topology_file` describes the machine instead of `instance_type`."""
    with _socket_directory("bench-neurond-") as tmp:
        address = f"unix://{tmp}/neurond.sock"
        machine = ["--topology-file", str(topology_file)] if topology_file else ["--instance-type", instance_type]
        command = [sys.executable, "-m", "neurontools.daemon.server.cli", *machine,
                   "--address", address, "--log-level", "warning"]
        with _child_server(command, address, Path(tmp) / "neurond.log", env) as server:
            yield server


@contextlib.contextmanager
def echo_process() -> Iterator[Server]:
    """The bare reference: a grpc.aio server whose one unary method returns its request bytes."""
    with _socket_directory("bench-echo-") as tmp:
        address = f"unix://{tmp}/echo.sock"
        command = [sys.executable, str(Path(__file__).resolve()), "echo-server", address]
        with _child_server(command, address, Path(tmp) / "echo.log") as server:
            yield server


def echo_call(channel: grpc.Channel) -> Callable[..., bytes]:
    """The echo method on `channel`; no serializers, so requests and answers are raw bytes."""
    return channel.unary_unary(f"/{ECHO_SERVICE}/{ECHO_METHOD}")


async def _serve_echo(address: str) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {ECHO_METHOD: grpc.unary_unary_rpc_method_handler(echo)}),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # for start-up only
    if not server.add_insecure_port(address):
        raise OSError(f"cannot listen on {address}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


# -------------------------------------------------------------------------------------------------
# Timing
# -------------------------------------------------------------------------------------------------

def time_interleaved(calls: dict[str, Callable[[], object]], count: int, warmup: int = 50,
                     clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, list[int]]:
    """`count` times in ns of each call, taken in turn so drift in machine load hits all alike.
    Wall time by default; `clock=time.thread_time_ns` gives this thread's CPU time, which a busy
    host's preemption does not inflate (for in-process work only)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[int]] = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            started = clock()
            call()
            samples[name].append(clock() - started)
    return samples


def calls_per_second(workers: Sequence[Callable[[], object]], seconds: float) -> tuple[int, float]:
    """(calls, elapsed seconds) of `workers`, each looping in its own thread for `seconds`."""
    counts = [0] * len(workers)
    start = threading.Barrier(len(workers) + 1)
    deadline = 0.0

    def loop(index: int) -> None:
        call = workers[index]
        start.wait()
        done = 0
        while time.perf_counter() < deadline:
            call()
            done += 1
        counts[index] = done

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    deadline = time.perf_counter() + seconds  # set before the barrier releases the workers
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began


def rates_interleaved(workloads: dict[str, Sequence[Callable[[], object]]], seconds: float,
                      rounds: int) -> dict[str, float]:
    """Calls per second of each workload (its callables run in parallel threads), measured in `rounds`
    slices taken in turn, so drift in machine load hits every workload alike; `seconds` per workload."""
    totals = {name: [0, 0.0] for name in workloads}
    for _ in range(rounds):
        for name, workers in workloads.items():
            calls, elapsed = calls_per_second(workers, seconds / rounds)
            totals[name][0] += calls
            totals[name][1] += elapsed
    return {name: calls / elapsed for name, (calls, elapsed) in totals.items()}


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 90, 99)) -> dict[int, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {p: cuts[p - 1] for p in points}


# -------------------------------------------------------------------------------------------------
# Output
# -------------------------------------------------------------------------------------------------

def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """First column left-aligned, the others right-aligned, widths from the content."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())


def machine_note(load_before: float) -> str:
    """CPU count and load next to the figures: on a shared host other work inflates every row."""
    return (f"machine: {os.cpu_count()} CPUs, 1-min load average {load_before:.2f} at start, "
            f"{os.getloadavg()[0]:.2f} at end")


def executions_accounted(address: str, session_id: int, made: int) -> str | None:
    """None when the daemon counted exactly `made` executions for the session, all completed without an
    error; else what is wrong. A benchmark that timed executions the daemon did not count, or that
    failed, timed something other than what it reports."""
    from neurontools.client import Device  # noqa: PLC0415 (benchmarks without a daemon do not import grpc)

    with Device(address) as device:
        sessions = [s for s in device.snapshot().sessions if s.session_id == session_id]
    if not sessions:
        return f"session {session_id} is not in the snapshot"
    counts = sessions[0].stats.executions
    errors = made - counts.completed
    if counts.completed != made or any(getattr(counts, name) for name in (
            "completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input", "failed_to_queue")):
        return f"the daemon counted {counts} for {made} executions made ({errors:+d})".replace("\n", " ")
    return None


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER BUDGET"


def print_result(text: str) -> None:
    """A one-line figure that bench/run.py copies into its combined summary."""
    print(f"result: {text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Bare gRPC servers the benchmarks compare against.")
    parser.add_argument("server", choices=["echo-server"])
    parser.add_argument("address", help="unix:///path/to/socket")
    asyncio.run(_serve_echo(parser.parse_args().address))
