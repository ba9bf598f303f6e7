"""Snapshots from neurond for a Collector, reconnecting on a fresh channel after a failure.

A gRPC channel that lost its server backs off for up to two minutes between reconnection
attempts; a new channel tries at once, so a monitor (neuron-monitor, neuron-top's live view)
recovers on the first tick after the daemon is back.
"""

from __future__ import annotations

import logging

from neurontools._proto import neurond_pb2 as pb
from neurontools.client import Device, NeuronError
from neurontools.connection_options import DaemonEndpoint

log = logging.getLogger("neuron-monitor")


class DaemonSnapshots:
    """A callable returning a fresh pb.Snapshot, or raising NeuronError (daemon unreachable,
    timeout); the next call after an error connects anew. Called from one thread at a time."""

    def __init__(self, address: str | DaemonEndpoint | None, timeout: float) -> None:
        self._address = address
        self._timeout = timeout
        self._device: Device | None = None

    def __call__(self) -> pb.Snapshot:
        if self._device is None:
            self._device = Device(self._address, timeout=self._timeout)
            log.info("connecting to neurond at %s", self._device.address)
        try:
            self._device.observe()  # listed by neuron-ls -a for as long as we watch, as the real tools
            return self._device.snapshot()
        except NeuronError:
            self.close()
            raise

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
