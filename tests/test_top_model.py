"""neuron-top's view data, without Textual: the real tool's screen computed from reports (formats,
sums, the memory tree's rules), the per-application figures, the process table's order, the
snapshot add-on, and the stream and replay sources."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from test_top_fixtures import CAPTURES, RECORDING, recorded_reports, ring_extras

from neurontools._proto import neurond_pb2 as pb
from neurontools.monitor.report_json import dumps_report, loads_report
from neurontools.top import tabs as tab_bar
from neurontools.top.applications import applications
from neurontools.top.device_extras import device_extras
from neurontools.top.formatting import core_percent, core_tflops, human_bytes, vcpu_pair
from neurontools.top.history import History, sparkline
from neurontools.top.memory_tree import walk
from neurontools.top.overview import overview
from neurontools.top.process_table import arrange, core_ranges, process_rows
from neurontools.top.sources.frame import SourceEnded
from neurontools.top.sources.replay import ReplaySource
from neurontools.top.sources.report_documents import documents
from neurontools.top.sources.stream import StreamSource
from neurontools.top.topology_map import positions
from neurontools.top.widgets.memory_summary import DEVICE_ITEMS, aligned, flowed

INF1 = CAPTURES / "inf1-xlarge-one-app-2023.json"


def _inf1():
    return loads_report(INF1.read_text())


# --- formats (reference neuron-tools.md 2.4) ---------------------------------------------------


@pytest.mark.parametrize("count, text", [(0, "0.0B"), (34 * 1024, "34.0KB"), (888.4 * 2**20, "888.4MB"),
                                         (20.2 * 2**30, "20.2GB"), (1023, "1023.0B"), (3 * 2**40, "3.0TB")])
def test_memory_is_shown_with_one_decimal_and_1024_based_units(count: float, text: str) -> None:
    assert human_bytes(count) == text


def test_core_and_vcpu_cells_match_the_screenshots() -> None:
    assert core_percent(69.89) == "[69.89%]"
    assert core_percent(0) == "[ 0.00%]"
    assert core_tflops(9.848e12) == "[   9.848TF]"
    assert core_tflops(None) == "[   N/A   ]"
    assert vcpu_pair(2.69, 3.97) == "[ 2.69%, 3.97%]"


# --- the real tool's screen --------------------------------------------------------------------


def test_overview_of_the_inf1_capture() -> None:
    view = overview(_inf1())
    assert view.title == "neuron-top 0.1.0 running on i-0823d657f57057590 (inf1.xlarge)"
    assert view.utilization_title == "NeuronCore v1 Utilization"  # 2023 capture: version from the family
    assert (view.device_count, view.cores_per_device) == (1, 4)
    assert [round(c.utilization, 2) for c in view.cores] == [89.02, 0, 0, 0]
    assert view.average_utilization == pytest.approx(89.01827638996558 / 4)
    assert view.total_flops is None  # 2023: no flops key
    assert view.system_vcpu == (26.32, 0) and view.runtime_vcpu == (4, 0)
    assert view.host_memory.total == 1119887360 and view.host_memory.dma_buffers == 16512
    assert view.device_memory.total == 63118912 and view.device_memory.constants == 61766864
    assert [t.label for t in view.tabs] == ["all", "15439"]


def test_memory_tree_follows_the_reference_rules_on_the_inf1_capture() -> None:
    (device,) = overview(_inf1()).memory_tree
    assert device.label == "ND 0"  # ND%2d
    (core,) = device.children  # cores without memory are not shown
    assert core.label == "NC 0"
    model, *categories = core.children
    assert (model.label, model.model_id, model.device_bytes, model.host_bytes) == (
        "1.13.5.0+7dcf000a6-/tmp/tmpg0xeg0mi", 10001, 62547744, 12328)
    # what the model does not account for: model code 1308832 - 737664; constants and runtime memory are
    # all in the model, so their rows (zero) are hidden
    assert [(c.label, c.device_bytes) for c in categories] == [("Model Code", 571168)]
    assert core.device_bytes == 63118912 == sum(c.device_bytes for c in core.children)
    assert device.device_bytes == core.device_bytes and device.host_bytes == core.host_bytes == 12328
    assert [c.label for c in model.children] == ["Constants", "Model Code", "Runtime Memory", "App. Memory"]


def test_every_parent_is_the_sum_of_its_children_on_the_recording() -> None:
    for report in recorded_reports():
        for node in walk(overview(report).memory_tree):
            if node.children:
                assert node.device_bytes == sum(c.device_bytes for c in node.children)
                assert node.host_bytes == sum(c.host_bytes for c in node.children)


def test_all_tab_sums_applications_and_a_tab_shows_one() -> None:
    report = recorded_reports()[0]
    everything = overview(report)
    assert everything.device_count == 12 and len(everything.cores) == 24
    assert len(everything.tabs) == 21  # all + 20 applications
    assert all(c.utilization > 0 for c in everything.cores)  # every core busy in the recording
    tab = everything.tabs[5]
    one = overview(report, tab.key)
    runtime = tab_bar.runtimes_of(report, tab.key)[0]
    busy = {int(k) for k, c in runtime.report.neuroncore_counters.neuroncores_in_use.items()
            if c.neuroncore_utilization}
    assert {c.core_id for c in one.cores if c.utilization} == busy
    assert one.device_memory.total == runtime.report.memory_used.neuron_runtime_used_bytes.neuron_device
    assert sum(overview(report, t.key).device_memory.total for t in everything.tabs[1:]) == \
        everything.device_memory.total
    per_tab = [overview(report, t.key).total_flops for t in everything.tabs[1:]]
    assert everything.total_flops == pytest.approx(sum(per_tab))


def test_runtime_vcpu_counts_a_process_once_however_many_runtimes_it_has() -> None:
    report = recorded_reports()[0]  # recorded with all 20 applications in one process
    users = [r.report.neuron_runtime_vcpu_usage.vcpu_usage.user for r in report.neuron_runtime_data]
    user, _ = overview(report).runtime_vcpu
    assert min(users) <= user <= max(users) < sum(users) / 2


def test_a_gone_application_falls_back_to_the_all_tab() -> None:
    assert overview(_inf1(), "1:nobody").selected_tab.key == tab_bar.ALL


def test_tabs_wrap_around_with_a_and_d() -> None:
    tabs = overview(_inf1()).tabs
    assert tab_bar.step(tabs, tab_bar.ALL, -1).label == "15439"
    assert tab_bar.step(tabs, tabs[1].key, 1).key == tab_bar.ALL


def test_memory_summary_layouts_keep_every_item() -> None:
    items = [f"{label}: 1.0MB" for label, _ in DEVICE_ITEMS]
    assert aligned("Device Used Memory", items).startswith("Device Used Memory    Total: 1.0MB")
    for width in (40, 80, 120):
        lines = flowed("Device Used Memory", items, width)
        assert all(len(line) <= width for line in lines)
        assert all(item in "\n".join(lines) for item in items)


# --- beyond the real tool ----------------------------------------------------------------------


def test_execution_figures_are_rates_over_the_groups_period() -> None:
    (app,) = applications(_inf1())
    assert app.executions.completed_per_second == pytest.approx(14 / 0.062386649)
    assert app.executions.total_latency.p99 == 0.003339529037475586
    assert app.cores == (0,) and app.models == 1 and app.running_models == 1


def test_process_rows_sort_stably_and_filter() -> None:
    report = recorded_reports()[0]
    rows = process_rows(applications(report), None)
    by_pid = arrange(rows, "pid", False)
    assert [r.app.tag for r in by_pid] == sorted(r.app.tag for r in rows)  # one pid: ties by tag
    by_util = arrange(rows, "util", True)
    assert [r.app.utilization for r in by_util] == sorted((r.app.utilization for r in rows), reverse=True)
    assert arrange(rows, "device", True) == arrange(list(reversed(rows)), "device", True)  # input order ignored
    assert {r.app.tag for r in arrange(rows, "pid", False, "LLAMA")} == {f"llama-tp2-{i}" for i in range(4)}
    assert [r.app.tag for r in arrange(rows, "pid", False, "16-17")] == ["llama-tp2-0"]


def test_process_cores_and_sessions_come_from_the_snapshot_when_known() -> None:
    report = recorded_reports()[0]
    extras = ring_extras(report)
    held = replace(extras.sessions[0], core_ids=(7, 8))  # e.g. cores held but not used yet
    rows = process_rows(applications(report), replace(extras, sessions=(held, *extras.sessions[1:])))
    assert (rows[0].cores, rows[0].session_ids, rows[0].command) == ((7, 8), (100,), "python serve.py --model 0")
    assert rows[1].cores == applications(report)[1].cores


def test_core_ranges() -> None:
    assert core_ranges([8, 0, 1, 2, 3]) == "0-3,8"
    assert core_ranges([]) == "-"


def _snapshot(at_ns: int, occupied: int, tensor: int, link_bytes: int) -> pb.Snapshot:
    snapshot = pb.Snapshot(monotonic_ns=at_ns, daemon_start_unix_ns=1)
    snapshot.topology.shape = "ring"
    snapshot.topology.devices.add(index=0)
    snapshot.topology.devices.add(index=1)
    snapshot.topology.links.add(link_id=0, device_a=0, device_b=1, bandwidth_bytes_per_second=1000)
    core = snapshot.cores.add(core_id=0, occupied_ns=occupied, in_flight=1)
    core.engines.add(engine=pb.TENSOR, busy_ns=tensor)
    snapshot.links.add(link_id=0, bytes_a_to_b=link_bytes, bytes_b_to_a=0, up=True)
    snapshot.sessions.add(session_id=7, pid=42, tag="", command="python serve.py", core_ids=[0])
    return snapshot


def test_device_extras_are_rates_between_two_snapshots() -> None:
    extras = device_extras(_snapshot(0, 0, 0, 0), _snapshot(2_000_000_000, 1_000_000_000, 500_000_000, 1000))
    core = extras.cores[0]
    assert core.occupied == 0.5 and core.busy[0] == 0.25 and core.busy[1:] == (0, 0, 0, 0)
    (link,) = extras.links
    assert (link.a_to_b, link.b_to_a, link.load) == (500.0, 0.0, 0.5)
    assert extras.sessions_of(42, "42")[0].session_id == 7  # untagged: the tag is the pid


def test_history_and_sparkline() -> None:
    history = History(length=3)
    for value in (0, 50, 100, 0.5):
        history.record("x", value)
    assert history.series("x") == [50, 100, 0.5]
    assert sparkline(history.series("x"), 5) == "  ▄█▁"  # any activity shows at least the lowest block


def test_topology_positions() -> None:
    ring = positions("ring", 12)
    assert ring[0] == (0, 0) and ring[5] == (0, 5) and ring[6] == (1, 5) and ring[11] == (1, 0)
    assert positions("torus", 16)[5] == (1, 1)
    assert positions("chain", 6)[5] == (0, 5)
    assert positions("custom", 3) is None


# --- sources -----------------------------------------------------------------------------------


def test_documents_from_ndjson_and_pretty_json() -> None:
    pretty = INF1.read_text()
    compact = json.dumps(json.loads(pretty))
    found = list(documents(io.StringIO(f"{compact}\n\nnot json\n{pretty}{{\"cut\": ")))
    assert [d.first_line for d in found] == [1, 3, 4, pretty.count("\n") + 4]
    assert found[0].text.strip() == compact and found[2].text == pretty
    assert found[1].text is None and "not a JSON object" in found[1].problem
    assert found[3].text is None and "cut off" in found[3].problem


def test_braces_inside_strings_do_not_split_documents() -> None:
    line = '{"name": "a}b{c", "x": {"y": 1}}\n'
    assert [d.text for d in documents(io.StringIO(line * 2))] == [line, line]


def test_stream_skips_what_is_not_a_report_and_says_so() -> None:
    report = dumps_report(_inf1())
    stream = StreamSource(io.StringIO(f"{report}\nWARN something\n{{\"a\": 1}}\n{report}\n"))
    assert stream.read().notice == ""
    second = stream.read()
    assert second.report == _inf1()
    assert second.notice.startswith("skipped 2 non-report input(s)")
    with pytest.raises(SourceEnded, match="stdin ended"):
        stream.read()


def test_replay_paces_pauses_steps_and_changes_speed(tmp_path) -> None:
    lines = RECORDING.read_text().splitlines()
    path = tmp_path / "run.ndjson"
    path.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    replay = ReplaySource(path)
    first = replay.read()
    assert replay.position == "1/5" and first.report == loads_report(lines[0])
    assert replay.delay() == pytest.approx(max(0.1, _longest_period(first.report)))
    second = replay.read()  # the garbage record is skipped and named
    assert replay.position == "3/5" and "line 2 is not a JSON object" in second.notice
    assert replay.change_speed(+1) == 2.0
    assert replay.delay() == pytest.approx(_longest_period(second.report) / 2)
    replay.step(-1)
    assert replay.paused and replay.delay() is None
    assert replay.read().report == first.report  # stepping back skips the bad record too
    replay.step(+1)
    replay.read()
    assert replay.position == "3/5"
    assert replay.toggle_pause() is True
    replay.read(), replay.read()
    with pytest.raises(SourceEnded, match="end of run.ndjson"):
        replay.read()
    assert replay.paused
    assert replay.toggle_pause() is True  # playing again from the start
    assert replay.read().report == first.report


def _longest_period(report) -> float:
    from neurontools.top.sources.replay import report_period
    return report_period(report, 1.0)


def test_replay_of_a_file_without_reports_says_so(tmp_path) -> None:
    replay = ReplaySource(CAPTURES / "inf2-xlarge-2026-keypaths.txt")
    with pytest.raises(SourceEnded, match="holds no neuron-monitor report"):
        replay.read()
