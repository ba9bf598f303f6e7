"""The neuron-ls text output: header lines, the table of the chosen mode, the topology drawing.

Column sets follow the reference's most recent consistent profile (tools 2.25-2.28):

  default          DEVICE CORES CORE-IDS MEMORY [CONNECTED] BDF(full) [PID] CPU-AFFINITY NUMA [RUNTIME]
  --wide           DEVICE CORES MEMORY [CONNECTED] BDF(short) [PID COMMAND(80) RUNTIME]
  --show-all-procs DEVICE CORES MEMORY [CONNECTED] BDF(short) [PID COMMAND(40) RUNTIME]
  --topology       DEVICE CORES MEMORY [CONNECTED] BDF(short), then the drawing

CONNECTED DEVICES appears when some device has links; process columns when some process is listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from neurontools.ls.listing import DeviceEntry, Listing, Process
from neurontools.ls.table import Row, Title, render_table
from neurontools.ls.topology_drawing import render_drawing

COMMAND_WIDTH = 40
WIDE_COMMAND_WIDTH = 80
_ELLIPSIS = "..."
_NO_PROCESS = "NA"  # the process cells of a device no process uses


def cut_command(command: str, width: int) -> str:
    return command if len(command) <= width else command[: width - len(_ELLIPSIS)] + _ELLIPSIS


def id_ranges(ids: tuple[int, ...]) -> str:
    """Kernel cpulist style: (0, 1) -> "0-1", (4,) -> "4", (0, 1, 5) -> "0-1,5"."""
    parts: list[str] = []
    start = previous = ids[0]
    for value in (*ids[1:], None):
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(parts)


def short_bdf(bdf: str) -> str:
    """ "0000:80:1e.0" -> "80:1e.0" (bus:device.function, as the older and wide layouts print it)."""
    return bdf.split(":", 1)[1] if bdf.count(":") == 2 else bdf


class _Column(NamedTuple):
    title: Title
    device_cell: Callable[[DeviceEntry], str] | None = None  # blank on a device's extra rows
    process_cell: Callable[[Process], str] | None = None  # NA on a device no process uses


_DEVICE = _Column(("NEURON", "DEVICE"), device_cell=lambda d: str(d.index))
_CORES = _Column(("NEURON", "CORES"), device_cell=lambda d: str(len(d.core_ids)))
_CORE_IDS = _Column(("NEURON", "CORE IDS"), device_cell=lambda d: id_ranges(d.core_ids))
# GiB labelled "GB", as the real tool prints 32 GiB of HBM
_MEMORY = _Column(("NEURON", "MEMORY"), device_cell=lambda d: f"{d.memory_bytes >> 30} GB")
_CONNECTED = _Column(("CONNECTED", "DEVICES"), device_cell=lambda d: ", ".join(map(str, d.connected_to)))
_BDF_FULL = _Column(("PCI", "BDF"), device_cell=lambda d: d.bdf)
_BDF_SHORT = _Column(("PCI", "BDF"), device_cell=lambda d: short_bdf(d.bdf))
_CPU_AFFINITY = _Column(("CPU", "AFFINITY"), device_cell=lambda d: d.cpu_affinity)
_NUMA = _Column(("NUMA", "NODE"), device_cell=lambda d: str(d.numa_node))
_PID = _Column(("PID", ""), process_cell=lambda p: str(p.pid))
_RUNTIME = _Column(("RUNTIME", "VERSION"), process_cell=lambda p: p.runtime_version)


def _command(width: int) -> _Column:
    return _Column(("COMMAND", ""), process_cell=lambda p: cut_command(p.command, width))


def _columns(listing: Listing, *, wide: bool, show_all_procs: bool, topology: bool) -> list[_Column]:
    links = [_CONNECTED] if listing.has_links else []
    processes = listing.has_processes and not topology
    if topology or wide or show_all_procs:
        command = _command(WIDE_COMMAND_WIDTH if wide else COMMAND_WIDTH)
        return [_DEVICE, _CORES, _MEMORY, *links, _BDF_SHORT, *([_PID, command, _RUNTIME] if processes else [])]
    return [_DEVICE, _CORES, _CORE_IDS, _MEMORY, *links, _BDF_FULL, *([_PID] if processes else []),
            _CPU_AFFINITY, _NUMA, *([_RUNTIME] if processes else [])]


def _device_rows(device: DeviceEntry, columns: list[_Column]) -> list[Row]:
    """One row per process when the table has process columns; the first row carries the device."""
    listed = any(column.process_cell is not None for column in columns) and device.processes
    rows = []
    for number, process in enumerate(device.processes if listed else (None,)):
        row = []
        for column in columns:
            if column.device_cell is not None:
                row.append(column.device_cell(device) if number == 0 else "")
            elif process is None:
                row.append(_NO_PROCESS)
            else:
                assert column.process_cell is not None
                row.append(column.process_cell(process))
        rows.append(row)
    return rows


def render_text(listing: Listing, *, wide: bool = False, show_all_procs: bool = False,
                topology: bool = False) -> str:
    header = f"instance-type: {listing.instance_type}\ninstance-id: {listing.instance_id}\n"
    columns = _columns(listing, wide=wide, show_all_procs=show_all_procs, topology=topology)
    groups = [_device_rows(device, columns) for device in listing.devices]
    # A border closes every device group with --show-all-procs, and in the other modes as soon as a
    # device needs several rows (inf1 docs: borders; trn2 --wide docs, one process each: none).
    group_borders = not topology and (show_all_procs or any(len(rows) > 1 for rows in groups))
    table = render_table([c.title for c in columns], groups, group_borders=group_borders)
    drawing = render_drawing(listing.shape, len(listing.devices)) if topology else ""
    return header + table + drawing
