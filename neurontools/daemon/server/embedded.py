"""A neurond running in a background thread of the current process (tests, demo, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from neurontools.addresses import temporary_socket_directory
from neurontools.daemon.device import topology as topo
from neurontools.daemon.device.instance_info import resolve_identity
from neurontools.daemon.server.grpc_server import DaemonServer, ServerOptions


class EmbeddedDaemon:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.address = options.address
        self.server: DaemonServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="neurond", daemon=True)

    def start(self) -> "EmbeddedDaemon":
        self._thread.start()
        self.server = DaemonServer(self.options)
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)
        return self

    def call(self, coroutine, timeout: float = 30):
        """Run a coroutine on the daemon's loop (e.g. to poke its state from a test)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop(grace=1.0))
            self.server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def running_daemon(instance_type: str = topo.DEFAULT_INSTANCE_TYPE, *, instance_id: str | None = None,
                    machine: topo.MachineSpec | None = None, socket_dir: str | None = None,
                    **options) -> Iterator[EmbeddedDaemon]:
    """Start a daemon on a temporary Unix socket; yields the EmbeddedDaemon (its .address)."""
    machine = machine or topo.lookup(instance_type)
    overrides = {"instance_id": instance_id} if instance_id else {}
    instance = resolve_identity(machine.instance_type, overrides)
    # A short socket path whatever $TMPDIR is (the kernel's limit is 107 bytes).
    tmp = tempfile.mkdtemp(prefix="neurond-", dir=socket_dir) if socket_dir else temporary_socket_directory()
    try:
        address = f"unix://{Path(tmp) / 'neurond.sock'}"
        daemon = EmbeddedDaemon(ServerOptions(machine=machine, instance=instance, address=address, **options))
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
