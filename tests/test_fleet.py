"""neuron-fleet: the fleet spec, its limits, scenario validation, and a small fleet end to end
against a real Prometheus (the declared alerts fire and resolve)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from real_components import real_program

from neurontools.fleet import spec as fleet_spec
from neurontools.fleet.cli import main
from neurontools.fleet.scenario import FleetScenarioError, load_fleet_scenario
from neurontools.fleet.spec import FleetSpecError, check_capacity, fleet_hosts

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted((ROOT / "scenarios" / "fleet").glob("*.toml"))


def test_hosts_have_distinct_identities_spread_over_three_zones():
    hosts = fleet_hosts(mix="inf2.xlarge=4,inf2.48xlarge=2")

    assert [h.instance_type for h in hosts] == ["inf2.xlarge"] * 4 + ["inf2.48xlarge"] * 2
    assert len({h.instance_id for h in hosts}) == len({h.name for h in hosts}) == 6
    assert [h.availability_zone for h in hosts[:4]] == ["us-east-2a", "us-east-2b", "us-east-2c", "us-east-2a"]
    assert hosts[1].labels() == {"host": "fleet-001", "instance_type": "inf2.xlarge",
                                 "availability_zone": "us-east-2b", "group": "inf2.xlarge", "role": "inference"}
    assert "--instance-id" in hosts[0].daemon_flags() and hosts[0].instance_id.startswith("i-0")


@pytest.mark.parametrize("kwargs, message", [
    ({"hosts": 0}, "at least 1"),
    ({"hosts": 2, "instance_type": "inf9.huge"}, "inf9.huge"),
    ({"mix": "inf2.xlarge"}, "TYPE=COUNT"),
    ({"mix": "inf2.xlarge=0"}, "at least 1"),
    ({"hosts": 3, "mix": "inf2.xlarge=2"}, "adds up to 2"),
])
def test_a_bad_fleet_spec_is_refused(kwargs, message):
    with pytest.raises(FleetSpecError, match=message):
        fleet_hosts(**kwargs)


def test_more_hosts_than_memory_allows_is_refused_naming_the_limit(monkeypatch):
    monkeypatch.setattr(fleet_spec.psutil, "virtual_memory", lambda: SimpleNamespace(available=2**30))

    with pytest.raises(FleetSpecError, match=r"need about 2.0 GiB of memory \(200 MiB each\); 1.0 GiB is available: "
                                             r"run at most 5 hosts"):
        check_capacity(10)  # 10 x 200 MiB; 1 GiB // 200 MiB = 5
    monkeypatch.setattr(fleet_spec.psutil, "virtual_memory", lambda: SimpleNamespace(available=2 * 2**30))
    with pytest.raises(FleetSpecError, match=r"need about 2.6 GiB of memory \(200 MiB each, 128 MiB more for each "
                                             r"of the 5 serving a --workload\)"):
        check_capacity(10, 5)  # 10 x 200 + 5 x 128 MiB = 2640 MiB
    check_capacity(10)  # 2000 MiB fit in 2 GiB


def test_more_hosts_than_the_descriptor_limit_allows_is_refused(monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    monkeypatch.setattr(fleet_spec, "_ephemeral_range", lambda: (1024, 65535))

    with pytest.raises(FleetSpecError, match=r"need about 1728 file descriptors; the limit is 1024 .*at most 56\)"):
        check_capacity(100)  # 128 + 16 * 100 > 1024; (1024 - 128) // 16 = 56


def test_more_hosts_than_ports_is_refused(monkeypatch):
    monkeypatch.setattr(fleet_spec, "_ephemeral_range", lambda: (60000, 60099))  # 100 ports, half for listening

    with pytest.raises(FleetSpecError, match="leaves room for 49 hosts"):
        check_capacity(60)


def test_up_refuses_a_bad_spec_before_starting_anything(capsys):
    assert main(["up", "--hosts", "2", "--instance-type", "inf9.huge"]) == 2
    assert "inf9.huge" in capsys.readouterr().err


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_bundled_fleet_scenarios_load(path):
    scenario = load_fleet_scenario(path)

    assert scenario.events and all(e.hosts for e in scenario.events)


def scenario_error(tmp_path, body: str) -> str:
    """The error loading a three-host inf2.xlarge scenario with `body` (its events and expectations)."""
    path = tmp_path / "bad.toml"
    path.write_text(f'hosts = 3\ninstance_type = "inf2.xlarge"\nduration = 60\n{body}')
    with pytest.raises(FleetScenarioError) as error:
        load_fleet_scenario(path)
    return str(error.value)


@pytest.mark.parametrize("event, message", [
    ('host = "fleet-007"', "no host 'fleet-007' in this fleet; its hosts: fleet-000, fleet-001, fleet-002"),
    ('az = "eu-west-1a"', "no az 'eu-west-1a' in this fleet; its azs: us-east-2a, us-east-2b, us-east-2c"),
    ('group = "inf2.48xlarge"', "no group 'inf2.48xlarge' in this fleet; its groups: inf2.xlarge"),
    ('all = true\nbogus = 1', "unknown field(s) bogus"),
    ('host = "fleet-000"\naz = "us-east-2a"', "exactly one of host, az, group or all"),
])
def test_a_scenario_naming_what_the_fleet_lacks_is_an_error(tmp_path, event, message):
    assert message in scenario_error(tmp_path, f'[[events]]\nat = 5\naction = "link-down"\n{event}\n')


@pytest.mark.parametrize("event, message", [
    ('', 'event at=5 (set-workload): give workload = "SPEC" or a list of specs'),
    ('workload = []', 'give workload = "SPEC" or a list of specs'),
    ('workload = "gpt-9"', "event at=5 (set-workload): workload 'gpt-9': unknown workload 'gpt-9'"),
    ('workload = "bert-base:cores=1"\ncount = 2', "unknown field(s) count"),
    ('workload = ["bert-base:cores=1", "bert-base:cores=2"]',
     "event at=5 (set-workload): fleet-000 (inf2.xlarge) cannot serve bert-base:cores=2: no 2 consecutive free"),
])
def test_a_set_workload_event_needs_workloads_neuron_workload_takes(tmp_path, event, message):
    assert message in scenario_error(tmp_path, f'[[events]]\nat = 5\naction = "set-workload"\nall = true\n{event}\n')


def test_a_set_workload_event_gives_the_hosts_their_specs(tmp_path):
    path = tmp_path / "deploy.toml"
    path.write_text('hosts = 3\ninstance_type = "inf2.xlarge"\nduration = 60\n'
                    '[[events]]\nat = 5\naction = "set-workload"\naz = "us-east-2b"\n'
                    'workload = ["bert-base:cores=1,tag=search", "bert-tiny:cores=1"]\n')

    event, = load_fleet_scenario(path).events
    assert event.hosts == ("fleet-001",)
    assert event.workloads == ("bert-base:cores=1,tag=search", "bert-tiny:cores=1")


def test_an_expectation_naming_hosts_checks_which_hosts_the_alert_fired_for(tmp_path):
    from neurontools.fleet.scenario import host_problems
    from neurontools.lab.alert_watch import AlertHistory

    path = tmp_path / "hosts.toml"
    path.write_text('hosts = 3\ninstance_type = "inf2.xlarge"\nduration = 60\n'
                    '[[expect]]\nalert = "NeuronExecutionErrors"\nfires_by = 30\nresolves_by = 60\n'
                    'hosts = ["fleet-000", "fleet-002"]\n')
    scenario = load_fleet_scenario(path)
    ids = {h.name: h.instance_id for h in scenario.hosts}

    def fired(host: str, firing_at: float | None = 10.0) -> AlertHistory:
        return AlertHistory("NeuronExecutionErrors", {"instance_id": ids[host], "runtime_tag": "x"},
                            pending_at=5.0, firing_at=firing_at, resolved_at=40.0)

    assert host_problems(scenario, [fired("fleet-000"), fired("fleet-002")]) == []
    assert host_problems(scenario, [fired("fleet-000"), fired("fleet-002", firing_at=None)]) == [
        "NeuronExecutionErrors did not fire for fleet-002"]
    assert host_problems(scenario, [fired("fleet-000"), fired("fleet-001"), fired("fleet-002")]) == [
        "NeuronExecutionErrors fired for fleet-001, which the scenario does not name "
        "(hosts = ['fleet-000', 'fleet-002'])"]
    # the fleet rules keep a `host` label instead of instance_id
    by_host = AlertHistory("NeuronExecutionErrors", {"host": "fleet-000"}, firing_at=10.0)
    assert host_problems(scenario, [by_host, fired("fleet-002")]) == []
    path.write_text(path.read_text().replace('"fleet-002"', '"fleet-009"'))
    with pytest.raises(FleetScenarioError, match=r"hosts must name hosts of this fleet \(fleet-000, fleet-001, "
                                                 r"fleet-002\), not \['fleet-009'\]"):
        load_fleet_scenario(path)


def test_a_scenario_expecting_an_alert_no_rule_defines_is_an_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('hosts = 1\nduration = 10\n[[expect]]\nalert = "NoSuchAlert"\nfires_by = 5\nresolves_by = 9\n')

    with pytest.raises(FleetScenarioError, match="no alert rule 'NoSuchAlert'"):
        load_fleet_scenario(path)


def test_down_and_targets_without_a_fleet_say_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))

    assert main(["targets"]) == 1
    assert main(["down"]) == 1
    assert capsys.readouterr().err.count("no fleet is running") == 2


@pytest.mark.slow
@pytest.mark.parametrize("scenario, alerts", [
    ("host-dies", ("NeuronMonitorExporterDown", "NeuronFleetHostsUnreachable")),
    ("bad-host", ("NeuronFleetHostErrorsOutlier", "NeuronExecutionErrors", "NeuronExecutionTimeouts",
                  "NeuronUncorrectedEccEvents")),
    ("rolling-restart", ()),  # daemons restarted one host a minute: alerts go pending and clear, none fires
    # hosts serving a tensor-parallel decoder as request loads in their daemons; links down in one AZ
    ("az-link-down", ("NeuronExecutionErrors", "NeuronFleetHostErrorsOutlier")),
    ("load-shift", ("NeuronFleetCapacityHeadroomLow",)),
    # a rolling deployment of a slower version (set-workload), then a rollback; fires for every host
    ("latency-regression", ("NeuronExecutionLatencyRegression",)),
])
def test_a_fleet_scenario_fires_and_resolves_the_declared_alerts(tmp_path, scenario, alerts):
    """A bundled fleet scenario, ten times faster, against Debian's Prometheus (the alerts are
    transcribed from the scenario files; the command checks their times too)."""
    real_program("prometheus", "prometheus")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "neurontools.fleet.cli", "up", "--scenario", f"scenarios/fleet/{scenario}.toml",
         "--time-scale", "10", "--status-every", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    for alert in alerts:
        assert any("firing" in line and alert in line for line in result.stdout.splitlines()), alert
        assert any("resolved" in line and alert in line for line in result.stdout.splitlines()), alert
    assert "expectations met" in result.stdout
    assert not (tmp_path / f"neuron-fleet-{os.getuid()}" / "state.json").exists()


def dashboard_queries_without_data(prometheus: str, timeout: float = 90.0) -> list[str]:
    """The fleet dashboard's queries (variables at All) that have no result once rates have two samples."""
    from test_fleet_deploy import fleet_dashboard_queries
    queries = [q.replace("$host", ".*").replace("$instance_type", ".*") for q in fleet_dashboard_queries()]
    deadline = time.monotonic() + timeout
    while True:
        empty = [q for q in queries if not _query(prometheus, q)]
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(1)


def _query(prometheus: str, expression: str) -> list:
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


@pytest.mark.slow
def test_up_then_down_from_another_terminal_leaves_nothing_behind(tmp_path):
    """And in between, every query of the fleet dashboard returns data from the running fleet."""
    real_program("prometheus", "prometheus")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    state = tmp_path / f"neuron-fleet-{os.getuid()}" / "state.json"
    up = subprocess.Popen([sys.executable, "-m", "neurontools.fleet.cli", "up", "--hosts", "2", "--instance-type",
                           "inf2.xlarge", "--status-every", "0", "--time-scale", "10"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        for line in up.stdout:
            if line.startswith("Ctrl-C"):
                break
        saved = json.loads(state.read_text())
        targets = subprocess.run([sys.executable, "-m", "neurontools.fleet.cli", "targets"], env=env,
                                 capture_output=True, text=True, timeout=30)
        document = json.loads(targets.stdout)
        assert [entry["labels"]["host"] for entry in document] == ["fleet-000", "fleet-001"]
        assert dashboard_queries_without_data(saved["prometheus"]) == []

        down = subprocess.run([sys.executable, "-m", "neurontools.fleet.cli", "down"], env=env,
                              capture_output=True, text=True, timeout=90)
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    for pid in saved["children"]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not any(Path(d).exists() for d in saved["directories"])
    assert not state.exists()


# -- --workload ----------------------------------------------------------------------------------------

def test_workloads_go_to_the_hosts_groups_or_zones_named():
    hosts = fleet_hosts(mix="inf2.xlarge=2,inf2.24xlarge=1")  # fleet-000, -001 (us-east-2a, b); -002 (2c)
    assigned = fleet_spec.assign_workloads(hosts, ["bert-tiny:cores=1", "fleet-001=bert-base:cores=1",
                                                   "inf2.24xlarge=llama-2-7b:tp=4,layers=2", "us-east-2a=bert-tiny:cores=1"])
    assert assigned == {"fleet-000": ["bert-tiny:cores=1", "bert-tiny:cores=1"],
                        "fleet-001": ["bert-tiny:cores=1", "bert-base:cores=1"],
                        "fleet-002": ["bert-tiny:cores=1", "llama-2-7b:tp=4,layers=2"]}
    with pytest.raises(FleetSpecError, match="no host, group or availability zone 'us-west-1a'; the fleet has "):
        fleet_spec.assign_workloads(hosts, ["us-west-1a=bert-tiny"])
    with pytest.raises(FleetSpecError, match="--workload 'gpt-9': unknown workload 'gpt-9'"):
        fleet_spec.assign_workloads(hosts, ["gpt-9"])


@pytest.mark.parametrize("entries, message", [
    # an inf2.xlarge has one device, NeuronCores 0 and 1
    (["bert-base:cores=4"], "fleet-000 (inf2.xlarge) cannot serve bert-base:cores=4: no 4 consecutive free "
                            "NeuronCores on whole devices (2 of 2 free)"),
    (["bert-base:cores=1", "bert-base:cores=1", "fleet-001=bert-tiny:cores=1"],
     "fleet-001 (inf2.xlarge) cannot serve bert-tiny:cores=1: no 1 consecutive free NeuronCores (0 of 2 free)"),
    (["inf2.24xlarge=llama-2-7b:tp=4,cores=0-1"], "fleet-002 (inf2.24xlarge) cannot serve "
                                                  "llama-2-7b:tp=4,cores=0-1: llama-2-7b at tp=4 needs a multiple of 4"),
])
def test_workloads_that_a_host_cannot_place_are_refused_before_anything_starts(entries, message):
    hosts = fleet_hosts(mix="inf2.xlarge=2,inf2.24xlarge=1")

    with pytest.raises(FleetSpecError) as error:
        fleet_spec.assign_workloads(hosts, entries)
    assert message in str(error.value)


def test_up_refuses_a_bad_workload_before_starting_anything(capsys):
    assert main(["up", "--hosts", "2", "--workload", "fleet-007=bert-tiny"]) == 2
    assert "no host, group or availability zone 'fleet-007'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_host_serves_its_workload_instead_of_the_busy_kernel(tmp_path):
    from neurontools.fleet.host import Host

    spec = fleet_hosts(hosts=1, instance_type="inf2.xlarge", name="wl")[0]
    host = Host(spec, tmp_path / "wl", monitor_period=1.0, workloads=["bert-tiny:cores=1"]).start()
    try:
        deadline = time.monotonic() + 120
        while (status := host.status())["busy"] < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status["up"] and status["busy"] == 1 and status["errors"] == 0, status
        assert host.session is None  # no busy kernel: the workload holds the core
        metrics = urllib.request.urlopen(f"http://{host.target}/metrics", timeout=10).read().decode()
        deadline = time.monotonic() + 30
        while 'runtime_tag="bert-tiny"' not in metrics and time.monotonic() < deadline:
            time.sleep(1)
            metrics = urllib.request.urlopen(f"http://{host.target}/metrics", timeout=10).read().decode()
        assert 'runtime_tag="bert-tiny"' in metrics  # the workload, seen through neuron-monitor's exporter
        workload = host.workload
    finally:
        host.stop()
    assert workload.poll() is not None and host.workload is None
