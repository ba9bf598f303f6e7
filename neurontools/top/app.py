"""The neuron-top Textual app: shows frames from a source, never reads one on the UI thread.

Flow: the FrameReader thread reads one frame when asked and posts it back (`FrameRead`); the app
turns the frame's Report into view data (`overview`, `applications`), updates the visible widgets,
then arms the next read after the source's delay. Failures become a status line and a retry, never
a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Protocol

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Static

from neurontools import __version__
from neurontools.top import tabs as tab_bar
from neurontools.top.applications import Application, applications
from neurontools.top.device_extras import ENGINE_NAMES
from neurontools.top.history import History
from neurontools.top.overview import Overview, core_loads, overview
from neurontools.top.process_table import process_rows
from neurontools.top.sources.frame import Frame, FrameSource, SourceEnded, SourceUnavailable
from neurontools.top.sources.reader import FrameReader, Outcome
from neurontools.top.sources.replay import ReplaySource
from neurontools.top.styles import CSS
from neurontools.top.widgets.cores_view import CoresView, core_history_key, engine_history_key
from neurontools.top.widgets.dialogs import ConfirmScreen, HelpEntry, HelpScreen
from neurontools.top.widgets.executions_view import ExecutionsView
from neurontools.top.widgets.key_help import KeyHelp, KeyHint
from neurontools.top.widgets.memory_tree import MemoryTreeView
from neurontools.top.widgets.overview_view import OverviewView
from neurontools.top.widgets.processes_view import ProcessesView
from neurontools.top.widgets.status_line import Kind, StatusLine
from neurontools.top.widgets.tab_bar import TabBar
from neurontools.top.widgets.topology_view import TopologyView
from neurontools.top.widgets.utilization import UtilizationGrid

VIEWS = ("overview", "cores", "topology", "executions", "processes")
MAX_RETRY_SECONDS = 5.0

REAL_TOOL_HINTS = (
    KeyHint("q", "quit", "quit"),
    KeyHint("?", "help", "help"),
    KeyHint("arrows", "move tree selection", None),
    KeyHint("enter", "expand/collapse tree", None),
    KeyHint("x", "expand/collapse entire tree", "toggle_tree"),
    KeyHint("a/d", "previous/next tab", "tab(1)"),
    KeyHint("f", "FLOPS on/off", "toggle_flops"),
    KeyHint("1-9", "select tab", None),
)
VIEW_HINTS = (
    KeyHint("c", "cores", "view('cores')"),
    KeyHint("t", "topology", "view('topology')"),
    KeyHint("e", "executions", "view('executions')"),
    KeyHint("p", "processes", "view('processes')"),
)
REPLAY_HINTS = (
    KeyHint("space", "pause/play", "pause"),
    KeyHint("n/b", "step", "step(1)"),
    KeyHint("+/-", "speed", "speed(1)"),
)


class SessionControl(Protocol):
    def end_session(self, session_id: int, reason: str) -> None: ...


class FrameRead(Message):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class NeuronTopApp(App[None]):
    CSS = CSS
    TITLE = "neuron-top"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),  # as in every top, not Textual's copy
        Binding("f,F", "toggle_flops", "FLOPS on/off"),
        Binding("x", "toggle_tree", "expand/collapse the entire tree"),
        Binding("a", "tab(-1)", "previous tab"),
        Binding("d", "tab(1)", "next tab"),
        *(Binding(str(n), f"select_tab({n})", f"select tab {n}", show=False) for n in range(1, 10)),
        Binding("question_mark", "help", "help"),
        Binding("o", "view('overview')", "overview (the real tool's screen)"),
        Binding("c", "view('cores')", "cores: utilization history and engines"),
        Binding("t", "view('topology')", "topology and link traffic"),
        Binding("e", "view('executions')", "execution stats per application"),
        Binding("p", "view('processes')", "processes"),
        Binding("escape", "back", "back to the overview"),
        Binding("T", "next_theme", "next theme"),
        Binding("space", "pause", "replay: pause/play"),
        Binding("n", "step(1)", "replay: step forward"),
        Binding("b", "step(-1)", "replay: step back"),
        Binding("plus", "speed(1)", "replay: faster"),
        Binding("minus", "speed(-1)", "replay: slower"),
    ]

    def __init__(self, source: FrameSource, *, readonly: bool = False, history_length: int = 240) -> None:
        super().__init__()
        self.source = source
        self.readonly = readonly
        self.frame: Frame | None = None
        self.overview: Overview | None = None
        self.applications: tuple[Application, ...] = ()
        self.tab_key = tab_bar.ALL
        self.flops_mode = False
        self.selected_core: int | None = None
        self.view = "overview"
        self.history = History(history_length)
        self.frames_shown = 0
        self.last_latency: float | None = None  # seconds from a frame's data to the screen showing it
        self._reader: FrameReader | None = None
        self._reading = False
        self._read_again = False
        self._timer: Timer | None = None
        self._failures = 0
        self._title = ""

    # --- layout ---

    def compose(self) -> ComposeResult:
        yield Static(f"neuron-top {__version__}", id="title")
        yield StatusLine(id="status")
        with ContentSwitcher(initial="overview", id="views"):
            yield OverviewView(id="overview")
            yield CoresView(self.history, id="cores")
            yield TopologyView(id="topology")
            yield ExecutionsView(id="executions")
            yield ProcessesView(id="processes")
        with Vertical(id="bottom"):
            yield TabBar(id="tabs")
            yield KeyHelp(id="keys")

    def on_mount(self) -> None:
        # a kill or a closed terminal ends the app normally, so the terminal is restored
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(number, self.exit)
        self.query_one(KeyHelp).show(self._hints())
        self.query_one(MemoryTreeView).focus()
        self._status(f"waiting for the first report from {self.source.description}...", "info")
        self._reader = FrameReader(self.source, lambda outcome: self.post_message(FrameRead(outcome)))
        self._request_read()

    def on_unmount(self) -> None:
        if self._reader is not None:
            self._reader.stop()

    # --- reading ---

    def _request_read(self) -> None:
        self._timer = None
        if self._reading:  # one read at a time; do another as soon as this one is in
            self._read_again = True
            return
        self._reading = True
        assert self._reader is not None
        self._reader.request()

    def _arm(self, delay: float | None) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if delay is None:
            return
        if delay <= 0:
            self._request_read()  # only queues a request for the reader thread
        else:
            self._timer = self.set_timer(delay, self._request_read)

    @on(FrameRead)
    def _frame_read(self, message: FrameRead) -> None:
        self._reading = False
        outcome = message.outcome
        if isinstance(outcome, Frame):
            self._failures = 0
            self._show_frame(outcome)
            delay = self.source.delay()
        elif isinstance(outcome, SourceEnded):
            self._status(str(outcome), "info")
            delay = None
        else:
            self._failures += 1
            delay = min(MAX_RETRY_SECONDS, 2.0 ** (self._failures - 1))
            reason = str(outcome) if isinstance(outcome, SourceUnavailable) else \
                f"{type(outcome).__name__}: {outcome}"
            shown = ", showing the last report" if self.frame else ""
            self._status(f"retrying in {delay:.0f} s{shown}: {reason}", "error")
        if self._read_again:
            self._read_again = False
            delay = 0.0
        self._arm(delay)

    def _show_frame(self, frame: Frame) -> None:
        self.frame = frame
        self.applications = applications(frame.report)
        self._record_history(frame)
        self._render()
        self._status(self._source_status(frame), "notice" if frame.notice else "info")
        self.call_after_refresh(self._frame_on_screen, frame)

    def _frame_on_screen(self, frame: Frame) -> None:
        self.frames_shown += 1
        if frame.produced_at:
            self.last_latency = time.time() - frame.produced_at

    def _source_status(self, frame: Frame) -> str:
        parts = []
        if isinstance(self.source, ReplaySource):
            state = "paused" if self.source.paused else "playing"
            parts.append(f"{self.source.description}: {self.source.position} {state} at {self.source.speed:g}x")
        if frame.notice:
            parts.append(frame.notice)
        return "; ".join(parts)

    def _record_history(self, frame: Frame) -> None:
        # per core over every application, whatever tab is selected
        for core in core_loads(frame.report, frame.report.neuron_runtime_data):
            self.history.record(core_history_key(core.core_id), core.utilization)
        if frame.device is not None:
            for core_id, core in frame.device.cores.items():
                self.history.record(engine_history_key(core_id, "occupied"), core.occupied * 100)
                for name, busy in zip(ENGINE_NAMES, core.busy):
                    self.history.record(engine_history_key(core_id, name), busy * 100)

    # --- rendering ---

    def _render(self) -> None:
        if self.frame is None:
            return
        self.overview = view = overview(self.frame.report, self.tab_key)
        self.tab_key = view.selected_tab.key  # falls back to 'all' when the application went away
        if view.title != self._title:
            self._title = view.title
            self.query_one("#title", Static).update(view.title)
        self.query_one(TabBar).show(view.tabs, self.tab_key)
        if self.view == "overview":
            self.query_one(OverviewView).show(view, self.flops_mode, self.selected_core)
        elif self.view == "cores":
            self.query_one(CoresView).show(view, self.frame.device, self.selected_core)
        elif self.view == "topology":
            self.query_one(TopologyView).show(self.frame.device)
        elif self.view == "executions":
            self.query_one(ExecutionsView).show(self.applications, self.tab_key)
        elif self.view == "processes":
            self.query_one(ProcessesView).show(process_rows(self.applications, self.frame.device))

    def _status(self, message: str, kind: Kind) -> None:
        self.query_one(StatusLine).say(message, kind)

    def _hints(self) -> tuple[KeyHint, ...]:
        hints = list(REAL_TOOL_HINTS) if self.view == "overview" else [REAL_TOOL_HINTS[0], REAL_TOOL_HINTS[1],
                                                                       KeyHint("o/esc", "overview", "back")]
        if self.view == "processes":
            hints += [KeyHint("s", "sort", "sort_next"), KeyHint("r", "reverse", "sort_reverse"),
                      KeyHint("/", "filter", "filter"), KeyHint("k", "end session", "end_session")]
        hints += [hint for hint in VIEW_HINTS if hint.action != f"view('{self.view}')"]
        if isinstance(self.source, ReplaySource):
            hints += REPLAY_HINTS
        return tuple(hints)

    # --- the real tool's keys ---

    def action_toggle_flops(self) -> None:
        self.flops_mode = not self.flops_mode
        self._render()

    def action_toggle_tree(self) -> None:
        self.query_one(MemoryTreeView).toggle_all()

    def action_tab(self, delta: int) -> None:
        if self.overview is not None:
            self.tab_key = tab_bar.step(self.overview.tabs, self.tab_key, delta).key
            self._render()

    def action_select_tab(self, number: int) -> None:
        if self.overview is not None and number <= len(self.overview.tabs):
            self.tab_key = self.overview.tabs[number - 1].key
            self._render()

    @on(TabBar.Selected)
    def _tab_clicked(self, message: TabBar.Selected) -> None:
        self.tab_key = message.key
        self._render()

    @on(MemoryTreeView.NodeHighlighted)
    def _tree_moved(self, message: MemoryTreeView.NodeHighlighted) -> None:
        if message.node.core_id is not None and message.node.core_id != self.selected_core:
            self.selected_core = message.node.core_id
            self._render()

    @on(UtilizationGrid.CoreSelected)
    def _core_clicked(self, message: UtilizationGrid.CoreSelected) -> None:
        self.selected_core = message.core_id
        self._render()

    # --- views and help ---

    def action_view(self, name: str) -> None:
        self.view = name
        self.query_one(ContentSwitcher).current = name
        self.query_one(KeyHelp).show(self._hints())
        self._render()
        focus = {"overview": MemoryTreeView, "executions": ExecutionsView}.get(name)
        if focus is not None:
            self.query_one(focus).focus()
        elif name == "processes":
            self.query_one(ProcessesView).table.focus()

    def action_back(self) -> None:
        processes = self.query_one(ProcessesView)
        if self.view == "processes" and processes.has_class("-filtering"):
            processes.clear_filter()
        elif self.view != "overview":
            self.action_view("overview")

    def action_help(self) -> None:
        sections = [
            ("The real neuron-top", [HelpEntry("q", "quit", "quit"),
                                     HelpEntry("arrows", "move the tree selection (left/right: collapse/expand)", None),
                                     HelpEntry("enter", "expand/collapse the selected tree node", None),
                                     HelpEntry("x", "expand/collapse the entire tree", "toggle_tree"),
                                     HelpEntry("a / d", "previous / next application tab", "tab(1)"),
                                     HelpEntry("1-9", "select an application tab", "select_tab(1)"),
                                     HelpEntry("f", "utilization % or TFLOPS", "toggle_flops")]),
            ("Views", [HelpEntry("o / escape", "overview: the real tool's screen", "view('overview')"),
                       HelpEntry("c", "cores: utilization history, the selected core's engines", "view('cores')"),
                       HelpEntry("t", "topology: devices and live NeuronLink throughput", "view('topology')"),
                       HelpEntry("e", "executions: rates, errors by kind, latency p50/p99", "view('executions')"),
                       HelpEntry("p", "processes: sort, filter, end a runtime session", "view('processes')")]),
            ("Processes view", [HelpEntry("s / click header", "sort by the next column / that column", None),
                                HelpEntry("r", "reverse the sort", None),
                                HelpEntry("/", "filter by pid, tag, command or cores", None),
                                HelpEntry("k", "end the selected application's runtime session", None)]),
            ("Replay (--replay)", [HelpEntry("space", "pause / play", "pause"),
                                   HelpEntry("n / b", "step forward / back", "step(1)"),
                                   HelpEntry("+ / -", "faster / slower", "speed(1)")]),
            ("Look", [HelpEntry("T", f"next theme (now {self.theme})", "next_theme"),
                      HelpEntry("ctrl+p", "command palette (themes, keys)", "command_palette"),
                      HelpEntry("mouse", "click tabs, bars, tree rows, headers, this help's rows", None)]),
        ]
        latency = f"{self.last_latency * 1000:.0f} ms" if self.last_latency is not None else "-"
        footer = (f"source: {self.source.description}; {self.frames_shown} reports shown; "
                  f"last one on screen {latency} after its data")
        self.push_screen(HelpScreen(sections, footer), self._after_help)

    async def _after_help(self, action: str | None) -> None:
        if action:
            await self.run_action(action)

    def action_next_theme(self) -> None:
        names = sorted(self.available_themes)
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"theme: {self.theme}", timeout=2)

    # --- replay ---

    def _replay(self) -> ReplaySource | None:
        if isinstance(self.source, ReplaySource):
            return self.source
        self.notify("pause, step and speed work when replaying a recording (--replay FILE)", timeout=3)
        return None

    def action_pause(self) -> None:
        replay = self._replay()
        if replay is not None:
            playing = replay.toggle_pause()
            self._arm(None)
            if playing:
                self._request_read()
            elif self.frame is not None:
                self._status(self._source_status(self.frame), "info")

    def action_step(self, delta: int) -> None:
        replay = self._replay()
        if replay is not None:
            replay.step(delta)
            self._arm(None)
            self._request_read()

    def action_speed(self, delta: int) -> None:
        replay = self._replay()
        if replay is not None:
            replay.change_speed(delta)
            if self.frame is not None:
                self._status(self._source_status(self.frame), "info")

    # --- processes ---

    def action_sort_next(self) -> None:
        self.query_one(ProcessesView).sort_next()

    def action_sort_reverse(self) -> None:
        view = self.query_one(ProcessesView)
        view.sort(view.sort_by, not view.descending)

    def action_filter(self) -> None:
        if self.view != "processes":
            self.action_view("processes")
        self.query_one(ProcessesView).start_filter()

    def action_end_session(self) -> None:
        if self.view != "processes":
            self.action_view("processes")
            return
        if self.readonly:
            self.notify("read-only (--readonly): ending sessions is disabled", severity="warning")
            return
        if not self.source.can_end_sessions:
            self.notify("ending a session needs the live source (neurond), not a neuron-monitor stream",
                        severity="warning")
            return
        row = self.query_one(ProcessesView).selected
        if row is None or not row.session_ids:
            self.notify("no runtime session found for the selected application", severity="warning")
            return
        sessions = ", ".join(map(str, row.session_ids))
        question = (f"End runtime session {sessions} of pid {row.app.pid} ({row.app.tag})?\n"
                    "Its cores, tensors and models are released; the application's next call fails.")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._end_sessions(row.session_ids, row.app.pid)

        self.push_screen(ConfirmScreen(question, "End session"), confirmed)

    @work(thread=True, exclusive=True, group="operator")
    def _end_sessions(self, session_ids: tuple[int, ...], pid: int) -> None:
        control: SessionControl = self.source  # type: ignore[assignment]
        try:
            for session_id in session_ids:
                control.end_session(session_id, "ended from neuron-top")
        except Exception as error:  # the daemon's refusal or absence, shown to the user
            self.call_from_thread(self.notify, f"could not end the session of pid {pid}: {error}",
                                  severity="error")
            return
        self.call_from_thread(self.notify, f"ended the runtime session of pid {pid}")
