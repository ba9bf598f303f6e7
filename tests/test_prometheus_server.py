"""A real Prometheus server scrapes neuron-monitor-prometheus; its HTTP API shows the series.

Debian's `prometheus` package runs on loopback with a config, rules and storage in a temporary
directory, scraping every second an exporter fed reports through a pipe, as after
`neuron-monitor |`. The queries of our dashboard, of AWS's dashboard and of our alert rules all
run against it.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from real_components import real_program

from test_deploy import AWS_DASHBOARD_QUERIES, dashboard_queries

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
CAPTURE = json.loads((Path(__file__).parent / "data" / "captures" / "inf1-xlarge-one-app-2023.json").read_text())
EXPORTER = str(Path(sys.executable).parent / "neuron-monitor-prometheus")
RUNTIME = 'runtime_tag="15439"'
# Grafana's variables, as Grafana would fill them in for "All" over the last few minutes.
GRAFANA_VARIABLES = {"$instance_id": ".*", "$runtime_tag": ".*", "$__rate_interval": "1m", "$__range": "5m"}


def reports() -> list[str]:
    """Three periods of the inf1 capture's application: 10, 20 and 30 completed executions."""
    lines = []
    for completed in (10, 20, 30):
        data = copy.deepcopy(CAPTURE)
        data["neuron_runtime_data"][0]["report"]["execution_stats"]["execution_summary"]["completed"] = completed
        data["neuron_hardware_info"]["neuron_device_memory_size"] = 8589934592
        lines.append(json.dumps(data))
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class Prometheus:
    def __init__(self, binary: str, directory: Path, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ROOT / "deploy" / "prometheus" / "neuron-alerts.yml")],
            "scrape_configs": [{"job_name": "neuron-monitor",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, "prometheus exited; see prometheus.log in the test's tmp_path"
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus never became ready"
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict]:
        answer = get_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, promql: str, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not (result := self.query(promql)):
            assert time.monotonic() < deadline, f"no result for {promql}"
            time.sleep(0.25)
        return result

    def value(self, promql: str) -> float:
        [sample] = self.wait_for(promql)
        return float(sample["value"][1])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    return real_program("prometheus", "prometheus")


@pytest.fixture(scope="module")
def server(prometheus_binary, tmp_path_factory):
    exporter = subprocess.Popen(
        [EXPORTER, "--port", "0", "--listen-address", "127.0.0.1", "--stale-after", "600"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    prometheus = None
    try:
        port = int(exporter.stdout.readline().rsplit(" ", 1)[1])
        exporter.stdin.write("".join(line + "\n" for line in reports()))
        exporter.stdin.flush()  # the pipe stays open, as neuron-monitor's would
        prometheus = Prometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus"), port)
        prometheus.wait_ready()
        prometheus.wait_for('up{job="neuron-monitor"} == 1')
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        exporter.terminate()
        exporter.wait(timeout=30)


def test_prometheus_scrapes_the_exporter_cleanly(server):
    [target] = get_json(f"{server.url}/api/v1/targets")["data"]["activeTargets"]

    assert target["health"] == "up", target["lastError"]
    assert server.value("neuron_monitor_up") == 1
    assert server.value("neuron_monitor_reports_total") == 3


def test_series_hold_the_reports_values(server):
    assert server.value(f'execution_status_total{{{RUNTIME},status_type="completed"}}') == 60
    assert server.value(f'execution_errors_total{{{RUNTIME},error_type="hardware"}}') == 0
    assert server.value(f'neuroncore_utilization_ratio{{{RUNTIME},neuroncore="0"}}') == 0.8901827638996558
    assert server.value(f'neuron_runtime_memory_used_bytes{{{RUNTIME},memory_location="neuron_device"}}') == 63118912
    assert server.value(f'neuroncore_memory_usage_constants{{{RUNTIME},neuroncore="0"}}') == 61766864
    assert server.value(f'execution_latency_seconds{{{RUNTIME},percentile="p99"}}') == 0.003339529037475586
    assert server.value('system_memory_total_bytes{instance_type="inf1.xlarge"}') == 8033951744
    assert server.value('hardware_ecc_events_total{neuron_device_index="0",event_type="mem_ecc_uncorrected"}') == 0
    assert server.value('instance_info{instance_id="i-0823d657f57057590",region="us-east-2"}') == 1
    assert server.value('neuron_hardware_info{neuron_device_memory_size="8589934592"}') == 1
    assert len(server.wait_for("neuroncore_device_info")) == 4


def test_aws_dashboard_queries_all_return_data(server):
    server.wait_for(f"rate(execution_status_total{{{RUNTIME}}}[1m])")  # two scrapes in

    empty = [query for query in AWS_DASHBOARD_QUERIES if not server.query(query)]

    # The error-rate panel counts non-completed executions: all zero here, but present.
    assert empty == []


def test_our_dashboard_queries_are_valid_promql_and_mostly_answered(server):
    server.wait_for(f"rate(execution_status_total{{{RUNTIME}}}[1m])")
    queries = [re.sub(r"\$\{?\w+\}?", lambda match: GRAFANA_VARIABLES[match.group().replace("{", "").replace("}", "")],
                      query) for query in dashboard_queries()]

    answered = [query for query in queries if server.query(query)]

    # The one query with nothing to show on a healthy host: the table of groups with errors.
    assert sorted(set(queries) - set(answered)) == ["neuron_monitor_group_success == 0"]


def test_alert_rules_load_and_evaluate(server):
    deadline = time.monotonic() + 30
    while True:
        groups = get_json(f"{server.url}/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.25)

    assert {rule["name"]: rule["health"] for rule in rules} == {
        name: "ok" for name in (
            "NeuronMonitorExporterDown", "NeuronMonitorExporterAbsent", "NeuronMonitorReportsStale",
            "NeuronCoreIdleWithModelLoaded", "NeuronExecutionErrors", "NeuronUncorrectedEccEvents",
            "NeuronDeviceMemoryHigh", "NeuronExecutionTimeouts", "NeuronExecutionLatencyRegression",
            "NeuronDeviceReset", "NeuronDeviceMemoryLeak")}
    assert [rule["name"] for rule in rules if rule["state"] != "inactive"] == []


# --- the whole pipeline: neurond, a workload, neuron-monitor | neuron-monitor-prometheus ------------

NEURON_MONITOR = str(Path(sys.executable).parent / "neuron-monitor")
X_BYTES, OUT_BYTES, ROWMAX_BYTES, WEIGHT_BYTES = 128 * 64 * 4, 64 * 256 * 4, 64 * 4, 128 * 256 * 4


@pytest.fixture
def busy_workload(address):
    """A runtime tagged "served" on NeuronCores 4-5, executing on core 4 until the test ends."""
    import threading

    import numpy as np

    from neurontools.client import Session
    from neurontools.kernels.examples import mlp_program

    with Session(address, visible_cores="4-5", tag="served", command="pytest workload") as session:
        model = session.load_model("mlp", {4: mlp_program(weights=np.ones((128, 256), np.float32), repeat=2000)})
        x = session.tensor_from(np.ones((128, 64), np.float32), core_id=4)
        out = session.allocate((64, 256), "float32", core_id=4)
        rowmax = session.allocate((64, 1), "float32", core_id=4)
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True)

        worker = threading.Thread(target=run)
        worker.start()
        try:
            yield session
        finally:
            stop.set()
            worker.join()


def test_pipeline_from_a_live_daemon_to_prometheus(prometheus_binary, address, busy_workload, tmp_path):
    config = tmp_path / "monitor.conf"
    config.write_text(json.dumps({"period": "500ms", "neuron_runtimes": [{"tag_filter": "^served$", "metrics": [
        {"type": "neuroncore_counters"}, {"type": "memory_used"}, {"type": "execution_stats"},
        {"type": "neuron_runtime_vcpu_usage"}]}], "system_metrics": [
        {"type": "vcpu_usage"}, {"type": "memory_info"}, {"type": "neuron_hw_counters"}]}))
    monitor = subprocess.Popen([NEURON_MONITOR, "-c", str(config), "--address", address],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    exporter = subprocess.Popen([EXPORTER, "--port", "0", "--listen-address", "127.0.0.1"],
                                stdin=monitor.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    monitor.stdout.close()  # the exporter owns the pipe now, as after `neuron-monitor |`
    prometheus = None
    try:
        port = int(exporter.stdout.readline().rsplit(" ", 1)[1])
        prometheus = Prometheus(prometheus_binary, tmp_path, port)
        prometheus.wait_ready()
        served = 'runtime_tag="served"'
        prometheus.wait_for(f'increase(execution_status_total{{{served},status_type="completed"}}[1m]) > 0')

        assert prometheus.value("neuron_monitor_up") == 1
        assert prometheus.value(f'neuroncore_utilization_ratio{{{served},neuroncore="4"}}') > 0
        assert prometheus.value(f'neuroncore_utilization_ratio{{{served},neuroncore="0"}}') == 0
        assert prometheus.value(f'neuroncore_memory_usage_tensors{{{served},neuroncore="4"}}') >= (
            X_BYTES + OUT_BYTES + ROWMAX_BYTES)
        assert prometheus.value(f'neuroncore_memory_usage_constants{{{served},neuroncore="4"}}') == WEIGHT_BYTES
        assert prometheus.value(f'neuroncore_memory_usage_model_code{{{served},neuroncore="4"}}') > 0
        assert prometheus.value(f'neuron_runtime_memory_used_bytes{{{served},memory_location="neuron_device"}}') > 0
        assert prometheus.value('instance_info{instance_id="i-0123456789abcdef0",instance_type="inf2.48xlarge"}') == 1
        assert len(prometheus.wait_for("neuroncore_device_info")) == 24
        assert prometheus.value(f'execution_latency_seconds{{{served},percentile="p50"}}') > 0
    finally:
        if prometheus is not None:
            prometheus.stop()
        monitor.terminate()
        exporter.terminate()
        monitor.wait(timeout=30)
        exporter.wait(timeout=30)
