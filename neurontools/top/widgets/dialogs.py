"""Modal screens: the help screen (every key, each row clickable) and the end-session confirmation."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


@dataclass(frozen=True)
class HelpEntry:
    keys: str
    description: str
    action: str | None  # app action run when the row is clicked


class HelpRow(Static):
    def __init__(self, entry: HelpEntry) -> None:
        text = Text(f"{entry.keys:>12}  ", "bold")
        text.append(entry.description)
        super().__init__(text, classes="help-row" + (" -clickable" if entry.action else ""))
        self.entry = entry

    def on_click(self, event: events.Click) -> None:
        if self.entry.action:
            event.stop()
            self.screen.dismiss(self.entry.action)


class HelpScreen(ModalScreen[str | None]):
    """Dismissed with the action of a clicked row, or None."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "close help")]

    def __init__(self, sections: list[tuple[str, list[HelpEntry]]], footer: str) -> None:
        super().__init__()
        self.sections = sections
        self.footer = footer

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("neuron-top keys: press a key, or click a row (escape closes)", classes="help-title")
            with VerticalScroll():
                for title, entries in self.sections:
                    yield Static(title, classes="help-section")
                    for entry in entries:
                        yield HelpRow(entry)
            yield Static(self.footer, classes="help-footer")

    def on_click(self, event: events.Click) -> None:
        if event.widget is self:  # a click outside the box closes it
            self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "dismiss(False)", "cancel"), Binding("y", "dismiss(True)", "confirm")]

    def __init__(self, question: str, confirm_label: str) -> None:
        super().__init__()
        self.question = question
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.confirm_label} (y)", variant="error", id="confirm")
                yield Button("Cancel (n)", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the safe choice is the default

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")
