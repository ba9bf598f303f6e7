"""The demo as a newcomer runs it: neuron-top in a real terminal (tmux) over a daemon and workloads in
their own processes; q stops everything. --headless prints neuron-monitor's stream until SIGTERM.
Each run gets its own TMPDIR, where the daemon's socket and the logs live: afterwards it must be
empty and no process may still name it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_components import private_tmux

from neurontools.monitor.report_json import loads_report

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tmux_server")]
TMUX: list[str] = []  # the command for the module's private tmux server


@pytest.fixture(scope="module")
def tmux_server() -> Iterator[None]:
    with private_tmux() as command:
        TMUX[:] = command
        yield

DEMO = [sys.executable, "-m", "neurontools.workloads.demo"]
# Quick to load: an encoder data-parallel on a chip and a decoder tensor-parallel over another.
MIX = ["--mix", "bert-base:cores=2", "llama-2-7b:tp=2,batch=2,seq_len=64,gen_len=16"]


def _processes_naming(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in command:
            found.append(f"{entry.name}: {command}")
    return found


def _assert_nothing_left(tmp: Path) -> None:
    deadline = time.monotonic() + 5
    while _processes_naming(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_naming(tmp) == []
    assert list(tmp.iterdir()) == []


class Tmux:
    def __init__(self, command: str) -> None:
        self.name = f"neuron-demo-{uuid.uuid4().hex[:8]}"
        script = f"unset COLUMNS LINES; {command}; echo \"EXITED $?\"; sleep 60"
        subprocess.run([*TMUX, "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", "bash", "-c", script],
                       check=True)

    def screen(self) -> str:
        return subprocess.run([*TMUX, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True).stdout

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(text, screen := self.screen(), re.MULTILINE):
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed {text!r}; it shows:\n{screen}")
            time.sleep(0.3)
        return screen

    def close(self) -> None:
        subprocess.run([*TMUX, "kill-session", "-t", self.name], capture_output=True)


def test_neuron_top_shows_the_workloads_and_q_stops_everything_the_demo_started(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    command = f"TMPDIR={shlex.quote(str(tmp))} {shlex.join([*DEMO, *MIX])}"
    term = Tmux(command)
    try:
        term.wait_for("neuron-top", timeout=60)
        screen = term.wait_for(r"\[3\]:llama-2-7b", timeout=120)  # both workloads have their sessions
        assert "[2]:bert-base" in screen
        # the decoder's cores (ND1) busy too, and some memory in use
        term.wait_for(r"^ND1 +\|+ +\[ *[1-9]", timeout=120)
        assert _processes_naming(tmp)  # the daemon runs on a socket in our TMPDIR
        subprocess.run([*TMUX, "send-keys", "-t", term.name, "q"], check=True)
        screen = term.wait_for("EXITED", timeout=60)
        assert "EXITED 0" in screen
        assert re.search(r"bert-base +cores 0-1: ok, \d+ requests", screen)
        assert re.search(r"llama-2-7b +cores 2-3: (ok|no requests)", screen)
    finally:
        term.close()
    _assert_nothing_left(tmp)


def test_headless_prints_neuron_monitor_reports_until_sigterm(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    demo = subprocess.Popen([*DEMO, "--headless", *MIX], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(tmp)}, text=True)
    try:
        tags: set[str] = set()
        reports = 0
        deadline = time.monotonic() + 120
        while tags != {"bert-base", "llama-2-7b"} and time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, f"the stream ended early: {demo.stderr.read()}"
            report = loads_report(line)
            reports += 1
            tags = {runtime.neuron_runtime_tag for runtime in report.neuron_runtime_data}
        assert tags == {"bert-base", "llama-2-7b"}
        demo.send_signal(signal.SIGTERM)
        rest, errors = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, errors
    for line in rest.splitlines():
        loads_report(line)
    assert "bert-base    cores 0-1: ok" in errors
    _assert_nothing_left(tmp)
