"""The neuron-monitor configuration file: which metric groups to collect, for whom, how often.

The format is the real tool's (reference neuron-tools.md §3.2):

    {"period": "1s",
     "neuron_runtimes": [{"tag_filter": ".*", "period": "5s",
                          "metrics": [{"type": "neuroncore_counters"}, {"type": "execution_stats"}]}],
     "system_metrics": [{"type": "vcpu_usage"}, {"type": "neuron_hw_counters", "period": "2s"}]}

A group's period is the most specific one given (metric group, then runtime entry, then root),
else 5 s. Validation is stricter than the real tool's on purpose: a typo in a key or a period the
real tool would silently ignore is an error naming the file, the field and the fix, instead of a
monitor that quietly runs every 5 s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PERIOD_SECONDS = 5.0
MIN_PERIOD_SECONDS = 0.01  # as neurond's watch streams: below this a monitor only measures itself

RUNTIME_GROUPS = ("neuroncore_counters", "memory_used", "neuron_runtime_vcpu_usage", "execution_stats")
SYSTEM_GROUPS = ("vcpu_usage", "memory_info", "neuron_hw_counters")
# Ours, opt-in (the default configuration stays the real tool's): docs/exporters.md.
EXTRA_SYSTEM_GROUPS = ("neurond_totals",)

# Names older tools accepted, and what replaced them.
_LEGACY_GROUPS = {
    "inference_stats": 'was renamed "execution_stats" (inference_stats is rejected since Neuron SDK 2.5)',
    "nc_counters": 'is the Neuron 1.x name of "neuroncore_counters"',
    "runtime_cpu_usage": 'is the Neuron 1.x name of "neuron_runtime_vcpu_usage"',
    "hw_counters": 'is the Neuron 1.x name of "neuron_hw_counters", which belongs in "system_metrics"',
}

# Go duration units; the real tool parses periods with Go's time.ParseDuration.
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_PART = re.compile(r"((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))")  # fractions allowed
_GO_DURATION = re.compile(f"(?:{_GO_DURATION_PART.pattern})+")


class ConfigError(ValueError):
    """A configuration file the monitor cannot use: says which file, which field and what is wrong."""

    def __init__(self, source: str, field_path: str, problem: str) -> None:
        super().__init__(f"{source}: {field_path}: {problem}" if field_path else f"{source}: {problem}")
        self.source = source
        self.field_path = field_path
        self.problem = problem


@dataclass(frozen=True)
class RuntimeSelector:
    """One `neuron_runtimes` entry: the applications whose tag matches, and their groups."""

    tag_filter: re.Pattern[str] | None
    groups: Mapping[str, float]  # group type -> period in seconds, in configuration order

    def matches(self, tag: str) -> bool:
        # Go's regexp.MatchString: a match anywhere in the tag, not a full match.
        return self.tag_filter is None or self.tag_filter.search(tag) is not None


@dataclass(frozen=True)
class MonitorConfig:
    runtimes: tuple[RuntimeSelector, ...] = ()
    system: Mapping[str, float] = field(default_factory=dict)  # group type -> period in seconds
    period: float = DEFAULT_PERIOD_SECONDS  # root period: the cadence when no group is configured


def default_config() -> MonitorConfig:
    """What runs without -c: every metric group, every application, every 5 seconds.

    neuron_hw_counters is included although AWS dropped it from its default in tools 2.4.6: every
    real capture has it, and our daemon always answers it without errors.
    """
    return MonitorConfig(
        runtimes=(RuntimeSelector(None, {name: DEFAULT_PERIOD_SECONDS for name in RUNTIME_GROUPS}),),
        system={name: DEFAULT_PERIOD_SECONDS for name in SYSTEM_GROUPS})


def load_config(path: str | Path) -> MonitorConfig:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(source, "", f"cannot read the configuration file: {error}") from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> MonitorConfig:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(source, f"line {error.lineno} column {error.colno}",
                          f"not valid JSON: {error.msg}") from None
    return _Parser(source).root(document)


def parse_period(text: str) -> float:
    """Seconds in a Go duration with whole numbers ("500ms", "1s", "1m30s"); ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f'must be a string such as "1s" or "500ms", not {json.dumps(text)}')
    if "." in text and _GO_DURATION.fullmatch(text):
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for _, number, unit in _GO_DURATION_PART.findall(text))
        whole = f"{seconds:g}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"
        raise ValueError(f'"{text}": write whole numbers ("{whole}"); the real neuron-monitor silently '
                         f'ignores fractional periods and runs every 5s')
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f'"{text}" is not a duration: use a number and a unit (ns, us, ms, s, m, h), '
                         f'e.g. "1s", "500ms", "1m"')
    if seconds < MIN_PERIOD_SECONDS:
        raise ValueError(f'"{text}" is too short: the shortest period is 10ms')
    return seconds


class _Parser:
    """Walks the JSON document, keeping the path of the field being read for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> ConfigError:
        return ConfigError(self.source, path, problem)

    def obj(self, value: Any, path: str, allowed: dict[str, str]) -> dict[str, Any]:
        """`value` as a JSON object with only `allowed` keys (key -> why it is rejected, or "")."""
        if not isinstance(value, dict):
            raise self.fail(path or "(root)", f"must be a JSON object, not {json.dumps(value)[:40]}")
        for key in value:
            key_path = f"{path}.{key}" if path else key
            if key not in allowed:
                known = ", ".join(name for name, why in allowed.items() if not why)
                raise self.fail(key_path, f"unknown field; expected one of: {known}")
            if allowed[key]:
                raise self.fail(key_path, allowed[key])
        return value

    def period(self, value: dict[str, Any], path: str, inherited: float) -> float:
        if "period" not in value:
            return inherited
        field_path = f"{path}.period" if path else "period"
        try:
            return parse_period(value["period"])
        except ValueError as error:
            raise self.fail(field_path, str(error)) from None

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a JSON array, not {json.dumps(value)[:40]}")
        return value

    def root(self, document: Any) -> MonitorConfig:
        root = self.obj(document, "", {
            "period": "", "neuron_runtimes": "", "system_metrics": "",
            "k8s_info": "not supported: neuron_k8s_info comes from Kubernetes, which this machine does not run"})
        period = self.period(root, "", DEFAULT_PERIOD_SECONDS)
        runtimes = tuple(self.runtime(entry, f"neuron_runtimes[{index}]", period)
                         for index, entry in enumerate(self.array(root.get("neuron_runtimes", []),
                                                                  "neuron_runtimes")))
        system = self.groups(root.get("system_metrics", []), "system_metrics", period,
                             SYSTEM_GROUPS + EXTRA_SYSTEM_GROUPS)
        return MonitorConfig(runtimes=runtimes, system=system, period=period)

    def runtime(self, value: Any, path: str, inherited: float) -> RuntimeSelector:
        entry = self.obj(value, path, {
            "tag_filter": "", "metrics": "", "period": "",
            "address": 'not supported: it selects a Neuron Runtime 1.x neuron-rtd daemon; use "tag_filter"'})
        period = self.period(entry, path, inherited)
        tag_filter = None
        if "tag_filter" in entry:
            pattern = entry["tag_filter"]
            if not isinstance(pattern, str):
                raise self.fail(f"{path}.tag_filter", f"must be a regular expression string, not {json.dumps(pattern)}")
            try:
                tag_filter = re.compile(pattern)
            except re.error as error:
                raise self.fail(f"{path}.tag_filter", f"invalid regular expression {json.dumps(pattern)}: {error}") from None
        groups = self.groups(entry.get("metrics", []), f"{path}.metrics", period, RUNTIME_GROUPS)
        return RuntimeSelector(tag_filter, groups)

    def groups(self, value: Any, path: str, inherited: float, allowed: tuple[str, ...]) -> dict[str, float]:
        groups: dict[str, float] = {}
        for index, item in enumerate(self.array(value, path)):
            item_path = f"{path}[{index}]"
            group = self.obj(item, item_path, {"type": "", "period": ""})
            if "type" not in group:
                raise self.fail(f"{item_path}.type", f"missing; expected one of: {', '.join(allowed)}")
            name = group["type"]
            self.check_group_name(name, f"{item_path}.type", allowed)
            if name in groups:
                raise self.fail(f"{item_path}.type", f'"{name}" is configured twice in {path}')
            groups[name] = self.period(group, item_path, inherited)
        return groups

    def check_group_name(self, name: Any, path: str, allowed: tuple[str, ...]) -> None:
        if name in allowed:
            return
        if name in _LEGACY_GROUPS:
            raise self.fail(path, f'legacy metric group "{name}": it {_LEGACY_GROUPS[name]}')
        if name in RUNTIME_GROUPS:
            raise self.fail(path, f'"{name}" is a runtime metric group: put it in neuron_runtimes[].metrics')
        if name in SYSTEM_GROUPS + EXTRA_SYSTEM_GROUPS:
            raise self.fail(path, f'"{name}" is a system metric group: put it in system_metrics')
        raise self.fail(path, f"unknown metric group {json.dumps(name)}; expected one of: {', '.join(allowed)}")
