"""neuron-scenario: the file format's validation and a short scenario played against a daemon."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from neurontools.client import Device
from neurontools.scenarios.scenario_file import ScenarioFileError, load_scenario
from neurontools.scenarios.timeline import play

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path, text, suffix=".toml"):
    path = tmp_path / f"scenario{suffix}"
    path.write_text(text)
    return path


def test_shipped_scenarios_are_valid():
    files = sorted((ROOT / "scenarios").glob("*.toml"))
    assert files
    for path in files:
        load_scenario(path)


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nduration = 10\n[[faults]]\nat = 12\nkind = "core-hang"', "faults[0] at 12.0 s is not before the end"),
    ('name = "x"\nduration = 10\n[[faults]]\nat = 1\nkind = "melted"', "faults.0.kind"),
    ('name = "x"\nduration = 10\n[[workloads]]\nspec = "gpt-9"', "unknown workload 'gpt-9'"),
    ('name = "x"\nduration = 10\n[[workloads]]\nspec = "bert-tiny"\nstart = 5\nstop = 2', "must come after start"),
    ('name = "x"\nduration = 10\ninstance_type = "inf9.mega"', "unknown instance_type"),
    ('name = "x"\nduration = 10\ncolour = "red"', "colour"),
    ('name = "x"\nduration = ', "not valid TOML"),
])
def test_bad_scenarios_name_the_file_and_the_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_json_scenarios_too(tmp_path):
    path = _write(tmp_path, json.dumps({"name": "j", "duration": 5, "faults": [{"at": 1, "kind": "link-down"}]}),
                  ".json")
    assert load_scenario(path).faults[0].kind == "link-down"


def test_a_scenario_plays_workloads_and_faults_on_time(tmp_path, address):
    path = _write(tmp_path, """
name = "short"
duration = 3
[[workloads]]
spec = "bert-tiny:cores=1,batch=2"
start = 0
[[faults]]
at = 0.5
kind = "mem-ecc-corrected"
device = 0
count = 4
[[faults]]
at = 1
kind = "link-down"
link = 5
""")
    lines = []
    with Device(address) as device:
        before = device.snapshot().devices[0].mem_ecc_corrected
        result = play(load_scenario(path), address, threading.Event(), lines.append)
        after = device.snapshot()
    assert result["completed"] and 3 <= result["seconds"] < 10
    assert [f["kind"] for f in result["faults"]] == ["mem-ecc-corrected", "link-down"]
    assert after.devices[0].mem_ecc_corrected - before == 4
    assert after.links[5].up  # a lasting fault of the scenario ends with it
    workload = result["workloads"][0]
    assert workload["status"] == "ok" and workload["requests"] > 0
    assert any("fault" in line and "link" in line.lower() for line in lines)


def test_cli_check_and_bad_file(tmp_path):
    good = subprocess.run([sys.executable, "-m", "neurontools.scenarios.cli", "check",
                           str(ROOT / "scenarios" / "ecc-storm.toml")], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "ok:" in good.stdout
    bad = _write(tmp_path, 'name = "x"')
    result = subprocess.run([sys.executable, "-m", "neurontools.scenarios.cli", "check", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "duration" in result.stderr


HEADER = 'name = "x"\nduration = 100\ninstance_type = "inf2.xlarge"\n'


@pytest.mark.parametrize("body, line, message", [
    # line numbers count from the file's first line; HEADER has 3
    ('[[faults]]\nat = 1\nkind = "core-hang"\ncore = 1\n[[faults]]\nat = 2\nkind = "melted"\n', 8,
     "faults.1.kind"),
    ('[[faults]]\nat = 1\nkind = "core-hang"\ncore = 2\n', 4, "NeuronCore 2 does not exist on inf2.xlarge (cores 0-1)"),
    ('[[faults]]\nat = 1\nkind = "mem-ecc-corrected"\ndevice = 1\n', 4,
     "neuron device 1 does not exist on inf2.xlarge (devices 0-0)"),
    ('[[faults]]\nat = 1\nkind = "link-down"\n', 4, "NeuronLink 0 does not exist on inf2.xlarge (it has no links)"),
    ('[[faults]]\nat = 10\nkind = "numerical-error"\nduration = 30\n[[faults]]\nat = 20\nkind = "numerical-error"\n',
     8, "faults[1] overlaps faults[0]: the same numerical-error on the same core from 20 s while the first lasts "
        "until 40 s"),
    ('[[expect]]\nalert = "NeuronOnFire"\nfires_by = 5\nresolves_by = 10\n', 4,
     "alert 'NeuronOnFire' is not in neuron-alerts.yml"),
    ('[[expect]]\nalert = "NeuronDeviceReset"\nfires_by = 5\nresolves_by = 4\n', 4, "must come after fires_by"),
])
def test_bad_steps_are_refused_naming_the_line(tmp_path, body, line, message):
    path = _write(tmp_path, HEADER + body)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:{line}: invalid scenario: ") and message in str(info.value)


def test_overlapping_faults_on_different_targets_or_times_are_fine(tmp_path):
    path = _write(tmp_path, HEADER + '[[faults]]\nat = 10\nkind = "core-hang"\nduration = 10\n'
                                     '[[faults]]\nat = 20\nkind = "core-hang"\n'
                                     '[[faults]]\nat = 10\nkind = "core-hang"\ncore = 1\n')
    assert len(load_scenario(path).faults) == 3


def test_a_scenario_scaled_in_time_divides_every_time(tmp_path):
    path = _write(tmp_path, HEADER + '[[workloads]]\nspec = "bert-tiny"\nstart = 10\nstop = 50\n'
                                     '[[faults]]\nat = 20\nkind = "core-hang"\nduration = 30\n'
                                     '[[expect]]\nalert = "NeuronExecutionTimeouts"\nfires_by = 60\nresolves_by = 90\n')
    fast = load_scenario(path).scaled(10)
    assert fast.duration == 10 and (fast.workloads[0].start, fast.workloads[0].stop) == (1, 5)
    assert (fast.faults[0].at, fast.faults[0].duration) == (2, 3)
    assert (fast.expect[0].fires_by, fast.expect[0].resolves_by) == (6, 9)
