"""NeuronCore Utilization: one row per device (`ND0`...), one bar per core with `[69.89%]` or TFLOPS.

The bar is the core's utilization in both modes (`f` changes the number only): in the real tool's
FLOPS screenshot the bars keep the utilization's length, far longer than the TFLOPS' share of peak.

When the terminal is too short for one row per device, devices are laid out in several columns
(ND0-ND5 | ND6-ND11), so 12 devices still fit 80x24. A click on a core selects it.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from neurontools.top.formatting import bar_ticks, core_percent, core_tflops
from neurontools.top.overview import CoreLoad, Overview

LABEL_WIDTH = 5  # "ND11 "
COLUMN_GAP = 2


class UtilizationGrid(Widget):
    DEFAULT_CSS = """
    UtilizationGrid { height: auto; }
    """
    COMPONENT_CLASSES = {"utilization--bar", "utilization--selected", "utilization--header"}

    class CoreSelected(Message):
        def __init__(self, core_id: int) -> None:
            super().__init__()
            self.core_id = core_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.overview: Overview | None = None
        self.flops_mode = False
        self.selected_core: int | None = None
        self.max_rows = 1000  # device rows the layout may use; the overview sets it from the terminal
        self._hit_boxes: list[tuple[int, int, int, int]] = []  # (row, x0, x1, core)

    def show(self, overview: Overview, flops_mode: bool, selected_core: int | None) -> None:
        self.overview, self.flops_mode, self.selected_core = overview, flops_mode, selected_core
        self.refresh(layout=True)

    def device_columns(self) -> int:
        devices = self.overview.device_count if self.overview else 0
        return max(1, math.ceil(devices / max(1, self.max_rows)))

    def get_content_height(self, container, viewport, width: int) -> int:
        if not self.overview or not self.overview.cores:
            return 1
        return 1 + math.ceil(self.overview.device_count / self.device_columns())

    def render(self) -> Text:
        overview = self.overview
        if overview is None:
            return Text("waiting for the first report...")
        if not overview.cores:
            return Text("no NeuronCores in this report")
        columns = self.device_columns()
        rows = math.ceil(overview.device_count / columns)
        width = self.content_size.width
        column_width = (width - COLUMN_GAP * (columns - 1)) // columns
        per_device = overview.cores_per_device
        cell_width = len(core_tflops(0.0) if self.flops_mode else core_percent(0.0))
        bar_width = max(1, (column_width - LABEL_WIDTH - per_device * (cell_width + 1)) // per_device)
        slot = bar_width + cell_width + 1
        bar_style = self.get_component_rich_style("utilization--bar")
        selected_style = self.get_component_rich_style("utilization--selected")
        header_style = self.get_component_rich_style("utilization--header")
        self._hit_boxes = []

        header = Text()
        for column in range(columns):
            header.append(" " * (LABEL_WIDTH + (column_width + COLUMN_GAP) * column - header.cell_len))
            for local in range(per_device):
                header.append(f"NC{local}".center(slot), header_style)
        lines = [header]
        for row in range(rows):
            line = Text()
            for column in range(columns):
                device = column * rows + row
                if device >= overview.device_count:
                    break
                line.append(" " * ((column_width + COLUMN_GAP) * column - line.cell_len))
                line.append(f"ND{device}".ljust(LABEL_WIDTH))
                for local in range(per_device):
                    core = overview.cores[device * per_device + local]
                    x0 = line.cell_len
                    self._append_core(line, core, bar_width, bar_style,
                                      selected_style if core.core_id == self.selected_core else None)
                    self._hit_boxes.append((row + 1, x0, line.cell_len, core.core_id))
                    line.append(" ")
            lines.append(line)
        return Text("\n").join(lines)

    def _append_core(self, line: Text, core: CoreLoad, bar_width: int, bar_style, selected_style) -> None:
        cell = core_tflops(core.flops) if self.flops_mode else core_percent(core.utilization)
        ticks = bar_ticks(core.utilization / 100, bar_width)
        bar = Text("|" * ticks, bar_style) + Text(" " * (bar_width - ticks))
        if selected_style is not None:
            bar.stylize(selected_style)
        line.append_text(bar)
        line.append(cell, selected_style)

    def on_click(self, event: events.Click) -> None:
        for row, x0, x1, core in self._hit_boxes:
            if event.y == row and x0 <= event.x < x1:
                self.post_message(self.CoreSelected(core))
                return
