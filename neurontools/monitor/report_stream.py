"""Reading neuron-monitor's stream as its consumers do: one report per line, tolerantly.

As tolerant as AWS's companion scripts, which look only at the groups and fields they map: unknown
keys and missing groups are fine, and a metric group (or runtime entry) that does not fit the schema
is left out, with a note, while the rest of the report is used. `neuron-monitor-prometheus` and
`neuron-monitor-cloudwatch` read their stdin through `parse_report_line`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from neurontools.monitor.report import Report, ReportObject, RuntimeReport, SystemData
from neurontools.monitor.report_json import loads_report


class UnreadableLine(ValueError):
    """An input line that is not a neuron-monitor report, even with its broken groups left out."""


def parse_report_line(line: str | bytes) -> tuple[Report, list[str]]:
    """Read one report line; returns the report and what had to be left out of it, one note per part."""
    try:
        return loads_report(line), []
    except ValidationError:
        pass  # not valid JSON, or not the schema: find out which, below
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableLine(f"Unable to decode JSON {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableLine(f"Not a neuron-monitor report: a JSON {type(data).__name__}, not an object")
    try:
        return Report.model_validate(data), []
    except ValidationError as exc:
        notes = _drop_broken_parts(data, exc)
        if notes is None:
            raise UnreadableLine(f"Not a neuron-monitor report: {_describe(exc)}") from None
    try:
        return Report.model_validate(data), notes
    except ValidationError as exc:
        raise UnreadableLine(f"Not a neuron-monitor report: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{_path(error['loc'])}: {error['msg']}" for error in exc.errors())


# pydantic puts the class of a union member in error locations (`memory_used.MemoryUsed.loaded_models`).
_MODEL_NAMES = frozenset(model.__name__ for model in ReportObject.__subclasses__())


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in _MODEL_NAMES) or "(the report)"


def _drop_broken_parts(data: dict[str, Any], exc: ValidationError) -> list[str] | None:
    """Remove, in place, the metric groups and runtime entries the errors point into.

    Returns a note per removed part, or None when an error lies outside any of them (instance_info,
    neuron_hardware_info, the report's skeleton): then nothing can be salvaged.
    """
    notes: dict[tuple[Any, ...], str] = {}
    for error in exc.errors():
        loc = error["loc"]
        problem = f"{_path(loc)}: {error['msg']}"
        if len(loc) > 1 and loc[0] == "system_data" and loc[1] in SystemData.model_fields:
            notes.setdefault(("system_data", loc[1]), f"left out {loc[1]} ({problem})")
        elif len(loc) > 3 and loc[0] == "neuron_runtime_data" and loc[2] == "report" \
                and loc[3] in RuntimeReport.model_fields:
            notes.setdefault(("runtime", loc[1], loc[3]), f"left out {loc[3]} of runtime entry {loc[1]} ({problem})")
        elif len(loc) > 1 and loc[0] == "neuron_runtime_data" and isinstance(loc[1], int):
            notes.setdefault(("runtime", loc[1]), f"left out runtime entry {loc[1]} ({problem})")
        else:
            return None
    runtimes = data.get("neuron_runtime_data") or []
    dropped_runtimes = {key[1] for key in notes if key[0] == "runtime" and len(key) == 2}
    for key in notes:
        if key[0] == "system_data":
            del data["system_data"][key[1]]
        elif len(key) == 3 and key[1] not in dropped_runtimes:
            del runtimes[key[1]]["report"][key[2]]
    if dropped_runtimes:
        data["neuron_runtime_data"] = [runtime for index, runtime in enumerate(runtimes)
                                       if index not in dropped_runtimes]
    return list(notes.values())
