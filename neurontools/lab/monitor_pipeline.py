"""`neuron-monitor | neuron-monitor-prometheus` as two child processes for one daemon, and their stop
(neuron-lab runs one pipeline, neuron-fleet one per host)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from neurontools.monitor.config import RUNTIME_GROUPS, SYSTEM_GROUPS


def start_monitor_pipeline(directory: Path, address: str, port: int, period: float, stale_after: float,
                   connection_flags: list[str] = ()) -> tuple[subprocess.Popen, subprocess.Popen]:
    """neuron-monitor | neuron-monitor-prometheus: two processes, so either can fail on its own."""
    config = directory / "monitor.conf"
    period_text = go_duration(period)
    config.write_text(json.dumps({
        "period": period_text,
        "neuron_runtimes": [{"tag_filter": ".*", "metrics": [{"type": name} for name in RUNTIME_GROUPS]}],
        "system_metrics": [{"type": name} for name in (*SYSTEM_GROUPS, "neurond_totals")]}))
    log = open(directory / "neuron-monitor.log", "wb")
    with log:
        monitor = subprocess.Popen([sys.executable, "-m", "neurontools.monitor.cli", "-c", str(config),
                                    "--address", address, *connection_flags],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        try:
            exporter = subprocess.Popen(
                [sys.executable, "-m", "neurontools.monitor.prometheus_cli", "--port", str(port),
                 "--listen-address", "127.0.0.1", "--stale-after", f"{max(1.0, stale_after):g}"],
                stdin=monitor.stdout, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        except BaseException:
            stop_process(monitor)
            raise
    monitor.stdout.close()  # the exporter holds the pipe's read end
    return monitor, exporter


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def go_duration(seconds: float) -> str:
    """A Prometheus/Go duration, at least 1 s."""
    return f"{max(1000, round(seconds * 1000))}ms"
