"""A line (wrapped to three at most) under the title for what the user must know about the data: the daemon is away and
we are reconnecting, the stream ended, the replay's position and speed. Hidden when all is well."""

from __future__ import annotations

from typing import Literal

from textual.widgets import Static

Kind = Literal["error", "info", "notice"]


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: auto; max-height: 3; display: none; }
    """

    def say(self, message: str, kind: Kind = "info") -> None:
        self.set_classes(f"-{kind}")
        self.update(message)
        self.display = bool(message)
