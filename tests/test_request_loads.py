"""Request loads: a request of several executions in order (a generation), run by the load engine.

Expected values are hand computations from the programs' modeled device times and the steps' host
times: a request alone on its core takes the sum of both, items end where the steps say, a fault ends
the request it lands in, a stop abandons the request in progress. The gRPC tests check the API: bad
steps are INVALID_ARGUMENT naming the field, and the progress a client reads.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import InvalidRequest, NeuronError, RequestStep, Session
from neurontools.daemon.runtime.load_engine import Load, Step, Work
from neurontools.kernels.examples import mlp_program
from test_load_engine import START, Daemon, _mlp
from test_loads import _mlp_model, daemon  # noqa: F401 (the module's daemon fixture)

H1, H2 = 50_000, 20_000  # host time before the first and the third step


def _wide() -> pb.Program:
    return mlp_program(weights=np.ones((128, 256), np.float32), repeat=3)


def _start(d: Daemon, steps: list[tuple], **spec) -> Load:
    """A request load of (model, host_ns, ends_item) steps, on the daemon's fake clock."""
    d.engine.settle(d.now)
    works = {}
    engine_steps = tuple(Step(works.setdefault(m.model_id, Work(m)), m, host, item) for m, host, item in steps)
    message = pb.LoadSpec(timing_only=True, steps=[pb.RequestStep(model_id=m.model_id, host_ns=host, ends_item=item)
                                                   for m, host, item in steps], **spec)
    load = Load(len(d.loads) + 1, d.session, steps[0][0], message, engine_steps[0].work, d.now, engine_steps)
    d.engine.start(load)
    d.loads.append(load)
    return load


def _generation(d: Daemon):
    """Prefill-like A then B (an item), then a decode-like step: host time, A, B (an item)."""
    a, b = d.model({0: _mlp()}), d.model({0: _wide()})
    return a, b, [(a, H1, False), (b, 0, True), (a, H2, False), (b, 0, True)]


def _histogram(telemetry: Load, name: str):
    return telemetry.requests.histograms[name]


def test_a_closed_loop_of_requests_takes_host_and_device_time_in_order():
    d = Daemon(bulk=True, cores="0")
    a, b, steps = _generation(d)
    load = _start(d, steps, in_flight_per_core=1)
    ta, tb = Work(a).device_time_ns, Work(b).device_time_ns
    cycle = H1 + ta + tb + H2 + ta + tb
    k = 37
    d.at(START + k * cycle + H1 // 2)  # the 38th request is in its first host time
    assert load.requests.by_status == {pb.COMPLETED: k}
    assert load.stats.by_status == {pb.COMPLETED: 4 * k}
    assert load.submitted == k + 1 and len(load.pending) == 1
    # The core works 2a + 2b of each cycle and idles during host time.
    assert d.state.telemetry.cores[0].occupied_until(d.now) == k * (2 * ta + 2 * tb)
    for name, value in (("latency", cycle), ("modeled_latency", cycle), ("first_item_latency", H1 + ta + tb),
                        ("modeled_first_item_latency", H1 + ta + tb), ("item_latency", H2 + ta + tb),
                        ("modeled_item_latency", H2 + ta + tb)):
        histogram = _histogram(load, name)
        assert (histogram.count, histogram.sum_ns) == (k, k * value), name
    assert a.executions == b.executions == 2 * k


def test_two_requests_in_flight_overlap_one_host_time_with_the_other_device_time():
    d = Daemon(bulk=True, cores="0")
    a, _, _ = _generation(d)
    ta = Work(a).device_time_ns
    host = 3 * ta  # host time longer than the device time: one request alone leaves the core idle 3/4
    load = _start(d, [(a, host, True)], in_flight_per_core=2)
    d.at(START + 1000 * (host + ta) + ta)
    # Both wait their host time, then queue: the second runs ta after the first, and from then on
    # each completes every host + ta, the other's device time inside its host time. The core is
    # busy 2 * ta of each cycle.
    assert load.requests.by_status[pb.COMPLETED] == 2000
    assert d.state.telemetry.cores[0].occupied_until(d.now) == 2000 * ta


def test_a_hang_ends_the_request_it_lands_in_and_the_loop_goes_on():
    d = Daemon(bulk=True, cores="0", exec_timeout_ns=1_000_000)
    a, b, steps = _generation(d)
    load = _start(d, steps, in_flight_per_core=1)
    ta, tb = Work(a).device_time_ns, Work(b).device_time_ns
    cycle = H1 + ta + tb + H2 + ta + tb
    d.at(START + 10 * cycle + H1 + ta // 2)  # 11th request, running its first step
    d.inject(kind=pb.CORE_HANG, core_id=0)
    d.at(d.now + ta + tb)  # the 11th's first step completed (it started before the hang); B hangs
    d.clear()
    d.at(d.now + 1_000_000 + 10 * cycle)
    assert load.requests.by_status[pb.TIMED_OUT] == 1
    assert load.stats.by_status[pb.TIMED_OUT] == 1
    completed = load.requests.by_status[pb.COMPLETED]
    # Every execution belongs to a completed request (4), the failed one (2) or the one in progress.
    in_progress = load.stats.by_status[pb.COMPLETED] - 4 * completed - 1
    assert 0 <= in_progress < 4 and len(load.pending) == 1
    assert "hang" in load.last_error


def test_a_load_stops_after_max_failed_requests():
    d = Daemon(bulk=True, cores="0")
    _, _, steps = _generation(d)
    d.inject(kind=pb.NUMERICAL_ERROR, core_id=0)
    load = _start(d, steps, in_flight_per_core=2, max_failed_requests=3)
    d.at(START + 10_000_000)
    assert load.state == pb.LOAD_STOPPED and "3 failed requests" in load.stop_reason
    # The third failure stops it: the other request in flight (in its host time) is abandoned.
    assert load.requests.by_status == {pb.COMPLETED_WITH_NUM_ERR: 3} and load.requests.abandoned == 1


@pytest.mark.parametrize("during_host", [True, False])
def test_stop_abandons_the_request_in_progress_and_leaves_consistent_counts(during_host):
    d = Daemon(bulk=True, cores="0")
    a, b, steps = _generation(d)
    load = _start(d, steps, in_flight_per_core=1)
    ta, tb = Work(a).device_time_ns, Work(b).device_time_ns
    cycle = H1 + ta + tb + H2 + ta + tb
    d.at(START + 5 * cycle + (H1 // 2 if during_host else H1 + ta // 2))
    d.stop(0)
    if during_host:
        assert load.state == pb.LOAD_STOPPED and load.stats.by_status == {pb.COMPLETED: 20}
    else:  # its running step completes, then the request goes no further
        assert load.state == pb.LOAD_DRAINING
        d.at(d.now + ta)
        assert load.state == pb.LOAD_STOPPED and load.stats.by_status == {pb.COMPLETED: 21}
    assert load.requests.by_status == {pb.COMPLETED: 5} and load.requests.abandoned == 1
    assert not load.pending and d.state.telemetry.cores[0].in_flight == 0
    d.at(d.now + 10 * cycle)
    assert sum(load.stats.by_status.values()) == (20 if during_host else 21)  # nothing ran after


def test_an_open_loop_of_requests_with_a_count_finishes_each():
    d = Daemon(bulk=True, cores="0")
    a, b, steps = _generation(d)
    ta, tb = Work(a).device_time_ns, Work(b).device_time_ns
    cycle = H1 + ta + tb + H2 + ta + tb
    rate = 1e9 / (2 * cycle)  # one request every two cycles: they never queue
    load = _start(d, steps, rate_per_second=rate, count=20)
    d.at(START + 50 * cycle)
    assert load.state == pb.LOAD_FINISHED and load.requests.by_status == {pb.COMPLETED: 20}
    latency = _histogram(load, "latency")
    assert latency.sum_ns == 20 * cycle


# -- through gRPC --------------------------------------------------------------------------------


def test_a_request_load_through_the_api(daemon):  # noqa: F811
    with Session(daemon.address, visible_cores="7") as session:
        model, tensors = _mlp_model(session, 7)
        bindings = {7: tensors}
        load = session.start_requests([RequestStep(model, bindings, host_seconds=0.0001),
                                       RequestStep(model, bindings, ends_item=True)], in_flight=1, count=50)
        assert len(load.last.spec.steps) == 2 and list(load.last.spec.step_order) == [0, 1]
        progress = load.wait(30)
        assert progress.state == pb.LOAD_FINISHED
        assert progress.requests.requests.completed == 50 and progress.submitted == 50
        assert progress.stats.executions.completed == 100
        assert progress.requests.first_item_latency.count == 50
        device = model.execute(tensors, timing_only=True).device_latency
        assert progress.device_time_ns == round(2 * device * 1e9)
        assert progress.modeled_rate_per_second == pytest.approx(1e9 / (100_000 + progress.device_time_ns))


def test_bad_request_steps_are_invalid_argument_naming_the_step(daemon):  # noqa: F811
    with Session(daemon.address, visible_cores="8-9") as session, Session(daemon.address, visible_cores="10") as other:
        model, tensors = _mlp_model(session, 8)
        foreign, _ = _mlp_model(other, 10)
        good = RequestStep(model, {8: tensors})
        with pytest.raises(InvalidRequest, match=r"spec.steps\[1\].model_id"):
            session.start_requests([good, RequestStep(foreign, {})])
        wrong = dict(tensors, xT=session.allocate((64, 64), core_id=8))
        with pytest.raises(InvalidRequest, match=r"spec.steps\[0\].bindings.*expects float32\[128, 64\]"):
            session.start_requests([RequestStep(model, {8: wrong})])
        with pytest.raises(InvalidRequest, match=r"spec.steps\[0\].host_ns .* limit .*\(600 s\)"):
            session.start_requests([RequestStep(model, {8: tensors}, host_seconds=601)])
        with pytest.raises(InvalidRequest, match="timing_only"):
            spec = pb.LoadSpec(timing_only=False, in_flight_per_core=1, steps=[pb.RequestStep(model_id=model.model_id)])
            session._call("StartLoad", pb.StartLoadRequest(spec=spec))
        with pytest.raises(InvalidRequest, match=r"spec.step_order names step 3; there are 1 steps"):
            load = session.start_requests([good], count=1)
            load.last.spec.step_order[:] = [0, 3]
            session._call("StartLoad", pb.StartLoadRequest(spec=load.last.spec))
        with pytest.raises(InvalidRequest, match="in_flight_per_core"):
            session.start_requests([good], in_flight=17)
        load = session.start_requests([good])
        with pytest.raises(NeuronError, match="stop it"):
            model.unload()
        load.stop()
