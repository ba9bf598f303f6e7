"""The Executions view: per application, executions and failures per second, errors per second by
kind, total (queueing included) and device latency percentiles of the last period, and the group's
own collection error."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from neurontools.top.applications import ERROR_KINDS, Application
from neurontools.top.formatting import rate_short, seconds_short
from neurontools.top.widgets.table_sync import Cell, Row, sync_rows

COLUMNS = (("app", "App"), ("pid", "PID"), ("rate", "Exec/s"), ("failed", "Failed/s"),
           *((kind, kind.capitalize()[:9]) for kind in ERROR_KINDS),
           ("total50", "Total p50"), ("total99", "Total p99"), ("device50", "Device p50"), ("device99", "Device p99"),
           ("error", "Error"))
COLUMN_KEYS = tuple(key for key, _ in COLUMNS)


def execution_row(app: Application, selected: bool) -> Row:
    name: Cell = Text(app.tag, "bold") if selected else app.tag
    figures = app.executions
    if figures is None:
        return app.key, (name, str(app.pid), *("-" for _ in COLUMNS[2:]))
    errors = [rate_short(figures.errors_per_second[kind]) for kind in ERROR_KINDS]
    total, device = figures.total_latency, figures.device_latency
    return app.key, (
        name, str(app.pid), rate_short(figures.completed_per_second), rate_short(figures.failed_per_second),
        *errors,
        seconds_short(total.p50 if total else None), seconds_short(total.p99 if total else None),
        seconds_short(device.p50 if device else None), seconds_short(device.p99 if device else None),
        figures.error or "-",
    )


class ExecutionsView(DataTable):
    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, apps: tuple[Application, ...], selected_key: str) -> None:
        rows = [execution_row(app, app.key == selected_key) for app in apps]
        self._shown = sync_rows(self, COLUMN_KEYS, rows, self._shown)
