"""The bundled alert rules, optionally time-compressed for a fast lab or test run.

Compressing divides every `for:`, range selector (`[5m]`, a subquery's `[30m:1m]`), `offset` and
`predict_linear` horizon written in hours (`4 * 3600`) by the time scale, never below 1 s, so a scenario played N times faster fires and resolves its alerts N times sooner. Nothing else
in the rules changes.
"""

from __future__ import annotations

import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy" / "prometheus"
RULES = DEPLOY / "neuron-alerts.yml"

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_FOR = re.compile(r"^([ \t]*for:[ \t]*)(\d+)(ms|s|m|h|d)[ \t]*$", re.MULTILINE)
_RANGE = re.compile(r"\[(\d+)(ms|s|m|h|d)(?::(\d+)(ms|s|m|h|d))?\]")  # a range, or a subquery's range:step
_HOURS = re.compile(r"\b(\d+) \* 3600\b")  # predict_linear's horizon, written in hours
_OFFSET = re.compile(r"\boffset (\d+)(ms|s|m|h|d)\b")


def alert_names(path: Path = RULES) -> list[str]:
    return re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", path.read_text(), re.MULTILINE)


def _scaled(number: str, unit: str, scale: float) -> str:
    return f"{max(1, round(int(number) * _UNITS[unit] / scale))}s"


def compressed(text: str, scale: float) -> str:
    if scale == 1:
        return text
    text = _FOR.sub(lambda m: m.group(1) + _scaled(m.group(2), m.group(3), scale), text)
    text = _OFFSET.sub(lambda m: f"offset {_scaled(m.group(1), m.group(2), scale)}", text)
    text = _HOURS.sub(lambda m: str(max(1, round(int(m.group(1)) * 3600 / scale))), text)
    return _RANGE.sub(lambda m: f"[{_scaled(m.group(1), m.group(2), scale)}"
                      + (f":{_scaled(m.group(3), m.group(4), scale)}]" if m.group(3) else "]"), text)


def write_rules(directory: Path, scale: float, source: Path = RULES) -> Path:
    path = directory / source.name
    path.write_text(compressed(source.read_text(), scale))
    return path
