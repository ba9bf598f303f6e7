"""What a source hands to the screen, and how it says it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from neurontools.monitor.report import Report

if TYPE_CHECKING:
    from neurontools.top.device_extras import DeviceExtras


class SourceUnavailable(Exception):
    """The source is away for now (neurond down or restarting): keep the last frame, retry."""


class SourceEnded(Exception):
    """The source has nothing more (end of a stream or of a recording)."""


@dataclass(frozen=True)
class Frame:
    report: Report
    device: "DeviceExtras | None" = None  # snapshot facts beyond the report (live source only)
    produced_at: float = 0.0  # wall-clock time (time.time()) of the data: the snapshot, or when it was read
    notice: str = ""  # something the user should know about this frame's source (skipped lines, ...)


class FrameSource(Protocol):
    description: str  # "neurond at unix:///run/neurond.sock", "stdin", "replay of FILE"
    can_end_sessions: bool  # whether operator actions reach a daemon

    def read(self) -> Frame:
        """Block until the next frame; raises SourceUnavailable or SourceEnded."""

    def delay(self) -> float | None:
        """Seconds to wait after a finished read before the next one; None: wait to be asked."""

    def close(self) -> None: ...
