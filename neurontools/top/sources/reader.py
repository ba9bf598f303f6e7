"""The one thread that reads frames, on request, so no source I/O ever runs on the UI thread.

The app asks for a read only after the previous one was delivered (then waits the source's delay),
so slow reads cannot pile up. The thread is a daemon: a read blocked on a silent pipe must not
keep neuron-top from exiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from neurontools.top.sources.frame import Frame, FrameSource

Outcome = Frame | Exception


class FrameReader:
    def __init__(self, source: FrameSource, deliver: Callable[[Outcome], None]) -> None:
        self.source = source
        self._deliver = deliver
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="neuron-top-reader", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._requests.put(True)

    def stop(self) -> None:
        self._requests.put(False)

    def _run(self) -> None:
        while self._requests.get():
            try:
                outcome: Outcome = self.source.read()
            except Exception as error:  # every failure becomes a banner, never a traceback
                outcome = error
            self._deliver(outcome)
