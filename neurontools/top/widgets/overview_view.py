"""The real neuron-top's four sections, top to bottom: NeuronCore utilization, vCPU utilization,
memory usage summary, memory usage details. The tree gets whatever height is left; the
utilization grid folds its devices into more columns when the terminal is short."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widgets import Static

from neurontools.top.overview import Overview
from neurontools.top.widgets.memory_summary import MemorySummary
from neurontools.top.widgets.memory_tree import MemoryTreeView
from neurontools.top.widgets.utilization import UtilizationGrid
from neurontools.top.widgets.vcpu import VcpuPanel

MIN_TREE_ROWS = 2
# section bars (4), the grid's NC header, the vCPU rows, the tree's column header
FIXED_ROWS = 4 + 1 + 2 + 1


class OverviewView(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.utilization_title = Static("NeuronCore Utilization", classes="section")
        self.utilization = UtilizationGrid()
        self.vcpu = VcpuPanel()
        self.summary = MemorySummary()
        self.memory_tree = MemoryTreeView()

    def compose(self):
        yield self.utilization_title
        yield self.utilization
        yield Static("vCPU Utilization", classes="section")
        yield self.vcpu
        yield Static("Memory Usage Summary", classes="section")
        yield self.summary
        yield Static("Memory Usage Details", classes="section")
        yield self.memory_tree

    def show(self, overview: Overview, flops_mode: bool, selected_core: int | None) -> None:
        self.utilization_title.update(utilization_heading(overview, flops_mode))
        self._budget_rows()
        self.utilization.show(overview, flops_mode, selected_core)
        self.vcpu.show(overview)
        self.summary.show(overview)
        self.memory_tree.show(overview.memory_tree)

    def on_resize(self) -> None:
        self._budget_rows()
        self.utilization.refresh(layout=True)

    def _budget_rows(self) -> None:
        width, height = self.size
        summary_rows = self.summary.get_content_height(self.size, self.size, width)
        self.utilization.max_rows = max(1, height - FIXED_ROWS - summary_rows - MIN_TREE_ROWS)


def utilization_heading(overview: Overview, flops_mode: bool) -> str:
    if not flops_mode:
        return f"{overview.utilization_title} (Avg: {overview.average_utilization:.2f}%)"
    average, total = overview.average_flops, overview.total_flops
    if average is None or total is None:
        return f"{overview.utilization_title} (Avg:      N/A | Total:      N/A)"
    return f"{overview.utilization_title} (Avg: {average / 1e12:8.3f}TF | Total: {total / 1e12:8.3f}TF)"
