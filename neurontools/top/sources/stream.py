"""A live neuron-monitor NDJSON stream: `neuron-monitor | neuron-top --stdin`.

The stream sets the pace: each read blocks until neuron-monitor writes its next report. Lines
that are not reports are skipped and counted, never fatal, so a stray log line cannot end the view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from neurontools.top.sources.frame import Frame, SourceEnded
from neurontools.top.sources.parsing import NotAReport, frame_of
from neurontools.top.sources.report_documents import Document, documents

CHUNK_BYTES = 1 << 16


def fd_lines(fd: int) -> Iterator[str]:
    """Lines read straight from a file descriptor. No Python file object: its lock, held by a read
    blocked on a silent pipe, would make closing it at exit wait forever."""
    pending = b""
    while chunk := os.read(fd, CHUNK_BYTES):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace") + "\n"
    if pending:
        yield pending.decode("utf-8", "replace")


class StreamSource:
    can_end_sessions = False

    def __init__(self, lines: Iterable[str], description: str = "stdin") -> None:
        self.description = description
        self._documents: Iterator[Document] = documents(lines)
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
        pass  # the pipe closes with the process
