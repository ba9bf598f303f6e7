"""neuron-top --fleet: the hosts of a discovery file, scraped from their exporters; sorting, filtering,
a host that goes down, and Enter into a host's usual screen in a real terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from real_components import private_tmux
from test_top_fixtures import run, screen_text, wait_until

from neurontools.top.fleet_app import FleetTopApp, cells
from neurontools.top.fleet_source import FleetSource, FleetSourceError, FleetTarget, HostSample, load_targets, parse_host

LABELS = 'instance_type="inf2.xlarge",instance_name="h"'
# What an exporter of a host with two cores, one of them busy with two runtimes, shows (docs/exporters.md).
EXPOSITION = f"""# HELP neuroncore_device_info x
# TYPE neuroncore_device_info gauge
neuroncore_device_info{{{LABELS},neuroncore="0",neuron_device_index="0"}} 1
neuroncore_device_info{{{LABELS},neuroncore="1",neuron_device_index="0"}} 1
# TYPE neuroncore_utilization_ratio gauge
neuroncore_utilization_ratio{{{LABELS},neuroncore="0",runtime_tag="a"}} 0.5
neuroncore_utilization_ratio{{{LABELS},neuroncore="0",runtime_tag="b"}} 0.25
neuroncore_utilization_ratio{{{LABELS},neuroncore="1",runtime_tag="a"}} 0.005
# TYPE neuron_runtime_memory_used_bytes gauge
neuron_runtime_memory_used_bytes{{{LABELS},memory_location="neuron_device",runtime_tag="a"}} 1000
neuron_runtime_memory_used_bytes{{{LABELS},memory_location="neuron_device",runtime_tag="b"}} 24
neuron_runtime_memory_used_bytes{{{LABELS},memory_location="host",runtime_tag="a"}} 99999
# TYPE neuron_device_memory_size_bytes gauge
neuron_device_memory_size_bytes{{{LABELS},neuron_device_index="0"}} 34359738368
# TYPE neurond_execution_status_total counter
neurond_execution_status_total{{{LABELS},runtime_tag="a",status_type="completed"}} 90
neurond_execution_status_total{{{LABELS},runtime_tag="a",status_type="timed_out"}} 10
# TYPE neurond_execution_errors_total counter
neurond_execution_errors_total{{{LABELS},runtime_tag="a",error_type="hardware"}} 10
# TYPE neuron_monitor_up gauge
neuron_monitor_up 1
"""


def test_a_host_from_its_exporters_series():
    sample = parse_host(EXPOSITION)
    # By hand: 2 cores; core 0 at 0.5 + 0.25 (two runtimes) is busy, core 1 at 0.5 % is not; mean 0.3775;
    # HBM 1000 + 24 bytes on the device (host memory not counted) of 32 GiB; 100 executions, 10 errors.
    assert sample == HostSample(True, cores=2, busy_cores=1, utilization=pytest.approx(0.3775), hbm_used=1024,
                                hbm_total=34359738368, executions=100.0, errors=10.0)
    down = parse_host(EXPOSITION.replace("neuron_monitor_up 1", "neuron_monitor_up 0"))
    assert not down.up and "neuron-monitor is not reporting" in down.problem


def _target(host: str, az: str = "us-east-2a", address: str = "") -> FleetTarget:
    return FleetTarget(host, "inf2.xlarge", az, f"http://{host}/metrics", address)


def test_rates_come_from_each_hosts_own_history():
    clock = [0.0]
    counters = {"a": [(0, 0), (500, 2), (1500, 2), (1500, 5)]}  # (executions, errors) per read

    def scraper(target: FleetTarget) -> HostSample:
        executions, errors = counters[target.host].pop(0)
        return HostSample(True, 2, 2, 1.0, 0, 1, float(executions), float(errors))

    source = FleetSource([_target("a")], scraper=scraper, clock=lambda: clock[0])
    try:
        first = source.read()[0]
        assert first.executions_per_s is None and first.errors_last_minute is None  # one sample: no rate yet
        clock[0] = 2.0
        second = source.read()[0]
        assert second.executions_per_s == 250.0 and second.errors_last_minute == 2.0  # 500 in 2 s; 2 errors
        clock[0] = 70.0  # the first two samples are now more than a minute old
        third = source.read()[0]
        assert third.executions_per_s == pytest.approx(1000 / 68) and third.errors_last_minute == 0.0
        clock[0] = 71.0
        assert source.read()[0].errors_last_minute == 3.0
    finally:
        source.close()


def test_bad_discovery_files_are_refused_with_what_to_give(tmp_path):
    with pytest.raises(FleetSourceError, match="cannot read the discovery file"):
        load_targets(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(FleetSourceError, match="not a Prometheus file_sd discovery file .it is not JSON"):
        load_targets(tmp_path / "junk.json")
    (tmp_path / "shape.json").write_text('{"targets": []}')
    with pytest.raises(FleetSourceError, match="must be a list of"):
        load_targets(tmp_path / "shape.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(FleetSourceError, match="the fleet is empty"):
        load_targets(tmp_path / "empty.json")
    with pytest.raises(FleetSourceError, match="is `neuron-fleet up` running"):
        load_targets(tmp_path)
    done = subprocess.run([sys.executable, "-m", "neurontools.top", "--fleet", str(tmp_path / "empty.json")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "the fleet is empty" in done.stderr


class FakeFleet:
    """Three hosts, one of them down, with fixed figures."""

    def __init__(self) -> None:
        self.targets = [_target("h-a", "us-east-2b"), _target("h-b", "us-east-2a"), _target("h-c", "us-east-2c")]

    def read(self):
        from neurontools.top.fleet_source import FleetRow

        a, b, c = self.targets
        return [FleetRow(a, HostSample(True, 2, 1, 0.30, 2**30, 2**35, 10.0, 1.0), 120.0, 1.0, [0.3, 0.3]),
                FleetRow(b, HostSample(True, 2, 2, 0.90, 2**31, 2**35, 20.0, 0.0), 480.0, 0.0, [0.9, 0.9]),
                FleetRow(c, HostSample(False, problem="cannot scrape http://h-c/metrics: refused"), None, None, [])]

    def close(self) -> None:
        pass


def _hosts_in_order(app) -> list[str]:
    return [line.split()[0] for line in screen_text(app).splitlines() if line.strip().startswith("h-")]


def test_sort_filter_and_a_down_host():
    async def body():
        app = FleetTopApp(FakeFleet(), interval=60)
        async with app.run_test(size=(160, 20)) as pilot:
            await wait_until(pilot, lambda: len(_hosts_in_order(app)) == 3)
            text = screen_text(app)
            assert "2/3 hosts up, 3/4 cores busy; sorted by host" in text
            assert "DOWN" in text and "cannot scrape http://h-c/metrics: refused" in text
            assert "1.0GB / 32.0GB" in text
            assert _hosts_in_order(app) == ["h-a", "h-b", "h-c"]
            await pilot.press("s")  # util, busiest first; a down host last
            await wait_until(pilot, lambda: "sorted by util" in screen_text(app))
            assert _hosts_in_order(app) == ["h-b", "h-a", "h-c"]
            await pilot.press("r")
            await wait_until(pilot, lambda: "(reversed)" in screen_text(app))
            assert _hosts_in_order(app) == ["h-c", "h-a", "h-b"]
            await pilot.press("slash", "2", "a")  # AZ us-east-2a
            await wait_until(pilot, lambda: _hosts_in_order(app) == ["h-b"])
            assert "filter '2a': 1 shown" in screen_text(app)
            await pilot.press("escape")
            await wait_until(pilot, lambda: len(_hosts_in_order(app)) == 3)
    run(body())


def test_a_down_hosts_cells_say_why():
    row = FakeFleet().read()[2]
    assert cells(row)[3] == "DOWN" and cells(row)[-1].startswith("cannot scrape")


# -- a real fleet in a real terminal ---------------------------------------------------------------

FLEET = """
import signal, sys, tempfile
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # sigwait takes it, so the hosts are stopped
from pathlib import Path
from neurontools.fleet.discovery import write_targets
from neurontools.fleet.host import Host
from neurontools.fleet.spec import fleet_hosts
directory = Path(tempfile.mkdtemp(prefix="top-fleet-", dir=sys.argv[2]))
hosts = [Host(s, directory / s.name, monitor_period=1.0).start()
         for s in fleet_hosts(hosts=2, instance_type="inf2.xlarge", name="tf")]
write_targets(Path(sys.argv[1]), hosts)
print(" ".join(str(h.exporter.pid) for h in hosts), flush=True)
try:
    signal.sigwait({signal.SIGTERM})
finally:
    for h in hosts:
        h.stop()
"""


def _screen(tmux: list[str]) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", "fleet"], capture_output=True, text=True).stdout


def _wait_screen(tmux: list[str], condition, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _screen(tmux)
        if condition(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen never showed what was expected:\n{text}")
        time.sleep(0.3)


@pytest.mark.slow
def test_a_real_fleet_in_a_real_terminal_drills_into_a_host_and_shows_one_going_down(tmp_path):
    targets = tmp_path / "targets.json"
    fleet = subprocess.Popen([sys.executable, "-c", FLEET, str(targets), str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        exporters = [int(pid) for pid in fleet.stdout.readline().split()]
        assert len(exporters) == 2 and json.loads(targets.read_text())[0]["labels"]["__neurond_address"]
        with private_tmux() as tmux:
            subprocess.run([*tmux, "new-session", "-d", "-s", "fleet", "-x", "160", "-y", "30",
                            f"{sys.executable} -m neurontools.top --fleet {targets}"], check=True)
            _wait_screen(tmux, lambda t: "2/2 hosts up, 4/4 cores busy" in t and "tf-000" in t and "tf-001" in t)
            subprocess.run([*tmux, "send-keys", "-t", "fleet", "Enter"], check=True)
            host = _wait_screen(tmux, lambda t: "NeuronCore v2 Utilization" in t)  # the usual screen
            assert "(inf2.xlarge)" in host
            subprocess.run([*tmux, "send-keys", "-t", "fleet", "q"], check=True)
            _wait_screen(tmux, lambda t: "hosts up" in t and "tf-001" in t)  # back in the fleet view
            os.kill(exporters[1], 9)  # tf-001's exporter dies: it is down, tf-000 keeps updating
            down = _wait_screen(tmux, lambda t: "1/2 hosts up" in t)
            assert "DOWN" in down  # (why, in its last column, is past the 160 columns of this terminal)
            subprocess.run([*tmux, "send-keys", "-t", "fleet", "q"], check=True)
    finally:
        fleet.terminate()
        fleet.wait(60)
    leftover = [p for p in psutil.process_iter(["cmdline"]) if any("top-fleet-" in a or "--instance-name" in a and
                                                                    "tf-00" in " ".join(p.info["cmdline"] or ())
                                                                    for a in p.info["cmdline"] or ())]
    assert leftover == [], "the fleet left processes behind"
