"""The Cores view: every core's utilization history as a sparkline, and the selected core's
per-engine breakdown (Tensor, Vector, Scalar, GPSIMD, DMA) with its own history.

Utilization comes from the reports (the same numbers as the bars); engine figures come from the
snapshot add-on (`device_extras`) and exist only with the live source. A click selects a core.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual import events
from textual.containers import Vertical
from textual.widget import Widget

from neurontools.top.device_extras import ENGINE_NAMES, DeviceExtras
from neurontools.top.formatting import bar_ticks
from neurontools.top.history import History, sparkline
from neurontools.top.overview import Overview
from neurontools.top.widgets.utilization import UtilizationGrid

LABEL_WIDTH = 9  # "ND11 NC1 "
VALUE_WIDTH = 7  # " 69.9% "
MIN_SPARK = 8


def core_history_key(core_id: int) -> tuple[str, int]:
    return ("core", core_id)


def engine_history_key(core_id: int, engine: str) -> tuple[str, int, str]:
    return ("engine", core_id, engine)


class CoreHistoryGrid(Widget):
    DEFAULT_CSS = """
    CoreHistoryGrid { height: 1fr; }
    """
    COMPONENT_CLASSES = {"history--spark", "history--selected"}

    def __init__(self, history: History, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.overview: Overview | None = None
        self.selected_core: int | None = None
        self._hit_boxes: list[tuple[int, int, int, int]] = []

    def show(self, overview: Overview | None, selected_core: int | None) -> None:
        self.overview, self.selected_core = overview, selected_core
        self.refresh()

    def render(self) -> Text:
        if self.overview is None or not self.overview.cores:
            return Text("waiting for the first report...")
        cores = self.overview.cores
        width, height = self.content_size.width, max(1, self.content_size.height)
        columns = max(1, min(math.ceil(len(cores) / height), width // (LABEL_WIDTH + VALUE_WIDTH + MIN_SPARK)))
        rows = math.ceil(len(cores) / columns)
        column_width = width // columns
        spark_width = max(1, column_width - LABEL_WIDTH - VALUE_WIDTH - 1)
        spark_style = self.get_component_rich_style("history--spark")
        selected_style = self.get_component_rich_style("history--selected")
        self._hit_boxes = []
        lines = []
        for row in range(rows):
            line = Text()
            for column in range(columns):
                index = column * rows + row
                if index >= len(cores):
                    break
                core = cores[index]
                x0 = column * column_width
                line.append(" " * (x0 - line.cell_len))
                cell = Text(f"ND{core.device} NC{core.local}".ljust(LABEL_WIDTH))
                series = self.history.series(core_history_key(core.core_id))
                cell.append(sparkline(series, spark_width), spark_style)
                # the latest point of the series drawn (every application), not the selected tab's share
                cell.append(f"{series[-1] if series else core.utilization:6.1f}%")
                if core.core_id == self.selected_core:
                    cell.stylize(selected_style)
                line.append_text(cell)
                self._hit_boxes.append((row, x0, line.cell_len, core.core_id))
            lines.append(line)
        return Text("\n").join(lines)

    def on_click(self, event: events.Click) -> None:
        for row, x0, x1, core in self._hit_boxes:
            if event.y == row and x0 <= event.x < x1:
                self.post_message(UtilizationGrid.CoreSelected(core))
                return


class EnginePanel(Widget):
    DEFAULT_CSS = """
    EnginePanel { height: 8; }
    """
    COMPONENT_CLASSES = {"engine--bar", "engine--title"}

    def __init__(self, history: History, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.extras: DeviceExtras | None = None
        self.core_id = 0
        self.cores_per_device = 2

    def show(self, extras: DeviceExtras | None, core_id: int, cores_per_device: int) -> None:
        self.extras, self.core_id, self.cores_per_device = extras, core_id, max(1, cores_per_device)
        self.refresh()

    def render(self) -> Text:
        device, local = divmod(self.core_id, self.cores_per_device)
        core = self.extras.cores.get(self.core_id) if self.extras else None
        waiting = f", {core.in_flight} in flight" if core is not None else ""
        title = Text(f"NC {self.core_id} (ND{device} NC{local}{waiting}) engines: modeled busy time, % of wall time",
                     self.get_component_rich_style("engine--title"))
        if core is None:
            reason = ("per-engine time comes from neurond snapshots; neuron-monitor reports do not carry it"
                      if self.extras is None else "this core is not in the daemon's snapshot")
            return Text("\n").join([title, Text(reason)])
        width = self.content_size.width
        bar_width = max(4, (width - 8 - 8) // 2)
        spark_width = max(0, width - 8 - bar_width - 8 - 1)
        bar_style = self.get_component_rich_style("engine--bar")
        lines = [title]
        rows = (("Core", core.occupied, "occupied"),
                *((name, busy, name) for name, busy in zip(ENGINE_NAMES, core.busy)))
        for label, fraction, series in rows:
            ticks = bar_ticks(fraction, bar_width)
            line = Text(label.ljust(8))
            line.append("|" * ticks, bar_style)
            line.append(" " * (bar_width - ticks))
            line.append(f"{fraction * 100:6.1f}% ")
            line.append(sparkline(self.history.series(engine_history_key(self.core_id, series)), spark_width),
                        bar_style)
            lines.append(line)
        return Text("\n").join(lines)


class CoresView(Vertical):
    def __init__(self, history: History, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grid = CoreHistoryGrid(history)
        self.engines = EnginePanel(history)

    def compose(self):
        yield self.grid
        yield self.engines

    def show(self, overview: Overview | None, extras: DeviceExtras | None, selected_core: int | None) -> None:
        core = selected_core if selected_core is not None else 0
        self.grid.show(overview, core)
        self.engines.show(extras, core, overview.cores_per_device if overview else 2)
