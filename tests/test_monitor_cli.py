"""neuron-monitor as users run it: flags, config errors, and the real console script streaming
reports from a live daemon, through a closed pipe, SIGTERM and a daemon restart."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from neurontools.client import Session
from neurontools.daemon.device import topology as topo
from neurontools.daemon.server.embedded import EmbeddedDaemon
from neurontools.daemon.device.instance_info import resolve_identity
from neurontools.daemon.server.grpc_server import ServerOptions
from neurontools.kernels.examples import mlp_program
from neurontools.monitor.cli import USAGE, Options, UsageError, main, parse_options
from neurontools.monitor.report_json import dumps_report, loads_report

NEURON_MONITOR = str(Path(sys.executable).parent / "neuron-monitor")
COMPANION = str(Path(sys.executable).parent / "neuron-monitor-prometheus")


# --- flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    ([], Options()),
    (["-c", "m.conf"], Options(config_file="m.conf")),
    (["-cm.conf"], Options(config_file="m.conf")),
    (["--config-file=m.conf", "--verbose", "3"], Options(config_file="m.conf", verbose=3)),
    (["--config-file", "m.conf", "--verbose=4"], Options(config_file="m.conf", verbose=4)),
    (["--address", "unix:///tmp/x.sock"], Options(address="unix:///tmp/x.sock")),
    (["-hc", "m.conf"], Options(config_file="m.conf", help=True)),
    (["--version", "--"], Options(version=True)),
    (["--prometheus-port", "9100", "--prometheus-lean"], Options(prometheus_port=9100, prometheus_lean=True)),
    (["--prometheus-port=0", "--prometheus-listen-address=::1", "--prometheus-stale-after", "inf"],
     Options(prometheus_port=0, prometheus_listen_address="::1", prometheus_stale_after=float("inf"))),
])
def test_flags_are_read_as_go_flags_reads_them(argv, expected):
    assert parse_options(argv) == expected


@pytest.mark.parametrize("argv, message", [
    (["--json-config", "x"], "unknown flag `json-config'"),
    (["-x"], "unknown flag `x'"),
    (["-c"], "expected argument for flag `-c, --config-file'"),
    (["--verbose"], "expected argument for flag `--verbose'"),
    (["--verbose", "high"], "invalid argument for flag `--verbose' (expected int): strconv.ParseInt: "
                            'parsing "high": invalid syntax'),
    (["--verbose=5"], "invalid argument for flag `--verbose': 5 is not between 0 and 4"),
    (["--help=yes"], "bool flag `--help' cannot have an argument"),
    (["monitor.conf"], "unexpected argument `monitor.conf'"),
    (["--prometheus-port=http"], "invalid argument for flag `--prometheus-port' (expected uint16): "
                                 'strconv.ParseUint: parsing "http": invalid syntax'),
    (["--prometheus-port", "70000"], "invalid argument for flag `--prometheus-port' (expected uint16): "
                                     'strconv.ParseUint: parsing "70000": value out of range'),
    (["--prometheus-lean"], "--prometheus-listen-address, --prometheus-lean and --prometheus-stale-after "
                            "need --prometheus-port"),
    (["--prometheus-port=9100", "--prometheus-stale-after=0"],
     "invalid argument for flag `--prometheus-stale-after': must be a positive number of seconds, or inf"),
    (["--prometheus-port=9100", "--prometheus-lean=yes"], "bool flag `--prometheus-lean' cannot have an argument"),
])
def test_bad_flags_are_refused(argv, message):
    with pytest.raises(UsageError) as info:
        parse_options(argv)
    assert str(info.value) == message


def test_a_bad_flag_prints_the_error_and_usage_on_stdout_and_exits_1(capsys):
    assert main(["--period", "1s"]) == 1
    out, err = capsys.readouterr()
    assert out == f"unknown flag `period'\n\n{USAGE}" and err == ""


def test_help_and_version(capsys):
    assert main(["-h"]) == 0
    assert capsys.readouterr().out == USAGE
    assert "-c, --config-file=               Path to configuration file" in USAGE
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("neuron-monitor ")


def test_a_bad_config_file_exits_1_naming_the_file_the_field_and_the_problem(tmp_path, capsys):
    path = tmp_path / "monitor.conf"
    path.write_text('{"neuron_runtimes": [{"metrics": [{"type": "inference_stats"}]}]}')
    assert main(["-c", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"neuron-monitor: invalid configuration: {path}: neuron_runtimes[0].metrics[0].type: "
                   'legacy metric group "inference_stats": it was renamed "execution_stats" '
                   "(inference_stats is rejected since Neuron SDK 2.5)\n")


# --- the real console script -------------------------------------------------------------------


class Monitor:
    """neuron-monitor in a subprocess, its stdout lines collected by a thread."""

    def __init__(self, address: str, config: dict | None, tmp_path: Path, *extra: str) -> None:
        args = [NEURON_MONITOR, "--address", address, *extra]
        if config is not None:
            path = tmp_path / "monitor.conf"
            path.write_text(json.dumps(config))
            args += ["-c", str(path)]
        self.started = time.monotonic()
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.decode()))

    def line(self, timeout: float = 10.0) -> tuple[float, str]:
        return self.lines.get(timeout=timeout)

    def until(self, condition, timeout: float = 10.0):
        """The first report satisfying `condition`, checking each line's encoding on the way."""
        deadline = time.monotonic() + timeout
        while True:
            _, line = self.line(max(0.01, deadline - time.monotonic()))
            report = loads_report(line)
            assert dumps_report(report) + "\n" == line
            if condition(report):
                return report

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=10)
        return code, self.process.stderr.read().decode()


@pytest.fixture
def busy_session(address):
    """A runtime tagged "monitored" on NeuronCores 4-5, executing on core 4 until the test ends."""
    with Session(address, visible_cores="4-5", tag="monitored", command="pytest app") as session:
        # Thousands of matmul steps: milliseconds of modeled device time per execution.
        program = mlp_program(weights=np.ones((128, 256), np.float32), repeat=2000)
        model = session.load_model("mlp", {4: program})
        x = session.tensor_from(np.ones((128, 64), np.float32), core_id=4)
        out = session.allocate((64, 256), "float32", core_id=4)
        rowmax = session.allocate((64, 1), "float32", core_id=4)
        # In-daemon load: the core is busy at the modeled rate however loaded this machine is (calls
        # from a thread here would keep it busy only as far as the client keeps up).
        load = model.start_load({"xT": x, "out": out, "rowmax": rowmax}, in_flight_per_core=1)
        try:
            yield session
        finally:
            load.stop()


def _ours(report):
    return next((r for r in report.neuron_runtime_data if r.neuron_runtime_tag == "monitored"), None)


def test_the_stream_reports_a_busy_runtime_per_period(address, busy_session, tmp_path):
    config = {"period": "200ms", "neuron_runtimes": [{"tag_filter": "^monitored$", "metrics": [
        {"type": "neuroncore_counters"}, {"type": "memory_used"}, {"type": "execution_stats"},
        {"type": "neuron_runtime_vcpu_usage"}]}],
        "system_metrics": [{"type": "vcpu_usage"}, {"type": "memory_info"}, {"type": "neuron_hw_counters"}]}
    monitor = Monitor(address, config, tmp_path)
    try:
        arrived, line = monitor.line()
        assert arrived - monitor.started < 3.0  # the first line comes at once, not after a period
        first = loads_report(line)
        assert dumps_report(first) + "\n" == line
        assert first.neuron_runtime_data[0].report.neuroncore_counters.period < 0.1

        report = monitor.until(lambda r: _ours(r) and _ours(r).report.execution_stats.period > 0.15)
        runtime = _ours(report)
        assert [r.neuron_runtime_tag for r in report.neuron_runtime_data] == ["monitored"]  # tag_filter
        assert runtime.pid == os.getpid() and runtime.error == ""
        counters = runtime.report.neuroncore_counters
        assert 0.15 < counters.period < 1.0
        assert sorted(counters.neuroncores_in_use, key=int) == [str(core) for core in range(24)]
        assert counters.neuroncores_in_use["4"].neuroncore_utilization > 10
        assert counters.neuroncores_in_use["4"].flops > 0
        assert counters.neuroncores_in_use["5"].neuroncore_utilization == 0  # held, idle
        assert counters.neuroncores_in_use["0"].neuroncore_utilization == 0  # not ours
        stats = runtime.report.execution_stats
        assert 0 < stats.execution_summary.completed < 10_000  # this period's, not the total
        assert stats.latency_stats.device_latency.p50 > 0
        memory = runtime.report.memory_used
        assert list(memory.neuron_runtime_used_bytes.usage_breakdown.neuroncore_memory_usage) == ["4", "5"]
        [model] = memory.loaded_models
        assert model.is_running in (True, False) and model.subgraphs["sg_00"].v2 == "nc_v2.4"
        assert runtime.report.neuron_runtime_vcpu_usage.error == ""
        assert report.neuron_hardware_info.neuron_device_count == 12
        assert report.instance_info.instance_id == "i-0123456789abcdef0"
        assert len(report.system_data.vcpu_usage.usage_data) == os.cpu_count()
    finally:
        code, stderr = monitor.stop()
    assert code == 0 and stderr == ""  # SIGTERM: a clean exit, nothing on stderr at --verbose 0


def test_groups_with_a_longer_period_keep_their_last_values_between_refreshes(address, tmp_path):
    config = {"period": "100ms", "system_metrics": [{"type": "memory_info"},
                                                    {"type": "neuron_hw_counters", "period": "300ms"}]}
    monitor = Monitor(address, config, tmp_path)
    try:
        lines = [monitor.line() for _ in range(10)]
    finally:
        monitor.stop()
    reports = [loads_report(line) for _, line in lines[1:]]  # after the first, measured-at-once line
    gaps = [b[0] - a[0] for a, b in zip(lines[1:], lines[2:])]
    assert sum(gaps) / len(gaps) < 0.25  # a line whenever the fastest group is due, not every 300 ms
    memory = [r.system_data.memory_info for r in reports]
    assert all(b != a for a, b in zip(memory, memory[1:]))  # refreshed every line
    hardware = [r.system_data.neuron_hw_counters for r in reports]
    refreshed = [b for a, b in zip(hardware, hardware[1:]) if b != a]
    assert 2 <= len(refreshed) <= len(hardware) // 2  # repeated between refreshes
    # Each period is a measured interval (a slow answer lengthens one and shortens the next), so
    # their sum spans the refreshes; the first runs from the end of the slower first tick.
    assert sum(group.period for group in refreshed[1:]) == pytest.approx(0.3 * (len(refreshed) - 1), abs=0.1)


def test_sigterm_stops_the_monitor_at_once_with_status_0(address, tmp_path):
    monitor = Monitor(address, None, tmp_path)  # the default config: 5 s between lines
    monitor.line()
    stopped = time.monotonic()
    code, stderr = monitor.stop()
    assert time.monotonic() - stopped < 2.0  # woken from its sleep, not at the next period
    assert code == 0 and stderr == ""


def test_a_closed_pipe_ends_the_monitor_quietly(address):
    # The default 5 s period: the monitor must notice the reader left without waiting to write.
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", f'"{NEURON_MONITOR}" | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'],
                            env={**os.environ, "NEURON_DAEMON_ADDRESS": address},  # instead of --address
                            capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 4.0
    assert result.stderr == "status=0\n"  # exit 0, and no traceback
    assert loads_report(result.stdout).neuron_hardware_info.neuron_device_count == 12


def test_the_stream_survives_a_daemon_restart_on_the_same_socket(tmp_path, socket_dir):
    machine = topo.lookup("inf2.xlarge")
    options = ServerOptions(machine=machine, instance=resolve_identity(machine.instance_type, {}),
                            address=f"unix://{socket_dir / 'neurond.sock'}")
    daemon = EmbeddedDaemon(options).start()
    monitor = Monitor(options.address, {"period": "200ms", "neuron_runtimes": [
        {"metrics": [{"type": "execution_stats"}]}], "system_metrics": [{"type": "neuron_hw_counters"}]},
        tmp_path, "--verbose", "2")
    try:
        with Session(options.address, tag="before"):
            monitor.until(lambda r: [x.neuron_runtime_tag for x in r.neuron_runtime_data] == ["before"])
        daemon.stop()
        down = monitor.until(lambda r: r.neuron_hardware_info.error != "")
        assert down.neuron_runtime_data == []
        assert down.neuron_hardware_info.error.startswith(f"cannot reach neurond at {options.address}")
        assert down.system_data.neuron_hw_counters.error == down.neuron_hardware_info.error
        assert down.system_data.neuron_hw_counters.neuron_devices is None
        arrivals = [monitor.line()[0] for _ in range(3)]  # the stream goes on at its period
        assert arrivals[-1] - arrivals[0] < 1.0

        daemon = EmbeddedDaemon(options).start()
        restarted = time.monotonic()
        with Session(options.address, tag="after"):
            back = monitor.until(lambda r: [x.neuron_runtime_tag for x in r.neuron_runtime_data] == ["after"])
        assert time.monotonic() - restarted < 3.0  # recovered by itself within a few periods
        assert back.neuron_hardware_info.error == "" and back.system_data.neuron_hw_counters.error == ""
    finally:
        code, stderr = monitor.stop()
        daemon.stop()
    assert code == 0
    assert "WARN[" in stderr and "cannot reach neurond" in stderr  # --verbose 2 logs the outage once
    assert stderr.count("cannot reach neurond") == 1


# --- /metrics served by neuron-monitor itself --------------------------------------------------


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _reports_served(exposition: str) -> float:
    return next(float(line.split()[1]) for line in exposition.splitlines()
                if line.startswith("neuron_monitor_reports_total "))


# Self-metrics of the moment: how long ago the report came, how long this scrape took.
_OF_THE_MOMENT = ("neuron_monitor_report_age_seconds", "neuron_monitor_scrape_duration_seconds")


def _report_lines(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if not any(name in line for name in _OF_THE_MOMENT)]


def test_its_own_metrics_are_what_the_piped_companion_serves_for_the_same_report(address, busy_session, tmp_path):
    config = tmp_path / "monitor.conf"
    config.write_text(json.dumps({"period": "2s", "neuron_runtimes": [{"metrics": [  # every group there is
        {"type": group} for group in ("neuroncore_counters", "memory_used", "neuron_runtime_vcpu_usage",
                                      "execution_stats")]}],
        "system_metrics": [{"type": "vcpu_usage"}, {"type": "memory_info"}, {"type": "neuron_hw_counters"}]}))
    monitor = subprocess.Popen(
        [NEURON_MONITOR, "--address", address, "-c", str(config), "--verbose", "3", "--prometheus-port", "0",
         "--prometheus-listen-address", "127.0.0.1", "--prometheus-lean"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    companion = subprocess.Popen([COMPANION, "--port", "0", "--listen-address", "127.0.0.1", "--lean"],
                                 stdin=monitor.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        companion_port = int(companion.stdout.readline().rsplit(" ", 1)[1])
        served = ""
        while "serving Prometheus metrics on 127.0.0.1:" not in served:
            served = monitor.stderr.readline()
            assert served, "neuron-monitor ended without serving"
        monitor_port = int(served.rsplit(":", 1)[1])
        deadline = time.monotonic() + 20
        while True:  # the second report (a full period, the runtime busy), in both, before the third
            assert time.monotonic() < deadline
            own, piped = _scrape(monitor_port), _scrape(companion_port)
            if _reports_served(own) == _reports_served(piped) == 2 and _reports_served(_scrape(monitor_port)) == 2:
                break
            time.sleep(0.05)
        assert _report_lines(own) == _report_lines(piped)
        assert re.search(r'^execution_status_total\{.*runtime_tag="monitored",status_type="completed",.*\} [1-9]', own,
                         re.MULTILINE)
        assert any(line.startswith("neuroncore_utilization_ratio{") and 'neuroncore="4"' in line
                   and 'runtime_tag="monitored"' in line and not line.endswith(" 0.0") for line in own.splitlines())
        assert "neuron_monitor_up 1.0" in own and "_created" not in own and "python_gc" not in own
    finally:
        monitor.send_signal(signal.SIGTERM)
        code = monitor.wait(timeout=10)
        companion.kill()
        companion.wait()
    assert code == 0 and "Traceback" not in monitor.stderr.read()


def test_a_taken_prometheus_port_exits_1_with_a_clear_error(address):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([NEURON_MONITOR, "--address", address, "--prometheus-port", str(port),
                                 "--prometheus-listen-address", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stdout == ""  # not a single report
    assert result.stderr.startswith(f"neuron-monitor: cannot serve Prometheus metrics on 127.0.0.1:{port}: ")
    assert "Address already in use" in result.stderr and result.stderr.count("\n") == 1
