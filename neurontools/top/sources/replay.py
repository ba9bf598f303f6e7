"""Replay a recorded neuron-monitor stream (`neuron-monitor > run.ndjson`, or a pretty capture).

Frames come at the recorded pace (each report's own period) times the speed; the user can pause,
step either way and change the speed. The file is split into documents on the first read (in the
reader thread, never the UI's); a document is parsed when it is shown, so long recordings open fast.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from neurontools.monitor.report import Report
from neurontools.top.sources.frame import Frame, SourceEnded
from neurontools.top.sources.parsing import NotAReport, frame_of
from neurontools.top.sources.report_documents import Document, documents

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MIN_PERIOD_SECONDS, MAX_PERIOD_SECONDS = 0.1, 10.0


def report_period(report: Report, default: float) -> float:
    """The sampling period the report covers: the longest of its groups' periods."""
    periods = [group.period for group in (report.system_data.memory_info, report.system_data.vcpu_usage,
                                          report.system_data.neuron_hw_counters) if group is not None]
    for runtime in report.neuron_runtime_data:
        periods.extend(group.period for group in (runtime.report.neuroncore_counters,
                                                  runtime.report.memory_used,
                                                  runtime.report.execution_stats,
                                                  runtime.report.neuron_runtime_vcpu_usage) if group is not None)
    return max(periods, default=default)


class ReplaySource:
    can_end_sessions = False

    def __init__(self, path: Path, default_period: float = 1.0) -> None:
        self.path = path
        self.description = f"replay of {path.name}"
        self._default_period = default_period
        self._lock = threading.Lock()
        self._documents: list[Document] | None = None
        self._next = 0  # index of the document the next read shows
        self._shown = -1
        self._direction = 1  # which way a read skips over bad records: -1 right after stepping back
        self._paused = False
        self._speed_index = SPEEDS.index(1.0)
        self._last_period = default_period
        self._frame_at = lru_cache(maxsize=8)(self._parse)

    # --- reading (reader thread) ---

    def read(self) -> Frame:
        if self._documents is None:
            with self.path.open(encoding="utf-8", errors="replace") as file:
                self._documents = list(documents(file))
        problems: list[str] = []
        while True:
            with self._lock:
                index = self._next
                if index < 0:  # stepped back past the first good record: show it
                    index, self._direction = 0, 1
                if index >= len(self._documents):
                    self._paused = True
                    raise SourceEnded(self._end_message(problems))
                self._next = index + self._direction
            try:
                frame = self._frame_at(index)
            except NotAReport as problem:  # skip the bad record, say so with the next good one
                problems.append(str(problem))
                continue
            with self._lock:
                self._direction = 1
                self._next = index + 1
            self._shown = index
            self._last_period = report_period(frame.report, self._default_period)
            if problems:
                frame = replace(frame, notice=f"skipped: {problems[-1]}")
            return frame

    def _end_message(self, problems: list[str]) -> str:
        count = len(self._documents or ())
        if self._shown < 0:
            return f"{self.path} holds no neuron-monitor report" + (f": {problems[-1]}" if problems else "")
        return (f"end of {self.path.name} ({count} records); space replays from the start, b steps back"
                + (f"; skipped: {problems[-1]}" if problems else ""))

    def _parse(self, index: int) -> Frame:
        assert self._documents is not None
        return frame_of(self._documents[index])

    def _position(self, index: int) -> str:
        return f"{index + 1}/{len(self._documents or ())}"

    # --- pacing and controls (UI thread) ---

    def delay(self) -> float | None:
        if self._paused:
            return None
        period = min(MAX_PERIOD_SECONDS, max(MIN_PERIOD_SECONDS, self._last_period))
        return period / self.speed

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return SPEEDS[self._speed_index]

    @property
    def position(self) -> str:
        return self._position(self._shown) if self._shown >= 0 else "-"

    def toggle_pause(self) -> bool:
        """Pause or resume; resuming at the end starts over. True when now playing."""
        with self._lock:
            self._paused = not self._paused
            if not self._paused and self._documents is not None and self._next >= len(self._documents):
                self._next = 0
            return not self._paused

    def step(self, delta: int) -> None:
        """Pause, and make the next read show the frame `delta` away from the one shown."""
        with self._lock:
            self._paused = True
            last = len(self._documents) - 1 if self._documents else 0
            self._next = max(0, min(last, self._shown + delta))
            self._direction = -1 if delta < 0 else 1

    def change_speed(self, delta: int) -> float:
        self._speed_index = max(0, min(len(SPEEDS) - 1, self._speed_index + delta))
        return self.speed

    def close(self) -> None:
        pass
