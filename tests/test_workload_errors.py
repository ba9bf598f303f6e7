"""Workloads behave like serving applications: a failed request is counted and serving goes on,
NEURON_RT_EXEC_TIMEOUT bounds a hung execution, and a hung core cannot stretch a run's duration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurontools.client import Device
from neurontools.daemon.server.embedded import running_daemon
from neurontools.workloads import catalog
from neurontools.workloads.runner import WorkloadRunner
from neurontools.workloads.summary import workload_summary

NEURON_WORKLOAD = str(Path(sys.executable).parent / "neuron-workload")


@pytest.fixture
def small_daemon():
    with running_daemon("inf2.xlarge") as running:
        yield running.address


def _runner(address: str, spec: str, **options) -> tuple[WorkloadRunner, str]:
    with Device(address) as device:
        placer = catalog.Placer(device.snapshot())
    runner = WorkloadRunner(address)
    workload = catalog.build(catalog.parse_spec(spec, catalog.Settings()), placer)
    return runner, runner.add(workload, **options)


def test_timed_out_requests_are_counted_and_serving_goes_on(small_daemon, monkeypatch):
    monkeypatch.setenv("NEURON_RT_EXEC_TIMEOUT", "0.3")  # the runtime's variable, in seconds
    runner, name = _runner(small_daemon, "bert-tiny:cores=1,batch=1")
    with Device(small_daemon) as device:
        device.inject_fault("core-hang", core=0, duration=1.0)
        runner.start(name)
        time.sleep(3.0)
    runner.stop_all()
    summary = workload_summary(name, runner.runs[name])
    assert summary["status"] == "errors" and summary["error"] is None
    by_status = summary["requests_by_status"]
    assert by_status["timed_out"] >= 1 and by_status["ok"] >= 1  # served again once the hang ended
    assert summary["requests"] == sum(by_status.values())
    # The daemon's own count: every execution of a failed request timed out or completed.
    executions = summary["executions_by_status"]
    assert executions["timed_out"] >= by_status["timed_out"]
    assert executions["completed"] >= summary["executions"]
    assert "NEURON_RT_EXEC_TIMEOUT" in summary["last_request_error"]


def test_max_errors_stops_a_workload_after_that_many_failed_requests(small_daemon):
    runner, name = _runner(small_daemon, "bert-tiny:cores=1,batch=1", max_errors=3)
    with Device(small_daemon) as device:
        fault = device.inject_fault("numerical-error", core=0)
        try:
            runner.start(name)
            assert runner.wait(name, timeout=30)
        finally:
            device.clear_faults(fault.fault_id)
    summary = workload_summary(name, runner.runs[name])
    assert summary["status"] == "error" and "3 failed requests (max_errors)" in summary["error"]
    assert summary["requests_by_status"] == {"ok": 0, "completed_with_num_err": 3}


def test_max_errors_must_be_positive(small_daemon):
    with pytest.raises(ValueError, match="max_errors must be at least 1"):
        _runner(small_daemon, "bert-tiny:cores=1", max_errors=0)


@pytest.mark.slow
def test_a_hung_core_does_not_stretch_the_duration(small_daemon):
    """Default NEURON_RT_EXEC_TIMEOUT (30 s): the run still ends at --duration, the hang counts as timed_out."""
    with Device(small_daemon) as device:
        device.inject_fault("core-hang", core=0, duration=60)
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k != "NEURON_RT_EXEC_TIMEOUT"}
        done = subprocess.run([NEURON_WORKLOAD, "--address", small_daemon, "--duration", "2",
                               "bert-tiny:cores=1"], capture_output=True, text=True, timeout=120, env=env)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert elapsed < 20, f"the run took {elapsed:.0f} s for --duration 2 (a 30 s exec timeout must not hold it)"
        (w,) = json.loads(done.stdout)["workloads"]
        assert w["requests_by_status"] == {"ok": 0}  # the request was still hanging when the run ended
        # The session ended with the process; the daemon counted the hung execution as timed_out.
        assert not device.snapshot().sessions
        device.clear_faults()
