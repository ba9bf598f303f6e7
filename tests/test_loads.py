"""In-daemon load through a real neurond over gRPC: the API, bad specs, the session tie, snapshots,
faults, and the counters of a load against the same executions called one by one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import AccessDenied, Device, InvalidRequest, NeuronError, Session
from neurontools.daemon.runtime.loads import LoadService
from neurontools.daemon.server.embedded import running_daemon
from neurontools.kernels.examples import mlp_program


@pytest.fixture(scope="module")
def daemon():
    with running_daemon("inf2.48xlarge") as running:
        yield running


def _mlp_model(session: Session, core: int):
    rng = np.random.default_rng(core)
    model = session.load_model(f"mlp-{core}", {core: mlp_program(weights=rng.standard_normal((128, 256),
                                                                                            dtype=np.float32) / 8)})
    tensors = {"xT": session.tensor_from(rng.standard_normal((128, 64), dtype=np.float32), core_id=core),
               "out": session.allocate((64, 256), core_id=core), "rowmax": session.allocate((64, 1), core_id=core)}
    return model, tensors


def test_a_load_counts_exactly_like_the_same_executions_called_one_by_one(daemon):
    count = 40
    with Session(daemon.address, visible_cores="0-1") as session:
        model, tensors = _mlp_model(session, 0)
        for _ in range(count):
            model.execute(tensors, timing_only=True)
        by_call = Device(daemon.address).snapshot()
        load = model.start_load(tensors, in_flight_per_core=3, count=count)
        progress = load.wait(30)
        by_load = Device(daemon.address).snapshot()
    assert progress.state == pb.LOAD_FINISHED and progress.stats.executions.completed == count
    core_call, core_load = by_call.cores[0], by_load.cores[0]
    # Everything that does not depend on wall time doubles exactly.
    assert core_load.executions == 2 * core_call.executions
    assert core_load.flops == 2 * core_call.flops and core_load.device_time_ns == 2 * core_call.device_time_ns
    assert [e.busy_ns for e in core_load.engines] == [2 * e.busy_ns for e in core_call.engines]
    assert [e.instructions for e in core_load.engines] == [2 * e.instructions for e in core_call.engines]
    stats_call = next(s.stats for s in by_call.sessions if s.tag == str(os.getpid()))
    stats_load = next(s.stats for s in by_load.sessions if s.tag == str(os.getpid()))
    assert stats_load.executions.completed == 2 * count
    assert stats_load.device_latency.sum_ns == 2 * stats_call.device_latency.sum_ns
    # The load's own latencies: 3 in flight, FIFO: 1, 2, 3 periods for the first, then 3 each.
    period = progress.device_time_ns
    assert progress.stats.total_latency.sum_ns == period * (1 + 2 + 3) + 3 * period * (count - 3)


@pytest.mark.parametrize("pause_after_settle", [0.0, 0.005], ids=["plain", "paused-after-settle"])
def test_closed_loop_keeps_the_core_busy_at_the_modeled_rate(daemon, monkeypatch, pause_after_settle):
    # The paused variant stands for a thread switch between accounting the load and taking the first
    # snapshot (not the second): each snapshot's clock must be the instant the load was accounted to, or
    # the executions of the pause go missing.
    settle, pause = LoadService.settle, [0.0]

    def settle_then_pause(self):
        settled = settle(self)
        time.sleep(pause[0])
        return settled

    monkeypatch.setattr(LoadService, "settle", settle_then_pause)
    with Session(daemon.address, visible_cores="2") as session:
        model, tensors = _mlp_model(session, 2)
        device = Device(daemon.address)
        load = model.start_load(tensors, in_flight_per_core=2)
        pause[0] = pause_after_settle
        before = device.snapshot()
        pause[0] = 0.0
        time.sleep(0.3)
        after = device.snapshot()
        progress = load.stop()
        assert progress.state in (pb.LOAD_DRAINING, pb.LOAD_STOPPED)
        assert load.wait(5).state == pb.LOAD_STOPPED
    dt = after.monotonic_ns - before.monotonic_ns
    busy = after.cores[2].occupied_ns - before.cores[2].occupied_ns
    executions = after.cores[2].executions - before.cores[2].executions
    # 100 % busy, to the nanosecond: between two accounting steps a steady load's occupied time follows
    # its schedule. The execution counts are settled to the instant each snapshot shows.
    assert busy == dt
    assert executions == pytest.approx(dt / progress.device_time_ns, rel=1e-3)
    model_info = next(m for m in after.models if m.model_id == model.model_id)
    assert model_info.is_running


@pytest.mark.parametrize("spec, field", [
    (dict(rate=-5.0), "rate_per_second"),
    (dict(rate=float("nan")), "rate_per_second"),
    (dict(in_flight_per_core=17), "in_flight_per_core"),
    (dict(in_flight_per_core=2, rate=10.0), "not both"),
    (dict(rate=1e12), "rate_per_second"),
])
def test_bad_load_specs_name_the_field_and_the_limit(daemon, spec, field):
    with Session(daemon.address, visible_cores="3") as session:
        model, tensors = _mlp_model(session, 3)
        with pytest.raises(InvalidRequest, match=field):
            model.start_load(tensors, **spec)


def test_bad_model_and_bindings_are_invalid_argument(daemon):
    with Session(daemon.address, visible_cores="4-5") as session, \
            Session(daemon.address, visible_cores="6") as other:
        model, tensors = _mlp_model(session, 4)
        foreign, _ = _mlp_model(other, 6)
        with pytest.raises(InvalidRequest, match="spec.model_id"):
            session.start_load(foreign, tensors)
        wrong = dict(tensors, xT=session.allocate((64, 64), core_id=4))
        with pytest.raises(InvalidRequest, match="spec.bindings.*expects float32\\[128, 64\\]"):
            model.start_load(wrong)
        with pytest.raises(InvalidRequest, match="spec.bindings"):
            model.start_load({"xT": tensors["xT"]})
        load = model.start_load(tensors, in_flight_per_core=1)
        with pytest.raises(NeuronError, match="stop it"):
            model.unload()
        with pytest.raises(AccessDenied):
            other._call("GetLoad", pb.GetLoadRequest(load_id=load.load_id))
        load.stop()


def test_a_killed_client_stops_its_load_within_two_seconds(daemon, tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        from neurontools.client import Session
        from neurontools.kernels.examples import mlp_program
        s = Session({daemon.address!r}, visible_cores="7")
        s.open()
        m = s.load_model("victim", {{7: mlp_program(weights=np.ones((128, 256), np.float32))}})
        t = {{"xT": s.tensor_from(np.ones((128, 64), np.float32), core_id=7),
              "out": s.allocate((64, 256), core_id=7), "rowmax": s.allocate((64, 1), core_id=7)}}
        m.start_load(t, in_flight_per_core=4)
        print("started", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        device = Device(daemon.address)
        assert device.snapshot().cores[7].in_flight == 4
        child.kill()
        child.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < 2.0:
            first = device.snapshot()
            if first.cores[7].in_flight == 0 and not any(m.name == "victim" for m in first.models):
                break
            time.sleep(0.05)
        first = device.snapshot()
        time.sleep(0.2)
        second = device.snapshot()
    finally:
        child.kill()
    assert first.cores[7].in_flight == 0 and first.cores[7].owner_session_id == 0
    assert second.cores[7].executions == first.cores[7].executions  # nothing runs any more


def test_faults_and_exec_timeout_reach_a_running_load(daemon):
    with Session(daemon.address, visible_cores="8", exec_timeout=0.05) as session:
        model, tensors = _mlp_model(session, 8)
        device = Device(daemon.address)
        load = model.start_load(tensors, in_flight_per_core=2)
        time.sleep(0.05)
        hang = device.inject_fault("core_hang", core=8)
        time.sleep(0.2)
        device.clear_faults(hang.fault_id)
        numerical = device.inject_fault("numerical_error", core=8)
        time.sleep(0.05)
        device.clear_faults(numerical.fault_id)
        progress = load.stop()
    counts = progress.stats.executions
    assert counts.completed > 0 and counts.completed_with_num_err > 0
    # A hung core holds each execution NEURON_RT_EXEC_TIMEOUT (50 ms): about 4 in 0.2 s.
    assert 2 <= counts.timed_out <= 6
    assert progress.stats.errors.transient == counts.timed_out
    assert "hangs" in progress.last_error or "NaN" in progress.last_error


def test_compute_mode_load_really_computes(daemon):
    with Session(daemon.address, visible_cores="9") as session:
        model, tensors = _mlp_model(session, 9)
        tensors["out"].write(np.zeros((64, 256), np.float32))
        progress = model.start_load(tensors, timing_only=False, in_flight_per_core=2, count=5).wait(30)
        assert progress.state == pb.LOAD_FINISHED and progress.stats.executions.completed == 5
        assert np.abs(tensors["out"].read()).sum() > 0  # the kernel wrote its output


def test_open_loop_rate_and_list(daemon):
    with Session(daemon.address, visible_cores="10") as session:
        model, tensors = _mlp_model(session, 10)
        load = model.start_load(tensors, rate=2000.0, duration=0.25)
        progress = load.wait(10)
        assert progress.state == pb.LOAD_FINISHED
        assert progress.submitted == 500  # 2,000/s for 0.25 s, evenly spaced from the start
        assert progress.stats.executions.completed == 500
        assert [p.load_id for p in session.loads()] == [load.load_id]


def test_a_model_unloads_right_after_its_last_execution_was_answered(daemon):
    """An execution ending within ANSWER_AHEAD_NS is answered before its modeled end."""
    with Session(daemon.address, visible_cores="11") as session:
        program = mlp_program(weights=np.ones((128, 256), np.float32), repeat=100)  # 87 us modeled
        tensors = {"xT": session.tensor_from(np.ones((128, 64), np.float32), core_id=11),
                   "out": session.allocate((64, 256), core_id=11), "rowmax": session.allocate((64, 1), core_id=11)}
        for _ in range(10):
            model = session.load_model("short", {11: program})
            result = model.execute(tensors, timing_only=True)
            assert 50e-6 < result.device_latency < 100e-6
            model.unload()  # no "executions in flight": the answered one is accounted first
