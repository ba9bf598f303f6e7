"""The Topology view: the ring, chain or torus of devices with live NeuronLink throughput."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget

from neurontools.top.device_extras import DeviceExtras
from neurontools.top.topology_map import LoadStyles, drawing, link_table

NO_SNAPSHOTS = ("The topology and link traffic come from neurond snapshots; neuron-monitor reports "
                "(--stdin, --replay) do not carry them.")


class TopologyDrawing(Widget):
    DEFAULT_CSS = """
    TopologyDrawing { height: auto; }
    """
    COMPONENT_CLASSES = {"topology--idle", "topology--busy", "topology--hot"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.extras: DeviceExtras | None = None

    def show(self, extras: DeviceExtras | None) -> None:
        self.extras = extras
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        if self.extras is None:
            return [Text(NO_SNAPSHOTS)]
        styles = LoadStyles(*(self.get_component_rich_style(f"topology--{name}")
                              for name in ("idle", "busy", "hot")))
        heading = Text(f"{self.extras.device_count} devices, {self.extras.shape}; "
                       "link labels: bytes per second, both directions, last period", "bold")
        picture = drawing(self.extras, width, styles)
        if not self.extras.links:
            return [heading, *picture, Text(""), Text("no NeuronLinks on this machine")]
        return [heading, Text(""), *picture, Text(""), *link_table(self.extras, styles)]

    def get_content_height(self, container, viewport, width: int) -> int:
        return sum(max(1, len(line.wrap(self.app.console, max(1, width)))) for line in self._lines(width))

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.content_size.width))


class TopologyView(VerticalScroll):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.drawing = TopologyDrawing()

    def compose(self):
        yield self.drawing

    def show(self, extras: DeviceExtras | None) -> None:
        self.drawing.show(extras)
