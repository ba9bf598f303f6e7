"""neuron-ls rendering rules, one at a time: table layout, columns per mode, processes, JSON, flags."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from neurontools._proto import neurond_pb2 as pb
from neurontools.ls.cli import fatal_line
from neurontools.ls.json_output import render_json
from neurontools.ls.listing import DeviceEntry, Listing, Process, listing_from_snapshot
from neurontools.ls.options import USAGE, UsageError, parse_options
from neurontools.ls.table import render_table
from neurontools.ls.text_output import cut_command, id_ranges, render_text, short_bdf

GOLDEN = Path(__file__).parent / "golden" / "neuron-ls"
GIB = 1 << 30


def device(index: int, *, connected: tuple[int, ...] = (), processes: tuple[Process, ...] = ()) -> DeviceEntry:
    return DeviceEntry(index=index, core_ids=(2 * index, 2 * index + 1), memory_bytes=32 * GIB,
                       connected_to=connected, bdf=f"0000:10:1{index}.0", cpu_affinity="0-7", numa_node=0,
                       processes=processes)


def listing(*devices: DeviceEntry, shape: str = "custom") -> Listing:
    return Listing("inf2.test", "i-0test", shape, devices)


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("|", "+"))]


def header_cells(text: str) -> list[str]:
    lines = table_lines(text)
    return [f"{a.strip()} {b.strip()}".strip() for a, b in zip(lines[1].split("|")[1:-1],
                                                              lines[2].split("|")[1:-1])]


RUNTIME = Process(4290, "python infer.py", "2.30.51")
OTHER = Process(4300, "python serve.py", "2.30.51")
MONITOR = Process(1200, "neuron-monitor", "NA")

# ------------------------------------------------------------------------------------------------
# Table layout
# ------------------------------------------------------------------------------------------------


def test_headers_centre_with_the_spare_space_on_the_right_and_cells_align_left() -> None:
    text = render_table([("PID", ""), ("CPU", "AFFINITY")], [[["4290", "48-71,144-167"]]], group_borders=False)
    assert text.splitlines() == [
        "+------+---------------+",
        "| PID  |      CPU      |",
        "|      |   AFFINITY    |",
        "+------+---------------+",
        "| 4290 | 48-71,144-167 |",
        "+------+---------------+",
    ]


def test_a_column_is_as_wide_as_its_widest_header_line_or_cell() -> None:
    text = render_table([("NEURON", "DEVICE"), ("PCI", "BDF")], [[["0", "1f.0"]], [["11", "0000:00:1f.0"]]],
                        group_borders=False)
    assert text.splitlines()[0] == "+--------+--------------+"
    assert "| 11     | 0000:00:1f.0 |" in text


def test_group_borders_close_every_group_only_when_asked() -> None:
    groups = [[["0", "a"], ["", "b"]], [["1", "c"]]]
    with_borders = render_table([("X", ""), ("Y", "")], groups, group_borders=True).splitlines()
    without = render_table([("X", ""), ("Y", "")], groups, group_borders=False).splitlines()
    assert with_borders.count(with_borders[0]) == 4 and without.count(without[0]) == 3


# ------------------------------------------------------------------------------------------------
# Cells
# ------------------------------------------------------------------------------------------------


def test_command_cut_keeps_40_and_80_characters_with_an_ellipsis() -> None:
    assert cut_command("x" * 40, 40) == "x" * 40
    assert cut_command("x" * 41, 40) == "x" * 37 + "..."
    assert cut_command("y" * 81, 80) == "y" * 77 + "..."


@pytest.mark.parametrize(("ids", "text"), [((0, 1), "0-1"), ((22, 23), "22-23"), ((4,), "4"),
                                           ((0, 1, 5), "0-1,5")])
def test_core_ids_print_as_ranges(ids: tuple[int, ...], text: str) -> None:
    assert id_ranges(ids) == text


def test_short_bdf_drops_the_pci_domain() -> None:
    assert short_bdf("0000:80:1e.0") == "80:1e.0"
    assert short_bdf("80:1e.0") == "80:1e.0"


def test_memory_prints_gib_labelled_gb() -> None:
    assert "| 32 GB  |" in render_text(listing(device(0)))


# ------------------------------------------------------------------------------------------------
# Columns per mode
# ------------------------------------------------------------------------------------------------


def test_default_columns_without_links_or_processes() -> None:
    assert header_cells(render_text(listing(device(0)))) == [
        "NEURON DEVICE", "NEURON CORES", "NEURON CORE IDS", "NEURON MEMORY", "PCI BDF", "CPU AFFINITY",
        "NUMA NODE"]


def test_default_columns_with_links_and_a_process_have_pid_and_runtime_but_no_command() -> None:
    text = render_text(listing(device(0, connected=(1,), processes=(RUNTIME,)), device(1, connected=(0,))))
    assert header_cells(text) == [
        "NEURON DEVICE", "NEURON CORES", "NEURON CORE IDS", "NEURON MEMORY", "CONNECTED DEVICES", "PCI BDF",
        "PID", "CPU AFFINITY", "NUMA NODE", "RUNTIME VERSION"]
    assert "| 0000:10:10.0 |" in text  # full BDF in the default table


@pytest.mark.parametrize("flags", [{"wide": True}, {"show_all_procs": True}])
def test_wide_and_all_procs_columns(flags: dict[str, bool]) -> None:
    text = render_text(listing(device(0, processes=(RUNTIME,))), **flags)
    assert header_cells(text) == ["NEURON DEVICE", "NEURON CORES", "NEURON MEMORY", "PCI BDF", "PID", "COMMAND",
                                  "RUNTIME VERSION"]
    assert "| 10:10.0 |" in text  # short BDF


def test_command_column_is_40_wide_normally_and_80_with_wide() -> None:
    long = Process(7, "c" * 100, "2.30.51")
    for flags, width in (({"show_all_procs": True}, 40), ({"wide": True}, 80),
                         ({"show_all_procs": True, "wide": True}, 80)):
        row = table_lines(render_text(listing(device(0, processes=(long,))), **flags))[4]
        assert row.split("|")[6] == " " + "c" * (width - 3) + "... "


def test_topology_table_never_shows_processes() -> None:
    text = render_text(listing(device(0, processes=(RUNTIME, OTHER))), topology=True)
    assert header_cells(text) == ["NEURON DEVICE", "NEURON CORES", "NEURON MEMORY", "PCI BDF"]
    assert len(table_lines(text)) == 6


# ------------------------------------------------------------------------------------------------
# Process rows
# ------------------------------------------------------------------------------------------------


def test_several_processes_on_a_device_get_rows_with_blank_device_cells_and_group_borders() -> None:
    text = render_text(listing(device(0, processes=(RUNTIME, OTHER)), device(1, processes=(OTHER,))), wide=True)
    rows = table_lines(text)[4:]
    assert rows[0].startswith("| 0      | 2      | 32 GB  | 10:10.0 | 4290 |")
    assert rows[1].startswith("|        |        |        |         | 4300 | python serve.py")
    assert rows[2] == rows[-1] and rows[2].startswith("+")  # border after the device group
    assert rows[3].startswith("| 1      |")


def test_one_process_per_device_needs_no_border_between_devices() -> None:
    text = render_text(listing(device(0, processes=(RUNTIME,)), device(1, processes=(RUNTIME,))), wide=True)
    assert [line[0] for line in table_lines(text)[4:]] == ["|", "|", "+"]


def test_show_all_procs_closes_every_device_group() -> None:
    text = render_text(listing(device(0, processes=(MONITOR,)), device(1, processes=(MONITOR,))),
                       show_all_procs=True)
    assert [line[0] for line in table_lines(text)[4:]] == ["|", "+", "|", "+"]


def test_a_device_without_process_shows_na_when_process_columns_exist() -> None:
    text = render_text(listing(device(0, processes=(RUNTIME,)), device(1)), wide=True)
    assert table_lines(text)[5].endswith("| NA   | NA              | NA      |")


# ------------------------------------------------------------------------------------------------
# From a snapshot
# ------------------------------------------------------------------------------------------------


def snapshot(sessions: list[pb.SessionInfo], observers: list[pb.Observer]) -> pb.Snapshot:
    devices = [pb.Device(index=i, core_ids=[2 * i, 2 * i + 1], memory_bytes=32 * GIB, bdf=f"0000:10:1{i}.0")
               for i in range(3)]
    topology = pb.Topology(instance=pb.InstanceInfo(instance_type="inf2.test"), devices=devices)
    return pb.Snapshot(topology=topology, sessions=sessions, observers=observers)


def pids(entry: DeviceEntry) -> list[int]:
    return [p.pid for p in entry.processes]


def test_a_session_is_listed_on_every_device_owning_one_of_its_cores() -> None:
    spanning = pb.SessionInfo(pid=900, command="torchrun", runtime_version="2.30.51", core_ids=[1, 2, 3])
    result = listing_from_snapshot(snapshot([spanning], []), include_observers=False)
    assert [pids(d) for d in result.devices] == [[900], [900], []]


def test_observers_use_every_device_but_only_with_show_all_procs() -> None:
    runtime = pb.SessionInfo(pid=900, command="python a.py", runtime_version="2.30.51", core_ids=[0])
    watchers = [pb.Observer(pid=950, command="neuron-top"), pb.Observer(pid=100, command="neuron-monitor")]
    assert [pids(d) for d in listing_from_snapshot(snapshot([runtime], watchers), include_observers=False).devices] \
        == [[900], [], []]
    shown = listing_from_snapshot(snapshot([runtime], watchers), include_observers=True)
    assert [pids(d) for d in shown.devices] == [[100, 900, 950], [100, 950], [100, 950]]  # by pid
    assert shown.devices[1].processes[0] == Process(100, "neuron-monitor", "NA")


def test_a_process_is_listed_once_per_device_and_as_a_runtime_if_it_is_one() -> None:
    sessions = [pb.SessionInfo(pid=900, command="python a.py", runtime_version="2.30.51", core_ids=[0]),
                pb.SessionInfo(pid=900, command="python a.py", runtime_version="2.30.51", core_ids=[1])]
    result = listing_from_snapshot(snapshot(sessions, [pb.Observer(pid=900, command="python a.py")]),
                                   include_observers=True)
    assert result.devices[0].processes == (Process(900, "python a.py", "2.30.51"),)


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------

SCHEMA = json.loads((GOLDEN / "neuron-ls.schema.json").read_text())


def json_documents() -> list[Path]:
    return sorted(GOLDEN.glob("generated/*/*.json")) + [GOLDEN / "reference" / "inf2.xlarge.json"]


@pytest.mark.parametrize("path", json_documents(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_json_documents_satisfy_the_schema(path: Path) -> None:
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)


def test_json_keys_come_in_the_real_tools_order() -> None:
    document = json.loads(render_json(listing(device(0, connected=(1,), processes=(RUNTIME,)))))
    assert list(document[0]) == ["neuron_device", "bdf", "cpu_affinity", "numa_node", "connected_to",
                                 "nc_count", "memory_size", "neuroncore_ids", "neuron_processes"]
    assert list(document[0]["neuron_processes"][0]) == ["pid", "command", "neuron_runtime_version"]


def test_json_types_follow_the_real_tool() -> None:
    lone = render_json(listing(device(0)))
    document = json.loads(lone)
    assert document[0]["numa_node"] == "0" and document[0]["connected_to"] is None
    assert document[0]["memory_size"] == 34359738368 and document[0]["neuron_processes"] == []
    assert lone.endswith("}\n]")  # no newline after the closing bracket
    assert '        "neuron_processes": []\n' in lone  # Go writes an empty array inline


def test_json_escapes_html_characters_like_go() -> None:
    shell = Process(5, "bash -c 'a && b > out <in'", "2.30.51")
    text = render_json(listing(device(0, processes=(shell,))))
    assert r'"command": "bash -c ' "'a \\u0026\\u0026 b \\u003e out \\u003cin'" '"' in text
    assert json.loads(text)[0]["neuron_processes"][0]["command"] == shell.command


def test_json_keeps_the_full_command_line() -> None:
    long = Process(5, "python " + "x" * 200, "2.30.51")
    assert json.loads(render_json(listing(device(0, processes=(long,)))))[0]["neuron_processes"][0]["command"] \
        == long.command


# ------------------------------------------------------------------------------------------------
# Flags and messages
# ------------------------------------------------------------------------------------------------


def test_short_flags_combine_and_long_flags_spell_out() -> None:
    options = parse_options(["-aw", "--topology", "--json-output"])
    assert (options.show_all_procs, options.wide, options.topology, options.json_output) == (True,) * 4
    assert parse_options([]).address is None


@pytest.mark.parametrize("argv", [["--address=unix:///tmp/n.sock"], ["--address", "unix:///tmp/n.sock"]])
def test_address_takes_a_value_either_way(argv: list[str]) -> None:
    assert parse_options(argv).address == "unix:///tmp/n.sock"


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus"], "unknown flag `bogus'"),
    (["-x"], "unknown flag `x'"),
    (["-ax"], "unknown flag `x'"),
    (["--address"], "expected argument for flag `--address'"),
    (["--wide=yes"], "bool flag `--wide' cannot have an argument"),
    (["extra"], "unexpected argument `extra'"),
    (["--", "extra"], "unexpected argument `extra'"),
])
def test_flag_errors_use_go_flags_wording(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_options(argv)
    assert str(raised.value) == message


def test_usage_lists_every_flag_within_80_columns() -> None:
    for flag in ("-w, --wide", "-a, --show-all-procs", "-t, --topology", "-j, --json-output", "--address=",
                 "--version", "-h, --help", "[$NEURON_DAEMON_ADDRESS]"):
        assert flag in USAGE
    assert max(len(line) for line in USAGE.splitlines()) <= 80


def test_fatal_line_is_one_line_even_for_a_multi_line_error() -> None:
    line = fatal_line("Failed to discover neuron devices", 'cannot reach "x"\nstart it', 12.7)
    assert line == 'FATA[0012] Failed to discover neuron devices             error="cannot reach \\"x\\"\\nstart it"\n'
