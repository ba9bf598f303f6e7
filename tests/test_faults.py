"""Fault injection through the admin API and the neuron-fault CLI."""

import subprocess
import sys
import time

import numpy as np
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import AccessDenied, Device, InvalidRequest, NotFoundError, Session
from neurontools.kernels.examples import mlp_program


def test_ecc_events_are_counted_per_device(address):
    with Device(address) as device:
        before = device.snapshot().devices[3]
        fault = device.inject_fault("mem_ecc_corrected", device=3, count=5)
        device.inject_fault("sram_ecc_uncorrected", device=3)
        after = device.snapshot().devices[3]
    assert "5 mem ecc corrected event(s) on neuron device 3" == fault.description
    assert after.mem_ecc_corrected - before.mem_ecc_corrected == 5
    assert after.sram_ecc_uncorrected - before.sram_ecc_uncorrected == 1


def test_lasting_faults_are_listed_shown_and_cleared(address):
    with Device(address) as device:
        link = device.inject_fault("link_down", link=4)  # links are sorted device pairs: 4 is (3, 4)
        hang = device.inject_fault("core_hang", core=5, duration=0.2)
        assert {f.fault_id for f in device.faults()} >= {link.fault_id, hang.fault_id}
        snap = device.snapshot()
        assert not snap.links[4].up and snap.links[3].up
        assert link.description == "NeuronLink 4 (device 3 <-> device 4) is down"
        time.sleep(0.3)
        assert hang.fault_id not in {f.fault_id for f in device.faults()}  # its duration ended
        assert device.clear_faults(link.fault_id) == 1
        assert device.snapshot().links[4].up


@pytest.mark.parametrize("kind, where, message", [
    ("core_hang", {"core": 24}, "NeuronCore 24 does not exist"),
    ("link_down", {"link": 12}, "links 0-11"),
    ("mem_ecc_corrected", {"device": 12}, "neuron device 12 does not exist"),
])
def test_bad_faults_are_refused(address, kind, where, message):
    with Device(address) as device, pytest.raises(InvalidRequest, match=message):
        device.inject_fault(kind, **where)


def test_device_reset_ends_the_sessions_on_that_device(address):
    with Session(address, visible_cores="8-9") as on_device, Session(address, visible_cores="10") as elsewhere, \
            Device(address) as device:
        before = device.snapshot().devices[4].resets
        device.inject_fault("device_reset", device=4)
        deadline = time.monotonic() + 2
        while on_device.closed_reason is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert on_device.closed_reason == "neuron device 4 was reset"
        assert elsewhere.closed_reason is None
        assert device.snapshot().devices[4].resets == before + 1


def test_sessions_cannot_inject(address):
    with Session(address, visible_cores="11") as session:
        from neurontools._proto import neurond_pb2_grpc as pb_grpc
        admin = pb_grpc.NeuronAdminStub(session._conn.channel)
        with pytest.raises(AccessDenied, match="not available to runtime sessions"):
            session._conn.unary(admin.InjectFault, pb.InjectFaultRequest(fault=pb.Fault(kind=pb.CORE_HANG)))


def test_cli(address):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "neurontools.fault.cli", "--address", address, *args],
                              capture_output=True, text=True, timeout=30)
    injected = run("inject", "numerical-error", "--core", "6")
    assert injected.returncode == 0 and "NeuronCore 6 produces NaN outputs" in injected.stdout
    assert "numerical_error" in run("list").stdout
    assert run("clear").stdout.startswith("cleared")
    bad = run("inject", "core-hang", "--core", "99")
    assert bad.returncode == 1 and "does not exist" in bad.stderr


def test_cli_names_an_unknown_flag_and_refuses_to_clear_an_unknown_fault(address):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "neurontools.fault.cli", "--address", address, *args],
                              capture_output=True, text=True, timeout=30)
    for args in (["--bogus"], ["list", "--bogus"], ["--bogus", "list"]):
        bogus = run(*args)
        assert bogus.returncode == 2 and "unrecognized arguments: --bogus" in bogus.stderr, (args, bogus.stderr)
    missing = run()
    assert missing.returncode == 2 and "a command is required: inject, list or clear" in missing.stderr
    unknown = run("clear", "12345")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "no lasting fault 12345 is in force" in unknown.stderr and "neuron-fault list" in unknown.stderr
    with Device(address) as device, pytest.raises(NotFoundError, match="no lasting fault 12345"):
        device.clear_faults(12345)


def _mlp(session, core):
    model = session.load_model(f"mlp-{core}", {core: mlp_program(weights=np.ones((128, 256), np.float32))})
    x = session.tensor_from(np.ones((128, 64), np.float32), core_id=core)
    out = session.allocate((64, 256), "float32", core_id=core)
    rowmax = session.allocate((64, 1), "float32", core_id=core)
    return lambda **kw: model.execute(xT=x, out=out, rowmax=rowmax, check=False, **kw), out


def test_a_hung_core_times_out_until_cleared(address):
    with Session(address, visible_cores="12", exec_timeout=0.2) as session, Device(address) as device:
        execute, _ = _mlp(session, 12)
        fault = device.inject_fault("core_hang", core=12)
        started = time.monotonic()
        result = execute()
        assert result.status == "timed_out" and "NeuronCore 12 hangs" in result.message
        assert time.monotonic() - started >= 0.2  # it held the core for the timeout
        device.clear_faults(fault.fault_id)
        assert execute().status == "completed"
        stats = next(s for s in device.snapshot().sessions if s.session_id == session.session_id).stats
        assert stats.executions.timed_out == 1 and stats.errors.transient == 1


def test_numerical_error_poisons_outputs(address):
    with Session(address, visible_cores="13") as session, Device(address) as device:
        execute, out = _mlp(session, 13)
        device.inject_fault("numerical_error", core=13, duration=5)
        result = execute()
        assert result.status == "completed_with_num_err" and np.isnan(out.read()).any()
        assert execute(timing_only=True).status == "completed_with_num_err"
        device.clear_faults()
        assert execute().status == "completed" and not np.isnan(out.read()).any()


def test_uncorrected_ecc_fails_the_next_execution_on_each_core_of_the_device(address):
    with Session(address, visible_cores="14-15") as session, Device(address) as device:
        run14, _ = _mlp(session, 14)
        run15, _ = _mlp(session, 15)
        device.inject_fault("mem_ecc_uncorrected", device=7)
        first = run14()
        assert first.status == "completed_with_err" and "uncorrectable HBM ECC error on neuron device 7" in first.message
        assert run15().status == "completed_with_err"
        assert run14().status == "completed" and run15().status == "completed"
        stats = next(s for s in device.snapshot().sessions if s.session_id == session.session_id).stats
        assert stats.errors.hardware == 2


def _sample(text: str, family: str, **labels: str) -> float:
    """The value of the one series of `family` whose labels include `labels`."""
    matches = [line for line in text.splitlines() if line.startswith(family + "{")
               and all(f'{k}="{v}"' in line for k, v in labels.items())]
    assert len(matches) == 1, (family, labels, matches)
    return float(matches[0].rsplit(" ", 1)[1])


def test_every_fault_reaches_neuron_monitor_and_prometheus(address):
    from prometheus_client import generate_latest

    from neurontools.monitor.collector import Collector
    from neurontools.monitor.config import default_config
    from neurontools.monitor.prometheus import PrometheusMapping, metrics_registry

    clock = [0.0]
    with Session(address, visible_cores="16", tag="faulty", exec_timeout=0.1) as session, \
            Device(address) as device:
        collector = Collector(default_config(), device.snapshot, clock=lambda: clock[0])
        execute, _ = _mlp(session, 16)
        collector.collect()  # the baseline
        device.inject_fault("mem_ecc_corrected", device=8, count=3)
        device.inject_fault("mem_ecc_uncorrected", device=8)
        assert execute().status == "completed_with_err"
        fault = device.inject_fault("numerical_error", core=16)
        assert execute().status == "completed_with_num_err"
        device.clear_faults(fault.fault_id)
        fault = device.inject_fault("core_hang", core=16)
        assert execute().status == "timed_out"
        device.clear_faults(fault.fault_id)
        assert execute().status == "completed"
        clock[0] += 5.0
        report = collector.collect()

    hw = report.system_data.neuron_hw_counters.neuron_devices[8]
    assert (hw.mem_ecc_corrected, hw.mem_ecc_uncorrected) == (3, 1)
    runtime = next(r for r in report.neuron_runtime_data if r.neuron_runtime_tag == "faulty")
    summary = runtime.report.execution_stats.execution_summary
    errors = runtime.report.execution_stats.error_summary
    assert (summary.completed, summary.completed_with_err, summary.completed_with_num_err, summary.timed_out) \
        == (1, 1, 1, 1)
    assert (errors.hardware, errors.numerical, errors.transient) == (1, 1, 1)

    mapping = PrometheusMapping()
    mapping.update(report)
    text = generate_latest(metrics_registry(mapping, client_metrics=False)).decode()
    assert _sample(text, "hardware_ecc_events_total", event_type="mem_ecc_corrected", neuron_device_index="8") == 3
    assert _sample(text, "hardware_ecc_events_total", event_type="mem_ecc_uncorrected", neuron_device_index="8") == 1
    for status in ("completed_with_err", "completed_with_num_err", "timed_out"):
        assert _sample(text, "execution_status_total", runtime_tag="faulty", status_type=status) == 1
    for kind in ("hardware", "numerical", "transient"):
        assert _sample(text, "execution_errors_total", runtime_tag="faulty", error_type=kind) == 1
