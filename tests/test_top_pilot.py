"""Every key and mouse action of neuron-top, driven with Textual's pilot over fixed recorded frames."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from test_top_fixtures import CAPTURES, ListSource, fixed_frames, run, screen_text, wait_until

from neurontools.top.app import NeuronTopApp
from neurontools.top.sources.frame import Frame, SourceUnavailable
from neurontools.top.sources.replay import ReplaySource
from neurontools.top.tabs import ALL
from neurontools.top.widgets.dialogs import ConfirmScreen, HelpRow, HelpScreen
from neurontools.top.widgets.key_help import KeyHelp
from neurontools.top.widgets.memory_tree import MemoryTreeView
from neurontools.top.widgets.processes_view import ProcessesView, ProcessTable
from neurontools.top.widgets.status_line import StatusLine
from neurontools.top.widgets.tab_bar import TabBar
from neurontools.top.widgets.utilization import UtilizationGrid

FRAMES = fixed_frames()
ONE_FRAME = FRAMES[-1:]  # most tests need one report; each extra one costs a full render


@contextlib.asynccontextmanager
async def started(size=(120, 40), source=None, **options) -> AsyncIterator[tuple[NeuronTopApp, object]]:
    source = source or ListSource(ONE_FRAME)
    app = NeuronTopApp(source, **options)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.frames_shown == len(getattr(source, "frames", [None])))
        yield app, pilot


def _tree(app: NeuronTopApp) -> MemoryTreeView:
    return app.query_one(MemoryTreeView)


# --- the real tool's keys ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
def test_q_and_ctrl_c_quit(key: str) -> None:
    async def body():
        async with started() as (app, pilot):
            await pilot.press(key)
            await pilot.pause()
            assert app._exit
    run(body())


def test_f_toggles_tflops_in_the_heading_and_every_cell() -> None:
    async def body():
        async with started() as (app, pilot):
            assert "Utilization (Avg: 24.22%)" in screen_text(app)
            await pilot.press("f")
            text = screen_text(app)
            assert "(Avg:    1.011TF | Total:   24.269TF)" in text and "[   0.888TF]" in text
            await pilot.press("F")
            assert "[24.15%]" in screen_text(app)
    run(body())


def test_arrows_and_enter_navigate_and_toggle_the_tree() -> None:
    async def body():
        async with started() as (app, pilot):
            tree = _tree(app)
            assert tree.has_focus and tree.cursor_key == ("device", 0)
            await pilot.press("down")
            assert tree.cursor_key == ("core", 0)
            assert app.selected_core == 0
            await pilot.press("down", "down")  # the model, then its first category
            assert tree.cursor_node.kind == "category"
            await pilot.press("left")  # a leaf: go to the parent
            assert tree.cursor_key == ("core", 0)
            await pilot.press("left")  # an expanded parent: collapse it
            assert ("core", 0) not in tree.expanded
            await pilot.press("right")  # expand again
            assert ("core", 0) in tree.expanded
            await pilot.press("right")  # expanded: go to its first child, the model
            model = tree.cursor_node
            assert model.kind == "model" and model.key not in tree.expanded  # models start collapsed
            await pilot.press("enter")
            assert model.key in tree.expanded
            rows = len(tree.rows)
            await pilot.press("enter")
            assert len(tree.rows) == rows - len(model.children)
    run(body())


def test_moving_the_cursor_to_another_core_highlights_its_bar() -> None:
    async def body():
        async with started() as (app, pilot):
            tree = _tree(app)
            while tree.cursor_key != ("core", 1):
                await pilot.press("down")
            assert app.selected_core == 1
            assert app.query_one(UtilizationGrid).selected_core == 1
    run(body())


def test_x_expands_and_collapses_the_entire_tree() -> None:
    async def body():
        async with started() as (app, pilot):
            tree = _tree(app)
            await pilot.press("x")  # models were collapsed: expand everything
            assert all(node.key in tree.expanded for node, _ in tree.rows if node.children)
            expanded_rows = len(tree.rows)
            await pilot.press("x")
            assert len(tree.rows) == 12 < expanded_rows  # only the device rows
            assert tree.cursor_key == ("device", 0)
    run(body())


def test_expansion_and_cursor_survive_new_reports() -> None:
    async def body():
        source = ListSource(FRAMES[:1])
        async with started(source=source) as (app, pilot):
            tree = _tree(app)
            await pilot.press("down", "enter")  # collapse NC 0
            source.frames.append(FRAMES[1])
            app._request_read()
            await wait_until(pilot, lambda: app.frames_shown == 2)
            assert tree.cursor_key == ("core", 0) and ("core", 0) not in tree.expanded
    run(body())


def test_number_keys_and_a_d_select_tabs() -> None:
    async def body():
        async with started() as (app, pilot):
            tabs = app.overview.tabs
            await pilot.press("3")
            assert app.tab_key == tabs[2].key
            assert f">[3]:{tabs[2].label}<" in screen_text(app)
            assert len([c for c in app.overview.cores if c.utilization]) < 24  # one application's cores
            await pilot.press("d")
            assert app.tab_key == tabs[3].key
            await pilot.press("a", "a", "a")
            assert app.tab_key == ALL
            await pilot.press("a")  # wraps around to the last tab
            assert app.tab_key == tabs[-1].key
            await pilot.press("1")
            assert app.tab_key == ALL and ">[1]:all<" in screen_text(app)
            await pilot.press("9")
            assert app.tab_key == tabs[8].key
    run(body())


def test_a_number_beyond_the_tabs_does_nothing() -> None:
    async def body():
        async with started(source=ListSource([Frame(_inf1())])) as (app, pilot):
            await pilot.press("7")
            assert app.tab_key == ALL
    run(body())


# --- mouse -------------------------------------------------------------------------------------


def test_clicking_a_tab_selects_it() -> None:
    async def body():
        async with started() as (app, pilot):
            bar = app.query_one(TabBar)
            x0, _, key = bar._hit_boxes[2]
            await pilot.click(TabBar, offset=(x0 + 1, 0))
            assert app.tab_key == key
    run(body())


def test_clicking_a_core_bar_selects_the_core() -> None:
    async def body():
        async with started() as (app, pilot):
            grid = app.query_one(UtilizationGrid)
            row, x0, _, core = next(box for box in grid._hit_boxes if box[3] == 5)
            await pilot.click(UtilizationGrid, offset=(x0 + 2, row))
            assert app.selected_core == 5 and grid.selected_core == 5
    run(body())


def test_clicking_tree_rows_selects_and_the_expander_or_a_double_click_toggles() -> None:
    async def body():
        async with started() as (app, pilot):
            tree = _tree(app)
            await pilot.click(MemoryTreeView, offset=(20, 2))  # row 2 on screen: NC 0
            assert tree.cursor_key == ("core", 0) and ("core", 0) in tree.expanded
            await pilot.click(MemoryTreeView, offset=(6, 2))  # its [-]
            assert ("core", 0) not in tree.expanded
            await pilot.click(MemoryTreeView, offset=(30, 1), times=2)  # double click ND 0
            assert ("device", 0) not in tree.expanded
    run(body())


def test_clicking_a_key_help_entry_runs_its_action() -> None:
    async def body():
        async with started(size=(200, 40)) as (app, pilot):
            keys = app.query_one(KeyHelp)
            x0, _, action = next(box for box in keys._hit_boxes if box[2] == "toggle_flops")
            await pilot.click(KeyHelp, offset=(x0, 0))
            assert app.flops_mode
            x0, _, action = next(box for box in keys._hit_boxes if box[2] == "view('cores')")
            await pilot.click(KeyHelp, offset=(x0 + 2, 0))
            assert app.view == "cores"
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert all(x1 <= 80 for _, x1, _ in keys._hit_boxes)
    run(body())


# --- help and views ----------------------------------------------------------------------------


def test_help_lists_every_key_and_its_rows_are_clickable() -> None:
    async def body():
        async with started() as (app, pilot):
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            described = " ".join(row.entry.keys for row in app.screen.query(HelpRow))
            for key in ("q", "arrows", "enter", "x", "a / d", "1-9", "f", "c", "t", "e", "p", "space", "n / b",
                        "+ / -", "s / click header", "r", "/", "k", "T", "ctrl+p", "mouse"):
                assert key in described
            row = next(r for r in app.screen.query(HelpRow) if r.entry.action == "view('topology')")
            await pilot.click(row)
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen) and app.view == "topology"
            await pilot.press("question_mark")
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("question_mark")
            await pilot.click(offset=(0, 0))  # outside the box
            assert not isinstance(app.screen, HelpScreen)
    run(body())


@pytest.mark.parametrize("key, view, expected", [
    ("c", "cores", "engines: modeled busy time"),
    ("t", "topology", "12 devices, ring"),
    ("e", "executions", "Total p50"),
    ("p", "processes", "Session"),
])
def test_view_keys_switch_views_and_escape_or_o_comes_back(key: str, view: str, expected: str) -> None:
    async def body():
        async with started() as (app, pilot):
            await pilot.press(key)
            assert app.view == view and expected in screen_text(app)
            await pilot.press("escape")
            assert app.view == "overview" and "Memory Usage Details" in screen_text(app)
            await pilot.press(key, "o")
            assert app.view == "overview"
    run(body())


def test_cores_view_follows_the_selected_core_and_a_click_selects_one() -> None:
    async def body():
        from neurontools.top.widgets.cores_view import CoreHistoryGrid, EnginePanel
        async with started() as (app, pilot):
            await pilot.press("c")
            grid = app.query_one(CoreHistoryGrid)
            row, x0, _, core = next(box for box in grid._hit_boxes if box[3] == 7)
            await pilot.click(CoreHistoryGrid, offset=(x0 + 1, row))
            assert app.selected_core == 7 and app.query_one(EnginePanel).core_id == 7
            assert "NC 7 (ND3 NC1, 1 in flight) engines" in screen_text(app)
    run(body())


def test_history_rows_end_with_the_value_they_chart_whatever_tab_is_selected() -> None:
    """The sparkline is every application's utilization of the core; the figure after it is that
    series' latest point, also when a tab shows one application elsewhere (bert-15 runs on core 15)."""
    async def body():
        async with started(size=(80, 24)) as (app, pilot):
            await pilot.press("c")
            everyone = next(line for line in screen_text(app).splitlines() if line.startswith("ND0 NC0 "))
            assert re.match(r"ND0 NC0 +▂+ +24\.1% ", everyone), everyone  # the "all" tab: the same figure
            await pilot.press("2")  # the bert-15 tab
            await pilot.pause()
            row = next(line for line in screen_text(app).splitlines() if line.startswith("ND0 NC0 "))
            assert re.match(r"ND0 NC0 +▂+ +24\.1% ", row), row  # not bert-15's 0.0% on core 0
    run(body())


def test_views_without_snapshot_data_say_why() -> None:
    async def body():
        async with started(source=ListSource(fixed_frames(with_extras=False))) as (app, pilot):
            await pilot.press("t")
            assert "come from neurond snapshots" in screen_text(app)
            await pilot.press("c")
            assert "neuron-monitor reports do not carry it" in screen_text(app)
    run(body())


def test_T_cycles_themes() -> None:
    async def body():
        async with started() as (app, pilot):
            before = app.theme
            await pilot.press("T")
            assert app.theme != before and app.theme in app.available_themes
    run(body())


# --- processes ---------------------------------------------------------------------------------


def test_an_empty_process_table_at_80x24_shows_no_stray_glyph() -> None:
    idle = [Frame(frame.report.model_copy(update={"neuron_runtime_data": []}), None) for frame in ONE_FRAME]
    async def body():
        async with started(size=(80, 24), source=ListSource(idle)) as (app, pilot):
            await pilot.press("p")
            await pilot.pause()
            lines = screen_text(app).splitlines()
            header = next(index for index, line in enumerate(lines) if line.lstrip().startswith("PID"))
            body_lines = lines[header + 1:-2]  # down to the tab bar and the key line
            assert body_lines and all(line.strip() == "" for line in body_lines), body_lines
    run(body())


def test_process_view_sorts_by_key_and_by_header_click_and_filters() -> None:
    async def body():
        async with started() as (app, pilot):
            await pilot.press("p")
            view = app.query_one(ProcessesView)
            assert view.sort_by == "pid"
            await pilot.press("s")
            assert view.sort_by == "tag"
            await pilot.press("r")
            assert view.descending and [r.app.tag for r in view.rows] == sorted((r.app.tag for r in view.rows),
                                                                                reverse=True)
            await pilot.click(ProcessTable, offset=(50, 0))  # a header cell
            assert view.sort_by != "tag"
            await pilot.press("slash")
            await pilot.press(*"llama")
            assert len(view.rows) == 4 and view.table.row_count == 4
            await pilot.press("enter")  # keeps the filter, back to the table
            assert view.table.has_focus and len(view.rows) == 4
            await pilot.press("escape")  # clears it
            assert len(view.rows) == 20 and app.view == "processes"
    run(body())


def test_row_order_is_stable_across_refreshes() -> None:
    async def body():
        source = ListSource(FRAMES[:1])
        async with started(source=source) as (app, pilot):
            await pilot.press("p")
            view = app.query_one(ProcessesView)
            view.table.move_cursor(row=5)
            before = [r.app.key for r in view.rows]
            selected = view.selected.app.key
            source.frames.append(FRAMES[1])
            app._request_read()
            await wait_until(pilot, lambda: app.frames_shown == 2)
            assert [r.app.key for r in view.rows] == before and view.selected.app.key == selected
    run(body())


def test_k_ends_the_selected_session_after_confirmation() -> None:
    async def body():
        source = ListSource(ONE_FRAME, can_end_sessions=True)
        async with started(source=source) as (app, pilot):
            await pilot.press("p")
            view = app.query_one(ProcessesView)
            row = view.selected
            await pilot.press("k")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")  # cancel
            assert source.ended == []
            await pilot.press("k")
            await pilot.click("#confirm")
            await wait_until(pilot, lambda: source.ended)
            assert source.ended == [(row.session_ids[0], "ended from neuron-top")]
            await pilot.press("k", "y")
            await wait_until(pilot, lambda: len(source.ended) == 2)
    run(body())


def test_readonly_and_non_live_sources_never_end_sessions() -> None:
    async def body():
        for options, source in (({"readonly": True}, ListSource(ONE_FRAME, can_end_sessions=True)),
                                ({}, ListSource(ONE_FRAME))):
            async with started(source=source, **options) as (app, pilot):
                await pilot.press("p", "k")
                assert not isinstance(app.screen, ConfirmScreen)
                assert source.ended == []
    run(body())


# --- replay keys and sources -------------------------------------------------------------------


def _inf1():
    from neurontools.monitor.report_json import loads_report
    return loads_report((CAPTURES / "inf1-xlarge-one-app-2023.json").read_text())


def test_replay_keys_pause_step_and_change_speed(tmp_path) -> None:
    from test_top_fixtures import RECORDING
    path = tmp_path / "run.ndjson"
    path.write_text(RECORDING.read_text())

    async def body():
        source = ReplaySource(path)
        async with started(source=source) as (app, pilot):
            await pilot.press("space")
            assert source.paused and "paused" in str(app.query_one(StatusLine).render())
            shown = app.frames_shown
            position = source.position
            await pilot.press("n")
            await wait_until(pilot, lambda: app.frames_shown == shown + 1)
            assert source.position != position
            await pilot.press("b")
            await wait_until(pilot, lambda: app.frames_shown == shown + 2)
            assert source.position == position
            await pilot.press("plus", "plus")
            assert source.speed == 4.0 and "at 4x" in str(app.query_one(StatusLine).render())
            await pilot.press("minus")
            assert source.speed == 2.0
            await pilot.press("space")
            assert not source.paused
    run(body())


def test_replay_keys_explain_themselves_on_other_sources() -> None:
    async def body():
        async with started() as (app, pilot):
            await pilot.press("space")
            await pilot.pause()
            assert any("--replay" in str(n.message) for n in app._notifications)
    run(body())


@pytest.mark.parametrize("name", ["inf1-xlarge-idle-2023.json", "inf1-xlarge-one-app-2023.json",
                                  "trn1n-32xlarge-cwagent-fixture-2024-excerpt.json",
                                  "inf1-issue633-container-2023-truncated.txt", "inf2-xlarge-2026-keypaths.txt"])
def test_replay_of_the_real_captures_renders_without_error(name: str) -> None:
    async def body():
        source = ReplaySource(CAPTURES / name)
        app = NeuronTopApp(source)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.frames_shown or source.paused)
            for key in ("f", "x", "c", "t", "e", "p", "o"):
                await pilot.press(key)
            text = screen_text(app)
            if name.endswith(".json") and "excerpt" not in name:
                assert "neuron-top 0.1.0 running on i-0823d657f57057590 (inf1.xlarge)" in text
                assert app.frames_shown == 1
            else:  # abbreviated, truncated or not JSON: named in the status line, nothing shown
                assert app.frames_shown == 0
                assert "holds no neuron-monitor report" in text
    run(body())


# --- failures ----------------------------------------------------------------------------------


class FlakySource(ListSource):
    """Fails in the given ways, then serves its frames."""

    def __init__(self, failures, frames) -> None:
        super().__init__(frames)
        self.failures = list(failures)

    def read(self) -> Frame:
        if self.failures:
            raise self.failures.pop(0)
        return super().read()


def test_an_unavailable_source_shows_a_banner_and_recovers(monkeypatch) -> None:
    monkeypatch.setattr("neurontools.top.app.MAX_RETRY_SECONDS", 0.05)

    async def body():
        source = FlakySource([SourceUnavailable("cannot reach neurond at unix:///x.sock"),
                              RuntimeError("boom")], FRAMES[:1])
        app = NeuronTopApp(source)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: "cannot reach neurond" in screen_text(app))
            assert "retrying in" in screen_text(app)
            await wait_until(pilot, lambda: app.frames_shown == 1)
            assert not app.query_one(StatusLine).display  # recovered: the banner is gone
    run(body())


def test_the_end_of_a_stream_is_said_and_the_last_report_stays() -> None:
    async def body():
        source = FlakySource([], FRAMES[:1])
        source.delay = lambda: 0.0  # keep asking past the end
        async with started(source=source) as (app, pilot):
            await wait_until(pilot, lambda: "no more test frames" in screen_text(app))
            assert "Memory Usage Details" in screen_text(app) and app.frame is FRAMES[0]
    run(body())

