"""Memory Usage Summary: host and device used memory by category, in the real tool's units.

Wide terminals get the real layout: a label, then `Name: value` items in columns aligned between
the host and the device line. Narrower ones flow the items onto more lines instead of cutting them.
"""

from __future__ import annotations

from itertools import zip_longest

from rich.text import Text
from textual.widget import Widget

from neurontools.top.formatting import human_bytes
from neurontools.top.overview import Overview

LABEL_WIDTH = 22  # "Device Used Memory    "
VALUE_WIDTH = 8  # "1023.9MB"
GAP = 2
HOST_ITEMS = (("Total", "total"), ("Tensors", "tensors"), ("Constants", "constants"),
              ("DMA Buffers", "dma_buffers"), ("App. Memory", "application_memory"))
DEVICE_ITEMS = (("Total", "total"), ("Tensors", "tensors"), ("Constants", "constants"),
                ("Model Code", "model_code"), ("Runtime Memory", "runtime_memory"),
                ("Model Scratchpad", "model_shared_scratchpad"))
# one column per item position, wide enough for either line's label and any value
_SLOTS = [max(len(a[0]) if a else 0, len(b[0]) if b else 0) + 2 + VALUE_WIDTH + GAP
          for a, b in zip_longest(HOST_ITEMS, DEVICE_ITEMS)]
ALIGNED_WIDTH = LABEL_WIDTH + sum(_SLOTS)


def _items(names: tuple[tuple[str, str], ...], values: object) -> list[str]:
    return [f"{label}: {human_bytes(getattr(values, key))}" for label, key in names]


def aligned(label: str, items: list[str]) -> str:
    return (label.ljust(LABEL_WIDTH) + "".join(item.ljust(slot) for item, slot in zip(items, _SLOTS))).rstrip()


def flowed(label: str, items: list[str], width: int) -> list[str]:
    """The label on its own line when needed, then the items wrapped greedily under an indent."""
    indent = LABEL_WIDTH if width >= LABEL_WIDTH + 30 else 2
    lines: list[str] = [label.ljust(indent)] if indent == LABEL_WIDTH else [label, "  "]
    for item in items:
        if len(lines[-1]) > indent and len(lines[-1]) + len(item) > width:
            lines.append(" " * indent)
        lines[-1] += item + " " * (GAP + 1)
    return [line.rstrip() for line in lines]


class MemorySummary(Widget):
    DEFAULT_CSS = """
    MemorySummary { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.overview: Overview | None = None

    def show(self, overview: Overview) -> None:
        unchanged = self.overview is not None and (self.overview.host_memory, self.overview.device_memory) == (
            overview.host_memory, overview.device_memory)
        self.overview = overview
        if not unchanged:
            self.refresh(layout=True)

    def _lines(self, width: int) -> list[str]:
        if self.overview is None:
            return ["Host Used Memory", "Device Used Memory"]
        host = _items(HOST_ITEMS, self.overview.host_memory)
        device = _items(DEVICE_ITEMS, self.overview.device_memory)
        if width >= ALIGNED_WIDTH:
            return [aligned("Host Used Memory", host), aligned("Device Used Memory", device)]
        return [*flowed("Host Used Memory", host, width), *flowed("Device Used Memory", device, width)]

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Text:
        return Text("\n".join(self._lines(self.content_size.width)))
