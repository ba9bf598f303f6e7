"""Recent values per series (core utilization, engine busy share) for the history sparklines."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

DEFAULT_LENGTH = 240  # four minutes at the default 1 s interval; wider than any terminal's sparkline


class History:
    def __init__(self, length: int = DEFAULT_LENGTH) -> None:
        self.length = length
        self._series: dict[Hashable, deque[float]] = {}

    def record(self, key: Hashable, value: float) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.length)
        series.append(value)

    def series(self, key: Hashable, last: int | None = None) -> list[float]:
        values = self._series.get(key, ())
        if last is None or last >= len(values):
            return list(values)
        return list(values)[-last:] if last > 0 else []


_BLOCKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int, full_scale: float = 100.0) -> str:
    """The last `width` values as block characters on a fixed scale (0..full_scale), right-aligned."""
    if width <= 0:
        return ""
    values = values[-width:]
    top = len(_BLOCKS) - 1
    cells = [_BLOCKS[_level(v, full_scale, top)] for v in values]
    return " " * (width - len(cells)) + "".join(cells)


def _level(value: float, full_scale: float, top: int) -> int:
    if full_scale <= 0 or value <= 0:
        return 0
    return max(1, min(top, round(value / full_scale * top)))  # any activity shows at least the lowest block
