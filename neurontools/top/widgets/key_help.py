"""The key help line under the tab bar, as the real tool's, each entry clickable.

Entries are `key: what` pairs separated by two spaces; a click on an entry runs its action, so
every key is also reachable by mouse. What does not fit the width is cut, as in the real tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.widget import Widget


@dataclass(frozen=True)
class KeyHint:
    key: str  # as shown: "q", "arrows", "1-9"
    description: str
    action: str | None  # an app action to run on click; None for hints that need a key (arrows)


class KeyHelp(Widget):
    DEFAULT_CSS = """
    KeyHelp { height: 1; }
    """
    COMPONENT_CLASSES = {"key-help--key"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hints: tuple[KeyHint, ...] = ()
        self._hit_boxes: list[tuple[int, int, str]] = []

    def show(self, hints: tuple[KeyHint, ...]) -> None:
        if hints != self.hints:
            self.hints = hints
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-help--key")
        text = Text()
        width = self.content_size.width
        self._hit_boxes = []
        for hint in self.hints:
            if text.cell_len:
                text.append("  ")
            x0 = text.cell_len
            text.append(f"{hint.key}:", key_style)
            text.append(f" {hint.description}")
            if hint.action and text.cell_len <= width:  # only entries shown whole are clickable
                self._hit_boxes.append((x0, text.cell_len, hint.action))
        text.truncate(width)
        return text

    async def on_click(self, event: events.Click) -> None:
        for x0, x1, action in self._hit_boxes:
            if x0 <= event.x < x1:
                await self.app.run_action(action)
                return
