"""vCPU Utilization: system and runtime rows, a bar of user (green) then system (red) ticks."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from neurontools.top.formatting import bar_ticks, vcpu_pair
from neurontools.top.overview import Overview

ROWS = (("System vCPU Usage", "system_vcpu"), ("Runtime vCPU Usage", "runtime_vcpu"))
LABEL_WIDTH = 19


class VcpuPanel(Widget):
    DEFAULT_CSS = """
    VcpuPanel { height: 2; }
    """
    COMPONENT_CLASSES = {"vcpu--user", "vcpu--system"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.overview: Overview | None = None

    def show(self, overview: Overview) -> None:
        self.overview = overview
        self.refresh()

    def render(self) -> Text:
        user_style = self.get_component_rich_style("vcpu--user")
        system_style = self.get_component_rich_style("vcpu--system")
        lines = []
        for label, attribute in ROWS:
            pair = getattr(self.overview, attribute) if self.overview else None
            value = vcpu_pair(*pair) if pair else "[  N/A ,  N/A ]"
            bar_width = max(1, self.content_size.width - LABEL_WIDTH - len(value) - 1)
            user = bar_ticks(pair[0] / 100, bar_width) if pair else 0
            system = min(bar_width - user, bar_ticks(pair[1] / 100, bar_width)) if pair else 0
            line = Text(label.ljust(LABEL_WIDTH))
            line.append("|" * user, user_style)
            line.append("|" * system, system_style)
            line.append(" " * (bar_width - user - system + 1))
            line.append(value)
            lines.append(line)
        return Text("\n").join(lines)
