"""The scenario file: workloads and faults on a timeline, validated before anything runs.

    name = "ECC storm during serving"
    instance_type = "inf2.48xlarge"     # used when neuron-scenario starts its own daemon
    duration = 60                       # seconds

    [[workloads]]
    spec = "bert-base:cores=2"          # neuron-workload's spec syntax (docs/workloads.md)
    start = 0
    stop = 50                           # optional: until the end

    [[faults]]
    at = 10
    kind = "mem-ecc-corrected"          # neuron-fault's kinds
    device = 0
    count = 5

    [[expect]]                          # an alert of deploy/prometheus/neuron-alerts.yml
    alert = "NeuronUncorrectedEccEvents"
    fires_by = 40                       # firing by then
    resolves_by = 700                   # and gone by then (may be after the end: rule windows)

TOML (.toml) or JSON (.json). Times are seconds from the scenario's start. Problems are reported with
the line of the `[[workloads]]`, `[[faults]]` or `[[expect]]` entry they are in.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.device.topology import CATALOG, describe_problems
from neurontools.lab.rules import RULES, alert_names
from neurontools.workloads import catalog

FAULT_KINDS = tuple(name.lower().replace("_", "-") for name in pb.FaultKind.keys()
                    if name != "FAULT_KIND_UNSPECIFIED")
MAX_DURATION = 7 * 24 * 3600.0


class WorkloadEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1, description='a neuron-workload spec, e.g. "llama-2-7b:tp=8"')
    start: float = Field(0.0, ge=0)
    stop: float | None = Field(None, gt=0)
    max_errors: int | None = Field(None, ge=1, description="stop the workload after this many failed requests")

    @model_validator(mode="after")
    def _valid(self) -> "WorkloadEntry":
        try:
            catalog.parse_spec(self.spec, catalog.Settings())
        except (catalog.SpecError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must come after start ({self.start})")
        return self


class MemoryEntry(BaseModel):
    """A process holding device memory (neurontools/scenarios/memory_hog.py)."""

    model_config = ConfigDict(extra="forbid")

    core: int = Field(ge=0, description="the NeuronCore its session takes (its device's memory is used)")
    gib: float = Field(0.0, ge=0, description="GiB allocated at start")
    leak_gib_per_hour: float = Field(0.0, ge=0, description="then growing this fast (a leak)")
    start: float = Field(0.0, ge=0)
    stop: float | None = Field(None, gt=0)
    tag: str = Field("memory-hog", min_length=1, max_length=100)


LAB_ACTIONS = ("pause-monitor", "resume-monitor", "pause-exporter", "resume-exporter", "remove-target",
               "restore-target")


class LabEntry(BaseModel):
    """Something that happens to the monitoring itself; only neuron-lab can play these."""

    model_config = ConfigDict(extra="forbid")

    at: float = Field(ge=0)
    action: Literal[LAB_ACTIONS]  # type: ignore[valid-type]


class FaultEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float = Field(ge=0)
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    device: int = Field(0, ge=0)
    core: int = Field(0, ge=0)
    link: int = Field(0, ge=0)
    count: int = Field(1, ge=1, le=1_000_000)
    duration: float = Field(0.0, ge=0, description="seconds a lasting fault lasts; 0: to the end")


class ExpectEntry(BaseModel):
    """An alert the scenario must fire, by a time, and see resolved, by a later time."""

    model_config = ConfigDict(extra="forbid")

    alert: str = Field(min_length=1)
    fires_by: float = Field(gt=0)
    resolves_by: float = Field(gt=0)

    @model_validator(mode="after")
    def _valid(self) -> "ExpectEntry":
        known = alert_names()
        if self.alert not in known:
            raise ValueError(f"alert {self.alert!r} is not in {RULES.name}; its alerts: {', '.join(known)}")
        if self.resolves_by <= self.fires_by:
            raise ValueError(f"resolves_by ({self.resolves_by}) must come after fires_by ({self.fires_by})")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    instance_type: str = "inf2.48xlarge"
    duration: float = Field(gt=0, le=MAX_DURATION)
    workloads: list[WorkloadEntry] = Field(default_factory=list)
    faults: list[FaultEntry] = Field(default_factory=list)
    memory: list[MemoryEntry] = Field(default_factory=list)
    lab: list[LabEntry] = Field(default_factory=list)
    expect: list[ExpectEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _on_the_timeline(self) -> "Scenario":
        if self.instance_type not in CATALOG:
            raise ValueError(f"unknown instance_type {self.instance_type!r}; known: {', '.join(CATALOG)}")
        for i, entry in enumerate(self.workloads):
            if entry.start >= self.duration or (entry.stop or 0) > self.duration:
                raise ValueError(f"workloads[{i}] runs outside the scenario's {self.duration} s")
        machine = CATALOG[self.instance_type]
        links = len(machine.links())
        for i, fault in enumerate(self.faults):
            if fault.at >= self.duration:
                raise ValueError(f"faults[{i}] at {fault.at} s is not before the end ({self.duration} s)")
            if fault.kind in ("core-hang", "numerical-error") and fault.core >= machine.core_count:
                raise ValueError(f"faults[{i}]: NeuronCore {fault.core} does not exist on {self.instance_type} "
                                 f"(cores 0-{machine.core_count - 1})")
            if fault.kind == "link-down" and fault.link >= links:
                raise ValueError(f"faults[{i}]: NeuronLink {fault.link} does not exist on {self.instance_type} "
                                 + (f"(links 0-{links - 1})" if links else "(it has no links)"))
            if fault.kind not in ("core-hang", "numerical-error", "link-down") and \
                    fault.device >= len(machine.devices):
                raise ValueError(f"faults[{i}]: neuron device {fault.device} does not exist on {self.instance_type} "
                                 f"(devices 0-{len(machine.devices) - 1})")
        for i, hog in enumerate(self.memory):
            if hog.core >= machine.core_count:
                raise ValueError(f"memory[{i}]: NeuronCore {hog.core} does not exist on {self.instance_type} "
                                 f"(cores 0-{machine.core_count - 1})")
            if hog.start >= self.duration or (hog.stop or 0) > self.duration or \
                    (hog.stop is not None and hog.stop <= hog.start):
                raise ValueError(f"memory[{i}] must start before it stops, within the scenario's {self.duration} s")
            if any(other.core == hog.core for other in self.memory[:i]):
                raise ValueError(f"memory[{i}]: NeuronCore {hog.core} already belongs to another memory entry; "
                                 "a core has one owner")
        for i, step in enumerate(self.lab):
            if step.at >= self.duration:
                raise ValueError(f"lab[{i}] at {step.at} s is not before the end ({self.duration} s)")
        self._no_contradictions()
        return self

    def _no_contradictions(self) -> None:
        """Two lasting faults of one kind on one target whose times overlap: which one ends it?"""
        spans: dict[tuple, tuple[int, float, float]] = {}
        for i, fault in enumerate(self.faults):
            if fault.kind not in ("core-hang", "numerical-error", "link-down"):
                continue
            target = (fault.kind, fault.link if fault.kind == "link-down" else fault.core)
            end = fault.at + fault.duration if fault.duration else self.duration
            if target in spans:
                j, start, stop = spans[target]
                if fault.at < stop and start < end:
                    raise ValueError(f"faults[{i}] overlaps faults[{j}]: the same {fault.kind} on the same "
                                     f"{'link' if fault.kind == 'link-down' else 'core'} from {fault.at:g} s while "
                                     f"the first lasts until {stop:g} s; end the first (duration) or merge them")
            spans[target] = (i, fault.at, end)
        # Lab steps come in pairs: pause then resume the same thing, remove then restore the target.
        state: dict[str, tuple[int, str]] = {}
        for i, step in sorted(enumerate(self.lab), key=lambda item: item[1].at):
            verb, _, what = step.action.partition("-")
            pausing = verb in ("pause", "remove")
            if pausing == (what in state):
                previous = state.get(what)
                raise ValueError(f"lab[{i}] {step.action} at {step.at:g} s contradicts "
                                 + (f"lab[{previous[0]}] {previous[1]}" if previous else "the start, where it runs")
                                 + f": {what} is already {'paused' if pausing else 'running'}")
            if pausing:
                state[what] = (i, step.action)
            else:
                del state[what]

    def scaled(self, scale: float) -> "Scenario":
        """The scenario played `scale` times faster: every time divided by it."""
        if scale == 1:
            return self
        data = self.model_dump()
        data["duration"] /= scale
        for entry in data["workloads"]:
            entry["start"] /= scale
            entry["stop"] = entry["stop"] / scale if entry["stop"] is not None else None
        for fault in data["faults"]:
            fault["at"] /= scale
            fault["duration"] /= scale
        for hog in data["memory"]:
            hog["start"] /= scale
            hog["stop"] = hog["stop"] / scale if hog["stop"] is not None else None
            hog["leak_gib_per_hour"] *= scale
        for step in data["lab"]:
            step["at"] /= scale
        for expect in data["expect"]:
            expect["fires_by"] /= scale
            expect["resolves_by"] /= scale
        return Scenario.model_validate(data)


class ScenarioFileError(ValueError):
    pass


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioFileError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioFileError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                                f"{exc}") from None
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problem = describe_problems(exc)
        line = _line_of(text, problem) if path.suffix != ".json" else None
        where = f"{path}:{line}" if line else str(path)
        raise ScenarioFileError(f"{where}: invalid scenario: {problem}") from None


def _line_of(text: str, problem: str) -> int | None:
    """The line of the first `[[table]]` entry a problem names (faults[2], expect.0...)."""
    match = re.search(r"\b(workloads|faults|memory|lab|expect)(?:\[|\.)(\d+)", problem)
    if match is None:
        return None
    table, index = match.group(1), int(match.group(2))
    headers = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == f"[[{table}]]"]
    return headers[index] if index < len(headers) else None
