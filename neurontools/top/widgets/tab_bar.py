"""The bottom bar: `Neuron Apps  >[1]:all<  [2]:7286 ...`, the selected tab green between > and <.

With more applications than the terminal has room for, the bar shows a window of tabs around the
selected one with « and » marking the hidden ones, so the selected tag never disappears (the real
tool had that bug on small terminals). A click selects a tab.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from neurontools.top.tabs import ALL, AppTab

LABEL = "Neuron Apps"
GAP = "    "


def tab_text(tab: AppTab, selected: bool) -> str:
    return f">[{tab.number}]:{tab.label}<" if selected else f" [{tab.number}]:{tab.label} "


class TabBar(Widget):
    DEFAULT_CSS = """
    TabBar { height: 1; }
    """
    COMPONENT_CLASSES = {"tab-bar--selected"}

    class Selected(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tabs: tuple[AppTab, ...] = (AppTab(1, ALL, ALL),)
        self.selected = ALL
        self._hit_boxes: list[tuple[int, int, str]] = []

    def show(self, tabs: tuple[AppTab, ...], selected: str) -> None:
        if (tabs, selected) != (self.tabs, self.selected):
            self.tabs, self.selected = tabs, selected
            self.refresh()

    def _window(self, width: int) -> tuple[int, int]:
        """First and last+1 index of the tabs that fit, around the selected one."""
        sizes = [len(GAP) + len(tab_text(t, False)) for t in self.tabs]
        room = width - len(LABEL) - 4  # room for the « and » markers
        chosen = next((i for i, t in enumerate(self.tabs) if t.key == self.selected), 0)
        start, end, used = chosen, chosen + 1, sizes[chosen]
        while True:
            grew = False
            if end < len(sizes) and used + sizes[end] <= room:
                used += sizes[end]
                end += 1
                grew = True
            if start > 0 and used + sizes[start - 1] <= room:
                start -= 1
                used += sizes[start]
                grew = True
            if not grew:
                return start, end

    def render(self) -> Text:
        selected_style = self.get_component_rich_style("tab-bar--selected")
        start, end = self._window(self.content_size.width)
        text = Text(LABEL)
        text.append(" «" if start > 0 else "  ")
        self._hit_boxes = []
        for tab in self.tabs[start:end]:
            text.append(GAP)
            selected = tab.key == self.selected
            x0 = text.cell_len
            text.append(tab_text(tab, selected), selected_style if selected else None)
            self._hit_boxes.append((x0, text.cell_len, tab.key))
        if end < len(self.tabs):
            text.append(" »")
        return text

    def on_click(self, event: events.Click) -> None:
        for x0, x1, key in self._hit_boxes:
            if x0 <= event.x < x1:
                self.post_message(self.Selected(key))
                return
