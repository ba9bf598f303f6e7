"""Playing a scenario against a daemon: workloads start and stop, faults are injected, on time.

The scenario's clock stops while a workload loads (compiling a large model takes seconds of real
time): a fault at t=30 comes 30 s after the workloads started at t=0 began serving, whatever the
host's speed, which is what a time-compressed run needs to stay meaningful.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, NotFoundError
from neurontools.connection_options import DaemonEndpoint
from neurontools.scenarios.memory_hog import MemoryHog
from neurontools.scenarios.scenario_file import FaultEntry, Scenario
from neurontools.workloads import catalog
from neurontools.workloads.runner import WorkloadRunner
from neurontools.workloads.summary import workload_summary


@dataclass(frozen=True)
class Event:
    at: float
    order: int  # at the same time: stops, then starts, then faults
    action: str  # "start", "stop", "fault"
    target: str | FaultEntry | MemoryHog


def events(scenario: Scenario, names: list[str], hogs: list[MemoryHog] | None = None) -> list[Event]:
    out = []
    for hog, entry in zip(hogs or [], scenario.memory):
        out.append(Event(entry.start, 1, "memory", hog))
        if entry.stop is not None:
            out.append(Event(entry.stop, 0, "free", hog))
    for name, entry in zip(names, scenario.workloads):
        out.append(Event(entry.start, 1, "start", name))
        if entry.stop is not None:
            out.append(Event(entry.stop, 0, "stop", name))
    out.extend(Event(fault.at, 2, "fault", fault) for fault in scenario.faults)
    out.extend(Event(step.at, 2, "lab", step.action) for step in scenario.lab)
    return sorted(out, key=lambda e: (e.at, e.order))


STOP_WAIT_SECONDS = 2.0  # a stopping workload's request stuck on a hung core is not waited for longer


def play(scenario: Scenario, address: str | DaemonEndpoint, stop: threading.Event,
         log: Callable[[str], None] = lambda _: None, on_clock: Callable[[float], None] = lambda _: None,
         lab: Callable[[str], None] | None = None, per_call: bool = False) -> dict:
    """Run the scenario to its end (or until `stop` is set); returns what happened. `on_clock(t0)` is
    told the time.monotonic() of the scenario's t=0 when it starts, and again after each pause. `lab`
    carries out the scenario's [[lab]] steps (neuron-lab); without it a scenario that has some is refused.
    `per_call`: the workloads call Execute per execution instead of running request loads in the daemon."""
    if scenario.lab and lab is None:
        raise RuntimeError(f"scenario {scenario.name!r} has [[lab]] steps (pausing the monitor or the exporter): "
                           "play it with neuron-lab, which runs them")
    with Device(address) as device:
        # Memory holders take their cores first, so the workloads are placed around them.
        hogs = [MemoryHog(address, e.core, e.tag, e.gib, e.leak_gib_per_hour, log) for e in scenario.memory]
        placer = catalog.Placer.for_this_process(device.snapshot())
        runner = WorkloadRunner(address, on_error=lambda name, message: log(f"{name}: {message}"), per_call=per_call)
        names = []
        for entry in scenario.workloads:
            spec = catalog.parse_spec(entry.spec, catalog.Settings())
            workload = catalog.build(spec, placer)
            names.append(runner.add(workload, tag=spec.settings.tag, rate=spec.settings.rate,
                                    max_errors=entry.max_errors))
        timeline = events(scenario, names, hogs)
        injected: list[dict] = []
        lasting: list[int] = []
        started = time.monotonic()
        on_clock(started)
        try:
            for event in timeline:
                if stop.wait(max(0.0, started + event.at - time.monotonic())):
                    break
                if event.action == "start":
                    loading = time.monotonic()
                    runner.start(event.target)
                    while not runner.runs[event.target].loaded.wait(0.1) and not stop.is_set():
                        pass
                    paused = time.monotonic() - loading
                    started += paused
                    on_clock(started)
                    log(f"t={event.at:g}s start {event.target} (loaded in {paused:.1f} s; the clock waited)")
                elif event.action == "lab":
                    assert lab is not None
                    lab(event.target)
                    log(f"t={event.at:g}s {event.target}")
                elif event.action == "memory":
                    event.target.start()
                    log(f"t={event.at:g}s {event.target.tag} holds memory on NeuronCore {event.target.core}")
                elif event.action == "free":
                    event.target.stop()
                    log(f"t={event.at:g}s {event.target.tag} frees its memory")
                elif event.action == "stop":
                    runner.stop(event.target, timeout=STOP_WAIT_SECONDS)
                    log(f"t={event.at:g}s stop {event.target}")
                else:
                    fault = _inject(device, event.target)
                    if fault.kind in (pb.CORE_HANG, pb.NUMERICAL_ERROR, pb.LINK_DOWN) and not fault.duration_ns:
                        lasting.append(fault.fault_id)
                    injected.append({"at": event.at, "fault_id": fault.fault_id,
                                     "kind": event.target.kind, "description": fault.description})
                    log(f"t={event.at:g}s fault {fault.fault_id}: {fault.description}")
            stop.wait(max(0.0, started + scenario.duration - time.monotonic()))
        finally:
            runner.stop_all(timeout=STOP_WAIT_SECONDS)
            for hog in hogs:
                hog.stop()
            for fault_id in lasting:  # what the scenario left in force ends with it
                with contextlib.suppress(NotFoundError):  # an operator cleared it already
                    device.clear_faults(fault_id)
        return {"scenario": scenario.name, "seconds": round(time.monotonic() - started, 3),
                "completed": not stop.is_set(), "faults": injected,
                "workloads": [workload_summary(name, runner.runs[name]) for name in names],
                "memory": [hog.summary() for hog in hogs]}


def _inject(device: Device, fault: FaultEntry) -> pb.Fault:
    return device.inject_fault(fault.kind, device=fault.device, core=fault.core, link=fault.link,
                               count=fault.count, duration=fault.duration)
