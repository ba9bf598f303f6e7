"""The process view's rows: one per Neuron application, sortable by any column and filterable,
in a stable order (ties broken by pid, then tag, so equal rows never swap between refreshes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from neurontools.top.applications import Application
from neurontools.top.device_extras import DeviceExtras
from neurontools.top.formatting import human_bytes, rate_short


@dataclass(frozen=True)
class ProcessRow:
    app: Application
    session_ids: tuple[int, ...]  # neurond runtime sessions behind it (live source only)
    command: str
    cores: tuple[int, ...]  # the cores its sessions hold, else those the report shows it using


def core_ranges(cores: Sequence[int]) -> str:
    """`0-3,8`: consecutive cores as ranges."""
    parts: list[str] = []
    start = previous = None
    for core in sorted(cores):
        if start is None:
            start = previous = core
        elif core == previous + 1:
            previous = core
        else:
            parts.append(f"{start}-{previous}" if previous != start else str(start))
            start = previous = core
    if start is not None:
        parts.append(f"{start}-{previous}" if previous != start else str(start))
    return ",".join(parts) or "-"


def _exec_rate(row: ProcessRow) -> float:
    return row.app.executions.completed_per_second if row.app.executions else 0.0


def _vcpu(row: ProcessRow) -> float:
    return sum(row.app.vcpu) if row.app.vcpu else 0.0


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort_key: Callable[[ProcessRow], object]
    cell: Callable[[ProcessRow], str]
    descending_first: bool = False  # numbers sort biggest first on the first press


COLUMNS = (
    Column("pid", "PID", lambda r: r.app.pid, lambda r: str(r.app.pid)),
    Column("tag", "Tag", lambda r: r.app.tag, lambda r: r.app.tag),
    Column("session", "Session", lambda r: r.session_ids, lambda r: ",".join(map(str, r.session_ids)) or "-"),
    Column("cores", "Cores", lambda r: r.cores, lambda r: core_ranges(r.cores)),
    Column("util", "NC Util", lambda r: r.app.utilization, lambda r: f"{r.app.utilization:.1f}%", True),
    Column("device", "Device Mem", lambda r: r.app.device_bytes, lambda r: human_bytes(r.app.device_bytes), True),
    Column("host", "Host Mem", lambda r: r.app.host_bytes, lambda r: human_bytes(r.app.host_bytes), True),
    Column("vcpu", "vCPU", _vcpu, lambda r: f"{_vcpu(r):.1f}%" if r.app.vcpu else "-", True),
    Column("models", "Models", lambda r: r.app.models, lambda r: f"{r.app.running_models}/{r.app.models}", True),
    Column("rate", "Exec/s", _exec_rate, lambda r: rate_short(_exec_rate(r)), True),
    Column("command", "Command", lambda r: r.command, lambda r: r.command or "-"),
    Column("error", "Error", lambda r: r.app.error, lambda r: r.app.error or "-"),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
_BY_KEY = {c.key: c for c in COLUMNS}


def process_rows(apps: Sequence[Application], extras: DeviceExtras | None) -> list[ProcessRow]:
    rows = []
    for app in apps:
        sessions = extras.sessions_of(app.pid, app.tag) if extras else []
        held = tuple(sorted({core for s in sessions for core in s.core_ids}))
        rows.append(ProcessRow(app, tuple(s.session_id for s in sessions),
                               sessions[0].command if sessions else "", held or app.cores))
    return rows


def matches(row: ProcessRow, needle: str) -> bool:
    needle = needle.casefold()
    haystack = (str(row.app.pid), row.app.tag, row.command, core_ranges(row.cores))
    return any(needle in text.casefold() for text in haystack)


def arrange(rows: Sequence[ProcessRow], sort_by: str, descending: bool, needle: str = "") -> list[ProcessRow]:
    column = _BY_KEY[sort_by]
    chosen = [row for row in rows if not needle or matches(row, needle)]
    chosen.sort(key=lambda r: (r.app.pid, r.app.tag))  # the tie-break, kept by the stable sort below
    chosen.sort(key=column.sort_key, reverse=descending)
    return chosen


def cells(row: ProcessRow) -> tuple[str, ...]:
    return tuple(column.cell(row) for column in COLUMNS)


def column(key: str) -> Column:
    return _BY_KEY[key]
