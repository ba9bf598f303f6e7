"""Shared pieces of the neuron-top tests (no tests here): fixed sources, screen text, a workload.

The recorded stream `tests/snapshots/neuron-top/inf2-48xlarge-20-apps.ndjson` is what neuron-monitor
writes for an inf2.48xlarge with 20 applications on its 24 cores; regenerate it with

    .venv/bin/python tests/test_top_fixtures.py
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from neurontools.monitor.report_json import loads_report
from neurontools.top.applications import application
from neurontools.top.device_extras import CoreEngines, DeviceExtras, LinkLoad, SessionRef
from neurontools.top.sources.frame import Frame, SourceEnded

TESTS = Path(__file__).resolve().parent
CAPTURES = TESTS / "data" / "captures"
SNAPSHOTS = TESTS / "snapshots" / "neuron-top"
RECORDING = SNAPSHOTS / "inf2-48xlarge-20-apps.ndjson"


def recorded_reports(path: Path = RECORDING) -> list:
    return [loads_report(line) for line in path.read_text().splitlines() if line.strip()]


def ring_extras(report, link_bytes_per_second: Sequence[float] = (), loads: float = 0.5) -> DeviceExtras:
    """Snapshot add-on figures for a recorded inf2.48xlarge report, made up but fixed: engines busy in
    proportion to each core's utilization, link traffic as given, one session per application."""
    cores = {}
    for runtime in report.neuron_runtime_data:
        counters = runtime.report.neuroncore_counters
        for key, core in (counters.neuroncores_in_use.items() if counters else ()):
            share = core.neuroncore_utilization / 100
            if share or int(key) not in cores:
                cores[int(key)] = CoreEngines(int(key), (share * 0.6, share * 0.2, share * 0.3, 0.0, share * 0.1),
                                              share, 1 if share else 0)
    bandwidth = 96 * 2**30
    links = tuple(LinkLoad(i, i, (i + 1) % 12, rate, rate / 2, bandwidth, True)
                  for i, rate in zip(range(12), itertools.chain(link_bytes_per_second, itertools.repeat(0.0))))
    sessions = tuple(SessionRef(100 + i, runtime.pid, runtime.neuron_runtime_tag, f"python serve.py --model {i}",
                                application(runtime).cores)
                     for i, runtime in enumerate(report.neuron_runtime_data))
    return DeviceExtras(shape="ring", device_count=12, cores=cores, links=links, sessions=sessions)


class ListSource:
    """Serves the given frames one after the other as fast as asked, then waits (no 'end' status)."""

    description = "test frames"

    def __init__(self, frames: Sequence[Frame], can_end_sessions: bool = False) -> None:
        self.frames = list(frames)
        self.can_end_sessions = can_end_sessions
        self.reads = 0
        self.ended: list[tuple[int, str]] = []

    def read(self) -> Frame:
        if self.reads >= len(self.frames):
            raise SourceEnded("no more test frames")
        self.reads += 1
        return self.frames[self.reads - 1]

    def delay(self) -> float | None:
        return 0.0 if self.reads < len(self.frames) else None

    def end_session(self, session_id: int, reason: str) -> None:
        self.ended.append((session_id, reason))

    def close(self) -> None:
        pass


def fixed_frames(count: int = 4, with_extras: bool = True) -> list[Frame]:
    """The first `count` recorded reports as frames, with made-up add-on figures."""
    reports = recorded_reports()[:count]
    return [Frame(report, ring_extras(report, [i * 8e9 for i in range(12)]) if with_extras else None)
            for report in reports]


def screen_text(app) -> str:
    """What the terminal shows, as plain text (one line per row, trailing spaces removed)."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


def run(coroutine) -> None:
    """Run an async test body (the suite has no asyncio plugin)."""
    asyncio.run(coroutine)


# --- a workload: applications executing on the cores of a live daemon ---------------------------


def _application(address: str, cores: str, tag: str, repeat: int, pause: float, stop: threading.Event,
                 ready: threading.Barrier, misbehave: bool) -> None:
    from neurontools.client import Session
    from neurontools.kernels.examples import mlp_program

    with Session(address, visible_cores=cores, tag=tag, command=f"python serve.py --tag {tag}") as session:
        work = []
        for core in session.core_ids:
            model = session.load_model(f"{tag}-nc{core}.neff", {core: mlp_program(repeat=repeat)})
            tensors = dict(xT=session.allocate((128, 64), "float32", core_id=core),
                           out=session.allocate((64, 256), "float32", core_id=core),
                           rowmax=session.allocate((64, 1), "float32", core_id=core))
            work.append((model, tensors))
        ready.wait()
        for turn in itertools.count():
            if stop.is_set():
                return
            for model, tensors in work:
                if misbehave and turn % 7 == 0:  # an unbound output: INCORRECT_INPUT, counted as an error
                    model.execute(xT=tensors["xT"], out=tensors["out"], timing_only=True, check=False)
                else:
                    model.execute(**tensors, timing_only=True)
            if pause:
                time.sleep(pause)


@contextlib.contextmanager
def applications(address: str, layout: Sequence[tuple[str, str, int, float]],
                 misbehaving: Sequence[str] = ()) -> Iterator[None]:
    """Run one application per (cores, tag, kernel repeat, pause between rounds) until the block ends."""
    stop = threading.Event()
    ready = threading.Barrier(len(layout) + 1)
    threads = [threading.Thread(target=_application, daemon=True,
                                args=(address, cores, tag, repeat, pause, stop, ready, tag in misbehaving))
               for cores, tag, repeat, pause in layout]
    for thread in threads:
        thread.start()
    ready.wait(timeout=60)
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def twenty_applications() -> list[tuple[str, str, int, float]]:
    """16 one-core and 4 two-core applications: every core of an inf2.48xlarge busy, unevenly."""
    layout = [(str(core), f"bert-{core}", 2000 + 1000 * (core % 5), 0.004 * (core % 3)) for core in range(16)]
    layout += [(f"{first}-{first + 1}", f"llama-tp2-{i}", 6000, 0.0) for i, first in enumerate(range(16, 24, 2))]
    return layout


def record(path: Path = RECORDING, reports: int = 4, interval: float = 1.0) -> None:
    from neurontools.daemon.server.embedded import running_daemon
    from neurontools.monitor.report_json import dumps_report
    from neurontools.top.sources.live import LiveSource

    with running_daemon("inf2.48xlarge", instance_id="i-0a1b2c3d4e5f67890") as daemon, \
            applications(daemon.address, twenty_applications(), misbehaving=("bert-3",)):
        source = LiveSource(daemon.address, interval)
        source.read()  # the first-contact report covers only a few milliseconds
        lines = [dumps_report(source.read().report) for _ in range(reports)]
        source.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} reports to {path}", file=sys.stderr)


if __name__ == "__main__":
    record()
