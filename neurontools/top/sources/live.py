"""Live frames from neurond: snapshots -> the neuron-monitor Collector -> a Report (DESIGN
principle 1: the same code neuron-monitor reports with), plus the snapshot add-on.

The collector owns the schedule (every group every `interval`); a read sleeps until the groups are
due, so each frame covers one fresh period. When neurond goes away the read raises
SourceUnavailable; the next read tries a fresh channel (`DaemonSnapshots`, as neuron-monitor's), so
the view recovers as soon as the daemon is back.
"""

from __future__ import annotations

import time
from collections import deque

from neurontools import connection_options
from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, NeuronError
from neurontools.monitor.collector import Collector
from neurontools.monitor.config import RUNTIME_GROUPS, SYSTEM_GROUPS, MonitorConfig, RuntimeSelector
from neurontools.monitor.snapshot_source import DaemonSnapshots
from neurontools.top.device_extras import device_extras
from neurontools.top.sources.frame import Frame, SourceUnavailable

SNAPSHOT_TIMEOUT_SECONDS = 5.0


def every_group_every(interval: float) -> MonitorConfig:
    """What neuron-top shows: every metric group of every application, each `interval` seconds."""
    return MonitorConfig(runtimes=(RuntimeSelector(None, dict.fromkeys(RUNTIME_GROUPS, interval)),),
                         system=dict.fromkeys(SYSTEM_GROUPS, interval), period=interval)


class LiveSource:
    can_end_sessions = True

    def __init__(self, address: str | connection_options.DaemonEndpoint | None, interval: float = 1.0,
                 timeout: float = SNAPSHOT_TIMEOUT_SECONDS) -> None:
        self.address = connection_options.resolve(address)
        self.description = f"neurond at {self.address}"
        self._timeout = timeout
        self._snapshots = DaemonSnapshots(self.address, timeout)
        self._recent: deque[pb.Snapshot] = deque(maxlen=2)  # what the collector measured between
        self._failure: NeuronError | None = None
        self._collector = Collector(every_group_every(interval), self._snapshot)

    def _snapshot(self) -> pb.Snapshot:
        try:
            snapshot = self._snapshots()
        except NeuronError as error:
            self._failure = error
            raise  # the collector resets its baselines, as for neuron-monitor
        self._recent.append(snapshot)
        return snapshot

    def read(self) -> Frame:
        wait = self._collector.next_due() - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._failure = None
        report = self._collector.collect()
        if self._failure is not None:
            raise SourceUnavailable(str(self._failure))
        extras = None
        if len(self._recent) == 2 and (self._recent[0].daemon_start_unix_ns == self._recent[1].daemon_start_unix_ns):
            extras = device_extras(self._recent[0], self._recent[1])
        return Frame(report, extras, produced_at=self._recent[-1].unix_ns / 1e9 if self._recent else time.time())

    def delay(self) -> float | None:
        return max(0.0, self._collector.next_due() - time.monotonic())

    def end_session(self, session_id: int, reason: str) -> None:
        """The operator action, on a channel of its own (the reader thread may be using the other)."""
        with Device(self.address, timeout=self._timeout) as device:
            device.end_session(session_id, reason)

    def close(self) -> None:
        self._snapshots.close()
