"""A live neuron-monitor NDJSON stream: `neuron-monitor | neuron-top --stdin`.

The stream sets the pace: each read blocks until neuron-monitor writes its next report. Lines
that are not reports are skipped and counted, never fatal, so a stray log line cannot end the view.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from neurontools.top.sources.frame import Frame, SourceEnded
from neurontools.top.sources.parsing import NotAReport, frame_of
from neurontools.top.sources.report_documents import Document, documents


class StreamSource:
    can_end_sessions = False

    def __init__(self, stream: TextIO, description: str = "stdin") -> None:
        self.description = description
        self._stream = stream
        self._documents: Iterator[Document] = documents(stream)
        self._skipped = 0
        self._last_problem = ""

    def read(self) -> Frame:
        for document in self._documents:
            try:
                return frame_of(document, self._notice())
            except NotAReport as problem:
                self._skipped += 1
                self._last_problem = str(problem)
        raise SourceEnded(f"{self.description} ended" + (f"; {self._notice()}" if self._skipped else ""))

    def _notice(self) -> str:
        if not self._skipped:
            return ""
        return f"skipped {self._skipped} non-report input(s), last: {self._last_problem}"

    def delay(self) -> float | None:
        return 0.0

    def close(self) -> None:
        # Left open: the reader thread may be blocked in a read holding the file's lock, and the
        # pipe closes with the process anyway.
        pass
