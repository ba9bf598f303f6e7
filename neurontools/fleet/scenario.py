"""Fleet scenarios: a timeline over hosts (docs/fleet.md).

    name = "..."
    hosts = 3                      # or mix = "inf2.xlarge=2,inf2.48xlarge=1"
    instance_type = "inf2.xlarge"
    duration = 60
    workloads = ["llama-2-7b:tp=4,rate=2"]   # optional: [TARGET=]SPEC as `neuron-fleet up --workload`
    [[events]]
    at = 10
    action = "kill-host"           # a fault kind (mem-ecc-uncorrected, core-hang, link-down, ...),
                                   # kill-host, start-host, restart-daemon, stop-load, start-load,
                                   # set-workload (with workload = "SPEC" or ["SPEC", ...])
    host = "fleet-001"             # or az = "us-east-2a", group = "inf2.xlarge", or all = true
    [[expect]]
    alert = "NeuronFleetHostsUnreachable"
    fires_by = 30
    resolves_by = 90
    hosts = ["fleet-001"]          # optional: the alert fires for these hosts and no other

Everything is checked before anything starts: an unknown host, AZ, group, action, alert or workload
spec, or workloads a host's NeuronCores cannot place, is an error naming what exists.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from neurontools._proto import neurond_pb2 as pb
from neurontools.fleet.spec import (FleetSpecError, HostSpec, assign_workloads, check_placement, check_workload,
                                   fleet_hosts)
from neurontools.lab.rules import DEPLOY, RULES, alert_names

FLEET_RULES = DEPLOY / "neuron-fleet.yml"
HOST_ACTIONS = ("kill-host", "start-host", "restart-daemon", "stop-load", "start-load", "set-workload")
FAULTS = tuple(k.lower().replace("_", "-") for k in pb.FaultKind.keys() if k != "FAULT_KIND_UNSPECIFIED")
FAULT_FIELDS = ("device", "core", "link", "count", "duration")


class FleetScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Event:
    at: float
    action: str
    hosts: tuple[str, ...]   # resolved host names
    fault: dict              # device/core/link/count/duration for a fault action
    workloads: tuple[str, ...] = ()  # set-workload: the neuron-workload specs the hosts serve from then on


@dataclass(frozen=True)
class Expect:
    alert: str
    fires_by: float
    resolves_by: float
    hosts: tuple[str, ...] | None = None  # the hosts it fires for (None: not checked)


@dataclass(frozen=True)
class FleetScenario:
    name: str
    hosts: list[HostSpec]
    duration: float
    events: list[Event]
    expect: list[Expect]
    workloads: dict[str, list[str]]  # host -> the neuron-workload specs it serves instead of the busy kernel

    def scaled(self, scale: float) -> "FleetScenario":
        events = [replace(e, at=e.at / scale, fault={**e.fault, **({"duration": e.fault["duration"] / scale}
                                                                     if "duration" in e.fault else {})})
                  for e in self.events]
        expect = [replace(e, fires_by=e.fires_by / scale, resolves_by=e.resolves_by / scale) for e in self.expect]
        return replace(self, duration=self.duration / scale, events=events, expect=expect)


def load_fleet_scenario(path: str | Path) -> FleetScenario:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise FleetScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        return _parse(data)
    except (FleetSpecError, FleetScenarioError, KeyError, TypeError, ValueError) as exc:
        text = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise FleetScenarioError(f"{path}: {text}") from None


def _parse(data: dict) -> FleetScenario:
    unknown = set(data) - {"name", "hosts", "instance_type", "mix", "duration", "events", "expect", "workloads"}
    if unknown:
        raise FleetScenarioError(f"unknown field(s) {', '.join(sorted(unknown))}")
    hosts = fleet_hosts(hosts=data.get("hosts"), instance_type=data.get("instance_type", "inf2.48xlarge"),
                        mix=data.get("mix"))
    duration = float(data["duration"])
    events = sorted((_event(raw, hosts, duration) for raw in data.get("events", [])), key=lambda e: e.at)
    known_alerts = set(alert_names(RULES)) | set(alert_names(FLEET_RULES))
    expect = []
    for raw in data.get("expect", []):
        if raw["alert"] not in known_alerts:
            raise FleetScenarioError(f"expect: no alert rule {raw['alert']!r} in {RULES.name} or {FLEET_RULES.name}")
        expect.append(_expect(raw, hosts))
    workloads = assign_workloads(hosts, list(data.get("workloads", [])), "workloads")
    return FleetScenario(str(data.get("name", "")), hosts, duration, events, expect, workloads)


def _event(raw: dict, hosts: list[HostSpec], duration: float) -> Event:
    at, action = float(raw["at"]), raw["action"]
    if not 0 <= at <= duration:
        raise FleetScenarioError(f"event at={at:g} is outside the scenario (0 to duration={duration:g})")
    if action not in HOST_ACTIONS + FAULTS:
        raise FleetScenarioError(f"unknown action {action!r}: one of {', '.join(HOST_ACTIONS + FAULTS)}")
    selectors = [key for key in ("host", "az", "group", "all") if key in raw]
    if len(selectors) != 1:
        raise FleetScenarioError(f"event at={at:g} ({action}): name its hosts with exactly one of "
                                 "host, az, group or all")
    key, value = selectors[0], raw[selectors[0]]
    field = {"host": "name", "az": "availability_zone", "group": "group"}.get(key)
    chosen = hosts if key == "all" else [h for h in hosts if getattr(h, field) == value]
    if not chosen:
        names = sorted({getattr(h, field) for h in hosts})
        raise FleetScenarioError(f"event at={at:g} ({action}): no {key} {value!r} in this fleet; "
                                 f"its {key}s: {', '.join(names)}")
    allowed = set(FAULT_FIELDS) if action in FAULTS else {"workload"} if action == "set-workload" else set()
    extra = set(raw) - {"at", "action", key} - allowed
    if extra:
        raise FleetScenarioError(f"event at={at:g} ({action}): unknown field(s) {', '.join(sorted(extra))}")
    fault = {name: raw[name] for name in FAULT_FIELDS if name in raw}
    workloads = _workloads(raw, f"event at={at:g} ({action})") if action == "set-workload" else ()
    for host in chosen if workloads else ():
        check_placement(host, workloads, f"event at={at:g} ({action})")
    return Event(at, action, tuple(h.name for h in chosen), fault, workloads)


def _workloads(raw: dict, where: str) -> tuple[str, ...]:
    """set-workload's `workload`: one neuron-workload spec or a list, each checked as --workload's."""
    specs = raw.get("workload")
    specs = [specs] if isinstance(specs, str) else specs
    if not specs or not all(isinstance(spec, str) for spec in specs):
        raise FleetScenarioError(f"{where}: give workload = \"SPEC\" or a list of specs (neuron-workload's, "
                                 "e.g. \"bert-base:cores=2,rate=100\"); stop-load stops a host's load")
    for spec in specs:
        check_workload(spec, f"{where}: workload {spec!r}")
    return tuple(specs)


def _expect(raw: dict, hosts: list[HostSpec]) -> Expect:
    unknown = set(raw) - {"alert", "fires_by", "resolves_by", "hosts"}
    if unknown:
        raise FleetScenarioError(f"expect {raw['alert']}: unknown field(s) {', '.join(sorted(unknown))}")
    named = raw.get("hosts")
    if named is not None:
        missing = [name for name in named if name not in {h.name for h in hosts}]
        if missing or not named:
            raise FleetScenarioError(f"expect {raw['alert']}: hosts must name hosts of this fleet "
                                     f"({', '.join(h.name for h in hosts)}), not {missing or named}")
    return Expect(raw["alert"], float(raw["fires_by"]), float(raw["resolves_by"]),
                  tuple(named) if named is not None else None)


def host_problems(scenario: FleetScenario, history) -> list[str]:
    """Expectations naming `hosts`: the alert fired for each of them and for no other host. An alert's
    host is its `host` label, else the host of its `instance_id` (the single-host rules keep that)."""
    by_instance = {h.instance_id: h.name for h in scenario.hosts}
    problems = []
    for expect in scenario.expect:
        if expect.hosts is None:
            continue
        fired = {entry.labels.get("host") or by_instance.get(entry.labels.get("instance_id"), "?")
                 for entry in history if entry.name == expect.alert and entry.firing_at is not None}
        if set(expect.hosts) - fired:
            problems.append(f"{expect.alert} did not fire for {', '.join(sorted(set(expect.hosts) - fired))}")
        if fired - set(expect.hosts):
            problems.append(f"{expect.alert} fired for {', '.join(sorted(fired - set(expect.hosts)))}, "
                            f"which the scenario does not name (hosts = {list(expect.hosts)})")
    return problems
