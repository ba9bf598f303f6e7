"""No execution is lost on the way to Prometheus: N processes x M executions, errors mixed in,
each process exiting right after its last execution; a real Prometheus scraping neuron-monitor's
exporter counts exactly N x M by status in our neurond_execution_status_total series.

The faithful execution_status_total (AWS's family, per-period sums) misses a runtime's last period,
as the real tool does; the test shows that too, so the difference stays documented behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neurontools.daemon.server.embedded import running_daemon
from neurontools.lab.prometheus_server import PROMETHEUS, PrometheusServer, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
PROCESSES, EXECUTIONS = 4, 30

# One client process: M executions on its own core of its own device; every 5th one meets NaN
# outputs, every 7th an uncorrectable HBM ECC error (the next execution on the device fails).
CLIENT = textwrap.dedent("""
    import sys
    import numpy as np
    from neurontools.client import Device, Session
    from neurontools.kernels.examples import mlp_program
    address, index, executions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    core = 2 * index
    with Device(address) as device, Session(address, visible_cores=str(core), tag=f"client-{index}") as session:
        model = session.load_model("mlp", {core: mlp_program(weights=np.ones((128, 256), np.float32))})
        x = session.tensor_from(np.ones((128, 64), np.float32), core_id=core)
        out = session.allocate((64, 256), "float32", core_id=core)
        rowmax = session.allocate((64, 1), "float32", core_id=core)
        for j in range(executions):
            fault = None
            if j % 5 == 3:
                fault = device.inject_fault("numerical_error", core=core)
            elif j % 7 == 5:
                device.inject_fault("mem_ecc_uncorrected", device=index)
            model.execute(xT=x, out=out, rowmax=rowmax, timing_only=True, check=False)
            if fault is not None:
                device.clear_faults(fault.fault_id)
    # exits at once: its last period never reaches execution_stats
""")


def expected_by_status() -> dict[str, int]:
    """From the schedule above, by hand: j % 5 == 3 -> numerical, else j % 7 == 5 -> hardware error."""
    numerical = sum(1 for j in range(EXECUTIONS) if j % 5 == 3)
    hardware = sum(1 for j in range(EXECUTIONS) if j % 5 != 3 and j % 7 == 5)
    return {"completed": EXECUTIONS - numerical - hardware, "completed_with_num_err": numerical,
            "completed_with_err": hardware}


def test_prometheus_counts_every_execution_by_status(tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run scripts/install-system-deps.sh (Debian's prometheus)")
    config = tmp_path / "monitor.conf"
    config.write_text(json.dumps({"period": "1s", "neuron_runtimes": [{"metrics": [{"type": "execution_stats"}]}],
                                  "system_metrics": [{"type": "neurond_totals"}]}))
    port = free_port()
    with running_daemon("inf2.48xlarge") as daemon:
        monitor = subprocess.Popen([str(BIN / "neuron-monitor"), "-c", str(config), "--address", daemon.address,
                                    "--prometheus-port", str(port), "--prometheus-listen-address", "127.0.0.1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with PrometheusServer(targets=[f"127.0.0.1:{port}"], rule_files=[], scrape_interval="1s",
                                  evaluation_interval="1s") as prometheus:
                clients = [subprocess.Popen([sys.executable, "-c", CLIENT, daemon.address, str(i), str(EXECUTIONS)])
                           for i in range(PROCESSES)]
                assert all(c.wait(120) == 0 for c in clients)
                expected = {f"client-{i}": expected_by_status() for i in range(PROCESSES)}
                deadline, got = time.monotonic() + 30, {}
                while time.monotonic() < deadline:
                    got = _by_tag(prometheus.query('neurond_execution_status_total{status_type=~"completed.*"} > 0'))
                    if got == expected:
                        break
                    time.sleep(1)
                assert got == expected
                total = prometheus.query("sum(neurond_execution_status_total)")
                assert float(total[0]["value"][1]) == PROCESSES * EXECUTIONS
                # AWS's per-period family misses each runtime's last period (at most all of it).
                faithful = prometheus.query("sum(execution_status_total)")
                assert not faithful or float(faithful[0]["value"][1]) <= PROCESSES * EXECUTIONS
        finally:
            monitor.terminate()
            monitor.wait(10)


def _by_tag(result: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for series in result:
        labels = series["metric"]
        out.setdefault(labels["runtime_tag"], {})[labels["status_type"]] = int(float(series["value"][1]))
    return out
