"""`neuron-top --fleet`: one row per host of a fleet, sortable and filterable, with a utilization
sparkline; Enter opens that host's usual neuron-top screen, and quitting it comes back here."""

from __future__ import annotations

import subprocess
import sys

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import CellDoesNotExist

from neurontools import __version__
from neurontools.top.fleet_source import FleetRow, FleetSource
from neurontools.top.formatting import human_bytes
from neurontools.top.history import sparkline

SPARKLINE_WIDTH = 20
COLUMNS = ("host", "type", "AZ", "state", "cores busy", "util", "HBM used / capacity", "exec/s", "errors 1m",
           "utilization history")
# Sort keys, cycled with s: what each sorts on (a down host sorts as the least busy).
SORTS = {
    "host": lambda r: r.target.host,
    "util": lambda r: -r.sample.utilization if r.sample.up else 1.0,
    "exec/s": lambda r: -(r.executions_per_s or 0.0),
    "errors 1m": lambda r: -(r.errors_last_minute or 0.0),
    "state": lambda r: (r.sample.up, r.target.host),
    "AZ": lambda r: (r.target.availability_zone, r.target.host),
}


def matches(row: FleetRow, text: str) -> bool:
    """The filter: a substring of the host, instance type or AZ (case-insensitive)."""
    text = text.lower()
    return not text or any(text in field.lower() for field in
                           (row.target.host, row.target.instance_type, row.target.availability_zone))


def cells(row: FleetRow) -> tuple[str, ...]:
    s, t = row.sample, row.target
    if not s.up:
        return (t.host, t.instance_type, t.availability_zone, "DOWN", "-", "-", "-", "-", "-", s.problem[:60])
    rate = "-" if row.executions_per_s is None else f"{row.executions_per_s:,.0f}"
    errors = "-" if row.errors_last_minute is None else f"{row.errors_last_minute:,.0f}"
    return (t.host, t.instance_type, t.availability_zone, "up", f"{s.busy_cores}/{s.cores}", f"{s.utilization:.0%}",
            f"{human_bytes(s.hbm_used)} / {human_bytes(s.hbm_total)}", rate, errors,
            sparkline([100 * u for u in row.utilization_history], SPARKLINE_WIDTH))


class FleetTopApp(App[None]):
    TITLE = "neuron-top --fleet"
    CSS = """
    #title { height: 1; background: $primary; color: $text; }
    #status { height: 1; }
    #filter { height: 3; display: none; }
    #filter.shown { display: block; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("s", "sort", "sort by the next column"),
        Binding("r", "reverse", "reverse the order"),
        Binding("slash", "filter", "filter by host, type or AZ"),
        Binding("escape", "clear_filter", "clear the filter"),
    ]  # Enter: the table's row selection opens that host's neuron-top

    def __init__(self, source: FleetSource, *, interval: float = 1.0, top_command: list[str] | None = None) -> None:
        super().__init__()
        self.source = source
        self.interval = interval
        self.top_command = top_command or [sys.executable, "-m", "neurontools.top"]
        self.rows: list[FleetRow] = []
        self.sort = "host"
        self.reverse = False
        self.filter_text = ""
        self._reading = False

    def compose(self) -> ComposeResult:
        yield Static(f"neuron-top {__version__} — fleet of {len(self.source.targets)} hosts", id="title")
        yield Static("", id="status")
        yield Input(placeholder="filter: host, instance type or AZ (Enter keeps it, Esc clears)", id="filter")
        table = DataTable(id="hosts", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.refresh_rows()
        self.set_interval(self.interval, self.refresh_rows)

    def refresh_rows(self) -> None:
        if not self._reading:
            self._reading = True
            self.run_worker(self._read, thread=True, exclusive=True, group="scrape")

    def _read(self) -> None:
        try:
            rows = self.source.read()
        finally:
            self._reading = False
        self.call_from_thread(self.show, rows)

    def show(self, rows: list[FleetRow]) -> None:
        self.rows = rows
        self.render_table()

    def visible_rows(self) -> list[FleetRow]:
        shown = [row for row in self.rows if matches(row, self.filter_text)]
        return sorted(shown, key=SORTS[self.sort], reverse=self.reverse)

    def render_table(self) -> None:
        table = self.query_one(DataTable)
        selected = self._selected_host()
        table.clear()
        shown = self.visible_rows()
        for row in shown:
            table.add_row(*cells(row), key=row.target.host)
        hosts = [row.target.host for row in shown]
        if selected in hosts:
            table.move_cursor(row=hosts.index(selected))
        up = sum(1 for row in self.rows if row.sample.up)
        busy = sum(row.sample.busy_cores for row in self.rows)
        cores = sum(row.sample.cores for row in self.rows)
        where = f", filter '{self.filter_text}': {len(shown)} shown" if self.filter_text else ""
        self.query_one("#status", Static).update(
            f"{up}/{len(self.rows)} hosts up, {busy}/{cores} cores busy{where}; sorted by {self.sort}"
            f"{' (reversed)' if self.reverse else ''} — s sort, r reverse, / filter, Enter host, q quit")

    def _selected_host(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except CellDoesNotExist:  # no row under the cursor
            return None

    # --- keys ---

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort = names[(names.index(self.sort) + 1) % len(names)]
        self.render_table()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.render_table()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("shown")
        self.filter_text = ""
        self.query_one(DataTable).focus()
        self.render_table()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_drill()

    def action_drill(self) -> None:
        host = self._selected_host()
        row = next((r for r in self.rows if r.target.host == host), None)
        if row is None:
            return
        if not row.target.neurond_address:
            self.notify(f"{host}: the discovery file does not give its neurond address "
                        "(neuron-fleet's own file does)", severity="warning")
            return
        with self.suspend():  # the host's usual screen in this terminal; q there comes back here
            subprocess.run([*self.top_command, "--address", row.target.neurond_address])
        self.refresh_rows()
