"""neuron-monitor-prometheus: the process a user runs (what it accepts: test_monitor_report_stream)."""

from __future__ import annotations

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

CAPTURES = Path(__file__).parent / "data" / "captures"
CAPTURE = json.loads((CAPTURES / "inf1-xlarge-one-app-2023.json").read_text())
COMMAND = str(Path(sys.executable).parent / "neuron-monitor-prometheus")


def line(data: dict) -> str:
    return json.dumps(data)


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
