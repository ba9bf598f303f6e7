"""Read and write neuron-monitor reports exactly as the real tool (Go `encoding/json`) writes them.

One report is one compact line: no spaces; struct-typed objects in declaration order, map-typed
objects (`ReportObject.encoded_as_map`, and every dict-typed field) with keys sorted bytewise;
numbers as Go formats them; strings escaped as Go escapes them (HTML-safe by default). Optional
fields that are None are omitted; unknown keys read from input are written back after the known
ones, in their input order, with their nested objects left as read.
"""

from __future__ import annotations

import math
import re
import threading
from functools import cache, lru_cache
from operator import itemgetter

from neurontools.monitor.report import Report, ReportObject

_STRING_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
}
# Control characters, quote and backslash; <, > and & (Go escapes them by default, for HTML);
# U+2028/U+2029 (JavaScript line terminators, escaped by Go); lone surrogates (no UTF-8 form).
_NEEDS_ESCAPE = re.compile("[\x00-\x1f\"\\\\<>&\u2028\u2029\ud800-\udfff]")
_FLOAT_REPR = re.compile(r"(\d+)(?:\.(\d+))?(?:e([+-]\d+))?")


def loads_report(line: str | bytes) -> Report:
    """Parse one report line (surrounding whitespace, e.g. the newline, is ignored)."""
    return Report.model_validate_json(line)


def dumps_report(report: Report) -> str:
    """Encode a report as one compact line, without the terminating newline.

    The text of every object is kept, by identity, until a report without that object is encoded:
    the collector reuses the objects of groups that did not change and shares one object among all
    idle cores, so much of each line is already written. Report objects are frozen; the dicts and
    lists inside them must not be changed once the report is encoded either.
    """
    with _ENCODER_LOCK:
        return _ENCODER.report(report)


def go_float(value: float) -> str:
    """Format a float64 as Go's encoding/json does.

    Shortest round-trip digits (the same digits Python's repr picks), in fixed notation unless
    the magnitude is below 1e-6 or at least 1e21; exponents are not zero-padded (1e-7, 1e+21).
    """
    text = repr(value)
    if "e" not in text and "n" not in text:
        # repr's fixed notation (1e-4 <= |value| < 1e16) is Go's, with the same digits, but for
        # the ".0" Python gives integral values: the common case, without the general rule below.
        return text[:-2] if text.endswith(".0") else text
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")  # Go refuses NaN and Inf too
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    match = _FLOAT_REPR.fullmatch(text.removeprefix("-"))
    assert match is not None, value  # repr of a finite positive float always has this shape
    whole, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3) or 0)
    # value == int(digits) * 10**scale, digits without leading or trailing zeros
    digits = (whole + fraction).lstrip("0")
    scale = exponent - len(fraction) + len(digits) - len(digits.rstrip("0"))
    digits = digits.rstrip("0")
    if 1e-6 <= abs(value) < 1e21:
        if scale >= 0:
            return sign + digits + "0" * scale
        point = len(digits) + scale
        if point > 0:
            return sign + digits[:point] + "." + digits[point:]
        return sign + "0." + "0" * -point + digits
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{scale + len(digits) - 1:+d}"


def go_string(text: str) -> str:
    """Quote a string as Go's encoding/json does."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _STRING_ESCAPES:
        return _STRING_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        return "\\ufffd"  # what Go writes for bytes that are not UTF-8
    return f"\\u{ord(char):04x}"


@cache
def _field_plan(model_type: type[ReportObject]) -> tuple[tuple[str, str, bool], ...]:
    """(name, `"name":`, omit when None) per declared field, in the order the fields are written
    when the object has no unknown keys: declaration order, or sorted for a map-typed object."""
    plan = [(name, go_string(name) + ":", not info.is_required()) for name, info in model_type.model_fields.items()]
    return tuple(sorted(plan) if model_type.encoded_as_map else plan)


class _Encoder:
    """Writes reports one after another, keeping each object's text for the next report."""

    def __init__(self) -> None:
        # id -> (object, text): holding the object keeps its id from being reused while kept.
        self._kept: dict[int, tuple[ReportObject, str]] = {}  # the previous report's objects
        self._seen: dict[int, tuple[ReportObject, str]] = {}  # this report's, so far

    def report(self, report: Report) -> str:
        try:
            return self._model(report)
        finally:
            self._kept, self._seen = self._seen, {}

    def _model(self, model: ReportObject) -> str:
        key = id(model)
        entry = self._seen.get(key) or self._kept.get(key)
        if entry is None:
            entry = (model, self._model_text(model))
        self._seen[key] = entry
        return entry[1]

    def _model_text(self, model: ReportObject) -> str:
        if model.__pydantic_extra__:
            return self._with_unknown_keys(model)
        values = model.__dict__
        value_text = self._value
        return "{" + ",".join([
            key_text + value_text(value, True)
            for name, key_text, omit_if_none in _field_plan(type(model))
            if not ((value := values[name]) is None and omit_if_none)
        ]) + "}"

    def _with_unknown_keys(self, model: ReportObject) -> str:
        """An object read from some tool's JSON: its unknown keys after the declared fields, in
        that JSON's order and with their nested objects as read; every key sorted for a map."""
        items = [
            (name, value, True)
            for name, _, omit_if_none in _field_plan(type(model))
            if not ((value := getattr(model, name)) is None and omit_if_none)
        ]
        items.extend((key, value, False) for key, value in model.__pydantic_extra__.items())
        if model.encoded_as_map:
            items.sort(key=itemgetter(0))
        return "{" + ",".join([_key_text(key) + self._value(value, sort_dicts) for key, value, sort_dicts in items]) + "}"

    def _value(self, value: object, sort_dicts: bool) -> str:
        kind = type(value)  # the common exact types first: this runs for every value of a line
        if kind is str:
            return go_string(value)  # type: ignore[arg-type]
        if kind is float:
            return go_float(value)  # type: ignore[arg-type]
        if kind is int:
            return str(value)
        if isinstance(value, ReportObject):
            return self._model(value)
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return go_float(value)
        if isinstance(value, str):
            return go_string(value)
        if isinstance(value, dict):
            items = sorted(value.items(), key=itemgetter(0)) if sort_dicts else value.items()
            value_text = self._value
            return "{" + ",".join([_key_text(key) + value_text(item, sort_dicts) for key, item in items]) + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join([self._value(item, sort_dicts) for item in value]) + "]"
        raise TypeError(f"cannot encode {type(value).__name__} in a neuron-monitor report")


@lru_cache(maxsize=4096)
def _key_text(key: str) -> str:
    """`"key":` -- map keys (core and vCPU indices, subgraph names) recur in every line."""
    return go_string(key) + ":"


_ENCODER = _Encoder()
_ENCODER_LOCK = threading.Lock()  # one encoder, whatever thread writes a report
