"""Every bundled scenario end to end: neuron-lab runs a real neurond, neuron-monitor with its exporter
and a real Prometheus evaluating the bundled rules (time-compressed), plays the scenario and checks
that exactly the alerts its [[expect]] entries declare fire, then resolve, in time. Every alert rule
of deploy/ is expected by at least one scenario. The scenarios run side by side."""

from __future__ import annotations

import os
import subprocess
import tomllib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from neurontools.lab.prometheus_server import PROMETHEUS
from neurontools.lab.rules import alert_names
from neurontools.scenarios.scenario_file import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
NEURON_LAB = str(Path(sys.executable).parent / "neuron-lab")
TIME_SCALE = 20  # a 30-minute scenario in 90 s; rule windows and for: shrink alike
PARALLEL = 4     # enough to overlap the scenarios' waiting, few enough for a 2-core runner


def test_every_alert_rule_is_expected_by_a_bundled_scenario():
    # The rules read as Prometheus reads them (YAML), independently of the lab's own reader.
    single_host = [path for path in sorted((ROOT / "deploy" / "prometheus").glob("*.yml"))
                   if "groups" in (yaml.safe_load(path.read_text()) or {}) and not path.name.startswith("neuron-fleet")]
    rules = {rule["alert"] for path in single_host for group in yaml.safe_load(path.read_text())["groups"]
             for rule in group["rules"] if "alert" in rule}
    assert len(rules) >= 11 and rules == set(alert_names())
    # The scenarios too, as TOML, not through the scenario loader under test.
    expected = {entry["alert"] for path in SCENARIOS for entry in tomllib.loads(path.read_text()).get("expect", [])}
    missing = sorted(rules - expected)
    assert not missing, f"no bundled scenario fires {missing}"


def _play(path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    return path, subprocess.run([NEURON_LAB, "--scenario", str(path), "--time-scale", str(TIME_SCALE)],
                                capture_output=True, text=True, timeout=600, env=os.environ.copy())


@pytest.mark.slow
def test_each_bundled_scenario_fires_and_resolves_exactly_its_alerts():
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run scripts/install-system-deps.sh (Debian's prometheus)")
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(_play, SCENARIOS))
    failures = {path.name: done.stdout[-3000:] + done.stderr[-2000:] for path, done in results
                if done.returncode != 0 or "expectations met" not in done.stdout}
    assert not failures, "\n\n".join(f"== {name}\n{text}" for name, text in failures.items())
    for path, done in results:
        for expect in load_scenario(path).expect:  # the lab printed each declared alert's firing
            assert f"firing   {expect.alert}{{" in done.stdout, (path.name, expect.alert)
