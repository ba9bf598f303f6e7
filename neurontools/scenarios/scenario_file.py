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

TOML (.toml) or JSON (.json). Times are seconds from the scenario's start.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from neurontools._proto import neurond_pb2 as pb
from neurontools.daemon.topology import CATALOG, describe_problems
from neurontools.workloads import catalog

FAULT_KINDS = tuple(name.lower().replace("_", "-") for name in pb.FaultKind.keys()
                    if name != "FAULT_KIND_UNSPECIFIED")
MAX_DURATION = 7 * 24 * 3600.0


class WorkloadEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1, description='a neuron-workload spec, e.g. "llama-2-7b:tp=8"')
    start: float = Field(0.0, ge=0)
    stop: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _valid(self) -> "WorkloadEntry":
        try:
            catalog.parse_spec(self.spec, catalog.Settings())
        except (catalog.SpecError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must come after start ({self.start})")
        return self


class FaultEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float = Field(ge=0)
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    device: int = Field(0, ge=0)
    core: int = Field(0, ge=0)
    link: int = Field(0, ge=0)
    count: int = Field(1, ge=1, le=1_000_000)
    duration: float = Field(0.0, ge=0, description="seconds a lasting fault lasts; 0: to the end")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    instance_type: str = "inf2.48xlarge"
    duration: float = Field(gt=0, le=MAX_DURATION)
    workloads: list[WorkloadEntry] = Field(default_factory=list)
    faults: list[FaultEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _on_the_timeline(self) -> "Scenario":
        if self.instance_type not in CATALOG:
            raise ValueError(f"unknown instance_type {self.instance_type!r}; known: {', '.join(CATALOG)}")
        for i, entry in enumerate(self.workloads):
            if entry.start >= self.duration or (entry.stop or 0) > self.duration:
                raise ValueError(f"workloads[{i}] runs outside the scenario's {self.duration} s")
        for i, fault in enumerate(self.faults):
            if fault.at >= self.duration:
                raise ValueError(f"faults[{i}] at {fault.at} s is not before the end ({self.duration} s)")
        return self


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
        raise ScenarioFileError(f"{path}: invalid scenario: {describe_problems(exc)}") from None
