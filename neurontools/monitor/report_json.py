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
from collections.abc import Iterable
from functools import cache
from operator import itemgetter

from pydantic import BaseModel

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
    """Encode a report as one compact line, without the terminating newline."""
    out: list[str] = []
    _encode(report, out, sort_dicts=True)
    return "".join(out)


def go_float(value: float) -> str:
    """Format a float64 as Go's encoding/json does.

    Shortest round-trip digits (the same digits Python's repr picks), in fixed notation unless
    the magnitude is below 1e-6 or at least 1e21; exponents are not zero-padded (1e-7, 1e+21).
    """
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value!r}")  # Go refuses NaN and Inf too
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    match = _FLOAT_REPR.fullmatch(repr(abs(value)))
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
def _field_plan(model_type: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """(name, omit when None) per declared field, in declaration order."""
    return tuple((name, not info.is_required()) for name, info in model_type.model_fields.items())


def _encode(value: object, out: list[str], *, sort_dicts: bool) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, str):
        out.append(go_string(value))
    elif isinstance(value, ReportObject):
        _encode_model(value, out)
    elif isinstance(value, dict):
        items = sorted(value.items(), key=itemgetter(0)) if sort_dicts else value.items()
        _encode_object(((key, item, sort_dicts) for key, item in items), out)
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, sort_dicts=sort_dicts)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a neuron-monitor report")


def _encode_model(model: ReportObject, out: list[str]) -> None:
    items = [
        (name, value, True)
        for name, omit_if_none in _field_plan(type(model))
        if not ((value := getattr(model, name)) is None and omit_if_none)
    ]
    # Unknown keys came from some tool's JSON: keep that JSON's own key order inside them.
    items.extend((key, value, False) for key, value in (model.__pydantic_extra__ or {}).items())
    if model.encoded_as_map:
        items.sort(key=itemgetter(0))
    _encode_object(items, out)


def _encode_object(items: Iterable[tuple[str, object, bool]], out: list[str]) -> None:
    """Write an object from (key, value, sort_dicts of value) triples."""
    out.append("{")
    for index, (key, value, sort_dicts) in enumerate(items):
        if index:
            out.append(",")
        out.append(go_string(key))
        out.append(":")
        _encode(value, out, sort_dicts=sort_dicts)
    out.append("}")
