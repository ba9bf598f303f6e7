"""In-daemon load's discrete-event engine: bulk accounting gives exactly the counters of accounting
the executions one by one, faults, stops, counts and deadlines landing mid-way included.

Each test runs the same scenario on two independent daemons' states, one engine with bulk steps and
one stepping every execution (bulk=False), on an injected clock, and compares every counter a user
can observe (cores, engines, links, session and load statistics, models) after every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device import topology as topo
from neurontools.daemon.device.instance_info import resolve_identity
from neurontools.daemon.runtime.load_engine import Load, LoadEngine, Work
from neurontools.daemon.runtime.sessions import RuntimeState
from neurontools.kernels import library
from neurontools.kernels.builder import Kernel
from neurontools.kernels.examples import mlp_program

START = 1_000_000_000
MAX_IN_FLIGHT = 16


class Daemon:
    """A RuntimeState with one session and a load engine on a fake clock."""

    def __init__(self, bulk: bool, cores: str = "0-3", exec_timeout_ns: int = 0) -> None:
        machine = topo.lookup("inf2.48xlarge")
        self.state = RuntimeState(machine, resolve_identity(machine.instance_type, {}))
        self.now = START
        self.engine = LoadEngine(self.state, MAX_IN_FLIGHT, clock=lambda: self.now, unix_minus_monotonic_ns=0,
                                 bulk=bulk)
        self.session = self.state.open_session(pb.OpenSessionRequest(
            pid=1234, command="pytest", visible_cores=cores, exec_timeout_ns=exec_timeout_ns))
        self.loads: list[Load] = []

    def model(self, programs: dict[int, pb.Program]):
        request = pb.LoadModelRequest(name="m", subgraphs=[pb.SubgraphProgram(core_id=c, program=p)
                                                            for c, p in programs.items()])
        return self.state.load_model(self.session, request)

    def start(self, model, **spec) -> Load:
        self.engine.settle(self.now)
        load = Load(len(self.loads) + 1, self.session, model, pb.LoadSpec(model_id=model.model_id, timing_only=True,
                                                                             **spec), Work(model), self.now)
        self.engine.start(load)
        self.loads.append(load)
        return load

    def at(self, now: int) -> None:
        self.now = now
        self.engine.settle(now)

    def inject(self, **fault) -> pb.Fault:
        self.engine.settle(self.now)  # what the admin servicer does
        injected = self.state.faults.inject(pb.Fault(**fault))
        self.engine.faults_changed()
        return injected

    def clear(self, fault_id: int = 0) -> None:
        self.engine.settle(self.now)
        self.state.faults.clear(fault_id)
        self.engine.faults_changed()

    def stop(self, index: int) -> None:
        self.engine.settle(self.now)
        self.engine.stop(self.loads[index], "stopped by its client", self.now)

    def observed(self) -> dict:
        """Every counter a snapshot, neuron-monitor or a load's progress shows."""
        telemetry = self.state.telemetry
        cores = [(c.occupied_until(self.now), c.executions, c.device_time_ns, c.flops, c.in_flight,
                  c.busy_since is not None, sorted(c.engine_busy_ns.items()), sorted(c.engine_instructions.items()))
                 for c in telemetry.cores]
        stats = [_stats(self.session.stats)] + [_stats(load.stats) for load in self.loads]
        loads = [(load.state, load.submitted, load.discarded, len(load.active), load.ended_ns, load.last_error)
                 for load in self.loads]
        models = [(m.executions, m.running) for m in self.state.models.values()]
        return {"cores": cores, "links": [tuple(x) for x in telemetry.link_bytes], "stats": stats, "loads": loads,
                "models": models}


def _stats(stats) -> tuple:
    return (sorted(stats.by_status.items()), sorted(stats.by_error.items()), stats.total_latency.count,
            stats.total_latency.sum_ns, list(stats.total_latency.counts), stats.device_latency.count,
            stats.device_latency.sum_ns, list(stats.device_latency.counts))


def _mlp() -> pb.Program:
    return mlp_program(weights=np.ones((128, 256), np.float32))


def _all_reduce(cores) -> dict[int, pb.Program]:
    programs = {}
    for core in cores:
        k = Kernel()
        library.all_reduce(k, k.output("y", (128, 512), "float32"), k.input("x", (128, 512), "float32"))
        programs[core] = k.program()
    return programs


def _run_both(scenario, times, **daemon_options) -> tuple[Daemon, Daemon]:
    """Runs `scenario(daemon, step)` on a bulk and a one-by-one engine, comparing after every step."""
    pair = Daemon(True, **daemon_options), Daemon(False, **daemon_options)
    for d in pair:
        scenario(d, None)
    for step, at in enumerate(times):
        for d in pair:
            d.at(at)
            scenario(d, step)
        assert pair[0].observed() == pair[1].observed(), f"bulk and one-by-one differ after step {step} (t={at})"
    return pair


def _times(count: int, span_ns: int, seed: int = 1) -> list[int]:
    """Irregular settle times, as a neuron-monitor tick, a fault and a call would give."""
    rng = np.random.default_rng(seed)
    return sorted({START + int(t) for t in rng.integers(1, span_ns, count)})


def test_closed_loop_in_bulk_equals_one_by_one_and_matches_the_modeled_rate():
    loads = {}

    def scenario(d: Daemon, step):
        if step is None:
            loads[d] = d.start(d.model({0: _mlp()}), in_flight_per_core=4)

    bulk, single = _run_both(scenario, _times(40, 50_000_000))
    load = loads[bulk]
    period = load.work.device_time_ns
    elapsed = bulk.now - START
    completed = load.stats.by_status[pb.COMPLETED]
    # Hand computation: one execution every `period` ns, back to back, from START.
    assert completed == elapsed // period
    assert bulk.state.telemetry.cores[0].occupied_until(bulk.now) == elapsed
    # Latency: the first four waited 1..4 periods, every later one 4 (N in flight, FIFO).
    assert load.stats.total_latency.sum_ns == period * (1 + 2 + 3 + 4) + 4 * period * (completed - 4)
    assert bulk.engine.steps < single.engine.steps / 100  # the bulk path really was taken


@pytest.mark.parametrize("fault", [
    dict(kind=pb.CORE_HANG, core_id=1),
    dict(kind=pb.NUMERICAL_ERROR, core_id=0),
    dict(kind=pb.MEM_ECC_UNCORRECTED, device_index=0, count=1),
])
def test_a_fault_landing_mid_way_counts_the_same_in_bulk(fault):
    def scenario(d: Daemon, step):
        if step is None:
            d.start(d.model({0: _mlp()}), in_flight_per_core=3)
            d.start(d.model({1: _mlp(), 2: _mlp()}), in_flight_per_core=2)
        elif step == 7:
            d.inject(**fault)
        elif step == 19:
            d.clear()

    bulk, _ = _run_both(scenario, _times(30, 20_000_000, seed=2), exec_timeout_ns=300_000)
    statuses = bulk.session.stats.by_status
    expected = {pb.CORE_HANG: pb.TIMED_OUT, pb.NUMERICAL_ERROR: pb.COMPLETED_WITH_NUM_ERR,
                pb.MEM_ECC_UNCORRECTED: pb.COMPLETED_WITH_ERR}[fault["kind"]]
    assert statuses.get(expected, 0) > 0
    if fault["kind"] == pb.MEM_ECC_UNCORRECTED:
        assert statuses[expected] == 2  # the next execution on each core of device 0, once


def test_stop_count_and_duration_mid_way():
    def scenario(d: Daemon, step):
        if step is None:
            d.start(d.model({0: _mlp()}), in_flight_per_core=5)
            d.start(d.model({1: _mlp()}), in_flight_per_core=2, count=1000)
            d.start(d.model({2: _mlp()}), in_flight_per_core=1, duration_ns=3_000_000)
        elif step == 10:
            d.stop(0)

    bulk, _ = _run_both(scenario, _times(25, 10_000_000, seed=3))
    first, counted, timed = bulk.loads
    assert first.state == pb.LOAD_STOPPED and first.discarded == 4  # queued, never started
    assert counted.state == pb.LOAD_FINISHED and sum(counted.stats.by_status.values()) == 1000
    period = timed.work.device_time_ns
    # Submissions at t < 3 ms only; the last one completes after the deadline.
    assert timed.state == pb.LOAD_FINISHED and timed.submitted == -(-3_000_000 // period)


def test_two_loads_on_one_core_share_its_queue_and_fail_to_queue_beyond_it():
    def scenario(d: Daemon, step):
        if step is None:
            model = d.model({0: _mlp()})
            d.start(model, in_flight_per_core=16)
            d.start(model, in_flight_per_core=16)

    bulk, _ = _run_both(scenario, _times(20, 2_000_000, seed=4))
    first, second = bulk.loads
    assert second.stats.by_status[pb.FAILED_TO_QUEUE] >= 16
    assert second.stats.by_status.get(pb.COMPLETED, 0) > 0  # its slots get places as they free up
    assert bulk.state.telemetry.cores[0].in_flight == 16


def test_open_loops_constant_and_poisson():
    def scenario(d: Daemon, step):
        if step is None:
            d.start(d.model({0: _mlp()}), rate_per_second=100_000.0, duration_ns=5_000_000)
            d.start(d.model({1: _mlp()}), rate_per_second=400_000.0, arrivals=pb.POISSON, seed=7)

    bulk, _ = _run_both(scenario, _times(20, 8_000_000, seed=5))
    constant = bulk.loads[0]
    assert constant.state == pb.LOAD_FINISHED and constant.submitted == 500  # 100,000/s for 5 ms


def test_collective_model_link_bytes_and_link_down():
    cores = list(range(4))

    def scenario(d: Daemon, step):
        if step is None:
            d.start(d.model(_all_reduce(cores)), in_flight_per_core=2)
        elif step == 5:
            d.inject(kind=pb.LINK_DOWN, link_id=0)
        elif step == 12:
            d.clear()

    bulk, _ = _run_both(scenario, _times(20, 20_000_000, seed=6), cores="0-3")
    statuses = bulk.session.stats.by_status
    assert statuses[pb.COMPLETED] > 0 and statuses[pb.COMPLETED_WITH_ERR] > 0
    links = bulk.state.telemetry.link_bytes
    assert sum(a + b for a, b in links) > 0


def test_between_accounting_steps_occupied_time_is_what_the_next_step_accounts():
    """A snapshot between two steps reads the steady schedule: the same value settling would give."""
    d = Daemon(True)
    d.start(d.model({0: _mlp()}), in_flight_per_core=2, count=5000)
    core = d.state.telemetry.cores[0]
    d.at(START + 100_000)  # past the warm-up, which runs event by event
    for at in _times(30, 40_000_000, seed=8):
        read_between = core.occupied_until(at)
        d.at(at)
        assert core.occupied_until(at) == read_between, at
