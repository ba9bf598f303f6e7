"""A private neurond in a child process, on a socket in a temporary directory.

What neuron-workload starts when no daemon is given, and what the demo starts: a separate process, so
the daemon's compile and execution work does not share this process's interpreter lock, and its log
does not share a terminal with a TUI. The child gets its own session (a terminal's Ctrl-C reaches only
the foreground tool, which then stops the daemon in order); stop() ends it and removes the socket.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from neurontools.addresses import temporary_socket_directory
from neurontools.client import DaemonUnavailable, Device

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class DaemonProcess:
    def __init__(self, instance_type: str, *, log_path: str | Path | None = None) -> None:
        self.instance_type = instance_type
        self.log_path = Path(log_path) if log_path else None
        self.directory = Path(temporary_socket_directory())  # short whatever $TMPDIR is
        self.socket = self.directory / "neurond.sock"
        self.address = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "DaemonProcess":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "neurontools.daemon.server.cli", "--instance-type", self.instance_type,
                 "--address", self.address, "--log-level", "warning"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"neurond exited with status {self.process.returncode} while starting"
                                   + (f" (log: {self.log_path})" if self.log_path else ""))
            if self.socket.exists():
                try:
                    with Device(self.address, timeout=1.0) as device:
                        device.topology()
                    return
                except DaemonUnavailable:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"neurond did not answer on {self.address} within {READY_TIMEOUT:g} s")

    def stop(self) -> None:
        """SIGTERM (the daemon ends its sessions and removes its socket), SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
