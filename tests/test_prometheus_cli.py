"""neuron-monitor-prometheus: what it accepts on stdin, and the process a user runs."""

from __future__ import annotations

import copy
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from neurontools.monitor.prometheus_cli import UnreadableLine, parse_report_line

CAPTURES = Path(__file__).parent / "data" / "captures"
CAPTURE = json.loads((CAPTURES / "inf1-xlarge-one-app-2023.json").read_text())
COMMAND = str(Path(sys.executable).parent / "neuron-monitor-prometheus")


def line(data: dict) -> str:
    return json.dumps(data)


def edited(edit) -> str:
    data = copy.deepcopy(CAPTURE)
    edit(data)
    return line(data)


# --- what is accepted ------------------------------------------------------------------------


def test_a_real_report_is_read_whole():
    report, notes = parse_report_line(line(CAPTURE))

    assert notes == []
    assert report.neuron_runtime_data[0].neuron_runtime_tag == "15439"


def test_broken_json_is_rejected_with_the_companions_message():
    with pytest.raises(UnreadableLine, match=r"^Unable to decode JSON Expecting"):
        parse_report_line('{"neuron_runtime_data": [')


def test_json_that_is_not_an_object_is_rejected():
    with pytest.raises(UnreadableLine, match="a JSON list, not an object"):
        parse_report_line("[1, 2]")


def test_a_report_without_instance_info_is_rejected_naming_the_field():
    # AWS's script cannot take it either: it reads instance_info on the first report.
    with pytest.raises(UnreadableLine, match=r"instance_info: Field required"):
        parse_report_line(edited(lambda data: data.pop("instance_info")))


def test_missing_groups_are_fine():
    def drop_groups(data: dict) -> None:
        data["neuron_runtime_data"][0]["report"].pop("neuroncore_counters")
        data["system_data"].pop("vcpu_usage")

    report, notes = parse_report_line(edited(drop_groups))

    assert notes == []
    assert report.neuron_runtime_data[0].report.neuroncore_counters is None
    assert report.system_data.vcpu_usage is None


def test_unknown_keys_and_groups_of_newer_tools_are_fine():
    def add_unknown(data: dict) -> None:
        data["schema_version"] = 3
        data["neuron_runtime_data"][0]["report"]["dma_counters"] = {"period": 1.0, "error": "", "bytes": 5}
        data["system_data"]["power"] = {"period": 1.0, "error": "", "watts": 42}
        data["neuron_runtime_data"][0]["report"]["execution_stats"]["error_summary"]["thermal"] = 0

    report, notes = parse_report_line(edited(add_unknown))

    assert notes == []
    assert report.neuron_runtime_data[0].report.execution_stats.error_summary.model_extra == {"thermal": 0}


def test_older_tools_reports_are_fine():
    # SDK 2.3-era: hardware info with counts only, `inference_stats` (no handler in AWS's script).
    def make_old(data: dict) -> None:
        runtime_report = data["neuron_runtime_data"][0]["report"]
        runtime_report["inference_stats"] = runtime_report.pop("execution_stats")
        data["neuron_hardware_info"] = {"neuron_device_count": 1, "neuroncore_per_device_count": 4, "error": ""}

    report, notes = parse_report_line(edited(make_old))

    assert notes == []
    assert report.neuron_runtime_data[0].report.execution_stats is None


def test_a_group_that_does_not_fit_is_left_out_and_the_rest_kept():
    def break_groups(data: dict) -> None:
        data["neuron_runtime_data"][0]["report"]["memory_used"].pop("loaded_models")
        data["system_data"]["vcpu_usage"]["usage_data"]["0"]["user"] = "busy"

    report, notes = parse_report_line(edited(break_groups))

    runtime_report = report.neuron_runtime_data[0].report
    assert runtime_report.memory_used is None and runtime_report.neuroncore_counters is not None
    assert report.system_data.vcpu_usage is None and report.system_data.memory_info is not None
    assert notes == [
        "left out memory_used of runtime entry 0 (neuron_runtime_data.0.report.memory_used.loaded_models: "
        "Field required)",
        "left out vcpu_usage (system_data.vcpu_usage.usage_data.0.user: Input should be a valid number, "
        "unable to parse string as a number)",
    ]


def test_a_runtime_entry_that_does_not_fit_is_left_out():
    def two_runtimes_one_broken(data: dict) -> None:
        broken = copy.deepcopy(data["neuron_runtime_data"][0])
        broken.pop("pid")
        broken["neuron_runtime_tag"] = "broken"
        data["neuron_runtime_data"].insert(0, broken)

    report, notes = parse_report_line(edited(two_runtimes_one_broken))

    assert [runtime.neuron_runtime_tag for runtime in report.neuron_runtime_data] == ["15439"]
    assert notes == ["left out runtime entry 0 (neuron_runtime_data.0.pid: Field required)"]


def test_bytes_that_are_not_utf8_are_rejected_not_fatal():
    with pytest.raises(UnreadableLine):
        parse_report_line(b'{"neuron_runtime_data": "\xff\xfe"}')


# --- the process ---------------------------------------------------------------------------


class Companion:
    """neuron-monitor-prometheus with a pipe on stdin, as after `neuron-monitor |`."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [COMMAND, "--port", "0", "--listen-address", "127.0.0.1", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.process.stdout.readline().strip()
        self.port = int(self.banner.rsplit(" ", 1)[1])

    def send(self, *lines: str) -> None:
        for text in lines:
            self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            return response.read().decode()

    def value(self, sample: str) -> float | None:
        for text in self.scrape().splitlines():
            if text.startswith(sample + " "):
                return float(text.rsplit(" ", 1)[1])
        return None

    def wait_for(self, sample: str, expected: float) -> None:
        deadline = time.monotonic() + 10
        while self.value(sample) != expected:
            assert time.monotonic() < deadline, f"{sample} never became {expected}: {self.value(sample)}"
            time.sleep(0.05)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        returncode = self.process.wait(timeout=10)
        return returncode, self.process.stderr.read()


@pytest.fixture
def companion():
    running = Companion()
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def test_serves_reports_from_stdin_and_survives_a_broken_line(companion):
    assert companion.banner == f"Running HTTP prometheus server at port {companion.port}"

    companion.send(line(CAPTURE), "this is not json", line(CAPTURE))
    companion.wait_for("neuron_monitor_reports_total", 2)

    assert companion.value("neuron_monitor_rejected_lines_total") == 1
    assert companion.value("neuron_monitor_up") == 1
    assert 'execution_status_total{availability_zone="us-east-2a"' in companion.scrape()
    returncode, stderr = companion.stop()
    assert returncode == 0
    assert "Unable to decode JSON Expecting value: line 1 column 1 (char 0)" in stderr


def test_keeps_serving_after_the_input_ends(companion):
    companion.send(line(CAPTURE))
    companion.process.stdin.close()
    companion.wait_for("neuron_monitor_reports_total", 1)
    time.sleep(0.2)

    assert companion.process.poll() is None
    assert companion.value("neuron_monitor_up") == 1
    returncode, stderr = companion.stop()
    assert returncode == 0
    assert "end of input" in stderr


def test_https_banner_and_scrape(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    running = Companion("--cert-file", str(cert), "--key-file", str(key))
    try:
        assert running.banner == f"Running HTTPS prometheus server at port {running.port}"
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{running.port}/", timeout=10, context=context) as response:
            assert b"neuron_monitor_up 0.0" in response.read()
    finally:
        assert running.stop()[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--key-file", "key.pem"], "--key-file and --cert-file go together"),
    (["--stale-after", "0"], "--stale-after must be a positive number"),
    (["--port", "eighty"], "invalid int value: 'eighty'"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = subprocess.run([COMMAND, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)

    assert result.returncode == 2
    assert message in result.stderr


def test_a_taken_port_exits_1_with_a_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([COMMAND, "--port", str(port), "--listen-address", "127.0.0.1"],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)

    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""
