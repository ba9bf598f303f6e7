"""neuron-top in a real terminal: tmux runs the installed `neuron-top` command, the test reads the
screen with `tmux capture-pane` and types with `tmux send-keys`. Each run ends by comparing the
terminal settings (`stty -g`) before and after, so a broken terminal fails the test."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from real_components import private_tmux
from test_top_fixtures import RECORDING, applications

from neurontools.daemon.server.embedded import running_daemon

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tmux_server")]
TMUX: list[str] = []  # the command for the module's private tmux server


@pytest.fixture(scope="module")
def tmux_server() -> Iterator[None]:
    with private_tmux() as command:
        TMUX[:] = command
        yield

NEURON_TOP = str(Path(sys.executable).parent / "neuron-top")
WIDTH, HEIGHT = 120, 40


class Terminal:
    def __init__(self, name: str) -> None:
        self.name = name

    def screen(self) -> str:
        return subprocess.run([*TMUX, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", self.name, *keys], check=True)

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed what was expected; it shows:\n{screen}")
            time.sleep(0.2)


@contextmanager
def terminal(command: str) -> Iterator[Terminal]:
    """`command` in a WIDTHxHEIGHT tmux session, followed by its exit status and whether stty changed."""
    name = f"neuron-top-{uuid.uuid4().hex[:8]}"
    # COLUMNS and LINES (set by pytest's terminal) would override the pane's size for Textual
    script = (f"unset COLUMNS LINES; before=$(stty -g); {command}; status=$?; "
              f"[ \"$before\" = \"$(stty -g)\" ] && tty=same || tty=changed; "
              f"echo \"EXITED $status TTY $tty\"; sleep 60")
    subprocess.run([*TMUX, "new-session", "-d", "-s", name, "-x", str(WIDTH), "-y", str(HEIGHT), "bash", "-c", script],
                   check=True)
    try:
        yield Terminal(name)
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", name], capture_output=True)


def _exited(screen: str) -> re.Match[str] | None:
    return re.search(r"EXITED (\d+) TTY (\w+)", screen)


def test_live_screen_shows_busy_cores_and_the_application_tabs_then_q_restores_the_terminal() -> None:
    with running_daemon("inf2.48xlarge", instance_id="i-0e2e0e2e0e2e0e2e0") as daemon, \
            applications(daemon.address, [("0-1", "e2e-serving", 3000, 0.0), ("5", "e2e-batch", 3000, 0.0)]), \
            terminal(f"{NEURON_TOP} --address {shlex.quote(daemon.address)} --interval 0.5") as term:

        def busy(screen: str) -> bool:
            """Cores 0 and 1 (ND0) and 5 (ND2 NC1) above zero."""
            rows = {line.split()[0]: _utilization(line) for line in screen.splitlines() if re.match(r"ND\d+ ", line)}
            nd0, nd2 = rows.get("ND0", ()), rows.get("ND2", ())
            return len(nd0) == len(nd2) == 2 and nd0[0] > 0 and nd0[1] > 0 and nd2[1] > 0

        screen = term.wait_for(lambda s: "i-0e2e0e2e0e2e0e2e0 (inf2.48xlarge)" in s and busy(s))
        assert ">[1]:all<" in screen and "e2e-serving" in screen and "e2e-batch" in screen
        idle = [_utilization(line) for line in screen.splitlines() if re.match(r"ND(1|[3-9]|1[01]) ", line)]
        assert len(idle) == 10 and all(value == 0 for pair in idle for value in pair), screen
        term.keys("p")
        term.wait_for(lambda s: "Session" in s and "e2e-serving" in s and "0-1" in s)
        term.keys("q")
        match = _exited(term.wait_for(_exited))
        assert match.groups() == ("0", "same")


def _utilization(line: str) -> tuple[float, ...]:
    return tuple(float(value) for value in re.findall(r"\[\s*(\d+\.\d+)%\]", line))


def test_a_piped_stream_is_shown_and_the_keyboard_still_works() -> None:
    # the writer keeps writing (blank lines, skipped) as neuron-monitor would, so that it ends on
    # SIGPIPE once neuron-top has quit and the shell's pipeline can finish
    writer = f"(cat {shlex.quote(str(RECORDING))}; while sleep 0.2; do echo; done)"
    with terminal(f"{writer} | {NEURON_TOP} --stdin") as term:
        term.wait_for(lambda s: "i-0a1b2c3d4e5f67890 (inf2.48xlarge)" in s and "[2]:" in s)
        term.keys("e")  # read from the terminal, not from the pipe
        term.wait_for(lambda s: "Total p50" in s and "llama-tp2-0" in s)
        term.keys("q")
        assert _exited(term.wait_for(_exited)).groups() == ("0", "same")


def test_sigterm_ends_it_cleanly(tmp_path: Path) -> None:
    import psutil

    with terminal(f"{NEURON_TOP} --replay {shlex.quote(str(RECORDING))}") as term:
        term.wait_for(lambda s: "Neuron Apps" in s and "[2]:" in s)
        shell = psutil.Process(int(subprocess.run([*TMUX, "display", "-p", "-t", term.name, "#{pane_pid}"],
                                                  capture_output=True, text=True, check=True).stdout))
        (neuron_top,) = shell.children()
        neuron_top.terminate()
        assert _exited(term.wait_for(_exited)).groups() == ("0", "same")


def test_an_unknown_argument_prints_the_usage_and_leaves_the_terminal_alone() -> None:
    with terminal(f"{NEURON_TOP} --frobnicate") as term:
        screen = term.wait_for(_exited)
        assert "usage: neuron-top" in screen and "unrecognized arguments: --frobnicate" in screen
        assert _exited(screen).groups() == ("2", "same")


def test_no_daemon_shows_a_banner_instead_of_a_traceback(socket_dir: Path) -> None:
    address = f"unix://{socket_dir}/nobody.sock"
    with terminal(f"{NEURON_TOP} --address {address}") as term:
        screen = term.wait_for(lambda s: "cannot reach neurond" in s)
        assert "Traceback" not in screen and "retrying in" in screen
        term.keys("q")
        assert _exited(term.wait_for(_exited)).groups() == ("0", "same")
