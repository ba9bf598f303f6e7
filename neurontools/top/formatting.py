"""Numbers as neuron-top prints them (formats transcribed from the real tool's screenshots)."""

from __future__ import annotations

_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(count: float) -> str:
    """One decimal and a 1024-based unit without a space: `0.0B`, `34.0KB`, `888.4MB`, `20.2GB`."""
    value = float(count)
    for unit in _BYTE_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}{_BYTE_UNITS[-1]}"


def human_rate(bytes_per_second: float) -> str:
    """Link throughput, e.g. `12.3GB/s`."""
    return f"{human_bytes(bytes_per_second)}/s"


def core_percent(percent: float) -> str:
    """A core's utilization cell: `[69.89%]`."""
    return f"[{percent:5.2f}%]"


def core_tflops(flops_per_second: float | None) -> str:
    """A core's FLOPS cell: `[  9.848TF]`; `[   N/A   ]` when the report has no FLOPS."""
    if flops_per_second is None:
        return "[   N/A   ]"
    return f"[{flops_per_second / 1e12:8.3f}TF]"


def vcpu_pair(user: float, system: float) -> str:
    """A vCPU row's value: user and system percent, `[ 2.69%, 3.97%]`."""
    return f"[{user:5.2f}%,{system:5.2f}%]"


def seconds_short(seconds: float | None) -> str:
    """A latency in the most readable unit: `812us`, `3.28ms`, `1.20s`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def rate_short(per_second: float) -> str:
    """An event rate: `0`, `3.5/s`, `1.2k/s`."""
    if per_second == 0:
        return "0"
    if per_second < 1000:
        return f"{per_second:.1f}/s"
    return f"{per_second / 1000:.1f}k/s"


def bar_ticks(fraction: float, width: int) -> int:
    """How many of `width` bar cells a fraction fills (clamped to the bar)."""
    if width <= 0:
        return 0
    return max(0, min(width, round(fraction * width)))
