"""A process that holds device memory in a scenario: HBM pressure from a neighbour, or a slow leak.

It opens its own runtime session on one NeuronCore when the scenario starts (so workloads are
placed elsewhere), allocates `gib` at `start` in 1 GiB tensors, then grows by `leak_gib_per_hour`
until `stop`, when its session closes and the memory is freed. An allocation the device cannot
serve fails as it would for a real application (RESOURCE_EXHAUSTED): it is counted and logged,
and the process keeps what it has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from neurontools.client import NeuronError, OutOfResources, Session

CHUNK_BYTES = 1 << 30
STEP_SECONDS = 0.5  # how often a leak allocates what it has accrued


class MemoryHog:
    def __init__(self, address: str, core: int, tag: str, gib: float, leak_gib_per_hour: float,
                 log: Callable[[str], None]) -> None:
        self.core, self.tag, self.log = core, tag, log
        self.target = gib * (1 << 30)
        self.leak_bytes_per_second = leak_gib_per_hour * (1 << 30) / 3600
        self.held = 0
        self.failures = 0
        self.last_failure: str | None = None
        self._session = Session(address, visible_cores=str(core), tag=tag).open()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"memory-{self.tag}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._session.close()

    def summary(self) -> dict:
        return {"tag": self.tag, "core": self.core, "held_bytes": self.held, "allocation_failures": self.failures,
                "last_allocation_error": self.last_failure}

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            wanted = self.target + self.leak_bytes_per_second * (time.monotonic() - started)
            while self.held < wanted and not self._stop.is_set():
                size = int(min(CHUNK_BYTES, wanted - self.held))
                if size <= 0 or not self._allocate(size):
                    break
            if self._stop.wait(STEP_SECONDS):
                return

    def _allocate(self, size: int) -> bool:
        try:
            self._session.allocate([size], "uint8", core_id=self.core, name=f"{self.tag}-{self.held}")
        except OutOfResources as exc:
            self.failures += 1
            if self.last_failure is None:
                self.log(f"{self.tag}: allocation failed: {exc}")
            self.last_failure = str(exc)
            return False
        except NeuronError as exc:
            self.failures += 1
            self.last_failure = str(exc)
            return False
        self.held += size
        return True
