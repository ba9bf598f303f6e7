"""neuron-top against a live in-process neurond: frames from the monitor's collector, the snapshot
add-on, the daemon going away and coming back, and ending a runtime session from the process view."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_top_fixtures import applications, run, screen_text, wait_until

from neurontools.client import NeuronError, Session
from neurontools.daemon.device import topology as topo
from neurontools.daemon.server.embedded import EmbeddedDaemon
from neurontools.daemon.device.instance_info import resolve_identity
from neurontools.daemon.server.grpc_server import ServerOptions
from neurontools.top.app import NeuronTopApp
from neurontools.top.sources.frame import SourceUnavailable
from neurontools.top.sources.live import LiveSource
from neurontools.top.widgets.processes_view import ProcessesView
from neurontools.top.widgets.status_line import StatusLine

INTERVAL = 0.3


@contextlib.contextmanager
def daemon_at(address: str, instance_type: str = "inf2.24xlarge") -> Iterator[EmbeddedDaemon]:
    machine = topo.lookup(instance_type)
    instance = resolve_identity(instance_type, {"instance_id": "i-0feedc0ffee000001"})
    daemon = EmbeddedDaemon(ServerOptions(machine=machine, address=address, instance=instance))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def test_live_frames_carry_the_report_and_the_snapshot_add_on(socket_dir: Path) -> None:
    address = f"unix://{socket_dir}/neurond.sock"
    with daemon_at(address) as daemon, applications(daemon.address, [("1", "busy-app", 3000, 0.0)]):
        source = LiveSource(address, INTERVAL)
        source.read()  # first contact: a period of a few milliseconds
        started = time.monotonic()
        frame = source.read()
        assert time.monotonic() - started >= INTERVAL * 0.8  # waited for the groups to be due
        (runtime,) = frame.report.neuron_runtime_data
        assert runtime.neuron_runtime_tag == "busy-app"
        assert runtime.report.neuroncore_counters.neuroncores_in_use["1"].neuroncore_utilization > 5
        assert frame.report.instance_info.instance_type == "inf2.24xlarge"
        extras = frame.device
        assert extras.shape == "chain" and extras.device_count == 6 and len(extras.links) == 5
        assert extras.cores[1].busy[0] > 0 and extras.cores[0].busy == (0, 0, 0, 0, 0)
        (session,) = extras.sessions
        assert session.tag == "busy-app" and session.core_ids == (1,)
        assert 0 < time.time() - frame.produced_at < 5
        assert source.delay() <= INTERVAL
        source.close()


def test_source_raises_unavailable_while_the_daemon_is_down_and_recovers(socket_dir: Path) -> None:
    address = f"unix://{socket_dir}/neurond.sock"
    source = LiveSource(address, INTERVAL, timeout=1.0)
    with pytest.raises(SourceUnavailable, match="cannot reach neurond"):
        source.read()
    with daemon_at(address):
        assert source.read().report.instance_info.instance_id == "i-0feedc0ffee000001"
    with pytest.raises(SourceUnavailable):
        source.read()
    with daemon_at(address):
        assert source.read().report.neuron_hardware_info.neuron_device_count == 6
    source.close()


def test_app_shows_a_banner_while_the_daemon_is_away_and_reconnects(socket_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr("neurontools.top.app.MAX_RETRY_SECONDS", 0.2)
    address = f"unix://{socket_dir}/neurond.sock"

    async def body():
        source = LiveSource(address, INTERVAL, timeout=1.0)
        app = NeuronTopApp(source)
        async with app.run_test(size=(100, 30)) as pilot:
            with daemon_at(address):
                await wait_until(pilot, lambda: app.frames_shown >= 2)
                assert "inf2.24xlarge" in screen_text(app)
            await wait_until(pilot, lambda: "cannot reach neurond" in screen_text(app))
            text = screen_text(app)
            assert "showing the last report" in text and "retrying in" in text
            assert "inf2.24xlarge" in text  # the last report stays on screen
            shown = app.frames_shown
            with daemon_at(address):
                await wait_until(pilot, lambda: app.frames_shown > shown + 1)
                assert not app.query_one(StatusLine).display
        source.close()

    run(body())


def test_ending_a_session_from_the_process_view_releases_it(socket_dir: Path) -> None:
    address = f"unix://{socket_dir}/neurond.sock"

    async def body(session: Session):
        source = LiveSource(address, INTERVAL)
        app = NeuronTopApp(source)
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_until(pilot, lambda: app.frame is not None and app.frame.device is not None
                             and app.frame.report.neuron_runtime_data)
            await pilot.press("p")
            view = app.query_one(ProcessesView)
            await wait_until(pilot, lambda: view.selected is not None)
            assert view.selected.session_ids == (session.session_id,)
            await pilot.press("k", "y")
            await wait_until(pilot, lambda: any("ended the runtime session" in str(n.message)
                                                for n in app._notifications))
        source.close()

    with daemon_at(address), Session(address, visible_cores="0", tag="victim") as session:
        run(body(session))
        with pytest.raises(NeuronError):
            session.allocate((4,), "float32")  # the daemon ended it
