"""neuron-lab as a user runs it: a real Prometheus, clear start-up failures, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from neurontools.lab.alert_watch import AlertHistory
from neurontools.lab.expectations import check_expectations
from neurontools.lab.prometheus_server import PROMETHEUS
from neurontools.lab.rules import RULES, compressed
from neurontools.scenarios.scenario_file import ExpectEntry, Scenario

NEURON_LAB = str(Path(sys.executable).parent / "neuron-lab")


@pytest.fixture
def private_tmp():
    """A short private TMPDIR (Unix socket paths stay short) that must be empty at the end."""
    directory = tempfile.mkdtemp(prefix="lab-", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _processes_using(directory: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(directory in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_rules_compress_durations_and_nothing_else():
    text = ("        for: 15m\n        expr: increase(x_total[10m]) > 0 and y[5m:1m] offset 10m\n"
            "          and predict_linear(z[30m:1m], 4 * 3600) > 1 and w > 15\n")
    assert compressed(text, 10) == ("        for: 90s\n        expr: increase(x_total[60s]) > 0 and y[30s:6s] offset 60s\n"
                                    "          and predict_linear(z[180s:6s], 1440) > 1 and w > 15\n")
    assert compressed("for: 2s\n", 10) == "for: 1s\n"  # never below a second
    assert compressed(RULES.read_text(), 1) == RULES.read_text()


def test_expectations_want_exactly_the_declared_alerts():
    scenario = Scenario(name="x", duration=10, expect=[ExpectEntry(alert="NeuronExecutionErrors", fires_by=5,
                                                                   resolves_by=20)])
    good = [AlertHistory("NeuronExecutionErrors", {}, firing_at=4, resolved_at=19)]
    assert check_expectations(scenario, good) == []
    late = [AlertHistory("NeuronExecutionErrors", {}, firing_at=7, resolved_at=None)]
    assert [p.split(" ")[1] for p in check_expectations(scenario, late)] == ["fired", "resolved"]
    extra = good + [AlertHistory("NeuronDeviceMemoryHigh", {}, firing_at=3, resolved_at=4)]
    assert "does not expect it" in check_expectations(scenario, extra)[0]
    assert "never fired" in check_expectations(scenario, [])[0]


def test_a_missing_prometheus_is_one_clear_message_and_nothing_starts(private_tmp):
    done = subprocess.run([NEURON_LAB, "--prometheus-binary", "/nonexistent/prometheus"], capture_output=True,
                          text=True, timeout=60, env=os.environ | {"TMPDIR": private_tmp})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "neuron-lab: no Prometheus server at /nonexistent/prometheus: install Debian's prometheus package "
        "(scripts/install-system-deps.sh does)"]
    assert os.listdir(private_tmp) == [] and _processes_using(private_tmp) == []


def test_a_taken_port_is_one_clear_message_and_nothing_is_left(private_tmp):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([NEURON_LAB, "--prometheus-port", str(port)], capture_output=True, text=True,
                              timeout=60, env=os.environ | {"TMPDIR": private_tmp})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"neuron-lab: cannot start Prometheus on 127.0.0.1:{port}: the port is taken; choose another with "
        "--prometheus-port (0 picks a free one)"]
    assert os.listdir(private_tmp) == [] and _processes_using(private_tmp) == []


@pytest.mark.slow
def test_ctrl_c_leaves_no_process_socket_or_directory(private_tmp):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run scripts/install-system-deps.sh (Debian's prometheus)")
    lab = subprocess.Popen([NEURON_LAB, "--instance-type", "inf2.xlarge", "--time-scale", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=os.environ | {"TMPDIR": private_tmp})
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = lab.stdout.readline()
            assert line, f"neuron-lab ended early: {lab.stderr.read()}"
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        url = next(line.split()[2] for line in lines if line.startswith("Prometheus on "))
        children = psutil.Process(lab.pid).children(recursive=True)
        assert len(children) >= 3  # neurond, neuron-monitor, prometheus
        import urllib.request
        with urllib.request.urlopen(f"{url}/api/v1/query?query=neuron_monitor_up", timeout=10) as response:
            assert b'"neuron_monitor_up"' in response.read()  # scraped before we were told it is ready
        lab.send_signal(signal.SIGINT)
        assert lab.wait(30) == 0
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert os.listdir(private_tmp) == []
    assert _processes_using(private_tmp) == []
