"""Who the daemon lists and what it says when they go: tools that watch are observers for as long as
they watch (neuron-ls -a), and a session's end says whether the client closed it or was lost."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurontools.client import Device, Session

BIN = Path(sys.executable).parent  # the console scripts, as users run them


def _observer_pids(address: str) -> set[int]:
    with Device(address) as device:
        return {observer.pid for observer in device.snapshot().observers}


def _wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.slow
def test_neuron_monitor_is_listed_for_as_long_as_it_watches(address, tmp_path):
    config = tmp_path / "monitor.json"  # one report every 5 s: between reports it makes no call at all
    config.write_text(json.dumps({"period": "5s", "system_metrics": [{"type": "vcpu_usage"}]}))
    monitor = subprocess.Popen([BIN / "neuron-monitor", "--address", address, "-c", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert monitor.stdout.readline()  # its first report: it watches now
        for _ in range(5):  # between its calls, every time
            assert monitor.pid in _observer_pids(address)
            time.sleep(0.2)
        listed = subprocess.run([BIN / "neuron-ls", "-a", "-j", "--address", address], capture_output=True, text=True,
                                timeout=30)
        processes = [p for device in json.loads(listed.stdout) for p in device["neuron_processes"] or ()]
        assert any(p["pid"] == monitor.pid and p["command"].startswith("neuron-monitor --address")
                   and p["neuron_runtime_version"] == "NA" for p in processes), processes
        monitor.kill()  # gone at once: its connection closed, as the real tool's device file
        monitor.wait()
        assert _wait_for(lambda: monitor.pid not in _observer_pids(address), timeout=2.0)
    finally:
        monitor.kill()
        monitor.wait()


def test_neuron_tops_live_source_is_listed_while_open(address):
    from neurontools.top.sources.live import LiveSource

    source = LiveSource(address, interval=60.0)  # it reads once, then not for a minute
    try:
        source.read()
        time.sleep(0.1)
        assert os.getpid() in _observer_pids_from_other(address)
    finally:
        source.close()
    assert _wait_for(lambda: os.getpid() not in _observer_pids_from_other(address), timeout=2.0)


def _observer_pids_from_other(address: str) -> set[int]:
    """Observers as another process sees them (this process's own snapshot would list itself)."""
    code = ("import sys; from neurontools.client import Device; d = Device(sys.argv[1]); "
            "print(' '.join(str(o.pid) for o in d.snapshot().observers))")
    out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=30).stdout
    return {int(pid) for pid in out.split()}


CHILD = """
import os, signal, sys
from neurontools.client import Session
session = Session(sys.argv[1], visible_cores="22").open()
print(session.session_id, flush=True)
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_the_log_tells_a_killed_client_from_a_closed_session(address, caplog):
    caplog.set_level(logging.INFO, logger="neurond")
    with Session(address, visible_cores="23") as session:
        closed_id = session.session_id
    child = subprocess.Popen([sys.executable, "-c", CHILD, address], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        killed_id = int(child.stdout.readline())
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=10) == -signal.SIGKILL

        def line(session_id: int) -> str | None:
            return next((r.getMessage() for r in caplog.records if r.getMessage().startswith(
                f"session {session_id} closed:")), None)

        assert _wait_for(lambda: line(killed_id) is not None)
        assert line(killed_id) == (f"session {killed_id} closed: connection lost (the client exited, was killed "
                                   "or lost its connection); resources released")
        assert line(closed_id) == f"session {closed_id} closed: closed by the client; resources released"
    finally:
        child.kill()
        child.wait()
